#!/usr/bin/env bash
# Configuration reload without loss, issue 14: heprouter (2 workers) between
# tools/hepgen and hepdump sinks on 127.0.0.1; the test rewrites the -c file
# (a temporary file moved over it) and sends SIGHUP, then waits for
# "configuration reloaded: generation N" (or "configuration reload failed")
# on heprouter's stderr.  reload/check_reload.py reads what hepgen sent and
# what the sinks got and says whether every packet arrived once, at the sink
# the policy in force when it was routed names (its header says how it
# knows: HEP send time, sink receive time, the SIGHUP and answer times).
#
#   steady        hepgen at RATE packets/s for LOAD_SECONDS (and a slow
#                 stream of calls that outlive a reload) while RELOADS
#                 reloads alternate two policies (same route names, the
#                 to: lists swapped between sinks a and b): nothing lost,
#                 nothing misrouted, stored calls follow the policy in
#                 force; the counters at exit cover the whole run; each
#                 reload logs what changed ("reload: ... invite-calls ...").
#   broken        a file with errors under load: each error heprouter -t
#                 prints for it is logged, "configuration reload failed",
#                 the old policy stays in force (checked on every packet),
#                 nothing lost; the next good reload is generation 2 and
#                 routes the packets sent after it.
#   listeners     one UDP and one TCP listener added, one of each removed,
#                 one UDP listener kept under load: the ready file and the
#                 sockets follow, the new listeners route, the removed TCP
#                 port refuses connections, nothing sent to the removed UDP
#                 port arrives, nothing to the kept one is lost.
#   tcp_target    a TCP destination whose sink is stopped (kill -STOP: its
#                 window fills, heprouter's queue holds packets, checked in
#                 the SIGUSR1 counters), a reload moves the destination to
#                 another sink, kill -CONT: the stopped sink gets what was
#                 queued, later packets go to the new one, nothing lost.
#   ctl_reload    LEAD: DROP THIS CASE IF THE CONTROL SOCKET IS NOT MERGED.
#                 `heprouter ctl -s SOCK reload` (control: { socket: SOCK })
#                 answers JSON naming the generation, and the new policy
#                 routes.
#
#   BUILD_DIR=build bash tests/integration/test_reload.sh [CASE...]
#
# Environment: BUILD_DIR (src/heprouter, tools/hepdump, tools/hepgen),
# IT_KEEP_TMP=1 keeps the scratch directory, RELOAD_ACK_TIMEOUT (seconds to
# wait for heprouter's answer to one reload, default 5).  Helpers come from
# lib.sh.  heprouter listens on fixed free ports here (not port 0): a
# listener must be written the same in the old and the new file to be kept.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

CHECK=(python3 "$HERE/reload/check_reload.py")
REPLAY=(python3 "$HERE/hepreplay.py")
TIME_LIMIT=120          # the whole test (about 45 s)
WORKERS=2
RATE=20000              # steady: hepgen packets/s...
LOAD_SECONDS=10         # ...for this long...
RELOADS=20              # ...while this many reloads alternate the policies
SLOW_RATE=200           # steady: packets/s of a second stream of long calls
FIRST_RELOAD_MS=300     # steady: first SIGHUP this long after hepgen starts,
RELOAD_EVERY_MS=400     # the next ones this far apart (the last at 7.9 s)
SHORT_LOAD=3            # broken, listeners: seconds of load around one reload
ACK_TIMEOUT=${RELOAD_ACK_TIMEOUT:-5}
ACK_POLL=0.01           # seconds between looks at the log for the answer
ARRIVE_TIMEOUT=10       # seconds for sent packets to reach the sinks
QUEUE_BYTES=67108864    # tcp_target: limits.tcp_queue_bytes, far above what is sent
HELD_PACKETS=30000      # tcp_target: sent while the sink is stopped (~15 MB,
                        # more than the loopback socket buffers take)
MIN_QUEUED=1000         # tcp_target: packets heprouter must hold in its queue
HEPGEN_TIMEOUT=30       # one hepgen run

