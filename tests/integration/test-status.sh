#!/bin/bash
# rpfs status: the monitoring-plugin exit codes and perfdata for a fresh, a
# late, a very late and a missing VM and an unreachable vault (a directory
# removed; with RPFS_TEST_VAULT=azurite, a private Azurite stopped with
# SIGSTOP, then its port closed); --warning/--critical; --json; the
# Prometheus textfile (promtool check metrics, and its values read back);
# a skewed client clock (faketime).
. "$(dirname "$0")/lib.sh"
need python3 promtool faketime

V=$(vault_path v)
ok rpfs init "$V" -q
truncate -s 4M "$T/d.img"
dd if=/dev/urandom of="$T/d.img" bs=64K count=8 conv=notrunc status=none
now=$(date -u +%s)
id_ago() { date -u -d "@$((now - $1))" +%Y%m%dT%H%M%SZ; }
ok rpfs replicate "$V" web01 --disk "$T/d.img" --time "$(id_ago 120)" --app-consistent -q   # fresh
ok rpfs replicate "$V" late01 --disk "$T/d.img" --time "$(id_ago 1200)" -q                  # 20 min
ok rpfs replicate "$V" old01 --disk "$T/d.img" --time "$(id_ago 2400)" -q                   # 40 min

# status ARGS...: run rpfs status; stdout in $OUT, exit status in $RC.
status() {
    RC=0
    OUT=$("$RPFS" status "$@" 2>"$T/status.err") || RC=$?
    _check_sanitizer "$T/status.err" "status $*"
}
# perf NAME: the value (digits) of perfdata NAME in $OUT's first line.
perf() { head -1 <<<"$OUT" | grep -oE "'$1'=[-0-9.]+" | cut -d= -f2; }

status "$V" web01
assert_eq "$RC" 0 "fresh VM: exit OK"
assert_contains "$(head -1 <<<"$OUT")" "RPFS OK - 1 VM within RPO |" "fresh summary"
head -1 <<<"$OUT" | grep -qE "'web01_age'=[0-9]+s;900;1800" || fail "fresh perfdata: $OUT"
age=$(perf web01_age)
assert_ge "$age" 110 "fresh age from the point ID"
assert_le "$age" 600 "fresh age from the point ID"
assert_eq "$(perf web01_points)" 1 "points perfdata"

status "$V" late01
assert_eq "$RC" 1 "20 min old: WARNING"
assert_contains "$(head -1 <<<"$OUT")" "RPFS WARNING - late01: newest point 20m old (RPO 15m)" "late summary"
head -1 <<<"$OUT" | grep -qE "'late01_age'=1[0-9]{3}s;900;1800" || fail "late perfdata: $OUT"

status "$V" old01
assert_eq "$RC" 2 "40 min old: CRITICAL"
assert_contains "$(head -1 <<<"$OUT")" "RPFS CRITICAL - old01: newest point 40m old (critical 30m)" "very late"

status "$V" web01 ghost
assert_eq "$RC" 2 "a VM without a point: CRITICAL"
assert_contains "$(head -1 <<<"$OUT")" "ghost: no recovery point" "missing VM named"
assert_eq "$(perf ghost_points)" 0 "missing VM perfdata"

status "$V"
assert_eq "$RC" 2 "all VMs: the worst"
for vm in web01 late01 old01; do assert_contains "$OUT" "$vm: " "all VMs listed"; done
assert_eq "$(perf packs)" "$(vault_files "$V" | grep -c '\.pack$')" "packs perfdata"
assert_eq "$(perf index_segments)" "$(vault_files "$V" | grep -c '\.idx$')" "index segments perfdata"
assert_eq "$(perf stored)" "$(vault_files "$V" | awk '$2 ~ /\.pack$/ {s += $1} END {print s}')" "stored bytes"
assert_eq "$(perf logical)" $((3 * 8 * 65536)) "logical bytes: 8 data blocks in each of 3 points"
python3 -c 'import sys; assert 2.9 <= float(sys.argv[1]) <= 3' "$(perf dedup)" ||
    fail "three identical points dedup about 3x (manifest chunks count as stored): $(perf dedup)"

status "$V" late01 old01 --warning 45m --critical 1h
assert_eq "$RC" 0 "thresholds from the command line"
head -1 <<<"$OUT" | grep -qE "'old01_age'=2[0-9]{3}s;2700;3600" || fail "overridden thresholds in perfdata: $OUT"
status "$V" old01 --warning 2700
assert_eq "$RC" 0 "--critical defaults to twice --warning"
status "$V" --warning 10x
assert_eq "$RC" 3 "usage error: UNKNOWN"

# The thresholds come from the VM's policy (rpfs policy): an RPO of 30 min
# for late01 makes its 20-min-old point OK and moves the perfdata limits;
# the vault default then applies to the others; the command line still wins.
ok rpfs policy "$V" --vm late01 --rpo 30m -q
status "$V" late01
assert_eq "$RC" 0 "20 min old under a 30 min RPO policy: OK"
head -1 <<<"$OUT" | grep -qE "'late01_age'=1[0-9]{3}s;1800;3600" || fail "policy thresholds in perfdata: $OUT"
ok rpfs policy "$V" --rpo 50m -q
status "$V" old01
assert_eq "$RC" 0 "40 min old under the vault default's 50 min RPO: OK"
status "$V" old01 --warning 10m
assert_eq "$RC" 2 "--warning overrides the policy (critical 2x 10m)"
ok rpfs policy "$V" --rpo 15m -q
ok rpfs policy "$V" --vm late01 --rpo 15m -q

