#!/usr/bin/env bash
# bench/redis_measure.sh - what the Redis call context store costs Redis,
# measured with a real redis-server and heprouter on loopback; writes
# bench/REDIS.md.  Not run by CI (takes a few minutes).
#
#   (a) memory per tracked call: 100k INVITEs with distinct Call-IDs go
#       through heprouter (paced at RATE packets/s; every one must reach
#       the sink and every call must have its key); the INFO memory
#       used_memory delta / calls, and MEMORY USAGE of sample keys.
#   (b) Redis commands per call: CONFIG RESETSTAT, one call through a fresh
#       heprouter (cold cache), INFO commandstats; then a second call
#       (another Call-ID) through the same, warm, instance.  For the INVITE
#       call with its 407 (the 16 v3 packets 007..022) and for a REGISTER
#       (003..006), with the cache on (entries 100000) and off (0).
#   Every figure is the median of RUNS runs, each with fresh processes.
#
#   BUILD_DIR=/tmp/build-redis bash bench/redis_measure.sh
#
# Environment (default): BUILD_DIR (/tmp/build-redis), RUNS (3),
# CALLS (100000), RATE (20000 packets/s), PKT_SPACING_MS (5: between the
# packets of one call in (b)), OUT (bench/REDIS.md; "-" for stdout only).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP_DIR=$(cd "$HERE/.." && pwd)
export BUILD_DIR=${BUILD_DIR:-/tmp/build-redis}
# shellcheck source-path=SCRIPTDIR source=../tests/integration/lib.sh
. "$TOP_DIR/tests/integration/lib.sh"

RUNS=${RUNS:-3}
CALLS=${CALLS:-100000}
RATE=${RATE:-20000}
PKT_SPACING_MS=${PKT_SPACING_MS:-5}
OUT=${OUT:-$HERE/REDIS.md}
WAIT_MS=200
PREFIX="heprouter:"
DATA=$TOP_DIR/tests/data/kamailio
CALLGEN=(python3 "$TOP_DIR/tests/integration/redis_calls.py" --data "$DATA")

it_init 1800
for c in python3 ss redis-server redis-cli timeout awk; do
    command -v "$c" >/dev/null 2>&1 || it_fail "$c is not installed"
done
HEPROUTER=$(it_bin src/heprouter) || exit 1
it_bin tools/hepdump >/dev/null || exit 1

