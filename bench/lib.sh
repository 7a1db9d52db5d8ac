# shellcheck shell=bash
# bench/lib.sh - what bench/price and bench/spool_replay share.  Functions
# only; those that start or stop processes use tests/integration/lib.sh
# (it_init, it_start, it_stop...), which the scripts source after reading
# their options.  die MESSAGE and TOP_DIR (the source tree) are the
# script's own.

# program OPTION PATH: the absolute path of an executable, or exit
program() {
    local p
    if ! p=$(realpath -e "$2" 2>/dev/null) || [ ! -x "$p" ] || [ -d "$p" ]; then
        die "$1: $2 is not a program"
    fi
    printf '%s\n' "$p"
}

# stop PID [GRACE]: it_stop, then forget the PID so that the exit trap never
# signals a number the kernel may have given to another process since.
stop() {
    [ -n "$1" ] || return 0
    it_stop "$1" "${2:-$IT_STOP_GRACE}"
    it_forget "$1"
}


# json FILE EXPR: a value from the last JSON line of FILE ("-" when missing)
json() {
    python3 - "$1" "$2" <<'PY'
import json, sys
try:
    lines = [l for l in open(sys.argv[1]) if l.startswith("{")]
    j = json.loads(lines[-1])
    v = eval(sys.argv[2], {"j": j})
    print(v if v is not None else "-")
except Exception:
    print("-")
PY
}

# build_sink OUT HEPROUTER: compiles bench/benchsink.c to OUT; it reads its
# -l address with the configuration's grammar and cuts TCP streams with the
# framer: the core library of HEPROUTER's build
build_sink() {
    local core
    core=$(dirname "$2")/libheprouter-core.a
    [ -f "$core" ] || it_fail "$core not found (benchsink links the core library of $2's build)"
    gcc -std=c11 -O2 -Wall -I"$TOP_DIR/src" -o "$1" "$TOP_DIR/bench/benchsink.c" "$core" -lyaml -lz -lpthread ||
        it_fail "gcc benchsink.c failed"
}
