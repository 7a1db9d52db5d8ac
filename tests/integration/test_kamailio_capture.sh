#!/usr/bin/env bash
# The committed test vectors still match what the real sender sends.
#
# Runs tests/data/capture-kamailio.sh (real Kamailio 5.6 siptrace with
# hep_version 1, 2 and 3, real sipp UACs and UAS, dumpcap on lo) into a
# scratch directory, then checks each fresh capture against the committed
# one in tests/data/kamailio: the same number of packets, the same message
# of each kind (method or status, CSeq), the same HEP header fields and,
# for v3, the same chunk orders; and heprouter's codec (hepconv) decodes
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
from collections import Counter

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

def chunk_types(path):
    data = open(path, "rb").read()
    pos, types = 6, []
    while pos + 6 <= len(data):
        types.append(int.from_bytes(data[pos + 2:pos + 4], "big"))
        pos += int.from_bytes(data[pos + 4:pos + 6], "big")
    return tuple(types)

# What identifies a traced message regardless of ports, tags and Call-IDs.
# Messages of one call can be traced in a different order from run to run
# (the UAS's 100 and Kamailio's relayed INVITE race), so the captures are
# compared as multisets.
def signature(row):
    return (row["version"], row["family"], row["ip_proto"], row["capture_id"], row["proto_type"],
            message_kind(row["first_line"]), row["cseq_num"], row["cseq_method"],
            bool(row["correlation_id"]))

for v in (1, 2, 3):
    old = manifest(os.path.join(committed, f"v{v}", "manifest.tsv"))
    new = manifest(os.path.join(fresh, f"v{v}", "manifest.tsv"))
    decoded = [json.loads(l) for l in open(os.path.join(tmp, f"decoded-v{v}.json"))]
    a, b = Counter(map(signature, old)), Counter(map(signature, new))
    for sig in sorted(set(a) | set(b)):
        if a[sig] != b[sig]:
            errors.append(f"v{v}: {sig}: {a[sig]} in the committed capture, {b[sig]} in the fresh one")
    if len(decoded) != len(new):
        errors.append(f"v{v}: hepconv decoded {len(decoded)} of {len(new)} fresh packets")
    for d, row in zip(decoded, new):
        # the codec against the wire (the fresh manifest's addresses come from dumpcap)
        for key, field in (("src_ip", "src"), ("dst_ip", "dst"), ("src_port", "sport"),
                           ("dst_port", "dport"), ("payload_len", "payload_len")):
            if str(d.get(field)) != row[key]:
                errors.append(f"fresh v{v}/{row['file']}: hepconv {field}={d.get(field)!r}, wire {key}={row[key]!r}")
    if v == 3:
        def orders(directory):
            return Counter(chunk_types(os.path.join(directory, "v3", r["file"])) for r in manifest(os.path.join(directory, "v3", "manifest.tsv")))
        oc, nc = orders(committed), orders(fresh)
        if oc != nc:
            errors.append(f"v3 chunk orders differ: committed {dict(oc)}, fresh {dict(nc)}")
    print(f"v{v}: {len(new)} fresh packets match the committed capture")

if errors:
    print("\n".join(errors[:40]))
    sys.exit(1)
EOF
it_log "PASS"
