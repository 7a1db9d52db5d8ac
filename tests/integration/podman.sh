# shellcheck shell=bash disable=SC2034
# (SC2034: the IT_PODMAN_* variables are read by the scripts that source this.)
#
# tests/integration/podman.sh - podman helpers for the container tests
# (test_containers.sh, test_package.sh).  Source it after lib.sh and call it
# after it_init:
#
#   . "$HERE/lib.sh"
#   . "$HERE/podman.sh"
#   it_init 900
#   it_podman_init                      # or the test fails, saying why
#   base=$(it_base_image) || exit 1     # localhost/heprouter-base:HASH
#   it_podman_track container "hr-$$-pkg"
#   podman run --name "hr-$$-pkg" ... "$base" ...
#
# API:
#   it_podman_init
#       Fails the test (it_cannot_run, exit 1) with the reason when podman is
#       not installed or cannot run a container: it imports a throwaway
#       image holding only /bin/true and its libraries and runs it (the
#       image is removed again).  Writes $IT_TMP/containers.conf with
#           default_ulimits = ["nproc=4096:4096", "nofile=20000:20000"]
#       (the sandbox refuses to raise RLIMIT_NPROC, which podman does by
#       default), and runtime = "runc" when runc is installed (crun 1.8,
#       podman's default, refuses this sandbox's hybrid cgroups: "cgroups in
#       hybrid mode not supported"), and exports CONTAINERS_CONF pointing at
#       it: every podman command of the test, and a podman API service it
#       starts, reads it.  /etc is never edited.
#       Replaces it_init's EXIT trap with one that
#       stops the started processes (it_stop_all), removes everything given
#       to it_podman_track (bounded in time), then runs lib.sh's it_cleanup
#       as before: set no EXIT trap of your own after it.
#   it_base_image
#       Prints the base image's name, localhost/heprouter-base:HASH, and
#       tags it debian:12-slim (localhost/debian:12-slim, which is what a
#       Dockerfile's "FROM debian:12-slim" finds when nothing is pulled).
#       When no image of that name is in podman's store it builds one:
#       debootstrap --variant=minbase bookworm into $IT_TMP, from the Debian
#       mirror this machine's apt uses (read from /etc/apt/sources.list and
#       sources.list.d, or IT_DEBIAN_MIRROR; never written into the
#       repository), then `podman import`.  HASH is a hash of the recipe
#       (the suite, the architecture and the text of the function that
#       builds it), so changing the recipe builds a new image.  The image
#       is the cache: it is kept between runs (remove it with `podman rmi`
#       to rebuild); a new one replaces older heprouter-base tags.  A lock
#       ($TMPDIR/heprouter-base-image.lock) keeps two tests from building it
#       at once.  Also sets IT_BASE_IMAGE (the name), IT_BASE_BUILT (1 when
#       built now, else 0) and IT_BASE_SECONDS (the time it took), which
#       only a call in the test's own shell keeps:
#           it_base_image >/dev/null; base=$IT_BASE_IMAGE
#       Inside $(...) a failure ends only the subshell:
#           base=$(it_base_image) || exit 1
#
# Helpers of test_containers.sh, usable by any test:
#   it_podman_track container|pod|network|volume|image NAME...
#       Removes these at exit (containers and pods first, then networks,
#       volumes, images; an image by the name given, so a tag of a shared
#       image only loses that tag).  Never give it the base image.
#   it_podman_track working NAME
#       At exit, removes the build containers that podman build (buildah)
#       makes FROM an image named NAME (localhost/NAME:TAG): NAME-working-
#       container, NAME-working-container-1, ...  A build that is stopped
#       (the test's time limit, ^C) leaves them in the store.  Build FROM a
#       tag of the base image of this run's own (podman tag BASE
#       localhost/NAME:TAG, NAME unique to the run, the tag tracked as an
#       image) so that no other test's build containers match.
#   it_podman_track label KEY=VALUE
#       At exit, removes every container, pod, network and volume carrying
#       that label (a docker-compose project: com.docker.compose.project=P).
#   it_podman_build TAG [PODMAN-BUILD-ARGS...] CONTEXT
#       podman build --format docker (which keeps HEALTHCHECK) --pull=never
#       --layers=false -t TAG, log in $IT_TMP/build-<name>.log, TAG tracked;
#       fails the test with the log's end on error.  Sets
#       IT_BUILD_SECONDS.  The command is IT_PODMAN_BUILD (an array), for a
#       test that runs builds in parallel itself (track their tags).
#   it_podman_api
#       Starts `podman system service --time=0` on $IT_TMP/podman.sock with
#       it_start (stopped by its PID at exit), waits for it to answer, and
#       exports DOCKER_HOST=unix://$IT_TMP/podman.sock for docker-compose.
#   it_podman_image_size IMAGE
#       Prints the image's size in MB (podman's accounting).
#
# Environment: IT_DEBIAN_MIRROR (default: from the apt sources),
# IT_PODMAN_CLEANUP_TIMEOUT (seconds per removal command at exit, 60).

