#!/usr/bin/env bash
# Encrypted vaults (rpfs init --encrypt, rpfs key): replicate, export, mount
# and failback give the source's bytes; a missing or wrong key is a clear
# error; pack tables name blobs by keyed IDs (none equals a plain vault's
# XXH3 names of the same disks); points are sealed; key slots are added and
# removed (never the last); a flipped byte in a pack, a pack swapped for
# another and a truncated object are EIO in the mount and a named failure
# in commands, never wrong data; the passphrase is in no log, error or
# daemon command line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need mkfs.ext4 python3

export RPFS_ARGON2_OPSLIMIT=1 RPFS_ARGON2_MEMLIMIT=8388608  # fast slots for tests
unset RPFS_KEY_FILE RPFS_PASSPHRASE RPFS_NEW_PASSPHRASE
KF=$T/vault.key
head -c 64 /dev/urandom >"$KF"
PASS="pass-$(python3 -c 'import secrets; print(secrets.token_hex(12))')"

make_tree "$T/tree" 12
make_random "$T/tree/random.bin" $(( 3 * 1024 * 1024 )) enc
make_ext4_image "$T/d1.raw" 32 "$T/tree"
rm -rf "$T/tree"
cp "$T/d1.raw" "$T/d2.raw"
overwrite_blocks "$T/d2.raw" $BS s2 10 11 12 200 300 400
SUM1=$(sum "$T/d1.raw") SUM2=$(sum "$T/d2.raw")
P1=20261122T100000Z P2=20261122T110000Z

V=$(vault_path enc)
PV=$(vault_path plain)
ok rpfs init "$V" --encrypt --key-file "$KF" >/dev/null
vault_cat "$V" config.json | python3 -c '
import json, sys
c = json.load(sys.stdin)
assert c["features"] == ["encryption"], c
assert c["encryption"]["cipher"] == "xchacha20poly1305-ietf", c' || fail "config.json does not mark the vault encrypted"

# ---- no key, wrong key: clear errors
expect_fail 1 rpfs points "$V"
expect_err_contains "encrypted" "RPFS_KEY_FILE" "RPFS_PASSPHRASE"
expect_fail 1 env RPFS_PASSPHRASE=nope "$RPFS" points "$V"
expect_err_contains "wrong passphrase or key file"
head -c 64 /dev/urandom >"$T/other.key"
expect_fail 1 env RPFS_KEY_FILE="$T/other.key" "$RPFS" export "$V" vm disk0 -o "$T/x.raw"
expect_err_contains "wrong passphrase or key file"

export RPFS_KEY_FILE=$KF
ok rpfs replicate "$V" vm --disk "$T/d1.raw" --time $P1 -q
ok rpfs replicate "$V" vm --disk "$T/d2.raw" --time $P2 -q
export_check "$V" vm disk0 "$SUM1" --point $P1
export_check "$V" vm disk0 "$SUM2" --point $P2
ok rpfs check "$V" --read-data >/dev/null
ok rpfs diff "$V" vm $P1 $P2 >/dev/null
msg "replicate, export, check --read-data, diff: the source's bytes"

# ---- garbage collection of an encrypted vault: packs rewritten and deleted
# under their keyed names; the kept points still read exactly
GV=$(vault_path enc-gc)
ok rpfs init "$GV" --encrypt --key-file "$KF" >/dev/null
cp "$T/d1.raw" "$T/g.raw"
declare -A GSUM
for i in 1 2 3 4 5; do
    overwrite_blocks "$T/g.raw" $BS "gc$i" $((i * 20)) $((i * 20 + 1)) $((i * 20 + 2)) $((i * 20 + 3))
    GSUM[$i]=$(sum "$T/g.raw")
    ok rpfs replicate "$GV" vm --disk "$T/g.raw" --time 20261122T0${i}0000Z -q
done
ok rpfs policy "$GV" --keep-last 2 >/dev/null
j=$(ok rpfs prune "$GV" --json)
freed=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["gc"]["freed_bytes"])' <<<"$j")
assert_gt "$freed" 0 "prune of an encrypted vault frees bytes"
export_check "$GV" vm disk0 "${GSUM[4]}" --point 20261122T040000Z
export_check "$GV" vm disk0 "${GSUM[5]}" --point 20261122T050000Z
ok rpfs check "$GV" --read-data >/dev/null
j=$(ok rpfs prune "$GV" --json)
assert_eq "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["gc"]["freed_bytes"])' <<<"$j")" 0 \
    "a second prune of the encrypted vault frees nothing"
