#!/usr/bin/env bash
# Target health: how heprouter finds a dead back-end and comes back to it
# (loopback only, every process stopped by PID, about 15 s in all):
#
#   udp_failover      a `balance: failover` destination whose first UDP
#                     target has nobody on its port (ICMP port unreachable)
#                     and whose second is a sink: after
#                     limits.udp_refusals_down refusals the first is down
#                     (refusals, went_down counted) and the traffic lands
#                     on the second; once a sink listens on the first
#                     port, a probe brings it up (went_up) and the traffic
#                     goes back to it.  Counters from the SIGUSR1 stats
#                     line and /metrics, packets from the sinks.
#   tcp_user_timeout  a TCP sink that accepts, then is stopped (SIGSTOP):
#                     its kernel still acknowledges into its receive buffer
#                     until the buffer is full, then only zero-window
#                     probes; the data heprouter writes stays
#                     unacknowledged and limits.tcp_user_timeout closes the
#                     connection (disconnects, went_down, "Connection timed
#                     out" in the log) within a bound, where the kernel
#                     alone would retransmit for about 15 minutes.  Shown on
#                     Linux 6.x loopback; the options themselves are read
#                     back by tests/unit/test_dest.c.
#
#   BUILD_DIR=build bash tests/integration/test_health.sh [CASE...]
#
# Environment: BUILD_DIR (src/heprouter, tools/hepdump, tools/hepgen),
# IT_KEEP_TMP=1 keeps the scratch directory.  Needs python3, curl.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=90               # the whole test (about 15 s)
REFUSALS_DOWN=3             # udp_failover: limits.udp_refusals_down
PHASE_PACKETS=100           # udp_failover: packets sent per phase (even: hepgen sends whole OPTIONS calls of 2)...
PHASE_RATE=200              # ...at this rate, one per loop pass (a send window each)
BACK_PACKETS=40             # udp_failover: sent once the first target is up again
USER_TIMEOUT_S=1            # tcp_user_timeout: limits.tcp_user_timeout
TIMEOUT_SLACK_S=6           # ...the disconnect must come within this after the stop
STALL_PACKETS=40000         # ...packets sent (about 16 MB, far above the socket buffers)

it_init "$TIME_LIMIT"
it_require_cmd python3 curl
HEPROUTER=$(it_bin src/heprouter) || exit 1
HEPGEN=$(it_bin tools/hepgen) || exit 1
it_bin tools/hepdump >/dev/null || exit 1

IT_CASES=(udp_failover tcp_user_timeout)

# ---------------------------------------------------------------- helpers

# metric NAME TARGET: the value of family NAME for target TARGET on /metrics.
metric() {
    local page
    page=$(curl -s --max-time 5 "http://$METRICS/metrics") || return 1
    awk -v m="$1{" -v t="target=\"$2\"}" 'index($0, m) == 1 && index($0, t) { print $NF; exit }' <<<"$page"
}

# hepgen_send ADDR PACKETS PREFIX RATE: OPTIONS calls, one packet per sendmmsg.
hepgen_send() {
    it_run 60 "$HEPGEN" -q -d "$1" --mix options=100 -n "$2" -r "$4" --batch 1 --prefix "$3" \
        >>"$CASE_DIR/hepgen.out" || it_case_fail "hepgen to $1 failed"
}

# ---------------------------------------------------------------- udp_failover

