#!/usr/bin/env bash
# test.sh - installs what is missing, builds, and runs every test:
#   1. unit tests (CUnit, `make check`) with -Werror
#   2. the same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   3. integration tests (tests/integration/run.sh: real programs on loopback),
#      and the routing, Redis, end-to-end, reload, control, sources and DNS name tests again against the sanitizer build
#   4. libFuzzer harnesses (fuzz/run, FUZZ_SECONDS each, default 20)
#   5. make distcheck
# Any failure stops the run with a non-zero exit status.  Each step's
# heading says when it began ("==> unit tests (at +35 s)") and the run ends
# with the seconds each step took, so the log shows where the time goes.
# make runs with -j$(nproc) (JOBS overrides): the unit tests run in
# parallel, each in its own .log; on failure those logs are printed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
JOBS=${JOBS:-$(nproc)}
started=$(date +%s)
step_name=""
step_t0=$started
step_times=()
# step NAME: ends the previous step (its duration kept for the summary),
# prints NAME with the seconds since the start of the run.
step() {
    local now
    now=$(date +%s)
    [ -z "$step_name" ] || step_times+=("$(printf '%5d s  %s' $((now - step_t0)) "$step_name")")
    step_name=$1
    step_t0=$now
    printf '\n==> %s (at +%d s)\n' "$*" $((now - started))
}
# unit_logs DIR: the logs of the unit tests that did not pass, else all.
unit_logs() {
    local f failed=()
    for f in "$1"/tests/unit/*.trs; do
        [ -f "$f" ] || continue
        grep -q '^:test-result: PASS' "$f" || failed+=("${f%.trs}.log")
    done
    [ ${#failed[@]} -gt 0 ] || failed=("$1"/tests/unit/*.log)
    cat "${failed[@]}" 2>/dev/null || true
}

step "dependencies"
scripts/deps.sh test
# python3 may be a version manager's shim (pyenv's is a bash script that
# starts pyenv on every call, about half a second; the tests start python3
# hundreds of times): put the directory of the interpreter it resolves to
# first in PATH, the same python without the detour.
py_dir=$(python3 -c 'import os, sys; print(os.path.dirname(sys.executable))' 2>/dev/null) || py_dir=""
if [ -n "$py_dir" ] && [ -x "$py_dir/python3" ] && [ "$(command -v python3)" != "$py_dir/python3" ]; then
    export PATH="$py_dir:$PATH"
fi

step "build (build/, -Werror)"
scripts/build.sh build --enable-werror
step "unit tests"
make -C build -j"$JOBS" check || { unit_logs build; exit 1; }

step "build with AddressSanitizer + UBSan (build-asan/)"
san="-g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
scripts/build.sh build-asan --enable-werror --enable-debug "CFLAGS=$san" "LDFLAGS=-fsanitize=address,undefined"
step "unit tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    make -C build-asan -j"$JOBS" check || { unit_logs build-asan; exit 1; }

step "integration tests"
# test_package builds the Debian package: its unit tests are step 1's.
DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS-nocheck} BUILD_DIR="$top/build" tests/integration/run.sh
step "routing, Redis, Kamailio, reload, control, sources, DNS name, spool, target health, tenants, dedup, tap and TLS tests against the sanitizer build"
# "test [CASE...]": the Kamailio variants of every store, mode and
# transport once (TLS with client certificates); the reload cases that
# rebuild listeners and destinations; the spool's cases that restart on
# what an earlier run left; the TLS cases that read, refuse, reload and
# queue (the outbound and spool ones share their code with these)
e2e_san="memory-script-udp memory-core-udp memory-script-tcp memory-core-tcp redis-script-udp redis-core-udp"
e2e_san+=" redis-script-tcp redis-core-tcp memory-both-udp memory-script-tls-cert"
for t in test_router test_redis "test_e2e_kamailio $e2e_san" "test_reload listeners tcp_target" test_operate test_security test_dns \
    "test_spool kill9 term torn disk_full" test_health test_tenants test_dedup test_tap \
    "test_tls inbound refused_inbound refused_outbound reload backpressure"; do
    read -r name cases <<<"$t"
    t0=$(date +%s)
    # shellcheck disable=SC2086  # cases are words
    BUILD_DIR="$top/build-asan" bash "tests/integration/$name.sh" $cases > "build-asan/$name.log" 2>&1 \
        || { tail -n 80 "build-asan/$name.log"; exit 1; }
    echo "$t passed under ASan + UBSan in $(( $(date +%s) - t0 )) s (log: build-asan/$name.log)"
done

step "fuzzing (${FUZZ_SECONDS:-20} s per harness)"
fuzz/run "$top/build-fuzz"

step "make distcheck"
# -j reaches the sub-makes of distcheck (configure, build, check) through
# MAKEFLAGS.  A failed check there leaves the unpacked tree; its
# test-suite.log holds the logs of the tests that failed.
make -C build -j"$JOBS" distcheck || {
    cat build/heprouter-*/_build/sub/test-suite.log 2>/dev/null || true
    exit 1
}

step "done"
echo "time per step:"
printf '%s\n' "${step_times[@]}"
echo "all tests passed in $(( $(date +%s) - started )) s"
