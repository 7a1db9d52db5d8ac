#!/usr/bin/env python3
"""check_calls.py - per-call assertions of test_e2e_kamailio.sh.

Reads the JSON lines of the two hepdump sinks (hepdump --payload; every
packet has "sip": {call_id, first_line, cseq, cseq_method, ...}), groups the
packets of each sink by Call-ID and checks, for every call sipp made:

  INVITE calls (Call-ID inv-...) entirely at voipmonitor, none at homer, and
  voipmonitor has at least once each of these kinds (rx: sent to Kamailio's
  SIP port, tx: sent by Kamailio from it):
      INVITE/1 rx (no Proxy-Authorization)     407 INVITE/1 tx
      ACK/1 rx                                 INVITE/2 rx (Proxy-Authorization)
      INVITE/2 tx (relayed to the UAS)         100 INVITE/2
      180 INVITE/2                             200 INVITE/2
      ACK/2                                    BYE/3
      200 BYE/3
  REGISTER (reg-...) and OPTIONS (opt-...) calls entirely at homer, none at
  voipmonitor: REGISTER/1 rx, 401 tx, REGISTER/2 rx, 200 REGISTER/2 tx;
  OPTIONS/1 rx, 200 OPTIONS/1 tx.

It also checks heprouter's last stats line (decode_errors all 0; with
--redis, store_writes > 0), prints one summary line with the per-sink
counts, and the profile of what Kamailio traced for the INVITE calls (how
many of each kind per call).  Exit status 1 when anything is missing.
"""
import argparse
import collections
import json
import re
import sys

STATS_RE = re.compile(r"stats \(([^,)]*)(?:, (\d+) calls in store)?\): (\{.*\})\s*$")

INVITE_REQUIRED = [
    "INVITE/1 rx noauth", "407 INVITE/1 tx", "ACK/1 rx", "INVITE/2 rx auth",
    "INVITE/2 tx", "100 INVITE/2", "180 INVITE/2", "200 INVITE/2", "ACK/2",
    "BYE/3", "200 BYE/3",
]
REGISTER_REQUIRED = ["REGISTER/1 rx", "401 REGISTER/1 tx", "REGISTER/2 rx", "200 REGISTER/2 tx"]
OPTIONS_REQUIRED = ["OPTIONS/1 rx", "200 OPTIONS/1 tx"]


def load(path):
    pkts = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith('{"n":'):
                pkts.append(json.loads(line))
    return pkts


def by_call_id(name, pkts, fails):
    """A sink's packets by SIP Call-ID, in arrival order; a packet without
    one is a failure."""
    calls = collections.defaultdict(list)
    for p in pkts:
        cid = (p.get("sip") or {}).get("call_id")
        if cid is None:
            fails.append("%s got a packet without a SIP Call-ID: %s" % (name, str(p)[:200]))
            continue
        calls[cid].append(p)
    return calls


def kinds(p, sip_port):
    """The kinds one packet counts as (a packet may count as more than one,
    e.g. "200 INVITE/2" and "200 INVITE/2 tx")."""
    s = p.get("sip") or {}
    first = s.get("first_line", "")
    cseq = s.get("cseq")
    cm = s.get("cseq_method", "")
    d = "rx" if p.get("dport") == sip_port else "tx" if p.get("sport") == sip_port else "?"
    out = []
    if first.startswith("SIP/2.0 "):
        code = first.split()[1]
        base = "%s %s/%s" % (code, cm, cseq)
    else:
        base = "%s/%s" % (first.split(" ", 1)[0], cseq)
    out.append(base)
    out.append("%s %s" % (base, d))
    if base.startswith("INVITE/"):
        payload = p.get("payload", "")
        auth = re.search(r"(?im)^proxy-authorization\s*:", payload) is not None
        out.append("%s %s %s" % (base, d, "auth" if auth else "noauth"))
    return out


