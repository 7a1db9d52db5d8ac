#!/usr/bin/env python3
"""hepreplay.py - replay HEP packets to heprouter and check what its sinks got.

Python 3 standard library only.  Used by tests/integration/test_router.sh.

Packets ("items") are named the same way on every subcommand, so the checker
can regenerate exactly what the sender sent:

  v3/007            tests/data/kamailio/v3/007.hep (see --data)
  PATH.hep          any HEP file
  rtcp:CALL-ID      a HEPv3 RTCP report (proto type 5) whose correlation id
                    (chunk 0x0011) is CALL-ID; deterministic bytes
  rtcp:             the same without a correlation id
  bad:KIND          a malformed packet, KIND one of BAD_KINDS below
  pause:MS          (send only) sleep MS milliseconds before the next packet

Subcommands:

  send TARGET [--delay-ms N] [--tcp-mode each|glued|split] [--split-size B]
       [--split-pause-ms N] ITEM...
      TARGET is udp:HOST:PORT or tcp:HOST:PORT.  UDP: one datagram per item,
      --delay-ms between them.  TCP (one connection): `each` writes every
      frame on its own (with --delay-ms), `glued` writes all of them in one
      write, `split` cuts the whole stream into --split-size byte writes
      (crossing frame boundaries) with --split-pause-ms between writes.

  wait [--timeout S] [--settle-ms N] FILE=N...
      Waits until each hepdump output FILE holds at least N complete lines
      (or the timeout), then N ms more so that extra packets show up too.
      Never fails: the check that follows says what is missing.

  check --sink NAME --json FILE [--convert-v3] [--v1-ts-window A:B] ITEM...
      The sink must have received exactly these packets in this order.
      Without --convert-v3 every packet must be byte-identical to its item.
      With --convert-v3 a v3 item must still be byte-identical, and a v1/v2
      item must arrive as HEPv3 with the same family, IP protocol,
      addresses, ports, payload, protocol type (1) and timestamp (v2: equal;
      v1 has none: within the wall-clock window A:B, seconds).
      Exits 1 with one line per difference (which packet, expected vs got).

  stats --log FILE EXPR...
      Reads the last "stats (...): {json}" line of a heprouter log and checks
      each EXPR: a.b.c=N, a.b.c>=N, a.b.c>N (dotted path into the JSON; use
      a/b/c when a key contains dots, e.g. a target "udp:127.0.0.1:9060").

  decode ITEM...
      Prints this script's own decoding of each item (for debugging).
"""

import argparse
import json
import os
import re
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "data", "kamailio"))

# HEPv3 generic chunk types (HEP.md).
CH_FAMILY, CH_IP_PROTO, CH_SRC4, CH_DST4, CH_SRC6, CH_DST6 = 1, 2, 3, 4, 5, 6
CH_SPORT, CH_DPORT, CH_TS_SEC, CH_TS_USEC, CH_PROTO, CH_CAPTURE = 7, 8, 9, 10, 11, 12
CH_AUTH_KEY, CH_PAYLOAD, CH_PAYLOAD_GZ, CH_CORRELATION = 14, 15, 16, 17

# What the generated RTCP report looks like (fixed, so sender and checker agree).
RTCP_SRC = ("127.0.0.1", 40000)
RTCP_DST = ("127.0.0.1", 40001)
RTCP_TS = (1795692371, 654321)
RTCP_PAYLOAD = (b'{"type":200,"ssrc":305419896,"report_count":0,'
                b'"sender_information":{"ntp_timestamp_sec":3913344000,'
                b'"ntp_timestamp_usec":0,"octets":160,"rtp_timestamp":8000,"packets":50}}')

BAD_KINDS = {
    "truncated": "5 bytes: shorter than any HEP header",
    "version": "first byte 7, no HEP3 magic",
    "length": "HEP3 total length 40 bytes more than the datagram",
    "chunk_short": "a chunk with length field 4 (< 6)",
    "chunk_overrun": "last chunk's length runs 100 bytes past the end",
    "chunk_size": "IPv4 source chunk with 6 value bytes",
    "no_payload": "HEP3 with addresses and ports but no payload chunk",
    "hdr_len": "v1 packet whose header length says 40 with family IPv4",
    "family": "v2 packet with family 7",
    "address": "family 2 with IPv6 address chunks",
}


