//! docs/deploy/ against the daemon: the DaemonSet's privileges and host mounts, the systemd
//! unit's directives, and every metric the Grafana dashboard queries among those the registry
//! really exports (rendered here, as /metrics renders it), rated where it is a counter. The
//! command lines of both files are parsed with the real CLI in the binary's
//! `deploy_cli_tests`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

use super::metrics::Metrics;
use crate::{
    analysis::fixtures::{interval, process, recording},
    recording::Role,
};

const UNIT: &str = include_str!("../../../docs/deploy/chokepoint.service");
const DAEMONSET: &str = include_str!("../../../docs/deploy/daemonset.yaml");
const DASHBOARD: &str = include_str!("../../../docs/deploy/grafana-dashboard.json");

/// What the daemon cannot work without (docs/daemon.md, "Deploy").
const REQUIRED_CAPS: [&str; 4] = ["BPF", "PERFMON", "SYS_PTRACE", "NET_ADMIN"];

// ---- the metrics the daemon exports ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Histogram,
    Gauge,
    Info,
}

impl Kind {
    /// Whether its series only make sense through rate() (cumulative).
    fn cumulative(self) -> bool {
        matches!(self, Self::Counter | Self::Histogram)
    }
}

/// The registry after a few intervals with something in every family, and a verdict.
fn rendered() -> String {
    let mut m = Metrics::new();
    let mut intervals = Vec::new();
    for i in 0..5 {
        let mut iv = interval(i, 0.99);
        iv.tcp.active_opens = 10;
        iv.tcp.passive_opens = 10;
        iv.tcp.connect_failed = 1;
        iv.tcp.syn_retransmits = 1;
        iv.drops.insert("TCP_LISTEN_OVERFLOW".into(), 3);
        let mut p = process(40, "nginx", Role::Server, &[1.0, 0.98]);
        p.runq_ns = 200_000_000;
        p.runq_count = 1000;
        p.runq_latency.0[17] = 1000;
        p.capacity_cores = Some(2.0);
        p.offcpu_reason_ns.insert("epoll_wait".into(), 5_000_000);
        iv.processes = vec![p];
        iv.overhead.user_cpu_ns = 1_000_000;
        iv.overhead.bpf_runs = 100;
        m.observe(&iv);
        intervals.push(iv);
    }
    m.set_verdict(&crate::analysis::analyze(&recording(intervals), &[]).verdict);
    m.encode()
}

/// Every series name a scrape can hold, with its family's type: from the `# TYPE` lines, by
/// OpenMetrics' rules (a counter's samples end in `_total`, a histogram's in `_bucket`, `_sum`
/// and `_count`, an info's in `_info`); each sample actually rendered is checked to be one of
/// them. Also returns the families.
fn exported() -> (BTreeMap<String, (Kind, String)>, BTreeSet<String>) {
    let text = rendered();
    let mut names = BTreeMap::new();
    let mut families = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = rest.split_once(' ').expect("# TYPE name type");
        let (kind, suffixes): (Kind, &[&str]) = match kind {
            "counter" => (Kind::Counter, &["_total"]),
            "histogram" => (Kind::Histogram, &["_bucket", "_sum", "_count"]),
            "gauge" => (Kind::Gauge, &[""]),
            "info" => (Kind::Info, &["_info"]),
            other => panic!("{family}: a metric type the dashboard test does not know: {other}"),
        };
        for s in suffixes {
            names.insert(format!("{family}{s}"), (kind, family.to_string()));
        }
        families.insert(family.to_string());
    }
    let samples: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split(['{', ' ']).next().unwrap_or(l))
        .collect();
    for s in &samples {
        assert!(names.contains_key(*s), "rendered {s}, not derived: {text}");
    }
    assert!(samples.contains("chokepoint_runqueue_wait_seconds_bucket"));
    assert!(samples.contains("chokepoint_bottleneck_info"), "{text}");
    (names, families)
}

// ---- PromQL, as far as the dashboard needs it ----

/// A metric named in an expression, and whether it stands inside rate()/irate()/increase().
#[derive(Debug)]
struct Use {
    name: String,
    rated: bool,
}

const RATES: [&str; 3] = ["rate", "irate", "increase"];

