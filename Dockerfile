# p2p-chat: a static binary on an empty (scratch) root, run as uid 10001.
#
#   scripts/docker-base.sh                      # only where the builder image cannot be pulled
#   DOCKER_BUILDKIT=1 docker build -t p2p-chat:latest .
#   docker run -d -e P2P_CHAT_HTTP_TOKEN=... -p 4001:4001 -p 4001:4001/udp -p 8081:8081 p2p-chat:latest
#
# The sidecar listens on 0.0.0.0:8081 and therefore needs a bearer token:
# P2P_CHAT_HTTP_TOKEN, or P2P_CHAT_HTTP_TOKEN_FILE (a Docker or Kubernetes
# secret file). Without one the node stops at once with one line saying so.
# See docs/operations.md.

# The builder: the official Rust image, pinned (scripts/docker-base.sh reads
# these two lines to make the same image locally).
ARG RUST_VERSION=1.95
ARG BASE_SUFFIX=slim-bookworm

FROM rust:${RUST_VERSION}-${BASE_SUFFIX} AS builder
WORKDIR /build
# A fully static glibc binary: nothing to load at run time. getrandom must
# use the getrandom(2) syscall, as there is no /dev/urandom in an empty root
# to fall back on. RUSTFLAGS apply to the --target build only, not to build
# scripts and proc-macros. The `container` profile (Cargo.toml) is release
# optimized for size, but for the crypto crates.
ENV RUSTFLAGS='-C target-feature=+crt-static --cfg getrandom_backend="linux_getrandom"' \
    CARGO_TERM_COLOR=never
# .dockerignore lets in only Cargo.toml, Cargo.lock, src/ and, when
# scripts/docker-base.sh made it, vendor/ (then the build is offline).
COPY . .
RUN --mount=type=cache,id=p2p-chat-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=p2p-chat-target,target=/build/target \
    set -eu; \
    if [ -d vendor ]; then \
        mkdir -p .cargo; \
        printf '[source.crates-io]\nreplace-with = "vendored"\n[source.vendored]\ndirectory = "vendor"\n' > .cargo/config.toml; \
    fi; \
    cargo build --profile container --locked --bin p2p-chat --target x86_64-unknown-linux-gnu; \
    mkdir -p /out/data; \
    cp target/x86_64-unknown-linux-gnu/container/p2p-chat /out/p2p-chat; \
    /out/p2p-chat --version; \
    chown 10001:10001 /out/data; \
    chmod 0700 /out/data

FROM scratch
LABEL org.opencontainers.image.title="p2p-chat" \
      org.opencontainers.image.description="A decentralized chat node on libp2p" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0"
COPY --from=builder /out/p2p-chat /p2p-chat
COPY --from=builder --chown=10001:10001 /out/data /data
USER 10001:10001
# The sidecar's address is an environment variable, not a flag, so that
# `p2p-chat healthcheck` (HEALTHCHECK below) finds it too.
ENV P2P_CHAT_HTTP=0.0.0.0:8081
VOLUME ["/data"]
# libp2p over TCP and QUIC, and the HTTP sidecar.
EXPOSE 4001/tcp 4001/udp 8081/tcp
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/p2p-chat", "healthcheck"]
ENTRYPOINT ["/p2p-chat", "--headless", "--no-mdns", "--data-dir", "/data"]
