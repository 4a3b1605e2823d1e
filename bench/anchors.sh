#!/usr/bin/env bash
# corio against the peers of shared/bench on the anchor scenarios S1-S4 of
# shared/bench/run_anchors.sh: every peer (corio included) runs each
# scenario REPS times, in a rotating order, one at a time; the table gives
# the medians, with peak RSS from /usr/bin/time (largest process).
#
# Usage: bash bench/anchors.sh
#   env: REPS=3  SCEN="S1 S2 S3 S4"  PORT=18093  WRK_SECS=5
#        PEERS="corio aiohttp node_fetch curl_parallel curl_multi curl_uv
#               cqueues_http wrk"   (also: threads, corio_c = the C core
#               with no Lua, bench/fetch_c.c, curl_keep = raw libcurl
#               collecting each body, bench/curl_keep.c, python_corio = asyncio with
#               the Python binding's afetch over the build's libcorio.so,
#               bench/python_corio.py, and corio@DIR = the corio
#               executable of another build, e.g. of an older commit, to
#               compare two builds in the same run; python_corio@DIR: the
#               same for the Python binding, DIR a source tree whose
#               build/runtime/libcorio.so is built)
#        BENCH_RESULTS=dir (default: a new temp dir)  CORIO_BUILD_DIR=build
#        SHARED_BENCH=/work/shared/bench
#
# The shared folder is only read: its peer scripts and server.sh are used
# by path; results and the nginx state go to BENCH_RESULTS.  corio is built
# (Release) in CORIO_BUILD_DIR when its executable is missing.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$root/../shared/bench}
[ -d "$SHARED/peers" ] || SHARED=/work/shared/bench
REPS=${REPS:-3} PORT=${PORT:-18093} WRK_SECS=${WRK_SECS:-5}
SCEN=${SCEN:-"S1 S2 S3 S4"}
PEERS=${PEERS:-"corio aiohttp node_fetch curl_parallel curl_multi curl_uv cqueues_http wrk"}
BUILD=${CORIO_BUILD_DIR:-build}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
PY=/usr/bin/python3
base=http://127.0.0.1:$PORT

RESULTS=${BENCH_RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/corio-anchors.XXXXXX")}
mkdir -p "$RESULTS"
chmod a+rx "$RESULTS" # nginx's workers (not root) read the files below
export BENCH_NGINX_DIR=$RESULTS/nginx-$PORT # server.sh keeps its state here

# corio itself: build once if needed (optimised, no sanitizer)
if [ ! -x "$BUILD/corio" ]; then
  echo "building corio in $BUILD" >&2
  cmake -S "$root" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
    cmake --build "$BUILD" -j"$(nproc)" --target corio >&2 || exit 1
fi
if [[ " $PEERS " == *" python_corio "* ]] && [ ! -f "$BUILD/runtime/libcorio.so" ]; then
  cmake --build "$BUILD" -j"$(nproc)" --target corio_shared >&2 || exit 1
fi
if [[ " $PEERS " == *" corio_c "* ]] && [ ! -x "$BUILD/bench/fetch_c_bench" ]; then
  cmake --build "$BUILD" -j"$(nproc)" --target fetch_c_bench >&2 || exit 1
fi
if [[ " $PEERS " == *" curl_keep "* ]] && [ ! -x "$BUILD/bench/curl_keep_bench" ]; then
  cmake --build "$BUILD" -j"$(nproc)" --target curl_keep_bench >&2 || exit 1
fi

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true # S3 needs >10000 fds
[ "$(ulimit -n)" -ge 12000 ] || echo "warning: ulimit -n is $(ulimit -n); S3 (C=10000) may fail" >&2

# scenario -> "path N C timeout_s", as in run_anchors.sh
declare -A S=(
  [S1]="/hello 20000 100 120"
  [S2]="/delay/1000 1000 1000 120"
  [S3]="/delay/1000 10000 10000 180"
  [S4]="/bytes/100k 2000 50 120"
)
peer_cmd() { # peer url n c
  local P=$SHARED/peers
  case $1 in
  corio) echo "$BUILD/corio $root/bench/fetch.lua $2 $3 $4" ;;
  corio@*) echo "${1#corio@}/corio $root/bench/fetch.lua $2 $3 $4" ;;
  corio_c) echo "$BUILD/bench/fetch_c_bench $2 $3 $4" ;;
  curl_keep) echo "$BUILD/bench/curl_keep_bench $2 $3 $4" ;;
  aiohttp) echo "$PY $P/aiohttp_peer.py $2 $3 $4" ;;
  python_corio) echo "env CORIO_LIBRARY=$BUILD/runtime/libcorio.so $PY $root/bench/python_corio.py $2 $3 $4" ;;
  python_corio@*) echo "env CORIO_LIBRARY=${1#python_corio@}/build/runtime/libcorio.so $PY ${1#python_corio@}/bench/python_corio.py $2 $3 $4" ;;
  threads) echo "$PY $P/threads.py $2 $3 $4" ;;
  node_fetch) echo "node $P/node_fetch.mjs $2 $3 $4" ;;
  curl_parallel) echo "bash $P/curl_parallel.sh $2 $3 $4" ;;
  curl_multi) echo "bash $P/curl_multi.sh $2 $3 $4" ;;
  curl_uv) echo "bash $P/curl_uv.sh $2 $3 $4" ;;
  cqueues_http) echo "lua5.4 $P/cqueues_http.lua $2 $3 $4" ;;
  wrk) echo "bash $P/wrk.sh $2 $3 $4 $WRK_SECS" ;;
  *)
    echo "unknown peer $1" >&2
    return 1
    ;;
  esac
}

