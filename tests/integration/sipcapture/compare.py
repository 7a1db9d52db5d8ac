#!/usr/bin/env python3
"""compare.py - check what Kamailio sipcapture logged against the captures.

Used by tests/integration/test_sipcapture.sh.  Python 3 standard library.

  compare.py --data DIR --log FILE --from-line N [--capture-id ID]
             [--node-name NAME] [--v1-window A:B] ITEM...

ITEM is vV/NNN (a capture in DIR/vV/NNN.hep, described by DIR/vV/manifest.tsv),
in the order sent.  FILE is the receiver's stderr; only its "SC-HEP|" lines
after line N (1-based count of lines already there) are read, one per packet
received, in order.  Every field is compared with the manifest row:

  ver 3, fam, proto, src, dst, sport, dport, ptype (v1/v2: 1), cid (the
  manifest's, or --capture-id; v1 has none: heprouter writes none unless
  --capture-id, so the field must be empty), corr, node (--node-name or
  empty), plen (payload_len), first (first_line), callid ("Call-ID: " +
  call_id), cseq ("CSeq: " + cseq_num + " " + cseq_method); tsec: v2/v3
  equal to ts_sec, v1 within the window A:B (seconds, the send window:
  heprouter stamps the time it received the packet); tusec: v2/v3 equal to
  the original's microseconds, v1 < 1000000.  --identical: the whole
  datagram equals the capture file.
  From the raw datagram (raw=, hex of what the module received): the
  payload chunk is byte-identical to the original payload, and the node name
  chunk 0x0013 is --node-name (or absent).  $hep(0x013) itself has no
  getter in Kamailio 5.6 (-1, printed 4294967295, when the chunk exists).

Prints one line per difference and a per-field summary; exits 1 on any
difference, on a count mismatch, or on an "SC-SIP|" line (a datagram the
receiver's core parsed as SIP instead of handing it to sipcapture).
"""

import argparse
import collections
import csv
import os
import struct
import sys


def load_manifest(data, version, cache={}):
    if version not in cache:
        path = os.path.join(data, "v%s" % version, "manifest.tsv")
        with open(path, newline="") as f:
            rows = [l for l in f if not l.startswith("# ")]
        cache[version] = {r["file"]: r for r in csv.DictReader(rows, delimiter="\t")}
    return cache[version]


def parse_line(line):
    body = line[line.index("SC-HEP|") + len("SC-HEP|"):].rstrip("\n")
    out = {}
    for part in body.split("|"):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k] = v
    return out


def raw_chunks(hexstr):
    """{(vendor, type): value} of the HEP3 datagram the receiver logged."""
    try:
        data = bytes.fromhex(hexstr)
    except ValueError:
        return None
    if len(data) < 6 or data[:4] != b"HEP3":
        return None
    total = struct.unpack("!H", data[4:6])[0]
    if total != len(data):
        return None
    out, i = {}, 6
    while i + 6 <= total:
        vendor, ctype, clen = struct.unpack("!HHH", data[i:i + 6])
        if clen < 6 or i + clen > total:
            return None
        out[(vendor, ctype)] = data[i + 6:i + clen]
        i += clen
    return out if i == total else None


def original(data, version, name):
    """(file bytes, SIP payload, ts_usec or None) of a capture file."""
    with open(os.path.join(data, "v%s" % version, name), "rb") as f:
        b = f.read()
    if version == "3":
        c = raw_chunks(b.hex()) or {}
        us = c.get((0, 0x0a))
        return b, c.get((0, 0x0f)), struct.unpack("!I", us)[0] if us else None
    hl = b[1]
    if version == "2":
        # v2 time block: sender's host order (little-endian from x86)
        return b, b[hl + 12:], struct.unpack("<I", b[hl + 4:hl + 8])[0]
    return b, b[hl:], None