def copy_identity(p):
    """What makes two captured packets copies of one message on one hop (the
    router's dedup key): SIP identity and hop, not the capture agent."""
    s = p.get("sip") or {}
    return (s.get("call_id"), s.get("cseq"), s.get("cseq_method"), " ".join(s.get("first_line", "").split(" ")[0:2]),
            s.get("via_branch"), p.get("src"), p.get("sport"), p.get("dst"), p.get("dport"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--voipmonitor", required=True)
    ap.add_argument("--homer", required=True)
    ap.add_argument("--sip-port", type=int, required=True)
    ap.add_argument("--invites", type=int, required=True)
    ap.add_argument("--registers", type=int, required=True)
    ap.add_argument("--options", type=int, required=True)
    ap.add_argument("--router-log", required=True)
    ap.add_argument("--redis", action="store_true")
    ap.add_argument("--variant", default="")
    ap.add_argument("--dedup", action="store_true",
                    help="the destinations dedup: no copies at a sink; packets_in counts the deduplicated too")
    args = ap.parse_args()

    fails = []
    sinks = {"voipmonitor": load(args.voipmonitor), "homer": load(args.homer)}
    by_call = {}
    for name, pkts in sinks.items():
        by_call[name] = by_call_id(name, pkts, fails)

    all_ids = set(by_call["voipmonitor"]) | set(by_call["homer"])
    groups = {
        "inv": (sorted(c for c in all_ids if c.startswith("inv-")), args.invites, "voipmonitor", "homer", INVITE_REQUIRED),
        "reg": (sorted(c for c in all_ids if c.startswith("reg-")), args.registers, "homer", "voipmonitor", REGISTER_REQUIRED),
        "opt": (sorted(c for c in all_ids if c.startswith("opt-")), args.options, "homer", "voipmonitor", OPTIONS_REQUIRED),
    }
    other = sorted(all_ids - set(sum((g[0] for g in groups.values()), [])))
    if other:
        fails.append("packets of unexpected Call-IDs: %s" % other[:5])

    profile = collections.Counter()     # kind -> total over INVITE calls
    profile_min = {}
    profile_max = {}
    for prefix, (ids, want, good, bad, required) in groups.items():
        if len(ids) != want:
            fails.append("%d %s calls seen at the sinks, sipp made %d" % (len(ids), prefix, want))
        for cid in ids:
            got = collections.Counter()
            for p in by_call[good].get(cid, []):
                got.update(kinds(p, args.sip_port))
            missing = [k for k in required if got[k] < 1]
            if missing:
                fails.append("call %s: %s lacks %s (has %s)" % (
                    cid, good, missing, dict(sorted((k, v) for k, v in got.items() if k.count(" ") + k.count("/") <= 2))))
            wrong = by_call[bad].get(cid, [])
            if wrong:
                fails.append("call %s: %d packet(s) at %s, e.g. %s" % (
                    cid, len(wrong), bad, [(p.get("sip") or {}).get("first_line") for p in wrong[:4]]))
            if prefix == "inv":
                per = collections.Counter()
                for p in by_call[good].get(cid, []):
                    per[kinds(p, args.sip_port)[1]] += 1
                for k, v in per.items():
                    profile[k] += v
                    profile_min[k] = min(profile_min.get(k, v), v)
                    profile_max[k] = max(profile_max.get(k, 0), v)
                for k in profile_min:
                    if k not in per:
                        profile_min[k] = 0

    # heprouter's exit counters
    last = None
    with open(args.router_log, errors="replace") as f:
        for line in f:
            m = STATS_RE.search(line)
            if m:
                last = m
    stats = {}
    if last is None:
        fails.append("no stats line in %s" % args.router_log)
    else:
        stats = json.loads(last.group(3))
        de = stats.get("decode_errors")
        if not isinstance(de, dict):
            fails.append("stats: no decode_errors object")
        elif any(v != 0 for v in de.values()):
            fails.append("stats: decode_errors %s" % de)
        total = len(sinks["voipmonitor"]) + len(sinks["homer"])
        deduplicated = sum(d.get("deduplicated", 0) for d in stats.get("destinations", {}).values())
        if args.dedup:
            total += deduplicated
            if deduplicated == 0:
                fails.append("stats: nothing deduplicated, though every message was traced twice")
            for name, pkts in sinks.items():
                seen = collections.Counter(copy_identity(p) for p in pkts)
                copies = [k for k, n in seen.items() if n > 1]
                if copies:
                    fails.append("%s got %d message(s) more than once, e.g. %s" % (name, len(copies), copies[:2]))
            print("  dedup: %d copies held back; no message twice at a sink" % deduplicated)
        if stats.get("packets_in") != total:
            fails.append("stats: packets_in = %s, the sinks got %d packets together" % (stats.get("packets_in"), total))
        if args.redis and not stats.get("store_writes", 0) > 0:
            fails.append("stats: store_writes = %s, expected > 0" % stats.get("store_writes"))

    inv_ids = groups["inv"][0]
    print("%s: voipmonitor %d packets over %d calls (%d INVITE calls, %.1f packets/call), homer %d packets over %d calls "
          "(%d REGISTER, %d OPTIONS); heprouter packets_in=%s tcp_accepted=%s duplicates=%s calls_fallback=%s "
          "orphans_held=%s store_writes=%s" % (
              args.variant, len(sinks["voipmonitor"]), len(by_call["voipmonitor"]), len(inv_ids),
              len(sinks["voipmonitor"]) / max(1, len(inv_ids)),
              len(sinks["homer"]), len(by_call["homer"]), len(groups["reg"][0]), len(groups["opt"][0]),
              stats.get("packets_in", "?"), stats.get("tcp_accepted", "?"), stats.get("duplicates", "?"),
              stats.get("calls_fallback", "?"), stats.get("orphans_held", "?"), stats.get("store_writes", "?")))
    print("  traced per INVITE call (kind: min..max per call; rx = to Kamailio, tx = from it):")
    print("    " + ", ".join("%s: %d..%d" % (k, profile_min[k], profile_max[k]) for k in sorted(profile, key=sort_key)))
    for f in fails[:30]:
        print("  FAIL " + f)
    if len(fails) > 30:
        print("  FAIL ... %d more" % (len(fails) - 30))
    return 1 if fails else 0


def sort_key(k):
    m = re.search(r"/(\d+)", k)
    return (int(m.group(1)) if m else 0, k[0].isdigit(), k)


if __name__ == "__main__":
    sys.exit(main())
