#!/usr/bin/env bash
# Deduplication of double captures (destinations.NAME.dedup, issue 18): the
# same SIP messages captured by two agents (two sockets, capture ids 1 and
# 2, HEP timestamps apart) reach a destination with dedup once, and a
# destination without it twice; after the window a copy is sent again.
#
#   two_agents      the 15 packets of a call from agent 1, then from agent 2
#                   (capture id 2, timestamps +1 s): "dedup" gets 15, "raw"
#                   30, deduplicated counts 15; the same again 700 ms later
#                   (window 500 ms): "dedup" gets them again
#   shared          two heprouters sharing a real redis-server, dedup with
#                   shared: true: agent 1 sends to A, agent 2 to B; "dedup"
#                   gets each message once, and A and B together count the
#                   15 copies they held back
#
#   BUILD_DIR=build bash tests/integration/test_dedup.sh [CASE...]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=60
WINDOW_MS=500
ARRIVE_TIMEOUT=10
CALL_ITEMS=$(seq -f "v3/%03g" 7 21 | tr '\n' ' ')
CALL_PACKETS=15

it_init "$TIME_LIMIT"
it_require_cmd python3
HEPROUTER=$(it_bin src/heprouter) || exit 1
it_bin tools/hepdump >/dev/null || exit 1
IT_CASES=(two_agents shared)
IT_ROUTER_LISTEN=udp

# agents TARGET [TARGET2]: the call as agent 1 (capture id 1), then as agent 2
# (capture id 2, HEP timestamps one second later, to TARGET2 if given), each
# from its own socket
agents() {
    # shellcheck disable=SC2086  # CALL_ITEMS is a word list
    python3 - "$1" "${2:-$1}" "$IT_DATA" $CALL_ITEMS <<'PY'
import socket, struct, sys
targets = [t.split(":")[1:] for t in sys.argv[1:3]]
data, items = sys.argv[3], sys.argv[4:]

def as_agent(raw, capture_id, shift_s):
    out, pos = b"", 6
    while pos + 6 <= len(raw):
        vendor, ctype, clen = struct.unpack("!HHH", raw[pos:pos + 6])
        val = raw[pos + 6:pos + clen]
        if vendor == 0 and ctype == 0x000c:
            val = struct.pack("!I", capture_id)
        elif vendor == 0 and ctype == 0x0009:
            val = struct.pack("!I", struct.unpack("!I", val)[0] + shift_s)
        out += struct.pack("!HHH", vendor, ctype, 6 + len(val)) + val
        pos += clen
    return b"HEP3" + struct.pack("!H", 6 + len(out)) + out

pkts = [open("%s/%s.hep" % (data, it), "rb").read() for it in items]
for agent in (1, 2):
    host, port = targets[agent - 1]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect((host, int(port)))
    for p in pkts:
        s.send(as_agent(p, agent, agent - 1))
    s.close()
PY
}

# expect_eq WHAT GOT WANT
expect_eq() {
    echo "    $1: $2 packets (expected $3)"
    [ "$2" = "$3" ] || it_case_fail "$1: $2 packets, expected $3"
}

case_two_agents() {
    it_case_begin two_agents "two agents capture the same call: one copy to the dedup destination"
    it_start_sink dedup
    it_start_sink raw
    it_start_router "destinations:
  dedup: { targets: [ \"${SINK_ADDR[dedup]}\" ], dedup: { window_ms: $WINDOW_MS } }
  raw: { targets: [ \"${SINK_ADDR[raw]}\" ] }
default: [ dedup, raw ]"
    local to=${ROUTER_ADDR[udp]}
    agents "$to" || it_case_fail "sending failed"
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has raw $((2 * CALL_PACKETS)) || true
    sleep 0.2
    expect_eq "dedup destination, within the window" "$(it_sink_lines dedup)" "$CALL_PACKETS"
    expect_eq "destination without dedup" "$(it_sink_lines raw)" $((2 * CALL_PACKETS))
    python3 - "$CASE_DIR/dedup.json" <<'PY' || it_case_fail "the dedup destination did not get agent 1's copies"
import json, struct, sys
ids = set()
for line in open(sys.argv[1]):
    raw = bytes.fromhex(json.loads(line)["raw"])
    pos = 6
    while pos + 6 <= len(raw):
        vendor, ctype, clen = struct.unpack("!HHH", raw[pos:pos + 6])
        if vendor == 0 and ctype == 0x000c:
            ids.add(struct.unpack("!I", raw[pos + 6:pos + 10])[0])
        pos += clen
print("    capture ids at the dedup destination: %s (the first arrival wins)" % sorted(ids))
sys.exit(0 if ids == {1} else 1)
PY
    # after the window: a new copy is sent
    sleep "$(awk -v w="$WINDOW_MS" 'BEGIN { print (w + 200) / 1000 }')"
    agents "$to" || it_case_fail "sending failed"
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has raw $((4 * CALL_PACKETS)) || true
    sleep 0.2
    expect_eq "dedup destination, after the window" "$(it_sink_lines dedup)" $((2 * CALL_PACKETS))
    it_stop_router "$ROUTER_PID" heprouter
    "${IT_REPLAY[@]}" stats --log "$CASE_DIR/router.err" "destinations.dedup.deduplicated=$((2 * CALL_PACKETS))" \
        "destinations.raw.deduplicated=0" | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "deduplicated counters"
    it_stop_all
    it_case_end "$CASE_DIR/router.err"
}

redis_ready() { [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>&1)" = PONG ]; }

case_shared() {
    it_case_begin shared "two instances share the window through Redis: one copy"
    it_require_cmd redis-server
    it_start_sink dedup
    local port
    port=$(it_free_port tcp)
    it_start "$CASE/redis" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$CASE_DIR"
    it_wait_until 5 redis_ready "$port" || it_case_fail "redis-server did not start"
    local conf="store: { type: redis, redis: { host: 127.0.0.1, port: $port, prefix: \"dd:\", timeout_ms: 500 } }
destinations:
  dedup: { targets: [ \"${SINK_ADDR[dedup]}\" ], dedup: { window_ms: $WINDOW_MS, shared: true } }
default: [ dedup ]"
    it_start_router -n router_a "$conf"
    local pid_a=$ROUTER_PID to_a=${ROUTER_ADDR[udp]}
    it_start_router -n router_b "$conf"
    local pid_b=$ROUTER_PID to_b=${ROUTER_ADDR[udp]}
    agents "$to_a" "$to_b" || it_case_fail "sending failed"
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has dedup "$CALL_PACKETS" || true
    sleep 0.5
    expect_eq "dedup destination, two instances" "$(it_sink_lines dedup)" "$CALL_PACKETS"
    it_stop_router "$pid_a" "heprouter A"
    it_stop_router "$pid_b" "heprouter B"
    python3 - "$CASE_DIR/router_a.err" "$CASE_DIR/router_b.err" "$CALL_PACKETS" <<'PY' ||
import json, re, sys
held = []
for path in sys.argv[1:3]:
    for line in open(path):
        m = re.search(r"stats \(exit[^)]*\): (\{.*\})\s*$", line)
        if m:
            held.append(json.loads(m.group(1))["destinations"]["dedup"]["deduplicated"])
print("    held back by A and B: %s (the first arrival at Redis wins)" % held)
sys.exit(0 if len(held) == 2 and sum(held) == int(sys.argv[3]) else 1)
PY
        it_case_fail "A and B together did not count the copies they held back"
    it_stop_all
    it_case_end "$CASE_DIR"/router_*.err
}

it_run_cases "$@"
