#!/usr/bin/env python3
"""redis_calls.py - many distinct SIP calls from the Kamailio captures, for
the Redis store tests (test_redis.sh, test_redis_sentinel.sh) and
bench/redis_measure.sh.

Python 3 standard library only.  A "template" is a list of HEPv3 captures
of one call (e.g. v3/007-022: INVITE, 407, ACK, ..., BYE, 200); call number
I of a run gets a new Call-ID, PREFIX-IIIIII-<original Call-ID>, written
into the SIP payload and into the correlation id chunk (0x0011) when it
holds the Call-ID, with the HEP lengths fixed.  Everything else is
byte-identical to the capture, so heprouter routes the copies as it routes
the originals.

Item specs: v3/007 (a capture), v3/007-022 (a range), comma lists of both.

Subcommands:

  send TARGET --template SPEC [--template SPEC]... --calls N [--first K]
       --prefix P [--rate PPS] [--log FILE] [--stop-file FILE] [--start-file FILE]
       [--from-domain DOMAIN]
      Sends calls K..K+N-1, one whole call after another (call I uses
      template I mod the number of templates), every packet to TARGET
      (udp:HOST:PORT), paced at PPS packets per second overall (0: as fast
      as possible).  --log writes one JSON line per packet: sha1 of its
      bytes, call id, item, send time (wall clock).  --stop-file: stop
      early when that file appears.  --start-file: once ready, wait for
      that file to appear before sending.  --from-domain: the calling
      user's domain (alice@heprouter.test in every packet) becomes DOMAIN,
      a tenant's calls.  Prints {"sent":..,"calls":..,"seconds":..}.

  seq --to NAME=udp:HOST:PORT... [--log FILE] STEP...
      One process for timing-sensitive sequences across several heprouter
      instances.  STEP is NAME:ITEM (send the capture ITEM unchanged to
      NAME) or pause:MS.  Logged like send.

  check --log FILE... --sink NAME=FILE... --expect SPEC=SINK...
        [--expect-call PREFIX=SINK...] [--max-delay-ms MS] [--allow-extra]
      Reads hepdump --raw outputs and the send logs.  Every logged packet
      must have reached exactly one sink, the one --expect names for its
      item (or --expect-call for its call's Call-ID prefix), exactly once; packets in the sinks that no log mentions are an
      error unless --allow-extra.  Prints counts per sink and the delay
      (sink receive time `t` minus send time): max, median, 99th
      percentile; --max-delay-ms fails when the worst is above MS.  --list
      prints every packet's sink and delay.

  callids --prefix P --template SPEC... --calls N [--first K]
      Prints the Call-IDs send would use, one a line.

  firsts --log FILE
      Prints "SEND-TIME FIRST-ITEM CALL-ID" of every call in a send log, by
      the time of its first packet.

  stat --log FILE KEY...
      Prints the value of each KEY (dotted path) in the last heprouter
      "stats (...): {json}" line of FILE, one a line ("missing" if absent).
"""

import argparse
import hashlib
import json
import os
import re
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "data", "kamailio"))
CH_PAYLOAD, CH_CORRELATION = 15, 17
CALLID_RE = re.compile(rb"\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]+)", re.I)
CALLER = b"alice@heprouter.test"        # the calling user in every INVITE capture (--from-domain)
START_FILE_WAIT_S = 30         # --start-file: longest wait for the go
START_FILE_POLL_S = 0.001
STATS_RE = re.compile(r"stats \(([^,)]*)(?:, (\d+) calls in store)?\): (\{.*\})\s*$")


def die(msg):
    sys.stderr.write("redis_calls: %s\n" % msg)
    sys.exit(2)


def expand(spec):
    """v3/007-022,v3/003 -> ['v3/007', ..., 'v3/022', 'v3/003']"""
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(v\d)/(\d{3})-(\d{1,3})", part)
        if m:
            for i in range(int(m.group(2)), int(m.group(3)) + 1):
                out.append("%s/%03d" % (m.group(1), i))
        else:
            out.append(part)
    return out


