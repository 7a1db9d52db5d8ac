#!/usr/bin/env bash
# Debian package test (debian/): builds the heprouter .deb and installs,
# runs, removes and purges it in a Debian 12 container.
#
#  1. Build: the source tree, without .git, the build directories and what
#     autoreconf generates, is copied to the scratch directory and built
#     there with `dpkg-buildpackage -us -uc -b` (the tree itself is never
#     written); the .deb lands in the scratch directory.  Its contents are
#     checked: the three programs, four manual pages, the conffile
#     /etc/heprouter/heprouter.yaml, the systemd unit with the package's
#     paths, hepgen's captures, no path of the build directory.
#  2. lintian on the .changes: an error fails the test; every warning is
#     listed in the log.
#  3. In a container of the Debian 12 minbase image (podman.sh's
#     it_base_image), on the host network: the dependencies the .deb
#     declares are installed from the Debian mirror (apt-get satisfy), the
#     file system is recorded, then `apt-get install ./heprouter_*.deb`.
#     Checked: the heprouter system user and group, the conffile, the unit
#     enabled; the unit's ExecStartPre (`heprouter -t --check-store -c
#     /etc/heprouter/heprouter.yaml`) passes, run as heprouter.
#  4. Routing: heprouter runs as the heprouter user on the installed
#     configuration with only its addresses changed (listen on port 0; the
#     homer and voipmonitor destinations on two hepdump sinks of the host
#     build); the Kamailio capture v3/001-022 is replayed to it and each sink
#     must get exactly what the installed routes send it (homer everything,
#     voipmonitor the INVITE call 007-022), in order; then the packaged
#     hepgen sends calls built from its installed captures, counted the
#     same way; SIGTERM must end heprouter with status 0.
#  5. Reinstall (postinst again with the account present), remove (the
#     conffile stays), purge: the file system must be as recorded before
#     the install, and no file may belong to the heprouter account, which
#     is kept on purge by design (debian/heprouter.postinst).
#
#   BUILD_DIR=build bash tests/integration/test_package.sh
#
# Needs dpkg-dev, debhelper, lintian, podman (with runc where crun refuses
# the cgroups, see podman.sh), debootstrap and the package's Build-Depends
# (scripts/deps.sh test), the Debian mirror that apt uses on
# this machine (the container reaches it through the host network), and
# tools/hepdump in BUILD_DIR (the sinks).  A missing one is a failure.
# It takes about 3 minutes on 2 cores: the build with the unit tests 1.5,
# lintian 20 s, the container 1.5 (apt-get update about 15 s); building
# the base image, when no other test has, adds about one.  Some of it
# overlaps: the container starts and runs apt-get update while the package
# builds, and lintian runs while the container installs (its verdict is
# read before step 3's checks).
# Environment: DEB_BUILD_OPTIONS is passed on (nocheck skips the unit
# tests of the package build); IT_KEEP_TMP=1 keeps the scratch directory.
# dpkg-query formats and commands for the container's shell are in single
# quotes on purpose:
# shellcheck disable=SC2016
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"
# shellcheck source-path=SCRIPTDIR source=podman.sh
. "$HERE/podman.sh"

TIME_LIMIT=900          # the whole test, including a first base image build
BUILD_TIMEOUT=900       # dpkg-buildpackage
APT_TIMEOUT=300         # each apt-get in the container
ARRIVE_TIMEOUT=5        # seconds for routed packets to reach the sinks
CONF=/etc/heprouter/heprouter.yaml

it_init "$TIME_LIMIT"
it_require_cmd dpkg-buildpackage dpkg-parsechangelog dpkg-deb lintian podman python3 ss tar
it_bin tools/hepdump >/dev/null || exit 1
[ -d "$IT_DATA/v3" ] || it_fail "no captures in $IT_DATA"
it_podman_init

T0=$SECONDS
T_STEP=$SECONDS
step() {
    it_note "$* (previous step: $((SECONDS - T_STEP)) s)"
    T_STEP=$SECONDS
}

# ---------------------------------------------------------------- 1. build

VERSION=$(dpkg-parsechangelog -l "$IT_SRCDIR/debian/changelog" -S Version) ||
    it_fail "cannot read debian/changelog"
