#!/usr/bin/env bash
# Installs corio into a temporary prefix with `cmake --install`, then uses it
# the three ways a user would, each from outside corio's tree:
#   1. C programs built with `pkg-config --cflags --libs corio` (and
#      corio-lua, and libcorio.a with Libs.private);
#   2. a CMake project with find_package(corio) (corio::corio, corio::lua,
#      corio::static);
#   3. plain lua5.4 with LUA_CPATH into the prefix: require "corio".
# Every program starts its own server on 127.0.0.1 (no process to stop).
#   bash tests/install/run.sh BUILD_DIR SOURCE_DIR [ON]   (ON: sanitized build)
set -euo pipefail
fail() { echo "FAIL: $*" >&2; exit 1; }
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
sanitize=${3:-OFF}
tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
cache() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
libdir=$(cache CMAKE_INSTALL_LIBDIR)  # lib, or lib/<multiarch> for /usr
cmoddir=$(cache CORIO_INSTALL_LUA_CMODDIR)
case $cmoddir in /*) fail "CORIO_INSTALL_LUA_CMODDIR is absolute: $cmoddir" ;; esac
examples=$src/examples
cflags=(-O1 -Wall -Werror)
lua=(lua5.4)
if [ "$sanitize" = ON ]; then
  # the installed libraries are sanitized: so must their users be
  cflags+=(-fsanitize=address,undefined)
  lua=(env "LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
       ASAN_OPTIONS=detect_leaks=0 lua5.4)
fi
echo "== cmake --install into $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in $libdir/libcorio.so $libdir/libcorio.a $libdir/libcorio_lua.a include/corio.h \
         include/corio/fetch.h include/corio/server.h include/corio/url.h \
         include/corio_lua.h bin/corio share/man/man1/corio.1 \
         $cmoddir/corio.so $libdir/pkgconfig/corio.pc $libdir/pkgconfig/corio-lua.pc \
         $libdir/cmake/corio/corioConfig.cmake $libdir/cmake/corio/corioConfigVersion.cmake; do
  [ -e "$prefix/$f" ] || fail "not installed: $f"
done
soname=$(objdump -p "$prefix/$libdir/libcorio.so" | awk '/SONAME/ {print $2}')
[ "$soname" = libcorio.so.0 ] || fail "SONAME is '$soname'"
"$prefix/bin/corio" -v | grep '^corio [0-9]' >/dev/null || fail "corio -v"
MANWIDTH=80 man -l "$prefix/share/man/man1/corio.1" 2>/dev/null | grep 'EXIT STATUS' >/dev/null ||
  fail "man -l corio.1 does not render"

echo "== pkg-config"
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
rpath=-Wl,-rpath,$prefix/$libdir
# shellcheck disable=SC2046 # pkg-config's output is words
cc "${cflags[@]}" "$examples/c_fetch.c" $(pkg-config --cflags --libs corio) "$rpath" \
  -o "$tmp/c_fetch"
ldd "$tmp/c_fetch" | grep "$prefix/$libdir/libcorio.so.0" >/dev/null || fail "c_fetch: not the installed libcorio.so"
"$tmp/c_fetch" | tee "$tmp/out"
grep -q '^100 fetches: 100 ok' "$tmp/out" || fail "c_fetch (pkg-config)"
# libcorio.a: Libs.private and Requires.private must be enough.  Not
# `pkg-config --static`: Debian's libcurl.pc then asks for static libraries
# of its own dependencies that libcurl4-openssl-dev does not install.
private=$(sed -n 's/^Libs.private: //p' "$prefix/$libdir/pkgconfig/corio.pc")
# shellcheck disable=SC2046,SC2086
cc "${cflags[@]}" "$examples/c_fetch.c" $(pkg-config --cflags corio) -L"$prefix/$libdir" \
  -l:libcorio.a $(pkg-config --libs libuv libcurl) $private -o "$tmp/c_fetch_static"
ldd "$tmp/c_fetch_static" | grep libcorio >/dev/null && fail "c_fetch_static links libcorio.so"
"$tmp/c_fetch_static" 10 | grep '^10 fetches: 10 ok' >/dev/null || fail "c_fetch (static)"
# shellcheck disable=SC2046
cc "${cflags[@]}" "$examples/embed_lua.c" $(pkg-config --cflags --libs corio-lua libuv) \
  "$rpath" -o "$tmp/embed_lua"
"$tmp/embed_lua" | grep '^fetch_many: 20 of 20 ok' >/dev/null || fail "embed_lua (pkg-config)"

echo "== find_package"
cmake -S "$src/tests/install/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DEXAMPLES="$examples" -DCMAKE_C_FLAGS="${cflags[*]}" >/dev/null
cmake --build "$tmp/consumer" -j2 >/dev/null
"$tmp/consumer/two_threads" | tee "$tmp/out"
[ "$(grep -c ': 50/50 from' "$tmp/out")" = 2 ] || fail "two_threads (find_package)"
ldd "$tmp/consumer/two_threads" | grep "$prefix/$libdir/libcorio.so.0" >/dev/null ||
  fail "two_threads: not the installed libcorio.so"
"$tmp/consumer/embed_lua" | tee "$tmp/out"
grep -q '^start_fetch: 200 ' "$tmp/out" || fail "embed_lua (find_package)"
"$tmp/consumer/c_fetch_static" 10 | grep '^10 fetches: 10 ok' >/dev/null || fail "c_fetch_static (find_package)"

echo "== plain lua5.4"
(cd "$tmp" && LUA_CPATH="$prefix/$cmoddir/?.so;;" WANT="$prefix/$cmoddir/corio.so" "${lua[@]}" -e '
local corio = require "corio"
local where = package.searchpath("corio", package.cpath)
assert(where == os.getenv("WANT"), "corio.so from " .. tostring(where))
local server <close> = corio.serve{port = 0, handler = function(req)
  corio.sleep(0.01)
  return "hello " .. req.path
end}
local tasks = {}
for i = 1, 10 do tasks[i] = corio.spawn(corio.fetch, server.url .. "/" .. i) end
local results = corio.gather(tasks)
assert(results[10].body == "hello /10", results[10].body)
print(corio.sleep(0.01, "lua5.4: require corio from the prefix, 10 fetches ok"))
') | tee "$tmp/out"
grep -q 'fetches ok' "$tmp/out" || fail "lua5.4"
echo "install: ok"
