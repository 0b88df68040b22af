#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 in front of a real endpoint (Azurite) that
misbehaves on request, for the tests of what rpfs does when its vault's
endpoint does.

    fault_proxy.py LISTEN_PORT UPSTREAM_PORT MODE_FILE [LIFETIME_SECONDS]

The mode is the first word of MODE_FILE, read again for every piece of data
and every connection:
    pass     forward both ways
    hang     accept connections and requests, never answer (a stopped server)
    half     answer with the response's headers and half of what follows
             them, then nothing more (a body that stops half-way)
    refuse   close every connection and stop listening (connection refused)
The proxy stops by itself after LIFETIME_SECONDS (default 600).
"""
import os
import socket
import sys
import threading
import time

LISTEN, UPSTREAM, MODE_FILE = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
LIFETIME = float(sys.argv[4]) if len(sys.argv) > 4 else 600.0
conns = []
lock = threading.Lock()


def mode():
    try:
        with open(MODE_FILE) as f:
            return (f.read().split() or ["pass"])[0]
    except OSError:
        return "pass"


def stall(*socks):
    """Hold the connection open, sending nothing, until the mode changes to
    refuse (then close) or the proxy ends."""
    while mode() != "refuse":
        time.sleep(0.2)
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def pump(src, dst, response):
    seen_headers = False
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            m = mode()
            if m == "refuse":
                break
            if m == "hang":
                stall(src, dst)
                return
            if m == "half" and response:
                if not seen_headers and b"\r\n\r\n" in data:
                    cut = data.index(b"\r\n\r\n") + 4
                    data = data[:cut + (len(data) - cut) // 2]
                else:
                    data = data[:len(data) // 2]
                dst.sendall(data)
                stall(src, dst)
                return
            if response and b"\r\n\r\n" in data:
                seen_headers = True
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


def serve(client):
    if mode() == "hang":
        stall(client)
        return
    try:
        up = socket.create_connection(("127.0.0.1", UPSTREAM))
    except OSError:
        client.close()
        return
    with lock:
        conns.extend([client, up])
    threading.Thread(target=pump, args=(up, client, True), daemon=True).start()
    pump(client, up, False)


def listener():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", LISTEN))
    s.listen(64)
    s.settimeout(0.2)
    return s


def main():
    end = time.monotonic() + LIFETIME
    s = listener()
    while time.monotonic() < end:
        if mode() == "refuse":
            if s is not None:
                s.close()
                s = None
                with lock:
                    for c in conns:
                        try:
                            c.close()
                        except OSError:
                            pass
                    conns.clear()
            time.sleep(0.1)
            continue
        if s is None:
            s = listener()
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()
    os._exit(0)


main()