def load(item, data_dir):
    path = item if os.path.exists(item) else os.path.join(data_dir, item + ".hep")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        die("cannot read %s: %s" % (item, e))


def chunks_of(data):
    if data[:4] != b"HEP3":
        die("only HEPv3 captures can be rewritten")
    pos, out = 6, []
    while pos + 6 <= len(data):
        vendor, ctype, clen = struct.unpack("!HHH", data[pos:pos + 6])
        if clen < 6 or pos + clen > len(data):
            die("bad chunk at %d" % pos)
        out.append((vendor, ctype, data[pos + 6:pos + clen]))
        pos += clen
    return out


def original_callid(data):
    for vendor, ctype, val in chunks_of(data):
        if vendor == 0 and ctype == CH_PAYLOAD:
            m = CALLID_RE.search(val)
            if m:
                return m.group(1).strip()
    die("no Call-ID in the capture")


def rewrite(data, old, new):
    body = b""
    for vendor, ctype, val in chunks_of(data):
        if vendor == 0 and ctype == CH_PAYLOAD:
            val = val.replace(old, new)
        elif vendor == 0 and ctype == CH_CORRELATION and val == old:
            val = new
        body += struct.pack("!HHH", vendor, ctype, 6 + len(val)) + val
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


class Templates:
    def __init__(self, specs, data_dir):
        self.list = []
        for spec in specs:
            items = expand(spec)
            if not items:
                die("empty template %r" % spec)
            caps = [(it, load(it, data_dir)) for it in items]
            self.list.append([(it, d, original_callid(d)) for it, d in caps])

    def callid(self, prefix, i):
        t = self.list[i % len(self.list)]
        return ("%s-%06d-" % (prefix, i)).encode() + t[0][2]

    def call(self, prefix, i, domain=None):
        """[(item, bytes)] of call number i, and its Call-ID."""
        t = self.list[i % len(self.list)]
        new = self.callid(prefix, i)
        pkts = [(it, rewrite(d, old, new)) for it, d, old in t]
        if domain:
            pkts = [(it, rewrite(d, CALLER, CALLER.split(b"@")[0] + b"@" + domain.encode())) for it, d in pkts]
        return pkts, new


def parse_udp(text):
    m = re.fullmatch(r"udp:([^:]+):(\d+)", text)
    if not m:
        die("target must be udp:HOST:PORT, got %r" % text)
    return m.group(1), int(m.group(2))


class Log:
    def __init__(self, path):
        self.f = open(path, "w") if path else None

    def write(self, data, cid, item, t, to=""):
        if self.f:
            self.f.write(json.dumps({"h": hashlib.sha1(data).hexdigest(), "call": cid, "item": item,
                                     "t": t, "to": to}) + "\n")

    def close(self):
        if self.f:
            self.f.close()


def linger():
    """Stays a moment before exiting: a datagram sent just before the process
    exits can reach the receiver milliseconds late on loopback (measured:
    3 to 50 ms), which would show as heprouter latency."""
    time.sleep(0.05)


def wait_for_file(path):
    """Ready to send, waits for path to exist (a test's "go"), so that the
    sending starts when the test wants it, whatever start-up took."""
    if not path:
        return
    deadline = time.monotonic() + START_FILE_WAIT_S
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            die("%s did not appear within %d s" % (path, START_FILE_WAIT_S))
        time.sleep(START_FILE_POLL_S)


