# shellcheck shell=bash disable=SC2034
# (SC2034: the IT_* variables are read by the scripts that source this.)
#
# tests/integration/lib.sh - shell helpers shared by the integration tests.
#
# Source it from a bash test script, then call it_init:
#
#   . "$(dirname "$0")/lib.sh"
#   it_init 120                       # scratch dir, cleanup trap, 120 s limit
#   it_start_hepdump sink -l udp:127.0.0.1:0 -o "$IT_TMP/sink.json"
#   port=$(it_listen_port "$IT_TMP/sink.ready" udp)
#   ...
#   it_stop "$IT_PID"
#
# Ports: heprouter and hepdump listen on port 0 and say which port the
# kernel gave in their --ready-file ("listening udp:127.0.0.1:PORT" lines,
# read with it_listen_port); it_start_router and it_start_sink do this.
# Programs that cannot (redis-server, Kamailio, sipp) and ports kept closed
# on purpose get theirs from the one picker, e2e/free_ports.py, through
# it_free_port and it_free_port_blocks.
#
# Every process started with it_start is stopped at exit (TERM, then KILL
# after a bounded wait), by PID: start single processes (a wrapper script
# should exec its program), since only that PID is signalled.  Failures print
# what went wrong and the end of each started process's stderr, then exit 1;
# so does it_cannot_run, for a test that lacks a program: never a skip.  Inside
# $(...) a failing helper only ends the subshell, so write
#   port=$(it_listen_port "$ready" udp) || exit 1
#
# Environment:
#   BUILD_DIR    top build directory (default: $top_builddir, else build/ in the tree)
#   IT_KEEP_TMP  1: keep the scratch directory even when the test passes
#
# Tests made of cases (test_router.sh and the others that start heprouter)
# use the it_case_*, it_*_router and it_start_sink helpers below, which
# share this state:
#   CASE         the current case's name; "" before the first it_case_begin
#   CASE_DIR     its files: $IT_TMP/$CASE ($IT_TMP when CASE is "")
#   CASE_OK      1 until it_case_fail is called in the case
#   CASE_T0      when the case began (date +%s%N)
#   FAILED       names of the failed cases, for the test's verdict
#   IT_CASES     every case of the test, in order (the test sets it; a case
#                NAME is the function case_NAME; see it_run_cases)
#   HEPROUTER    the heprouter binary (the test sets it: it_bin src/heprouter)
#   IT_ROUTER_LISTEN  what heprouter listens on: "udp tcp" (default), "udp",
#                "tcp"; one listener on port 0 per transport
#   ROUTER_PID   the heprouter it_start_router started ("" when none)
#   ROUTER_ADDR[udp], ROUTER_ADDR[tcp]  where it listens, as its ready file
#                says: "udp:127.0.0.1:PORT" (each transport has its own port)
#   ROUTER_PORT  the port of IT_ROUTER_LISTEN's first transport (udp unless
#                IT_ROUTER_LISTEN is "tcp")
#   ROUTER_READY its --ready-file, $CASE_DIR/NAME.ready
#   SINK_PID[NAME], SINK_ADDR[NAME]  the hepdump sinks of it_start_sink
#                (pid; "udp:127.0.0.1:PORT"); emptied by it_case_begin
# A case looks like
#   it_case_begin invite "INVITE to voipmonitor"
#   it_start_sink voipmonitor
#   it_start_router "$body"           # the config without its listen line
#   ...; [ "$n" = 3 ] || it_case_fail "got $n packets, expected 3"
#   it_stop_router; it_stop_all       # processes first, then
#   it_case_end                       # the verdict, with the log on failure

IT_SRCDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
IT_BUILDDIR=$(cd "${BUILD_DIR:-${top_builddir:-$IT_SRCDIR/build}}" && pwd)
IT_DATA=$IT_SRCDIR/tests/data/kamailio          # the Kamailio captures
# python3 may be a version manager's shim (pyenv's is a bash script that
# starts pyenv on every call, about half a second; the tests start python3
# hundreds of times): put the directory of the interpreter it resolves to
# first in PATH, the same python without the detour.
it_py_dir=$(python3 -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null) || it_py_dir=""
if [ -n "$it_py_dir" ] && [ -x "$it_py_dir/python3" ] && [ "$(command -v python3)" != "$it_py_dir/python3" ]; then
    export PATH="$it_py_dir:$PATH"
