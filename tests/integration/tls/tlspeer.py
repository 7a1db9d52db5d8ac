#!/usr/bin/env python3
"""tlspeer.py - the TLS peers, senders and checks of test_tls.sh.

Python 3 standard library only (ssl).  Every frame is a HEPv3 packet
carrying a SIP MESSAGE whose Call-ID is PREFIX-I@tls.test, with a capture
id of the sender's choosing and a body of varying size (every 10th frame
about 30,000 bytes: one frame spans several TLS records).  A manifest has
one line per frame sent: "sha1 capture_id call_id".

  frames --spec SPEC --prefix P --out BIN --manifest M
      Writes the frames back to back to BIN (to pipe into openssl s_client).
      SPEC: "CID:N[,CID:N...]" (N frames with capture id CID, in order);
      a bare N means capture id 1.

  client HOST:PORT [--ca PEM | --no-verify] [--cert PEM --key KEY]
         [--server-name NAME] [--max-version 1.2|1.3]
         [--spec SPEC --prefix P --manifest M]
         [--then FILE --spec2 SPEC --manifest2 M2] [--wait-close S]
         [--timeout S]
      A TLS client: handshake, send the frames (one write each), then with
      --then print {"phase": 1, ...}, wait (at most 20 s) until FILE
      exists and send --spec2 more frames (prefix P-2) on the same
      connection; then with --wait-close wait up to S seconds for the peer
      to close (without: it reads for 0.2 s before closing, so that the
      close is not a reset).  Prints one JSON line: handshake ("ok" or the
      error), version, peer_serial, peer_cn, sent, send_error,
      closed_after (seconds, null: still open), close_error.  Always exits
      0 unless the arguments are wrong: the test judges.

  conns HOST:PORT --n N --ca PEM [--cert PEM --key KEY] [--hold S]
      Opens N TLS connections one after another (0.1 s apart), each sending
      one frame (prefix connI), then watches the ones open until HOLD
      seconds after their frame.  Prints {"conns": [{"handshake",
      "closed_after" (seconds after its frame; null: open), "close_error"},
      ...]}.

  plain HOST:PORT --wait-close S
      TCP, no TLS: sends one plaintext HEP3 frame, reports closed_after.

  stall HOST:PORT [--partial] --wait-close S
      TCP, sends nothing (--partial: the first 20 bytes of a TLS
      ClientHello), reports closed_after.

  server --port P --ready FILE --cert PEM --key KEY [--ca PEM
         [--require-cert]] --out FILE [--stall]
      A TLS server for heprouter's tls: targets (a thread per connection).
      --out gets JSON lines: {"ev": "conn", "peer": ..., "cn", "o",
      "version"}, {"ev": "frame", "sha1", "len", "call"}, {"ev":
      "handshake_failed", "error"}, {"ev": "closed"}.  --ready gets
      "listening tls:127.0.0.1:PORT" once bound.  --stall: accepts TCP
      connections and never answers (a handshake that never completes).
      SIGTERM ends it.

  udp udp:HOST:PORT --spec SPEC --prefix P --manifest M
      Sends the frames as UDP datagrams.

  probe udp:HOST:PORT --recv-port P --until-file F [--interval S] [--max S]
        [--ready FILE]
      A UDP sender and receiver at once: sends a frame (prefix "probe")
      every S seconds (default 0.02) to heprouter's UDP listener and
      receives on 127.0.0.1:P what heprouter routes there (--ready: FILE
      written once P is bound), until F exists (at most --max seconds,
      default 20), then 0.5 s more.  Prints JSON:
      sent, got, max_ms / p50_ms (send to arrival) and others: the count of
      the other frames received, by Call-ID prefix.

  check MANIFEST@KIND:FILE[@OPTION...]...
      For each argument: the frames of MANIFEST (those with a capture id
      in cid=C[,C...] when that option is given) must have arrived exactly
      once, with the same bytes, in order (unless the option unordered),
      and the other frames of MANIFEST not at all (cid=0: none may arrive);
      anything else received is an error unless the option unknown-ok
      (then frames not in MANIFEST are only counted).  KIND: hepdump
      (hepdump --raw JSON lines), server (this script's server --out) or
      stream (a raw HEP3 stream: what openssl s_server wrote to its
      stdout).  Prints a line per argument ("ok" or "FAIL", the figures in
      JSON) and exits 1 when any differs.
"""
import argparse
import hashlib
import json
import os
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import hepreplay as hr  # noqa: E402

