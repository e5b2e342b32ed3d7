//! A docker-like network for the lab's network scenarios (and the end-to-end network tests), built with `ip`, `tc` and `iptables`
//! and removed on drop: namespace `cplab-<pid>-<n>`, bridge `cplb<pid><n>` at .1 of a /24 in
//! 198.18.0.0/15, a veth pair `cplh<pid><n>` (bridge port) / `cpln<pid><n>` (in the namespace,
//! at .2), a DNAT of a free loopback port to .2:80 with MASQUERADE, and optionally a tbf shaper
//! on the namespace side (where responses leave). Only addresses inside this namespace are used.
use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use super::{LabError, guard::free_port};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct LabNet {
    pub netns: String,
    pub bridge: String,
    pub veth_host: String,
    pub veth_ns: String,
    pub ns_ip: Ipv4Addr,
    /// Loopback port DNAT-ed to `ns_ip:80`.
    pub nat_port: u16,
    rules: Vec<Vec<String>>,
}

fn step(args: &[&str]) -> Result<(), LabError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|source| LabError::Spawn {
            what: args[0].to_string(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(LabError::StepFailed {
        what: args.join(" "),
        status: out.status.to_string(),
        output: String::from_utf8_lossy(&out.stderr)
            .trim()
            .chars()
            .take(400)
            .collect(),
    })
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

impl LabNet {
    /// `shaper`: a tbf rate in `tc` syntax (`8mbit`) for the namespace-side veth.
    pub fn build(shaper: Option<&str>) -> Result<LabNet, LabError> {
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % 10;
        let slot = (pid.wrapping_mul(2).wrapping_add(n)) % 512;
        let mut net = LabNet {
            netns: format!("cplab-{pid}-{n}"),
            bridge: format!("cplb{pid}{n}"),
            veth_host: format!("cplh{pid}{n}"),
            veth_ns: format!("cpln{pid}{n}"),
            ns_ip: Ipv4Addr::new(198, 18 + (slot / 256) as u8, (slot % 256) as u8, 2),
            nat_port: free_port()?,
            rules: Vec::new(),
        };
        // On failure, drop removes whatever was set up.
        net.set_up(shaper)?;
        Ok(net)
    }

    fn set_up(&mut self, shaper: Option<&str>) -> Result<(), LabError> {
        let (ns, br, vh, vn) = (
            self.netns.clone(),
            self.bridge.clone(),
            self.veth_host.clone(),
            self.veth_ns.clone(),
        );
        let o = self.ns_ip.octets();
        let bridge_ip = Ipv4Addr::new(o[0], o[1], o[2], 1);
        step(&["ip", "netns", "add", &ns])?;
        step(&["ip", "link", "add", &br, "type", "bridge"])?;
        step(&["ip", "addr", "add", &format!("{bridge_ip}/24"), "dev", &br])?;
        step(&["ip", "link", "set", &br, "up"])?;
        step(&[
            "ip", "link", "add", &vh, "type", "veth", "peer", "name", &vn, "netns", &ns,
        ])?;
        step(&["ip", "link", "set", &vh, "master", &br])?;
        step(&["ip", "link", "set", &vh, "up"])?;
        step(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", self.ns_ip),
            "dev",
            &vn,
        ])?;
        step(&["ip", "-n", &ns, "link", "set", &vn, "up"])?;
        step(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        step(&[
            "ip",
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &bridge_ip.to_string(),
        ])?;
        if let Some(rate) = shaper {
            step(&[
                "ip", "netns", "exec", &ns, "tc", "qdisc", "add", "dev", &vn, "root", "tbf",
                "rate", rate, "burst", "32kbit", "latency", "50ms",
            ])?;
        }
        // Locally generated packets to 127.0.0.1 may leave through the bridge only with
        // route_localnet on it (a per-device setting: gone with the bridge).
        let knob = format!("/proc/sys/net/ipv4/conf/{br}/route_localnet");
        std::fs::write(&knob, "1").map_err(|source| LabError::Io {
            path: knob.into(),
            source,
        })?;
        let port = self.nat_port.to_string();
        let backend = format!("{}:80", self.ns_ip);
        let ns_ip = self.ns_ip.to_string();
        let rules: [Vec<&str>; 2] = [
            vec![
                "nat",
                "OUTPUT",
                "-d",
                "127.0.0.1",
                "-p",
                "tcp",
                "--dport",
                &port,
                "-j",
                "DNAT",
                "--to-destination",
                &backend,
            ],
            vec![
                "nat",
                "POSTROUTING",
                "-s",
                "127.0.0.1",
                "-d",
                &ns_ip,
                "-p",
                "tcp",
                "--dport",
                "80",
                "-j",
                "MASQUERADE",
            ],
        ];
        for rule in rules {
            let mut rule: Vec<String> = rule.into_iter().map(str::to_owned).collect();
            rule.extend(["-m", "comment", "--comment", &ns].map(str::to_owned));
            let mut args = vec!["iptables", "-t", &rule[0], "-A"];
            args.extend(rule[1..].iter().map(String::as_str));
            step(&args)?;
            self.rules.push(rule);
        }
        Ok(())
    }
}

impl LabNet {
    /// The bridge's own address (the host's side of the network, `.1`).
    pub fn bridge_ip(&self) -> Ipv4Addr {
        let o = self.ns_ip.octets();
        Ipv4Addr::new(o[0], o[1], o[2], 1)
    }

    /// A tbf shaper at `rate` on the host-side veth: what the host sends into the namespace.
    pub fn shape_host_side(&self, rate: &str) -> Result<(), LabError> {
        step(&[
            "tc",
            "qdisc",
            "add",
            "dev",
            &self.veth_host,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "32kbit",
            "latency",
            "50ms",
        ])
    }

    /// The loopback address clients use: DNAT-ed into the namespace.
    pub fn published(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.nat_port))
    }
}

impl Drop for LabNet {
    fn drop(&mut self) {
        for rule in self.rules.drain(..) {
            let mut args = vec!["iptables", "-t", &rule[0], "-D"];
            args.extend(rule[1..].iter().map(String::as_str));
            quiet(&args);
        }
        quiet(&["ip", "link", "del", &self.veth_host]);
        quiet(&["ip", "link", "del", &self.bridge]);
        quiet(&["ip", "netns", "del", &self.netns]);
    }
}

/// A sysctl file written for a scenario; restored on drop.
pub struct Sysctl {
    path: String,
    old: String,
}

impl Sysctl {
    pub fn set(path: &str, value: &str) -> Result<Sysctl, LabError> {
        let io = |source| LabError::Io {
            path: path.into(),
            source,
        };
        let old = std::fs::read_to_string(path).map_err(io)?;
        std::fs::write(path, value).map_err(io)?;
        Ok(Sysctl {
            path: path.to_string(),
            old: old.trim().to_string(),
        })
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.old) {
            log::warn!("could not restore {}: {e}", self.path);
        }
    }
}
