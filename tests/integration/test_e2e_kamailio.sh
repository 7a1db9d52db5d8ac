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
# HEP over TLS (transport tls, tls-cert, tls-cert-refused): Kamailio's tls
# module carries siptrace's HEP3 to heprouter's tls: listener (certificates
# of tests/tls/mkcerts.sh; Kamailio verifies heprouter's chain against the
# test CA).  Kamailio runs a wrapper cfg written into the case directory
# (kamailio_tls_cfg below): etc/kamailio/kamailio.cfg included as it is,
# plus enable_tls, a tls: listen socket (siptrace sends from it), the tls
# module with its tls.cfg, hep_capture_id CAPTURE_ID, and the debugger
# module logging siptrace at level 3, whose one "trace_send_hep3_duplicate():
# setting up the socket_info" line per HEP packet is the count of what
# Kamailio traced.  Beside the per-call checks, each asserts traced =
# arrived: the sinks got (+ deduplicated) every packet Kamailio traced and
# packets_in is that number too; tls_handshakes >= 1, every tls_failed_* 0,
# and no TLS/TCP error in Kamailio's log.
#   tls               heprouter asks for no client certificate
#   tls-cert          require_client_cert: true, client_capture_ids binds
#                     kamailio-a (Kamailio's client.pem) to CAPTURE_ID: every
#                     packet passes, refused.capture_id_not_allowed 0
#   tls-cert-refused  the same with kamailio-a bound to another capture id:
#                     the handshake completes, the calls still work (sipp),
#                     no packet reaches a sink and every traced packet is
#                     counted in refused.capture_id_not_allowed
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
# VARIANT: STORE-MODE-TRANSPORT, STORE memory|redis, MODE script|core|both,
# TRANSPORT udp|tcp|tls|tls-cert|tls-cert-refused (e.g. memory-script-udp,
# redis-core-tcp, memory-script-tls-cert); default: the 8 memory|redis x
# script|core x udp|tcp, memory-both-udp, memory-script-tls,
# memory-script-tls-cert and memory-script-tls-cert-refused (TLS does not
# depend on the store: redis-core-tls runs when asked for).
# Environment: BUILD_DIR (src/heprouter, tools/hepdump), E2E_CALLS,
# E2E_RATE, IT_KEEP_TMP=1 keeps the scratch directory (kept on failure).
# Needs kamailio (5.6), sipp (sip-tester), redis-server, python3, ss; the TLS
# variants kamailio-tls-modules and openssl.
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
TIME_LIMIT=${E2E_TIME_LIMIT:-300}
SIPP_LIMIT=30           # seconds one sipp UAC run may take
CAPTURE_ID=2001         # the hep_capture_id of Kamailio in the TLS variants
CERTS=""                # tests/tls/mkcerts.sh's certificates, made for the first TLS variant

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

# router_config STORE [MODE [TRANSPORT]]: the config after its listen line
# (udp and tcp, or udp and tls); mode both: dedup on both destinations;
# transport tls*: the tls: section of the listener (tls_section).
router_config() {
    local store=$1 mode=${2:-} transport=${3:-} block
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
$(tls_section "$transport")
$(it_two_sink_policy INVITE | if [ "$mode" = both ]; then
        sed 's/^\(  [a-z]*: { targets: \[ "[^"]*" \]\)/\1, dedup: { window_ms: 500 }/'
    else cat; fi)
EOF
}

# tls_section TRANSPORT: heprouter's top-level tls: section (the default of
# its tls: listener) for a TLS variant, nothing for udp/tcp.  tls-cert binds
# Kamailio's certificate (CN=kamailio-a) to CAPTURE_ID, tls-cert-refused to
# another capture id.
tls_section() {
    local allowed=$CAPTURE_ID
    case $1 in
    tls) ;;
    tls-cert) ;;
    tls-cert-refused) allowed=$((CAPTURE_ID + 1)) ;;
    *) return 0 ;;
    esac
    printf 'tls:\n  cert: %s/server.pem\n  key: %s/server.key\n  min_version: "1.2"\n' "$CERTS" "$CERTS"
    [ "$1" = tls ] && return 0
    printf '  ca: %s/ca.pem\n  require_client_cert: true\n  client_capture_ids:\n    kamailio-a: [ %s ]\n' \
        "$CERTS" "$allowed"
}

