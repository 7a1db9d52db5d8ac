#!/usr/bin/env python3
"""make_pcap.py - packet captures of the Kamailio HEP fixtures, for capture.c.

    make_pcap.py DATA_DIR OUT_DIR

DATA_DIR/kamailio/v3/*.hep, in name order, are wrapped in the frames a
collector's capture would hold, one file per kind (Python 3 standard library
only, nothing binary in git):

  udp.pcap     Ethernet, IPv4, UDP; every other frame has an 802.1Q tag
  udp.pcapng   the same frames as pcapng
  sll.pcap     Linux cooked (SLL), IPv4, UDP; nanosecond timestamps
  sll2.pcap    Linux cooked v2 (SLL2), IPv4, UDP
  ipv6.pcap    Ethernet, IPv6 (a hop-by-hop header on every other one), UDP
  raw.pcap     raw IPv4, UDP
  tcp.pcap     Ethernet, IPv4, TCP: one connection carrying every packet as a
               HEP3 stream whose segments split frames in 3, glue several
               frames, overlap and repeat (retransmissions); then a second
               connection that lost the segment of its second frame, and a
               third with bytes that are not a frame (a bad length) before
               its second frame
  garbage.pcap the packets of udp.pcap among non-IP frames, a truncated
               record, fragments, ICMP, broken headers and one datagram of
               random bytes (returned: it is what a socket would get)

Next to each NAME goes NAME.expect, what a reader must return, one line per
packet: HEX SEC NSEC TRANSPORT SRC DST (addresses as "1.2.3.4:5" or
"[2001:db8::1]:5"), then one "skip REASON N" line per reason that must be
counted (capture.h's names; any other must be 0).
"""

import glob
import os
import random
import socket
import struct
import sys

BASE_SEC = 1700000000
LINK_EN10MB, LINK_RAW, LINK_SLL, LINK_SLL2 = 1, 101, 113, 276
ETH_IPV4, ETH_IPV6, ETH_ARP, ETH_VLAN = 0x0800, 0x86DD, 0x0806, 0x8100
PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17
V4_SRC, V4_DST = "192.0.2.10", "192.0.2.20"
V6_SRC, V6_DST = "2001:db8::10", "2001:db8::20"
SRC_PORT, DST_PORT = 40000, 9070
TCP_SRC, TCP_LOST_SRC, TCP_JUNK_SRC = ("192.0.2.30", 41000), ("192.0.2.31", 41001), ("192.0.2.32", 41002)
TCP_ISN = 0xFFFFF000          # the sequence numbers wrap inside the stream
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class Clock:
    """Each record one second and one millisecond after the previous one."""

    def __init__(self):
        self.k = 0

    def tick(self):
        self.k += 1
        return BASE_SEC + self.k, (self.k * 1000 + 123) * 1000   # sec, nsec (whole us)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src, dst, proto, payload, frag=0, total=None):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total or 20 + len(payload), 1, frag, 64, proto,
                      0, socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def ipv6(src, dst, proto, payload, hop_by_hop=False):
    if hop_by_hop:
        payload = struct.pack("!BB6s", proto, 0, b"\x01\x04\0\0\0\0") + payload
        proto = 0
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, 64,
                       socket.inet_pton(socket.AF_INET6, src),
                       socket.inet_pton(socket.AF_INET6, dst)) + payload


def udp(sport, dport, payload, length=None):
    return struct.pack("!HHHH", sport, dport, length or 8 + len(payload), 0) + payload


def tcp(sport, dport, seq, flags, payload=b""):
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 0, 5 << 4, flags,
                       65535, 0, 0) + payload


def ether(ethertype, payload, vlan=None):
    hdr = b"\x02\0\0\0\0\x02" + b"\x02\0\0\0\0\x01"
    if vlan is not None:
        hdr += struct.pack("!HH", ETH_VLAN, vlan)
    return hdr + struct.pack("!H", ethertype) + payload


def sll(ethertype, payload):
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02\0\0\0\0\x01\0\0", ethertype) + payload


def sll2(ethertype, payload):
    return struct.pack("!HHIHBB8s", ethertype, 0, 1, 1, 0, 6, b"\x02\0\0\0\0\x01\0\0") + payload


def addr(ip, port):
    return "[%s]:%d" % (ip, port) if ":" in ip else "%s:%d" % (ip, port)