started_here=0
if ! bash "$SHARED/server.sh" status "$PORT" >/dev/null 2>&1; then
  bash "$SHARED/server.sh" start "$PORT" >&2 && started_here=1
fi
trap '[ $started_here = 1 ] && bash "$SHARED/server.sh" stop "$PORT" >&2' EXIT

raw=$RESULTS/anchors-$(date +%Y%m%d-%H%M%S).tsv
log=${raw%.tsv}.log
printf 'scen\trep\tpeer\tn\tc\tok\tfail\tsecs\trps\trss_kb\trc\n' >"$raw"
read -ra plist <<<"$PEERS"
np=${#plist[@]}

for sc in $SCEN; do
  read -r path n c tmo <<<"${S[$sc]}"
  for ((rep = 1; rep <= REPS; rep++)); do
    for ((k = 0; k < np; k++)); do
      p=${plist[$(((k + rep - 1) % np))]} # rotate the order each repetition
      cmd=$(peer_cmd "$p" "$base$path" "$n" "$c") || continue
      out=$(timeout -k 5 "$tmo" /usr/bin/time -f 'RSS_KB=%M' $cmd 2>&1)
      rc=$?
      printf '### %s rep%d %s rc=%d\n%s\n' "$sc" "$rep" "$p" "$rc" "$out" >>"$log"
      line=$(grep '^peer=' <<<"$out" | tail -1)
      rss=$(grep -o 'RSS_KB=[0-9]*' <<<"$out" | tail -1 | cut -d= -f2)
      get() { grep -o "$1=[0-9.]*" <<<"$line" | cut -d= -f2; }
      printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n' "$sc" "$rep" "$p" \
        "$(get n)" "$c" "$(get ok)" "$(get fail)" "$(get secs)" "$(get rps)" \
        "${rss:-}" "$rc" >>"$raw"
      echo "$sc rep$rep $p rc=$rc ${line:-NO RESULT} rss_kb=${rss:-?}" >&2
      sleep 1
    done
  done
done

# medians per scenario and peer, then corio's ratios to the C ceilings
$PY - "$raw" <<'PYEOF'
import csv, sys, statistics as st
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
print(f"\nraw: {sys.argv[1]}")
print(f"{'scen':4} {'peer':15} {'runs':>4} {'ok/n (worst)':>14} {'secs_med':>9} "
      f"{'rps_med':>10} {'rss_MB_med':>10}  notes")
order = []
for r in rows:
    if r["peer"] not in order: order.append(r["peer"])
key = lambda r: (r["scen"], r["peer"])
meds = {}
for k in sorted({key(r) for r in rows}, key=lambda k: (k[0], order.index(k[1]))):
    rs = [r for r in rows if key(r) == k]
    good = [r for r in rs if r["secs"]]
    def med(f):
        v = [float(r[f]) for r in good if r[f]]
        return st.median(v) if v else float("nan")
    worst = min(rs, key=lambda r: int(r["ok"] or 0))
    notes = ",".join(sorted({f"rc={r['rc']}" for r in rs if r["rc"] != "0"}))
    meds[k] = (med("rps"), med("rss_kb") / 1024, med("secs"))
    print(f"{k[0]:4} {k[1]:15} {len(good):>4} "
          f"{(worst['ok'] or '-') + '/' + (worst['n'] or '-'):>14} "
          f"{meds[k][2]:9.3f} {meds[k][0]:10.1f} {meds[k][1]:10.1f}  {notes}")
print()
for sc in sorted({r["scen"] for r in rows}):
    if (sc, "corio") not in meds: continue
    rps, rss, secs = meds[(sc, "corio")]
    parts = [f"{sc}: corio {rps:.0f} req/s, {secs:.3f} s, {rss:.1f} MB"]
    for ref in ("curl_uv", "curl_multi", "corio_c"):
        if (sc, ref) in meds and meds[(sc, ref)][0] > 0:
            parts.append(f"{rps / meds[(sc, ref)][0]:.2f}x {ref}")
    others = [m[1] for (s, p), m in meds.items() if s == sc and p != "corio" and m[1] == m[1]]
    if others: parts.append(f"rss vs lowest peer {min(others):.1f} MB")
    print(", ".join(parts))
PYEOF
