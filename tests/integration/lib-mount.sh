# shellcheck shell=bash
# Helpers for the tests of `rpfs mount` (FUSE).  Source after lib.sh:
#
#     . "$(dirname "$0")/lib.sh"
#     . "$(dirname "$0")/lib-mount.sh"
#     need_fuse
#
# Every mount a test makes is registered: on exit, pass or fail, it is
# unmounted (fusermount3 -u, lazily with -uz when busy) and its daemon is
# waited for, then stopped if it lingers, before lib.sh removes $T.
#
#   mount_fg VAULT MNT [ARGS]   `rpfs mount -f` in the background, log in $MLOG,
#                               PID in $MPID; returns once MNT is mounted
#   mount_bg VAULT MNT [ARGS]   `rpfs mount` (daemonizes); MNT must be mounted
#                               when it returns; daemon PID in $MPID
#   unmount MNT                 fusermount3 -u, wait for the daemon; its exit
#                               status (mount_fg only) in $UMOUNT_RC
#   stats MNT                   MNT/.rpfs/stats into the array ST[...]
#   mounted DIR                 DIR is a FUSE mount point

MH=(python3 "$(dirname "${BASH_SOURCE[0]}")/mount_helper.py")
# shellcheck disable=SC2034  # used by the tests
BS=65536  # the vault block size the tests use (rpfs init default)

# need_fuse: skip (77) without /dev/fuse or fusermount3.
need_fuse() {
    [[ -e /dev/fuse ]] || skip_facility "/dev/fuse is missing"
    command -v fusermount3 >/dev/null 2>&1 || skip "fusermount3 not installed"
    [[ -r /dev/fuse && -w /dev/fuse ]] || skip_facility "no read/write access to /dev/fuse"
    need python3 findmnt
}

mounted() { [[ $(findmnt -rn -M "$1" -o FSTYPE 2>/dev/null) == fuse* ]]; }

