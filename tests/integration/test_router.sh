#!/usr/bin/env bash
# End-to-end routing test: heprouter between the real Kamailio captures in
# tests/data/kamailio/v{1,2,3}/ and two hepdump sinks standing in for Homer
# and Voipmonitor, all on 127.0.0.1, heprouter and the sinks on port 0 (the
# ports are read from their --ready-file, see lib.sh).  Each case starts a
# fresh heprouter (empty call store) and fresh sinks, replays packets with
# hepreplay.py, stops heprouter with SIGTERM (it drains held packets) and
# checks that each sink got exactly the expected packets, in order:
# byte-identical when nothing is converted, field by field when v1/v2 input
# is converted to HEPv3.  The counters heprouter logs at exit are checked
# too.  Then two workers on port 0 (case workers), and the command line:
# -t -c, -V, -h, --ready-file.
#
#   BUILD_DIR=build bash tests/integration/test_router.sh [CASE...]
#
# CASE names select cases (default: all; see IT_CASES below).
# Environment: BUILD_DIR (binaries at src/heprouter and tools/hepdump,
# default build/), IT_KEEP_TMP=1 keeps the
# scratch directory (it is kept anyway when a case fails).  Shell helpers
# (processes by PID, free ports, waits) come from lib.sh.
# Packet lists are built with $(it_seq_items ...) and split on purpose:
# shellcheck disable=SC2046
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

WAIT_MS=50              # orphans.wait_ms in every config
PAST_WAIT=pause:200     # a pause well past WAIT_MS
ARRIVE_TIMEOUT=5        # seconds for the expected packets to arrive
TIME_LIMIT=120          # the whole test (it takes about 20 s)

it_init "$TIME_LIMIT"
it_require_cmd python3 ss
HEPROUTER=$(it_bin src/heprouter) || exit 1
it_bin tools/hepdump >/dev/null || exit 1
[ -d "$IT_DATA/v3" ] || it_fail "no captures in $IT_DATA"

IT_CASES=(invite_407 407_before_invite ack_unseen_407 register bye_known bye_unknown rtcp
          duplicates convert tcp workers destination_down drain malformed cli)

# case_end: heprouter stopped (a non-zero exit status fails the case), then
# the sinks; the verdict.  Broken setup uses it_fail (exits).
case_end() {
    it_stop_router
    it_stop_all
    it_case_end
}

# router_config HOMER_TARGETS VOIP_TARGETS [INVITE_ROUTE_TO]: the config
# after its listen line.  Targets are YAML list items ("udp:127.0.0.1:1", ...).
# CASE_WAIT_MS and CASE_WORKERS, when a case sets them, change orphans.wait_ms
# and workers.
router_config() {
    local homer=$1 voip=$2 invite_to=${3:-voipmonitor}
    cat <<EOF
workers: ${CASE_WORKERS:-1}
orphans: { wait_ms: ${CASE_WAIT_MS:-$WAIT_MS}, max_held: 100000 }
ttl: { call: 4h, register: 1h, ended: 30s }
destinations:
  homer: { targets: [ $homer ] }
  voipmonitor: { targets: [ $voip ], hep_version: 3 }
routes:
  - { match: { method: [INVITE, SUBSCRIBE] }, to: [ $invite_to ] }
  - { match: { method: [REGISTER, OPTIONS] }, to: [ homer ] }
default: [ homer ]
EOF
}

# listen_and_start HOMER_TARGETS VOIP_TARGETS [INVITE_ROUTE_TO]: heprouter
# listening on udp and tcp, port 0 each, with that config.
listen_and_start() {
    it_start_router "$(router_config "$@")"
}

# send udp|tcp [hepreplay send options] ITEM...: to the router's listener.
send() {
    local transport=$1
    shift
    it_run 20 "${IT_REPLAY[@]}" send "${ROUTER_ADDR[$transport]}" "$@" || it_case_fail "hepreplay send failed: $*"
}

# arrive NAME=N...: wait until each sink holds N packets (bounded).
arrive() {
    local goals=() g
    for g in "$@"; do
        goals+=("$CASE_DIR/${g%%=*}.json=${g#*=}")
    done
    "${IT_REPLAY[@]}" wait --timeout "$ARRIVE_TIMEOUT" --settle-ms 0 "${goals[@]}"
}

# expect NAME [--convert-v3 ...] ITEM...: the sink got exactly these.
expect() {
    local name=$1
    shift
    "${IT_REPLAY[@]}" check --sink "$name" --json "$CASE_DIR/$name.json" "$@" | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "sink $name did not get what it should"
}

