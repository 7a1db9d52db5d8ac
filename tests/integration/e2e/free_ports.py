#!/usr/bin/env python3
"""free_ports.py [--block N] [--proto udp|tcp|both] [--given FILE] COUNT

The integration tests' one port picker (lib.sh's it_free_port and
it_free_port_blocks call it), for the programs that cannot be given port 0
and say which port they got: redis-server, redis-sentinel, Kamailio, sipp,
and the ports a test keeps closed on purpose.  heprouter and hepdump take
port 0 and write --ready-file instead.

Prints COUNT port bases, one a line, such that each base p owns the block
p .. p+N-1 (N = --block, default 1), every port of it free on 127.0.0.1 for
the --proto given (default both): each is bound, then released, before it
is printed.  A sipp instance uses p for SIP, p+1 for its control socket and
four media ports from p+2: --block 8 gives each an aligned block of its own.

Bases are picked at random in [10000, the kernel's ephemeral range), so no
outgoing connection (or port-0 bind) can take a port as its source port
between picking and binding it.  With --given FILE, the ports of FILE (one
a line) are never picked, and the ports of the blocks printed are added to
it: one test never gets a port twice, even before its owner has bound it.
Another process may still take a port before its owner binds it: the
caller retries on a bind failure.
"""
import argparse
import random
import socket
import sys

PORT_MIN = 10000
EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
EPHEMERAL_DEFAULT = 32768
TRIES = 2000                    # blocks tried before giving up


def ephemeral_low():
    try:
        with open(EPHEMERAL_RANGE) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_DEFAULT


def read_given(path):
    if path is None:
        return set()
    try:
        with open(path) as f:
            return {int(line) for line in f if line.strip()}
    except FileNotFoundError:
        return set()


def block_free(base, size, kinds):
    """Binds every port of the block; True when all could be bound."""
    socks = []
    try:
        for port in range(base, base + size):
            for kind in kinds:
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--block", type=int, default=1)
    ap.add_argument("--proto", choices=("udp", "tcp", "both"), default="both")
    ap.add_argument("--given", metavar="FILE")
    ap.add_argument("count", type=int)
    args = ap.parse_args()
    kinds = {"udp": [socket.SOCK_DGRAM], "tcp": [socket.SOCK_STREAM],
             "both": [socket.SOCK_DGRAM, socket.SOCK_STREAM]}[args.proto]
    hi = ephemeral_low()
    if args.block < 1 or hi - PORT_MIN < args.block * args.count:
        sys.exit("free_ports.py: no room for %d block(s) of %d below %d" % (args.count, args.block, hi))

    given = read_given(args.given)
    rnd = random.Random()
    got = []
    for _ in range(TRIES):
        if len(got) == args.count:
            break
        base = rnd.randrange(PORT_MIN, hi - args.block + 1, args.block)
        block = set(range(base, base + args.block))
        if block & given or not block_free(base, args.block, kinds):
            continue
        given |= block
        got.append(base)
    if len(got) < args.count:
        sys.exit("free_ports.py: found %d of %d free block(s) of %d port(s)" % (len(got), args.count, args.block))
    if args.given is not None:
        with open(args.given, "a") as f:
            for base in got:
                f.writelines("%d\n" % p for p in range(base, base + args.block))
    print("\n".join(str(p) for p in got))


if __name__ == "__main__":
    main()
