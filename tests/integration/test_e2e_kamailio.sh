#!/usr/bin/env bash
# End to end with a real Kamailio 5.6: sipp UACs -> Kamailio (registrar +
# proxy, etc/kamailio/kamailio.cfg) -> sipp UAS, Kamailio's siptrace sending
# every message as HEPv3 to ONE target, heprouter, which routes INVITE calls
# to a "voipmonitor" sink and REGISTER/OPTIONS to a "homer" sink (hepdump).
#
# Per call it asserts that the voipmonitor sink got the first INVITE, the
# stateless 407 of proxy_challenge() (no t_newtran), the ACK of the 407, the
# authenticated INVITE received and relayed, 100/180/200, the ACK, the BYE
# and its 200, and that homer got none of them; and the reverse for
# REGISTER (with its stateless 401) and OPTIONS (tests/integration/e2e/
# check_calls.py).  Also heprouter's exit counters: decode_errors all 0,
# packets_in = what the sinks got together, store_writes > 0 with Redis.
#
# Variants (fresh processes each): store memory|redis x Kamailio trace mode
# script (sip_trace_mode("t")) | core (trace_mode=1) x HEP over udp|tcp
# (duplicate_uri with ;transport=tcp); and memory-both-udp: Kamailio in
# script and core mode at once (every message traced twice) with
# dedup: { window_ms: 500 } on both destinations: each message once at its
# sink (no two packets there with the same SIP identity and hop), the
# copies counted in deduplicated (packets_in = what the sinks got + them).  Each runs E2E_CALLS INVITE calls (20)
# in parallel (sipp -r E2E_RATE -l E2E_CALLS), plus E2E_REGISTERS REGISTER
# and E2E_OPTIONS OPTIONS.
#
# What Kamailio 5.6.3 traces per INVITE call (check_calls.py prints it):
#   script mode: 16 packets: INVITE/1 in, 407 out, ACK/1 in, INVITE/2 in and
#     out (relayed), 100 in (UAS) and out (tm), 180/200 in and out, ACK/2 in
#     only (the ACK t_relay() forwards statelessly is not traced), BYE in and
#     out, its 200 in and out
#   core mode (trace_mode=1): 18: the same, plus ACK/2 out, and ACK/1 twice
#     (same bytes, timestamps ~50-100 us apart)
# REGISTER: REGISTER/1, 401, REGISTER/2, 200 (4); OPTIONS: OPTIONS, 200 (2),
# in both modes.  The checks ask for each kind at least once, so duplicates
# pass.
#
#   BUILD_DIR=/tmp/build bash tests/integration/test_e2e_kamailio.sh [VARIANT...]
#
# VARIANT: memory-script-udp, redis-core-tcp, ... (default: all 8).
# Environment: BUILD_DIR (src/heprouter, tools/hepdump), E2E_CALLS,
# E2E_RATE, IT_KEEP_TMP=1 keeps the scratch directory (kept on failure).
# Needs kamailio (5.6), sipp (sip-tester), redis-server, python3, ss.
# Every process is started by this test and stopped by its PID.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

E2E=$HERE/e2e
KCFG=$IT_SRCDIR/etc/kamailio/kamailio.cfg
KMODS=${KAMAILIO_MODULES:-/usr/lib/x86_64-linux-gnu/kamailio/modules}
CALLS=${E2E_CALLS:-20}
RATE=${E2E_RATE:-20}
REGISTERS=${E2E_REGISTERS:-3}
OPTIONS=${E2E_OPTIONS:-3}
TIME_LIMIT=${E2E_TIME_LIMIT:-230}
SIPP_LIMIT=30           # seconds one sipp UAC run may take

it_init "$TIME_LIMIT"
for c in kamailio sipp redis-server redis-cli python3 ss timeout; do
    command -v "$c" >/dev/null 2>&1 ||
        it_fail "$c is not installed (Debian: apt-get install kamailio sip-tester redis-server python3 iproute2)"
done
HEPROUTER=$(it_bin src/heprouter) || exit 1
it_bin tools/hepdump >/dev/null || exit 1
[ -f "$KCFG" ] || it_fail "no $KCFG"
[ -d "$KMODS" ] || it_fail "no Kamailio modules in $KMODS (set KAMAILIO_MODULES)"

# ---------------------------------------------------------------- processes

redis_ready() {
    [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>&1)" = PONG ]
}