ARCH=$(dpkg --print-architecture)
SRC=$IT_TMP/heprouter-$VERSION
DEB=$IT_TMP/heprouter_${VERSION}_$ARCH.deb
CHANGES=$IT_TMP/heprouter_${VERSION}_$ARCH.changes

step "copy the source tree to $SRC"
mkdir "$SRC" || it_fail "mkdir $SRC"
# What a clone holds: no .git, no build directories, nothing autoreconf or
# an in-tree configure makes (the package build runs autoreconf), no
# products of an earlier package build.
tar -C "$IT_SRCDIR" -c \
    --exclude=./.git --exclude=./build --exclude='./build-*' --exclude=./autom4te.cache \
    --exclude=./configure --exclude='./configure~' --exclude=./aclocal.m4 \
    --exclude=./Makefile.in --exclude=./config.h.in --exclude='./config.h.in~' \
    --exclude=./Makefile --exclude=./config.h --exclude=./config.log \
    --exclude=./config.status --exclude=./stamp-h1 --exclude='./heprouter-*' \
    --exclude=.deps --exclude=.dirstamp --exclude='*.o' --exclude='*.a' \
    --exclude=__pycache__ --exclude=node_modules \
    --exclude=./debian/heprouter --exclude=./debian/.debhelper --exclude=./debian/files \
    --exclude=./debian/debhelper-build-stamp --exclude='./debian/*.substvars' \
    --exclude='./debian/*.debhelper' --exclude='./debian/*.debhelper.log' \
    --exclude=./debian/heprouter.service \
    . | tar -C "$SRC" -x || it_fail "copying the source tree failed"

# ---------------------------------------------------------------- the container, early

# The container and its apt-get update need only the base image: they run
# while the package builds (network against CPU), and are waited for
# before step 3.
step "base image (podman.sh)"
it_base_image >/dev/null
IMAGE=$IT_BASE_IMAGE
it_note "base image: $IMAGE ($( ((IT_BASE_BUILT)) && echo "built now in $IT_BASE_SECONDS s" || echo cached))"

SHARE=$IT_TMP/share     # /it in the container: the .deb, heprouter's config, ready and pid files
mkdir -m 1777 "$SHARE" || it_fail "mkdir $SHARE"
chmod 1777 "$SHARE"
CTR=heprouter-test-package-$$

it_podman_track container "$CTR"      # removed at exit (podman.sh)

step "container $CTR ($IMAGE, host network); apt-get update in the background (log: apt-update.log)"
podman run -d --rm --pull never --name "$CTR" --network host -v "$SHARE:/it" \
    "$IMAGE" sleep "$TIME_LIMIT" >"$IT_TMP/podman-run.log" 2>&1 ||
    it_fail "podman run failed: $(cat "$IT_TMP/podman-run.log")"
it_start apt-update timeout -k 2 "$APT_TIMEOUT" podman exec -e DEBIAN_FRONTEND=noninteractive \
    -e LC_ALL=C.UTF-8 "$CTR" apt-get update
APT_UPDATE_PID=$IT_PID

step "dpkg-buildpackage -us -uc -b (log: build.log)"
build_opts=${DEB_BUILD_OPTIONS:-}
[[ $build_opts == *parallel=* ]] || build_opts+="${build_opts:+ }parallel=$(nproc)"
if ! (cd "$SRC" && DEB_BUILD_OPTIONS=$build_opts it_run "$BUILD_TIMEOUT" \
        dpkg-buildpackage -us -uc -b) >"$IT_TMP/build.log" 2>&1; then
    tail -n 40 "$IT_TMP/build.log" | sed 's/^/    /'
    it_fail "dpkg-buildpackage failed (DEB_BUILD_OPTIONS=$build_opts); log: $IT_TMP/build.log"
fi
[ -f "$DEB" ] || it_fail "no $DEB after the build"
[ -f "$CHANGES" ] || it_fail "no $CHANGES after the build"
it_note "built $(basename "$DEB"): $(stat -c %s "$DEB") bytes (DEB_BUILD_OPTIONS=$build_opts)"

