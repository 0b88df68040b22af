#!/usr/bin/env bash
# A mount whose vault goes away, hangs or misbehaves: it never shows an
# empty tree, and every operation answers within --timeout.
#
# Directory vault, mounted with --timeout 3:
# - `rsync -a MNT/ copy/` copies every point; the vault directory is moved
#   away; `ls MNT` still lists both VMs (the last listing), and
#   `rsync -a --delete MNT/ copy/` deletes nothing from copy/ (the
#   behaviour issue 13 saw: an empty root, and rsync deleted every point);
#   a point file whose blocks were never read still opens (not ENOENT) and
#   its read fails with EIO; with the directory back, the reads work and a
#   point replicated meanwhile shows up.
# Azure vault (a private Azurite behind fault_proxy.py on loopback),
# mounted through the proxy with --timeout 4:
# - Azurite under SIGSTOP (connections accepted, never answered): `ls MNT`,
#   `ls MNT/b/points` and `cat point.json` answer within the timeout (plus
#   2 s of slack for a loaded machine) from the last listing; a read of
#   blocks never fetched fails with EIO within the same bound; after
#   SIGCONT they read back exactly;
# - the proxy sends half a response body, then nothing: EIO within the
#   bound; the proxy refuses connections: EIO within the bound; back to
#   normal, the same blocks read back exactly;
# - `rsync -a MNT/ copy/`, Azurite stopped, `rsync -a --delete MNT/ copy/`:
#   nothing in copy/ is deleted;
# - the daemon exits 0 after fusermount3 -u.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib-mount.sh"
need_fuse
need python3 rsync curl

P1=20261201T100000Z P2=20261201T101500Z
make_random "$T/a.raw" $(( 4 * 1024 * 1024 )) vanish-a
make_random "$T/b.raw" $(( 32 * 1024 * 1024 )) vanish-b
SUMA=$(sum "$T/a.raw") SUMB=$(sum "$T/b.raw")

# elapsed CMD...: run CMD, leave its exit status in $RC and the seconds it
# took in $SECS (it must not hang: 60 s at most).
elapsed() {
    local t0 t1
    t0=$(date +%s.%N)
    RC=0
    timeout 60 "$@" >"$T/.elapsed.out" 2>&1 || RC=$?
    t1=$(date +%s.%N)
    SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
    (( RC != 124 )) || fail "hung for 60 s: $*"
}
# within SECS BOUND WHAT
within() { awk -v s="$1" -v b="$2" 'BEGIN {exit !(s <= b)}' || fail "$3 took $1 s (bound $2 s)"; }

# copy_check DIR: DIR holds both VMs' points, byte for byte.
copy_check() {
    assert_file_sum "$1/a/points/$P1/disk0.raw" "$SUMA" "$2: copy of a"
    assert_file_sum "$1/b/points/$P1/disk0.raw" "$SUMB" "$2: copy of b"
    [[ -f $1/a/points/$P1/point.json && -L $1/a/latest && -L $1/b/latest ]] ||
        fail "$2: point.json or latest missing from the copy: $(cd "$1" && find . | sort | head -20)"
}

# rsync_vanished MNT COPY WHAT: rsync --delete from a mount whose vault is
# gone: whatever rsync's exit status, nothing is deleted from COPY.
rsync_vanished() {
    local before after rc=0
    before=$(cd "$2" && find . -path ./.rpfs -prune -o -print | sort)
    rsync -a --delete "$1/" "$2/" >"$T/rsync2.out" 2>&1 || rc=$?
    after=$(cd "$2" && find . -path ./.rpfs -prune -o -print | sort)
    msg "$3: rsync -a --delete with the vault gone: exit $rc; $(wc -l <<<"$after") entries kept"
    [[ $before == "$after" ]] || fail "$3: rsync --delete changed the copy: $(diff <(echo "$before") <(echo "$after") | head -10)"
    copy_check "$2" "$3"
}

