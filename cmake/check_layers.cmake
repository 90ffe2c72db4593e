# The include check of the layers (docs/architecture.md), run with
#   cmake -DSRC=<src folder> -DRULES=<layers.cmake> -P check_layers.cmake
# RULES sets TSIGN_MODULES (every folder, lowest layer first) and TSIGN_LAYER_<folder> (the
# folders it may use, directly or through its dependencies), as the top CMakeLists.txt declares
# them. Fails naming each file and line whose `#include "folder/..."` reaches a folder its own
# folder does not depend on, and each folder of SRC that is not declared. Why a script besides
# the libraries' link dependencies: a header-only use of a higher layer never shows at link time.
cmake_minimum_required(VERSION 3.25)
if(NOT SRC OR NOT RULES)
  message(FATAL_ERROR "usage: cmake -DSRC=<src folder> -DRULES=<layers.cmake> -P check_layers.cmake")
endif()
include(${RULES})

set(_problems)
file(GLOB _dirs LIST_DIRECTORIES true RELATIVE ${SRC} ${SRC}/*)
foreach(m IN LISTS _dirs)
  if(NOT IS_DIRECTORY ${SRC}/${m})
    continue()
  endif()
  if(NOT m IN_LIST TSIGN_MODULES)
    list(APPEND _problems "src/${m}/ is not a declared layer: add tsign_module(${m} ...) to the top CMakeLists.txt")
    continue()
  endif()
  set(_allowed ${m} ${TSIGN_LAYER_${m}})
  string(REPLACE ";" ", " _may "${TSIGN_LAYER_${m}}")
  file(GLOB_RECURSE _files RELATIVE ${SRC} ${SRC}/${m}/*.hpp ${SRC}/${m}/*.cpp ${SRC}/${m}/*.h)
  foreach(f IN LISTS _files)
    file(STRINGS ${SRC}/${f} _lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"[^\"/]+/")
    foreach(line IN LISTS _lines)
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*\"([^\"/]+)/.*" "\\1" _dep "${line}")
      if(_dep IN_LIST TSIGN_MODULES AND NOT _dep IN_LIST _allowed)
        string(STRIP "${line}" line)
        list(APPEND _problems
             "src/${f}: ${line}: ${m}/ does not depend on ${_dep}/ (it may use: ${_may})")
      endif()
    endforeach()
  endforeach()
endforeach()

if(_problems)
  list(JOIN _problems "\n  " _text)
  message(FATAL_ERROR "includes that run against the layers (docs/architecture.md):\n  ${_text}\n"
          "Move the code to the layer that may use both, or declare the dependency in the top "
          "CMakeLists.txt if it does not run upwards.")
endif()
