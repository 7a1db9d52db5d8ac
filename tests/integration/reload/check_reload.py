#!/usr/bin/env python3
"""check_reload.py - did every hepgen packet arrive once, where the policy
in force when heprouter routed it said?  (tests/integration/test_reload.sh)

Inputs:
  --hepgen PREFIX=FILE[@R]
                         a hepgen run: its --prefix and its JSON summary
                         (stdout); repeatable.  Its calls are
                         PREFIX-KIND-SEQ with SEQ 0..calls-1, a call of kind
                         inv/reg/opt being 16/4/2 packets (man hepgen).
                         @R: all its packets were routed by time R (below).
  --sink NAME=FILE       what a hepdump sink received (JSON lines); repeatable.
  --policy NAME:inv=SINK,reg=SINK,opt=SINK
                         where a policy sends each kind of call; repeatable.
  --initial NAME         the policy heprouter started with.
  --events FILE          one reload a line, "T_REQ T_ACK POLICY [ok|fail]": wall clock
                         (seconds since the epoch) just before the test sent
                         SIGHUP, when it saw heprouter's answer (the
                         "configuration reloaded" or "reload failed" line),
                         and the policy in force after it (the old one after
                         a failed reload); ok or fail: how it went
                         (default ok; only counted).

Which policy routed a packet.  heprouter routes a packet at a time r with
    ts <= r <= t
where ts is its HEP timestamp (hepgen writes the send time, CLOCK_REALTIME,
just before the batch goes out, so r >= ts) and t the sink's receive time
(the kernel timestamp for UDP, the read for TCP; same clock: a packet is
sent on after it is routed).  Both bounds are certain; no margin is assumed
for heprouter's ingress delay, which reached 250 ms on a loaded 2-CPU test
machine at 20,000 packets/s (the UDP send-to-sink delay printed below
includes it).  A packet that waited in a TCP queue has a late t; for those
the test proves from heprouter's counters that the whole run was routed
before some time R (the SIGUSR1 counters line, taken before the SIGHUP,
counts all of it) and says so with --hepgen PREFIX=FILE@R: then r <= R.
A worker swaps between T_REQ (the signal cannot act before it is sent) and
T_ACK (heprouter logs the line after every worker swapped; the test sees it
later).  So the policies that may have routed a packet are those possibly in
force somewhere in [ts, t] (or [ts, min(t, R)]): the old one before T_REQ,
the new one after T_ACK, either in between.  A packet whose possible
policies name different sinks for its kind is "ambiguous" (counted, accepted
at either); one at a sink none of them names is "misrouted".

Exactly once: a packet is identified by its Call-ID, captured addresses and
ports, start line, CSeq and top Via branch (unique within a hepgen call);
each must arrive once over all sinks (each route here has one destination),
and every call of every run must be whole.

Exit status 0 when nothing is missing, duplicated, misrouted or foreign and
hepgen reported no send errors; 1 otherwise; 2 for bad arguments.
"""
import argparse
import json
import re
import sys

KIND_PACKETS = {"inv": 16, "reg": 4, "opt": 2}
CALL_ID = re.compile(r"^(.+)-(inv|reg|opt)-(\d{10})@hepgen$")


def usage(msg):
    print("check_reload: %s" % msg, file=sys.stderr)
    sys.exit(2)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hepgen", action="append", default=[], metavar="PREFIX=FILE")
    ap.add_argument("--sink", action="append", default=[], metavar="NAME=FILE")
    ap.add_argument("--policy", action="append", default=[], metavar="NAME:inv=S,reg=S,opt=S")
    ap.add_argument("--initial", required=True)
    ap.add_argument("--events", default=None)
    a = ap.parse_args()
    if not a.hepgen or not a.sink:
        usage("need --hepgen and --sink")
    return a


def parse_policies(specs):
    policies = {}
    for spec in specs:
        name, _, body = spec.partition(":")
        kinds = dict(item.split("=", 1) for item in body.split(",") if item)
        if set(kinds) != set(KIND_PACKETS):
            usage("policy %s must name a sink for inv, reg and opt" % name)
        policies[name] = kinds
    return policies


def read_hepgen(specs):
    """{prefix: summary}; a summary is hepgen's last JSON line."""
    runs = {}
    routed_by = {}
    for spec in specs:
        prefix, _, path = spec.partition("=")
        path, _, by = path.partition("@")
        routed_by[prefix] = int(float(by) * 1e6) + 1 if by else None
        summary = None
        with open(path) as f:
            for line in f:
                if line.startswith('{"sent"'):
                    summary = json.loads(line)
        if summary is None:
            usage("no hepgen summary in %s" % path)
        runs[prefix] = summary
    return runs, routed_by


def read_events(path):
    events = []
    failed = 0
    if path:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4:
                    failed += parts.pop() == "fail"
                if len(parts) == 3:
                    # whole microseconds, rounded outwards (the window only grows)
                    req = int(float(parts[0]) * 1e6)
                    ack = int(float(parts[1]) * 1e6) + 1
                    events.append((req, ack, parts[2]))
    events.sort()
    return events, failed


