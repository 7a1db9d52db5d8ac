#!/usr/bin/env python3
"""check.py - what test_security.sh asserts, read from heprouter's and
hepdump's output.  Each subcommand prints one line per figure; several
subcommands may be given, separated by "+" arguments (one Python start for
all of a case's checks); exits 1 when any figure differs from what is
expected.

  wait-stats --timeout S --out FILE HEPROUTER SOCKET PATH=N...
      Asks `HEPROUTER ctl -s SOCKET stats` until the answer's counters
      match (they are published by a housekeeping round) or S seconds have
      passed; writes the last answer to FILE and checks it as `json` does.

  delivered SINK.json LABEL=N...
      The hepdump sink (JSON lines) holds exactly N packets whose SIP
      Call-ID is LABEL-*@sec.test (hepsend.py's labels), for each LABEL, and
      no packet of any other label.

  keys SINK.json LABEL=KEY...
      Every packet of LABEL at the sink carries auth key KEY (chunk 0x000e),
      or none at all when KEY is "-" (no auth_key field, no chunk of type 14).

  strip KEPT.json STRIPPED.json LABEL...
      Each packet of LABEL at the STRIPPED sink is, byte for byte, the one
      of the same Call-ID at the KEPT sink with its chunk 0x000e taken out
      (and the HEP3 total length lowered by that chunk's size).

  json FILE PATH=N...
      FILE holds one JSON object (heprouter ctl stats); PATH is a/b/c.

  logstats FILE PATH=N...
      The last "stats (...): {json}" line of heprouter's stderr (SIGUSR1,
      or the one at exit), checked as `json` does.

  metrics FILE NAME[{LABEL="V",...}]=N...
      Prometheus text: the sum of the samples of NAME whose labels include
      the given ones is N.

  log FILE --interval-s I --span-s S [--tcp] [--from REASON=ADDR]... REASON=N...
      heprouter's stderr: the "warn: N packets refused (REASON) from SOURCE"
      lines (with --tcp: "N TCP connections refused (REASON) from SOURCE")
      add up to N for each REASON listed and to 0 for the other reasons;
      every line names a source (ADDR:PORT); at most one line per reason
      and log.interval (I seconds) over the S seconds heprouter ran (plus
      one: the window cut at exit), and fewer lines than refusals when
      there were 3 or more (each reason's refusals come in short bursts).
      --from REASON=ADDR: some line of REASON names ADDR (e.g. 127.0.0.2).

  secrets FILE... -- TEXT...
      None of the FILEs contains any of the TEXTs (auth keys must never be
      logged or answered).

  serve
      Reads commands from stdin, one a line, as shell words: any of the
      above (with "+"), or "send ARGS..." (hepsend.py ARGS, its JSON line
      printed); after each command's output prints "== rc N".  A test
      starts Python once this way instead of once per send and check.
"""
import json
import os
import re
import struct
import subprocess
import sys
import time

def fail(msgs):
    for m in msgs:
        print("    FAIL %s" % m)
    return 1 if msgs else 0


def sink_packets(path):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.startswith('{"n":'):
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                continue        # a line being written
    return out


def label_of(rec):
    cid = (rec.get("sip") or {}).get("call_id", "")
    m = re.fullmatch(r"(.+)-\d+@sec\.test", cid)
    return m.group(1) if m else "(no label: %s)" % cid


def expectations(args, conv=int):
    exp = {}
    for a in args:
        k, _, v = a.rpartition("=")
        if not k:
            raise SystemExit("check.py: expected KEY=VALUE, got %r" % a)
        exp[k] = conv(v)
    return exp


def cmd_delivered(args):
    got = {}
    for rec in sink_packets(args[0]):
        got[label_of(rec)] = got.get(label_of(rec), 0) + 1
    exp = expectations(args[1:])
    errs = []
    for label, n in exp.items():
        g = got.get(label, 0)
        print("    %s: %d delivered (expected %d)" % (label, g, n))
        if g != n:
            errs.append("%s: %d packets at the sink, expected %d" % (label, g, n))
    for label, g in sorted(got.items()):
        if label not in exp:
            errs.append("%s: %d unexpected packets at the sink" % (label, g))
    return fail(errs)


