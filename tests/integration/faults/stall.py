#!/usr/bin/env python3
"""stall.py - a TCP peer that accepts and never reads, for test_faults.sh.

    stall.py READY_FILE SECONDS

Listens on 127.0.0.1 (port 0), writes "listening tcp:127.0.0.1:PORT" to
READY_FILE, accepts every connection, reads nothing, exits after SECONDS.
Its receive buffer is kept small so that the sender's queue fills soon.
"""
import os
import select
import socket
import sys
import time

ready, seconds = sys.argv[1], float(sys.argv[2])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
with open(ready + ".tmp", "w") as f:
    f.write("listening tcp:127.0.0.1:%d\n" % srv.getsockname()[1])
os.rename(ready + ".tmp", ready)
held, end = [], time.monotonic() + seconds
while time.monotonic() < end:
    if select.select([srv], [], [], 0.2)[0]:
        held.append(srv.accept()[0])
