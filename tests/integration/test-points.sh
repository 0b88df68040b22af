#!/usr/bin/env bash
# Recovery points: several VMs, crash/app types, groups, --time, disk names;
# `points` as a table and as JSON; export --point ID|latest|latest-app chooses
# the right point (each point's disks differ, so content tells); an existing ID
# is refused; unknown VM/disk/point and bad --time are errors; --help and usage
# errors.
. "$(dirname "$0")/lib.sh"
need python3

MB=$(( 1024 * 1024 ))
# Small distinct disks: 4 MiB random + holes, one version per (vm, point, disk).
mk() {  # NAME SEED
    truncate -s $(( 6 * MB )) "$T/$1"
    make_random "$T/.r" $(( 2 * MB )) "$2"
    dd if="$T/.r" of="$T/$1" bs=1M seek=1 conv=notrunc status=none
    rm -f "$T/.r"
}

V=$(vault_path vault)
ok rpfs init "$V"
json_points "$V" >"$T/empty.json"
assert_eq "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$T/empty.json")" 0 \
    "a new vault has no points"

T1=20261122T100000Z T2=20261122T101500Z T3=20261122T103000Z T4=20261122T104500Z

# web: T1 crash, T2 app, T3 crash; two named disks
for t in 1 2 3; do mk "web-os-$t.raw" "web-os-$t"; mk "web-data-$t.raw" "web-data-$t"; done
ok rpfs replicate "$V" web --disk "os=$T/web-os-1.raw" --disk "data=$T/web-data-1.raw" --time $T1
ok rpfs replicate "$V" web --disk "os=$T/web-os-2.raw" --disk "data=$T/web-data-2.raw" --time $T2 --app-consistent
ok rpfs replicate "$V" web --disk "os=$T/web-os-3.raw" --disk "data=$T/web-data-3.raw" --time $T3

# db: group g1, T1 app, T4 crash; default disk names, 3 disks
for t in 1 4; do for d in 0 1 2; do mk "db-$d-$t.raw" "db-$d-$t"; done; done
ok rpfs replicate "$V" db --disk "$T/db-0-1.raw" --disk "$T/db-1-1.raw" --disk "$T/db-2-1.raw" \
    --time $T1 --app-consistent --group g1
ok rpfs replicate "$V" db --group g1 --time $T4 --disk "$T/db-0-4.raw" --disk "$T/db-1-4.raw" --disk "$T/db-2-4.raw"

# app: group g1, crash only; mixed naming (named, then positional)
mk app-a.raw app-a; mk app-b.raw app-b
ok rpfs replicate "$V" app --disk "boot=$T/app-a.raw" --disk "$T/app-b.raw" --time $T1 --group g1

# a VM name that sorts before the others, replicated last, without --time
mk zz.raw zz
ok rpfs replicate "$V" aaa --disk "$T/zz.raw"

# --- points --json ------------------------------------------------------------
J=$(json_points "$V")
J="$J" python3 - "$T1" "$T2" "$T3" "$T4" <<'EOF' || fail "points --json content: $J"
import json, os, re, sys, datetime
T1, T2, T3, T4 = sys.argv[1:5]
pts = json.loads(os.environ["J"])
key = [(p["vm"], p["id"]) for p in pts]
assert key == sorted(key), ("not sorted by vm then id", key)
for p in pts:
    assert set(p) >= {"vm", "id", "time", "type", "group", "disks"}, p
    assert re.fullmatch(r"\d{8}T\d{6}Z", p["id"]), p["id"]
    # "time" names the same instant as the ID (basic or extended ISO 8601)
    t = re.sub(r"[-:]", "", p["time"])
    t = re.sub(r"\.\d+", "", t).replace("+0000", "Z")
    assert t == p["id"], ("time vs id", p["time"], p["id"])
    assert p["type"] in ("crash", "app"), p
    for d in p["disks"]:
        assert set(d) >= {"name", "size", "format"}, d
        assert d["size"] == 6 << 20, d
        assert "raw" in d["format"].lower(), d
