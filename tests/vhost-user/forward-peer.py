#!/usr/bin/env python3
"""Host side of the smoke test's forwarding checks (qemu-smoke.sh).

Serves BASE_7000 (answers "pong" to a line), and keeps connecting to BASE
with "CONNECT 5000": each time the guest accepts (OK PORT), sends a line,
checks the echo, and records it in DONE. Runs until killed.
    forward-peer.py BASE DONE
"""
import os, socket, sys, threading, time

base, done = sys.argv[1], sys.argv[2]

def serve_7000():
    path = base + "_7000"
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(4)
    while True:
        c, _ = s.accept()
        f = c.makefile("rwb")
        if f.readline() == b"ping\n":
            f.write(b"pong\n")
            f.flush()
        c.close()

threading.Thread(target=serve_7000, daemon=True).start()
while True:
    time.sleep(0.5)
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(10)
        c.connect(base)
        c.sendall(b"CONNECT 5000\n")
        f = c.makefile("rwb")
        ok = f.readline()
        if not ok.startswith(b"OK "):
            c.close()
            continue
        f.write(b"hello guest\n")
        f.flush()
        if f.readline() == b"hello guest\n":
            with open(done, "a") as out:
                out.write("echoed via " + ok.decode().strip() + "\n")
        c.close()
    except OSError:
        pass
