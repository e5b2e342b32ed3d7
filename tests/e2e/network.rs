//! The network path end to end, on a docker-like topology the tests build (namespace, bridge,
//! veth, DNAT of a loopback port, removed afterwards): the recorded path of requests through an
//! nginx reverse proxy into nginx in the namespace, a tbf shaper diagnosed as
//! `network-bandwidth`, and a tiny conntrack table as `connection-setup`. Needs root; run
//! through `cargo xtask test`.
use std::{path::PathBuf, sync::Mutex};

use chokepoint::lab::netlab::{LabNet, Sysctl};
use chokepoint_tests::{
    Nginx, NsNginx, Wrk, netns_unavailable, printed, run_chokepoint, run_for_json,
};
use serde_json::Value;

/// One test at a time: the conntrack test changes a host-wide limit.
static SERIAL: Mutex<()> = Mutex::new(());

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chokepoint-net-{}-{name}", std::process::id()))
}

/// Runs `chokepoint run [--packet-probes] -- wrk ...`; returns the JSON result and the
/// recording's lines.
fn run_wrk(name: &str, wrk: &Wrk, packet_probes: bool) -> (Value, Vec<Value>) {
    let (rec, out) = (tmp(&format!("{name}.rec")), tmp(&format!("{name}.json")));
    let mut args = vec![
        "run".to_string(),
        "--out".into(),
        rec.display().to_string(),
        "--json".into(),
        out.display().to_string(),
    ];
    if packet_probes {
        args.push("--packet-probes".into());
    }
    args.push("--".into());
    args.extend(wrk.argv());
    let o = run_chokepoint(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    println!("{}", String::from_utf8_lossy(&o.stdout));
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("JSON result written"))
            .expect("JSON");
    let lines = std::fs::read_to_string(&rec)
        .expect("recording written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("recording line"))
        .collect();
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_file(&out);
    (json, lines)
}

fn skip() -> bool {
    match netns_unavailable() {
        Some(why) => {
            eprintln!("skipped: {why}");
            true
        }
        None => false,
    }
}

/// The verdict is `kind`, or `kind` fired as secondary behind a verdict about some other
/// process: the machine is shared (a compiler pegging a core elsewhere is its own verdict).
fn assert_fired(verdict: &Value, kind: &str) {
    if verdict["kind"] == kind {
        return;
    }
    let secondary = verdict["secondary"]
        .as_array()
        .is_some_and(|s| s.iter().any(|k| k == kind));
    assert!(secondary, "{kind} did not fire: {verdict:#}");
    eprintln!(
        "note: {kind} fired as secondary behind: {}",
        verdict["summary"]
    );
}

fn evidence(verdict: &Value, metric: &str) -> f64 {
    verdict["evidence"]
        .as_array()
        .and_then(|e| e.iter().find(|x| x["metric"] == metric))
        .and_then(|x| x["value"].as_f64())
        .unwrap_or_else(|| panic!("no {metric} evidence: {verdict:#}"))
}

fn sum(lines: &[Value], list: &str, pick: impl Fn(&Value) -> bool, field: &str) -> u64 {
    lines
        .iter()
        .filter(|l| l["kind"] == "interval")
        .flat_map(|l| l[list].as_array().cloned().unwrap_or_default())
        .filter(|row| pick(row))
        .map(|row| row[field].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn path_through_a_proxy_and_dnat_shows_proxy_nat_bridge_veth_and_namespace() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let net = LabNet::build(None).expect("docker-like network");
    let _backend = NsNginx::start(&net, 1024).expect("nginx in the namespace");
    let proxy = Nginx::config()
        .workers(1)
        .keepalive(false)
        .proxy_pass(net.published())
        .start();
    let wrk = Wrk::new(&proxy.url())
        .threads(1)
        .connections(8)
        .seconds(4)
        .close(true);
    let (json, lines) = run_wrk("path", &wrk, true);

    let paths = json["paths"].as_array().expect("paths[]");
    let path = paths
        .iter()
        .find(|p| p["port"] == proxy.port())
        .unwrap_or_else(|| panic!("no path to the proxy's port: {paths:#?}"));
    let hops = path["hops"].as_array().expect("hops[]");
    let kinds: Vec<&str> = hops.iter().filter_map(|h| h["kind"].as_str()).collect();
    let order: Vec<usize> = ["proxy", "nat", "bridge", "veth", "netns"]
        .iter()
        .map(|k| {
            kinds
                .iter()
                .position(|x| x == k)
                .unwrap_or_else(|| panic!("no {k} hop in {}", path["text"]))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", path["text"]);
    let hop = |kind: &str| &hops[kinds.iter().position(|k| *k == kind).expect("hop")];
    assert_eq!(hop("proxy")["pid"], proxy.master_pid(), "{}", path["text"]);
    assert_eq!(hop("bridge")["name"], net.bridge.as_str());
    assert_eq!(hop("veth")["name"], net.veth_host.as_str());
    assert_eq!(hop("netns")["name"], net.netns.as_str());
    // Connection set-up before the proxy (wrk -> nginx over lo) and after it (nginx -> the
    // DNAT'd port, across the bridge and veth): both measured, neither absurd.
    for tier in ["proxy", "nat"] {
        let ms = hop(tier)["connect_ms"].as_f64().unwrap_or(-1.0);
        println!("connect to {tier}: {ms:.3} ms");
        assert!(ms > 0.0 && ms < 1000.0, "{tier} connect_ms {}", hop(tier));
    }
    // The server inside the namespace is found through the namespace's own socket table.
    assert!(
        path["server"]
            .as_str()
            .is_some_and(|s| s.starts_with("nginx[")),
        "{}",
        path["text"]
    );
    let nat = hop("nat")["name"].as_str().expect("nat name");
    assert_eq!(nat, format!("127.0.0.1:{}→{}:80", net.nat_port, net.ns_ip));
    assert!(
        hop("veth")["packets_per_s"].as_f64().unwrap_or(0.0) > 100.0,
        "{:?}",
        hop("veth")
    );

    // The per-packet programs agree with the kernel's own link statistics.
    let attached = &json["probes"]["attached"];
    if attached
        .as_array()
        .is_some_and(|a| a.iter().any(|p| p == "net/net_dev_xmit"))
    {
        let veth = net.veth_host.as_str();
        let own = |row: &Value| row["name"] == veth;
        let link_tx = sum(&lines, "devices", own, "tx_packets");
        let link_rx = sum(&lines, "devices", own, "rx_packets");
        let probe_tx = sum(&lines, "net_packets", own, "xmit_packets");
        let probe_rx = sum(&lines, "net_packets", own, "receive_packets");
        let backlog = sum(&lines, "net_packets", own, "backlog_packets");
        println!(
            "{veth}: link tx {link_tx} rx {link_rx}, programs xmit {probe_tx} receive {probe_rx} backlog {backlog}"
        );
        // A veth hands what its peer sent to the backlog (netif_rx) before the stack takes it.
        assert!(
            backlog.abs_diff(link_rx) as f64 <= 0.02 * link_rx as f64 + 20.0,
            "netif_rx {backlog} vs link rx {link_rx}"
        );
        assert!(link_tx > 1000, "traffic crossed the veth: {link_tx}");
        // The result shows what the recording holds.
        let shown = json["packets"]
            .as_array()
            .and_then(|a| a.iter().find(|p| p["name"] == veth))
            .unwrap_or_else(|| panic!("{veth} in packets[]: {}", json["packets"]));
        assert_eq!(shown["backlog_packets"].as_u64(), Some(backlog));
        assert_eq!(shown["xmit_packets"].as_u64(), Some(probe_tx));
        for (probe, link) in [(probe_tx, link_tx), (probe_rx, link_rx)] {
            let diff = probe.abs_diff(link) as f64;
            assert!(
                diff <= 0.02 * link as f64 + 20.0,
                "programs {probe} vs link {link}"
            );
        }
    }
}

#[test]
fn a_tbf_shaper_on_the_veth_with_large_responses_is_network_bandwidth() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // 8 Mbit/s = 1 MB/s for responses leaving the namespace.
    let net = LabNet::build(Some("8mbit")).expect("docker-like network");
    let _backend = NsNginx::start(&net, 256 * 1024).expect("nginx in the namespace");
    let url = format!("http://{}/", net.published());
    let wrk = Wrk::new(&url).threads(1).connections(4).seconds(5);
    let (json, lines) = run_wrk("bandwidth", &wrk, false);
    let verdict = &json["verdict"];
    assert_fired(verdict, "network-bandwidth");
    let used = verdict["evidence"]
        .as_array()
        .expect("evidence")
        .iter()
        .find(|e| e["metric"].as_str().is_some_and(|m| m.ends_with(".used")))
        .expect("utilisation evidence");
    assert!(used["value"].as_f64().unwrap_or(0.0) >= 0.9, "{used}");
    // The recording carries the shaper's configured rate, read from the namespace.
    let rated = lines
        .iter()
        .flat_map(|l| l["qdiscs"].as_array().cloned().unwrap_or_default())
        .any(|q| q["device"] == net.veth_ns.as_str() && q["rate_bytes_per_second"] == 1_000_000);
    assert!(rated, "no tbf row for {} at 1,000,000 B/s", net.veth_ns);
    // The shaper's drops, named by device and by the kernel's reason (raw kfree_skb).
    let qdisc = json["totals"]["drops_by_device"][net.veth_ns.as_str()]["QDISC_DROP"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        qdisc > 0,
        "no QDISC_DROP on {}: {}",
        net.veth_ns,
        json["totals"]["drops_by_device"]
    );
}

#[test]
fn a_tiny_conntrack_table_under_connection_churn_is_connection_setup() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let net = LabNet::build(None).expect("docker-like network");
    let _backend = NsNginx::start(&net, 64).expect("nginx in the namespace");
    let count_path = "/proc/sys/net/netfilter/nf_conntrack_count";
    let Ok(count) = std::fs::read_to_string(count_path) else {
        eprintln!("skipped: conntrack not loaded ({count_path} missing)");
        return;
    };
    let count: u64 = count.trim().parse().expect("a number");
    // Room for a few hundred more connections: the churn fills it within a second.
    let _max = Sysctl::set(
        "/proc/sys/net/netfilter/nf_conntrack_max",
        &(count + 256).to_string(),
    )
    .expect("nf_conntrack_max lowered");
    let url = format!("http://{}/", net.published());
    let wrk = Wrk::new(&url)
        .threads(1)
        .connections(16)
        .seconds(4)
        .close(true);
    let (json, _) = run_wrk("conntrack", &wrk, false);
    drop(_max);
    let verdict = &json["verdict"];
    assert_fired(verdict, "connection-setup");
    let ct = &json["conntrack"];
    println!("conntrack: {ct}");
    let failures = ["insert_failed", "drop", "early_drop"]
        .iter()
        .map(|k| ct[k].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert!(failures >= 5, "conntrack failures counted: {ct}");
    assert!(ct["peak_fill"].as_f64().unwrap_or(0.0) >= 0.9, "{ct}");
    let text = evidence(verdict, "conntrack.failures");
    assert!(text >= 5.0, "conntrack.failures evidence {text}");
}

#[test]
fn a_namespace_appearing_and_vanishing_during_a_recording_is_reported_not_fatal() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (rec, out) = (tmp("vanish.rec"), tmp("vanish.json"));
    let chokepoint = std::process::Command::new(chokepoint_tests::chokepoint_bin())
        .args(["record", "--duration", "5s", "--out"])
        .arg(&rec)
        .arg("--json")
        .arg(&out)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chokepoint record");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let net = LabNet::build(None).expect("docker-like network");
    let name = net.netns.clone();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    drop(net);
    let o = chokepoint
        .wait_with_output()
        .expect("chokepoint record ends");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<Value> = std::fs::read_to_string(&rec)
        .expect("recording")
        .lines()
        .map(|l| serde_json::from_str(l).expect("line"))
        .collect();
    let appeared = lines.iter().any(|l| {
        l["topology"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["netns"]["name"] == name.as_str()))
            && l["kind"] == "interval"
    });
    assert!(appeared, "{name} never appeared in an interval's topology");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("JSON")).expect("JSON");
    let noted = json["limitations"].as_array().is_some_and(|l| {
        l.iter()
            .any(|x| x.as_str().is_some_and(|s| s.contains(&name)))
    });
    assert!(noted, "no limitation about {name}: {}", json["limitations"]);
    let _ = std::fs::remove_file(&rec);
    let _ = std::fs::remove_file(&out);
}

