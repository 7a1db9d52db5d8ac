#!/usr/bin/env bash
# The monitoring side of the compose stack (issue 14): Prometheus's
# configuration, Grafana's provisioning and dashboard, and heprouter's
# metrics endpoint they rely on.
#
#   BUILD_DIR=build bash tests/integration/test_dashboard.sh [CASE...]
#
#   prometheus_config  `promtool check config` passes on
#                      docker/prometheus/prometheus.yml; its job
#                      "heprouter" scrapes every 5 s the heprouter
#                      service's address (docker-compose.yml) on the port
#                      of metrics.listen (docker/heprouter.yaml); the
#                      compose file mounts the file where the image's
#                      --config.file reads it.
#   provisioning       docker/grafana/: one Prometheus data source whose
#                      URL is the prometheus service's address and port,
#                      a file dashboard provider whose path is where
#                      docker-compose.yml mounts grafana/dashboards (the
#                      home dashboard file is there), provisioning mounted
#                      at /etc/grafana/provisioning, a pinned image tag.
#   dashboard_json     docker/grafana/dashboards/heprouter.json is a
#                      Grafana dashboard: uid, title "heprouter", panels
#                      with unique ids, a gridPos inside the 24 columns,
#                      targets with unique refIds and a PromQL expr, every
#                      data source the provisioned uid; and every expr
#                      (the panels' and the variable's, Grafana's $__ and
#                      $instance variables replaced) is valid PromQL: a
#                      Prometheus started here on loopback (empty scrape
#                      config, a TSDB in the scratch directory) evaluates
#                      each through /api/v1/query without error.
#   live               heprouter (this build) with metrics.listen
#                      127.0.0.1:0 (its ready file names the HTTP port), a
#                      policy like the stack's over two hepdump sinks;
#                      hepgen sends HEP calls over UDP and TCP, some with
#                      the 407 before its INVITE (orphans), and one
#                      datagram that is not HEP.  Then GET /metrics is 200,
#                      counts the packets sent, and passes `promtool check
#                      metrics` with no output at all; /healthz and /readyz
#                      are 200; and every heprouter_* metric name the
#                      dashboard's exprs use is in the scrape (each missing
#                      one is named).  A heprouter without the metrics
#                      endpoint fails this case saying so.
#
# About 10 s.  Needs promtool and prometheus (Debian: prometheus), curl,
# python3 with yaml, and the built heprouter, hepgen and hepdump.
# Environment: BUILD_DIR, IT_KEEP_TMP=1 (lib.sh).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

TIME_LIMIT=60           # the whole test (about 10 s)
PROM_START=20           # seconds for the local Prometheus to be ready
HEPGEN_PACKETS=400      # live: packets hepgen sends (whole calls)
HEPGEN_REORDER=50       # live: % of INVITE calls whose 407 comes first
COUNT_WAIT=5            # live: seconds for the scrape to count them all
RATE_INTERVAL=20s       # what $__rate_interval and $__interval become
RANGE=1h                # what $__range becomes

it_init "$TIME_LIMIT"
it_require_cmd promtool prometheus curl python3
python3 -c 'import yaml' 2>/dev/null || it_cannot_run "python3's yaml module is missing (Debian: python3-yaml)"

TOP=$IT_SRCDIR
DOCKER=$TOP/docker
PROM_YML=$DOCKER/prometheus/prometheus.yml
DASHBOARD=$DOCKER/grafana/dashboards/heprouter.json
DATASOURCES=$DOCKER/grafana/provisioning/datasources/prometheus.yml
PROVIDERS=$DOCKER/grafana/provisioning/dashboards/heprouter.yml

IT_CASES=(prometheus_config provisioning dashboard_json live)

# check_py NAME [ARG...]: runs the python check NAME (below, on stdin) with
# the paths; its lines go to stdout, its failures to it_case_fail.
check_py() {
    local out=$CASE_DIR/$1.out
    python3 - "$@" >"$out" 2>&1
    local rc=$?
    sed 's/^/    /' "$out"
    ((rc == 0)) || it_case_fail "$1: $(grep -c '^FAIL' "$out") problem(s), above"
}

# ---- prometheus_config ----

