# shellcheck shell=bash
# Common helpers for the rpfs integration tests.  Each test sources this file:
#
#     . "$(dirname "$0")/lib.sh"
#
# Conventions (as in liburing and libfuse): exit 0 = pass, 1 = fail, 77 = skip.
# Every test works in its own temporary directory ($T), removed on exit together
# with the background processes and loop devices the test registered.
#
# Environment:
#   RPFS      path of the rpfs binary (meson passes it; defaults to build/cli/rpfs)
#   SRCDIR    the source tree (meson passes it)
#   KEEP_TMP  set to 1 to keep the temporary directory for a post-mortem
#   VERBOSE   set to 1 to trace every rpfs command
#   RPFS_TEST_TRACE  a directory: write a timestamped `set -x` trace of the
#             test into it, as TEST.PID.trace (where a test spends its time:
#             tests/profile.py DIR)

set -euo pipefail
export LC_ALL=C
# The programs tests/run.sh installs are Debian's: run those, not what a
# user's PATH puts first (a pyenv shim in front of python3 costs 0.3 s a call,
# a few hundred calls a test, and has no python3-libnbd).
case :$PATH: in
    /usr/sbin:/usr/bin:/sbin:/bin:*) ;;
    *) export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH ;;
esac
if [[ -n ${RPFS_TEST_TRACE:-} ]]; then
    mkdir -p "$RPFS_TEST_TRACE"
    exec {_trace_fd}>"$RPFS_TEST_TRACE/$(basename "$0" .sh)${RPFS_TEST_VAULT:+-$RPFS_TEST_VAULT}.$$.trace"
    BASH_XTRACEFD=$_trace_fd
    PS4='+${EPOCHREALTIME} ${BASH_SOURCE[0]##*/}:${LINENO} '
    set -x
fi

