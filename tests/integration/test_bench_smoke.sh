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
# HEPGEN (another hepgen binary), IT_KEEP_TMP=1.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=60           # the whole test (it takes about 5 s)
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
[ -d "$IT_DATA/v3" ] || it_fail "no captures in $IT_DATA"

IT_ROUTER_LISTEN=udp

# router_config: the config after its listen line.
router_config() {
    cat <<EOF
workers: 1
store: { type: memory }
orphans: { wait_ms: 200, max_held: 100000 }
$(it_two_sink_policy INVITE)
EOF
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
    it_case_begin "$1" "hepgen ${*:2}"
    shift
    PREFIX=bs$RANDOM
    it_start_sink homer udp 0 -u -q
    it_start_sink voipmonitor udp 0 -u -q
    it_start_router "$(router_config)"

    local out sent
    it_run "$HEPGEN_TIMEOUT" "$HEPGEN" -d "udp:127.0.0.1:$ROUTER_PORT" --data "$IT_DATA" \
        --prefix "$PREFIX" -q "$@" >"$CASE_DIR/hepgen.out" 2>"$CASE_DIR/hepgen.err" ||
        it_fail "case $CASE: hepgen failed (status $?): $(cat "$CASE_DIR/hepgen.err")"
    out=$(grep '^{"sent":' "$CASE_DIR/hepgen.out") || it_fail "case $CASE: no summary from hepgen"
    it_note "hepgen: $out"
    sent=$(json_num "$out" sent)
    if [ -z "$sent" ] || [ "$sent" -eq 0 ]; then
        it_fail "case $CASE: hepgen sent nothing"
    fi
    [ "$(json_num "$out" errors)" = 0 ] || it_case_fail "hepgen counted send errors"

    it_wait_until "$ARRIVE_TIMEOUT" all_arrived "$sent" ||
        it_case_fail "only $(($(lines "$CASE_DIR/homer.json") + $(lines "$CASE_DIR/voipmonitor.json"))) of $sent packets arrived within ${ARRIVE_TIMEOUT}s"
    it_stop_router
    sleep 0.2                   # the sinks read what the drain sent
    it_stop "${SINK_PID[homer]}"
    it_stop "${SINK_PID[voipmonitor]}"

    local h=$CASE_DIR/homer.json v=$CASE_DIR/voipmonitor.json
    local total=$(($(lines "$h") + $(lines "$v")))
    it_assert_eq "$sent" "$total" "case $CASE: packets on the sinks vs sent"
    local bad
    bad=$(grep -vc "\"call_id\":\"$PREFIX-" "$h" "$v" | awk -F: '{ s += $2 } END { print s + 0 }')
    [ "$bad" = 0 ] || it_case_fail "$bad packets without a hepgen Call-ID (decode errors?)"
    [ "$(count "$h" inv)" = 0 ] || it_case_fail "$(count "$h" inv) INVITE-call packets on homer"
    [ "$(count "$v" reg)" = 0 ] || it_case_fail "$(count "$v" reg) REGISTER packets on voipmonitor"
    [ "$(count "$v" opt)" = 0 ] || it_case_fail "$(count "$v" opt) OPTIONS packets on voipmonitor"
    [ "$(json_num "$out" packets.invite)" = "$(count "$v" inv)" ] ||
        it_case_fail "invite: hepgen sent $(json_num "$out" packets.invite), voipmonitor got $(count "$v" inv)"
    [ "$(json_num "$out" packets.register)" = "$(count "$h" reg)" ] ||
        it_case_fail "register: hepgen sent $(json_num "$out" packets.register), homer got $(count "$h" reg)"
    [ "$(json_num "$out" packets.options)" = "$(count "$h" opt)" ] ||
        it_case_fail "options: hepgen sent $(json_num "$out" packets.options), homer got $(count "$h" opt)"
    # Every packet on voipmonitor is HEPv3 (v2 input is converted).
    [ "$(grep -vc '"version":3' "$v")" = 0 ] || it_case_fail "non-HEPv3 packets on voipmonitor"
    it_note "case $CASE: homer $(lines "$h"), voipmonitor $(lines "$v")"
    it_case_end
}

run_case v3 -n 3000 -r 2000 --reorder 10
run_case v2 --hep-version 2 -n 1000 -r 2000 --reorder 10

[ ${#FAILED[@]} -eq 0 ] || it_fail "see above"
it_note "ok"
