#!/usr/bin/env bash
# Deployment kit test: validates, without running Docker or systemd, what
# docker/ and etc/systemd/ ship.
#
#   BUILD_DIR=build bash tests/integration/test_deploy_kit.sh
#
#  1. docker/heprouter.yaml passes `heprouter -t -c` (the built heprouter).
#  2. `docker-compose -f docker/docker-compose.yml config -q` accepts the
#     compose file (Debian 12's docker-compose 1.29); then, on its resolved
#     form: every bind-mounted host file and every build context and
#     Dockerfile exists, every fixed address is inside the network's subnet
#     and unique, and each UDP/TCP target of docker/heprouter.yaml is the
#     fixed address of a compose service.
#  3. Each Dockerfile under docker/: no Dockerfile linter is packaged in
#     Debian 12 (hadolint is not), so the script checks what one would:
#     every COPY source (other than --from=stage) exists in the build
#     context, the final stage has a USER that is not root, a HEALTHCHECK,
#     and a Debian 12 base; docker/Dockerfile has at least two stages.
#     Shell scripts in docker/ pass `sh -n`/`bash -n` (and shellcheck when
#     installed); docker/healthcheck.sh is run against a real heprouter.
#  4. etc/systemd/heprouter.service: `systemd-analyze verify` with its
#     /usr/local/bin/heprouter replaced by the built binary (verify wants
#     an existing executable); any message it prints is a failure.
#  5. etc/kamailio/kamailio.cfg, with the -A defines docker-compose.yml
#     passes, passes `kamailio -c` and listens on the container's address
#     (not only 127.0.0.1, which the container could neither receive SIP on
#     nor send HEP from).
#
# Needs: docker-compose (Debian: docker-compose), python3 with yaml
# (python3-yaml, a dependency of docker-compose), systemd-analyze (Debian:
# systemd).  A missing one is a FAILURE, not a skip.  Optional: shellcheck,
# kamailio.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
it_init 120

TOP=$IT_SRCDIR
DOCKER=$TOP/docker
COMPOSE=$DOCKER/docker-compose.yml
HEPROUTER=$(it_bin src/heprouter) || exit 1

need() {
    command -v "$1" >/dev/null 2>&1 ||
        it_fail "$1 is not installed (Debian package: $2); this test does not skip without it"
}
need docker-compose docker-compose
need python3 python3
need systemd-analyze systemd
python3 -c 'import yaml' 2>/dev/null || it_fail "python3 yaml module missing (Debian: python3-yaml)"

# ---------- 1. the compose stack's heprouter configuration ----------
it_log "heprouter -t -c docker/heprouter.yaml"
"$HEPROUTER" -t -c "$DOCKER/heprouter.yaml" >"$IT_TMP/t.out" 2>&1 ||
    { cat "$IT_TMP/t.out" >&2; it_fail "docker/heprouter.yaml is refused by heprouter -t"; }

# ---------- 2. docker-compose.yml ----------
it_log "docker-compose config -q ($(docker-compose version --short 2>/dev/null || echo '?'))"
# Run from a scratch directory so that no .env of the caller is read.
(cd "$IT_TMP" && docker-compose -f "$COMPOSE" config -q) ||
    it_fail "docker-compose config rejects $COMPOSE"
(cd "$IT_TMP" && docker-compose -f "$COMPOSE" config) >"$IT_TMP/resolved.yml" ||
    it_fail "docker-compose config (resolved form) failed"

python3 - "$IT_TMP/resolved.yml" "$DOCKER/heprouter.yaml" <<'PY' || it_fail "compose file checks failed"
import ipaddress, os, re, sys, yaml
resolved, hepconf = sys.argv[1], sys.argv[2]
doc = yaml.safe_load(open(resolved))
errors = []
services = doc.get("services", {})
for want in ("kamailio", "heprouter", "redis", "heplify-server",
             "homer-webapp", "db", "voipmonitor"):
    if want not in services:
        errors.append(f"service {want} missing")
subnets = {}
for name, net in (doc.get("networks") or {}).items():
    for c in ((net or {}).get("ipam") or {}).get("config") or []:
        subnets[name] = ipaddress.ip_network(c["subnet"])
