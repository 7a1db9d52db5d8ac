#!/usr/bin/env bash
# run.sh - installs what is missing, builds, and runs heprouter in the
# foreground on the bundled etc/heprouter.yaml (memory store, no other
# service).  Stop it with Ctrl-C; SIGUSR1 logs its counters.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/deps.sh" build
"$top/scripts/build.sh" build
conf="$top/etc/heprouter.yaml"
echo "run: $top/build/src/heprouter -c $conf"
exec "$top/build/src/heprouter" -c "$conf"