# ---- a directory vault moved away ------------------------------------------------------
V=$T/vault
ok rpfs init "$V" >/dev/null
ok rpfs replicate "$V" a --disk "$T/a.raw" --time $P1 -q
ok rpfs replicate "$V" b --disk "$T/b.raw" --time $P1 -q
M=$T/mnt
mount_fg "$V" "$M" --cache "$T/cache-dir" --timeout 3
DLOG=$MLOG
mkdir -p "$T/copy-dir"
rsync -a "$M/" "$T/copy-dir/" || fail "rsync -a from the mount"
copy_check "$T/copy-dir" "directory vault"
mv "$V" "$T/vault.away"
at_exit "[[ -d '$T/vault.away' ]] && mv '$T/vault.away' '$V'"
sleep 2.5 # past the catalog's TTL
elapsed ls "$M"
assert_eq "$RC" 0 "ls of the mount with its vault moved away"
assert_eq "$(tr '\n' ' ' <"$T/.elapsed.out")" "a b " "ls of the mount with its vault moved away (the last listing)"
rsync_vanished "$M" "$T/copy-dir" "directory vault"
grep -q "cannot be listed" "$DLOG" || fail "the daemon did not log that the vault cannot be listed: $(cat "$DLOG")"
# A file that can no longer be read opens, and its read fails with EIO.
# (b's blocks were cached by the first rsync: a fresh mount would not start.)
r=$(timeout 30 "${MH[@]}" timed-read "$M/b/points/$P1/point.json" 0 100) || fail "timed-read: $r"
assert_eq "${r%% *}" ok "point.json of a vanished vault (kept in memory)"
mv "$T/vault.away" "$V"
ok rpfs replicate "$V" b --disk "$T/a.raw" --time $P2 -q
sleep 2.5
[[ -f $M/b/points/$P2/disk0.raw ]] || fail "a point replicated while the vault was away does not show once it is back: $(ls "$M/b/points")"
assert_eq "$(msum "$M/b/points/$P2/disk0.raw")" "$SUMA" "the new point reads back"
grep -q "can be listed again" "$DLOG" || fail "the daemon did not log that the vault is back"
unmount_ok "$M"

# A vault that is gone when a file is opened: open works, the read is EIO.
mount_fg "$V" "$M" --cache "$T/cache-dir2" --timeout 3
mv "$V" "$T/vault.away"
sleep 2.5
elapsed "${MH[@]}" timed-read "$M/b/points/$P1/disk0.raw" $(( 9 * 1024 * 1024 )) 4096 "$T/b.raw"
r=$(cat "$T/.elapsed.out")
msg "read of a block never fetched, vault moved away: $r"
assert_eq "${r%% *}" EIO "read of a block never fetched, vault moved away"
within "$SECS" 5 "that read"
mv "$T/vault.away" "$V"
assert_eq "$(msum "$M/b/points/$P1/disk0.raw")" "$SUMB" "b once the vault is back"
unmount_ok "$M"

# ---- Azure: a private Azurite behind a misbehaving proxy ---------------------------------
private_azurite || { skip_part "no Azurite binary (tests/run.sh installs it): the Azure part"; exit 0; }
az2_start
export AZURE_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=$EP2;"
unset AZURE_STORAGE_KEY AZURE_STORAGE_SAS_TOKEN RPFS_AZURE_ENDPOINT RPFS_AZURE_RETRY_SECONDS
export RPFS_CACHE_DIR=$T/azcache
PX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PX_MODE=$T/proxy.mode
echo pass >"$PX_MODE"
python3 "$(dirname "$0")/fault_proxy.py" "$PX_PORT" "$AZ2_PORT" "$PX_MODE" 280 >"$T/proxy.log" 2>&1 &
track_pid $!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$PX_PORT/devstoreaccount1?comp=list" && break; sleep 0.1; done
PX="http://127.0.0.1:$PX_PORT/devstoreaccount1"
AV=azure://devstoreaccount1/vanish/v
ok rpfs init "$AV" >/dev/null
ok rpfs replicate "$AV" a --disk "$T/a.raw" --time $P1 -q
ok rpfs replicate "$AV" b --disk "$T/b.raw" --time $P1 -q

