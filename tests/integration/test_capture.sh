#!/bin/bash
# test_capture.sh - `hepdump -r` prints a capture's packets exactly as
# hepdump prints them received live.  The Kamailio HEPv3 captures are sent
# to a live hepdump with hepreplay.py, and wrapped in captures by
# capture/make_pcap.py; both outputs (--raw --payload) must match line for
# line but for "t" and "peer" (the live ones are this run's time and
# sender, the capture's are make_pcap.py's, also checked).  A live hepdump's
# own --raw output read back with -r gives the very same lines, time and
# peer included.
#
# Cases (all by default): udp tcp json_lines options
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

it_init 120
HEPDUMP=$(it_bin tools/hepdump) || exit 1
MAKE_PCAP=$IT_SRCDIR/tests/integration/capture/make_pcap.py
IT_CASES=(udp tcp json_lines options)
PCAPS=$IT_TMP/pcaps
OUT_OPTS=(--raw --payload -q)
FIRST_T=1700000001.001123           # make_pcap.py's first record
WAIT=20                             # seconds for a live hepdump to get everything

python3 "$MAKE_PCAP" "$IT_SRCDIR/tests/data" "$PCAPS" || it_fail "make_pcap.py failed"
ITEMS=()
for f in "$IT_DATA"/v3/*.hep; do
    n=${f##*/}
    ITEMS+=("v3/${n%.hep}")
done
N=${#ITEMS[@]}
[ "$N" -gt 0 ] || it_fail "no v3 captures in $IT_DATA"

# live TRANSPORT OUT [HEPREPLAY SEND OPTIONS]: every item through a live hepdump.
live() {
    local transport=$1 out=$2 pid
    shift 2
    it_start_hepdump "$CASE/live" -l "$transport:127.0.0.1:0" -o "$out" -n "$N" "${OUT_OPTS[@]}"
    pid=$IT_PID
    it_run 20 "${IT_REPLAY[@]}" send "$(it_listen_addr "$IT_TMP/$CASE/live.ready" "$transport")" \
        "$@" "${ITEMS[@]}" || it_case_fail "hepreplay send failed"
    it_wait_exit "$pid" "$WAIT"
    [ "$IT_STATUS" = 0 ] || it_case_fail "live hepdump exited with $IT_STATUS"
}

# read_capture FILE OUT [OPTIONS]: hepdump -r FILE.
read_capture() {
    local file=$1 out=$2
    shift 2
    "$HEPDUMP" -r "$file" -o "$out" "$@" 2>"$out.err" || it_case_fail "hepdump -r $file exited with $?"
}

# Each line without its "t" and "peer".
strip_t_peer() {
    sed 's/,"t":[0-9.]*,"peer":"[^"]*"//' "$1"
}

# same_but_t_peer LIVE READ: the lines match but for t and peer.
same_but_t_peer() {
    local n
    n=$(wc -l <"$2")
    [ "$n" = "$N" ] || it_case_fail "${2##*/}: $n lines, expected $N"
    diff <(strip_t_peer "$1") <(strip_t_peer "$2") >"$2.diff" ||
        it_case_fail "${2##*/} differs from the live output (${2##*/}.diff)"
}

# first_line_has FILE TEXT...: the first line holds each TEXT.
first_line_has() {
    local file=$1 text
    shift
    for text in "$@"; do
        head -n 1 "$file" | grep -qF -- "$text" || it_case_fail "${file##*/}: first line lacks $text"
    done
}

case_udp() {
    it_case_begin udp "pcap and pcapng of UDP datagrams as received on UDP"
    live udp "$CASE_DIR/live.json"
    for f in udp.pcap udp.pcapng; do
        read_capture "$PCAPS/$f" "$CASE_DIR/$f.json" "${OUT_OPTS[@]}"
        same_but_t_peer "$CASE_DIR/live.json" "$CASE_DIR/$f.json"
        first_line_has "$CASE_DIR/$f.json" "\"t\":$FIRST_T," '"peer":"192.0.2.10:40000"' '"transport":"udp"'
    done
    it_stop_all
    it_case_end "$CASE_DIR/live.err"
}

case_tcp() {
    it_case_begin tcp "a TCP capture's HEP3 frames as received on TCP"
    live tcp "$CASE_DIR/live.json" --tcp-mode split --split-size 300
    read_capture "$PCAPS/tcp.pcap" "$CASE_DIR/tcp.json" -n "$N" "${OUT_OPTS[@]}"
    same_but_t_peer "$CASE_DIR/live.json" "$CASE_DIR/tcp.json"
    first_line_has "$CASE_DIR/tcp.json" '"peer":"192.0.2.30:41000"' '"transport":"tcp"'
    it_stop_all
    it_case_end "$CASE_DIR/live.err"
}

case_json_lines() {
    it_case_begin json_lines "hepdump --raw output read back is the same output"
    live udp "$CASE_DIR/live.json"
    read_capture "$CASE_DIR/live.json" "$CASE_DIR/again.json" "${OUT_OPTS[@]}"
    cmp -s "$CASE_DIR/live.json" "$CASE_DIR/again.json" ||
        it_case_fail "again.json differs from live.json"
    it_stop_all
    it_case_end "$CASE_DIR/live.err"
}

case_options() {
    it_case_begin options "-n, --count, the garbage report, and what -r does not take"
    local n status
    read_capture "$PCAPS/udp.pcap" "$CASE_DIR/five.json" -n 5 -q
    n=$(wc -l <"$CASE_DIR/five.json")
    [ "$n" = 5 ] || it_case_fail "-n 5 printed $n lines"
    read_capture "$PCAPS/garbage.pcap" "$CASE_DIR/count.json" --count
    n=$(it_summary_field "$CASE_DIR/count.json" packets)
    [ "$n" = $((N + 1)) ] || it_case_fail "--count: $n packets, expected $((N + 1))"
    [ "$(it_summary_field "$CASE_DIR/count.json" errors)" = 1 ] ||
        it_case_fail "--count: the datagram of random bytes is not the one error"
    grep -q 'skipped: truncated=1 link=2 bad_ip=2 fragment=2 not_udp_tcp=1 bad_l4=1 ' "$CASE_DIR/count.json.err" ||
        it_case_fail "the skipped records are not reported on stderr"
    for opt in "-l udp:127.0.0.1:0" "-s 1" "-u" "--rcvbuf 1M" "--ready-file $CASE_DIR/r"; do
        # shellcheck disable=SC2086  # opt is an option and its value
        "$HEPDUMP" -r "$PCAPS/udp.pcap" $opt -o /dev/null 2>/dev/null
        status=$?
        [ "$status" = 2 ] || it_case_fail "-r with $opt exited with $status, expected 2"
    done
    "$HEPDUMP" -r "$CASE_DIR/nothing.pcap" -o /dev/null 2>"$CASE_DIR/missing.err"
    status=$?
    [ "$status" = 1 ] || it_case_fail "-r of a missing file exited with $status, expected 1"
    it_case_end "$CASE_DIR/count.json.err"
}

it_run_cases "$@"
