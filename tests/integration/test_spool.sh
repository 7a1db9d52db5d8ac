#!/usr/bin/env bash
# A destination's disk spool, issue 16 (loopback only, every process
# stopped by PID, each case bounded; figures printed per case: sent,
# delivered, duplicated, missing):
#
#   outage      a TCP back-end goes away for OUTAGE_S (10 s) under RATE
#               (5,000) packets/s and comes back: every packet arrives
#               exactly once, byte for byte, in order within each call;
#               calls that start once heprouter is connected again do not
#               wait behind the backlog being replayed (their p99 delay
#               under NEW_CALLS_P99_MS, against seconds for the backlog)
#   all_one_down  balance: all over two TCP back-ends, one of them down: the
#               other gets every packet at once (none goes through the
#               spool), the one down gets them all, in order, once it is up
#   kill9       heprouter killed with SIGKILL while its spool holds every
#               packet (the back-end down), started again with the back-end
#               up: everything delivered, once
#   term        SIGTERM while the back-end accepts but never reads: what
#               the TCP queue still holds after limits.drain_timeout goes to
#               the spool, not lost (exit_drops 0); after a restart the
#               back-end gets every packet but those the first connection's
#               socket took (written to a socket is sent, for heprouter)
#   max_bytes   spool.max_bytes (1 MiB) far exceeded while the back-end is
#               down: the oldest packets dropped and counted
#               (spool_dropped_max_bytes), every newer one delivered
#   torn        the spool's first segment cut in the middle of a record
#               while heprouter is stopped: the cut record and what followed
#               it in that segment are lost and counted (spool_damaged), the
#               rest delivered
#   disk_full   the spool on a 1 MiB tmpfs the test mounts: routing to a
#               UDP destination goes on (every packet), the spool's drops
#               are counted (spool_dropped_disk_full), and what it kept is
#               delivered when the back-end is up
#
#   BUILD_DIR=build bash tests/integration/test_spool.sh [CASE...]
#
# Environment: BUILD_DIR, IT_KEEP_TMP=1 keeps the scratch directory.
# Needs python3 and mount (tmpfs; run as root).
# shellcheck disable=SC2119  # it_usr1_stats signals ROUTER_PID by default
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

SPOOL=(python3 "$HERE/spool/spool.py")
TIME_LIMIT=240              # the whole test (about 70 s)
RATE=5000                   # outage: packets/s
OUTAGE_S=10                 # outage: seconds the back-end is away
PER_CALL=20                 # packets per call
ARRIVE_TIMEOUT=60           # seconds for a replay to complete
NEW_CALLS_P99_MS=1000       # outage: their delay bound while the backlog (about 2.5 s of it) is replayed
RECONNECTED_S=0.5           # outage: heprouter is connected again this long after the back-end is back
SMALL_SPOOL=1048576         # max_bytes, and the tmpfs size of disk_full
LIMITS="reconnect_min: 50ms, reconnect_max: 200ms, connect_timeout: 200ms"

it_init "$TIME_LIMIT"
it_require_cmd python3 mount umount
HEPROUTER=$(it_bin src/heprouter) || exit 1
IT_CASES=(outage all_one_down kill9 term max_bytes torn disk_full)
IT_ROUTER_LISTEN=udp

# start_sink PORT [NAME]: the TCP back-end (spool.py sink) on PORT, writing
# $CASE_DIR/NAME (default got); sets SINK to its PID.
start_sink() {
    it_start "${CASE}/sink-${2:-got}" "${SPOOL[@]}" sink "$1" --out "$CASE_DIR/${2:-got}"
    SINK=$IT_PID
    it_wait_for_port tcp "$1" || it_case_fail "the sink does not listen on $1"
}

# lines FILE: lines in FILE (0 when absent).
lines() { local n; n=$(wc -l <"$1" 2>/dev/null); echo "${n:-0}"; }
has_lines() { (($(lines "$1") >= $2)); }

