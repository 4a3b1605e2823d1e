#!/usr/bin/env bash
# fetch_many --redis (issue 18 item 4): a job of N /hello URLs on the
# shared nginx backend (/work/shared/bench/server.sh), drained by 1, 2 and
# 4 workers (each -c C) through a redis-server started here, against
# fetch_many without Redis (-c C) in the same run, REPS rounds, the order
# of the rows rotating per round.  One line per run: workers, seconds
# from the workers' start to the last one's exit, URLs/s, and the Redis
# commands and socket writes (round trips) per URL summed over the
# workers' "redis" summary lines.
# Usage: bash bench/redis_jobs.sh
#   env: N=100000 C=100 REPS=2 PORT=18378 CORIO_BUILD_DIR=build-release
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-/work/shared/bench}
N=${N:-100000} C=${C:-100} REPS=${REPS:-2} PORT=${PORT:-18378}
BUILD=${CORIO_BUILD_DIR:-build-release}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
if [ ! -x "$BUILD/corio" ]; then
  cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$BUILD" -j"$(nproc)" --target corio >&2 || exit 1
fi
RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/corio-redis-bench.XXXXXX")
chmod a+rx "$RESULTS"
export BENCH_NGINX_DIR=$RESULTS/nginx
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
bash "$SHARED/server.sh" start "$PORT" >&2 || exit 1
RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
  --daemonize no >"$RESULTS/redis.log" 2>&1 &
rpid=$!
trap 'kill $rpid; bash "$SHARED/server.sh" stop "$PORT" >&2' EXIT
for _ in $(seq 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
R=redis://127.0.0.1:$RPORT
urls=$RESULTS/urls.txt
for i in $(seq "$N"); do echo "http://127.0.0.1:$PORT/hello?i=$i"; done >"$urls"
tool="$BUILD/corio $root/scripts/fetch_many.lua"

one() { # workers -> a result line
  local w=$1 t0 t1 job=bench$RANDOM$RANDOM pids=() i
  if [ "$w" = 0 ]; then
    t0=$(date +%s.%N)
    $tool "$urls" -c "$C" -o /dev/null 2>"$RESULTS/plain.err"
    t1=$(date +%s.%N)
    python3 -c "d=$t1-$t0; print('plain   0 %.2f s %6.0f URLs/s' % (d, $N/d))"
    return
  fi
  $tool --redis "$R" --job "$job" --enqueue "$urls" 2>"$RESULTS/enq.err" || exit 1
  t0=$(date +%s.%N)
  for ((i = 1; i <= w; i++)); do
    $tool --redis "$R" --job "$job" --work -c "$C" --consumer "w$i" \
      2>"$RESULTS/w$i.err" &
    pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(date +%s.%N)
  local cmds writes
  cmds=$(cat "$RESULTS"/w*.err | grep -o '[0-9]* commands,' | awk '{s+=$1} END {print s}')
  writes=$(cat "$RESULTS"/w*.err | grep -o '[0-9]* writes' | awk '{s+=$1} END {print s}')
  python3 -c "d=$t1-$t0; print('redis   $w %.2f s %6.0f URLs/s  %.2f commands/URL  %.3f writes/URL  enqueue: %s' % (d, $N/d, $cmds/$N, $writes/$N, '$(grep -o 'in [0-9.]* s' "$RESULTS/enq.err")'))"
  redis-cli -p "$RPORT" --scan --pattern "fetch:{$job}:*" | xargs redis-cli -p "$RPORT" del >/dev/null
  rm -f "$RESULTS"/w*.err
}

for ((rep = 1; rep <= REPS; rep++)); do
  order="0 1 2 4"
  [ $((rep % 2)) = 0 ] && order="4 2 1 0"
  for w in $order; do echo "rep$rep $(one "$w")"; done
done
redis-cli -p "$RPORT" info memory | grep -E '^used_memory:' >&2
