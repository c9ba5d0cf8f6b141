#!/usr/bin/env bash
# scripts/start_cluster.sh, twice in a row (a restart must not clash on its
# ports): start 3 nodes, post a message on node 1's sidecar and read it on
# node 3's, attach a chat client with the command the script prints and see
# it take part, log in over SSH with the command it prints (the host key
# checked against the first round's in the second), stop, and check that
# the three processes are gone and every port is free. Then: a taken port
# stops the start with a clear message.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

# The debug binary the suite builds (scripts/test.sh) unless one is given.
if [ -z "${P2P_CHAT_CLUSTER_BIN:-}" ]; then
    cargo build --locked --quiet --bin p2p-chat
    export P2P_CHAT_CLUSTER_BIN="$repo/target/debug/p2p-chat"
fi
tmp=$(mktemp -d)
export P2P_CHAT_CLUSTER_DIR="$tmp/cluster"
# The loopback sidecars work without a token only if none is configured.
unset P2P_CHAT_HTTP_TOKEN P2P_CHAT_HTTP_TOKEN_FILE

P2P_BASE=${P2P_CHAT_CLUSTER_P2P_PORT:-14101}
HTTP_BASE=${P2P_CHAT_CLUSTER_HTTP_PORT:-14181}
SSH_BASE=${P2P_CHAT_CLUSTER_SSH_PORT:-14221}
client_pid=
blocker_pid=

