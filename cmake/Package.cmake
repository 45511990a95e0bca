# `cpack -G DEB` in the build folder (issue 18, item 4): tlkit_<version>_amd64.deb with the
# tools, libraries, headers and CMake package of cmake/Install.cmake under /usr, man pages made
# from each tool's --help (help2man; -DTL_MAN_PAGES=ON, which scripts/test-deb.sh sets) and the
# docs; its Depends computed from the binaries by dpkg-shlibdeps.
option(TL_MAN_PAGES "Make man pages from the tools' --help with help2man (for packages)" OFF)
if(TL_MAN_PAGES)
  find_program(HELP2MAN help2man REQUIRED)
  set(pages "")
  set(name_tl-extract "cache the features of a VGG16 layer for an image folder in HDF5")
  set(name_tl-train "train a dense classifier on cached VGG16 features, or fine-tune block5")
  set(name_tl-predict "apply a model from tl-train to cached features or to images")
  set(name_tl-merge "merge the shards of a Slurm array extraction into one feature file")
  set(name_tl-forward "time VGG16's convolutional base on a generated image batch")
  set(name_tl-export "write a model from tl-train as ONNX (the head, or image to probabilities)")
  foreach(tool tl-extract tl-train tl-predict tl-merge tl-forward tl-export)
    set(page ${PROJECT_BINARY_DIR}/man/${tool}.1)
    add_custom_command(OUTPUT ${page}.gz  # gzip -9n, as Debian ships man pages
                       COMMAND ${CMAKE_COMMAND} -E make_directory ${PROJECT_BINARY_DIR}/man
                       COMMAND ${HELP2MAN} --no-info --section=1 --source=tlkit
                               "--name=${name_${tool}}"
                               --version-string=${PROJECT_VERSION} --output=${page}
                               $<TARGET_FILE:${tool}>
                       COMMAND gzip -9nf ${page}
                       DEPENDS ${tool}
                       COMMENT "man page of ${tool}"
                       VERBATIM)
    list(APPEND pages ${page}.gz)
  endforeach()
  add_custom_target(tl_man_pages ALL DEPENDS ${pages})
  install(FILES ${pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
endif()
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/docs/GUIDE.md
              ${PROJECT_SOURCE_DIR}/docs/FORMAT.md ${PROJECT_SOURCE_DIR}/docs/HARDENING.md
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tlkit)
set(CPACK_PACKAGE_VENDOR tlkit)
set(CPACK_PACKAGE_CONTACT "tlkit maintainers <maintainers@users.noreply.github.com>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "VGG16 transfer learning on CPU servers: feature extraction, training, prediction")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # tlkit_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)   # Depends from the binaries' shared libraries
set(CPACK_DEBIAN_PACKAGE_SECTION science)
include(CPack)
