#!/usr/bin/env bash
# test_tap.sh - the control socket's live tap (`tap`, `heprouter ctl tap`):
# the routing decisions of a running heprouter, as they happen.
#
# The packets: the Kamailio captures (tests/data/kamailio/v3) three times,
# interleaved one packet of each set at a time, so 9 calls in 66 packets:
# set a as captured (Call-IDs a-..., capture id 1, 127.0.0.1), set b with
# HEP addresses 10.9.1.1 (Kamailio) and 10.9.0.1 (the others), set c with
# capture id 7; then an RTCP report (no SIP) whose correlation id is set b's
# INVITE call.  They go to heprouter over UDP 1 ms apart, and the same
# packets, as hepdump JSON lines, to `heprouter --explain` with the same
# configuration file: a tap's lines, time aside, must be its lines.
#
#   call      `ctl -n K tap call X`: the K lines of call X, none of another
#             call, exactly `--explain`'s lines for them
#   filters   src (two prefix lengths), capture_id, method, two terms
#             (ANDed: src and method; capture_id and a call of another set:
#             nothing): each reader gets exactly the expected lines, no more
#   json      `tap json call X`: the answer line, then lines that parse as
#             the objects of `--explain --json` (time aside)
#   refused   sources.capture_ids refuses sets a and b and the RTCP report
#             (capture id 1 claimed from 127.0.0.0/8, where only 7 is
#             allowed): the tap shows them as "refused source" with the
#             reason, set c's as --explain does; `tap src` finds set b's
#             refused packets by their HEP address, `tap call` a refused
#             call's 16 SIP packets and its RTCP report (a refused packet is
#             scanned for the tap's line only)
#   stuck     a reader sends "tap" and never reads: 20,000 packets at
#             4,000/s all reach the sink, tap_lost > 0 in the stats, and a
#             second reader started meanwhile gets its lines
#   resume    a reader that stops reading while 20,000 packets go by, then
#             reads again: the lines it had room for, then "# N tap lines
#             lost" (N summed over the notices: the stats' tap_lost; the worker stops filling
#             decisions for it once it is stalled and counts them instead),
#             then every line of a second burst
#   bad       `ctl tap bogus`, `ctl tap src not-a-cidr` and others: exit 1
#             with a message; heprouter keeps routing and answering
#
#   BUILD_DIR=build bash tests/integration/test_tap.sh [CASE...]
#
# Environment: BUILD_DIR (src/heprouter, tools/hepdump, tools/hepgen),
# IT_KEEP_TMP=1 keeps the scratch directory.  Needs python3.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=120              # the whole test (about 20 s)
V3=$IT_DATA/v3
PACKETS=67                  # 3 sets of the 22 v3 captures, and an RTCP report
CALL="b-inv-1-11219@127.0.0.1"  # the call the call and json cases tap (16 SIP packets)...
RTCP_CALL=$CALL                 # ...and the RTCP report's correlation id
TAP_WAIT=5                  # seconds a reader may wait for its tap to open
READ_SECONDS=3              # filters: ctl -T, from the tap's opening (the packets take 0.1 s)
STUCK_PACKETS=20000         # stuck: packets sent...
STUCK_RATE=4000             # ...at this rate
STUCK_TAP_BUFFER=65536      # stuck: control.tap_buffer (its least)
RESUME_PACKETS=64           # resume: the second burst (4 OPTIONS dialogs of 16 INVITE packets...)

it_init "$TIME_LIMIT"
it_require_cmd python3
HEPROUTER=$(it_bin src/heprouter) || exit 1
HEPGEN=$(it_bin tools/hepgen) || exit 1
it_bin tools/hepdump >/dev/null || exit 1
IT_CASES=(call filters json refused stuck resume bad)
IT_ROUTER_LISTEN=udp

# ---------------------------------------------------------------- packets

