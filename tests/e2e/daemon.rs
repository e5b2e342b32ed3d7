//! `chokepoint daemon` end to end, with the real probes: a real Prometheus (Debian's
//! `prometheus`) scrapes `--metrics-listen` and its HTTP API is asked for the connections the
//! test made, and `--otlp-endpoint` pushes the same counter to an OTLP/HTTP receiver that
//! decodes OpenTelemetry's own protobuf; a named recording started and stopped over the control socket holds a mark and
//! reads with `analyze`; the socket is 0600; a second daemon is refused; malformed requests
//! get a 4xx; SIGTERM ends the daemon within seconds with no program left in the kernel.
//! Needs root; run through `cargo xtask test`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chokepoint_tests::{chokepoint_bin, left_behind, output_within, program_ids, tool};
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// GET (or POST with a body) through curl: the status and the body.
fn curl(url: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new(tool("curl"));
    cmd.args(["-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}"]);
    if let Some(b) = body {
        cmd.args([
            "-X",
            "POST",
            "-H",
            "content-type: application/json",
            "--data-binary",
            b,
        ]);
    }
    let out = output_within(cmd.arg(url), Duration::from_secs(15));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn ctl(socket: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(chokepoint_bin());
    cmd.args(args).arg("--socket").arg(socket);
    output_within(&mut cmd, Duration::from_secs(30))
}

/// `n` real TCP connections to a listener of the test's own, each sending and reading a byte.
fn connect_many(n: usize) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listener");
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..n {
            let (mut s, _) = listener.accept().expect("accept");
            let mut b = [0u8; 1];
            let _ = s.read_exact(&mut b);
            let _ = s.write_all(&b);
        }
    });
    for _ in 0..n {
        let mut c = TcpStream::connect(addr).expect("connect");
        c.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
    }
    server.join().unwrap();
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn prometheus(dir: &Path, scrape: u16, web: u16) -> Killed {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: chokepoint\n    static_configs:\n      - targets: ['127.0.0.1:{scrape}']\n"
        ),
    )
    .unwrap();
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{web}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus");
    Killed(child)
}

/// The value of an instant query's first series, if there is one.
fn query(web: u16, q: &str) -> Option<f64> {
    let (code, body) = curl(
        &format!("http://127.0.0.1:{web}/api/v1/query?query={q}"),
        None,
    );
    if code != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// A stand-in for an OpenTelemetry collector's OTLP/HTTP receiver (none installs here): it
/// answers every POST with 200 and decodes the body as OpenTelemetry's own
/// `ExportMetricsServiceRequest`; the largest `chokepoint.tcp_passive_opens` seen so far and
/// the requests decoded are shared.
fn otlp_receiver() -> (u16, Arc<Mutex<(f64, usize, String)>>) {
    use opentelemetry_proto::tonic::{
        collector::metrics::v1::ExportMetricsServiceRequest,
        metrics::v1::{metric, number_data_point},
    };
    use prost::Message;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new((0.0f64, 0usize, String::new())));
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 8192];
            let (head_end, length) = loop {
                let Ok(n) = stream.read(&mut chunk) else {
                    break (0, 0);
                };
                if n == 0 {
                    break (0, 0);
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..at]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (at + 4, length);
                }
            };
            while head_end > 0 && buf.len() < head_end + length {
                let Ok(n) = stream.read(&mut chunk) else {
                    break;
                };
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if head_end == 0 || buf.len() < head_end + length {
                continue;
            }
            let path = String::from_utf8_lossy(&buf[..head_end])
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let Ok(req) = ExportMetricsServiceRequest::decode(&buf[head_end..head_end + length])
            else {
                continue;
            };
            let opens = req
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .filter(|m| m.name == "chokepoint.tcp_passive_opens")
                .filter_map(|m| match &m.data {
                    Some(metric::Data::Sum(s)) if s.is_monotonic => s.data_points.first(),
                    _ => None,
                })
                .filter_map(|p| match p.value {
                    Some(number_data_point::Value::AsInt(i)) => Some(i as f64),
                    Some(number_data_point::Value::AsDouble(d)) => Some(d),
                    None => None,
                })
                .fold(0.0, f64::max);
            let mut s = shared.lock().unwrap();
            s.0 = s.0.max(opens);
            s.1 += 1;
            s.2 = path;
        }
    });
    (port, seen)
}

