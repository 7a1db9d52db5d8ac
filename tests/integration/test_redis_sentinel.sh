#!/usr/bin/env bash
# Redis store behind Sentinel: a master, a replica (--replicaof) and one
# redis-sentinel, all throwaway processes on free loopback ports; heprouter
# finds the master through `store.redis.sentinels` / `master_name`.
#
#   1. calls routed before the failover are written to the first master;
#   2. SENTINEL FAILOVER while whole calls keep flowing (1000 packets/s);
#   3. as soon as the sentinel names the new master, new calls are written
#      to the NEW master (checked on it with redis-cli), within 3 s;
#   4. once the old master is demoted (Sentinel does it ~10 s later), more
#      new calls: on the new master, counted in its INFO commandstats;
#   5. every packet sent reached its sink (INVITE dialogs and BYEs of
#      unknown calls -> voipmonitor, REGISTERs -> homer); heprouter counted
#      store_reconnects.
#
#   BUILD_DIR=build bash tests/integration/test_redis_sentinel.sh
#
# Environment: BUILD_DIR, IT_KEEP_TMP=1.  Needs redis-server,
# redis-sentinel and redis-cli (package redis-server, redis-sentinel);
# fails without them.  Takes about 20 s; bounded to 60 s.
# Helpers run through it_wait_until look unreachable to shellcheck:
# shellcheck disable=SC2317
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

CALLS=(python3 "$HERE/redis_calls.py" --data "$IT_DATA")
WAIT_MS=200
TIMEOUT_MS=50
PREFIX="hrsent:"
MASTER_NAME=mymaster
NEW_MASTER_WRITE_S=3    # after the sentinel names the new master, calls are there within this
RECONNECT_S=15          # heprouter reconnects within this after the failover
DEMOTE_S=20             # Sentinel demotes the old master within this (it takes ~10 s)

it_init 60
for c in python3 ss redis-server redis-sentinel redis-cli timeout; do
    command -v "$c" >/dev/null 2>&1 ||
        it_fail "$c is not installed (Debian: apt-get install redis-server redis-sentinel)"
done
HEPROUTER=$(it_bin src/heprouter) || exit 1
it_bin tools/hepdump >/dev/null || exit 1
T0=$(date +%s%N)
IT_ROUTER_LISTEN=udp
# One run, no cases: CASE stays "", its files are in CASE_DIR = $IT_TMP.

# log MESSAGE: it_note with the seconds since the start.
log() { printf '[test_redis_sentinel %(%H:%M:%S)T +%ss] %s\n' -1 "$(( ($(date +%s%N) - T0) / 1000000000 ))" "$*"; }

indent() { sed 's/^/    /'; }

rcli() {
    local port=$1
    shift
    timeout 5 redis-cli -h 127.0.0.1 -p "$port" "$@"
}

redis_ready() { [ "$(timeout 2 redis-cli -h 127.0.0.1 -p "$1" ping 2>&1)" = PONG ]; }

# start_server NAME [ARGS...]: redis-server on a free port; sets PORT and PID.
start_server() {
    local name=$1 try
    shift
    mkdir -p "$IT_TMP/$name"
    for try in 1 2 3; do
        PORT=$(it_free_port tcp)
        it_start "$name" redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$IT_TMP/$name" --repl-diskless-sync-delay 0 "$@"
        PID=$IT_PID
        it_wait_until 5 redis_ready "$PORT" && return 0
        it_stop "$PID"
        log "redis $name did not start on port $PORT (try $try): $(tail -n 2 "$IT_TMP/$name.out")"
    done
    it_fail "redis $name did not start"
}

replica_linked() { rcli "$1" INFO replication | grep -q '^master_link_status:up'; }
sentinel_knows_replica() {
    rcli "$SPORT" SENTINEL REPLICAS "$MASTER_NAME" 2>/dev/null | tr '\n' ' ' | grep -q 'master-link-status ok'
}
sentinel_master_port() { rcli "$SPORT" SENTINEL GET-MASTER-ADDR-BY-NAME "$MASTER_NAME" 2>/dev/null | sed -n 2p; }
sentinel_says() { [ "$(sentinel_master_port)" = "$1" ]; }
role_is() { [ "$(rcli "$1" ROLE 2>/dev/null | head -n 1)" = "$2" ]; }

