#!/usr/bin/env bash
# The container test: builds the images of docker/ with podman, runs the
# stack of docker/docker-compose.yml with Debian's docker-compose on
# podman's Docker-compatible API, sends real SIP calls into it and checks
# where their HEP ends up.
#
#   BUILD_DIR=build bash tests/integration/test_containers.sh
#
#  1. podman runs a container here, or the test fails saying why
#     (podman.sh: it_podman_init; a containers.conf in the scratch
#     directory lowers the ulimits podman asks for).
#  2. Images: the Debian 12 base (debootstrap, cached in podman's store
#     between runs: podman.sh's it_base_image), then heprouter's
#     (docker/Dockerfile, --format docker to keep its HEALTHCHECK),
#     Kamailio's (docker/kamailio/), the UAS's (docker/uas/),
#     Prometheus's (docker/prometheus/: Debian's prometheus package) and,
#     for the test only, a Redis image from Debian's redis-server
#     (containers/redis/); the five builds run at once, FROM a tag of the
#     base of the run's own (what an interrupted build leaves is removed at
#     exit).  heprouter's image must have a non-root USER and a HEALTHCHECK.
#  3. The stack: docker-compose -f docker/docker-compose.yml -f
#     containers/compose.override.yml up -d --no-build, on podman's API
#     service (podman system service, stopped by its PID).  The override
#     replaces only what cannot be pulled here: heplify-server, voipmonitor,
#     db and homer-webapp become hepdump sinks from heprouter's image (on
#     the same addresses of the compose network), redis the Debian-built
#     image; grafana is not started (its image is not in Debian: the
#     override gives it a profile, and the test checks that no grafana
#     container exists).  Everything stays on this machine: the stack's own bridge
#     network (172.28.60.0/24) and ports published on 127.0.0.1 only
#     (free ports, HEPROUTER_DEMO_* of the compose file).  There is no
#     systemd here, so podman never runs health checks by itself and
#     `depends_on: condition: service_healthy` would wait forever: the test
#     runs `podman healthcheck run` on each container until all are healthy.
#  4. Checks in the running stack: heprouter's process runs as a non-root
#     user; its HEALTHCHECK command reports healthy.  Prometheus: `promtool
#     check config` in its container passes on the mounted prometheus.yml,
#     and its HTTP API (published on 127.0.0.1) shows the job "heprouter"
#     target 172.28.60.20:9100 "up" (heprouter's metrics.listen scraped).
#  5. SIPp on the host sends CT_OPTIONS OPTIONS (3), CT_REGISTERS REGISTER
#     (3, each challenged with a stateless 401) and CT_CALLS INVITE calls
#     (10, each challenged with a stateless 407, then answered by the uas
#     service and hung up) to Kamailio's published port.  Then
#     (containers/check_stack.py) each call arrived whole at every sink the
#     policy of docker/heprouter.yaml names for it (INVITE calls at
#     voipmonitor, as HEPv3, and at heplify-server; REGISTER and OPTIONS at
#     heplify-server only) and nowhere else, every packet from heprouter,
#     none with 0.0.0.0 as Kamailio's address (HEP, Via, Record-Route);
#     Redis holds every call's context (its origin method and route); and
#     heprouter's exit counters agree (packets_in, store_writes,
#     decode_errors); and Prometheus, queried after the calls, has scraped
#     heprouter_received_packets_total > 0 from heprouter.
#  6. docker-compose down -v leaves no container, network or volume of the
#     stack; the images this run built are removed at exit, the base image
#     is kept.
#
# Prints the time of each step, the images' sizes and the packets and
# calls per sink: about 2 min with the base image cached, 3 min without,
# on 2 idle cores.  Environment: CT_CALLS, CT_REGISTERS, CT_OPTIONS,
# CT_TIME_LIMIT (600 s), IT_DEBIAN_MIRROR (podman.sh), IT_KEEP_TMP=1.
# Needs podman (and runc where crun refuses the cgroups, as here),
# debootstrap, docker-compose, sipp, python3 with yaml, and the network
# access apt-get needs in a build (the Debian mirror).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=podman.sh
. "$HERE/podman.sh"

