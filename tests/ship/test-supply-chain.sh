#!/usr/bin/env bash
# Supply-chain checks, offline: scripts/supply-chain.sh passes on the tree as
# it is; it passes again with no network at all; and each check bites:
# an old libp2p-gossipsub fails in one line, and the advisory database is
# really read (without its ignore entry, the known advisory fires).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

tmp=$(mktemp -d)
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

fail() {
    echo "test-supply-chain: FAIL: $*" >&2
    exit 1
}

# 1. The checks pass (installs cargo-deny if it is missing).
start=$SECONDS
bash scripts/supply-chain.sh
echo "test-supply-chain: supply-chain.sh passed in $((SECONDS - start)) s"

# 2. Offline for real: again, in a network namespace with no interface up.
if unshare --net true 2>/dev/null; then
    start=$SECONDS
    unshare --net bash scripts/supply-chain.sh >"$tmp/offline.log" 2>&1 ||
        {
            tail -n 30 "$tmp/offline.log" >&2
            fail "supply-chain.sh failed without a network"
        }
    echo "test-supply-chain: passed again with no network in $((SECONDS - start)) s"
else
    echo "test-supply-chain: unshare --net not permitted here; the no-network run is skipped" >&2
fi

# 3. An old libp2p-gossipsub fails, with one line naming it.
mkdir -p "$tmp/old/scripts"
cp scripts/supply-chain.sh "$tmp/old/scripts/"
awk '
    /^name = "libp2p-gossipsub"$/ { g = 1; print; next }
    g && /^version = / { print "version = \"0.50.0\""; g = 0; next }
    { print }
' Cargo.lock >"$tmp/old/Cargo.lock"
grep -q '^version = "0.50.0"' "$tmp/old/Cargo.lock" || fail "could not make the old lock file"
if bash "$tmp/old/scripts/supply-chain.sh" >"$tmp/old.out" 2>"$tmp/old.err"; then
    fail "supply-chain.sh passed with libp2p-gossipsub 0.50.0"
fi
[ "$(wc -l <"$tmp/old.err")" -eq 1 ] || fail "expected one line on stderr, got: $(cat "$tmp/old.err")"
grep -q 'libp2p-gossipsub 0.50.0 in Cargo.lock is older than 0.50.1' "$tmp/old.err" ||
    fail "unexpected message: $(cat "$tmp/old.err")"
echo "test-supply-chain: an old libp2p-gossipsub is refused: $(cat "$tmp/old.err")"

# 4. The offline database is really read: without the ignore entry, the
# advisory triaged in deny.toml (RUSTSEC-2024-0436) fails the check.
# (supply-chain.sh staged the database in step 1; cargo-deny reads it there.)
awk '/^ignore = \[/ { print "ignore = ["; skip = 1; next } skip && /^\]/ { skip = 0 } !skip' deny.toml >"$tmp/deny.toml"
grep -q 'RUSTSEC-2024-0436' "$tmp/deny.toml" && fail "could not strip the ignore list"
export P2P_CHAT_ADVISORY_DBS="$repo/target/advisory-dbs-offline"
if cargo deny --locked --offline --config "$tmp/deny.toml" check advisories >"$tmp/adv.log" 2>&1; then
    fail "cargo deny passed without the ignore entry: is the advisory database read?"
fi
grep -q 'RUSTSEC-2024-0436' "$tmp/adv.log" || {
    tail -n 20 "$tmp/adv.log" >&2
    fail "the check failed, but not on RUSTSEC-2024-0436"
}
echo "test-supply-chain: without its ignore entry, RUSTSEC-2024-0436 fails the check (the database is read)"
echo "test-supply-chain: ok"