cleanup() {
    [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
    [ -n "$blocker_pid" ] && kill "$blocker_pid" 2>/dev/null || true
    bash scripts/start_cluster.sh stop >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
    echo "test-cluster: FAIL: $*" >&2
    for log in "$P2P_CHAT_CLUSTER_DIR"/node*.log; do
        [ -f "$log" ] || continue
        echo "--- $log (last 15 lines)" >&2
        tail -n 15 "$log" >&2
    done
    exit 1
}

ports_in_use() {
    local n
    for n in 0 1 2; do
        ss -ltnH "sport = :$((P2P_BASE + n))"
        ss -lunH "sport = :$((P2P_BASE + n))"
        ss -ltnH "sport = :$((HTTP_BASE + n))"
        ss -ltnH "sport = :$((SSH_BASE + n))"
    done
}

# Waits until `$@` succeeds, up to $1 seconds.
wait_until() {
    local secs=$1
    shift
    local deadline=$((SECONDS + secs))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.3
    done
}

has_text() {
    curl -fsS --max-time 3 "http://127.0.0.1:$1/rooms/lobby/messages?limit=200" 2>/dev/null | grep -qF "$2"
}

[ -z "$(ports_in_use)" ] || fail "the cluster's ports are taken before the test: $(ports_in_use)"

# A key for SSH, in the cluster's authorized_keys as the README says.
command -v ssh-keygen >/dev/null || fail "ssh-keygen is not installed (scripts/install-deps.sh installs openssh-client)"
ssh-keygen -q -t ed25519 -N '' -C tester@ci -f "$tmp/key" || fail "ssh-keygen failed"
mkdir -p "$P2P_CHAT_CLUSTER_DIR"
cat "$tmp/key.pub" >>"$P2P_CHAT_CLUSTER_DIR/authorized_keys"

for round in 1 2; do
    start=$SECONDS
    timeout 180 bash scripts/start_cluster.sh start >"$tmp/start.out" 2>&1 ||
        { cat "$tmp/start.out" >&2; fail "round $round: start_cluster.sh start failed"; }
    cat "$tmp/start.out"
    echo "test-cluster: round $round: cluster up in $((SECONDS - start)) s"

    pids=()
    for n in 1 2 3; do
        pid=$(cat "$P2P_CHAT_CLUSTER_DIR/node$n.pid")
        kill -0 "$pid" || fail "node$n (pid $pid) is not running"
        pids+=("$pid")
        [ -s "$P2P_CHAT_CLUSTER_DIR/node$n.log" ] || fail "node$n's log is empty"
    done
    bash scripts/start_cluster.sh status

    # A message posted on node 1's sidecar is read on node 3's.
    text="round $round from node1 $$-$RANDOM"
    curl -fsS --max-time 5 -XPOST "http://127.0.0.1:$HTTP_BASE/rooms/lobby/messages" \
        -H 'Content-Type: application/json' -d "{\"text\":\"$text\"}" >"$tmp/post.out" ||
        fail "posting on node1's sidecar failed"
    echo "test-cluster: posted on node1: $(cat "$tmp/post.out")"
    wait_until 30 has_text "$((HTTP_BASE + 2))" "$text" || fail "node3 did not get the message posted on node1"
    echo "test-cluster: node3 has the message posted on node1"

    # The attach command the script printed, with the binary in place of
    # `cargo run --release --`, in --json mode, fed from a pipe.
    attach=$(sed -n 's/^ *cargo run --release -- //p' "$tmp/start.out")
    [ -n "$attach" ] || fail "start_cluster.sh printed no attach command"
    read -r -a attach_args <<<"$attach"
    rm -f "$tmp/client.in"
    mkfifo "$tmp/client.in"
    "$P2P_CHAT_CLUSTER_BIN" "${attach_args[@]}" --json --nick attached <"$tmp/client.in" >"$tmp/client.out" 2>"$tmp/client.err" &
    client_pid=$!
    exec 3>"$tmp/client.in"
    wait_until 30 grep -q '"event":"peer_connected"' "$tmp/client.out" ||
        fail "the attached client did not connect: $(tail -n 5 "$tmp/client.err")"
    # It hears the cluster, and the cluster hears it.
    text2="round $round from node2 $$-$RANDOM"
    text3="round $round from the client $$-$RANDOM"
    wait_until 30 curl -fsS --max-time 3 -XPOST "http://127.0.0.1:$((HTTP_BASE + 1))/rooms/lobby/messages" \
        -H 'Content-Type: application/json' -d "{\"text\":\"$text2\"}" -o /dev/null
    wait_until 30 grep -qF "$text2" "$tmp/client.out" || fail "the attached client did not get node2's message"
    echo "$text3" >&3
    wait_until 30 has_text "$((HTTP_BASE + 2))" "$text3" || fail "node3 did not get the attached client's message"
    echo "test-cluster: an attached client exchanges messages with the cluster"
    echo "/quit" >&3
    exec 3>&-
    wait_until 10 bash -c "! kill -0 $client_pid 2>/dev/null" || fail "the client did not quit"
    client_pid=

    # The SSH command the script printed, without a terminal (line mode):
    # the line goes out from node 1 as tester@node1. The host key is
    # learnt in round 1 and must be the same in round 2.
    login=$(sed -n 's/^over SSH (keys: .*): //p' "$tmp/start.out")
    [ -n "$login" ] || fail "start_cluster.sh printed no SSH command"
    read -r -a login_args <<<"$login"
    check=accept-new
    [ "$round" = 1 ] || check=yes
    text4="round $round over ssh $$-$RANDOM"
    timeout 30 "${login_args[@]}" -F /dev/null -T -i "$tmp/key" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o UserKnownHostsFile="$tmp/known_hosts" -o StrictHostKeyChecking=$check \
        <<<"$text4" >"$tmp/ssh.out" 2>"$tmp/ssh.err" ||
        fail "round $round: '$login' failed: $(cat "$tmp/ssh.err")"
    wait_until 30 has_text "$((HTTP_BASE + 2))" "$text4" || fail "node3 did not get the message sent over SSH"
    curl -fsS --max-time 3 "http://127.0.0.1:$((HTTP_BASE + 2))/rooms/lobby/messages?limit=200" |
        grep -qF "\"nick\":\"tester@node1\",\"text\":\"$text4\"" ||
        fail "node3 does not show the SSH message as tester@node1"
    echo "test-cluster: round $round: a line sent over SSH to node1 reaches node3 as tester@node1"

    start=$SECONDS
    bash scripts/start_cluster.sh stop
    echo "test-cluster: round $round: stopped in $((SECONDS - start)) s"
    for pid in "${pids[@]}"; do
        ! kill -0 "$pid" 2>/dev/null || fail "pid $pid is still running after stop"
    done
    [ -z "$(ports_in_use)" ] || fail "ports still in use after stop: $(ports_in_use)"
    ls "$P2P_CHAT_CLUSTER_DIR"/node*.pid >/dev/null 2>&1 && fail "pid files left after stop"
    echo "test-cluster: round $round: all three processes gone, all ports free"
done

# A port that is taken stops the start before any node runs, naming it.
python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(120)' "$((HTTP_BASE + 1))" &
blocker_pid=$!
wait_until 10 bash -c "ss -ltnH 'sport = :$((HTTP_BASE + 1))' | grep -q ." || fail "could not take a port for the clash test"
if bash scripts/start_cluster.sh start >"$tmp/clash.out" 2>&1; then
    fail "start_cluster.sh started although port $((HTTP_BASE + 1)) was taken"
fi
grep -q "port(s) already in use: tcp/$((HTTP_BASE + 1)) (node2 sidecar)" "$tmp/clash.out" ||
    fail "unexpected message for a taken port: $(cat "$tmp/clash.out")"
ls "$P2P_CHAT_CLUSTER_DIR"/node*.pid >/dev/null 2>&1 && fail "a node was started despite the clash"
echo "test-cluster: a taken port is refused: $(cat "$tmp/clash.out")"
kill "$blocker_pid"
blocker_pid=
echo "test-cluster: ok"