/// The metrics an expression names. Errors: a range other than `$__rate_interval`, a range
/// outside a rate, a rate without exactly one range, unbalanced brackets.
fn scan(expr: &str) -> Result<Vec<Use>, String> {
    let b = expr.as_bytes();
    let mut uses = Vec::new();
    // Open parentheses: the function (or keyword) before each, and the ranges seen inside.
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut last_ident = String::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' | b'\'' | b'`' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                last_ident.clear();
            }
            b'{' => {
                // Label matchers: skip to the closing brace, strings and all.
                let mut quote = None;
                i += 1;
                while i < b.len() {
                    match (quote, b[i]) {
                        (None, b'}') => break,
                        (None, q @ (b'"' | b'\'' | b'`')) => quote = Some(q),
                        (Some(_), b'\\') => i += 1,
                        (Some(q), x) if x == q => quote = None,
                        _ => {}
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unclosed {".into());
                }
            }
            b'(' => {
                stack.push((std::mem::take(&mut last_ident), 0));
            }
            b')' => {
                let (f, ranges) = stack.pop().ok_or("unbalanced )")?;
                if RATES.contains(&f.as_str()) && ranges != 1 {
                    return Err(format!("{f}() with {ranges} ranges"));
                }
                last_ident.clear();
            }
            b'[' => {
                let end = expr[i..].find(']').ok_or("unclosed [")? + i;
                let range = &expr[i + 1..end];
                if range != "$__rate_interval" {
                    return Err(format!("range [{range}]: use [$__rate_interval]"));
                }
                match stack.last_mut() {
                    Some((f, ranges)) if RATES.contains(&f.as_str()) => *ranges += 1,
                    _ => return Err(format!("a range [{range}] outside rate()")),
                }
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':')
                {
                    i += 1;
                }
                let ident = &expr[start..i];
                let next = expr[i..].trim_start().chars().next();
                if ident.starts_with("chokepoint_") && next != Some('(') {
                    uses.push(Use {
                        name: ident.to_string(),
                        rated: stack.iter().any(|(f, _)| RATES.contains(&f.as_str())),
                    });
                }
                last_ident = ident.to_string();
                continue;
            }
            c if c.is_ascii_whitespace() => {}
            _ => last_ident.clear(),
        }
        i += 1;
    }
    if !stack.is_empty() {
        return Err("unclosed (".into());
    }
    Ok(uses)
}

#[test]
fn deploy_scanner_catches_what_the_dashboard_test_relies_on() {
    let ok = scan(r#"histogram_quantile(0.9, sum by (le) (rate(chokepoint_x_bucket{instance=~"$instance", a="(["}[$__rate_interval])))"#)
        .unwrap();
    assert_eq!(ok.len(), 1);
    assert!(ok[0].rated && ok[0].name == "chokepoint_x_bucket");
    let raw = scan("max by (service) (chokepoint_service_capacity_cores)").unwrap();
    assert!(!raw[0].rated);
    assert!(scan("rate(chokepoint_x_total[5m])").is_err());
    assert!(scan("rate(chokepoint_x_total)").is_err());
    assert!(scan("chokepoint_x_total[$__rate_interval]").is_err());
    assert!(scan("sum(rate(chokepoint_x_total[$__rate_interval])").is_err());
}

// ---- the dashboard ----

fn datasource_is_the_input(v: &Json, at: &str) {
    assert_eq!(
        v.get("uid").and_then(Json::as_str),
        Some("${DS_PROMETHEUS}"),
        "{at}: datasource {v}"
    );
    assert_eq!(
        v.get("type").and_then(Json::as_str),
        Some("prometheus"),
        "{at}"
    );
}

#[test]
fn deploy_dashboard_queries_only_what_the_daemon_exports() {
    let (names, families) = exported();
    let d: Json = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36, "schemaVersion");
    let inputs = d["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs.iter().any(|i| i["name"] == "DS_PROMETHEUS"
            && i["type"] == "datasource"
            && i["pluginId"] == "prometheus"),
        "a DS_PROMETHEUS datasource input: {inputs:?}"
    );

    // (panel title, expression) of every query, the template variables' too.
    let mut exprs: Vec<(String, String)> = Vec::new();
    let panels = d["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    let mut ids = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("a title").to_string();
        assert!(
            ids.insert(p["id"].as_u64().expect("an id")),
            "{title}: id taken"
        );
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{title}: gridPos");
        datasource_is_the_input(&p["datasource"], &title);
        let targets = p["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "{title}: no target");
        let mut refs = BTreeSet::new();
        for t in targets {
            datasource_is_the_input(&t["datasource"], &title);
            assert!(refs.insert(t["refId"].as_str().expect("refId")), "{title}");
            let expr = t["expr"].as_str().expect("an expr");
            assert!(!expr.trim().is_empty(), "{title}: empty expr");
            exprs.push((title.clone(), expr.to_string()));
        }
    }
    for v in d["templating"]["list"].as_array().expect("templating") {
        datasource_is_the_input(&v["datasource"], "a template variable");
        let q = v["query"]["query"].as_str().or(v["query"].as_str());
        exprs.push(("a template variable".into(), q.expect("query").to_string()));
    }

    let mut queried = BTreeSet::new();
    for (title, expr) in &exprs {
        let uses = scan(expr).unwrap_or_else(|e| panic!("{title}: {e}: {expr}"));
        assert!(
            !uses.is_empty(),
            "{title}: names no chokepoint metric: {expr}"
        );
        for u in uses {
            let (kind, family) = names.get(&u.name).unwrap_or_else(|| {
                panic!(
                    "{title}: {} is not exported; the daemon exports {:?}",
                    u.name,
                    names.keys()
                )
            });
            // label_values() names a series without computing on it.
            if !expr.starts_with("label_values(") {
                assert_eq!(
                    kind.cumulative(),
                    u.rated,
                    "{title}: {} is a {kind:?}: {}",
                    u.name,
                    if u.rated {
                        "not cumulative, rate() of it means nothing"
                    } else {
                        "cumulative, graph its rate()"
                    }
                );
            }
            queried.insert(family.clone());
        }
    }
    // A metric added to the registry shows up here until it gets a panel.
    let missing: Vec<_> = families.difference(&queried).collect();
    assert!(missing.is_empty(), "exported, on no panel: {missing:?}");

    let verdict = panels
        .iter()
        .find(|p| p["type"] == "table")
        .expect("a table panel");
    assert!(
        verdict["targets"][0]["expr"]
            .as_str()
            .unwrap()
            .starts_with("chokepoint_bottleneck_info"),
        "the table is the verdict"
    );
    assert_eq!(verdict["targets"][0]["instant"], true);
}

