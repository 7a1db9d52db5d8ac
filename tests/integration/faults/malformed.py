#!/usr/bin/env python3
"""malformed.py - writes malformed HEP packets, one a file, for test_faults.sh.

    malformed.py BASE.hep OUTDIR COUNT [SEED]

COUNT files OUTDIR/NNNNN.bad, made from BASE (a valid HEP3 packet) in turn
by four kinds: random bytes (first byte 0xee: neither HEP3 nor v1/v2),
BASE truncated, BASE with a bad total or chunk length, and a HEP3 packet of
10,000 empty chunks whose last chunk runs past the end.  Every file must be
refused by hep_decode(): the test checks that with hepconv decode, so the
number of malformed packets it sends is known exactly.  The seed is fixed:
runs are reproducible.
"""
import os
import random
import struct
import sys

HEP3_HDR = 6            # "HEP3" + total length
CHUNK_HDR = 6           # vendor, type, length
HUGE_CHUNKS = 10000


def random_bytes(rng, base):
    n = rng.randint(1, 1400)
    return b"\xee" + bytes(rng.getrandbits(8) for _ in range(n - 1))


def truncated(rng, base):
    return base[:rng.randint(1, len(base) - 1)]


def bad_length(rng, base):
    b = bytearray(base)
    if rng.random() < 0.5:
        total = rng.choice([0, 1, 5, len(b) + 1, len(b) + rng.randint(2, 1000), 65535])
        struct.pack_into(">H", b, 4, total)
    else:
        # walk to a random chunk and give it a length < 6 or past the end
        offs, off = [], HEP3_HDR
        while off + CHUNK_HDR <= len(b):
            offs.append(off)
            off += struct.unpack_from(">H", b, off + 4)[0]
        at = rng.choice(offs)
        bad = rng.choice([0, 1, 5, len(b) - at + 1, 65535])
        struct.pack_into(">H", b, at + 4, bad)
    return bytes(b)


def huge_chunk_count(rng, base):
    body = struct.pack(">HHH", 0, 0x7fff, CHUNK_HDR) * HUGE_CHUNKS
    body += struct.pack(">HHH", 0, 0x000f, 100) + b"x" * 10     # claims 100, has 16
    return b"HEP3" + struct.pack(">H", HEP3_HDR + len(body)) + body


KINDS = [random_bytes, truncated, bad_length, huge_chunk_count]


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    base = open(sys.argv[1], "rb").read()
    out, count = sys.argv[2], int(sys.argv[3])
    rng = random.Random(int(sys.argv[4]) if len(sys.argv) == 5 else 15)
    os.makedirs(out, exist_ok=True)
    for i in range(count):
        with open(os.path.join(out, "%05d.bad" % i), "wb") as f:
            f.write(KINDS[i % len(KINDS)](rng, base))


if __name__ == "__main__":
    main()
