# Runs cmake/check_layers.cmake (CHECK) with the build's rules (RULES) over a scratch src/ tree
# in WORK: first a sound one (must pass), then one with an upward include in a header, one in a
# source file, and an undeclared folder (must fail, naming each file and folder).
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE ${WORK})

function(run_check out_rc out_text)
  execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${WORK}/src -DRULES=${RULES} -P ${CHECK}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  set(${out_rc} ${rc} PARENT_SCOPE)
  set(${out_text} "${o}${e}" PARENT_SCOPE)
endfunction()

include(${RULES})  # TSIGN_MODULES: every declared folder gets a (sound) file
foreach(m IN LISTS TSIGN_MODULES)
  file(WRITE ${WORK}/src/${m}/a.hpp "#pragma once\n#include \"${m}/b.hpp\"\n#include <vector>\n")
endforeach()
file(WRITE ${WORK}/src/formats/ok.cpp "#include \"platform/platform.hpp\"\n#include \"common/error.hpp\"\n")
file(WRITE ${WORK}/src/engine/ok.cpp "  #  include \"formats/format.hpp\"\n#include \"tsa/timestamp_client.hpp\"\n")

run_check(rc text)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the check refused a sound tree:\n${text}")
endif()

file(WRITE ${WORK}/src/formats/bad.hpp "#pragma once\n#include \"engine/engine.hpp\"\n")
file(WRITE ${WORK}/src/authenticode/bad.cpp "// uses the HTTP client\n #include \"http/client.hpp\"\n")
file(MAKE_DIRECTORY ${WORK}/src/newlayer)
run_check(rc text)
if(rc EQUAL 0)
  message(FATAL_ERROR "the check passed a tree with upward includes:\n${text}")
endif()
foreach(expect
    "src/formats/bad.hpp: #include \"engine/engine.hpp\": formats/ does not depend on engine/"
    "src/authenticode/bad.cpp: #include \"http/client.hpp\": authenticode/ does not depend on http/"
    "src/newlayer/ is not a declared layer")
  string(FIND "${text}" "${expect}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the check's message lacks \"${expect}\":\n${text}")
  endif()
endforeach()
foreach(sound "ok.cpp" "a.hpp")
  string(FIND "${text}" "${sound}" at)
  if(NOT at EQUAL -1)
    message(FATAL_ERROR "the check refused a sound file (${sound}):\n${text}")
  endif()
endforeach()
message(STATUS "the layer check catches upward includes and undeclared folders")
