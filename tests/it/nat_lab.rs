//! Reaching peers behind real NAT. An "internet" segment (a bridge in a
//! namespace of its own) holds a public relay R and a public peer P; each
//! home is a router namespace doing NAT with nftables masquerade, dropping
//! what comes in unasked, and a host behind it. Nothing routes from one
//! home to another except through the routers. Needs root, iproute2 and
//! nftables (installed by `scripts/test.sh`).

use std::{
    io::Write,
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::cli::Proc;

const BIN: &str = env!("CARGO_BIN_EXE_p2p-chat");
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// How long the lab's waits may take: AutoNAT probes every 5 s, and a
/// reservation, a DHT lookup and hole punching follow.
const LAB_WAIT: Duration = Duration::from_secs(60);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn in_ns(ns: &str, program: &str, args: &[&str], stdin: Option<&str>) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]).args(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("ip netns exec runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("waits");
    assert!(
        out.status.success(),
        "{program} {} in {ns}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// The namespaces of one lab; deleted, with the nodes, when dropped.
pub struct NatLab {
    tag: String,
    switch: String,
    namespaces: Vec<String>,
    links: usize,
    homes: usize,
    nodes: Vec<Proc>,
}

impl NatLab {
    pub fn new() -> NatLab {
        let tag = format!(
            "{:x}{}",
            std::process::id() % 0xffff,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("nl{tag}i");
        ip(&["netns", "add", &switch]);
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        NatLab {
            tag,
            namespaces: vec![switch.clone()],
            switch,
            links: 0,
            homes: 0,
            nodes: Vec::new(),
        }
    }

    /// A namespace with `eth0` on the internet segment at `addr`.
    fn on_internet(&mut self, name: &str, addr: &str) -> String {
        let ns = format!("nl{}{name}", self.tag);
        ip(&["netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        let (inner, outer) = self.veth();
        ip(&["link", "set", &inner, "netns", &ns]);
        ip(&["link", "set", &outer, "netns", &self.switch]);
        ip(&["-n", &self.switch, "link", "set", &outer, "master", "br0"]);
        ip(&["-n", &self.switch, "link", "set", &outer, "up"]);
        ip(&["-n", &ns, "link", "set", &inner, "name", "eth0"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ns
    }

    fn veth(&mut self) -> (String, String) {
        self.links += 1;
        let pair = (
            format!("nl{}v{}", self.tag, self.links),
            format!("nl{}p{}", self.tag, self.links),
        );
        ip(&[
            "link", "add", &pair.0, "type", "veth", "peer", "name", &pair.1,
        ]);
        pair
    }

    /// A public host at 203.0.113.`octet`.
    pub fn public(&mut self, name: &str, octet: u8) -> String {
        self.on_internet(name, &format!("203.0.113.{octet}"))
    }

    /// A home: a router at 203.0.113.`octet` doing NAT for a host at
    /// 192.168.N.2. With `random_ports` the router picks a random source
    /// port for every mapping (hole punching cannot work behind it);
    /// otherwise it keeps the host's port where it can, as most do.
    pub fn home(&mut self, name: &str, octet: u8, random_ports: bool) -> String {
        self.homes += 1;
        let n = self.homes;
        let router = self.on_internet(&format!("r{n}"), &format!("203.0.113.{octet}"));
        let host = format!("nl{}{name}", self.tag);
        ip(&["netns", "add", &host]);
        self.namespaces.push(host.clone());
        let (inner, outer) = self.veth();
        ip(&["link", "set", &inner, "netns", &host]);
        ip(&["link", "set", &outer, "netns", &router]);
        ip(&["-n", &router, "link", "set", &outer, "name", "lan0"]);
        ip(&[
            "-n",
            &router,
            "addr",
            "add",
            &format!("192.168.{n}.1/24"),
            "dev",
            "lan0",
        ]);
        ip(&["-n", &router, "link", "set", "lan0", "up"]);
        ip(&["-n", &host, "link", "set", &inner, "name", "eth0"]);
        ip(&[
            "-n",
            &host,
            "addr",
            "add",
            &format!("192.168.{n}.2/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &host, "link", "set", "eth0", "up"]);
        ip(&["-n", &host, "link", "set", "lo", "up"]);
        ip(&[
            "-n",
            &host,
            "route",
            "add",
            "default",
            "via",
            &format!("192.168.{n}.1"),
        ]);
        in_ns(&router, "sysctl", &["-qw", "net.ipv4.ip_forward=1"], None);
        let masquerade = if random_ports {
            "masquerade fully-random"
        } else {
            "masquerade"
        };
        let rules = format!(
            "table ip nat {{\n\
               chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n\
                 oifname \"eth0\" {masquerade}; }}\n\
             }}\n\
             table inet fw {{\n\
               chain forward {{ type filter hook forward priority filter; policy drop;\n\
                 ct state established,related accept;\n\
                 iifname \"lan0\" oifname \"eth0\" accept; }}\n\
               chain input {{ type filter hook input priority filter; policy drop;\n\
                 ct state established,related accept; iifname \"lo\" accept;\n\
                 iifname \"lan0\" accept; }}\n\
             }}\n"
        );
        in_ns(&router, "nft", &["-f", "-"], Some(&rules));
        host
    }

    /// Starts a node in namespace `ns` with `args`; its index.
    pub fn start(&mut self, ns: &str, nick: &str, args: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, BIN])
            // Gossip lost while a connection changes is recovered by
            // history sync; every 5 s here so waits stay short.
            .args([
                "--ephemeral",
                "--no-mdns",
                "--json",
                "--nick",
                nick,
                "--sync-interval",
                "5",
            ])
            .args(args)
            .env("P2P_CHAT_HEARTBEAT_MS", "200")
            .env(
                "RUST_LOG",
                std::env::var("P2P_CHAT_LAB_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match std::env::var_os("P2P_CHAT_LAB_LOGS") {
                Some(dir) => Stdio::from(
                    std::fs::File::create(std::path::Path::new(&dir).join(format!("{nick}.log")))
                        .expect("log file"),
                ),
                None => Stdio::null(),
            })
            .spawn()
            .expect("binary starts in its namespace");
        self.nodes.push(Proc::from_child(child));
        self.nodes.len() - 1
    }

    pub fn node(&mut self, i: usize) -> &mut Proc {
        &mut self.nodes[i]
    }

    /// Asks node `i` for a `/command` until `pred` holds on its JSON answer
    /// (event `event`), within [`LAB_WAIT`].
    pub fn ask_until(
        &mut self,
        i: usize,
        command: &str,
        event: &str,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + LAB_WAIT;
        loop {
            self.nodes[i].send(command);
            let answer = self.nodes[i].event(event, |_| true);
            if pred(&answer) {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: last {answer}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn status(&mut self, i: usize, what: &str, pred: impl FnMut(&Value) -> bool) -> Value {
        let mut pred = pred;
        self.ask_until(i, "/status", "status", what, |v| pred(&v["status"]))["status"].clone()
    }

    /// Node `i`'s entry for peer `peer` in `/peers`, once `pred` holds.
    pub fn peer(
        &mut self,
        i: usize,
        peer: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let answer = self.ask_until(i, "/peers", "peers", what, |v| {
            v["peers"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["peer"] == peer && pred(p)))
        });
        answer["peers"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["peer"] == peer).cloned())
            .expect("the peer")
    }

    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `from` writes `text` in its current room; `to` receives it.
fn says(lab: &mut NatLab, from: usize, to: usize, text: &str) {
    lab.node(from).send(text);
    lab.node(to).event("message", |v| v["text"] == text);
}

/// `from` (peer id `from_id`) sends `to` (peer id `to_id`) a direct
/// message; `to` receives it.
fn tells(lab: &mut NatLab, (from, from_id): (usize, &str), (to, to_id): (usize, &str), text: &str) {
    lab.node(from).send(&format!("/msg {to_id} {text}"));
    lab.node(to)
        .event("direct", |v| v["from"] == from_id && v["text"] == text);
}

/// A public relay at 203.0.113.10 over TCP, its address declared (no
/// public peer dials it back in these labs, so AutoNAT has no one to ask,
/// and docs/operations.md says to declare it); its index and full address.
fn tcp_relay(lab: &mut NatLab, ns: &str, limits: &[&str]) -> (usize, String) {
    let args = [
        &[
            "--listen",
            "/ip4/0.0.0.0/tcp/4001",
            "--external",
            "/ip4/203.0.113.10/tcp/4001",
            "--relay-server",
        ][..],
        limits,
    ]
    .concat();
    let r = lab.start(ns, "relay", &args);
    let id = peer_id_of(&lab.status(r, "r's status", |_| true));
    (r, format!("/ip4/203.0.113.10/tcp/4001/p2p/{id}"))
}

/// Bytes the node in namespace `ns` sent and received over connections
/// through a relay, from its `/metrics` (its sidecar's default address, on
/// the namespace's own loopback).
fn relayed_bytes(ns: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-fsS", "--max-time", "3"])
        .arg("http://127.0.0.1:8081/metrics")
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "metrics of {ns}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("libp2p_bandwidth_bytes_total") && l.contains("p2p-circuit"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn peer_id_of(status: &Value) -> String {
    status["peer_id"].as_str().expect("peer id").to_owned()
}

/// Two homes behind NAT with only a relay between them, over `transport`
/// ("tcp" or "quic"): they find each other through the relay (by the DHT
/// on it, or B by A's invite ticket alone), chat in a
/// room the relay is not in and by direct message, hole-punch a direct
/// connection, and keep chatting after the relay is gone.
fn two_homes_go_direct(transport: &str, by_ticket: bool) {
    let mut lab = NatLab::new();
    let r_ns = lab.public("r", 10);
    let p_ns = lab.public("p", 11);
    let a_ns = lab.home("a", 1, false);
    let b_ns = lab.home("b", 2, false);
    let listen = match transport {
        "tcp" => "/ip4/0.0.0.0/tcp/4001",
        _ => "/ip4/0.0.0.0/udp/4001/quic-v1",
    };
    let relay_limits = [
        "--relay-server",
        "--relay-circuit-bytes",
        "32768",
        "--relay-circuit-secs",
        "20",
    ];
    let r = lab.start(
        &r_ns,
        "relay",
        &[&["--listen", listen][..], &relay_limits].concat(),
    );
    let r_status = lab.status(r, "r's status", |_| true);
    let r_addr = match transport {
        "tcp" => format!("/ip4/203.0.113.10/tcp/4001/p2p/{}", peer_id_of(&r_status)),
        _ => format!(
            "/ip4/203.0.113.10/udp/4001/quic-v1/p2p/{}",
            peer_id_of(&r_status)
        ),
    };
    let boot = ["--listen", listen, "--bootstrap", &r_addr];
    let p = lab.start(&p_ns, "pub", &boot);
    let a = lab.start(&a_ns, "alice", &[&boot[..], &["--room", "plans"]].concat());
    let a_status = lab.status(a, "a private with a relay address", |s| {
        s["reachability"] == "private" && s["relay_addrs"].as_array().is_some_and(|x| !x.is_empty())
    });
    let a_id = peer_id_of(&a_status);
    // B finds A through the DHT on R, or knows only A's invite ticket; the
    // first connection is relayed or, when hole punching was quick, direct.
    let b = if by_ticket {
        let invite = lab.ask_until(a, "/invite", "invite", "a's ticket", |_| true);
        let ticket = invite["ticket"].as_str().expect("ticket").to_owned();
        lab.start(&b_ns, "bob", &["--listen", listen, "--join", &ticket])
    } else {
        lab.start(&b_ns, "bob", &[&boot[..], &["--room", "plans"]].concat())
    };
    for (i, want, dht) in [
        (r, "public", "server"),
        (p, "public", "server"),
        (b, "private", "client"),
    ] {
        lab.status(i, &format!("node {i} {want}, DHT {dht}"), |s| {
            s["reachability"] == want && s["dht_mode"] == dht
        });
    }
    let b_id = peer_id_of(&lab.status(b, "b's status", |_| true));

    lab.peer(b, &a_id, "b connected to a", |_| true);
    says(&mut lab, a, b, "through the relay, or around it");
    tells(&mut lab, (b, &b_id), (a, &a_id), "just us");

    let direct = lab.peer(b, &a_id, "a direct connection to a", |p| {
        p["connection"] == "direct"
    });
    let addrs = direct["addresses"].to_string();
    assert!(
        addrs.contains("203.0.113.1/"),
        "a is reached at its router: {addrs}"
    );
    lab.status(r, "no circuit left on r", |s| {
        s["relay_server"]["circuits"] == 0
    });
    for n in 0..5 {
        lab.node(a).send(&format!("direct {n}"));
    }
    lab.node(b).event("message", |v| v["text"] == "direct 4");
    let held = lab.status(r, "r's circuits", |_| true);
    assert_eq!(
        held["relay_server"]["circuits"], 0,
        "nothing goes through r: {held}"
    );

    lab.kill(r);
    says(&mut lab, b, a, "with the relay gone");
    tells(&mut lab, (a, &a_id), (b, &b_id), "still here");
}

#[test]
fn two_homes_behind_nat_go_direct_over_tcp() {
    two_homes_go_direct("tcp", false);
}

#[test]
fn two_homes_behind_nat_go_direct_over_quic_from_an_invite_ticket() {
    two_homes_go_direct("quic", true);
}

/// Behind a router that picks a random port for every mapping, hole
/// punching cannot work: the pair stays relayed, still chats, and chats on
/// after the relay ends a circuit at its limit (20 s here).
#[test]
fn a_home_behind_a_port_randomising_nat_stays_relayed_and_still_chats() {
    let mut lab = NatLab::new();
    let r_ns = lab.public("r", 10);
    let a_ns = lab.home("a", 1, false);
    let c_ns = lab.home("c", 3, true);
    let listen = "/ip4/0.0.0.0/tcp/4001";
    let (r, r_addr) = tcp_relay(
        &mut lab,
        &r_ns,
        &[
            "--relay-circuit-bytes",
            "32768",
            "--relay-circuit-secs",
            "20",
        ],
    );
    let boot = [
        "--listen",
        listen,
        "--bootstrap",
        &r_addr,
        "--room",
        "plans",
    ];
    let a = lab.start(&a_ns, "alice", &boot);
    let c = lab.start(&c_ns, "carol", &boot);
    for i in [a, c] {
        lab.status(i, &format!("node {i} private with a relay address"), |s| {
            s["reachability"] == "private"
                && s["relay_addrs"].as_array().is_some_and(|x| !x.is_empty())
        });
    }
    let a_id = peer_id_of(&lab.status(a, "a's status", |_| true));
    let c_id = peer_id_of(&lab.status(c, "c's status", |_| true));
    lab.peer(c, &a_id, "c connected to a", |_| true);
    says(&mut lab, a, c, "over the relay");
    tells(&mut lab, (c, &c_id), (a, &a_id), "relayed dm");
    // Hole punching has had its tries (DCUtR gives up after three).
    std::thread::sleep(Duration::from_secs(5));
    let seen = lab.peer(c, &a_id, "c still connected to a", |_| true);
    assert_eq!(seen["connection"], "relayed", "{seen}");

    // Past the circuit's 20 s, the two meet again through the relay.
    std::thread::sleep(Duration::from_secs(20));
    says(&mut lab, a, c, "after the circuit's end");
    tells(&mut lab, (c, &c_id), (a, &a_id), "still relayed");
    let held = lab.status(r, "r's circuits", |_| true);
    assert!(
        held["relay_server"]["circuits_opened"].as_u64() >= Some(2),
        "a second circuit after the first ended: {held}"
    );
}

/// The lab's figures: `P2P_CHAT_NAT_TRIES` tries (3 in the suite; 20 for
/// docs/performance.md) of a home node B dialing a home node A's relay
/// address over TCP. Per try: from B's start to A's first message at B
/// (sent as soon as A sees B, so through the relay unless hole punching
/// was quicker), and to the direct upgrade. Every try must upgrade: both
/// routers keep ports.
#[test]
fn nat_figures() {
    let tries: usize = std::env::var("P2P_CHAT_NAT_TRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let (mut first, mut direct, mut relayed_first) = (Vec::new(), Vec::new(), 0);
    let (mut through_relay, mut per_message) = (Vec::new(), Vec::new());
    for _ in 0..tries {
        let mut lab = NatLab::new();
        let r_ns = lab.public("r", 10);
        let a_ns = lab.home("a", 1, false);
        let b_ns = lab.home("b", 2, false);
        let c_ns = lab.home("c", 3, true);
        let listen = "/ip4/0.0.0.0/tcp/4001";
        let (_, relay) = tcp_relay(&mut lab, &r_ns, &[]);
        let a = lab.start(
            &a_ns,
            "alice",
            &["--listen", listen, "--relay", &relay, "--room", "plans"],
        );
        let a_status = lab.status(a, "a's relay address", |s| {
            s["relay_addrs"].as_array().is_some_and(|x| !x.is_empty())
        });
        let a_id = peer_id_of(&a_status);
        let circuit = a_status["relay_addrs"][0]
            .as_str()
            .expect("address")
            .to_owned();
        let started = Instant::now();
        let b = lab.start(
            &b_ns,
            "bob",
            &["--listen", listen, "--dial", &circuit, "--room", "plans"],
        );
        let b_id = peer_id_of(&lab.status(b, "b's status", |_| true));
        lab.peer(a, &b_id, "a sees b", |_| true);
        lab.node(a).send("first");
        lab.node(b).event("message", |v| v["text"] == "first");
        first.push(started.elapsed());
        if lab.peer(b, &a_id, "b's view of a", |_| true)["connection"] == "relayed" {
            relayed_first += 1;
        }
        lab.peer(b, &a_id, "the direct upgrade", |p| {
            p["connection"] == "direct"
        });
        direct.push(started.elapsed());
        // C's router randomises ports: C and A stay relayed.
        let started = Instant::now();
        let c = lab.start(
            &c_ns,
            "carol",
            &["--listen", listen, "--dial", &circuit, "--room", "plans"],
        );
        let c_id = peer_id_of(&lab.status(c, "c's status", |_| true));
        lab.peer(a, &c_id, "a sees c", |_| true);
        lab.node(a).send("relayed");
        lab.node(c).event("message", |v| v["text"] == "relayed");
        through_relay.push(started.elapsed());
        // What the relayed link carries per room message, from C's own
        // transport counters for connections through a relay.
        const BURST: u64 = 20;
        let before = relayed_bytes(&c_ns);
        for n in 0..BURST {
            lab.node(a).send(&format!("relayed {n:02}"));
        }
        lab.node(c).event("message", |v| {
            v["text"] == format!("relayed {:02}", BURST - 1)
        });
        per_message.push((relayed_bytes(&c_ns) - before) / BURST);
    }
    let ms = |d: &Vec<Duration>| {
        let mut v: Vec<u128> = d.iter().map(Duration::as_millis).collect();
        v.sort_unstable();
        (v[v.len() / 2], v[v.len() - 1])
    };
    let ((f50, fmax), (d50, dmax)) = (ms(&first), ms(&direct));
    let (r50, rmax) = ms(&through_relay);
    per_message.sort_unstable();
    let bytes50 = per_message[per_message.len() / 2];
    assert!(bytes50 > 0, "the relayed link's bytes are counted");
    println!(
        "nat figures ({tries} tries): first message p50 {f50} ms, max {fmax} ms \
         (still relayed then in {relayed_first}); direct upgrade p50 {d50} ms, max {dmax} ms; \
         upgrades {}/{tries}; behind a port-randomising router, first message through the \
         relay p50 {r50} ms, max {rmax} ms, {bytes50} bytes per message over the relayed link (p50)",
        direct.len()
    );
}
