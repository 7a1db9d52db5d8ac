#!/usr/bin/env python3
"""spool.py - traffic, a TCP back-end that goes away, and the checks of
test_spool.sh.

  send udp:HOST:PORT --calls N --per-call K --rate PPS --prefix P --out MANIFEST
      N calls of K packets each (a MESSAGE with CSeq 1..K, Call-ID
      P-<i>@spool.test, its own HEP timestamp), interleaved 100 calls at a
      time so that calls span any moment of the run, paced at PPS packets/s.
      MANIFEST gets one line per packet in send order: call, seq, sha1,
      Unix time sent.

  sink PORT --out FILE
      A HEP3-over-TCP back-end on 127.0.0.1:PORT writing one line per frame
      received (call, seq, sha1, Unix time received).  SIGUSR1: goes down the way a collector
      that stops does (no more accepts, each connection's write side shut,
      read to the end, closed); SIGUSR2: listens again on the same port;
      SIGTERM: exits.

  check MANIFEST GOT [--skip-oldest N] [--missing N [--missing-slack K]]
        [--delays-after T [--new-calls-after T2] [--new-calls-p99-ms MS]]
      Prints {"sent", "delivered", "duplicated", "missing", "out_of_order"}
      and exits 1 unless every packet arrived exactly once with the bytes
      sent, in order within each call -- except the N oldest (--skip-oldest:
      must not arrive) or exactly N anywhere (--missing: may be absent; with
      --missing-slack K, between N-K and N).
      --delays-after T: also the delay (arrival - send, ms: p50, p99, max)
      of the packets sent after Unix time T, and of those among them whose
      call started after T2 (default T): new calls, none of whose packets
      waited in a spool, show what a replay costs live traffic; with
      --new-calls-p99-ms, their 99th percentile must not exceed MS.

  segment FILE CUT
      Records in a spool segment file (20-byte record headers, see
      src/segment.h) and how many end at or before byte CUT:
      {"records": R, "before": B, "cut_in_record": OFFSET}.
"""
import argparse
import hashlib
import json
import os
import re
import selectors
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import hepreplay as hr  # noqa: E402

CONCURRENT = 100            # calls in progress at once
BURST_S = 0.01              # pacing step
CH_TIME_SEC, CH_TIME_USEC, CH_PROTO_TYPE, CH_CAPTURE_ID, CH_PAYLOAD = 0x0009, 0x000A, 0x000B, 0x000C, 0x000F
SEGMENT_HEADER, RECORD_HEADER = 16, 20
CALL_RE = re.compile(rb"Call-ID: ([^\r]+)\r\nCSeq: (\d+) ")


def packet(prefix, call, seq):
    sip = ("MESSAGE sip:spool@spool.test SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-%d-%d\r\n"
           "Call-ID: %s-%d@spool.test\r\nCSeq: %d MESSAGE\r\nContent-Length: 0\r\n\r\n"
           % (call, seq, prefix, call, seq)).encode()
    stamp = 1700000000 + call
    return hr.hep3(hr.addr_chunks() + [
        hr.chunk(CH_TIME_SEC, struct.pack("!I", stamp)),
        hr.chunk(CH_TIME_USEC, struct.pack("!I", seq)),
        hr.chunk(CH_PROTO_TYPE, b"\x01"),
        hr.chunk(CH_CAPTURE_ID, struct.pack("!I", 1)),
        hr.chunk(CH_PAYLOAD, sip),
    ])


def identity(frame):
    m = CALL_RE.search(frame)
    call = m.group(1).decode() if m else "?"
    seq = int(m.group(2)) if m else -1
    return call, seq, hashlib.sha1(frame).hexdigest()


def order(calls, per_call):
    """(call, seq) in send order: CONCURRENT calls at a time, round robin."""
    nxt = {}
    active = []
    started = 0
    while active or started < calls:
        while len(active) < CONCURRENT and started < calls:
            started += 1
            active.append(started)
            nxt[started] = 1
        for c in list(active):
            yield c, nxt[c]
            nxt[c] += 1
            if nxt[c] > per_call:
                active.remove(c)


def cmd_send(a):
    host, port = hr.parse_target(a.target)[1:]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    step = max(1, int(a.rate * BURST_S))
    t0 = time.monotonic()
    n = 0
    with open(a.out, "w") as out:
        for call, seq in order(a.calls, a.per_call):
            p = packet(a.prefix, call, seq)
            s.sendto(p, (host, port))
            out.write("%s-%d@spool.test %d %s %.6f\n" % (a.prefix, call, seq, hashlib.sha1(p).hexdigest(),
                                                         time.time()))
            n += 1
            if n % step == 0:
                ahead = t0 + n / a.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
    print(json.dumps({"sent": n, "seconds": round(time.monotonic() - t0, 3)}))