case_prometheus_config() {
    it_case_begin prometheus_config "promtool check config; the heprouter job scrapes the compose service's metrics.listen"
    promtool check config "$PROM_YML" >"$CASE_DIR/promtool.out" 2>&1 ||
        it_case_fail "promtool check config $PROM_YML: $(tail -n 5 "$CASE_DIR/promtool.out")"
    check_py prometheus_config "$PROM_YML" "$DOCKER/docker-compose.yml" "$DOCKER/heprouter.yaml" \
        "$DOCKER/prometheus/Dockerfile" <<'PY'
import re, sys, yaml
prom_path, compose_path, hr_path, dockerfile = sys.argv[2:6]
prom = yaml.safe_load(open(prom_path))
compose = yaml.safe_load(open(compose_path))
hr = yaml.safe_load(open(hr_path))
fails = []
svc = compose["services"]
hr_addr = svc["heprouter"]["networks"]["capture"]["ipv4_address"]
listen = str((hr.get("metrics") or {}).get("listen", ""))
m = re.fullmatch(r"(.*):(\d+)", listen)
if not m or m.group(1) not in ("0.0.0.0", hr_addr):
    fails.append("docker/heprouter.yaml: metrics.listen %r is not 0.0.0.0:PORT or %s:PORT" % (listen, hr_addr))
want = "%s:%s" % (hr_addr, m.group(2) if m else "?")
jobs = {j["job_name"]: j for j in prom.get("scrape_configs") or []}
job = jobs.get("heprouter")
if not job:
    fails.append("no scrape job heprouter")
else:
    targets = [t for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
    if targets != [want]:
        fails.append("job heprouter scrapes %s; heprouter's metrics.listen in the stack is %s" % (targets, want))
    if job.get("metrics_path", "/metrics") != "/metrics":
        fails.append("job heprouter: metrics_path %s, heprouter serves /metrics" % job.get("metrics_path"))
    interval = job.get("scrape_interval", (prom.get("global") or {}).get("scrape_interval"))
    if interval != "5s":
        fails.append("job heprouter scrapes every %s, not 5s" % interval)
    print("job heprouter: %s every %s" % (targets, interval))
p = svc.get("prometheus") or {}
mounts = [v for v in p.get("volumes") or [] if isinstance(v, str)]
if "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" not in mounts:
    fails.append("docker-compose.yml: prometheus does not mount ./prometheus/prometheus.yml at /etc/prometheus/prometheus.yml")
if "--config.file=/etc/prometheus/prometheus.yml" not in open(dockerfile).read():
    fails.append("docker/prometheus/Dockerfile: its command does not read /etc/prometheus/prometheus.yml")
for f in fails:
    print("FAIL " + f)
sys.exit(1 if fails else 0)
PY
    it_case_end "$CASE_DIR/promtool.out"
}

# ---- provisioning ----

case_provisioning() {
    it_case_begin provisioning "Grafana's data source and dashboard provider match docker-compose.yml"
    check_py provisioning "$DATASOURCES" "$PROVIDERS" "$DOCKER/docker-compose.yml" "$DOCKER" <<'PY'
import os, re, sys, yaml
ds_path, prov_path, compose_path, docker = sys.argv[2:6]
fails = []
compose = yaml.safe_load(open(compose_path))
svc = compose["services"]
ds = yaml.safe_load(open(ds_path))
prov = yaml.safe_load(open(prov_path))
if ds.get("apiVersion") != 1 or prov.get("apiVersion") != 1:
    fails.append("provisioning files must say apiVersion: 1")
sources = ds.get("datasources") or []
if len(sources) != 1 or sources[0].get("type") != "prometheus" or not sources[0].get("uid"):
    fails.append("expected one prometheus data source with a uid, got %r" % sources)
else:
    p_addr = svc["prometheus"]["networks"]["capture"]["ipv4_address"]
    want = "http://%s:9090" % p_addr
    if sources[0].get("url") != want:
        fails.append("data source url %s; the prometheus service is %s" % (sources[0].get("url"), want))
    if sources[0].get("access") != "proxy":
        fails.append("data source access must be proxy (the browser cannot reach the capture network)")
    print("data source %s (uid %s) -> %s" % (sources[0].get("name"), sources[0]["uid"], sources[0].get("url")))
g = svc.get("grafana") or {}
image = g.get("image", "")
if not re.fullmatch(r"grafana/grafana(-oss)?:\d+\.\d+\.\d+", image):
    fails.append("grafana image %r is not pinned to a version" % image)
mounts = {}
for v in g.get("volumes") or []:
    if isinstance(v, str) and v.startswith("./"):
        src, dst = v.split(":")[:2]
        mounts[dst] = os.path.normpath(os.path.join(docker, src))
if mounts.get("/etc/grafana/provisioning") != os.path.join(docker, "grafana", "provisioning"):
    fails.append("grafana/provisioning is not mounted at /etc/grafana/provisioning")
providers = prov.get("providers") or []
if len(providers) != 1 or providers[0].get("type") != "file":
    fails.append("expected one file dashboard provider, got %r" % providers)
else:
    path = (providers[0].get("options") or {}).get("path")
    host = mounts.get(path)
    if not host or not os.path.isfile(os.path.join(host, "heprouter.json")):
        fails.append("dashboard provider path %s: no mount of a directory holding heprouter.json there" % path)
    else:
        print("dashboards: %s -> %s" % (os.path.relpath(host, docker), path))
env = dict(e.split("=", 1) for e in g.get("environment") or [] if "=" in e)
home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
if home:
    d, f = os.path.split(home)
    if d not in mounts or not os.path.isfile(os.path.join(mounts[d], f)):
        fails.append("home dashboard %s is not a mounted file" % home)
for f in fails:
    print("FAIL " + f)
sys.exit(1 if fails else 0)
PY
    it_case_end
}

# ---- dashboard_json ----

http_ok() {
    curl -fs -m 2 -o /dev/null "$1"
}

# dashboard_exprs: the dashboard's PromQL, one a line, Grafana's variables
# replaced by what a query may hold.
dashboard_exprs() {
    python3 - "$DASHBOARD" "$RATE_INTERVAL" "$RANGE" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
ri, rng = sys.argv[2], sys.argv[3]
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels") or [])
exprs = [t["expr"] for p in panels(d.get("panels") or []) for t in p.get("targets") or [] if t.get("expr")]
for v in (d.get("templating") or {}).get("list") or []:
    q = v.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    if q and q.startswith("label_values("):  # label_values(METRIC, LABEL): METRIC is PromQL
        exprs.append(q[len("label_values("):].rsplit(",", 1)[0])
for e in exprs:
    e = e.replace("$__rate_interval", ri).replace("$__interval", ri).replace("$__range", rng)
    print(e.replace('"$instance"', '".*"').replace("\n", " "))
PY
}

case_dashboard_json() {
    it_case_begin dashboard_json "heprouter.json: Grafana dashboard shape, provisioned data source, valid PromQL"
    local uid
    uid=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["datasources"][0]["uid"])' "$DATASOURCES") ||
        it_fail "no data source uid in $DATASOURCES"
    check_py dashboard_shape "$DASHBOARD" "$uid" <<'PY'
import json, sys
path, uid = sys.argv[2:4]
fails = []
try:
    d = json.load(open(path))
except ValueError as e:
    print("FAIL %s is not JSON: %s" % (path, e))
    sys.exit(1)
if d.get("title") != "heprouter" or not d.get("uid"):
    fails.append("title %r, uid %r: expected title heprouter and a uid" % (d.get("title"), d.get("uid")))
if not isinstance(d.get("schemaVersion"), int):
    fails.append("no schemaVersion")
def ds_ok(where, ds):
    if not isinstance(ds, dict) or ds.get("uid") != uid or ds.get("type") != "prometheus":
        fails.append("%s: data source %r, expected the provisioned prometheus uid %s" % (where, ds, uid))
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels") or [])
ids = {}
queries = 0
all_panels = list(panels(d.get("panels") or []))
if not all_panels:
    fails.append("no panels")
for p in all_panels:
    name = "panel %r (id %s)" % (p.get("title"), p.get("id"))
    if not isinstance(p.get("id"), int):
        fails.append(name + ": no integer id")
    elif p["id"] in ids:
        fails.append("%s: id also used by panel %r" % (name, ids[p["id"]]))
    else:
        ids[p["id"]] = p.get("title")
    g = p.get("gridPos") or {}
    if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24 or g["w"] < 1 or g["h"] < 1:
        fails.append("%s: gridPos %r outside the 24 columns" % (name, g))
    if p.get("type") == "row":
        continue
    if not p.get("title"):
        fails.append(name + ": no title")
    ds_ok(name, p.get("datasource"))
    ts = p.get("targets") or []
    if not ts:
        fails.append(name + ": no targets")
    refs = [t.get("refId") for t in ts]
    if len(set(refs)) != len(refs) or None in refs:
        fails.append("%s: refIds %s not unique" % (name, refs))
    for t in ts:
        if not (t.get("expr") or "").strip():
            fails.append("%s target %s: no expr" % (name, t.get("refId")))
        ds_ok("%s target %s" % (name, t.get("refId")), t.get("datasource"))
        queries += 1
for v in (d.get("templating") or {}).get("list") or []:
    if v.get("type") == "query":
        ds_ok("variable " + v.get("name", "?"), v.get("datasource"))
print("%d panels (%d queries), ids unique: %s" % (len(all_panels), queries, len(ids) == len(all_panels)))
for f in fails:
    print("FAIL " + f)
sys.exit(1 if fails else 0)
PY

    # A Prometheus of our own on loopback: nothing to scrape, only the
    # query engine, to parse and evaluate every expr.
    local port url
    port=$(it_free_port tcp) || exit 1
    printf 'global: { scrape_interval: 1s }\nscrape_configs: []\n' >"$CASE_DIR/prometheus.yml"
    it_start "$CASE/prometheus" prometheus --config.file="$CASE_DIR/prometheus.yml" \
        --storage.tsdb.path="$CASE_DIR/tsdb" --web.listen-address="127.0.0.1:$port"
    url=http://127.0.0.1:$port
    it_wait_until "$PROM_START" http_ok "$url/-/ready" ||
        it_fail "prometheus on 127.0.0.1:$port not ready within ${PROM_START} s"
    dashboard_exprs >"$CASE_DIR/exprs.txt" || it_fail "could not read the exprs of $DASHBOARD"
    local n=0 bad=0 expr code
    while IFS= read -r expr; do
        n=$((n + 1))
        code=$(curl -sS -o "$CASE_DIR/query.json" -w '%{http_code}' --data-urlencode "query=$expr" "$url/api/v1/query")
        if [ "$code" != 200 ]; then
            bad=$((bad + 1))
            it_case_fail "Prometheus refuses ($code) $expr: $(head -c 300 "$CASE_DIR/query.json")"
        fi
    done <"$CASE_DIR/exprs.txt"
    ((n > 0)) || it_case_fail "no exprs in $DASHBOARD"
    it_note "Prometheus $(prometheus --version 2>&1 | sed -n '1s/.*version \([^ ]*\).*/\1/p') evaluated $n exprs, $bad refused"
    it_stop_all
    it_case_end "$CASE_DIR/dashboard_shape.out"
}

