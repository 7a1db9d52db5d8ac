#!/usr/bin/env bash
# Routing whole calls by who calls (issue 18, origin keys): the routes judge
# the call's origin request once (from_domain, one exact and one regular
# expression) and every packet of the call follows, the 407 sent before its
# INVITE included.  Sinks are hepdump processes; every process stopped by PID.
#
#   one_instance    tenant a (exact "a.example") and tenant b ("~^b\.example$")
#                   calls, a's with the 407 before the INVITE, and calls of
#                   c.example: each call whole at its tenant's sink (c's at
#                   the default), exactly once
#   two_instances   two heprouters sharing a real redis-server: each call's
#                   407 goes to B before its INVITE reaches A; B's held 407
#                   follows the origin A judged (the origin bits in Redis)
#   reload          the origin rules change under calls in progress (a third
#                   tenant added before them): the calls keep their tenant
#   rate            max_new_calls_per_s: 5 on tenant a's destination, 40 calls
#                   in about a third of a second: 5 (the burst) to 5 + 5 per
#                   second of sending arrive there, each whole; the others
#                   not at all (counted); all of them at homer
#   sample          two heprouters (no shared store) with "sample: 0.5" get the
#                   same 40 calls: each call whole at one sink, the same one
#                   from both, and about half of the calls in the sample
#
#   BUILD_DIR=build bash tests/integration/test_tenants.sh [CASE...]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=120
CALLS_PER_TENANT=20
WAIT_MS=500                 # orphans.wait_ms: the 407 waits for its INVITE
ARRIVE_TIMEOUT=15
REORDERED="v3/008,v3/007,v3/009-021"    # the 407 before its INVITE
IN_ORDER="v3/007-021"

it_init "$TIME_LIMIT"
for c in python3 redis-server redis-cli; do
    it_require_cmd "$c"
done
HEPROUTER=$(it_bin src/heprouter) || exit 1
it_bin tools/hepdump >/dev/null || exit 1
CALLS=(python3 "$HERE/redis_calls.py" --data "$IT_DATA")
IT_CASES=(one_instance two_instances reload rate sample)
IT_ROUTER_LISTEN=udp

# tenant_policy [EXTRA ROUTE LINES]: tenants a and b, then the default
tenant_policy() {
    cat <<EOF
orphans: { wait_ms: $WAIT_MS }
destinations:
  tenant_a: { targets: [ "${SINK_ADDR[tenant_a]}" ] }
  tenant_b: { targets: [ "${SINK_ADDR[tenant_b]}" ] }
  homer: { targets: [ "${SINK_ADDR[homer]}" ] }
routes:
${1:-}
  - name: a
    match: { from_domain: [ a.example ] }
    to: [ tenant_a ]
  - name: b
    match: { from_domain: [ "~^b\\\\.example\$" ] }
    to: [ tenant_b ]
default: [ homer ]
EOF
}

sinks() {
    it_start_sink tenant_a
    it_start_sink tenant_b
    it_start_sink homer
}

# send TARGET PREFIX DOMAIN TEMPLATE [ARGS...]: CALLS_PER_TENANT calls, logged to PREFIX.log
send() {
    local target=$1 prefix=$2 domain=$3 template=$4
    shift 4
    "${CALLS[@]}" send "$target" --template "$template" --calls "$CALLS_PER_TENANT" --prefix "$prefix" \
        --from-domain "$domain" --rate 2000 --log "$CASE_DIR/$prefix.log" "$@" >/dev/null ||
        it_case_fail "sending $prefix calls failed"
}

total_is() { (($(it_sink_lines tenant_a) + $(it_sink_lines tenant_b) + $(it_sink_lines homer) >= $1)); }

# check LOG... : every logged packet at its tenant's sink, exactly once
check() {
    local logs=() l sent=0
    for l in "$@"; do
        logs+=(--log "$CASE_DIR/$l.log")
        sent=$((sent + $(wc -l <"$CASE_DIR/$l.log")))
    done
    it_wait_until "$ARRIVE_TIMEOUT" total_is "$sent" || true
    sleep 0.2
    "${CALLS[@]}" check "${logs[@]}" --sink "tenant_a=$CASE_DIR/tenant_a.json" \
        --sink "tenant_b=$CASE_DIR/tenant_b.json" --sink "homer=$CASE_DIR/homer.json" \
        --expect-call ta=tenant_a --expect-call tb=tenant_b --expect-call tc=homer | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "a call did not land whole at its tenant's sink"
}

