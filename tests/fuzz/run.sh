#!/usr/bin/env bash
# Builds every libFuzzer target (clang, -DCORIO_FUZZ=ON: the whole build
# instrumented with ASan + UBSan) and runs each for SECONDS (default 30).
#   bash tests/fuzz/run.sh [SECONDS]
# FUZZ_BUILD_DIR overrides the build directory (default build-fuzz).
# FUZZ_TARGETS="url copy" runs only those.  Each target starts from its seeds
# (tests/fuzz/corpus/NAME) plus what earlier runs found ($build/corpus/NAME);
# a crash, a leak or a sanitizer report leaves the input in
# $build/artifacts/ and makes the script exit 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-30}
build=${FUZZ_BUILD_DIR:-build-fuzz}
CC=${FUZZ_CC:-clang} cmake -S . -B "$build" -DCORIO_FUZZ=ON -DCORIO_BUILD_TESTS=OFF \
  -DCORIO_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$build/artifacts" "$build/logs"
failed=()
for exe in "$build"/tests/fuzz/fuzz_*; do
  [ -x "$exe" ] || continue
  name=${exe##*/fuzz_}
  if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $name "* ]]; then
    continue
  fi
  seeds=tests/fuzz/corpus/$name
  work=$build/corpus/$name
  mkdir -p "$work" "$seeds"
  dict=()
  [ -f "tests/fuzz/$name.dict" ] && dict=(-dict="tests/fuzz/$name.dict")
  log=$build/logs/$name.log
  echo "== fuzz_$name for ${seconds}s"
  if "$exe" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
      -artifact_prefix="$build/artifacts/$name-" "${dict[@]}" "$work" "$seeds" \
      >"$log" 2>&1; then
    # the last status line: runs, coverage, corpus size, execs/s
    grep -E "^#[0-9]+" "$log" | tail -1 || true
    grep -E "stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" "$log" || true
  else
    echo "fuzz_$name FAILED (log: $log)"
    grep -E "ERROR|SUMMARY|runtime error|check failed|Test unit written" "$log" | head -20 || true
    failed+=("$name")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failures in ${failed[*]}"
  exit 1
fi
echo "fuzz: every target clean"