TOP=$IT_SRCDIR
CT=$HERE/containers
COMPOSE=$TOP/docker/docker-compose.yml
OVERRIDE=$CT/compose.override.yml
CALLS=${CT_CALLS:-10}
REGISTERS=${CT_REGISTERS:-3}
OPTIONS=${CT_OPTIONS:-3}
RATE=10                 # calls per second of each SIPp UAC
SIPP_LIMIT=30           # seconds one SIPp run may take
UP_LIMIT=240            # seconds for the whole stack to be up and healthy
HEALTH_PERIOD=1         # seconds between two rounds of health checks
PROM_LIMIT=30           # seconds for Prometheus to scrape heprouter (every 5 s) as "up"
SERVICES=(kamailio heprouter uas redis heplify-server homer-webapp db voipmonitor prometheus grafana)
# what `up` starts: every service but those the override puts in a profile
STARTED=(kamailio heprouter uas redis heplify-server homer-webapp db voipmonitor prometheus)
SINKS=(heplify-server voipmonitor db homer-webapp)

it_init "${CT_TIME_LIMIT:-600}"
it_require_cmd docker-compose sipp python3 ss timeout flock debootstrap
python3 -c 'import yaml' 2>/dev/null || it_cannot_run "python3's yaml module is missing (Debian: python3-yaml)"
it_podman_init

T0=$SECONDS
PROJECT=heprouter-it-$$
IMAGES=localhost/heprouter-it-$$
export IT_IMAGE_HEPROUTER=$IMAGES/heprouter:test
export IT_IMAGE_KAMAILIO=$IMAGES/kamailio:test
export IT_IMAGE_UAS=$IMAGES/uas:test
export IT_IMAGE_REDIS=$IMAGES/redis:test
export IT_IMAGE_PROMETHEUS=$IMAGES/prometheus:test
export IT_OUT=$IT_TMP/out
it_podman_track label "com.docker.compose.project=$PROJECT"
declare -A SECS=() SIZE=()

# step NAME: starts timing a step (ended by the next, or step_end)
STEP=""
STEP_T0=0
step() {
    step_end
    STEP=$1
    STEP_T0=$SECONDS
    it_note "$STEP"
}
step_end() {
    [ -z "$STEP" ] || SECS[$STEP]=$((SECONDS - STEP_T0))
    STEP=""
}

# stack_fail MESSAGE: what each container of the stack says, then it_fail.
stack_fail() {
    local c
    for c in $(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}' 2>/dev/null); do
        printf -- '--- container %s (%s), last lines:\n' "$c" \
            "$(podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$c" 2>/dev/null)" >&2
        timeout 20 podman logs --tail 15 "$c" 2>&1 | cut -c1-300 >&2
    done
    it_fail "$@"
}

# ---------------------------------------------------------------- images

step "base image"
it_base_image >/dev/null
BASE=$IT_BASE_IMAGE
BASE_HOW=cached
((IT_BASE_BUILT)) && BASE_HOW=built
SIZE[base]=$(it_podman_image_size "$BASE")
it_note "base image $BASE ($BASE_HOW in ${IT_BASE_SECONDS} s, ${SIZE[base]} MB)"
# The builds start FROM a tag of the base of this run's own: the build
# containers a stopped build leaves are then named after it, and removed
# at exit (podman.sh: it_podman_track working).
RUN_BASE=localhost/heprouter-it-$$-base:latest
it_podman_track image "$RUN_BASE"
it_podman_track working "heprouter-it-$$-base"
podman tag "$BASE" "$RUN_BASE" || it_fail "podman tag $BASE $RUN_BASE"

# The four builds run at once (heprouter's compiles while the others
# mostly download and unpack packages): build_start NAME TAG DOCKERFILE
# CONTEXT [ARG...], then builds_wait.
declare -A BUILD_PID=() BUILD_TAG=()
build_start() {
    local name=$1 tag=$2 df=$3 ctx=$4
    shift 4
    it_podman_track image "$tag"
    it_start "build-$name" "${IT_PODMAN_BUILD[@]}" -t "$tag" -f "$df" \
        --build-arg "DEBIAN_IMAGE=$RUN_BASE" "$@" "$ctx"
    BUILD_PID[$name]=$IT_PID
    BUILD_TAG[$name]=$tag
}
builds_done() {
    local name
    for name in "${!BUILD_PID[@]}"; do
        [ -n "${SECS[build $name]:-}" ] && continue
        it_exited "${BUILD_PID[$name]}" || continue
        SECS[build $name]=$((SECONDS - STEP_T0))
        it_stop "${BUILD_PID[$name]}"
        ((IT_STATUS == 0)) ||
            it_fail "podman build ${BUILD_TAG[$name]}: $(cat "$IT_TMP/build-$name.out" "$IT_TMP/build-$name.err" | grep -v '^ *$' | tail -n 8)"
        SIZE[$name]=$(it_podman_image_size "${BUILD_TAG[$name]}")
        it_note "built ${BUILD_TAG[$name]} in ${SECS[build $name]} s: ${SIZE[$name]} MB"
    done
    for name in "${!BUILD_PID[@]}"; do
        [ -n "${SECS[build $name]:-}" ] || return 1
    done
}
step "builds"
build_start heprouter "$IT_IMAGE_HEPROUTER" "$TOP/docker/Dockerfile" "$TOP" \
    --ignorefile "$TOP/docker/Dockerfile.dockerignore"
