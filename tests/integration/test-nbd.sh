#!/usr/bin/env bash
# nbdkit-rpfs-plugin: a point's disk over NBD, read-only, for instant
# recovery.  Two points of a VM whose disk is a real ext4 image with holes:
# - `qemu-img convert nbd://...` of point=latest equals the second version,
#   of point=ID the first (sha256);
# - `qemu-img map` shows data exactly at the non-zero blocks: block status
#   reports zero blocks as holes;
# - nbdsh: 200 random reads (offsets and lengths at any byte) equal the
#   source; the export is read-only, and writes fail;
# - with nbdkit's cow filter, writes read back, the rest still reads from
#   the point, and the vault is unchanged (every object's sha256); a fresh
#   export afterwards still equals the point;
# - parameters that name no VM, point or disk make nbdkit refuse to start.
. "$(dirname "$0")/lib.sh"
need nbdkit nbdsh qemu-img python3 mkfs.ext4
PLUGIN=${RPFS_NBDKIT_PLUGIN:-}
[[ -n $PLUGIN && -f $PLUGIN ]] || skip "the nbdkit plugin is not built (nbdkit-plugin-dev not installed)"

# nbdsh is python3 -m nbdsh of the system's python3 (python3-libnbd), which
# a python3 earlier in PATH may lack; run where no directory is named nbd
# (meson runs tests in the build directory, which has one).
cd "$T"
NBDSH=(nbdsh)
python3 -c 'import nbd' 2>/dev/null || NBDSH=(/usr/bin/python3 -m nbdsh)
"${NBDSH[@]}" -c 'pass' || skip "nbdsh does not run (python3-libnbd not installed)"

nbdkit_env "$PLUGIN"

make_tree_image "$T/v1.raw" 64 12
cp "$T/v1.raw" "$T/v2.raw"
make_random "$T/r" $(( 1024 * 1024 )) nbd
dd if="$T/r" of="$T/v2.raw" bs=4096 seek=$(( 40 * 256 )) conv=notrunc status=none
printf 'odd bytes' | dd of="$T/v2.raw" bs=1 seek=$(( 50 * 1024 * 1024 + 999 )) conv=notrunc status=none

V=$(vault_path v)
P1=20261122T100000Z
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" vm --disk disk0="$T/v1.raw" --time $P1 -q
ok rpfs replicate "$V" vm --disk disk0="$T/v2.raw" -q
vault_objects "$V" >"$T/vault.before"

# serve NAME ARGS...: nbdkit in the foreground, in the background, on
# socket $T/NAME.sock; NBDPID, URI set; returns once it accepts.
serve() {
    local name=$1; shift
    rm -f "$T/$name.sock"
    "${NBDKIT_ENV[@]}" nbdkit -f -U "$T/$name.sock" "$@" >"$T/$name.log" 2>&1 &
    NBDPID=$!
    track_pid "$NBDPID"
    URI="nbd+unix:///?socket=$T/$name.sock"
    for _ in $(seq 200); do
        [[ -S $T/$name.sock ]] && return 0
        kill -0 "$NBDPID" 2>/dev/null || { cat "$T/$name.log" >&2; fail "nbdkit $* exited"; }
        sleep 0.05
    done
    fail "nbdkit $*: no socket after 10 s"
}
stop() {  # NAME: stop nbdkit (SIGTERM), check its log
    kill -TERM "$NBDPID"
    wait "$NBDPID" 2>/dev/null || true
    _check_sanitizer "$T/$1.log" "nbdkit ($1)"
}

serve latest "$PLUGIN" vault="$V" vm=vm disk=disk0 cache="$T/cache"
qemu-img convert -f raw -O raw "$URI" "$T/out.raw" || fail "qemu-img convert $URI"
assert_file_sum "$T/out.raw" "$(sum "$T/v2.raw")" "qemu-img convert of point=latest"
rm -f "$T/out.raw"

# qemu-img map: data exactly where the non-zero blocks are
qemu-img map -f raw --output=json "$URI" >"$T/map.json" || fail "qemu-img map $URI"
out=$(python3 "$(dirname "$0")/mount_helper.py" qemu-map "$T/v2.raw" 65536 "$T/map.json") ||
    fail "qemu-img map of the export differs from the source's non-zero blocks: $out"
msg "qemu-img map: $out"

