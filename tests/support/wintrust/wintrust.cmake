# wintrust_verify.exe: Windows' own Authenticode judge (WinVerifyTrust), a MinGW-w64 program run
# under wine by tests/integration/wintrust.hpp. What wine's WinVerifyTrust checks, and what not:
# docs/judges.md.
#
# Built at build time with the MinGW-w64 cross compiler scripts/setup installs (the one
# make_fixtures.sh builds the PE fixtures with), so a native build needs no other Windows
# toolchain. Not built in a Windows build (the integration tests judge through wine on Linux), nor
# where no cross compiler exists (the tests then say why they skip).
#
# Use: include(${PROJECT_SOURCE_DIR}/tests/support/wintrust/wintrust.cmake) then
# tsign_use_wintrust(target): gives `target` TSIGN_WINTRUST_EXE (empty when not built) and
# TSIGN_WINE_RUN, and builds the program before it.
include_guard(GLOBAL)

set(_wintrust_exe "")
if(NOT WIN32)
  find_program(TSIGN_MINGW64_GCC x86_64-w64-mingw32-gcc)
  if(TSIGN_MINGW64_GCC)
    set(_wintrust_src "${CMAKE_CURRENT_LIST_DIR}/wintrust_verify.c")
    set(_wintrust_exe "${CMAKE_BINARY_DIR}/tests/wintrust_verify.exe")
    add_custom_command(
      OUTPUT "${_wintrust_exe}"
      COMMAND "${TSIGN_MINGW64_GCC}" -municode -O1 -s -Wall -Wextra -Werror
              -o "${_wintrust_exe}" "${_wintrust_src}" -lwintrust -lcrypt32
      DEPENDS "${_wintrust_src}"
      COMMENT "Building wintrust_verify.exe (MinGW-w64; runs under wine)"
      VERBATIM)
    add_custom_target(wintrust_verify DEPENDS "${_wintrust_exe}")
  endif()
endif()
set(TSIGN_WINTRUST_EXE "${_wintrust_exe}" CACHE INTERNAL "WinVerifyTrust judge (Windows program)")

function(tsign_use_wintrust target)
  target_compile_definitions(${target} PRIVATE
    TSIGN_WINTRUST_EXE="${TSIGN_WINTRUST_EXE}"
    TSIGN_WINE_RUN="${PROJECT_SOURCE_DIR}/tests/windows/wine-run")
  if(TARGET wintrust_verify)
    add_dependencies(${target} wintrust_verify)
  endif()
endfunction()