class Item:
    """One packet: its bytes and a name for messages."""

    def __init__(self, spec, data, label):
        self.spec = spec
        self.data = data
        self.label = label


# ---------------------------------------------------------------- building

def chunk(ctype, value, vendor=0):
    return struct.pack("!HHH", vendor, ctype, 6 + len(value)) + value


def hep3(chunks):
    body = b"".join(chunks)
    return b"HEP3" + struct.pack("!H", 6 + len(body)) + body


def addr_chunks(src=("127.0.0.1", 5060), dst=("127.0.0.1", 5080)):
    return [
        chunk(CH_FAMILY, b"\x02"),
        chunk(CH_IP_PROTO, b"\x11"),
        chunk(CH_SRC4, socket.inet_aton(src[0])),
        chunk(CH_DST4, socket.inet_aton(dst[0])),
        chunk(CH_SPORT, struct.pack("!H", src[1])),
        chunk(CH_DPORT, struct.pack("!H", dst[1])),
    ]


def closed_within(s, seconds):
    """Seconds until the peer closed TCP socket s (EOF or reset), or None
    when it is still open after seconds (whatever it sends meanwhile)."""
    t0 = time.monotonic()
    s.settimeout(seconds)
    try:
        while True:
            if s.recv(4096) == b"":
                return time.monotonic() - t0
            if time.monotonic() - t0 > seconds:
                return None
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - t0
    except socket.timeout:
        return None


def build_rtcp(call_id):
    chunks = addr_chunks(RTCP_SRC, RTCP_DST) + [
        chunk(CH_TS_SEC, struct.pack("!I", RTCP_TS[0])),
        chunk(CH_TS_USEC, struct.pack("!I", RTCP_TS[1])),
        chunk(CH_PROTO, b"\x05"),
        chunk(CH_CAPTURE, struct.pack("!I", 1)),
    ]
    if call_id:
        chunks.append(chunk(CH_CORRELATION, call_id.encode()))
    chunks.append(chunk(CH_PAYLOAD, RTCP_PAYLOAD))
    return hep3(chunks)


