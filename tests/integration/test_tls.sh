#!/usr/bin/env bash
# HEP over TLS, issue 19: tls: listeners and tls: targets against Python
# ssl peers (tls/tlspeer.py) and the openssl command, on 127.0.0.1 only;
# certificates from tests/tls/mkcerts.sh (a test CA, server, clients, an
# expired one, another name, an untrusted CA); every process stopped by PID;
# the whole test bounded by TIME_LIMIT (about 60 s on a busy 2-core
# machine).  Frames are HEPv3 SIP MESSAGEs of varying size (every 10th about
# 30,000 bytes: one frame spans several TLS records), compared by SHA-1 at
# each receiver.  Counters are read from heprouter's SIGUSR1 stats line
# (and /metrics once).
#
#   inbound          a tls: listener (client certificate optional): a Python
#                    client with a certificate (TLS 1.3; 300 frames, all
#                    routed while its connection is still open), one
#                    without (TLS 1.2) and `openssl s_client` piping
#                    frames: a UDP and a TCP sink each get every frame,
#                    byte for byte, in order; tls_handshakes counted in the
#                    stats line and /metrics
#   outbound         tls: targets: `openssl s_server -Verify 1` (requires
#                    heprouter's client certificate; server_name localhost),
#                    a Python server checking the client certificate's
#                    subject (no server_name: the target's IP address is
#                    checked against the SAN), and verify: false to a server
#                    whose name does not match: every frame arrives intact
#   capture_ids      require_client_cert with client_capture_ids, on two
#                    listeners (a common name; a whole RFC 2253 subject):
#                    kamailio-a may claim 2001, its 2002 frames are refused
#                    (refused.capture_id_not_allowed) and the connection
#                    goes on; a subject not listed may claim nothing
#   refused_inbound  client certificate from an untrusted CA and expired
#                    (tls_failed_certificate), none sent while required
#                    (tls_failed_no_certificate), plaintext HEP3, TLS 1.2
#                    against min_version 1.3 and half a ClientHello then
#                    a close (tls_failed_protocol), two
#                    stalled handshakes (nothing sent; half a ClientHello)
#                    closed after limits.tls_handshake_timeout 1s
#                    (tls_failed_timeout); each logged; nothing of theirs
#                    routed; meanwhile UDP packets on another listener
#                    arrive promptly (PROMPT_MS); then a good client works
#   refused_outbound targets presenting another name, an expired
#                    certificate, a chain from an untrusted CA, one that
#                    never answers the handshake, a numeric target (no
#                    server_name) whose certificate lacks its IP, and one
#                    verified against the system's CA store (no ca):
#                    tls_failures grows, nothing is delivered to them, UDP
#                    routing does not wait; then each target but the last
#                    comes back with the right certificate on the same
#                    port: heprouter reconnects and delivers; and a
#                    destination whose ca file held the wrong CA connects
#                    once the file is replaced and heprouter gets SIGHUP
#   reload           SIGHUP after the listener's certificate and key files
#                    are replaced: a new connection sees the new certificate
#                    (Python and openssl s_client), a connection opened
#                    before keeps working; a reload naming a missing key
#                    fails as a whole (heprouter -t names FILE:LINE:COL;
#                    SIGHUP: logged; `heprouter ctl reload`: answered) and
#                    the running one stays; so does a reload with the
#                    right names but a certificate file that is garbage
#   spool            a tls: target with a spool: down, packets spooled; up,
#                    replayed over TLS, all of them, in order; then the
#                    server goes away while the connection is idle: the
#                    disconnect is noticed, what follows is spooled and
#                    replayed when it is back
#   backpressure     a tls: target stops reading (SIGSTOP) while 3,000
#                    frames (11 MB) come: the socket fills, heprouter queues
#                    the rest (partial TLS writes retried), then the target
#                    reads again: every frame arrives once, in order, on the
#                    same connection, nothing dropped
#   limits           the TCP limits on a tls: listener: tcp_max_connections
#                    2 (a third connection refused), tcp_idle_timeout (idle
#                    connections closed), tcp_max_frame (a larger frame
#                    closes the connection; the frames before it arrive)
#   config           heprouter -t: a full tls configuration passes; missing
#                    cert, a non-PEM certificate, a key not matching, no ca
#                    with require_client_cert, client_capture_ids without
#                    it, min_version 1.1, a missing destination ca, a cert
#                    without key: each refused with FILE:LINE:COL
#
#   BUILD_DIR=build bash tests/integration/test_tls.sh [CASE...]
#
# Environment: BUILD_DIR (src/heprouter, tools/hepdump), IT_KEEP_TMP=1
# keeps the scratch directory.  Needs python3 (ssl), openssl, curl.
# shellcheck disable=SC2119  # it_usr1_stats signals ROUTER_PID by default
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

PEER=(python3 "$HERE/tls/tlspeer.py")
TIME_LIMIT=180              # the whole test (about 60 s; 100 s under ASan on a busy machine)
ARRIVE_TIMEOUT=10           # seconds for frames to arrive
HANDSHAKE_TIMEOUT_S=1       # limits.tls_handshake_timeout
PROMPT_MS=500               # refused_*: UDP routing delay bound while bad peers misbehave
IDLE_S=2                    # limits: tcp_idle_timeout
IN_FRAMES=300               # inbound: frames of the first client (30 of them about 30,000 bytes)
BP_FRAMES=3000              # backpressure: frames (about 11 MB) sent while the target is stopped
LIMITS="tls_handshake_timeout: ${HANDSHAKE_TIMEOUT_S}s, reconnect_min: 50ms, reconnect_max: 200ms, connect_timeout: 500ms"

it_init "$TIME_LIMIT"
it_require_cmd python3 openssl curl ss
HEPROUTER=$(it_bin src/heprouter) || exit 1
it_bin tools/hepdump >/dev/null || exit 1
python3 -c 'import ssl' 2>/dev/null || it_cannot_run "python3 has no ssl module"

IT_CASES=(inbound outbound capture_ids refused_inbound refused_outbound reload spool backpressure limits config)

CERTS=$IT_TMP/certs
bash "$IT_SRCDIR/tests/tls/mkcerts.sh" "$CERTS" >/dev/null || it_fail "tests/tls/mkcerts.sh failed"
CA=$CERTS/ca.pem

# ---------------------------------------------------------------- helpers

# tls_router BODY: heprouter on $CASE_DIR/router.yaml = BODY (with its own
# listen:) plus allow_root when root; waits for the ready file; sets
# ROUTER_PID and ROUTER_READY.
# udp_head: the head of the configuration of the cases that feed heprouter
# over UDP only (one listener, no wait for orphans, a log.interval of 1 s)
udp_head() {
    printf '%s\n' 'listen: [ "udp:127.0.0.1:0" ]' 'workers: 1' 'orphans: { wait_ms: 0 }' 'log: { interval: 1s }'
}

tls_router() {
    {
        printf '# written by %s.sh, case %s\n' "$IT_NAME" "$CASE"
        grep -Eq '^(allow_root|user):' <<<"$1" || it_root_line
        printf '%s\n' "$1"
    } >"$CASE_DIR/router.yaml"
    rm -f "$CASE_DIR/router.ready"
    it_start "$CASE/router" "$HEPROUTER" -c "$CASE_DIR/router.yaml" --ready-file "$CASE_DIR/router.ready"
    ROUTER_PID=$IT_PID
    it_wait_until "$IT_READY_TIMEOUT" it_ready_or_dead "$CASE_DIR/router.ready" "$ROUTER_PID" || true
    if [ ! -s "$CASE_DIR/router.ready" ]; then
        it_exited "$ROUTER_PID" && it_fail "case $CASE: heprouter exited at startup: $(tail -n 5 "$CASE_DIR/router.err")"
        it_fail "case $CASE: heprouter wrote no ready file within ${IT_READY_TIMEOUT}s"
    fi
    ROUTER_READY=$CASE_DIR/router.ready
}

