#!/usr/bin/env bash
# Targets written with a host name (loopback only, every process stopped by
# PID, each case bounded; figures printed per case):
#
#   names_deliver     "tcp:localhost:PORT" and "udp:localhost:PORT" deliver
#                     every packet to sinks on the address localhost
#                     resolves to first (getaddrinfo, AF_UNSPEC: what
#                     heprouter uses; 127.0.0.1 with the usual /etc/hosts),
#                     the change from "unresolved" is logged, no lookup
#                     fails, the TCP target connects once per worker; a
#                     reload that leaves the targets' text alone keeps
#                     their connections and addresses
#   unresolved_name_does_not_block
#                     "tcp:does-not-exist.invalid:9" and
#                     "udp:does-not-exist.invalid:9" (RFC 6761: never
#                     resolves): heprouter -t accepts the file, the router
#                     starts, counts resolve_errors for both (looked up
#                     again with the reconnect backoff), and a third,
#                     numeric UDP destination gets every packet, each
#                     within LATENCY_MS of its sending while the lookups
#                     keep failing
#
#   BUILD_DIR=build bash tests/integration/test_dns.sh [CASE...]
#
# /etc/hosts is read, never written.  Environment: BUILD_DIR (src/heprouter,
# tools/hepdump, tools/hepgen), IT_KEEP_TMP=1 keeps the scratch directory.
# Needs python3.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=120              # the whole test (about 5 s)
ARRIVE_TIMEOUT=10           # seconds for packets to arrive
OPTIONS_PACKETS=2           # packets per hepgen OPTIONS call (hepgen(1))
CALLS=50                    # names_deliver: OPTIONS calls sent
PROBES=40                   # unresolved_name_does_not_block: packets timed one by one
PROBE_GAP_MS=25             # ... apart, so lookups keep failing during the probes
LATENCY_MS=100              # ... each must reach its sink within this
BAD_NAME=does-not-exist.invalid

it_init "$TIME_LIMIT"
it_require_cmd python3
HEPROUTER=$(it_bin src/heprouter) || exit 1
HEPGEN=$(it_bin tools/hepgen) || exit 1
it_bin tools/hepdump >/dev/null || exit 1

IT_CASES=(names_deliver unresolved_name_does_not_block)

# ---------------------------------------------------------------- helpers


# first_address NAME SOCKTYPE: the first address getaddrinfo() gives for
# NAME with any family, as heprouter picks it; IPv6 in brackets.
first_address() {
    python3 - "$1" "$2" <<'EOF'
import socket, sys
kind = socket.SOCK_STREAM if sys.argv[2] == "tcp" else socket.SOCK_DGRAM
family, _, _, _, addr = socket.getaddrinfo(sys.argv[1], 9, socket.AF_UNSPEC, kind)[0]
print("[%s]" % addr[0] if family == socket.AF_INET6 else addr[0])
EOF
}

# sink_on NAME udp|tcp HOST: a hepdump sink like it_start_sink's, bound to
# HOST (the address a name resolves to); sets SINK_ADDR.
sink_on() {
    local name=$1 transport=$2 host=$3
    it_start_hepdump "$CASE/$name" -l "$transport:$host:0" -o "$CASE_DIR/$name.json" --raw -u -q
    SINK_ADDR[$name]=$transport:$host:$(it_listen_port "$CASE_DIR/$name.ready" "$transport") || exit 1
}


# ---------------------------------------------------------------- cases

