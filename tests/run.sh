#!/usr/bin/env bash
# The one test command: installs what is missing (Debian 12, as root),
# builds, runs the C tests through ctest, the Lua specs through busted
# under the corio executable, and the Python binding's tests through pytest
# (Debian's /usr/bin/python3, over the build's libcorio.so).
#   bash tests/run.sh              normal build in build/
#   bash tests/run.sh --sanitize   AddressSanitizer + UBSan build in build-asan/
# CORIO_BUILD_DIR overrides the build directory (parallel checkouts, helpers).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${CORIO_BUILD_DIR:-build}
flags=(-DCORIO_WERROR=ON)
pyenv=()
if [ "${1:-}" = "--sanitize" ]; then
  build=${CORIO_BUILD_DIR:-build-asan}
  flags+=(-DCORIO_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
  # lua5.4 itself is not sanitized: preload the runtimes for corio.so
  export CORIO_LUA="env LD_PRELOAD=$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so) ASAN_OPTIONS=detect_leaks=0 lua5.4"
  # python3 is not sanitized either: the same preload for libcorio.so
  pyenv=(LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)" ASAN_OPTIONS=detect_leaks=0)
fi
bash tools/deps.sh
cmake -S . -B "$build" "${flags[@]}" >/dev/null
cmake --build "$build" -j"$(nproc)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
(cd "$build" && ctest --output-on-failure)
CORIO_BIN="$build/corio" "$build/corio" /usr/bin/busted --ignore-lua -o utfTerminal tests/lua
lib=$build/runtime/libcorio.so
case $lib in /*) ;; *) lib=$PWD/$lib ;; esac
env "${pyenv[@]}" CORIO_LIBRARY="$lib" /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/python
