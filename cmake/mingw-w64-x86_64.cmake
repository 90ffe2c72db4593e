# CMake toolchain file: cross-compile tsign for Windows x64 with MinGW-w64 (Debian's
# g++-mingw-w64-x86-64-posix: the posix thread model gives std::thread / std::mutex).
#
# scripts/build-windows passes the locations it prepared:
#   TSIGN_WINDOWS_SYSROOT  a folder holding include/ and lib/cmake/ links to the host's
#                          header-only Boost and Catch2 (never the whole /usr/include, whose glibc
#                          headers would shadow MinGW's)
#   OPENSSL_ROOT_DIR       the static OpenSSL built for the mingw64 target
# Test executables run under wine through CMAKE_CROSSCOMPILING_EMULATOR, so Catch2's test
# discovery and ctest work in the cross build directory too.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_tsign_triplet x86_64-w64-mingw32)
find_program(CMAKE_C_COMPILER NAMES ${_tsign_triplet}-gcc-posix ${_tsign_triplet}-gcc REQUIRED)
find_program(CMAKE_CXX_COMPILER NAMES ${_tsign_triplet}-g++-posix ${_tsign_triplet}-g++ REQUIRED)
find_program(CMAKE_RC_COMPILER NAMES ${_tsign_triplet}-windres REQUIRED)

# Cache variables given on the command line are visible here, and try_compile projects inherit
# them through CMAKE_TRY_COMPILE_PLATFORM_VARIABLES.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES TSIGN_WINDOWS_SYSROOT OPENSSL_ROOT_DIR TSIGN_WINE_RUNNER)
set(CMAKE_FIND_ROOT_PATH /usr/${_tsign_triplet})
if(TSIGN_WINDOWS_SYSROOT)
  list(APPEND CMAKE_FIND_ROOT_PATH ${TSIGN_WINDOWS_SYSROOT})
  list(APPEND CMAKE_PREFIX_PATH ${TSIGN_WINDOWS_SYSROOT})
  # FindBoost: the headers only, found by their version.hpp (no host BoostConfig.cmake).
  set(Boost_NO_BOOST_CMAKE ON CACHE BOOL "" FORCE)
  set(Boost_INCLUDE_DIR ${TSIGN_WINDOWS_SYSROOT}/include CACHE PATH "" FORCE)
endif()
if(OPENSSL_ROOT_DIR)
  list(APPEND CMAKE_FIND_ROOT_PATH ${OPENSSL_ROOT_DIR})
  set(OPENSSL_USE_STATIC_LIBS TRUE)
endif()
# Programs (wine, sh) come from the host; headers, libraries and packages only from the roots.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Static C/C++ runtime and winpthread in every executable (tests too), so nothing needs a DLL.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
# Catch2's CATCH_CONFIG_MAIN defines wmain when _UNICODE is set, which MinGW links only with
# -municode; plain main keeps one entry point for tests and tools alike (Catch's arguments are
# ASCII test names).
set(CMAKE_CXX_FLAGS_INIT "-DDO_NOT_USE_WMAIN")

if(TSIGN_WINE_RUNNER)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${TSIGN_WINE_RUNNER})
endif()
