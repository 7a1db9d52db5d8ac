#!/usr/bin/env bash
# test_operate.sh - operating a running heprouter (issue 14): the control
# socket and `heprouter ctl` (stats, config, call, help, reload, errors,
# exit statuses, -c FILE), /healthz and /readyz as the store comes and goes
# (a real redis-server started late, then stopped), the socket's mode, and
# the threads' names.
#
# Usage: BUILD_DIR=build bash tests/integration/test_operate.sh [CASE...]
set -uo pipefail
. "$(dirname "$0")/lib.sh"
it_init

for c in python3 redis-server redis-cli curl; do
    command -v "$c" >/dev/null 2>&1 ||
        it_cannot_run "$c is not installed (Debian: apt-get install python3 redis-server curl)"
done
HEPROUTER=$(it_bin src/heprouter) || exit 1
HEPGEN=$(it_bin tools/hepgen) || exit 1
IT_CASES=(control readyz)

# ctl ARGS...: heprouter ctl against the case's socket; stdout in $CASE_DIR/ctl.out, status in CTL_RC.
ctl() {
    it_run 15 "$HEPROUTER" ctl -s "$CASE_DIR/ctl.sock" "$@" >"$CASE_DIR/ctl.out" 2>"$CASE_DIR/ctl.err"
    CTL_RC=$?
}

# json_get EXPR: evaluates EXPR (python, the answer as `a`) on $CASE_DIR/ctl.out.
json_get() {
    python3 -c 'import json, sys; a = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
        "$CASE_DIR/ctl.out" "$1"
}

# http PATH: "STATUS BODY" of GET http://ROUTER_HTTP/PATH.
http() {
    curl -s -m 5 -o "$CASE_DIR/http.body" -w '%{http_code}' "http://$ROUTER_HTTP$1"
}

policy() {
    cat <<EOF
workers: 2
metrics: { listen: "127.0.0.1:0" }
control: { socket: "$CASE_DIR/ctl.sock", mode: "0600" }
destinations:
  homer:       { targets: [ "${SINK_ADDR[homer]}" ] }
  voipmonitor: { targets: [ "${SINK_ADDR[voipmonitor]}" ] }
routes:
  - { name: invite-calls, match: { method: [ INVITE ] }, to: [ voipmonitor ] }
default: [ homer ]
$1
EOF
}