// ---- the DaemonSet ----

fn docs() -> Vec<Yaml> {
    serde_yaml::Deserializer::from_str(DAEMONSET)
        .map(|d| Yaml::deserialize(d).expect("YAML"))
        .collect()
}

/// The DaemonSet document.
fn daemonset() -> Yaml {
    docs()
        .into_iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet")
}

/// The chokepoint container of the DaemonSet.
fn container(ds: &Yaml) -> &Yaml {
    ds["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == "chokepoint")
        .expect("a container named chokepoint")
}

fn strs(v: &Yaml) -> Vec<&str> {
    v.as_sequence()
        .map(|s| s.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default()
}

/// `256Mi`, `1Gi`, `128M` in bytes.
fn quantity(q: &str) -> u64 {
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
    ];
    for (suffix, n) in units {
        if let Some(v) = q.strip_suffix(suffix) {
            return v.parse::<u64>().expect("a number") * n;
        }
    }
    q.parse().expect("a quantity")
}

#[test]
fn deploy_daemonset_has_the_privileges_and_host_mounts_the_daemon_reads() {
    let all = docs();
    assert!(
        all.iter()
            .any(|d| d["kind"] == "Namespace" && d["metadata"]["name"] == "chokepoint"),
        "the namespace is created"
    );
    let ds = daemonset();
    assert_eq!(ds["apiVersion"], "apps/v1");
    assert_eq!(ds["metadata"]["namespace"], "chokepoint");
    let pod = &ds["spec"]["template"]["spec"];
    // The daemon reads /proc and /proc/net at those paths only: the host's, through these.
    assert_eq!(pod["hostPID"], true, "hostPID");
    assert_eq!(pod["hostNetwork"], true, "hostNetwork");
    assert_eq!(
        ds["spec"]["selector"]["matchLabels"], ds["spec"]["template"]["metadata"]["labels"],
        "the selector matches the pods"
    );
    let c = container(&ds);

    let sc = &c["securityContext"];
    let add = strs(&sc["capabilities"]["add"]);
    for cap in REQUIRED_CAPS {
        assert!(add.contains(&cap), "capability {cap} not added: {add:?}");
    }
    assert!(
        add.iter().all(|c| !c.starts_with("CAP_")),
        "Kubernetes names capabilities without CAP_: {add:?}"
    );
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_ne!(sc["privileged"], true, "capabilities, not privileged");
    assert_eq!(
        sc["runAsUser"], 0,
        "root in the container: the caps are effective"
    );
    // The API refuses allowPrivilegeEscalation: false together with SYS_ADMIN.
    assert!(!(sc["allowPrivilegeEscalation"] == false && add.contains(&"SYS_ADMIN")));

    // Host paths the daemon reads, mounted where it reads them, read only.
    let volumes: BTreeMap<&str, &Yaml> = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .map(|v| (v["name"].as_str().expect("volume name"), v))
        .collect();
    let mounts = c["volumeMounts"].as_sequence().expect("volumeMounts");
    let btf = Path::new(crate::probes::kernel_btf::VMLINUX_BTF)
        .parent()
        .and_then(Path::to_str)
        .unwrap();
    for path in [crate::probes::tracepoints::TRACEFS, btf, "/sys/fs/cgroup"] {
        let m = mounts
            .iter()
            .find(|m| m["mountPath"] == path)
            .unwrap_or_else(|| panic!("{path} is not mounted"));
        assert_eq!(m["readOnly"], true, "{path} read only");
        let v = volumes[m["name"].as_str().unwrap()];
        assert_eq!(v["hostPath"]["path"], path, "{path} from the host's {path}");
    }
    for m in mounts {
        let path = m["mountPath"].as_str().unwrap();
        assert!(
            !(path == "/proc" || path.starts_with("/proc/")),
            "{path}: runtimes refuse mounts over /proc; hostPID gives the host's"
        );
        let host = volumes[m["name"].as_str().unwrap()]["hostPath"]["path"].as_str();
        if let Some(host) = host.filter(|h| h.starts_with("/sys") || h.starts_with("/proc")) {
            assert_eq!(m["readOnly"], true, "{host}: kernel interfaces read only");
        }
    }

    let limit = c["resources"]["limits"]["memory"]
        .as_str()
        .expect("a memory limit");
    assert!(
        (64 << 20..=1 << 30).contains(&quantity(limit)),
        "memory limit {limit}"
    );
    let port = c["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    let port = port["containerPort"].as_u64().expect("containerPort");
    let notes = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(notes["prometheus.io/scrape"], "true");
    assert_eq!(notes["prometheus.io/port"], port.to_string().as_str());
    assert_eq!(notes["prometheus.io/path"], "/metrics");
    let probe = &c["livenessProbe"]["httpGet"];
    assert_eq!(probe["path"], "/metrics");
    assert!(
        probe["port"] == "metrics" || probe["port"].as_u64() == Some(port),
        "the liveness probe asks the metrics port"
    );
}

// ---- the systemd unit ----

/// `[Section]` → key → values (a key may repeat), comments and blank lines skipped.
fn unit_directives() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = String::new();
    for (n, line) in UNIT.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "line {}: keep directives on one line",
            n + 1
        );
        if let Some(s) = line.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=Value: {line}", n + 1));
        assert!(!section.is_empty(), "line {}: outside a section", n + 1);
        out.entry(section.clone())
            .or_default()
            .entry(k.trim().to_string())
            .or_default()
            .push(v.trim().to_string());
    }
    out
}