want = [
    ("aaa", None, "crash", None, ["disk0"]),
    ("db", T1, "app", "g1", ["disk0", "disk1", "disk2"]),
    ("db", T4, "crash", "g1", ["disk0", "disk1", "disk2"]),
    ("web", T1, "crash", None, ["os", "data"]),
    ("web", T2, "app", None, ["os", "data"]),
    ("web", T3, "crash", None, ["os", "data"]),
]
app = [p for p in pts if p["vm"] == "app"]
assert len(app) == 1 and [d["name"] for d in app[0]["disks"]] == ["boot", "disk1"] \
    or len(app) == 1 and [d["name"] for d in app[0]["disks"]] == ["boot", "disk0"], \
    ("NAME= then positional disk names", app)
assert app[0]["group"] == "g1" and app[0]["type"] == "crash" and app[0]["id"] == T1, app
rest = [p for p in pts if p["vm"] != "app"]
assert len(rest) == len(want), (len(rest), [(p["vm"], p["id"]) for p in rest])
for p, (vm, pid, typ, grp, disks) in zip(rest, want):
    assert p["vm"] == vm, (p, vm)
    if pid:
        assert p["id"] == pid, (p, pid)
    assert p["type"] == typ, (p, typ)
    assert p["group"] == grp, (p, grp)
    assert [d["name"] for d in p["disks"]] == disks, (p, disks)
