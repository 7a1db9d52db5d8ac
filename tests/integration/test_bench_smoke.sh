#!/usr/bin/env bash
# CI smoke version of the benchmark: a few thousand packets, correctness only.
# Two hepdump sinks (voipmonitor, homer), heprouter with the memory store
# routing INVITE to voipmonitor and REGISTER/OPTIONS to homer (default
# homer), and tools/hepgen sending a call mix at a modest rate with 10 % of
# the INVITE calls reordered (407 before its INVITE).  Checks: every packet
# hepgen sent arrived (sum of the sinks = sent), every inv-* Call-ID is on
# voipmonitor and none on homer, every reg-/opt- Call-ID on homer and none on
# voipmonitor, and hepgen's per-kind packet counts equal the sinks' counts.
# Then the same with HEPv2 input (converted to HEPv3 by heprouter).
#
#   BUILD_DIR=/tmp/build bash tests/integration/test_bench_smoke.sh
#
# Environment: BUILD_DIR (src/heprouter, tools/hepdump, tools/hepgen),
# HEPGEN (another hepgen binary), TOP_DIR (the source tree), IT_KEEP_TMP=1.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP_DIR=${TOP_DIR:-$(cd "$HERE/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

DATA=$TOP_DIR/tests/data/kamailio
TIME_LIMIT=60           # the whole test (it takes about 5 s)
READY_TIMEOUT=5         # seconds for heprouter to log "ready"
ARRIVE_TIMEOUT=10       # seconds for every sent packet to reach the sinks
HEPGEN_TIMEOUT=20       # seconds for one hepgen run

it_init "$TIME_LIMIT"
it_require_cmd ss
HEPROUTER=$(it_bin src/heprouter) || exit 1
it_bin tools/hepdump >/dev/null || exit 1
if [ -n "${HEPGEN:-}" ]; then
    [ -x "$HEPGEN" ] || it_fail "HEPGEN=$HEPGEN is not executable"
else
    HEPGEN=$(it_bin tools/hepgen) || exit 1
fi
[ -d "$DATA/v3" ] || it_fail "no captures in $DATA"

FAILED=0
CASE=""
CASE_DIR=""
ROUTER_PID=""
ROUTER_PORT=""
declare -A SINK_PID SINK_ADDR

log() { printf '[test_bench_smoke %(%H:%M:%S)T] %s\n' -1 "$*"; }

fail() {
    printf '[test_bench_smoke] FAIL %s: %s\n' "$CASE" "$*"
    FAILED=1
}

start_sink() {
    local name=$1
    it_start_hepdump "$CASE/$name" -l udp:127.0.0.1:0 -o "$CASE_DIR/$name.json" -u -q
    SINK_PID[$name]=$IT_PID
    SINK_ADDR[$name]=udp:127.0.0.1:$(it_listen_port "$CASE_DIR/$name.ready" udp) || exit 1
}

write_config() {
    cat >"$1" <<EOF
# written by test_bench_smoke.sh, case $CASE
listen: [ "udp:127.0.0.1:$2" ]
workers: 1
store: { type: memory }
orphans: { wait_ms: 200, max_held: 100000 }
destinations:
  homer: { targets: [ "${SINK_ADDR[homer]}" ] }
  voipmonitor: { targets: [ "${SINK_ADDR[voipmonitor]}" ], hep_version: 3 }
routes:
  - { match: { method: [INVITE] }, to: [ voipmonitor ] }
  - { match: { method: [REGISTER, OPTIONS] }, to: [ homer ] }
default: [ homer ]
EOF
}

router_logged_ready() {
    grep -Eq '(^|[^[:alnum:]_])ready$' "$CASE_DIR/router.err" 2>/dev/null
}

router_ready_or_dead() {
    router_logged_ready || it_exited "$ROUTER_PID"
}

# Starts heprouter on a free port; another one if that port was taken.
start_router() {
    local try
    for try in 1 2 3; do
        ROUTER_PORT=$(it_free_port udp) || exit 1
        write_config "$CASE_DIR/router.yaml" "$ROUTER_PORT"
        it_start "$CASE/router" "$HEPROUTER" -c "$CASE_DIR/router.yaml"
        ROUTER_PID=$IT_PID
        it_wait_until "$READY_TIMEOUT" router_ready_or_dead
        router_logged_ready && return 0
        it_stop "$ROUTER_PID"
        cp "$CASE_DIR/router.err" "$CASE_DIR/router.err.$try"
    done
    it_fail "case $CASE: heprouter did not start: $(tail -n 5 "$CASE_DIR/router.err")"
}

lines() {                       # lines FILE: packets a sink wrote
    [ -f "$1" ] || { echo 0; return; }
    wc -l <"$1" | tr -d ' '
}

