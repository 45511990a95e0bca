# `cmake --install BUILD --prefix P` (issue 18, item 3): the tools in P/bin, the static libraries
# tlkit::core, tlkit::extract and tlkit::classify in P/lib, the public headers in P/include and
# P/lib/cmake/tlkit/tlkitConfig.cmake, which finds the libraries' dependencies again (the same
# Debian packages) on the consumer's side:
#
#   find_package(tlkit 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE tlkit::core)
include(CMakePackageConfigHelpers)

set(TL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/tlkit)

# tl_warnings is an INTERFACE target the static libraries link PRIVATE: CMake lists it among
# their link-only dependencies, so it is exported too (it carries -Wall -Wextra, nothing more).
install(TARGETS tl_core tl_extract tl_classify tl_warnings
        EXPORT tlkitTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS tl-extract tl-train tl-predict tl-merge tl-forward tl-export
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/lib/include/ ${PROJECT_SOURCE_DIR}/extract/include/
                  ${PROJECT_SOURCE_DIR}/classify/include/
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.hpp")
install(FILES ${PROJECT_BINARY_DIR}/lib/generated/tl/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tl)
install(EXPORT tlkitTargets NAMESPACE tlkit:: DESTINATION ${TL_CMAKE_DIR})

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/tlkitConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/tlkitConfig.cmake
                              INSTALL_DESTINATION ${TL_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/tlkitConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/tlkitConfig.cmake ${PROJECT_BINARY_DIR}/tlkitConfigVersion.cmake
        DESTINATION ${TL_CMAKE_DIR})
