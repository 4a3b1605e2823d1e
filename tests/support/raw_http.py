#!/usr/bin/env python3
"""Send raw bytes to an HTTP server and report what came back.

    raw_http.py PORT FILE [IDLE]

Sends FILE's bytes at once to 127.0.0.1:PORT, then reads until the server
closes or IDLE seconds (default 1.5) pass without a byte (10 s at most in
all).  Prints one line: the status codes of the responses in order, then
"closed" (the server closed: FIN or RST) or "open", e.g. "200 400 closed".
Interim responses (1xx) are listed too."""
import re
import socket
import sys
import time

port, name = int(sys.argv[1]), sys.argv[2]
idle = float(sys.argv[3]) if len(sys.argv) > 3 else 1.5
data = open(name, "rb").read()
s = socket.create_connection(("127.0.0.1", port), timeout=10)
try:
    s.sendall(data)
except OSError:
    pass  # the server may close before taking everything
out, state, end = b"", "open", time.time() + 10
s.settimeout(idle)
while time.time() < end:
    try:
        d = s.recv(65536)
    except socket.timeout:
        break
    except OSError:  # a reset
        state = "closed"
        break
    if not d:
        state = "closed"
        break
    out += d
s.close()
codes = re.findall(rb"HTTP/1\.[01] (\d{3}) ", out)
print(" ".join(c.decode() for c in codes + [state.encode()]))
