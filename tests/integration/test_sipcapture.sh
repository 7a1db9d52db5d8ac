#!/usr/bin/env bash
# Interoperability with a real HEP receiver: Kamailio 5.6's own sipcapture
# module (hep_capture_on=1, nonsip_hook=1, event_route[sipcapture:request]
# logging $hep(...) chunks and the payload's first line / Call-ID / CSeq;
# config in sipcapture/receiver.cfg).  heprouter sits between hepreplay.py
# and that receiver, all on 127.0.0.1 with free ports.  Cases:
#
#   convert   destination with hep_version: 3; the v3, v1 and v2 captures
#             of tests/data/kamailio are replayed: everything must arrive
#             as HEP3 and every logged field equal the manifest (v1: the
#             timestamp heprouter stamps lies within the send window); the
#             payload chunk byte-identical (the receiver logs the datagram
#             in hex too; see sipcapture/compare.py).
#   passthru  destination without hep_version; the v3 captures must arrive
#             byte-identical to the files, every field equal.
#   rewrite   hep_version: 3, capture_id: 4242, node_name: "hr-1"; v3, v2
#             and v1 captures: capture id 4242 and node name hr-1 logged,
#             everything else equal.
#
#   BUILD_DIR=build bash tests/integration/test_sipcapture.sh [CASE...]
#
# Fails when kamailio or its sipcapture/db_text modules are missing.
# Environment: BUILD_DIR (default build/), IT_KEEP_TMP=1,
# KAMAILIO_MODULES (default /usr/lib/x86_64-linux-gnu/kamailio/modules).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

COMPARE=(python3 "$HERE/sipcapture/compare.py" --data "$IT_DATA")
KCFG=$HERE/sipcapture/receiver.cfg
KMOD=${KAMAILIO_MODULES:-/usr/lib/x86_64-linux-gnu/kamailio/modules}
ARRIVE_TIMEOUT=5        # seconds for the receiver to log every packet
TIME_LIMIT=60           # the whole test (it takes about 10 s)

it_init "$TIME_LIMIT"
it_require_cmd python3 ss kamailio
for m in sipcapture db_text xlog pv; do
    [ -f "$KMOD/$m.so" ] || it_cannot_run "kamailio module $m.so not in $KMOD"
done
HEPROUTER=$(it_bin src/heprouter) || exit 1
[ -d "$IT_DATA/v3" ] || it_fail "no captures in $IT_DATA"

IT_ROUTER_LISTEN=udp
K_PID=""
K_PORT=""
K_LOG=""

# items vV: every capture of tests/data/kamailio/vV, as hepreplay items.
items() {
    local f
    for f in "$IT_DATA/v$1"/*.hep; do
        f=${f##*/}
        printf 'v%s/%s\n' "$1" "${f%.hep}"
    done
}

# --- the receiver ----------------------------------------------------------

k_sc_lines() {
    grep -ac 'SC-HEP|' "$K_LOG" 2>/dev/null
}

k_ready_or_dead() {
    it_port_listening udp "$K_PORT" || it_exited "$K_PID"
}

# start_receiver: kamailio -c first, then in the foreground (-DD -E) on a
# free UDP port, retried on another port if it cannot bind.
start_receiver() {
    local dir=$IT_TMP/receiver try
    mkdir -p "$dir/db" "$dir/run"
    K_LOG=$dir/kamailio.err
    for try in 1 2 3; do
        K_PORT=$(it_free_port udp) || exit 1
        local args=(-f "$KCFG" -L "$KMOD" -A "PORT=$K_PORT" -A "DBURL=\"text://$dir/db\"")
        it_run 10 kamailio -c "${args[@]}" >"$dir/check.out" 2>&1 ||
            it_fail "kamailio -c rejects $KCFG: $(grep -a -v INFO "$dir/check.out" | tail -n 5)"
        grep -q 'config file ok' "$dir/check.out" || it_fail "kamailio -c did not say 'config file ok'"
        it_start receiver/kamailio kamailio "${args[@]}" -DD -E -P "$dir/kamailio.pid" \
            -Y "$dir/run" -m 64 -M 8 -a no
        K_PID=$IT_PID
        it_wait_until 10 k_ready_or_dead
        if it_port_listening udp "$K_PORT" && ! it_exited "$K_PID"; then
            it_note "receiver: kamailio $(kamailio -v | sed -n '1s/^version: //p') pid $K_PID on udp:127.0.0.1:$K_PORT"
            return 0
        fi
        it_stop "$K_PID"
        cp "$K_LOG" "$K_LOG.$try" 2>/dev/null
    done
    it_fail "kamailio did not listen on a free port 3 times; last log: $(tail -n 5 "$K_LOG.3")"
}