msg "prune with garbage collection: $freed bytes freed, kept points exact, check --read-data clean"

# ---- names in storage are keyed: the same disks in a plain vault share none
ok rpfs init "$PV" >/dev/null
ok rpfs replicate "$PV" vm --disk "$T/d1.raw" --time $P1 -q
ok rpfs replicate "$PV" vm --disk "$T/d2.raw" --time $P2 -q
objects_to() {  # VAULT DIR PREFIX: copy the objects under PREFIX into DIR
    local n
    mkdir -p "$2"
    vault_files "$1" | awk '{print $2}' | grep "^$3" | while read -r n; do
        vault_cat "$1" "$n" >"$2/$(tr / _ <<<"$n")"
    done
}
objects_to "$V" "$T/enc-objs" ""
objects_to "$PV" "$T/plain-packs" packs/
python3 - "$T/enc-objs" "$T/plain-packs" <<'PY' || fail "encrypted vault storage shows plain checksums"
import os, struct, sys
def names(path):
    d = open(path, "rb").read()
    assert d[:8] == b"RPFSPACK" and d[-8:] == b"RPFSPEND", path
    toff, n = struct.unpack("<QI", d[-32:-20])
    return {d[toff + 32 * i:toff + 32 * i + 16] for i in range(n)}
enc_dir, plain_dir = sys.argv[1], sys.argv[2]
enc = set(); plain = set(); blob = b""
for f in sorted(os.listdir(enc_dir)):
    data = open(os.path.join(enc_dir, f), "rb").read()
    blob += data
    if f.startswith("packs_"):
        enc |= names(os.path.join(enc_dir, f))
for f in sorted(os.listdir(plain_dir)):
    plain |= names(os.path.join(plain_dir, f))
assert len(enc) == len(plain) and plain, (len(enc), len(plain))
assert not (enc & plain), "shared names"
leaked = [h.hex() for h in plain if h in blob]
assert not leaked, "plain XXH3 names found in the encrypted vault: %s" % leaked[:3]
print("%d blob names, none a plain XXH3" % len(enc))
PY
if vault_cat "$V" points/vm/$P1.json | grep -q disk0; then fail "the point object is readable in the clear"; fi
assert_eq "$(vault_cat "$V" points/vm/$P1.json | head -c 8)" RPFSOBJ1 "point objects are sealed"
msg "pack tables and the index name blobs by keyed IDs; points are sealed"

