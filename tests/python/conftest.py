"""Fixtures of the Python binding's tests: libcorio.so from the build tree
(CORIO_LIBRARY, else $CORIO_BUILD_DIR/runtime/libcorio.so), a private
nginx on loopback (tests/support/nginx.sh, stopped by PID), and raw
socket servers in threads for the answers nginx cannot give."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if not os.environ.get("CORIO_LIBRARY"):
    build = os.environ.get("CORIO_BUILD_DIR", "build")
    os.environ["CORIO_LIBRARY"] = os.path.join(
        ROOT if not os.path.isabs(build) else "", build, "runtime",
        "libcorio.so")
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import pytest  # noqa: E402

import corio  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def base():
    port = free_port()
    d = tempfile.mkdtemp(prefix="corio-py-nginx.")
    os.chmod(d, 0o755)  # nginx's workers read the files
    script = os.path.join(ROOT, "tests", "support", "nginx.sh")
    out = subprocess.run(["bash", script, "start", str(port), d],
                         capture_output=True, text=True,
                         env=dict(os.environ, NGINX_OWNER=str(os.getpid())))
    assert out.returncode == 0, out.stderr + out.stdout
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        subprocess.run(["bash", script, "stop", str(port), d],
                       capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def rt():
    r = corio.Runtime()
    try:
        yield r
    finally:
        r.close()


class RawServer:
    """Accepts connections on 127.0.0.1 and runs handler(conn) for each in
    a thread of its own; `events` records what the handlers saw."""

    def __init__(self, handler):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.handler = handler
        self.events = []
        self.cond = threading.Condition()
        self.stopping = False
        self.threads = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            t = threading.Thread(target=self._serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, c):
        try:
            c.settimeout(20)
            self.handler(self, c)
        except OSError:
            pass
        finally:
            c.close()

    def record(self, ev):
        with self.cond:
            self.events.append(ev)
            self.cond.notify_all()

    def wait_for(self, ev, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while ev not in self.events:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def close(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()
        for t in self.threads:
            t.join(5)


def read_request(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data


@pytest.fixture
def raw():
    servers = []

    def make(handler):
        s = RawServer(handler)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def open_fds():
    return len(os.listdir("/proc/self/fd"))
