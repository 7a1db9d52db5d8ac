#!/usr/bin/env bash
# Workers share nothing on the packet path but the store (bench/README.md,
# "Several workers"): heprouter with 2 workers, the memory store, dedup on
# both destinations and /metrics scraped while hepgen sends 16,000 packets
# from 16 source ports (SO_REUSEPORT spreads them over both workers).  At
# exit each worker logs (level debug) the packets it read and the locks it
# took, by kind (src/lockstat.h).  Per worker, per packet:
#
#   store     1 (a known call: one lookup that also updates) to 2 (an
#             origin: a lookup, then the insert), plus the expiry sweep's
#             one per stripe per housekeeping tick; all workers together
#             at most the packets, plus the calls stored, plus the sweeps
#   dedup     1 per destination a copy went to (each has a window)
#   snapshot  once per housekeeping tick (10/s), not per packet
#   app, tap, spool, resolve, redis   never
#
#   share_nothing   the figures above, from both workers
#
#   BUILD_DIR=build bash tests/integration/test_workers.sh [CASE...]
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=90
PACKETS=16000
RATE=8000
SOURCES=16
WORKERS=2
HOUSEKEEPING_PER_S=10       # the workers' housekeeping timer (0.1 s)
STORE_STRIPES=16            # the memory store's stripes, each locked once per sweep
MIN_SHARE=500               # packets each worker must have read for its figures to mean anything

it_init "$TIME_LIMIT"
it_require_cmd python3
it_require_cmd curl
HEPROUTER=$(it_bin src/heprouter) || exit 1
HEPGEN=$(it_bin tools/hepgen) || exit 1
it_bin tools/hepdump >/dev/null || exit 1
IT_CASES=(share_nothing)
IT_ROUTER_LISTEN=udp

scrape() {
    while :; do
        curl -s --max-time 2 -o /dev/null "http://$1/metrics"
        sleep 0.3
    done
}

case_share_nothing() {
    it_case_begin share_nothing "2 workers: locks per packet by kind"
    it_start_sink homer
    it_start_sink voipmonitor
    it_start_router "workers: $WORKERS
log: { level: debug }
store: { type: memory }
metrics: { listen: \"127.0.0.1:0\" }
destinations:
  homer: { targets: [ \"${SINK_ADDR[homer]}\" ], dedup: { window_ms: 200 } }
  voipmonitor: { targets: [ \"${SINK_ADDR[voipmonitor]}\" ], dedup: { window_ms: 200 } }
routes:
  - { match: { method: [ INVITE ] }, to: [ voipmonitor ] }
  - { match: { method: [ REGISTER, OPTIONS ] }, to: [ homer ] }
default: [ homer ]"
    local t0 http dests=() k scraper
    t0=$(date +%s%N)
    http=$(grep '^listening http:' "$ROUTER_READY" | sed 's/^listening http://')
    [ -n "$http" ] || it_fail "no http listener in $ROUTER_READY"
    scrape "$http" &
    scraper=$!
    for ((k = 0; k < SOURCES; k++)); do dests+=(-d "${ROUTER_ADDR[udp]}"); done
    "$HEPGEN" -q -n "$PACKETS" -r "$RATE" "${dests[@]}" >"$CASE_DIR/hepgen.json" ||
        it_case_fail "hepgen failed"
    kill "$scraper" 2>/dev/null
    wait "$scraper" 2>/dev/null
    local sent
    sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sent"])' "$CASE_DIR/hepgen.json")
    it_wait_until 10 it_sink_has homer 1 || true
    it_stop_router
    local seconds=$((($(date +%s%N) - t0) / 1000000000 + 1))
    python3 - "$CASE_DIR/router.err" "$sent" "$WORKERS" "$seconds" "$HOUSEKEEPING_PER_S" "$STORE_STRIPES" \
        "$MIN_SHARE" <<'PY' || it_case_fail "locks per packet out of bounds (above)"
import json, re, sys
err, sent, workers, seconds, hk, stripes, min_share = sys.argv[1], *map(int, sys.argv[2:])
ticks = seconds * hk + hk              # housekeeping ticks a worker may have run
rows = {}
for line in open(err):
    m = re.search(r"worker (\d+): (\d+) packets in; locks taken: (.*)$", line)
    if m:
        rows[int(m.group(1))] = (int(m.group(2)), {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(3))})
ok = True
def check(cond, what):
    global ok
    print(("    ok  " if cond else "    BAD ") + what)
    ok = ok and cond
check(sorted(rows) == list(range(workers)), f"a lock line from each of the {workers} workers: {sorted(rows)}")
check(sum(r[0] for r in rows.values()) == sent, f"they read {sum(r[0] for r in rows.values())} packets, hepgen sent {sent}")
for w, (pkts, locks) in sorted(rows.items()):
    print(f"    worker {w}: {pkts} packets; " + ", ".join(f"{k} {v} ({v / max(pkts, 1):.3f}/packet)" for k, v in locks.items()))
    check(pkts >= min_share, f"worker {w} read {pkts} >= {min_share} packets")
    sweep = ticks * stripes
    check(pkts <= locks["store"] <= 2 * pkts + sweep, f"worker {w}: store {locks['store']} in [{pkts}, {2 * pkts + sweep}]")
    check(pkts <= locks["dedup"] <= 2 * pkts, f"worker {w}: dedup {locks['dedup']} in [{pkts}, {2 * pkts}]")
    check(locks["snapshot"] <= ticks + 2, f"worker {w}: snapshot {locks['snapshot']} <= {ticks + 2} (per tick, not per packet)")
    for k in ("app", "tap", "spool", "resolve", "redis"):
        check(locks[k] == 0, f"worker {w}: {k} {locks[k]} == 0")
# all workers together: one store lock per packet, one more per call stored (its insert), the sweeps
stats = None
for line in open(err):
    m = re.search(r"stats \(exit[^)]*\): (\{.*\})$", line)
    if m:
        stats = json.loads(m.group(1))
check(stats is not None, "the exit stats line")
if stats is not None:
    stored = stats["calls_new"] + stats["calls_fallback"]
    most = sent + stored + workers * ticks * stripes
    store = sum(r[1]["store"] for r in rows.values())
    check(store <= most, f"store locks {store} <= {sent} packets + {stored} calls stored + sweeps = {most}")
sys.exit(0 if ok else 1)
PY
    it_stop_all
    it_case_end
}

it_run_cases "$@"
