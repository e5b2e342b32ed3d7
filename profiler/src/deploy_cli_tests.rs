//! docs/deploy/'s command lines through the real CLI: the systemd unit's ExecStart and the
//! DaemonSet's command and args (with `$(VAR)` expanded as the kubelet does) must parse as
//! `chokepoint daemon`, and the port and directories they name must match the rest of each
//! file. The rest of docs/deploy/ is checked in the library's `daemon::deploy_tests`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use clap::Parser;
use serde::Deserialize;
use serde_yaml::Value as Yaml;

use super::{Cli, Command};
use chokepoint::daemon::DaemonArgs;

const UNIT: &str = include_str!("../../docs/deploy/chokepoint.service");
const DAEMONSET: &str = include_str!("../../docs/deploy/daemonset.yaml");

fn daemon_args(argv: &[String], what: &str) -> DaemonArgs {
    let cli = Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{what}: `{}` does not parse:\n{e}", argv.join(" ")));
    match cli.command {
        Command::Daemon(args) => args,
        other => panic!("{what}: not `chokepoint daemon`: {other:?}"),
    }
}

#[test]
fn deploy_unit_exec_start_is_a_daemon_command_line() {
    let exec: Vec<&str> = UNIT
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ExecStart="))
        .collect();
    assert_eq!(exec.len(), 1, "one ExecStart");
    let argv = shell_words::split(exec[0]).expect("ExecStart splits into words");
    assert_eq!(argv[0], "/usr/local/bin/chokepoint");
    let args = daemon_args(&argv, "ExecStart");
    let metrics = args.metrics_listen.expect("--metrics-listen");
    assert!(
        metrics.ip().is_loopback(),
        "/metrics has no authentication: loopback on a host"
    );
    assert_eq!(metrics.port(), 9464);
    // The directories systemd creates for it are the ones it uses.
    assert_eq!(args.socket.parent(), Some(Path::new("/run/chokepoint")));
    assert_eq!(args.dir, Path::new("/var/lib/chokepoint"));
    for (key, dir) in [
        ("RuntimeDirectory=", "/run/"),
        ("StateDirectory=", "/var/lib/"),
    ] {
        let name = UNIT
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key}"));
        let path = Path::new(dir).join(name);
        assert!(
            args.socket.starts_with(&path) || args.dir == path,
            "{key}{name} is neither --socket's directory nor --dir"
        );
    }
}

#[test]
fn deploy_daemonset_command_is_a_daemon_command_line_on_its_metrics_port() {
    let ds = serde_yaml::Deserializer::from_str(DAEMONSET)
        .map(|d| Yaml::deserialize(d).expect("YAML"))
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let c = ds["spec"]["template"]["spec"]["containers"][0].clone();
    assert_eq!(c["name"], "chokepoint");
    let words = |v: &Yaml| -> Vec<String> {
        v.as_sequence()
            .expect("a list")
            .iter()
            .map(|w| w.as_str().expect("a string").to_string())
            .collect()
    };
    // $(VAR) as the kubelet expands it, from the container's env; a sample address for a
    // field reference (the pod's IP is an IPv4 address here).
    let env: Vec<(String, String)> = c["env"]
        .as_sequence()
        .map(|e| {
            e.iter()
                .map(|v| {
                    let name = v["name"].as_str().expect("env name").to_string();
                    let value = match v["value"].as_str() {
                        Some(s) => s.to_string(),
                        None => {
                            assert_eq!(
                                v["valueFrom"]["fieldRef"]["fieldPath"], "status.podIP",
                                "{name}: a value the test knows how to fill"
                            );
                            "10.1.2.3".to_string()
                        }
                    };
                    (name, value)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut argv = words(&c["command"]);
    argv.extend(words(&c["args"]));
    for w in &mut argv {
        for (name, value) in &env {
            *w = w.replace(&format!("$({name})"), value);
        }
        assert!(
            !w.contains("$("),
            "{w}: a variable the container does not define"
        );
    }
    assert_eq!(argv[0], "/usr/local/bin/chokepoint");
    let args = daemon_args(&argv, "the DaemonSet");
    let metrics = args.metrics_listen.expect("--metrics-listen");
    assert!(
        !metrics.ip().is_loopback(),
        "Prometheus scrapes the pod's address, not its loopback"
    );
    let port = c["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics")["containerPort"]
        .as_u64();
    assert_eq!(
        Some(u64::from(metrics.port())),
        port,
        "containerPort metrics"
    );

    // --dir and --socket's directory are writable mounts (the root file system is read only).
    let mounts = c["volumeMounts"].as_sequence().expect("volumeMounts");
    for dir in [
        args.dir.as_path(),
        args.socket.parent().expect("a directory"),
    ] {
        let m = mounts
            .iter()
            .find(|m| m["mountPath"].as_str().map(Path::new) == Some(dir))
            .unwrap_or_else(|| panic!("{} is not mounted", dir.display()));
        assert_ne!(m["readOnly"], true, "{} writable", dir.display());
    }
}