key_of() { printf '%scall:%s' "$PREFIX" "$1"; }
# count_keys PORT CALL-ID...: how many of these calls have their key there.
count_keys() {
    local port=$1 keys=() c
    shift
    for c in "$@"; do keys+=("$(key_of "$c")"); done
    rcli "$port" EXISTS "${keys[@]}"
}
all_keys_on() {
    local port=$1
    shift
    [ "$(count_keys "$port" "$@")" = "$#" ]
}

# ---------------------------------------------------------------- Redis, Sentinel

start_server master
MPORT=$PORT MPID=$PID
start_server replica --replicaof 127.0.0.1 "$MPORT"
RPORT=$PORT RPID=$PID
it_wait_until 10 replica_linked "$RPORT" || it_fail "replica did not link to the master"
for try in 1 2 3; do
    SPORT=$(it_free_port tcp)
    mkdir -p "$IT_TMP/sentinel"
    cat >"$IT_TMP/sentinel/sentinel.conf" <<EOF
port $SPORT
bind 127.0.0.1
dir $IT_TMP/sentinel
logfile ""
sentinel resolve-hostnames no
sentinel monitor $MASTER_NAME 127.0.0.1 $MPORT 1
sentinel down-after-milliseconds $MASTER_NAME 1000
sentinel failover-timeout $MASTER_NAME 5000
sentinel parallel-syncs $MASTER_NAME 1
EOF
    it_start sentinel redis-sentinel "$IT_TMP/sentinel/sentinel.conf"
    SPID=$IT_PID
    it_wait_until 5 redis_ready "$SPORT" && break
    it_stop "$SPID"
    SPID=""
done
[ -n "$SPID" ] || it_fail "redis-sentinel did not start"
it_wait_until 15 sentinel_knows_replica || it_fail "the sentinel does not see the replica"
log "master :$MPORT (pid $MPID), replica :$RPORT (pid $RPID), sentinel :$SPORT (pid $SPID)"

# ---------------------------------------------------------------- sinks, heprouter

it_start_sink homer
it_start_sink voipmonitor

it_start_router "$(cat <<EOF
workers: 1
orphans: { wait_ms: $WAIT_MS, max_held: 100000 }
ttl: { call: 4h, register: 1h, ended: 30s }
store:
  type: redis
  redis:
    sentinels: [ "127.0.0.1:$SPORT" ]
    master_name: $MASTER_NAME
    prefix: "$PREFIX"
    timeout_ms: $TIMEOUT_MS
  cache: { entries: 100000 }
$(it_two_sink_policy "INVITE, SUBSCRIBE")
EOF
)"
TARGET=udp:127.0.0.1:$ROUTER_PORT

# stat KEY...: counters of the last stats line, one a line.
stat() { "${CALLS[@]}" stat --log "$IT_TMP/router.err" "$@"; }
usr1_lines() { grep -c 'stats (SIGUSR1' "$IT_TMP/router.err" 2>/dev/null || true; }
usr1_more() { (($(usr1_lines) > $1)); }
snapshot() {
    local n
    n=$(usr1_lines)
    kill -USR1 "$ROUTER_PID"
    it_wait_until 5 usr1_more "$n" || it_case_fail "no stats line after SIGUSR1"
}
stat_at_least() {
    local v
    snapshot
    v=$(stat "$1")
    [[ $v =~ ^[0-9]+$ ]] && ((v >= $2))
}

# send_calls NAME N [TEMPLATES...]: N whole calls, logged in NAME.log.
send_calls() {
    local name=$1 n=$2 t=() tpl
    shift 2
    for tpl in "${@:-v3/007-022}"; do t+=(--template "$tpl"); done
    it_run 20 "${CALLS[@]}" send "$TARGET" "${t[@]}" --calls "$n" --prefix "$name" --rate 2000 \
        --log "$IT_TMP/$name.log" >/dev/null || it_case_fail "sending $name failed"
}
ids_of() { "${CALLS[@]}" callids --template v3/007-022 --calls "$2" --prefix "$1"; }

# ---------------------------------------------------------------- before