# JSON
status "$V" --json
assert_eq "$RC" 2 "--json keeps the exit status"
python3 - "$OUT" <<'EOF' || fail "--json: $OUT"
import json, sys
d = json.loads(sys.argv[1])
assert d["status"] == "CRITICAL" and d["exit"] == 2, d
v = {x["vm"]: x for x in d["vms"]}
assert v["web01"]["status"] == "OK" and v["web01"]["newest_app"] == v["web01"]["newest"], v
assert v["late01"]["status"] == "WARNING" and v["old01"]["status"] == "CRITICAL", v
assert d["vault"]["points"] == 3 and d["vault"]["packs"] >= 1, d
EOF

# Prometheus textfile: written atomically, parses, says what the plugin said.
P=$T/prom/rpfs.prom
mkdir -p "$T/prom"
status "$V" --prometheus "$P"
assert_eq "$RC" 2 "--prometheus keeps the exit status"
promtool check metrics <"$P" || fail "promtool check metrics: $(cat "$P")"
python3 - "$P" "$V" <<'EOF' || fail "prometheus values: $(cat "$P")"
import re, sys
path, vault = sys.argv[1], sys.argv[2]
samples, types = {}, {}
for line in open(path):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ")
        types[name] = kind
        continue
    if line.startswith("#") or not line:
        continue
    m = re.fullmatch(r'([a-z_]+)\{([^}]*)\} (\S+)', line)
    assert m, line
    labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
    assert labels["vault"] == vault, labels
    assert m.group(1) in types, "no TYPE for " + m.group(1)
    samples[(m.group(1), labels.get("vm"), labels.get("type"))] = float(m.group(3))
assert samples[("rpfs_up", None, None)] == 1
assert samples[("rpfs_status", None, None)] == 2
assert 110 <= samples[("rpfs_point_age_seconds", "web01", "crash")] <= 600
assert samples[("rpfs_point_age_seconds", "web01", "app")] == samples[("rpfs_point_age_seconds", "web01", "crash")]
assert 2390 <= samples[("rpfs_point_age_seconds", "old01", "crash")] <= 2900
assert ("rpfs_point_age_seconds", "late01", "app") not in samples
assert samples[("rpfs_vm_status", "late01", None)] == 1
assert samples[("rpfs_points", "old01", None)] == 1
assert 2.9 <= samples[("rpfs_vault_dedup_ratio", None, None)] <= 3
EOF
assert_eq "$(find "$T/prom" -name '.tmp-*' | wc -l)" 0 "no temporary left beside the textfile"

# A client clock 5 minutes ahead of the vault's: told, and a WARNING.
status_skewed() {
    RC=0
    OUT=$(ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 faketime -f +5m "$RPFS" status "$@" \
          2>"$T/status.err") || RC=$?
}
status_skewed "$V" web01
assert_eq "$RC" 1 "skewed clock: WARNING"
assert_contains "$(head -1 <<<"$OUT")" "this host's clock is 30" "skew reported"
head -1 <<<"$OUT" | grep -qE "'web01_age'=(1[1-9][0-9]|[2-5][0-9]{2})s" ||
    fail "ages are measured on the vault's clock, not the skewed one: $OUT"

# Unreachable vaults: UNKNOWN, and the textfile says rpfs_up 0.
if [[ $TEST_VAULT == dir ]]; then
    rm -rf -- "$V"
    status "$V" --prometheus "$P"
    assert_eq "$RC" 3 "removed vault: UNKNOWN"
    assert_contains "$OUT" "RPFS UNKNOWN - $V: " "unknown summary"
    promtool check metrics <"$P" || fail "promtool on the unreachable textfile"
    grep -qx "rpfs_up{vault=\"$V\"} 0" "$P" || fail "rpfs_up 0: $(cat "$P")"
else
    private_azurite || skip "no Azurite binary for a private Azurite"
    az2_start
    V2=azure://devstoreaccount1/status-v
    ok rpfs --endpoint "$EP2" init "$V2" -q
    ok rpfs --endpoint "$EP2" replicate "$V2" web01 --disk "$T/d.img" --time "$(id_ago 60)" -q
    status --endpoint "$EP2" "$V2"
    assert_eq "$RC" 0 "private Azurite: OK"
    assert_contains "$OUT" "clock: this host is " "Azure: the Date header read"
    kill -STOP "$AZPID"
    RC=0
    OUT=$(timeout 120 "$RPFS" --endpoint "$EP2" status "$V2" --timeout 3 2>"$T/status.err") || RC=$?
    kill -CONT "$AZPID"
    assert_eq "$RC" 3 "an Azurite that never answers: UNKNOWN within --timeout"
    assert_contains "$OUT" "RPFS UNKNOWN - $V2: " "unknown summary (stopped)"
    status --endpoint "$EP2" "$V2"
    assert_eq "$RC" 0 "Azurite answering again: OK"
    az2_stop
    status --endpoint "$EP2" "$V2" --timeout 3 --prometheus "$P"
    assert_eq "$RC" 3 "a closed port: UNKNOWN"
    grep -qx "rpfs_up{vault=\"$V2\"} 0" "$P" || fail "rpfs_up 0: $(cat "$P")"
fi
