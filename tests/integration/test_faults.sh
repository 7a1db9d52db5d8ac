#!/usr/bin/env bash
# Faults heprouter must survive, issue 15 (loopback only, every process
# stopped by PID, each case bounded; figures printed per case):
#
#   dest_down     a TCP destination down at start, then up; it and a UDP
#                 destination go down mid-run and come back on the same
#                 ports: UDP sends are counted while nobody listens, TCP
#                 reconnects and resumes, a third destination that stays
#                 up gets every packet
#   stalled_tcp   a TCP destination that accepts and never reads: its
#                 queue stays within limits.tcp_queue_bytes (the gauge on
#                 /metrics), queue_drops counts the rest, the other
#                 destination gets every packet and `heprouter ctl stats`
#                 answers
#   flood         FLOOD_PACKETS (default 200,000) packets, a third of them
#                 malformed (random bytes, truncated, bad lengths, 10,000
#                 chunks; faults/malformed.py, each refused by hepconv):
#                 every valid packet at its sink, decode_errors = malformed
#   tcp_abuse     connections over limits.tcp_max_connections refused and
#                 counted, half a header then silence closed at
#                 limits.tcp_idle_timeout, a length over limits.tcp_max_frame
#                 closed and counted, a byte per 1.5 idle timeouts closed,
#                 and so is a byte per half idle timeout: a frame must
#                 complete within limits.tcp_idle_timeout of its first byte
#                 (faults/tcp_abuse.py).
#                 test_limits.sh fd_budget covers the cap that the open
#                 files limit sets; this is the configured limit.
#   evictions_rss STORE_CALLS (default 2,000,000) unique Call-IDs against
#                 the memory store with store.max_calls 500,000: VmRSS after
#                 all of them is at most RSS_SLACK_PCT % above VmRSS once the
#                 store is full (a full store recycles its entries), and
#                 store_evictions >= calls - max_calls.  test_limits.sh
#                 evictions is the small version (100 of 1000).
#   redis_garbage a string that is no call value and a hash under two
#                 calls' keys (written by something else): both read as
#                 unknown calls (their CSeq fallback: the BYE to voipmonitor,
#                 the 401 to homer), store_errors counts them, no store_hits
#   valgrind      a short routing run under valgrind memcheck (threads
#                 included): no invalid access, no definite or indirect
#                 leak (--error-exitcode), heprouter exits 0
#
#   BUILD_DIR=build bash tests/integration/test_faults.sh [CASE...]
#
# Admission (sources, auth keys, capture ids) and the privilege drop are in
# test_security.sh.
#
# Environment: BUILD_DIR (src/heprouter, tools/hepdump, tools/hepgen,
# tests/integration/hepconv and udpblast: `make check` builds the last
# two), IT_KEEP_TMP=1 keeps the scratch directory, FLOOD_PACKETS, FLOOD_RATE,
# STORE_CALLS.  Needs python3, ss, curl, redis-server, redis-cli, valgrind.
# shellcheck disable=SC2046
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

REPLAY=(python3 "$HERE/hepreplay.py")
TIME_LIMIT=300              # the whole test (about 50 s; evictions_rss 11-40 s, flood 5-20 s)
ARRIVE_TIMEOUT=10           # seconds for packets to arrive
OPTIONS_PACKETS=2           # packets per hepgen OPTIONS call (hepgen(1))
REGISTER_PACKETS=4          # ... REGISTER call
INVITE_PACKETS=16           # ... INVITE call
PHASE_CALLS=50              # dest_down: OPTIONS calls sent per phase
QUEUE_BYTES=262144          # stalled_tcp: limits.tcp_queue_bytes
STALL_PACKETS=40000         # stalled_tcp: packets sent (about 16 MB, far above socket buffers)
FLOOD_PACKETS=${FLOOD_PACKETS:-200000}
FLOOD_RATE=${FLOOD_RATE:-10000}  # flood: packets/s of each of the three senders (UDP: faster loses packets in the kernel on a busy 2-core machine)
BAD_FILES=400               # flood: distinct malformed packets, sent in turn
MAX_CONNS=8                 # tcp_abuse: limits.tcp_max_connections
IDLE_S=1                    # tcp_abuse: limits.tcp_idle_timeout (its minimum)
MAX_FRAME=4096              # tcp_abuse: limits.tcp_max_frame
STORE_CALLS=${STORE_CALLS:-2000000}
MAX_CALLS=500000            # evictions_rss: store.max_calls
RSS_SLACK_PCT=10            # evictions_rss: allowed growth once the store is full
PREFIX="hrfaults:"          # redis_garbage: store.redis.prefix
VALGRIND_PACKETS=22         # valgrind: v3/001..022, one capture of each kind