send_calls before 5
mapfile -t BEFORE < <(ids_of before 5)
if it_wait_until 3 all_keys_on "$MPORT" "${BEFORE[@]}"; then
    log "5 calls before the failover: keys on the master :$MPORT"
else
    it_case_fail "calls before the failover: $(count_keys "$MPORT" "${BEFORE[@]}") of 5 keys on the master"
fi

# ---------------------------------------------------------------- failover

# whole calls, REGISTERs and BYEs of unknown calls keep coming meanwhile
it_start during "${CALLS[@]}" send "$TARGET" --template v3/007-022 --template v3/003-006 \
    --template v3/019-022 --calls 240 --prefix during --rate 1000 --log "$IT_TMP/during.log"
DURING_PID=$IT_PID
sleep 0.5
try_failover() {
    local out
    out=$(rcli "$SPORT" SENTINEL FAILOVER "$MASTER_NAME" 2>&1)
    [ "$out" = OK ] || { FAILOVER_ERR=$out; return 1; }
}
it_wait_until 10 try_failover || it_fail "SENTINEL FAILOVER: ${FAILOVER_ERR:-?}"
T_FAILOVER=$(date +%s%N)
it_wait_until 10 sentinel_says "$RPORT" || it_fail "the sentinel does not name the replica :$RPORT as master"
it_wait_until 5 role_is "$RPORT" master || it_fail "the replica :$RPORT is not master"
T_NAMED=$(date +%s%N)
log "sentinel names :$RPORT as master $(((T_NAMED - T_FAILOVER) / 1000000)) ms after FAILOVER"
rcli "$RPORT" CONFIG RESETSTAT >/dev/null

# new calls right away: to the new master
T_SWITCH=$(date +%s%N)
send_calls after1 20
mapfile -t AFTER1 < <(ids_of after1 20)
if it_wait_until "$NEW_MASTER_WRITE_S" all_keys_on "$RPORT" "${AFTER1[@]}"; then
    log "20 calls after the switch: all on the new master :$RPORT within $((($(date +%s%N) - T_SWITCH) / 1000000)) ms"
else
    it_case_fail "calls sent right after the sentinel named the new master: $(count_keys "$RPORT" "${AFTER1[@]}") of 20 keys on the NEW master :$RPORT after ${NEW_MASTER_WRITE_S} s, $(count_keys "$MPORT" "${AFTER1[@]}") on the OLD master :$MPORT (role $(rcli "$MPORT" ROLE | head -n 1))"
fi

it_wait_exit "$DURING_PID" 30
((IT_STATUS == 0)) || it_case_fail "the sender during the failover exited with $IT_STATUS"
if it_wait_until "$RECONNECT_S" stat_at_least store_reconnects 1; then
    log "heprouter reconnected (store_reconnects=$(stat store_reconnects))"
else
    it_case_fail "store_reconnects is $(stat store_reconnects) ${RECONNECT_S} s after the failover"
fi

# after Sentinel demoted the old master
if it_wait_until "$DEMOTE_S" role_is "$MPORT" slave; then
    log "old master :$MPORT demoted to replica $((($(date +%s%N) - T_FAILOVER) / 1000000)) ms after FAILOVER"
else
    it_case_fail "the old master :$MPORT is still $(rcli "$MPORT" ROLE | head -n 1) ${DEMOTE_S} s after the failover"
fi
send_calls after2 20
mapfile -t AFTER2 < <(ids_of after2 20)
it_wait_until 3 all_keys_on "$RPORT" "${AFTER2[@]}" ||
    it_case_fail "calls after the demotion: $(count_keys "$RPORT" "${AFTER2[@]}") of 20 keys on the new master"
