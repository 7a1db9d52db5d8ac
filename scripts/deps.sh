#!/usr/bin/env bash
# deps.sh - installs the Debian 12 packages heprouter needs that are missing.
#
#   scripts/deps.sh build     compiler, autotools, the libraries, python3 and
#                             openssl (make check runs a Python script and
#                             makes test certificates)
#   scripts/deps.sh test      build + what the tests run (kamailio, sipp,
#                             redis, clang/libFuzzer, node/npm, valgrind,
#                             podman and debootstrap for the container test,
#                             debhelper and lintian for the package test,
#                             prometheus for promtool)
#
# Idempotent: it only calls apt-get when a package is missing, and says so.
set -euo pipefail

build_pkgs=(build-essential autoconf automake pkg-config
            libev-dev libhiredis-dev libyaml-dev libcunit1-dev zlib1g-dev
            libmicrohttpd-dev libpcap-dev libpcre2-dev libssl-dev
            python3             # make check: tests/integration/capture/make_pcap.py
            openssl)            # make check: tests/tls/mkcerts.sh
test_pkgs=(clang libfuzzer-14-dev libclang-rt-14-dev valgrind
           kamailio kamailio-extra-modules kamailio-tls-modules sip-tester
           redis-server redis-sentinel socat wireshark-common
           docker-compose systemd
           podman runc debootstrap
           debhelper lintian fakeroot dpkg-dev
           prometheus)

case "${1:-build}" in
    build) want=("${build_pkgs[@]}") ;;
    test)  want=("${build_pkgs[@]}" "${test_pkgs[@]}") ;;
    *) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
# node and npm: any installation will do (Debian's or NodeSource's).
if [ "${1:-build}" = test ]; then
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#want[@]} packages present"
    exit 0
fi

sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "deps: installing ${missing[*]}"
# Packages such as redis-server start a system service when installed; the
# tests never use it (they start their own on a free port).
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "deps: done"