# raddr PROTO [N]: the Nth listener of PROTO in heprouter's ready file, host:port.
raddr() {
    local a
    a=$(it_listen_addr "$ROUTER_READY" "$@") || exit 1
    printf '%s\n' "${a#*:}"
}

# server_tls [MORE]: a listener's tls: mapping: server.pem, its key, the test CA, and MORE keys.
server_tls() {
    printf '{ cert: "%s", key: "%s", ca: "%s"%s }' "$CERTS/server.pem" "$CERTS/server.key" "$CA" "${1:+, $1}"
}

# server_bg NAME [--port P] [tlspeer server options]: starts a Python TLS
# server ($CASE_DIR/NAME.frames: what it saw); SRV_PID[NAME] is its PID.
# server_wait NAME...: waits until each listens; sets SRV_PORT[NAME].
# (Several are started first and waited for together: a Python start takes
# a second or more on a busy machine.)
declare -A SRV_PID=() SRV_PORT=()
server_bg() {
    local name=$1
    shift
    rm -f "$CASE_DIR/$name.ready"
    it_start "$CASE/$name" "${PEER[@]}" server --ready "$CASE_DIR/$name.ready" --out "$CASE_DIR/$name.frames" "$@"
    SRV_PID[$name]=$IT_PID
}

server_wait() {
    local name
    for name in "$@"; do
        it_wait_until 15 it_ready_or_dead "$CASE_DIR/$name.ready" "${SRV_PID[$name]}" || true
        [ -s "$CASE_DIR/$name.ready" ] || it_fail "case $CASE: TLS server $name did not start: $(tail -n 3 "$IT_TMP/$CASE/$name.err")"
        SRV_PORT[$name]=$(it_listen_port "$CASE_DIR/$name.ready" tls) || exit 1
    done
}

# good_bg NAME [--port P] [options]: server_bg with server.pem, client certificates verified when sent.
good_bg() {
    local name=$1
    shift
    server_bg "$name" --cert "$CERTS/server.pem" --key "$CERTS/server.key" --ca "$CA" "$@"
}

# client NAME HOST:PORT [tlspeer client options]: a TLS client in the
# foreground; its JSON answer in $CASE_DIR/NAME.json, shown indented.
client() {
    local name=$1
    shift
    it_run 30 "${PEER[@]}" client "$@" >"$CASE_DIR/$name.json" 2>"$CASE_DIR/$name.err" ||
        it_case_fail "client $name failed: $(tail -n 2 "$CASE_DIR/$name.err")"
    echo "    $name: $(tail -n 1 "$CASE_DIR/$name.json")"
}

# peer_bg NAME SUBCOMMAND ARGS...: a tlspeer.py client, plain or stall in
# the background (its answer in $CASE_DIR/NAME.out); peers_wait NAME...:
# waits for each to end (at most 20 s) and shows its answer.  Independent
# peers run at once: a Python start takes a second on a busy machine.
declare -A PEER_PID=()
peer_bg() {
    local name=$1
    shift
    it_start "$CASE/$name" "${PEER[@]}" "$@"
    PEER_PID[$name]=$IT_PID
}

peers_wait() {
    local name
    for name in "$@"; do
        it_wait_exit "${PEER_PID[$name]}" 20
        it_forget "${PEER_PID[$name]}"
        echo "    $name: $(tail -n 1 "$CASE_DIR/$name.out")"
        ((IT_STATUS == 0)) || it_case_fail "$name failed: $(tail -n 2 "$CASE_DIR/$name.err")"
    done
}

# field FILE KEY: a value of the last line of FILE, a flat JSON object as
# tlspeer.py prints it: a string without its quotes, a number, null, or an
# object of numbers as printed ({"good": 5}).  (sed, not python: a Python
# start costs a second on a busy machine.)
field() {
    local v
    v=$(tail -n 1 "$1" | sed -nE 's/.*"'"$2"'": ("([^"\\]|\\.)*"|\{[^}]*\}|[^,}]*).*/\1/p')
    v=${v#\"}
    printf '%s\n' "${v%\"}"
}

# expect_field FILE KEY VALUE WHAT
expect_field() {
    local got
    got=$(field "$1" "$2")
    [ "$got" = "$3" ] || it_case_fail "$4: $2 is '$got', expected '$3'"
}

# closed_within FILE MIN MAX WHAT: closed_after of FILE's answer is a number in [MIN, MAX].
closed_within() {
    local c
    c=$(field "$1" closed_after)
    if [ "$c" = null ] || ! awk -v c="$c" -v a="$2" -v b="$3" 'BEGIN { exit !(c >= a && c <= b) }'; then
        it_case_fail "$4: closed after '$c' s, expected between $2 and $3 s"
    fi
}

# check MANIFEST@KIND:FILE[@OPTION...]...: exactly the frames of each
# MANIFEST arrived (tlspeer.py check; one Python for them all).
check() {
    "${PEER[@]}" check "$@" >"$CASE_DIR/check.out" 2>&1
    local rc=$?
    sed 's/^/    /' "$CASE_DIR/check.out"
    ((rc == 0)) || it_case_fail "frames missing, extra or out of order (FAIL lines above)"
}

# frames_in FILE: frames a tlspeer server saw; conns_in FILE: handshakes it completed.
frames_in() { local n; n=$(grep -c '"ev": "frame"' "$1" 2>/dev/null); echo "${n:-0}"; }
conns_in() { local n; n=$(grep -c '"ev": "conn"' "$1" 2>/dev/null); echo "${n:-0}"; }
frames_at_least() { (($(frames_in "$1") >= $2)); }

# logged REGEX: heprouter's log has a line matching REGEX (grep -E).
logged() { grep -Eq -- "$1" "$CASE_DIR/router.err"; }

expect_logged() {
    if logged "$1"; then
        echo "    logged: $(grep -E -- "$1" "$CASE_DIR/router.err" | head -n 1 | cut -c1-220)"
    else
        it_case_fail "no log line matches: $1"
    fi
}

# udp_send NAME ADDR SPEC: frames NAME-1.. to heprouter's UDP listener; manifest $CASE_DIR/NAME.man.
udp_send() {
    it_run 20 "${PEER[@]}" udp "udp:$2" --spec "$3" --prefix "$1" --manifest "$CASE_DIR/$1.man" >/dev/null ||
        it_case_fail "udp send $1 failed"
}

serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }

case_end() {
    it_stop_router
    it_stop_all
    it_case_end "$CASE_DIR/router.err"
}

# ---------------------------------------------------------------- inbound