SETS=$(rcli "$RPORT" INFO commandstats | sed -n 's/^cmdstat_set:calls=\([0-9]*\),.*/\1/p')
log "new master :$RPORT commandstats since it was promoted: set=${SETS:-0} get=$(rcli "$RPORT" INFO commandstats | sed -n 's/^cmdstat_get:calls=\([0-9]*\),.*/\1/p')"
((${SETS:-0} >= 40)) || it_case_fail "the new master executed ${SETS:-0} SETs since its promotion, expected >= 40 (after1 + after2)"
log "after1 keys on the new master at the end: $(count_keys "$RPORT" "${AFTER1[@]}") of 20"
# Calls of the traffic around the failover (the INVITE and REGISTER ones
# write a key): which have their key on the new master at the end?  Writes
# the old master took after the replica was promoted and before heprouter
# switched are lost when Sentinel demotes it (asynchronous replication).
# (one redis-cli for all the EXISTS: one answer a line, in order)
missing=()
mapfile -t FIRSTS < <("${CALLS[@]}" firsts --log "$IT_TMP/during.log" | awk '$2 != "v3/019"')
mapfile -t EXISTS < <(for f in "${FIRSTS[@]}"; do printf 'EXISTS %s\n' "$(key_of "${f##* }")"; done |
    timeout 10 redis-cli -h 127.0.0.1 -p "$RPORT")
((${#EXISTS[@]} == ${#FIRSTS[@]})) ||
    it_case_fail "redis-cli answered ${#EXISTS[@]} of ${#FIRSTS[@]} EXISTS on the new master"
for i in "${!FIRSTS[@]}"; do
    [ "${EXISTS[$i]:-}" = 1 ] || missing+=("${FIRSTS[$i]%% *}")
done
log "calls around the failover: 160 write a key; ${#missing[@]} have none on the new master at the end"
if ((${#missing[@]} > 0)); then
    log "  they started between $(awk -v t="${missing[0]}" -v f="$T_FAILOVER" 'BEGIN { printf "%+.3f", t - f / 1e9 }') s and $(awk -v t="${missing[-1]}" -v f="$T_FAILOVER" 'BEGIN { printf "%+.3f", t - f / 1e9 }') s from SENTINEL FAILOVER; the sentinel named the new master at +$(awk -v a="$T_NAMED" -v f="$T_FAILOVER" 'BEGIN { printf "%.3f", (a - f) / 1e9 }') s"
fi

# ---------------------------------------------------------------- deliveries

TOTAL=$(cat "$IT_TMP"/{before,during,after1,after2}.log | wc -l)
total_is() {
    local h v
    h=$(grep -c '^{"n":' "$IT_TMP/homer.json" 2>/dev/null)
    v=$(grep -c '^{"n":' "$IT_TMP/voipmonitor.json" 2>/dev/null)
    ((${h:-0} + ${v:-0} >= TOTAL))
}
it_wait_until 10 total_is || true
snapshot
it_stop_router
sleep 0.1
out=$("${CALLS[@]}" check --sink "homer=$IT_TMP/homer.json" --sink "voipmonitor=$IT_TMP/voipmonitor.json" \
    --log "$IT_TMP/before.log" --log "$IT_TMP/during.log" --log "$IT_TMP/after1.log" --log "$IT_TMP/after2.log" \
    --expect v3/007-022=voipmonitor --expect v3/003-006=homer)
rc=$?
indent <<<"$out"
((rc == 0)) || it_case_fail "packets lost, duplicated or misrouted across the failover"
"${IT_REPLAY[@]}" stats --log "$IT_TMP/router.err" 'store_reconnects>=1' 'store_writes>=45' "packets_in=$TOTAL" |
    sed 's/^/    /'
((PIPESTATUS[0] == 0)) || it_case_fail "counters"
KEYS=(store_writes store_lost_writes store_errors store_unavailable store_reconnects
    store_lookups store_hits store_misses store_timeouts calls_fallback orphans_released_fallback)
mapfile -t VALUES < <(stat "${KEYS[@]}")
line=""
for i in "${!KEYS[@]}"; do line+="${KEYS[$i]}=${VALUES[$i]:-} "; done
echo "    counters: $line"

if ((CASE_OK)); then
    log "ok in $((($(date +%s%N) - T0) / 1000000)) ms"
    exit 0
fi
echo "[test_redis_sentinel] heprouter log (last 30 lines):"
tail -n 30 "$IT_TMP/router.err" | sed 's/^/    /'
echo "[test_redis_sentinel] sentinel log (last 15 lines):"
tail -n 15 "$IT_TMP/sentinel.out" | sed 's/^/    /'
exit 1
