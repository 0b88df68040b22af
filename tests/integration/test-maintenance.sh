#!/usr/bin/env bash
# rpfs status, vault section: the last prune and the last check.
# - before either ran: "never", JSON nulls, no Prometheus samples;
# - after prune: its time (within this run's clock window) and what it
#   dropped, in text, JSON and as rpfs_last_prune_timestamp_seconds;
# - after a clean check of the whole vault: OK, the check's time;
# - a point whose manifest chunk is missing (a point object put into the
#   vault by hand): check finds damage, status turns CRITICAL (exit 2)
#   with the reason in its summary line, rpfs_last_check_damaged 1; a clean
#   check of another VM alone does not clear it.
. "$(dirname "$0")/lib.sh"
need python3

V=$(vault_path v)
ok rpfs init "$V" >/dev/null
make_random "$T/d.raw" $((2 * 1024 * 1024)) d
NOW=$(date -u +%Y%m%dT%H%M%SZ)
ok rpfs replicate "$V" web --disk "$T/d.raw" --time "$NOW" >/dev/null
ok rpfs replicate "$V" db --disk "$T/d.raw" --time "$NOW" >/dev/null

OUT=$(ok rpfs status "$V")
assert_contains "$OUT" "maintenance: last prune never, last check never" "nothing recorded yet"
rpfs status "$V" --json | python3 -c '
import json, sys
v = json.load(sys.stdin)["vault"]
assert v["last_prune"] is None and v["last_check"] is None, v' || fail "status --json before prune/check"

T0=$(date +%s)
ok rpfs prune "$V" >/dev/null
T1=$(date +%s)
OUT=$(ok rpfs status "$V")
assert_contains "$OUT" "dropped 0 point(s)" "status: the last prune"
ok rpfs status "$V" --prometheus "$T/m.prom" >/dev/null
python3 - "$T/m.prom" "$T0" "$T1" <<'PY' || fail "rpfs_last_prune_timestamp_seconds"
import sys
vals = [float(l.split()[-1]) for l in open(sys.argv[1]) if l.startswith("rpfs_last_prune_timestamp_seconds{")]
assert len(vals) == 1 and int(sys.argv[2]) <= vals[0] <= int(sys.argv[3]), vals
PY
grep -q '^rpfs_last_check' "$T/m.prom" && fail "a check sample before any check"

ok rpfs check "$V" >/dev/null
OUT=$(ok rpfs status "$V")
assert_contains "$OUT" "last check 20" "status: the last check's time"
assert_contains "$OUT" "2 point(s) checked, 0 damaged)" "status: the last check's result"

# A point naming a manifest chunk (format 2: a tree node) the vault does not hold.
vault_cat "$V" "points/web/$NOW.json" | python3 -c '
import json, sys
p = json.load(sys.stdin)
p["id"] = "20261101T000000Z"; p["time"] = "2026-11-01T00:00:00Z"
d = p["disks"][0]
if "chunks" in d:
    d["chunks"] = ["0123456789abcdef0123456789abcdef"] * len(d["chunks"])
else:
    d["tree"] = "0123456789abcdef0123456789abcdef"  # format 2: a root node the vault does not hold
print(json.dumps(p))' >"$T/bad.json"
if [[ $V == azure://* ]]; then
    python3 "$_AZ_HELPER" put "$_AZ_CONTAINER" "$(_az_prefix "$V")/points/web/20261101T000000Z.json" "$T/bad.json"
else
    cp "$T/bad.json" "$V/points/web/20261101T000000Z.json"
fi
RC=0; rpfs check "$V" >"$T/check.out" 2>&1 || RC=$?
assert_eq "$RC" 1 "check finds the damage"
assert_contains "$(cat "$T/check.out")" "manifest chunk missing" "check names it"
RC=0; OUT=$(rpfs status "$V") || RC=$?
assert_eq "$RC" 2 "status after a check found damage: CRITICAL"
assert_contains "$(head -1 <<<"$OUT")" "RPFS CRITICAL - the last check found damage" "the summary line says why"
assert_contains "$OUT" "DAMAGE FOUND" "the maintenance line"
ok rpfs check "$V" db >/dev/null
RC=0; rpfs status "$V" >/dev/null || RC=$?
assert_eq "$RC" 2 "a clean check of one VM does not clear the damage"
RC=0; rpfs status "$V" --prometheus "$T/m.prom" >/dev/null || RC=$?
assert_contains "$(cat "$T/m.prom")" "rpfs_last_check_damaged{vault=" "Prometheus: the check"
grep -q '^rpfs_last_check_damaged{.*} 1$' "$T/m.prom" || fail "rpfs_last_check_damaged is not 1"
exit 0
