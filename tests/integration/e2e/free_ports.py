#!/usr/bin/env python3
"""free_ports.py N: print N port bases p, one a line, such that p..p+3 are
free on 127.0.0.1 for both UDP and TCP (a sipp instance uses p for SIP, p+1
for its control socket, p+2 and p+3 for media).  Another program may still
take a port before it is used: the caller retries on a bind failure."""
import random
import socket
import sys

n = int(sys.argv[1])
got, held = [], []
rnd = random.Random()
while len(got) < n:
    p = rnd.randrange(21000, 32000, 4)   # below the ephemeral range, apart from lib.sh's ports
    socks = []
    try:
        for q in range(p, p + 4):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.0.1", q))
    except OSError:
        for s in socks:
            s.close()
        continue
    held.extend(socks)
    got.append(p)
for s in held:
    s.close()
print("\n".join(str(p) for p in got))
