#!/usr/bin/env bash
# Capture real HEP v1/v2/v3 packets from Kamailio 5.6 siptrace.
#
# For hep_version in 1 2 3: start Kamailio (tests/data/kamailio-capture.cfg) on
# 127.0.0.1 UDP, a python HEP listener (siptrace duplicate_uri) that stores
# every datagram as received in tests/data/kamailio/vN/NNN.hep, and dumpcap on
# lo for Kamailio's SIP port; run sipp UAC scenarios (OPTIONS, REGISTER with
# 401, INVITE with 407 relayed to a sipp UAS, ACK, BYE); then write
# tests/data/kamailio/vN/manifest.tsv, with addresses and payload length taken
# from the SIP packet on the wire that has the same bytes as the HEP payload.
#
# Needs: kamailio (5.6), sipp (package sip-tester), dumpcap (package
# tshark/wireshark-common), python3; root or CAP_NET_RAW for dumpcap.
# Loopback only; every process is stopped by its PID; whole run < 2 minutes.
# Rerun overwrites tests/data/kamailio/v1, v2, v3 (README.md is kept), or
# CAPTURE_OUT/v1, v2, v3 when CAPTURE_OUT is set (the integration test).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# port bases below the ephemeral range, free for UDP and TCP (shared with the e2e test)
FREE_PORTS=$HERE/../integration/e2e/free_ports.py
OUT=${CAPTURE_OUT:-$HERE/kamailio}
CFG=$HERE/kamailio-capture.cfg
MODS=${KAMAILIO_MODULES:-/usr/lib/x86_64-linux-gnu/kamailio/modules}
VERSIONS=${HEP_VERSIONS:-1 2 3}

for tool in kamailio sipp dumpcap python3 timeout; do
    command -v "$tool" >/dev/null || { echo "capture-kamailio: missing $tool" >&2; exit 1; }
done
# Capturing on lo needs root or CAP_NET_RAW: as another user, through sudo.
DUMPCAP=(dumpcap)
if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || { echo "capture-kamailio: dumpcap needs root (or sudo without a password)" >&2; exit 1; }
    DUMPCAP=(sudo -n dumpcap)
fi

WORK=$(mktemp -d /tmp/heprouter-capture.XXXXXX)
PIDS=()

log() { printf '[capture %(%H:%M:%S)T] %s\n' -1 "$*"; }

# stop_pid PID NAME: TERM, wait up to 5 s, then KILL.
stop_pid() {
    local pid=$1 name=$2 i
    if ! kill -0 "$pid" 2>/dev/null; then
        wait "$pid" 2>/dev/null || true
        return 0
    fi
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) still alive, KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}" "process"
    done
    if [[ $rc -ne 0 ]]; then
        log "FAILED (rc=$rc); logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

forget_pid() {
    local pid=$1 i
    for i in "${!PIDS[@]}"; do
        [[ ${PIDS[i]} == "$pid" ]] && unset 'PIDS[i]'
    done
    PIDS=("${PIDS[@]}")
}

# ---------------------------------------------------------------- helpers ---