fi
IT_REPLAY=(python3 "$IT_SRCDIR/tests/integration/hepreplay.py" --data "$IT_DATA")
IT_NAME=$(basename "$0" .sh)
IT_TMP=
IT_PID=
IT_STATUS=
IT_PIDS=()
IT_NAMES=()
IT_WATCHDOG=
IT_STOP_GRACE=5         # seconds between TERM and KILL
IT_POLL=0.05            # seconds between checks while waiting
IT_FREE_PORTS=$IT_SRCDIR/tests/integration/e2e/free_ports.py   # the port picker
IT_READY_TIMEOUT=5      # seconds for heprouter to write its ready file
IT_ROUTER_LISTEN="udp tcp"
IT_CASE_LOG_LINES=30    # a failed case shows this many last lines of its logs,
IT_CASE_LOG_WIDTH=400   # each cut to this many characters (see CASE_DIR for all)

CASE=""
CASE_DIR=""
CASE_OK=1
CASE_T0=0
FAILED=()
IT_CASES=()
ROUTER_PID=""
ROUTER_PORT=""
ROUTER_READY=""
declare -A ROUTER_ADDR=() SINK_PID=() SINK_ADDR=()

it_log() {
    printf '[%s] %s\n' "$IT_NAME" "$*" >&2
}

# Prints the last lines of every started process's stderr.
it_dump_logs() {
    local i f
    for i in "${!IT_NAMES[@]}"; do
        f="$IT_TMP/${IT_NAMES[$i]}.err"
        if [ -s "$f" ]; then
            printf -- '--- %s (pid %s) stderr, last lines:\n' "${IT_NAMES[$i]}" "${IT_PIDS[$i]:-stopped}" >&2
            tail -n 20 "$f" >&2
        fi
    done
}

it_fail() {
    printf '[%s] FAIL: %s\n' "$IT_NAME" "$*" >&2
    it_dump_logs
    exit 1
}

it_cannot_run() {
    printf '[%s] FAIL: cannot run: %s\n' "$IT_NAME" "$*" >&2
    exit 1
}

# it_require_cmd CMD...: fail the test when a program is not installed.
it_require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || it_cannot_run "$c is not installed (scripts/deps.sh test installs what the tests need)"
    done
}

# it_bin PATH: absolute path of a program built in the build tree.
it_bin() {
    local p="$IT_BUILDDIR/$1"
    [ -x "$p" ] || it_fail "$p is not built (run make, or set BUILD_DIR)"
    printf '%s\n' "$p"
}

# it_init [MAX_SECONDS]: scratch directory, exit trap, whole-test time limit.
it_init() {
    local max=${1:-300}
    IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/heprouter-$IT_NAME.XXXXXX") || it_fail "mktemp"
    CASE_DIR=$IT_TMP
    trap it_cleanup EXIT
    trap 'it_fail "interrupted"' INT
    trap 'it_fail "time limit of '"$max"' s exceeded"' TERM
    # Polls instead of one long sleep so that nothing outlives the test by
    # more than a second.
    (
        trap - TERM
        end=$((SECONDS + max))
        while [ "$SECONDS" -lt "$end" ]; do sleep 1; done
        kill -TERM $$ 2>/dev/null
    ) &
    IT_WATCHDOG=$!
}

it_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    it_stop_all
    if [ -n "$IT_WATCHDOG" ]; then
        kill "$IT_WATCHDOG" 2>/dev/null || true
        wait "$IT_WATCHDOG" 2>/dev/null || true   # 143: it was killed, as meant
    fi
    if [ -n "$IT_TMP" ]; then
        if [ "$rc" -ne 0 ] || [ "${IT_KEEP_TMP:-0}" = 1 ]; then
            it_log "kept $IT_TMP"
        else
            rm -rf "$IT_TMP"
        fi
    fi
    exit "$rc"
}