class Sink:
    def __init__(self, port, out):
        self.port = port
        self.out = open(out, "w", buffering=1)
        self.sel = selectors.DefaultSelector()
        self.listener = None
        self.conns = {}
        self.flags = set()
        for sig, name in ((signal.SIGUSR1, "down"), (signal.SIGUSR2, "up"), (signal.SIGTERM, "exit")):
            signal.signal(sig, lambda _s, _f, n=name: self.flags.add(n))
        self.listen()

    def listen(self):
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(16)
        ls.setblocking(False)
        self.sel.register(ls, selectors.EVENT_READ, None)
        self.listener = ls

    def down(self):
        self.sel.unregister(self.listener)
        self.listener.close()
        self.listener = None
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def frames(self, c):
        buf = self.conns[c]
        while len(buf) >= 6:
            n = struct.unpack("!H", buf[4:6])[0]
            if buf[:4] != b"HEP3" or n < 6:
                raise ValueError("not a HEP3 stream")
            if len(buf) < n:
                break
            self.out.write("%s %d %s %.6f\n" % (identity(bytes(buf[:n])) + (time.time(),)))
            del buf[:n]

    def run(self):
        while "exit" not in self.flags:
            if "down" in self.flags:
                self.flags.discard("down")
                self.down()
            if "up" in self.flags:
                self.flags.discard("up")
                self.listen()
            for key, _ in self.sel.select(0.05):
                s = key.fileobj
                if s is self.listener:
                    c, _ = s.accept()
                    c.setblocking(False)
                    self.conns[c] = bytearray()
                    self.sel.register(c, selectors.EVENT_READ, None)
                    continue
                try:
                    data = s.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if data:
                    self.conns[s] += data
                    self.frames(s)
                else:
                    self.sel.unregister(s)
                    s.close()
                    del self.conns[s]
        self.out.close()


def read_lines(path):
    with open(path) as f:
        return [tuple(line.split()) for line in f if line.strip()]


def cmd_check(a):
    sent = read_lines(a.manifest)
    got = read_lines(a.got)
    want = {h: float(t) for _, _, h, t in sent}
    call_start = {}
    for c, _, _, t in sent:
        call_start.setdefault(c, float(t))
    seen = {}
    last = {}
    out_of_order = 0
    unknown = 0
    delays, new_calls = [], []
    for c, s, h, t in got:
        if h not in want:
            unknown += 1
            continue
        seen[h] = seen.get(h, 0) + 1
        if a.delays_after is not None and want[h] >= a.delays_after:
            delays.append(float(t) - want[h])
            if call_start[c] >= a.new_calls_after:
                new_calls.append(float(t) - want[h])
        if last.get(c, 0) > int(s):
            out_of_order += 1
        last[c] = int(s)
    oldest = {h for _, _, h, _ in sent[:a.skip_oldest]}
    missing = sum(1 for _, _, h, _ in sent if h not in seen and h not in oldest)
    arrived_oldest = sum(1 for h in oldest if h in seen)
    r = {"sent": len(sent), "delivered": len(seen), "duplicated": sum(n - 1 for n in seen.values()),
         "missing": missing, "out_of_order": out_of_order, "unknown": unknown}
    if a.skip_oldest:
        r["oldest_arrived"] = arrived_oldest
    for key, ds in (("delay_ms", delays), ("new_calls_delay_ms", new_calls)):
        if ds:
            ds.sort()
            r[key] = {q: round(1000 * ds[min(len(ds) - 1, int(len(ds) * f))], 2)
                      for q, f in (("n", None), ("p50", 0.5), ("p99", 0.99), ("max", 1.0)) if f is not None}
            r[key]["n"] = len(ds)
    print(json.dumps(r))
    slow = a.new_calls_p99_ms is not None and r.get("new_calls_delay_ms", {}).get("p99", 0) > a.new_calls_p99_ms
    ok = (not slow and r["duplicated"] == 0 and out_of_order == 0 and unknown == 0 and arrived_oldest == 0 and
          a.missing - a.missing_slack <= missing <= a.missing)
    return 0 if ok else 1


def cmd_segment(a):
    with open(a.file, "rb") as f:
        data = f.read()
    off, records, before, cut_in = SEGMENT_HEADER, 0, 0, None
    while off + RECORD_HEADER <= len(data):
        n = struct.unpack("!I", data[off:off + 4])[0]
        end = off + RECORD_HEADER + n
        if end > len(data):
            break
        records += 1
        if end <= a.cut:
            before += 1
        elif off < a.cut and cut_in is None:
            cut_in = off
        off = end
    print(json.dumps({"records": records, "before": before, "cut_in_record": cut_in}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("send")
    p.add_argument("target")
    p.add_argument("--calls", type=int, required=True)
    p.add_argument("--per-call", type=int, default=10)
    p.add_argument("--rate", type=float, default=5000)
    p.add_argument("--prefix", default="sp")
    p.add_argument("--out", required=True)
    p = sub.add_parser("sink")
    p.add_argument("port", type=int)
    p.add_argument("--out", required=True)
    p = sub.add_parser("check")
    p.add_argument("manifest")
    p.add_argument("got")
    p.add_argument("--skip-oldest", type=int, default=0)
    p.add_argument("--missing", type=int, default=0)
    p.add_argument("--missing-slack", type=int, default=0)
    p.add_argument("--delays-after", type=float, default=None)
    p.add_argument("--new-calls-after", type=float, default=None)
    p.add_argument("--new-calls-p99-ms", type=float, default=None)
    p = sub.add_parser("segment")
    p.add_argument("file")
    p.add_argument("cut", type=int)
    a = ap.parse_args()
    if a.cmd == "check" and a.new_calls_after is None:
        a.new_calls_after = a.delays_after
    if a.cmd == "send":
        cmd_send(a)
        return 0
    if a.cmd == "sink":
        Sink(a.port, a.out).run()
        return 0
    if a.cmd == "check":
        return cmd_check(a)
    return cmd_segment(a)


if __name__ == "__main__":
    sys.exit(main())
