#!/usr/bin/env bash
# HEPv3 interoperability test: heprouter's codec against hep-js, sipcapture's
# Node.js HEP3 library (the reference the Homer stack's JS tools use).
#
#   BUILD_DIR=DIR bash tests/integration/test_hepjs.sh (as tests/integration/run.sh does)
#   bash tests/integration/test_hepjs.sh BUILD_DIR     (uses BUILD_DIR/tests/integration/hepconv)
#   bash tests/integration/test_hepjs.sh /path/to/hepconv
#   HEPCONV=/path/to/hepconv bash tests/integration/test_hepjs.sh
#
# Installs hep-js 1.0.22 from the npm registry into the scratch directory,
# waits for the Kamailio captures in tests/data/kamailio/v{1,2,3}/ if they
# are still being written, then runs hepjs_check.js, one case per part (the
# two parts run at once, one core each):
#   encode  `hepconv encode` output, with and without overrides, must decode
#           in hep-js to the fields `hepconv decode` reads from the input
#   decode  packets built by hep-js must decode in hepconv to the fields
#           hep-js was given
# A case fails on any mismatch (MISMATCH lines); hep-js's own quirks are
# listed in hepjs_check.js.
#
# Environment:
#   BUILD_DIR           the build tree (hepconv: tests/integration/hepconv)
#   HEPCONV             hepconv binary (else the argument, else $BUILD_DIR/...)
#   HEPJS_NODE_MODULES  existing node_modules with hep-js@1.0.22: skip npm
#   NPM_TIMEOUT         seconds for npm install (default 120)
#   CHECK_TIMEOUT       seconds for each part's node checks (default 300)
#   DATA_WAIT           seconds to wait for the captures (default 120)
#   IT_KEEP_TMP=1 (or KEEP_WORK=1) keeps the scratch directory (it is kept
#   anyway on failure)
# Needs node (>= 14) and npm (Debian: nodejs, npm; scripts/deps.sh test
# installs them): without them the test fails, saying which to install.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

HEPJS_VERSION=1.0.22
NODE_MIN_MAJOR=14
NPM_TIMEOUT=${NPM_TIMEOUT:-120}
CHECK_TIMEOUT=${CHECK_TIMEOUT:-300}
DATA_WAIT=${DATA_WAIT:-120}
DATA_DIR=$IT_SRCDIR/tests/data/kamailio
CHECK_JS=$HERE/hepjs_check.js
[ "${KEEP_WORK:-0}" = 1 ] && IT_KEEP_TMP=1

it_init $((NPM_TIMEOUT + DATA_WAIT + 2 * CHECK_TIMEOUT + 30))

# ---------------------------------------------------------------- programs

