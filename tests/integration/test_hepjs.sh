#!/usr/bin/env bash
# HEPv3 interoperability test: heprouter's codec against hep-js, sipcapture's
# Node.js HEP3 library (the reference the Homer stack's JS tools use).
#
#   HEPCONV=/path/to/hepconv bash tests/integration/test_hepjs.sh
#   bash tests/integration/test_hepjs.sh BUILD_DIR     (uses BUILD_DIR/tests/integration/hepconv)
#   bash tests/integration/test_hepjs.sh /path/to/hepconv
#   BUILD_DIR=DIR bash tests/integration/test_hepjs.sh (as tests/integration/run.sh does)
#
# Installs hep-js 1.0.22 from the npm registry into a temporary directory
# (removed at exit), waits for the Kamailio captures in
# tests/data/kamailio/v{1,2,3}/ if they are still being written, then runs
# hepjs_check.js: (a) `hepconv encode` output, with and without overrides,
# must decode in hep-js to the fields `hepconv decode` reads from the input;
# (b) packets built by hep-js must decode in hepconv to the fields hep-js was
# given.  Exits non-zero on any mismatch; hep-js's own quirks are listed in
# hepjs_check.js.
#
# Environment:
#   HEPCONV             hepconv binary (else the argument, else $BUILD_DIR/...)
#   HEPJS_NODE_MODULES  existing node_modules with hep-js@1.0.22: skip npm
#   NPM_TIMEOUT         seconds for npm install (default 120)
#   CHECK_TIMEOUT       seconds for the node checks (default 300)
#   DATA_WAIT           seconds to wait for the captures (default 120)
#   KEEP_WORK=1         keep the temporary directory for inspection
# Needs: node (>= 14) and npm (Debian: nodejs, npm), timeout (coreutils).
set -euo pipefail

HEPJS_VERSION=1.0.22
NODE_MIN_MAJOR=14
NPM_TIMEOUT=${NPM_TIMEOUT:-120}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-300}
DATA_WAIT=${DATA_WAIT:-120}
KILL_GRACE=5            # seconds between TERM and KILL when stopping a child

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRCDIR=$(cd "$HERE/../.." && pwd)
DATA_DIR=$SRCDIR/tests/data/kamailio
CHECK_JS=$HERE/hepjs_check.js

log() { printf '[test_hepjs %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { printf '[test_hepjs] FAIL: %s\n' "$*" >&2; exit 1; }

# --- hepconv -----------------------------------------------------------------
if [[ -z "${HEPCONV:-}" && $# -ge 1 ]]; then
    if [[ -d "$1" ]]; then
        HEPCONV=$1/tests/integration/hepconv
    else
        HEPCONV=$1
    fi
fi
if [[ -z "${HEPCONV:-}" && -n "${BUILD_DIR:-}" ]]; then
    HEPCONV=$BUILD_DIR/tests/integration/hepconv
fi
[[ -n "${HEPCONV:-}" ]] || die "set HEPCONV=/path/to/hepconv or pass a build dir (make check builds tests/integration/hepconv)"
[[ -x "$HEPCONV" ]] || die "hepconv not executable: $HEPCONV (build it: make -C BUILD_DIR tests/integration/hepconv)"
HEPCONV=$(cd "$(dirname "$HEPCONV")" && pwd)/$(basename "$HEPCONV")

for tool in node npm timeout; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install nodejs npm coreutils)"
done
node_major=$(node -p 'process.versions.node.split(".")[0]')
(( node_major >= NODE_MIN_MAJOR )) || die "node $(node --version) is older than $NODE_MIN_MAJOR"

# --- scratch dir and child processes -------------------------------------------
WORK=$(mktemp -d /tmp/heprouter-hepjs.XXXXXX)
CHILD=""

# stop_child: TERM the running child by PID, KILL after KILL_GRACE seconds.
stop_child() {
    local pid=$CHILD i
    [[ -n "$pid" ]] || return 0
    CHILD=""
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping pid $pid"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < KILL_GRACE * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    stop_child
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then
        log "work dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    if [[ $rc -eq 0 ]]; then
        log "PASS"
    else
        printf '[test_hepjs] FAILED (exit %d)\n' "$rc" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# run_child SECONDS CMD...: runs CMD in the background under timeout, records
# its PID for cleanup, and returns its exit status.
run_child() {
    local seconds=$1 rc=0
    shift
    timeout --kill-after="$KILL_GRACE" "$seconds" "$@" &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=""
    (( rc != 124 )) || log "timed out after ${seconds}s: $*"
    return "$rc"
}

# --- hep-js ----------------------------------------------------------------------
if [[ -n "${HEPJS_NODE_MODULES:-}" ]]; then
    log "using hep-js from $HEPJS_NODE_MODULES"
    ln -s "$HEPJS_NODE_MODULES" "$WORK/node_modules"
else
    log "npm install hep-js@$HEPJS_VERSION into $WORK (timeout ${NPM_TIMEOUT}s)"
    run_child "$NPM_TIMEOUT" npm install --prefix "$WORK" --no-audit --no-fund \
        --no-package-lock --loglevel=error "hep-js@$HEPJS_VERSION" \
        || die "npm install hep-js@$HEPJS_VERSION failed (network? set HEPJS_NODE_MODULES)"
fi
got_version=$(node -p "require('$WORK/node_modules/hep-js/package.json').version") \
    || die "hep-js not found in $WORK/node_modules"
[[ "$got_version" == "$HEPJS_VERSION" ]] || die "hep-js is $got_version, need $HEPJS_VERSION"
log "hep-js $got_version, node $(node --version), hepconv $HEPCONV"

# --- captures ----------------------------------------------------------------------
# Another job may still be capturing: wait until each version has its
# manifest (written last) and at least one packet.
captures_ready() {
    local v
    for v in v1 v2 v3; do
        [[ -f "$DATA_DIR/$v/manifest.tsv" ]] || return 1
        compgen -G "$DATA_DIR/$v/[0-9]*.hep" >/dev/null || return 1
    done
}
if ! captures_ready; then
    log "waiting up to ${DATA_WAIT}s for Kamailio captures in $DATA_DIR"
    for ((waited = 0; waited < DATA_WAIT; waited++)); do
        sleep 1
        captures_ready && break
    done
    captures_ready || die "no Kamailio captures in $DATA_DIR/v{1,2,3} (run tests/data/capture-kamailio.sh)"
fi
for v in v1 v2 v3; do
    log "captures $v: $(compgen -G "$DATA_DIR/$v/[0-9]*.hep" | wc -l) packets"
done

# --- checks ------------------------------------------------------------------------
log "running $(basename "$CHECK_JS") (timeout ${CHECK_TIMEOUT}s)"
run_child "$CHECK_TIMEOUT" node "$CHECK_JS" "$HEPCONV" "$DATA_DIR" "$WORK" \
    || die "hep-js interoperability mismatches (see MISMATCH lines above)"
