#!/usr/bin/env bash
# Installs the Debian packages corio builds, tests and benchmarks with, if
# any is missing.  Needs root (or sudo) on a fresh Debian 12 machine.
set -euo pipefail
pkgs=(build-essential cmake pkg-config liblua5.4-dev lua5.4 libuv1-dev
      libcurl4-openssl-dev node-llhttp lua-busted lua-cjson
      libhiredis-dev redis-server  # the Redis client and its tests
      nginx libnginx-mod-http-echo curl wrk time valgrind python3 python3-pytest iproute2
      luarocks man-db  # luarocks: tests/install; man-db: man -l of corio.1
      bsdutils  # bsdutils: `script`, a pseudo-terminal for progress_spec
      clang libfuzzer-14-dev)  # tests/fuzz (clang is clang 14 on Debian 12)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