case_inbound() {
    it_case_begin inbound "tls: listener, client certificate optional: Python clients and openssl s_client"
    local tls http
    it_start_sink udp udp
    it_start_sink tcp tcp
    tls_router "listen: [ \"udp:127.0.0.1:0\", \"tls:127.0.0.1:0\" ]
workers: 1
orphans: { wait_ms: 0 }
log: { interval: 1s }
limits: { $LIMITS }
metrics: { listen: \"127.0.0.1:0\" }
tls: $(server_tls "require_client_cert: false")
destinations:
  udp: { targets: [ \"${SINK_ADDR[udp]}\" ] }
  tcp: { targets: [ \"${SINK_ADDR[tcp]}\" ] }
default: [ udp, tcp ]"
    tls=$(raddr tls) || exit 1
    # the first client keeps its connection open until all its frames have
    # arrived: none may wait inside heprouter's TLS buffers for more input
    rm -f "$CASE_DIR/go"
    peer_bg with_cert client "$tls" --ca "$CA" --server-name localhost --cert "$CERTS/client.pem" \
        --key "$CERTS/client.key" --spec "$IN_FRAMES" --prefix in-a --manifest "$CASE_DIR/in-a.man" --then "$CASE_DIR/go"
    it_wait_until 20 grep -q '"phase": 1' "$CASE_DIR/with_cert.out" || it_case_fail "the first client did not send its frames"
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has udp "$IN_FRAMES" || true
    [ "$(it_sink_lines udp)" = "$IN_FRAMES" ] ||
        it_case_fail "$(it_sink_lines udp) of $IN_FRAMES frames arrived while their connection was open"
    touch "$CASE_DIR/go"
    peer_bg no_cert client "$tls" --ca "$CA" --server-name localhost --max-version 1.2 \
        --spec 12 --prefix in-b --manifest "$CASE_DIR/in-b.man"
    "${PEER[@]}" frames --spec 20 --prefix in-c --out "$CASE_DIR/in-c.bin" --manifest "$CASE_DIR/in-c.man"
    peers_wait with_cert no_cert
    expect_field "$CASE_DIR/with_cert.out" handshake ok "client with a certificate"
    expect_field "$CASE_DIR/with_cert.out" sent "$IN_FRAMES" "client with a certificate"
    expect_field "$CASE_DIR/with_cert.out" peer_cn localhost "client with a certificate"
    expect_field "$CASE_DIR/no_cert.out" handshake ok "client without a certificate (TLS 1.2)"
    expect_field "$CASE_DIR/no_cert.out" version TLSv1.2 "client without a certificate (TLS 1.2)"
    it_run 10 openssl s_client -connect "$tls" -CAfile "$CA" -verify_return_error -verify_hostname localhost \
        -cert "$CERTS/client.pem" -key "$CERTS/client.key" -quiet -no_ign_eof \
        <"$CASE_DIR/in-c.bin" >"$CASE_DIR/s_client.out" 2>"$CASE_DIR/s_client.err" ||
        it_case_fail "openssl s_client failed: $(tail -n 3 "$CASE_DIR/s_client.err")"
    local m
    local total=$((IN_FRAMES + 32))
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has udp "$total" || true
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has tcp "$total" || true
    sleep 0.2
    local specs=()
    for m in in-a in-b in-c; do
        specs+=("$CASE_DIR/$m.man@hepdump:$CASE_DIR/udp.json@unknown-ok" "$CASE_DIR/$m.man@hepdump:$CASE_DIR/tcp.json@unknown-ok")
    done
    check "${specs[@]}"
    [ "$(it_sink_lines udp)" = "$total" ] || it_case_fail "the UDP sink holds $(it_sink_lines udp) packets, expected $total"
    [ "$(it_sink_lines tcp)" = "$total" ] || it_case_fail "the TCP sink holds $(it_sink_lines tcp) packets, expected $total"
    it_stats_until 5 packets_in="$total" tls_handshakes=3 tls_failed_certificate=0 tls_failed_no_certificate=0 \
        tls_failed_protocol=0 tls_failed_timeout=0 destinations/udp/packets="$total" destinations/tcp/packets="$total"
    http=$(grep '^listening http:' "$ROUTER_READY" | sed 's/^listening http://')
    curl -s -m 5 "http://$http/metrics" >"$CASE_DIR/metrics.txt" || it_case_fail "GET /metrics failed"
    grep -E '^heprouter_tls_handshake' "$CASE_DIR/metrics.txt" | sed 's/^/    metrics: /'
    grep -Eq '^heprouter_tls_handshakes_total 3$' "$CASE_DIR/metrics.txt" ||
        it_case_fail "/metrics: no heprouter_tls_handshakes_total 3"
    grep -Eq '^heprouter_tls_handshake_failures_total\{reason="certificate"\} 0$' "$CASE_DIR/metrics.txt" ||
        it_case_fail "/metrics: no heprouter_tls_handshake_failures_total{reason=\"certificate\"} 0"
    case_end
}

# ---------------------------------------------------------------- outbound

case_outbound() {
    it_case_begin outbound "tls: targets: openssl s_server -Verify 1, a Python server checking the client certificate, verify: false"
    local sport py other udp n=30
    sport=$(it_free_port tcp) || exit 1
    # s_server ends when its stdin ends: a FIFO this shell holds open
    mkfifo "$CASE_DIR/s_server.in"
    exec 9<>"$CASE_DIR/s_server.in"
    # shellcheck disable=SC2016  # (the inner shell expands its arguments)
    it_start "$CASE/s_server" bash -c 'exec openssl s_server -accept "127.0.0.1:$1" -cert "$2/server.pem" \
        -key "$2/server.key" -CAfile "$2/ca.pem" -Verify 1 -verify_return_error -quiet <"$3"' \
        s_server "$sport" "$CERTS" "$CASE_DIR/s_server.in"
    local spid=$IT_PID
    it_wait_for_port tcp "$sport" 10
    good_bg py --require-cert
    server_bg other --cert "$CERTS/other.pem" --key "$CERTS/other.key"
    server_wait py other
    py=${SRV_PORT[py]}
    other=${SRV_PORT[other]}
    tls_router "$(udp_head)
limits: { $LIMITS }
destinations:
  a:
    targets: [ \"tls:127.0.0.1:$sport\" ]
    tls: { ca: \"$CA\", cert: \"$CERTS/client.pem\", key: \"$CERTS/client.key\", verify: true, server_name: localhost }
  b:
    targets: [ \"tls:127.0.0.1:$py\" ]
    tls: { ca: \"$CA\", cert: \"$CERTS/client-b.pem\", key: \"$CERTS/client-b.key\" }
  c:
    targets: [ \"tls:127.0.0.1:$other\" ]
    tls: { verify: false }
default: [ a, b, c ]"
    udp=$(raddr udp) || exit 1
    udp_send out "$udp" "$n"
    it_wait_until "$ARRIVE_TIMEOUT" frames_at_least "$CASE_DIR/py.frames" "$n" || true
    it_wait_until "$ARRIVE_TIMEOUT" frames_at_least "$CASE_DIR/other.frames" "$n" || true
    it_wait_until "$ARRIVE_TIMEOUT" it_stats_match "destinations/a/targets/tls:127.0.0.1:$sport/packets=$n" || true
    sleep 0.3
    check "$CASE_DIR/out.man@stream:$IT_TMP/$CASE/s_server.out" "$CASE_DIR/out.man@server:$CASE_DIR/py.frames" \
        "$CASE_DIR/out.man@server:$CASE_DIR/other.frames"
    grep -q '"ev": "conn".*"cn": "kamailio-b", "o": "heprouter tests"' "$CASE_DIR/py.frames" ||
        it_case_fail "the Python server did not see client-b's certificate: $(grep '"conn"' "$CASE_DIR/py.frames")"
    grep -q 'depth=0 O = heprouter tests, CN = kamailio-a' "$IT_TMP/$CASE/s_server.err" ||
        it_case_fail "openssl s_server did not see kamailio-a's certificate"
    local t
    it_stats_until 5 packets_in=$n \
        "destinations/a/targets/tls:127.0.0.1:$sport/packets=$n" "destinations/a/targets/tls:127.0.0.1:$sport/tls_failures=0" \
        "destinations/a/targets/tls:127.0.0.1:$sport/connects=1" \
        "destinations/b/targets/tls:127.0.0.1:$py/packets=$n" "destinations/b/targets/tls:127.0.0.1:$py/tls_failures=0" \
        "destinations/c/targets/tls:127.0.0.1:$other/packets=$n" "destinations/c/targets/tls:127.0.0.1:$other/tls_failures=0"
    for t in py other; do
        [ "$(conns_in "$CASE_DIR/$t.frames")" = 1 ] || it_case_fail "$t: $(conns_in "$CASE_DIR/$t.frames") connections, expected 1"
    done
    it_stop_router
    it_stop "$spid"
    it_forget "$spid"
    exec 9>&-
    case_end
}

# ---------------------------------------------------------------- capture_ids

case_capture_ids() {
    it_case_begin capture_ids "require_client_cert and client_capture_ids (a common name; a whole subject)"
    local l1 l2
    it_start_sink udp udp
    tls_router "listen:
  - \"tls:127.0.0.1:0\"
  - address: \"tls:127.0.0.2:0\"
    tls: $(server_tls "require_client_cert: true, client_capture_ids: { \"CN=kamailio-b,O=heprouter tests\": [ 2003 ] }")
workers: 1
orphans: { wait_ms: 0 }
log: { interval: 1s }
limits: { $LIMITS }
tls: $(server_tls "require_client_cert: true, client_capture_ids: { kamailio-a: [ 2001 ] }")
destinations:
  udp: { targets: [ \"${SINK_ADDR[udp]}\" ] }
default: [ udp ]"
    l1=$(grep -o '^listening tls:127\.0\.0\.1:[0-9]*$' "$ROUTER_READY" | sed 's/^listening tls://')
    l2=$(grep -o '^listening tls:127\.0\.0\.2:[0-9]*$' "$ROUTER_READY" | sed 's/^listening tls://')
    if [ -z "$l1" ] || [ -z "$l2" ]; then
        it_fail "case $CASE: no tls listener on 127.0.0.1 and 127.0.0.2 in $ROUTER_READY"
    fi
    local a=(--cert "$CERTS/client.pem" --key "$CERTS/client.key") b=(--cert "$CERTS/client-b.pem" --key "$CERTS/client-b.key")
    # kamailio-a on the first listener: 2001 passes, 2002 refused, the connection goes on
    local v=(--ca "$CA" --server-name localhost --wait-close 0.5)
    peer_bg a1 client "$l1" "${v[@]}" "${a[@]}" --spec 2001:10,2002:5,2001:5 --prefix a1 --manifest "$CASE_DIR/a1.man"
    # kamailio-b is not listed there: nothing passes
    peer_bg b1 client "$l1" "${v[@]}" "${b[@]}" --spec 2001:4,2003:2 --prefix b1 --manifest "$CASE_DIR/b1.man"
    # the second listener lists kamailio-b's whole subject with 2003, and not kamailio-a
    peer_bg b2 client "$l2" "${v[@]}" "${b[@]}" --spec 2003:4,2001:3 --prefix b2 --manifest "$CASE_DIR/b2.man"
    peer_bg a2 client "$l2" "${v[@]}" "${a[@]}" --spec 2001:2 --prefix a2 --manifest "$CASE_DIR/a2.man"
    peers_wait a1 b1 b2 a2
    local c
    for c in a1 b1 b2 a2; do
        expect_field "$CASE_DIR/$c.out" handshake ok "$c"
        expect_field "$CASE_DIR/$c.out" send_error null "$c"
        expect_field "$CASE_DIR/$c.out" closed_after null "$c: the connection after refused frames"
    done
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has udp 19 || true
    it_stats_until 5 packets_in=35 tls_handshakes=4 refused/capture_id_not_allowed=16 destinations/udp/packets=19
    local u=$CASE_DIR/udp.json
    check "$CASE_DIR/a1.man@hepdump:$u@cid=2001@unknown-ok" "$CASE_DIR/b2.man@hepdump:$u@cid=2003@unknown-ok" \
        "$CASE_DIR/b1.man@hepdump:$u@cid=0@unknown-ok" "$CASE_DIR/a2.man@hepdump:$u@cid=0@unknown-ok"
    [ "$(it_sink_lines udp)" = 19 ] || it_case_fail "the sink holds $(it_sink_lines udp) packets, expected 19 (15 of a1, 4 of b2)"
    expect_logged 'capture_id_not_allowed|capture id'
    case_end
}

# ---------------------------------------------------------------- refused_inbound

# probe_start NAME RECV_PORT ROUTER_UDP: the UDP prober in the background
# until $CASE_DIR/NAME.stop, once it has bound RECV_PORT (else what is
# routed there meanwhile is refused, and heprouter takes the target down
# for a while); sets PROBE_PID and PROBE_NAME.
probe_start() {
    PROBE_NAME=$1
    rm -f "$CASE_DIR/$1.stop" "$CASE_DIR/$1.ready"
    it_start "$CASE/$1" "${PEER[@]}" probe "udp:$3" --recv-port "$2" --until-file "$CASE_DIR/$1.stop" --max 30 \
        --ready "$CASE_DIR/$1.ready"
    PROBE_PID=$IT_PID
    it_wait_until 15 it_ready_or_dead "$CASE_DIR/$1.ready" "$PROBE_PID" || true
    [ -s "$CASE_DIR/$1.ready" ] || it_fail "case $CASE: the UDP probe did not start: $(tail -n 3 "$CASE_DIR/$1.err")"
}

# probe_end [OTHERS_JSON]: stops the prober and judges: every probe packet back within PROMPT_MS,
# and the other frames it got are OTHERS_JSON (default {}).
probe_end() {
    touch "$CASE_DIR/$PROBE_NAME.stop"
    it_wait_exit "$PROBE_PID" 10
    it_forget "$PROBE_PID"
    local f=$CASE_DIR/$PROBE_NAME.out sent got max others want=${1:-"{}"}
    echo "    $PROBE_NAME: $(cat "$f")"
    sent=$(field "$f" sent)
    got=$(field "$f" got)
    max=$(field "$f" max_ms)
    others=$(field "$f" others)
    [ "$sent" -gt 10 ] 2>/dev/null || it_case_fail "the UDP probe sent only '$sent' packets"
    [ "$sent" = "$got" ] || it_case_fail "UDP routing: $got of $sent probe packets came back"
    awk -v m="$max" -v b="$PROMPT_MS" 'BEGIN { exit !(m != "null" && m <= b) }' ||
        it_case_fail "UDP routing waited: the slowest probe packet took $max ms (bound $PROMPT_MS ms)"
    [ "$others" = "$want" ] || it_case_fail "frames routed at the probe: $others, expected $want"
}

case_refused_inbound() {
    it_case_begin refused_inbound "bad clients refused, counted and logged while UDP routing goes on"
    local probe_port tls udp
    probe_port=$(it_free_port udp) || exit 1
    tls_router "listen: [ \"udp:127.0.0.1:0\", \"tls:127.0.0.1:0\" ]
workers: 1
orphans: { wait_ms: 0 }
log: { interval: 1s }
limits: { $LIMITS }
tls: $(server_tls "require_client_cert: true, min_version: \"1.3\"")
destinations:
  probe: { targets: [ \"udp:127.0.0.1:$probe_port\" ] }
default: [ probe ]"
    tls=$(raddr tls) || exit 1
    udp=$(raddr udp) || exit 1
    probe_start probe "$probe_port" "$udp"
    sleep 0.5       # the prober's first packets go through an idle router
    # all at once: two stalled handshakes (nothing sent; half a ClientHello)
    # and the refused ones, each of which must be closed at once
    peer_bg stall stall "$tls" --wait-close 4
    peer_bg stall_partial stall "$tls" --partial --wait-close 4
    local v=(--ca "$CA" --server-name localhost --spec 3 --wait-close 2)
    peer_bg rogue client "$tls" "${v[@]}" --prefix rogue --cert "$CERTS/rogue.pem" --key "$CERTS/rogue.key"
    peer_bg expired client "$tls" "${v[@]}" --prefix expired --cert "$CERTS/expired.pem" --key "$CERTS/expired.key"
    peer_bg nocert client "$tls" "${v[@]}" --prefix nocert
    peer_bg plain plain "$tls" --wait-close 2
    peer_bg midclose stall "$tls" --partial --wait-close 0.01
    peer_bg tls12 client "$tls" "${v[@]}" --prefix tls12 --max-version 1.2 --cert "$CERTS/client.pem" --key "$CERTS/client.key"
    peers_wait rogue expired nocert plain midclose tls12 stall stall_partial
    closed_within "$CASE_DIR/rogue.out" 0 0.9 "client certificate from an untrusted CA"
    closed_within "$CASE_DIR/expired.out" 0 0.9 "expired client certificate"
    closed_within "$CASE_DIR/nocert.out" 0 0.9 "no client certificate"
    closed_within "$CASE_DIR/plain.out" 0 0.9 "plaintext HEP3"
    [ "$(field "$CASE_DIR/tls12.out" handshake)" != ok ] || it_case_fail "a TLS 1.2 client completed a handshake with min_version 1.3"
    closed_within "$CASE_DIR/stall.out" 0.8 2.5 "a client that sends nothing"
    closed_within "$CASE_DIR/stall_partial.out" 0.8 2.5 "a client that sends half a ClientHello"
    probe_end
    it_stats_until 5 tls_handshakes=0 tls_failed_certificate=2 tls_failed_no_certificate=1 \
        tls_failed_protocol=3 tls_failed_timeout=2
    local port=${tls##*:}
    expect_logged "tls:127\.0\.0\.1:$port: handshake with 127\.0\.0\.1:[0-9]+ failed: certificate"
    expect_logged "tls:127\.0\.0\.1:$port: handshake with 127\.0\.0\.1:[0-9]+ failed: no_certificate"
    expect_logged "tls:127\.0\.0\.1:$port: handshake with 127\.0\.0\.1:[0-9]+ failed: protocol"
    expect_logged "tls:127\.0\.0\.1:$port: handshake with 127\.0\.0\.1:[0-9]+ failed: timeout"
    # the listener still serves a good client, whose frames are routed
    probe_start probe2 "$probe_port" "$udp"
    client good "$tls" --ca "$CA" --server-name localhost --cert "$CERTS/client.pem" --key "$CERTS/client.key" \
        --spec 5 --prefix good --wait-close 0.3
    expect_field "$CASE_DIR/good.json" handshake ok "a good client after the bad ones"
    expect_field "$CASE_DIR/good.json" closed_after null "a good client after the bad ones"
    sleep 0.3
    probe_end '{"good": 5}'
    it_stats_until 5 tls_handshakes=1
    case_end
}

# ---------------------------------------------------------------- refused_outbound

case_refused_outbound() {
    it_case_begin refused_outbound "targets with another name, expired, untrusted, silent, no IP SAN, no ca; then fixed"
    # name: other.pem (DNS:other.example) against server_name localhost;
    # expired; rogue: signed by the untrusted CA; silent: never answers;
    # noip: other.pem for a numeric target without server_name (its IP is
    # checked against the SAN); noca: server.pem, no ca: the system's CA
    # store, which does not know the test CA (stays refused, not fixed);
    # reca: server.pem, but the destination's ca file holds the untrusted
    # CA until it is replaced and heprouter gets SIGHUP (the server stays)
    local probe_port udp t all=(name expired rogue silent noip noca reca) fixed=(name expired rogue silent noip)
    local -A cert=([name]=other [expired]=expired [rogue]=rogue [silent]="" [noip]=other [noca]=server [reca]=server)
    local -A opts=([noip]="ca: \"$CA\"" [noca]="server_name: localhost" [reca]="ca: \"$CASE_DIR/reca.pem\", server_name: localhost")
    local -A tport=() tpid=()
    cp "$CERTS/rogue-ca.pem" "$CASE_DIR/reca.pem"
    probe_port=$(it_free_port udp) || exit 1
    for t in "${all[@]}"; do
        if [ -n "${cert[$t]}" ]; then
            server_bg "$t" --cert "$CERTS/${cert[$t]}.pem" --key "$CERTS/${cert[$t]}.key"
        else
            server_bg "$t" --stall
        fi
    done
    server_wait "${all[@]}"
    local dests="" t_list=""
    for t in "${all[@]}"; do
        tport[$t]=${SRV_PORT[$t]}
        tpid[$t]=${SRV_PID[$t]}
        dests+="  $t:
    targets: [ \"tls:127.0.0.1:${tport[$t]}\" ]
    tls: { ${opts[$t]:-ca: \"$CA\", server_name: localhost} }
"
        t_list+="$t, "
    done
    tls_router "$(udp_head)
limits: { $LIMITS }
destinations:
$dests  probe: { targets: [ \"udp:127.0.0.1:$probe_port\" ] }
default: [ ${t_list}probe ]"
    udp=$(raddr udp) || exit 1
    probe_start probe "$probe_port" "$udp"
    sleep 0.3
    udp_send before "$udp" 10
    local exprs=()
    for t in "${all[@]}"; do
        exprs+=("destinations/$t/targets/tls:127.0.0.1:${tport[$t]}/tls_failures>=$([ "$t" = silent ] && echo 1 || echo 2)")
    done
    it_stats_until 5 "${exprs[@]}"
    probe_end '{"before": 10}'
    for t in "${all[@]}"; do
        [ "$(frames_in "$CASE_DIR/$t.frames")" = 0 ] || it_case_fail "target $t got $(frames_in "$CASE_DIR/$t.frames") frames"
        [ "$(conns_in "$CASE_DIR/$t.frames")" = 0 ] || [ "$t" = silent ] ||
            it_case_fail "target $t: a handshake completed"
        [ "$t" = silent ] || grep -q '"handshake_failed"' "$CASE_DIR/$t.frames" ||
            it_case_fail "target $t saw no failed handshake"
        expect_logged "destination $t target tls:127\.0\.0\.1:${tport[$t]}: (connect failed: )?TLS handshake failed: "
    done
    # the same ports with the right certificate: heprouter reconnects;
    # reca's ca file replaced, then SIGHUP
    for t in "${fixed[@]}"; do
        it_stop "${tpid[$t]}"
        it_forget "${tpid[$t]}"
        good_bg "$t-fixed" --port "${tport[$t]}"
    done
    cp "$CA" "$CASE_DIR/reca.pem.new" && mv "$CASE_DIR/reca.pem.new" "$CASE_DIR/reca.pem"
    kill -HUP "$ROUTER_PID"
    it_wait_until 5 reloads_done 1 || it_case_fail "no 'configuration reloaded' after SIGHUP"
    server_wait "${fixed[@]/%/-fixed}"
    udp_send after "$udp" 10
    for t in "${fixed[@]}"; do
        it_wait_until "$ARRIVE_TIMEOUT" frames_at_least "$CASE_DIR/$t-fixed.frames" 10 || true
    done
    sleep 0.3
    it_wait_until "$ARRIVE_TIMEOUT" frames_at_least "$CASE_DIR/reca.frames" 10 || true
    local specs=()
    for t in "${fixed[@]/%/-fixed}" reca; do
        specs+=("$CASE_DIR/after.man@server:$CASE_DIR/$t.frames@unknown-ok")
        echo "    $t: $(frames_in "$CASE_DIR/$t.frames") frames over $(conns_in "$CASE_DIR/$t.frames") connection(s)"
    done
    check "${specs[@]}"
    [ "$(frames_in "$CASE_DIR/noca.frames")" = 0 ] || it_case_fail "target noca (no ca: system store) got frames"
    exprs=()
    for t in "${fixed[@]}" reca; do
        exprs+=("destinations/$t/targets/tls:127.0.0.1:${tport[$t]}/connects>=1")
    done
    exprs+=("destinations/noca/targets/tls:127.0.0.1:${tport[noca]}/connects=0")
    it_stats_until 5 "${exprs[@]}"
    case_end
}

# ---------------------------------------------------------------- reload

# new_server_cert DIR: DIR/server2.pem and .key: CN=localhost, a new key and serial, signed by the test CA.
new_server_cert() {
    local d=$1
    if ! { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/server2.key" 2>/dev/null &&
        openssl req -new -key "$d/server2.key" -subj "/CN=localhost" -out "$d/server2.csr" 2>/dev/null &&
        printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' >"$d/server2.ext" &&
        openssl x509 -req -in "$d/server2.csr" -CA "$CA" -CAkey "$CERTS/ca.key" -set_serial 0x5eed2026 \
            -extfile "$d/server2.ext" -days 3650 -out "$d/server2.pem" 2>/dev/null &&
        chmod 600 "$d/server2.key"; }; then
        it_fail "cannot make a second server certificate"
    fi
}

# reloaded N / reload_failed N: the log has N such lines.
reloads_done() { [ "$(grep -c 'configuration reloaded: generation' "$CASE_DIR/router.err")" -ge "$1" ]; }
reloads_failed() { [ "$(grep -c 'configuration reload failed' "$CASE_DIR/router.err")" -ge "$1" ]; }

reload_config() {
    local root
    root=$(it_root_line)
    printf '# written by %s.sh, case %s\n%slisten: [ "tls:127.0.0.1:%s" ]\nworkers: 1\norphans: { wait_ms: 0 }\nlog: { interval: 1s }\nlimits: { %s }\ncontrol: { socket: "%s" }\ntls: { cert: "%s", key: "%s", ca: "%s" }\ndestinations:\n  udp: { targets: [ "%s" ] }\ndefault: [ udp ]\n' \
        "$IT_NAME" "$CASE" "${root:+$root$'\n'}" "$1" "$LIMITS" "$CASE_DIR/ctl.sock" "$CASE_DIR/srv.pem" "$2" "$CA" \
        "${SINK_ADDR[udp]}"
}

case_reload() {
    it_case_begin reload "SIGHUP with new certificate files; a reload with a missing key fails"
    local port old new c=(--ca "$CASE_DIR/ca.pem" --server-name localhost)
    cp "$CA" "$CASE_DIR/ca.pem"
    cp "$CERTS/server.pem" "$CASE_DIR/srv.pem"
    cp "$CERTS/server.key" "$CASE_DIR/srv.key"
    new_server_cert "$CASE_DIR"
    old=$(serial_of "$CERTS/server.pem")
    new=$(serial_of "$CASE_DIR/server2.pem")
    [ "$old" != "$new" ] || it_fail "the two server certificates have the same serial"
    port=$(it_free_port tcp) || exit 1
    it_start_sink udp udp
    reload_config "$port" "$CASE_DIR/srv.key" >"$CASE_DIR/router.yaml"
    rm -f "$CASE_DIR/router.ready"
    it_start "$CASE/router" "$HEPROUTER" -c "$CASE_DIR/router.yaml" --ready-file "$CASE_DIR/router.ready"
    ROUTER_PID=$IT_PID
    ROUTER_READY=$CASE_DIR/router.ready
    it_wait_until "$IT_READY_TIMEOUT" it_ready_or_dead "$ROUTER_READY" "$ROUTER_PID" || true
    [ -s "$ROUTER_READY" ] || it_fail "case $CASE: heprouter did not start: $(tail -n 5 "$CASE_DIR/router.err")"
    # a connection opened before the reload, held open: 5 frames now, 5 after
    rm -f "$CASE_DIR/go"
    it_start "$CASE/held" "${PEER[@]}" client "127.0.0.1:$port" "${c[@]}" --cert "$CERTS/client.pem" --key "$CERTS/client.key" \
        --spec 5 --prefix held --manifest "$CASE_DIR/held.man" --then "$CASE_DIR/go" --spec2 5 \
        --manifest2 "$CASE_DIR/held2.man" --wait-close 0.3
    local held=$IT_PID
    it_wait_until 10 grep -q '"phase": 1' "$IT_TMP/$CASE/held.out" || it_case_fail "the held connection did not send its first frames"
    client before "127.0.0.1:$port" "${c[@]}" --spec 3 --prefix before --manifest "$CASE_DIR/before.man"
    expect_field "$CASE_DIR/before.json" peer_serial "$old" "a connection before the reload"
    # the files replaced (each by a rename), then SIGHUP
    cp "$CASE_DIR/server2.key" "$CASE_DIR/srv.key.new" && mv "$CASE_DIR/srv.key.new" "$CASE_DIR/srv.key"
    cp "$CASE_DIR/server2.pem" "$CASE_DIR/srv.pem.new" && mv "$CASE_DIR/srv.pem.new" "$CASE_DIR/srv.pem"
    kill -HUP "$ROUTER_PID"
    it_wait_until 5 reloads_done 1 || it_case_fail "no 'configuration reloaded' after SIGHUP"
    client after "127.0.0.1:$port" "${c[@]}" --spec 3 --prefix after --manifest "$CASE_DIR/after.man"
    expect_field "$CASE_DIR/after.json" peer_serial "$new" "a connection after the reload"
    local s
    s=$(it_run 10 openssl s_client -connect "127.0.0.1:$port" -CAfile "$CASE_DIR/ca.pem" -showcerts </dev/null 2>/dev/null |
        openssl x509 -noout -serial | sed 's/^serial=//')
    echo "    openssl s_client after the reload: serial $s"
    [ "$s" = "$new" ] || it_case_fail "openssl s_client sees serial '$s' after the reload, expected $new"
    touch "$CASE_DIR/go"
    it_wait_exit "$held" 10
    it_forget "$held"
    echo "    held: $(tail -n 1 "$IT_TMP/$CASE/held.out")"
    expect_field "$IT_TMP/$CASE/held.out" sent 10 "the connection opened before the reload"
    expect_field "$IT_TMP/$CASE/held.out" send_error null "the connection opened before the reload"
    expect_field "$IT_TMP/$CASE/held.out" closed_after null "the connection opened before the reload"
    expect_field "$IT_TMP/$CASE/held.out" peer_serial "$old" "the connection opened before the reload"
    # a reload naming a missing key file fails as a whole
    reload_config "$port" "$CASE_DIR/missing.key" >"$CASE_DIR/broken.yaml"
    it_run 10 "$HEPROUTER" -t -c "$CASE_DIR/broken.yaml" >"$CASE_DIR/t.out" 2>&1 &&
        it_case_fail "heprouter -t accepted a missing key file"
    echo "    -t: $(head -n 2 "$CASE_DIR/t.out" | tr '\n' ' ' | cut -c1-240)"
    grep -q "broken.yaml:[0-9]*:[0-9]*" "$CASE_DIR/t.out" || it_case_fail "heprouter -t names no FILE:LINE:COL"
    cp "$CASE_DIR/broken.yaml" "$CASE_DIR/router.yaml.new" && mv "$CASE_DIR/router.yaml.new" "$CASE_DIR/router.yaml"
    kill -HUP "$ROUTER_PID"
    it_wait_until 5 reloads_failed 1 || it_case_fail "no 'configuration reload failed' after a SIGHUP naming a missing key"
    expect_logged 'configuration reload failed'
    expect_logged 'missing\.key'
    # and through the control socket: the error is answered
    if it_run 10 "$HEPROUTER" ctl -s "$CASE_DIR/ctl.sock" reload >"$CASE_DIR/ctl.out" 2>&1; then
        it_case_fail "heprouter ctl reload succeeded with a missing key file: $(cat "$CASE_DIR/ctl.out")"
    fi
    echo "    ctl reload: $(tr '\n' ' ' <"$CASE_DIR/ctl.out" | cut -c1-300)"
    grep -q 'missing\.key' "$CASE_DIR/ctl.out" || it_case_fail "ctl reload's answer does not name missing.key"
    reloads_done 2 && it_case_fail "the reload naming a missing key file was applied"
    client still "127.0.0.1:$port" "${c[@]}" --spec 3 --prefix still --manifest "$CASE_DIR/still.man"
    expect_field "$CASE_DIR/still.json" peer_serial "$new" "a connection after the failed reload"
    # the right file names again, but the certificate file is now garbage
    # (a renewal half written): refused, the certificate in use stays
    reload_config "$port" "$CASE_DIR/srv.key" >"$CASE_DIR/router.yaml.new" && mv "$CASE_DIR/router.yaml.new" "$CASE_DIR/router.yaml"
    echo "not a certificate" >"$CASE_DIR/srv.pem.new" && mv "$CASE_DIR/srv.pem.new" "$CASE_DIR/srv.pem"
    kill -HUP "$ROUTER_PID"
    it_wait_until 5 reloads_failed 3 || it_case_fail "no 'configuration reload failed' after a SIGHUP with a garbage certificate file"
    reloads_done 2 && it_case_fail "a reload with a garbage certificate file was applied"
    client still2 "127.0.0.1:$port" "${c[@]}" --spec 3 --prefix still2 --manifest "$CASE_DIR/still2.man"
    expect_field "$CASE_DIR/still2.json" peer_serial "$new" "a connection after the failed reload (garbage certificate)"
    it_alive "$ROUTER_PID" || it_case_fail "heprouter exited after the failed reload"
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has udp 22 || true
    sleep 0.2
    local m specs=()
    for m in held held2 before after still still2; do
        specs+=("$CASE_DIR/$m.man@hepdump:$CASE_DIR/udp.json@unknown-ok")
    done
    check "${specs[@]}"
    [ "$(it_sink_lines udp)" = 22 ] || it_case_fail "the sink holds $(it_sink_lines udp) packets, expected 22"
    it_stats_until 5 tls_handshakes=6 packets_in=22
    case_end
}

# ---------------------------------------------------------------- spool

case_spool() {
    it_case_begin spool "a tls: target with a spool: down, then up; goes away, then back"
    local port udp n=200 t
    port=$(it_free_port tcp) || exit 1
    tls_router "$(udp_head)
limits: { $LIMITS }
destinations:
  coll:
    targets: [ \"tls:127.0.0.1:$port\" ]
    tls: { ca: \"$CA\", server_name: localhost }
    spool: { dir: \"$CASE_DIR/spool\" }
default: [ coll ]"
    udp=$(raddr udp) || exit 1
    udp_send spooled "$udp" "$n"
    it_stats_until 5 packets_in=$n "destinations/coll/spool_written=$n"
    good_bg coll --port "$port"
    server_wait coll
    it_wait_until "$ARRIVE_TIMEOUT" frames_at_least "$CASE_DIR/coll.frames" "$n" || true
    sleep 0.3
    check "$CASE_DIR/spooled.man@server:$CASE_DIR/coll.frames"
    t="destinations/coll/targets/tls:127.0.0.1:$port"
    it_stats_until 5 "destinations/coll/spool_replayed=$n" "$t/tls_failures=0" "$t/connects=1"
    # the server goes away while the connection is idle: heprouter notices
    # (disconnects 1) and spools what comes next; the server is back: replayed
    it_stop "${SRV_PID[coll]}"
    it_forget "${SRV_PID[coll]}"
    it_stats_until 5 "$t/disconnects=1"
    udp_send spooled2 "$udp" 100
    it_stats_until 5 "destinations/coll/spool_written=$((n + 100))"
    good_bg coll2 --port "$port"
    server_wait coll2
    it_wait_until "$ARRIVE_TIMEOUT" frames_at_least "$CASE_DIR/coll2.frames" 100 || true
    sleep 0.3
    check "$CASE_DIR/spooled2.man@server:$CASE_DIR/coll2.frames"
    it_stats_until 5 "destinations/coll/spool_replayed=$((n + 100))" "$t/connects=2" "$t/tls_failures=0"
    case_end
}

# ---------------------------------------------------------------- backpressure

case_backpressure() {
    it_case_begin backpressure "a tls: target that stops reading (SIGSTOP) while $BP_FRAMES frames come, then reads again"
    local udp t written
    good_bg coll
    server_wait coll
    tls_router "$(udp_head)
limits: { $LIMITS, tcp_queue_bytes: 67108864, udp_rcvbuf: 33554432 }
destinations:
  coll:
    targets: [ \"tls:127.0.0.1:${SRV_PORT[coll]}\" ]
    tls: { ca: \"$CA\", server_name: localhost }
default: [ coll ]"
    udp=$(raddr udp) || exit 1
    t="destinations/coll/targets/tls:127.0.0.1:${SRV_PORT[coll]}"
    it_stats_until 5 "$t/connects=1"
    kill -STOP "${SRV_PID[coll]}"
    udp_send bp "$udp" "$BP_FRAMES"
    it_stats_until 5 packets_in="$BP_FRAMES"
    sleep 0.5
    it_usr1_stats || true
    written=$(it_counter "$t/packets")
    it_note "while the target was stopped: $written of $BP_FRAMES frames written to its socket, the rest queued"
    ((written < BP_FRAMES)) || it_case_fail "every frame was written while the target was stopped: no back-pressure exercised"
    kill -CONT "${SRV_PID[coll]}"
    it_wait_until "$ARRIVE_TIMEOUT" frames_at_least "$CASE_DIR/coll.frames" "$BP_FRAMES" || true
    sleep 0.3
    check "$CASE_DIR/bp.man@server:$CASE_DIR/coll.frames"
    it_stats_until 5 "$t/packets=$BP_FRAMES" "$t/queue_drops=0" "$t/send_errors=0" "$t/disconnects=0" "$t/connects=1"
    case_end
}

# ---------------------------------------------------------------- limits

case_limits() {
    it_case_begin limits "tcp_max_connections, tcp_idle_timeout and tcp_max_frame on a tls: listener"
    local tls
    it_start_sink udp udp
    tls_router "listen: [ \"tls:127.0.0.1:0\" ]
workers: 1
orphans: { wait_ms: 0 }
log: { interval: 1s }
limits: { $LIMITS, tcp_max_connections: 2, tcp_idle_timeout: ${IDLE_S}s, tcp_max_frame: 20000 }
tls: $(server_tls)
destinations:
  udp: { targets: [ \"${SINK_ADDR[udp]}\" ] }
default: [ udp ]"
    tls=$(raddr tls) || exit 1
    # three connections, each sending a frame: two taken, the third refused
    # at once; the two closed once idle for tcp_idle_timeout
    it_run 30 "${PEER[@]}" conns "$tls" --n 3 --ca "$CA" --hold $((IDLE_S + 2)) >"$CASE_DIR/conns.json" ||
        it_case_fail "tlspeer conns failed"
    echo "    conns: $(cat "$CASE_DIR/conns.json")"
    python3 - "$CASE_DIR/conns.json" "$IDLE_S" <<'PY' || it_case_fail "connections beyond tcp_max_connections or idle ones not closed as they should"
import json, sys
c = json.load(open(sys.argv[1]))["conns"]
idle = float(sys.argv[2])
bad = []
for i in (0, 1):
    if c[i]["handshake"] != "ok":
        bad.append("connection %d: handshake %s" % (i + 1, c[i]["handshake"]))
    elif c[i]["closed_after"] is None or not idle - 0.3 <= c[i]["closed_after"] <= idle + 1.5:
        bad.append("connection %d closed after %s s, tcp_idle_timeout %s s" % (i + 1, c[i]["closed_after"], idle))
if c[2]["handshake"] == "ok" and (c[2]["closed_after"] is None or c[2]["closed_after"] > 0.5):
    bad.append("connection 3 (over tcp_max_connections 2) was served: %s" % c[2])
for b in bad:
    print("    FAIL " + b)
sys.exit(1 if bad else 0)
PY
    # a frame over tcp_max_frame closes the connection: the 9 before it arrive
    # (capture id 1), not it nor the 2 after (capture id 2); frame 10 is the big one
    client big "$tls" --ca "$CA" --server-name localhost --spec 1:9,2:3 --prefix big --manifest "$CASE_DIR/big.man" --wait-close 2
    closed_within "$CASE_DIR/big.json" 0 1 "a frame over tcp_max_frame"
    it_wait_until "$ARRIVE_TIMEOUT" it_sink_has udp 11 || true
    check "$CASE_DIR/big.man@hepdump:$CASE_DIR/udp.json@cid=1@unknown-ok"
    it_stats_until 5 tcp_rejected=1 tcp_idle_closed=2 tcp_bad_length=1 tls_handshakes=3 packets_in=11 \
        destinations/udp/packets=11
    case_end
}

# ---------------------------------------------------------------- config

# config_error NAME WHAT YAML_BODY: heprouter -t must refuse it and name FILE:LINE:COL.
config_error() {
    local f=$CASE_DIR/$1.yaml
    printf '%s\n' "$3" >"$f"
    if it_run 10 "$HEPROUTER" -t -c "$f" >"$CASE_DIR/$1.out" 2>&1; then
        it_case_fail "heprouter -t accepted $2 ($f)"
    elif ! grep -q "$1\.yaml:[0-9]*:[0-9]*" "$CASE_DIR/$1.out"; then
        it_case_fail "heprouter -t refused $2 without naming $1.yaml:LINE:COL: $(head -n 3 "$CASE_DIR/$1.out")"
    fi
    echo "    $1: $(grep -m 1 "$1\.yaml:" "$CASE_DIR/$1.out" | sed "s|$CASE_DIR/||" | cut -c1-200)"
}

case_config() {
    it_case_begin config "heprouter -t on tls: sections, good and bad"
    local d="destinations: { d: { targets: [ \"udp:127.0.0.1:9\" ] } }
default: [ d ]" cd=$CERTS
    printf 'listen: [ "tls:127.0.0.1:9061" ]\ntls: { cert: "%s", key: "%s", ca: "%s", require_client_cert: true, min_version: "1.3", client_capture_ids: { kamailio-a: [ 2001, 2002 ], "CN=kamailio-b,O=heprouter tests": [ 2003 ] } }\nlimits: { tls_handshake_timeout: 5s }\n%s\ndestinations:\n  h: { targets: [ "tls:127.0.0.1:9063" ], tls: { ca: "%s", cert: "%s", key: "%s", verify: true, server_name: localhost, min_version: "1.2" } }\ndefault: [ h ]\n' \
        "$cd/server.pem" "$cd/server.key" "$CA" "$(it_root_line)" "$CA" "$cd/client.pem" "$cd/client.key" >"$CASE_DIR/good.yaml"
    it_run 10 "$HEPROUTER" -t -c "$CASE_DIR/good.yaml" >"$CASE_DIR/good.out" 2>&1 ||
        it_case_fail "heprouter -t refused a good tls configuration: $(head -n 3 "$CASE_DIR/good.out")"
    config_error no_cert "a tls: listener without cert and key" "listen: [ \"tls:127.0.0.1:9061\" ]
$d"
    config_error bad_cert "a certificate file that is not PEM" "listen: [ \"tls:127.0.0.1:9061\" ]
tls: { cert: \"$cd/ca.key\", key: \"$cd/server.key\" }
$d"
    config_error key_mismatch "a key that does not match the certificate" "listen: [ \"tls:127.0.0.1:9061\" ]
tls: { cert: \"$cd/server.pem\", key: \"$cd/client.key\" }
$d"
    config_error no_ca "require_client_cert without ca" "listen: [ \"tls:127.0.0.1:9061\" ]
tls: { cert: \"$cd/server.pem\", key: \"$cd/server.key\", require_client_cert: true }
$d"
    config_error ids_no_require "client_capture_ids without require_client_cert" "listen: [ \"tls:127.0.0.1:9061\" ]
tls: { cert: \"$cd/server.pem\", key: \"$cd/server.key\", ca: \"$CA\", client_capture_ids: { kamailio-a: [ 1 ] } }
$d"
    config_error min_version "min_version 1.1" "listen: [ \"tls:127.0.0.1:9061\" ]
tls: { cert: \"$cd/server.pem\", key: \"$cd/server.key\", min_version: \"1.1\" }
$d"
    config_error dest_ca "a destination ca file that does not exist" "listen: [ \"udp:127.0.0.1:9061\" ]
destinations: { h: { targets: [ \"tls:127.0.0.1:9063\" ], tls: { ca: \"$CASE_DIR/none.pem\" } } }
default: [ h ]"
    config_error dest_half "a destination cert without its key" "listen: [ \"udp:127.0.0.1:9061\" ]
destinations: { h: { targets: [ \"tls:127.0.0.1:9063\" ], tls: { ca: \"$CA\", cert: \"$cd/client.pem\" } } }
default: [ h ]"
    it_case_end "$CASE_DIR"/*.out
}

it_run_cases "$@"