log() { printf '[redis_measure %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

RPID="" RPORT="" HPID="" HPORT="" SINK_PIDS=() SINK_ADDR=""
redis_ready() { [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>&1)" = PONG ]; }
rcli() { timeout 10 redis-cli -h 127.0.0.1 -p "$RPORT" "$@"; }

start_redis() {
    local dir=$IT_TMP/redis.$1
    mkdir -p "$dir"
    for _ in 1 2 3; do
        RPORT=$(it_free_port tcp)
        it_start "redis.$1" redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir"
        RPID=$IT_PID
        it_wait_until 5 redis_ready "$RPORT" && return 0
        it_stop "$RPID"
    done
    it_fail "redis-server did not start"
}

# start_sink RUN: one hepdump counting what it gets (every route goes there)
start_sink() {
    it_start_hepdump "sink.$1" -l udp:127.0.0.1:0 --count -o "$IT_TMP/sink.$1.json" -q --rcvbuf 64M
    SINK_PIDS=("$IT_PID")
    SINK_ADDR=udp:127.0.0.1:$(it_listen_port "$IT_TMP/sink.$1.ready" udp)
}

router_ready() { grep -Eq '(^|[^[:alnum:]_])ready$' "$IT_TMP/router.$1.err" 2>/dev/null; }
router_ready_or_dead() { router_ready "$1" || it_exited "$HPID"; }

# start_router RUN CACHE_ENTRIES
start_router() {
    local run=$1 cache=$2
    for _ in 1 2 3; do
        HPORT=$(it_free_port both)
        cat >"$IT_TMP/router.$run.yaml" <<EOF
listen: [ "udp:127.0.0.1:$HPORT" ]
$(it_root_line)
workers: 1
orphans: { wait_ms: $WAIT_MS, max_held: 200000 }
ttl: { call: 4h, register: 1h, ended: 30s }
store:
  type: redis
  redis: { host: 127.0.0.1, port: $RPORT, prefix: "$PREFIX", timeout_ms: 50 }
  cache: { entries: $cache }
destinations:
  homer: { targets: [ "$SINK_ADDR" ] }
  voipmonitor: { targets: [ "$SINK_ADDR" ] }
routes:
  - { match: { method: [INVITE, SUBSCRIBE] }, to: [ voipmonitor ] }
  - { match: { method: [REGISTER, OPTIONS] }, to: [ homer ] }
default: [ homer ]
EOF
        it_start "router.$run" "$HEPROUTER" -c "$IT_TMP/router.$run.yaml"
        HPID=$IT_PID
        it_wait_until 5 router_ready_or_dead "$run"
        router_ready "$run" && return 0
        it_stop "$HPID"
    done
    it_fail "heprouter did not start: $(tail -n 5 "$IT_TMP/router.$run.err")"
}

stop_all() {
    it_stop "$HPID"
    local p
    for p in "${SINK_PIDS[@]}"; do it_stop "$p"; done
    it_stop "$RPID"
}

stat() { "${CALLGEN[@]}" stat --log "$IT_TMP/router.$1.err" "$2"; }
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
dbsize_is() { [ "$(rcli DBSIZE)" = "$1" ]; }
mem() { rcli INFO memory | sed -n "s/^$1:\([0-9]*\).*/\1/p"; }

# ---------------------------------------------------------------- (a) memory

MEM_ROWS=()
declare -a M_PER_CALL M_USAGE M_KEYLEN M_VALLEN M_PPS M_DATASET
for ((run = 1; run <= RUNS; run++)); do
    r=mem$run
    start_redis "$r"
    start_sink "$r"
    start_router "$r" 100000
    sleep 0.3
    before=$(mem used_memory)
    before_ds=$(mem used_memory_dataset)
    log "memory run $run: $CALLS INVITEs at $RATE/s (redis :$RPORT)"
    send=$(it_run 600 "${CALLGEN[@]}" send "udp:127.0.0.1:$HPORT" --template v3/007 --calls "$CALLS" \
        --prefix "m$run" --rate "$RATE") || it_fail "sender failed"
    log "  sender: $send"
    it_wait_until 60 dbsize_is "$CALLS" || it_fail "run $run: DBSIZE $(rcli DBSIZE), expected $CALLS"
    sleep 0.5
    after=$(mem used_memory)
    after_ds=$(mem used_memory_dataset)
    mapfile -t sample < <("${CALLGEN[@]}" callids --template v3/007 --calls 3 --first $((CALLS / 2)) --prefix "m$run")
    usage=0
    for c in "${sample[@]}"; do
        usage=$((usage + $(rcli MEMORY USAGE "${PREFIX}call:$c" SAMPLES 0)))
    done
    usage=$((usage / ${#sample[@]}))
    key="${PREFIX}call:${sample[0]}"
    val=$(rcli GET "$key")
    vlen=$(rcli STRLEN "$key")
    ttl=$(rcli TTL "$key")
    kill -USR1 "$HPID"
    sleep 0.3
    stop_all
    got=$(it_summary_field "$IT_TMP/sink.$r.json" packets)
    [ "$got" = "$CALLS" ] || it_fail "run $run: the sink got $got packets of $CALLS: lower RATE"
    [ "$(stat "$r" calls_new)" = "$CALLS" ] || it_fail "run $run: calls_new $(stat "$r" calls_new)"
    per=$(((after - before) / CALLS))
    per_ds=$(((after_ds - before_ds) / CALLS))
    pps=$(sed -n 's/.*"pps": \([0-9.]*\).*/\1/p' <<<"$send")
    log "  used_memory +$((after - before)) bytes: $per B/call (dataset $per_ds B/call); MEMORY USAGE $usage B; value $vlen B; writes $(stat "$r" store_writes), lost $(stat "$r" store_lost_writes)"
    M_PER_CALL+=("$per")
    M_DATASET+=("$per_ds")
    M_USAGE+=("$usage")
    M_KEYLEN+=("${#key}")
    M_VALLEN+=("$vlen")
    M_PPS+=("$pps")
    MEM_ROWS+=("| $run | $CALLS | $pps | $before | $after | $per | $per_ds | $usage | $(stat "$r" store_writes) | $(stat "$r" store_lost_writes) |")
    SAMPLE_KEY=$key SAMPLE_VAL=$val SAMPLE_TTL=$ttl
done

# ---------------------------------------------------------------- (b) commands per call

declare -A CMD          # "kind cache phase run cmd" -> count
declare -A CMDSET       # cmd names seen
declare -A HR           # "kind cache phase counter" -> counts per run
kinds=(invite register)
declare -A TEMPLATE=([invite]=v3/007-022 [register]=v3/003-006)

# commandstats NAME: "cmd calls" lines, without the measuring commands.
commandstats() {
    rcli INFO commandstats | tr -d '\r' |
        sed -n 's/^cmdstat_\([^:]*\):calls=\([0-9]*\),.*/\1 \2/p' |
        grep -Ev '^(info|config\|resetstat|config|monitor) '
}

hr_counters=(store_lookups store_hits store_misses store_writes store_cache_hits store_cache_misses orphans_held)
usr1_more() { (($(grep -c 'stats (SIGUSR1' "$IT_TMP/router.$1.err") > $2)); }
hr_snapshot() {     # hr_snapshot RUN -> "k=v" lines of the counters now
    local n k
    n=$(grep -c 'stats (SIGUSR1' "$IT_TMP/router.$1.err")
    kill -USR1 "$HPID"
    it_wait_until 5 usr1_more "$1" "$n" || it_fail "no stats line after SIGUSR1"
    for k in "${hr_counters[@]}"; do printf '%s=%s\n' "$k" "$(stat "$1" "$k")"; done
}

# trace SENDLOG MONITORFILE: packets and Redis commands on one time line
trace() {
    python3 - "$1" "$2" "$PREFIX" <<'PY'
import json, re, sys
ev = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    ev.append((r["t"], 0, "packet " + r["item"]))
for line in open(sys.argv[2], errors="replace"):
    m = re.match(r'([0-9.]+) \[[^\]]*\] "([A-Za-z]+)"(.*)', line)
    if m:
        args = m.group(3).replace(sys.argv[3] + "call:", "").strip()
        ev.append((float(m.group(1)), 1, "    redis %s %s" % (m.group(2).upper(), re.sub(r'"[^"]*@127\.0\.0\.1"', "KEY", args))))
ev.sort()
t0 = ev[0][0] if ev else 0
for t, _, e in ev:
    print("%8.1f ms  %s" % ((t - t0) * 1000.0, e))
PY
}

declare -A TRACE        # "kind cache" -> trace text of run 1's fresh call

one_call() {        # one_call RUN-NAME KIND CACHE PHASE CALLNO RUN-NUMBER
    local run=$1 kind=$2 cache=$3 phase=$4 n=$5 rn=$6 cmd calls before after k mon=""
    before=$(hr_snapshot "$run")
    if [ "$phase" = fresh ] && [ "$rn" = 1 ]; then
        it_start "monitor.$run" timeout 10 redis-cli -h 127.0.0.1 -p "$RPORT" MONITOR
        mon=$IT_PID
        sleep 0.2
    fi
    rcli CONFIG RESETSTAT >/dev/null
    it_run 30 "${CALLGEN[@]}" send "udp:127.0.0.1:$HPORT" --template "${TEMPLATE[$kind]}" --calls 1 \
        --first "$n" --prefix "c$run" --rate $((1000 / PKT_SPACING_MS)) --log "$IT_TMP/send.$run.$phase" \
        >/dev/null || it_fail "send failed"
    sleep $(((WAIT_MS + 400) / 1000)).$(((WAIT_MS + 400) % 1000 / 100))    # past every wait and recheck
    if [ -n "$mon" ]; then
        it_stop "$mon"
        TRACE["$kind $cache"]=$(trace "$IT_TMP/send.$run.$phase" "$IT_TMP/monitor.$run.out")
    fi
    while read -r cmd calls; do
        CMDSET[$cmd]=1
        CMD["$kind $cache $phase $rn $cmd"]=$calls
    done < <(commandstats)
    after=$(hr_snapshot "$run")
    for k in "${hr_counters[@]}"; do
        local b a
        b=$(sed -n "s/^$k=//p" <<<"$before")
        a=$(sed -n "s/^$k=//p" <<<"$after")
        HR["$kind $cache $phase $k"]+="$((a - b))"$'\n'
    done
}

for kind in "${kinds[@]}"; do
    for cache in 100000 0; do
        for ((run = 1; run <= RUNS; run++)); do
            r=cmd-$kind-$cache-$run
            start_redis "$r"
            start_sink "$r"
            start_router "$r" "$cache"
            sleep 0.3
            one_call "$r" "$kind" "$cache" fresh 1 "$run"
            one_call "$r" "$kind" "$cache" warm 2 "$run"
            stop_all
            log "commands: $kind, cache $cache, run $run done"
        done
    done
done

med_of() { printf '%s' "${1:-}" | grep . | median; }
# runs_of "KIND CACHE PHASE" CMD: the count of each run, one a line (0: not seen)
runs_of() {
    local r
    for ((r = 1; r <= RUNS; r++)); do echo "${CMD["$1 $r $2"]:-0}"; done
}
med_cmd() { runs_of "$1" "$2" | median; }

# ---------------------------------------------------------------- report

mapfile -t cmds < <(printf '%s\n' "${!CMDSET[@]}" | sort)
{
    echo "# Redis store: measured costs"
    echo
    echo "Written by \`bench/redis_measure.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo
    echo "- machine: $(uname -srm), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') x $(nproc), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM"
    echo "- $(redis-server --version | cut -d' ' -f1-3), default config but \`--save \"\" --appendonly no\`, on loopback"
    echo "- $("$HEPROUTER" -V 2>&1 | head -n 1), tree $(git -C "$TOP_DIR" describe --always --dirty 2>/dev/null || echo '?'), workers: 1, orphans.wait_ms $WAIT_MS, timeout_ms 50, prefix \`$PREFIX\`"
    echo "- $RUNS runs of each measurement, fresh redis-server, heprouter and sink each run; figures are medians"
    echo
    echo "## Memory per tracked call"
    echo
    echo "$CALLS INVITEs with distinct Call-IDs (\`v3/007\` with the Call-ID rewritten to"
    echo "\`mR-NNNNNN-inv-1-11219@127.0.0.1\`, $((${#SAMPLE_KEY} - ${#PREFIX} - 5)) bytes) sent through heprouter at $RATE packets/s;"
    echo "every packet reached the sink and every call had its key (DBSIZE = $CALLS) before"
    echo "\`used_memory\` was read again."
    echo
    echo "| | median |"
    echo "|---|---|"
    echo "| used_memory delta per call (bytes) | $(printf '%s\n' "${M_PER_CALL[@]}" | median) |"
    echo "| used_memory_dataset delta per call (bytes) | $(printf '%s\n' "${M_DATASET[@]}" | median) |"
    echo "| MEMORY USAGE of one key (bytes) | $(printf '%s\n' "${M_USAGE[@]}" | median) |"
    echo "| key length (bytes) | $(printf '%s\n' "${M_KEYLEN[@]}" | median) |"
    echo "| value length (bytes) | $(printf '%s\n' "${M_VALLEN[@]}" | median) |"
    echo
    echo "Sample: \`$SAMPLE_KEY\` = \`$SAMPLE_VAL\` (TTL $SAMPLE_TTL s)."
    echo
    echo "The used_memory delta includes what MEMORY USAGE leaves out: the main and expires"
    echo "dictionary slots (the key has a TTL) and hash table growth, so it is the figure to"
    echo "size Redis with: calls alive at once x this.  Longer Call-IDs (or prefixes) add"
    echo "their extra bytes, rounded up to the allocator's size classes; the dictionaries"
    echo "grow in powers of two (here 2 x 131072 slots of 8 bytes for 100k keys, ~21 B/call)."
    echo "Per run:"
    echo
    echo "| run | calls | sent pps | used_memory before | after | B/call | dataset B/call | MEMORY USAGE | store_writes | store_lost_writes |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${MEM_ROWS[@]}"
    echo
    echo "## Redis commands per call"
    echo
    echo "CONFIG RESETSTAT, one call, then INFO commandstats (the measuring commands left"
    echo "out).  *fresh*: the first call through a heprouter just started (cold cache);"
    echo "*warm*: a second call (another Call-ID) through the same heprouter.  Packets"
    echo "${PKT_SPACING_MS} ms apart, in capture order; INVITE call = v3/007..022 (INVITE, 407,"
    echo "ACK, INVITE with credentials, 100, 180, 200, ACK, BYE, 200: 16 packets), REGISTER ="
    echo "v3/003..006 (REGISTER, 401, REGISTER, 200: 4 packets)."
    echo
    printf '| call | cache entries | instance |'
    for c in "${cmds[@]}"; do printf ' %s |' "$c"; done
    printf ' total |\n|---|---|---|'
    for _ in "${cmds[@]}"; do printf -- '---|'; done
    printf -- '---|\n'
    for kind in "${kinds[@]}"; do
        for cache in 100000 0; do
            for phase in fresh warm; do
                printf '| %s | %s | %s |' "$kind" "$cache" "$phase"
                total=0
                for c in "${cmds[@]}"; do
                    v=$(med_cmd "$kind $cache $phase" "$c")
                    printf ' %s |' "$v"
                    total=$(awk -v a="$total" -v b="$v" 'BEGIN { print a + b }')
                done
                printf ' %s |\n' "$total"
            done
        done
    done
    echo
    echo "heprouter's own counters for the same calls (medians of the deltas):"
    echo
    printf '| call | cache entries | instance |'
    for k in "${hr_counters[@]}"; do printf ' %s |' "$k"; done
    printf '\n|---|---|---|'
    for _ in "${hr_counters[@]}"; do printf -- '---|'; done
    echo
    for kind in "${kinds[@]}"; do
        for cache in 100000 0; do
            for phase in fresh warm; do
                printf '| %s | %s | %s |' "$kind" "$cache" "$phase"
                for k in "${hr_counters[@]}"; do printf ' %s |' "$(med_of "${HR["$kind $cache $phase $k"]:-}")"; done
                echo
            done
        done
    done
    echo
    echo "Which packet makes which command: MONITOR during the fresh call of run 1"
    echo "(KEY is the call's key; times from the first packet sent):"
    for kind in "${kinds[@]}"; do
        for cache in 100000 0; do
            echo
            echo "$kind call, cache entries $cache:"
            echo
            echo '```'
            printf '%s\n' "${TRACE["$kind $cache"]:-}"
            echo '```'
        done
    done
    echo
    echo "Per-run command counts (runs 1..$RUNS):"
    echo
    for kind in "${kinds[@]}"; do
        for cache in 100000 0; do
            for phase in fresh warm; do
                printf -- '- %s, cache %s, %s:' "$kind" "$cache" "$phase"
                for c in "${cmds[@]}"; do
                    printf ' %s=%s' "$c" "$(runs_of "$kind $cache $phase" "$c" | paste -sd/)"
                done
                echo
            done
        done
    done
} >"$IT_TMP/REDIS.md"

cat "$IT_TMP/REDIS.md"
if [ "$OUT" != - ]; then
    cp "$IT_TMP/REDIS.md" "$OUT"
    log "wrote $OUT"
fi
