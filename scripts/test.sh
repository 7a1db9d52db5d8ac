#!/usr/bin/env bash
# test.sh - installs what is missing, builds, and runs every test:
#   1. unit tests (CUnit, `make check`) with -Werror
#   2. the same unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   3. integration tests (tests/integration/run.sh: real programs on loopback),
#      and the routing, Redis and end-to-end tests again against the sanitizer build
#   4. libFuzzer harnesses (fuzz/run, FUZZ_SECONDS each, default 20)
#   5. make distcheck
# Any failure stops the run with a non-zero exit status.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "dependencies"
scripts/deps.sh test

step "build (build/, -Werror)"
scripts/build.sh build --enable-werror
step "unit tests"
make -C build check || { cat build/tests/unit/*.log; exit 1; }

step "build with AddressSanitizer + UBSan (build-asan/)"
san="-g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
scripts/build.sh build-asan --enable-werror --enable-debug "CFLAGS=$san" "LDFLAGS=-fsanitize=address,undefined"
step "unit tests under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    make -C build-asan check || { cat build-asan/tests/unit/*.log; exit 1; }

step "integration tests"
# test_package builds the Debian package: its unit tests are step 1's.
DEB_BUILD_OPTIONS=${DEB_BUILD_OPTIONS-nocheck} BUILD_DIR="$top/build" tests/integration/run.sh
step "routing, Redis, Kamailio, reload and control tests against the sanitizer build"
# "test [CASE...]": the reload cases that rebuild listeners and destinations
for t in test_router test_redis test_e2e_kamailio "test_reload listeners tcp_target" test_operate; do
    read -r name cases <<<"$t"
    # shellcheck disable=SC2086  # cases are words
    BUILD_DIR="$top/build-asan" bash "tests/integration/$name.sh" $cases > "build-asan/$name.log" 2>&1 \
        || { tail -n 80 "build-asan/$name.log"; exit 1; }
    echo "$t passed under ASan + UBSan (log: build-asan/$name.log)"
done

step "fuzzing (${FUZZ_SECONDS:-20} s per harness)"
fuzz/run "$top/build-fuzz"

step "make distcheck"
make -C build distcheck

step "all tests passed in $(( $(date +%s) - started )) s"