step "the .deb's contents"
dpkg-deb -I "$DEB" | sed 's/^/    /'
dpkg-deb -c "$DEB" >"$IT_TMP/contents.txt" || it_fail "dpkg-deb -c failed"
sed 's/^/    /' "$IT_TMP/contents.txt"
for f in ./usr/bin/heprouter ./usr/bin/hepdump ./usr/bin/hepgen ./etc/heprouter/heprouter.yaml \
    ./usr/share/man/man8/heprouter.8.gz ./usr/share/man/man5/heprouter.yaml.5.gz \
    ./usr/share/man/man1/hepdump.1.gz ./usr/share/man/man1/hepgen.1.gz \
    ./usr/share/heprouter/captures/v3/022.hep ./usr/share/doc/heprouter/copyright; do
    awk -v f="$f" '$6 == f { found = 1 } END { exit !found }' "$IT_TMP/contents.txt" ||
        it_fail "the .deb has no $f"
done
grep -Eq ' \./(usr/)?lib/systemd/system/heprouter\.service$' "$IT_TMP/contents.txt" ||
    it_fail "the .deb has no lib/systemd/system/heprouter.service"
mkdir "$IT_TMP/deb-control" "$IT_TMP/deb-root"
if ! dpkg-deb -e "$DEB" "$IT_TMP/deb-control" || ! dpkg-deb -x "$DEB" "$IT_TMP/deb-root"; then
    it_fail "cannot unpack $DEB"
fi
grep -qx "$CONF" "$IT_TMP/deb-control/conffiles" ||
    it_fail "$CONF is not a conffile (conffiles: $(tr '\n' ' ' <"$IT_TMP/deb-control/conffiles"))"
if grep -rlF "$IT_TMP" "$IT_TMP/deb-root"; then
    it_fail "the files above hold a path of the build directory ($IT_TMP)"
fi
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
grep -Eq '(^|, )adduser(,|$)' <<<"$DEPENDS" || it_fail "Depends lacks adduser: $DEPENDS"
grep -q 'libev4' <<<"$DEPENDS" || it_fail "Depends lacks the shared libraries (\${shlibs:Depends}): $DEPENDS"

# ---------------------------------------------------------------- 2. lintian

# lintian (CPU) runs while the container installs packages (network); its
# verdict is read after the install (lintian_verdict).
step "lintian $(basename "$CHANGES"), in the background"
lintian --version | sed 's/^/    /'
it_start lintian timeout -k 2 600 lintian --fail-on error "$CHANGES"
LINTIAN_PID=$IT_PID
lintian_verdict() {
    it_wait_exit "$LINTIAN_PID" 600
    cat "$IT_TMP/lintian.out" "$IT_TMP/lintian.err" >"$IT_TMP/lintian.txt"
    sed 's/^/    lintian: /' "$IT_TMP/lintian.txt"
    it_note "lintian: $(grep -c '^E: ' "$IT_TMP/lintian.txt") error(s), $(grep -c '^W: ' "$IT_TMP/lintian.txt") warning(s)"
    ((IT_STATUS == 0)) || it_fail "lintian failed (exit status $IT_STATUS): an error, or it could not run"
}

# ---------------------------------------------------------------- 3. install

cp "$DEB" "$SHARE/" || it_fail "cp $DEB"
CDEB=/it/$(basename "$DEB")

# cx ARG...: runs in the container, as root.
cx() {
    podman exec -e DEBIAN_FRONTEND=noninteractive -e LC_ALL=C.UTF-8 "$CTR" "$@"
}

# cx_log NAME TIMEOUT ARG...: cx with its output in $IT_TMP/NAME.log,
# shown (the end) when it fails.
cx_log() {
    local name=$1 timeout=$2
    shift 2
    if ! it_run "$timeout" podman exec -e DEBIAN_FRONTEND=noninteractive -e LC_ALL=C.UTF-8 \
            "$CTR" "$@" >"$IT_TMP/$name.log" 2>&1; then
        tail -n 25 "$IT_TMP/$name.log" | sed 's/^/    /'
        it_fail "in the container: $* failed (log: $IT_TMP/$name.log)"
    fi
}

# no_script_errors NAME: a maintainer script's complaint in $IT_TMP/NAME.log
# ("heprouter.postinst: 3: x: not found") does not always fail dpkg; it
# fails the test.
no_script_errors() {
    if grep '/var/lib/dpkg/info/heprouter\.' "$IT_TMP/$1.log"; then
        it_fail "$1: heprouter's maintainer scripts printed the errors above"
    fi
}

