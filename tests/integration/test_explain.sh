#!/usr/bin/env bash
# heprouter --explain on captures (issue 17): how each packet was decided.
#
#   reorder      the 407 of a call before its INVITE (hepdump JSON lines, 1 ms
#                apart): "held", then the INVITE "origin request" on route
#                calls with its FILE:LINE:COL, then the 407 "held, released by
#                its origin", the ACK "known call"
#   fallback     an ACK of a call never seen: "CSeq fallback" with
#                orphans.wait_ms 0, "held, then CSeq fallback" with a wait
#   captures     the Kamailio captures as pcap, pcapng, Linux cooked, IPv6 and
#                a TCP stream whose frames are split across segments
#                (capture/make_pcap.py): every packet decided, the same lines
#                from each; garbage: its random datagram is a decode error
#   json_call    --json: one object per line with the same facts (parsed);
#                --call: the lines of that call only
#   long_line    an INVITE whose Call-ID has 3,000 bytes: its line, longer
#                than the stack buffer a line is formatted in, printed whole
#                (text and JSON)
#   sources      the sources: rules of the listener a packet was sent to (its
#                transport and port; a wildcard address matches any) or the
#                top-level ones: outside the listener's allow list "refused
#                source: not_allowed" (the garbage datagram too, as a listener
#                drops it before decoding), no key where the top-level rules
#                want one "missing_auth_key", a listener on another address
#                not matched; allowed packets decided as without rules
#
#   BUILD_DIR=build bash tests/integration/test_explain.sh [CASE...]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=120
DATA=$(cd "$HERE/../data" && pwd)
V3=$DATA/kamailio/v3
INVITE_CALL=inv-1-11219@127.0.0.1
CAPTURE_PACKETS=22              # tests/data/kamailio/v3

it_init "$TIME_LIMIT"
it_require_cmd python3
HEPROUTER=$(it_bin src/heprouter) || exit 1
IT_CASES=(reorder fallback captures json_call long_line sources)

# policy WAIT_MS: the two-destination policy of the README, to $CASE_DIR/conf.yaml
policy() {
    cat >"$CASE_DIR/conf.yaml" <<EOF
listen: [ "udp:127.0.0.1:0" ]
orphans: { wait_ms: $1 }
destinations:
  homer: { targets: [ "udp:127.0.0.1:9" ] }
  voipmonitor: { targets: [ "udp:127.0.0.1:9" ], hep_version: 3 }
routes:
  - name: calls
    match: { method: [ INVITE ] }
    to: [ voipmonitor, homer ]
  - { match: { method: [ REGISTER, OPTIONS ] }, to: [ homer ] }
default: [ homer ]
EOF
}

# json_lines OUT FILE...: the v3 captures FILE... as hepdump --raw JSON lines, 1 ms apart
json_lines() {
    local out=$1
    shift
    python3 - "$V3" "$out" "$@" <<'EOF'
import sys
data, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]
with open(out, "w") as o:
    for i, f in enumerate(files):
        raw = open("%s/%s" % (data, f), "rb").read().hex()
        o.write('{"t":%.6f,"peer":"127.0.0.1:23732","transport":"udp","raw":"%s"}\n' % (1700000000 + i / 1000, raw))
EOF
}

# explain CAPTURE [OPTION...]: heprouter --explain on it, output to $CASE_DIR/out
explain() {
    local cap=$1
    shift
    "$HEPROUTER" --explain -c "$CASE_DIR/conf.yaml" -r "$cap" "$@" >"$CASE_DIR/out" 2>"$CASE_DIR/err" ||
        it_case_fail "heprouter --explain $cap failed: $(cat "$CASE_DIR/err")"
    sed 's/^/    /' "$CASE_DIR/out"
}

# line N PATTERN: decision line N (1-based, summary left out) matches PATTERN (grep -E)
line() {
    grep -v '^#' "$CASE_DIR/out" | sed -n "${1}p" | grep -Eq -- "$2" ||
        it_case_fail "line $1 does not match: $2"
}