# stats EXPR...: counters of the "stats (exit, ...)" line.
stats() {
    "${IT_REPLAY[@]}" stats --log "$CASE_DIR/router.err" "$@" | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "counters differ"
}

# finish: stop heprouter (it drains), give the sinks a moment to read the rest.
finish() {
    it_stop_router
    sleep 0.1
}

# setup [udp|tcp]: two sinks, a config routing INVITE to voipmonitor, heprouter.
setup() {
    local transport=${1:-udp}
    it_start_sink homer "$transport"
    it_start_sink voipmonitor "$transport"
    listen_and_start "\"${SINK_ADDR[homer]}\"" "\"${SINK_ADDR[voipmonitor]}\""
}

CALL_V2=inv-1-10965@127.0.0.1
CALL_V3=inv-1-11219@127.0.0.1

case_invite_407() {
    it_case_begin invite_407 "INVITE, 407, ACK, INVITE with credentials, ... in capture order: all to voipmonitor"
    setup
    send udp $(it_seq_items v3 7 18)
    arrive voipmonitor=12
    finish
    expect homer
    expect voipmonitor $(it_seq_items v3 7 18)
    stats packets_in=12 calls_new=1 calls_followed=11 calls_fallback=0 orphans_held=0 \
        destinations.voipmonitor.packets=12 destinations.homer.packets=0 \
        routes.route-1.hits=12 routes.route-2.hits=0
    case_end
}

case_407_before_invite() {
    it_case_begin 407_before_invite "407 (and its ACK) arrive before their INVITE: held, then sent right after it"
    setup
    send udp --delay-ms 0 v3/008 v3/007
    send udp v3/010 v3/011
    arrive voipmonitor=4
    finish
    expect homer
    expect voipmonitor v3/007 v3/008 v3/010 v3/011
    stats calls_new=1 calls_fallback=0 orphans_held=1 orphans_released_origin=1 \
        orphans_released_fallback=0 calls_followed=3
    case_end

    it_case_begin 407_ack_before_invite "407 and ACK before the INVITE: both held, released in arrival order"
    setup
    send udp --delay-ms 1 v3/008 v3/009 v3/007
    send udp v3/010
    arrive voipmonitor=4
    finish
    expect homer
    expect voipmonitor v3/007 v3/008 v3/009 v3/010
    stats calls_new=1 calls_fallback=0 orphans_held=2 orphans_released_origin=2 orphans_released_fallback=0
    case_end
}

case_ack_unseen_407() {
    it_case_begin ack_unseen_407 "INVITE seen, its 407 never traced, the ACK of the 407 arrives"
    setup
    send udp v3/007 v3/009 v3/010 v3/011
    arrive voipmonitor=4
    finish
    expect homer
    expect voipmonitor v3/007 v3/009 v3/010 v3/011
    stats calls_new=1 calls_followed=3 orphans_held=0 calls_fallback=0
    case_end

    it_case_begin ack_unknown_call "ACK of a 407 of a call never seen: wait_ms, then CSeq ACK implies INVITE"
    setup
    send udp v3/009 $PAST_WAIT v3/010 v3/011 v3/012
    arrive voipmonitor=4
    finish
    expect homer
    expect voipmonitor v3/009 v3/010 v3/011 v3/012
    stats orphans_held=1 orphans_released_fallback=1 orphans_released_origin=0 calls_fallback=1 \
        calls_new=0 calls_followed=3
    case_end
}

case_register() {
    it_case_begin register "OPTIONS/200 and REGISTER/401/REGISTER/200 to homer; an orphan 401 falls back to REGISTER"
    setup
    # v2/004 is the 401 of another REGISTER call, never seen: after wait_ms
    # it goes by "CSeq: 1 REGISTER"; homer forwards v2 bytes as received.
    send udp $(it_seq_items v3 1 6) v2/004 $PAST_WAIT v2/005 v2/006
    arrive homer=9
    finish
    expect homer $(it_seq_items v3 1 6) v2/004 v2/005 v2/006
    expect voipmonitor
    stats calls_new=2 calls_fallback=1 orphans_held=1 orphans_released_fallback=1 \
        calls_followed=6 destinations.homer.packets=9 destinations.homer.converted=0
    case_end
}

case_bye_known() {
    it_case_begin bye_known "BYE (with correlation id chunk) and its 200s of a known call follow the INVITE"
    setup
    send udp v3/010 v3/012 v3/016 v3/017 v3/018 $(it_seq_items v3 19 22)
    arrive voipmonitor=9
    finish
    expect homer
    expect voipmonitor v3/010 v3/012 v3/016 v3/017 v3/018 $(it_seq_items v3 19 22)
    stats calls_new=1 calls_followed=8 orphans_held=0
    case_end
}