IT_PODMAN_READY=0
IT_PODMAN_CONTAINERS=()
IT_PODMAN_PODS=()
IT_PODMAN_NETWORKS=()
IT_PODMAN_VOLUMES=()
IT_PODMAN_IMAGES=()
IT_PODMAN_LABELS=()
IT_PODMAN_WORKING=()
IT_BASE_SUITE=bookworm
IT_BASE_REPO=localhost/heprouter-base
IT_BASE_IMAGE=
IT_BASE_BUILT=0
IT_BASE_SECONDS=0
IT_BUILD_SECONDS=0
# how it_podman_build builds (for a test that starts builds itself)
IT_PODMAN_BUILD=(podman build --format docker --pull=never --layers=false)

it_podman_init() {
    [ -n "$IT_TMP" ] || it_fail "it_podman_init: call it_init first"
    ((IT_PODMAN_READY)) && return 0
    command -v podman >/dev/null 2>&1 ||
        it_cannot_run "podman is not installed (Debian: podman; scripts/deps.sh test installs it)"
    {
        echo '# written by tests/integration/podman.sh'
        echo '[containers]'
        echo '# the sandbox refuses to raise RLIMIT_NPROC: these instead of the defaults'
        echo 'default_ulimits = [ "nproc=4096:4096", "nofile=20000:20000" ]'
        if command -v runc >/dev/null 2>&1; then
            echo '[engine]'
            echo '# crun 1.8 refuses hybrid cgroups (v1 controllers and a v2 mount), as here'
            echo 'runtime = "runc"'
        fi
    } >"$IT_TMP/containers.conf"
    export CONTAINERS_CONF=$IT_TMP/containers.conf
    trap it_podman_exit EXIT
    IT_PODMAN_READY=1

    local out=$IT_TMP/podman-probe.log version
    version=$(podman version --format '{{.Client.Version}}' 2>"$out") ||
        it_cannot_run "podman does not work: $(tail -n 3 "$out")"
    if ! it_podman_probe "$out"; then
        local hint=""
        grep -q 'hybrid mode not supported' "$out" && ! command -v runc >/dev/null 2>&1 &&
            hint=" (install runc: with it, podman.sh uses runc instead of crun)"
        it_cannot_run "podman $version cannot run a container$hint: $(grep -v '^ *$' "$out" | tail -n 4 | cut -c1-300)"
    fi
    it_log "podman $version runs containers ($(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null); CONTAINERS_CONF=$CONTAINERS_CONF)"
}

# it_podman_probe LOG: imports a one-program image (/bin/true and the
# libraries it links), runs it, removes it; false when any step fails.
it_podman_probe() {
    local log=$1 root=$IT_TMP/podman-probe tag lib rc=0
    tag=localhost/heprouter-probe:$$-$RANDOM
    mkdir -p "$root/bin"
    cp /bin/true "$root/bin/true"
    for lib in $(ldd /bin/true | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
    {
        tar -C "$root" -c . | timeout 60 podman import - "$tag" &&
            timeout 60 podman run --rm --network none "$tag" /bin/true
    } >"$log" 2>&1 || rc=1
    timeout 60 podman rmi -f "$tag" >/dev/null 2>&1 || true
    rm -rf "$root"
    return "$rc"
}

it_podman_track() {
    local kind=$1
    shift
    case $kind in
        container) IT_PODMAN_CONTAINERS+=("$@") ;;
        pod) IT_PODMAN_PODS+=("$@") ;;
        network) IT_PODMAN_NETWORKS+=("$@") ;;
        volume) IT_PODMAN_VOLUMES+=("$@") ;;
        image) IT_PODMAN_IMAGES+=("$@") ;;
        working) IT_PODMAN_WORKING+=("$@") ;;
        label) IT_PODMAN_LABELS+=("$@") ;;
        *) it_fail "it_podman_track: unknown kind $kind" ;;
    esac
}