# _alive PID: running (a zombie, exited but not yet reaped, is not alive).
_alive() {
    local s
    s=$(sed -E 's/.*\) (.) .*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $s && $s != Z ]]
}
# _wait_gone PID SECONDS
_wait_gone() {
    local i n=$(( $2 * 10 ))
    for (( i = 0; i < n; i++ )); do
        _alive "$1" || return 0
        sleep 0.1
    done
    ! _alive "$1"
}

# A read stuck in the kernel (D state, e.g. waiting for a FUSE reply that
# never comes) cannot be interrupted, not even by `timeout`, and would hold
# the test until meson kills it, leaving mounts behind.  Killing the daemon
# aborts the FUSE connection and fails such reads, so a watchdog does that
# after MOUNT_WATCHDOG seconds (default 200, under meson's 300 s timeout);
# the test then fails.
MOUNT_WATCHDOG=${MOUNT_WATCHDOG:-200}
_start_watchdog() {
    local test_pid=$$
    : >"$T/.daemons"
    (
        set +x   # (no lines of its own in an RPFS_TEST_TRACE profile)
        for (( i = 0; i < MOUNT_WATCHDOG; i++ )); do
            sleep 1
            kill -0 "$test_pid" 2>/dev/null || exit 0
        done
        printf '%s: FAIL: watchdog: still running after %d s (a read hung?); killing the rpfs daemons\n' \
            "$TEST_NAME" "$MOUNT_WATCHDOG" >&2
        : >"$T/.watchdog"
        while read -r p; do kill -KILL "$p" 2>/dev/null; done <"$T/.daemons"
    ) &
    track_pid $!
}

# Mounts of this test: MNT -> daemon PID ("" when unknown) and log file
declare -A _MNT_PID=() _MNT_LOG=() _MNT_CHILD=()
_MNT_N=0
_MNT_HOOKED=0
_register_mount() {  # MNT PID LOG CHILD
    _MNT_PID[$1]=$2 _MNT_LOG[$1]=$3 _MNT_CHILD[$1]=$4
    if (( ! _MNT_HOOKED )); then
        at_exit _unmount_all
        _start_watchdog
        _MNT_HOOKED=1
    fi
    [[ -z $2 ]] || echo "$2" >>"$T/.daemons"
}

_unmount_all() {
    local mnt pid
    # (runs inside lib.sh's _cleanup: setting its rc fails the test)
    if [[ -e $T/.watchdog ]]; then
        rc=1
    fi
    for mnt in "${!_MNT_PID[@]}"; do
        pid=${_MNT_PID[$mnt]}
        if mounted "$mnt"; then
            fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null
        fi
        if [[ -n $pid ]] && ! _wait_gone "$pid" 5; then
            msg "cleanup: rpfs daemon $pid did not exit after unmounting $mnt; SIGTERM"
            kill -TERM "$pid" 2>/dev/null
            _wait_gone "$pid" 3 || kill -KILL "$pid" 2>/dev/null
            _wait_gone "$pid" 2
        fi
        [[ -n $pid && ${_MNT_CHILD[$mnt]} == 1 ]] && wait "$pid" 2>/dev/null
        mounted "$mnt" && fusermount3 -uz "$mnt" 2>/dev/null
    done
    _MNT_PID=()
}

# The mount was refused for lack of privilege (container without
# CAP_SYS_ADMIN, no setuid fusermount3, ...): skip rather than fail.
_skip_if_unprivileged() {
    if grep -Eqi 'fuse: device not found|fusermount3?: .*(permission denied|not permitted|failed to open /dev/fuse)|mount.*(operation not permitted|permission denied)|/dev/fuse.*(permission denied|not permitted)' "$1"; then
        skip_facility "FUSE mounting not permitted here: $(head -c 300 "$1")"
    fi
}

# mount_fg VAULT MNT [ARGS...]
mount_fg() {
    local vault=$1 mnt=$2 i rc
    shift 2
    mkdir -p "$mnt"
    _MNT_N=$(( _MNT_N + 1 ))
    MLOG=$T/mount.$_MNT_N.log
    [[ ${VERBOSE:-0} == 1 ]] && msg "+ rpfs mount $vault $mnt -f $*"
    "$RPFS" mount "$vault" "$mnt" -f "$@" >"$MLOG" 2>&1 &
    MPID=$!
    _register_mount "$mnt" "$MPID" "$MLOG" 1
    for (( i = 0; i < 300; i++ )); do
        if mounted "$mnt"; then
            return 0
        fi
        if ! _alive "$MPID"; then
            rc=0
            wait "$MPID" || rc=$?
            _MNT_PID[$mnt]=
            _skip_if_unprivileged "$MLOG"
            cat "$MLOG" >&2
            fail "rpfs mount $vault $mnt -f $* exited with $rc before $mnt was mounted"
        fi
        sleep 0.1
    done
    cat "$MLOG" >&2
    fail "rpfs mount $vault $mnt -f $*: not mounted after 30 s"
}

# _daemon_pid MNT: the rpfs process serving MNT (its executable is $RPFS and
# MNT is one of its arguments).
_daemon_pid() {
    local p exe want
    want=$(readlink -f "$RPFS")
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [[ $exe == "$want" ]] || continue
        if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF -- "$1"; then
            echo "${p#/proc/}"
            return 0
        fi
    done
}

# mount_bg VAULT MNT [ARGS...]
mount_bg() {
    local vault=$1 mnt=$2 rc=0 errf=$T/.mount_bg.stderr
    shift 2
    mkdir -p "$mnt"
    _register_mount "$mnt" "" "" 0
    [[ ${VERBOSE:-0} == 1 ]] && msg "+ rpfs mount $vault $mnt $*"
    "$RPFS" mount "$vault" "$mnt" "$@" >"$T/.mount_bg.stdout" 2>"$errf" || rc=$?
    if (( rc != 0 )); then
        _skip_if_unprivileged "$errf"
        cat "$errf" >&2
        fail "rpfs mount $vault $mnt $* exited with $rc"
    fi
    _check_sanitizer "$errf" "rpfs mount $vault $mnt $*"
    mounted "$mnt" || fail "rpfs mount $vault $mnt $* returned 0 but $mnt is not mounted yet"
    MPID=$(_daemon_pid "$mnt")
    [[ -n $MPID ]] || fail "no rpfs daemon process found serving $mnt"
    _MNT_PID[$mnt]=$MPID
    echo "$MPID" >>"$T/.daemons"
}

# expect_mount_fail CODE VAULT MNT [ARGS...]: `rpfs mount` (without -f) must
# fail with CODE and leave MNT unmounted.  MNT is not created.
expect_mount_fail() {
    local code=$1 vault=$2 mnt=$3
    shift 3
    _register_mount "$mnt" "" "" 0
    expect_fail "$code" "$RPFS" mount "$vault" "$mnt" "$@"
    if mounted "$mnt"; then
        fail "rpfs mount $vault $mnt $* failed (exit $RC) but left $mnt mounted"
    fi
}

# unmount MNT
unmount() {
    local mnt=$1 i pid log
    pid=${_MNT_PID[$mnt]-} log=${_MNT_LOG[$mnt]-}
    for (( i = 0; i < 50; i++ )); do
        fusermount3 -u "$mnt" 2>"$T/.fusermount.err" && break
        mounted "$mnt" || break
        sleep 0.2
    done
    if mounted "$mnt"; then
        cat "$T/.fusermount.err" >&2
        fail "fusermount3 -u $mnt failed for 10 s"
    fi
    UMOUNT_RC=0
    if [[ -n $pid ]]; then
        if ! _wait_gone "$pid" 20; then
            [[ -n $log ]] && tail -20 "$log" >&2
            fail "rpfs daemon $pid still running 20 s after $mnt was unmounted"
        fi
        if [[ ${_MNT_CHILD[$mnt]-0} == 1 ]]; then
            wait "$pid" || UMOUNT_RC=$?
        fi
    fi
    [[ -n $log ]] && _check_sanitizer "$log" "rpfs mount daemon of $mnt"
    unset "_MNT_PID[$mnt]" "_MNT_LOG[$mnt]" "_MNT_CHILD[$mnt]"
}

# unmount_ok MNT: unmount; a mount_fg daemon must exit 0.
unmount_ok() {
    local log=${_MNT_LOG[$1]-}
    unmount "$1"
    if (( UMOUNT_RC != 0 )); then
        [[ -n $log ]] && tail -20 "$log" >&2
        fail "rpfs mount daemon of $1 exited with $UMOUNT_RC after fusermount3 -u (expected 0)"
    fi
}

# stats MNT: fill ST[bytes_zero ... errors] from MNT/.rpfs/stats.
declare -A ST=()
stats() {
    local out
    out=$("${MH[@]}" stats-sh "$1") || fail "$out"
    ST=()
    eval "$out"
}
# stats_line: ST as one line for messages.
stats_line() {
    local k s=
    for k in bytes_zero bytes_cache bytes_seed bytes_vault blocks_fetched bytes_fetched errors; do
        s+="$k=${ST[$k]} "
    done
    echo "$s"
}

# mh CMD ARGS...: run a mount_helper.py check; its "error:" lines fail the test.
mh() {
    local out rc=0
    out=$("${MH[@]}" "$@") || rc=$?
    if (( rc != 0 )); then
        fail "mount_helper $1: ${out:-exit $rc}"
    fi
    [[ -z $out ]] || printf '%s\n' "$out"
}

# msum FILE: sha256 of a file read through a mount; a read hanging for 120 s
# fails the test.
msum() {
    local s
    s=$(timeout 120 cat -- "$1" | sum -) || fail "reading $1 for its sha256 failed or hung"
    echo "$s"
}