# ---- live ----

# metrics_sum NAME: the sum of NAME's samples in $CASE_DIR/metrics.txt
metrics_sum() {
    awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }' "$CASE_DIR/metrics.txt"
}

# scrape PATH: GET http://ROUTER_HTTP/PATH into $CASE_DIR/PATH.txt; prints
# the HTTP status.
scrape() {
    curl -sS -m 3 -o "$CASE_DIR/$1.txt" -w '%{http_code}' "http://$ROUTER_HTTP/$1" 2>"$CASE_DIR/curl.err" ||
        printf 'none'
}

# scraped_all N: /metrics counts at least N packets received
scraped_all() {
    [ "$(scrape metrics)" = 200 ] && [ "$(metrics_sum heprouter_received_packets_total)" -ge "$1" ]
}

case_live() {
    it_case_begin live "heprouter's /metrics (promtool check metrics), /healthz, /readyz, and every metric the dashboard uses"
    HEPROUTER=$(it_bin src/heprouter) || exit 1
    local hepgen
    hepgen=$(it_bin tools/hepgen) || exit 1
    it_start_sink homer
    it_start_sink voipmonitor
    local body
    body="workers: 1
metrics: { listen: \"127.0.0.1:0\" }
destinations:
  homer:       { targets: [ \"${SINK_ADDR[homer]}\" ] }
  voipmonitor: { targets: [ \"${SINK_ADDR[voipmonitor]}\" ], hep_version: 3 }
routes:
  - { name: calls, match: { method: [ INVITE ] }, to: [ voipmonitor, homer ] }
  - { name: registrations, match: { method: [ REGISTER, OPTIONS ] }, to: [ homer ] }
default: [ homer ]"
    # A heprouter without issue 14's metrics refuses the key: say that
    # rather than "exited at startup".
    it_router_config 0 "$body" >"$CASE_DIR/check.yaml"
    if ! "$HEPROUTER" -t -c "$CASE_DIR/check.yaml" >"$CASE_DIR/check.out" 2>&1; then
        it_case_fail "this heprouter ($HEPROUTER) refuses metrics.listen, so it has no metrics endpoint (issue 14): build one that has it"
        it_stop_all
        it_case_end "$CASE_DIR/check.out"
        return 0
    fi
    it_start_router "$body"
    grep -q '^listening http:' "$ROUTER_READY" ||
        it_fail "heprouter's ready file has no \"listening http:ADDR:PORT\" line for metrics.listen: $(tr '\n' ' ' <"$ROUTER_READY")"
    ROUTER_HTTP=127.0.0.1:$(it_listen_port "$ROUTER_READY" http) || exit 1
    it_note "metrics on http://$ROUTER_HTTP"

    # HEP calls on both transports, then one datagram that is not HEP
    it_run 20 "$hepgen" -d "${ROUTER_ADDR[udp]}" -d "${ROUTER_ADDR[tcp]}" -n "$HEPGEN_PACKETS" \
        --reorder "$HEPGEN_REORDER" -r 2000 -q >"$CASE_DIR/hepgen.out" 2>&1 ||
        it_fail "hepgen: $(tail -n 3 "$CASE_DIR/hepgen.out")"
    python3 -c 'import socket, sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"not HEP at all", ("127.0.0.1", int(sys.argv[1])))' \
        "${ROUTER_ADDR[udp]##*:}"
    local sent
    sent=$(grep -o '"sent":[0-9]*' "$CASE_DIR/hepgen.out" | tail -n 1 | cut -d: -f2)
    ((${sent:-0} > 0)) || it_fail "hepgen sent nothing: $(tail -n 3 "$CASE_DIR/hepgen.out")"
    it_wait_until "$COUNT_WAIT" scraped_all "$sent" ||
        it_case_fail "after ${COUNT_WAIT} s, /metrics counts $(metrics_sum heprouter_received_packets_total) packets received (status $(scrape metrics)); hepgen sent $sent"
    [ "$(metrics_sum heprouter_destination_packets_total)" -gt 0 ] ||
        it_case_fail "heprouter_destination_packets_total is 0 after $sent packets"

    curl -sS -m 3 -D "$CASE_DIR/metrics.headers" -o "$CASE_DIR/metrics.txt" "http://$ROUTER_HTTP/metrics" ||
        it_case_fail "GET /metrics failed: $(cat "$CASE_DIR/curl.err")"
    grep -qi '^content-type: text/plain' "$CASE_DIR/metrics.headers" ||
        it_case_fail "/metrics Content-Type is not text/plain: $(grep -i '^content-type' "$CASE_DIR/metrics.headers")"
    promtool check metrics <"$CASE_DIR/metrics.txt" >"$CASE_DIR/lint.out" 2>&1
    local rc=$?
    if ((rc != 0)) || [ -s "$CASE_DIR/lint.out" ]; then
        it_case_fail "promtool check metrics: status $rc: $(head -n 10 "$CASE_DIR/lint.out" | tr '\n' ';')"
    fi
    local path code
    for path in healthz readyz; do
        code=$(scrape "$path")
        [ "$code" = 200 ] || it_case_fail "GET /$path: $code, expected 200 ($(head -c 200 "$CASE_DIR/$path.txt" 2>/dev/null))"
    done

    python3 - "$DASHBOARD" "$CASE_DIR/metrics.txt" >"$CASE_DIR/coverage.out" 2>&1 <<'PY'
import json, re, sys
d = json.load(open(sys.argv[1]))
scrape = open(sys.argv[2]).read()
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels") or [])
texts = [t.get("expr", "") for p in panels(d.get("panels") or []) for t in p.get("targets") or []]
texts += [json.dumps(v.get("query")) for v in (d.get("templating") or {}).get("list") or []]
used = sorted({n for t in texts for n in re.findall(r"\bheprouter_[A-Za-z0-9_]*", t)})
served = set(re.findall(r"^(heprouter_[A-Za-z0-9_]*)[{ ]", scrape, re.M))
served |= set(re.findall(r"^# (?:TYPE|HELP) (heprouter_[A-Za-z0-9_]*) ", scrape, re.M))
missing = [n for n in used if n not in served]
print("the dashboard uses %d heprouter metrics; /metrics has %d heprouter families" % (len(used), len(served)))
for n in missing:
    print("FAIL the dashboard uses %s; heprouter's /metrics has no such metric" % n)
sys.exit(1 if missing else 0)
PY
    local crc=$?
    sed 's/^/    /' "$CASE_DIR/coverage.out"
    ((crc == 0)) || it_case_fail "$(grep -c '^FAIL' "$CASE_DIR/coverage.out") metric(s) of the dashboard missing from /metrics"
    it_stop_router
    it_stop_all
    it_case_end "$CASE_DIR/router.err" "$CASE_DIR/lint.out"
}

it_run_cases "$@"