build_start kamailio "$IT_IMAGE_KAMAILIO" "$TOP/docker/kamailio/Dockerfile" "$TOP/docker/kamailio"
build_start uas "$IT_IMAGE_UAS" "$TOP/docker/uas/Dockerfile" "$TOP/docker/uas"
build_start redis "$IT_IMAGE_REDIS" "$CT/redis/Dockerfile" "$CT/redis"
build_start prometheus "$IT_IMAGE_PROMETHEUS" "$TOP/docker/prometheus/Dockerfile" "$TOP/docker/prometheus"
IT_POLL=1 it_wait_until 420 builds_done || it_fail "the image builds took more than 420 s"
step_end

# The image's own settings: a non-root USER and a HEALTHCHECK (which the
# OCI format would have dropped).
podman image inspect "$IT_IMAGE_HEPROUTER" >"$IT_TMP/heprouter-image.json" ||
    it_fail "podman image inspect $IT_IMAGE_HEPROUTER"
python3 - "$IT_TMP/heprouter-image.json" <<'PY' || it_fail "heprouter's image: no non-root USER or no HEALTHCHECK"
import json, sys
img = json.load(open(sys.argv[1]))[0]
user = (img.get("Config") or {}).get("User", "")
hc = img.get("HealthCheck") or img.get("Healthcheck") or (img.get("Config") or {}).get("Healthcheck")
print("  heprouter image: USER %r, HEALTHCHECK %s" % (user, (hc or {}).get("Test")))
sys.exit(0 if user not in ("", "root", "0") and hc and hc.get("Test") else 1)
PY

# ---------------------------------------------------------------- the stack

step "stack up"
SIP_PUB=$(it_free_port udp) || exit 1
HEP_PUB=$(it_free_port both) || exit 1
UI_PUB=$(it_free_port tcp) || exit 1
PROM_PUB=$(it_free_port tcp) || exit 1
GRAFANA_PUB=$(it_free_port tcp) || exit 1
read -r OPT_BASE REG_BASE INV_BASE < <(it_free_port_blocks 3 8 udp | tr '\n' ' ')
[ -n "${INV_BASE:-}" ] || it_fail "no free port blocks for SIPp"
export HEPROUTER_DEMO_SIP=127.0.0.1:$SIP_PUB
export HEPROUTER_DEMO_HEP=127.0.0.1:$HEP_PUB
export HEPROUTER_DEMO_HOMER_UI=127.0.0.1:$UI_PUB
export HEPROUTER_DEMO_PROMETHEUS=127.0.0.1:$PROM_PUB
export HEPROUTER_DEMO_GRAFANA=127.0.0.1:$GRAFANA_PUB
mkdir -p "$IT_OUT"
chmod 0777 "$IT_OUT"            # the sinks run as heprouter's user
: >"$IT_TMP/empty.env"          # no .env of the caller's is read
DC=(docker-compose --env-file "$IT_TMP/empty.env" -p "$PROJECT" -f "$COMPOSE" -f "$OVERRIDE")

it_run 60 "${DC[@]}" config >"$IT_TMP/resolved.yml" 2>"$IT_TMP/config.err" ||
    it_fail "docker-compose config with the override: $(tail -n 5 "$IT_TMP/config.err")"
mapfile -t got < <(it_run 60 "${DC[@]}" config --services | sort)
[ "${got[*]}" = "$(printf '%s\n' "${SERVICES[@]}" | sort | tr '\n' ' ' | sed 's/ $//')" ] ||
    it_fail "the stack's services are ${got[*]}; this test knows ${SERVICES[*]}"