# nbdsh: random reads; read-only
"${NBDSH[@]}" -u "$URI" -c "
import random
src = open('$T/v2.raw', 'rb').read()
assert h.get_size() == len(src), (h.get_size(), len(src))
assert h.is_read_only(), 'the export is writable'
r = random.Random(19)
for i in range(200):
    n = r.choice([1, 511, 4096, 65536, 65537, 300000, 1 << 20])
    off = r.randrange(0, len(src) - n)
    got = h.pread(n, off)
    assert got == src[off:off + n], 'read %d at %d differs' % (n, off)
try:
    h.pwrite(b'x' * 512, 0)
except nbd.Error:
    pass
else:
    raise SystemExit('a write to the read-only export succeeded')
" || fail "nbdsh random reads"
stop latest

# an older point by ID
serve p1 "$PLUGIN" vault="$V" vm=vm disk=disk0 point=$P1 cache="$T/cache"
qemu-img convert -f raw -O raw "$URI" "$T/out1.raw" || fail "qemu-img convert point=$P1"
assert_file_sum "$T/out1.raw" "$(sum "$T/v1.raw")" "qemu-img convert of point=$P1"
rm -f "$T/out1.raw"
stop p1

# the cow filter: writes go to a local overlay
serve cow --filter=cow "$PLUGIN" vault="$V" vm=vm disk=disk0 cache="$T/cache"
"${NBDSH[@]}" -u "$URI" -c "
import random
src = open('$T/v2.raw', 'rb').read()
assert not h.is_read_only()
r = random.Random(7)
writes = [(r.randrange(0, len(src) - 70000), r.randbytes(r.choice([512, 4096, 70000]))) for _ in range(20)]
writes.append((0, b'\x55' * 4096))
for off, b in writes:
    h.pwrite(b, off)
h.flush()
want = bytearray(src)
for off, b in writes:
    want[off:off + len(b)] = b
for off, b in writes:
    assert h.pread(len(b), off) == bytes(want[off:off + len(b)]), 'write at %d does not read back' % off
for i in range(50):
    off = r.randrange(0, len(src) - 65536)
    assert h.pread(65536, off) == bytes(want[off:off + 65536]), 'read at %d after writes' % off
" || fail "writes through the cow filter"
stop cow
vault_objects "$V" >"$T/vault.after"
cmp -s "$T/vault.before" "$T/vault.after" || fail "the vault changed under the cow filter"
serve again "$PLUGIN" vault="$V" vm=vm disk=disk0 cache="$T/cache"
qemu-img convert -f raw -O raw "$URI" "$T/out.raw" || fail "qemu-img convert after cow"
assert_file_sum "$T/out.raw" "$(sum "$T/v2.raw")" "the point after writes through the cow filter"
stop again

# what nbdkit refuses to start with (before it goes into the background)
for args in "vm=nosuch disk=disk0" "vm=vm disk=nosuch" "vm=vm disk=disk0 point=20201122T100000Z" \
            "vm=vm disk=disk0 point=garbage" "vm=vm"; do
    rm -f "$T/bad.sock" "$T/bad.pid"
    # With the sanitizer's runtime preloaded, nbdkit can hang in its exit
    # handlers after the error (libp11-kit's destructor waits on glibc's
    # locale lock): there the refusal is the error it printed, and the hung
    # process is killed a second after printing it (rc 124, as from timeout).
    # shellcheck disable=SC2086
    "${NBDKIT_ENV[@]}" nbdkit -U "$T/bad.sock" -P "$T/bad.pid" "$PLUGIN" vault="$V" $args \
        cache="$T/cache" >"$T/bad.log" 2>&1 &
    pid=$! rc=124 errored=0
    track_pid "$pid"
    for (( i = 0; i < 200; i++ )); do
        if ! kill -0 "$pid" 2>/dev/null; then rc=0; wait "$pid" || rc=$?; break; fi
        if (( ${#NBDKIT_ENV[@]} )) && grep -q 'error:' "$T/bad.log"; then
            (( ++errored > 10 )) && break
        fi
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
    if (( rc == 0 )); then
        [[ -s $T/bad.pid ]] && kill -TERM "$(cat "$T/bad.pid")"
        fail "nbdkit started with $args"
    fi
    if (( rc == 124 )) && ! { (( ${#NBDKIT_ENV[@]} )) && grep -q 'error:' "$T/bad.log"; }; then
        fail "nbdkit $args: neither refused nor served within 20 s"
    fi
    _check_sanitizer "$T/bad.log" "nbdkit $args"
    grep -q . "$T/bad.log" || fail "nbdkit $args: no message"
done