cat >"$WORK/hep_listen.py" <<'PY'
# HEP listener: bind 127.0.0.1:0 (UDP), write the port to PORTFILE, then store
# each received datagram, exactly as received, as OUTDIR/NNN.hep.
import os, signal, socket, sys, time
outdir, portfile = sys.argv[1], sys.argv[2]
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("127.0.0.1", 0))
tmp = portfile + ".tmp"
with open(tmp, "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(tmp, portfile)
n = 0
while True:
    data, addr = s.recvfrom(65535)
    n += 1
    with open(os.path.join(outdir, "%03d.hep" % n), "wb") as f:
        f.write(data)
    print("%.6f %03d.hep %d bytes from %s:%d" % (time.time(), n, len(data), addr[0], addr[1]), flush=True)
PY

cat >"$WORK/analyse.py" <<'PY'
# Build manifest.tsv for one capture directory.
#   analyse.py OUTDIR VERSION PCAP HEP_PORT SIP_PORT "port notes"
# Addresses and payload length come from the UDP packet on lo (pcap written by
# dumpcap) whose payload is byte-identical to the HEP payload; HEP header
# fields come from the small independent decoder below; SIP fields from the
# SIP text. Exits non-zero on a structural problem.
import glob, os, re, struct, sys, socket, time

outdir, version, pcap, hep_port, sip_port, notes = sys.argv[1:7]
version, hep_port, sip_port = int(version), int(hep_port), int(sip_port)
problems = []

def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise SystemExit("not a pcap file: %s" % path)
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    off, out = 24, []
    while off + 16 <= len(data):
        ts, tfrac, incl, _orig = struct.unpack(e + "IIII", data[off:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        t = ts + tfrac / (1e9 if nano else 1e6)
        if linktype == 1:          # Ethernet (Linux lo)
            etype, ip = struct.unpack("!H", frame[12:14])[0], frame[14:]
        elif linktype == 113:      # Linux cooked v1
            etype, ip = struct.unpack("!H", frame[14:16])[0], frame[16:]
        elif linktype == 276:      # Linux cooked v2
            etype, ip = struct.unpack("!H", frame[0:2])[0], frame[20:]
        else:
            raise SystemExit("unsupported pcap linktype %d" % linktype)
        if etype != 0x0800 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        tot = struct.unpack("!H", ip[2:4])[0]
        flags_frag = struct.unpack("!H", ip[6:8])[0]
        if flags_frag & 0x3FFF:
            problems.append("fragmented IP packet on the wire, skipped")
            continue
        udp = ip[ihl:tot]
        sport, dport, ulen = struct.unpack("!HHH", udp[:6])
        out.append(dict(t=t, src=socket.inet_ntoa(ip[12:16]), sport=sport,
                        dst=socket.inet_ntoa(ip[16:20]), dport=dport,
                        payload=udp[8:ulen]))
    return out

def decode_hep(b):
    """Independent minimal decoder: v1/v2 per the C structs (v2 time block in
    little-endian = x86 sender host order), v3 per the chunk format."""
    h = {}
    if b[:4] == b"HEP3":
        h["version"] = 3
        total = struct.unpack("!H", b[4:6])[0]
        if total != len(b):
            problems.append("HEP3 total length %d != datagram %d" % (total, len(b)))
        off, chunks = 6, []
        while off < len(b):
            vid, tid, ln = struct.unpack("!HHH", b[off:off + 6])
            if ln < 6 or off + ln > len(b):
                raise ValueError("bad chunk at %d" % off)
            chunks.append((vid, tid, b[off + 6:off + ln]))
            off += ln
        h["chunks"] = [(v, t, len(val) + 6) for v, t, val in chunks]
        c = {(v, t): val for v, t, val in chunks}
        u8 = lambda t: c[(0, t)][0]
        u16 = lambda t: struct.unpack("!H", c[(0, t)])[0]
        u32 = lambda t: struct.unpack("!I", c[(0, t)])[0]
        h["family"] = u8(1)
        h["ip_proto"] = u8(2)
        if h["family"] == 2:
            h["src"], h["dst"] = socket.inet_ntoa(c[(0, 3)]), socket.inet_ntoa(c[(0, 4)])
        else:
            h["src"] = socket.inet_ntop(socket.AF_INET6, c[(0, 5)])
            h["dst"] = socket.inet_ntop(socket.AF_INET6, c[(0, 6)])
        h["sport"], h["dport"] = u16(7), u16(8)
        h["ts_sec"], h["ts_usec"] = u32(9), u32(10)
        h["proto_type"] = u8(11)
        cid = c[(0, 12)]
        h["capture_id"] = struct.unpack("!I" if len(cid) == 4 else "!H", cid)[0]
        h["correlation_id"] = c.get((0, 0x11), b"").decode("utf-8", "replace")
        h["payload"] = c[(0, 15)]
        return h
    ver, hlen, fam, proto = b[0], b[1], b[2], b[3]
    if ver not in (1, 2):
        raise ValueError("unknown HEP version byte %d" % ver)
    h["version"], h["family"], h["ip_proto"] = ver, fam, proto
    h["sport"], h["dport"] = struct.unpack("!HH", b[4:8])
    if fam == 2:
        if hlen != 16:
            problems.append("v%d header length %d for IPv4" % (ver, hlen))
        h["src"], h["dst"] = socket.inet_ntoa(b[8:12]), socket.inet_ntoa(b[12:16])
    else:
        if hlen != 40:
            problems.append("v%d header length %d for IPv6" % (ver, hlen))
        h["src"] = socket.inet_ntop(socket.AF_INET6, b[8:24])
        h["dst"] = socket.inet_ntop(socket.AF_INET6, b[24:40])
    off = hlen
    h["ts_sec"] = h["ts_usec"] = 0
    h["capture_id"] = h["proto_type"] = None
    if ver == 2:
        h["ts_sec"], h["ts_usec"], h["capture_id"] = struct.unpack("<IIH", b[off:off + 10])
        off += 12
    h["correlation_id"] = ""
    h["payload"] = b[off:]
    return h

def sip_fields(p):
    text = p.decode("utf-8", "replace")
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    first, callid, cseq_n, cseq_m = head[0], "", "", ""
    for line in head[1:]:
        if ":" not in line:
            continue
        name, val = line.split(":", 1)
        name, val = name.strip().lower(), val.strip()
        if name in ("call-id", "i") and not callid:
            callid = val
        elif name == "cseq" and not cseq_n:
            parts = val.split()
            cseq_n, cseq_m = parts[0], parts[1] if len(parts) > 1 else ""
    return first, callid, cseq_n, cseq_m

wire = read_pcap(pcap)
wire_hep = [w for w in wire if w["dport"] == hep_port]
wire_sip = [w for w in wire if w["dport"] != hep_port and w["sport"] != hep_port]
files = sorted(glob.glob(os.path.join(outdir, "[0-9][0-9][0-9].hep")))

# The listener's files must be exactly the HEP datagrams seen on the wire.
if [open(f, "rb").read() for f in files] != [w["payload"] for w in wire_hep]:
    problems.append("HEP files differ from the HEP datagrams on the wire (%d files, %d on wire)"
                    % (len(files), len(wire_hep)))

MF = re.compile(rb"\r\n(Max-Forwards|max-forwards)[ \t]*:[ \t]*([0-9]+)")
norm_mf = lambda p: MF.sub(b"\r\nMax-Forwards: N", p)
def mf_value(p):
    m = MF.search(p)
    return m.group(2).decode() if m else "-"
mf_rows = []
rows, notes_out, unmatched, ambiguous, addr_mismatch, ts_off = [], [], [], [], [], []
for i, f in enumerate(files):
    b = open(f, "rb").read()
    h = decode_hep(b)
    if h["version"] != version:
        problems.append("%s: HEP version %d, expected %d" % (f, h["version"], version))
    name = os.path.basename(f)
    cands = [w for w in wire_sip if w["payload"] == h["payload"]]
    if not cands:
        # Kamailio's mf_process_maxfwd_header() rewrites Max-Forwards in the
        # receive buffer before siptrace copies it: match modulo that header.
        cands = [w for w in wire_sip if len(w["payload"]) == len(h["payload"])
                 and norm_mf(w["payload"]) == norm_mf(h["payload"])]
        if cands:
            mf_rows.append("%s (wire %s, HEP %s)" % (name, mf_value(cands[0]["payload"]), mf_value(h["payload"])))
    addrs = {(w["src"], w["sport"], w["dst"], w["dport"]) for w in cands}
    hep_addr = (h["src"], h["sport"], h["dst"], h["dport"])
    if len(addrs) == 1:
        src, sport, dst, dport = addrs.pop()
    else:
        src, sport, dst, dport = hep_addr
        (ambiguous if addrs else unmatched).append(name)
    if len(addrs) <= 1 and cands and (src, sport, dst, dport) != hep_addr:
        addr_mismatch.append("%s hep=%s:%d>%s:%d wire=%s:%d>%s:%d" % ((name,) + hep_addr + (src, sport, dst, dport)))
    if version >= 2 and i < len(wire_hep):
        ts_off.append(wire_hep[i]["t"] - (h["ts_sec"] + h["ts_usec"] / 1e6))
    first, callid, cseq_n, cseq_m = sip_fields(h["payload"])
    rows.append([name, h["version"], h["family"], h["ip_proto"], src, sport, dst, dport,
                 h["ts_sec"], "" if h["capture_id"] is None else h["capture_id"],
                 "" if h["proto_type"] is None else h["proto_type"],
                 len(h["payload"]), h["correlation_id"], first, callid, cseq_n, cseq_m])
    if version == 3:
        order = [t for v, t, _ in h["chunks"]]
        overhead = len(b) - len(h["payload"])
        expect = [1, 2, 3, 4, 7, 8, 9, 10, 11, 12] + ([0x11] if h["correlation_id"] else []) + [15]
        if order != expect:
            problems.append("%s: chunk order %s" % (name, ",".join("0x%04x" % t for t in order)))
        want = 99 + (6 + len(h["correlation_id"].encode()) if h["correlation_id"] else 0)
        if overhead != want:
            problems.append("%s: HEP3 overhead %d, expected %d" % (name, overhead, want))

cols = ["file", "version", "family", "ip_proto", "src_ip", "src_port", "dst_ip", "dst_port",
        "ts_sec", "capture_id", "proto_type", "payload_len", "correlation_id",
        "first_line", "call_id", "cseq_num", "cseq_method"]
with open(os.path.join(outdir, "manifest.tsv"), "w") as m:
    m.write("# Kamailio siptrace hep_version=%d, %d packets, captured %s by tests/data/capture-kamailio.sh\n"
            % (version, len(rows), time.strftime("%Y-%m-%d")))
    m.write("# run: %s\n" % notes)
    m.write("# src_ip,src_port,dst_ip,dst_port: from the UDP packet on lo (dumpcap) whose payload"
            " is byte-identical to the HEP payload (or identical but for Max-Forwards, see below); wire-verified for all rows except: %s\n"
            % (", ".join(unmatched + ambiguous) or "none"))
    m.write("# payload_len: length of the HEP payload, equal to the wire UDP payload length for every wire-matched row\n")
    if mf_rows:
        m.write("# matched to the wire except for the Max-Forwards value (Kamailio decrements it in the received"
                " buffer before siptrace copies it): %s\n" % ", ".join(mf_rows))
    if unmatched:
        m.write("# no identical wire packet (columns from the HEP header): %s\n" % ", ".join(unmatched))
    if ambiguous:
        m.write("# identical payload seen on the wire with different addresses (columns from the HEP header): %s\n"
                % ", ".join(ambiguous))
    m.write("# HEP header addresses vs wire: %s\n"
            % ("; ".join(addr_mismatch) if addr_mismatch else "identical for every wire-matched row"))
    m.write("# version,family,ip_proto,ts_sec,capture_id,proto_type,correlation_id: decoded from the HEP header"
            " (v2 time block little-endian); first_line,call_id,cseq_*: from the SIP text\n")
    if ts_off:
        m.write("# HEP timestamp vs wire time of the HEP datagram: %.6f..%.6f s\n" % (min(ts_off), max(ts_off)))
    m.write("\t".join(cols) + "\n")
    for r in rows:
        m.write("\t".join(str(x) for x in r) + "\n")

for r in rows:
    print("  %s %s:%s -> %s:%s  %-40.40s cid=%s" % (r[0], r[4], r[5], r[6], r[7], r[13], r[12] or "-"))
if unmatched or ambiguous or addr_mismatch:
    print("  note: unmatched=%s ambiguous=%s addr_mismatch=%s" % (unmatched, ambiguous, addr_mismatch))
if mf_rows:
    print("  matched modulo Max-Forwards: %s" % ", ".join(mf_rows))
if ts_off and (min(ts_off) < -1 or max(ts_off) > 1):
    problems.append("HEP timestamps are more than 1 s away from the wire time")
if problems:
    for p in problems:
        print("  PROBLEM: " + p, file=sys.stderr)
    sys.exit(1)
PY

# wait_for CMD...: retry for up to 10 s
wait_for() {
    local i
    for i in $(seq 100); do
        if "$@"; then return 0; fi
        sleep 0.1
    done
    return 1
}
udp_port_bound() {  # true when something is bound to 127.0.0.1:$1/udp
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
try: s.bind(("127.0.0.1",int(sys.argv[1])))
except OSError: sys.exit(0)
sys.exit(1)' "$1"
}

run_sipp() {  # run_sipp NAME SCENARIO PORTBASE CIDPREFIX
    local name=$1 sf=$2 base=$3 cid=$4
    log "sipp UAC $name: 127.0.0.1:$base -> 127.0.0.1:$SIP_PORT ($sf)"
    (cd "$WORK" && timeout 20 sipp "127.0.0.1:$SIP_PORT" -sf "$HERE/$sf" -i 127.0.0.1 -ci 127.0.0.1 \
        -p "$base" -cp "$((base + 1))" -mp "$((base + 2))" -cid_str "$cid-%u-%p@%s" \
        -m 1 -timeout 10s -timeout_error -recv_timeout 5s -nostdin >"$WORK/sipp-$name.log" 2>&1) || {
        log "sipp $name failed"; tail -30 "$WORK/sipp-$name.log"; return 1; }
}

# ------------------------------------------------------------------- main ---

mkdir -p "$OUT"
log "kamailio: $(kamailio -v | head -1)"
log "sipp: $(sipp -v 2>&1 | grep -m1 SIPp | sed 's/^ *//')"

for V in $VERSIONS; do
    D=$OUT/v$V
    log "=== hep_version=$V -> $D"
    rm -rf "$D"
    mkdir -p "$D"
    # HEP listener
    rm -f "$WORK/hep.port"
    python3 -u "$WORK/hep_listen.py" "$D" "$WORK/hep.port" >"$WORK/hep-v$V.log" 2>&1 &
    HEP_PID=$!; PIDS+=("$HEP_PID")
    wait_for test -s "$WORK/hep.port" || { log "HEP listener did not start"; exit 1; }
    HEP_PORT=$(cat "$WORK/hep.port")
    log "HEP listener pid $HEP_PID on udp:127.0.0.1:$HEP_PORT"
    read -r SIP_PORT UAS_BASE OPT_BASE REG_BASE INV_BASE < <(python3 "$FREE_PORTS" 5 | paste -sd ' ')

    # wire capture of everything to/from Kamailio's SIP port (SIP and HEP)
    PCAP=$WORK/v$V.pcap
    "${DUMPCAP[@]}" -q -P -i lo -f "udp port $SIP_PORT" -w "$PCAP" >"$WORK/dumpcap-v$V.log" 2>&1 &
    CAP_PID=$!; PIDS+=("$CAP_PID")
    wait_for grep -q "Capturing on" "$WORK/dumpcap-v$V.log" || { log "dumpcap did not start"; cat "$WORK/dumpcap-v$V.log"; exit 1; }
    sleep 0.3
    log "dumpcap pid $CAP_PID on lo, filter 'udp port $SIP_PORT'"

    KDEFS=(-A "SIP_PORT=$SIP_PORT" -A "HEP_URI=\"sip:127.0.0.1:$HEP_PORT\""
           -A "UAS_URI=\"sip:127.0.0.1:$UAS_BASE\"" -A "HEP_VERSION=$V")
    log "kamailio -c -f $CFG ${KDEFS[*]}"
    kamailio -c -f "$CFG" -L "$MODS" "${KDEFS[@]}" >"$WORK/kamailio-check-v$V.log" 2>&1 \
        || { cat "$WORK/kamailio-check-v$V.log"; exit 1; }
    grep -q "config file ok" "$WORK/kamailio-check-v$V.log" || { cat "$WORK/kamailio-check-v$V.log"; exit 1; }
    mkdir -p "$WORK/run-v$V"
    kamailio -f "$CFG" -L "$MODS" "${KDEFS[@]}" -DD -E -T -P "$WORK/run-v$V/kamailio.pid" \
        -Y "$WORK/run-v$V" -m 64 -M 8 -a no >"$WORK/kamailio-v$V.log" 2>&1 &
    KAM_PID=$!; PIDS+=("$KAM_PID")
    wait_for udp_port_bound "$SIP_PORT" || { log "kamailio did not start"; cat "$WORK/kamailio-v$V.log"; exit 1; }
    sleep 0.5
    log "kamailio pid $KAM_PID on udp:127.0.0.1:$SIP_PORT (hep_version=$V)"

    run_sipp options sipp-options.xml "$OPT_BASE" opt
    run_sipp register sipp-register.xml "$REG_BASE" reg

    log "sipp UAS on 127.0.0.1:$UAS_BASE (sipp-uas.xml)"
    (cd "$WORK" && exec timeout 25 sipp -sf "$HERE/sipp-uas.xml" -i 127.0.0.1 -ci 127.0.0.1 \
        -p "$UAS_BASE" -cp "$((UAS_BASE + 1))" -mp "$((UAS_BASE + 2))" \
        -m 1 -timeout 20s -timeout_error -nostdin >"$WORK/sipp-uas-v$V.log" 2>&1) &
    UAS_PID=$!; PIDS+=("$UAS_PID")
    wait_for udp_port_bound "$UAS_BASE" || { log "sipp UAS did not start"; exit 1; }

    run_sipp invite sipp-invite.xml "$INV_BASE" inv
    UAS_RC=0
    for i in $(seq 100); do kill -0 "$UAS_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$UAS_PID" 2>/dev/null; then
        stop_pid "$UAS_PID" "sipp UAS"; UAS_RC=1
    else
        wait "$UAS_PID" || UAS_RC=$?
    fi
    forget_pid "$UAS_PID"
    [[ $UAS_RC -eq 0 ]] || { log "sipp UAS failed (rc=$UAS_RC)"; tail -30 "$WORK/sipp-uas-v$V.log"; exit 1; }

    sleep 0.5   # let the last traces arrive
    stop_pid "$KAM_PID" kamailio; forget_pid "$KAM_PID"
    sleep 0.2
    stop_pid "$HEP_PID" "HEP listener"; forget_pid "$HEP_PID"
    stop_pid "$CAP_PID" dumpcap; forget_pid "$CAP_PID"
    if grep -E "ERROR|CRITICAL" "$WORK/kamailio-v$V.log" | grep -v "raw socket" >/dev/null; then
        log "kamailio logged errors:"; grep -E "ERROR|CRITICAL" "$WORK/kamailio-v$V.log" | head -20
    fi

    N=$(find "$D" -name '[0-9][0-9][0-9].hep' | wc -l)
    log "hep_version=$V: $N HEP packets; writing $D/manifest.tsv"
    python3 "$WORK/analyse.py" "$D" "$V" "$PCAP" "$HEP_PORT" "$SIP_PORT" \
        "kamailio udp:127.0.0.1:$SIP_PORT, HEP listener udp:127.0.0.1:$HEP_PORT, sipp UAS 127.0.0.1:$UAS_BASE, sipp UAC OPTIONS 127.0.0.1:$OPT_BASE, REGISTER 127.0.0.1:$REG_BASE, INVITE 127.0.0.1:$INV_BASE"
done
log "done: $(for V in $VERSIONS; do printf 'v%s=%s ' "$V" "$(find "$OUT/v$V" -name '*.hep' | wc -l)"; done)"