def cmd_keys(args):
    recs = sink_packets(args[0])
    errs = []
    for label, key in expectations(args[1:], str).items():
        mine = [r for r in recs if label_of(r) == label]
        if not mine:
            errs.append("%s: no packet at the sink" % label)
        for r in mine:
            has_chunk = any(c.get("vendor") == 0 and c.get("type") == 14 for c in r.get("chunks", []))
            k = r.get("auth_key")
            if key == "-":
                if k is not None or has_chunk:
                    errs.append("packet %s: auth key %r (chunk 0x000e %s), expected none"
                                % (r["sip"]["call_id"], k, "present" if has_chunk else "absent"))
            elif k != key:
                errs.append("packet %s: auth key %r, expected %r" % (r["sip"]["call_id"], k, key))
        print("    %s: %d packet(s), auth keys %s (expected %s)"
              % (label, len(mine), sorted({str(r.get("auth_key")) for r in mine}),
                 "none" if key == "-" else repr(key)))
    return fail(errs)


def without_auth_key(raw):
    """HEP3 bytes with every vendor-0 chunk 14 removed, total length fixed."""
    out, pos = [], 6
    while pos + 6 <= len(raw):
        vendor, ctype, clen = struct.unpack("!HHH", raw[pos:pos + 6])
        if clen < 6:
            break
        if not (vendor == 0 and ctype == 14):
            out.append(raw[pos:pos + clen])
        pos += clen
    body = b"".join(out)
    return raw[:4] + struct.pack("!H", 6 + len(body)) + body


def cmd_strip(args):
    kept = {r["sip"]["call_id"]: bytes.fromhex(r["raw"]) for r in sink_packets(args[0]) if "raw" in r}
    stripped = [r for r in sink_packets(args[1]) if label_of(r) in args[2:]]
    errs = []
    for r in stripped:
        cid = r["sip"]["call_id"]
        if "raw" not in r:
            errs.append("%s: no raw bytes (hepdump --raw)" % cid)
        elif cid not in kept:
            errs.append("%s: not at the kept sink" % cid)
        elif bytes.fromhex(r["raw"]) != without_auth_key(kept[cid]):
            errs.append("%s: %d bytes, not the kept packet (%d bytes) without its auth key chunk"
                        % (cid, len(r["raw"]) // 2, len(kept[cid])))
    print("    %d stripped packet(s) compared with the kept ones: %s"
          % (len(stripped), "identical but for chunk 0x000e" if not errs else "DIFFERENT"))
    if not stripped:
        errs.append("no packet of %s at the stripped sink" % " ".join(args[2:]))
    return fail(errs)


def json_path(doc, path):
    node = doc
    for part in path.split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def cmd_json(args):
    with open(args[0]) as f:
        doc = json.load(f)
    errs = []
    shown = []
    for path, want in expectations(args[1:]).items():
        node = json_path(doc, path)
        shown.append("%s=%s" % (path, node))
        if node != want:
            errs.append("%s: %s, expected %d" % (path, "missing" if node is None else node, want))
    print("    stats: %s" % " ".join(shown))
    return fail(errs)


def cmd_logstats(args):
    last = None
    with open(args[0], errors="replace") as f:
        for line in f:
            m = re.search(r"stats \([^)]*\): (\{.*\})\s*$", line)
            if m:
                last = m.group(1)
    if last is None:
        return fail(["no stats line in %s" % args[0]])
    out = args[0] + ".stats.json"
    with open(out, "w") as f:
        f.write(last)
    return cmd_json([out] + args[1:])


def cmd_wait_stats(args):
    timeout, out = None, None
    while args and args[0].startswith("--"):
        opt = args.pop(0)
        if opt == "--timeout":
            timeout = float(args.pop(0))
        elif opt == "--out":
            out = args.pop(0)
        else:
            raise SystemExit("check.py: wait-stats: unknown option %s" % opt)
    binary, sock, exprs = args[0], args[1], args[2:]
    want = expectations(exprs)
    deadline = time.monotonic() + timeout
    answer = "{}"
    while True:
        try:
            r = subprocess.run([binary, "ctl", "-s", sock, "stats"], capture_output=True, timeout=5, text=True)
            if r.returncode == 0:
                answer = r.stdout
        except subprocess.TimeoutExpired:
            pass
        try:
            doc = json.loads(answer)
        except ValueError:
            doc = {}
        if all(json_path(doc, p) == n for p, n in want.items()) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    with open(out, "w") as f:
        f.write(answer)
    return cmd_json([out] + exprs)


def cmd_metrics(args):
    with open(args[0]) as f:
        lines = [ln for ln in f if ln.strip() and not ln.startswith("#")]
    errs = []
    shown = []
    for spec, want in expectations(args[1:]).items():
        m = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})?", spec)
        name, labels = m.group(1), dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        total, seen = 0, False
        for ln in lines:
            sm = re.match(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)", ln)
            if not sm or sm.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', sm.group(2) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(sm.group(3))
                seen = True
        shown.append("%s=%s" % (spec, int(total) if seen else "absent"))
        if not seen or total != want:
            errs.append("%s: %s, expected %d" % (spec, total if seen else "absent", want))
    print("    metrics: %s" % " ".join(shown))
    return fail(errs)