def cmd_send(a):
    tpl = Templates(a.template, a.data)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.connect(parse_udp(a.target))
    log = Log(a.log)
    # Build everything first so that pacing is not disturbed by the rewriting.
    calls = [tpl.call(a.prefix, i, a.from_domain) for i in range(a.first, a.first + a.calls)]
    interval = 1.0 / a.rate if a.rate > 0 else 0.0
    wait_for_file(a.start_file)
    start = time.monotonic()
    sent = 0
    ncalls = 0
    for pkts, cid in calls:
        if a.stop_file and os.path.exists(a.stop_file):
            break
        for item, data in pkts:
            if interval:
                due = start + sent * interval
                now = time.monotonic()
                if due > now + 0.0005:
                    time.sleep(due - now)
            t = time.time()
            try:
                s.send(data)
            except ConnectionRefusedError:
                # ICMP port unreachable from an earlier datagram (the
                # listener is gone): report, do not pretend it was sent.
                die("send to %s refused after %d packets" % (a.target, sent))
            log.write(data, cid.decode(), item, t)
            sent += 1
        ncalls += 1
    secs = time.monotonic() - start
    log.close()
    linger()
    print(json.dumps({"sent": sent, "calls": ncalls, "seconds": round(secs, 3),
                      "pps": round(sent / secs, 1) if secs > 0 else 0}))
    return 0


def cmd_seq(a):
    socks = {}
    for spec in a.to:
        name, _, target = spec.partition("=")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(parse_udp(target))
        socks[name] = s
    log = Log(a.log)
    plan = []
    for step in a.steps:
        if step.startswith("pause:"):
            plan.append((None, float(step[6:]) / 1000.0, None))
            continue
        name, _, item = step.partition(":")
        if name not in socks:
            die("step %r: unknown target %r" % (step, name))
        data = load(item, a.data)
        plan.append((name, data, item))
    for name, data, item in plan:
        if name is None:
            time.sleep(data)
            continue
        t = time.time()
        socks[name].send(data)
        log.write(data, original_callid(data).decode(), item, t, name)
    log.close()
    linger()
    return 0


def read_sink(path):
    out = []
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return out
    for line in text.split(b"\n")[:-1]:
        if not line.strip() or not line.startswith(b'{"n":'):
            continue
        rec = json.loads(line)
        if "raw" not in rec:
            die("%s: no \"raw\" (run hepdump with --raw)" % path)
        out.append((hashlib.sha1(bytes.fromhex(rec["raw"])).hexdigest(), float(rec["t"])))
    return out


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = min(len(sorted_vals) - 1, int(round(p / 100.0 * (len(sorted_vals) - 1))))
    return sorted_vals[k]


def cmd_check(a):
    expect = {}
    for e in a.expect:
        spec, _, sink = e.rpartition("=")
        for it in expand(spec):
            expect[it] = sink
    sent = {}
    for path in a.log:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                if r["h"] in sent:
                    die("two logged packets with the same bytes (%s, %s)" % (r["item"], r["call"]))
                sent[r["h"]] = r
    got = {}                    # hash -> [(sink, t)]
    per_sink = {}
    extra = {}
    for spec in a.sink:
        name, _, path = spec.partition("=")
        pk = read_sink(path)
        per_sink[name] = len(pk)
        for h, t in pk:
            if h in sent:
                got.setdefault(h, []).append((name, t))
            else:
                extra[name] = extra.get(name, 0) + 1
    errors = []
    delays = []
    missing = dup = wrong = 0
    for h, r in sent.items():
        arr = got.get(h, [])
        want = expect.get(r["item"])
        for e in a.expect_call:
            prefix, _, sink = e.rpartition("=")
            if r["call"].startswith(prefix):
                want = sink
        if not arr:
            missing += 1
            if missing <= 10:
                errors.append("lost: %s of call %s (sent at %.6f)" % (r["item"], r["call"], r["t"]))
            continue
        if len(arr) > 1:
            dup += 1
            if dup <= 10:
                errors.append("%d copies: %s of call %s at %s" % (len(arr), r["item"], r["call"],
                                                                 ",".join(s for s, _ in arr)))
        if want is not None and arr[0][0] != want:
            wrong += 1
            if wrong <= 10:
                errors.append("wrong sink: %s of call %s went to %s, expected %s"
                              % (r["item"], r["call"], arr[0][0], want))
        delays.append((arr[0][1] - r["t"]) * 1000.0)
        if a.list:
            print("  %s %s%s -> %s after %.2f ms" % (r["item"], r["call"], " via " + r["to"] if r.get("to") else "",
                                                  arr[0][0], (arr[0][1] - r["t"]) * 1000.0))
    if extra and not a.allow_extra:
        errors.append("packets no log mentions: %s" % json.dumps(extra, sort_keys=True))
    delays.sort()
    worst = delays[-1] if delays else 0.0
    summary = {"sent": len(sent), "delivered": len(sent) - missing, "lost": missing,
               "duplicated": dup, "wrong_sink": wrong, "per_sink": per_sink, "extra": extra,
               "delay_ms": {"max": round(worst, 2), "median": round(pct(delays, 50), 2),
                            "p99": round(pct(delays, 99), 2)}}
    print(json.dumps(summary, sort_keys=True))
    if a.max_delay_ms is not None and worst > a.max_delay_ms:
        worst_r = max(((got[h][0][1] - r["t"]) * 1000.0, r) for h, r in sent.items() if h in got)
        errors.append("worst delay %.1f ms > %.1f ms (%s of call %s)" % (worst, a.max_delay_ms,
                                                                          worst_r[1]["item"],
                                                                          worst_r[1]["call"]))
    for e in errors:
        print("FAIL " + e)
    return 1 if errors else 0


