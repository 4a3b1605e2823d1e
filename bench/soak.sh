#!/usr/bin/env bash
# Soak (a benchmark, not a test): long runs of the same work, with RSS
# and the descriptor count sampled every 10%.  After warm-up (from the 20%
# sample on) memory must stay flat (less than 5% growth to the end) and
# descriptors constant.
#   1. FETCHES fetches of nginx's /hello (bench nginx, one keep-alive
#      session, 50 worker tasks: bench/soak.lua fetch)
#   2. REQUESTS requests to corio.serve from wrk (-t2 -c50), in runs of
#      about REQUESTS/10 each (wrk runs for a time; the rate of a first 3 s
#      run sets it); the server's RSS and fds read from /proc after a run
#      that passes the next 10%
#   3. TASKS tasks created and finished in waves of 10,000 (bench/soak.lua
#      tasks)
#   bash bench/soak.sh [FETCHES] [REQUESTS] [TASKS]   (1000000 1000000 100000)
# Prints a table per part and a verdict line each; exits 1 if one is not
# flat.  CORIO_BIN: the corio executable (default build/corio).
# BENCH_SERVER_SH: shared/bench/server.sh (default: found beside the repo).
set -euo pipefail
cd "$(dirname "$0")/.."
fetches=${1:-1000000}
requests=${2:-1000000}
tasks=${3:-100000}
bin=${CORIO_BIN:-build/corio}
if [ ! -x "$bin" ]; then
  cmake -S . -B build -DCORIO_WERROR=ON >/dev/null
  cmake --build build -j"$(nproc)" --target corio >/dev/null
fi
server_sh=${BENCH_SERVER_SH:-}
for c in ../shared/bench/server.sh /work/shared/bench/server.sh; do
  [ -z "$server_sh" ] && [ -f "$c" ] && server_sh=$c
done
[ -n "$server_sh" ] || { echo "bench/soak.sh: shared/bench/server.sh not found" >&2; exit 1; }
command -v wrk >/dev/null || { echo "bench/soak.sh: wrk is missing" >&2; exit 1; }
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

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "bench/soak.sh: no free port" >&2; exit 1
}

# The verdict on "sample pct= done= secs= rss_kb= lua_kb= fds=" lines.
verdict() {
  awk -v what="$1" '
    /^sample/ {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      printf "| %s | %d%% | %d | %.1f | %d | %s | %d |\n", what, v["pct"], v["done"],
        v["secs"], v["rss_kb"], (v["lua_kb"] == "" ? "-" : v["lua_kb"]), v["fds"]
      if (v["pct"] >= 20) {
        if (base == "") base = v["rss_kb"]
        last = v["rss_kb"]
        if (fmin == "" || v["fds"] < fmin) fmin = v["fds"]
        if (fmax == "" || v["fds"] > fmax) fmax = v["fds"]
      }
    }
    END {
      growth = base > 0 ? (last - base) * 100 / base : 0
      ok = growth < 5 && fmin == fmax
      printf "%s: RSS %d -> %d KB from 20%% to 100%% (%+.1f%%), fds %d..%d: %s\n",
        what, base, last, growth, fmin, fmax, ok ? "flat" : "NOT FLAT" > "/dev/stderr"
      exit ok ? 0 : 1
    }'
}

status=0
echo "| part | at | done | secs | RSS KB | Lua KB | fds |"
echo "|---|---|---|---|---|---|---|"

# 1. fetches against nginx
nginx_port=$(free_port)
BENCH_NGINX_DIR=$tmp/nginx bash "$server_sh" start "$nginx_port" >/dev/null
"$bin" bench/soak.lua fetch "http://127.0.0.1:$nginx_port/hello" "$fetches" 50 \
  > "$tmp/fetch.out"
verdict "fetch" < "$tmp/fetch.out" || status=1
BENCH_NGINX_DIR=$tmp/nginx bash "$server_sh" stop "$nginx_port" >/dev/null
nginx_port=""

# 2. corio.serve under wrk, in 10 runs; sampled from outside
cat > "$tmp/hello.lua" <<'LUA'
local s = corio.serve{port = 0, handler = function() return "hello world\n" end}
print(s.url)
io.stdout:flush()
s:wait()
LUA
"$bin" "$tmp/hello.lua" > "$tmp/url" 2>/dev/null &
corio_pid=$!
for _ in $(seq 100); do [ -s "$tmp/url" ] && break; sleep 0.1; done
url=$(head -1 "$tmp/url")
serve_sample() {
  local rss fds
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$corio_pid/status")
  fds=$(ls "/proc/$corio_pid/fd" | wc -l)
  echo "sample pct=$1 done=$2 secs=$(( $(date +%s) - t0 )) rss_kb=$rss lua_kb= fds=$fds"
}
t0=$(date +%s)
# wrk runs for a duration, not a count: a first 1 s run measures the
# rate, and each next run lasts what about REQUESTS/10 take at that rate
run_wrk() {
  wrk -t2 -c50 -d"$1"s "$url" > "$tmp/wrk.out" 2>&1
  awk '/requests in/ {print $1}' "$tmp/wrk.out"
}
{
  serve_sample 0 0
  done_n=0 secs=1 next=$((requests / 10))
  while [ "$done_n" -lt "$requests" ]; do
    n=$(run_wrk "$secs")
    [ "$secs" = 1 ] && secs=$(( (requests / 10) / (n > 0 ? n : 1) + 1 ))
    done_n=$((done_n + n))
    while [ "$done_n" -ge "$next" ] && [ "$next" -le "$requests" ]; do
      sleep 1 # the closed connections are gone
      serve_sample $((next * 100 / requests)) "$done_n"
      next=$((next + requests / 10))
    done
  done
} > "$tmp/serve.out"
verdict "serve" < "$tmp/serve.out" || status=1
kill "$corio_pid" && wait "$corio_pid" 2>/dev/null || true
corio_pid=""

# 3. tasks in waves
"$bin" bench/soak.lua tasks "$tasks" 10000 > "$tmp/tasks.out"
verdict "tasks" < "$tmp/tasks.out" || status=1
exit $status
