"""A TCP proxy that loses one reply, for the specs: a client that talks
to Redis through it sees a command executed and its reply never arrive.

    python3 drop_reply_proxy.py UPSTREAM_PORT MARKER

It listens on a free loopback port (printed as the first line of stdout)
and forwards each connection to 127.0.0.1:UPSTREAM_PORT.  Once a request
carrying MARKER has been forwarded, the next data from upstream (replies of
commands Redis ran, that one or an earlier one of the pipeline) is not
forwarded: the proxy prints "dropped" and closes that connection instead.
Connections made later are forwarded whole.  It exits after 120 s without
a new connection; the spec stops it by PID before that.
"""
import socket
import sys
import threading

lock = threading.Lock()
state = {"armed": False, "dropped": False}


def close_both(a, b):
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        s.close()


def requests(client, up, marker):
    tail = b""
    try:
        while True:
            data = client.recv(65536)
            if not data:
                break
            up.sendall(data)
            seen = tail + data  # the marker may straddle two reads
            with lock:
                if not state["dropped"] and marker in seen:
                    state["armed"] = True
            tail = seen[-len(marker):]
    except OSError:
        pass
    close_both(client, up)


def replies(up, client):
    try:
        while True:
            data = up.recv(65536)
            if not data:
                break
            with lock:
                drop = state["armed"] and not state["dropped"]
                if drop:
                    state["armed"], state["dropped"] = False, True
            if drop:
                print("dropped", flush=True)
                break
            client.sendall(data)
    except OSError:
        pass
    close_both(client, up)


def main():
    upstream, marker = int(sys.argv[1]), sys.argv[2].encode()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(120)
    print(listener.getsockname()[1], flush=True)
    while True:
        try:
            client, _ = listener.accept()
        except socket.timeout:
            return
        up = socket.create_connection(("127.0.0.1", upstream))
        threading.Thread(target=requests, args=(client, up, marker), daemon=True).start()
        threading.Thread(target=replies, args=(up, client), daemon=True).start()


main()
