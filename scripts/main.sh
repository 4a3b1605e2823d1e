#!/usr/bin/env bash
# The main job: installs what is missing, builds corio, then runs the
# article's experiments (scripts/NN_*.lua) in order against corio's
# embedded backend, and says where the charts are.
#   bash scripts/main.sh                  short latency (0.2 s): about a minute
#   bash scripts/main.sh --latency 1      the article's one-second backend
#   bash scripts/main.sh --url URL        a backend of your own instead
#   bash scripts/main.sh --out DIR        where the charts go (default: results)
set -euo pipefail
cd "$(dirname "$0")/.."
latency=0.2 out=results url=()
usage() { echo "usage: bash scripts/main.sh [--latency S] [--out DIR] [--url URL]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --latency) [ $# -ge 2 ] || usage; latency=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out=$2; shift 2 ;;
    --url) [ $# -ge 2 ] || usage; url=(--url "$2"); shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown option '$1'" >&2; usage ;;
  esac
done
[[ $latency =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "bad --latency '$latency'" >&2; usage; }

bash tools/deps.sh
cmake -S . -B build -DCORIO_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)" --target corio corio_module >/dev/null
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export CORIO_BIN=$PWD/build/corio

start=$(date +%s)
for script in scripts/[0-9][0-9]_*.lua; do
  name=$(basename "$script" .lua)
  args=()
  case $name in
    0[1-3]_*) ;;
    10_*|11_*) args=(--latency "$latency" --out "$out" "${url[@]}") ;;
    *) args=(--latency "$latency" "${url[@]}") ;;
  esac
  # the article's lesson in one look: blocking calls run one after
  # another (07), awaits overlap (09)
  trace=()
  case $name in
    07_*) mkdir -p "$out"; trace=(--timeline "$out/timeline_blocking.svg") ;;
    09_*) mkdir -p "$out"; trace=(--timeline "$out/timeline_async.svg") ;;
  esac
  echo
  echo "=== $name ${args[*]}"
  "$CORIO_BIN" "${trace[@]}" "$script" "${args[@]}"
done
echo
echo "All experiments done in $(( $(date +%s) - start )) s (backend latency $latency s)."
case $out in /*) ;; *) out=$PWD/$out ;; esac
echo "Charts: $out/comparison.svg (the four models), $out/scaling.svg (seconds against tasks),"
echo "        $out/timeline_blocking.svg and $out/timeline_async.svg (tasks over time, 07 and 09)"