# ---- key slots
id_kf=$(rpfs key "$V" list --json | python3 -c 'import json,sys; print([s["id"] for s in json.load(sys.stdin) if s["type"] == "key-file"][0])')
out=$(RPFS_NEW_PASSPHRASE=$PASS rpfs key "$V" add 2>&1) || fail "key add: $out"
assert_contains "$out" "added key slot" "key add"
assert_eq "$(rpfs key "$V" list | tail -n +2 | wc -l)" 2 "two key slots"
unset RPFS_KEY_FILE
export RPFS_PASSPHRASE=$PASS
export_check "$V" vm disk0 "$SUM2" --point $P2
ok rpfs key "$V" remove "$id_kf" >/dev/null
expect_fail 1 env RPFS_KEY_FILE="$KF" "$RPFS" points "$V"
expect_err_contains "wrong passphrase or key file"
id_pw=$(rpfs key "$V" list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
expect_fail 1 rpfs key "$V" remove "$id_pw"
expect_err_contains "last"
ok rpfs key "$V" add --key-file "$KF" >/dev/null
msg "key add (passphrase, key file), remove, list; the last slot is kept"

# ---- a prompt on the terminal (a pseudo-terminal here), echo off
on_tty() {  # PASSPHRASE CMD...: CMD on a new pty, each prompt answered; prints the screen
    python3 - "$@" <<'PY'
import os, select, sys
pw, cmd = sys.argv[1].encode(), sys.argv[2:]
pid, fd = os.forkpty()
if pid == 0:
    os.execvp(cmd[0], cmd)
out, answered = b"", 0
while select.select([fd], [], [], 60)[0]:
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
    if out.count(b"assphrase: ") > answered:
        answered += 1
        os.write(fd, pw + b"\n")
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
PY
}
screen=$(on_tty "$PASS" env -u RPFS_PASSPHRASE "$RPFS" points "$V") ||
    fail "points with the passphrase typed on a terminal: $screen"
assert_contains "$screen" "Vault passphrase:" "the prompt"
assert_contains "$screen" "$P2" "the points, unlocked from the terminal"
assert_not_contains "$screen" "$PASS" "the passphrase is not echoed"
screen=$(on_tty wrong-one env -u RPFS_PASSPHRASE "$RPFS" points "$V") && fail "a wrong typed passphrase opened the vault"
assert_contains "$screen" "wrong passphrase or key file" "a wrong typed passphrase"
msg "a passphrase typed on a terminal (echo off) opens the vault; a wrong one is refused"

# ---- mount and failback, with the passphrase
M=$T/mnt
mount_fg "$V" "$M" --cache "$T/cache1" --log "$T/mount1.log"
assert_eq "$(sum "$M/vm/points/$P1/disk0.raw")" "$SUM1" "mounted P1"
assert_eq "$(sum "$M/vm/points/$P2/disk0.raw")" "$SUM2" "mounted P2"
if tr '\0' ' ' <"/proc/$MPID/cmdline" | grep -qF -- "$PASS"; then fail "passphrase in the daemon's command line"; fi
unmount "$M"
if grep -qF -- "$PASS" "$MLOG" "$T/mount1.log" "$T"/.*.stderr 2>/dev/null; then fail "passphrase in a log"; fi
cp "$T/d1.raw" "$T/target.raw"
ok rpfs failback "$V" vm --target disk0="$T/target.raw" --point $P2 >/dev/null
assert_eq "$(sum "$T/target.raw")" "$SUM2" "delta failback to P2"
msg "mount reads and delta failback give the source's bytes"
# the NBD plugin unlocks it the same way
PLUGIN=${RPFS_NBDKIT_PLUGIN:-}
if [[ -n $PLUGIN && -f $PLUGIN ]] && command -v nbdkit >/dev/null && command -v qemu-img >/dev/null; then
    rm -f "$T/nbd.sock"
    nbdkit_env "$PLUGIN"
    "${NBDKIT_ENV[@]}" nbdkit -f -U "$T/nbd.sock" "$PLUGIN" vault="$V" vm=vm point=$P1 disk=disk0 cache="$T/cache-nbd" \
        >"$T/nbd.log" 2>&1 &
    NBDPID=$!
    track_pid "$NBDPID"
    for _ in $(seq 600); do [[ -S $T/nbd.sock ]] && break; kill -0 "$NBDPID" 2>/dev/null || break; sleep 0.05; done
    [[ -S $T/nbd.sock ]] || { cat "$T/nbd.log" >&2; fail "nbdkit did not start on the encrypted vault"; }
    qemu-img convert -f raw -O raw "nbd+unix:///?socket=$T/nbd.sock" "$T/nbd.raw" || fail "qemu-img convert over NBD"
    assert_file_sum "$T/nbd.raw" "$SUM1" "P1 over NBD from the encrypted vault"
    kill -TERM "$NBDPID"; wait "$NBDPID" 2>/dev/null || true
    if grep -qF -- "$PASS" "$T/nbd.log"; then fail "passphrase in nbdkit's log"; fi
    rm -f "$T/nbd.raw"
    msg "the NBD plugin serves the encrypted vault's point byte-exact"
else
    skip_part "NBD: the nbdkit plugin, nbdkit or qemu-img is missing"
fi
printf '#!/bin/bash\nenv >>"%s"\nexit 0\n' "$T/hook.env" >"$T/hook"
chmod +x "$T/hook"
ok rpfs replicate "$V" vm --disk "$T/d2.raw" --time 20261122T120000Z --hook "$T/hook" -q
[[ -s $T/hook.env ]] || fail "the hook did not run"
if grep -qF -- "$PASS" "$T/hook.env"; then fail "the passphrase reached a hook's environment"; fi
msg "the passphrase is in no log, daemon command line or hook environment"
mkdir -p "$T/mnt-nokey"
env -u RPFS_PASSPHRASE "$RPFS" mount "$V" "$T/mnt-nokey" -f --cache "$T/cache-x" </dev/null >"$T/nokey.log" 2>&1 &&
    fail "mount without a key succeeded"
assert_contains "$(cat "$T/nokey.log")" "no key was given" "mount without a key"

# ---- damage: never wrong bytes
vault_put() {  # VAULT NAME FILE
    if [[ $1 == azure://* ]]; then
        python3 "$_AZ_HELPER" put "$_AZ_CONTAINER" "$(_az_prefix "$1")/$2" "$3" >/dev/null
    else
        cp -- "$3" "$1/$2.tmp" && mv -f -- "$1/$2.tmp" "$1/$2"
    fi
}
# scan MFILE SRC: "EIO-COUNT" when every block reads as SRC's or fails with EIO
scan() {
    python3 - "$1" "$2" "$BS" <<'PY'
import errno, os, sys
mfile, src, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = os.path.getsize(src)
n = (size + bs - 1) // bs
try:
    fd = os.open(mfile, os.O_RDONLY)
except OSError as e:
    sys.exit("open: %s" % e) if e.errno != errno.EIO else print(n) or sys.exit(0)
s = open(src, "rb")
eio = 0
for i in range(n):
    try:
        got = os.pread(fd, bs, i * bs)
    except OSError as e:
        if e.errno != errno.EIO:
            sys.exit("block %d: %s" % (i, e))
        eio += 1
        continue
    s.seek(i * bs)
    if got != s.read(bs):
        sys.exit("block %d: WRONG BYTES" % i)
print(eio)
PY
}
damaged() {  # WHAT: export fails naming the damage, the mount gives EIO, never other bytes
    local what=$1 e1 e2
    expect_fail 1 rpfs export "$V" vm disk0 --point $P2 -o "$T/bad.raw"
    msg "$what: export: $ERR"
    "$RPFS" check "$V" --read-data >"$T/check.out" 2>&1 && fail "$what: check --read-data found no damage"
    msg "$what: check: $(grep -m1 -i "damage\|fail\|corrupt\|bad" "$T/check.out")"
    _N=$(( ${_N:-0} + 1 ))
    mount_fg "$V" "$M" --cache "$T/cache-d$_N"
    e1=$(scan "$M/vm/points/$P1/disk0.raw" "$T/d1.raw") || fail "$what: $e1"
    e2=$(scan "$M/vm/points/$P2/disk0.raw" "$T/d2.raw") || fail "$what: $e2"
    unmount "$M"
    (( e1 + e2 > 0 )) || fail "$what: no read failed"
    msg "$what: mount: $e1 + $e2 blocks EIO, all others the source's"
}
mapfile -t PACKS < <(vault_files "$V" | sort -rn | awk '$2 ~ /^packs\// {print $2}')
(( ${#PACKS[@]} >= 2 )) || fail "expected two packs or more, got ${#PACKS[@]}"
A=${PACKS[0]} B=${PACKS[1]}
vault_cat "$V" "$A" >"$T/A.orig"
vault_cat "$V" "$B" >"$T/B.orig"

python3 - "$T/A.orig" "$T/A.bad" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read()); d[len(d) // 2] ^= 0x01
open(sys.argv[2], "wb").write(d)
PY
vault_put "$V" "$A" "$T/A.bad"
damaged "a flipped byte in $A"
vault_put "$V" "$A" "$T/A.orig"

vault_put "$V" "$B" "$T/A.orig"
damaged "pack $B replaced by pack $A"
vault_put "$V" "$B" "$T/B.orig"

head -c $(( $(file_size "$T/A.orig") / 2 )) "$T/A.orig" >"$T/A.short"
vault_put "$V" "$A" "$T/A.short"
damaged "pack $A truncated"
vault_put "$V" "$A" "$T/A.orig"
export_check "$V" vm disk0 "$SUM2" --point $P2

vault_cat "$V" points/vm/$P1.json >"$T/p1.json"
vault_cat "$V" points/vm/$P2.json >"$T/p2.json"
vault_put "$V" points/vm/$P2.json "$T/p1.json"
expect_fail 1 rpfs export "$V" vm disk0 --point $P2 -o "$T/bad.raw"
msg "point objects swapped: $ERR"
head -c 100 "$T/p2.json" >"$T/p2.short"
vault_put "$V" points/vm/$P2.json "$T/p2.short"
expect_fail 1 rpfs export "$V" vm disk0 --point $P2 -o "$T/bad.raw"
msg "point object truncated: $ERR"
vault_put "$V" points/vm/$P2.json "$T/p2.json"
export_check "$V" vm disk0 "$SUM2" --point $P2
msg "objects restored: the vault reads whole again"