TO=4 BOUND=6
mount_fg "$AV" "$M" --cache "$T/cache-az" --timeout $TO --endpoint "$PX"
ALOG=$MLOG
assert_eq "$(msum "$M/a/latest/disk0.raw")" "$SUMA" "a through the proxy"

# Azurite stopped with SIGSTOP: it accepts connections and never answers.
kill -STOP "$AZPID"
at_exit "kill -CONT $AZPID 2>/dev/null"
sleep 2.5
elapsed ls "$M"
msg "ls with Azurite under SIGSTOP: $SECS s: $(tr '\n' ' ' <"$T/.elapsed.out")"
assert_eq "$RC" 0 "ls with Azurite under SIGSTOP"
assert_eq "$(tr '\n' ' ' <"$T/.elapsed.out")" "a b " "ls with Azurite under SIGSTOP"
within "$SECS" $BOUND "ls with Azurite under SIGSTOP"
elapsed ls "$M/b/points"
msg "ls b/points with Azurite under SIGSTOP: $SECS s"
assert_eq "$(cat "$T/.elapsed.out")" "$P1" "ls b/points with Azurite under SIGSTOP"
within "$SECS" $BOUND "ls b/points with Azurite under SIGSTOP"
elapsed cat "$M/b/latest/point.json"
msg "cat point.json with Azurite under SIGSTOP: $SECS s"
assert_eq "$RC" 0 "cat point.json with Azurite under SIGSTOP"
within "$SECS" $BOUND "cat point.json with Azurite under SIGSTOP"
# timed_eio WHAT OFFSET: a 4 KiB read of b at OFFSET (never fetched) fails
# with EIO within the bound
timed_eio() {
    elapsed "${MH[@]}" timed-read "$M/b/points/$P1/disk0.raw" "$2" 4096 "$T/b.raw"
    local r; r=$(cat "$T/.elapsed.out")
    msg "read with $1: $r (command $SECS s)"
    assert_eq "${r%% *}" EIO "read with $1"
    within "$SECS" $BOUND "read with $1"
}
timed_eio "Azurite under SIGSTOP" $(( 1 * 1024 * 1024 ))
kill -CONT "$AZPID"
r=$(timeout 60 "${MH[@]}" timed-read "$M/b/points/$P1/disk0.raw" $(( 1 * 1024 * 1024 )) 4096 "$T/b.raw") || fail "timed-read: $r"
assert_eq "${r%% *}" ok "the same read after SIGCONT"

echo half >"$PX_MODE"
timed_eio "half a response body" $(( 9 * 1024 * 1024 ))
echo refuse >"$PX_MODE"
timed_eio "connections refused" $(( 17 * 1024 * 1024 ))
echo pass >"$PX_MODE"
sleep 0.5
for off in 9 17; do
    r=$(timeout 60 "${MH[@]}" timed-read "$M/b/points/$P1/disk0.raw" $(( off * 1024 * 1024 )) 4096 "$T/b.raw") ||
        fail "timed-read: $r"
    assert_eq "${r%% *}" ok "the read at $off MiB with the proxy back to normal"
done

# rsync from a mount whose Azurite is gone deletes nothing.
mkdir -p "$T/copy-az"
rsync -a "$M/" "$T/copy-az/" || fail "rsync -a from the Azure mount"
copy_check "$T/copy-az" "Azure vault"
az2_stop
sleep 2.5
elapsed ls "$M"
assert_eq "$(tr '\n' ' ' <"$T/.elapsed.out")" "a b " "ls with Azurite stopped"
rsync_vanished "$M" "$T/copy-az" "Azure vault"
grep -q "cannot be listed" "$ALOG" || fail "the daemon did not log that the vault cannot be listed"
elapsed fusermount3 -u "$M"
unmount_ok "$M"
msg "unmount with Azurite stopped: fusermount3 $SECS s, the daemon exited 0"
