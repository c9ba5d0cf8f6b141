#!/usr/bin/env bash
# The whole test suite: unit tests, in-process multi-node tests, the real
# binary as separate processes, the doc example and the example program,
# then the shipping tests (image, clusters, manifests, workflows, supply chain).
# Installs what it needs on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

cargo build --locked --all-targets
cargo run --locked --quiet --example two_peer_chat
cargo run --locked --quiet --example bench -- --quick
cargo test --locked --doc
cargo nextest run --locked --all-targets --no-fail-fast
bash tests/ship/run.sh