addr_of = {}
for name, svc in services.items():
    for v in svc.get("volumes") or []:
        src = v["source"] if isinstance(v, dict) else v.split(":")[0]
        typ = v.get("type") if isinstance(v, dict) else ("bind" if src.startswith("/") else "volume")
        if typ == "bind" and not os.path.exists(src):
            errors.append(f"{name}: bind-mount source {src} does not exist")
    b = svc.get("build")
    if b:
        ctx = b["context"] if isinstance(b, dict) else b
        df = b.get("dockerfile", "Dockerfile") if isinstance(b, dict) else "Dockerfile"
        if not os.path.isdir(ctx):
            errors.append(f"{name}: build context {ctx} does not exist")
        elif not os.path.isfile(os.path.join(ctx, df)):
            errors.append(f"{name}: Dockerfile {df} not in {ctx}")
    elif not svc.get("image"):
        errors.append(f"{name}: neither build nor image")
    for net, cfg in (svc.get("networks") or {}).items():
        ip = (cfg or {}).get("ipv4_address")
        if ip:
            ip = ipaddress.ip_address(ip)
            if net in subnets and ip not in subnets[net]:
                errors.append(f"{name}: {ip} outside {subnets[net]}")
            if ip in addr_of.values():
                errors.append(f"{name}: {ip} used twice")
            addr_of[name] = ip
conf = yaml.safe_load(open(hepconf))
for dname, d in conf.get("destinations", {}).items():
    for t in d["targets"]:
        m = re.fullmatch(r"(udp|tcp):([0-9.]+):(\d+)", t)
        if not m:
            errors.append(f"heprouter.yaml: target {t} is not numeric IPv4")
            continue
        ip = ipaddress.ip_address(m.group(2))
        if ip not in addr_of.values():
            errors.append(f"heprouter.yaml: {dname} target {t} is no compose service's address")
host = ((conf.get("store") or {}).get("redis") or {}).get("host")
if host and host not in services and ipaddress.ip_address(host) not in addr_of.values():
    errors.append(f"heprouter.yaml: store.redis.host {host} is no compose service")
for e in errors:
    print("  " + e, file=sys.stderr)
print(f"  {len(services)} services, {len(addr_of)} fixed addresses checked", file=sys.stderr)
sys.exit(1 if errors else 0)
PY

# ---------- 3. Dockerfiles and scripts ----------
if apt-cache show hadolint >/dev/null 2>&1; then
    it_log "note: a hadolint package exists here; this test does not use it yet"
fi
# check_dockerfile FILE CONTEXT [MIN_STAGES]
check_dockerfile() {
    local f=$1 ctx=$2 min=${3:-1}
    python3 - "$f" "$ctx" "$min" <<'PY'
import glob, os, re, shlex, sys
path, ctx, min_stages = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(path).read()
# join continuation lines, drop comments
lines, cur = [], ""
for raw in text.splitlines():
    s = raw.strip()
    if not cur and (not s or s.startswith("#")):
        continue
    if s.endswith("\\"):
        cur += s[:-1] + " "
        continue
    cur += s
    lines.append(cur)
    cur = ""
args = {}
stages, errors = [], []
for l in lines:
    instr, _, rest = l.partition(" ")
    instr = instr.upper()
    if instr == "ARG" and not stages:
        k, _, v = rest.partition("=")
        args[k.strip()] = v.strip()
    elif instr == "FROM":
        img = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), rest.split()[0])
        stages.append({"image": img, "user": None, "health": False})
    elif not stages:
        errors.append(f"{instr} before FROM")
    elif instr == "USER":
        stages[-1]["user"] = rest.strip()
    elif instr == "HEALTHCHECK":
        stages[-1]["health"] = True
    elif instr in ("COPY", "ADD"):
        toks = shlex.split(rest)
        if any(t.startswith("--from") for t in toks):
            continue
        toks = [t for t in toks if not t.startswith("--")]
        if toks and toks[0].startswith("["):
            continue  # JSON form: not used here
        for src in toks[:-1]:
            if re.match(r"https?://", src):
                continue
            if not glob.glob(os.path.join(ctx, src)):
                errors.append(f"{instr} source {src} not found in context {ctx}")
if len(stages) < min_stages:
    errors.append(f"{len(stages)} stage(s), expected at least {min_stages}")
if stages:
    last = stages[-1]
    if not re.match(r"debian:12(\b|-|$)|debian:bookworm", last["image"]):
        errors.append(f"final stage FROM {last['image']!r} is not Debian 12")
    if last["user"] in (None, "", "root", "0", "0:0", "root:root"):
        errors.append(f"final stage runs as root (USER {last['user']})")
    if not last["health"]:
        errors.append("final stage has no HEALTHCHECK")
