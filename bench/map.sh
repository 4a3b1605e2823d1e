#!/usr/bin/env bash
# corio.map and corio.imap against the hand-written worker loop, on the
# shared nginx backend (/work/shared/bench/server.sh), issue 13 item 6:
#   ratio  corio.map (progress on) against bench/fetch.lua's worker loop,
#          N /hello fetches, C at once, REPS runs of each, alternating
#          which goes first; medians and their ratio (goal: >= 0.9)
#   rss    corio.imap over an iterator of URLs, peak RSS (/usr/bin/time)
#          at each size of RSS_NS (goal: 1M within 10 MB of 100k)
# Usage: bash bench/map.sh [ratio|rss|all]
#   env: REPS=5 N=100000 C=100 RSS_NS="100000 1000000" PORT=18377
#        CORIO_BUILD_DIR=build-release (built Release when missing)
#        BENCH_RESULTS=dir (default: a new temp dir; nginx state goes there)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$root/../shared/bench}
[ -f "$SHARED/server.sh" ] || SHARED=/work/shared/bench
what=${1:-all}
REPS=${REPS:-5} N=${N:-100000} C=${C:-100} PORT=${PORT:-18377}
RSS_NS=${RSS_NS:-"100000 1000000"}
BUILD=${CORIO_BUILD_DIR:-build-release}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
url=http://127.0.0.1:$PORT/hello

RESULTS=${BENCH_RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/corio-map.XXXXXX")}
mkdir -p "$RESULTS"
chmod a+rx "$RESULTS"
export BENCH_NGINX_DIR=${BENCH_NGINX_DIR:-$RESULTS/nginx-$PORT} # server.sh keeps its state here

if [ ! -x "$BUILD/corio" ]; then
  echo "building corio in $BUILD" >&2
  cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$BUILD" -j"$(nproc)" --target corio >&2 || exit 1
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

started_here=0
if ! bash "$SHARED/server.sh" status "$PORT" >/dev/null 2>&1; then
  bash "$SHARED/server.sh" start "$PORT" >&2 || exit 1 # never measure a stranger's server
  started_here=1
fi
trap '[ $started_here = 1 ] && bash "$SHARED/server.sh" stop "$PORT" >&2' EXIT

log=$RESULTS/map-$(date +%Y%m%d-%H%M%S).log
run() { # label cmd... -> "label rps rss_kb" on stdout, everything in the log
  local label=$1 out rc line
  shift
  out=$(timeout -k 5 1800 /usr/bin/time -f 'RSS_KB=%M CPU=%U+%S' "$@" 2>&1)
  rc=$?
  printf '### %s rc=%d\n%s\n' "$label" "$rc" "$out" >>"$log"
  line=$(grep '^peer=' <<<"$out" | tail -1)
  local cpu
  cpu=$(grep -o 'CPU=[0-9.+]*' <<<"$out" | tail -1 | cut -d= -f2)
  echo "$label $(grep -o 'rps=[0-9.]*' <<<"$line" | cut -d= -f2)" \
    "$(grep -o 'RSS_KB=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2)" \
    "$(python3 -c "print(round($cpu, 2))") rc=$rc ${line:-NO RESULT}"
}

if [ "$what" = ratio ] || [ "$what" = all ]; then
  rows=$RESULTS/ratio.txt
  : >"$rows"
  for ((rep = 1; rep <= REPS; rep++)); do
    order="loop map"
    [ $((rep % 2)) = 0 ] && order="map loop"
    for p in $order; do
      if [ $p = loop ]; then
        r=$(run loop "$BUILD/corio" "$root/bench/fetch.lua" "$url" "$N" "$C")
      else
        r=$(run map "$BUILD/corio" "$root/bench/map.lua" map "$url" "$N" "$C")
      fi
      echo "rep$rep $r" | tee -a "$rows" >&2
      sleep 1
    done
  done
  /usr/bin/python3 - "$rows" <<'PYEOF'
import sys, statistics as st
rps = {"loop": [], "map": []}
cpu = {"loop": [], "map": []}
for line in open(sys.argv[1]):
    f = line.split()  # rep label rps rss_kb cpu_s rc=...
    if len(f) >= 5 and f[1] in rps and f[2]:
        rps[f[1]].append(float(f[2]))
        cpu[f[1]].append(float(f[4]))
m = {k: st.median(v) for k, v in rps.items() if v}
c = {k: st.median(v) for k, v in cpu.items() if v}
print(f"worker loop (bench/fetch.lua): median {m['loop']:.0f} req/s, CPU {c['loop']:.2f} s; req/s {rps['loop']}")
print(f"corio.map, progress on:        median {m['map']:.0f} req/s, CPU {c['map']:.2f} s; req/s {rps['map']}")
print(f"ratio map/loop: {m['map'] / m['loop']:.3f} in req/s (goal >= 0.9), "
      f"{c['loop'] / c['map']:.3f} in CPU time (loop's / map's)")
PYEOF
fi

if [ "$what" = rss ] || [ "$what" = all ]; then
  for n in $RSS_NS; do
    r=$(run "imap-$n" "$BUILD/corio" "$root/bench/map.lua" imap "$url" "$n" "$C")
    echo "$r" >&2
    read -r _ rps kb _ <<<"$r"
    kb=${kb:-0}
    echo "imap n=$n c=$C rps=$rps peak_rss=${kb}KB ($((kb / 1024)) MB)"
  done
fi
echo "log: $log"