it_init "$TIME_LIMIT"
it_require_cmd python3 ss curl redis-server redis-cli valgrind
HEPROUTER=$(it_bin src/heprouter) || exit 1
HEPGEN=$(it_bin tools/hepgen) || exit 1
HEPCONV=$(it_bin tests/integration/hepconv) || exit 1
UDPBLAST=$(it_bin tests/integration/udpblast) || exit 1
it_bin tools/hepdump >/dev/null || exit 1

IT_CASES=(dest_down stalled_tcp flood tcp_abuse evictions_rss redis_garbage valgrind)

# ---------------------------------------------------------------- helpers


# hepgen_send ADDR KIND CALLS PREFIX [RATE]: CALLS calls of KIND to ADDR.
hepgen_send() {
    local per=$OPTIONS_PACKETS
    [ "$2" = register ] && per=$REGISTER_PACKETS
    [ "$2" = invite ] && per=$INVITE_PACKETS
    it_run 120 "$HEPGEN" -q -d "$1" --mix "$2=100" -n $(($3 * per)) -r "${5:-20000}" --prefix "$4" \
        >>"$CASE_DIR/hepgen.out" || it_case_fail "hepgen $2 to $1 failed"
}

# udp_drops PORT: datagrams the kernel dropped at the UDP socket bound to
# 127.0.0.1:PORT (receive buffer full), from /proc/net/udp.
udp_drops() {
    awk -v p="$(printf ':%04X' "$1")" '$2 ~ p"$" { n += $NF } END { print n + 0 }' /proc/net/udp
}

vmrss_kb() {
    sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"
}

# ---------------------------------------------------------------- dest_down


# udp_accounted TARGET N: packets + send_errors + down_drops of the udp
# destination's TARGET is N (a fresh stats line).
udp_accounted() {
    local p
    it_usr1_stats || return 1
    p=$(it_target udp "$1")
    (($(it_counter "$p/packets") + $(it_counter "$p/send_errors") + $(it_counter "$p/down_drops") == $2))
}