def cmd_log(args):
    interval, tcp, froms, rest = None, False, [], []
    it = iter(args[1:])
    for a in it:
        if a == "--interval-s":
            interval = float(next(it))
        elif a == "--tcp":
            tcp = True
        elif a == "--from":
            froms.append(next(it).split("=", 1))
        elif a == "--span-s":
            rest.append(("span", float(next(it))))
        else:
            rest.append(("exp", a))
    exp = expectations([a for kind, a in rest if kind == "exp"])
    span = next((v for kind, v in rest if kind == "span"), None)
    with open(args[0], errors="replace") as f:
        lines = f.read().splitlines()
    what = r"TCP connections" if tcp else r"packets"
    line_re = re.compile(r"\bwarn: (\d+) %s refused \((\w+)\) from (.+)$" % what)
    by_reason = {}
    errs = []
    for ln in lines:
        m = line_re.search(ln)
        if not m:
            continue
        n, reason, source = int(m.group(1)), m.group(2), m.group(3)
        by_reason.setdefault(reason, []).append((n, source, ln))
        if not re.search(r"(\b127\.0\.0\.\d+|\[[0-9a-f:]+\]):\d+\b", source):
            errs.append("no source address:port in %r" % ln)
    for reason in sorted(set(exp) | set(by_reason)):
        got = by_reason.get(reason, [])
        total = sum(n for n, _, _ in got)
        want = exp.get(reason, 0)
        print("    log %s (%s): %d line(s) adding up to %d (expected %d)%s"
              % (reason, what, len(got), total, want,
                 (": " + " | ".join(ln.split("warn: ", 1)[1] for _, _, ln in got[:3])) if got else ""))
        if total != want:
            errs.append("%s: the log lines add up to %d, the refusals were %d" % (reason, total, want))
        if interval and span is not None and len(got) > int(span / interval) + 2:
            errs.append("%s: %d lines in %.1f s with log.interval %g s (more than one per interval)"
                        % (reason, len(got), span, interval))
        if want >= 3 and len(got) >= want:
            errs.append("%s: %d lines for %d refusals: one per packet, not a summary" % (reason, len(got), want))
    for reason, addr in froms:
        if not any(re.search(r"(?<![\d.])%s:\d+\b" % re.escape(addr), src) for _, src, _ in by_reason.get(reason, [])):
            errs.append("%s: no line names %s" % (reason, addr))
    return fail(errs)


def cmd_secrets(args):
    sep = args.index("--")
    files, texts = args[:sep], args[sep + 1:]
    errs = []
    for path in files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        for t in texts:
            if t.encode() in data:
                errs.append("%s contains the key %r" % (path, t))
    print("    keys in %d file(s): %s" % (len(files), "none" if not errs else "FOUND"))
    return fail(errs)


COMMANDS = {"delivered": cmd_delivered, "keys": cmd_keys, "strip": cmd_strip, "json": cmd_json,
            "wait-stats": cmd_wait_stats, "logstats": cmd_logstats, "metrics": cmd_metrics, "log": cmd_log, "secrets": cmd_secrets}


def run(argv):
    """Runs the subcommands of argv ("+" between them); 1 if any failed."""
    commands, cur = [], []
    for a in list(argv) + ["+"]:
        if a == "+":
            if cur:
                commands.append(cur)
            cur = []
        else:
            cur.append(a)
    for c in commands:
        if c[0] not in COMMANDS:
            raise SystemExit("check.py: unknown subcommand %s" % c[0])
    failed = 0
    for c in commands:
        failed |= COMMANDS[c[0]](c[1:])
    return failed


def serve():
    """One command a line on stdin (shell words): a check.py command line,
    or "send" and hepsend.py's arguments (its JSON result printed); after
    each command's output a line "== rc N" with its status."""
    import shlex
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import hepsend
    while True:
        line = sys.stdin.readline()
        if not line:
            return 0
        try:
            argv = shlex.split(line)
            if not argv:
                continue
            if argv[0] == "send":
                print(json.dumps(hepsend.run(argv[1:])))
                rc = 0
            else:
                rc = run(argv)
        except (SystemExit, Exception) as e:      # a bad command: say so, go on
            print("    ERROR %s: %s" % (type(e).__name__, e))
            rc = 2
        print("== rc %d" % rc, flush=True)


def main():
    if len(sys.argv) == 2 and sys.argv[1] == "serve":
        return serve()
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    return run(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