case_one_instance() {
    it_case_begin one_instance "tenants by From domain, exact and regex, 407 before INVITE"
    sinks
    it_start_router "$(tenant_policy)"
    local to=${ROUTER_ADDR[udp]}
    send "$to" ta a.example "$REORDERED"
    send "$to" tb B.EXAMPLE "$IN_ORDER"     # domains ignore case: the regex too
    send "$to" tc c.example "$IN_ORDER"
    check ta tb tc
    it_stop_router "$ROUTER_PID" heprouter
    it_stop_all
    it_case_end "$CASE_DIR/router.err"
}

redis_ready() { [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>&1)" = PONG ]; }

case_two_instances() {
    it_case_begin two_instances "two heprouters share Redis: the 407 into B before its INVITE into A"
    sinks
    local port
    port=$(it_free_port tcp)
    it_start "$CASE/redis" redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$CASE_DIR"
    it_wait_until 5 redis_ready "$port" || it_case_fail "redis-server did not start"
    local store="store: { type: redis, redis: { host: 127.0.0.1, port: $port, prefix: \"tenants:\" } }"
    # the 407s wait at B while A gets the calls: longer than sending takes on a loaded machine
    local WAIT_MS=3000
    it_start_router -n router_a "$store"$'\n'"$(tenant_policy)"
    local pid_a=$ROUTER_PID to_a=${ROUTER_ADDR[udp]}
    it_start_router -n router_b "$store"$'\n'"$(tenant_policy)"
    local pid_b=$ROUTER_PID to_b=${ROUTER_ADDR[udp]}
    # the same Call-IDs (prefix, numbers): 407s to B, then the rest of each call to A
    send "$to_b" ta a.example v3/008
    mv "$CASE_DIR/ta.log" "$CASE_DIR/ta_b.log"
    send "$to_a" ta a.example "v3/007,v3/009-021"
    mv "$CASE_DIR/ta.log" "$CASE_DIR/ta_a.log"
    send "$to_b" tb b.example v3/008
    mv "$CASE_DIR/tb.log" "$CASE_DIR/tb_b.log"
    send "$to_a" tb b.example "v3/007,v3/009-021"
    mv "$CASE_DIR/tb.log" "$CASE_DIR/tb_a.log"
    check ta_b ta_a tb_b tb_a
    local v
    v=$(timeout 5 redis-cli -h 127.0.0.1 -p "$port" get "tenants:call:ta-000000-inv-1-11219@127.0.0.1")
    echo "    Redis value of a tenant a call: $v"
    [[ $v == 2\|* ]] || it_case_fail "the Redis value does not carry origin bits (version 2): $v"
    it_stop_router "$pid_a" "heprouter A"
    it_stop_router "$pid_b" "heprouter B"
    it_stop_all
    it_case_end "$CASE_DIR"/router_*.err
}

case_reload() {
    it_case_begin reload "the origin rules change under calls in progress: they keep their tenant"
    sinks
    it_start_router "$(tenant_policy)"
    local to=${ROUTER_ADDR[udp]}
    # the INVITE dialogs of tenant a (up to the 200/ACK), then a reload, then their BYEs
    send "$to" ta a.example "v3/007-018"
    mv "$CASE_DIR/ta.log" "$CASE_DIR/ta_1.log"
    sed -i 's/^routes:$/routes:\n  - { name: vip, match: { to_user: [ "~^vip" ] }, to: [ homer ] }/' \
        "$CASE_DIR/router.yaml"
    kill -HUP "$ROUTER_PID"
    it_wait_until 5 grep -q "reload" "$CASE_DIR/router.err" || it_case_fail "no reload logged"
    sleep 0.5
    send "$to" ta a.example "v3/019-021"
    mv "$CASE_DIR/ta.log" "$CASE_DIR/ta_2.log"
    check ta_1 ta_2
    it_stop_router "$ROUTER_PID" heprouter
    it_stop_all
    it_case_end "$CASE_DIR/router.err"
}

# per_call SINK...: {Call-ID: {sink: packets}} of the sinks' hepdump files, as JSON
per_call() {
    local args=() s
    for s in "$@"; do args+=("$s=$CASE_DIR/$s.json"); done
    python3 - "${args[@]}" <<'PY'
import json, re, sys
where = {}
for spec in sys.argv[1:]:
    sink, path = spec.split("=", 1)
    for line in open(path):
        raw = bytes.fromhex(json.loads(line)["raw"])
        cid = re.search(rb"\r\nCall-ID: *([^\r\n]+)", raw).group(1).decode()
        where.setdefault(cid, {}).setdefault(sink, 0)
        where[cid][sink] += 1
print(json.dumps(where))
PY
}

case_rate() {
    it_case_begin rate "max_new_calls_per_s: 5: calls over it are not sent there, whole"
    sinks
    it_start_router "workers: 1
destinations:
  tenant_a: { targets: [ \"${SINK_ADDR[tenant_a]}\" ], max_new_calls_per_s: 5 }
  homer: { targets: [ \"${SINK_ADDR[homer]}\" ] }
routes:
  - { name: a, match: { from_domain: [ a.example ] }, to: [ tenant_a, homer ] }
default: [ homer ]"
    CALLS_PER_TENANT=40
    send "${ROUTER_ADDR[udp]}" ta a.example "$IN_ORDER"
    CALLS_PER_TENANT=20
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has homer 600 || true
    sleep 0.2
    per_call tenant_a homer >"$CASE_DIR/per_call.json"
    it_stop_router "$ROUTER_PID" heprouter
    python3 - "$CASE_DIR/per_call.json" "$CASE_DIR/router.err" "$CASE_DIR/ta.log" <<'PY' | sed 's/^/    /'
import json, math, re, sys
where = json.load(open(sys.argv[1]))
sent = [json.loads(line)["t"] for line in open(sys.argv[3])]
# a second's burst (5), then 5 per second while the calls were being sent
most = 5 + math.ceil(5 * (max(sent) - min(sent))) + 1
admitted = [c for c, s in where.items() if "tenant_a" in s]
bad = [c for c, s in where.items() if s.get("homer") != 15 or s.get("tenant_a", 15) != 15]
stats = None
for line in open(sys.argv[2]):
    m = re.search(r"stats \(exit[^)]*\): (\{.*\})\s*$", line)
    if m:
        stats = json.loads(m.group(1))
d = stats["destinations"]["tenant_a"]
print(json.dumps({"calls": len(where), "admitted": len(admitted), "at_most": most, "not_whole": bad[:3],
                  "calls_over_rate": d["calls_over_rate"], "packets_over_rate": d["packets_over_rate"]}))
ok = (len(where) == 40 and not bad and 5 <= len(admitted) <= most and d["calls_over_rate"] == 40 - len(admitted)
      and d["packets_over_rate"] == 15 * (40 - len(admitted)))
sys.exit(0 if ok else 1)
PY
    ((PIPESTATUS[0] == 0)) || it_case_fail "the limit did not hold calls back whole"
    it_stop_all
    it_case_end "$CASE_DIR/router.err"
}

case_sample() {
    it_case_begin sample "sample: 0.5 in two instances: the same calls, whole, at the same sink"
    sinks
    local policy="destinations:
  tenant_a: { targets: [ \"${SINK_ADDR[tenant_a]}\" ] }
  homer: { targets: [ \"${SINK_ADDR[homer]}\" ] }
routes:
  - { name: sampled, to: [ tenant_a ], sample: 0.5 }
default: [ homer ]"
    it_start_router -n router_a "$policy"
    local pid_a=$ROUTER_PID to_a=${ROUTER_ADDR[udp]}
    it_start_router -n router_b "$policy"
    local pid_b=$ROUTER_PID to_b=${ROUTER_ADDR[udp]}
    CALLS_PER_TENANT=40
    send "$to_a" ts s.example "$IN_ORDER"
    send "$to_b" ts s.example "$IN_ORDER"
    CALLS_PER_TENANT=20
    it_wait_until "$ARRIVE_TIMEOUT" total_is 1200 || true
    sleep 0.2
    python3 - "$CASE_DIR/tenant_a.json" "$CASE_DIR/homer.json" <<'PY' | sed 's/^/    /'
import json, re, sys
where = {}
for path, sink in ((sys.argv[1], "tenant_a"), (sys.argv[2], "homer")):
    for line in open(path):
        raw = bytes.fromhex(json.loads(line)["raw"])
        cid = re.search(rb"\r\nCall-ID: *([^\r\n]+)", raw).group(1).decode()
        where.setdefault(cid, {}).setdefault(sink, 0)
        where[cid][sink] += 1
split = [c for c, s in where.items() if len(s) != 1 or sum(s.values()) != 30]
in_sample = sum(1 for s in where.values() if "tenant_a" in s)
print(json.dumps({"calls": len(where), "in_sample": in_sample, "split_or_short": split[:5]}))
sys.exit(0 if len(where) == 40 and not split and 10 <= in_sample <= 30 else 1)
PY
    ((PIPESTATUS[0] == 0)) || it_case_fail "a call was split, short, or the sample is far from half"
    it_stop_router "$pid_a" "heprouter A"
    it_stop_router "$pid_b" "heprouter B"
    it_stop_all
    it_case_end "$CASE_DIR"/router_*.err
}

it_run_cases "$@"