# make_packets: $IT_TMP/cap.json (hepdump --raw JSON lines, 1 ms apart) and
# $IT_TMP/meta.tsv (per packet: call_id, HEP source address, capture id,
# CSeq method), in the same order
make_packets() {
    python3 - "$V3" "$IT_TMP/cap.json" "$IT_TMP/meta.tsv" "$HERE" "$RTCP_CALL" <<'EOF'
import re, socket, struct, sys
data, cap, meta, here, RTCP_CALL = sys.argv[1:6]
CALLS = [b"opt-1-11169@127.0.0.1", b"reg-1-11172@127.0.0.1", b"inv-1-11219@127.0.0.1"]
KAMAILIO_PORT = 23732
# set: (Call-ID prefix, address of Kamailio, address of the others, capture id)
SETS = [("a-", "127.0.0.1", "127.0.0.1", 1), ("b-", "10.9.1.1", "10.9.0.1", 1), ("c-", "127.0.0.1", "127.0.0.1", 7)]

def rewrite(raw, prefix, kam, other, capture_id):
    assert raw[:4] == b"HEP3", "not HEPv3"
    total, pos, chunks = struct.unpack(">H", raw[4:6])[0], 6, []
    while pos < total:
        vendor, ctype, clen = struct.unpack(">HHH", raw[pos:pos + 6])
        chunks.append([vendor, ctype, raw[pos + 6:pos + clen]])
        pos += clen
    val = {(c[0], c[1]): c[2] for c in chunks}
    ports = {t: struct.unpack(">H", val[(0, t)])[0] for t in (7, 8)}
    addr = {t: kam if ports[t + 4] == KAMAILIO_PORT else other for t in (3, 4)}
    for c in chunks:
        if c[0] != 0:
            continue
        if c[1] in addr:
            c[2] = socket.inet_aton(addr[c[1]])
        elif c[1] == 12:
            c[2] = struct.pack(">I", capture_id)
        elif c[1] in (15, 17):
            for cid in CALLS:
                c[2] = c[2].replace(cid, prefix.encode() + cid)
    body = b"".join(struct.pack(">HHH", v, t, len(d) + 6) + d for v, t, d in chunks)
    payload = [d for v, t, d in chunks if (v, t) == (0, 15)][0].decode()
    call_id = re.search(r"^Call-ID: *(\S+)", payload, re.M | re.I).group(1)
    method = re.search(r"^CSeq: *\d+ +(\S+)", payload, re.M | re.I).group(1)
    return b"HEP3" + struct.pack(">H", len(body) + 6) + body, (call_id, addr[3], str(capture_id), method)

packets = []
for i in range(1, 23):
    raw = open("%s/%03d.hep" % (data, i), "rb").read()
    packets += [rewrite(raw, *s) for s in SETS]
# and an RTCP report whose correlation id is set b's INVITE call
sys.path.insert(0, here)
import hepreplay
packets.append((hepreplay.build_rtcp(RTCP_CALL), (RTCP_CALL, "127.0.0.1", "1", "-")))
with open(cap, "w") as c, open(meta, "w") as m:
    for n, (pkt, facts) in enumerate(packets):
        c.write('{"t":%.6f,"peer":"127.0.0.1:23732","transport":"udp","raw":"%s"}\n'
                % (1700000000 + n / 1000, pkt.hex()))
        m.write("\t".join(facts) + "\n")
EOF
}

# send_packets ADDR [FILE]: the packets of FILE (default $IT_TMP/cap.json)
# to udp:ADDR, 1 ms apart
send_packets() {
    python3 - "${1#udp:}" "${2:-$IT_TMP/cap.json}" <<'EOF' || it_case_fail "sending the packets failed"
import json, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for line in open(sys.argv[2]):
    s.sendto(bytes.fromhex(json.loads(line)["raw"]), (host, int(port)))
    time.sleep(0.001)
EOF
}

# explain [OPTION...]: heprouter --explain on the packets with the case's
# router configuration (so each rule names the same FILE:LINE:COL), the
# decisions in $CASE_DIR/explain.out (text) or explain.json (--json)
explain() {
    local out=$CASE_DIR/explain.out
    [ "${1:-}" = --json ] && out=$CASE_DIR/explain.json
    "$HEPROUTER" --explain -c "$CASE_DIR/router.yaml" -r "$IT_TMP/cap.json" "$@" 2>"$CASE_DIR/explain.err" |
        grep -v -e '^#' -e '^{"summary"' >"$out"
    local n
    n=$(wc -l <"$out")
    ((n == PACKETS)) || it_case_fail "--explain $*: $n decisions for $PACKETS packets: $(head -c 300 "$CASE_DIR/explain.err")"
}


