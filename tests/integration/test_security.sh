#!/usr/bin/env bash
# Admission, auth key stripping and the privilege drop, issue 15 (loopback
# only, every process stopped by PID, the whole test bounded by TIME_LIMIT;
# figures printed per case).  Senders bind 127.0.0.1, 127.0.0.2 or
# 127.0.0.3 (security/hepsend.py), so heprouter sees three sources.
#
#   udp_sources       allowed and refused sources, right, wrong, missing and
#                     rotated keys (auth_keys plus auth_keys_file: two keys
#                     at once; SIGHUP re-reads the file, `heprouter ctl
#                     reload` the list: the old key is refused after each,
#                     the new one accepted), capture ids claimed outside a
#                     source's list, HEPv2 and HEPv1 (no key) refused as
#                     missing_auth_key, the check order (allow, key, capture
#                     id), a ::1 sender (::1/128) on a [::1] listener, the
#                     keys file's comment line not taken for a key; exact counts at the sink, in `ctl stats`, the
#                     stats line at exit and /metrics, one summary line per
#                     reason and log.interval naming the source, no key in
#                     the (debug) log
#   tcp_sources       the same over TCP: connections from a source not
#                     allowed closed at accept (tcp_not_allowed, nothing
#                     delivered), an allowed connection with bad-key packets
#                     among good ones stays open and delivers the good ones
#   listener_override listeners in map form with their own sources replace
#                     the top-level section: the same sender is refused on
#                     one listener and accepted on the other (UDP and TCP;
#                     the second UDP listener is on 127.0.0.5: two port-0
#                     listeners on one address are "listed twice")
#   strip_auth_key    strip_auth_key: true removes chunk 0x000e (the packet
#                     is otherwise byte-identical), a destination without it
#                     forwards the key, auth_key: X sends X
#   privileges        as root: no user and no allow_root -> exit 1 naming
#                     allow_root and -u; -u nobody (over user: daemon) and
#                     user: nobody drop every thread to nobody, listeners
#                     still route; allow_root: true runs as uid 0; `-t`
#                     warns about an auth_keys_file others may read or write.
#                     Not root: only the -t part runs (said loudly).
#
#   BUILD_DIR=build bash tests/integration/test_security.sh [CASE...]
#
# Environment: BUILD_DIR (src/heprouter, tools/hepdump, tools/hepgen),
# IT_KEEP_TMP=1 keeps the scratch directory.  Needs python3 and curl.  Every
# send and check goes through one Python process (security/check.py serve).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=40               # the whole test (about 15 s; 20 s on a busy 2-core machine)
ARRIVE_TIMEOUT=5            # seconds for packets to reach a sink
DRIVE_TIMEOUT=30            # seconds for one send or check of the driver
LOG_INTERVAL_S=1            # log.interval of every router here
CLOSE_WAIT_S=3              # seconds a refused TCP connection may take to be closed
# Keys: distinct texts, so the log can be searched for each.
KEY_OLD=k-old-3c9e1f57a2
KEY_FILE=k-file-b84d20e6c1
KEY_NEXT=k-next-5a7f93d0e4
KEY_ROT=k-rot-e1d6b3a920
KEY_WRONG=k-wrong-77d0c4b1f8
DEST_KEY=x-dest-0d93b7e5
ALL_KEYS=("$KEY_OLD" "$KEY_FILE" "$KEY_NEXT" "$KEY_ROT" "$KEY_WRONG" "${KEY_OLD%?}" "${KEY_OLD}0")

it_init "$TIME_LIMIT"
it_require_cmd python3 curl
HEPROUTER=$(it_bin src/heprouter) || exit 1
HEPGEN=$(it_bin tools/hepgen) || exit 1
it_bin tools/hepdump >/dev/null || exit 1

IT_CASES=(udp_sources tcp_sources listener_override strip_auth_key privileges)

# ---------------------------------------------------------------- helpers

# The driver: `security/check.py serve`, one Python for every send and
# check of the test (a Python start-up per send was most of a case's time
# on a busy machine).  Stopped at exit with the other processes; the cases
# stop theirs with stop_router and stop_sinks, not it_stop_all.
start_driver() {
    coproc DRIVER { exec python3 "$HERE/security/check.py" serve 2>"$IT_TMP/driver.err"; }
    IT_PIDS+=("$DRIVER_PID")
    IT_NAMES+=(driver)
}

