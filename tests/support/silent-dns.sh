#!/usr/bin/env bash
# Run a command where DNS never answers: a private network namespace (only
# loopback) and mount namespace whose /etc/resolv.conf names 127.0.0.1,
# where a UDP socket takes every query and answers none.  Nothing outside
# the namespaces changes.  docs/reliability.md fault 3.
#
# Usage: unshare -rnm bash tests/support/silent-dns.sh COMMAND [ARGS...]
set -euo pipefail
ip link set lo up
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
echo "nameserver 127.0.0.1" > "$conf"
mount --bind "$conf" /etc/resolv.conf
python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
time.sleep(60)' &
sink=$!
# the command's status, after stopping the sink we started (by PID)
for _ in $(seq 50); do ss -lun 'sport = :53' | grep -q 127.0.0.1 && break; sleep 0.1; done
set +e
"$@"
rc=$?
kill "$sink"
exit $rc
