#!/usr/bin/env bash
# The main job: installs what is missing, builds corio, runs the demo.
# (The article's experiments replace the demo as they land.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
cmake -S . -B build -DCORIO_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)" --target corio corio_module >/dev/null
./build/corio scripts/demo.lua "$@"
