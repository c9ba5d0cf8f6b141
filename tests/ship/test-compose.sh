#!/usr/bin/env bash
# The compose cluster (docker-compose.yml): brings the three nodes up, waits
# until Docker reports all healthy and node2 and node3 are connected to
# node1, sends a message on node1's sidecar and reads it on node3's, sends
# one back, sends one over SSH to node1 (the key in a keys directory as the
# README says) and reads it on node3's sidecar as tester@node1, and tears
# everything down, volumes included. Builds the image first (at once when
# nothing changed), so an image left from an older checkout is not tested.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=tests/ship/lib.sh
. tests/ship/lib.sh

need_docker
if command -v docker-compose >/dev/null; then
    compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
else
    fail "neither docker-compose nor the docker compose plugin is installed"
fi

project=p2pchat-compose-$$
P2P_CHAT_HTTP_TOKEN=$(new_token)
# Six free ports on 127.0.0.1, all different: the sockets are held until
# all six are bound (two picks one after the other may get the same port).
read -r P2P_CHAT_NODE1_PORT P2P_CHAT_NODE2_PORT P2P_CHAT_NODE3_PORT \
    P2P_CHAT_NODE1_SSH_PORT P2P_CHAT_NODE2_SSH_PORT P2P_CHAT_NODE3_SSH_PORT < <(
    python3 -c '
import socket
held = [socket.socket() for _ in range(6)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))'
)
export P2P_CHAT_HTTP_TOKEN P2P_CHAT_NODE1_PORT P2P_CHAT_NODE2_PORT P2P_CHAT_NODE3_PORT
export P2P_CHAT_NODE1_SSH_PORT P2P_CHAT_NODE2_SSH_PORT P2P_CHAT_NODE3_SSH_PORT

# The SSH keys directory: a key of ours in its authorized_keys, readable by
# the containers' user (uid 10001).
command -v ssh-keygen >/dev/null || fail "ssh-keygen is not installed (scripts/install-deps.sh installs openssh-client)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
P2P_CHAT_SSH_KEYS_DIR=$work/ssh-keys
mkdir "$P2P_CHAT_SSH_KEYS_DIR"
ssh-keygen -q -t ed25519 -N '' -C tester@ci -f "$work/key" || fail "ssh-keygen failed"
cat "$work/key.pub" >>"$P2P_CHAT_SSH_KEYS_DIR/authorized_keys"
chmod 0755 "$P2P_CHAT_SSH_KEYS_DIR"
chmod 0644 "$P2P_CHAT_SSH_KEYS_DIR/authorized_keys"
export P2P_CHAT_SSH_KEYS_DIR
dc() {
    timeout 180 "${compose[@]}" -p "$project" -f docker-compose.yml "$@"
}
cleanup() {
    dc down -v --remove-orphans --timeout 10 >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

build_image

note "config is valid"
dc config -q || fail "docker-compose.yml is not valid"
unset_check=$(env -u P2P_CHAT_HTTP_TOKEN "${compose[@]}" -p "$project" -f docker-compose.yml config 2>&1 || true)
grep -q 'set P2P_CHAT_HTTP_TOKEN' <<<"$unset_check" ||
    fail "without P2P_CHAT_HTTP_TOKEN compose did not ask for it: $unset_check"

note "up (project $project)"
start=$SECONDS
dc up -d --no-build >"$work/up.log" 2>&1 || {
    dc logs --no-color | tail -n 40 >&2
    fail "compose up failed: $(tail -n 5 "$work/up.log")"
}

all_healthy() {
    local svc id
    for svc in node1 node2 node3; do
        id=$(dc ps -q "$svc")
        if [ -z "$id" ] || ! is_healthy "$id"; then
            return 1
        fi
    done
}
wait_until 120 "all three nodes healthy" all_healthy
note "all healthy after $((SECONDS - start)) s"

url1=http://127.0.0.1:$P2P_CHAT_NODE1_PORT
url3=http://127.0.0.1:$P2P_CHAT_NODE3_PORT
wait_until 60 "node2 ready (connected to node1)" http_ok "http://127.0.0.1:$P2P_CHAT_NODE2_PORT/ready"
wait_until 60 "node3 ready (connected to node1)" http_ok "$url3/ready"

note "send on node1, read on node3"
msg="compose-hello-$RANDOM"
post_message "$url1" "$P2P_CHAT_HTTP_TOKEN" lobby "$msg" >/dev/null || fail "POST on node1 failed"
wait_until 30 "'$msg' from node1 to arrive at node3" has_message "$url3" "$P2P_CHAT_HTTP_TOKEN" lobby "$msg"
reply="compose-reply-$RANDOM"
post_message "$url3" "$P2P_CHAT_HTTP_TOKEN" lobby "$reply" >/dev/null || fail "POST on node3 failed"
wait_until 30 "'$reply' from node3 to arrive at node1" has_message "$url1" "$P2P_CHAT_HTTP_TOKEN" lobby "$reply"
note "a line over SSH to node1, read on node3"
over_ssh="compose-ssh-$RANDOM"
ssh_to() {
    timeout 30 ssh -F /dev/null -T -p "$1" -i "$work/key" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o UserKnownHostsFile="$work/known_hosts" -o StrictHostKeyChecking=accept-new localhost
}
ssh_to "$P2P_CHAT_NODE1_SSH_PORT" <<<"$over_ssh" >"$work/ssh.out" 2>"$work/ssh.err" ||
    fail "ssh to node1 failed: $(cat "$work/ssh.err")"
wait_until 30 "'$over_ssh' sent over SSH to arrive at node3" has_message "$url3" "$P2P_CHAT_HTTP_TOKEN" lobby "$over_ssh"
curl -fsS --max-time 3 -H "Authorization: Bearer $P2P_CHAT_HTTP_TOKEN" "$url3/rooms/lobby/messages?limit=200" |
    grep -qF "\"nick\":\"tester@node1\",\"text\":\"$over_ssh\"" ||
    fail "node3 does not show the line sent over SSH as tester@node1"
for port in "$P2P_CHAT_NODE2_SSH_PORT" "$P2P_CHAT_NODE3_SSH_PORT"; do
    ssh_to "$port" </dev/null >/dev/null 2>"$work/ssh.err" || fail "ssh to port $port failed: $(cat "$work/ssh.err")"
done
curl -fsS --max-time 3 "$url3/peers" | grep -q '"nick":"node1"' || fail "node3 does not list node1 among its peers"
curl -fsS --max-time 3 "$url1/status" | grep -q '"relay_server":{' || fail "node1 (the public node) does not serve as a relay"
curl -fsS --max-time 3 "$url3/status" | grep -q '"relay_server":null' || fail "node3 serves as a relay, but only node1 should"

note "down -v"
dc down -v --timeout 10 >/dev/null 2>&1 || fail "compose down failed"
left=$(docker volume ls -q --filter "label=com.docker.compose.project=$project")
[ -z "$left" ] || fail "volumes left after down -v: $left"
echo "test-compose: ok" >&2
