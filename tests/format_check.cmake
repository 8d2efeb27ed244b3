# Fails when any C++/CUDA source under the project's folders is not clang-formatted.
file(GLOB_RECURSE sources
  ${SOURCE_DIR}/core/*.h ${SOURCE_DIR}/core/*.cpp
  ${SOURCE_DIR}/engine/*.h ${SOURCE_DIR}/engine/*.cpp
  ${SOURCE_DIR}/kernels/*.h ${SOURCE_DIR}/kernels/*.cpp ${SOURCE_DIR}/kernels/*.cu ${SOURCE_DIR}/kernels/*.cuh
  ${SOURCE_DIR}/io/*.h ${SOURCE_DIR}/io/*.cpp
  ${SOURCE_DIR}/dist/*.h ${SOURCE_DIR}/dist/*.cpp
  ${SOURCE_DIR}/pipeline/*.h ${SOURCE_DIR}/pipeline/*.cpp
  ${SOURCE_DIR}/launch/*.h ${SOURCE_DIR}/launch/*.cpp
  ${SOURCE_DIR}/tests/*.h ${SOURCE_DIR}/tests/*.cpp
  ${SOURCE_DIR}/bench/*.h ${SOURCE_DIR}/bench/*.cpp)
set(bad "")
foreach(f ${sources})
  execute_process(COMMAND ${CLANG_FORMAT} --dry-run -Werror ${f} RESULT_VARIABLE rc OUTPUT_QUIET ERROR_QUIET)
  if(NOT rc EQUAL 0)
    list(APPEND bad ${f})
  endif()
endforeach()
if(bad)
  message(FATAL_ERROR "not clang-formatted (run clang-format -i):\n${bad}")
endif()
list(LENGTH sources n)
message(STATUS "${n} sources clang-formatted")