it_init "$TIME_LIMIT"
it_require_cmd python3 ss
HEPROUTER=$(it_bin src/heprouter) || exit 1
HEPGEN=$(it_bin tools/hepgen) || exit 1
it_bin tools/hepdump >/dev/null || exit 1

IT_CASES=(steady broken listeners tcp_target ctl_reload)

GENERATION=1            # the generation heprouter runs (1 at start)
EVENTS=""               # the case's reload times, for check_reload.py

# ---------------------------------------------------------------- helpers

now() {
    date +%s.%N
}

# write_config FILE TEXT: replaces FILE at once (a temporary file, then mv),
# so heprouter never reads half a file.
write_config() {
    { printf '%s\n' "$2" >"$1.new" && mv -f "$1.new" "$1"; } || it_fail "cannot write $1"
}

# listen_line ADDR...: the listen key for these addresses (and it_root_line).
listen_line() {
    local a out=""
    for a in "$@"; do
        out+="${out:+, }\"$a\""
    done
    printf 'listen: [ %s ]\n%s' "$out" "$(it_root_line)"
}

# policy_body X Y [EXTRA]: workers, destinations a and b (the sinks), and
# three named routes: INVITE and OPTIONS calls to X, REGISTER calls and the
# default to Y.  The two policies of the tests are "a b" (A) and "b a" (B):
# the same route names, only the to: lists differ, so a packet's sink
# depends only on the policy in force when heprouter routed it.
policy_body() {
    cat <<EOF
workers: $WORKERS
${3:-}
destinations:
  a: { targets: [ "${SINK_ADDR[a]}" ] }
  b: { targets: [ "${SINK_ADDR[b]}" ] }
routes:
  - { name: invite-calls, match: { method: [ INVITE ] }, to: [ $1 ] }
  - { name: register-calls, match: { method: [ REGISTER ] }, to: [ $2 ] }
  - { name: options-calls, match: { method: [ OPTIONS ] }, to: [ $1 ] }
default: [ $2 ]
EOF
}

# The same policies as check_reload.py arguments.
POLICIES=(--policy "A:inv=a,reg=b,opt=a" --policy "B:inv=b,reg=a,opt=b")

# start_router CONFIG: writes $CASE_DIR/router.yaml (the whole config,
# listen line included), starts heprouter on it with a ready file, waits
# for it; sets ROUTER_PID, ROUTER_CONF, ROUTER_READY; GENERATION=1.
start_router() {
    ROUTER_CONF=$CASE_DIR/router.yaml
    ROUTER_READY=$CASE_DIR/router.ready
    write_config "$ROUTER_CONF" "# written by $IT_NAME.sh, case $CASE
$1"
    rm -f "$ROUTER_READY"
    it_start "$CASE/router" "$HEPROUTER" -c "$ROUTER_CONF" --ready-file "$ROUTER_READY"
    ROUTER_PID=$IT_PID
    GENERATION=1
    EVENTS=$CASE_DIR/events
    : >"$EVENTS"
    it_wait_until "$IT_READY_TIMEOUT" it_ready_or_dead "$ROUTER_READY" "$ROUTER_PID" || true
    [ -s "$ROUTER_READY" ] || it_fail "case $CASE: heprouter not ready: $(tail -n 5 "$CASE_DIR/router.err")"
}

# answered LOG SKIP GEN FAILS: heprouter answered the reload: the log, past
# its first SKIP lines, says generation GEN, or has more than FAILS
# "configuration reload failed" lines in all.
answered() {
    tail -n +"$(($2 + 1))" "$1" | grep -qE "configuration reloaded: generation $3([^0-9]|\$)" ||
        [ "$(grep -c 'configuration reload failed' "$1")" -gt "$4" ]
}