# send CALLS [RATE]: CALLS calls of PER_CALL packets to the router, manifest in $CASE_DIR/sent.
send() {
    it_run 120 "${SPOOL[@]}" send "${ROUTER_ADDR[udp]}" --calls "$1" --per-call "$PER_CALL" \
        --rate "${2:-$RATE}" --prefix "$CASE" --out "$CASE_DIR/sent" | sed 's/^/    sent: /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "spool.py send failed"
}

# delivered N [CHECK_OPTION...]: waits until the sink has N packets, then checks them against what was sent.
delivered() {
    local n=$1
    shift
    it_wait_until "$ARRIVE_TIMEOUT" has_lines "$CASE_DIR/got" "$n" || true
    sleep 0.5               # duplicates would come now
    "${SPOOL[@]}" check "$CASE_DIR/sent" "$CASE_DIR/got" "$@" | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "the back-end did not get what was sent exactly once and in order"
}

# spool_router TPORT [SPOOL_KEYS] [UDP_TARGET] [LIMITS_KEYS]: heprouter with
# destination coll (TCP to TPORT, a spool in $CASE_DIR/spool with more
# SPOOL_KEYS), and a destination udp to UDP_TARGET when given; both get every
# packet.  LIMITS_KEYS go into limits: after LIMITS.
spool_router() {
    it_start_router "workers: 1
log: { stats_interval: 1s }
limits: { $LIMITS${4:+, $4} }
destinations:
  coll: { targets: [ \"tcp:127.0.0.1:$1\" ], spool: { dir: \"$CASE_DIR/spool\"${2:+, $2} } }
${3:+  udp: { targets: [ \"$3\" ] \}}
default: [ coll${3:+, udp} ]"
}

spool_counters() {
    local c
    for c in spool_written spool_replayed spool_resent spool_damaged spool_dropped_max_bytes spool_dropped_disk_full; do
        printf '%s %s  ' "$c" "$(it_counter "destinations/coll/$c")"
    done
    echo
}

case_outage() {
    it_case_begin outage "a TCP back-end away for ${OUTAGE_S}s under $RATE packets/s"
    local port calls=$((RATE * (OUTAGE_S + 6) / PER_CALL))
    port=$(it_free_port tcp) || exit 1
    start_sink "$port"
    spool_router "$port"
    it_start "$CASE/send" "${SPOOL[@]}" send "${ROUTER_ADDR[udp]}" --calls "$calls" --per-call "$PER_CALL" \
        --rate "$RATE" --prefix "$CASE" --out "$CASE_DIR/sent"
    local sender=$IT_PID
    sleep 2
    kill -USR1 "$SINK"
    it_note "back-end down"
    sleep "$OUTAGE_S"
    local up_at
    up_at=$(date +%s.%N)
    kill -USR2 "$SINK"
    it_note "back-end up"
    it_wait_exit "$sender" 60 || it_case_fail "the sender did not finish"
    sed 's/^/    sent: /' "$IT_TMP/$CASE/send.out"
    # calls started once heprouter is connected again (reconnect_max after
    # the back-end is back) never wait behind the backlog
    delivered $((calls * PER_CALL)) --delays-after "$up_at" --new-calls-p99-ms "$NEW_CALLS_P99_MS" \
        --new-calls-after "$(awk -v t="$up_at" -v d="$RECONNECTED_S" 'BEGIN { printf "%.6f", t + d }')"
    it_usr1_stats
    echo "    $(spool_counters)"
    (($(it_counter destinations/coll/spool_written) > RATE * (OUTAGE_S - 1))) ||
        it_case_fail "the spool kept fewer packets than the outage saw"
    it_stop_router
    it_stop "$SINK"
    it_case_end "$CASE_DIR/router.err"
}

case_all_one_down() {
    it_case_begin all_one_down "balance: all, one of two TCP back-ends down"
    local up down calls=200 up_sink
    up=$(it_free_port tcp) || exit 1
    down=$(it_free_port tcp) || exit 1
    start_sink "$up" got_up
    up_sink=$SINK
    it_start_router "workers: 1
log: { stats_interval: 1s }
limits: { $LIMITS }
destinations:
  coll: { targets: [ \"tcp:127.0.0.1:$up\", \"tcp:127.0.0.1:$down\" ], balance: all, spool: { dir: \"$CASE_DIR/spool\" } }
default: [ coll ]"
    send "$calls"
    it_wait_until "$ARRIVE_TIMEOUT" has_lines "$CASE_DIR/got_up" $((calls * PER_CALL)) || true
    "${SPOOL[@]}" check "$CASE_DIR/sent" "$CASE_DIR/got_up" | sed 's/^/    up: /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "the back-end that is up missed packets while the other was down"
    it_usr1_stats
    (($(it_counter destinations/coll/spool_written) == calls * PER_CALL)) ||
        it_case_fail "spool_written $(it_counter destinations/coll/spool_written): the copies for the one down only"
    start_sink "$down"
    delivered $((calls * PER_CALL))
    it_stop_router
    it_stop "$SINK"
    it_stop "$up_sink"
    it_case_end "$CASE_DIR/router.err"
}

case_kill9() {
    it_case_begin kill9 "SIGKILL with a full spool, then a restart"
    local port calls=1000
    port=$(it_free_port tcp) || exit 1
    spool_router "$port"
    send "$calls"
    it_stats_until 10 "destinations/coll/spool_written=$((calls * PER_CALL))"
    kill -KILL "$ROUTER_PID"
    it_wait_exit "$ROUTER_PID" 5
    it_note "heprouter killed; $(du -sb "$CASE_DIR/spool" | cut -f1) bytes in the spool"
    ROUTER_PID=""
    start_sink "$port"
    spool_router "$port"
    delivered $((calls * PER_CALL))
    it_stats_until 10 "destinations/coll/spool_replayed=$((calls * PER_CALL))" "destinations/coll/spool_resent=0"
    it_stop_router
    it_stop "$SINK"
    it_case_end "$CASE_DIR/router.err"
}

case_term() {
    it_case_begin term "SIGTERM with a full TCP queue"
    local port calls=1000 t written
    port=$(it_free_port tcp) || exit 1
    start_sink "$port"
    kill -STOP "$SINK"
    t="tcp:127.0.0.1:$port"
    spool_router "$port" "" "" "tcp_queue_bytes: 262144, drain_timeout: 1s"
    send "$calls"
    it_stats_until 10 "destinations/coll/packets=$((calls * PER_CALL))"
    local spooled replayed
    written=$(it_counter "destinations/coll/targets/$t/packets")
    spooled=$(it_counter destinations/coll/spool_written)
    replayed=$(it_counter destinations/coll/spool_replayed)
    it_note "the stalled connection took $written packets ($replayed of them replayed from the spool), the spool $spooled, the TCP queue the rest"
    it_stop_router
    local kept=$(($(it_counter destinations/coll/spool_written) - spooled))
    it_note "after SIGTERM: exit_drops $(it_counter "destinations/coll/targets/$t/exit_drops"), $kept queued packets kept in the spool"
    (($(it_counter "destinations/coll/targets/$t/exit_drops") == 0)) || it_case_fail "packets dropped at exit"
    ((kept > 0)) || it_case_fail "nothing kept from the TCP queue at exit"
    kill -KILL "$SINK"
    kill -CONT "$SINK"
    it_wait_exit "$SINK" 5
    rm -f "$CASE_DIR/got"
    start_sink "$port"
    spool_router "$port"
    # what the lost connection took is missing, but for replayed packets it
    # took that were not yet known to be written at the stop: they come
    # again, and are among those counted as resent
    it_wait_until "$ARRIVE_TIMEOUT" has_lines "$CASE_DIR/got" $((calls * PER_CALL - written)) || true
    local resent
    it_usr1_stats
    resent=$(it_counter destinations/coll/spool_resent)
    it_note "resent after the restart: $resent"
    delivered $((calls * PER_CALL - written)) --missing "$written" --missing-slack "$resent"
    it_stop_router
    it_stop "$SINK"
    it_case_end "$CASE_DIR/router.err"
}

case_max_bytes() {
    it_case_begin max_bytes "spool.max_bytes exceeded while the back-end is down"
    local port calls=400
    port=$(it_free_port tcp) || exit 1
    spool_router "$port" "max_bytes: $SMALL_SPOOL"
    send "$calls"
    it_stats_until 10 "destinations/coll/packets=$((calls * PER_CALL))"
    local dropped
    dropped=$(it_counter destinations/coll/spool_dropped_max_bytes)
    it_note "dropped for max_bytes: $dropped of $((calls * PER_CALL)); on disk $(du -sb "$CASE_DIR/spool" | cut -f1) bytes"
    ((dropped > 0)) || it_case_fail "nothing dropped for max_bytes"
    start_sink "$port"
    delivered $((calls * PER_CALL - dropped)) --skip-oldest "$dropped"
    it_stop_router
    it_stop "$SINK"
    it_case_end "$CASE_DIR/router.err"
}

case_torn() {
    it_case_begin torn "a segment cut in the middle of a record"
    local port calls=400 first size cut seg
    port=$(it_free_port tcp) || exit 1
    spool_router "$port" "max_bytes: $((4 * SMALL_SPOOL))"
    send "$calls"
    it_stats_until 10 "destinations/coll/spool_written=$((calls * PER_CALL))"
    it_stop_router
    first=$(find "$CASE_DIR/spool/w0" -name '*.seg' | sort | head -n 1)
    size=$(stat -c %s "$first")
    cut=$((size / 2))
    seg=$("${SPOOL[@]}" segment "$first" "$cut")
    truncate -s "$cut" "$first"
    local records before lost
    records=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["records"])' "$seg")
    before=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["before"])' "$seg")
    lost=$((records - before))
    it_note "$(basename "$first"): $records records, cut at byte $cut of $size: $lost lost"
    ((lost > 0)) || it_case_fail "the cut lost no record"
    start_sink "$port"
    spool_router "$port" "max_bytes: $((4 * SMALL_SPOOL))"
    delivered $((calls * PER_CALL - lost)) --missing "$lost"
    it_stats_until 10 "destinations/coll/spool_damaged=1"
    it_stop_router
    it_stop "$SINK"
    it_case_end "$CASE_DIR/router.err"
}

case_disk_full() {
    it_case_begin disk_full "the spool's file system fills"
    local port calls=400 written full
    port=$(it_free_port tcp) || exit 1
    mkdir -p "$CASE_DIR/spool"
    mount -t tmpfs -o size=$SMALL_SPOOL tmpfs "$CASE_DIR/spool" || it_cannot_run "cannot mount a tmpfs on $CASE_DIR/spool"
    it_start_sink udp udp
    spool_router "$port" "" "${SINK_ADDR[udp]}"
    send "$calls"
    it_stats_until 10 "destinations/udp/packets=$((calls * PER_CALL))"
    it_wait_until 10 it_sink_has udp $((calls * PER_CALL)) || true
    (($(it_sink_lines udp) == calls * PER_CALL)) || it_case_fail "the UDP destination got $(it_sink_lines udp) of $((calls * PER_CALL))"
    written=$(it_counter destinations/coll/spool_written)
    full=$(it_counter destinations/coll/spool_dropped_disk_full)
    it_note "spool: $written given, $full dropped (disk full)"
    ((full > 0)) || it_case_fail "no drop counted for the full disk"
    ((written == calls * PER_CALL)) || it_case_fail "$written of $((calls * PER_CALL)) given to the spool"
    local kept=$((written - full))
    start_sink "$port"
    it_wait_until "$ARRIVE_TIMEOUT" has_lines "$CASE_DIR/got" "$kept" || true
    (($(lines "$CASE_DIR/got") == kept)) || it_case_fail "$(lines "$CASE_DIR/got") of $kept spooled packets delivered"
    it_stop_router
    it_stop "$SINK"
    umount "$CASE_DIR/spool" || it_case_fail "cannot unmount $CASE_DIR/spool"
    it_case_end "$CASE_DIR/router.err"
}

it_run_cases "$@"
