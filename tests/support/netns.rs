//! A docker-like network for end-to-end tests, built with `ip`, `tc` and `iptables` and removed
//! on drop (also when a test panics): namespace `cp-net-<pid>-<n>`, bridge `cpb<pid><n>` at .1 of
//! a /24 in 198.19.0.0/16, a veth pair `cph<pid><n>` (bridge port) / `cpn<pid><n>` (in the
//! namespace, at .2), a DNAT of a free loopback port to .2:80 with MASQUERADE, and optionally a
//! tbf shaper on the namespace side (the direction responses take). Only addresses inside the
//! namespace this fixture creates are used.
use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use nix::sys::signal::Signal;

use crate::{FixtureError, ServerProcess, free_port, tool};

static NEXT: AtomicU32 = AtomicU32::new(0);

pub struct DockerNet {
    pub netns: String,
    pub bridge: String,
    pub veth_host: String,
    pub veth_ns: String,
    pub bridge_ip: Ipv4Addr,
    pub ns_ip: Ipv4Addr,
    /// Loopback port DNAT-ed to `ns_ip:80`.
    pub nat_port: u16,
    rules: Vec<Vec<String>>,
}

/// Why the network tests cannot run here, if they cannot.
pub fn netns_unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    for t in ["ip", "tc", "iptables", "nginx"] {
        if crate::try_tool(t).is_none() {
            return Some(format!("`{t}` is not installed"));
        }
    }
    None
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn quiet(args: &[&str]) {
    let _ = Command::new(args[0]).args(&args[1..]).output();
}

impl DockerNet {
    /// Builds the network; `shaper` is a tbf rate (`tc` syntax, e.g. `8mbit`) for the
    /// namespace-side veth.
    pub fn build(shaper: Option<&str>) -> DockerNet {
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let third = u8::try_from((pid.wrapping_mul(4).wrapping_add(n)) % 256).expect("< 256");
        let mut net = DockerNet {
            netns: format!("cp-net-{pid}-{n}"),
            bridge: format!("cpb{pid}{n}"),
            veth_host: format!("cph{pid}{n}"),
            veth_ns: format!("cpn{pid}{n}"),
            bridge_ip: Ipv4Addr::new(198, 19, third, 1),
            ns_ip: Ipv4Addr::new(198, 19, third, 2),
            nat_port: free_port(),
            rules: Vec::new(),
        };
        assert!(net.veth_host.len() < 16, "link name too long");
        // Anything set up before a failure is removed by drop.
        net.set_up(shaper);
        net
    }

    fn set_up(&mut self, shaper: Option<&str>) {
        let (ns, br, vh, vn) = (
            self.netns.clone(),
            self.bridge.clone(),
            self.veth_host.clone(),
            self.veth_ns.clone(),
        );
        run(&["ip", "netns", "add", &ns]);
        run(&["ip", "link", "add", &br, "type", "bridge"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", self.bridge_ip),
            "dev",
            &br,
        ]);
        run(&["ip", "link", "set", &br, "up"]);
        run(&[
            "ip", "link", "add", &vh, "type", "veth", "peer", "name", &vn, "netns", &ns,
        ]);
        run(&["ip", "link", "set", &vh, "master", &br]);
        run(&["ip", "link", "set", &vh, "up"]);
        run(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", self.ns_ip),
            "dev",
            &vn,
        ]);
        run(&["ip", "-n", &ns, "link", "set", &vn, "up"]);
        run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        run(&[
            "ip",
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &self.bridge_ip.to_string(),
        ]);
        if let Some(rate) = shaper {
            run(&[
                "ip", "netns", "exec", &ns, "tc", "qdisc", "add", "dev", &vn, "root", "tbf",
                "rate", rate, "burst", "32kbit", "latency", "50ms",
            ]);
        }
        // Locally generated packets to 127.0.0.1 may leave through the bridge only with
        // route_localnet on it (a per-device setting: gone with the bridge).
        fs::write(format!("/proc/sys/net/ipv4/conf/{br}/route_localnet"), "1")
            .expect("route_localnet on the test bridge");
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
            run(&args);
            self.rules.push(rule);
        }
    }

    /// The loopback address clients use: DNAT-ed into the namespace.
    pub fn published(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.nat_port))
    }
}

impl Drop for DockerNet {
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

/// nginx inside the namespace on `ns_ip:80`, serving `/` of `page_bytes` bytes; stopped on drop.
pub struct NsNginx {
    // Field order: the process stops before its dir goes.
    _server: ServerProcess,
    _dir: tempfile::TempDir,
}

impl NsNginx {
    pub fn start(net: &DockerNet, page_bytes: usize) -> Result<NsNginx, FixtureError> {
        let dir = tempfile::Builder::new()
            .prefix("chokepoint-nsnginx-")
            .tempdir()
            .map_err(|e| FixtureError::io(Path::new("/tmp"), e))?;
        let root = dir.path().to_path_buf();
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755))
            .map_err(|e| FixtureError::io(&root, e))?;
        for sub in ["www", "tmp"] {
            fs::create_dir(root.join(sub)).map_err(|e| FixtureError::io(&root, e))?;
        }
        let page = root.join("www/index.html");
        fs::write(&page, vec![b'x'; page_bytes]).map_err(|e| FixtureError::io(&page, e))?;
        let d = root.display();
        let conf = format!(
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  sendfile on;\n  keepalive_timeout 65s;\n  keepalive_requests 1000000;\n\
               client_body_temp_path {d}/tmp/cb;\n  proxy_temp_path {d}/tmp/p;\n  fastcgi_temp_path {d}/tmp/f;\n  uwsgi_temp_path {d}/tmp/u;\n  scgi_temp_path {d}/tmp/s;\n\
               server {{\n    listen {}:80 backlog=4096;\n    location / {{ root {d}/www; index index.html; }}\n  }}\n}}\n",
            net.ns_ip
        );
        let conf_path: PathBuf = root.join("nginx.conf");
        fs::write(&conf_path, conf).map_err(|e| FixtureError::io(&conf_path, e))?;
        let mut cmd = Command::new(tool("ip"));
        cmd.args(["netns", "exec", &net.netns])
            .arg(tool("nginx"))
            .arg("-p")
            .arg(&root)
            .arg("-c")
            .arg(&conf_path)
            .arg("-e")
            .arg(root.join("error.log"));
        let mut server = ServerProcess::spawn(
            "nginx (namespace)",
            cmd,
            Signal::SIGTERM,
            &root.join("stderr.log"),
        )?;
        // Through the DNAT: the whole path must answer before the test starts.
        server.wait_for_port(net.published(), Duration::from_secs(10))?;
        Ok(NsNginx {
            _server: server,
            _dir: dir,
        })
    }
}

/// A sysctl written for a test and restored on drop.
pub struct SysctlGuard {
    path: PathBuf,
    old: String,
}

impl SysctlGuard {
    pub fn set(path: &str, value: &str) -> SysctlGuard {
        let path = PathBuf::from(path);
        let old = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        fs::write(&path, value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        SysctlGuard {
            path,
            old: old.trim().to_string(),
        }
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        if let Err(e) = fs::write(&self.path, &self.old) {
            eprintln!("could not restore {}: {e}", self.path.display());
        }
    }
}