# the point made without --time is "now" (within a day of the clock)
aaa = rest[0]
now = datetime.datetime.now(datetime.timezone.utc)
at = datetime.datetime.strptime(aaa["id"], "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
assert abs((now - at).total_seconds()) < 86400, ("default point time", aaa["id"], now)
EOF

# points VM --json: only that VM
J=$(json_points "$V" web)
python3 -c 'import json,sys; p=json.loads(sys.argv[1]); assert [x["vm"] for x in p]==["web"]*3, p' "$J" ||
    fail "points VAULT web --json: $J"

# --- points table ---------------------------------------------------------------
TAB=$(rpfs points "$V") || fail "points failed"
for s in web db app aaa $T1 $T2 $T3 $T4 g1; do
    assert_contains "$TAB" "$s" "points table"
done
TABW=$(rpfs points "$V" web) || fail "points web failed"
for s in $T1 $T2 $T3; do assert_contains "$TABW" "$s" "points web table"; done
assert_not_contains "$TABW" "db" "points web table"
assert_not_contains "$TABW" "$T4" "points web table"
assert_contains "$(grep -F "$T2" <<<"$TABW")" "app" "points table marks the app-consistent point"

# --- export chooses the right point -----------------------------------------------
export_check "$V" web os   "$(sum "$T/web-os-1.raw")"   --point $T1
export_check "$V" web data "$(sum "$T/web-data-1.raw")" --point $T1
export_check "$V" web os   "$(sum "$T/web-os-2.raw")"   --point $T2
export_check "$V" web data "$(sum "$T/web-data-3.raw")" --point $T3
export_check "$V" web os   "$(sum "$T/web-os-3.raw")"   --point latest
export_check "$V" web data "$(sum "$T/web-data-3.raw")" --point latest
export_check "$V" web os   "$(sum "$T/web-os-3.raw")"          # default: latest
export_check "$V" web os   "$(sum "$T/web-os-2.raw")"   --point latest-app
export_check "$V" web data "$(sum "$T/web-data-2.raw")" --point latest-app
export_check "$V" db disk0 "$(sum "$T/db-0-1.raw")" --point latest-app
export_check "$V" db disk2 "$(sum "$T/db-2-4.raw")" --point latest
export_check "$V" db disk1 "$(sum "$T/db-1-1.raw")" --point $T1
export_check "$V" app boot "$(sum "$T/app-a.raw")"
export_check "$V" aaa disk0 "$(sum "$T/zz.raw")"
export_check_stdout "$V" web data "$(sum "$T/web-data-2.raw")" --point latest-app
# a character device or a FIFO is written in place, never replaced by a file
ok rpfs export "$V" web os -o /dev/null
[[ -c /dev/null ]] || { rm -f /dev/null; mknod -m 666 /dev/null c 1 3; fail "export -o /dev/null replaced /dev/null"; }
mkfifo "$T/fifo"
timeout 60 sh -c 'exec sha256sum <"$1" >"$1.sum"' sh "$T/fifo" &
ok rpfs export "$V" web data --point $T1 -o "$T/fifo"
wait $! || fail "nothing read the FIFO's contents"
assert_eq "$(cut -d' ' -f1 "$T/fifo.sum")" "$(sum "$T/web-data-1.raw")" "export into a FIFO"
[[ -p $T/fifo ]] || fail "export replaced the FIFO with a file"
mkdir "$T/outdir"
expect_fail 1 rpfs export "$V" web os -o "$T/outdir"
expect_err_contains "directory"

# --- refusals -----------------------------------------------------------------
BEFORE=$(vault_state "$V")
expect_fail 1 rpfs replicate "$V" web --disk "os=$T/web-os-1.raw" --disk "data=$T/web-data-1.raw" --time $T2
expect_err_contains $T2
assert_eq "$(vault_state "$V")" "$BEFORE" "vault unchanged after a refused duplicate ID"
export_check "$V" web os "$(sum "$T/web-os-2.raw")" --point $T2   # the old point is intact
# the same ID for another VM is fine
ok rpfs replicate "$V" other --disk "$T/zz.raw" --time $T2
BEFORE=$(vault_state "$V")

expect_fail 1 rpfs export "$V" nosuchvm disk0 -o "$T/x.raw"
expect_err_contains nosuchvm
expect_fail 1 rpfs export "$V" web nosuchdisk -o "$T/x.raw"
expect_err_contains nosuchdisk
expect_fail 1 rpfs export "$V" web disk0 -o "$T/x.raw"   # web's disks are os and data
expect_err_contains disk0
expect_fail 1 rpfs export "$V" web os --point 20200101T000000Z -o "$T/x.raw"
expect_err_contains 20200101T000000Z
expect_fail 1 rpfs export "$V" app boot --point latest-app -o "$T/x.raw"  # app has no app point
expect_err_contains app
[[ ! -e $T/x.raw ]] || fail "a failed export left its output file behind"

for bad in 2026-11-22T10:15:00Z garbage 20261322T101500Z 20261122T106000Z 20261122 ""; do
    expect_fail any rpfs replicate "$V" web --disk "os=$T/web-os-1.raw" --time "$bad"
    # the message says what is wrong: the value or the option
    grep -qiF -e time ${bad:+-e "$bad"} <<<"$ERR" || fail "bad --time '$bad': message names neither: $ERR"
done
expect_fail any rpfs export "$V" web os --point "2026-11-22T10:15:00Z" -o "$T/x.raw"
expect_fail any rpfs export "$V" web os --point garbage -o "$T/x.raw"
# two disks with the same name in one point
expect_fail any rpfs replicate "$V" web --disk "a=$T/web-os-1.raw" --disk "a=$T/web-data-1.raw" --time $T4
assert_eq "$(vault_state "$V")" "$BEFORE" "vault unchanged after refused commands"

# --- help and usage errors ------------------------------------------------------
for c in "" init replicate points export; do
    out=$(rpfs $c --help 2>&1) || fail "rpfs $c --help exited non-zero"
    [[ -n $out ]] || fail "rpfs $c --help printed nothing"
    [[ -z $c ]] || assert_contains "$out" "$c" "rpfs $c --help"
done
expect_fail 2 rpfs
expect_fail 2 rpfs nosuchcommand
expect_err_contains nosuchcommand
expect_fail 2 rpfs replicate "$V" web                         # no --disk
expect_fail 2 rpfs replicate "$V" web --disk "$T/zz.raw" --no-such-option
expect_err_contains no-such-option
expect_fail 2 rpfs export "$V" web os                         # no -o
expect_fail 2 rpfs points
expect_fail 2 rpfs init
expect_fail 2 rpfs replicate "$V" web --disk                  # option without value
assert_eq "$(vault_state "$V")" "$BEFORE" "vault unchanged after usage errors"