#[test]
fn a_daemon_scraped_by_prometheus_records_marks_and_detaches_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket: PathBuf = dir.path().join("run/control.sock");
    let recordings = dir.path().join("rec");
    let (metrics_port, http_port, web_port) = (free_port(), free_port(), free_port());
    let before = program_ids();
    let (otlp_port, otlp_seen) = otlp_receiver();
    let mut daemon = Command::new(chokepoint_bin())
        .arg("daemon")
        .arg("--socket")
        .arg(&socket)
        .arg("--dir")
        .arg(&recordings)
        .args(["--metrics-listen", &format!(":{metrics_port}")])
        .args(["--http", &format!("127.0.0.1:{http_port}")])
        .args(["--otlp-endpoint", &format!("http://127.0.0.1:{otlp_port}")])
        .args(["--otlp-interval", "1s"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("chokepoint daemon");
    wait_until("the control socket", 30, || socket.exists());

    // Root only: the socket 0600, its directory 0700.
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "socket mode");
    assert_eq!(meta.uid(), 0);
    let parent = std::fs::metadata(socket.parent().unwrap()).unwrap();
    assert_eq!(
        parent.permissions().mode() & 0o077,
        0,
        "socket directory mode"
    );

    // One daemon per socket.
    let second = ctl(&socket, &["daemon", "--dir", recordings.to_str().unwrap()]);
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("already running"), "{said}");

    let _prom = prometheus(dir.path(), metrics_port, web_port);
    let started = ctl(&socket, &["ctl", "start", "e2e"]);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    wait_until("an interval in the recording", 10, || {
        std::fs::read_to_string(recordings.join("e2e.rec")).is_ok_and(|t| t.lines().count() >= 2)
    });
    connect_many(150);
    let marked = ctl(&socket, &["mark", "stage 2: 150 more"]);
    assert!(
        marked.status.success(),
        "{}",
        String::from_utf8_lossy(&marked.stderr)
    );
    connect_many(150);

    // Malformed requests over --http: a 4xx with a message, and the daemon goes on.
    let api = format!("http://127.0.0.1:{http_port}/v1");
    let (code, body) = curl(&format!("{api}/recordings"), Some("{\"name\":"));
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("error"), "{body}");
    let (code, _) = curl(&format!("{api}/marks"), Some("{\"text\":\"\"}"));
    assert_eq!(code, 400);
    let (code, _) = curl(&format!("{api}/marks"), Some("{\"text\":\"via http\"}"));
    assert_eq!(code, 202);

    // Prometheus scraped the connections the test made (its own counter, no chokepoint in the
    // way of the reading).
    let mut seen = None;
    wait_until("Prometheus to see 300 passive opens", 60, || {
        seen = query(web_port, "chokepoint_tcp_passive_opens_total");
        seen.is_some_and(|v| v >= 300.0)
    });
    let (code, metrics) = curl(&format!("http://127.0.0.1:{metrics_port}/metrics"), None);
    assert_eq!(code, 200);
    assert!(metrics.contains("# TYPE chokepoint_runqueue_wait_seconds histogram"));
    assert!(
        metrics.contains("chokepoint_bottleneck_info{"),
        "the rolling verdict"
    );

    // The same counter reached the OTLP receiver, decoded from OpenTelemetry's protobuf.
    wait_until("the OTLP receiver to see 300 passive opens", 30, || {
        otlp_seen.lock().unwrap().0 >= 300.0
    });
    let (otlp_opens, otlp_requests, otlp_path) = otlp_seen.lock().unwrap().clone();
    assert_eq!(otlp_path, "/v1/metrics");
    let status = ctl(&socket, &["ctl", "status"]);
    let status: Value = serde_json::from_slice(&status.stdout).expect("status answers JSON");
    assert!(
        status["otlp"]["exported"].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );

    // The named recording: its marks and connections, read by analyze.
    let stopped = ctl(&socket, &["ctl", "stop", "e2e"]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    let stopped: Value = serde_json::from_slice(&stopped.stdout).expect("stop answers JSON");
    assert_eq!(stopped["complete"], true);
    let path = stopped["path"].as_str().unwrap().to_string();
    let mut analyze = Command::new(chokepoint_bin());
    analyze.args(["analyze", &path, "--json", "-"]);
    let out = output_within(&mut analyze, Duration::from_secs(30));
    let a: Value = serde_json::from_slice(&out.stdout).expect("analysis JSON");
    let marks: Vec<&str> = a["marks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(marks.contains(&"stage 2: 150 more"), "{marks:?}");
    assert!(marks.contains(&"via http"), "{marks:?}");

    // SIGTERM: flushed, detached, gone within seconds.
    let t = Instant::now();
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the daemon did not end on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("detached"), "{stderr}");
    assert!(!socket.exists(), "the socket is removed");
    assert_eq!(
        left_behind(&before),
        Vec::<u64>::new(),
        "programs left in the kernel"
    );
    eprintln!(
        "daemon e2e: Prometheus saw {seen:?} passive opens, the OTLP receiver {otlp_opens} in {otlp_requests} requests; ended {:.1} s after SIGTERM",
        t.elapsed().as_secs_f64()
    );
}

