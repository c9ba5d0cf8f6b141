#!/usr/bin/env bash
# Supply-chain checks of the dependency tree, with the policy in deny.toml:
#   1. libp2p-gossipsub in Cargo.lock is at least 0.50.1;
#   2. cargo deny: advisories (RustSec), licenses, bans (duplicates,
#      wildcards, denied crates) and sources (crates.io only).
#
# Offline by default: the advisories come from a local snapshot of the
# RustSec advisory database, never fetched. Its location:
#   P2P_CHAT_ADVISORY_DB   the snapshot (default: ../shared/advisory-db beside
#                          the repository), a plain copy of rustsec/advisory-db
#                          (crates/, rust/, optionally a SNAPSHOT file naming
#                          its commit and date)
#   P2P_CHAT_ADVISORY_DBS  the root under which cargo-deny's staging copy goes
#                          (default target/advisory-dbs-offline); the checkout
#                          cargo-deny names there is replaced on every run
# With P2P_CHAT_ADVISORY_FETCH=1 cargo-deny fetches the live database instead
# (hosted CI).
#
# Installs cargo-deny (the version below, from crates.io) when missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

CARGO_DENY_VERSION=0.20.2
GOSSIPSUB_MIN=0.50.1

die() {
    echo "supply-chain: $*" >&2
    exit 1
}

# 1. libp2p-gossipsub: every version of it in the lock file.
gossipsub_versions=$(awk '
    /^\[\[package\]\]/ { name = "" }
    /^name = / { name = $3; gsub(/"/, "", name) }
    /^version = / && name == "libp2p-gossipsub" { v = $3; gsub(/"/, "", v); print v }
' Cargo.lock)
[ -n "$gossipsub_versions" ] || die "libp2p-gossipsub is not in Cargo.lock"
for v in $gossipsub_versions; do
    lowest=$(printf '%s\n%s\n' "$v" "$GOSSIPSUB_MIN" | sort -V | head -n 1)
    if [ "$lowest" != "$GOSSIPSUB_MIN" ]; then
        die "libp2p-gossipsub $v in Cargo.lock is older than $GOSSIPSUB_MIN (run: cargo update -p libp2p-gossipsub)"
    fi
done
echo "supply-chain: libp2p-gossipsub $(echo "$gossipsub_versions" | tr '\n' ' ')in Cargo.lock (>= $GOSSIPSUB_MIN)"

# 2. cargo-deny, installed when missing (or of another minor version).
installed=$(cargo deny --version 2>/dev/null | awk '{print $2}' || true)
if [ "${installed%.*}" != "${CARGO_DENY_VERSION%.*}" ]; then
    echo "supply-chain: installing cargo-deny $CARGO_DENY_VERSION (found: ${installed:-none})" >&2
    start=$SECONDS
    cargo install --locked --quiet cargo-deny --version "$CARGO_DENY_VERSION"
    echo "supply-chain: cargo-deny installed in $((SECONDS - start)) s" >&2
fi

deny_args=(--locked)
if [ "${P2P_CHAT_ADVISORY_FETCH:-0}" = 1 ]; then
    echo "supply-chain: advisory database: fetched by cargo-deny (online)"
else
    src=${P2P_CHAT_ADVISORY_DB:-$repo/../shared/advisory-db}
    [ -d "$src/crates" ] ||
        die "no advisory database at $src (expected a copy of rustsec/advisory-db with crates/); set P2P_CHAT_ADVISORY_DB, or P2P_CHAT_ADVISORY_FETCH=1 to fetch it"
    src=$(cd "$src" && pwd)
    dbs=${P2P_CHAT_ADVISORY_DBS:-$repo/target/advisory-dbs-offline}
    mkdir -p "$dbs"
    dbs=$(cd "$dbs" && pwd)
    export P2P_CHAT_ADVISORY_DBS=$dbs

    # The snapshot's date: from its SNAPSHOT file, else its newest advisory.
    snapshot_line=$(head -n 1 "$src/SNAPSHOT" 2>/dev/null || true)
    date=$(grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}' <<<"$snapshot_line" | head -n 1 || true)
    if [ -z "$date" ]; then
        date=$(grep -rhoE '^date = "[0-9]{4}-[0-9]{2}-[0-9]{2}"' "$src/crates" | grep -oE '[0-9-]{10}' | sort | tail -n 1)
        snapshot_line="no SNAPSHOT file; newest advisory dated $date"
    fi
    age_days=$((($(date +%s) - $(date -d "$date" +%s)) / 86400))

    # cargo-deny opens each database as a git checkout in a directory it
    # names after the database's URL. Ask it for that name (it logs the path
    # before failing on the empty staging root), then stage the snapshot
    # there as a one-commit repository dated as the snapshot, so its
    # staleness check sees the snapshot's real age.
    # cargo-deny's --offline also runs `cargo metadata --offline`: the
    # crates themselves come from crates.io first (a no-op once built).
    cargo fetch --locked --quiet
    deny_args+=(--offline)
    probe=$(cargo deny "${deny_args[@]}" --log-level debug check advisories 2>&1 || true)
    stage=$(sed -n "s/.*Opening advisory database at '\([^']*\)'.*/\1/p" <<<"$probe" | head -n 1)
    [ -n "$stage" ] || die "could not learn where cargo-deny $CARGO_DENY_VERSION opens its advisory database; its output: $(tail -n 3 <<<"$probe" | tr '\n' ' ')"
    case "$stage" in "$dbs"/*) ;; *) die "cargo-deny opens its database at $stage, outside $dbs: check db-path in deny.toml" ;; esac
    rm -rf "$stage"
    mkdir -p "$stage"
    cp -R "$src"/. "$stage"/
    chmod -R u+w "$stage"
    (
        cd "$stage"
        export GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z"
        git init -q -b main .
        git add -A
        git -c user.name=supply-chain -c user.email=supply-chain@localhost \
            -c commit.gpgsign=false commit -q --no-verify -m "offline snapshot: $snapshot_line"
        touch -d "$date" .git/HEAD
    )
    echo "supply-chain: advisory database: $src ($snapshot_line; $age_days days old), offline"
    if [ "$age_days" -gt 90 ]; then
        echo "supply-chain: warning: the advisory snapshot is $age_days days old; advisories published since $date are not checked" >&2
    fi
fi

start=$SECONDS
cargo deny "${deny_args[@]}" check --show-stats advisories licenses bans sources
echo "supply-chain: cargo deny check passed in $((SECONDS - start)) s"
