#!/usr/bin/env bash
# Install what is missing, build, run every test, and end with one line:
#
#     N passed, N failed, N skipped
#
# Exit 0 iff nothing failed and something passed.
#
# Environment:
#   BUILD_DIR        build directory (default: build, in the source tree)
#   RPFS_MESON_OPTS  extra `meson setup` options for the main build
#   RPFS_SANITIZE    1 (default): also build BUILD_DIR-san with
#                    -Db_sanitize=address,undefined and run the suite there
#                    (sanitizer reports exit 86 and fail the test); 0: skip
#   RPFS_NO_INSTALL  set to 1 to skip the dependency check
#   MESON_TEST_OPTS  extra `meson test` options, e.g. "--suite integration"
#   RPFS_AZURITE     1 (default): install and start Azurite for the Azure tests;
#                    0: do not (they skip)
#   CI               true: a skipped test, or a skipped part of one, fails the
#                    run, unless the machine lacks a facility no package can
#                    add (root, /dev/fuse, loop devices, permission to mount:
#                    the test says "SKIP (facility)")
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
# Debian's programs (the ones installed below) before whatever else PATH
# holds: tests/integration/lib.sh says why.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
BUILD_DIR=${BUILD_DIR:-build}

T0=$(date +%s)
say() { printf 'run.sh: [%4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
finish() {  # PASSED FAILED SKIPPED
    echo "$1 passed, $2 failed, $3 skipped"
    if (( $2 == 0 && $1 > 0 )); then exit 0; fi
    exit 1
}

# --- dependencies ---------------------------------------------------------------
# Every program a test or helper runs comes from one of these (the build's
# libraries first). Tests say "SKIP: X not installed" for a program missing
# here; under CI=true that fails the run.
. tools/deps.sh
DEPS=("${BUILD_DEPS[@]}"
      qemu-utils      # qemu-img: qcow2, vhdx, vmdk, vpc images
      e2fsprogs       # mkfs.ext4, debugfs, chattr
      util-linux mount bsdutils  # losetup, findmnt, fallocate, mountpoint, mount, script
      coreutils diffutils findutils gawk sed grep
      python3 curl rsync openssl strace
      rclone          # test-azure: an independent Azure Blob client
      faketime        # a skewed clock (rpfs status)
      groff-base systemd    # the man page's check, systemd-analyze verify of examples/systemd
      fdisk xfsprogs dosfstools mtools   # sfdisk, mkfs.xfs, mkfs.vfat, mcopy: partitions of a point
      nbdkit libnbd-bin python3-libnbd   # nbdkit, nbdsh, nbdinfo: the NBD export's test
      thin-provisioning-tools            # thin_restore, thin_delta: unit test thin-delta
      passwd                             # useradd, userdel: test-mount-access's unprivileged user
      zstd                               # test-reprotect: the compressed size of changed blocks
      gdb)                               # tests/stress/unmount.sh: stacks of a hung daemon

if [[ ${RPFS_NO_INSTALL:-0} != 1 ]]; then
    deps_install "${DEPS[@]}" || { say "apt-get install failed"; finish 0 1 0; }
fi

# promtool (test-status checks rpfs status's Prometheus textfile with it) comes
# in Debian's prometheus package, whose installation would also start a
# Prometheus server listening on every address: only the package's files are
# unpacked, into tests/.tools (git-ignored), and nothing is started.
install_promtool() {
    local dir=$PWD/tests/.tools deb
    command -v promtool >/dev/null 2>&1 && return 0
    if [[ ! -x $dir/root/usr/bin/promtool ]]; then
        mkdir -p "$dir/deb" && rm -f "$dir"/deb/prometheus_*.deb
        (cd "$dir/deb" && apt-get download prometheus >/dev/null 2>&1) || { say "apt-get download prometheus failed"; return 1; }
        deb=$(ls "$dir"/deb/prometheus_*.deb 2>/dev/null | head -1)
        [[ -n $deb ]] && dpkg-deb -x "$deb" "$dir/root" || { say "cannot unpack $deb"; return 1; }
    fi
    export PATH=$PATH:$dir/root/usr/bin
}
if [[ ${RPFS_NO_INSTALL:-0} != 1 ]]; then
    install_promtool || say "promtool unavailable: test-status will skip its promtool check"
fi

# --- Azurite: the Azure Blob emulator for the Azure backend's tests -------------
# Installed from npm (pinned) into tests/.azurite when missing, started on a free
# loopback port with a temporary data directory, stopped (by PID) on exit, also
# on failure.  Tests find it through RPFS_AZURITE_* and skip when it is absent.
AZURITE_VERSION=3.37.0
AZURITE_DIR=$PWD/tests/.azurite
AZURITE_BIN=$AZURITE_DIR/node_modules/.bin/azurite-blob
AZURITE_PID= AZURITE_DATA=

install_azurite() {
    local have
    have=$(node -p "require('$AZURITE_DIR/node_modules/azurite/package.json').version" 2>/dev/null) || have=
    [[ -x $AZURITE_BIN && $have == "$AZURITE_VERSION" ]] && return 0
    if ! command -v npm >/dev/null; then
        [[ ${RPFS_NO_INSTALL:-0} == 1 ]] && return 1
        deps_install nodejs npm || return 1
    fi
    say "installing azurite $AZURITE_VERSION into $AZURITE_DIR"
    mkdir -p "$AZURITE_DIR" &&
        npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error \
            "azurite@$AZURITE_VERSION" >&2
}

stop_azurite() {
    if [[ -n $AZURITE_PID ]]; then
        kill -TERM "$AZURITE_PID" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$AZURITE_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$AZURITE_PID" 2>/dev/null
        wait "$AZURITE_PID" 2>/dev/null
        AZURITE_PID=
    fi
    [[ -n $AZURITE_DATA ]] && rm -rf -- "$AZURITE_DATA"
    AZURITE_DATA=
}

start_azurite() {
    local port i
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') ||
        return 1
    AZURITE_DATA=$(mktemp -d "${TMPDIR:-/tmp}/rpfs-azurite.XXXXXX") || return 1
    # --blobHost 127.0.0.1: loopback only.  --silent: no access log.
    "$AZURITE_BIN" --blobHost 127.0.0.1 --blobPort "$port" --location "$AZURITE_DATA" \
        --disableTelemetry --silent >"$AZURITE_DATA/azurite.log" 2>&1 &
    AZURITE_PID=$!
    for i in $(seq 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/devstoreaccount1?comp=list"; then
            export RPFS_AZURITE_BIN=$AZURITE_BIN
            export RPFS_AZURITE_ENDPOINT=http://127.0.0.1:$port/devstoreaccount1
            # The emulator's well-known development account (public).
            export RPFS_AZURITE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=$RPFS_AZURITE_ENDPOINT;"
            say "azurite listening on 127.0.0.1:$port (pid $AZURITE_PID)"
            return 0
        fi
        kill -0 "$AZURITE_PID" 2>/dev/null || break
        sleep 0.2
    done
    say "azurite did not start: $(tail -5 "$AZURITE_DATA/azurite.log" 2>/dev/null)"
    stop_azurite
    return 1
}

# Test images every test builds alike (lib.sh's make_tree_image), made once
# for the run; removed on exit.
RPFS_TEST_CACHE=$(mktemp -d "${TMPDIR:-/tmp}/rpfs-test-cache.XXXXXX") || { say "mktemp failed"; finish 0 1 0; }
export RPFS_TEST_CACHE
on_exit() {
    [[ -n ${AZ_INSTALL_PID:-} ]] && kill "$AZ_INSTALL_PID" 2>/dev/null
    stop_azurite
    [[ -n ${RPFS_TEST_CACHE:-} ]] && rm -rf -- "$RPFS_TEST_CACHE"
}
trap on_exit EXIT
trap 'exit 130' INT TERM
# Azurite's npm install (tens of seconds, mostly waiting on the registry)
# runs in the background while the builds below use the CPU.
AZ_INSTALL_PID= AZ_INSTALL_LOG=
if [[ ${RPFS_AZURITE:-1} == 1 ]]; then
    AZ_INSTALL_LOG=$(mktemp "${TMPDIR:-/tmp}/rpfs-azurite-install.XXXXXX")
    install_azurite >"$AZ_INSTALL_LOG" 2>&1 &
    AZ_INSTALL_PID=$!
fi
# Wait for that install, then start Azurite.
azurite_up() {
    [[ -n $AZ_INSTALL_PID ]] || return 0
    if wait "$AZ_INSTALL_PID"; then
        cat "$AZ_INSTALL_LOG" >&2
        start_azurite || say "Azure tests will skip"
    else
        cat "$AZ_INSTALL_LOG" >&2
        say "azurite could not be installed; Azure tests will skip"
    fi
    rm -f -- "$AZ_INSTALL_LOG"
    AZ_INSTALL_PID=
}

# --- build and test ---------------------------------------------------------------
# build DIR [meson setup options...]: configure and compile DIR. Both
# builds are made before any test runs (while Azurite installs).
# run_tests DIR LOGBASE [meson test options...]: run DIR's tests, logged in
# DIR/meson-logs/LOGBASE.json; tally DIR LOGBASE STATUS adds the results
# from that log to the totals.
passed=0 failed=0 skipped=0
REPORT=$(mktemp "${TMPDIR:-/tmp}/rpfs-run.XXXXXX")
declare -A BUILT=()
build() {
    local dir=$1; shift
    if [[ -f $dir/meson-private/coredata.dat ]]; then
        meson setup --reconfigure "$dir" "$@" >/dev/null || { say "meson setup $dir failed"; return 1; }
    else
        meson setup "$dir" "$@" >/dev/null || { say "meson setup $dir failed"; return 1; }
    fi
    meson compile -C "$dir" || { say "build in $dir failed"; return 1; }
    BUILT[$dir]=1
    say "built $dir"
}
run_tests() {
    local dir=$1 base=$2; shift 2
    rm -f "$dir/meson-logs/$base.json"
    [[ -n ${BUILT[$dir]:-} ]] || return 1
    meson test -C "$dir" --print-errorlogs --logbase "$base" "$@"
}
tally() {
    local dir=$1 base=$2 mrc=$3 log=$1/meson-logs/$2.json p f s w
    if [[ -z ${BUILT[$dir]:-} ]]; then
        failed=$((failed + 1)); return
    fi
    if [[ ! -f $log ]]; then
        say "meson test in $dir wrote no $log (exit $mrc)"
        failed=$((failed + 1)); return
    fi
    read -r p f s w < <(python3 tests/testlog.py "$log" "$dir" "$REPORT") ||
        { say "cannot read $log"; failed=$((failed + 1)); return; }
    if (( mrc != 0 && f == 0 )); then
        say "meson test in $dir exited $mrc with no failed test recorded"
        f=1
    fi
    say "$dir ($base): $p passed, $f failed, $s skipped (tests ran for $w s)"
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

# shellcheck disable=SC2086
build "$BUILD_DIR" ${RPFS_MESON_OPTS:-}
SAN_DIR=
if [[ ${RPFS_SANITIZE:-1} == 1 ]]; then
    SAN_DIR=$BUILD_DIR-san
    build "$SAN_DIR" -Db_sanitize=address,undefined -Db_lundef=false
fi
azurite_up

# Everything but suite 'alone', with both builds' tests of suite 'alone'
# after it: those bound how long an operation takes and mostly wait out
# timeouts, so the two builds' run side by side, and nothing else does.
# With MESON_TEST_OPTS (a selection of tests), meson alone decides: one
# run per build, its non-parallel tests each alone.
ALONE=(--no-suite alone)
[[ -n ${MESON_TEST_OPTS:-} ]] && ALONE=()
# shellcheck disable=SC2086
run_tests "$BUILD_DIR" testlog ${MESON_TEST_OPTS:-} "${ALONE[@]}"
tally "$BUILD_DIR" testlog $?

if [[ -n $SAN_DIR ]]; then
    # A sanitizer report exits 86, which no test expects: expected-failure
    # checks (exit 1 or 2) cannot hide it.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-exitcode=86:detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:exitcode=86:print_stacktrace=1}
    # The Azurite variants of the vault, mount and failback tests (suite
    # azurite) run in the plain pass only: the sanitizers see the Azure code
    # through test-azure*.sh, and the suite stays within its time budget;
    # so do the long repeating tests of suite slow (tests/integration/meson.build).
    SAN_SKIP=(--no-suite azurite --no-suite slow)
    # shellcheck disable=SC2086
    run_tests "$SAN_DIR" testlog ${MESON_TEST_OPTS:-} "${SAN_SKIP[@]}" "${ALONE[@]}"
    tally "$SAN_DIR" testlog $?
fi

if (( ${#ALONE[@]} )); then
    run_tests "$BUILD_DIR" alone --suite alone &
    alone_plain=$!
    if [[ -n $SAN_DIR ]]; then
        run_tests "$SAN_DIR" alone "${SAN_SKIP[@]}" --suite alone &
        alone_san=$!
    fi
    wait "$alone_plain"
    tally "$BUILD_DIR" alone $?
    if [[ -n $SAN_DIR ]]; then
        wait "$alone_san"
        tally "$SAN_DIR" alone $?
    fi
fi

# Name every test that did not pass, and every skipped part, with its
# reason. Under CI=true a skip for anything but a missing facility fails
# the run (the counts stay what testlog.json says).
ci_bad=0
while IFS=$'\t' read -r kind dir name why; do
    case $kind in
        fail)          say "FAILED: $dir: $name: $why" ;;
        facility)      say "skipped (the machine lacks a facility): $dir: $name: $why" ;;
        part-facility) say "part skipped (the machine lacks a facility): $dir: $name: $why" ;;
        skip)          say "SKIPPED: $dir: $name: $why"; ci_bad=$((ci_bad + 1)) ;;
        part)          say "PART SKIPPED: $dir: $name: $why"; ci_bad=$((ci_bad + 1)) ;;
    esac
done <"$REPORT"
rm -f "$REPORT"
say "done in $(( $(date +%s) - T0 )) s"
if [[ ${CI:-} == true ]] && (( ci_bad > 0 )); then
    say "CI=true: $ci_bad skip(s) of something tests/run.sh provides: the run fails"
    echo "$passed passed, $failed failed, $skipped skipped"
    exit 1
fi
finish "$passed" "$failed" "$skipped"