# drive WORD...: one command to the driver (a check.py command line, or
# send and hepsend.py's arguments); its output in DRIVE_OUT; returns its status.
drive() {
    local line cmd
    [ -n "${DRIVER[1]:-}" ] || it_fail "the driver (check.py serve) is gone: $(tail -n 3 "$IT_TMP/driver.err")"
    printf -v cmd '%q ' "$@"
    printf '%s\n' "$cmd" >&"${DRIVER[1]}"
    DRIVE_OUT=""
    while IFS= read -r -t "$DRIVE_TIMEOUT" line <&"${DRIVER[0]}"; do
        if [[ $line =~ ^==\ rc\ ([0-9]+)$ ]]; then
            return "${BASH_REMATCH[1]}"
        fi
        DRIVE_OUT+=$line$'\n'
    done
    it_fail "the driver did not answer \"$1 ...\" within ${DRIVE_TIMEOUT}s: $(tail -n 3 "$IT_TMP/driver.err")"
}

# check ARGS...: check.py ARGS through the driver, its output shown.
check() {
    drive "$@"
    local rc=$?
    printf '%s' "$DRIVE_OUT"
    return "$rc"
}

stop_sinks() {
    local n
    for n in "${!SINK_PID[@]}"; do
        it_stop "${SINK_PID[$n]}"
    done
}

# router_yaml FILE LISTEN BODY [noroot]: a whole configuration in FILE:
# listen: LISTEN, BODY, and it_root_line (allow_root: true when the tests
# run as root) unless noroot.  Debug logging: no key may show even there.
router_yaml() {
    {
        printf '# written by %s.sh, case %s\nlisten: %s\nworkers: 1\norphans: { wait_ms: 0 }\n' \
            "$IT_NAME" "$CASE" "$2"
        printf 'log: { level: debug, interval: %ss }\n%s\n' "$LOG_INTERVAL_S" "$3"
        [ "${4:-}" = noroot ] || it_root_line
    } >"$1"
}

# launch_router NAME FILE [ARG...]: starts heprouter -c FILE --ready-file
# $CASE_DIR/NAME.ready ARG..., stderr in $CASE_DIR/NAME.err, and goes on;
# await_router NAME waits for its ready file and sets ROUTER_PID,
# ROUTER_READY and ROUTER_T0.  start_router NAME FILE [ARG...] does both.
declare -A LAUNCHED=() LAUNCHED_T0=()
launch_router() {
    local name=$1 yaml=$2
    shift 2
    rm -f "$CASE_DIR/$name.ready"
    it_start "$CASE/$name" "$HEPROUTER" -c "$yaml" --ready-file "$CASE_DIR/$name.ready" "$@"
    LAUNCHED[$name]=$IT_PID
    LAUNCHED_T0[$name]=$(date +%s%N)
}

await_router() {
    local name=$1 ready=$CASE_DIR/$1.ready
    ROUTER_PID=${LAUNCHED[$name]}
    ROUTER_T0=${LAUNCHED_T0[$name]}
    it_wait_until "$IT_READY_TIMEOUT" it_ready_or_dead "$ready" "$ROUTER_PID" || true
    if [ ! -s "$ready" ]; then
        it_exited "$ROUTER_PID" && it_fail "case $CASE: heprouter ($name) exited at startup: $(tail -n 5 "$CASE_DIR/$name.err")"
        it_fail "case $CASE: heprouter ($name) wrote no $ready within ${IT_READY_TIMEOUT}s"
    fi
    ROUTER_READY=$ready
}

start_router() {
    launch_router "$@"
    await_router "$1"
}

