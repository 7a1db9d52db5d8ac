#!/bin/bash
# test_hepdump_rate.sh - hepdump, the back-end stand-in of the other tests,
# must not lose HEP packets at 50k packets/s on loopback: with JSON written
# to a file and with --count, over UDP, and over TCP with frames split
# across writes.  It sends the Kamailio HEPv3 captures with udpblast and
# asserts that hepdump counted exactly what was sent.
#
# Environment (default):
#   RATE_PPS      (50000)   packets per second to assert
#   RATE_PACKETS  (100000)  packets per run: 2 s of sending at RATE_PPS,
#                           several times what hepdump's 16 MiB socket
#                           buffer holds, so a slow reader loses packets
#   RATE_RUNS     (1)       UDP runs per output mode (3 and 200000 packets
#                           were the defaults; raise them to hunt a rare loss)
#   RATE_SEARCH   (0)       1: also find the highest lossless UDP rate
#                           (reported, not asserted)
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

RATE_PPS=${RATE_PPS:-50000}
RATE_PACKETS=${RATE_PACKETS:-100000}
RATE_RUNS=${RATE_RUNS:-1}
RATE_SEARCH=${RATE_SEARCH:-0}
SEARCH_RATES="100000 200000 400000 800000 0"   # 0: as fast as the sender goes
UNLIMITED_PPS=100000        # only to size the deadline of an unlimited run
DEADLINE_SLACK=10           # seconds past the nominal send time
TCP_MAX_WRITE=1400          # udpblast -S: random write sizes 1..this

it_init 600
it_require_cmd ss awk timeout
HEPDUMP=$(it_bin tools/hepdump) || exit 1

# udpblast is a check program (make check builds it, linked with the core).
UDPBLAST=$(it_bin tests/integration/udpblast) || exit 1

# Real Kamailio traces when they are there, else udpblast's built-in INVITE.
PACKET_FILES=()
for f in "$IT_SRCDIR"/tests/data/kamailio/v3/*.hep; do
    [ -f "$f" ] && PACKET_FILES+=("$f")
done
it_log "hepdump $HEPDUMP; ${#PACKET_FILES[@]} packet files (0: built-in INVITE)"

RUN_SEQ=0

# run_once udp|tcp json|count PPS COUNT: one measured run.  Sets RUN_RECEIVED,
# RUN_DROPS (kernel socket drops seen by hepdump) and RUN_SENT_PPS.
run_once() {
    local transport=$1 mode=$2 pps=$3 count=$4
    local name out limit port pid lines
    RUN_SEQ=$((RUN_SEQ + 1))
    name="$transport-$mode-$pps-$RUN_SEQ"
    out="$IT_TMP/$name.json"
    limit=$((count / (pps > 0 ? pps : UNLIMITED_PPS) + DEADLINE_SLACK))

    # -n ends the run as soon as all arrived; a lossy run ends at -s.
    local args=(-l "$transport:127.0.0.1:0" -o "$out" -n "$count" -s "$limit")
    [ "$mode" = count ] && args+=(--count)
    it_start_hepdump "$name" "${args[@]}"
    pid=$IT_PID
    port=$(it_listen_port "$IT_TMP/$name.ready" "$transport") || exit 1

    local blast=(-c "$count" -r "$pps")
    [ "$transport" = tcp ] && blast+=(-t -S "$TCP_MAX_WRITE")
    it_run "$limit" "$UDPBLAST" "${blast[@]}" 127.0.0.1 "$port" "${PACKET_FILES[@]}" \
        >"$IT_TMP/$name.blast" 2>>"$IT_TMP/$name.err" || it_fail "$name: udpblast failed"
    it_wait_exit "$pid" $((limit + DEADLINE_SLACK))
    [ "$IT_STATUS" = 0 ] || it_fail "$name: hepdump exited with $IT_STATUS"

    RUN_RECEIVED=$(it_summary_field "$IT_TMP/$name.err" packets)
    RUN_DROPS=$(it_summary_field "$IT_TMP/$name.err" kernel_drops)
    RUN_SENT_PPS=$(sed -n 's/.*"pps":\([0-9]*\).*/\1/p' "$IT_TMP/$name.blast")
    [ -n "$RUN_RECEIVED" ] || it_fail "$name: no summary from hepdump"
    [ "$(it_summary_field "$IT_TMP/$name.err" tcp_stream_errors)" = 0 ] ||
        it_fail "$name: hepdump closed a TCP stream for bad framing"
    [ "$(it_summary_field "$IT_TMP/$name.err" errors)" = 0 ] ||
        it_fail "$name: hepdump could not decode some packets"

    if [ "$mode" = json ]; then
        # One line per packet, numbered 1..N, each with the SIP Call-ID.
        lines=$(wc -l <"$out")
        [ "$lines" = "$RUN_RECEIVED" ] || it_fail "$name: $lines lines for $RUN_RECEIVED packets"
        [ "$(grep -c '"call_id":' "$out")" = "$lines" ] || it_fail "$name: lines without a call_id"
        tail -n 1 "$out" | grep -q "^{\"n\":$RUN_RECEIVED," || it_fail "$name: last line is not n=$RUN_RECEIVED"
        # every line a JSON value (python3 reads 100000 lines in 2 s, jq in 10)
        if command -v python3 >/dev/null 2>&1; then
            python3 -c 'import json, sys
