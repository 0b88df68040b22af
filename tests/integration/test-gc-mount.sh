#!/usr/bin/env bash
# A mount keeps reading exact bytes while prune collects garbage under it
# (docs/FORMAT.md "Garbage collection": a reader that finds a pack or an
# index segment gone reloads the index and reads the block from its new
# place). 6 points of a 4 MiB disk; the mount (a 1 MiB block cache, so
# reads reach the vault) opens a point (held) before any prune; a reader re-reads it (page cache dropped each time) in a loop
# while 5 rounds of new point + prune rewrite and delete the packs its
# blocks were in. Every read is exact; a read after the last GC too; the
# mount logs no I/O error.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need python3

MB=$(( 1024 * 1024 ))
V=$(vault_path vault)
ok rpfs init "$V"
make_random "$T/disk.raw" $(( 4 * MB )) base
N=0
new_point() {
    N=$(( N + 1 ))
    overwrite_blocks "$T/disk.raw" 65536 "p$N" $(seq $(( N % 5 * 8 )) $(( N % 5 * 8 + 9 )))
    ID=$(date -u -d "2026-01-01 + $N min" +%Y%m%dT%H%M%SZ)
    ok rpfs replicate "$V" web --disk "$T/disk.raw" --time "$ID" -q
}
for _ in 1 2 3 4 5 6; do new_point; done
ok rpfs policy "$V" --keep-last 3 >/dev/null
P=$(point_ids "$V" web | sed -n 4p)   # the oldest of the 3 kept now
ok rpfs hold "$V" web "$P" -q         # and for the rounds to come
export_check "$V" web disk0 "$(ok rpfs export "$V" web disk0 --point "$P" -o - | sum -)" --point "$P"
WANT=$(ok rpfs export "$V" web disk0 --point "$P" -o - | sum -)

M=$T/mnt
mount_fg "$V" "$M" --cache "$T/cache" --cache-size 1M
F=$M/web/points/$P/disk0.raw
[[ -f $F ]] || fail "no $F"
cat >"$T/reader.py" <<'PY'
import hashlib, os, sys, time
path, want, stop, log = sys.argv[1:5]
n = bad = 0
with open(log, "w") as out:
    while True:
        last = os.path.exists(stop)
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        h = hashlib.sha256()
        try:
            while True:
                b = os.read(fd, 1 << 20)
                if not b:
                    break
                h.update(b)
            ok = h.hexdigest() == want
        except OSError as e:
            ok = False
            print("error", e, file=out, flush=True)
        os.close(fd)
        n += 1
        bad += not ok
        print("read", n, "ok" if ok else "BAD", file=out, flush=True)
        if last:
            break
print(n, bad)
PY
python3 "$T/reader.py" "$F" "$WANT" "$T/stop" "$T/reads.log" >"$T/reader.out" 2>&1 &
rpid=$!
track_pid "$rpid"
for _ in 1 2 3 4 5; do
    new_point
    ok rpfs prune "$V" -q
done
touch "$T/stop"
wait "$rpid" || fail "reader failed: $(cat "$T/reader.out")"
read -r n bad <"$T/reader.out"
msg "$n reads of $P during 5 collections, $bad bad"
assert_gt "$n" 1 "the reader read during the collections"
assert_eq "$bad" 0 "every read during GC exact"
python3 - "$F" "$WANT" <<'PY' || fail "a read after the last GC differs"
import hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
h = hashlib.sha256()
while b := os.read(fd, 1 << 20):
    h.update(b)
sys.exit(h.hexdigest() != sys.argv[2])
PY
assert_eq "$(point_ids "$V" web | grep -c "$P")" 1 "the held point stays"
unmount_ok "$M"
assert_not_contains "$(cat "$MLOG")" "Input/output error" "the mount logged no I/O error"
out=$(ok rpfs check "$V" --read-data)
assert_contains "$out" "clean" "check --read-data"
msg "ok"