# The compose network's subnet must be free (a stack left running, or
# another run of this test, holds it).
SUBNET=$(python3 -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); print(d["networks"]["capture"]["ipam"]["config"][0]["subnet"])' "$IT_TMP/resolved.yml")
for n in $(podman network ls --format '{{.Name}}'); do
    if podman network inspect --format '{{range .Subnets}}{{.Subnet}} {{end}}' "$n" 2>/dev/null | grep -qw "$SUBNET"; then
        it_fail "podman network $n already uses $SUBNET, the stack's subnet: stop that stack first"
    fi
done

it_podman_api
API_PID=$IT_PID
it_start compose-up "${DC[@]}" up -d --no-build
UP_PID=$IT_PID
it_note "docker-compose up -d --no-build (DOCKER_HOST=$DOCKER_HOST), $((SECONDS - STEP_T0)) s into the step"

# health_round: one `podman healthcheck run` on each running container of
# the stack not healthy yet; true when docker-compose up is done and every
# service's container is healthy.
declare -A HEALTHY=()
UP_STATUS=""
health_round() {
    local c
    for c in $(podman ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
        [ -z "${HEALTHY[$c]:-}" ] || continue
        if timeout 30 podman healthcheck run "$c" >/dev/null 2>&1; then
            HEALTHY[$c]=1
            it_note "healthy: $c"
        fi
    done
    if [ -z "$UP_STATUS" ] && it_exited "$UP_PID"; then
        it_stop "$UP_PID"
        UP_STATUS=$IT_STATUS
        ((UP_STATUS == 0)) || stack_fail "docker-compose up exited with status $UP_STATUS: $(tail -n 5 "$IT_TMP/compose-up.err")"
    fi
    [ -n "$UP_STATUS" ] && [ "${#HEALTHY[@]}" -ge "${#STARTED[@]}" ]
}
end=$((SECONDS + UP_LIMIT))
until health_round; do
    ((SECONDS < end)) || stack_fail "the stack was not up and healthy within ${UP_LIMIT} s (healthy: ${!HEALTHY[*]})"
    sleep "$HEALTH_PERIOD"
done
step_end
it_note "stack up: ${#HEALTHY[@]} containers healthy in ${SECS[stack up]} s"

# cid SERVICE: the container of a service of the stack
cid() {
    podman ps -a -q --filter "label=com.docker.compose.project=$PROJECT" \
        --filter "label=com.docker.compose.service=$1"
}
HR=$(cid heprouter)
RD=$(cid redis)
if [ -z "$HR" ] || [ -z "$RD" ]; then stack_fail "no heprouter or redis container"; fi

# heprouter's process (PID 1 of its container) runs as a non-root user, and
# the image's HEALTHCHECK command reports healthy.
uid=$(timeout 30 podman exec "$HR" sh -c 'sed -n "s/^Uid:[[:space:]]*\([0-9]*\).*/\1/p" /proc/1/status')
user=$(timeout 30 podman exec "$HR" id -un "$uid" 2>/dev/null)
if [ -z "$uid" ] || [ "$uid" = 0 ]; then stack_fail "heprouter runs as uid '$uid'"; fi
it_note "heprouter runs as uid $uid ($user)"
timeout 30 podman healthcheck run "$HR" >"$IT_TMP/hc.out" 2>&1 ||
    stack_fail "heprouter's HEALTHCHECK: $(cat "$IT_TMP/hc.out")"
hc=$(timeout 30 podman exec "$HR" /usr/local/bin/heprouter-healthcheck 2>&1)
[ "$hc" = ok ] || stack_fail "heprouter-healthcheck in the container says: $hc"
it_note "heprouter's HEALTHCHECK: healthy ($hc)"

# ---------------------------------------------------------------- Prometheus

step "prometheus"
PR=$(cid prometheus)
[ -n "$PR" ] || stack_fail "no prometheus container"
[ -z "$(cid grafana)" ] || stack_fail "a grafana container exists: the override's profile did not keep it out of up"
timeout 30 podman exec "$PR" promtool check config /etc/prometheus/prometheus.yml >"$IT_TMP/promtool.out" 2>&1 ||
    stack_fail "promtool check config in the prometheus container: $(tail -n 5 "$IT_TMP/promtool.out")"
PROM_URL=http://127.0.0.1:$PROM_PUB
# prom_target_up: Prometheus's API (on the published port) lists the job
# "heprouter" target 172.28.60.20:9100 as up; its state in prom-target.out.
prom_target_up() {
    python3 - "$PROM_URL" heprouter 172.28.60.20:9100 >"$IT_TMP/prom-target.out" 2>&1 <<'PY'
import json, sys, urllib.request
url, job, instance = sys.argv[1:4]
d = json.load(urllib.request.urlopen(url + "/api/v1/targets?state=active", timeout=3))
for t in d["data"]["activeTargets"]:
    if t["labels"].get("job") == job and t["labels"].get("instance") == instance:
        print("target %s %s: health %s, last error %r" % (job, instance, t["health"], t.get("lastError")))
        sys.exit(0 if t["health"] == "up" else 1)
print("no active target %s %s" % (job, instance))
sys.exit(1)
PY
}
IT_POLL=1 it_wait_until "$PROM_LIMIT" prom_target_up ||
    stack_fail "Prometheus: heprouter's target is not up after ${PROM_LIMIT} s: $(cat "$IT_TMP/prom-target.out")"
step_end
it_note "Prometheus: promtool check config passes; $(cat "$IT_TMP/prom-target.out") (${SECS[prometheus]} s)"

# prom_received: Prometheus has a sample of heprouter's packets in > 0
# (prints the value to prom-query.out).
prom_received() {
    python3 - "$PROM_URL" 'sum(heprouter_received_packets_total{job="heprouter"})' >"$IT_TMP/prom-query.out" 2>&1 <<'PY'
import json, sys, urllib.parse, urllib.request
url, query = sys.argv[1:3]
d = json.load(urllib.request.urlopen(url + "/api/v1/query?" + urllib.parse.urlencode({"query": query}), timeout=3))
r = d["data"]["result"]
v = float(r[0]["value"][1]) if r else 0.0
print("%s = %g" % (query, v))
sys.exit(0 if v > 0 else 1)
PY
}

# ---------------------------------------------------------------- calls

step "SIP calls"
# sipp_uac NAME SCENARIO BASE CID-PREFIX CALLS: a UAC against Kamailio's
# published port; sets IT_PID.
sipp_uac() { it_sipp_uac "$1" "$2" "$SIP_PUB" "$3" "$4" "$5" "$RATE" "$SIPP_LIMIT"; }
FAILED=()
pids=()
names=(options register invite)
sipp_uac options uac-options.xml "$OPT_BASE" opt "$OPTIONS"
pids+=("$IT_PID")
sipp_uac register uac-register.xml "$REG_BASE" reg "$REGISTERS"
pids+=("$IT_PID")
sipp_uac invite uac-invite.xml "$INV_BASE" inv "$CALLS"
pids+=("$IT_PID")
for i in "${!pids[@]}"; do
    it_wait_exit "${pids[$i]}" "$((SIPP_LIMIT + 5))"
    if ((IT_STATUS != 0)); then
        FAILED+=("sipp-${names[$i]}")
        printf '[%s] FAIL: sipp %s exited with status %s: %s\n' "$IT_NAME" "${names[$i]}" "$IT_STATUS" \
            "$(grep -E 'Successful call|Failed call' "$IT_TMP/sipp_${names[$i]}.out" | tr -s ' ' | tr '\n' ' ')"
        tail -n 5 "$IT_TMP/sipp_${names[$i]}.errors" 2>/dev/null | sed 's/^/    /'
    fi
done

it_note "SIPp done: $(for n in "${names[@]}"; do
    printf '%s %s/%s ' "$n" "$(grep -E 'Successful call' "$IT_TMP/sipp_$n.out" | awk -F'|' '{ gsub(/ /, "", $3); print $3 }')" \
        "$(grep -E 'Failed call' "$IT_TMP/sipp_$n.out" | awk -F'|' '{ gsub(/ /, "", $3); print $3 }')"
done)(successful/failed)"