# reload CONFIG POLICY [ok|fail]: writes CONFIG over the running file, sends
# SIGHUP and waits for heprouter's answer; expects success (default) or
# failure.  Appends "T_REQ T_ACK POLICY ok|fail" to EVENTS (POLICY: the one
# in force after, the old one after a failure), sets RELOAD_NEW to the log lines
# the reload added and RELOAD_GOT to ok, fail or none (no answer).  A
# missing or wrong answer fails the case.
reload() {
    local config=$1 policy=$2 want=${3:-ok} log=$CASE_DIR/router.err
    local skip fails t_req t_ack got=none
    write_config "$ROUTER_CONF" "# written by $IT_NAME.sh, case $CASE, reload to $policy
$config"
    skip=$(wc -l <"$log")
    fails=$(grep -c 'configuration reload failed' "$log")
    t_req=$(now)
    kill -HUP "$ROUTER_PID" || it_fail "case $CASE: heprouter is gone"
    if IT_POLL=$ACK_POLL it_wait_until "$ACK_TIMEOUT" answered "$log" "$skip" $((GENERATION + 1)) "$fails"; then
        t_ack=$(now)
        if tail -n +"$((skip + 1))" "$log" | grep -qE "configuration reloaded: generation $((GENERATION + 1))([^0-9]|\$)"; then
            got=ok
            GENERATION=$((GENERATION + 1))
        else
            got=fail
        fi
        printf '%s %s %s %s\n' "$t_req" "$t_ack" "$policy" "$got" >>"$EVENTS"
    fi
    RELOAD_NEW=$(tail -n +"$((skip + 1))" "$log")
    RELOAD_GOT=$got
    if [ "$got" = none ]; then
        it_case_fail "no answer to SIGHUP within ${ACK_TIMEOUT}s (generation $GENERATION running)"
    elif [ "$got" != "$want" ]; then
        it_case_fail "reload to $policy: expected $want, got $got: $(printf '%s' "$RELOAD_NEW" | tail -n 3)"
    fi
    [ "$got" = "$want" ]
}

# sleep_until NS: until date +%s%N reaches NS.
sleep_until() {
    local left=$((($1 - $(date +%s%N)) / 1000000))
    ((left > 0)) && sleep "$(awk -v ms="$left" 'BEGIN { printf "%.3f", ms / 1000 }')"
    return 0
}

# hepgen NAME PREFIX HEPGEN_ARGS...: hepgen in the foreground, Call-IDs
# PREFIX-..., summary in $CASE_DIR/NAME.out (for check_reload.py --hepgen).
# A failure (a refused TCP connection, say) fails the case.
hepgen() {
    local name=$1 prefix=$2
    shift 2
    it_run "$HEPGEN_TIMEOUT" "$HEPGEN" --prefix "$prefix" -q "$@" \
        >"$CASE_DIR/$name.out" 2>"$CASE_DIR/$name.err" ||
        it_case_fail "hepgen $name failed: $(cat "$CASE_DIR/$name.err")"
}

# hepgen_bg NAME PREFIX HEPGEN_ARGS...: the same in the background; sets
# HEPGEN_PID.  Collect it with it_wait_exit.
hepgen_bg() {
    local name=$1 prefix=$2
    shift 2
    it_start "$CASE/$name" "$HEPGEN" --prefix "$prefix" -q "$@"
    HEPGEN_PID=$IT_PID
}

sent_by() {                     # sent_by NAME: "sent" of a hepgen summary (0: none)
    local n
    n=$(sed -n 's/^{"sent":\([0-9]*\).*/\1/p' "$CASE_DIR/$1.out")
    echo "${n:-0}"
}