# it_start NAME CMD [ARG...]: runs CMD in the background with stdout and
# stderr in $IT_TMP/NAME.out and NAME.err (NAME may have subdirectories);
# sets IT_PID.
it_start() {
    local name=$1
    shift
    mkdir -p "$(dirname "$IT_TMP/$name")"
    "$@" >"$IT_TMP/$name.out" 2>"$IT_TMP/$name.err" </dev/null &
    IT_PID=$!
    IT_PIDS+=("$IT_PID")
    IT_NAMES+=("$name")
}

it_alive() {
    kill -0 "$1" 2>/dev/null
}

# True when PID has exited but is not reaped yet (kill -0 still succeeds).
it_zombie() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }           # the state letter follows "(comm) "
    [ "${stat%% *}" = Z ]
}

# it_stop PID [GRACE]: TERM, then KILL after GRACE seconds; reaps it and
# sets IT_STATUS to its exit status (143 for TERM, 137 for KILL).
it_stop() {
    local pid=$1 grace=${2:-$IT_STOP_GRACE} end
    if it_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        end=$(($(date +%s%N) + grace * 1000000000))
        while it_alive "$pid" && [ "$(date +%s%N)" -lt "$end" ]; do
            it_zombie "$pid" && break
            sleep "$IT_POLL"
        done
        if it_alive "$pid" && ! it_zombie "$pid"; then
            it_log "pid $pid ignored TERM for ${grace}s: KILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    # (written for set -e: a non-zero status is the answer, not a failure)
    IT_STATUS=0
    wait "$pid" 2>/dev/null || IT_STATUS=$?
    return 0
}

# Stops every started process, the last started first.
# it_forget PID: drop a PID this shell has reaped (it_wait_exit) from the exit trap's list
it_forget() {
    local i
    for i in "${!IT_PIDS[@]}"; do
        [ "${IT_PIDS[$i]}" = "$1" ] && unset 'IT_PIDS[i]' 'IT_NAMES[i]'
    done
    IT_PIDS=("${IT_PIDS[@]}")
    IT_NAMES=("${IT_NAMES[@]}")
}

