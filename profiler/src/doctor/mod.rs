//! What this kernel and this user allow: privileges, tracefs, every tracepoint chokepoint reads
//! (with its fields), the other probe kinds, map types, cgroups and BPF statistics. Each check
//! is one yes/no with the reason. The base layer (tracepoint probes) can run when every
//! `required` check passes; docs/doctor.md lists the checks.
mod checks;
pub mod cli;
mod kernel;
mod parse;

use serde::{Deserialize, Serialize};

pub use checks::REQUIRED_TRACEPOINTS;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Stable identifier, e.g. `privilege.root`, `tracepoint.sched/sched_switch`, `kprobes`.
    pub id: String,
    pub ok: bool,
    /// Why: what was found or tried, and what failed.
    pub detail: String,
    /// The base layer cannot run without it.
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub base_layer_ok: bool,
}

impl Report {
    pub fn new(checks: Vec<Check>) -> Self {
        let base_layer_ok = checks.iter().all(|c| c.ok || !c.required);
        Self {
            checks,
            base_layer_ok,
        }
    }

    pub fn get(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }

    /// Whether a tracepoint is present with the expected fields; `id` is `group/name`, with or
    /// without the `tracepoint.` prefix.
    pub fn tracepoint_ok(&self, id: &str) -> bool {
        let id = id.strip_prefix("tracepoint.").unwrap_or(id);
        self.get(&format!("tracepoint.{id}")).is_some_and(|c| c.ok)
    }

    /// Required checks that failed: why the base layer cannot run.
    pub fn missing_required(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.required && !c.ok).collect()
    }

    /// 0 when the base layer can run, 1 when it cannot. Optional features never fail it.
    pub fn exit_code(&self) -> i32 {
        if self.missing_required().is_empty() {
            0
        } else {
            1
        }
    }
}

/// Runs every check. With `mount_tracefs`, mounts tracefs when it is missing and we may.
/// Never panics: a check that cannot be made is reported as failed, with the reason.
pub fn inspect(mount_tracefs: bool) -> Report {
    let mut out = Vec::new();
    let mut ctx = checks::privileges(&mut out);
    checks::system(&mut out);
    checks::btf(&mut out, &mut ctx);
    checks::tracefs(&mut out, &mut ctx, mount_tracefs);
    checks::tracepoints(&mut out);
    checks::probe_kinds(&mut out, &ctx);
    checks::maps(&mut out);
    checks::cgroups(&mut out);
    checks::bpf_stats(&mut out);
    Report::new(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::probes::tracepoints::{TRACEFS, TRACEPOINTS};

    fn c(id: &str, ok: bool, required: bool) -> Check {
        Check {
            id: id.into(),
            ok,
            detail: String::new(),
            required,
        }
    }

    #[test]
    fn exit_code_fails_only_on_a_failed_required_check() {
        let all_ok = Report::new(vec![
            c("privilege.bpf", true, true),
            c("kprobes", false, false),
        ]);
        assert!(all_ok.base_layer_ok);
        assert_eq!(all_ok.exit_code(), 0);
        assert!(all_ok.missing_required().is_empty());

        let no_tracefs = Report::new(vec![
            c("privilege.bpf", true, true),
            c("tracefs", false, true),
            c("fentry", false, false),
        ]);
        assert!(!no_tracefs.base_layer_ok);
        assert_eq!(no_tracefs.exit_code(), 1);
        let missing: Vec<&str> = no_tracefs
            .missing_required()
            .iter()
            .map(|c| c.id.as_str())
            .collect();
        assert_eq!(missing, ["tracefs"]);
    }

    #[test]
    fn tracepoint_ok_takes_either_id_form() {
        let r = Report::new(vec![
            c("tracepoint.sched/sched_switch", true, true),
            c("tracepoint.skb/kfree_skb", false, false),
        ]);
        assert!(r.tracepoint_ok("sched/sched_switch"));
        assert!(r.tracepoint_ok("tracepoint.sched/sched_switch"));
        assert!(!r.tracepoint_ok("skb/kfree_skb"));
        assert!(!r.tracepoint_ok("sched/unknown"));
    }

    #[test]
    fn report_round_trips_through_json() {
        let r = Report::new(vec![c("btf", true, false), c("tracefs", false, true)]);
        let text = serde_json::to_string(&r).expect("serialises");
        let back: Report = serde_json::from_str(&text).expect("parses");
        assert_eq!(back, r);
        assert!(!back.base_layer_ok);
    }

    #[test]
    fn required_tracepoints_are_ones_chokepoint_uses() {
        for id in REQUIRED_TRACEPOINTS {
            assert!(TRACEPOINTS.iter().any(|t| t.id() == *id), "{id}");
        }
    }

    /// Against this machine: what doctor says must match what the filesystem shows.
    #[test]
    fn inspect_matches_this_kernel() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: needs root");
            return;
        }
        let stats_before = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled");
        let r = inspect(true);
        let ids: Vec<&str> = r.checks.iter().map(|c| c.id.as_str()).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "ids are unique: {ids:?}");

        let tracefs = r.get("tracefs").expect("tracefs check");
        assert!(tracefs.ok, "root mounts tracefs: {}", tracefs.detail);
        for tp in TRACEPOINTS {
            let check = r
                .get(&format!("tracepoint.{}", tp.id()))
                .expect("every tracepoint is checked");
            let present = tp.format_path(Path::new(TRACEFS)).exists();
            assert_eq!(
                check.ok,
                present && tp.layout(Path::new(TRACEFS)).is_ok(),
                "{}: {}",
                check.id,
                check.detail
            );
            assert_eq!(r.tracepoint_ok(&tp.id()), check.ok);
        }
        let kprobe_events = Path::new(TRACEFS).join("kprobe_events").exists();
        assert_eq!(r.get("kprobes").expect("kprobes check").ok, kprobe_events);
        let uprobe_events = Path::new(TRACEFS).join("uprobe_events").exists();
        assert_eq!(r.get("uprobes").expect("uprobes check").ok, uprobe_events);
        assert_eq!(
            r.get("btf").expect("btf check").ok,
            Path::new("/sys/kernel/btf/vmlinux").exists()
        );
        assert_eq!(
            r.get("privilege.root").map(|c| c.ok),
            Some(true),
            "running as root"
        );
        assert_eq!(r.base_layer_ok, r.missing_required().is_empty());
        assert_eq!(
            std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled").ok(),
            stats_before.ok(),
            "bpf_stats_enabled left as it was"
        );
    }
}
