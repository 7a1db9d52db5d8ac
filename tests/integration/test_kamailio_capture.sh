#!/usr/bin/env bash
# The committed test vectors still match what the real sender sends.
#
# Runs tests/data/capture-kamailio.sh (real Kamailio 5.6 siptrace with
# hep_version 1, 2 and 3, real sipp UACs and UAS, dumpcap on lo) into a
# scratch directory, then checks each fresh capture against the committed
# one in tests/data/kamailio: the same number of packets, the same message
# in each position (method or status, CSeq), the same HEP header fields and,
# for v3, the same chunk order; and heprouter's codec (hepconv) decodes
# every fresh packet to the addresses, ports and payload length that
# dumpcap saw on the wire.  Ports, tags and Call-IDs differ between runs
# and are not compared.
#
# Needs: kamailio, sipp, dumpcap, python3 (scripts/deps.sh test installs
# them); root or CAP_NET_RAW for dumpcap.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
it_init 240
it_require_cmd kamailio sipp dumpcap python3
HEPCONV=$(it_bin tests/integration/hepconv) || exit 1

CAPTURE_OUT="$IT_TMP/capture" bash "$IT_SRCDIR/tests/data/capture-kamailio.sh" \
    >"$IT_TMP/capture.log" 2>&1 || { tail -n 40 "$IT_TMP/capture.log"; it_fail "capture-kamailio.sh failed"; }
it_log "captured: $(tail -n 1 "$IT_TMP/capture.log")"

for v in 1 2 3; do
    "$HEPCONV" decode "$IT_TMP/capture/v$v"/*.hep >"$IT_TMP/decoded-v$v.json" \
        || it_fail "hepconv could not decode a fresh v$v packet: $(grep error "$IT_TMP/decoded-v$v.json" | head -n 3)"
done

python3 - "$IT_SRCDIR/tests/data/kamailio" "$IT_TMP/capture" "$IT_TMP" <<'EOF'
import json, os, sys

committed, fresh, tmp = sys.argv[1:4]
errors = []

def manifest(path):
    rows, header = [], None
    for line in open(path, encoding="utf-8"):
        if line.startswith("#") or not line.strip():
            continue
        cols = line.rstrip("\n").split("\t")
        if header is None:
            header = cols
        else:
            rows.append(dict(zip(header, cols)))
    return rows

def message_kind(first_line):
    # "INVITE sip:... SIP/2.0" -> "INVITE"; "SIP/2.0 407 Proxy ..." -> "407"
    words = first_line.split()
    return words[1] if words[0].startswith("SIP/") else words[0]

for v in (1, 2, 3):
    old = manifest(os.path.join(committed, f"v{v}", "manifest.tsv"))
    new = manifest(os.path.join(fresh, f"v{v}", "manifest.tsv"))
    decoded = [json.loads(l) for l in open(os.path.join(tmp, f"decoded-v{v}.json"))]
    if len(old) != len(new):
        errors.append(f"v{v}: committed capture has {len(old)} packets, fresh one {len(new)}")
        continue
    for i, (a, b) in enumerate(zip(old, new)):
        where = f"v{v}/{a['file']}"
        for key in ("version", "family", "ip_proto", "capture_id", "proto_type", "cseq_num", "cseq_method"):
            if a[key] != b[key]:
                errors.append(f"{where}: {key} committed {a[key]!r}, fresh {b[key]!r}")
        if message_kind(a["first_line"]) != message_kind(b["first_line"]):
            errors.append(f"{where}: committed {a['first_line']!r}, fresh {b['first_line']!r}")
        if bool(a["correlation_id"]) != bool(b["correlation_id"]):
            errors.append(f"{where}: correlation id present committed {bool(a['correlation_id'])}, fresh {bool(b['correlation_id'])}")
        d = decoded[i]
        # the codec against the wire (the fresh manifest's addresses come from dumpcap)
        for key, field in (("src_ip", "src"), ("dst_ip", "dst"), ("src_port", "sport"),
                           ("dst_port", "dport"), ("payload_len", "payload_len")):
            got = d.get(field)
            if got is None and field == "payload_len" and "payload" in d:
                got = len(d["payload"]) // 2
            if str(got) != b[key]:
                errors.append(f"fresh v{v}/{b['file']}: hepconv {field}={got!r}, wire {key}={b[key]!r}")
    if v == 3:
        for name in sorted(os.listdir(os.path.join(committed, "v3"))):
            if not name.endswith(".hep"):
                continue
            def chunk_types(path):
                data = open(path, "rb").read()
                pos, types = 6, []
                while pos + 6 <= len(data):
                    types.append(int.from_bytes(data[pos + 2:pos + 4], "big"))
                    pos += int.from_bytes(data[pos + 4:pos + 6], "big")
                return types
            a = chunk_types(os.path.join(committed, "v3", name))
            b = chunk_types(os.path.join(fresh, "v3", name))
            if a != b:
                errors.append(f"v3/{name}: chunk order committed {a}, fresh {b}")
    print(f"v{v}: {len(new)} fresh packets compared with the committed capture")

if errors:
    print("\n".join(errors[:40]))
    sys.exit(1)
EOF
it_log "PASS"
