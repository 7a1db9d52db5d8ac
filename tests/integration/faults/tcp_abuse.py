#!/usr/bin/env python3
"""tcp_abuse.py - abuses heprouter's TCP listener, for test_faults.sh.

    tcp_abuse.py PORT MAX_CONNECTIONS IDLE_S MAX_FRAME

Prints one JSON line per check, each bounded in time:
  over_limit  MAX_CONNECTIONS + 4 connections held open: how many heprouter
              closed at once (refused over limits.tcp_max_connections)
  half_frame  the first half of a HEP3 header, then silence: seconds until
              heprouter closed it
  big_length  a HEP3 header whose length is MAX_FRAME + 1: closed or not
  slow_gap    one byte every 1.5 * IDLE_S: seconds until closed
  slow_fast   one byte every IDLE_S / 2 for 3 * IDLE_S: still open or not
"""
import json
import os
import socket
import struct
import sys
import time

# closed_within: the helper the other tests use (tests/integration/hepreplay.py)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import hepreplay as hr  # noqa: E402

port, max_conns, idle, max_frame = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])


def connect():
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def report(check, **kv):
    print(json.dumps(dict(check=check, **kv)), flush=True)


# over_limit: the extra connections are accepted by the kernel, then closed
held = [connect() for _ in range(max_conns + 4)]
time.sleep(0.5)
closed = sum(1 for s in held if hr.closed_within(s, 0.05) is not None)
report("over_limit", opened=len(held), closed=closed)
for s in held:
    s.close()
time.sleep(0.3)

s = connect()
s.sendall(b"HEP")
t = hr.closed_within(s, idle * 4)
report("half_frame", closed_after=t)
s.close()

s = connect()
s.sendall(b"HEP3" + struct.pack(">H", min(max_frame + 1, 65535)))
t = hr.closed_within(s, idle * 4)
report("big_length", closed_after=t)
s.close()

s = connect()
frame = b"HEP3" + struct.pack(">H", 1000) + b"\x00" * 994     # never completed here
t, t0 = None, time.monotonic()
try:
    for b in frame:
        s.sendall(bytes([b]))
        t = hr.closed_within(s, idle * 1.5)
        if t is not None:
            t = time.monotonic() - t0
            break
except (ConnectionResetError, BrokenPipeError):
    t = time.monotonic() - t0
report("slow_gap", closed_after=t)
s.close()

s = connect()
open_ = True
t0 = time.monotonic()
try:
    for b in frame:
        if time.monotonic() - t0 >= idle * 3:
            break
        s.sendall(bytes([b]))
        if hr.closed_within(s, idle / 2) is not None:
            open_ = False
            break
except (ConnectionResetError, BrokenPipeError):
    open_ = False
report("slow_fast", seconds=round(time.monotonic() - t0, 2), still_open=open_)
s.close()