case_udp_failover() {
    it_case_begin udp_failover "failover away from a UDP target that refuses, and back once it listens"
    local aport a b ta tb
    IT_ROUTER_LISTEN=udp
    aport=$(it_free_port udp) || exit 1
    a="udp:127.0.0.1:$aport"
    it_start_sink b udp
    b=${SINK_ADDR[b]}
    ta=$(it_target fo "$a") tb=$(it_target fo "$b")
    it_start_router "workers: 1
orphans: { wait_ms: 0 }
limits: { udp_refusals_down: $REFUSALS_DOWN, reconnect_min: 100ms, reconnect_max: 400ms, connect_timeout: 200ms }
metrics: { listen: \"127.0.0.1:0\" }
destinations:
  fo: { targets: [ \"$a\", \"$b\" ], balance: failover }
default: [ fo ]"
    METRICS=$(grep '^listening http:' "$ROUTER_READY" | sed 's/^listening http://')

    it_note "phase 1: nobody on $a"
    hepgen_send "${ROUTER_ADDR[udp]}" "$PHASE_PACKETS" p1 "$PHASE_RATE"
    it_stats_until 5 packets_in="$PHASE_PACKETS" "$ta/refusals>=$REFUSALS_DOWN" "$ta/went_down=1" \
        "$ta/went_up=0" "$tb/packets>0"
    local pa pb da ea refusals got_b
    pa=$(it_counter "$ta/packets") pb=$(it_counter "$tb/packets")
    da=$(it_counter "$ta/down_drops") ea=$(it_counter "$ta/send_errors") refusals=$(it_counter "$ta/refusals")
    # written: the packets before it went down, then one per refused probe
    echo "    $a: written $pa (into the void), refusals $refusals, down_drops $da, send_errors $ea; $b: $pb"
    ((pa + pb + da + ea == PHASE_PACKETS)) ||
        it_case_fail "$pa + $pb + $da + $ea packets accounted, $PHASE_PACKETS sent"
    ((pa >= REFUSALS_DOWN)) || it_case_fail "down after $pa packets, before $REFUSALS_DOWN refusals could come"
    ((pb >= PHASE_PACKETS / 2)) || it_case_fail "only $pb of $PHASE_PACKETS packets failed over to $b"
    it_wait_until 5 it_sink_has b "$pb" || true
    got_b=$(it_sink_lines b)
    [ "$got_b" = "$pb" ] || it_case_fail "sink b holds $got_b packets, its target wrote $pb"
    local m_ref m_down m_up
    m_ref=$(metric heprouter_target_refusals_total "$a")
    m_down=$(metric heprouter_target_down_transitions_total "$a")
    m_up=$(metric heprouter_target_up "$a")
    echo "    /metrics for $a: refusals_total $m_ref, down_transitions_total $m_down, up $m_up"
    ((m_ref >= refusals)) || it_case_fail "heprouter_target_refusals_total $m_ref, stats said $refusals"
    [ "$m_down" = 1 ] || it_case_fail "heprouter_target_down_transitions_total $m_down, expected 1"
    [ "$m_up" = 0 ] || it_case_fail "heprouter_target_up $m_up while down, expected 0"

    it_note "phase 2: a sink on $a"
    it_start_sink a udp "$aport"
    hepgen_send "${ROUTER_ADDR[udp]}" "$PHASE_PACKETS" p2 "$PHASE_RATE"
    it_stats_until 5 packets_in=$((2 * PHASE_PACKETS)) "$ta/went_up=1" "$ta/went_down=1"
    local a_mid b_mid
    it_wait_until 2 it_sink_has a 1 || true
    a_mid=$(it_sink_lines a) b_mid=$(it_sink_lines b)
    echo "    phase 2: sink a $a_mid packets (the probe, then what followed it), sink b $((b_mid - got_b))"
    ((a_mid >= 1)) || it_case_fail "no packet reached $a after it listened"

    it_note "phase 3: $BACK_PACKETS packets, all to $a"
    hepgen_send "${ROUTER_ADDR[udp]}" "$BACK_PACKETS" p3 "$PHASE_RATE"
    it_stats_until 5 packets_in=$((2 * PHASE_PACKETS + BACK_PACKETS)) "$ta/went_up=1" "$ta/went_down=1"
    it_wait_until 5 it_sink_has a $((a_mid + BACK_PACKETS)) || true
    sleep 0.2
    local a_end b_end
    a_end=$(it_sink_lines a) b_end=$(it_sink_lines b)
    echo "    phase 3: sink a +$((a_end - a_mid)), sink b +$((b_end - b_mid)) of $BACK_PACKETS"
    [ $((a_end - a_mid)) = "$BACK_PACKETS" ] || it_case_fail "sink a got $((a_end - a_mid)) of $BACK_PACKETS"
    [ "$b_end" = "$b_mid" ] || it_case_fail "sink b got $((b_end - b_mid)) packets once $a was up again"
    m_up=$(metric heprouter_target_up_transitions_total "$a")
    [ "$m_up" = 1 ] || it_case_fail "heprouter_target_up_transitions_total $m_up, expected 1"
    [ "$(metric heprouter_target_up "$a")" = 1 ] || it_case_fail "heprouter_target_up of $a is not 1"
    it_stop_router
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

# ---------------------------------------------------------------- tcp_user_timeout

case_tcp_user_timeout() {
    it_case_begin tcp_user_timeout "a TCP sink stopped with SIGSTOP; limits.tcp_user_timeout ${USER_TIMEOUT_S}s"
    local t sink t0 ms
    IT_ROUTER_LISTEN=udp
    it_start_sink stopped tcp 0 --count -q
    sink=${SINK_PID[stopped]}
    t=${SINK_ADDR[stopped]}
    it_start_router "workers: 1
orphans: { wait_ms: 0 }
limits: { tcp_user_timeout: ${USER_TIMEOUT_S}s, reconnect_min: 1s, reconnect_max: 1s }
destinations:
  stopped: { targets: [ \"$t\" ] }
default: [ stopped ]"
    it_stats_until 5 "$(it_target stopped "$t")/connects=1" "$(it_target stopped "$t")/went_up=1"
    kill -STOP "$sink"
    t0=$(date +%s%N)
    hepgen_send "${ROUTER_ADDR[udp]}" "$STALL_PACKETS" st 40000
    it_stats_until $((USER_TIMEOUT_S + TIMEOUT_SLACK_S)) "$(it_target stopped "$t")/disconnects>=1" \
        "$(it_target stopped "$t")/went_down>=1"
    ms=$((($(date +%s%N) - t0) / 1000000))
    echo "    disconnected within ${ms} ms of the stop (tcp_user_timeout ${USER_TIMEOUT_S}s):" \
        "$(grep -m 1 'disconnected' "$CASE_DIR/router.err" | sed 's/.*: disconnected/disconnected/')"
    grep -q 'disconnected: Connection timed out' "$CASE_DIR/router.err" ||
        it_case_fail "no 'disconnected: Connection timed out' in the log"
    kill -CONT "$sink"
    it_stop_router
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

it_run_cases "$@"