# snapshot: every path of the container's root file system with its type,
# mode and owner; the directories that change by themselves (logs, caches,
# apt's lists, dpkg's database, which is checked apart) are left out.
snapshot() {
    cx find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
        -o -path /var/tmp -o -path /var/log -o -path /var/cache -o -path /var/lib/apt \
        -o -path /var/lib/dpkg \) -prune -o -printf '%p %y %m %u:%g\n' | LC_ALL=C sort
}

step "apt-get update (started before the build); apt-get satisfy the .deb's Depends: $DEPENDS"
it_wait_exit "$APT_UPDATE_PID" "$APT_TIMEOUT"
if ((IT_STATUS != 0)); then
    cat "$IT_TMP/apt-update.out" "$IT_TMP/apt-update.err" | tail -n 25 | sed 's/^/    /'
    it_fail "in the container: apt-get update failed (exit status $IT_STATUS)"
fi
cx_log apt-satisfy "$APT_TIMEOUT" apt-get satisfy -y --no-install-recommends "$DEPENDS"
snapshot >"$IT_TMP/fs-before.txt" || it_fail "cannot list the container's files"

step "apt-get install $CDEB"
cx_log apt-install "$APT_TIMEOUT" apt-get install -y --no-install-recommends "$CDEB"
sed 's/^/    /' "$IT_TMP/apt-install.log" | grep -v '^    \(Get\|Reading\|Building\)' || true
no_script_errors apt-install
status=$(cx dpkg-query -W -f='${db:Status-Abbrev} ${Version}' heprouter)
[ "$status" = "ii  $VERSION" ] || it_fail "dpkg-query heprouter: \"$status\", expected \"ii  $VERSION\""
cx dpkg-query -W -f='${Conffiles}\n' heprouter | grep -q "^ $CONF " ||
    it_fail "dpkg does not record $CONF as a conffile"

step "lintian's verdict"
lintian_verdict

step "the heprouter account, the unit, heprouter -t"
pw=$(cx getent passwd heprouter) || it_fail "no heprouter user after the install"
gr=$(cx getent group heprouter) || it_fail "no heprouter group after the install"
it_note "account: $pw; group: $gr"
IFS=: read -r _ _ hr_uid hr_gid _ hr_home hr_shell <<<"$pw"
((hr_uid < 1000)) || it_fail "heprouter is not a system user (uid $hr_uid)"
[ "$hr_gid" = "$(cut -d: -f3 <<<"$gr")" ] || it_fail "heprouter's primary group is not the heprouter group"
[ "$hr_home" = /nonexistent ] || it_fail "heprouter's home is $hr_home, expected /nonexistent"
[ "$hr_shell" = /usr/sbin/nologin ] || it_fail "heprouter's shell is $hr_shell, expected /usr/sbin/nologin"

unit=$(cx dpkg -L heprouter | grep -E '/systemd/system/heprouter\.service$') ||
    it_fail "dpkg -L heprouter lists no heprouter.service"
cx cat "$unit" >"$IT_TMP/heprouter.service" || it_fail "cannot read $unit"
sed -n 's/^\(User\|Group\|ExecStartPre\|ExecStart\)=/    &/p' "$IT_TMP/heprouter.service"
grep -qx 'User=heprouter' "$IT_TMP/heprouter.service" || it_fail "$unit: no User=heprouter"
grep -qx "ExecStart=/usr/bin/heprouter -c $CONF" "$IT_TMP/heprouter.service" ||
    it_fail "$unit: ExecStart is not \"/usr/bin/heprouter -c $CONF\""
cx test -L /etc/systemd/system/multi-user.target.wants/heprouter.service ||
    it_fail "the unit is not enabled (no multi-user.target.wants/heprouter.service link)"

# The unit's own check, as the unit runs it (User=heprouter).
pre=$(sed -n 's/^ExecStartPre=//p' "$IT_TMP/heprouter.service")
[[ $pre == "/usr/bin/heprouter -t "*" $CONF" ]] || it_fail "$unit: unexpected ExecStartPre=$pre"
read -ra pre_argv <<<"$pre"
out=$(it_run 20 podman exec --user heprouter "$CTR" "${pre_argv[@]}" 2>&1)
rc=$?
it_note "as heprouter: $pre -> exit $rc: $out"
if ((rc != 0)) || ! grep -q 'configuration OK' <<<"$out"; then
    it_fail "heprouter -t refuses the installed configuration"
