#!/usr/bin/env bash
# build.sh - configures and builds heprouter out of tree.
#
#   scripts/build.sh [BUILD_DIR [configure args...]]
#
# Regenerates the build system when configure is missing or older than its
# inputs, configures BUILD_DIR (default: build) once, then runs make (all,
# or the targets in MAKE_TARGETS, e.g. "src/libheprouter-core.a").
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
shift || true
case "$build" in /*) ;; *) build="$top/$build" ;; esac

cd "$top"
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
    echo "build: autoreconf -fi"
    autoreconf -fi
fi
mkdir -p "$build"
cd "$build"
args="$*"
if [ ! -f Makefile ] || [ "$(cat .configure-args 2>/dev/null)" != "$args" ]; then
    echo "build: configuring $build ${args:+($args)}"
    "$top/configure" -q "$@"
    printf '%s' "$args" > .configure-args
fi
echo "build: make in $build"
# shellcheck disable=SC2086  # MAKE_TARGETS is a word list
make -j"$(nproc)" ${MAKE_TARGETS:-}