def expected(row, version, args):
    e = collections.OrderedDict()
    e["ver"] = "3"
    e["fam"] = row["family"]
    e["proto"] = row["ip_proto"]
    e["src"] = row["src_ip"]
    e["dst"] = row["dst_ip"]
    e["sport"] = row["src_port"]
    e["dport"] = row["dst_port"]
    e["ptype"] = row["proto_type"] or "1"
    if args.capture_id is not None:
        e["cid"] = args.capture_id
    else:
        e["cid"] = row["capture_id"]
    e["corr"] = row["correlation_id"]
    # $hep(0x013) has no getter in Kamailio 5.6: -1 when present, "" when not
    e["node"] = "4294967295" if args.node_name else ""
    e["raw_node"] = args.node_name
    e["raw_payload"] = None     # filled by the caller
    e["plen"] = row["payload_len"]
    e["first"] = row["first_line"]
    e["callid"] = "Call-ID: " + row["call_id"]
    e["cseq"] = "CSeq: %s %s" % (row["cseq_num"], row["cseq_method"])
    e["tsec"] = row["ts_sec"] if version != "1" else None
    return e


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--from-line", type=int, default=0)
    p.add_argument("--capture-id")
    p.add_argument("--node-name")
    p.add_argument("--v1-window")
    p.add_argument("--identical", action="store_true",
                   help="the datagram must be byte-identical to the capture file")
    p.add_argument("--show", type=int, default=0, help="print the first N logged lines")
    p.add_argument("items", nargs="+")
    args = p.parse_args()

    with open(args.log, encoding="utf-8", errors="replace") as f:
        lines = f.readlines()[args.from_line:]
    got = [parse_line(l) for l in lines if "SC-HEP|" in l]
    sip = [l.rstrip("\n") for l in lines if "SC-SIP|" in l]
    errors = []
    for l in sip:
        errors.append("receiver core parsed a datagram as SIP: %r" % l[:200])
    if len(got) != len(args.items):
        errors.append("receiver logged %d packets, %d were sent" % (len(got), len(args.items)))
    for g in got[:args.show]:
        print("    logged: " + "|".join("%s=%s" % (k, v if k != "raw" else v[:32] + "...")
                                       for k, v in g.items()))

    win = None
    if args.v1_window:
        a, b = args.v1_window.split(":")
        win = (int(float(a)), int(float(b)))
    fields = collections.Counter()
    bad = collections.Counter()
    for i, item in enumerate(args.items):
        version, name = item.split("/")
        version = version.lstrip("v")
        row = load_manifest(args.data, version)[name + ".hep"]
        if i >= len(got):
            break
        g = got[i]
        orig = original(args.data, version, name + ".hep")
        if args.identical:
            fields["identical"] += 1
            if g.get("raw", "").lower() != orig[0].hex():
                bad["identical"] += 1
                errors.append("packet %d (%s): not byte-identical to the file: got %s, file %s"
                              % (i + 1, item, g.get("raw", "")[:80], orig[0].hex()[:80]))
        raw = raw_chunks(g.get("raw", ""))
        if raw is None:
            errors.append("packet %d (%s): raw datagram not a valid HEP3 packet: %s"
                          % (i + 1, item, g.get("raw", "")[:64]))
            raw = {}
        for k, v in expected(row, version, args).items():
            fields[k] += 1
            if k == "raw_node":
                got_v = raw.get((0, 0x13))
                ok = got_v == (v.encode() if v is not None else None)
                if not ok:
                    bad[k] += 1
                    errors.append("packet %d (%s): node name chunk 0x0013: expected %r, got %r"
                                  % (i + 1, item, v, got_v))
                continue
            if k == "raw_payload":
                want_p = orig[1]
                got_p = raw.get((0, 0x0f))
                ok = want_p is not None and got_p == want_p
                if not ok:
                    bad[k] += 1
                    errors.append("packet %d (%s): payload chunk differs from the original: "
                                  "%s bytes vs %s bytes" % (i + 1, item, len(want_p or b""), len(got_p or b"")))
                continue
            if k == "tsec" and v is None:
                ok = win is not None and g.get(k, "").isdigit() and win[0] <= int(g[k]) <= win[1]
                v = "within %s" % (args.v1_window,)
            else:
                ok = g.get(k) == v
            if not ok:
                bad[k] += 1
                errors.append("packet %d (%s): %s: expected %r, got %r" % (i + 1, item, k, v, g.get(k)))
        fields["tusec"] += 1
        t = g.get("tusec", "")
        want_us = orig[2]
        if not (t.isdigit() and int(t) < 1000000 and (want_us is None or int(t) == want_us)):
            bad["tusec"] += 1
            errors.append("packet %d (%s): tusec: expected %s, got %r"
                          % (i + 1, item, want_us if want_us is not None else "< 1000000", t))
    summary = ", ".join("%s %d/%d" % (k, fields[k] - bad[k], fields[k]) for k in fields)
    print("    %d sent, %d logged; fields equal: %s" % (len(args.items), len(got), summary))
    for e in errors[:40]:
        print("    MISMATCH " + e)
    if len(errors) > 40:
        print("    ... %d more" % (len(errors) - 40))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
