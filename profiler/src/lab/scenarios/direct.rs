//! Scenarios of servers reached directly across a bridge and a veth, by a namespace's or the
//! bridge's own address (no NAT, no published port): a shaper on either side of the veth, and
//! a shaper beside the path. Third-party servers (nginx, Node.js) and generators (hey, ab).
use std::{net::SocketAddr, process::Command, time::Duration};

use nix::sys::signal::Signal;

use super::{Ctx, LabError, Setup, hey_at, io_err, log_file, nginx_at, tool};
use crate::lab::{guard::Service, netlab::LabNet};

/// 256 KiB responses: a few requests a second fill an 8 Mbit/s (1 MB/s) shaper.
const BIG: usize = 256 * 1024;

/// nginx in a new namespace listening on the namespace's own address, port 80, with `body`;
/// the network (and its optional namespace-side shaper) goes when the service stops.
fn nginx_in_own_netns(
    ctx: &Ctx,
    name: &str,
    shaper: Option<&str>,
    body: &[u8],
) -> Result<(Service, SocketAddr), LabError> {
    let net = LabNet::build(shaper)?;
    let addr = SocketAddr::from((net.ns_ip, 80));
    let mut service = nginx_at(ctx, name, Some(&net.netns), &addr.to_string(), "", body)?;
    service.on_stop(move || drop(net));
    service.wait_for(addr, Duration::from_secs(10))?;
    Ok((service, addr))
}

/// hey on the host -> br -> veth -> nginx at the namespace's own address; a tbf shaper at
/// 8 Mbit/s on the namespace's side of the veth, where the responses leave.
pub(super) fn bandwidth_direct_netns(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, addr) = nginx_in_own_netns(ctx, "nginx-direct", Some("8mbit"), &vec![b'x'; BIG])?;
    Ok(Setup {
        services: vec![server],
        command: hey_at(ctx, 4, &format!("http://{addr}/"), &[])?,
        ..Default::default()
    })
}

/// ab inside a namespace -> veth -> br -> Node.js on the host at the bridge's own address; a
/// tbf shaper at 8 Mbit/s on the host's side of the veth, where the responses enter the
/// namespace.
pub(super) fn bandwidth_netns_to_host(ctx: &Ctx) -> Result<Setup, LabError> {
    let net = LabNet::build(None)?;
    net.shape_host_side("8mbit")?;
    let addr = SocketAddr::from((net.bridge_ip(), super::free_port()?));
    let script = ctx.dir.join("server.js");
    let text = format!(
        "const http = require('http');\n\
         const body = Buffer.alloc({BIG}, 'x');\n\
         http.createServer((req, res) => {{\n  \
           res.writeHead(200, {{ 'Content-Length': body.length }});\n  \
           res.end(body);\n\
         }}).listen({port}, '{ip}');\n",
        port = addr.port(),
        ip = addr.ip(),
    );
    std::fs::write(&script, text).map_err(io_err(&script))?;
    let log = log_file(ctx, "node")?;
    let mut cmd = Command::new(tool("node")?);
    cmd.arg(&script)
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    let mut server = Service::spawn("node", cmd, Signal::SIGTERM)?;
    let netns = net.netns.clone();
    server.on_stop(move || drop(net));
    server.wait_for(addr, Duration::from_secs(10))?;
    Ok(Setup {
        services: vec![server],
        command: vec![
            tool("ip")?,
            "netns".into(),
            "exec".into(),
            netns,
            tool("ab")?,
            "-q".into(),
            "-k".into(),
            "-c".into(),
            "4".into(),
            "-t".into(),
            ctx.seconds.to_string(),
            "-n".into(),
            "10000000".into(),
            format!("http://{addr}/"),
        ],
        ..Default::default()
    })
}

/// The control: hey at 100 requests/s (4 connections x 25/s) of 64 KiB to nginx in one
/// namespace, unshaped; beside it a second namespace whose 8 Mbit/s shaper a curl loop keeps
/// full (drops, overlimits), on no path of the load.
pub(super) fn shaper_beside_the_path(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, addr) = nginx_in_own_netns(ctx, "nginx-direct", None, &vec![b'x'; 64 * 1024])?;
    let (beside, beside_addr) =
        nginx_in_own_netns(ctx, "nginx-beside", Some("8mbit"), &vec![b'x'; BIG])?;
    let log = log_file(ctx, "curl-loop")?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "while :; do {curl} -s -o /dev/null http://{beside_addr}/; done",
            curl = tool("curl")?
        ))
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    let traffic = Service::spawn("curl-loop", cmd, Signal::SIGKILL)?;
    Ok(Setup {
        // The traffic stops before the servers it pulls from.
        services: vec![traffic, beside, server],
        command: hey_at(ctx, 4, &format!("http://{addr}/"), &["-q", "25"])?,
        ..Default::default()
    })
}