case_control() {
    it_case_begin control "heprouter ctl: stats, config, call, help, reload (ok and failed), exit statuses"
    it_start_sink homer
    it_start_sink voipmonitor
    it_start_router "$(policy "")"
    ROUTER_HTTP=127.0.0.1:$(it_listen_port "$ROUTER_READY" http) || exit 1

    local mode
    mode=$(stat -c %a "$CASE_DIR/ctl.sock")
    [ "$mode" = 600 ] || it_case_fail "control socket mode $mode, expected 600 (control.mode)"

    # the threads' names (heprouter(8), THREADS): one "worker N" per worker, the main thread "heprouter"
    local names
    names=$(cat /proc/"$ROUTER_PID"/task/*/comm | sort | tr '\n' ',')
    local n
    for n in 0 1; do
        case ",$names" in
        *,"worker $n",*) ;;
        *) it_case_fail "no thread named 'worker $n' (threads: $names)" ;;
        esac
    done
    [ "$(head -n 1 /proc/"$ROUTER_PID"/comm)" = heprouter ] || it_case_fail "main thread named $(cat /proc/"$ROUTER_PID"/comm)"

    it_run 20 "$HEPGEN" -d "${ROUTER_ADDR[udp]}" -n 1600 -r 4000 --prefix op -q >"$CASE_DIR/hepgen.out" 2>&1 ||
        it_fail "hepgen: $(tail -n 3 "$CASE_DIR/hepgen.out")"
    sleep 0.3                       # a housekeeping round publishes the counters

    ctl stats
    ((CTL_RC == 0)) || it_case_fail "ctl stats: exit $CTL_RC: $(cat "$CASE_DIR/ctl.err")"
    [ "$(json_get 'a["packets_in"]')" = 1600 ] ||
        it_case_fail "ctl stats: packets_in $(json_get 'a.get("packets_in")'), expected 1600"

    ctl config
    [ "$(json_get 'a["generation"]')" = 1 ] || it_case_fail "ctl config: $(cat "$CASE_DIR/ctl.out")"
    local hash
    hash=$(json_get 'a["hash"]')
    [[ $hash =~ ^[0-9a-f]{16}$ ]] || it_case_fail "ctl config: hash \"$hash\""
    # the body first: grep -q would leave at the match and curl's next write
    # would fail (SIGPIPE, and pipefail makes that the pipeline's status)
    local metrics
    metrics=$(curl -s -m 5 "http://$ROUTER_HTTP/metrics")
    grep -q "heprouter_config_info{hash=\"$hash\"" <<<"$metrics" ||
        it_case_fail "/metrics has no heprouter_config_info with hash $hash"

    # an INVITE call hepgen sent, as the voipmonitor sink saw it
    local inv
    inv=$(grep -ao 'op-inv-[0-9]*@hepgen' "$CASE_DIR/voipmonitor.json" | head -n 1)
    [ -n "$inv" ] || it_fail "the voipmonitor sink got no INVITE call"
    ctl call "$inv"
    ((CTL_RC == 0)) || it_case_fail "ctl call: exit $CTL_RC: $(cat "$CASE_DIR/ctl.err")"
    [ "$(json_get 'a["known"]')" = True ] || it_case_fail "ctl call $inv: $(cat "$CASE_DIR/ctl.out")"
    [ "$(json_get 'a["method"]')" = INVITE ] || it_case_fail "ctl call $inv: method: $(cat "$CASE_DIR/ctl.out")"
    [ "$(json_get 'a["route"]')" = invite-calls ] || it_case_fail "ctl call $inv: route: $(cat "$CASE_DIR/ctl.out")"
    python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert 0 < a["ttl_left_s"] <= 30, a' \
        "$CASE_DIR/ctl.out" || it_case_fail "ctl call $inv: ttl_left_s of an ended call not within ttl.ended (30 s)"
    ctl call no-such-call@nowhere
    [ "$(json_get 'a["known"]')" = False ] || it_case_fail "ctl call of an unknown call: $(cat "$CASE_DIR/ctl.out")"

    ctl help
    for c in stats reload config call; do
        json_get '[c["name"] for c in a["commands"]]' | grep -q "'$c'" || it_case_fail "ctl help lacks $c"
    done
    ctl frobnicate
    ((CTL_RC == 1)) || it_case_fail "ctl frobnicate: exit $CTL_RC, expected 1"
    it_run 5 "$HEPROUTER" ctl -s "$CASE_DIR/nothing.sock" stats >/dev/null 2>"$CASE_DIR/ctl.err"
    (($? == 1)) || it_case_fail "ctl on a missing socket: expected exit 1"
    grep -q "nothing.sock" "$CASE_DIR/ctl.err" || it_case_fail "ctl on a missing socket: the path is not named"

    # -c FILE: the socket named by the configuration
    it_run 15 "$HEPROUTER" ctl -c "$CASE_DIR/router.yaml" config >"$CASE_DIR/ctl.out" 2>&1 ||
        it_case_fail "ctl -c: $(cat "$CASE_DIR/ctl.out")"

    # a reload that fails: errors as FILE:LINE:COL in the answer, counted, generation kept
    cp "$CASE_DIR/router.yaml" "$CASE_DIR/good.yaml"
    printf 'routes: [\n' >>"$CASE_DIR/router.yaml"
    ctl reload
    ((CTL_RC == 1)) || it_case_fail "ctl reload of a broken file: exit $CTL_RC, expected 1"
    json_get 'a["errors"][0]' | grep -Eq "router.yaml:[0-9]+:[0-9]+: " ||
        it_case_fail "ctl reload of a broken file: no FILE:LINE:COL error: $(cat "$CASE_DIR/ctl.out")"
    [ "$(json_get 'a["generation"]')" = 1 ] || it_case_fail "failed reload changed the generation"

    # a reload that works: the change in words, the new generation, the new route's hits
    sed 's/to: \[ voipmonitor \]/to: [ voipmonitor, homer ]/' "$CASE_DIR/good.yaml" >"$CASE_DIR/router.yaml"
    ctl reload
    ((CTL_RC == 0)) || it_case_fail "ctl reload: exit $CTL_RC: $(cat "$CASE_DIR/ctl.out")"
    [ "$(json_get 'a["generation"]')" = 2 ] || it_case_fail "ctl reload: $(cat "$CASE_DIR/ctl.out")"
    json_get 'a["changes"]' | grep -q 'route invite-calls: to \[voipmonitor\] -> \[voipmonitor, homer\]' ||
        it_case_fail "ctl reload: change not in words: $(cat "$CASE_DIR/ctl.out")"
    grep -q 'reload: route invite-calls: to \[voipmonitor\] -> \[voipmonitor, homer\]' "$CASE_DIR/router.err" ||
        it_case_fail "the log does not say what changed"
    local metrics
    metrics=$(curl -s -m 5 "http://$ROUTER_HTTP/metrics")
    grep -q 'heprouter_config_reloads_total{result="ok"} 1' <<<"$metrics" || it_case_fail "reloads ok not 1"
    grep -q 'heprouter_config_reloads_total{result="failed"} 1' <<<"$metrics" || it_case_fail "reloads failed not 1"
    grep -q 'heprouter_received_packets_total{listener="udp:127.0.0.1:0",version="3"} 1600' <<<"$metrics" ||
        it_case_fail "counters did not carry over the reload: $(grep received_packets <<<"$metrics")"
    it_stop_router
    it_stop_all
    it_case_end
}

case_readyz() {
    it_case_begin readyz "/healthz and /readyz: not ready while Redis is away, ready once it answers, not ready when it goes"
    it_start_sink homer
    it_start_sink voipmonitor
    local rport
    rport=$(it_free_port tcp)
    it_start_router "$(policy "store: { type: redis, redis: { host: 127.0.0.1, port: $rport, timeout_ms: 200 } }")"
    ROUTER_HTTP=127.0.0.1:$(it_listen_port "$ROUTER_READY" http) || exit 1
    sleep 0.3
    [ "$(http /healthz)" = 200 ] || it_case_fail "/healthz: $(cat "$CASE_DIR/http.body")"
    [ "$(http /readyz)" = 503 ] || it_case_fail "/readyz without Redis: expected 503"
    grep -q 'context store not connected' "$CASE_DIR/http.body" ||
        it_case_fail "/readyz without Redis: no reason: $(cat "$CASE_DIR/http.body")"
    grep -q 'control socket: context store not connected' "$CASE_DIR/http.body" ||
        it_case_fail "/readyz without Redis: the control socket's connection not named: $(cat "$CASE_DIR/http.body")"

    it_start "$CASE/redis" redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$CASE_DIR"
    local redis=$IT_PID
    ready_200() { [ "$(http /readyz)" = 200 ]; }
    it_wait_until 15 ready_200 || it_case_fail "/readyz not 200 within 15 s of Redis starting: $(cat "$CASE_DIR/http.body")"

    # a reload with the Redis store: the store keeps its connection and reads the new configuration
    sed -i 's/to: \[ voipmonitor \]/to: [ voipmonitor, homer ]/' "$CASE_DIR/router.yaml"
    ctl reload
    ((CTL_RC == 0)) || it_case_fail "ctl reload with the Redis store: $(cat "$CASE_DIR/ctl.out")"
    it_run 20 "$HEPGEN" -d "${ROUTER_ADDR[udp]}" -n 800 -r 4000 --prefix rd -q >"$CASE_DIR/hepgen.out" 2>&1 ||
        it_fail "hepgen: $(tail -n 3 "$CASE_DIR/hepgen.out")"
    local key
    key=$(grep -ao 'rd-inv-[0-9]*@hepgen' "$CASE_DIR/voipmonitor.json" | head -n 1)
    [ -n "$key" ] || it_case_fail "no INVITE call of the second run reached voipmonitor"
    stored() { [ -n "$(redis-cli -p "$rport" --scan --pattern "*$key*" | head -n 1)" ]; }
    it_wait_until 5 stored || it_case_fail "call $key not in Redis after the reload"
    ctl call "$key"
    ((CTL_RC == 0)) || it_case_fail "ctl call with the Redis store: exit $CTL_RC: $(cat "$CASE_DIR/ctl.out") $(cat "$CASE_DIR/ctl.err")"
    [ "$(json_get 'a["known"]')" = True ] && [ "$(json_get 'a["method"]')" = INVITE ] ||
        it_case_fail "ctl call $key with the Redis store: $(cat "$CASE_DIR/ctl.out")"
    ctl call no-such-call@nowhere
    [ "$(json_get 'a["known"]')" = False ] || it_case_fail "ctl call of an unknown call (Redis): $(cat "$CASE_DIR/ctl.out")"
    [ "$(http /readyz)" = 200 ] || it_case_fail "/readyz not 200 after the reload: $(cat "$CASE_DIR/http.body")"
    it_stop "$redis"
    ready_503() { [ "$(http /readyz)" = 503 ]; }
    it_wait_until 10 ready_503 || it_case_fail "/readyz still 200 10 s after Redis stopped"
    [ "$(http /healthz)" = 200 ] || it_case_fail "/healthz not 200 without Redis: routing goes on"
    [ "$(http /nothing)" = 404 ] || it_case_fail "/nothing: expected 404"
    it_stop_router
    it_stop_all
    it_case_end
}

it_run_cases "$@"
