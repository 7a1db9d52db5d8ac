#!/usr/bin/env python3
"""free_ports.py N: print N port bases p, one a line, such that p..p+7 are
free on 127.0.0.1 for both UDP and TCP.  A sipp instance uses p for SIP,
p+1 for its control socket, and from p+2 on four media ports (audio RTP and
RTCP, video RTP and RTCP): six in all, so each base owns an aligned block of
eight and no two instances' ports overlap.  Another program may still take
a port before it is used: the caller retries on a bind failure."""
import random
import socket
import sys

BLOCK = 8                               # ports each base owns (sipp uses six)

n = int(sys.argv[1])
got, held = [], []
rnd = random.Random()
while len(got) < n:
    p = rnd.randrange(21000, 32000, BLOCK)   # below the ephemeral range, apart from lib.sh's ports
    socks = []
    try:
        for q in range(p, p + BLOCK):
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