/// A network namespace of the test's own, deleted on drop (also when the test fails).
struct Netns(String);

impl Netns {
    fn add(name: String) -> Netns {
        let ok = |args: &[&str]| {
            let o = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("ip");
            assert!(o.status.success(), "ip {args:?}: {o:?}");
        };
        ok(&["netns", "add", &name]);
        let ns = Netns(name);
        ok(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .output();
    }
}

/// Opens connections to one listener until the namespace's four local ports are used up.
const PORT_EXHAUSTION: &str = r#"
import errno, socket
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 9))
srv.listen(64)
held, refused = [], 0
for _ in range(12):
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", 9))
        held.append(c)
    except OSError as e:
        if e.errno != errno.EADDRNOTAVAIL:
            raise
        refused += 1
print(f"connected={len(held)} refused={refused}")
"#;

#[test]
fn connects_refused_for_want_of_a_local_port_are_counted() {
    if skip() {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let ns = Netns::add(format!("cp-ports-{}", std::process::id()));
    // The port range is per namespace: four ports, for this namespace only.
    let set = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.0, "sysctl", "-w"])
        .arg("net.ipv4.ip_local_port_range=40000 40003")
        .output()
        .expect("sysctl");
    assert!(set.status.success(), "{set:?}");
    let (stdout, json) = run_for_json(&[
        "ip",
        "netns",
        "exec",
        &ns.0,
        "python3",
        "-c",
        PORT_EXHAUSTION,
    ]);
    let count = |k: &str| -> u64 { printed(&stdout, k).parse().expect("a count") };
    let (connected, refused) = (count("connected"), count("refused"));
    assert!(connected >= 1 && refused >= 1, "{stdout}");
    assert_eq!(
        json["totals"]["connect_addr_unavailable"].as_u64(),
        Some(refused),
        "every EADDRNOTAVAIL the script saw, and no other: {}",
        json["totals"]
    );
    // They are failed connects too (SYN_SENT -> CLOSE without a SYN).
    assert!(
        json["totals"]["connect_failed"].as_u64() >= Some(refused),
        "{}",
        json["totals"]
    );
}

