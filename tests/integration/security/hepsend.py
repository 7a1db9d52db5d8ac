#!/usr/bin/env python3
"""hepsend.py - sends labelled HEP packets from a chosen loopback source, for
test_security.sh.

    hepsend.py [--bind ADDR] [--delay-ms N] [--wait-close S] [--connections N]
               udp|tcp:HOST:PORT [@ADDR] GROUP...

HOST and ADDR may be IPv6 (the target then udp:[::1]:PORT, the source ::1).

GROUP is LABEL:COUNT[:OPTION]..., COUNT packets whose SIP Call-IDs are
LABEL-1@sec.test .. LABEL-COUNT@sec.test (the checker counts a sink's
packets by label).  Options:
  key=TEXT   chunk 0x000e (auth key) = TEXT; without it: no auth key chunk
  cid=N      chunk 0x000c (capture id, u32) = N; default 1, as Kamailio sends
  nocid      no capture id chunk
  v2         a HEPv2 packet (no chunks, so no key; capture id in the header)
  v1         a HEPv1 packet (no key, no capture id)

The socket is bound to ADDR (default 127.0.0.1, port 0) before it sends, so
a sender from 127.0.0.2 really comes from 127.0.0.2.  UDP: one datagram per
packet; an @ADDR argument sends the groups after it from a new socket bound
to ADDR (several sources, one Python start).  TCP: every group on one
connection, in order; then, without --wait-close, the write side is shut
and the peer's close awaited (it reads everything first); with
--wait-close S the connection stays open and the script waits up to S
seconds for the peer to close it (as heprouter does at accept to a source
it does not allow).  --connections N: TCP, the same thing N times, one
connection after the other.

check.py serve imports this file and calls run(); a usage error raises
UsageError there (exit 2 here).

Prints one JSON line: {"sent": N, "local": "ADDR:PORT" (the last socket's),
"closed_by_peer": true|false (every connection), "closed_after": seconds|null
(the longest), "send_error": text|null}.
"""
import json
import os
import re
import socket
import struct
import sys
import time

# the HEP builders the other tests use (tests/integration/hepreplay.py)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import hepreplay as hr  # noqa: E402

SIP_SRC = ("127.0.0.1", 5060)
SIP_DST = ("127.0.0.1", 5080)


class UsageError(Exception):
    pass


def usage(msg):
    raise UsageError("hepsend.py: %s" % msg)


def sip_options(call_id):
    return ("OPTIONS sip:probe@127.0.0.1:5080 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-%s\r\n"
            "From: <sip:sec@heprouter.test>;tag=sec1\r\n"
            "To: <sip:probe@heprouter.test>\r\n"
            "Call-ID: %s\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n" % (call_id.split("@")[0], call_id)).encode()


def hep3(call_id, key, cid):
    now = time.time()
    chunks = hr.addr_chunks(SIP_SRC, SIP_DST) + [
        hr.chunk(hr.CH_TS_SEC, struct.pack("!I", int(now))),
        hr.chunk(hr.CH_TS_USEC, struct.pack("!I", int((now % 1) * 1e6))),
        hr.chunk(hr.CH_PROTO, b"\x01"),
    ]
    if cid is not None:
        chunks.append(hr.chunk(hr.CH_CAPTURE, struct.pack("!I", cid)))
    if key is not None:
        chunks.append(hr.chunk(hr.CH_AUTH_KEY, key.encode()))
    chunks.append(hr.chunk(hr.CH_PAYLOAD, sip_options(call_id)))
    return hr.hep3(chunks)


def hep12(version, call_id, cid):
    head = struct.pack("!BBBBHH", version, 16, 2, 17, SIP_SRC[1], SIP_DST[1])
    head += socket.inet_aton(SIP_SRC[0]) + socket.inet_aton(SIP_DST[0])
    if version == 2:
        now = time.time()
        head += struct.pack("<IIHH", int(now), int((now % 1) * 1e6), cid & 0xffff, 0)
    return head + sip_options(call_id)


