#!/usr/bin/env bash
# Makes sure the Dockerfile's builder base image exists, so `docker build .`
# works on a machine that can pull no image.
#
# The Dockerfile's first stage is the official Rust image, e.g.
# `rust:1.95-slim-bookworm`. Where Docker can pull it, nothing needs doing.
# Where it cannot (no registry reachable), this script builds an image of the
# same name and layout locally: a minimal Debian bookworm root made with
# debootstrap from Debian's packages (gcc, libc6-dev, ca-certificates, as in
# the official slim image) plus this machine's Rust toolchain of the same
# version, loaded with `docker import`. It is skipped when an image of that
# name exists already (the official one, or ours at the current recipe
# version).
#
# When cargo inside a container cannot reach crates.io, the dependencies are
# vendored into ./vendor (ignored by git); the Dockerfile builds offline from
# it when it is there. When crates.io is reachable, ./vendor is removed again
# so the build uses the registry.
#
# Usage: scripts/docker-base.sh [--force]   (--force rebuilds our image)
# Needs: root (debootstrap), docker, and the Rust toolchain the Dockerfile
# names (rustup toolchain install <version> if it is not there).
set -euo pipefail
cd "$(dirname "$0")/.."

# Bump when the recipe below changes: an older local image is rebuilt.
RECIPE_VERSION=1
LABEL_KEY=org.p2p-chat.base-recipe

force=false
[ "${1:-}" = "--force" ] && force=true

die() {
    echo "docker-base: $*" >&2
    exit 1
}

rust_version=$(sed -n 's/^ARG RUST_VERSION=\([0-9.]*\)$/\1/p' Dockerfile | head -n1)
base_suffix=$(sed -n 's/^ARG BASE_SUFFIX=\(.*\)$/\1/p' Dockerfile | head -n1)
[ -n "$rust_version" ] || die "no 'ARG RUST_VERSION=' line in Dockerfile"
[ -n "$base_suffix" ] || die "no 'ARG BASE_SUFFIX=' line in Dockerfile"
image="rust:${rust_version}-${base_suffix}"
suite=${base_suffix##*-} # slim-bookworm -> bookworm

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon is not reachable (is it running? are you in the docker group?)"

build_base() {
    local have
    have=$(docker image inspect --format "{{ index .Config.Labels \"$LABEL_KEY\" }}" "$image" 2>/dev/null || true)
    if [ "$force" = false ] && docker image inspect "$image" >/dev/null 2>&1; then
        if [ "$have" = "$RECIPE_VERSION" ]; then
            echo "docker-base: $image exists (local build, recipe $RECIPE_VERSION)" >&2
            return 0
        elif [ -z "$have" ] || [ "$have" = "<no value>" ]; then
            echo "docker-base: $image exists (pulled)" >&2
            return 0
        fi
        echo "docker-base: $image is from recipe $have, rebuilding with recipe $RECIPE_VERSION" >&2
    fi

    if [ "$force" = false ] && timeout 120 docker pull "$image" >/dev/null 2>&1; then
        echo "docker-base: pulled $image" >&2
        return 0
    fi
    echo "docker-base: $image cannot be pulled; building it locally" >&2

    [ "$(id -u)" = 0 ] || die "building $image needs root (debootstrap); run as root or pull $image"
    # The toolchain to copy: exactly the version the Dockerfile names.
    # The toolchain to copy: one of rustup's (or the rustc on PATH) whose
    # version is exactly the one the Dockerfile names.
    local sysroot="" got="" candidate version
    for candidate in $(rustc --print sysroot 2>/dev/null) \
        $(rustup toolchain list -v 2>/dev/null | awk '{print $NF}'); do
        [ -x "$candidate/bin/rustc" ] || continue
        version=$("$candidate/bin/rustc" --version | awk '{print $2}')
        case "$version" in
        "$rust_version" | "$rust_version".*)
            sysroot=$candidate got=$version
            break
            ;;
        esac
    done
    [ -n "$sysroot" ] ||
        die "Rust $rust_version is not installed here: rustup toolchain install $rust_version"

    if ! command -v debootstrap >/dev/null; then
        echo "docker-base: installing debootstrap" >&2
        apt-get install -y -q debootstrap >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; } ||
            die "cannot install debootstrap (apt-get install debootstrap)"
    fi

    local work
    work=$(mktemp -d /var/tmp/p2p-chat-base.XXXXXX)
    # shellcheck disable=SC2064 # expand $work now
    trap "rm -rf '$work'" EXIT
    local rootfs=$work/rootfs
    local mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
    echo "docker-base: debootstrap $suite from $mirror (a few minutes)" >&2
    if ! debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev \
        "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1; then
        tail -n 20 "$work/debootstrap.log" >&2
        die "debootstrap failed (log above)"
    fi
    # As in the official slim images: no apt lists, docs or caches.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* "$rootfs"/var/log/*

    # The official layout: RUSTUP_HOME=/usr/local/rustup, CARGO_HOME=/usr/local/cargo.
    local tc=$rootfs/usr/local/rustup/toolchains/$rust_version-x86_64-unknown-linux-gnu
    mkdir -p "$tc" "$rootfs/usr/local/cargo/bin"
    local part
    for part in bin lib libexec etc; do
        [ -e "$sysroot/$part" ] && cp -a "$sysroot/$part" "$tc/"
    done
    for part in cargo rustc rustdoc; do
        ln -s "../../rustup/toolchains/$rust_version-x86_64-unknown-linux-gnu/bin/$part" \
            "$rootfs/usr/local/cargo/bin/$part"
    done
    "$rootfs/usr/local/cargo/bin/cargo" --version >/dev/null ||
        die "the copied cargo does not run"

    echo "docker-base: importing $image" >&2
    tar -C "$rootfs" --numeric-owner -c . | docker import \
        --change "ENV RUSTUP_HOME=/usr/local/rustup" \
        --change "ENV CARGO_HOME=/usr/local/cargo" \
        --change "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        --change "ENV RUST_VERSION=$rust_version" \
        --change "LABEL $LABEL_KEY=$RECIPE_VERSION" \
        --change 'CMD ["bash"]' \
        --message "Debian $suite (debootstrap) + Rust $got, made by scripts/docker-base.sh" \
        - "$image" >/dev/null
    rm -rf "$work"
    trap - EXIT
    echo "docker-base: built $image ($(docker image inspect --format '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))" >&2
}

