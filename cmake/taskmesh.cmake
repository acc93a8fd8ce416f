# Helpers that keep every module one directory = one library with explicit dependencies.
#
#   taskmesh_library(NAME SRCS a.cc b.cc DEPS other_lib ...)  -> target taskmesh_<NAME>
#   taskmesh_test(NAME SRCS a_test.cc DEPS ...)                 -> GoogleTest binary + ctest entries

function(taskmesh_library NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  add_library(taskmesh_${NAME} STATIC ${ARG_SRCS})
  target_include_directories(taskmesh_${NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(taskmesh_${NAME} PUBLIC ${ARG_DEPS})
endfunction()

function(taskmesh_test NAME)
  cmake_parse_arguments(ARG "" "" "SRCS;DEPS" ${ARGN})
  if(TASKMESH_FUZZ)
    return()
  endif()
  add_executable(${NAME} ${ARG_SRCS})
  target_link_libraries(${NAME} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${NAME} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
endfunction()
