#!/usr/bin/env bash
# `luarocks make` (Debian's luarocks 3.8, Lua 5.4) builds corio's rockspec
# into a temporary tree, offline, from a copy of the checkout (the cmake
# build type writes build.luarocks/ into the directory it runs in); plain
# lua5.4 then loads the module from that tree and uses it.
#   bash tests/install/luarocks.sh SOURCE_DIR
set -euo pipefail
src=$(cd "$1" && pwd)
tmp=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

mkdir "$tmp/src"
tar -C "$src" --exclude='./build*' --exclude=./.git --exclude=./results -cf - . |
  tar -C "$tmp/src" -xf -
rockspec=$(cd "$tmp/src" && ls corio-*.rockspec)
echo "== luarocks make $rockspec --tree $tmp/tree"
# no network: the rock's only dependency is Lua itself; the C libraries
# are the system's (pkg-config)
(cd "$tmp/src" && CMAKE_BUILD_PARALLEL_LEVEL=2 \
  luarocks --lua-version 5.4 make --tree "$tmp/tree" "$rockspec" >"$tmp/log" 2>&1) ||
  { cat "$tmp/log"; fail "luarocks make"; }
luarocks --lua-version 5.4 list --tree "$tmp/tree" --porcelain | grep '^corio' >/dev/null ||
  fail "luarocks list shows no corio"

echo "== lua5.4 with the tree's paths"
eval "$(luarocks --lua-version 5.4 path --tree "$tmp/tree")"
(cd "$tmp" && WANT="$tmp/tree/lib/lua/5.4/corio.so" lua5.4 -e '
local corio = require "corio"
local where = package.searchpath("corio", package.cpath)
assert(where == os.getenv("WANT"), "corio.so from " .. tostring(where))
local server <close> = corio.serve{port = 0, handler = function(req)
  return {json = {path = req.path}}
end}
local r = corio.fetch(server.url .. "/rock")
assert(r.status == 200 and r:json().path == "/rock", r.body)
print(corio.sleep(0.01, "lua5.4: require corio from the rock tree, fetch ok"))
') | tee "$tmp/out"
grep -q 'fetch ok' "$tmp/out" || fail "lua5.4"
echo "luarocks: ok"
