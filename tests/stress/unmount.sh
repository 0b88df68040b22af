#!/usr/bin/env bash
# Stress the end of a mount (not part of CI; see tests/README.md):
#
#     tests/stress/unmount.sh [CYCLES]        (default 500; needs root, FUSE)
#
# Each cycle mounts a small vault (rpfs mount -f), reads a disk with three
# readers at once, and unmounts with fusermount3 -u; every other cycle
# unmounts lazily (-uz) with a file of the mount still open, closed
# afterwards. Half the cycles preload tests/integration/preload-econnaborted.so
# into the daemon, which turns every end of the FUSE connection into
# ECONNABORTED (the rare kernel race of issue 13). Two busy loops load both
# cores for the whole run.
#
# Counted, each must be 0:
#   hangs         the daemon still runs 5 s after its mount is gone (its
#                 threads' stacks are saved with gdb when gdb is installed)
#   wrong exits   the daemon exited with anything but 0
#   leaked mounts the mount point is still mounted after the cycle
#   bad reads     a reader got bytes other than the disk's
# Exit 0 when all are 0, 1 otherwise. Environment: RPFS (binary, default
# build/cli/rpfs), PRELOAD (default build/tests/integration/preload-econnaborted.so),
# KEEP=1 keeps the work directory.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
RPFS=${RPFS:-$SRC/build/cli/rpfs}
PRELOAD=${PRELOAD:-$SRC/build/tests/integration/preload-econnaborted.so}
CYCLES=${1:-500}
[[ -x $RPFS ]] || { echo "unmount.sh: no rpfs binary at $RPFS (build first, or set RPFS)" >&2; exit 2; }
[[ -f $PRELOAD ]] || { echo "unmount.sh: no preload library at $PRELOAD" >&2; exit 2; }
command -v fusermount3 >/dev/null || { echo "unmount.sh: fusermount3 not installed" >&2; exit 2; }

W=$(mktemp -d "${TMPDIR:-/tmp}/rpfs-stress-unmount.XXXXXX")
BUSY=()
cleanup() {
    for p in "${BUSY[@]}"; do kill "$p" 2>/dev/null; done
    findmnt -M "$W/m" >/dev/null 2>&1 && fusermount3 -uz "$W/m"
    [[ ${KEEP:-0} == 1 ]] && echo "kept $W" >&2 || rm -rf -- "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

head -c $(( 16 << 20 )) /dev/urandom >"$W/d.raw"
WANT=$(sha256sum <"$W/d.raw" | cut -d' ' -f1)
"$RPFS" init "$W/v" >/dev/null || exit 1
"$RPFS" replicate "$W/v" vm --disk "$W/d.raw" --time 20261201T100000Z -q || exit 1
rm -f "$W/d.raw"
mkdir -p "$W/m"
for _ in 1 2; do (while :; do :; done) & BUSY+=($!); done

alive() {  # PID: running and not a zombie
    local s
    s=$(sed -E 's/.*\) (.) .*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $s && $s != Z ]]
}

hangs=0 bad_exit=0 leaked=0 bad_reads=0 t0=$(date +%s)
for (( i = 1; i <= CYCLES; i++ )); do
    rm -rf "$W/c"
    pre=
    (( i % 4 >= 2 )) && pre=$PRELOAD
    LD_PRELOAD=$pre "$RPFS" mount "$W/v" "$W/m" -f --cache "$W/c" >"$W/log" 2>&1 &
    pid=$!
    for _ in $(seq 200); do findmnt -M "$W/m" >/dev/null 2>&1 && break; sleep 0.02; done
    f=$W/m/vm/latest/disk0.raw
    readers=()
    for r in 1 2 3; do (sha256sum <"$f" | cut -d' ' -f1 >"$W/r$r") & readers+=($!); done
    wait "${readers[@]}"
    for r in 1 2 3; do [[ $(cat "$W/r$r" 2>/dev/null) == "$WANT" ]] || bad_reads=$((bad_reads + 1)); done
    if (( i % 2 )); then
        fusermount3 -u "$W/m" 2>/dev/null || fusermount3 -uz "$W/m"
    else
        exec 3<"$W/m/vm/latest/point.json"
        fusermount3 -uz "$W/m"
        exec 3<&-
    fi
    for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then
        hangs=$((hangs + 1))
        echo "cycle $i: HANG: daemon $pid alive 5 s after the unmount${pre:+ (preloaded)}" >&2
        command -v gdb >/dev/null && gdb -batch -ex 'thread apply all bt' -p "$pid" >"$W/hang.$i.txt" 2>&1 &&
            echo "  stacks in $W/hang.$i.txt" >&2 && KEEP=1
        kill -9 "$pid"
        wait "$pid" 2>/dev/null
    else
        wait "$pid"
        rc=$?
        if (( rc != 0 )); then
            bad_exit=$((bad_exit + 1))
            echo "cycle $i: daemon exited $rc${pre:+ (preloaded)}: $(tail -2 "$W/log" | tr '\n' ' ')" >&2
        fi
    fi
    if findmnt -M "$W/m" >/dev/null 2>&1; then
        leaked=$((leaked + 1))
        echo "cycle $i: $W/m still mounted" >&2
        fusermount3 -uz "$W/m"
    fi
    (( i % 50 == 0 )) && echo "unmount.sh: $i cycles, $(( $(date +%s) - t0 )) s: hangs $hangs, wrong exits $bad_exit, leaked mounts $leaked, bad reads $bad_reads" >&2
done
echo "unmount.sh: $CYCLES cycles (half with the ECONNABORTED preload, half lazy with a file open, 2 busy loops): hangs $hangs, wrong exits $bad_exit, leaked mounts $leaked, bad reads $bad_reads"
(( hangs + bad_exit + leaked + bad_reads == 0 ))