lines() {
    if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# sink_total NAME...: packets in these sinks' outputs.
sink_total() {
    local n=0 s
    for s in "$@"; do
        n=$((n + $(lines "$CASE_DIR/$s.json")))
    done
    echo "$n"
}

arrived() {                     # arrived N SINK...: at least N packets there
    [ "$(sink_total "${@:2}")" -ge "$1" ]
}

# finish SINK...: heprouter stopped (SIGTERM: it drains; status 0 wanted),
# then the sinks, so that they write all they got.
finish() {
    local s
    it_stop_router
    sleep 0.2
    for s in "$@"; do
        it_stop "${SINK_PID[$s]}"
    done
}

# check ARGS...: check_reload.py with the case's events; its figures are
# shown; a failure fails the case.
check() {
    "${CHECK[@]}" --events "$EVENTS" "$@" >"$CASE_DIR/check.out" 2>&1
    local rc=$?
    sed 's/^/    /' "$CASE_DIR/check.out"
    ((rc == 0)) || it_case_fail "check_reload.py: packets lost, duplicated or misrouted (status $rc)"
}

# logged_change WORDS...: every word is in one "reload: " line of RELOAD_NEW.
logged_change() {
    local line w ok
    while IFS= read -r line; do
        [[ $line == *"reload: "* ]] || continue
        ok=1
        for w in "$@"; do
            [[ $line == *"$w"* ]] || ok=0
        done
        ((ok)) && return 0
    done <<<"$RELOAD_NEW"
    it_case_fail "no 'reload: ' line naming $* in the log of that reload"
    return 1
}

# ---------------------------------------------------------------- steady

case_steady() {
    it_case_begin steady "$RELOADS reloads alternating two policies under $RATE packets/s for ${LOAD_SECONDS}s"
    local port i t0 policy sent
    it_start_sink a udp 0 -q
    it_start_sink b udp 0 -q
    port=$(it_free_port udp) || exit 1
    local listen
    listen=$(listen_line "udp:127.0.0.1:$port")
    start_router "$listen
$(policy_body a b)"
    # two sockets (two source ports), so both workers may get traffic; and a
    # slow stream whose calls last about one reload period (hepgen keeps
    # rate/32 calls in flight: 16 packets x 6 calls / 200 per s = 0.5 s), so
    # that calls stored under one policy go on under the next
    hepgen_bg slow rs -d "udp:127.0.0.1:$port" -r "$SLOW_RATE" -s "$LOAD_SECONDS"
    local slow_pid=$HEPGEN_PID
    hepgen_bg hepgen rl -d "udp:127.0.0.1:$port" -d "udp:127.0.0.1:$port" -r "$RATE" -s "$LOAD_SECONDS"
    t0=$(date +%s%N)
    for ((i = 1; i <= RELOADS; i++)); do
        sleep_until $((t0 + (FIRST_RELOAD_MS + (i - 1) * RELOAD_EVERY_MS) * 1000000))
        if ((i % 2)); then policy=B; else policy=A; fi
        if [ $policy = B ]; then
            reload "$listen
$(policy_body b a)" B && logged_change invite-calls
        else
            reload "$listen
$(policy_body a b)" A && logged_change invite-calls
        fi
        [ "$RELOAD_GOT" != none ] || break       # unanswered: the rest would be too
        it_alive "$HEPGEN_PID" || it_note "reload $i came after the load ended (a slow machine?)"
    done
    it_wait_exit "$HEPGEN_PID" $((LOAD_SECONDS + 10))
    [ "$IT_STATUS" = 0 ] || it_case_fail "hepgen exited with status $IT_STATUS"
    it_wait_exit "$slow_pid" 10
    sent=$(($(sent_by hepgen) + $(sent_by slow)))
    it_note "hepgen: $(cat "$CASE_DIR/hepgen.out"); generation $GENERATION"
    [ "$GENERATION" = $((RELOADS + 1)) ] || it_case_fail "generation $GENERATION after $RELOADS reloads"
    it_wait_until "$ARRIVE_TIMEOUT" arrived "$sent" a b ||
        it_case_fail "only $(sink_total a b) of $sent packets arrived within ${ARRIVE_TIMEOUT}s"
    finish a b
    check --hepgen "rl=$CASE_DIR/hepgen.out" --hepgen "rs=$CASE_DIR/slow.out" --sink "a=$CASE_DIR/a.json" --sink "b=$CASE_DIR/b.json" \
        "${POLICIES[@]}" --initial A
    # counters continue across reloads: the exit line covers the whole run
    "${REPLAY[@]}" stats --log "$CASE_DIR/router.err" "packets_in=$sent" \
        "destinations.a.packets=$(lines "$CASE_DIR/a.json")" \
        "destinations.b.packets=$(lines "$CASE_DIR/b.json")" | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "the exit counters do not cover the whole run"
    it_case_end
}

# ---------------------------------------------------------------- broken

case_broken() {
    it_case_begin broken "a file with errors under load: logged, old policy kept, nothing lost"
    local port listen expected line missing=0 sent
    it_start_sink a udp 0 -q
    it_start_sink b udp 0 -q
    port=$(it_free_port udp) || exit 1
    listen=$(listen_line "udp:127.0.0.1:$port")
    start_router "$listen
$(policy_body a b)"
    hepgen_bg hepgen bk -d "udp:127.0.0.1:$port" -d "udp:127.0.0.1:$port" -r "$RATE" -s "$SHORT_LOAD"
    sleep 0.7
    # policy B but two errors: a route to an unknown destination, a bad port
    local broken
    broken="$listen
$(policy_body b nowhere)"
    broken=${broken/${SINK_ADDR[b]}/udp:127.0.0.1:99999}
    reload "$broken" A fail
    it_alive "$HEPGEN_PID" || it_note "the failed reload came after the load ended (a slow machine?)"
    # what heprouter -t says of the same file, now in place
    expected=$("$HEPROUTER" -t -c "$ROUTER_CONF" 2>&1)
    [ $? = 1 ] || it_case_fail "heprouter -t accepts the broken file"
    [ "$(grep -c "^$ROUTER_CONF:[0-9]*:[0-9]*: " <<<"$expected")" -ge 2 ] ||
        it_fail "case $CASE: heprouter -t did not print two FILE:LINE:COL errors: $expected"
    while IFS= read -r line; do
        [[ $line =~ ^"$ROUTER_CONF":[0-9]+:[0-9]+:\  ]] || continue
        grep -qF -- "$line" <<<"$RELOAD_NEW" || { missing=1; it_case_fail "not logged at reload: $line"; }
    done <<<"$expected"
    ((missing)) || it_note "the reload logged each error of heprouter -t ($(grep -c "^$ROUTER_CONF:[0-9]*:[0-9]*: " <<<"$expected"))"
    [ "$GENERATION" = 1 ] || it_case_fail "generation $GENERATION after a failed reload"
    it_wait_exit "$HEPGEN_PID" $((SHORT_LOAD + 10))
    # the next good reload is generation 2, and its policy routes what follows
    reload "$listen
$(policy_body b a)" B
    hepgen post bp -d "udp:127.0.0.1:$port" -d "udp:127.0.0.1:$port" -n 2000 -r 4000
    sent=$(($(sent_by hepgen) + $(sent_by post)))
    it_wait_until "$ARRIVE_TIMEOUT" arrived "$sent" a b ||
        it_case_fail "only $(sink_total a b) of $sent packets arrived within ${ARRIVE_TIMEOUT}s"
    finish a b
    check --hepgen "bk=$CASE_DIR/hepgen.out" --hepgen "bp=$CASE_DIR/post.out" \
        --sink "a=$CASE_DIR/a.json" --sink "b=$CASE_DIR/b.json" "${POLICIES[@]}" --initial A
    it_case_end
}

# ---------------------------------------------------------------- listeners

# tcp_refused PORT: a TCP connection to 127.0.0.1:PORT is refused.
tcp_refused() {
    python3 - "$1" <<'EOF'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2).close()
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)
EOF
}