count() {                       # count FILE KIND: packets of that Call-ID kind
    grep -c "\"call_id\":\"$PREFIX-$2-" "$1"
}

all_arrived() {
    [ $(($(lines "$CASE_DIR/homer.json") + $(lines "$CASE_DIR/voipmonitor.json"))) -ge "$1" ]
}

json_num() {                    # json_num JSON PATH: "sent" or "packets.invite"
    local key=${2##*.} text=$1
    if [ "$key" != "$2" ]; then
        text=${text#*\""${2%%.*}"\":\{}
        text=${text%%\}*}
    fi
    sed -n "s/.*\"$key\":\([0-9]*\).*/\1/p" <<<"$text"
}

# run_case NAME HEPGEN_ARGS...: sinks, router, hepgen, checks.
run_case() {
    CASE=$1
    shift
    CASE_DIR=$IT_TMP/$CASE
    PREFIX=bs$RANDOM
    mkdir -p "$CASE_DIR"
    log "case $CASE: hepgen $*"
    start_sink homer
    start_sink voipmonitor
    start_router

    local out sent
    it_run "$HEPGEN_TIMEOUT" "$HEPGEN" -d "udp:127.0.0.1:$ROUTER_PORT" --data "$DATA" \
        --prefix "$PREFIX" -q "$@" >"$CASE_DIR/hepgen.out" 2>"$CASE_DIR/hepgen.err" ||
        it_fail "case $CASE: hepgen failed (status $?): $(cat "$CASE_DIR/hepgen.err")"
    out=$(grep '^{"sent":' "$CASE_DIR/hepgen.out") || it_fail "case $CASE: no summary from hepgen"
    log "hepgen: $out"
    sent=$(json_num "$out" sent)
    if [ -z "$sent" ] || [ "$sent" -eq 0 ]; then
        it_fail "case $CASE: hepgen sent nothing"
    fi
    [ "$(json_num "$out" errors)" = 0 ] || fail "hepgen counted send errors"

    it_wait_until "$ARRIVE_TIMEOUT" all_arrived "$sent" ||
        fail "only $(($(lines "$CASE_DIR/homer.json") + $(lines "$CASE_DIR/voipmonitor.json"))) of $sent packets arrived within ${ARRIVE_TIMEOUT}s"
    it_stop "$ROUTER_PID"
    ((IT_STATUS == 0)) || fail "heprouter exited with status $IT_STATUS after SIGTERM"
    sleep 0.2                   # the sinks read what the drain sent
    it_stop "${SINK_PID[homer]}"
    it_stop "${SINK_PID[voipmonitor]}"

    local h=$CASE_DIR/homer.json v=$CASE_DIR/voipmonitor.json
    local total=$(($(lines "$h") + $(lines "$v")))
    it_assert_eq "$sent" "$total" "case $CASE: packets on the sinks vs sent"
    local bad
    bad=$(grep -vc "\"call_id\":\"$PREFIX-" "$h" "$v" | awk -F: '{ s += $2 } END { print s + 0 }')
    [ "$bad" = 0 ] || fail "$bad packets without a hepgen Call-ID (decode errors?)"
    [ "$(count "$h" inv)" = 0 ] || fail "$(count "$h" inv) INVITE-call packets on homer"
    [ "$(count "$v" reg)" = 0 ] || fail "$(count "$v" reg) REGISTER packets on voipmonitor"
    [ "$(count "$v" opt)" = 0 ] || fail "$(count "$v" opt) OPTIONS packets on voipmonitor"
    [ "$(json_num "$out" packets.invite)" = "$(count "$v" inv)" ] ||
        fail "invite: hepgen sent $(json_num "$out" packets.invite), voipmonitor got $(count "$v" inv)"
    [ "$(json_num "$out" packets.register)" = "$(count "$h" reg)" ] ||
        fail "register: hepgen sent $(json_num "$out" packets.register), homer got $(count "$h" reg)"
    [ "$(json_num "$out" packets.options)" = "$(count "$h" opt)" ] ||
        fail "options: hepgen sent $(json_num "$out" packets.options), homer got $(count "$h" opt)"
    # Every packet on voipmonitor is HEPv3 (v2 input is converted).
    [ "$(grep -vc '"version":3' "$v")" = 0 ] || fail "non-HEPv3 packets on voipmonitor"
    log "case $CASE: homer $(lines "$h"), voipmonitor $(lines "$v")"
    if ((FAILED)); then
        tail -n 20 "$CASE_DIR/router.err" | sed 's/^/    /'
    fi
}

run_case v3 -n 3000 -r 2000 --reorder 10
run_case v2 --hep-version 2 -n 1000 -r 2000 --reorder 10

((FAILED)) && it_fail "see above"
log "ok"
