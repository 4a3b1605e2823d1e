-- corio's Lua module for LuaRocks: `luarocks make` in a checkout builds it
-- with CMake (the Lua parts are embedded in corio.so at build time) and
-- installs corio.so alone; libuv, libcurl, llhttp (node-llhttp: its C sources,
-- compiled in) and lua-cjson come
-- from the system (Debian: tools/deps.sh).
rockspec_format = "3.0"
package = "corio"
version = "scm-1"
source = {
  url = "git+file://.", -- luarocks make builds the checkout it runs in
}
description = {
  summary = "Coroutine runtime on libuv and libcurl: tasks, HTTP client and server",
  detailed = [[
corio runs thousands of Lua 5.4 tasks on one libuv loop, the way Python's
asyncio does: corio.spawn, corio.sleep, corio.wait and corio.gather,
corio.fetch (libcurl's multi_socket) and corio.serve (an HTTP server).
]],
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- libuv, libcurl and Lua are found by CMake through pkg-config (Debian
-- puts curl.h under a multiarch directory luarocks does not search), and
-- llhttp's sources and header by CMake's find_file/find_path.
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    CORIO_INSTALL_LUA_CMODDIR = "$(LIBDIR)",
    CORIO_INSTALL_MODULE_ONLY = "ON",
    CORIO_BUILD_TESTS = "OFF",
  },
}