fi
out=$(cx heprouter -V 2>&1) || it_fail "heprouter -V: $out"
it_note "heprouter -V: $out"
cx hepgen -h 2>&1 | grep -q -- '--data DIR .*(default /usr/share/heprouter/captures)' ||
    it_fail "hepgen's default captures directory is not /usr/share/heprouter/captures: $(cx hepgen -h 2>&1 | grep -- --data)"
cx hepdump -h >/dev/null 2>&1 || it_fail "hepdump -h failed in the container"

# ---------------------------------------------------------------- 4. routing

step "heprouter as the heprouter user, the installed routes, two sinks"
it_start_sink homer
it_start_sink voipmonitor
cx cat "$CONF" >"$IT_TMP/installed.yaml" || it_fail "cannot read $CONF"
# The installed file with its addresses changed, nothing else.
sed -e 's|"udp:127\.0\.0\.1:9060"|"udp:127.0.0.1:0"|' \
    -e 's|"tcp:127\.0\.0\.1:9060"|"tcp:127.0.0.1:0"|' \
    -e "s|\"udp:127\\.0\\.0\\.1:9061\"|\"${SINK_ADDR[homer]}\"|" \
    -e "s|\"udp:127\\.0\\.0\\.1:9062\"|\"${SINK_ADDR[voipmonitor]}\"|" \
    "$IT_TMP/installed.yaml" >"$SHARE/router.yaml"
changed=$(diff "$IT_TMP/installed.yaml" "$SHARE/router.yaml" | grep -c '^>')
if ((changed != 3)) || grep -q ':906[012]"' "$SHARE/router.yaml"; then
    diff "$IT_TMP/installed.yaml" "$SHARE/router.yaml" | sed 's/^/    /'
    it_fail "$CONF no longer has the listen line and the homer and voipmonitor targets on 127.0.0.1:9060-9062 this test rewrites ($changed line(s) changed)"
fi
diff "$IT_TMP/installed.yaml" "$SHARE/router.yaml" | sed 's/^/    /'

# sh records its pid and becomes heprouter (exec): /it/router.pid is heprouter's.
it_start router podman exec --user heprouter "$CTR" sh -c \
    'echo $$ >/it/router.pid && exec heprouter -c /it/router.yaml --ready-file /it/router.ready'