# sinks_settled: the sinks' files did not grow since the last call
LAST_SIZE=-1
sinks_settled() {
    local s
    s=$(cat "$IT_OUT"/*.json 2>/dev/null | wc -c)
    [ "$s" = "$LAST_SIZE" ] && return 0
    LAST_SIZE=$s
    return 1
}
IT_POLL=0.5 it_wait_until 15 sinks_settled || it_log "the sinks were still receiving after 15 s"

# The calls' packets, as Prometheus scraped them (every 5 s) from heprouter
if IT_POLL=1 it_wait_until 15 prom_received; then
    it_note "Prometheus after the calls: $(cat "$IT_TMP/prom-query.out")"
else
    printf '[%s] FAIL: Prometheus has no packets of heprouter after the calls: %s\n' "$IT_NAME" "$(cat "$IT_TMP/prom-query.out")"
    FAILED+=(prometheus-samples)
fi

# Redis's view, before the calls' keys expire (ttl.ended: 30 s after BYE)
# shellcheck disable=SC2016  # (expanded by the container's shell)
timeout 30 podman exec "$RD" sh -c 'redis-cli --scan --pattern "*" | while read -r k; do
    printf "%s\t%s\n" "$k" "$(redis-cli GET "$k")"; done' >"$IT_TMP/redis.txt" 2>"$IT_TMP/redis.err" ||
    stack_fail "reading Redis: $(tail -n 3 "$IT_TMP/redis.err")"

# heprouter's exit counters: stop Kamailio (nothing more comes in), then
# heprouter (it drains and logs its counters on SIGTERM)
t_stop=$SECONDS
it_run 60 "${DC[@]}" stop kamailio >/dev/null 2>&1 || stack_fail "docker-compose stop kamailio"
t_kamailio=$((SECONDS - t_stop))
it_run 60 "${DC[@]}" stop heprouter >/dev/null 2>&1 || stack_fail "docker-compose stop heprouter"
hr_exit=$(podman inspect --format '{{.State.ExitCode}}' "$HR")
it_note "kamailio and heprouter stopped in $t_kamailio s and $((SECONDS - t_stop - t_kamailio)) s (heprouter's exit status: $hr_exit)"
[ "$hr_exit" = 0 ] || FAILED+=("heprouter-exit-$hr_exit")
for s in heprouter kamailio uas redis prometheus "${SINKS[@]}"; do
    timeout 30 podman logs "$(cid "$s")" >"$IT_TMP/$s.log" 2>&1
done
step_end

args=()
for s in "${SINKS[@]}"; do args+=(--sink "$s=$IT_OUT/$s.json"); done
python3 "$CT/check_stack.py" --policy "$TOP/docker/heprouter.yaml" --compose "$IT_TMP/resolved.yml" \
    "${args[@]}" --sip-port 5060 --invites "$CALLS" --registers "$REGISTERS" --options "$OPTIONS" \
    --router-log "$IT_TMP/heprouter.log" --redis-dump "$IT_TMP/redis.txt" >"$IT_TMP/check.out" 2>&1 ||
    FAILED+=(calls)
cat "$IT_TMP/check.out"
grep -iE 'error|warn' "$IT_TMP/heprouter.log" | grep -v 'stats (' | head -n 5 | sed 's/^/    heprouter: /'

# ---------------------------------------------------------------- down

step "stack down"
it_run 180 "${DC[@]}" down -v >"$IT_TMP/down.out" 2>&1 ||
    stack_fail "docker-compose down -v: $(tail -n 5 "$IT_TMP/down.out")"
step_end
left=$(podman ps -a --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}} {{.Status}}')
[ -z "$left" ] || it_fail "after down, containers of the stack remain: $left"
left=$(podman network ls --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Name}}')
[ -z "$left" ] || it_fail "after down, networks of the stack remain: $left"
left=$(podman volume ls --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Name}}')
[ -z "$left" ] || it_fail "after down -v, volumes of the stack remain: $left"
it_note "down: no container, network or volume of $PROJECT is left"
it_stop "$API_PID"

# ---------------------------------------------------------------- verdict

it_note "times: base image $BASE_HOW ${IT_BASE_SECONDS} s; builds (at once) ${SECS[builds]} s: heprouter ${SECS[build heprouter]} s, kamailio ${SECS[build kamailio]} s, uas ${SECS[build uas]} s, redis ${SECS[build redis]} s, prometheus ${SECS[build prometheus]} s; up ${SECS[stack up]} s; prometheus target up ${SECS[prometheus]} s; calls ${SECS[SIP calls]} s; down ${SECS[stack down]} s; whole test $((SECONDS - T0)) s"
it_note "image sizes (MB): base ${SIZE[base]}, heprouter ${SIZE[heprouter]}, kamailio ${SIZE[kamailio]}, uas ${SIZE[uas]}, redis ${SIZE[redis]}, prometheus ${SIZE[prometheus]}"
if [ ${#FAILED[@]} -gt 0 ]; then
    it_fail "failed: ${FAILED[*]} (logs in $IT_TMP)"
fi
it_note "PASS"