case_bye_unknown() {
    it_case_begin bye_unknown "BYE of a call older than the store: held, then CSeq BYE implies INVITE; the 200s follow"
    setup
    send udp $(it_seq_items v3 19 22)
    arrive voipmonitor=4
    finish
    expect homer
    expect voipmonitor $(it_seq_items v3 19 22)
    stats calls_new=0 calls_fallback=1 orphans_held=4 orphans_released_fallback=4 orphans_released_origin=0
    case_end
}

case_rtcp() {
    it_case_begin rtcp "RTCP (type 5) follows the call named by its correlation id"
    setup
    # known call; no correlation id (default route at once); unknown call
    # (held, then default route); RTCP before its INVITE (held, released).
    send udp v3/010 "rtcp:$CALL_V3" rtcp: rtcp:no-such-call@127.0.0.1 "rtcp:$CALL_V2" v2/007
    arrive voipmonitor=4 homer=2
    finish
    expect homer rtcp: rtcp:no-such-call@127.0.0.1
    expect voipmonitor --convert-v3 v3/010 "rtcp:$CALL_V3" v2/007 "rtcp:$CALL_V2"
    stats in_rtcp=4 uncorrelated=1 calls_new=2 orphans_held=2 orphans_released_origin=1 \
        orphans_released_fallback=1
    case_end
}

case_duplicates() {
    it_case_begin duplicates "exact duplicates (trace_mode=1 style) are all forwarded and counted"
    setup
    send udp v3/007 v3/007 v3/008 v3/008 v3/009 v3/009 v3/010 v3/003 v3/003 v3/004
    arrive voipmonitor=7 homer=3
    finish
    expect homer v3/003 v3/003 v3/004
    expect voipmonitor v3/007 v3/007 v3/008 v3/008 v3/009 v3/009 v3/010
    stats duplicates=4 calls_new=2 packets_in=10
    case_end
}

case_convert() {
    it_case_begin convert "HEP v1 and v2 input: homer gets it as received, voipmonitor (hep_version: 3) as HEPv3"
    setup
    local t0 t1
    t0=$(date +%s)
    send udp $(it_seq_items v1 1 12) $(it_seq_items v2 1 12)
    arrive homer=12 voipmonitor=12
    t1=$(date +%s)
    finish
    expect homer $(it_seq_items v1 1 6) $(it_seq_items v2 1 6)
    expect voipmonitor --convert-v3 --v1-ts-window "$((t0 - 1)):$((t1 + 1))" \
        $(it_seq_items v1 7 12) $(it_seq_items v2 7 12)
    stats in_v1=12 in_v2=12 calls_new=6 destinations.voipmonitor.converted=12 \
        destinations.homer.converted=0
    case_end
}

case_tcp() {
    it_case_begin tcp "TCP in (frames glued in one write, frames split across writes) and TCP out"
    setup tcp
    send tcp --tcp-mode glued $(it_seq_items v3 1 22)
    arrive homer=6 voipmonitor=16
    send tcp --tcp-mode split --split-size 97 --split-pause-ms 2 $(it_seq_items v3 1 22)
    arrive homer=12 voipmonitor=32
    # v1/v2 on UDP in, TCP out: a TCP stream is HEP3, so it is converted.
    send udp v2/001 v2/002
    arrive homer=14
    # a bad frame after a good one in the same write: the good one is
    # delivered, the connection closed and counted; a new one works.
    send tcp --tcp-mode glued v3/003 bad:version
    send tcp v3/004
    arrive homer=16
    finish
    expect homer --convert-v3 $(it_seq_items v3 1 6) $(it_seq_items v3 1 6) v2/001 v2/002 v3/003 v3/004
    expect voipmonitor $(it_seq_items v3 7 22) $(it_seq_items v3 7 22)
    stats tcp_accepted=4 tcp_bad_magic=1 calls_new=4 packets_in=48 \
        "destinations/homer/targets/${SINK_ADDR[homer]}/packets=16" \
        "destinations/voipmonitor/targets/${SINK_ADDR[voipmonitor]}/packets=32"
    case_end
}

# router_sockets udp|tcp PORT: how many listening sockets of heprouter
# (ROUTER_PID) ss shows on 127.0.0.1:PORT.
router_sockets() {
    local flag=-lnpt
    [ "$1" = udp ] && flag=-lnpu
    ss -H "$flag" "sport = :$2" 2>/dev/null | grep -c "pid=$ROUTER_PID,"
}