SRCDIR=${SRCDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# promtool, which tests/run.sh unpacks from Debian's prometheus package into
# tests/.tools (installing the package would start a server): found there
# also by a plain `meson test` after a run.sh.
[[ -x $SRCDIR/tests/.tools/root/usr/bin/promtool ]] && export PATH=$PATH:$SRCDIR/tests/.tools/root/usr/bin
RPFS=${RPFS:-$SRCDIR/build/cli/rpfs}
TEST_NAME=$(basename "$0" .sh)

# Sanitizer builds (-Db_sanitize=address,undefined): make every report fatal so
# that it shows up as a non-zero exit and an unexpected stderr.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

declare -a _BG_PIDS=()
declare -a _LOOP_DEVS=()
declare -a _EXIT_HOOKS=()

msg()  { printf '%s: %s\n' "$TEST_NAME" "$*" >&2; }
fail() { printf '%s: FAIL: %s\n' "$TEST_NAME" "$*" >&2; exit 1; }
# Skips. A skip says why, and of which kind (tests/run.sh reads it):
#   skip WHY           something a package or tests/run.sh provides is
#                      missing (a program, Azurite): under CI=true run.sh
#                      fails the run for it
#   skip_facility WHY  the machine lacks what no package can add (root,
#                      /dev/fuse, loop devices, permission to mount)
# skip_part / skip_part_facility WHY: the same for one part of a test, which
# goes on; skip_part fails the test under CI=true.
skip() { printf '%s: SKIP: %s\n' "$TEST_NAME" "$*" >&2; exit 77; }
skip_facility() { printf '%s: SKIP (facility): %s\n' "$TEST_NAME" "$*" >&2; exit 77; }
skip_part() {
    [[ ${CI:-} == true ]] && fail "under CI=true a part may not be skipped for this: $* (tests/run.sh installs what tests need)"
    printf '%s: PART SKIPPED: %s\n' "$TEST_NAME" "$*" >&2
}
skip_part_facility() { printf '%s: PART SKIPPED (facility): %s\n' "$TEST_NAME" "$*" >&2; }

_cleanup() {
    local rc=$? pid dev i
    trap - EXIT
    set +e
    for (( i = ${#_EXIT_HOOKS[@]} - 1; i >= 0; i-- )); do
        eval "${_EXIT_HOOKS[i]}"
    done
    for pid in "${_BG_PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    for dev in "${_LOOP_DEVS[@]}"; do
        losetup -d "$dev" 2>/dev/null
    done
    if [[ -n ${T:-} && -d $T ]]; then
        if [[ ${KEEP_TMP:-0} == 1 ]]; then
            msg "kept temporary directory $T"
        else
            rm -rf -- "$T"
        fi
    fi
    if (( rc == 0 )); then
        msg "PASS"
    fi
    exit "$rc"
}

# The per-test temporary directory.
T=$(mktemp -d "${TMPDIR:-/tmp}/rpfs-$TEST_NAME.XXXXXX")
trap _cleanup EXIT
# Tests run in parallel: each gets its own default block cache and failback
# state directory (rpfs uses $XDG_CACHE_HOME/rpfs and $XDG_STATE_HOME/rpfs
# when no --cache / RPFS_CACHE_DIR / RPFS_STATE_DIR is given), so that two
# mounts without --cache never meet on ~/.cache/rpfs (EBUSY).
export XDG_CACHE_HOME=$T/.xdg-cache XDG_STATE_HOME=$T/.xdg-state
trap 'exit 130' INT TERM

[[ -x $RPFS ]] || fail "rpfs binary not found or not executable: $RPFS (set RPFS)"

# need CMD...: skip the test when a tool is missing.
need() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "$c not installed"
    done
}

# track_pid PID: kill this background process on exit (if still running).
track_pid() { _BG_PIDS+=("$1"); }

# track_loop DEV: detach this loop device on exit.
track_loop() { _LOOP_DEVS+=("$1"); }

# at_exit 'COMMANDS': run COMMANDS (eval'd) on exit, pass or fail, before the
# tracked processes are killed; the last registered runs first (unmount a
# loop-mounted filesystem before the FUSE mount under it, for instance).
at_exit() { _EXIT_HOOKS+=("$1"); }

# rpfs ARGS...: run the binary in the foreground.
rpfs() {
    [[ ${VERBOSE:-0} == 1 ]] && msg "+ rpfs $*"
    "$RPFS" "$@"
}

# ok CMD...: run CMD (usually rpfs ...), which must exit 0; on failure show its
# stderr and the command.  Stdout passes through.
ok() {
    local rc=0 errf="$T/.ok.stderr"
    "$@" 2>"$errf" || rc=$?
    if (( rc != 0 )); then
        cat "$errf" >&2
        fail "command failed with exit $rc: $*"
    fi
    _check_sanitizer "$errf" "$*"
}

# nbdkit_env PLUGIN: sets NBDKIT_ENV, the command prefix nbdkit needs to
# load PLUGIN (a sanitizer build of the plugin needs its runtime first).
nbdkit_env() {
    local asan
    NBDKIT_ENV=()
    asan=$(ldd "$1" | awk '/libasan/ {print $3}')
    [[ -z $asan ]] || NBDKIT_ENV=(env "LD_PRELOAD=$asan" "ASAN_OPTIONS=detect_leaks=0")
}

_check_sanitizer() {
    [[ -s $1 ]] || return 0   # (most commands print nothing: no grep to run)
    if grep -Eq 'Sanitizer|runtime error:|LeakSanitizer' "$1"; then
        cat "$1" >&2
        fail "sanitizer report from: $2"
    fi
}

# expect_fail CODE CMD...: CMD must fail.  CODE is 1 (runtime error), 2 (usage
# error) or "any" (1 or 2: the two documented failure codes; a signal or a
# sanitizer exit is never accepted).  Stderr must start with "rpfs: " and be one
# line for a runtime error.  The message is left in $ERR, the exit code in $RC.
ERR=
RC=0
expect_fail() {
    local want=$1; shift
    local errf="$T/.fail.stderr" outf="$T/.fail.stdout"
    RC=0
    "$@" >"$outf" 2>"$errf" || RC=$?
    ERR=$(cat "$errf")
    _check_sanitizer "$errf" "$*"
    if (( RC == 0 )); then
        fail "expected failure, got exit 0: $*"
    fi
    case $want in
        any) (( RC == 1 || RC == 2 )) ||
                 fail "expected exit 1 or 2, got $RC: $* (stderr: $ERR)" ;;
        *)   (( RC == want )) ||
                 fail "expected exit $want, got $RC: $* (stderr: $ERR)" ;;
    esac
    local n
    n=$(wc -l <"$errf")
    [[ -s $errf ]] || fail "no error message on stderr: $*"
    [[ $ERR == "rpfs: "* ]] ||
        fail "error message does not start with 'rpfs: ': $* -> '$ERR'"
    # A runtime error is one line (allowing for a missing final newline).  A
    # usage error (exit 2) may add a hint line such as "Try 'rpfs --help'".
    if (( RC != 2 && n > 1 )); then
        fail "error message is $n lines, expected one: $* -> '$ERR'"
    fi
}

# expect_err_contains TEXT...: the last expect_fail's message contains each TEXT
# (case-insensitive).
expect_err_contains() {
    local s
    for s in "$@"; do
        grep -qiF -- "$s" <<<"$ERR" ||
            fail "error message does not mention '$s': '$ERR'"
    done
}

# sum FILE: sha256 of a file (or of stdin with -). OpenSSL uses the CPU's
# SHA instructions, 3-4 times faster than coreutils' sha256sum on large
# data; but it takes 13 ms to start against sha256sum's 3, so files under
# 4 MiB go to sha256sum.
sum() {
    local out rc=0 size=0
    if [[ ${1:--} == - ]]; then
        out=$(openssl dgst -sha256 -r) || rc=$?
    else
        [[ -f $1 ]] && size=$(stat -c %s -- "$1")
        if [[ -f $1 ]] && (( size < 4194304 )); then
            out=$(sha256sum -- "$1") || rc=$?
        else
            out=$(openssl dgst -sha256 -r -- "$1") || rc=$?
        fi
    fi
    printf '%s\n' "${out%% *}"
    return "$rc"
}

assert_eq() {  # ACTUAL EXPECTED MSG
    [[ $1 == "$2" ]] || fail "$3: got '$1', expected '$2'"
}
assert_ne() {  # A B MSG
    [[ $1 != "$2" ]] || fail "$3: both are '$1'"
}
assert_le() {  # A B MSG   (integers)
    (( $1 <= $2 )) || fail "$3: $1 > $2"
}
assert_lt() {  # A B MSG
    (( $1 < $2 )) || fail "$3: $1 >= $2"
}
assert_ge() {  # A B MSG
    (( $1 >= $2 )) || fail "$3: $1 < $2"
}
assert_gt() {  # A B MSG
    (( $1 > $2 )) || fail "$3: $1 <= $2"
}
assert_file_sum() {  # FILE SHA256 MSG
    [[ -f $1 ]] || fail "$3: $1 does not exist"
    local s
    s=$(sum "$1")
    [[ $s == "$2" ]] || fail "$3: sha256 $s, expected $2"
}
assert_contains() {  # FILE-OR-STRING TEXT MSG: string contains TEXT
    grep -qF -- "$2" <<<"$1" || fail "$3: '$2' not found in: $1"
}
assert_not_contains() {
    if grep -qF -- "$2" <<<"$1"; then fail "$3: '$2' unexpectedly found in: $1"; fi
}

file_size() { stat -c %s "$1"; }

# ---- where the test's vaults live ------------------------------------------------
# RPFS_TEST_VAULT=azurite runs a test against vaults in Azurite (tests/run.sh
# starts it and exports RPFS_AZURITE_ENDPOINT and _CONNECTION_STRING): every
# vault_path is then a prefix in a fresh container, removed at exit. The
# default, dir, keeps them in $T.
TEST_VAULT=${RPFS_TEST_VAULT:-dir}
_AZ_HELPER=$(dirname "${BASH_SOURCE[0]}")/azure_helper.py
_AZ_CONTAINER=
# need_azurite: skip unless tests/run.sh's Azurite answers; then its
# connection string is the only Azure credential and endpoint rpfs sees.
need_azurite() {
    [[ -n ${RPFS_AZURITE_ENDPOINT:-} && -n ${RPFS_AZURITE_CONNECTION_STRING:-} ]] ||
        skip "Azurite is not running (tests/run.sh starts it and sets RPFS_AZURITE_ENDPOINT)"
    curl -s -o /dev/null --max-time 5 "$RPFS_AZURITE_ENDPOINT?comp=list" ||
        skip "Azurite does not answer at $RPFS_AZURITE_ENDPOINT"
    export AZURE_STORAGE_CONNECTION_STRING=$RPFS_AZURITE_CONNECTION_STRING
    unset AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN RPFS_AZURE_ENDPOINT
}
# private_azurite: a private Azurite on a free loopback port, data in
# $T/az2, that a test may stop and start (az2_start, az2_stop: SIGTERM, as
# an operator would, so Azurite finishes its writes); sets EP2 (its
# endpoint) and AZPID. Returns 1 when no Azurite binary is installed.
private_azurite() {
    AZBIN=${RPFS_AZURITE_BIN:-$SRCDIR/tests/.azurite/node_modules/.bin/azurite-blob}
    [[ -x $AZBIN ]] || return 1
    AZ2_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    EP2="http://127.0.0.1:$AZ2_PORT/devstoreaccount1"
    AZPID=
    mkdir -p "$T/az2"
}
az2_start() {
    "$AZBIN" --blobHost 127.0.0.1 --blobPort "$AZ2_PORT" --location "$T/az2" --disableTelemetry --silent \
        >>"$T/az2.log" 2>&1 &
    AZPID=$!
    track_pid "$AZPID"
    # Node starts slowly on a loaded machine: wait up to 60 s, but not for
    # a process that already died.
    local t0=$SECONDS
    while (( SECONDS - t0 < 60 )); do
        curl -s -m 5 -o /dev/null "$EP2?comp=list" && return 0
        kill -0 "$AZPID" 2>/dev/null || break
        sleep 0.1
    done
    fail "private Azurite did not start in $(( SECONDS - t0 )) s: $(tail -3 "$T/az2.log")"
}
az2_stop() {
    kill -TERM "$AZPID"
    wait "$AZPID" 2>/dev/null || true
}

if [[ $TEST_VAULT == azurite ]]; then
    need_azurite
    export RPFS_CACHE_DIR=${RPFS_CACHE_DIR:-$T/.rpfs-cache}
    _AZ_CONTAINER=t-$(python3 -c 'import secrets; print(secrets.token_hex(8))')
    at_exit "python3 '$_AZ_HELPER' delete-container '$_AZ_CONTAINER' >/dev/null 2>&1 || true"
    msg "vaults in Azurite, container $_AZ_CONTAINER"
elif [[ $TEST_VAULT != dir ]]; then
    fail "RPFS_TEST_VAULT must be dir or azurite, not $TEST_VAULT"
fi

# vault_path NAME: the URL or path for the test's vault NAME.
vault_path() {
    if [[ -n $_AZ_CONTAINER ]]; then
        printf 'azure://devstoreaccount1/%s/%s\n' "$_AZ_CONTAINER" "$1"
    else
        printf '%s/%s\n' "$T" "$1"
    fi
}

# dir_vault_only WHY: skip the test unless its vaults are directories.
dir_vault_only() { [[ $TEST_VAULT == dir ]] || skip "$*: needs a directory vault"; }

# _az_prefix VAULT: the container-relative prefix of an Azurite vault URL.
_az_prefix() { local p=${1#azure://devstoreaccount1/"$_AZ_CONTAINER"}; printf '%s\n' "${p#/}"; }

# vault_files VAULT: "SIZE NAME" for every object of the vault, NAME relative
# to the vault, sorted by name.
vault_files() {
    if [[ $1 == azure://* ]]; then
        local pre; pre=$(_az_prefix "$1")/
        python3 "$_AZ_HELPER" ls "$_AZ_CONTAINER" "$pre" | awk -v p="$pre" '{print $1, substr($3, length(p) + 1)}' | sort -k2
    else
        (cd "$1" && find . -type f -printf '%s %P\n' | sort -k2)
    fi
}

# vault_cat VAULT NAME: the bytes of one object.
vault_cat() {
    if [[ $1 == azure://* ]]; then
        python3 "$_AZ_HELPER" get "$_AZ_CONTAINER" "$(_az_prefix "$1")/$2"
    else
        cat -- "$1/$2"
    fi
}

# vault_bytes VAULT: the size of the vault's objects in bytes.
vault_bytes() { vault_files "$1" | awk '{s += $1} END {printf "%.0f\n", s}'; }

# vault_state VAULT: a fingerprint of every object of the vault and of its
# point list, to show that a failed command left it unchanged; vault_objects
# VAULT: the objects' part (a directory: each file's sha256; Azure: each
# blob's size and ETag, which any write changes).
vault_state() {
    vault_objects "$1"
    echo "--- points"
    "$RPFS" points "$1" --json
}
vault_objects() {
    if [[ $1 == azure://* ]]; then
        local pre; pre=$(_az_prefix "$1")/
        python3 "$_AZ_HELPER" ls "$_AZ_CONTAINER" "$pre"
    else
        (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
    fi
}

# export_check VAULT VM DISK SHA [EXPORT-ARGS...]: export to a file and to stdout
# and compare both with SHA.
export_check() {
    local vault=$1 vm=$2 disk=$3 want=$4; shift 4
    local out="$T/.export.$vm.$disk.raw"
    rm -f -- "$out"
    ok rpfs export "$vault" "$vm" "$disk" "$@" -o "$out"
    assert_file_sum "$out" "$want" "export $vm/$disk $*"
    rm -f -- "$out"
}
export_check_stdout() {
    local vault=$1 vm=$2 disk=$3 want=$4; shift 4
    local s
    s=$("$RPFS" export "$vault" "$vm" "$disk" "$@" -o - 2>"$T/.stdout.stderr" | sum -) ||
        { cat "$T/.stdout.stderr" >&2; fail "export $vm/$disk $* -o - failed"; }
    _check_sanitizer "$T/.stdout.stderr" "export -o -"
    assert_eq "$s" "$want" "export $vm/$disk $* -o - | sha256sum"
}

# json_points VAULT [VM]: the point list as JSON, validated as a JSON array.
json_points() {
    local j
    j=$("$RPFS" points "$@" --json) || fail "points $* --json failed"
    python3 -c 'import json,sys; d=json.load(sys.stdin); assert isinstance(d, list), "not an array"' <<<"$j" ||
        fail "points $* --json is not a JSON array: $j"
    printf '%s\n' "$j"
}

# point_ids VAULT VM: the IDs of VM's points, one per line, in listed order.
point_ids() {
    json_points "$1" | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["vm"] == sys.argv[1]:
        print(p["id"])' "$2"
}

# rounds N: how many rounds a test that repeats one race runs (kill -9 at
# random moments, replicate beside prune): N on a directory vault; a third
# of N, at least 2, in the Azurite twin (RPFS_TEST_VAULT=azurite). The
# twin checks the Azure backend under the same race; the full count of
# random moments runs once, against the directory vault.
rounds() {
    if [[ ${RPFS_TEST_VAULT:-dir} == azurite ]]; then
        echo $(( $1 / 3 > 2 ? $1 / 3 : 2 ))
    else
        echo "$1"
    fi
}

# make_tree DIR MB: fill DIR with about MB megabytes of real files copied from
# /usr/share and /usr/lib (docs, man pages, locales, python modules ...).  The
# selection is deterministic for a given machine: sorted paths, first MB worth.
# Under tests/run.sh (RPFS_TEST_CACHE) each size is gathered once a run and
# copied (cp -a) for every test that asks for it.
make_tree() {
    local dir=$1 mb=$2 cache=${RPFS_TEST_CACHE:-} c tmp
    if [[ -n $cache ]]; then
        c=$cache/tree-$mb
        if [[ ! -d $c ]]; then
            tmp=$(mktemp -d "$cache/.tree.XXXXXX") || fail "cannot create a directory in $cache"
            _make_tree "$tmp" "$mb"
            mv -T -- "$tmp" "$c" 2>/dev/null || rm -rf -- "$tmp" # another test made it first
        fi
        mkdir -p "$dir" && cp -a -- "$c/." "$dir/" || fail "cannot copy the tree of $mb MB into $dir"
        return
    fi
    _make_tree "$dir" "$mb"
}
_make_tree() {
    local dir=$1 mb=$2
    mkdir -p "$dir"
    python3 - "$dir" "$mb" <<'EOF'
import os, sys, glob, shutil
dst, limit = sys.argv[1], int(sys.argv[2]) * 1024 * 1024
roots = ["/usr/share/doc", "/usr/share/man", "/usr/share/locale",
         "/usr/share/perl", "/usr/share/perl5", "/usr/share/i18n",
         "/usr/share/zoneinfo", "/usr/share/common-licenses"]
roots += sorted(glob.glob("/usr/lib/python3*"))
roots += ["/usr/share/mime", "/usr/include", "/usr/lib/x86_64-linux-gnu",
          "/usr/lib/aarch64-linux-gnu", "/usr/lib/gcc", "/usr/bin"]
total = 0
for root in roots:
    if not os.path.isdir(root):
        continue
    for d, subdirs, files in os.walk(root):
        subdirs.sort()
        for f in sorted(files):
            src = os.path.join(d, f)
            if os.path.islink(src) or not os.path.isfile(src):
                continue
            try:
                size = os.path.getsize(src)
                if size == 0 or size > 16 << 20:
                    continue
                out = os.path.join(dst, os.path.relpath(src, "/"))
                os.makedirs(os.path.dirname(out), exist_ok=True)
                shutil.copyfile(src, out)
            except OSError:
                continue
            total += size
            if total >= limit:
                sys.exit(0)
sys.exit("make_tree: only %d bytes of files found" % total)
EOF
}

# make_ext4_image PATH SIZE_MB SRC_DIR: an ext4 filesystem image holding
# SRC_DIR, made without root and without mounting.
make_ext4_image() {
    local path=$1 size=$2 src=$3
    need mkfs.ext4
    rm -f -- "$path"
    truncate -s "${size}M" "$path"
    mkfs.ext4 -q -F -E root_owner=0:0 -d "$src" "$path" >/dev/null ||
        fail "mkfs.ext4 -d $src $path failed"
}

# make_tree_image PATH SIZE_MB TREE_MB: make_ext4_image PATH SIZE_MB of a
# make_tree of TREE_MB.  Under tests/run.sh (RPFS_TEST_CACHE, a directory
# for the run) each size is built once and copied for every test that asks
# for it: the same files copied and the same mkfs.ext4 -d run, 40 times a run,
# were a tenth of the suite's time.
make_tree_image() {
    local path=$1 size=$2 mb=$3 cache=${RPFS_TEST_CACHE:-} c tmp
    if [[ -z $cache ]]; then
        make_tree "$T/.tree" "$mb"
        make_ext4_image "$path" "$size" "$T/.tree"
        rm -rf -- "$T/.tree"
        return
    fi
    c=$cache/ext4-$size-$mb.raw
    if [[ ! -f $c ]]; then
        # built beside it and renamed into place: a test running at the same
        # time sees the whole image or none (two may build it; both are whole)
        tmp=$(mktemp -d "$cache/.build.XXXXXX") || fail "cannot create a directory in $cache"
        _make_tree "$tmp/tree" "$mb"
        make_ext4_image "$tmp/img" "$size" "$tmp/tree"
        mv -f -- "$tmp/img" "$c" || fail "cannot store $c"
        rm -rf -- "$tmp"
    fi
    rm -f -- "$path"
    cp --sparse=always -- "$c" "$path" || fail "cannot copy $c to $path"
}

# make_random FILE BYTES SEED: deterministic incompressible bytes: zeros
# encrypted with AES-128-CTR under a key derived from SEED (OpenSSL uses
# the CPU's AES instructions: about 10 times as fast as Python's random).
make_random() {
    local key
    key=$(printf '%s' "$3" | openssl dgst -sha256 -r | cut -c1-32)
    head -c "$2" /dev/zero | openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000 >"$1" ||
        fail "make_random $1 $2 $3 failed"
}

# overwrite_blocks FILE BLOCKSIZE SEED BLOCK...: overwrite whole blocks (by
# index) with random data, in place.
overwrite_blocks() {
    local file=$1 bs=$2 seed=$3; shift 3
    local rnd="$T/.rnd.$seed" i=0 b
    make_random "$rnd" $(( bs * $# )) "$seed"
    for b in "$@"; do
        dd if="$rnd" of="$file" bs="$bs" skip="$i" seek="$b" count=1 \
           conv=notrunc status=none
        i=$(( i + 1 ))
    done
    rm -f -- "$rnd"
}

# nonzero_blocks FILE BLOCKSIZE: indexes of the blocks that are not all zero.
nonzero_blocks() {
    python3 - "$1" "$2" <<'EOF'
import sys
path, bs = sys.argv[1], int(sys.argv[2])
zero = bytes(bs)
with open(path, "rb") as f:
    i = 0
    while True:
        b = f.read(bs)
        if not b:
            break
        if b != zero[:len(b)]:
            print(i)
        i += 1
EOF
}
