//! A small network of test hosts on this machine: each host is a network
//! namespace with one interface on a shared bridge (itself in a namespace of
//! its own), so multicast, partitions and addresses stay inside the test.
//! Needs root and iproute2 (installed by `scripts/test.sh`).

use std::{
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

static NEXT: AtomicUsize = AtomicUsize::new(0);

pub struct Lab {
    switch: String,
    hosts: Vec<String>,
}

fn sh(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("ip (iproute2) runs");
    assert!(
        out.status.success(),
        "ip {}: {} (the network tests need root and iproute2)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Lab {
    /// `n` hosts at 10.77.0.1, 10.77.0.2, … on one bridge.
    pub fn new(n: usize) -> Lab {
        // Interface names are at most 15 bytes: keep the tag short.
        let tag = format!(
            "{:x}{}",
            std::process::id() % 0xfffff,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let switch = format!("pc{tag}s");
        sh(&["netns", "add", &switch]);
        let mut lab = Lab {
            switch: switch.clone(),
            hosts: Vec::new(),
        };
        sh(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        sh(&["-n", &switch, "link", "set", "br0", "up"]);
        for i in 0..n {
            let host = format!("pc{tag}h{i}");
            let (inner, outer) = (format!("pc{tag}v{i}"), format!("pc{tag}p{i}"));
            sh(&["netns", "add", &host]);
            lab.hosts.push(host.clone());
            sh(&[
                "link", "add", &inner, "type", "veth", "peer", "name", &outer,
            ]);
            sh(&["link", "set", &inner, "netns", &host]);
            sh(&["link", "set", &outer, "netns", &switch]);
            sh(&["-n", &switch, "link", "set", &outer, "master", "br0"]);
            sh(&["-n", &switch, "link", "set", &outer, "up"]);
            sh(&["-n", &host, "link", "set", &inner, "name", "eth0"]);
            sh(&[
                "-n",
                &host,
                "addr",
                "add",
                &format!("{}/24", Lab::ip(i)),
                "dev",
                "eth0",
            ]);
            sh(&["-n", &host, "link", "set", "eth0", "up"]);
            sh(&["-n", &host, "link", "set", "lo", "up"]);
        }
        lab
    }

    pub fn ip(i: usize) -> String {
        format!("10.77.0.{}", i + 1)
    }

    /// A command that runs `program` on host `i`.
    pub fn command(&self, i: usize, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.hosts[i], program]);
        cmd
    }
}

impl Lab {
    /// Cuts hosts `a` from hosts `b`, both ways, with nftables on each host.
    pub fn cut(&self, a: &[usize], b: &[usize]) {
        for (side, other) in [(a, b), (b, a)] {
            let ips: Vec<String> = other.iter().map(|&i| Lab::ip(i)).collect();
            let set = ips.join(", ");
            let rules = format!(
                "table inet cut {{\n\
                 chain input {{ type filter hook input priority 0; policy accept; ip saddr {{ {set} }} drop; }}\n\
                 chain output {{ type filter hook output priority 0; policy accept; ip daddr {{ {set} }} drop; }}\n\
                 }}\n"
            );
            for &i in side {
                let mut nft = self.command(i, "nft");
                nft.args(["-f", "-"]).stdin(std::process::Stdio::piped());
                let mut child = nft.spawn().expect("nft (nftables) runs");
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(rules.as_bytes())
                    .expect("rules");
                assert!(
                    child.wait().expect("nft").success(),
                    "nft rules on host {i}"
                );
            }
        }
    }

    /// Removes every cut.
    pub fn heal(&self, hosts: &[usize]) {
        for &i in hosts {
            let status = self
                .command(i, "nft")
                .args(["delete", "table", "inet", "cut"])
                .status()
                .expect("nft");
            assert!(status.success(), "heal host {i}");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.hosts.iter().chain(std::iter::once(&self.switch)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