# one message naming every Debian package to install
missing=() programs=()
command -v node >/dev/null 2>&1 || { missing+=(nodejs); programs+=(node); }
[ -n "${HEPJS_NODE_MODULES:-}" ] || command -v npm >/dev/null 2>&1 || { missing+=(npm); programs+=(npm); }
((${#missing[@]} == 0)) ||
    it_fail "${programs[*]} not installed: install the Debian package(s) ${missing[*]} (apt-get install ${missing[*]}; scripts/deps.sh test installs them)"
it_require_cmd timeout
node_major=$(node -p 'process.versions.node.split(".")[0]') || it_fail "node does not run"
((node_major >= NODE_MIN_MAJOR)) || it_fail "node $(node --version) is older than $NODE_MIN_MAJOR (package nodejs)"

if [ -z "${HEPCONV:-}" ] && [ $# -ge 1 ]; then
    if [ -d "$1" ]; then HEPCONV=$1/tests/integration/hepconv; else HEPCONV=$1; fi
fi
if [ -z "${HEPCONV:-}" ]; then
    HEPCONV=$(it_bin tests/integration/hepconv) || exit 1
fi
[ -x "$HEPCONV" ] || it_fail "hepconv not executable: $HEPCONV (build it: make -C BUILD_DIR tests/integration/hepconv)"
HEPCONV=$(cd "$(dirname "$HEPCONV")" && pwd)/$(basename "$HEPCONV")

# ---------------------------------------------------------------- hep-js

WORK=$IT_TMP/hepjs
mkdir -p "$WORK"
if [ -n "${HEPJS_NODE_MODULES:-}" ]; then
    it_note "using hep-js from $HEPJS_NODE_MODULES"
    ln -s "$HEPJS_NODE_MODULES" "$WORK/node_modules"
else
    it_note "npm install hep-js@$HEPJS_VERSION (timeout ${NPM_TIMEOUT}s)"
    it_run "$NPM_TIMEOUT" npm install --prefix "$WORK" --no-audit --no-fund --no-package-lock \
        --loglevel=error "hep-js@$HEPJS_VERSION" >"$IT_TMP/npm.out" 2>&1 ||
        it_fail "npm install hep-js@$HEPJS_VERSION failed (network? set HEPJS_NODE_MODULES): $(tail -n 5 "$IT_TMP/npm.out")"
fi
got_version=$(node -p "require('$WORK/node_modules/hep-js/package.json').version") ||
    it_fail "hep-js not found in $WORK/node_modules"
it_assert_eq "$HEPJS_VERSION" "$got_version" "hep-js version"
it_note "hep-js $got_version, node $(node --version), hepconv $HEPCONV"

# ---------------------------------------------------------------- captures

# Another job may still be capturing: wait until each version has its
# manifest (written last) and at least one packet.
captures_ready() {
    local v
    for v in v1 v2 v3; do
        [ -f "$DATA_DIR/$v/manifest.tsv" ] || return 1
        compgen -G "$DATA_DIR/$v/[0-9]*.hep" >/dev/null || return 1
    done
}
if ! captures_ready; then
    it_note "waiting up to ${DATA_WAIT}s for Kamailio captures in $DATA_DIR"
    it_wait_until "$DATA_WAIT" captures_ready ||
        it_fail "no Kamailio captures in $DATA_DIR/v{1,2,3} (run tests/data/capture-kamailio.sh)"
fi
for v in v1 v2 v3; do
    it_note "captures $v: $(compgen -G "$DATA_DIR/$v/[0-9]*.hep" | wc -l) packets"
done

# ---------------------------------------------------------------- cases

# The two parts are independent: both run at once (one core each), started
# here; each case waits for its own.
# start_part PART: hepjs_check.js part a or b in the background, its output
# in $IT_TMP/PART/check.out; sets PART_PID[PART].
# (timeout is the process started, so that the exit trap's TERM reaches node.)
declare -A PART_PID=()
start_part() {
    mkdir -p "$IT_TMP/$1"
    timeout -k 2 "$CHECK_TIMEOUT" node "$CHECK_JS" "$HEPCONV" "$DATA_DIR" "$WORK" "$1" \
        >"$IT_TMP/$1/check.out" 2>&1 </dev/null &
    PART_PID[$1]=$!
    IT_PIDS+=("$!")
    IT_NAMES+=("part_$1")
}

# check PART: waits for that part; its output indented, its MISMATCH lines
# failing the case.
check() {
    local out=$CASE_DIR/check.out rc=0
    wait "${PART_PID[$1]}" || rc=$?
    cat "$IT_TMP/$1/check.out" >"$out"
    sed 's/^/    /' "$out"
    ((rc != 124)) || it_case_fail "node checks timed out after ${CHECK_TIMEOUT}s"
    ((rc == 0)) || it_case_fail "hep-js interoperability: exit $rc, $(grep -c '^MISMATCH' "$out") MISMATCH line(s) above"
}

case_encode() {
    it_case_begin encode "(a) hepconv encodes, hep-js decodes: every capture and synthetic input, every override set"
    check a
    it_case_end "$CASE_DIR/check.out"
}

case_decode() {
    it_case_begin decode "(b) hep-js encodes, hepconv decodes, and the result passes (a)"
    check b
    it_case_end "$CASE_DIR/check.out"
}

IT_CASES=(encode decode)
start_part a
start_part b
it_run_cases