case_workers() {
    it_case_begin workers "workers: 2, a udp and a tcp listener on port 0: one ready line each, both workers on each port, traffic routed"
    local CASE_WORKERS=2 proto port n
    setup
    sed 's/^/    ready file: /' "$ROUTER_READY"
    n=$(grep -c . "$ROUTER_READY")
    [ "$n" = 2 ] || it_case_fail "the ready file has $n lines, expected one per listener (2)"
    for proto in udp tcp; do
        grep -Eqx "listening $proto:127\.0\.0\.1:[1-9][0-9]*" "$ROUTER_READY" ||
            it_case_fail "no \"listening $proto:127.0.0.1:PORT\" line in the ready file"
        port=${ROUTER_ADDR[$proto]##*:}
        n=$(router_sockets "$proto" "$port")
        echo "    $proto port $port: $n heprouter sockets (ss)"
        [ "$n" = 2 ] || it_case_fail "$proto port $port: $n listening sockets of heprouter, expected 2 (one per worker)"
    done
    send udp $(it_seq_items v3 7 18)
    send tcp $(it_seq_items v3 1 6)
    arrive voipmonitor=12 homer=6
    finish
    [ ! -e "$ROUTER_READY" ] || it_case_fail "the ready file is still there after heprouter stopped"
    expect homer $(it_seq_items v3 1 6)
    expect voipmonitor $(it_seq_items v3 7 18)
    stats packets_in=18 tcp_accepted=1 calls_new=3 calls_fallback=0 \
        destinations.voipmonitor.packets=12 destinations.homer.packets=6
    case_end
}

case_destination_down() {
    it_case_begin destination_down "voipmonitor's UDP and TCP targets are closed ports; homer still gets everything"
    local closed_udp closed_tcp
    closed_udp=$(it_free_port udp)
    closed_tcp=$(it_free_port tcp)
    it_start_sink homer udp
    listen_and_start "\"${SINK_ADDR[homer]}\"" \
        "\"udp:127.0.0.1:$closed_udp\", \"tcp:127.0.0.1:$closed_tcp\"" "voipmonitor, homer"
    send udp $(it_seq_items v3 1 22) $(it_seq_items v3 1 22)
    arrive homer=44
    # The TCP target comes up: what its queue kept while it was down is
    # delivered on reconnect, in order, then the new packets.
    it_start_sink voip_tcp tcp "$closed_tcp"
    send udp $(it_seq_items v3 7 22)
    arrive homer=60 voip_tcp=48
    finish
    expect homer $(it_seq_items v3 1 22) $(it_seq_items v3 1 22) $(it_seq_items v3 7 22)
    expect voip_tcp $(it_seq_items v3 7 22) $(it_seq_items v3 7 22) $(it_seq_items v3 7 22)
    stats destinations.homer.packets=60 destinations.voipmonitor.packets=48 \
        "destinations/voipmonitor/targets/tcp:127.0.0.1:$closed_tcp/packets=48" \
        "destinations/voipmonitor/targets/tcp:127.0.0.1:$closed_tcp/connects=1"
    case_end
}

case_drain() {
    it_case_begin drain "SIGUSR1 logs the counters; SIGTERM sends the held packets by their fallback"
    local CASE_WAIT_MS=20000        # nothing leaves the hold queue by timeout here
    setup
    send udp v3/008 v3/009 rtcp:no-such-call@127.0.0.1 v3/021
    sleep 0.3                       # past a counter snapshot (every 100 ms)
    kill -USR1 "$ROUTER_PID"
    it_wait_until 5 grep -q 'stats (SIGUSR1' "$CASE_DIR/router.err" || it_case_fail "no stats line after SIGUSR1"
    stats orphans_held=4 orphans_released_fallback=0 destinations.voipmonitor.packets=0 \
        destinations.homer.packets=0
    # nothing left while held (the sinks have had 300 ms to show it)
    expect homer
    expect voipmonitor
    finish
    expect homer rtcp:no-such-call@127.0.0.1
    expect voipmonitor v3/008 v3/009 v3/021
    stats orphans_held=4 orphans_released_fallback=4 calls_fallback=2
    case_end
}

case_malformed() {
    it_case_begin malformed "malformed packets mixed with valid ones: every valid one delivered, each error counted"
    setup
    send udp v3/001 bad:truncated v3/002 bad:version v3/003 bad:length v3/004 bad:chunk_short \
        v3/005 bad:chunk_overrun v3/006 bad:chunk_size v3/007 bad:no_payload v3/008 bad:hdr_len \
        v3/009 bad:family v3/010 bad:address v3/011
    arrive homer=6 voipmonitor=5
    finish
    expect homer $(it_seq_items v3 1 6)
    expect voipmonitor $(it_seq_items v3 7 11)
    stats packets_in=21 in_v3=11 decode_errors.truncated=1 decode_errors.bad_version=1 \
        decode_errors.length_mismatch=1 decode_errors.chunk_too_short=1 decode_errors.chunk_overrun=1 \
        decode_errors.bad_chunk_size=1 decode_errors.no_payload=1 decode_errors.bad_header_length=1 \
        decode_errors.bad_family=1 decode_errors.bad_address=1 calls_new=3
    # one summary line with the count and the sender, not a line per packet
    grep -Eq 'warn: 10 malformed HEP packets dropped from 127\.0\.0\.1:[0-9]+' "$CASE_DIR/router.err" ||
        it_case_fail "no \"10 malformed HEP packets dropped from 127.0.0.1:PORT\" line: $(grep malformed "$CASE_DIR/router.err")"
    (($(grep -c "malformed HEP packets dropped" "$CASE_DIR/router.err") == 1)) ||
        it_case_fail "malformed packets logged more than once: $(grep malformed "$CASE_DIR/router.err")"
    case_end
}

case_cli() {
    it_case_begin cli "heprouter -t -c, -V, -h"
    local out rc
    out=$(it_run 10 "$HEPROUTER" -t -c "$IT_SRCDIR/etc/heprouter.yaml" 2>&1)
    rc=$?
    ((rc == 0)) || it_case_fail "-t -c etc/heprouter.yaml: exit status $rc, expected 0; output: $out"
    grep -q 'configuration OK' <<<"$out" || it_case_fail "-t -c etc/heprouter.yaml: no \"configuration OK\" in: $out"

    # one file per kind of error: YAML syntax, values, references
    local bad f line
    for bad in router_bad_syntax.yaml router_bad_values.yaml router_bad_refs.yaml; do
        f=$HERE/$bad
        out=$(it_run 10 "$HEPROUTER" -t -c "$f" 2>&1)
        rc=$?
        ((rc != 0)) || it_case_fail "-t -c $bad: exit status 0, expected non-zero"
        grep -q 'configuration OK' <<<"$out" && it_case_fail "-t -c $bad: says \"configuration OK\""
        # every (non-comment) line marked "# error" must be reported as FILE:LINE:COL
        while read -r line; do
            grep -Eq "^$f:$line:[0-9]+: " <<<"$out" ||
                it_case_fail "-t -c $bad: no \"$f:$line:COL: ...\" line; output was: $out"
        done < <(grep -n '^[^#].*# error' "$f" | cut -d: -f1)
        if grep -Ev "^$f:[0-9]+:[0-9]+: |configuration has errors" <<<"$out" | grep -q .; then
            it_case_fail "-t -c $bad: lines not in FILE:LINE:COL form: $(grep -Ev "^$f:[0-9]+:[0-9]+: " <<<"$out")"
        fi
        echo "    $bad: $(wc -l <<<"$out") line(s), exit $rc"
    done

    out=$(it_run 10 "$HEPROUTER" -V 2>&1)
    rc=$?
    if ((rc != 0)) || ! grep -Eq '^heprouter [0-9]' <<<"$out"; then
        it_case_fail "-V: exit $rc, output: $out"
    fi
    out=$(it_run 10 "$HEPROUTER" -h 2>&1)
    rc=$?
    if ((rc != 0)) || ! grep -q -- '-t -c FILE' <<<"$out"; then
        it_case_fail "-h: exit $rc, output: $out"
    fi
    grep -q -- '--ready-file' <<<"$out" || it_case_fail "-h does not mention --ready-file: $out"
    grep -q -- '--check-store' <<<"$out" || it_case_fail "-h does not mention --check-store: $out"
    it_run 10 "$HEPROUTER" -t -c "$IT_SRCDIR/etc/heprouter.yaml" --ready-file "$CASE_DIR/x.ready" >/dev/null 2>&1
    rc=$?
    ((rc == 2)) || it_case_fail "-t with --ready-file: exit status $rc, expected 2 (usage)"
    it_run 10 "$HEPROUTER" -x >/dev/null 2>&1
    rc=$?
    ((rc != 0)) || it_case_fail "an unknown option exits 0"
    it_run 10 "$HEPROUTER" </dev/null >/dev/null 2>&1
    rc=$?
    ((rc != 0)) || it_case_fail "no -c exits 0"
    case_end
}

it_run_cases "$@"