/// A daemon started in a network namespace (`nsenter --net`, which leaves the mounts alone:
/// tracefs and cgroups stay visible), on its own socket and directory.
fn daemon_in(netns: Option<&str>, dir: &Path) -> Killed {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new(tool("nsenter"));
            c.arg(format!("--net=/run/netns/{ns}"))
                .arg(chokepoint_bin());
            c
        }
        None => Command::new(chokepoint_bin()),
    };
    let socket = dir.join("run/control.sock");
    let child = cmd
        .arg("daemon")
        .arg("--socket")
        .arg(&socket)
        .arg("--dir")
        .arg(dir.join("rec"))
        .stderr(Stdio::null())
        .spawn()
        .expect("chokepoint daemon");
    wait_until("the control socket", 30, || socket.exists());
    Killed(child)
}

/// Several hosts, each with its own daemon: the load generator's host (the root network
/// namespace) and a server host (nginx in its own namespace behind a bridge and a veth).
/// Each daemon records the same test under a name; `analyze gen.rec srv.rec` puts both on one
/// clock (estimated from the connections both count; the truth here is 0: one kernel's
/// clock), cuts them to the span they share and gives one verdict with each host's.
#[test]
fn hosts_each_with_a_daemon_give_one_verdict_on_one_clock() {
    if let Some(why) = chokepoint_tests::netns_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let net = chokepoint::lab::netlab::LabNet::build(None).expect("namespace network");
    let _nginx = chokepoint_tests::NsNginx::start(&net, 512).expect("nginx in the namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let (gen_dir, srv_dir) = (dir.path().join("gen"), dir.path().join("srv"));
    let before = program_ids();
    let gen_daemon = daemon_in(None, &gen_dir);
    let srv_daemon = daemon_in(Some(&net.netns), &srv_dir);
    for d in [&gen_dir, &srv_dir] {
        let started = ctl(&d.join("run/control.sock"), &["ctl", "start", "test"]);
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
    }
    // A load whose connection rate changes every few seconds: the shared signal.
    let url = format!("http://{}:80/", net.ns_ip);
    for (conns, secs) in [(1, 3), (8, 3), (2, 3), (16, 3), (4, 3)] {
        let out = Command::new(tool("wrk"))
            .args(["-t1", &format!("-c{conns}"), &format!("-d{secs}s")])
            .args(["-H", "Connection: close", &url])
            .output()
            .expect("wrk");
        assert!(out.status.success(), "wrk: {out:?}");
    }
    let mut recs = Vec::new();
    for d in [&gen_dir, &srv_dir] {
        let stopped = ctl(&d.join("run/control.sock"), &["ctl", "stop", "test"]);
        let stopped: Value = serde_json::from_slice(&stopped.stdout).expect("stop answers JSON");
        assert_eq!(stopped["complete"], true, "{stopped}");
        recs.push(stopped["path"].as_str().unwrap().to_string());
    }
    drop((gen_daemon, srv_daemon));
    let mut analyze = Command::new(chokepoint_bin());
    analyze.args(["analyze", &recs[0], &recs[1], "--json", "-"]);
    let out = output_within(&mut analyze, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: Value = serde_json::from_slice(&out.stdout).expect("analysis JSON");
    let hosts = m["hosts"].as_array().expect("hosts[]");
    assert_eq!(hosts.len(), 2, "{m:#}");
    assert_ne!(hosts[0]["host"], hosts[1]["host"]);
    assert_eq!(hosts[0]["clock"]["method"], "reference");
    let clock = &hosts[1]["clock"];
    assert!(
        clock["method"]
            .as_str()
            .is_some_and(|s| s.starts_with("cross-correlation")),
        "the varying load is a shared signal: {clock}"
    );
    assert_eq!(clock["seconds"].as_f64(), Some(0.0), "{clock}");
    assert!(m["duration_seconds"].as_f64().unwrap() >= 10.0, "{m:#}");
    assert!(m["verdict"]["kind"].is_string());
    for h in hosts {
        let opens = h["analysis"]["totals"]["tcp_passive_opens_per_s"]
            .as_f64()
            .unwrap_or(0.0);
        assert!(opens > 10.0, "{}: {opens} passive opens/s", h["host"]);
    }
    assert_eq!(
        left_behind(&before),
        Vec::<u64>::new(),
        "programs left in the kernel"
    );
    eprintln!(
        "hosts e2e: {} over {:.0} s; clock of the second host {} ({}, r = {})",
        m["verdict"]["kind"],
        m["duration_seconds"],
        clock["seconds"],
        clock["method"],
        clock["correlation"]
    );
}