# --- heprouter -------------------------------------------------------------

# router_config EXTRA: the config after its listen line: one destination
# "sipcapture" (EXTRA: more keys of it, e.g. ", hep_version: 3"), every
# packet to it, never held.
router_config() {
    cat <<EOC
workers: 1
orphans: { wait_ms: 0, max_held: 0 }
destinations:
  sipcapture: { targets: [ "udp:127.0.0.1:$K_PORT" ]$1 }
default: [ sipcapture ]
EOC
}

# --- a case ----------------------------------------------------------------

k_has() {
    [ "$(k_sc_lines)" -ge "$1" ]
}

# run_case NAME DESCRIPTION DEST_EXTRA COMPARE_OPTS -- ITEM...
run_case() {
    local name=$1 desc=$2 extra=$3 opts=() before t0 t1 n
    shift 3
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    it_case_begin "$name" "$desc"
    it_start_router "$(router_config "$extra")"
    before=$(wc -l <"$K_LOG")
    n=$(k_sc_lines)
    t0=$(date +%s)
    it_run 20 "${IT_REPLAY[@]}" send "udp:127.0.0.1:$ROUTER_PORT" --delay-ms 2 "$@" || it_case_fail "hepreplay send failed"
    t1=$(date +%s)
    it_wait_until "$ARRIVE_TIMEOUT" k_has $((n + $#)) ||
        it_case_fail "receiver logged $(($(k_sc_lines) - n)) of $# packets within ${ARRIVE_TIMEOUT}s"
    sleep 0.2                   # extra packets would show up too
    it_stop_router
    "${COMPARE[@]}" --log "$K_LOG" --from-line "$before" --v1-window "$t0:$t1" \
        --show "${SHOW:-0}" "${opts[@]}" "$@"
    ((PIPESTATUS[0] == 0)) || it_case_fail "the receiver did not log what was sent"
    it_case_end
}

want() {
    [ ${#SELECTED[@]} -eq 0 ] && return 0
    local c
    for c in "${SELECTED[@]}"; do [ "$c" = "$1" ] && return 0; done
    return 1
}

SELECTED=("$@")
mapfile -t V1 < <(items 1)
mapfile -t V2 < <(items 2)
mapfile -t V3 < <(items 3)

start_receiver

want convert && run_case convert "hep_version: 3; v3, v1, v2 captures" \
    ", hep_version: 3" -- "${V3[@]}" "${V1[@]}" "${V2[@]}"
want passthru && run_case passthru "no hep_version; v3 captures forwarded unchanged" \
    "" --identical -- "${V3[@]}"
want rewrite && run_case rewrite "hep_version: 3, capture_id: 4242, node_name: hr-1; v3, v2, v1" \
    ", hep_version: 3, capture_id: 4242, node_name: \"hr-1\"" \
    --capture-id 4242 --node-name hr-1 -- "${V3[@]}" "${V2[@]}" "${V1[@]}"

it_stop "$K_PID"
if grep -aq 'CRITICAL\|segfault\|signal 11' "$K_LOG"; then
    FAILED+=(receiver)
    echo "[test_sipcapture] the receiver logged a critical error:"
    grep -a 'CRITICAL\|segfault\|signal 11' "$K_LOG" | head -n 5 | sed 's/^/    /'
fi

if [ ${#FAILED[@]} -gt 0 ]; then
    it_fail "failed: ${FAILED[*]} (receiver log: $K_LOG)"
fi
it_note "all cases passed"
