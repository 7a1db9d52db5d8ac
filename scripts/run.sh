#!/usr/bin/env bash
# run.sh - installs what is missing, builds, and runs heprouter in the
# foreground on the bundled etc/heprouter.yaml (memory store, no other
# service).  Stop it with Ctrl-C; SIGUSR1 logs its counters.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" build
"$top/scripts/build.sh" build
conf="$top/etc/heprouter.yaml"
args=(-c "$conf")
# heprouter does not route packets as root: started as root, it binds and
# then runs as nobody (-u; see user: in heprouter.yaml(5))
[ "$(id -u)" != 0 ] || args+=(-u nobody)
echo "run: $top/build/src/heprouter ${args[*]}"
exec "$top/build/src/heprouter" "${args[@]}"