it_stop_all() {
    local i
    for ((i = ${#IT_PIDS[@]} - 1; i >= 0; i--)); do
        it_stop "${IT_PIDS[$i]}"
    done
    IT_PIDS=()
}

# it_wait_exit PID TIMEOUT: waits for PID to end by itself; sets IT_STATUS.
# Fails (and stops it) if it is still running after TIMEOUT seconds.
it_wait_exit() {
    local pid=$1 timeout=$2
    it_wait_until "$timeout" it_exited "$pid" || {
        it_stop "$pid"
        it_fail "pid $pid still running after ${timeout}s"
    }
    IT_STATUS=0
    wait "$pid" 2>/dev/null || IT_STATUS=$?
}

it_exited() {
    ! it_alive "$1" || it_zombie "$1"
}

# it_wait_until TIMEOUT CMD [ARG...]: polls CMD until it succeeds; returns 1
# after TIMEOUT seconds (fractions allowed).
it_wait_until() {
    local timeout=$1 end
    shift
    end=$(($(date +%s%N) + $(awk -v t="$timeout" 'BEGIN { printf "%.0f", t * 1000000000 }')))
    until "$@"; do
        [ "$(date +%s%N)" -lt "$end" ] || return 1
        sleep "$IT_POLL"
    done
}

# it_run TIMEOUT CMD [ARG...]: runs CMD in the foreground, killed after
# TIMEOUT seconds (KILL 2 s later if TERM is not enough); returns its status.
it_run() {
    local timeout=$1
    shift
    timeout -k 2 "$timeout" "$@"
}

# it_wait_for_file FILE [TIMEOUT]
it_wait_for_file() {
    it_wait_until "${2:-10}" test -s "$1" || it_fail "$1 did not appear within ${2:-10}s"
}

it_port_listening() {
    local proto=$1 port=$2 flag=-lnt
    [ "$proto" = udp ] && flag=-lnu
    [ -n "$(ss -H "$flag" "sport = :$port" 2>/dev/null)" ]
}

# it_wait_for_port udp|tcp PORT [TIMEOUT]: until something listens there.
it_wait_for_port() {
    it_wait_until "${3:-10}" it_port_listening "$1" "$2" ||
        it_fail "nothing listens on $1 port $2 after ${3:-10}s"
}

# it_free_port [udp|tcp|both]: a port free on 127.0.0.1 for the given
# protocol(s) (default both), for a program that cannot take port 0
# (redis-server, Kamailio) or a port kept closed on purpose.  This test is
# never given the same port twice.  Another program may still take it
# before yours binds it: retry on a bind failure.  heprouter and hepdump
# take port 0 instead (it_start_router, it_start_sink).
it_free_port() {
    it_free_port_blocks 1 1 "${1:-both}"
}

# it_free_port_blocks COUNT SIZE [udp|tcp|both]: COUNT ports, one a line,
# each the first of SIZE consecutive free ports that no other block of this
# test overlaps (sipp: 8, see free_ports.py).
it_free_port_blocks() {
    python3 "$IT_FREE_PORTS" --block "$2" --proto "${3:-both}" \
        --given "${IT_TMP:?call it_init first}/ports.given" "$1" ||
        it_fail "no free port found (free_ports.py: $1 block(s) of $2, ${3:-both})"
}

# it_listen_addr READY_FILE udp|tcp [N]: the Nth (default 1st) "listening
# PROTO:ADDR:PORT" line of a ready file (hepdump's or heprouter's
# --ready-file), as PROTO:ADDR:PORT.
it_listen_addr() {
    local addr
    addr=$(grep "^listening $2:" "$1" | sed -n "${3:-1}p" | sed 's/^listening //')
    [ -n "$addr" ] || it_fail "no $2 listener number ${3:-1} in $1"
    printf '%s\n' "$addr"
}

# it_listen_port READY_FILE udp|tcp [N]: the port of that line.
it_listen_port() {
    local addr
    addr=$(it_listen_addr "$@") || exit 1
    printf '%s\n' "${addr##*:}"
}

# it_start_hepdump NAME [HEPDUMP ARGS...]: starts tools/hepdump with
# --ready-file $IT_TMP/NAME.ready and waits until all its listeners are
# bound; sets IT_PID.  Read ports with it_listen_port $IT_TMP/NAME.ready.
it_start_hepdump() {
    local name=$1 ready="$IT_TMP/$1.ready" bin
    shift
    bin=$(it_bin tools/hepdump) || exit 1
    rm -f "$ready"
    it_start "$name" "$bin" --ready-file "$ready" "$@"
    it_wait_until 10 it_ready_or_dead "$ready" "$IT_PID" || it_fail "hepdump $name: not ready after 10s"
    [ -s "$ready" ] || it_fail "hepdump $name exited before binding"
}

it_ready_or_dead() {
    [ -s "$1" ] || it_exited "$2"
}

# it_summary_field FILE KEY: a number from the last hepdump summary line.
it_summary_field() {
    grep '^{"packets":' "$1" | tail -n 1 | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"
}

it_assert_eq() {
    [ "$1" = "$2" ] || it_fail "${3:-values differ}: expected '$1', got '$2'"
}

# ---------------------------------------------------------------- cases

# it_note MESSAGE: a progress line on stdout, "[test_x HH:MM:SS] MESSAGE"
# (it_log writes to stderr, without the time).
it_note() {
    printf '[%s %(%H:%M:%S)T] %s\n' "$IT_NAME" -1 "$*"
}

# it_case_begin NAME DESCRIPTION: a new case: sets CASE, CASE_DIR (made),
# CASE_OK=1 and CASE_T0; forgets the previous case's heprouter and sinks.
it_case_begin() {
    CASE=$1
    CASE_DIR=$IT_TMP/$CASE
    CASE_OK=1
    CASE_T0=$(date +%s%N)
    ROUTER_PID=""
    ROUTER_PORT=""
    ROUTER_READY=""
    ROUTER_ADDR=()
    SINK_PID=()
    SINK_ADDR=()
    mkdir -p "$CASE_DIR"
    it_note "case $CASE: $2"
}

# it_case_fail MESSAGE: a failed assertion.  The case goes on (to show
# everything that is wrong) and is counted failed by it_case_end; broken
# setup calls it_fail instead, which ends the test.
it_case_fail() {
    printf '[%s] FAIL%s: %s\n' "$IT_NAME" "${CASE:+ $CASE}" "$*"
    CASE_OK=0
}

# it_case_end [LOG...]: the case's verdict: "case NAME: ok (N ms)"; or NAME
# joins FAILED and the last lines of each LOG (default $CASE_DIR/router.err)
# are shown.  Stop the case's processes first (it_stop_router, it_stop_all).
it_case_end() {
    local ms=$((($(date +%s%N) - CASE_T0) / 1000000)) f
    if ((CASE_OK)); then
        it_note "case $CASE: ok (${ms} ms)"
        return 0
    fi
    FAILED+=("$CASE")
    printf '[%s] case %s failed (%s ms); logs in %s\n' "$IT_NAME" "$CASE" "$ms" "$CASE_DIR"
    [ $# -gt 0 ] || set -- "$CASE_DIR/router.err"
    for f in "$@"; do
        [ -f "$f" ] || continue
        printf '  %s (last %s lines):\n' "${f##*/}" "$IT_CASE_LOG_LINES"
        tail -n "$IT_CASE_LOG_LINES" "$f" | cut -c1-"$IT_CASE_LOG_WIDTH" | sed 's/^/    /'
    done
    return 0
}

# it_run_cases [NAME...]: runs case_NAME for each NAME (default: IT_CASES),
# having checked that each exists (else exit 2); then logs how many failed
# and returns 0 when none did: end the test with it.
it_run_cases() {
    local c start=$SECONDS
    [ $# -gt 0 ] || set -- "${IT_CASES[@]}"
    for c in "$@"; do
        declare -F "case_$c" >/dev/null || { echo "unknown case $c (known: ${IT_CASES[*]})"; exit 2; }
    done
    for c in "$@"; do
        "case_$c"
    done
    it_note "done in $((SECONDS - start)) s: ${#FAILED[@]} case(s) failed${FAILED[*]:+: ${FAILED[*]}}"
    [ ${#FAILED[@]} -eq 0 ]
}

# it_seq_items VERSION FROM TO: hepreplay items of tests/data/kamailio,
# "v3 7 9" -> "v3/007 v3/008 v3/009 " (split on purpose by the caller).
it_seq_items() {
    local v=$1 i
    for ((i = $2; i <= $3; i++)); do
        printf '%s/%03d ' "$v" "$i"
    done
}

# ---------------------------------------------------------------- heprouter, sinks

# it_start_sink NAME [udp|tcp [PORT [HEPDUMP_OPTION...]]]: a hepdump on
# 127.0.0.1:PORT (default udp, port 0: one it picks) writing
# $CASE_DIR/NAME.json, with the options given (default --raw -u -q); sets
# SINK_PID[NAME] and SINK_ADDR[NAME] ("udp:127.0.0.1:P").
it_start_sink() {
    local name=$1 transport=${2:-udp} port=${3:-0} opts=(--raw -u -q)
    shift $(($# < 3 ? $# : 3))
    [ $# -eq 0 ] || opts=("$@")
    it_start_hepdump "${CASE:+$CASE/}$name" -l "$transport:127.0.0.1:$port" -o "$CASE_DIR/$name.json" "${opts[@]}"
    SINK_PID[$name]=$IT_PID
    SINK_ADDR[$name]=$transport:127.0.0.1:$(it_listen_port "$CASE_DIR/$name.ready" "$transport") || exit 1
}

# it_usr1_stats [PID]: SIGUSR1 to heprouter (default ROUTER_PID), then waits
# up to 5 s for one more "stats (SIGUSR1" line in $CASE_DIR/router.err;
# false when none came.
it_usr1_stats() {
    local before
    before=$(grep -c 'stats (SIGUSR1' "$CASE_DIR/router.err")
    kill -USR1 "${1:-$ROUTER_PID}"
    it_wait_until 5 it_stats_lines_over "$before"
}

# it_stats_lines_over N: $CASE_DIR/router.err has more than N SIGUSR1 stats lines.
it_stats_lines_over() {
    [ "$(grep -c 'stats (SIGUSR1' "$CASE_DIR/router.err")" -gt "$1" ]
}

# it_stats_match EXPR...: a fresh SIGUSR1 stats line matches every EXPR
# (hepreplay.py stats: name=N, name>=N, ...).
it_stats_match() {
    it_usr1_stats || return 1
    "${IT_REPLAY[@]}" stats --log "$CASE_DIR/router.err" "$@" >/dev/null
}

# it_stats_until TIMEOUT EXPR...: SIGUSR1 every poll until the counters
# match (heprouter may still be reading what was sent), then reports them
# and fails the case if they differ.
it_stats_until() {
    local timeout=$1
    shift
    it_wait_until "$timeout" it_stats_match "$@"
    "${IT_REPLAY[@]}" stats --log "$CASE_DIR/router.err" "$@" | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_case_fail "counters differ"
}

# it_counter PATH: a counter of the last stats line in $CASE_DIR/router.err,
# PATH slash-separated (destinations/NAME/targets/ADDR/packets); a group
# (an object) gives the sum of its values; empty when absent.
it_counter() {
    python3 - "$CASE_DIR/router.err" "$1" <<'EOF'
import json, re, sys
last = None
for line in open(sys.argv[1], errors="replace"):
    m = re.search(r"stats \([^)]*\): (\{.*\})\s*$", line)
    if m:
        last = m.group(1)
node = json.loads(last) if last else {}
for part in sys.argv[2].split("/"):
    node = node.get(part) if isinstance(node, dict) else None
print(sum(node.values()) if isinstance(node, dict) else ("" if node is None else node))
EOF
}

# it_target DEST TARGET: the it_counter path of a target's counters.
it_target() { printf 'destinations/%s/targets/%s' "$1" "$2"; }

# it_arrive NAME N: until sink NAME holds N packets (up to ARRIVE_TIMEOUT
# seconds, default 10; then a short settle, to see extra ones); fails the
# case if it holds another number.
it_arrive() {
    it_wait_until "${ARRIVE_TIMEOUT:-10}" it_sink_has "$1" "$2" || true
    sleep 0.2
    local got
    got=$(it_sink_lines "$1")
    echo "    sink $1: $got packet(s), expected $2"
    [ "$got" = "$2" ] || it_case_fail "sink $1 got $got packets, expected $2"
}

# it_sink_lines NAME: packets sink NAME has written to $CASE_DIR/NAME.json so far.
it_sink_lines() {
    local n
    n=$(grep -c '^{"n":' "$CASE_DIR/$1.json" 2>/dev/null)
    echo "${n:-0}"
}

# it_sink_has NAME N: sink NAME holds at least N packets.
it_sink_has() { (($(it_sink_lines "$1") >= $2)); }

# it_root_line: "allow_root: true" and a newline when the tests run as root
# (heprouter refuses to route packets as root without it), else nothing.
it_root_line() {
    [ "$(id -u)" != 0 ] || printf 'allow_root: true\n'
}

# it_router_config PORT CONFIG_BODY: a whole heprouter config on stdout: a
# comment naming the test and case, the listen line (PORT, 0 for
# it_start_router, on each transport of IT_ROUTER_LISTEN), it_root_line
# unless CONFIG_BODY says allow_root: or user: itself, then CONFIG_BODY.
it_router_config() {
    local proto listen="" root=""
    for proto in $IT_ROUTER_LISTEN; do
        listen+="${listen:+, }\"$proto:127.0.0.1:$1\""
    done
    grep -Eq '^(allow_root|user):' <<<"$2" || root=$(it_root_line)
    printf '# written by %s.sh%s\nlisten: [ %s ]\n%s%s\n' "$IT_NAME" "${CASE:+, case $CASE}" "$listen" \
        "${root:+$root$'\n'}" "$2"
}

# it_sipp_uac NAME SCENARIO PORT BASE CID_PREFIX CALLS RATE LIMIT: a SIPp
# UAC playing tests/integration/e2e/SCENARIO against 127.0.0.1:PORT from
# local ports BASE..BASE+2: CALLS calls at RATE per second, Call-IDs
# CID_PREFIX-N-PID@host, stopped after LIMIT seconds; its output in
# $CASE_DIR/sipp_NAME.out and .errors; sets IT_PID.
it_sipp_uac() {
    local name=$1 sf=$2 port=$3 base=$4 cid=$5 n=$6 rate=$7 limit=$8
    it_start "${CASE:+$CASE/}sipp_$name" timeout -k 2 "$limit" sipp "127.0.0.1:$port" \
        -sf "$IT_SRCDIR/tests/integration/e2e/$sf" \
        -i 127.0.0.1 -ci 127.0.0.1 -p "$base" -cp "$((base + 1))" -mp "$((base + 2))" \
        -cid_str "$cid-%u-%p@%s" -m "$n" -r "$rate" -l "$n" \
        -timeout 20s -timeout_error -recv_timeout 5s -nostdin \
        -trace_err -error_file "$CASE_DIR/sipp_$name.errors"
}

# it_two_sink_policy VOIP_METHODS: the policy most tests route by, as
# config text: the voipmonitor sink gets the calls whose origin is one of
# VOIP_METHODS ("INVITE" or "INVITE, SUBSCRIBE") as HEPv3, the homer sink
# REGISTER, OPTIONS and the rest; sink addresses from SINK_ADDR.
it_two_sink_policy() {
    cat <<EOF
destinations:
  homer: { targets: [ "${SINK_ADDR[homer]}" ] }
  voipmonitor: { targets: [ "${SINK_ADDR[voipmonitor]}" ], hep_version: 3 }
routes:
  - { match: { method: [ $1 ] }, to: [ voipmonitor ] }
  - { match: { method: [ REGISTER, OPTIONS ] }, to: [ homer ] }
default: [ homer ]
EOF
}

# it_start_router [-n NAME] CONFIG_BODY [LAUNCHER...]: writes
# $CASE_DIR/NAME.yaml (NAME default router; it_router_config on port 0),
# starts $HEPROUTER -c on it with --ready-file $CASE_DIR/NAME.ready,
# through LAUNCHER if given (e.g. prlimit ..., which must exec it), its
# stderr in $CASE_DIR/NAME.err, and waits for the ready file; sets
# ROUTER_PID, ROUTER_READY, ROUTER_ADDR and ROUTER_PORT from it (the ports
# the kernel gave).  Exiting before it is ready, or no ready file within
# IT_READY_TIMEOUT seconds, fails the test.
it_start_router() {
    local name=router body proto err ready what
    if [ "${1:-}" = -n ]; then
        name=$2
        shift 2
    fi
    body=$1
    shift
    err=$CASE_DIR/$name.err
    ready=$CASE_DIR/$name.ready
    what="${CASE:+case $CASE: }heprouter ($name)"
    it_router_config 0 "$body" >"$CASE_DIR/$name.yaml"
    rm -f "$ready"
    it_start "${CASE:+$CASE/}$name" "$@" "${HEPROUTER:?set HEPROUTER (it_bin src/heprouter)}" \
        -c "$CASE_DIR/$name.yaml" --ready-file "$ready"
    ROUTER_PID=$IT_PID
    it_wait_until "$IT_READY_TIMEOUT" it_ready_or_dead "$ready" "$ROUTER_PID" || true
    if [ ! -s "$ready" ]; then
        if it_exited "$ROUTER_PID"; then
            it_fail "$what exited at startup: $(tail -n 5 "$err")"
        fi
        it_fail "$what wrote no $ready within ${IT_READY_TIMEOUT}s ($err)"
    fi
    ROUTER_READY=$ready
    ROUTER_ADDR=()
    for proto in $IT_ROUTER_LISTEN; do
        ROUTER_ADDR[$proto]=$proto:127.0.0.1:$(it_listen_port "$ready" "$proto") || exit 1
    done
    proto=${IT_ROUTER_LISTEN%% *}
    ROUTER_PORT=${ROUTER_ADDR[$proto]##*:}
}

# it_stop_router [PID [WHAT]]: SIGTERM to heprouter (default ROUTER_PID),
# which sends what it holds and drains; an exit status other than 0 fails
# the case: "WHAT (default heprouter) exited with status N after SIGTERM".
# shellcheck disable=SC2120  # (most callers pass no argument)
it_stop_router() {
    local pid=${1:-$ROUTER_PID} what=${2:-heprouter}
    [ -n "$pid" ] || return 0
    it_stop "$pid"
    [ "$pid" != "$ROUTER_PID" ] || ROUTER_PID=""
    ((IT_STATUS == 0)) || it_case_fail "$what exited with status $IT_STATUS after SIGTERM"
    return 0
}