class Capture:
    def __init__(self, link):
        self.link = link
        self.records = []          # (sec, nsec, data, wire length)
        self.expect = []
        self.skips = {}

    def record(self, ts, data, wire_len=None):
        self.records.append((ts[0], ts[1], data, wire_len or len(data)))

    def packet(self, raw, ts, transport, src, dst):
        self.expect.append("%s %d %d %s %s %s" % (raw.hex(), ts[0], ts[1], transport,
                                                  addr(*src), addr(*dst)))

    def skip(self, reason):
        self.skips[reason] = self.skips.get(reason, 0) + 1

    def write_pcap(self, path, nano=False):
        with open(path, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0,
                                65535, self.link))
            for sec, nsec, data, wire in self.records:
                frac = nsec if nano else nsec // 1000
                f.write(struct.pack("<IIII", sec, frac, len(data), wire) + data)

    def write_pcapng(self, path):
        def block(btype, body):
            body += b"\0" * (-len(body) % 4)
            n = 12 + len(body)
            return struct.pack("<II", btype, n) + body + struct.pack("<I", n)

        with open(path, "wb") as f:
            f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
            f.write(block(1, struct.pack("<HHI", self.link, 0, 0)))
            for sec, nsec, data, wire in self.records:
                us = sec * 1000000 + nsec // 1000
                f.write(block(6, struct.pack("<IIIII", 0, us >> 32, us & 0xFFFFFFFF,
                                             len(data), wire) + data))

    def write_expect(self, path):
        with open(path, "w") as f:
            for line in self.expect:
                f.write(line + "\n")
            for reason, n in sorted(self.skips.items()):
                f.write("skip %s %d\n" % (reason, n))


def udp_frames(packets, wrap, family="ipv4"):
    """One capture of every packet as a UDP datagram; wrap(i, ip_packet) is the link frame."""
    cap, clk = Capture(None), Clock()
    for i, raw in enumerate(packets):
        ts = clk.tick()
        src, dst = (V4_SRC, SRC_PORT + i), (V4_DST, DST_PORT)
        if family == "ipv4":
            ip = ipv4(src[0], dst[0], PROTO_UDP, udp(src[1], dst[1], raw))
        else:
            src, dst = (V6_SRC, SRC_PORT + i), (V6_DST, DST_PORT)
            ip = ipv6(src[0], dst[0], PROTO_UDP, udp(src[1], dst[1], raw), hop_by_hop=i % 2 == 0)
        cap.record(ts, wrap(i, ip))
        cap.packet(raw, ts, "udp", src, dst)
    return cap


def garbage(packets):
    cap, clk = Capture(LINK_EN10MB), Clock()
    rnd = random.Random(7)
    for i, raw in enumerate(packets):
        src, dst = (V4_SRC, SRC_PORT + i), (V4_DST, DST_PORT)
        ip = ipv4(src[0], dst[0], PROTO_UDP, udp(src[1], dst[1], raw))
        if i == 0:
            cap.record(clk.tick(), ether(ETH_ARP, bytes(28)))
            cap.skip("link")
        if i == 2:
            frame = ether(ETH_IPV4, ip)
            cap.record(clk.tick(), frame[:-10], len(frame))
            cap.skip("truncated")
        if i == 4:
            junk = bytes(rnd.randrange(256) for _ in range(200))
            ts = clk.tick()
            cap.record(ts, ether(ETH_IPV4, ipv4(src[0], dst[0], PROTO_UDP, udp(5999, DST_PORT, junk))))
            cap.packet(junk, ts, "udp", (V4_SRC, 5999), dst)
        if i == 6:
            cap.record(clk.tick(), ether(ETH_IPV4, ipv4(src[0], dst[0], PROTO_UDP,
                                                         udp(src[1], dst[1], raw)[:64], frag=0x2000)))
            cap.skip("fragment")
        if i == 8:
            cap.record(clk.tick(), ether(ETH_IPV4, ipv4(src[0], dst[0], PROTO_ICMP,
                                                         b"\x08\0\0\0\0\1\0\1")))
            cap.skip("not_udp_tcp")
        if i == 10:
            cap.record(clk.tick(), bytes(10))
            cap.skip("link")
        if i == 12:
            cap.record(clk.tick(), ether(ETH_IPV4, ipv4(src[0], dst[0], PROTO_UDP,
                                                         udp(src[1], dst[1], raw[:20]), total=1400)))
            cap.skip("bad_ip")
        if i == 14:
            cap.record(clk.tick(), ether(ETH_IPV4, ipv4(src[0], dst[0], PROTO_UDP,
                                                         udp(src[1], dst[1], raw[:20], length=900))))
            cap.skip("bad_l4")
        if i == 16:
            frag = struct.pack("!BBHI", PROTO_UDP, 0, 1, 99) + udp(src[1], dst[1], raw)[:64]
            cap.record(clk.tick(), ether(ETH_IPV6, ipv6(V6_SRC, V6_DST, 44, frag)))
            cap.skip("fragment")
        if i == 18:
            cap.record(clk.tick(), ether(ETH_IPV4, bytes([0]) + bytes(rnd.randrange(256) for _ in range(60))))
            cap.skip("bad_ip")
        ts = clk.tick()
        cap.record(ts, ether(ETH_IPV4, ip))
        cap.packet(raw, ts, "udp", src, dst)
    return cap


