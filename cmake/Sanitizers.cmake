# Sanitizer and fuzzing builds (issue 10). Both apply to every target of the build, the test
# binaries and GoogleTest's main included, so they are directory-wide compile and link options
# set before any target; the system libraries (oneDNN, libgomp, oneTBB, OpenCV, HDF5) stay
# uninstrumented. Each build gets its own build folder:
#
#   cmake -S . -B /tmp/build-asan -DTL_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo
#   cmake -S . -B /tmp/build-tsan -DTL_SANITIZE=thread -DCMAKE_BUILD_TYPE=RelWithDebInfo
#   cmake -S . -B /tmp/build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DTL_FUZZ=ON   # docs/HARDENING.md
#
# TL_FUZZ implies -fsanitize=fuzzer-no-link,address,undefined (clang only); the fuzz targets
# themselves link -fsanitize=fuzzer.
set(TL_SANITIZE "" CACHE STRING "Sanitizers for every target: e.g. address,undefined or thread")
option(TL_FUZZ "Build the libFuzzer targets in fuzz/ (clang; implies ASan + UBSan)" OFF)

if(TL_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "TL_FUZZ needs clang (libFuzzer): -DCMAKE_CXX_COMPILER=clang++")
  endif()
  if(NOT TL_SANITIZE)
    set(TL_SANITIZE "address,undefined")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()

if(TL_SANITIZE)
  message(STATUS "tlkit: -fsanitize=${TL_SANITIZE}")
  add_compile_options(-fsanitize=${TL_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${TL_SANITIZE})
  if(TL_SANITIZE MATCHES "undefined")
    # A UBSan report fails the test (exit code) instead of printing and going on.
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
endif()