# expect OUT FILE TERM...: to OUT, the lines of FILE (explain.out or
# explain.json: a line per packet, in order) of the packets that a tap with
# these terms selects, by each packet's facts in meta.tsv
expect() {
    python3 - "$IT_TMP/meta.tsv" "$@" <<'PY'
import ipaddress, sys
meta, out, lines, terms = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
facts = [l.rstrip("\n").split("\t") for l in open(meta)]
def selected(f):
    call_id, src, capture_id, method = f
    for k, v in zip(terms[0::2], terms[1::2]):
        if k == "call" and call_id != v:
            return False
        if k == "src" and ipaddress.ip_address(src) not in ipaddress.ip_network(v):
            return False
        if k == "capture_id" and capture_id != v:
            return False
        if k == "method" and method != v:
            return False
    return True
with open(out, "w") as o:
    o.writelines(line for f, line in zip(facts, open(lines)) if selected(f))
PY
}

# untimed FILE: FILE's lines without their time (text: the first two
# fields; a JSON line: its "time" key, the keys then sorted), on stdout
untimed() {
    python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("{"):
        o = json.loads(line)
        o.pop("time", None)
        print(json.dumps(o, sort_keys=True))
    else:
        print(line.split(" ", 2)[2])
PY
}

# same_lines WHAT EXPECTED GOT: GOT's lines are EXPECTED's, time aside;
# else the case fails, showing the first differences
same_lines() {
    local what=$1 a=$2.untimed b=$3.untimed
    untimed "$2" >"$a" || it_case_fail "$what: $2 does not parse"
    untimed "$3" >"$b" || it_case_fail "$what: $3 does not parse"
    if ! cmp -s "$a" "$b"; then
        it_case_fail "$what: $(wc -l <"$3") lines, not the $(wc -l <"$2") expected (time aside); first differences:"
        diff "$a" "$b" | head -n 6 | cut -c1-300 | sed 's/^/      /'
    fi
}

# ---------------------------------------------------------------- the router, the readers

# policy [MORE]: the case's configuration: the two-destination policy of
# test_explain.sh with both destinations on the sink, 2 workers, the
# control socket, and MORE
policy() {
    cat <<YAML
workers: 2
orphans: { wait_ms: 50 }
control: { socket: "$CASE_DIR/ctl.sock" }
destinations:
  homer: { targets: [ "${SINK_ADDR[sink]}" ] }
  voipmonitor: { targets: [ "${SINK_ADDR[sink]}" ], hep_version: 3 }
routes:
  - name: calls
    match: { method: [ INVITE ] }
    to: [ voipmonitor, homer ]
  - { match: { method: [ REGISTER, OPTIONS ] }, to: [ homer ] }
default: [ homer ]
${1:-}
YAML
}

# ctl ARGS...: heprouter ctl on the case's socket, in the foreground;
# stdout in $CASE_DIR/ctl.out, stderr in ctl.err, status in CTL_RC
ctl() {
    it_run 20 "$HEPROUTER" ctl -s "$CASE_DIR/ctl.sock" "$@" >"$CASE_DIR/ctl.out" 2>"$CASE_DIR/ctl.err"
    CTL_RC=$?
}

# stat_of KEY: a top-level counter of `ctl stats` ("" when absent)
stat_of() {
    "$HEPROUTER" ctl -s "$CASE_DIR/ctl.sock" stats 2>/dev/null |
        python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}

# begin NAME DESCRIPTION: it_case_begin, and no reader yet
begin() {
    it_case_begin "$@"
    TAP_PID=()
    TAPS_WANTED=0
}

# tap NAME ARGS...: `heprouter ctl ARGS` in the background, its stdout in
# $CASE_DIR/NAME.out (sets TAP_PID[NAME]); counts in TAPS_WANTED
declare -A TAP_PID=()
TAPS_WANTED=0
tap() {
    local name=$1
    shift
    it_start "$CASE/$name" "$HEPROUTER" ctl -s "$CASE_DIR/ctl.sock" "$@"
    TAP_PID[$name]=$IT_PID
    TAPS_WANTED=$((TAPS_WANTED + 1))
}

# tap_wait NAME SECONDS: until reader NAME has exited; CTL_RC its status
tap_wait() {
    it_wait_exit "${TAP_PID[$1]}" "$2"
    CTL_RC=$IT_STATUS
    it_forget "${TAP_PID[$1]}"
}