case_names_deliver() {
    it_case_begin names_deliver "tcp:localhost:PORT and udp:localhost:PORT deliver"
    local tcp_host udp_host tport uport t u n=$((CALLS * OPTIONS_PACKETS))
    tcp_host=$(first_address localhost tcp) || it_fail "localhost does not resolve"
    udp_host=$(first_address localhost udp) || it_fail "localhost does not resolve"
    echo "    localhost resolves first to $tcp_host (tcp), $udp_host (udp)"
    IT_ROUTER_LISTEN=udp
    sink_on tcp tcp "$tcp_host"
    sink_on udp udp "$udp_host"
    tport=${SINK_ADDR[tcp]##*:} uport=${SINK_ADDR[udp]##*:}
    t="tcp:localhost:$tport" u="udp:localhost:$uport"
    it_start_router "workers: 2
orphans: { wait_ms: 0 }
destinations:
  tcp: { targets: [ \"$t\" ] }
  udp: { targets: [ \"$u\" ] }
default: [ tcp, udp ]"
    # the UDP target drops (down_drops) until its name resolves: wait for it
    it_stats_until 5 "$(it_target tcp "$t")/connects=2" "$(it_target udp "$u")/resolve_errors=0"
    it_wait_until 5 grep -q "target $u: now $udp_host:$uport (was unresolved)" "$CASE_DIR/router.err" ||
        it_case_fail "no 'target $u: now $udp_host:$uport (was unresolved)' line"
    grep -q "target $t: now $tcp_host:$tport (was unresolved)" "$CASE_DIR/router.err" ||
        it_case_fail "no 'target $t: now $tcp_host:$tport (was unresolved)' line"
    it_run 60 "$HEPGEN" -q -d "${ROUTER_ADDR[udp]}" --mix options=100 -n "$n" -r 20000 --prefix dns \
        >>"$CASE_DIR/hepgen.out" || it_case_fail "hepgen failed"
    it_arrive tcp "$n"
    it_arrive udp "$n"
    it_stats_until 5 packets_in="$n" "$(it_target tcp "$t")/packets=$n" "$(it_target udp "$u")/packets=$n" \
        "$(it_target tcp "$t")/resolve_errors=0" "$(it_target udp "$u")/resolve_errors=0" \
        "$(it_target udp "$u")/down_drops=0"

    it_note "a reload that leaves the targets' text alone keeps them as they are"
    local changes
    changes=$(grep -c ': now .* (was ' "$CASE_DIR/router.err")
    printf 'log: { interval: 5s }\n' >>"$CASE_DIR/router.yaml"
    kill -HUP "$ROUTER_PID"
    it_wait_until 5 grep -qF "configuration reloaded: generation 2" "$CASE_DIR/router.err" ||
        it_case_fail "no 'configuration reloaded: generation 2' in the log"
    it_run 60 "$HEPGEN" -q -d "${ROUTER_ADDR[udp]}" --mix options=100 -n "$n" -r 20000 --prefix dns2 \
        >>"$CASE_DIR/hepgen.out" || it_case_fail "hepgen failed"
    it_arrive tcp $((2 * n))
    it_arrive udp $((2 * n))
    it_stats_until 5 "$(it_target tcp "$t")/connects=2" "$(it_target tcp "$t")/disconnects=0" \
        "$(it_target udp "$u")/down_drops=0"
    it_assert_eq "$changes" "$(grep -c ': now .* (was ' "$CASE_DIR/router.err")" "address lines after the reload"
    it_stop_router
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

# probe PORT: binds 127.0.0.1:PORT (the steady destination's target), sends
# PROBES packets to the router one at a time and times each one's arrival;
# prints the figures; fails when one is late or missing.
probe() {
    python3 - "$HERE" "${ROUTER_ADDR[udp]}" "$1" "$PROBES" "$PROBE_GAP_MS" "$LATENCY_MS" <<'EOF'
import os, socket, sys, time
sys.path.insert(0, os.path.join(sys.argv[1], "security"))
import hepsend  # noqa: E402  (its HEP builder)
router = sys.argv[2].split(":")
port, probes, gap, limit = (int(a) for a in sys.argv[3:7])
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("127.0.0.1", port))
out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
times, missing = [], 0
for i in range(probes):
    t0 = time.monotonic()
    out.sendto(hepsend.hep3("probe-%d@dns.test" % i, None, 1), (router[1], int(router[2])))
    sink.settimeout(1.0)
    try:
        sink.recv(65535)
        times.append((time.monotonic() - t0) * 1000)
    except socket.timeout:
        missing += 1
    time.sleep(gap / 1000)
late = [t for t in times if t > limit]
times.sort()
print("    %d probes: %d arrived, %d missing; ms median %.2f, max %.2f (limit %d)" % (
    probes, len(times), missing, times[len(times) // 2] if times else -1, times[-1] if times else -1, limit))
sys.exit(1 if missing or late else 0)
EOF
}

case_unresolved_name_does_not_block() {
    it_case_begin unresolved_name_does_not_block "a name that never resolves: counted, the rest routes on time"
    local port t="tcp:$BAD_NAME:9" u="udp:$BAD_NAME:9" s body before after
    IT_ROUTER_LISTEN=udp
    port=$(it_free_port udp) || exit 1
    s="udp:127.0.0.1:$port"
    body="workers: 1
orphans: { wait_ms: 0 }
limits: { reconnect_min: 20ms, reconnect_max: 40ms, dns_refresh: 1s }
destinations:
  bad_tcp: { targets: [ \"$t\" ] }
  bad_udp: { targets: [ \"$u\" ] }
  steady: { targets: [ \"$s\" ] }
default: [ bad_tcp, bad_udp, steady ]"
    it_router_config 0 "$body" >"$CASE_DIR/check.yaml"
    "$HEPROUTER" -t -c "$CASE_DIR/check.yaml" >"$CASE_DIR/check.out" 2>&1 ||
        it_case_fail "heprouter -t refused a name that does not resolve: $(cat "$CASE_DIR/check.out")"
    it_start_router "$body"
    it_stats_until 5 "$(it_target bad_tcp "$t")/resolve_errors>=1" "$(it_target bad_udp "$u")/resolve_errors>=1" \
        "$(it_target bad_tcp "$t")/connects=0"
    grep -q "target $u: cannot resolve: .*(down until it resolves)" "$CASE_DIR/router.err" ||
        it_case_fail "no 'target $u: cannot resolve' line"
    before=$(it_counter "$(it_target bad_udp "$u")/resolve_errors")
    probe "$port" || it_case_fail "a packet to the steady destination was late or missing"
    it_stats_until 5 packets_in="$PROBES" "$(it_target steady "$s")/packets=$PROBES" \
        "$(it_target bad_udp "$u")/down_drops=$PROBES" "$(it_target bad_tcp "$t")/packets=0"
    after=$(it_counter "$(it_target bad_udp "$u")/resolve_errors")
    echo "    resolve_errors of $u: $before before the probes, $after after"
    ((${after:-0} > ${before:-0})) || it_case_fail "the name was not looked up again during the probes"
    it_stop_router
    it_stop_all
    IT_ROUTER_LISTEN="udp tcp"
    it_case_end
}

it_run_cases "$@"