SIP_BAD = (b"OPTIONS sip:bad@127.0.0.1 SIP/2.0\r\nCall-ID: malformed-1@127.0.0.1\r\n"
           b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")


def build_bad(kind):
    ts = [chunk(CH_TS_SEC, struct.pack("!I", RTCP_TS[0])), chunk(CH_PROTO, b"\x01")]
    if kind == "truncated":
        return b"HEP3\x00"
    if kind == "version":
        return b"\x07" + b"\x10\x02\x11" + b"\x13\xc4\x13\xd8" + b"\x7f\x00\x00\x01" * 2 + SIP_BAD
    if kind == "length":
        p = hep3(addr_chunks() + ts + [chunk(CH_PAYLOAD, SIP_BAD)])
        return p[:4] + struct.pack("!H", len(p) + 40) + p[6:]
    if kind == "chunk_short":
        return hep3(addr_chunks() + [struct.pack("!HHH", 0, CH_TS_SEC, 4)] + ts
                    + [chunk(CH_PAYLOAD, SIP_BAD)])
    if kind == "chunk_overrun":
        p = chunk(CH_PAYLOAD, SIP_BAD)
        p = p[:4] + struct.pack("!H", len(p) + 100) + p[6:]
        return hep3(addr_chunks() + ts + [p])
    if kind == "chunk_size":
        c = addr_chunks()
        c[2] = chunk(CH_SRC4, b"\x7f\x00\x00\x01\x00\x00")
        return hep3(c + ts + [chunk(CH_PAYLOAD, SIP_BAD)])
    if kind == "no_payload":
        return hep3(addr_chunks() + ts)
    if kind == "hdr_len":
        return b"\x01\x28\x02\x11" + b"\x13\xc4\x13\xd8" + b"\x7f\x00\x00\x01" * 2 + SIP_BAD
    if kind == "family":
        return (b"\x02\x10\x07\x11" + b"\x13\xc4\x13\xd8" + b"\x7f\x00\x00\x01" * 2
                + struct.pack("<IIHH", RTCP_TS[0], 0, 1, 0) + SIP_BAD)
    if kind == "address":
        c = addr_chunks()
        c[2] = chunk(CH_SRC6, socket.inet_pton(socket.AF_INET6, "::1"))
        c[3] = chunk(CH_DST6, socket.inet_pton(socket.AF_INET6, "::1"))
        return hep3(c + ts + [chunk(CH_PAYLOAD, SIP_BAD)])
    raise SystemExit("hepreplay: unknown bad:KIND %r (known: %s)" % (kind, ", ".join(BAD_KINDS)))


# ---------------------------------------------------------------- decoding

def decode(data):
    """Decodes HEP v1/v2/v3 into a dict; raises ValueError when malformed."""
    if data[:4] == b"HEP3":
        if len(data) < 6:
            raise ValueError("truncated")
        total = struct.unpack("!H", data[4:6])[0]
        if total != len(data):
            raise ValueError("total length %d, packet %d bytes" % (total, len(data)))
        d = {"version": 3, "chunks": []}
        pos = 6
        while pos < len(data):
            if pos + 6 > len(data):
                raise ValueError("chunk header overruns")
            vendor, ctype, clen = struct.unpack("!HHH", data[pos:pos + 6])
            if clen < 6 or pos + clen > len(data):
                raise ValueError("bad chunk length %d at %d" % (clen, pos))
            val = data[pos + 6:pos + clen]
            d["chunks"].append((vendor, ctype))
            pos += clen
            if vendor != 0:
                continue
            if ctype == CH_FAMILY:
                d["family"] = val[0]
            elif ctype == CH_IP_PROTO:
                d["ip_proto"] = val[0]
            elif ctype in (CH_SRC4, CH_SRC6):
                d["src"] = socket.inet_ntop(socket.AF_INET if len(val) == 4 else socket.AF_INET6, val)
            elif ctype in (CH_DST4, CH_DST6):
                d["dst"] = socket.inet_ntop(socket.AF_INET if len(val) == 4 else socket.AF_INET6, val)
            elif ctype == CH_SPORT:
                d["sport"] = struct.unpack("!H", val)[0]
            elif ctype == CH_DPORT:
                d["dport"] = struct.unpack("!H", val)[0]
            elif ctype == CH_TS_SEC:
                d["ts_sec"] = struct.unpack("!I", val)[0]
            elif ctype == CH_TS_USEC:
                d["ts_usec"] = struct.unpack("!I", val)[0]
            elif ctype == CH_PROTO:
                d["proto_type"] = val[0]
            elif ctype == CH_CAPTURE:
                d["capture_id"] = int.from_bytes(val, "big")
            elif ctype == CH_CORRELATION:
                d["correlation_id"] = val
            elif ctype in (CH_PAYLOAD, CH_PAYLOAD_GZ):
                d["payload"] = val
        return d
    if len(data) < 8 or data[0] not in (1, 2):
        raise ValueError("not HEP")
    version, hlen, family, proto, sport, dport = struct.unpack("!BBBBHH", data[:8])
    alen = 4 if family == 2 else 16 if family == 10 else 0
    if alen == 0 or hlen != 8 + 2 * alen:
        raise ValueError("bad family/header length")
    af = socket.AF_INET if alen == 4 else socket.AF_INET6
    d = {"version": version, "family": family, "ip_proto": proto, "sport": sport, "dport": dport,
         "src": socket.inet_ntop(af, data[8:8 + alen]),
         "dst": socket.inet_ntop(af, data[8 + alen:hlen])}
    pos = hlen
    if version == 2:
        sec, usec, cid = struct.unpack("<IIH", data[pos:pos + 10])
        d.update(ts_sec=sec, ts_usec=usec, capture_id=cid)
        pos += 12
    d["payload"] = data[pos:]
    return d


def first_line(payload):
    if payload is None:
        return "(no payload)"
    line = payload.split(b"\r", 1)[0].split(b"\n", 1)[0]
    return line[:60].decode("utf-8", "replace")


def describe(data):
    """A short human description of some bytes: version, start line, Call-ID."""
    try:
        d = decode(data)
    except ValueError as e:
        return "undecodable %d bytes (%s)" % (len(data), e)
    text = "HEPv%d %d bytes" % (d["version"], len(data))
    if d.get("proto_type", 1) == 1:
        text += " '%s'" % first_line(d.get("payload"))
        m = re.search(rb"\r\n(?:Call-ID|i)[ \t]*:[ \t]*([^\r\n]+)", d.get("payload") or b"", re.I)
        if m:
            text += " Call-ID %s" % m.group(1).decode("utf-8", "replace")
    else:
        text += " proto_type %d" % d["proto_type"]
        if "correlation_id" in d:
            text += " correlation id %s" % d["correlation_id"].decode("utf-8", "replace")
    return text


# ---------------------------------------------------------------- items

def load_item(spec, data_dir):
    if spec.startswith("rtcp:"):
        cid = spec[5:]
        return Item(spec, build_rtcp(cid), "generated RTCP (%s)" %
                    ("correlation id " + cid if cid else "no correlation id"))
    if spec.startswith("bad:"):
        return Item(spec, build_bad(spec[4:]), "malformed " + spec[4:])
    path = spec
    if not os.path.exists(path):
        path = os.path.join(data_dir, spec if spec.endswith(".hep") else spec + ".hep")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SystemExit("hepreplay: cannot read item %s: %s" % (spec, e))
    return Item(spec, data, spec)


def parse_target(text):
    m = re.fullmatch(r"(udp|tcp):(\[[^\]]+\]|[^:]+):(\d+)", text)
    if not m:
        raise SystemExit("hepreplay: target must be udp:HOST:PORT or tcp:HOST:PORT, got %r" % text)
    return m.group(1), m.group(2).strip("[]"), int(m.group(3))


# ---------------------------------------------------------------- send


def send_plan(plan, delay, send):
    """Sends the plan's packets with send(), delay seconds apart; a None
    item is a pause of its own length."""
    first = True
    for item, pause in plan:
        if item is None:
            time.sleep(pause)
            continue
        if not first and delay:
            time.sleep(delay)
        first = False
        send(item.data)


def cmd_send(args):
    transport, host, port = parse_target(args.target)
    plan = []       # (item or None, pause seconds)
    for spec in args.items:
        if spec.startswith("pause:"):
            plan.append((None, float(spec[6:]) / 1000.0))
        else:
            plan.append((load_item(spec, args.data), 0.0))
    delay = args.delay_ms / 1000.0
    if transport == "udp":
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        s.connect((host, port))
        send_plan(plan, delay, s.send)
        s.close()
        return 0
    s = socket.create_connection((host, port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if args.tcp_mode == "each":
        send_plan(plan, delay, s.sendall)
    else:
        stream = b"".join(item.data for item, _ in plan if item is not None)
        if args.tcp_mode == "glued":
            s.sendall(stream)
        else:
            size = args.split_size
            for off in range(0, len(stream), size):
                s.sendall(stream[off:off + size])
                time.sleep(args.split_pause_ms / 1000.0)
    # Close cleanly, then let the peer read everything before we go.
    s.shutdown(socket.SHUT_WR)
    try:
        s.settimeout(2)
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
    return 0


# ---------------------------------------------------------------- wait / check

def read_lines(path):
    try:
        with open(path, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = text.split(b"\n")
    return [ln for ln in lines[:-1] if ln.strip()]     # only complete lines


def cmd_wait(args):
    goals = []
    for g in args.goals:
        path, _, n = g.rpartition("=")
        goals.append((path, int(n)))
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if all(len(read_lines(p)) >= n for p, n in goals):
            break
        time.sleep(0.01)
    time.sleep(args.settle_ms / 1000.0)
    return 0


def compare_converted(item, got, window):
    """Differences between a v1/v2 item and the HEPv3 packet that arrived."""
    exp = decode(item.data)
    try:
        g = decode(got)
    except ValueError as e:
        return ["not decodable: %s" % e]
    diffs = []
    if g["version"] != 3:
        diffs.append("version: expected 3, got %d" % g["version"])
    for key in ("family", "ip_proto", "src", "dst", "sport", "dport", "payload"):
        if g.get(key) != exp.get(key):
            e, v = exp.get(key), g.get(key)
            if key == "payload":
                e = "%d bytes '%s'" % (len(e), first_line(e)) if e is not None else None
                v = "%d bytes '%s'" % (len(v), first_line(v)) if v is not None else None
            diffs.append("%s: expected %s, got %s" % (key, e, v))
    if g.get("proto_type") != 1:
        diffs.append("proto_type: expected 1 (SIP), got %s" % g.get("proto_type"))
    if exp["version"] == 2:
        for key in ("ts_sec", "ts_usec", "capture_id"):
            if g.get(key) != exp.get(key):
                diffs.append("%s: expected %s (from the v2 header), got %s" % (key, exp.get(key), g.get(key)))
    elif window is not None:
        ts = g.get("ts_sec")
        if ts is None or not window[0] <= ts <= window[1]:
            diffs.append("ts_sec: v1 has no timestamp, expected the receive time in [%d, %d], got %s"
                         % (window[0], window[1], ts))
    return diffs


def cmd_check(args):
    items = [load_item(s, args.data) for s in args.items]
    window = None
    if args.v1_ts_window:
        a, b = args.v1_ts_window.split(":")
        window = (int(float(a)), int(float(b)) + 1)
    got = []
    errors = []
    for n, line in enumerate(read_lines(args.json), 1):
        try:
            rec = json.loads(line)
        except ValueError as e:
            errors.append("line %d of %s is not JSON (%s): %r" % (n, args.json, e, line[:120]))
            continue
        if "raw" not in rec:
            errors.append("line %d of %s has no \"raw\" (run hepdump with --raw)" % (n, args.json))
            continue
        got.append(bytes.fromhex(rec["raw"]))

    # Every known packet, to name what arrived.
    catalog = {}
    for v in ("v1", "v2", "v3"):
        d = os.path.join(args.data, v)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.endswith(".hep"):
                    with open(os.path.join(d, f), "rb") as fh:
                        catalog.setdefault(fh.read(), "%s/%s" % (v, f[:-4]))
    for it in items:
        catalog[it.data] = it.label

    # v1/v2 packets re-encoded as HEPv3 are named by their payload.
    by_payload = {}
    for data, label in catalog.items():
        if data[:4] != b"HEP3":
            try:
                by_payload.setdefault(decode(data)["payload"], label)
            except ValueError:
                pass

    def short_got(data):
        if data in catalog:
            return catalog[data]
        try:
            label = by_payload.get(decode(data)["payload"])
        except (ValueError, KeyError):
            label = None
        return "%s(as v3)" % label if label else "?%dB" % len(data)

    def name_got(data):
        if data in catalog:
            return "%s [%s]" % (catalog[data], describe(data))
        return "%s [%s]" % (short_got(data), describe(data))

    def matches(item, data):
        if data == item.data:
            return True, []
        if args.convert_v3 and item.data[:4] != b"HEP3":
            diffs = compare_converted(item, data, window)
            return not diffs, diffs
        return False, []

    for i in range(max(len(items), len(got))):
        exp = items[i] if i < len(items) else None
        g = got[i] if i < len(got) else None
        if exp is None:
            errors.append("packet #%d: expected nothing more, got %s" % (i + 1, name_got(g)))
            continue
        if g is None:
            errors.append("packet #%d: expected %s [%s], got nothing (only %d packets arrived)"
                          % (i + 1, exp.label, describe(exp.data), len(got)))
            continue
        ok, diffs = matches(exp, g)
        if ok:
            continue
        if diffs and not (len(diffs) == 1 and diffs[0].startswith("payload")):
            errors.append("packet #%d: expected %s converted to HEPv3, got %s: %s"
                          % (i + 1, exp.label, name_got(g), "; ".join(diffs)))
        else:
            hint = ""
            if g[:4] == exp.data[:4] and len(g) == len(exp.data):
                at = next(k for k in range(len(g)) if g[k] != exp.data[k])
                hint = " (same length, first differing byte at offset %d)" % at
            errors.append("packet #%d: expected %s [%s], got %s%s"
                          % (i + 1, exp.label, describe(exp.data), name_got(g), hint))

    if errors:
        print("FAIL sink %s (%s): expected %d packets, got %d" % (args.sink, args.json, len(items), len(got)))
        for e in errors:
            print("  sink %s: %s" % (args.sink, e))
        print("  sink %s expected: %s" % (args.sink, " ".join(it.spec for it in items) or "(nothing)"))
        print("  sink %s got:      %s" % (args.sink, " ".join(short_got(g) for g in got)
                                           or "(nothing)"))
        return 1
    print("ok   sink %s got exactly %d packet%s%s" % (args.sink, len(got), "" if len(got) == 1 else "s",
                                                    (": " + " ".join(it.spec for it in items)) if items else ""))
    return 0


# ---------------------------------------------------------------- stats

# "stats (exit, 3 calls in store): {...}" (memory store) or "stats (exit): {...}"
STATS_RE = re.compile(r"stats \(([^,)]*)(?:, (\d+) calls in store)?\): (\{.*\})\s*$")


def cmd_stats(args):
    last = None
    with open(args.log, "r", errors="replace") as f:
        for line in f:
            m = STATS_RE.search(line)
            if m:
                last = m
    if last is None:
        print("FAIL stats: no 'stats (...): {json}' line in %s" % args.log)
        return 1
    try:
        stats = json.loads(last.group(3))
    except ValueError as e:
        print("FAIL stats: the last stats line of %s is not JSON: %s" % (args.log, e))
        return 1
    if last.group(2) is not None:
        stats["calls_in_store"] = int(last.group(2))
    failed = 0
    for expr in args.exprs:
        m = re.fullmatch(r"([\w.:/\[\]-]+?)(>=|>|=)(\d+)", expr)
        if not m:
            raise SystemExit("hepreplay: bad stats expression %r" % expr)
        path, op, want = m.group(1), m.group(2), int(m.group(3))
        node = stats
        for part in (path.split("/") if "/" in path else path.split(".")):
            if not isinstance(node, dict) or part not in node:
                node = None
                break
            node = node[part]
        ok = isinstance(node, int) and (node == want if op == "=" else node >= want if op == ">=" else node > want)
        if not ok:
            failed += 1
            print("FAIL stats (%s): %s: expected %s%d, got %s" % (last.group(1), path, op, want,
                                                                  "missing" if node is None else node))
    if failed:
        print("  stats were: %s" % json.dumps(stats, sort_keys=True))
        return 1
    print("ok   stats (%s): %s" % (last.group(1), " ".join(args.exprs)))
    return 0


# ---------------------------------------------------------------- misc

def cmd_decode(args):
    for spec in args.items:
        it = load_item(spec, args.data)
        try:
            d = decode(it.data)
            if "payload" in d:
                d["payload"] = "%d bytes '%s'" % (len(d["payload"]), first_line(d["payload"]))
            if "correlation_id" in d:
                d["correlation_id"] = d["correlation_id"].decode("utf-8", "replace")
            print("%s: %s" % (spec, d))
        except ValueError as e:
            print("%s: malformed (%s), %d bytes" % (spec, e, len(it.data)))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with v1/ v2/ v3/ captures")
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("send")
    s.add_argument("target")
    s.add_argument("items", nargs="+")
    s.add_argument("--delay-ms", type=float, default=5.0)
    s.add_argument("--tcp-mode", choices=("each", "glued", "split"), default="each")
    s.add_argument("--split-size", type=int, default=97)
    s.add_argument("--split-pause-ms", type=float, default=3.0)

    w = sub.add_parser("wait")
    w.add_argument("goals", nargs="+", metavar="FILE=N")
    w.add_argument("--timeout", type=float, default=5.0)
    w.add_argument("--settle-ms", type=float, default=200.0)

    c = sub.add_parser("check")
    c.add_argument("--sink", required=True)
    c.add_argument("--json", required=True)
    c.add_argument("--convert-v3", action="store_true")
    c.add_argument("--v1-ts-window")
    c.add_argument("items", nargs="*")

    st = sub.add_parser("stats")
    st.add_argument("--log", required=True)
    st.add_argument("exprs", nargs="+")

    d = sub.add_parser("decode")
    d.add_argument("items", nargs="+")

    args = p.parse_args()
    return {"send": cmd_send, "wait": cmd_wait, "check": cmd_check, "stats": cmd_stats,
            "decode": cmd_decode}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
