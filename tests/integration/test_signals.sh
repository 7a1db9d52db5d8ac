#!/usr/bin/env bash
# Signals, issue 11:
#
#   stats_json     12 destinations of 3 UDP targets each, routes to all of
#                  them: the counters line logged on SIGUSR1 (longer than
#                  the 2,048 bytes of an ordinary log line) must be whole
#                  JSON naming every destination and target.
#   second_signal  a TCP destination with nothing listening (packets queue),
#                  limits.drain_timeout 60s: after SIGTERM heprouter drains;
#                  a second SIGTERM 0.5 s later must make it exit within
#                  2 s (before the fix it ran to the end of the drain),
#                  with status 0, the queued packets counted in exit_drops
#                  and the exit counters logged.
#
#   BUILD_DIR=/work/main/build-ops bash tests/integration/test_signals.sh [CASE...]
#
# Environment: BUILD_DIR (src/heprouter), IT_KEEP_TMP=1 keeps the scratch
# directory.  Helpers come from lib.sh.
# Packet lists are built with $(it_seq_items ...) and split on purpose:
# shellcheck disable=SC2046
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

REPLAY=(python3 "$HERE/hepreplay.py")
TIME_LIMIT=120          # the whole test (about 5 s; 60 s more when the fix is missing)
NDESTS=12               # stats_json: destinations...
NTARGETS=3              # ...of this many UDP targets each
DRAIN_TIMEOUT=60s       # second_signal: limits.drain_timeout
QUEUED=20               # second_signal: packets queued for the TCP target
SECOND_AFTER=0.5        # second_signal: seconds between the two SIGTERMs
EXIT_WITHIN=2           # second_signal: seconds heprouter may take after the second

it_init "$TIME_LIMIT"
it_require_cmd python3 ss
HEPROUTER=$(it_bin src/heprouter) || exit 1

IT_CASES=(stats_json second_signal)

stats_logged() {
    [ "$(grep -c "$1" "$CASE_DIR/router.err")" -gt "$2" ]
}

# ---- stats_json ----

case_stats_json() {
    it_case_begin stats_json "$NDESTS destinations x $NTARGETS UDP targets: SIGUSR1 logs whole JSON"
    local config="workers: 1
destinations:" i j
    # 127.0.0.2 and up, port 9 (discard): nothing needs to listen there
    for ((i = 1; i <= NDESTS; i++)); do
        config+="
  capture-backend-$i: { targets: ["
        for ((j = 1; j <= NTARGETS; j++)); do
            config+=" \"udp:127.0.0.$((1 + (i - 1) * NTARGETS + j)):9\"$([ "$j" -lt "$NTARGETS" ] && echo ,)"
        done
        config+=" ] }"
    done
    config+="
routes:"
    for ((i = 1; i <= NDESTS; i++)); do
        config+="
  - { match: { capture_id: [ $i ] }, to: [ capture-backend-$i ] }"
    done
    config+="
default: [ capture-backend-1 ]"
    it_start_router "$config"
    kill -USR1 "$ROUTER_PID"
    it_wait_until 5 stats_logged 'stats (SIGUSR1' 0 || it_case_fail "no stats line after SIGUSR1"
    python3 - "$CASE_DIR/router.err" "$NDESTS" "$NTARGETS" <<'EOF' || it_case_fail "the SIGUSR1 counters line is not whole"
import json, re, sys
path, ndests, ntargets = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
line = [l for l in open(path, errors="replace") if "stats (SIGUSR1" in l][-1]
body = line.split("): ", 1)[1]
print("    stats line: %d bytes" % len(line))
try:
    stats = json.loads(body)
except ValueError as e:
    print("    not JSON: %s; ends with %r" % (e, body[-60:]))
    sys.exit(1)
missing = []
for i in range(1, ndests + 1):
    d = stats.get("destinations", {}).get("capture-backend-%d" % i)
    if d is None:
        missing.append("capture-backend-%d" % i)
        continue
    for j in range(1, ntargets + 1):
        t = "udp:127.0.0.%d:9" % (1 + (i - 1) * ntargets + j)
        if t not in d.get("targets", {}):
            missing.append(t)
if missing:
    print("    missing: %s" % " ".join(missing))
    sys.exit(1)
print("    ok   %d destinations, %d targets" % (ndests, ndests * ntargets))
EOF
    it_stop_all
    it_case_end
}

# ---- second_signal ----

case_second_signal() {
    it_case_begin second_signal "TCP target down, drain_timeout $DRAIN_TIMEOUT: a second SIGTERM stops at once"
    local dead_port
    dead_port=$(it_free_port tcp) || exit 1      # nothing listens: packets queue
    it_start_router "workers: 1
orphans: { wait_ms: 0 }
limits: { drain_timeout: $DRAIN_TIMEOUT }
destinations:
  stuck: { targets: [ \"tcp:127.0.0.1:$dead_port\" ] }
default: [ stuck ]"
    it_run 20 "${REPLAY[@]}" send "udp:127.0.0.1:$ROUTER_PORT" $(it_seq_items v3 1 "$QUEUED") ||
        it_case_fail "hepreplay send failed"
    sleep 0.3               # read and queued
    kill -TERM "$ROUTER_PID"
    it_wait_until 5 stats_logged 'signal 15: draining' 0 || it_case_fail "SIGTERM not logged"
    sleep "$SECOND_AFTER"
    it_alive "$ROUTER_PID" || it_case_fail "heprouter did not wait for its TCP queue (nothing to abandon)"
    local t0 t1
    t0=$(date +%s%N)
    kill -TERM "$ROUTER_PID"
    if it_wait_until "$EXIT_WITHIN" it_exited "$ROUTER_PID"; then
        t1=$(date +%s%N)
        it_note "exited $(((t1 - t0) / 1000000)) ms after the second SIGTERM"
        IT_STATUS=0
        wait "$ROUTER_PID" 2>/dev/null || IT_STATUS=$?
        [ "$IT_STATUS" = 0 ] || it_case_fail "exit status $IT_STATUS after the second SIGTERM"
        grep -q 'signal 15 again: stopping now' "$CASE_DIR/router.err" || it_case_fail "the second signal was not logged"
        "${REPLAY[@]}" stats --log "$CASE_DIR/router.err" packets_in="$QUEUED" \
            "destinations/stuck/targets/tcp:127.0.0.1:$dead_port/exit_drops=$QUEUED" | sed 's/^/    /'
        ((PIPESTATUS[0] == 0)) || it_case_fail "exit counters differ"
        grep -q 'stats (exit' "$CASE_DIR/router.err" || it_case_fail "no exit counters"
    else
        it_case_fail "still running ${EXIT_WITHIN} s after the second SIGTERM (drain_timeout $DRAIN_TIMEOUT)"
    fi
    it_stop_all
    it_case_end
}

it_run_cases "$@"
