#!/usr/bin/env bash
# Limits an attacker (or a busy site) can reach, issue 11:
#
#   fd_budget  heprouter under an open files limit of 256 (prlimit), a TCP
#              listener and a TCP destination.  More idle inbound TCP
#              connections than the limit allows are opened and held; then
#              the destination's sink restarts on the same port, and all of
#              20 packets sent afterwards must arrive: inbound connections
#              are capped so that the target can reconnect (before the fix
#              they took every descriptor: EMFILE on socket(), 0 arrived).
#              heprouter must have logged the warning with the figures.
#   evictions  store.max_calls 100 and 1000 INVITE calls with their own
#              Call-IDs: the counters show store_evictions >= 900 and a
#              warning says live calls were evicted.
#
#   BUILD_DIR=/work/main/build-ops bash tests/integration/test_limits.sh [CASE...]
#
# Environment: BUILD_DIR (src/heprouter, tools/hepdump, tools/hepgen),
# IT_KEEP_TMP=1 keeps the scratch directory.  Helpers come from lib.sh.
# Packet lists are built with $(it_seq_items ...) and split on purpose:
# shellcheck disable=SC2046
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

REPLAY=(python3 "$HERE/hepreplay.py")
TIME_LIMIT=120          # the whole test (about 10 s)
ARRIVE_TIMEOUT=5        # seconds for packets to arrive
NOFILE=256              # fd_budget: RLIMIT_NOFILE, soft and hard
IDLE_CONNS=400          # fd_budget: idle inbound connections, more than NOFILE
AFTER_RESTART=20        # fd_budget: packets sent once the sink is back
MAX_CALLS=100           # evictions: store.max_calls
CALLS=1000              # evictions: INVITE calls sent
INVITE_PACKETS=16       # packets per hepgen INVITE call (hepgen(1))

it_init "$TIME_LIMIT"
it_require_cmd python3 ss prlimit
HEPROUTER=$(it_bin src/heprouter) || exit 1
HEPGEN=$(it_bin tools/hepgen) || exit 1
it_bin tools/hepdump >/dev/null || exit 1

IT_CASES=(fd_budget evictions)

logged() {
    [ "$(grep -c 'stats (SIGUSR1' "$CASE_DIR/router.err")" -gt "$1" ]
}

logged() {
    grep -q "$1" "$CASE_DIR/router.err"
}

# ---- fd_budget ----

# Opens N TCP connections to PORT, says "held N" and keeps them open,
# reading nothing, until stopped (at most 120 s).
write_holder() {
    cat >"$CASE_DIR/holder.py" <<'EOF'
import socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
held = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    held.append(s)
print("held %d" % len(held), flush=True)
time.sleep(120)
EOF
}

holder_ready() {
    grep -q '^held ' "$CASE_DIR/holder.out" 2>/dev/null || it_exited "$1"
}

case_fd_budget() {
    it_case_begin fd_budget "RLIMIT_NOFILE $NOFILE, $IDLE_CONNS idle inbound connections, the TCP sink restarts"
    local sink_port sink_pid holder_pid
    it_start_sink sink tcp
    sink_pid=${SINK_PID[sink]}
    sink_port=${SINK_ADDR[sink]##*:}
    it_start_router "workers: 1
orphans: { wait_ms: 0 }
limits: { reconnect_min: 50ms, reconnect_max: 200ms }
destinations:
  sink: { targets: [ \"tcp:127.0.0.1:$sink_port\" ] }
default: [ sink ]" prlimit --nofile="$NOFILE:$NOFILE"

    write_holder
    it_start "$CASE/holder" python3 "$CASE_DIR/holder.py" "${ROUTER_ADDR[tcp]##*:}" "$IDLE_CONNS"
    holder_pid=$IT_PID
    it_wait_until 10 holder_ready "$holder_pid" || it_fail "the holder did not connect within 10 s"
    grep -q "^held $IDLE_CONNS\$" "$CASE_DIR/holder.out" ||
        it_fail "the holder could not open $IDLE_CONNS connections"
    sleep 1                 # heprouter accepts (or refuses) what is queued

    # The sink restarts on the same port: heprouter must reconnect.
    it_stop "$sink_pid"
    sleep 0.3
    it_start_sink sink2 tcp "$sink_port"
    it_run 20 "${REPLAY[@]}" send "${ROUTER_ADDR[udp]}" $(it_seq_items v3 1 "$AFTER_RESTART") ||
        it_case_fail "hepreplay send failed"
    "${REPLAY[@]}" wait --timeout "$ARRIVE_TIMEOUT" --settle-ms 0 "$CASE_DIR/sink2.json=$AFTER_RESTART"
    local got
    got=$(grep -c . "$CASE_DIR/sink2.json" 2>/dev/null)
    it_note "packets sent after the restart: $AFTER_RESTART, arrived: ${got:-0}"
    [ "${got:-0}" = "$AFTER_RESTART" ] || it_case_fail "$AFTER_RESTART packets sent after the sink restarted, ${got:-0} arrived"

    logged "warn: the open files limit ($NOFILE) is too low for limits.tcp_max_connections 1024" ||
        it_case_fail "no warning about the open files limit"
    local cap
    cap=$(sed -n 's/.*capped at \([0-9]*\) per listener per worker.*/\1/p' "$CASE_DIR/router.err" | head -n 1)
    [ -n "$cap" ] || cap=0
    it_note "inbound TCP connections capped at $cap"
    it_stats_until 5 tcp_accepted="$cap" tcp_rejected=$((IDLE_CONNS - cap)) \
        "destinations/sink/targets/tcp:127.0.0.1:$sink_port/connects>=2"
    it_stop_all
    it_case_end
}

# ---- evictions ----

case_evictions() {
    it_case_begin evictions "store.max_calls $MAX_CALLS, $CALLS INVITE calls"
    it_start_hepdump "$CASE/sink" -l udp:127.0.0.1:0 -o /dev/null -q
    local sink_port
    sink_port=$(it_listen_port "$CASE_DIR/sink.ready" udp) || exit 1
    it_start_router "workers: 1
store: { max_calls: $MAX_CALLS }
orphans: { wait_ms: 0 }
log: { interval: 1s }
destinations:
  sink: { targets: [ \"udp:127.0.0.1:$sink_port\" ] }
default: [ sink ]"
    it_run 60 "$HEPGEN" -q -d "udp:127.0.0.1:$ROUTER_PORT" --mix invite=100 \
        -n $((CALLS * INVITE_PACKETS)) -r 10000 >"$CASE_DIR/hepgen.out" || it_case_fail "hepgen failed"
    it_stats_until 10 packets_in=$((CALLS * INVITE_PACKETS)) calls_new">=$CALLS" \
        store_evictions">=$((CALLS - MAX_CALLS))"
    it_wait_until 3 logged "warn: memory store full: .* live calls evicted" ||
        it_case_fail "no warning about evicted calls within 3 s"
    grep 'memory store full' "$CASE_DIR/router.err" | head -n 1 | sed 's/^/    /'
    it_stop_all
    it_case_end
}

it_run_cases "$@"
