#!/usr/bin/env bash
# A local 3-node p2p-chat cluster without Docker.
#
#   scripts/start_cluster.sh [start]   build (or use) the binary, start 3 nodes, wait until ready
#   scripts/start_cluster.sh stop      stop exactly the nodes this script started (pid files)
#   scripts/start_cluster.sh status    which nodes run, their pids, ports and health
#
# Node N (1..3) listens on 127.0.0.1 only: p2p TCP and QUIC on BASE_P2P+N-1,
# its HTTP sidecar on BASE_HTTP+N-1, SSH on BASE_SSH+N-1 for the keys in the
# cluster's authorized_keys (read again when it changes; without a key the
# nodes run without SSH). Nodes 2 and 3 dial node 1; mDNS is off,
# so the cluster never mixes with other nodes on the LAN. Each node has its
# own data dir (identity key, history) and log file under the cluster dir.
#
# Settings (environment):
#   P2P_CHAT_CLUSTER_DIR        cluster dir (default: .cluster in the repository; ignored by git)
#   P2P_CHAT_CLUSTER_P2P_PORT   first p2p port (default 14101: 14101-14103, TCP and UDP)
#   P2P_CHAT_CLUSTER_HTTP_PORT  first sidecar port (default 14181: 14181-14183)
#   P2P_CHAT_CLUSTER_SSH_PORT   first SSH port (default 14221: 14221-14223)
#   P2P_CHAT_CLUSTER_AUTHORIZED_KEYS  the keys that may log in over SSH
#                               (default: authorized_keys in the cluster dir)
#   P2P_CHAT_CLUSTER_BIN        use this binary instead of building target/release/p2p-chat
#   P2P_CHAT_CLUSTER_TIMEOUT    seconds to wait for the nodes to be ready (default 60)
#
# The default ports lie below Linux's ephemeral range (32768-60999), so the
# ports other programs and the test suite get from the kernel never clash
# with them. A port already taken stops the start before anything runs.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cluster_dir=${P2P_CHAT_CLUSTER_DIR:-$repo/.cluster}
[[ $cluster_dir == /* ]] || cluster_dir=$PWD/$cluster_dir
base_p2p=${P2P_CHAT_CLUSTER_P2P_PORT:-14101}
base_http=${P2P_CHAT_CLUSTER_HTTP_PORT:-14181}
base_ssh=${P2P_CHAT_CLUSTER_SSH_PORT:-14221}
authorized_keys=${P2P_CHAT_CLUSTER_AUTHORIZED_KEYS:-$cluster_dir/authorized_keys}
[[ $authorized_keys == /* ]] || authorized_keys=$PWD/$authorized_keys
timeout=${P2P_CHAT_CLUSTER_TIMEOUT:-60}
nodes=(1 2 3)

die() {
    echo "start_cluster: $*" >&2
    exit 1
}

p2p_port() { echo $((base_p2p + $1 - 1)); }
http_port() { echo $((base_http + $1 - 1)); }
ssh_port() { echo $((base_ssh + $1 - 1)); }
pid_file() { echo "$cluster_dir/node$1.pid"; }
log_file() { echo "$cluster_dir/node$1.log"; }
data_dir() { echo "$cluster_dir/node$1"; }

# The pid recorded for node N if that process is still the node we started
# (same pid, same data dir on its command line), else nothing.
live_pid() {
    local file pid
    file=$(pid_file "$1")
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    local cmdline
    cmdline=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null) || return 0
    if grep -qxF "$(data_dir "$1")" <<<"$cmdline"; then
        echo "$pid"
    fi
}

# Is something listening on this TCP port, or bound to this UDP port?
port_taken() {
    local proto=$1 port=$2 flag=-ltnH
    [ "$proto" = udp ] && flag=-lunH
    [ -n "$(ss "$flag" "sport = :$port" 2>/dev/null)" ]
}

http_get() {
    curl -fsS --max-time 2 "http://127.0.0.1:$(http_port "$1")$2"
}

# "ssh 127.0.0.1:PORT" if node N serves SSH, else "ssh off".
ssh_state() {
    local body
    if body=$(http_get "$1" /status 2>/dev/null) && [[ $body == *'"ssh":{'* ]]; then
        echo "ssh 127.0.0.1:$(ssh_port "$1")"
    else
        echo "ssh off"
    fi
}

status() {
    local n pid any=0
    for n in "${nodes[@]}"; do
        pid=$(live_pid "$n")
        if [ -n "$pid" ]; then
            any=1
            local health
            health=$(http_get "$n" /health 2>/dev/null || echo "no answer")
            echo "node$n: pid $pid, p2p 127.0.0.1:$(p2p_port "$n") tcp+udp, http 127.0.0.1:$(http_port "$n"), $(ssh_state "$n"), health $health, log $(log_file "$n")"
        else
            echo "node$n: not running"
        fi
    done
    [ "$any" = 1 ]
}

stop() {
    local n pid stopped=()
    for n in "${nodes[@]}"; do
        pid=$(live_pid "$n")
        if [ -n "$pid" ]; then
            kill -TERM "$pid" 2>/dev/null || true
            stopped+=("$n:$pid")
        fi
    done
    local entry deadline=$((SECONDS + 15))
    for entry in "${stopped[@]}"; do
        n=${entry%%:*}
        pid=${entry#*:}
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "start_cluster: node$n (pid $pid) did not stop within 15 s of SIGTERM; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "stopped node$n (pid $pid)"
    done
    for n in "${nodes[@]}"; do
        rm -f "$(pid_file "$n")"
    done
    [ ${#stopped[@]} -gt 0 ] || echo "no cluster node was running"
}

find_binary() {
    if [ -n "${P2P_CHAT_CLUSTER_BIN:-}" ]; then
        [ -x "$P2P_CHAT_CLUSTER_BIN" ] || die "P2P_CHAT_CLUSTER_BIN=$P2P_CHAT_CLUSTER_BIN is not an executable file"
        (cd "$(dirname "$P2P_CHAT_CLUSTER_BIN")" && echo "$(pwd)/$(basename "$P2P_CHAT_CLUSTER_BIN")")
        return
    fi
    echo "building the release binary (cargo build --release --locked --bin p2p-chat)" >&2
    (cd "$repo" && cargo build --release --locked --bin p2p-chat >&2)
    echo "$repo/target/release/p2p-chat"
}

start() {
    local n pid
    for n in "${nodes[@]}"; do
        pid=$(live_pid "$n")
        [ -z "$pid" ] || die "node$n is already running (pid $pid); run 'scripts/start_cluster.sh stop' first"
    done
    for cmd in curl ss setsid; do
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' is needed (Debian: apt-get install curl iproute2 util-linux)"
    done
    local taken=()
    for n in "${nodes[@]}"; do
        port_taken tcp "$(p2p_port "$n")" && taken+=("tcp/$(p2p_port "$n") (node$n p2p)")
        port_taken udp "$(p2p_port "$n")" && taken+=("udp/$(p2p_port "$n") (node$n QUIC)")
        port_taken tcp "$(http_port "$n")" && taken+=("tcp/$(http_port "$n") (node$n sidecar)")
        port_taken tcp "$(ssh_port "$n")" && taken+=("tcp/$(ssh_port "$n") (node$n SSH)")
    done
    if [ ${#taken[@]} -gt 0 ]; then
        die "port(s) already in use: ${taken[*]}; stop what holds them (ss -ltnup shows it) or choose other ports with P2P_CHAT_CLUSTER_P2P_PORT / P2P_CHAT_CLUSTER_HTTP_PORT / P2P_CHAT_CLUSTER_SSH_PORT"
    fi

    local bin
    bin=$(find_binary)
    [ -x "$bin" ] || die "no binary at $bin"
    mkdir -p "$cluster_dir"

    # Node 1 first: the others dial it by its peer id.
    launch() {
        local n=$1
        shift
        local p2p http
        p2p=$(p2p_port "$n")
        http=$(http_port "$n")
        mkdir -p "$(data_dir "$n")"
        # A token in the caller's environment would guard these loopback
        # sidecars; the local cluster is for local users only, so none is used.
        # NO_COLOR: plain log files, without terminal colour codes.
        env -u P2P_CHAT_HTTP_TOKEN -u P2P_CHAT_HTTP_TOKEN_FILE \
            RUST_LOG="${RUST_LOG:-info}" NO_COLOR=1 \
            setsid "$bin" --headless --no-mdns --nick "node$n" \
            --data-dir "$(data_dir "$n")" \
            --listen "/ip4/127.0.0.1/tcp/$p2p" --listen "/ip4/127.0.0.1/udp/$p2p/quic-v1" \
            --http "127.0.0.1:$http" \
            --ssh "127.0.0.1:$(ssh_port "$n")" --ssh-authorized-keys "$authorized_keys" "$@" \
            </dev/null >"$(log_file "$n")" 2>&1 &
        echo $! >"$(pid_file "$n")"
    }

    wait_for() {
        local n=$1 path=$2 deadline=$((SECONDS + timeout))
        until http_get "$n" "$path" >/dev/null 2>&1; do
            if [ -z "$(live_pid "$n")" ]; then
                echo "start_cluster: node$n exited; the end of its log ($(log_file "$n")):" >&2
                tail -n 20 "$(log_file "$n")" >&2 || true
                stop >/dev/null
                exit 1
            fi
            if [ "$SECONDS" -ge "$deadline" ]; then
                echo "start_cluster: node$n's sidecar did not answer $path within ${timeout} s; log: $(log_file "$n")" >&2
                stop >/dev/null
                exit 1
            fi
            sleep 0.2
        done
    }

    launch 1
    wait_for 1 /health
    local peer_id
    peer_id=$(http_get 1 /status | sed -n 's/.*"peer_id":"\([^"]*\)".*/\1/p')
    [ -n "$peer_id" ] || die "could not read node1's peer id from http://127.0.0.1:$(http_port 1)/status"
    local node1_addr
    node1_addr="/ip4/127.0.0.1/tcp/$(p2p_port 1)/p2p/$peer_id"
    launch 2 --dial "$node1_addr"
    launch 3 --dial "$node1_addr"
    for n in "${nodes[@]}"; do
        wait_for "$n" /health
    done
    # Ready: listening, in a room, and (nodes 2 and 3) connected to node 1.
    for n in "${nodes[@]}"; do
        wait_for "$n" /ready
    done
    echo "$node1_addr" >"$cluster_dir/node1.addr"

    echo "p2p-chat cluster up: 3 nodes in room #lobby, nodes 2 and 3 dial node 1, mDNS off"
    for n in "${nodes[@]}"; do
        echo "  node$n: pid $(cat "$(pid_file "$n")"), p2p 127.0.0.1:$(p2p_port "$n") (tcp, quic), sidecar http://127.0.0.1:$(http_port "$n"), $(ssh_state "$n"), data $(data_dir "$n")"
    done
    echo "logs: $cluster_dir/node{1,2,3}.log"
    echo "attach a chat client (from the repository):"
    echo "  cargo run --release -- --ephemeral --no-mdns --no-http --listen /ip4/127.0.0.1/tcp/0 --dial $node1_addr"
    if [ "$(ssh_state 1)" = "ssh off" ]; then
        echo "SSH is off ($(log_file 1) says why); with no key in $authorized_keys, add one and start again:"
        echo "  cat ~/.ssh/id_ed25519.pub >> $authorized_keys"
    else
        echo "over SSH (keys: $authorized_keys): ssh -p $(ssh_port 1) localhost"
    fi
    echo "send from a script: curl -s -XPOST http://127.0.0.1:$(http_port 1)/rooms/lobby/messages -H 'Content-Type: application/json' -d '{\"text\":\"hi\"}'"
    echo "stop: scripts/start_cluster.sh stop"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 [start|stop|status]" >&2
    exit 2
    ;;
esac
