#!/usr/bin/env bash
# The global options (-v/--verbose, -q/--quiet, --endpoint URL, -h/--help,
# -V/--version) before and after the command: accepted in both positions with
# the same effect. A directory vault, on which --endpoint has no effect: the
# commands must simply succeed. --endpoint without a URL is a usage error
# (exit 2) in both positions; 'rpfs --help' lists every command.
. "$(dirname "$0")/lib.sh"

V=$T/vault          # a directory, whatever RPFS_TEST_VAULT says
EP=http://127.0.0.1:1/x
make_random "$T/d.raw" $(( 1024 * 1024 )) cli
ok rpfs init "$V" >/dev/null

# --- --endpoint before, after the command, between and after its arguments -------
n=0
for args in "--endpoint $EP replicate $V vm1" "replicate --endpoint $EP $V vm1" \
            "replicate $V --endpoint $EP vm1" "replicate $V vm1 --endpoint=$EP"; do
    n=$(( n + 1 ))
    # shellcheck disable=SC2086
    ok rpfs $args --disk "$T/d.raw" --time 20261122T10000${n}Z >/dev/null
done
assert_eq "$(point_ids "$V" vm1 | wc -l)" 4 "four points replicated with --endpoint in four places"
out=$(ok rpfs points "$V" --endpoint "$EP") || fail "points --endpoint after the arguments"
assert_eq "$out" "$(rpfs points "$V")" "points with --endpoint after the arguments"

# --- -v: debug messages, before or after -------------------------------------------
for pos in before after; do
    if [[ $pos == before ]]; then
        "$RPFS" -v replicate "$V" vm2 --disk "$T/d.raw" --time 20261122T110000Z >/dev/null 2>"$T/v.err" ||
            { cat "$T/v.err" >&2; fail "rpfs -v replicate failed"; }
    else
        "$RPFS" replicate "$V" vm2 --disk "$T/d.raw" --time 20261122T110001Z -v >/dev/null 2>"$T/v.err" ||
            { cat "$T/v.err" >&2; fail "rpfs replicate ... -v failed"; }
    fi
    grep -q 'debug: replicate' "$T/v.err" || fail "-v $pos the command: no debug messages: $(cat "$T/v.err")"
done
LIST=$(rpfs points "$V")
assert_eq "$(ok rpfs -v points "$V")" "$LIST" "rpfs -v points"
assert_eq "$(ok rpfs points "$V" -v)" "$LIST" "rpfs points VAULT -v"
assert_eq "$(ok rpfs points --verbose "$V")" "$LIST" "rpfs points --verbose VAULT"

# --- -q: accepted everywhere; quiet where the command prints on success -----------
assert_eq "$(ok rpfs -q points "$V")" "$LIST" "rpfs -q points"
assert_eq "$(ok rpfs points "$V" -q)" "$LIST" "rpfs points VAULT -q"
assert_eq "$(ok rpfs -q replicate "$V" vm3 --disk "$T/d.raw" --time 20261122T120000Z)" "" "rpfs -q replicate"
assert_eq "$(ok rpfs replicate "$V" vm3 --disk "$T/d.raw" --time 20261122T120001Z --quiet)" "" \
    "rpfs replicate ... --quiet"
assert_eq "$(ok rpfs -q init "$T/v2")" "" "rpfs -q init"
assert_eq "$(ok rpfs init "$T/v3" -q)" "" "rpfs init VAULT -q"
ok rpfs export "$V" vm1 disk0 -o "$T/x.raw" -q
assert_eq "$(sum "$T/x.raw")" "$(sum "$T/d.raw")" "export -q wrote the disk"

# --- --endpoint without a URL, or not http(s): usage errors, both positions --------
expect_fail 2 rpfs points "$V" --endpoint
expect_err_contains endpoint URL
msg "points VAULT --endpoint: $ERR"
expect_fail 2 rpfs points "$V" --endpoint=
expect_err_contains endpoint URL
expect_fail 2 rpfs --endpoint
expect_err_contains endpoint URL
expect_fail 2 rpfs points "$V" --endpoint ftp://x
expect_err_contains ftp://x
expect_fail 2 rpfs --endpoint ftp://x points "$V"
expect_err_contains ftp://x
expect_fail 2 rpfs points "$V" --no-such-option
expect_err_contains no-such-option

# --- --help and --version ----------------------------------------------------------
help=$(ok rpfs --help)
for c in init replicate points export failback mount stats; do
    grep -qE "^  $c " <<<"$help" || fail "rpfs --help does not list '$c': $help"
done
assert_contains "$help" "before or after the command" "rpfs --help on the global options"
assert_eq "$(ok rpfs -h)" "$help" "rpfs -h"
for c in init replicate points export failback mount stats; do
    out=$(ok rpfs $c --help)
    assert_contains "$out" "Usage: rpfs $c " "rpfs $c --help"
    assert_eq "$(ok rpfs -q $c -h)" "$out" "rpfs -q $c -h"
done
version=$(ok rpfs --version)
[[ $version == "rpfs "* ]] || fail "rpfs --version: $version"
assert_eq "$(ok rpfs -V)" "$version" "rpfs -V"
assert_eq "$(ok rpfs points -V)" "$version" "rpfs points -V"
assert_eq "$(ok rpfs points "$V" --version)" "$version" "rpfs points VAULT --version"