# start_redis: a throwaway redis-server on a free port; sets REDIS_PID/PORT.
start_redis() {
    local p
    for _ in 1 2 3; do
        p=$(it_free_port tcp)
        mkdir -p "$CASE_DIR/redis"
        it_start "$CASE/redis" redis-server --port "$p" --bind 127.0.0.1 --save "" \
            --appendonly no --dir "$CASE_DIR/redis"
        REDIS_PID=$IT_PID
        REDIS_PORT=$p
        if it_wait_until 5 redis_ready "$p" && ! it_exited "$IT_PID"; then return 0; fi
        it_stop "$IT_PID"
    done
    it_fail "$CASE: redis-server did not start: $(tail -n 5 "$CASE_DIR/redis.out")"
}

start_sink() {
    it_start_sink "$1" udp 0 --raw --payload -u -q
}

# router_config STORE [MODE]: the config after its listen line (udp and tcp);
# mode both: dedup on both destinations.
router_config() {
    local store=$1 mode=${2:-} block
    if [ "$store" = redis ]; then
        block="store:
  type: redis
  redis: { host: 127.0.0.1, port: $REDIS_PORT, prefix: \"e2e:\", timeout_ms: 50 }
  cache: { entries: 100000 }"
    else
        block="store: { type: memory }"
    fi
    cat <<EOF
workers: 1
$block
orphans: { wait_ms: 100 }
$(it_two_sink_policy INVITE | if [ "$mode" = both ]; then
        sed 's/^\(  [a-z]*: { targets: \[ "[^"]*" \]\)/\1, dedup: { window_ms: 500 }/'
    else cat; fi)
EOF
}

# start_kamailio MODE TRANSPORT: etc/kamailio/kamailio.cfg on SIP_PORT,
# tracing to heprouter's TRANSPORT listener (started first: its port is in
# ROUTER_ADDR); sets KAM_PID.
start_kamailio() {
    local mode=$1 transport=$2 defs=() uri
    uri="sip:127.0.0.1:${ROUTER_ADDR[$transport]##*:}"
    defs=(-A "SIP_PORT=$SIP_PORT" -A "UAS_URI=\"sip:127.0.0.1:$UAS_BASE\"")
    if [ "$transport" = tcp ]; then
        uri+=";transport=tcp"
        defs+=(-A WITH_TCP)
    fi
    defs+=(-A "HEP_URI=\"$uri\"")
    [ "$mode" = core ] && defs+=(-A WITH_CORE_TRACE)
    [ "$mode" = both ] && defs+=(-A WITH_BOTH_TRACE)
    kamailio -c -f "$KCFG" -L "$KMODS" "${defs[@]}" >"$CASE_DIR/kamailio-check.log" 2>&1
    grep -q 'config file ok' "$CASE_DIR/kamailio-check.log" ||
        it_fail "$CASE: kamailio -c: $(tail -n 5 "$CASE_DIR/kamailio-check.log")"
    local extra=()
    [ "$transport" = tcp ] || extra=(-T)
    mkdir -p "$CASE_DIR/kamrun"
    it_start "$CASE/kamailio" kamailio -f "$KCFG" -L "$KMODS" "${defs[@]}" -DD -E "${extra[@]}" \
        -P "$CASE_DIR/kamrun/kamailio.pid" -Y "$CASE_DIR/kamrun" -m 64 -M 8 -a no
    KAM_PID=$IT_PID
    it_wait_until 10 it_port_listening udp "$SIP_PORT" || it_fail "$CASE: kamailio not listening on udp $SIP_PORT"
    if [ "$transport" = tcp ]; then
        it_wait_until 10 it_port_listening tcp "$SIP_PORT" || it_fail "$CASE: kamailio not listening on tcp $SIP_PORT"
    fi
    sleep 0.3                       # its children are up
    it_exited "$KAM_PID" && it_fail "$CASE: kamailio exited: $(tail -n 5 "$CASE_DIR/kamailio.err")"
}

# sipp_uac NAME SCENARIO BASE CID-PREFIX CALLS: a UAC against Kamailio; sets IT_PID.
sipp_uac() { it_sipp_uac "$1" "$2" "$SIP_PORT" "$3" "$4" "$5" "$RATE" "$SIPP_LIMIT"; }

# ---------------------------------------------------------------- a variant

variant() {
    local store=$1 mode=$2 transport=$3 i
    it_case_begin "$store-$mode-$transport" "store $store, Kamailio $mode mode, HEP over $transport"

    # Kamailio and sipp cannot take port 0: blocks of 8 from the picker (see
    # e2e/free_ports.py); heprouter and the sinks listen on port 0.
    read -r SIP_PORT UAS_BASE OPT_BASE REG_BASE INV_BASE < <(it_free_port_blocks 5 8 | tr '\n' ' ')
    [ -n "$INV_BASE" ] || it_fail "$CASE: no free port blocks for Kamailio and sipp"
    REDIS_PID=""
    [ "$store" = redis ] && start_redis
    start_sink homer
    start_sink voipmonitor
    it_start_router "$(router_config "$store" "$mode")"
    start_kamailio "$mode" "$transport"

    # the UAS: answers every relayed INVITE (ended by PID once the UACs are done)
    it_start "$CASE/sipp_uas" timeout -k 2 60 sipp -sf "$E2E/uas.xml" -i 127.0.0.1 -ci 127.0.0.1 \
        -p "$UAS_BASE" -cp "$((UAS_BASE + 1))" -mp "$((UAS_BASE + 2))" -m "$CALLS" \
        -nostdin -trace_err -error_file "$CASE_DIR/sipp_uas.errors"
    local uas=$IT_PID
    it_wait_until 5 it_port_listening udp "$UAS_BASE" || it_case_fail "sipp UAS not listening on $UAS_BASE"

    local pids=() names=(options register invite)
    sipp_uac options uac-options.xml "$OPT_BASE" opt "$OPTIONS"
    pids+=("$IT_PID")
    sipp_uac register uac-register.xml "$REG_BASE" reg "$REGISTERS"
    pids+=("$IT_PID")
    sipp_uac invite uac-invite.xml "$INV_BASE" inv "$CALLS"
    pids+=("$IT_PID")
    for i in "${!pids[@]}"; do
        it_wait_exit "${pids[$i]}" "$((SIPP_LIMIT + 5))"
        if ((IT_STATUS != 0)); then
            it_case_fail "sipp ${names[$i]} exited with status $IT_STATUS: $(grep -E 'Successful call|Failed call' "$CASE_DIR/sipp_${names[$i]}.out" | tr -s ' ' | tr '\n' ' ')"
            tail -n 5 "$CASE_DIR/sipp_${names[$i]}.errors" 2>/dev/null | sed 's/^/    /'
        fi
    done
    it_wait_until 5 it_exited "$uas" || true
    it_stop "$uas"

    # stop in flow order: Kamailio (its last traces out), heprouter (drains,
    # prints its exit counters), then the sinks once nothing more arrives
    it_stop "$KAM_PID"
    sleep 0.2
    it_stop_router
    sleep 0.2
    it_stop "${SINK_PID[homer]}"
    it_stop "${SINK_PID[voipmonitor]}"
    [ -n "$REDIS_PID" ] && it_stop "$REDIS_PID"

    local redis_flag=()
    [ "$store" = redis ] && redis_flag=(--redis)
    [ "$mode" = both ] && redis_flag+=(--dedup)
    python3 "$E2E/check_calls.py" --variant "$CASE" --voipmonitor "$CASE_DIR/voipmonitor.json" \
        --homer "$CASE_DIR/homer.json" --sip-port "$SIP_PORT" --invites "$CALLS" \
        --registers "$REGISTERS" --options "$OPTIONS" --router-log "$CASE_DIR/router.err" \
        "${redis_flag[@]}" >"$CASE_DIR/check.out" 2>&1
    local rc=$?
    sed 's/^/    /' "$CASE_DIR/check.out"
    ((rc == 0)) || it_case_fail "per-call checks failed"
    grep -i 'error\|warn' "$CASE_DIR/router.err" | grep -v 'stats (' | head -n 5 | sed 's/^/    heprouter: /'
    it_case_end "$CASE_DIR/router.err" "$CASE_DIR/kamailio.err"
}

# ---------------------------------------------------------------- main

all=()
for s in memory redis; do
    for m in script core; do
        for t in udp tcp; do all+=("$s-$m-$t"); done
    done
done
all+=(memory-both-udp)
selected=("$@")
[[ ${#selected[@]} -gt 0 ]] || selected=("${all[@]}")
for v in "${selected[@]}"; do
    [[ " ${all[*]} " == *" $v "* ]] || { echo "unknown variant $v (known: ${all[*]})"; exit 2; }
done
it_note "kamailio: $(kamailio -v 2>&1 | head -n 1); $(sipp -v 2>&1 | grep -m1 -o 'SIPp v[^ ,]*'); $CALLS INVITE calls per variant at $RATE cps"
start=$(date +%s)
for v in "${selected[@]}"; do
    IFS=- read -r s m t <<<"$v"
    variant "$s" "$m" "$t"
done
it_note "done in $(($(date +%s) - start)) s: ${#selected[@]} variant(s), ${#FAILED[@]} failed${FAILED[*]:+: ${FAILED[*]}}"
[[ ${#FAILED[@]} -eq 0 ]]