def tcp_capture(packets):
    cap, clk = Capture(LINK_EN10MB), Clock()
    stream = b"".join(packets)
    ends = [sum(len(p) for p in packets[:i + 1]) for i in range(len(packets))]
    first = len(packets[0])
    # byte ranges sent, in order: frame 0 in three, frames 1-4 in one, then
    # 700-byte pieces across frame boundaries, with a repeat and an overlap
    ranges = [(0, first // 3), (first // 3, 2 * first // 3), (2 * first // 3, first),
              (first, ends[4])]
    pos = ends[4]
    while pos < len(stream):
        ranges.append((pos, min(pos + 700, len(stream))))
        pos = ranges[-1][1]
    ranges.insert(6, ranges[5])                                  # whole repeat
    cap.skip("tcp_retransmit")
    a, b = ranges[8]
    ranges[8:9] = [(a, a + 300), (a + 100, b)]                   # overlap

    src, dst = TCP_SRC, (V4_DST, DST_PORT)

    def seg(s, d, seq, flags, payload=b""):
        cap.record(clk.tick(), ether(ETH_IPV4, ipv4(s[0], d[0], PROTO_TCP,
                                                      tcp(s[1], d[1], seq, flags, payload))))

    seg(src, dst, TCP_ISN, SYN)
    seg(dst, src, 5000, SYN | ACK)
    done = 0        # frames completed so far
    high = 0        # stream bytes delivered so far
    for a, b in ranges:
        seg(src, dst, TCP_ISN + 1 + a, PSH | ACK, stream[a:b])
        ts = cap.records[-1][:2]
        high = max(high, b)
        while done < len(packets) and ends[done] <= high:
            cap.packet(packets[done], ts, "tcp", src, dst)
            done += 1
        seg(dst, src, 5001, ACK)
    seg(src, dst, TCP_ISN + 1 + len(stream), FIN | ACK)

    # a second connection whose second frame's segment the capture lost
    src = TCP_LOST_SRC
    seg(src, dst, 0, SYN)
    seq = 1
    for i in range(3):
        if i != 1:
            seg(src, dst, seq, PSH | ACK, packets[i])
            cap.packet(packets[i], cap.records[-1][:2], "tcp", src, dst)
        seq += len(packets[i])
    cap.skip("tcp_gap")
    seg(src, dst, seq, RST)

    # a third one with bytes that are no HEP3 frame before its second frame
    src = TCP_JUNK_SRC
    seg(src, dst, 0, SYN)
    junk = b"HEP3\0\2" + bytes(range(50))
    for i, payload in enumerate([packets[0], junk + packets[1], packets[2]]):
        seg(src, dst, 1 + sum(len(p) for p in [packets[0], junk + packets[1]][:i]), PSH | ACK, payload)
        cap.packet(packets[i], cap.records[-1][:2], "tcp", src, dst)
    cap.skip("tcp_framing")
    seg(src, dst, 1 + len(packets[0]) + len(junk) + len(packets[1]) + len(packets[2]), FIN | ACK)
    return cap


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_pcap.py DATA_DIR OUT_DIR")
    data, out = sys.argv[1:]
    packets = [open(p, "rb").read()
               for p in sorted(glob.glob(os.path.join(data, "kamailio", "v3", "*.hep")))]
    if not packets:
        sys.exit("make_pcap.py: no .hep files under %s/kamailio/v3" % data)
    os.makedirs(out, exist_ok=True)

    def save(cap, name, link, **kw):
        cap.link = link
        path = os.path.join(out, name)
        if name.endswith(".pcapng"):
            cap.write_pcapng(path)
        else:
            cap.write_pcap(path, **kw)
        cap.write_expect(path + ".expect")

    eth = udp_frames(packets, lambda i, ip: ether(ETH_IPV4, ip, vlan=100 if i % 2 else None))
    save(eth, "udp.pcap", LINK_EN10MB)
    save(eth, "udp.pcapng", LINK_EN10MB)
    save(udp_frames(packets, lambda i, ip: sll(ETH_IPV4, ip)), "sll.pcap", LINK_SLL, nano=True)
    save(udp_frames(packets, lambda i, ip: sll2(ETH_IPV4, ip)), "sll2.pcap", LINK_SLL2)
    save(udp_frames(packets, lambda i, ip: ether(ETH_IPV6, ip), family="ipv6"),
         "ipv6.pcap", LINK_EN10MB)
    save(udp_frames(packets, lambda i, ip: ip), "raw.pcap", LINK_RAW)
    save(tcp_capture(packets), "tcp.pcap", LINK_EN10MB)
    save(garbage(packets), "garbage.pcap", LINK_EN10MB)


if __name__ == "__main__":
    main()
