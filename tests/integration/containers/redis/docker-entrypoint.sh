#!/bin/sh
# tests/integration/containers/redis/docker-entrypoint.sh - what the
# official Redis image's entrypoint does for docker-compose.yml's
# `redis-server --appendonly yes`: options alone mean redis-server, and
# without a configuration file (an existing file as the first argument)
# protected mode is turned off, since other containers are the clients.
set -e
if [ "${1#-}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && ! [ -f "${2:-}" ]; then
    set -- "$@" --protected-mode no
fi
exec "$@"