case_reorder() {
    it_case_begin reorder "a 407 before its INVITE"
    policy 50
    json_lines "$CASE_DIR/cap.json" 008.hep 007.hep 009.hep
    explain "$CASE_DIR/cap.json"
    line 1 "$INVITE_CALL \"407 Proxy Authentication Required\" \\| held for its origin"
    line 2 "\"INVITE sip:[^\"]*\" \\| origin request \\| calls \\($CASE_DIR/conf.yaml:7:[0-9]+\\) \\| -> voipmonitor, homer"
    line 3 "\"407 Proxy Authentication Required\" \\| held, released by its origin \\| calls \\(.*\\) \\| -> voipmonitor, homer"
    line 4 "\"ACK [^\"]*\" \\| known call \\| calls"
    grep -q '^# outcomes: "origin request" 1; "known call" 1; "held, released by its origin" 1;' "$CASE_DIR/out" ||
        it_case_fail "summary outcomes"
    it_case_end "$CASE_DIR/err"
}

case_fallback() {
    it_case_begin fallback "an ACK of a call never seen"
    json_lines "$CASE_DIR/cap.json" 009.hep
    policy 0
    explain "$CASE_DIR/cap.json"
    line 1 "\"ACK [^\"]*\" \\| CSeq fallback \\| calls"
    policy 50
    explain "$CASE_DIR/cap.json"
    line 1 "\"ACK [^\"]*\" \\| held for its origin"
    line 2 "\"ACK [^\"]*\" \\| held, then CSeq fallback \\| calls"
    it_case_end "$CASE_DIR/err"
}

case_captures() {
    it_case_begin captures "pcap, pcapng, cooked, IPv6, a TCP stream split across segments, garbage"
    policy 50
    python3 "$HERE/capture/make_pcap.py" "$DATA" "$CASE_DIR" || it_case_fail "make_pcap.py failed"
    local kind
    for kind in udp.pcap udp.pcapng sll.pcap ipv6.pcap; do
        explain "$CASE_DIR/$kind" >/dev/null
        grep -q "^# summary: $CAPTURE_PACKETS packets read" "$CASE_DIR/out" || it_case_fail "$kind: not every packet read"
        (($(grep -vc '^#' "$CASE_DIR/out") >= CAPTURE_PACKETS)) || it_case_fail "$kind: a packet not decided"
        ! grep -q "| decode error: " "$CASE_DIR/out" || it_case_fail "$kind: a decode error"
        # the time and the addresses aside, every capture kind explains the same
        grep -v '^#' "$CASE_DIR/out" | cut -d'|' -f2- >"$CASE_DIR/$kind.decisions"
        cmp -s "$CASE_DIR/udp.pcap.decisions" "$CASE_DIR/$kind.decisions" ||
            it_case_fail "$kind explains differently from udp.pcap"
        echo "    $kind: $(grep -vc '^#' "$CASE_DIR/out") decisions, as udp.pcap"
    done
    explain "$CASE_DIR/tcp.pcap" >/dev/null
    grep -q "^# outcomes: \"origin request\" [1-9]" "$CASE_DIR/out" || it_case_fail "tcp.pcap: no call decided"
    ! grep -q "| decode error: " "$CASE_DIR/out" || it_case_fail "tcp.pcap: a frame was not whole"
    echo "    tcp.pcap: $(grep '^# summary' "$CASE_DIR/out")"
    explain "$CASE_DIR/garbage.pcap" >/dev/null
    grep -q "| decode error: " "$CASE_DIR/out" || it_case_fail "garbage.pcap: the random datagram is no decode error"
    grep -q "^# summary: $((CAPTURE_PACKETS + 1)) packets read" "$CASE_DIR/out" ||
        it_case_fail "garbage.pcap: the packets among the garbage"
    echo "    garbage.pcap: $(grep -c 'decode error:' "$CASE_DIR/out") decode error(s), $(grep '^# capture' "$CASE_DIR/out" | tr '\n' ';')"
    it_case_end "$CASE_DIR/err"
}

