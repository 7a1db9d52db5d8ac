#!/usr/bin/env bash
# run.sh - runs every tests/integration/test_*.sh against the build in
# BUILD_DIR (default: build), prints one line per test, and fails when any
# test fails.  A test that cannot run (a missing program) fails too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
export BUILD_DIR=${BUILD_DIR:-$top/build}
logdir=$BUILD_DIR/integration-logs
mkdir -p "$logdir"
pass=0
failed=()
for t in "$here"/test_*.sh; do
    name=$(basename "$t" .sh)
    start=$(date +%s)
    if bash "$t" >"$logdir/$name.log" 2>&1; then
        pass=$((pass + 1))
        echo "PASS $name ($(( $(date +%s) - start )) s)"
    else
        failed+=("$name")
        echo "FAIL $name ($(( $(date +%s) - start )) s); its log:"
        sed 's/^/    /' "$logdir/$name.log" | tail -n 60
    fi
done
echo "integration: $pass passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