# taps_opened: the "tap N opened" lines of the case's heprouter log
taps_opened() {
    grep -c 'tap [0-9]* opened' "$CASE_DIR/router.err"
}

# taps_open: every reader started (TAPS_WANTED) has had its tap opened
taps_open() {
    (($(taps_opened) >= TAPS_WANTED))
}

# wait_taps: until every reader started has its tap open, else the test
# fails; then 0.1 s more: heprouter answers (and logs) before its workers
# take the new filter, between two of their batches
wait_taps() {
    it_wait_until "$TAP_WAIT" taps_open ||
        it_fail "$TAPS_WANTED tap(s) started, $(taps_opened) opened after ${TAP_WAIT}s"
    sleep 0.1
}

# The python reader: python3 -c "$TAP_PY" SOCKET COMMAND MODE [LINES SECONDS]
# sends COMMAND; MODE read: prints the answer line, then up to LINES lines
# within SECONDS, then closes; MODE stuck: reads nothing, sleeps until stopped
TAP_PY='
import socket, sys, time
path, command, mode = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall(command.encode() + b"\n")
if mode == "stuck":
    while True:
        time.sleep(60)
if mode == "late":
    go = sys.argv[4]
    sys.argv = sys.argv[:4] + sys.argv[5:]
    while not __import__("os").path.exists(go):
        time.sleep(0.05)
lines, deadline = int(sys.argv[4]), time.monotonic() + float(sys.argv[5])
f = s.makefile("rb")
s.settimeout(float(sys.argv[5]))
print(f.readline().decode().rstrip("\n"), flush=True)
for _ in range(lines):
    s.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        line = f.readline()
    except (socket.timeout, OSError):
        break
    if not line:
        break
    print(line.decode().rstrip("\n"), flush=True)
'

# ---------------------------------------------------------------- cases

case_call() {
    begin call "ctl -n K tap call X: the K lines of that call, as --explain prints them"
    it_start_sink sink
    it_start_router "$(policy)"
    explain
    expect "$CASE_DIR/expected" "$CASE_DIR/explain.out" call "$CALL"
    local k t0 ms
    k=$(wc -l <"$CASE_DIR/expected")
    ((k == 17)) || it_case_fail "--explain shows $k lines of $CALL, expected 17 (16 SIP, 1 RTCP)"
    t0=$(date +%s%N)
    tap call -n "$k" -T 20 tap call "$CALL"
    wait_taps
    send_packets "${ROUTER_ADDR[udp]}"
    tap_wait call 10
    ms=$((($(date +%s%N) - t0) / 1000000))
    ((CTL_RC == 0)) || it_case_fail "ctl tap call: exit $CTL_RC: $(cat "$CASE_DIR/call.err")"
    ((ms < 10000)) || it_case_fail "ctl -n $k took $ms ms: it waited for -T, not its $k lines"
    local n mine
    n=$(wc -l <"$CASE_DIR/call.out")
    mine=$(grep -c " $CALL \"" "$CASE_DIR/call.out")
    grep -c ' -> 127.0.0.1:40001 ' "$CASE_DIR/call.out" | grep -qx 1 ||
        it_case_fail "not the RTCP report (by its correlation id) once"
    echo "    $n lines in $ms ms, $mine with Call-ID $CALL (the RTCP report has it as its correlation id)"
    ((n == k && mine == k)) || it_case_fail "$n lines, $mine of $CALL, expected $k of it"
    ! grep -q -e ' [ac]-' -e ' b-opt-' -e ' b-reg-' "$CASE_DIR/call.out" || it_case_fail "a line of another call"
    same_lines "tap call $CALL" "$CASE_DIR/expected" "$CASE_DIR/call.out"
    local lines
    lines=$(stat_of tap_lines)
    echo "    stats: tap_lines $lines, tap_lost $(stat_of tap_lost)"
    [ "$lines" = "$k" ] || it_case_fail "stats tap_lines $lines, expected $k"
    it_arrive sink $((PACKETS + 49))        # the INVITE calls (and the RTCP report) go to both
    it_stop_router
    it_stop_all
    it_case_end
}