# stop_router: it_stop_router, and ROUTER_SPAN_S: how long it ran.
stop_router() {
    ROUTER_SPAN_S=$(awk -v a="$ROUTER_T0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
    it_stop_router
}

# listener PROTO [N]: the Nth PROTO listener of the running router, as
# PROTO:ADDR:PORT (its ready file's line).
listener() { it_listen_addr "$ROUTER_READY" "$1" "${2:-1}"; }

# send FROM TARGET [@ADDR] GROUP...: hepsend.py bound to FROM (UDP: @ADDR
# switches the source for the groups after it); its JSON line in
# $CASE_DIR/send.out and LAST_SEND.
send() {
    local from=$1
    shift
    if drive send --bind "$from" "$@"; then
        LAST_SEND=${DRIVE_OUT%$'\n'}
    else
        LAST_SEND='{}'
        it_case_fail "hepsend.py from $from failed: $DRIVE_OUT"
    fi
    printf '%s\n' "$LAST_SEND" >>"$CASE_DIR/send.out"
}

# send_field KEY: a value of LAST_SEND (true, false, a number, a string without quotes).
send_field() {
    sed -n "s/.*\"$1\": \"\{0,1\}\([^,}\"]*\).*/\1/p" <<<"$LAST_SEND"
}

sent_total() {
    awk -F'"sent": ' 'NF > 1 { split($2, a, ","); n += a[1] } END { print n + 0 }' "$CASE_DIR/send.out"
}


# arrive SINK N: until sink SINK holds N packets, then a short settle (to
# see extra ones); the per-label check follows.
arrive() {
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has "$1" "$2" || true
    sleep 0.2
}

# ctl ARGS...: heprouter ctl on the case's control socket; answer in $CASE_DIR/ctl.out.
ctl() {
    it_run 10 "$HEPROUTER" ctl -s "$CASE_DIR/ctl.sock" "$@" >"$CASE_DIR/ctl.out" 2>"$CASE_DIR/ctl.err"
}

# stats_until EXPR...: `ctl stats` until its counters match (published by
# the housekeeping round), then shows them; fails the case if they differ.
# The answer stays in $CASE_DIR/stats.json.
stats_until() {
    check wait-stats --timeout 5 --out "$CASE_DIR/stats.json" "$HEPROUTER" "$CASE_DIR/ctl.sock" "$@" ||
        it_case_fail "ctl stats counters differ"
}

# get_metrics: GET /metrics of the running router into $CASE_DIR/metrics.txt.
get_metrics() {
    local http
    http=$(grep '^listening http:' "$ROUTER_READY" | sed 's/^listening http://')
    curl -s -m 5 "http://$http/metrics" >"$CASE_DIR/metrics.txt" || it_case_fail "GET /metrics failed"
}

refused() {
    printf 'refused/not_allowed=%s refused/missing_auth_key=%s refused/bad_auth_key=%s refused/capture_id_not_allowed=%s' "$@"
}

refused_metrics() {
    local n=heprouter_refused_packets_total
    printf '%s{reason="not_allowed"}=%s %s{reason="missing_auth_key"}=%s %s{reason="bad_auth_key"}=%s %s{reason="capture_id_not_allowed"}=%s' \
        "$n" "$1" "$n" "$2" "$n" "$3" "$n" "$4"
}

# no_keys FILE...: check.py arguments: none of the keys of this test
# appears in the FILEs.
no_keys() {
    printf '%s\n' secrets "$@" -- "${ALL_KEYS[@]}" "$DEST_KEY"
}

# figures SENT DELIVERED NOT_ALLOWED MISSING BAD CAPTURE [TCP_NOT_ALLOWED]
figures() {
    it_note "figures: sent $1, delivered $2, refused $(($3 + $4 + $5 + $6)) (not_allowed $3, missing_auth_key $4, bad_auth_key $5, capture_id_not_allowed $6)${7:+, TCP connections closed at accept $7}"
}

reloaded() {
    grep -qE "configuration reloaded: generation $1([^0-9]|\$)" "$CASE_DIR/router.err"
}

# ---------------------------------------------------------------- udp_sources

case_udp_sources() {
    it_case_begin udp_sources "UDP from 127.0.0.1/.2/.3: allowlist, keys (two at once, rotated by SIGHUP and ctl reload), capture ids, HEPv1/v2"
    local keys=$CASE_DIR/keys yaml=$CASE_DIR/router.yaml u u6
    printf '# keys of udp_sources\n\n%s\n' "$KEY_FILE" >"$keys"
    chmod 0600 "$keys"
    it_start_sink homer
    udp_body() {
        cat <<EOF
control: { socket: "$CASE_DIR/ctl.sock" }
metrics: { listen: "127.0.0.1:0" }
sources:
  allow: [ "127.0.0.1/32", "127.0.0.3/32", "::1/128" ]
  auth_keys: [ "$1" ]
  auth_keys_file: "$keys"
  capture_ids:
    "127.0.0.3/32": [ 2001, 2002 ]
destinations:
  homer: { targets: [ "${SINK_ADDR[homer]}" ] }
default: [ homer ]
EOF
    }
    router_yaml "$yaml" '[ "udp:127.0.0.1:0", "udp:[::1]:0" ]' "$(udp_body "$KEY_OLD")"
    start_router router "$yaml"
    u=$(listener udp 1) || exit 1
    u6=$(listener udp 2) || exit 1

    it_note "generation 1: keys $KEY_OLD (auth_keys) and $KEY_FILE (auth_keys_file)"
    # 127.0.0.1: allowed, in no capture_ids CIDR; 127.0.0.2: not allowed,
    # whatever it carries (the allowlist is checked first); 127.0.0.3:
    # allowed, may claim capture ids 2001 and 2002 only (checked after the key)
    send 127.0.0.1 "$u" old:4:key="$KEY_OLD" file:3:key="$KEY_FILE" wrong:2:key="$KEY_WRONG" \
        prefix:1:key="${KEY_OLD%?}" longer:1:key="${KEY_OLD}0" comment:1:key="# keys of udp_sources" \
        nokey:2 v2:2:v2 v1:1:v1 anycid:2:key="$KEY_OLD":cid=9 \
        @127.0.0.2 na_key:3:key="$KEY_OLD" na_nokey:1 \
        @127.0.0.3 cid_ok:2:key="$KEY_OLD":cid=2001 cid_ok2:1:key="$KEY_FILE":cid=2002 \
        cid_bad:2:key="$KEY_OLD":cid=1 cid_none:1:key="$KEY_OLD":nocid cid_wrongkey:1:key="$KEY_WRONG":cid=7 \
        cid_nokey:1:cid=2001
    # ::1: allowed by ::1/128
    send ::1 "$u6" v6:2:key="$KEY_OLD" v6_nokey:1
    arrive homer 14

    it_note "SIGHUP after the keys file changed to $KEY_NEXT: $KEY_FILE is refused, $KEY_NEXT accepted"
    printf '# rotated\n%s\n\n' "$KEY_NEXT" >"$keys"
    kill -HUP "$ROUTER_PID"
    it_wait_until 5 reloaded 2 || it_case_fail "no \"configuration reloaded: generation 2\" after SIGHUP"
    send 127.0.0.1 "$u" hup_file:2:key="$KEY_FILE" hup_next:3:key="$KEY_NEXT" hup_old:1:key="$KEY_OLD"
    arrive homer 18

    it_note "ctl reload after auth_keys changed to $KEY_ROT: $KEY_OLD is refused, $KEY_ROT accepted"
    router_yaml "$yaml" '[ "udp:127.0.0.1:0", "udp:[::1]:0" ]' "$(udp_body "$KEY_ROT")"
    ctl reload || it_case_fail "ctl reload: $(cat "$CASE_DIR/ctl.out" "$CASE_DIR/ctl.err")"
    cp "$CASE_DIR/ctl.out" "$CASE_DIR/reload.json"
    grep -q '"generation":3' "$CASE_DIR/reload.json" || it_case_fail "ctl reload: $(cat "$CASE_DIR/reload.json")"
    send 127.0.0.1 "$u" ctl_old:2:key="$KEY_OLD" ctl_rot:2:key="$KEY_ROT" ctl_next:1:key="$KEY_NEXT"
    arrive homer 21

    # shellcheck disable=SC2046  # (one argument per counter)
    stats_until $(refused 4 7 10 3) tcp_not_allowed=0 destinations/homer/packets=21
    get_metrics
    stop_router
    stop_sinks
    # shellcheck disable=SC2046
    check delivered "$CASE_DIR/homer.json" old=4 file=3 wrong=0 prefix=0 longer=0 comment=0 nokey=0 v2=0 v1=0 anycid=2 \
        na_key=0 na_nokey=0 cid_ok=2 cid_ok2=1 cid_bad=0 cid_none=0 cid_wrongkey=0 cid_nokey=0 \
        v6=2 v6_nokey=0 hup_file=0 hup_next=3 hup_old=1 ctl_old=0 ctl_rot=2 ctl_next=1 \
        + metrics "$CASE_DIR/metrics.txt" $(refused_metrics 4 7 10 3) heprouter_tcp_connections_not_allowed_total=0 \
        + logstats "$CASE_DIR/router.err" $(refused 4 7 10 3) tcp_not_allowed=0 \
        + log "$CASE_DIR/router.err" --interval-s "$LOG_INTERVAL_S" --span-s "$ROUTER_SPAN_S" \
        --from not_allowed=127.0.0.2 --from capture_id_not_allowed=127.0.0.3 --from missing_auth_key=127.0.0.1 \
        not_allowed=4 missing_auth_key=7 bad_auth_key=10 capture_id_not_allowed=3 \
        + $(no_keys "$CASE_DIR/router.err" "$CASE_DIR/reload.json" "$CASE_DIR/stats.json" "$CASE_DIR/metrics.txt") ||
        it_case_fail "deliveries, /metrics, log lines or keys differ (FAIL lines above)"
    figures "$(sent_total)" "$(it_sink_lines homer)" 4 7 10 3
    it_case_end
}

# ---------------------------------------------------------------- tcp_sources

case_tcp_sources() {
    it_case_begin tcp_sources "TCP: a source not allowed is closed at accept, bad keys refused on a connection that stays open"
    local t yaml=$CASE_DIR/router.yaml
    it_start_sink homer
    router_yaml "$yaml" '[ "tcp:127.0.0.1:0" ]' "control: { socket: \"$CASE_DIR/ctl.sock\" }
metrics: { listen: \"127.0.0.1:0\" }
sources:
  allow: [ \"127.0.0.1/32\", \"127.0.0.3/32\" ]
  auth_keys: [ \"$KEY_OLD\" ]
  capture_ids: { \"127.0.0.3/32\": [ 2001 ] }
destinations:
  homer: { targets: [ \"${SINK_ADDR[homer]}\" ] }
default: [ homer ]"
    start_router router "$yaml"
    t=$(listener tcp) || exit 1

    # two connections from a source not allowed, 3 good packets on each
    send 127.0.0.2 --wait-close "$CLOSE_WAIT_S" --connections 2 "$t" refused:3:key="$KEY_OLD"
    echo "    2 connections from 127.0.0.2: closed by heprouter: $(send_field closed_by_peer), the later after $(send_field closed_after) s"
    [ "$(send_field closed_by_peer)" = true ] ||
        it_case_fail "a connection from 127.0.0.2 (not allowed) was not closed within $CLOSE_WAIT_S s"
    # one connection, good and bad packets mixed; it must stay open
    send 127.0.0.1 --wait-close 0.5 "$t" good1:3:key="$KEY_OLD" bad:2:key="$KEY_WRONG" good2:2:key="$KEY_OLD" \
        nokey:1 good3:1:key="$KEY_OLD"
    echo "    mixed connection from $(send_field local): sent $(send_field sent), closed by heprouter: $(send_field closed_by_peer)"
    [ "$(send_field closed_by_peer)" = false ] || it_case_fail "heprouter closed an allowed connection that sent bad keys"
    send 127.0.0.3 "$t" cid_ok:2:key="$KEY_OLD":cid=2001 cid_bad:1:key="$KEY_OLD":cid=2002
    arrive homer 8
    # shellcheck disable=SC2046
    stats_until $(refused 0 1 2 1) tcp_not_allowed=2 destinations/homer/packets=8
    get_metrics
    stop_router
    stop_sinks
    # shellcheck disable=SC2046
    check delivered "$CASE_DIR/homer.json" refused=0 good1=3 bad=0 good2=2 nokey=0 good3=1 \
        cid_ok=2 cid_bad=0 \
        + metrics "$CASE_DIR/metrics.txt" $(refused_metrics 0 1 2 1) heprouter_tcp_connections_not_allowed_total=2 \
        + logstats "$CASE_DIR/router.err" $(refused 0 1 2 1) tcp_not_allowed=2 \
        + log "$CASE_DIR/router.err" --interval-s "$LOG_INTERVAL_S" --span-s "$ROUTER_SPAN_S" \
        --from bad_auth_key=127.0.0.1 --from capture_id_not_allowed=127.0.0.3 \
        missing_auth_key=1 bad_auth_key=2 capture_id_not_allowed=1 \
        + log "$CASE_DIR/router.err" --tcp --interval-s "$LOG_INTERVAL_S" --span-s "$ROUTER_SPAN_S" \
        --from not_allowed=127.0.0.2 not_allowed=2 \
        + $(no_keys "$CASE_DIR/router.err" "$CASE_DIR/stats.json" "$CASE_DIR/metrics.txt") ||
        it_case_fail "deliveries, /metrics, log lines or keys differ (FAIL lines above)"
    figures "$(sent_total)" "$(it_sink_lines homer)" 0 1 2 1 2
    it_case_end
}

# ---------------------------------------------------------------- listener_override

case_listener_override() {
    it_case_begin listener_override "a listener's own sources replace the top-level section"
    local plain own own_tcp yaml=$CASE_DIR/router.yaml
    it_start_sink homer
    router_yaml "$yaml" '
  - "udp:127.0.0.1:0"
  - address: "udp:127.0.0.5:0"
    sources:
      allow: [ "127.0.0.2/32" ]
  - address: "tcp:127.0.0.1:0"
    sources:
      allow: [ "127.0.0.2/32" ]' "control: { socket: \"$CASE_DIR/ctl.sock\" }
sources:
  allow: [ \"127.0.0.3/32\" ]
  auth_keys: [ \"$KEY_OLD\" ]
destinations:
  homer: { targets: [ \"${SINK_ADDR[homer]}\" ] }
default: [ homer ]"
    start_router router "$yaml"
    if [ "$(grep -c '^listening udp:' "$ROUTER_READY")" != 2 ] || [ "$(grep -c '^listening tcp:' "$ROUTER_READY")" != 1 ]; then
        it_fail "expected 2 UDP and 1 TCP listeners in $ROUTER_READY: $(cat "$ROUTER_READY")"
    fi
    plain=$(listener udp 1) || exit 1
    own=$(listener udp 2) || exit 1
    own_tcp=$(listener tcp 1) || exit 1
    echo "    plain (top-level sources) $plain, own sources $own and $own_tcp"

    # 127.0.0.2: refused by the top level, allowed (and no key needed) by the
    # listeners' own; 127.0.0.3: allowed by the top level (with its key),
    # refused by the listeners' own
    send 127.0.0.2 "$plain" p2:3:key="$KEY_OLD" @127.0.0.3 p3:2:key="$KEY_OLD" p3_nokey:1
    send 127.0.0.2 "$own" o2:3 @127.0.0.3 o3:2:key="$KEY_OLD"
    send 127.0.0.2 "$own_tcp" t2:2
    send 127.0.0.3 --wait-close "$CLOSE_WAIT_S" "$own_tcp" t3:2:key="$KEY_OLD"
    [ "$(send_field closed_by_peer)" = true ] ||
        it_case_fail "a connection from 127.0.0.3 to the TCP listener allowing only 127.0.0.2 was not closed"
    arrive homer 7
    # shellcheck disable=SC2046
    stats_until $(refused 5 1 0 0) tcp_not_allowed=1 destinations/homer/packets=7
    stop_router
    stop_sinks
    check delivered "$CASE_DIR/homer.json" p2=0 o2=3 t2=2 p3=2 p3_nokey=0 o3=0 t3=0 ||
        it_case_fail "the sink got other packets"
    figures "$(sent_total)" "$(it_sink_lines homer)" 5 1 0 0 1
    it_case_end
}

# ---------------------------------------------------------------- strip_auth_key

case_strip_auth_key() {
    it_case_begin strip_auth_key "strip_auth_key: true, the key kept, auth_key: X"
    local u yaml=$CASE_DIR/router.yaml s
    for s in stripped kept rewritten; do it_start_sink "$s"; done
    router_yaml "$yaml" '[ "udp:127.0.0.1:0" ]' "sources:
  auth_keys: [ \"$KEY_OLD\" ]
destinations:
  stripped: { targets: [ \"${SINK_ADDR[stripped]}\" ], strip_auth_key: true }
  kept: { targets: [ \"${SINK_ADDR[kept]}\" ] }
  rewritten: { targets: [ \"${SINK_ADDR[rewritten]}\" ], auth_key: \"$DEST_KEY\" }
default: [ stripped, kept, rewritten ]"
    start_router router "$yaml"
    u=$(listener udp) || exit 1
    send 127.0.0.1 "$u" keyed:3:key="$KEY_OLD" keyed_cid:2:key="$KEY_OLD":cid=2001
    for s in stripped kept rewritten; do arrive "$s" 5; done
    stop_router
    stop_sinks
    # shellcheck disable=SC2046
    check delivered "$CASE_DIR/stripped.json" keyed=3 keyed_cid=2 \
        + delivered "$CASE_DIR/kept.json" keyed=3 keyed_cid=2 \
        + delivered "$CASE_DIR/rewritten.json" keyed=3 keyed_cid=2 \
        + keys "$CASE_DIR/stripped.json" keyed=- keyed_cid=- \
        + strip "$CASE_DIR/kept.json" "$CASE_DIR/stripped.json" keyed keyed_cid \
        + keys "$CASE_DIR/kept.json" keyed="$KEY_OLD" keyed_cid="$KEY_OLD" \
        + keys "$CASE_DIR/rewritten.json" keyed="$DEST_KEY" keyed_cid="$DEST_KEY" \
        + $(no_keys "$CASE_DIR/router.err") ||
        it_case_fail "what the destinations got differs (FAIL lines above)"
    figures "$(sent_total)" "$(($(it_sink_lines stripped) + $(it_sink_lines kept) + $(it_sink_lines rewritten))) (3 destinations)" 0 0 0 0
    it_case_end
}

# ---------------------------------------------------------------- privileges

# ids_of PID: "uid=U gid=G groups=..." of every thread of PID, one line
# each, with CapEff; from /proc/PID/task/*/status.
ids_of() {
    local st
    for st in /proc/"$1"/task/*/status; do
        awk '/^Uid:/ { u = $2 "/" $3 "/" $4 "/" $5 } /^Gid:/ { g = $2 "/" $3 "/" $4 "/" $5 }
             /^Groups:/ { $1 = ""; gr = $0 } /^CapEff:/ { c = $2 }
             END { printf "uid=%s gid=%s groups=[%s ] capeff=%s\n", u, g, gr, c }' "$st"
    done
}

# runs_as NAME UID GID: every thread of the running router has uid and gid
# UID and GID (real, effective, saved, fs) and, unless UID is 0, no root
# group and no capability; an OPTIONS call (2 packets) over each listener
# reaches the sink.
runs_as() {
    local name=$1 uid=$2 gid=$3 want_caps bad
    ids_of "$ROUTER_PID" >"$CASE_DIR/$name.ids"
    echo "    $name: $(sort -u "$CASE_DIR/$name.ids" | tr '\n' ' ')($(wc -l <"$CASE_DIR/$name.ids") threads)"
    bad=$(grep -cv "^uid=$uid/$uid/$uid/$uid gid=$gid/$gid/$gid/$gid " "$CASE_DIR/$name.ids")
    ((bad == 0)) || it_case_fail "$name: $bad thread(s) not uid $uid gid $gid"
    if [ "$uid" != 0 ]; then
        want_caps=0000000000000000
        grep -Eq 'groups=\[.* 0 .*\]' "$CASE_DIR/$name.ids" && it_case_fail "$name: still in group 0"
        grep -qv "capeff=$want_caps" "$CASE_DIR/$name.ids" && it_case_fail "$name: a thread kept capabilities"
    fi
    local before proto got
    before=$(it_sink_lines homer)
    for proto in udp tcp; do
        it_run 10 "$HEPGEN" -q -d "$(listener "$proto")" --mix options=100 -n 2 --prefix "$name$proto" \
            >>"$CASE_DIR/hepgen.out" || it_case_fail "$name: hepgen over $proto failed"
    done
    arrive homer $((before + 4))
    for proto in udp tcp; do
        got=$(grep -c "\"call_id\":\"$name$proto-" "$CASE_DIR/homer.json")
        echo "    $name: over $proto 2 sent, $got delivered"
        [ "$got" = 2 ] || it_case_fail "$name: $got of 2 packets sent over $proto delivered"
    done
}

case_privileges() {
    it_case_begin privileges "root without user or allow_root refused; -u nobody, user:, allow_root: true; -t and the keys file's mode"
    local listen='[ "udp:127.0.0.1:0", "tcp:127.0.0.1:0" ]' parts=0 s
    # heprouter -t, once per mode of the keys file, all at once (and while
    # the rest of the case runs); their verdicts at the end
    local modes=(0644 0602 0600 0640) pids=() rc warned i
    for s in "${modes[@]}"; do
        printf '%s\n' "$KEY_OLD" >"$CASE_DIR/keys$s"
        chmod "$s" "$CASE_DIR/keys$s"
        router_yaml "$CASE_DIR/t$s.yaml" '[ "udp:127.0.0.1:0" ]' "sources: { auth_keys_file: \"$CASE_DIR/keys$s\" }
destinations:
  homer: { targets: [ \"udp:127.0.0.1:9\" ] }
default: [ homer ]"
        it_start "$CASE/t$s" timeout -k 2 10 "$HEPROUTER" -t -c "$CASE_DIR/t$s.yaml"
        pids+=("$IT_PID")
    done
    if [ "$(id -u)" = 0 ]; then
        # heprouter may write and remove its ready file after the drop
        chmod 0711 "$IT_TMP"
        chmod 0777 "$CASE_DIR"
        it_start_sink homer
        local dest="destinations:
  homer: { targets: [ \"${SINK_ADDR[homer]}\" ] }
default: [ homer ]"

        # every heprouter of this part starts at once (an ASan build takes
        # a second or more to start on a busy machine); then each is checked
        router_yaml "$CASE_DIR/root.yaml" "$listen" "$dest" noroot
        router_yaml "$CASE_DIR/drop.yaml" "$listen" "$dest
user: daemon" noroot
        router_yaml "$CASE_DIR/user.yaml" "$listen" "$dest
user: nobody
group: daemon" noroot
        router_yaml "$CASE_DIR/allow.yaml" "$listen" "$dest"
        launch_router root "$CASE_DIR/root.yaml"
        launch_router drop "$CASE_DIR/drop.yaml" -u nobody
        launch_router user "$CASE_DIR/user.yaml"
        launch_router allow "$CASE_DIR/allow.yaml"

        it_note "root, no user, no allow_root: refused at start"
        local root_pid=${LAUNCHED[root]}
        if ! it_wait_until 10 it_exited "$root_pid"; then
            it_case_fail "running as root without user/allow_root: still running after 10 s"
        fi
        it_stop "$root_pid"
        echo "    exit status $IT_STATUS: $(grep -m 1 -i 'allow_root' "$CASE_DIR/root.err")"
        [ "$IT_STATUS" = 1 ] || it_case_fail "running as root without user/allow_root: exit $IT_STATUS, expected 1"
        grep -q 'allow_root' "$CASE_DIR/root.err" || it_case_fail "the error does not name allow_root: $(tail -n 3 "$CASE_DIR/root.err")"
        grep -q -- '-u' "$CASE_DIR/root.err" || it_case_fail "the error does not name -u: $(tail -n 3 "$CASE_DIR/root.err")"
        [ ! -e "$CASE_DIR/root.ready" ] || it_case_fail "refused at start, yet it wrote its ready file"

        it_note "-u nobody over user: daemon"
        await_router drop
        runs_as drop 65534 65534
        echo "    ready file written by $(stat -c %U "$ROUTER_READY")"
        kill -TERM "$ROUTER_PID"      # (its exit is checked below)

        it_note "user: nobody, group: daemon"
        await_router user
        runs_as user 65534 "$(getent group daemon | cut -d: -f3)"
        kill -TERM "$ROUTER_PID"      # (its exit is checked below)

        it_note "allow_root: true"
        await_router allow
        runs_as allow 0 0
        kill -TERM "$ROUTER_PID"      # (its exit is checked below)
        for s in drop user allow; do
            it_wait_exit "${LAUNCHED[$s]}" 10
            ((IT_STATUS == 0)) || it_case_fail "heprouter ($s) exited with status $IT_STATUS after SIGTERM"
        done
        ROUTER_PID=""
        parts=$((parts + 4))
    else
        printf '[%s] case privileges: NOT ROOT (uid %s): the refusal of root, -u, user: and allow_root cannot be tested; only -t runs\n' \
            "$IT_NAME" "$(id -u)"
    fi

    it_note "-t: an auth_keys_file others may read or write is warned about"
    for i in "${!modes[@]}"; do
        s=${modes[$i]}
        it_wait_exit "${pids[$i]}" 15
        rc=$IT_STATUS
        cat "$CASE_DIR/t$s.out" "$CASE_DIR/t$s.err" >"$CASE_DIR/t$s.all"
        warned=no
        grep -i 'warn' "$CASE_DIR/t$s.all" | grep -qF "$CASE_DIR/keys$s" && warned=yes
        echo "    mode $s: exit $rc, warned: $warned$(grep -i 'warn' "$CASE_DIR/t$s.all" | grep -F "keys$s" | head -n 1 | sed 's/^/: /')"
        ((rc == 0)) || it_case_fail "-t with the keys file mode $s: exit $rc: $(tail -n 3 "$CASE_DIR/t$s.all")"
        case $s in
        0644 | 0602) [ "$warned" = yes ] || it_case_fail "-t: no warning for an auth_keys_file of mode $s" ;;
        *) [ "$warned" = no ] || it_case_fail "-t: a warning for an auth_keys_file of mode $s" ;;
        esac
    done
    # shellcheck disable=SC2046
    check $(no_keys "$CASE_DIR"/t0*.all) || it_case_fail "-t printed a key"
    parts=$((parts + 1))
    ((parts > 0)) || it_case_fail "no part of this case could run"
    stop_sinks
    it_case_end "$CASE_DIR"/*.err
}

start_driver
it_run_cases "$@"
