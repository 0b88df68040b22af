#!/usr/bin/env bash
# Retention policy and holds through the CLI: the Site Recovery defaults
# when nothing is stored; a vault default and a per-VM override, each
# stored as a versioned object and read back (table and --json); settings
# not given keep their values; --keep-* and --thin site-recovery; hold and
# release of a replicated point (latest, an ID, --until, --reason); usage
# errors exit 2, runtime errors 1.
. "$(dirname "$0")/lib.sh"
need python3

V=$(vault_path vault)
ok rpfs init "$V"
jget() { python3 -c 'import json,sys; o=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

out=$(ok rpfs policy "$V" --json)
assert_eq "$(jget 'o["source"], o["retention_seconds"], o["app_frequency_seconds"], o["rpo_seconds"], o["thin"]' <<<"$out")" \
    "('builtin', 86400, 3600, 900, 'site-recovery')" "Site Recovery defaults with no policy stored"
assert_contains "$(ok rpfs policy "$V")" "site-recovery" "table shows the thinning"

ok rpfs policy "$V" --retention 48h -q
out=$(ok rpfs policy "$V" --vm web01 --json)
assert_eq "$(jget 'o["source"], o["retention_seconds"], o["rpo_seconds"]' <<<"$out")" "('vault', 172800, 900)" \
    "a VM without an override gets the vault default"

ok rpfs policy "$V" --vm web01 --rpo 5m --keep-last 3 --keep-daily 7 -q
out=$(ok rpfs policy "$V" --vm web01 --json)
assert_eq "$(jget 'o["source"], o["retention_seconds"], o["rpo_seconds"], o["thin"], o["keep"]["last"], o["keep"]["daily"]' <<<"$out")" \
    "('vm', 172800, 300, 'keep', 3, 7)" "the VM's override, the rest from the vault default"
out=$(ok rpfs policy "$V" --vm db01 --json)
assert_eq "$(jget 'o["source"], o["rpo_seconds"]' <<<"$out")" "('vault', 900)" "another VM is not affected"
ok rpfs policy "$V" --vm web01 --thin site-recovery -q
out=$(ok rpfs policy "$V" --vm web01 --json)
assert_eq "$(jget 'o["thin"], o["keep"]["last"], o["rpo_seconds"]' <<<"$out")" "('site-recovery', 0, 300)" \
    "--thin site-recovery clears the keep rules"
if [[ $TEST_VAULT == dir ]]; then
    assert_eq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["format"])' "$V/policy/vm/web01.json")" 1 \
        "the stored policy is versioned"
fi

expect_fail 2 rpfs policy "$V" --retention 0
expect_fail 2 rpfs policy "$V" --rpo soon
expect_fail 2 rpfs policy "$V" --thin weekly
expect_fail 2 rpfs policy "$V" --keep-last 0
expect_fail 2 rpfs policy "$V" --thin site-recovery --keep-last 2
expect_fail 2 rpfs policy "$V" --vm ../x
expect_fail 2 rpfs policy
expect_fail 1 rpfs policy "$T/nothing"

# hold / release
make_random "$T/d.raw" $(( 2 * 1024 * 1024 )) hold
ok rpfs replicate "$V" web01 --disk "$T/d.raw" --time 20261122T100000Z -q
ok rpfs replicate "$V" web01 --disk "$T/d.raw" --time 20261122T101500Z -q
assert_contains "$(ok rpfs hold "$V" web01 latest --reason 'audit 42')" "held web01/20261122T101500Z" "hold latest"
ok rpfs hold "$V" web01 20261122T100000Z --until 30d -q
ok rpfs hold "$V" web01 20261122T100000Z --until 2027-01-01T00:00:00Z -q
if [[ $TEST_VAULT == dir ]]; then
    assert_contains "$(cat "$V/holds/web01/20261122T101500Z.json")" "audit 42" "the reason is stored"
    assert_contains "$(cat "$V/holds/web01/20261122T100000Z.json")" "2027-01-01T00:00:00Z" "the time is stored"
fi
ok rpfs release "$V" web01 20261122T101500Z -q
expect_fail 1 rpfs release "$V" web01 20261122T101500Z
expect_err_contains "not held"
expect_fail 1 rpfs hold "$V" web01 20261122T110000Z
expect_err_contains "no such point"
expect_fail 2 rpfs hold "$V" web01 latest --until yesterday
expect_fail 2 rpfs hold "$V" web01
expect_fail 2 rpfs release "$V" web01 latest --until 1d
msg "ok"
