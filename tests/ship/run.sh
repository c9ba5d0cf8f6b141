#!/usr/bin/env bash
# Runs every shipping test (tests/ship/test-*.sh): the container image, the
# compose cluster, the local cluster script, the Kubernetes manifests, the
# workflow files and the supply-chain checks. Each script installs what it
# needs and cleans up after itself. All run; the run fails if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1

failed=()
for test in tests/ship/test-*.sh; do
    [ -e "$test" ] || continue
    name=$(basename "$test" .sh)
    start=$(date +%s)
    echo "=== ship: $name" >&2
    if bash "$test"; then
        echo "=== ship: $name passed in $(($(date +%s) - start)) s" >&2
    else
        echo "=== ship: $name FAILED after $(($(date +%s) - start)) s" >&2
        failed+=("$name")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "ship tests failed: ${failed[*]}" >&2
    exit 1
fi
