//! A docker-like topology for live tests, built with `ip`, `tc` and `iptables` and torn down on
//! drop: namespace `cp-test-<pid>`, bridge `cpbr<pid>` at .1 of a /24 in 198.18.0.0/15, a veth
//! pair `cpvh<pid>` (bridge port, tbf 1mbit) / `cpvn<pid>` (in the namespace, at .2), and a DNAT
//! of 127.0.0.1:<port> to a TCP server at .2:80 in the namespace.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::in_netns;

/// One fixture at a time in this process: they share names.
static LIVE: Mutex<()> = Mutex::new(());

/// 1mbit in bytes per second, the tbf rate set on the host-side veth.
pub const TBF_RATE_BYTES: u64 = 125_000;
pub const SERVER_PORT: u16 = 80;

pub struct TestNet {
    pub netns: String,
    pub netns_path: PathBuf,
    pub bridge: String,
    pub veth_host: String,
    pub veth_ns: String,
    pub bridge_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
    /// Loopback port DNAT-ed to `ns_ip:80`.
    pub nat_port: u16,
    nat_rules: Vec<Vec<String>>,
    _guard: MutexGuard<'static, ()>,
}

/// Why the live tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".to_owned());
    }
    for tool in ["ip", "tc", "iptables"] {
        let found = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    None
}