/// Connects refused for 2.5 s (a bound port with no listener answers each SYN with a RST),
/// then quiet for 5 s.
const REFUSED_THEN_QUIET: &str = r#"
import socket, time
closed = socket.socket()
closed.bind(("127.0.0.1", 0))
port = closed.getsockname()[1]
refused = 0
end = time.time() + 2.5
while time.time() < end:
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", port))
    except ConnectionRefusedError:
        refused += 1
    c.close()
    time.sleep(0.005)
time.sleep(5)
print(f"refused={refused}")
"#;

/// The default tier attaches the connection-setup program on demand: while connects fail it
/// stays attached and counts every failure (the interval says why it ran), and once they stop
/// it goes back to the samples, the kernel's own counters standing in between.
#[test]
fn failing_connects_keep_the_connection_setup_program_attached_until_they_stop() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (rec, out) = (tmp("on-demand.rec"), tmp("on-demand.json"));
    let o = run_chokepoint([
        "run",
        "--out",
        rec.to_str().expect("utf-8"),
        "--json",
        out.to_str().expect("utf-8"),
        "--",
        "python3",
        "-c",
        REFUSED_THEN_QUIET,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let refused: u64 = printed(&stdout, "refused").parse().expect("a count");
    assert!(refused > 100, "{stdout}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("json")).expect("json");
    let intervals: Vec<Value> = std::fs::read_to_string(&rec)
        .expect("recording")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|l| l["kind"] == "interval")
        .collect();
    let detached = |iv: &Value| {
        iv["detached"]
            .as_array()
            .is_some_and(|d| d.iter().any(|x| x == "sock/inet_sock_set_state"))
    };
    // Interval 1 is outside the samples (0, 2, 7): it ran for the failures of interval 0.
    assert!(!detached(&intervals[1]), "{}", intervals[1]);
    let why = intervals[1]["on_demand"].as_str().unwrap_or("");
    assert!(
        why.starts_with("sock/inet_sock_set_state: ") && why.contains("failed"),
        "{why}"
    );
    // After the failures (the last by 3 s), outside a sample: detached again.
    assert!(
        intervals[4..7].iter().any(detached),
        "{:?}",
        intervals
            .iter()
            .map(|iv| &iv["detached"])
            .collect::<Vec<_>>()
    );
    // Every refusal counted: by the program where it ran, by the kernel elsewhere.
    assert_eq!(
        json["totals"]["connect_failed"].as_u64(),
        Some(refused),
        "{}",
        json["totals"]
    );
}