for e in errors:
    print(f"  {path}: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
}
it_log "Dockerfile checks (no Dockerfile linter is packaged in Debian 12)"
check_dockerfile "$DOCKER/Dockerfile" "$TOP" 2 || it_fail "docker/Dockerfile"
check_dockerfile "$DOCKER/kamailio/Dockerfile" "$DOCKER/kamailio" || it_fail "docker/kamailio/Dockerfile"
check_dockerfile "$DOCKER/voipmonitor/Dockerfile" "$DOCKER/voipmonitor" || it_fail "docker/voipmonitor/Dockerfile"
check_dockerfile "$DOCKER/uas/Dockerfile" "$DOCKER/uas" || it_fail "docker/uas/Dockerfile"
check_dockerfile "$DOCKER/prometheus/Dockerfile" "$DOCKER/prometheus" || it_fail "docker/prometheus/Dockerfile"

sh -n "$DOCKER/healthcheck.sh" || it_fail "docker/healthcheck.sh: syntax"
bash -n "$DOCKER/postgres/init-homer-db.sh" || it_fail "docker/postgres/init-homer-db.sh: syntax"
if command -v shellcheck >/dev/null 2>&1; then
    shellcheck "$DOCKER/healthcheck.sh" "$DOCKER/postgres/init-homer-db.sh" ||
        it_fail "shellcheck"
else
    it_log "shellcheck not installed: skipped on docker/*.sh"
fi

# The image's HEALTHCHECK against a real heprouter (memory store, UDP port
# 0, the port read from its ready file): healthy while it runs, unhealthy
# once it is stopped.
IT_ROUTER_LISTEN=udp
it_start_router 'destinations: { homer: { targets: [ "udp:127.0.0.1:9" ] } }
default: [ homer ]'
port=$ROUTER_PORT
it_wait_until 10 it_port_listening udp "$port" || it_fail "heprouter did not bind udp $port"
hc() { PATH="$(dirname "$HEPROUTER"):$PATH" HEPROUTER_CONF=$CASE_DIR/router.yaml \
       HEPROUTER_HEALTH_PORT=$port sh "$DOCKER/healthcheck.sh"; }
hc >"$IT_TMP/hc.out" 2>&1 || { cat "$IT_TMP/hc.out" >&2; it_fail "healthcheck: unhealthy while heprouter runs"; }
it_stop "$ROUTER_PID"
if hc >"$IT_TMP/hc.out" 2>&1; then
    it_fail "healthcheck: healthy after heprouter stopped"
fi

# ---------- 4. systemd unit ----------
it_log "systemd-analyze verify etc/systemd/heprouter.service"
unit=$TOP/etc/systemd/heprouter.service
grep -q '^ExecStart=/usr/local/bin/heprouter -c ' "$unit" || it_fail "unit: ExecStart is not /usr/local/bin/heprouter -c ..."
grep -q '^User=' "$unit" || it_fail "unit: no User= (must not run as root)"
grep -q '^Restart=on-failure' "$unit" || it_fail "unit: no Restart=on-failure"
mkdir -p "$IT_TMP/unit"
sed "s#/usr/local/bin/heprouter#$HEPROUTER#g" "$unit" >"$IT_TMP/unit/heprouter.service"
out=$(systemd-analyze verify --man=no "$IT_TMP/unit/heprouter.service" 2>&1) || true
if [ -n "$out" ]; then
    printf '%s\n' "$out" >&2
    it_fail "systemd-analyze verify complained"
fi

# ---------- 5. the Kamailio cfg with the compose file's defines ----------
it_require_cmd kamailio
it_log "kamailio -c with docker-compose.yml's -A defines"
kamailio -c -f "$TOP/etc/kamailio/kamailio.cfg" \
    -A 'HEP_URI="sip:172.28.60.20:9060"' -A 'LISTEN_IP=172.28.60.10' \
    -A 'UAS_URI="sip:172.28.60.60:5070"' >"$IT_TMP/kam.out" 2>&1 ||
    { tail -n 20 "$IT_TMP/kam.out" >&2; it_fail "kamailio -c refuses etc/kamailio/kamailio.cfg"; }
grep -q 'udp: 172\.28\.60\.10 ' "$IT_TMP/kam.out" ||
    { grep -A3 'Listening on' "$IT_TMP/kam.out" >&2
      it_fail "etc/kamailio/kamailio.cfg ignores -A LISTEN_IP=172.28.60.10: in the container it would listen on 127.0.0.1 only"; }

it_log "PASS"