# Can a container reach crates.io? If not, vendor the dependencies.
prepare_dependencies() {
    # The same TLS request cargo makes (a TCP connect is not enough: an
    # intercepting proxy's certificate is not trusted inside the image).
    if docker run --rm "$image" timeout 30 cargo search --limit 1 itoa >/dev/null 2>&1; then
        if [ -d vendor ]; then
            echo "docker-base: crates.io is reachable from containers; removing ./vendor" >&2
            rm -rf vendor
        fi
        echo "docker-base: crates.io is reachable from containers" >&2
        return 0
    fi
    # Vendored once per Cargo.lock: redoing it would touch every file and
    # invalidate the build's cached steps.
    local stamp=vendor/.p2p-chat-cargo-lock.sha256 want
    want=$(sha256sum Cargo.lock | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        echo "docker-base: crates.io is not reachable from containers; ./vendor matches Cargo.lock" >&2
        return 0
    fi
    echo "docker-base: crates.io is not reachable from containers; vendoring dependencies into ./vendor" >&2
    # Into a new folder first: a half-written ./vendor is never used.
    rm -rf target/vendor.new
    mkdir -p target
    cargo vendor --locked --versioned-dirs --quiet target/vendor.new >/dev/null ||
        die "cargo vendor failed"
    echo "$want" >target/vendor.new/.p2p-chat-cargo-lock.sha256
    rm -rf vendor
    mv target/vendor.new vendor
}

# One run at a time (two test scripts started together share the result).
exec 9>"${TMPDIR:-/tmp}/p2p-chat-docker-base.lock"
flock 9
build_base
prepare_dependencies