/// The one value of `[Service] key`.
fn service(key: &str) -> String {
    let d = unit_directives();
    let v = d["Service"]
        .get(key)
        .unwrap_or_else(|| panic!("[Service] has no {key}="));
    assert_eq!(v.len(), 1, "{key}= given {} times", v.len());
    v[0].clone()
}

#[test]
fn deploy_unit_keeps_the_daemon_bounded_and_restartable() {
    let d = unit_directives();
    assert!(d.contains_key("Unit") && d.contains_key("Install"));
    assert_eq!(service("Restart"), "on-failure");
    assert_eq!(service("KillSignal"), "SIGTERM");
    assert_eq!(service("LimitMEMLOCK"), "infinity");
    let stop = service("TimeoutStopSec");
    let stop = crate::cli::parse_duration(&stop).expect("TimeoutStopSec is a duration");
    assert!(stop.as_secs() >= 10, "time to write the interval under way");
    let mem = service("MemoryMax");
    let mem = quantity(&mem.replace('M', "Mi").replace('G', "Gi"));
    // The same estimate as the DaemonSet's limit (the kernel's maps are the bulk).
    let ds = daemonset();
    let limit = container(&ds)["resources"]["limits"]["memory"]
        .as_str()
        .expect("a limit");
    assert_eq!(mem, quantity(limit), "MemoryMax vs the pod's memory limit");

    let bounding: BTreeSet<String> = service("CapabilityBoundingSet")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let ambient: BTreeSet<String> = service("AmbientCapabilities")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    for cap in REQUIRED_CAPS {
        assert!(
            bounding.contains(&format!("CAP_{cap}")),
            "CAP_{cap} bounded"
        );
    }
    assert_eq!(bounding, ambient, "the same set either way");
    // The unit and the pod grant the same capabilities.
    let pod: BTreeSet<String> = strs(&container(&ds)["securityContext"]["capabilities"]["add"])
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    assert_eq!(bounding, pod, "unit vs DaemonSet capabilities");
}

/// systemd's own parser, where it is installed: an unknown key or a bad value is a warning
/// there that this test turns into a failure.
#[test]
fn deploy_unit_passes_systemd_analyze_verify() {
    let Ok(out) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    assert!(out.status.success());
    let root = tempfile::tempdir().unwrap();
    let bin = root.path().join("usr/local/bin");
    let units = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&units).unwrap();
    // verify checks that ExecStart's program exists and is executable.
    std::fs::write(bin.join("chokepoint"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        bin.join("chokepoint"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(units.join("chokepoint.service"), UNIT).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .args(["--man=no", "--recursive-errors=no", "chokepoint.service"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
}
