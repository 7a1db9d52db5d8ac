#!/bin/sh
# docker/healthcheck.sh - the HEALTHCHECK of the heprouter image.
#
# The image has no HTTP client, so this check reads /proc (GET /healthz and
# /readyz on metrics.listen, port 9100 in docker/heprouter.yaml, say more
# from outside: Prometheus scrapes /metrics).  "healthy" means exactly:
#   1. a process named heprouter is running in the container, and
#   2. something in the container is bound to the HEP port (UDP, default
#      9060; /proc/net/udp and udp6 list bound sockets), and
#   3. the configuration file still passes `heprouter -t -c` (the file a
#      SIGHUP would load; it is not a check of the running configuration).
# It does not prove that packets flow or that Redis or the back-ends are
# reachable: heprouter keeps routing when Redis is down (see heprouter(8)),
# and the counters (`docker kill -s USR1 ...`, then `docker logs`) say how
# many packets were received, sent and dropped.
#
# Environment: HEPROUTER_CONF (default /etc/heprouter/heprouter.yaml),
# HEPROUTER_HEALTH_PORT (default 9060).  Needs only /bin/sh and /proc.
conf=${HEPROUTER_CONF:-/etc/heprouter/heprouter.yaml}
port=${HEPROUTER_HEALTH_PORT:-9060}

alive=
for c in /proc/[0-9]*/comm; do
    if [ "$(cat "$c" 2>/dev/null)" = heprouter ]; then alive=1; break; fi
done
[ -n "$alive" ] || { echo "no heprouter process"; exit 1; }

hex=$(printf '%04X' "$port")
bound=
for f in /proc/net/udp /proc/net/udp6; do
    [ -r "$f" ] || continue
    # field 2 is local_address:port in hex
    while read -r _ local _; do
        case "$local" in *:"$hex") bound=1; break ;; esac
    done < "$f"
    [ -n "$bound" ] && break
done
[ -n "$bound" ] || { echo "nothing bound to udp port $port"; exit 1; }

heprouter -t -c "$conf" >/dev/null 2>&1 || { echo "$conf does not pass heprouter -t"; exit 1; }
echo "ok"