case_filters() {
    begin filters "src, capture_id, method, and two terms ANDed"
    it_start_sink sink
    it_start_router "$(policy)"
    explain
    # name, then the terms
    local filters=(
        "src24 src 10.9.0.0/24"
        "src16 src 10.9.0.0/16"
        "capture capture_id 7"
        "invite method INVITE"
        "bye_lo src 127.0.0.0/8 method BYE"
        "none capture_id 7 call $CALL"
    ) f name k
    for f in "${filters[@]}"; do
        # shellcheck disable=SC2086  # the terms are words
        set -- $f
        name=$1
        shift
        expect "$CASE_DIR/$name.expected" "$CASE_DIR/explain.out" "$@"
        k=$(wc -l <"$CASE_DIR/$name.expected")
        # one more line than expected: it must wait for -T with no more
        tap "$name" -n $((k + 1)) -T "$READ_SECONDS" tap "$@"
    done
    wait_taps
    send_packets "${ROUTER_ADDR[udp]}"
    for f in "${filters[@]}"; do
        name=${f%% *}
        tap_wait "$name" $((READ_SECONDS + 5))
        ((CTL_RC == 0)) || it_case_fail "ctl tap ${f#* }: exit $CTL_RC: $(cat "$CASE_DIR/$name.err")"
        echo "    tap ${f#* }: $(wc -l <"$CASE_DIR/$name.out") lines, $(wc -l <"$CASE_DIR/$name.expected") expected"
        same_lines "tap ${f#* }" "$CASE_DIR/$name.expected" "$CASE_DIR/$name.out"
    done
    # the counts the terms mean, whatever --explain says
    local want=(12 22 22 30 8 0) i=0
    for f in "${filters[@]}"; do
        name=${f%% *}
        [ "$(wc -l <"$CASE_DIR/$name.expected")" = "${want[$i]}" ] ||
            it_case_fail "tap ${f#* }: $(wc -l <"$CASE_DIR/$name.expected") packets selected, expected ${want[$i]}"
        i=$((i + 1))
    done
    it_stop_router
    it_stop_all
    it_case_end
}

case_json() {
    begin json "tap json call X: the objects of --explain --json"
    it_start_sink sink
    it_start_router "$(policy)"
    explain --json
    expect "$CASE_DIR/expected" "$CASE_DIR/explain.json" call "$CALL"
    local k
    k=$(wc -l <"$CASE_DIR/expected")
    tap json -n "$k" -T 20 tap json call "$CALL"
    # the protocol itself: the answer line, then the lines
    it_start "$CASE/raw" python3 -c "$TAP_PY" "$CASE_DIR/ctl.sock" "tap json call $CALL" read "$k" 15
    TAP_PID[raw]=$IT_PID
    TAPS_WANTED=$((TAPS_WANTED + 1))
    wait_taps
    send_packets "${ROUTER_ADDR[udp]}"
    tap_wait json 10
    ((CTL_RC == 0)) || it_case_fail "ctl tap json: exit $CTL_RC: $(cat "$CASE_DIR/json.err")"
    tap_wait raw 20
    python3 - "$CASE_DIR/json.out" "$CALL" "$k" <<'PY' || it_case_fail "the JSON lines"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == int(sys.argv[3]), ("lines", len(lines), sys.argv[3])
for o in lines:
    assert o["call_id"] == sys.argv[2], o
    assert o["how"] in ("origin request", "known call"), o
    assert o["rule"].startswith("calls ("), o
    assert [t["destination"] for t in o["to"]] == ["voipmonitor", "homer"], o
print("    %d objects, call_id %s, how %s" % (len(lines), sys.argv[2], sorted({o["how"] for o in lines})))
PY
    same_lines "ctl tap json" "$CASE_DIR/expected" "$CASE_DIR/json.out"
    head -n 1 "$CASE_DIR/raw.out" >"$CASE_DIR/raw.answer"
    tail -n +2 "$CASE_DIR/raw.out" >"$CASE_DIR/raw.lines"
    echo "    the answer: $(cat "$CASE_DIR/raw.answer")"
    python3 - "$CASE_DIR/raw.answer" "$CALL" <<'PY' || it_case_fail "the answer line: $(cat "$CASE_DIR/raw.answer")"
import json, sys
a = json.load(open(sys.argv[1]))
assert isinstance(a["tap"], int) and a["format"] == "json" and a["stream"] is True, a
assert sys.argv[2] in a["filter"], a
PY
    same_lines "the socket's lines" "$CASE_DIR/expected" "$CASE_DIR/raw.lines"
    it_stop_router
    it_stop_all
    it_case_end
}

