#!/usr/bin/env python3
"""check_stack.py - the per-call checks of test_containers.sh, against the
policy of docker/heprouter.yaml as it stands.

Reads the hepdump sinks that stand in for the stack's back-ends (one JSON
line per packet, --payload), docker-compose's resolved configuration (to
know which service owns which address), docker/heprouter.yaml, heprouter's
log and a dump of Redis ("KEY<TAB>VALUE" lines), and checks, for every call
SIPp made (Call-IDs inv-..., reg-..., opt-...):

  * the route docker/heprouter.yaml gives the call's method (first route
    whose match.method has it, else default) names destinations; their
    targets are addresses of compose services: those sinks must each hold
    the whole call (every kind of packet tests/integration/e2e/
    check_calls.py requires: INVITE, 407, ACK, authenticated INVITE in and
    relayed, 100/180/200, ACK, BYE, 200 for INVITE calls; REGISTER, 401,
    REGISTER, 200; OPTIONS, 200), the same packets at each, and every
    other sink none of it;
  * every packet at a sink came from heprouter's address, in the HEP
    version of its destination (hep_version, else as Kamailio sent it: 3);
    none shows 0.0.0.0 as Kamailio's address (HEP source or destination,
    Via, Record-Route: what Kamailio writes when it listens on 0.0.0.0);
  * Redis holds KEY_PREFIX + "call:" + Call-ID for every call, with the
    call's origin method and the route's name (redis_value.h's format
    "1|flags|first seen|method|route");
  * heprouter's last stats line: decode_errors all 0, packets_in = the
    packets of the calls (each once, whatever the fan-out), store_writes
    > 0;
  * the sinks no destination names (db, homer-webapp) got nothing.

Prints one line per sink (packets, calls by kind) and the verdict; exit
status 1 when anything is wrong.
"""
import argparse
import collections
import ipaddress
import json
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import check_calls  # noqa: E402  (load, kinds, the required kinds, STATS_RE)

GROUPS = {  # Call-ID prefix -> (the method that starts it, what check_calls requires)
    "inv": ("INVITE", check_calls.INVITE_REQUIRED),
    "reg": ("REGISTER", check_calls.REGISTER_REQUIRED),
    "opt": ("OPTIONS", check_calls.OPTIONS_REQUIRED),
}