case_json_call() {
    it_case_begin json_call "--json parsed, --call filters"
    policy 50
    python3 "$HERE/capture/make_pcap.py" "$DATA" "$CASE_DIR" || it_case_fail "make_pcap.py failed"
    explain "$CASE_DIR/udp.pcap" >/dev/null
    local text
    text=$(grep -vc '^#' "$CASE_DIR/out")
    explain "$CASE_DIR/udp.pcap" --json >/dev/null
    python3 - "$CASE_DIR/out" "$text" <<'EOF' || it_case_fail "the JSON lines"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
summary = lines[-1]["summary"]
decisions = lines[:-1]
assert len(decisions) == int(sys.argv[2]), (len(decisions), sys.argv[2])
for d in decisions:
    assert set(d) >= {"time", "src", "dst", "call_id", "first_line", "how", "rule", "to"}, d
held = sum(1 for d in decisions if d["how"] == "held")
assert sum(summary["outcomes"].values()) - summary["outcomes"]["discarded"] == len(decisions) - held, summary
print("    %d JSON decisions, %d held first; outcomes %s" % (len(decisions), held, summary["outcomes"]))
EOF
    explain "$CASE_DIR/udp.pcap" --call "$INVITE_CALL" >/dev/null
    local all mine
    all=$(grep -vc '^#' "$CASE_DIR/out")
    mine=$(grep -v '^#' "$CASE_DIR/out" | grep -c " $INVITE_CALL \"")
    echo "    --call $INVITE_CALL: $all lines, $mine of that call"
    ((all > 0 && all == mine && all < text)) || it_case_fail "--call shows other calls, or none"
    it_case_end "$CASE_DIR/err"
}

case_long_line() {
    it_case_begin long_line "a line longer than the stack buffer: a 3,000-byte Call-ID printed whole"
    policy 50
    python3 - "$V3/007.hep" "$CASE_DIR/cap.json" <<'EOF' || it_case_fail "building the capture"
import struct, sys
raw = open(sys.argv[1], "rb").read()
out, pos, cid = [], 6, b"L" * 3000 + b"@long"
while pos < len(raw):
    vendor, ctype, clen = struct.unpack("!HHH", raw[pos:pos + 6])
    value = raw[pos + 6:pos + clen]
    if vendor == 0 and ctype == 0x0F:
        value = b"\r\n".join(b"Call-ID: " + cid if l.lower().startswith(b"call-id:") else l
                              for l in value.split(b"\r\n"))
    out.append(struct.pack("!HHH", vendor, ctype, 6 + len(value)) + value)
    pos += clen
body = b"".join(out)
pkt = b"HEP3" + struct.pack("!H", 6 + len(body)) + body
open(sys.argv[2], "w").write('{"t":1700000000.0,"peer":"127.0.0.1:23732","transport":"udp","raw":"%s"}\n' % pkt.hex())
EOF
    explain "$CASE_DIR/cap.json" >/dev/null
    line 1 " L{3000}@long \"INVITE [^\"]*\" \\| origin request \\| calls \\(.*\\) \\| -> voipmonitor, homer$"
    echo "    text: a line of $(grep -v '^#' "$CASE_DIR/out" | head -n 1 | wc -c) bytes"
    explain "$CASE_DIR/cap.json" --json >/dev/null
    python3 -c 'import json, sys; d = json.loads(open(sys.argv[1]).readline()); assert d["call_id"] == "L" * 3000 + "@long", d["call_id"][:40]' \
        "$CASE_DIR/out" || it_case_fail "--json: the Call-ID is not whole"
    it_case_end "$CASE_DIR/err"
}

# sources_policy LISTEN: the two-destination policy behind listeners LISTEN (a
# YAML list), the top-level sources requiring an auth key
sources_policy() {
    policy 50
    sed -i "s|^listen: .*|listen: $1|" "$CASE_DIR/conf.yaml"
    echo 'sources: { auth_keys: [ "k3y-for-explain" ] }' >>"$CASE_DIR/conf.yaml"
}

# outcomes PATTERN: the summary's outcomes line matches PATTERN (grep -E)
outcomes() {
    grep -Eq "^# outcomes: $1" "$CASE_DIR/out" || it_case_fail "outcomes are not: $1 ($(grep '^# outcomes' "$CASE_DIR/out"))"
}