case_refused() {
    begin refused "sources.capture_ids refuses capture id 1: the tap says so, with the reason"
    it_start_sink sink
    it_start_router "$(policy 'sources: { capture_ids: { "127.0.0.0/8": [ 7 ] } }')"
    explain
    expect "$CASE_DIR/routed" "$CASE_DIR/explain.out" capture_id 7
    tap all -n $((PACKETS + 1)) -T "$READ_SECONDS" tap
    tap src -n 23 -T "$READ_SECONDS" tap src 10.9.0.0/16
    tap refused_call -n 18 -T "$READ_SECONDS" tap call "$CALL"
    wait_taps
    send_packets "${ROUTER_ADDR[udp]}"
    tap_wait all $((READ_SECONDS + 5))
    tap_wait src $((READ_SECONDS + 5))
    tap_wait refused_call $((READ_SECONDS + 5))
    ((CTL_RC == 0)) || it_case_fail "ctl tap: exit $CTL_RC: $(cat "$CASE_DIR/all.err")"
    local n refused
    n=$(wc -l <"$CASE_DIR/all.out")
    grep ' | refused source' "$CASE_DIR/all.out" >"$CASE_DIR/refused.out"
    grep -v ' | refused source' "$CASE_DIR/all.out" >"$CASE_DIR/routed.out"
    refused=$(wc -l <"$CASE_DIR/refused.out")
    echo "    $n lines, $refused refused; the first: $(head -n 1 "$CASE_DIR/refused.out")"
    ((n == PACKETS)) || it_case_fail "$n lines for $PACKETS packets"
    ((refused == 45)) || it_case_fail "$refused refused, expected 45 (sets a and b, the RTCP report)"
    [ "$(grep -c 'capture_id_not_allowed' "$CASE_DIR/refused.out")" = "$refused" ] ||
        it_case_fail "a refused line without its reason (capture_id_not_allowed)"
    # the sender is the datagram's (the test's socket on loopback), not the SIP addresses inside
    [ "$(grep -cE 'capture_id_not_allowed \(sender 127\.0\.0\.1:[0-9]+\) \| not routed$' "$CASE_DIR/refused.out")" = "$refused" ] ||
        it_case_fail "a refused line without its sender"
    same_lines "the packets let in" "$CASE_DIR/routed" "$CASE_DIR/routed.out"
    # a refused packet is scanned for the tap only: the call filter finds it, RTCP by correlation id too
    n=$(wc -l <"$CASE_DIR/refused_call.out")
    refused=$(grep -cE "^[^ ]* [^ ]* [^ ]* -> [^ ]* $CALL .* \| refused source( \(correlation id\))?: capture_id_not_allowed" \
        "$CASE_DIR/refused_call.out")
    echo "    tap call $CALL: $n lines, $refused refused"
    ((n == 17 && refused == 17)) || it_case_fail "tap call $CALL: $n lines, $refused refused; expected 17 (16 SIP, 1 RTCP)"
    n=$(wc -l <"$CASE_DIR/src.out")
    refused=$(grep -c '^[^ ]* [^ ]* 10\.9\.[01]\.1:[0-9]* -> 10\.9\.[01]\.1:[0-9]* .* | refused source: capture_id_not_allowed' \
        "$CASE_DIR/src.out")
    echo "    tap src 10.9.0.0/16: $n lines, $refused of set b refused"
    ((n == 22 && refused == 22)) || it_case_fail "tap src 10.9.0.0/16: $n lines, $refused of set b refused; expected 22"
    it_arrive sink $((22 + 16))
    it_stop_router
    it_stop_all
    it_case_end
}

