# Generated test inputs (tests/support/make_fixtures.sh), shared by every test area.
#
# How a test gets them, and why two mechanisms:
#  - The CTest test `make_fixtures` (FIXTURES_SETUP fixtures) builds them into
#    ${CMAKE_BINARY_DIR}/fixtures before any test that declares FIXTURES_REQUIRED fixtures.
#  - Catch2's discovered tests are only known at build time, so tsign_use_fixtures() adds a
#    TEST_INCLUDE_FILES script that puts FIXTURES_REQUIRED on the discovered list
#    (<target>_TESTS) when CTest loads it. Call it after tsign_add_test().
#  - Running a test executable directly bypasses CTest, so it also makes the fixtures itself on
#    first use (tsign::test::fixtures_dir() in tests/support/fixtures.hpp runs the script when
#    OUTDIR/.done is missing). The script takes an flock, so concurrent runs wait for one
#    generation and never see half-written files.
#
# Use: include(${PROJECT_SOURCE_DIR}/tests/support/fixtures.cmake) then tsign_use_fixtures(target)
# (tests/CMakeLists.txt adds areas in alphabetical order, so an area before "support" must include
# this file itself; the include guard makes that safe).
include_guard(GLOBAL)

set(TSIGN_FIXTURES_DIR "${CMAKE_BINARY_DIR}/fixtures" CACHE INTERNAL "generated test inputs")
set(TSIGN_FIXTURES_SCRIPT "${PROJECT_SOURCE_DIR}/tests/support/make_fixtures.sh"
    CACHE INTERNAL "generates TSIGN_FIXTURES_DIR")

add_test(NAME make_fixtures COMMAND sh ${TSIGN_FIXTURES_SCRIPT} ${TSIGN_FIXTURES_DIR})
set_tests_properties(make_fixtures PROPERTIES FIXTURES_SETUP fixtures TIMEOUT 300)

# Gives `target` TSIGN_FIXTURES_DIR / TSIGN_FIXTURES_SCRIPT and "support/fixtures.hpp".
function(tsign_use_fixtures target)
  target_compile_definitions(${target} PRIVATE
    TSIGN_FIXTURES_DIR="${TSIGN_FIXTURES_DIR}"
    TSIGN_FIXTURES_SCRIPT="${TSIGN_FIXTURES_SCRIPT}")
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  # Runs after catch_discover_tests' include file (appended earlier), which defines the list.
  set(_inc "${CMAKE_CURRENT_BINARY_DIR}/${target}_fixtures.cmake")
  file(WRITE "${_inc}"
    "if(DEFINED ${target}_TESTS)\n"
    "  set_tests_properties(\${${target}_TESTS} PROPERTIES FIXTURES_REQUIRED fixtures)\n"
    "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${_inc}")
endfunction()