def packets(group):
    parts = group.split(":")
    if len(parts) < 2 or not parts[1].isdigit():
        usage("a group is LABEL:COUNT[:OPTION]..., got %r" % group)
    label, count = parts[0], int(parts[1])
    key, cid, version = None, 1, 3
    for opt in parts[2:]:
        if opt.startswith("key="):
            key = opt[4:]
        elif opt.startswith("cid="):
            cid = int(opt[4:])
        elif opt == "nocid":
            cid = None
        elif opt in ("v1", "v2"):
            version = int(opt[1])
        else:
            usage("unknown option %r in %r" % (opt, group))
    out = []
    for i in range(1, count + 1):
        call_id = "%s-%d@sec.test" % (label, i)
        out.append(hep3(call_id, key, cid) if version == 3 else hep12(version, call_id, cid or 0))
    return out


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def local_name(s):
    name = s.getsockname()
    return ("[%s]:%d" if s.family == socket.AF_INET6 else "%s:%d") % name[:2]


def tcp_connection(result, bind, host, port, plan, delay, wait_close):
    """One connection: plan's packets, then the peer's close awaited."""
    s = socket.socket(family(bind), socket.SOCK_STREAM)
    s.bind((bind, 0))
    s.settimeout(5)
    s.connect((host, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    result["local"] = local_name(s)
    try:
        for n, p in enumerate(plan):
            if n and delay:
                time.sleep(delay)
            s.sendall(p)
            result["sent"] += 1
    except OSError as e:
        result["send_error"] = str(e)
    if wait_close is None and result["send_error"] is None:
        s.shutdown(socket.SHUT_WR)
        wait = 3.0
    else:
        wait = wait_close if wait_close is not None else 3.0
    t = hr.closed_within(s, wait)
    result["closed_by_peer"] = result["closed_by_peer"] and t is not None
    if t is not None:
        result["closed_after"] = max(result["closed_after"] or 0, round(t, 3))
    s.close()


def run(argv):
    """Sends what argv says; returns the result (see above)."""
    args = list(argv)
    bind, delay, wait_close, connections = "127.0.0.1", 0.001, None, 1
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if not args:
            usage("%s needs a value" % opt)
        if opt == "--bind":
            bind = args.pop(0)
        elif opt == "--delay-ms":
            delay = float(args.pop(0)) / 1000.0
        elif opt == "--wait-close":
            wait_close = float(args.pop(0))
        elif opt == "--connections":
            connections = int(args.pop(0))
        else:
            usage("unknown option %s" % opt)
    if len(args) < 2:
        usage("usage: hepsend.py [--bind ADDR] [--delay-ms N] [--wait-close S] [--connections N] "
              "udp|tcp:HOST:PORT [@ADDR] GROUP...")
    m = re.fullmatch(r"(udp|tcp):(\[[^\]]+\]|[^:\[\]]+):(\d+)", args[0])
    if not m:
        usage("the target is udp:HOST:PORT or tcp:HOST:PORT (IPv6: udp:[::1]:PORT), got %r" % args[0])
    transport, host, port = m.group(1), m.group(2).strip("[]"), m.group(3)
    plan = []       # (bind address, packets)
    for g in args[1:]:
        if g.startswith("@"):
            bind = g[1:]
        else:
            plan.append((bind, packets(g)))
    result = {"sent": 0, "local": None, "closed_by_peer": False, "closed_after": None, "send_error": None}
    if transport == "udp":
        s, bound = None, None
        for addr, pkts in plan:
            if addr != bound:
                if s is not None:
                    s.close()
                s = socket.socket(family(addr), socket.SOCK_DGRAM)
                s.bind((addr, 0))
                s.connect((host, int(port)))
                bound = addr
                result["local"] = local_name(s)
            for p in pkts:
                if result["sent"] and delay:
                    time.sleep(delay)
                s.send(p)
                result["sent"] += 1
        if s is not None:
            s.close()
    elif transport == "tcp":
        if len({addr for addr, _ in plan}) > 1:
            usage("over TCP every group goes on one connection: one source only")
        plan = [p for _, pkts in plan for p in pkts]
        result["closed_by_peer"] = True
        for _ in range(connections):
            tcp_connection(result, bind, host, int(port), plan, delay, wait_close)
    else:
        usage("the target is udp:HOST:PORT or tcp:HOST:PORT")
    return result


def main():
    try:
        print(json.dumps(run(sys.argv[1:])))
    except UsageError as e:
        sys.stderr.write("%s\n" % e)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
