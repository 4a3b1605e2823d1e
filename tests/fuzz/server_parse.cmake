# fuzz_server_parse (tests/fuzz/fuzz_server_parse.c), for the CORIO_FUZZ
# build with clang: include() this file after the top CMakeLists.txt has
# found libuv, libcurl, hiredis and llhttp.  The target compiles the
# runtime and llhttp again, with the fuzzer's coverage and the sanitizers,
# so that it does not depend on how the rest of the build is compiled.
file(GLOB_RECURSE CORIO_FUZZ_RUNTIME_SOURCES CONFIGURE_DEPENDS
  ${PROJECT_SOURCE_DIR}/runtime/src/*.c)
set(CORIO_FUZZ_LLHTTP_SOURCES ${LLHTTP_api_C} ${LLHTTP_http_C} ${LLHTTP_llhttp_C})
set_source_files_properties(${CORIO_FUZZ_LLHTTP_SOURCES} PROPERTIES COMPILE_OPTIONS -w)
add_executable(fuzz_server_parse ${CMAKE_CURRENT_LIST_DIR}/fuzz_server_parse.c
  ${CORIO_FUZZ_RUNTIME_SOURCES} ${CORIO_FUZZ_LLHTTP_SOURCES})
target_include_directories(fuzz_server_parse PRIVATE
  ${PROJECT_SOURCE_DIR}/runtime/include ${PROJECT_SOURCE_DIR}/runtime/src
  ${LLHTTP_INCLUDE_DIR})
target_compile_definitions(fuzz_server_parse PRIVATE CORIO_BUILDING)
target_compile_options(fuzz_server_parse PRIVATE -g -O1
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
target_link_options(fuzz_server_parse PRIVATE -fsanitize=fuzzer,address,undefined)
target_link_libraries(fuzz_server_parse PRIVATE PkgConfig::LIBUV PkgConfig::LIBCURL
  PkgConfig::HIREDIS m)
