//! xtask installs the eBPF toolchain, so it must build before that toolchain exists: no
//! dependency path may lead from xtask to the crate whose build script compiles the kernel
//! programs (`chokepoint`, through aya-build), nor to the kernel crate itself.
use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

/// Package id -> the ids it depends on (every kind: normal, build and dev), from cargo's own
/// resolved graph.
fn resolve_graph() -> (BTreeMap<String, Vec<String>>, BTreeMap<String, String>) {
    // This machine's platform only: offline, cargo has only its packages (a fresh machine's
    // cache holds no Windows-only crate to read the manifest of).
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let host = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("rustc -vV names the host");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let names = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["id"].as_str().expect("id").to_string(),
                p["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();
    let graph = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|n| {
            let deps = n["deps"]
                .as_array()
                .expect("deps")
                .iter()
                .map(|d| d["pkg"].as_str().expect("pkg").to_string())
                .collect();
            (n["id"].as_str().expect("id").to_string(), deps)
        })
        .collect();
    (graph, names)
}

/// Every package name reachable from `root` (by name), with the path that reached it.
fn reachable(root: &str) -> BTreeMap<String, Vec<String>> {
    let (graph, names) = resolve_graph();
    let start = names
        .iter()
        .find(|(_, n)| *n == root)
        .map(|(id, _)| id.clone())
        .expect("the root package is in the workspace");
    let mut seen = BTreeSet::from([start.clone()]);
    let mut paths = BTreeMap::new();
    let mut queue = vec![(start, vec![root.to_string()])];
    while let Some((id, path)) = queue.pop() {
        for dep in graph.get(&id).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                let mut p = path.clone();
                p.push(names[dep].clone());
                paths.insert(names[dep].clone(), p.clone());
                queue.push((dep.clone(), p));
            }
        }
    }
    paths
}

#[test]
fn xtask_reaches_neither_the_profiler_nor_its_kernel_programs() {
    let from_xtask = reachable("xtask");
    for forbidden in [
        "chokepoint",
        "chokepoint-ebpf",
        "aya-build",
        "chokepoint-tests",
    ] {
        assert!(
            !from_xtask.contains_key(forbidden),
            "xtask depends on {forbidden} through {}: it would need the eBPF toolchain it installs",
            from_xtask[forbidden].join(" -> ")
        );
    }
    // The shared fixtures are what the benchmark needs, and they stay reachable.
    assert!(from_xtask.contains_key("chokepoint-testbed"));
}

#[test]
fn the_graph_walk_finds_the_profiler_behind_the_e2e_tests() {
    // The check above could pass on a walk that never finds anything: the e2e crate does
    // depend on the profiler, and the walk must say so.
    let from_tests = reachable("chokepoint-tests");
    assert_eq!(
        from_tests.get("aya-build").map(|p| p.first().cloned()),
        Some(Some("chokepoint-tests".to_string()))
    );
    assert!(from_tests.contains_key("chokepoint"));
}