def route_of(policy, method):
    for r in policy.get("routes") or []:
        if method in ((r.get("match") or {}).get("method") or []):
            return r.get("name", ""), r["to"]
    return "default", policy["default"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", required=True, help="docker/heprouter.yaml")
    ap.add_argument("--compose", required=True, help="docker-compose config output")
    ap.add_argument("--sink", action="append", required=True, help="SERVICE=FILE")
    ap.add_argument("--router-service", default="heprouter")
    ap.add_argument("--sip-port", type=int, default=5060)
    ap.add_argument("--invites", type=int, required=True)
    ap.add_argument("--registers", type=int, required=True)
    ap.add_argument("--options", type=int, required=True)
    ap.add_argument("--router-log", required=True)
    ap.add_argument("--redis-dump", required=True)
    args = ap.parse_args()
    want = {"inv": args.invites, "reg": args.registers, "opt": args.options}

    policy = yaml.safe_load(open(args.policy))
    compose = yaml.safe_load(open(args.compose))
    addr_service = {}
    for name, svc in compose["services"].items():
        for net in (svc.get("networks") or {}).values():
            if (net or {}).get("ipv4_address"):
                addr_service[ipaddress.ip_address(net["ipv4_address"])] = name
    router_addr = {a for a, s in addr_service.items() if s == args.router_service}
    if not router_addr:
        print("FAIL no address for service %s in %s" % (args.router_service, args.compose))
        return 1
    router_addr = str(router_addr.pop())

    # destination -> (sink services, HEP version it sends)
    dest = {}
    fails = []
    for dname, d in (policy.get("destinations") or {}).items():
        services = []
        for t in d["targets"]:
            m = re.fullmatch(r"(udp|tcp):([0-9.]+):(\d+)", t)
            svc = m and addr_service.get(ipaddress.ip_address(m.group(2)))
            if not svc:
                fails.append("destination %s: target %s is no compose service" % (dname, t))
                continue
            services.append(svc)
        dest[dname] = (services, d.get("hep_version"))

    sinks = {}
    for spec in args.sink:
        name, _, path = spec.partition("=")
        sinks[name] = check_calls.load(path) if os.path.exists(path) else None
        if sinks[name] is None:
            fails.append("sink %s wrote no %s" % (name, path))
            sinks[name] = []

    by_call = {}
    unroutable = set()
    for name, pkts in sinks.items():
        for p in pkts:
            peer = p.get("peer", "")
            if peer.rsplit(":", 1)[0].strip("[]") != router_addr:
                fails.append("%s: a packet from %s, not from heprouter (%s)" % (name, peer, router_addr))
            # Kamailio's own address: in the HEP header, in the Via and
            # Record-Route it adds (0.0.0.0 there would route nowhere)
            if "0.0.0.0" in (p.get("src"), p.get("dst")) or re.search(
                    r"(?im)^(via|v|record-route)\s*:[^\r\n]*\b0\.0\.0\.0\b", p.get("payload", "")):
                unroutable.add(name)
        by_call[name] = check_calls.by_call_id(name, pkts, fails)

    if unroutable:
        fails.append("packets at %s show 0.0.0.0 as an address (HEP src/dst, Via or Record-Route): "
                     "Kamailio listens on 0.0.0.0" % sorted(unroutable))
    redis = {}
    for line in open(args.redis_dump, errors="replace"):
        k, _, v = line.rstrip("\n").partition("\t")
        if k:
            redis[k] = v
    prefix = ((policy.get("store") or {}).get("redis") or {}).get("prefix", "")

    all_ids = set()
    for calls in by_call.values():
        all_ids |= set(calls)
    packets_of_calls = 0
    named_sinks = set()
    summary = collections.defaultdict(collections.Counter)
    for group, (method, required) in GROUPS.items():
        rname, to = route_of(policy, method)
        good = []
        versions = {}
        for dname in to:
            services, version = dest.get(dname, ([], None))
            for s in services:
                good.append(s)
                versions[s] = version
        named_sinks |= set(good)
        missing_sinks = [s for s in good if s not in sinks]
        if missing_sinks:
            fails.append("%s calls go to %s, which the test did not read" % (method, missing_sinks))
        ids = sorted(c for c in all_ids if c.startswith(group + "-"))
        if len(ids) != want[group]:
            fails.append("%d %s calls seen at the sinks, SIPp made %d" % (len(ids), method, want[group]))
        for cid in ids:
            counts = {}
            for s in sinks:
                pkts = by_call[s].get(cid, [])
                if s not in good:
                    if pkts:
                        fails.append("call %s (%s, route %s -> %s): %d packet(s) at %s" % (
                            cid, method, rname, good, len(pkts), s))
                    continue
                counts[s] = len(pkts)
                summary[s][method] += 1
                got = collections.Counter()
                for p in pkts:
                    got.update(check_calls.kinds(p, args.sip_port))
                    v = versions.get(s)
                    if v and p.get("version") != v:
                        fails.append("call %s at %s: HEP version %s, destination says %s" % (
                            cid, s, p.get("version"), v))
                lacks = [k for k in required if got[k] < 1]
                if lacks:
                    fails.append("call %s at %s lacks %s" % (cid, s, lacks))
            if len(set(counts.values())) > 1:
                fails.append("call %s: not the same packets at each of its sinks: %s" % (cid, counts))
            packets_of_calls += max(counts.values() or [0])
            key = "%scall:%s" % (prefix, cid)
            value = redis.get(key)
            if value is None:
                fails.append("Redis has no %s" % key)
            else:
                f = value.split("|", 4)
                if len(f) != 5 or f[0] != "1" or f[3] != method or f[4] != rname:
                    fails.append("Redis %s = %r, expected 1|flags|ms|%s|%s" % (key, value, method, rname))
    other = sorted(c for c in all_ids if c.split("-", 1)[0] not in GROUPS)
    if other:
        fails.append("packets of Call-IDs SIPp did not make: %s" % other[:5])
    for s in sinks:
        if s not in named_sinks and sinks[s]:
            fails.append("%s got %d packets; no destination names it" % (s, len(sinks[s])))

    stats = None
    for line in open(args.router_log, errors="replace"):
        m = check_calls.STATS_RE.search(line)
        if m:
            stats = json.loads(m.group(3))
    if stats is None:
        fails.append("no stats line in heprouter's log")
        stats = {}
    else:
        de = stats.get("decode_errors")
        if not isinstance(de, dict) or any(v != 0 for v in de.values()):
            fails.append("heprouter stats: decode_errors %s" % de)
        if stats.get("packets_in") != packets_of_calls:
            fails.append("heprouter stats: packets_in = %s, the calls have %d packets" % (
                stats.get("packets_in"), packets_of_calls))
        if not stats.get("store_writes", 0) > 0:
            fails.append("heprouter stats: store_writes = %s, expected > 0" % stats.get("store_writes"))

    for s in sinks:
        calls = ", ".join("%d %s" % (n, m) for m, n in sorted(summary[s].items())) or "no calls"
        print("  sink %-15s %4d packets, %s" % (s, len(sinks[s]), calls))
    print("  heprouter: packets_in=%s store_writes=%s calls_fallback=%s orphans_held=%s; "
          "Redis: %d call keys, %d of SIPp's calls checked" % (
              stats.get("packets_in", "?"), stats.get("store_writes", "?"), stats.get("calls_fallback", "?"),
              stats.get("orphans_held", "?"), len(redis), sum(want.values())))
    for f in fails[:30]:
        print("  FAIL " + f)
    if len(fails) > 30:
        print("  FAIL ... %d more" % (len(fails) - 30))
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