def possible_policies(events, initial, lo, hi):
    """Names of the policies possibly in force at some time in [lo, hi]."""
    found = set()
    current = initial
    start = -1          # current is surely in force from start...
    for req, ack, new in events:
        # ...until req: in force over [start, req); either over [req, ack]
        if lo < req and hi >= start:
            found.add(current)
        if lo <= ack and hi >= req:
            found.add(current)
            found.add(new)
        current, start = new, ack
    if hi >= start:
        found.add(current)
    return found


def percentile(values, p):
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    a = parse_args()
    policies = parse_policies(a.policy)
    if a.initial not in policies:
        usage("initial policy %s is not defined" % a.initial)
    events, failed = read_events(a.events)
    for _, _, name in events:
        if name not in policies:
            usage("event policy %s is not defined" % name)
    runs, routed_by = read_hepgen(a.hepgen)

    seen = {}           # packet key -> sink
    per_call = {}       # (prefix, kind, seq) -> packets seen
    per_sink = {}
    duplicates = misrouted = ambiguous = foreign = by_counters = 0
    udp_delay = []
    examples = []
    for spec in a.sink:
        sink, _, path = spec.partition("=")
        per_sink[sink] = 0
        with open(path, errors="replace") as f:
            for line in f:
                if not line.startswith('{"n"'):
                    continue
                # the chunk list is not needed and is a third of the time
                i = line.find(',"chunks":[')
                j = line.find('],"', i)
                if i > 0 and j > 0:
                    line = line[:i] + line[j + 1:]
                p = json.loads(line)
                sip = p.get("sip") or {}
                m = CALL_ID.match(sip.get("call_id", ""))
                if not m or m.group(1) not in runs:
                    foreign += 1
                    continue
                per_sink[sink] += 1
                prefix, kind, seq = m.group(1), m.group(2), int(m.group(3))
                key = (sip.get("call_id"), p.get("src"), p.get("sport"), p.get("dst"),
                       p.get("dport"), sip.get("first_line"), sip.get("cseq"),
                       sip.get("cseq_method"), sip.get("to_tag"), sip.get("via_branch"))
                if key in seen:
                    duplicates += 1
                    if len(examples) < 5:
                        examples.append("duplicate at %s (first at %s): %s %s" %
                                        (sink, seen[key], sip.get("call_id"), sip.get("first_line")))
                    continue
                seen[key] = sink
                per_call[(prefix, kind, seq)] = per_call.get((prefix, kind, seq), 0) + 1
                ts = p["ts_sec"] * 1000000 + p["ts_usec"]
                t = int(round(p["t"] * 1e6))
                if p.get("transport") == "udp":
                    udp_delay.append((t - ts) / 1000.0)
                hi = t
                if routed_by[prefix] is not None and routed_by[prefix] < t:
                    hi = routed_by[prefix]
                    by_counters += 1
                names = possible_policies(events, a.initial, ts, hi)
                sinks = {policies[n][kind] for n in names}
                if sink not in sinks:
                    misrouted += 1
                    if len(examples) < 10:
                        examples.append("misrouted: %s %s at %s, sent %.6f received %.6f: policy %s says %s" %
                                        (sip.get("call_id"), sip.get("first_line"), sink, ts / 1e6, t / 1e6,
                                         "/".join(sorted(names)), "/".join(sorted(sinks))))
                elif len(sinks) > 1:
                    ambiguous += 1

    sent = errors = incomplete = 0
    for prefix, s in runs.items():
        sent += s["sent"]
        errors += s.get("errors", 0)
        ncalls = sum(s["calls"].values())
        for seq in range(ncalls):
            kinds = [k for k in KIND_PACKETS if (prefix, k, seq) in per_call]
            n = sum(per_call[(prefix, k, seq)] for k in kinds)
            if len(kinds) != 1 or n != KIND_PACKETS[kinds[0]]:
                incomplete += 1
                if len(examples) < 10:
                    examples.append("call %s seq %d: %d packets of kind %s" %
                                    (prefix, seq, n, "/".join(kinds) or "none"))
        foreign += sum(n for k, n in per_call.items() if k[0] == prefix and k[2] >= ncalls)
    delivered = len(seen)
    missing = max(0, sent - delivered)

    print("packets sent %d (hepgen errors %d), delivered %d once (%s), missing %d (%d incomplete calls), "
          "duplicated %d, foreign %d" %
          (sent, errors, delivered, ", ".join("%s %d" % kv for kv in sorted(per_sink.items())),
           missing, incomplete, duplicates, foreign))
    window = sum((ack - req) for req, ack, _ in events) / 1000.0
    print("reloads done %d, failed %d (swap windows %.1f ms in all, longest %.1f ms); misrouted %d, "
          "ambiguous %d (possibly routed in a swap window: either policy accepted); "
          "routing time bounded by the counters for %d" %
          (len(events) - failed, failed, window, max([(ack - req) / 1000.0 for req, ack, _ in events] or [0]),
           misrouted, ambiguous, by_counters))
    if udp_delay:
        print("UDP send-to-sink delay ms: median %.2f, p99 %.2f, max %.2f" %
              (percentile(udp_delay, 0.5), percentile(udp_delay, 0.99), max(udp_delay)))
    for e in examples:
        print("  " + e)
    bad = missing or incomplete or duplicates or misrouted or foreign or errors or delivered != sent
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