case_sources() {
    it_case_begin sources "the sources: rules of the listener a captured packet was sent to"
    python3 "$HERE/capture/make_pcap.py" "$DATA" "$CASE_DIR" || it_case_fail "make_pcap.py failed"
    # the captures are sent from 192.0.2.10 (UDP) and 192.0.2.30 (TCP) to 192.0.2.20:9070
    local own='{ address: "udp:0.0.0.0:9070", sources: { allow: [ "198.51.100.0/24" ] } }'
    sources_policy "[ \"udp:127.0.0.1:9060\", $own, \"tcp:0.0.0.0:9070\" ]"
    explain "$CASE_DIR/udp.pcap" >/dev/null
    (($(grep -vc '^#' "$CASE_DIR/out") == CAPTURE_PACKETS)) || it_case_fail "udp.pcap: not one line per packet"
    (($(grep -c ' | refused source: not_allowed (sender 192\.0\.2\.10:[0-9]*) | not routed$' "$CASE_DIR/out") == CAPTURE_PACKETS)) ||
        it_case_fail "udp.pcap: not every packet refused as not_allowed by its listener's allow list"
    outcomes ".*\"refused source\" $CAPTURE_PACKETS;"
    line 1 "^[^ ]+ [^ ]+ [^ ]+ -> [^ ]+ [^ ]+ \"[^\"]+\" \\| refused source: not_allowed \\(sender 192\\.0\\.2\\.10:40000\\) \\| not routed$"
    explain "$CASE_DIR/udp.pcap" --json >/dev/null
    python3 - "$CASE_DIR/out" "$CAPTURE_PACKETS" <<'EOF' || it_case_fail "udp.pcap --json: the refused objects"
import json, sys
decisions = [json.loads(l) for l in open(sys.argv[1])][:-1]
assert len(decisions) == int(sys.argv[2]), len(decisions)
for d in decisions:
    assert d["how"] == "refused source" and d["error"] == "not_allowed", d
    assert d["sender"].startswith("192.0.2.10:") and d["to"] == [] and d["call_id"], d
EOF
    explain "$CASE_DIR/garbage.pcap" >/dev/null
    ! grep -q "| decode error: " "$CASE_DIR/out" || it_case_fail "garbage.pcap: the datagram from outside allow decoded"
    outcomes ".*\"decode error\" 0;.*\"refused source\" $((CAPTURE_PACKETS + 1));"
    echo "    udp.pcap, garbage.pcap: $(grep '^# outcomes' "$CASE_DIR/out")"
    explain "$CASE_DIR/tcp.pcap" >/dev/null
    grep -q ' | refused source: missing_auth_key (sender 192\.0\.2\.[0-9]*:[0-9]*) | not routed$' "$CASE_DIR/out" ||
        it_case_fail "tcp.pcap: the top-level auth key not asked for"
    ! grep -Eq ' \| (origin request|known call|refused source: not_allowed)' "$CASE_DIR/out" ||
        it_case_fail "tcp.pcap: a packet routed, or refused by the UDP listener's rules"
    echo "    tcp.pcap: $(grep '^# outcomes' "$CASE_DIR/out")"
    # a listener on another address is not the one the packets were sent to
    sources_policy "[ { address: \"udp:192.0.2.99:9070\", sources: { allow: [ \"192.0.2.0/24\" ] } } ]"
    explain "$CASE_DIR/udp.pcap" >/dev/null
    (($(grep -c ' | refused source: missing_auth_key (sender 192\.0\.2\.[0-9]*:[0-9]*) | not routed$' "$CASE_DIR/out") == CAPTURE_PACKETS)) ||
        it_case_fail "udp.pcap: a listener on another address applied"
    # the listener's own rules let them in: decided as with no rules at all
    sources_policy "[ { address: \"udp:192.0.2.20:9070\", sources: { allow: [ \"192.0.2.0/24\" ] } } ]"
    explain "$CASE_DIR/udp.pcap" >/dev/null
    grep -v '^#' "$CASE_DIR/out" >"$CASE_DIR/allowed"
    policy 50
    explain "$CASE_DIR/udp.pcap" >/dev/null
    grep -v '^#' "$CASE_DIR/out" | cmp -s - "$CASE_DIR/allowed" ||
        it_case_fail "udp.pcap: allowed packets decided differently from no rules"
    ! grep -q 'refused source' "$CASE_DIR/allowed" || it_case_fail "udp.pcap: an allowed packet refused"
    echo "    allowed by the listener's own rules: $(wc -l <"$CASE_DIR/allowed") decisions, as without rules"
    it_case_end "$CASE_DIR/err"
}

it_run_cases "$@"