# make_certs: tests/tls/mkcerts.sh into $IT_TMP/certs, once; sets CERTS.
make_certs() {
    [ -z "$CERTS" ] || return 0
    CERTS=$IT_TMP/certs
    bash "$IT_SRCDIR/tests/tls/mkcerts.sh" "$CERTS" >"$IT_TMP/mkcerts.out" 2>&1 ||
        it_fail "tests/tls/mkcerts.sh: $(tail -n 5 "$IT_TMP/mkcerts.out")"
}

# kamailio_tls_cfg: writes $CASE_DIR/kamailio-tls.cfg, which is
# etc/kamailio/kamailio.cfg (included as it is) plus what HEP over TLS needs,
# and its tls.cfg; prints the cfg's path.  siptrace sends HEP over TLS
# (msg_send_buffer -> tcp_send, tls module) when duplicate_uri has
# ;transport=tls and an explicit port (a sips: URI alone goes over UDP), from
# a tls: listen socket (without one: "no corresponding listening socket").
# As a TLS client Kamailio verifies heprouter's chain (not its name) against
# the test CA and presents client.pem when asked.
kamailio_tls_cfg() {
    local cfg=$CASE_DIR/kamailio-tls.cfg
    # (include_file: at most 127 characters, tried relative to the working
    # directory first: always an absolute path)
    ((${#KCFG} < 128)) || it_fail "$CASE: $KCFG: path too long for Kamailio's include_file"
    cat >"$CASE_DIR/tls.cfg" <<EOF
# written by test_e2e_kamailio.sh, case $CASE
# the server domain: required by the tls: listen socket
[server:default]
method = TLSv1.2+
certificate = $CERTS/server.pem
private_key = $CERTS/server.key

# siptrace's connection to heprouter's tls: listener.  [client:default], not
# [client:127.0.0.1:HEP_PORT]: Kamailio 5.6.3 matches a client domain
# against the connection's LOCAL address (tcpconn_new() sets rcv.dst to it,
# tls_complete_init() looks up rcv.dst_ip/dst_port), so that section is
# never used and the built-in client domain takes its place: no client
# certificate (heprouter: "no_certificate: peer did not return a
# certificate") and the module's default verify_certificate = no.
[client:default]
method = TLSv1.2+
verify_certificate = yes
require_certificate = yes
ca_list = $CERTS/ca.pem
certificate = $CERTS/client.pem
private_key = $CERTS/client.key
EOF
    cat >"$cfg" <<EOF
#!KAMAILIO
# written by test_e2e_kamailio.sh, case $CASE: the example cfg with HEP over TLS
include_file "$KCFG"

enable_tls=yes
# siptrace sends HEP over TLS from this socket (SIP_PORT + 1)
listen=tls:127.0.0.1:$((SIP_PORT + 1))
loadmodule "tls.so"
modparam("tls", "config", "$CASE_DIR/tls.cfg")
modparam("siptrace", "hep_capture_id", $CAPTURE_ID)

# one debug line per HEP packet siptrace sends: the count of what was traced
loadmodule "debugger.so"
modparam("debugger", "mod_hash_size", 4)
modparam("debugger", "mod_level_mode", 1)
modparam("debugger", "mod_level", "siptrace=3")
EOF
    printf '%s\n' "$cfg"
}

# start_kamailio MODE TRANSPORT: etc/kamailio/kamailio.cfg on SIP_PORT,
# tracing to heprouter's TRANSPORT listener (started first: its port is in
# ROUTER_ADDR); TRANSPORT tls*: the kamailio_tls_cfg wrapper; sets KAM_PID.
start_kamailio() {
    local mode=$1 transport=$2 defs=() uri cfg=$KCFG hep=${2%%-*}
    uri="sip:127.0.0.1:${ROUTER_ADDR[$hep]##*:}"
    defs=(-A "SIP_PORT=$SIP_PORT" -A "UAS_URI=\"sip:127.0.0.1:$UAS_BASE\"")
    if [ "$hep" = tcp ]; then
        uri+=";transport=tcp"
        defs+=(-A WITH_TCP)
    elif [ "$hep" = tls ]; then
        uri+=";transport=tls"
        cfg=$(kamailio_tls_cfg) || exit 1
    fi
    defs+=(-A "HEP_URI=\"$uri\"")
    [ "$mode" = core ] && defs+=(-A WITH_CORE_TRACE)
    [ "$mode" = both ] && defs+=(-A WITH_BOTH_TRACE)
    kamailio -c -f "$cfg" -L "$KMODS" "${defs[@]}" >"$CASE_DIR/kamailio-check.log" 2>&1
    grep -q 'config file ok' "$CASE_DIR/kamailio-check.log" ||
        it_fail "$CASE: kamailio -c: $(tail -n 5 "$CASE_DIR/kamailio-check.log")"
    local extra=()
    [ "$hep" = udp ] && extra=(-T)
    mkdir -p "$CASE_DIR/kamrun"
    it_start "$CASE/kamailio" kamailio -f "$cfg" -L "$KMODS" "${defs[@]}" -DD -E "${extra[@]}" \
        -P "$CASE_DIR/kamrun/kamailio.pid" -Y "$CASE_DIR/kamrun" -m 64 -M 8 -a no
    KAM_PID=$IT_PID
    it_wait_until 10 it_port_listening udp "$SIP_PORT" || it_fail "$CASE: kamailio not listening on udp $SIP_PORT"
    if [ "$hep" = tcp ]; then
        it_wait_until 10 it_port_listening tcp "$SIP_PORT" || it_fail "$CASE: kamailio not listening on tcp $SIP_PORT"
    elif [ "$hep" = tls ]; then
        it_wait_until 10 it_port_listening tcp "$((SIP_PORT + 1))" ||
            it_fail "$CASE: kamailio not listening on tls $((SIP_PORT + 1))"
    fi
    sleep 0.3                       # its children are up
    it_exited "$KAM_PID" && it_fail "$CASE: kamailio exited: $(tail -n 5 "$CASE_DIR/kamailio.err")"
}

# sipp_uac NAME SCENARIO BASE CID-PREFIX CALLS: a UAC against Kamailio; sets IT_PID.
sipp_uac() { it_sipp_uac "$1" "$2" "$SIP_PORT" "$3" "$4" "$5" "$RATE" "$SIPP_LIMIT"; }

# ---------------------------------------------------------------- TLS checks

# traced_count: the HEP packets Kamailio's siptrace has sent so far (one
# debug line each, see kamailio_tls_cfg).
traced_count() {
    grep -c 'trace_send_hep3_duplicate(): setting up the socket_info' "$CASE_DIR/kamailio.err"
}

# sinks_count: the packets both sinks hold.
sinks_count() { echo $(($(it_sink_lines homer) + $(it_sink_lines voipmonitor))); }

# stat_sum NAME: the sum of every counter NAME in heprouter's last stats
# line (one for a top-level name, e.g. tls_handshakes, or a name used once,
# e.g. capture_id_not_allowed; deduplicated: over the destinations); empty
# when there is none.  (grep, not it_counter: python3 starts slowly here.)
stat_sum() {
    grep 'stats (' "$CASE_DIR/router.err" | tail -n 1 | grep -o "\"$1\":[0-9]*" |
        awk -F: '{ s += $2; n++ } END { if (n) print s }'
}

# tls_settled COUNTER: heprouter's COUNTER (SIGUSR1 stats) has reached what
# Kamailio traced so far (something, at least).
tls_settled() {
    local traced n
    traced=$(traced_count)
    ((traced > 0)) || return 1
    it_usr1_stats "$ROUTER_PID" || return 1
    n=$(stat_sum "$1")
    [ -n "$n" ] && ((n >= traced))
}

# kamailio_errors: Kamailio's error and warning lines until it was told to
# stop (at exit its TCP main process may log "CRITICAL: receive_fd(): EOF"),
# but the tls module's warning about openssl bug #1491, printed at every start.
kamailio_errors() {
    awk '/sig_usr\(\): signal 15 received|handle_sigs\(\): Thank you for flying/ { exit } { print }' \
        "$CASE_DIR/kamailio.err" | grep -E ' (ERROR|CRITICAL|ALERT|BUG|WARNING): ' | grep -v 'openssl bug #1491'
}

# tls_checks TRANSPORT MODE: once every process is stopped: traced = arrived
# (or, tls-cert-refused, = refused and nothing arrived), heprouter's TLS
# counters (exit stats line), Kamailio's log free of errors.
tls_checks() {
    local transport=$1 mode=$2 traced arrived dedup=0 packets_in hs refused r v failed="" lines
    traced=$(traced_count)
    arrived=$(sinks_count)
    [ "$mode" = both ] && dedup=$(stat_sum deduplicated)
    packets_in=$(stat_sum packets_in)
    hs=$(stat_sum tls_handshakes)
    refused=$(stat_sum capture_id_not_allowed)
    for r in certificate no_certificate protocol timeout; do
        v=$(stat_sum "tls_failed_$r")
        failed+=" tls_failed_$r=${v:-?}"
        [ "$v" = 0 ] || it_case_fail "heprouter: tls_failed_$r = '$v', expected 0"
    done
    echo "    TLS: Kamailio traced $traced HEP packets, the sinks got $arrived$( ((dedup)) && echo " (+ $dedup deduplicated)");" \
        "heprouter: packets_in=$packets_in tls_handshakes=$hs$failed refused.capture_id_not_allowed=$refused"
    ((traced > 0)) || it_case_fail "Kamailio traced nothing (no debug lines of siptrace in kamailio.err)"
    if [ -z "$hs" ] || ((hs < 1)); then it_case_fail "heprouter: tls_handshakes = '$hs', expected >= 1"; fi
    if [ "$transport" = tls-cert-refused ]; then
        [ "$arrived" = 0 ] || it_case_fail "the sinks got $arrived packets, expected none (capture id not allowed)"
        [ "$refused" = "$traced" ] ||
            it_case_fail "heprouter: refused.capture_id_not_allowed = '$refused', expected $traced (every traced packet)"
        grep -m 2 'packets refused (capture_id_not_allowed)' "$CASE_DIR/router.err" | sed 's/^/    heprouter: /'
    else
        ((arrived + dedup == traced)) ||
            it_case_fail "Kamailio traced $traced HEP packets, $((arrived + dedup)) arrived (lost: $((traced - arrived - dedup)))"
        [ "$packets_in" = "$traced" ] || it_case_fail "heprouter: packets_in = '$packets_in', Kamailio traced $traced"
        [ "$refused" = 0 ] || it_case_fail "heprouter: refused.capture_id_not_allowed = '$refused', expected 0"
    fi
    lines=$(kamailio_errors)
    if [ -n "$lines" ]; then
        it_case_fail "Kamailio logged $(wc -l <<<"$lines") error/warning line(s)"
        head -n 5 <<<"$lines" | cut -c1-300 | sed 's/^/    kamailio: /'
    fi
}

# ---------------------------------------------------------------- a variant

variant() {
    local store=$1 mode=$2 transport=$3 i what hep=${3%%-*}
    case $transport in
    tls) what="HEP over TLS" ;;
    tls-cert) what="HEP over TLS, client certificate required and bound to capture id $CAPTURE_ID" ;;
    tls-cert-refused) what="HEP over TLS, client certificate bound to another capture id: refused" ;;
    *) what="HEP over $transport" ;;
    esac
    it_case_begin "$store-$mode-$transport" "store $store, Kamailio $mode mode, $what"
    IT_ROUTER_LISTEN="udp tcp"
    if [ "$hep" = tls ]; then
        make_certs
        IT_ROUTER_LISTEN="udp tls"
    fi

    # Kamailio and sipp cannot take port 0: blocks of 8 from the picker (see
    # e2e/free_ports.py); heprouter and the sinks listen on port 0.
    read -r SIP_PORT UAS_BASE OPT_BASE REG_BASE INV_BASE < <(it_free_port_blocks 5 8 | tr '\n' ' ')
    [ -n "$INV_BASE" ] || it_fail "$CASE: no free port blocks for Kamailio and sipp"
    REDIS_PID=""
    [ "$store" = redis ] && start_redis
    start_sink homer
    start_sink voipmonitor
    it_start_router "$(router_config "$store" "$mode" "$transport")"
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
    if [ "$hep" = tls ]; then
        # Kamailio sends asynchronously: wait until heprouter has had all
        local counter=packets_in
        [ "$transport" = tls-cert-refused ] && counter=capture_id_not_allowed
        it_wait_until 10 tls_settled "$counter" ||
            it_case_fail "heprouter's $counter = '$(stat_sum "$counter")' after 10 s, Kamailio traced $(traced_count)"
    fi

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
    # (tls-cert-refused: no packet reaches a sink, tls_checks says so)
    if [ "$transport" != tls-cert-refused ]; then
        python3 "$E2E/check_calls.py" --variant "$CASE" --voipmonitor "$CASE_DIR/voipmonitor.json" \
            --homer "$CASE_DIR/homer.json" --sip-port "$SIP_PORT" --invites "$CALLS" \
            --registers "$REGISTERS" --options "$OPTIONS" --router-log "$CASE_DIR/router.err" \
            "${redis_flag[@]}" >"$CASE_DIR/check.out" 2>&1
        local rc=$?
        sed 's/^/    /' "$CASE_DIR/check.out"
        ((rc == 0)) || it_case_fail "per-call checks failed"
    fi
    [ "$hep" = tls ] && tls_checks "$transport" "$mode"
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
all+=(memory-both-udp memory-script-tls memory-script-tls-cert memory-script-tls-cert-refused)
selected=("$@")
[[ ${#selected[@]} -gt 0 ]] || selected=("${all[@]}")
for v in "${selected[@]}"; do
    [[ $v =~ ^(memory|redis)-(script|core|both)-(udp|tcp|tls|tls-cert|tls-cert-refused)$ ]] ||
        { echo "unknown variant $v (STORE-MODE-TRANSPORT; the default ones: ${all[*]})"; exit 2; }
    [[ $v != *-tls* ]] || command -v openssl >/dev/null 2>&1 ||
        it_fail "openssl is not installed (the TLS variants make their certificates with it)"
    [[ $v != *-tls* ]] || [ -f "$KMODS/tls.so" ] ||
        it_fail "no tls.so in $KMODS (Debian: apt-get install kamailio-tls-modules)"
done
it_note "kamailio: $(kamailio -v 2>&1 | head -n 1); $(sipp -v 2>&1 | grep -m1 -o 'SIPp v[^ ,]*'); $CALLS INVITE calls per variant at $RATE cps"
start=$(date +%s)
for v in "${selected[@]}"; do
    IFS=- read -r s m t <<<"$v"     # (t takes the rest: tls-cert-refused)
    variant "$s" "$m" "$t"
done
it_note "done in $(($(date +%s) - start)) s: ${#selected[@]} variant(s), ${#FAILED[@]} failed${FAILED[*]:+: ${FAILED[*]}}"
[[ ${#FAILED[@]} -eq 0 ]]