ROUTER_CLIENT=$IT_PID
it_wait_until 10 it_ready_or_dead "$SHARE/router.ready" "$ROUTER_CLIENT" || true
[ -s "$SHARE/router.ready" ] || it_fail "heprouter did not start in the container: $(tail -n 5 "$IT_TMP/router.err")"
udp_port=$(it_listen_port "$SHARE/router.ready" udp) || exit 1
hr_pid=$(cat "$SHARE/router.pid")
run_uid=$(cx sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$hr_pid/status")
[ "$run_uid" = "$hr_uid" ] || it_fail "heprouter runs as uid $run_uid, not heprouter ($hr_uid)"
it_note "heprouter pid $hr_pid (in the container) runs as uid $run_uid (heprouter), listens on udp:127.0.0.1:$udp_port"

# expect NAME ITEM...: the sink got exactly these, in order.
expect() {
    local name=$1
    shift
    "${IT_REPLAY[@]}" check --sink "$name" --json "$IT_TMP/$name.json" "$@" | sed 's/^/    /'
    ((PIPESTATUS[0] == 0)) || it_fail "sink $name did not get what the installed routes send it"
}

# shellcheck disable=SC2046  # the item list is split on purpose
it_run 20 "${IT_REPLAY[@]}" send "udp:127.0.0.1:$udp_port" $(it_seq_items v3 1 22) ||
    it_fail "hepreplay send failed"
"${IT_REPLAY[@]}" wait --timeout "$ARRIVE_TIMEOUT" --settle-ms 100 \
    "$IT_TMP/homer.json=22" "$IT_TMP/voipmonitor.json=16"
# shellcheck disable=SC2046
expect homer $(it_seq_items v3 1 22)
# shellcheck disable=SC2046
expect voipmonitor $(it_seq_items v3 7 22)

step "the packaged hepgen (its installed captures) through the same heprouter"
gen=$(it_run 30 podman exec "$CTR" hepgen -d "udp:127.0.0.1:$udp_port" -n 60 -r 2000 --prefix pkgtest -q) ||
    it_fail "hepgen failed in the container: $gen"
it_note "hepgen: $gen"
sent=$(sed -n 's/.*"sent":\([0-9]*\).*/\1/p' <<<"$gen")
sent_invite=$(sed -n 's/.*"packets":{"invite":\([0-9]*\).*/\1/p' <<<"$gen")
if [ -z "$sent" ] || [ -z "$sent_invite" ] || ((sent == 0)); then
    it_fail "hepgen sent nothing: $gen"
fi
"${IT_REPLAY[@]}" wait --timeout "$ARRIVE_TIMEOUT" --settle-ms 100 \
    "$IT_TMP/homer.json=$((22 + sent))" "$IT_TMP/voipmonitor.json=$((16 + sent_invite))"

cx sh -c 'kill -TERM "$(cat /it/router.pid)"' || it_fail "cannot signal heprouter in the container"
it_wait_exit "$ROUTER_CLIENT" 15
((IT_STATUS == 0)) || it_fail "heprouter exited with status $IT_STATUS after SIGTERM"
[ ! -e "$SHARE/router.ready" ] || it_fail "heprouter left its ready file"
sleep 0.1
"${IT_REPLAY[@]}" stats --log "$IT_TMP/router.err" "packets_in=$((22 + sent))" \
    "destinations.homer.packets=$((22 + sent))" \
    "destinations.voipmonitor.packets=$((16 + sent_invite))" | sed 's/^/    /'
((PIPESTATUS[0] == 0)) || it_fail "heprouter's counters at exit differ"
for sink in homer=$((22 + sent)) voipmonitor=$((16 + sent_invite)); do
    n=$(grep -vc '^{"packets":' "$IT_TMP/${sink%=*}.json")
    ((n == ${sink#*=})) || it_fail "sink ${sink%=*} got $n packets, expected ${sink#*=}"
done

# ---------------------------------------------------------------- 5. remove, purge

step "reinstall, remove, purge"
cx_log reinstall "$APT_TIMEOUT" dpkg -i "$CDEB"
no_script_errors reinstall
cx_log apt-remove "$APT_TIMEOUT" apt-get remove -y heprouter
no_script_errors apt-remove
status=$(cx dpkg-query -W -f='${db:Status-Abbrev}' heprouter)
[ "$status" = "rc " ] || it_fail "after remove: dpkg-query says \"$status\", expected \"rc \""
cx test -f "$CONF" || it_fail "remove deleted the conffile $CONF"
! cx test -e /usr/bin/heprouter || it_fail "remove left /usr/bin/heprouter"
cx_log apt-purge "$APT_TIMEOUT" apt-get purge -y heprouter
no_script_errors apt-purge
status=$(cx dpkg-query -W -f='${db:Status-Abbrev}' heprouter 2>/dev/null)
[ -z "$status" ] || [ "$status" = "un " ] || [ "$status" = "pn " ] ||
    it_fail "after purge: dpkg-query says \"$status\""
left=$(cx sh -c 'ls -d /var/lib/dpkg/info/heprouter.* 2>/dev/null') || true
[ -z "$left" ] || it_fail "after purge, dpkg's database keeps: $left"

snapshot >"$IT_TMP/fs-after.txt" || it_fail "cannot list the container's files"
# The account stays, by design, and with it the backups of the account
# files that adduser (useradd, groupadd) made: /etc/passwd- and the others.
diff "$IT_TMP/fs-before.txt" "$IT_TMP/fs-after.txt" |
    grep '^[<>]' | grep -Ev '^[<>] /etc/(passwd|group|shadow|gshadow)- ' >"$IT_TMP/fs-diff.txt"
if [ -s "$IT_TMP/fs-diff.txt" ]; then
    sed 's/^/    /' "$IT_TMP/fs-diff.txt"
    it_fail "the purge left the file system different from before the install (> left, < gone)"
fi
owned=$(cx find / -xdev \( -user heprouter -o -group heprouter \) -print)
[ -z "$owned" ] || it_fail "files of the heprouter account after the purge: $owned"
pw=$(cx getent passwd heprouter) || pw="(none)"
it_note "after the purge: no file of the package, none of the account; the account stays: $pw"

step "done"
it_note "package test passed in $((SECONDS - T0)) s"