# start_small_tap_router: a sink and a 1-worker router whose readers have the least tap_buffer
start_small_tap_router() {
    it_start_sink sink udp 0 -u -q
    it_start_router "workers: 1
orphans: { wait_ms: 50 }
control: { socket: \"$CASE_DIR/ctl.sock\", tap_buffer: $STUCK_TAP_BUFFER }
destinations:
  sink: { targets: [ \"${SINK_ADDR[sink]}\" ] }
default: [ sink ]"
}

# burst NAME PACKETS PREFIX: hepgen sends PACKETS at STUCK_RATE and ends; SENT is what it sent
burst() {
    it_start "$CASE/$1" "$HEPGEN" -d "${ROUTER_ADDR[udp]}" -n "$2" -r "$STUCK_RATE" --prefix "$3" -q
    local gen=$IT_PID
    it_wait_exit "$gen" 30
    it_forget "$gen"
    ((IT_STATUS == 0)) || it_case_fail "hepgen: exit $IT_STATUS"
    SENT=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sent"])' "$IT_TMP/$CASE/$1.out")
}

case_stuck() {
    begin stuck "a reader that never reads: routing goes on, its lines are lost and counted"
    start_small_tap_router
    it_start "$CASE/stuck" python3 -c "$TAP_PY" "$CASE_DIR/ctl.sock" tap stuck
    local stuck=$IT_PID gen sent t0 ms
    TAPS_WANTED=1
    wait_taps
    it_start "$CASE/hepgen" "$HEPGEN" -d "${ROUTER_ADDR[udp]}" -n "$STUCK_PACKETS" -r "$STUCK_RATE" --prefix st -q
    gen=$IT_PID
    sleep 1
    t0=$(date +%s%N)
    ctl -n 5 -T 10 tap
    ms=$((($(date +%s%N) - t0) / 1000000))
    echo "    a second reader: exit $CTL_RC, $(wc -l <"$CASE_DIR/ctl.out") lines in $ms ms"
    ((CTL_RC == 0)) || it_case_fail "the second reader: exit $CTL_RC: $(cat "$CASE_DIR/ctl.err")"
    [ "$(wc -l <"$CASE_DIR/ctl.out")" = 5 ] || it_case_fail "the second reader got $(wc -l <"$CASE_DIR/ctl.out") lines, not 5"
    grep -q ' st-[a-z]*-[0-9]*@hepgen "' "$CASE_DIR/ctl.out" || it_case_fail "the second reader's lines are not hepgen's calls"
    it_wait_exit "$gen" 30
    it_forget "$gen"
    ((IT_STATUS == 0)) || it_case_fail "hepgen: exit $IT_STATUS"
    sent=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["sent"])' "$IT_TMP/$CASE/hepgen.out")
    ARRIVE_TIMEOUT=15 it_arrive sink "$sent"
    local lines lost pin
    lines=$(stat_of tap_lines) lost=$(stat_of tap_lost) pin=$(stat_of packets_in)
    echo "    sent $sent, heprouter read $pin; stats: tap_lines $lines, tap_lost $lost"
    [ "$pin" = "$sent" ] || it_case_fail "heprouter read $pin packets of $sent"
    [[ $lost =~ ^[1-9][0-9]*$ ]] || it_case_fail "tap_lost \"$lost\", expected > 0"
    ((lines + lost >= sent)) || it_case_fail "tap_lines + tap_lost = $((lines + lost)), fewer than the $sent decisions"
    it_alive "$stuck" || it_case_fail "the stuck reader exited"
    it_stop_router
    it_stop_all
    it_case_end
}

case_resume() {
    begin resume "a reader that stops reading, then reads again: told how many lines it lost, then its lines"
    start_small_tap_router
    it_start "$CASE/late" python3 -c "$TAP_PY" "$CASE_DIR/ctl.sock" tap late "$CASE_DIR/go" 1000000 30
    local late=$IT_PID first second lost
    TAPS_WANTED=1
    wait_taps
    burst hepgen1 "$STUCK_PACKETS" one
    first=$SENT
    ARRIVE_TIMEOUT=15 it_arrive sink "$first"
    lost=$(stat_of tap_lost)
    echo "    first burst: $first packets; tap_lost $lost while the reader did not read"
    [[ $lost =~ ^[1-9][0-9]*$ ]] || it_case_fail "tap_lost \"$lost\" while the reader did not read, expected > 0"
    : >"$CASE_DIR/go"
    it_wait_until 10 grep -q ' one-[a-z]*-[0-9]*@hepgen "' "$IT_TMP/$CASE/late.out" ||
        it_case_fail "the reader got none of the lines it had room for"
    sleep 1                     # it reads what was buffered; the worker is woken and resumes
    burst hepgen2 "$RESUME_PACKETS" two
    second=$SENT
    ARRIVE_TIMEOUT=15 it_arrive sink $((first + second))
    local out=$IT_TMP/$CASE/late.out n_one n_two notice told total
    it_wait_until 10 eval "(( \$(grep -c ' two-[a-z]*-[0-9]*@hepgen \"' '$out') >= second ))" ||
        it_case_fail "the reader did not get the second burst's lines"
    total=$(stat_of tap_lost)
    n_one=$(grep -c ' one-[a-z]*-[0-9]*@hepgen "' "$out")
    n_two=$(grep -c ' two-[a-z]*-[0-9]*@hepgen "' "$out")
    notice=$(grep -c '^# [0-9]* tap lines lost$' "$out")
    told=$(awk '/^# [0-9]+ tap lines lost$/ { n += $2 } END { print n + 0 }' "$out")
    echo "    the reader: $n_one lines of the first burst, $(grep '^# ' "$out" | tr '\n' ' ')then $n_two of the second ($second packets); tap_lost $total"
    # (a line the stream had no room for while the notice had is told in a notice of its own)
    ((notice >= 1)) || it_case_fail "no lost-lines notice"
    ((told == total)) || it_case_fail "the notices tell $told lost lines, the stats' tap_lost $total"
    ((n_one + total >= first)) || it_case_fail "lines $n_one + lost $total < the first burst's $first decisions"
    # the notice comes before the first line of the second burst
    [ "$(grep -n '^# [0-9]* tap lines lost$' "$out" | tail -n 1 | cut -d: -f1)" -lt \
        "$(grep -n ' two-[a-z]*-[0-9]*@hepgen "' "$out" | head -n 1 | cut -d: -f1)" ] ||
        it_case_fail "the lost-lines notice is not before the second burst's lines"
    it_stop "$late"
    it_stop_router
    it_stop_all
    it_case_end
}

case_bad() {
    begin bad "bad tap arguments: exit 1 with a message, heprouter goes on"
    it_start_sink sink
    it_start_router "$(policy)"
    local args
    for args in "bogus" "bogus word" "src not-a-cidr" "src" "capture_id seven" "call" "method"; do
        # shellcheck disable=SC2086  # the arguments are words
        ctl -n 1 -T 5 tap $args
        echo "    ctl tap $args: exit $CTL_RC: $(head -c 200 "$CASE_DIR/ctl.err")"
        ((CTL_RC == 1)) || it_case_fail "ctl tap $args: exit $CTL_RC, expected 1"
        [ -s "$CASE_DIR/ctl.err" ] || it_case_fail "ctl tap $args: no message on stderr"
        # stdout: nothing, or the error answer as it came (as for any command)
        grep -qv '^{"error":' "$CASE_DIR/ctl.out" && it_case_fail "ctl tap $args: printed $(head -c 200 "$CASE_DIR/ctl.out")"
        [ "$args" != "bogus word" ] || grep -q 'unknown term "bogus"' "$CASE_DIR/ctl.err" ||
            it_case_fail "ctl tap bogus word: not an unknown term"
    done
    python3 -c "$TAP_PY" "$CASE_DIR/ctl.sock" "tap src not-a-cidr" read 0 5 >"$CASE_DIR/raw.out"
    python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["error"]' "$CASE_DIR/raw.out" ||
        it_case_fail "tap src not-a-cidr on the socket: not an {\"error\"} answer: $(cat "$CASE_DIR/raw.out")"
    it_alive "$ROUTER_PID" || it_case_fail "heprouter exited"
    [ "$(taps_opened)" = 0 ] || it_case_fail "$(taps_opened) taps opened by the bad commands"
    tap good -n 3 -T 10 tap method INVITE
    wait_taps
    send_packets "${ROUTER_ADDR[udp]}"
    tap_wait good 10
    if ((CTL_RC != 0)) || [ "$(wc -l <"$CASE_DIR/good.out")" != 3 ]; then
        it_case_fail "a good tap after the bad ones: exit $CTL_RC, $(wc -l <"$CASE_DIR/good.out") lines"
    fi
    it_arrive sink $((PACKETS + 49))
    it_stop_router
    it_stop_all
    it_case_end
}

make_packets || it_fail "making the packets failed"
it_run_cases "$@"
