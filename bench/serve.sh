#!/usr/bin/env bash
# corio.serve beside nginx, in the same run: a "hello world\n" handler
# (one Lua task per request) against nginx serving the same 12 bytes with
# one worker, each loaded by `wrk -t2 -c100 -d5s` (keep-alive).  Prints
# both rates and their ratio; stops both servers by PID.
#   bash bench/serve.sh [DURATION]          (default 5s)
# CORIO_BIN: the corio executable (default build/corio, built if missing)
# BENCH_SERVER_SH: shared/bench/server.sh (default: found beside the repo)
set -euo pipefail
cd "$(dirname "$0")/.."
dur=${1:-5s}
bin=${CORIO_BIN:-build/corio}
if [ ! -x "$bin" ]; then
  cmake -S . -B build -DCORIO_WERROR=ON >/dev/null
  cmake --build build -j"$(nproc)" --target corio >/dev/null
fi
server_sh=${BENCH_SERVER_SH:-}
for c in ../shared/bench/server.sh /work/shared/bench/server.sh; do
  [ -z "$server_sh" ] && [ -f "$c" ] && server_sh=$c
done
[ -n "$server_sh" ] || { echo "bench/serve.sh: shared/bench/server.sh not found (set BENCH_SERVER_SH)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench/serve.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d)
chmod 755 "$tmp" # nginx workers run as nobody
corio_pid="" nginx_port=""
cleanup() {
  [ -n "$corio_pid" ] && kill "$corio_pid" 2>/dev/null && wait "$corio_pid" 2>/dev/null || true
  [ -n "$nginx_port" ] && BENCH_NGINX_DIR=$tmp/nginx bash "$server_sh" stop "$nginx_port" >/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# a free port for nginx: nothing answers a connect there
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "bench/serve.sh: no free port" >&2; exit 1
}

cat > "$tmp/hello.lua" <<'LUA'
local s = corio.serve{port = 0, handler = function() return "hello world\n" end}
print(s.url)
io.stdout:flush()
s:wait()
LUA
"$bin" "$tmp/hello.lua" > "$tmp/corio.out" 2> "$tmp/corio.err" &
corio_pid=$!
for _ in $(seq 100); do grep -q '^http' "$tmp/corio.out" 2>/dev/null && break; sleep 0.05; done
corio_url=$(head -1 "$tmp/corio.out")
[ -n "$corio_url" ] || { echo "corio.serve did not start:" >&2; cat "$tmp/corio.err" >&2; exit 1; }

nginx_port=$(free_port)
BENCH_NGINX_DIR=$tmp/nginx BENCH_NGINX_WORKERS=1 bash "$server_sh" start "$nginx_port" >/dev/null
nginx_url=http://127.0.0.1:$nginx_port

# same body from both
a="$(curl -s "$corio_url/hello")" b="$(curl -s "$nginx_url/hello")"
[ "$a" = "$b" ] ||
  { echo "bench/serve.sh: the two bodies differ: [$a] [$b]" >&2; exit 1; }

rate() { # url name -> requests/s (and the wrk output in $tmp/name.wrk)
  wrk -t2 -c100 -d"$dur" "$1/hello" > "$tmp/$2.wrk"
  if grep -qE 'Socket errors|Non-2xx' "$tmp/$2.wrk"; then
    echo "bench/serve.sh: $2 had errors:" >&2; cat "$tmp/$2.wrk" >&2; exit 1
  fi
  awk '/^Requests\/sec:/ {print $2}' "$tmp/$2.wrk"
}

corio_rate=$(rate "$corio_url" corio)
nginx_rate=$(rate "$nginx_url" nginx)
echo "wrk -t2 -c100 -d$dur, body \"hello world\\n\", $(nproc) CPUs"
printf '%-28s %10.0f req/s\n' "corio.serve (Lua handler)" "$corio_rate" \
  "nginx 1 worker (static)" "$nginx_rate"
awk -v a="$corio_rate" -v b="$nginx_rate" 'BEGIN {printf "ratio corio/nginx: %.2f (target >= 0.50)\n", a / b}'