case_dest_down() {
    it_case_begin dest_down "a TCP destination down at start; it and a UDP one go down mid-run and come back"
    local tport uport t u
    IT_ROUTER_LISTEN=udp
    tport=$(it_free_port tcp) || exit 1
    it_start_sink udp1 udp
    uport=${SINK_ADDR[udp1]##*:}
    it_start_sink steady udp
    t="tcp:127.0.0.1:$tport" u="udp:127.0.0.1:$uport"
    it_start_router "workers: 1
orphans: { wait_ms: 0 }
limits: { reconnect_min: 50ms, reconnect_max: 200ms, connect_timeout: 200ms }
destinations:
  tcp: { targets: [ \"$t\" ] }
  udp: { targets: [ \"$u\" ] }
  steady: { targets: [ \"${SINK_ADDR[steady]}\" ] }
default: [ tcp, udp, steady ]"
    local n=$((PHASE_CALLS * OPTIONS_PACKETS))

    it_note "phase 1: the TCP destination is down"
    hepgen_send "${ROUTER_ADDR[udp]}" options "$PHASE_CALLS" p1
    it_arrive udp1 "$n"
    it_usr1_stats || it_case_fail "no stats line"
    local early_drops
    early_drops=$(( $(it_counter "$(it_target tcp "$t")/down_drops") + $(it_counter "$(it_target tcp "$t")/queue_drops") ))
    echo "    tcp target while down: packets $(it_counter "$(it_target tcp "$t")/packets"), dropped $early_drops, connects $(it_counter "$(it_target tcp "$t")/connects")"

    it_note "phase 2: the TCP destination comes up"
    it_start_sink tcp1 tcp "$tport"
    it_stats_until 5 "$(it_target tcp "$t")/connects=1"
    # what was queued while it was down arrives now, what was dropped is counted
    local queued=$((n - early_drops))
    hepgen_send "${ROUTER_ADDR[udp]}" options "$PHASE_CALLS" p2
    it_arrive tcp1 $((queued + n))
    it_arrive udp1 $((2 * n))

    it_note "phase 3: both go down"
    it_stop "${SINK_PID[tcp1]}"
    it_stop "${SINK_PID[udp1]}"
    it_stats_until 5 "$(it_target tcp "$t")/disconnects=1"
    hepgen_send "${ROUTER_ADDR[udp]}" options "$PHASE_CALLS" p3
    # a UDP send is counted sent or failed (ICMP refused: marked down), never lost
    it_wait_until 5 udp_accounted "$u" $((3 * n)) || it_case_fail "udp target: packets + send_errors + down_drops != $((3 * n))"
    echo "    while down: udp send_errors $(it_counter "$(it_target udp "$u")/send_errors"), tcp down_drops $(it_counter "$(it_target tcp "$t")/down_drops"), queue_drops $(it_counter "$(it_target tcp "$t")/queue_drops"), queued $(it_counter "$(it_target tcp "$t")/packets")"

    it_note "phase 4: both come back on the same ports"
    it_start_sink udp2 udp "$uport"
    it_start_sink tcp2 tcp "$tport"
    it_stats_until 5 "$(it_target tcp "$t")/connects=2"
    local before_tcp2
    sleep 0.3
    before_tcp2=$(it_sink_lines tcp2)     # phase 3 packets queued while reconnecting
    hepgen_send "${ROUTER_ADDR[udp]}" options "$PHASE_CALLS" p4
    it_arrive tcp2 $((before_tcp2 + n))
    it_arrive udp2 "$n"
    it_arrive steady $((4 * n))
    echo "    tcp: phase 3 packets delivered after the reconnect: $before_tcp2 of $n"
    it_stats_until 5 packets_in=$((4 * n)) "$(it_target tcp "$t")/connects=2" "$(it_target tcp "$t")/packets=$((4 * n))" \
        "$(it_target steady "${SINK_ADDR[steady]}")/packets=$((4 * n))"
    udp_accounted "$u" $((4 * n)) || it_case_fail "udp target: packets + send_errors + down_drops != $((4 * n))"
    it_stop_router
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

# ---------------------------------------------------------------- stalled_tcp

metric() {
    curl -s --max-time 5 "http://$METRICS/metrics" | awk -v m="$1" 'index($0, m) == 1 { print $NF; exit }'
}

case_stalled_tcp() {
    it_case_begin stalled_tcp "a TCP destination that never reads; limits.tcp_queue_bytes $QUEUE_BYTES"
    local stall_pid sport t
    it_start "$CASE/stall" python3 "$HERE/faults/stall.py" "$CASE_DIR/stall.ready" 60
    stall_pid=$IT_PID
    it_wait_for_file "$CASE_DIR/stall.ready" 5
    sport=$(it_listen_port "$CASE_DIR/stall.ready" tcp) || exit 1
    t="tcp:127.0.0.1:$sport"
    it_start_sink other udp 0 --count -q
    IT_ROUTER_LISTEN=udp
    it_start_router "workers: 1
orphans: { wait_ms: 0 }
limits: { tcp_queue_bytes: $QUEUE_BYTES }
metrics: { listen: \"127.0.0.1:0\" }
control: { socket: \"$CASE_DIR/ctl.sock\" }
destinations:
  stalled: { targets: [ \"$t\" ] }
  other: { targets: [ \"${SINK_ADDR[other]}\" ] }
default: [ stalled, other ]"
    METRICS=$(grep '^listening http:' "$ROUTER_READY" | sed 's/^listening http://')
    hepgen_send "${ROUTER_ADDR[udp]}" options $((STALL_PACKETS / OPTIONS_PACKETS)) st 40000
    it_stats_until 10 packets_in="$STALL_PACKETS" "$(it_target other "${SINK_ADDR[other]}")/packets=$STALL_PACKETS" \
        "$(it_target stalled "$t")/queue_drops>0"
    local qb qp written drops rss
    qb=$(metric "heprouter_target_queue_bytes{destination=\"stalled\"")
    qp=$(metric "heprouter_target_queue_packets{destination=\"stalled\"")
    written=$(it_counter "$(it_target stalled "$t")/packets")
    drops=$(it_counter "$(it_target stalled "$t")/queue_drops")
    rss=$(vmrss_kb "$ROUTER_PID")
    echo "    stalled target: sent $STALL_PACKETS, written to the socket $written, queue_drops $drops, queued now $qp packets / $qb bytes (bound $QUEUE_BYTES), VmRSS ${rss} kB"
    if ! [[ $qb =~ ^[0-9]+$ ]] || ((qb > QUEUE_BYTES)); then
        it_case_fail "queue bytes $qb, bound $QUEUE_BYTES"
    fi
    ((written + drops + qp == STALL_PACKETS)) ||
        it_case_fail "written $written + dropped $drops + queued $qp != sent $STALL_PACKETS"
    if it_run 5 "$HEPROUTER" ctl -s "$CASE_DIR/ctl.sock" stats >"$CASE_DIR/ctl.out" 2>&1; then
        echo "    heprouter ctl stats: $(head -c 120 "$CASE_DIR/ctl.out")..."
    else
        it_case_fail "heprouter ctl stats failed: $(head -n 3 "$CASE_DIR/ctl.out")"
    fi
    it_stop_router
    it_stop "${SINK_PID[other]}"
    local got
    got=$(it_summary_field "$CASE_DIR/other.json" packets)
    echo "    other destination: ${got:-0} of $STALL_PACKETS"
    [ "${got:-0}" = "$STALL_PACKETS" ] || it_case_fail "the other destination got ${got:-0} of $STALL_PACKETS"
    it_stop "$stall_pid"
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

# ---------------------------------------------------------------- flood

case_flood() {
    it_case_begin flood "$FLOOD_PACKETS packets, a third of them malformed"
    local bad=$((FLOOD_PACKETS / 3)) inv_calls reg_calls refused
    inv_calls=$(((FLOOD_PACKETS - bad) / 2 / INVITE_PACKETS))
    reg_calls=$(((FLOOD_PACKETS - bad - inv_calls * INVITE_PACKETS) / REGISTER_PACKETS))
    bad=$((FLOOD_PACKETS - inv_calls * INVITE_PACKETS - reg_calls * REGISTER_PACKETS))
    python3 "$HERE/faults/malformed.py" "$IT_DATA/v3/007.hep" "$CASE_DIR/bad" "$BAD_FILES" ||
        it_fail "malformed.py failed"
    refused=$("$HEPCONV" decode "$CASE_DIR"/bad/*.bad | grep -c '"error"')
    [ "$refused" = "$BAD_FILES" ] || it_fail "hepconv decodes $((BAD_FILES - refused)) of the malformed packets"
    it_start_sink homer udp 0 --count -q
    it_start_sink voipmonitor udp 0 --count -q
    IT_ROUTER_LISTEN=udp
    it_start_router "workers: 1
orphans: { wait_ms: 0 }
limits: { udp_rcvbuf: 33554432 }
$(it_two_sink_policy INVITE)"
    it_note "sending $((inv_calls * INVITE_PACKETS)) INVITE-call, $((reg_calls * REGISTER_PACKETS)) REGISTER-call and $bad malformed packets"
    local p1 p2 p3
    it_start "$CASE/hepgen_inv" "$HEPGEN" -q -d "${ROUTER_ADDR[udp]}" --mix invite=100 \
        -n $((inv_calls * INVITE_PACKETS)) -r "$FLOOD_RATE" --prefix finv
    p1=$IT_PID
    it_start "$CASE/hepgen_reg" "$HEPGEN" -q -d "${ROUTER_ADDR[udp]}" --mix register=100 \
        -n $((reg_calls * REGISTER_PACKETS)) -r "$FLOOD_RATE" --prefix freg
    p2=$IT_PID
    it_start "$CASE/udpblast" "$UDPBLAST" -c "$bad" -r "$FLOOD_RATE" 127.0.0.1 "$ROUTER_PORT" "$CASE_DIR"/bad/*.bad
    p3=$IT_PID
    for p in $p1 $p2 $p3; do
        it_wait_exit "$p" 60
        ((IT_STATUS == 0)) || it_case_fail "a sender (pid $p) exited with status $IT_STATUS"
    done
    it_stats_until 15 packets_in="$FLOOD_PACKETS"
    echo "    kernel drops at the UDP sockets: heprouter $(udp_drops "$ROUTER_PORT"), homer $(udp_drops "${SINK_ADDR[homer]##*:}"), voipmonitor $(udp_drops "${SINK_ADDR[voipmonitor]##*:}")"
    local errs
    errs=$(it_counter decode_errors)
    echo "    decode_errors by reason: $(grep 'stats (SIGUSR1' "$CASE_DIR/router.err" | tail -n 1 | grep -o '"decode_errors":{[^}]*}')"
    [ "$errs" = "$bad" ] || it_case_fail "decode_errors $errs, malformed sent $bad"
    it_stop_router
    it_stop "${SINK_PID[homer]}"
    it_stop "${SINK_PID[voipmonitor]}"
    local h v
    h=$(it_summary_field "$CASE_DIR/homer.json" packets)
    v=$(it_summary_field "$CASE_DIR/voipmonitor.json" packets)
    echo "    sent $FLOOD_PACKETS: $((inv_calls * INVITE_PACKETS)) INVITE-call packets -> voipmonitor got ${v:-0}," \
        "$((reg_calls * REGISTER_PACKETS)) REGISTER-call -> homer got ${h:-0}, $bad malformed -> decode_errors $errs"
    [ "${v:-0}" = $((inv_calls * INVITE_PACKETS)) ] || it_case_fail "voipmonitor got ${v:-0}"
    [ "${h:-0}" = $((reg_calls * REGISTER_PACKETS)) ] || it_case_fail "homer got ${h:-0}"
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

# ---------------------------------------------------------------- tcp_abuse

# field CHECK KEY: from the JSON line of that check in tcp_abuse.out.
field() {
    python3 -c 'import json, sys
for l in open(sys.argv[1]):
    d = json.loads(l)
    if d["check"] == sys.argv[2]:
        print(d[sys.argv[3]])' "$CASE_DIR/tcp_abuse.out" "$1" "$2"
}

case_tcp_abuse() {
    it_case_begin tcp_abuse "over the connection limit, half a frame, a long frame, a trickle"
    it_start_sink sink udp
    IT_ROUTER_LISTEN=tcp
    it_start_router "workers: 1
orphans: { wait_ms: 0 }
limits: { tcp_max_connections: $MAX_CONNS, tcp_idle_timeout: ${IDLE_S}s, tcp_max_frame: $MAX_FRAME }
destinations:
  sink: { targets: [ \"${SINK_ADDR[sink]}\" ] }
default: [ sink ]"
    it_run 30 python3 "$HERE/faults/tcp_abuse.py" "$ROUTER_PORT" "$MAX_CONNS" "$IDLE_S" "$MAX_FRAME" \
        >"$CASE_DIR/tcp_abuse.out" 2>"$CASE_DIR/tcp_abuse.err" || it_case_fail "tcp_abuse.py failed: $(tail -n 3 "$CASE_DIR/tcp_abuse.err")"
    sed 's/^/    /' "$CASE_DIR/tcp_abuse.out"
    local closed t
    closed=$(field over_limit closed)
    [ "$closed" = 4 ] || it_case_fail "over the limit: $closed of 4 extra connections closed"
    t=$(field half_frame closed_after)
    awk -v t="$t" -v i="$IDLE_S" 'BEGIN { exit !(t != "None" && t >= i * 0.9 && t <= i * 3) }' ||
        it_case_fail "half a header: closed after $t s, idle timeout $IDLE_S s"
    [ "$(field big_length closed_after)" != None ] || it_case_fail "a frame over tcp_max_frame was not closed"
    t=$(field slow_gap closed_after)
    awk -v t="$t" -v i="$IDLE_S" 'BEGIN { exit !(t != "None" && t <= i * 3) }' ||
        it_case_fail "a byte per 1.5 idle timeouts: closed after $t s"
    [ "$(field slow_fast still_open)" = False ] ||
        it_case_fail "a byte every $IDLE_S/2 s kept a connection open for 3 idle timeouts (a frame must complete within one)"
    it_stats_until 5 tcp_rejected=4 tcp_bad_length=1 tcp_idle_closed">=2" tcp_accepted=$((MAX_CONNS + 4))
    it_stop_router
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

# ---------------------------------------------------------------- evictions_rss

case_evictions_rss() {
    it_case_begin evictions_rss "$STORE_CALLS unique Call-IDs, store.max_calls $MAX_CALLS"
    local dport first rest r1 r2 hwm
    dport=$(it_free_port udp) || exit 1     # nobody listens: sends are cheap
    IT_ROUTER_LISTEN=tcp
    it_start_router "workers: 1
store: { max_calls: $MAX_CALLS }
orphans: { wait_ms: 0 }
destinations:
  void: { targets: [ \"udp:127.0.0.1:$dport\" ] }
default: [ void ]"
    first=$MAX_CALLS
    rest=$((STORE_CALLS - MAX_CALLS))
    hepgen_send "${ROUTER_ADDR[tcp]}" options "$first" ev1 0
    # (ended OPTIONS calls may already have expired: the store is about full)
    it_stats_until 30 packets_in=$((first * OPTIONS_PACKETS)) calls_in_store">=$((MAX_CALLS * 9 / 10))"
    r1=$(vmrss_kb "$ROUTER_PID")
    echo "    VmRSS with the store full ($MAX_CALLS calls): $r1 kB"
    hepgen_send "${ROUTER_ADDR[tcp]}" options "$rest" ev2 0
    it_stats_until 60 packets_in=$((STORE_CALLS * OPTIONS_PACKETS)) store_evictions">=$rest" calls_in_store="$MAX_CALLS"
    r2=$(vmrss_kb "$ROUTER_PID")
    hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$ROUTER_PID/status")
    echo "    after $STORE_CALLS calls: VmRSS $r2 kB, VmHWM $hwm kB, store_evictions $(it_counter store_evictions) (bound: $r1 kB + $RSS_SLACK_PCT %)"
    ((hwm <= r1 + r1 * RSS_SLACK_PCT / 100)) || it_case_fail "VmHWM $hwm kB over $r1 kB + $RSS_SLACK_PCT %"
    it_stop_router
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

# ---------------------------------------------------------------- redis_garbage

redis_ready() {
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>&1)" = PONG ]
}

case_redis_garbage() {
    it_case_begin redis_garbage "garbage under two calls' keys in Redis"
    local rport rpid
    rport=$(it_free_port tcp) || exit 1
    mkdir -p "$CASE_DIR/redis"
    it_start "$CASE/redis" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$CASE_DIR/redis"
    rpid=$IT_PID
    it_wait_until 5 redis_ready "$rport" || it_fail "redis-server did not start on port $rport"
    timeout 5 redis-cli -p "$rport" SET "${PREFIX}call:inv-1-11219@127.0.0.1" "not|a call value" >/dev/null
    timeout 5 redis-cli -p "$rport" HSET "${PREFIX}call:reg-1-11172@127.0.0.1" route voipmonitor >/dev/null
    it_start_sink homer
    it_start_sink voipmonitor
    IT_ROUTER_LISTEN=udp
    it_start_router "workers: 1
orphans: { wait_ms: 100 }
store: { type: redis, redis: { host: 127.0.0.1, port: $rport, prefix: \"$PREFIX\", timeout_ms: 200 } }
$(it_two_sink_policy INVITE)"
    # the BYE of the INVITE call and the 401 of the REGISTER: the cold
    # instance asks Redis, gets garbage, holds them, then routes them by
    # their own CSeq method (BYE: default, REGISTER: homer)
    it_run 10 "${REPLAY[@]}" send "${ROUTER_ADDR[udp]}" v3/019 v3/004 || it_case_fail "hepreplay send failed"
    it_arrive homer 1
    it_arrive voipmonitor 1
    "${REPLAY[@]}" check --sink homer --json "$CASE_DIR/homer.json" v3/004 | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "homer did not get the 401"
    "${REPLAY[@]}" check --sink voipmonitor --json "$CASE_DIR/voipmonitor.json" v3/019 | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "voipmonitor did not get the BYE"
    # lookups are asked again while held: each answer is an error, none a hit
    it_stats_until 5 store_lookups">=2" store_errors">=2" store_hits=0 calls_fallback=2
    grep -q 'malformed value for call' "$CASE_DIR/router.err" || it_case_fail "no warning about the malformed value"
    grep 'redis.*malformed\|WRONGTYPE' "$CASE_DIR/router.err" | head -n 2 | sed 's/^/    /'
    it_stop_router
    it_stop "$rpid"
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

# ---------------------------------------------------------------- valgrind

case_valgrind() {
    it_case_begin valgrind "a routing run under valgrind memcheck"
    it_start_sink homer
    it_start_sink voipmonitor
    IT_ROUTER_LISTEN=udp
    local ready_timeout=$IT_READY_TIMEOUT
    IT_READY_TIMEOUT=60
    it_start_router "workers: 2
orphans: { wait_ms: 50 }
$(it_two_sink_policy INVITE)" valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect --track-origins=no \
        --log-file="$CASE_DIR/valgrind.log"
    IT_READY_TIMEOUT=$ready_timeout
    it_run 30 "${REPLAY[@]}" send "${ROUTER_ADDR[udp]}" $(it_seq_items v3 1 "$VALGRIND_PACKETS") ||
        it_case_fail "hepreplay send failed"
    it_arrive voipmonitor 16
    it_arrive homer 6
    it_stop "$ROUTER_PID" 60
    echo "    valgrind: $(grep -E 'ERROR SUMMARY|definitely lost|indirectly lost' "$CASE_DIR/valgrind.log" | sed 's/^==[0-9]*== *//' | tr '\n' ';')"
    ((IT_STATUS == 0)) || it_case_fail "heprouter under valgrind exited with status $IT_STATUS (99: memcheck errors)"
    ROUTER_PID=""
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end "$CASE_DIR/valgrind.log" "$CASE_DIR/router.err"
}

it_run_cases "$@"