fn run(args: &[&str]) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("run a set-up command");
    assert!(
        output.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestNet {
    pub fn build() -> TestNet {
        let guard = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let pid = std::process::id();
        // The whole pid fits a link name (at most 7 digits + 4 < IFNAMSIZ), so two test processes
        // never share names and the clean-up below only ever meets our own leftovers.
        // One /24 of 198.18.0.0/15 per pid modulo 512.
        let third = u8::try_from(pid % 256).expect("pid % 256 fits a u8");
        let second = 18 + u8::try_from((pid / 256) % 2).expect("0 or 1");
        let port_probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
        let nat_port = port_probe.local_addr().expect("probe address").port();
        drop(port_probe);
        let mut net = TestNet {
            netns: format!("cp-test-{pid}"),
            netns_path: PathBuf::from(format!("/var/run/netns/cp-test-{pid}")),
            bridge: format!("cpbr{pid}"),
            veth_host: format!("cpvh{pid}"),
            veth_ns: format!("cpvn{pid}"),
            bridge_ip: Ipv4Addr::new(198, second, third, 1),
            ns_ip: Ipv4Addr::new(198, second, third, 2),
            nat_port,
            nat_rules: Vec::new(),
            _guard: guard,
        };
        // A leftover of a killed earlier process with the same pid would make `add` fail.
        net.teardown();
        net.set_up();
        net
    }

    fn set_up(&mut self) {
        let (ns, br, vh, vn) = (
            self.netns.clone(),
            self.bridge.clone(),
            self.veth_host.clone(),
            self.veth_ns.clone(),
        );
        let bridge_cidr = format!("{}/24", self.bridge_ip);
        let ns_cidr = format!("{}/24", self.ns_ip);
        run(&["ip", "netns", "add", &ns]);
        run(&["ip", "link", "add", &br, "type", "bridge"]);
        run(&["ip", "addr", "add", &bridge_cidr, "dev", &br]);
        run(&["ip", "link", "set", &br, "up"]);
        run(&[
            "ip", "link", "add", &vh, "type", "veth", "peer", "name", &vn, "netns", &ns,
        ]);
        // No IPv6 autoconfiguration chatter on the test links: the tests count their packets.
        for dev in [&br, &vh] {
            let knob = format!("/proc/sys/net/ipv6/conf/{dev}/disable_ipv6");
            if std::path::Path::new(&knob).exists() {
                std::fs::write(&knob, "1").expect("disable IPv6 on a test link");
            }
        }
        if std::path::Path::new("/proc/sys/net/ipv6").exists() {
            let knob = format!("net.ipv6.conf.{vn}.disable_ipv6=1");
            run(&["ip", "netns", "exec", &ns, "sysctl", "-qw", &knob]);
        }
        run(&["ip", "link", "set", &vh, "master", &br]);
        run(&["ip", "link", "set", &vh, "up"]);
        run(&["ip", "-n", &ns, "addr", "add", &ns_cidr, "dev", &vn]);
        run(&["ip", "-n", &ns, "link", "set", &vn, "up"]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        run(&[
            "tc", "qdisc", "add", "dev", &vh, "root", "tbf", "rate", "1mbit", "burst", "32kbit",
            "latency", "50ms",
        ]);
        // Locally generated packets to 127.0.0.1 may leave through the bridge only with
        // route_localnet on it (per device: gone with the bridge).
        std::fs::write(format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1")
            .expect("set route_localnet on the test bridge");
        let backend = format!("{}:{SERVER_PORT}", self.ns_ip);
        let comment = self.netns.clone();
        let rules = [
            vec![
                "nat",
                "OUTPUT",
                "-d",
                "127.0.0.1",
                "-p",
                "tcp",
                "--dport",
                &self.nat_port.to_string(),
                "-j",
                "DNAT",
                "--to-destination",
                &backend,
            ]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>(),
            vec![
                "nat",
                "POSTROUTING",
                "-s",
                "127.0.0.1",
                "-d",
                &self.ns_ip.to_string(),
                "-p",
                "tcp",
                "--dport",
                &SERVER_PORT.to_string(),
                "-j",
                "MASQUERADE",
            ]
            .into_iter()
            .map(str::to_owned)
            .collect(),
        ];
        for mut rule in rules {
            rule.extend(["-m", "comment", "--comment", &comment].map(str::to_owned));
            let mut args = vec!["iptables".to_owned(), "-t".to_owned(), rule[0].clone()];
            args.push("-A".to_owned());
            args.extend(rule[1..].iter().cloned());
            run(&args.iter().map(String::as_str).collect::<Vec<_>>());
            self.nat_rules.push(rule);
        }
    }

    /// Starts a TCP server at `ns_ip:80` inside the namespace that reads each connection to
    /// its end and answers with the number of bytes read. Serves `connections` and stops.
    pub fn serve(&self, connections: usize) -> std::thread::JoinHandle<Vec<u64>> {
        let addr = SocketAddr::from((self.ns_ip, SERVER_PORT));
        // The socket keeps the namespace it was created in.
        let listener = in_netns(&self.netns_path, || {
            TcpListener::bind(addr).map_err(|source| crate::collect::CollectError::Read {
                path: PathBuf::from(addr.to_string()),
                source,
            })
        })
        .expect("bind the test server inside the namespace");
        std::thread::spawn(move || {
            let mut sizes = Vec::new();
            for _ in 0..connections {
                let (mut stream, _) = listener.accept().expect("accept");
                stream
                    .set_read_timeout(Some(Duration::from_secs(20)))
                    .expect("read timeout");
                let mut buffer = vec![0u8; 64 * 1024];
                let mut total = 0u64;
                loop {
                    match stream.read(&mut buffer) {
                        Ok(0) => break,
                        Ok(n) => total += n as u64,
                        Err(e) => panic!("server read: {e}"),
                    }
                }
                stream
                    .write_all(total.to_string().as_bytes())
                    .expect("server write");
                sizes.push(total);
            }
            sizes
        })
    }

    /// Sends `bytes` through the DNAT (127.0.0.1:nat_port) on one connection and returns the
    /// count the server reports back. The connection stays open until the answer arrives.
    pub fn send_through_nat(&self, bytes: usize) -> u64 {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.nat_port)).expect("connect through the DNAT");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("read timeout");
        stream.write_all(&vec![b'x'; bytes]).expect("client write");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("client read");
        answer.trim().parse().expect("server answers a number")
    }

    fn teardown(&mut self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new(args[0]).args(&args[1..]).output();
        };
        for rule in self.nat_rules.drain(..) {
            let mut args = vec!["iptables", "-t", &rule[0], "-D"];
            args.extend(rule[1..].iter().map(String::as_str));
            quiet(&args);
        }
        quiet(&["ip", "link", "del", &self.veth_host]);
        quiet(&["ip", "link", "del", &self.bridge]);
        quiet(&["ip", "netns", "del", &self.netns]);
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.teardown();
    }
}