def cmd_callids(a):
    tpl = Templates(a.template, a.data)
    for i in range(a.first, a.first + a.calls):
        print(tpl.callid(a.prefix, i).decode())
    return 0


def cmd_firsts(a):
    first = {}
    with open(a.log) as f:
        for line in f:
            r = json.loads(line)
            if r["call"] not in first or r["t"] < first[r["call"]][0]:
                first[r["call"]] = (r["t"], r["item"])
    for cid, (t, item) in sorted(first.items(), key=lambda kv: kv[1][0]):
        print("%.6f %s %s" % (t, item, cid))
    return 0


def cmd_stat(a):
    last = None
    with open(a.log, errors="replace") as f:
        for line in f:
            m = STATS_RE.search(line)
            if m:
                last = m
    if last is None:
        print("\n".join("missing" for _ in a.keys))
        return 1
    stats = json.loads(last.group(3))
    for key in a.keys:
        node = stats
        for part in (key.split("/") if "/" in key else key.split(".")):
            node = node.get(part) if isinstance(node, dict) else None
        print("missing" if node is None else node)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("send")
    s.add_argument("target")
    s.add_argument("--template", action="append", required=True)
    s.add_argument("--calls", type=int, required=True)
    s.add_argument("--first", type=int, default=0)
    s.add_argument("--prefix", required=True)
    s.add_argument("--rate", type=float, default=0.0)
    s.add_argument("--log")
    s.add_argument("--stop-file")
    s.add_argument("--start-file")
    s.add_argument("--from-domain")

    q = sub.add_parser("seq")
    q.add_argument("--to", action="append", required=True)
    q.add_argument("--log")
    q.add_argument("steps", nargs="+")

    c = sub.add_parser("check")
    c.add_argument("--log", action="append", required=True)
    c.add_argument("--sink", action="append", required=True)
    c.add_argument("--expect", action="append", default=[])
    c.add_argument("--expect-call", action="append", default=[])
    c.add_argument("--max-delay-ms", type=float)
    c.add_argument("--allow-extra", action="store_true")
    c.add_argument("--list", action="store_true", help="one line per packet: where, how late")

    i = sub.add_parser("callids")
    i.add_argument("--template", action="append", required=True)
    i.add_argument("--prefix", required=True)
    i.add_argument("--calls", type=int, required=True)
    i.add_argument("--first", type=int, default=0)

    fs = sub.add_parser("firsts")
    fs.add_argument("--log", required=True)

    st = sub.add_parser("stat")
    st.add_argument("--log", required=True)
    st.add_argument("keys", nargs="+")

    a = p.parse_args()
    return {"send": cmd_send, "seq": cmd_seq, "check": cmd_check, "callids": cmd_callids,
            "firsts": cmd_firsts, "stat": cmd_stat}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