for line in open(sys.argv[1], "rb"):
    json.loads(line)' "$out" || it_fail "$name: output is not valid JSON"
        elif command -v jq >/dev/null 2>&1; then
            jq -e . "$out" >/dev/null || it_fail "$name: output is not valid JSON"
        fi
    else
        [ "$(it_summary_field "$out" packets)" = "$RUN_RECEIVED" ] ||
            it_fail "$name: --count summary differs from the stderr summary"
    fi
    rm -f "$out"
    # A slow sender would make the run prove less than it claims: say so.
    if [ "$pps" -gt 0 ] && [ "${RUN_SENT_PPS:-0}" -lt $((pps * 9 / 10)) ]; then
        it_log "WARNING: $name: udpblast reached only ${RUN_SENT_PPS:-?} of $pps pps"
    fi
    it_log "$(printf '%-3s %-5s target %7s pps: sent at %7s pps, received %s/%s, kernel drops %s' \
        "$transport" "$mode" "$pps" "$RUN_SENT_PPS" "$RUN_RECEIVED" "$count" "${RUN_DROPS:-0}")"
}

median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# The assertion: no loss at RATE_PPS, RATE_RUNS times per output mode.
for mode in json count; do
    sent=()
    for ((run = 1; run <= RATE_RUNS; run++)); do
        run_once udp "$mode" "$RATE_PPS" "$RATE_PACKETS"
        it_assert_eq "$RATE_PACKETS" "$RUN_RECEIVED" "udp $mode run $run: packets received"
        sent+=("$RUN_SENT_PPS")
    done
    it_log "udp $mode: $RATE_RUNS/$RATE_RUNS runs lossless at $RATE_PPS pps (median send rate $(median "${sent[@]}") pps)"
done

# TCP: the stream is flow-controlled, so any shortfall is a framing bug.
for mode in json count; do
    run_once tcp "$mode" "$RATE_PPS" "$RATE_PACKETS"
    it_assert_eq "$RATE_PACKETS" "$RUN_RECEIVED" "tcp $mode: packets received"
done

# Optional: the highest target rate without loss, per output mode.
if [ "$RATE_SEARCH" = 1 ]; then
    for mode in count json; do
        best=$RATE_PPS
        for pps in $SEARCH_RATES; do
            run_once udp "$mode" "$pps" "$RATE_PACKETS"
            if [ "$RUN_RECEIVED" != "$RATE_PACKETS" ]; then
                it_log "udp $mode: loss at target $pps pps (sent at $RUN_SENT_PPS pps)"
                break
            fi
            best="$pps (sent at $RUN_SENT_PPS pps)"
        done
        it_log "udp $mode: highest lossless target rate: $best"
    done
fi

it_log "PASS"