# The EXIT trap: stops the started processes (a build or docker-compose
# still running would make more), removes what was tracked, then runs
# lib.sh's it_cleanup (which reads the exit status from $?, and exits with
# it).
it_podman_exit() {
    local rc=$?
    set +e
    trap '' INT TERM            # it_cleanup runs whatever happens here
    it_stop_all
    it_podman_cleanup
    (exit "$rc")
    it_cleanup
}

it_podman_cleanup() {
    local t=${IT_PODMAN_CLEANUP_TIMEOUT:-60} l ids
    for l in "${IT_PODMAN_LABELS[@]}"; do
        ids=$(podman ps -a -q --filter "label=$l" 2>/dev/null)
        # shellcheck disable=SC2086  # (one id a word)
        [ -z "$ids" ] || timeout "$t" podman rm -f -t 2 $ids >/dev/null 2>&1
        ids=$(podman pod ps -q --filter "label=$l" 2>/dev/null)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || timeout "$t" podman pod rm -f $ids >/dev/null 2>&1
    done
    local w id name
    for w in "${IT_PODMAN_WORKING[@]}"; do
        podman ps -a --external --format '{{.ID}} {{.Names}}' 2>/dev/null |
            while read -r id name; do
                case $name in
                    "$w-working-container" | "$w-working-container-"[0-9]*)
                        timeout "$t" podman rm -f "$id" >/dev/null 2>&1 ;;
                esac
            done
    done
    [ ${#IT_PODMAN_CONTAINERS[@]} -eq 0 ] ||
        timeout "$t" podman rm -f -t 2 --ignore "${IT_PODMAN_CONTAINERS[@]}" >/dev/null 2>&1
    [ ${#IT_PODMAN_PODS[@]} -eq 0 ] ||
        timeout "$t" podman pod rm -f --ignore "${IT_PODMAN_PODS[@]}" >/dev/null 2>&1
    for l in "${IT_PODMAN_LABELS[@]}"; do
        ids=$(podman network ls -q --filter "label=$l" 2>/dev/null)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || timeout "$t" podman network rm -f $ids >/dev/null 2>&1
        ids=$(podman volume ls -q --filter "label=$l" 2>/dev/null)
        # shellcheck disable=SC2086
        [ -z "$ids" ] || timeout "$t" podman volume rm -f $ids >/dev/null 2>&1
    done
    [ ${#IT_PODMAN_NETWORKS[@]} -eq 0 ] ||
        timeout "$t" podman network rm -f "${IT_PODMAN_NETWORKS[@]}" >/dev/null 2>&1
    [ ${#IT_PODMAN_VOLUMES[@]} -eq 0 ] ||
        timeout "$t" podman volume rm -f "${IT_PODMAN_VOLUMES[@]}" >/dev/null 2>&1
    local img
    for img in "${IT_PODMAN_IMAGES[@]}"; do
        podman image exists "$img" 2>/dev/null || continue
        timeout "$t" podman rmi "$img" >/dev/null 2>&1 ||
            it_log "could not remove image $img"
    done
    return 0
}

# ---------------------------------------------------------------- base image

# it_debian_mirror: the first http(s) mirror of the apt sources that serves
# the suite (one-line .list and deb822 .sources formats).
it_debian_mirror() {
    if [ -n "${IT_DEBIAN_MIRROR:-}" ]; then
        printf '%s\n' "$IT_DEBIAN_MIRROR"
        return 0
    fi
    python3 - "$IT_BASE_SUITE" /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources <<'PY'
import re, sys
suite, files = sys.argv[1], sys.argv[2:]
def candidates():
    for path in files:
        try:
            text = open(path).read()
        except OSError:
            continue
        if path.endswith(".sources"):
            for para in re.split(r"\n\s*\n", text):
                f = {}
                for line in para.splitlines():
                    m = re.match(r"([A-Za-z-]+):\s*(.*)", line)
                    if m and not line.startswith("#"):
                        f[m.group(1).lower()] = m.group(2).split()
                if "deb" in f.get("types", []) and f.get("enabled", ["yes"])[0] != "no":
                    for uri in f.get("uris", []):
                        yield uri, f.get("suites", [])
        else:
            for line in text.splitlines():
                line = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(line) >= 3 and line[0] == "deb":
                    yield line[1], [line[2]]
for uri, suites in candidates():
    if suite in suites and re.match(r"https?://", uri):
        print(uri)
        sys.exit(0)
sys.exit(1)
PY
}

# it__base_build ROOTFS MIRROR TAG: the recipe of the base image.  Its text
# is part of the cache key: change it and a new image is built.
it__base_build() {
    local rootfs=$1 mirror=$2 tag=$3
    debootstrap --variant=minbase --arch="$(dpkg --print-architecture)" \
        "$IT_BASE_SUITE" "$rootfs" "$mirror" || return 1
    # no caches, no package lists (Dockerfiles run apt-get update), nothing
    # of this host but the mirror in /etc/apt/sources.list
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/log/* "$rootfs"/debootstrap
    : >"$rootfs/etc/resolv.conf"
    : >"$rootfs/etc/hostname"
    tar --numeric-owner -C "$rootfs" -c . |
        podman import --change 'CMD ["bash"]' \
            --message "debootstrap --variant=minbase $IT_BASE_SUITE" - "$tag" || return 1
}

it_base_key() {
    { printf '%s %s\n' "$IT_BASE_SUITE" "$(dpkg --print-architecture)"; declare -f it__base_build; } |
        sha256sum | cut -c1-12
}

it_base_image() {
    ((IT_PODMAN_READY)) || it_fail "it_base_image: call it_podman_init first"
    local tag start lockfd mirror rootfs log old
    tag=$IT_BASE_REPO:$(it_base_key)
    start=$(date +%s)
    IT_BASE_BUILT=0
    exec {lockfd}>"${TMPDIR:-/tmp}/heprouter-base-image.lock"
    flock -w 900 "$lockfd" || it_fail "it_base_image: another test has held the base image lock for 15 min"
    if ! podman image exists "$tag"; then
        command -v debootstrap >/dev/null 2>&1 ||
            it_cannot_run "debootstrap is not installed (Debian: debootstrap; scripts/deps.sh test installs it)"
        mirror=$(it_debian_mirror) ||
            it_cannot_run "no Debian mirror for $IT_BASE_SUITE in the apt sources (set IT_DEBIAN_MIRROR)"
        rootfs=$IT_TMP/base-rootfs
        log=$IT_TMP/base-image.log
        it_log "building the base image $tag (debootstrap --variant=minbase $IT_BASE_SUITE; about a minute)"
        if ! it__base_build "$rootfs" "$mirror" "$tag" >"$log" 2>&1; then
            rm -rf "$rootfs"
            it_fail "base image: $(grep -v '^ *$' "$log" | tail -n 5)"
        fi
        rm -rf "$rootfs"
        IT_BASE_BUILT=1
        # one cached base: older recipes' images go
        for old in $(podman images --format '{{.Repository}}:{{.Tag}}' "$IT_BASE_REPO" 2>/dev/null); do
            [ "$old" = "$tag" ] || podman rmi "$old" >/dev/null 2>&1 || true
        done
    fi
    podman tag "$tag" debian:12-slim || it_fail "podman tag $tag debian:12-slim"
    exec {lockfd}>&-
    IT_BASE_SECONDS=$(($(date +%s) - start))
    IT_BASE_IMAGE=$tag
    printf '%s\n' "$tag"
}

# ---------------------------------------------------------------- builds, API

it_podman_build() {
    local tag=$1 name log start
    shift
    name=${tag##*/}
    name=${name//[^A-Za-z0-9_.-]/_}
    log=$IT_TMP/build-$name.log
    it_podman_track image "$tag"
    start=$(date +%s)
    "${IT_PODMAN_BUILD[@]}" -t "$tag" "$@" >"$log" 2>&1 ||
        it_fail "podman build $tag: $(grep -v '^ *$' "$log" | tail -n 8)"
    IT_BUILD_SECONDS=$(($(date +%s) - start))
}

it_podman_api() {
    local sock=$IT_TMP/podman.sock
    it_start podman-api podman system service --time=0 "unix://$sock"
    export DOCKER_HOST=unix://$sock
    it_wait_until 30 it_podman_api_ready "$sock" ||
        it_fail "podman system service did not answer on $sock within 30 s: $(tail -n 3 "$IT_TMP/podman-api.err")"
}

it_podman_api_ready() {
    [ -S "$1" ] && python3 - "$1" 2>/dev/null <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
reply = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
sys.exit(0 if reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n")[0] else 1)
PY
}

it_podman_image_size() {
    podman image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f\n", $1 / 1000000 }'
}
