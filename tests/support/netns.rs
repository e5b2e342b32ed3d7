//! nginx inside the docker-like network the lab builds (`chokepoint::lab::netlab::LabNet`:
//! namespace, bridge, veth pair, DNAT of a loopback port, optional tbf shaper, all removed on
//! drop, also when a test panics), and whether the network tests can run here.
use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use chokepoint::lab::netlab::LabNet;
use nix::sys::signal::Signal;

use crate::{FixtureError, ServerProcess, tool};

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

/// nginx inside the namespace on `ns_ip:80`, serving `/` of `page_bytes` bytes; stopped on drop.
pub struct NsNginx {
    // Field order: the process stops before its dir goes.
    _server: ServerProcess,
    _dir: tempfile::TempDir,
}

impl NsNginx {
    pub fn start(net: &LabNet, page_bytes: usize) -> Result<NsNginx, FixtureError> {
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