CH_TIME_SEC, CH_TIME_USEC, CH_PROTO_TYPE, CH_CAPTURE_ID, CH_PAYLOAD = 0x0009, 0x000A, 0x000B, 0x000C, 0x000F
CALL_RE = re.compile(rb"Call-ID: ([^\r]+)\r\n")
BIG_EVERY, BIG_BODY = 10, 30000
DRAIN_S = 0.2               # client: reads this long before closing (see cmd_client)


# ---------------------------------------------------------------- frames

def frame(prefix, i, cid):
    size = BIG_BODY if i % BIG_EVERY == 0 else (i * 997) % 1500
    body = (b"%s-%d " % (prefix.encode(), i) * (size // 8 + 1))[:size]
    sip = (b"MESSAGE sip:tls@tls.test SIP/2.0\r\n"
           b"Via: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK-%s-%d\r\n"
           b"Call-ID: %s-%d@tls.test\r\nCSeq: %d MESSAGE\r\nContent-Length: %d\r\n\r\n"
           % (prefix.encode(), i, prefix.encode(), i, i, len(body))) + body
    return hr.hep3(hr.addr_chunks() + [
        hr.chunk(CH_TIME_SEC, struct.pack("!I", 1790000000 + i)),
        hr.chunk(CH_TIME_USEC, struct.pack("!I", i)),
        hr.chunk(CH_PROTO_TYPE, b"\x01"),
        hr.chunk(CH_CAPTURE_ID, struct.pack("!I", cid)),
        hr.chunk(CH_PAYLOAD, sip),
    ])


def parse_spec(spec):
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if ":" in part:
            cid, n = part.split(":")
            out.append((int(cid), int(n)))
        else:
            out.append((1, int(part)))
    return out


def build(spec, prefix):
    """[(cid, call_id, bytes)] for SPEC."""
    frames = []
    i = 0
    for cid, n in parse_spec(spec):
        for _ in range(n):
            i += 1
            frames.append((cid, "%s-%d@tls.test" % (prefix, i), frame(prefix, i, cid)))
    return frames


def write_manifest(path, frames, mode="w"):
    if not path:
        return
    with open(path, mode) as f:
        for cid, call, data in frames:
            f.write("%s %d %s\n" % (hashlib.sha1(data).hexdigest(), cid, call))


def call_of(data):
    m = CALL_RE.search(data)
    return m.group(1).decode(errors="replace") if m else "?"


def split_stream(buf):
    """Complete HEP3 frames of buf, and the bytes left over."""
    frames = []
    pos = 0
    while len(buf) - pos >= 6:
        if buf[pos:pos + 4] != b"HEP3":
            raise ValueError("no HEP3 magic at offset %d" % pos)
        n = struct.unpack("!H", buf[pos + 4:pos + 6])[0]
        if n < 6:
            raise ValueError("HEP3 length %d at offset %d" % (n, pos))
        if len(buf) - pos < n:
            break
        frames.append(buf[pos:pos + n])
        pos += n
    return frames, buf[pos:]


def host_port(text):
    text = re.sub(r"^(tls|tcp|udp):", "", text)
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


# ---------------------------------------------------------------- client side

def cmd_frames(a):
    frames = build(a.spec, a.prefix)
    with open(a.out, "wb") as f:
        for _, _, data in frames:
            f.write(data)
    write_manifest(a.manifest, frames)


def wait_close(s, seconds):
    """(seconds until the peer closed s, error text) or (None, text)."""
    t0 = time.monotonic()
    end = t0 + seconds
    err = None
    try:
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None, err
            s.settimeout(left)
            if s.recv(65536) in (b"", None):
                return round(time.monotonic() - t0, 3), err
    except socket.timeout:
        return None, err
    except ssl.SSLError as e:
        # a TLS alert (TLS 1.3: the server's verdict on our certificate
        # comes after our handshake is done) ends the connection too
        return round(time.monotonic() - t0, 3), "%s" % e
    except OSError as e:
        return round(time.monotonic() - t0, 3), "%s" % e


def send_all(s, frames, res):
    """Sends the frames, counting them in res["sent"] as they go."""
    for _, _, data in frames:
        s.sendall(data)
        res["sent"] += 1


def cmd_client(a):
    host, port = host_port(a.target)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if a.no_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    if a.max_version == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    res = {"handshake": None, "version": None, "peer_serial": None, "peer_cn": None, "sent": 0,
           "send_error": None, "closed_after": None, "close_error": None}
    frames = build(a.spec, a.prefix) if a.spec else []
    write_manifest(a.manifest, frames)
    raw = socket.create_connection((host, port), timeout=a.timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=a.server_name or host)
        res["handshake"] = "ok"
        res["version"] = s.version()
        if not a.no_verify:
            pc = s.getpeercert()
            res["peer_serial"] = pc.get("serialNumber")
            res["peer_cn"] = dict(x[0] for x in pc.get("subject", ())).get("commonName")
        else:
            der = s.getpeercert(binary_form=True)
            res["peer_sha1"] = hashlib.sha1(der).hexdigest() if der else None
    except (ssl.SSLError, OSError) as e:
        res["handshake"] = "%s" % e
        print(json.dumps(res), flush=True)
        return 0
    try:
        send_all(s, frames, res)
        if a.then:
            print(json.dumps({"phase": 1, "sent": res["sent"]}), flush=True)
            end = time.monotonic() + 20
            while not os.path.exists(a.then) and time.monotonic() < end:
                time.sleep(0.02)
            more = build(a.spec2, a.prefix + "-2")
            write_manifest(a.manifest2, more)
            send_all(s, more, res)
    except (ssl.SSLError, OSError) as e:
        res["send_error"] = "%s" % e
    # Reading before closing also takes in what the server sent unasked
    # (TLS 1.3 session tickets): closing a socket with unread data resets
    # the connection, and the peer may lose frames it has not read yet.
    res["closed_after"], res["close_error"] = wait_close(s, max(a.wait_close, DRAIN_S))
    if not a.wait_close:
        res["closed_after"] = res["close_error"] = None
    try:
        s.close()
    except OSError:
        pass
    print(json.dumps(res), flush=True)
    return 0


def cmd_conns(a):
    host, port = host_port(a.target)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(a.ca)
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)
    conns, results = [], []
    for i in range(a.n):
        r = {"handshake": None, "closed_after": None}
        results.append(r)
        try:
            raw = socket.create_connection((host, port), timeout=5)
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(frame("conn%d" % (i + 1), 1, 1))
            r["handshake"] = "ok"
            conns.append((s, r, time.monotonic()))
        except (ssl.SSLError, OSError) as e:
            r["handshake"] = "%s" % e
        time.sleep(0.1)
    # then how long each open one stays open after its frame
    for s, r, t0 in conns:
        left = t0 + a.hold - time.monotonic()
        closed, err = wait_close(s, max(left, 0.01))
        if closed is not None:
            r["closed_after"] = round(time.monotonic() - t0, 3)
        r["close_error"] = err
    print(json.dumps({"conns": results}), flush=True)


def cmd_plain(a):
    s = socket.create_connection(host_port(a.target), timeout=5)
    data = build("1", "plain")[0][2]
    t0 = time.monotonic()
    err = None
    try:
        s.sendall(data)
    except OSError as e:
        err = "%s" % e
    closed, cerr = wait_close(s, a.wait_close)
    print(json.dumps({"send_error": err, "closed_after": closed, "close_error": cerr,
                      "elapsed": round(time.monotonic() - t0, 3)}), flush=True)


def client_hello_head():
    """The first 20 bytes of a real ClientHello (a record header and the
    start of the handshake message)."""
    a, b = socket.socketpair()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inb, outb, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    a.close()
    b.close()
    return outb.read()[:20]


def cmd_stall(a):
    s = socket.create_connection(host_port(a.target), timeout=5)
    if a.partial:
        s.sendall(client_hello_head())
    closed, err = wait_close(s, a.wait_close)
    print(json.dumps({"closed_after": closed, "close_error": err}), flush=True)


def cmd_udp(a):
    host, port = host_port(a.target)
    frames = build(a.spec, a.prefix)
    write_manifest(a.manifest, frames)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _, _, data in frames:
        s.sendto(data, (host, port))
        time.sleep(a.delay)
    print(json.dumps({"sent": len(frames)}), flush=True)


def cmd_probe(a):
    host, port = host_port(a.target)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("127.0.0.1", a.recv_port))
    rx.settimeout(0.005)
    if a.ready:
        with open(a.ready + ".tmp", "w") as f:
            f.write("listening udp:127.0.0.1:%d\n" % a.recv_port)
        os.rename(a.ready + ".tmp", a.ready)
    sent_at = {}
    delays = []
    others = {}
    i = 0
    t_end = time.monotonic() + a.max
    next_send = time.monotonic()
    stop_at = None
    while True:
        now = time.monotonic()
        if stop_at is None and (os.path.exists(a.until_file) or now >= t_end):
            stop_at = now + 0.5
        if stop_at is not None and now >= stop_at:
            break
        if stop_at is None and now >= next_send:
            i += 1
            call = "probe-%d@tls.test" % i
            tx.sendto(frame("probe", i, 1), (host, port))
            sent_at[call] = time.monotonic()
            next_send += a.interval
        try:
            data = rx.recv(70000)
        except socket.timeout:
            continue
        call = call_of(data)
        if call in sent_at:
            delays.append((time.monotonic() - sent_at.pop(call)) * 1000)
        else:
            p = call.rsplit("-", 1)[0]
            others[p] = others.get(p, 0) + 1
    delays.sort()
    print(json.dumps({"sent": i, "got": len(delays),
                      "max_ms": round(delays[-1], 1) if delays else None,
                      "p50_ms": round(delays[len(delays) // 2], 1) if delays else None,
                      "others": others}), flush=True)


# ---------------------------------------------------------------- server

class Server:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.out = open(a.out, "a", buffering=1)
        self.ctx = None
        if not a.stall:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(a.cert, a.key)
            if a.ca:
                self.ctx.load_verify_locations(a.ca)
                self.ctx.verify_mode = ssl.CERT_REQUIRED if a.require_cert else ssl.CERT_OPTIONAL
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", a.port))
        self.ls.listen(64)
        self.held = []

    def log(self, **ev):
        with self.lock:
            self.out.write(json.dumps(ev) + "\n")

    def serve(self):
        port = self.ls.getsockname()[1]
        tmp = self.a.ready + ".tmp"
        with open(tmp, "w") as f:
            f.write("listening tls:127.0.0.1:%d\n" % port)
        os.rename(tmp, self.a.ready)
        while True:
            c, peer = self.ls.accept()
            if self.a.stall:
                self.held.append(c)
                self.log(ev="conn", peer="%s:%d" % peer, stalled=True)
                continue
            threading.Thread(target=self.conn, args=(c, peer), daemon=True).start()

    def conn(self, c, peer):
        peer = "%s:%d" % peer
        c.settimeout(10)
        try:
            s = self.ctx.wrap_socket(c, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.log(ev="handshake_failed", peer=peer, error="%s" % e)
            c.close()
            return
        pc = s.getpeercert() or {}
        subj = dict(x[0] for x in pc.get("subject", ()))
        self.log(ev="conn", peer=peer, cn=subj.get("commonName"), o=subj.get("organizationName"),
                 version=s.version())
        s.settimeout(None)
        buf = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
                frames, buf = split_stream(buf)
                for f in frames:
                    self.log(ev="frame", peer=peer, sha1=hashlib.sha1(f).hexdigest(), len=len(f),
                             call=call_of(f))
        except (ssl.SSLError, OSError, ValueError) as e:
            self.log(ev="error", peer=peer, error="%s" % e)
        self.log(ev="closed", peer=peer, leftover=len(buf))
        try:
            s.close()
        except OSError:
            pass


def cmd_server(a):
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    Server(a).serve()


# ---------------------------------------------------------------- check

def got_frames(a):
    out = []
    if a.hepdump:
        with open(a.hepdump, errors="replace") as f:
            for line in f:
                if not line.startswith('{"n":'):
                    continue
                try:
                    raw = bytes.fromhex(json.loads(line)["raw"])
                except (ValueError, KeyError):
                    continue
                out.append(hashlib.sha1(raw).hexdigest())
    elif a.server:
        with open(a.server) as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("ev") == "frame":
                    out.append(ev["sha1"])
    else:
        with open(a.stream, "rb") as f:
            frames, rest = split_stream(f.read())
        out = [hashlib.sha1(x).hexdigest() for x in frames]
        if rest:
            print("check: %d bytes after the last whole frame" % len(rest), file=sys.stderr)
    return out


def check_one(spec):
    """One "MANIFEST@KIND:FILE[@cid=C,...][@unknown-ok][@unordered]": (ok, result)."""
    parts = spec.split("@")
    manifest, (kind, path), opts = parts[0], parts[1].split(":", 1), parts[2:]
    a = argparse.Namespace(hepdump=None, server=None, stream=None, cid=None, ignore_unknown=False,
                           unordered=False)
    if kind not in ("hepdump", "server", "stream"):
        raise SystemExit("tlspeer check: kind must be hepdump, server or stream: %r" % spec)
    setattr(a, kind, path)
    for o in opts:
        if o.startswith("cid="):
            a.cid = o[4:]
        elif o == "unknown-ok":
            a.ignore_unknown = True
        elif o == "unordered":
            a.unordered = True
        else:
            raise SystemExit("tlspeer check: unknown option %r in %r" % (o, spec))
    want = []
    refused = set()
    cids = {int(x) for x in a.cid.split(",")} if a.cid else None
    with open(manifest) as f:
        for line in f:
            sha, cid, _call = line.split()
            if cids is None or int(cid) in cids:
                want.append(sha)
            else:
                refused.add(sha)
    try:
        got = got_frames(a)
    except (OSError, ValueError) as e:
        return False, {"error": "%s" % e}
    wanted = set(want)
    unknown = [g for g in got if g not in wanted and g not in refused]
    passed = [g for g in got if g in refused]
    mine = [g for g in got if g in wanted]
    counts = {}
    for g in mine:
        counts[g] = counts.get(g, 0) + 1
    dup = sum(n - 1 for n in counts.values())
    missing = sum(1 for w in want if w not in counts)
    in_order = True
    if not a.unordered:
        seen = []
        for g in mine:
            if not seen or seen[-1] != g:
                seen.append(g)
        in_order = [w for w in want if w in counts] == seen
    res = {"expected": len(want), "delivered": len(mine) - dup, "missing": missing, "duplicated": dup,
           "unknown": len(unknown), "in_order": in_order}
    if refused:
        res["not_expected"] = len(passed)
    ok = missing == 0 and dup == 0 and in_order and not passed and (a.ignore_unknown or not unknown)
    return ok, res


def cmd_check(a):
    failed = 0
    for spec in a.specs:
        ok, res = check_one(spec)
        man, (_, path) = spec.split("@")[0], spec.split("@")[1].split(":", 1)
        print("%s %s in %s: %s" % ("ok  " if ok else "FAIL", os.path.basename(man), os.path.basename(path),
                                  json.dumps(res)))
        failed += not ok
    return 1 if failed else 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    f = sub.add_parser("frames")
    f.add_argument("--spec", required=True)
    f.add_argument("--prefix", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--manifest")

    c = sub.add_parser("client")
    c.add_argument("target")
    c.add_argument("--ca")
    c.add_argument("--no-verify", action="store_true")
    c.add_argument("--cert")
    c.add_argument("--key")
    c.add_argument("--server-name")
    c.add_argument("--max-version", choices=["1.2", "1.3"])
    c.add_argument("--spec", default="")
    c.add_argument("--prefix", default="c")
    c.add_argument("--manifest")
    c.add_argument("--then")
    c.add_argument("--spec2", default="")
    c.add_argument("--manifest2")
    c.add_argument("--wait-close", type=float, default=0)
    c.add_argument("--timeout", type=float, default=10)

    cn = sub.add_parser("conns")
    cn.add_argument("target")
    cn.add_argument("--n", type=int, default=3)
    cn.add_argument("--ca", required=True)
    cn.add_argument("--cert")
    cn.add_argument("--key")
    cn.add_argument("--hold", type=float, default=5)

    pl = sub.add_parser("plain")
    pl.add_argument("target")
    pl.add_argument("--wait-close", type=float, default=5)

    st = sub.add_parser("stall")
    st.add_argument("target")
    st.add_argument("--partial", action="store_true")
    st.add_argument("--wait-close", type=float, default=5)

    s = sub.add_parser("server")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--ready", required=True)
    s.add_argument("--cert")
    s.add_argument("--key")
    s.add_argument("--ca")
    s.add_argument("--require-cert", action="store_true")
    s.add_argument("--out", required=True)
    s.add_argument("--stall", action="store_true")

    u = sub.add_parser("udp")
    u.add_argument("target")
    u.add_argument("--spec", required=True)
    u.add_argument("--prefix", required=True)
    u.add_argument("--manifest")
    u.add_argument("--delay", type=float, default=0.001)

    pr = sub.add_parser("probe")
    pr.add_argument("target")
    pr.add_argument("--recv-port", type=int, required=True)
    pr.add_argument("--until-file", required=True)
    pr.add_argument("--interval", type=float, default=0.02)
    pr.add_argument("--max", type=float, default=20)
    pr.add_argument("--ready")

    k = sub.add_parser("check")
    k.add_argument("specs", nargs="+", metavar="MANIFEST@KIND:FILE[@OPTION...]")

    a = p.parse_args()
    if a.cmd == "client" and not a.no_verify and not a.ca:
        p.error("client: --ca or --no-verify")
    if a.cmd == "server" and not a.stall and not (a.cert and a.key):
        p.error("server: --cert and --key (or --stall)")
    return {"frames": cmd_frames, "client": cmd_client, "conns": cmd_conns, "plain": cmd_plain, "stall": cmd_stall,
            "server": cmd_server, "udp": cmd_udp, "probe": cmd_probe, "check": cmd_check}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