# ready_lists ADDR...: the ready file has a "listening ADDR" line for each.
ready_lists() {
    local a
    for a in "$@"; do
        grep -qx "listening $a" "$ROUTER_READY" || return 1
    done
}

port_closed() {
    ! it_port_listening "$1" "$2"
}

case_listeners() {
    it_case_begin listeners "UDP+TCP listener added, UDP+TCP removed, one UDP kept under load"
    local ports keep gone_u gone_t new_u new_t old new sent total
    it_start_sink a udp 0 -q
    it_start_sink b udp 0 -q
    mapfile -t ports < <(it_free_port_blocks 5 1 both)
    [ ${#ports[@]} = 5 ] || it_fail "case $CASE: no free ports"
    keep=${ports[0]} gone_u=${ports[1]} gone_t=${ports[2]} new_u=${ports[3]} new_t=${ports[4]}
    old=$(listen_line "udp:127.0.0.1:$keep" "udp:127.0.0.1:$gone_u" "tcp:127.0.0.1:$gone_t")
    new=$(listen_line "udp:127.0.0.1:$keep" "udp:127.0.0.1:$new_u" "tcp:127.0.0.1:$new_t")
    start_router "$old
$(policy_body a b)"
    it_port_listening tcp "$gone_t" || it_fail "case $CASE: heprouter does not listen on tcp $gone_t"
    hepgen_bg hepgen keep -d "udp:127.0.0.1:$keep" -d "udp:127.0.0.1:$keep" -r "$RATE" -s "$SHORT_LOAD"
    sleep 0.8
    reload "$new
$(policy_body a b)" A
    it_alive "$HEPGEN_PID" || it_note "the reload came after the load ended (a slow machine?)"
    logged_change "udp:127.0.0.1:$new_u"
    logged_change "tcp:127.0.0.1:$new_t"
    logged_change "udp:127.0.0.1:$gone_u"
    logged_change "tcp:127.0.0.1:$gone_t"
    # the ready file names the listeners now open (rewritten by the reload;
    # allowed a moment, as is the closing of the removed sockets)
    it_wait_until 2 ready_lists "udp:127.0.0.1:$keep" "udp:127.0.0.1:$new_u" "tcp:127.0.0.1:$new_t" ||
        it_case_fail "ready file after the reload: $(tr '\n' ' ' <"$ROUTER_READY")"
    ! grep -q ":$gone_u\$\|:$gone_t\$" "$ROUTER_READY" || it_case_fail "ready file still names a removed listener"
    it_wait_until 2 port_closed udp "$gone_u" || it_case_fail "udp port $gone_u is still open after its removal"
    it_wait_until 2 port_closed tcp "$gone_t" || it_case_fail "tcp port $gone_t still listens after its removal"
    tcp_refused "$gone_t" || it_case_fail "a connection to the removed tcp:$gone_t was not refused"
    # the new listeners route; what goes to the removed UDP port is lost
    hepgen new_udp nu -d "udp:127.0.0.1:$new_u" -n 400 -r 4000
    hepgen new_tcp nt -d "tcp:127.0.0.1:$new_t" -n 400 -r 4000
    it_run 10 "$HEPGEN" --prefix gone -q -d "udp:127.0.0.1:$gone_u" -n 100 -r 4000 >"$CASE_DIR/gone.out" 2>&1
    it_wait_exit "$HEPGEN_PID" $((SHORT_LOAD + 10))
    sent=$(sent_by hepgen)
    total=$((sent + $(sent_by new_udp) + $(sent_by new_tcp)))
    it_wait_until "$ARRIVE_TIMEOUT" arrived "$total" a b ||
        it_case_fail "only $(sink_total a b) of $total packets arrived within ${ARRIVE_TIMEOUT}s"
    sleep 0.2
    finish a b
    [ "$(cat "$CASE_DIR/a.json" "$CASE_DIR/b.json" | grep -c '"call_id":"gone-')" = 0 ] ||
        it_case_fail "packets sent to the removed udp:$gone_u were routed"
    check --hepgen "keep=$CASE_DIR/hepgen.out" --hepgen "nu=$CASE_DIR/new_udp.out" \
        --hepgen "nt=$CASE_DIR/new_tcp.out" --sink "a=$CASE_DIR/a.json" --sink "b=$CASE_DIR/b.json" \
        "${POLICIES[@]}" --initial A
    it_case_end
}

# ---------------------------------------------------------------- tcp_target

# dest_counts: from the last stats line, "ROUTED QUEUED": packets routed to
# destination d, and of those not yet written to its targets (heprouter's
# queue).
dest_counts() {
    python3 - "$CASE_DIR/router.err" <<'EOF'
import json, re, sys
line = [l for l in open(sys.argv[1], errors="replace") if "stats (SIGUSR1" in l][-1]
s = json.loads(re.search(r"\): (\{.*\})\s*$", line).group(1))
d = s["destinations"]["d"]
print(d["packets"], d["packets"] - sum(t["packets"] for t in d["targets"].values()))
EOF
}

# all_routed N: asks heprouter for its counters (SIGUSR1) and reads them;
# true when destination d has N packets routed.  Sets ROUTED and QUEUED.
all_routed() {
    it_usr1_stats || it_fail "case $CASE: no counters after SIGUSR1"
    read -r ROUTED QUEUED < <(dest_counts) || it_fail "case $CASE: cannot read the counters"
    [ "$ROUTED" -ge "$1" ]
}

# tcp_body SINK: every route to destination d, one TCP target: SINK.
tcp_body() {
    cat <<EOF
workers: $WORKERS
limits: { tcp_queue_bytes: $QUEUE_BYTES }
destinations:
  d: { targets: [ "${SINK_ADDR[$1]}" ] }
routes:
  - { name: invite-calls, match: { method: [ INVITE ] }, to: [ d ] }
  - { name: register-calls, match: { method: [ REGISTER ] }, to: [ d ] }
  - { name: options-calls, match: { method: [ OPTIONS ] }, to: [ d ] }
default: [ d ]
EOF
}

case_tcp_target() {
    it_case_begin tcp_target "a TCP destination moved to another sink while its queue holds packets"
    local port listen routed t_routed before t_cont
    it_start_sink a tcp 0 -u -q
    it_start_sink b tcp 0 -u -q
    port=$(it_free_port udp) || exit 1
    listen=$(listen_line "udp:127.0.0.1:$port")
    start_router "$listen
$(tcp_body a)"
    hepgen warm warm -d "udp:127.0.0.1:$port" -d "udp:127.0.0.1:$port" -n 200 -r 4000
    it_wait_until "$ARRIVE_TIMEOUT" arrived "$(sent_by warm)" a || it_fail "case $CASE: the TCP sink got nothing"
    kill -STOP "${SINK_PID[a]}"
    hepgen held held -d "udp:127.0.0.1:$port" -d "udp:127.0.0.1:$port" -n "$HELD_PACKETS" -r "$RATE"
    # every packet sent so far routed (the counters say so): routed before R
    routed=$(($(sent_by warm) + $(sent_by held)))
    IT_POLL=0.2 it_wait_until 10 all_routed "$routed" ||
        it_fail "case $CASE: heprouter routed $ROUTED of $routed packets"
    t_routed=$(now)
    before=$(lines "$CASE_DIR/a.json")
    it_note "sink a stopped at $before packets; heprouter routed $ROUTED, holds $QUEUED in its queue"
    ((QUEUED >= MIN_QUEUED)) || it_case_fail "only $QUEUED packets queued (< $MIN_QUEUED): the test proves nothing"
    # the reload may answer before the old queue drains, or only after: the
    # stopped sink is resumed when heprouter answered or after 1 s
    write_config "$ROUTER_CONF" "$listen
$(tcp_body b)"
    local log=$CASE_DIR/router.err skip t_req t_ack=""
    skip=$(wc -l <"$log")
    t_req=$(now)
    kill -HUP "$ROUTER_PID"
    if it_wait_until 1 answered "$log" "$skip" 2 0; then t_ack=$(now); fi
    hepgen mid mid -d "udp:127.0.0.1:$port" -n 500 -r 4000     # either sink
    t_cont=$(now)
    kill -CONT "${SINK_PID[a]}"
    if [ -z "$t_ack" ]; then
        it_wait_until "$ACK_TIMEOUT" answered "$log" "$skip" 2 0 && t_ack=$(now)
    fi
    RELOAD_NEW=$(tail -n +"$((skip + 1))" "$log")
    if [ -z "$t_ack" ] || ! grep -qF "configuration reloaded: generation 2" <<<"$RELOAD_NEW"; then
        it_case_fail "no 'configuration reloaded: generation 2' within ${ACK_TIMEOUT}s of resuming the sink"
        t_ack=$(now)
    fi
    it_note "answer $(awk -v a="$t_ack" -v c="$t_cont" 'BEGIN { print (a < c) ? "before" : "after" }') the sink resumed"
    printf '%s %s B\n' "$t_req" "$t_ack" >"$EVENTS"
    logged_change "${SINK_ADDR[b]}"
    hepgen post post -d "udp:127.0.0.1:$port" -d "udp:127.0.0.1:$port" -n 2000 -r 4000   # sink b only
    local total=$(($(sent_by warm) + $(sent_by held) + $(sent_by mid) + $(sent_by post)))
    it_wait_until "$ARRIVE_TIMEOUT" arrived "$total" a b ||
        it_case_fail "only $(sink_total a b) of $total packets arrived within ${ARRIVE_TIMEOUT}s"
    (($(lines "$CASE_DIR/a.json") >= before + QUEUED)) ||
        it_case_fail "sink a got $(($(lines "$CASE_DIR/a.json") - before)) packets after resuming, $QUEUED were queued"
    finish a b
    check --hepgen "warm=$CASE_DIR/warm.out@$t_routed" --hepgen "held=$CASE_DIR/held.out@$t_routed" \
        --hepgen "mid=$CASE_DIR/mid.out" --hepgen "post=$CASE_DIR/post.out" \
        --sink "a=$CASE_DIR/a.json" --sink "b=$CASE_DIR/b.json" \
        --policy A:inv=a,reg=a,opt=a --policy B:inv=b,reg=b,opt=b --initial A
    it_case_end
}

# ---------------------------------------------------------------- ctl_reload
# LEAD: DROP THIS CASE (and its IT_CASES entry) IF THE CONTROL SOCKET IS NOT
# MERGED.  It assumes control: { socket: PATH } and `heprouter ctl -s PATH
# reload` answering JSON that contains "generation".

case_ctl_reload() {
    it_case_begin ctl_reload "heprouter ctl -s SOCK reload"
    local port listen sock answer t_req t_ack
    it_start_sink a udp 0 -q
    it_start_sink b udp 0 -q
    port=$(it_free_port udp) || exit 1
    listen=$(listen_line "udp:127.0.0.1:$port")
    sock=$CASE_DIR/ctl.sock
    start_router "$listen
control: { socket: \"$sock\" }
$(policy_body a b)"
    write_config "$ROUTER_CONF" "$listen
control: { socket: \"$sock\" }
$(policy_body b a)"
    t_req=$(now)
    answer=$(it_run 10 "$HEPROUTER" ctl -s "$sock" reload 2>&1)
    local rc=$?
    t_ack=$(now)
    it_note "ctl reload (status $rc): $answer"
    [ "$rc" = 0 ] || it_case_fail "heprouter ctl reload exited with status $rc"
    python3 -c 'import json, sys; sys.exit(0 if json.loads(sys.argv[1]).get("generation") == 2 else 1)' \
        "$answer" 2>/dev/null || it_case_fail "the answer is not JSON with \"generation\": 2"
    it_wait_until "$ACK_TIMEOUT" grep -qF "configuration reloaded: generation 2" "$CASE_DIR/router.err" ||
        it_case_fail "no 'configuration reloaded: generation 2' in the log"
    printf '%s %s B\n' "$t_req" "$t_ack" >"$EVENTS"
    hepgen hepgen ctl -d "udp:127.0.0.1:$port" -n 1000 -r 4000
    it_wait_until "$ARRIVE_TIMEOUT" arrived "$(sent_by hepgen)" a b ||
        it_case_fail "only $(sink_total a b) of $(sent_by hepgen) packets arrived"
    finish a b
    check --hepgen "ctl=$CASE_DIR/hepgen.out" --sink "a=$CASE_DIR/a.json" --sink "b=$CASE_DIR/b.json" \
        "${POLICIES[@]}" --initial A
    it_case_end
}

it_run_cases "$@"
