//! Each check: look at this machine, say yes or no and why. Nothing here panics or leaves the
//! system changed, except mounting tracefs when asked to.
use std::{
    error::Error,
    fs,
    path::{Path, PathBuf},
};

use aya::{Btf, maps::MapType, sys};

use super::{
    Check,
    kernel::{self, Attach, PerfCounter},
    parse::{self, CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON, CAP_SYS_ADMIN, Mount},
};
use crate::probes::tracepoints::{LayoutError, TRACEFS, TRACEPOINTS};

/// Tracepoints without which a probe family measures nothing: the base layer needs them. The
/// others only narrow what is reported (a missing one becomes a stated limitation).
pub const REQUIRED_TRACEPOINTS: &[&str] = &["sock/inet_sock_set_state", "sched/sched_switch"];

const BTF_VMLINUX: &str = "/sys/kernel/btf/vmlinux";
const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";
/// A kernel function built for BPF self-tests: what aya and libbpf probe fentry against.
const FENTRY_TARGET: &str = "bpf_fentry_test1";

/// An error with its sources, `outer: inner: innermost`.
fn chain(e: &dyn Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}

fn check(id: impl Into<String>, ok: bool, detail: impl Into<String>) -> Check {
    Check {
        id: id.into(),
        ok,
        detail: detail.into(),
        required: false,
    }
}

fn required(mut c: Check) -> Check {
    c.required = true;
    c
}

fn mounts() -> Result<Vec<Mount>, String> {
    fs::read_to_string("/proc/mounts")
        .map(|t| parse::mounts(&t))
        .map_err(|e| format!("cannot read /proc/mounts: {e}"))
}

/// What later checks need from earlier ones.
pub struct Context {
    pub caps: Option<u64>,
    pub tracefs_ok: bool,
    pub btf: Option<Btf>,
}

impl Context {
    fn has(&self, cap: u32) -> bool {
        self.caps.is_some_and(|set| parse::has_cap(set, cap))
    }
}

pub fn privileges(out: &mut Vec<Check>) -> Context {
    let euid = nix::unistd::geteuid();
    out.push(check(
        "privilege.root",
        euid.is_root(),
        if euid.is_root() {
            "euid 0".to_string()
        } else {
            format!("euid {euid}, not root")
        },
    ));
    let caps = fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))
        .and_then(|s| {
            parse::cap_eff(&s).ok_or_else(|| "/proc/self/status has no CapEff line".to_string())
        });
    let ctx = Context {
        caps: caps.as_ref().ok().copied(),
        tracefs_ok: false,
        btf: None,
    };
    for (id, cap, name) in [
        ("privilege.cap_bpf", CAP_BPF, "CAP_BPF"),
        ("privilege.cap_perfmon", CAP_PERFMON, "CAP_PERFMON"),
        ("privilege.cap_sys_admin", CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        ("privilege.cap_net_admin", CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    ] {
        out.push(match &caps {
            Ok(set) if parse::has_cap(*set, cap) => {
                check(id, true, format!("{name} in the effective set"))
            }
            Ok(set) => check(
                id,
                false,
                format!("{name} not in the effective set (CapEff {set:016x})"),
            ),
            Err(e) => check(id, false, e.clone()),
        });
    }
    // The kernel's bpf_capable() / perfmon_capable() accept CAP_SYS_ADMIN for either.
    let bpf = ctx.has(CAP_BPF) || ctx.has(CAP_SYS_ADMIN);
    let perfmon = ctx.has(CAP_PERFMON) || ctx.has(CAP_SYS_ADMIN);
    let detail = match (bpf, perfmon) {
        (true, true) if ctx.has(CAP_BPF) && ctx.has(CAP_PERFMON) => {
            "CAP_BPF and CAP_PERFMON are effective".to_string()
        }
        (true, true) => "CAP_SYS_ADMIN is effective (it covers CAP_BPF and CAP_PERFMON)".into(),
        _ => {
            let missing: Vec<&str> = [(bpf, "CAP_BPF"), (perfmon, "CAP_PERFMON")]
                .iter()
                .filter(|(have, _)| !have)
                .map(|(_, n)| *n)
                .collect();
            format!(
                "needs root, or CAP_BPF and CAP_PERFMON: missing {}",
                missing.join(" and ")
            )
        }
    };
    out.push(required(check("privilege.bpf", bpf && perfmon, detail)));
    ctx
}

pub fn system(out: &mut Vec<Check>) {
    let read = |p: &str| fs::read_to_string(p).map(|s| s.trim().to_string());
    out.push(match read("/proc/sys/kernel/osrelease") {
        Ok(release) => check(
            "system.kernel",
            true,
            format!("Linux {release} {}", std::env::consts::ARCH),
        ),
        Err(e) => check(
            "system.kernel",
            false,
            format!("cannot read /proc/sys/kernel/osrelease: {e}"),
        ),
    });
    let online = read("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|l| parse::cpu_list_len(&l));
    let usable = std::thread::available_parallelism().map(usize::from).ok();
    out.push(match (online, usable) {
        (Some(n), Some(u)) => check(
            "system.cpus",
            true,
            format!("{n} online, {u} usable by this process"),
        ),
        (Some(n), None) => check("system.cpus", true, format!("{n} online")),
        (None, Some(u)) => check("system.cpus", true, format!("{u} usable by this process")),
        (None, None) => check("system.cpus", false, "cannot count CPUs"),
    });
}

pub fn btf(out: &mut Vec<Check>, ctx: &mut Context) {
    out.push(match fs::metadata(BTF_VMLINUX) {
        Ok(m) => check("btf", true, format!("{BTF_VMLINUX} ({} bytes)", m.len())),
        Err(e) => check("btf", false, format!("{BTF_VMLINUX}: {e}")),
    });
    ctx.btf = Btf::from_sys_fs().ok();
    // The one kernel struct member the programs read: exact per-thread on-CPU time.
    let path = std::path::Path::new(BTF_VMLINUX);
    out.push(match crate::probes::kernel_btf::kernel_offsets(path) {
        Ok(k) => check(
            "btf.task_run_time",
            true,
            format!(
                "task_struct.se.sum_exec_runtime at byte {}: on-CPU time is the kernel's own total",
                k.task_sum_exec_runtime
            ),
        ),
        Err(e) => check(
            "btf.task_run_time",
            false,
            format!("{e}: on-CPU time is timed from switch events only"),
        ),
    });
}

/// tracefs must be mounted at TRACEFS and readable; mounts it when asked and allowed.
pub fn tracefs(out: &mut Vec<Check>, ctx: &mut Context, mount: bool) {
    let mounted = match mounts() {
        Ok(m) => m
            .iter()
            .any(|m| m.target == TRACEFS && m.fstype == "tracefs"),
        Err(e) => {
            out.push(required(check("tracefs", false, e)));
            return;
        }
    };
    let mut how = format!("mounted at {TRACEFS}");
    if !mounted {
        let missing = format!("not mounted at {TRACEFS}");
        if !mount {
            out.push(required(check(
                "tracefs",
                false,
                format!("{missing}; `mount -t tracefs nodev {TRACEFS}` mounts it"),
            )));
            return;
        }
        if !ctx.has(CAP_SYS_ADMIN) {
            out.push(required(check(
                "tracefs",
                false,
                format!("{missing}, and mounting it needs CAP_SYS_ADMIN"),
            )));
            return;
        }
        if let Err(e) = nix::mount::mount(
            Some("nodev"),
            TRACEFS,
            Some("tracefs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        ) {
            out.push(required(check(
                "tracefs",
                false,
                format!("{missing}; mounting it failed: {e}"),
            )));
            return;
        }
        how = format!("mounted by doctor at {TRACEFS}");
    }
    let events = Path::new(TRACEFS).join("events");
    match fs::read_dir(&events) {
        Ok(_) => {
            ctx.tracefs_ok = true;
            out.push(required(check("tracefs", true, how)));
        }
        Err(e) => out.push(required(check(
            "tracefs",
            false,
            format!("{how}, but {}: {e}", events.display()),
        ))),
    }
}

pub fn tracepoints(out: &mut Vec<Check>) {
    let tracefs = Path::new(TRACEFS);
    for tp in TRACEPOINTS {
        let id = tp.id();
        let c = match tp.layout(tracefs) {
            Ok(_) if tp.fields.is_empty() => {
                check(format!("tracepoint.{id}"), true, "present (no fields read)")
            }
            Ok(_) => {
                let fields: Vec<String> = tp
                    .fields
                    .iter()
                    .map(|f| format!("{}:{}", f.name, f.size))
                    .collect();
                check(
                    format!("tracepoint.{id}"),
                    true,
                    format!("present; fields as expected ({})", fields.join(" ")),
                )
            }
            // The id already names the tracepoint: say only what is wrong with it.
            Err(LayoutError::Missing { source, .. }) => check(
                format!("tracepoint.{id}"),
                false,
                format!("not available: {}", chain(&source)),
            ),
            Err(e) => check(format!("tracepoint.{id}"), false, e.to_string()),
        };
        out.push(if REQUIRED_TRACEPOINTS.contains(&id.as_str()) {
            required(c)
        } else {
            c
        });
    }
}

fn tracefs_file(id: &str, ctx: &Context, file: &str, absent: &str) -> Check {
    if !ctx.tracefs_ok {
        return check(id, false, "cannot tell: tracefs is not usable");
    }
    let path = PathBuf::from(TRACEFS).join(file);
    match path.try_exists() {
        Ok(true) => check(id, true, format!("{} present", path.display())),
        Ok(false) => check(id, false, format!("no {} ({absent})", path.display())),
        Err(e) => check(id, false, format!("cannot tell: {}: {e}", path.display())),
    }
}

pub fn probe_kinds(out: &mut Vec<Check>, ctx: &Context) {
    out.push(tracefs_file(
        "kprobes",
        ctx,
        "kprobe_events",
        "kernel built without CONFIG_KPROBES",
    ));
    out.push(tracefs_file(
        "uprobes",
        ctx,
        "uprobe_events",
        "kernel built without CONFIG_UPROBE_EVENTS",
    ));
    out.push(
        match sys::is_program_supported(aya::programs::ProgramType::TracePoint) {
            Ok(true) => check(
                "program.tracepoint",
                true,
                "loaded a trivial tracepoint program",
            ),
            Ok(false) => check(
                "program.tracepoint",
                false,
                "the kernel does not know tracepoint programs",
            ),
            Err(e) => check(
                "program.tracepoint",
                false,
                format!("loading a trivial tracepoint program: {}", chain(&e)),
            ),
        },
    );
    let btf = ctx.btf.as_ref();
    for (id, kind, what) in [
        (
            "raw_tracepoint",
            Attach::RawTracepoint(c"sched_switch"),
            "a trivial raw_tp program on sched_switch",
        ),
        (
            "btf_tracepoint",
            Attach::BtfTracepoint("sched_switch"),
            "a trivial tp_btf program on sched_switch",
        ),
        (
            "fentry",
            Attach::Fentry(FENTRY_TARGET),
            "a trivial fentry program on bpf_fentry_test1",
        ),
    ] {
        out.push(match kernel::load_and_attach(kind, btf) {
            Ok(()) => check(id, true, format!("loaded and attached {what}")),
            Err(e) => check(id, false, format!("{what}: {}", chain(&e))),
        });
    }
    for (id, counter, what) in [
        (
            "perf.software",
            PerfCounter::SoftwareCpuClock,
            "software cpu-clock",
        ),
        (
            "perf.hardware",
            PerfCounter::HardwareCycles,
            "hardware cpu-cycles",
        ),
    ] {
        out.push(match kernel::open_perf_event(counter) {
            Ok(()) => check(id, true, format!("perf_event_open of {what} on CPU 0")),
            Err(e) => check(
                id,
                false,
                format!("perf_event_open of {what} on CPU 0: {e}"),
            ),
        });
    }
}

pub fn maps(out: &mut Vec<Check>) {
    for (id, ty, what) in [
        ("map.ringbuf", MapType::RingBuf, "ring buffer"),
        ("map.percpu_array", MapType::PerCpuArray, "per-CPU array"),
        ("map.percpu_hash", MapType::PerCpuHash, "per-CPU hash"),
    ] {
        out.push(match sys::is_map_supported(ty) {
            Ok(true) => check(id, true, format!("created a {what} map")),
            Ok(false) => check(id, false, format!("the kernel does not know {what} maps")),
            Err(e) => check(id, false, format!("creating a {what} map: {}", chain(&e))),
        });
    }
}

pub fn cgroups(out: &mut Vec<Check>) {
    let mounts = match mounts() {
        Ok(m) => m,
        Err(e) => {
            for id in ["cgroup.v1", "cgroup.v2", "cgroup.cfs_quota"] {
                out.push(check(id, false, e.clone()));
            }
            return;
        }
    };
    let v1 = parse::cgroup_v1_controllers(&mounts);
    out.push(if v1.is_empty() {
        check("cgroup.v1", false, "no cgroup v1 controller mounted")
    } else {
        let names: Vec<&str> = v1.iter().map(|(n, _)| n.as_str()).collect();
        check(
            "cgroup.v1",
            true,
            format!("controllers mounted: {}", names.join(", ")),
        )
    });
    let v2 = mounts.iter().find(|m| m.fstype == "cgroup2");
    let v2_controllers = v2.map(|m| {
        fs::read_to_string(Path::new(&m.target).join("cgroup.controllers"))
            .map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default()
    });
    out.push(match (v2, &v2_controllers) {
        (Some(m), Some(c)) => check(
            "cgroup.v2",
            true,
            format!(
                "hierarchy at {}; controllers: {}",
                m.target,
                if c.is_empty() {
                    "none".to_string()
                } else {
                    c.join(" ")
                }
            ),
        ),
        _ => check("cgroup.v2", false, "no cgroup2 hierarchy mounted"),
    });
    let v1_cpu = v1
        .iter()
        .find(|(n, _)| n == "cpu")
        .map(|(_, target)| Path::new(target).join("cpu.cfs_quota_us"))
        .filter(|p| p.exists());
    let v2_cpu = v2
        .zip(v2_controllers.as_ref())
        .filter(|(_, c)| c.iter().any(|c| c == "cpu"));
    out.push(match (v1_cpu, v2_cpu) {
        (Some(p), _) => check(
            "cgroup.cfs_quota",
            true,
            format!("{} (v1; throttling in cpu.stat)", p.display()),
        ),
        (None, Some((m, _))) => check(
            "cgroup.cfs_quota",
            true,
            format!("cpu.max in child groups of {} (v2)", m.target),
        ),
        (None, None) => check(
            "cgroup.cfs_quota",
            false,
            "no v1 cpu controller with cpu.cfs_quota_us, and no cpu controller in cgroup v2",
        ),
    });
}

/// Reports the sysctl's value and whether it could be set, without setting it: opening it for
/// writing is the kernel's permission check.
pub fn bpf_stats(out: &mut Vec<Check>) {
    let current = match fs::read_to_string(BPF_STATS_SYSCTL) {
        Ok(v) => v.trim().to_string(),
        Err(e) => {
            out.push(check(
                "bpf_stats.sysctl",
                false,
                format!("cannot read {BPF_STATS_SYSCTL}: {e}"),
            ));
            return bpf_stats_syscall(out);
        }
    };
    let root = nix::unistd::geteuid().is_root();
    let writable = fs::OpenOptions::new().write(true).open(BPF_STATS_SYSCTL);
    out.push(match (root, writable) {
        (true, Ok(_)) => check(
            "bpf_stats.sysctl",
            true,
            format!(
                "kernel.bpf_stats_enabled = {current}; settable (root, file writable; left as is)"
            ),
        ),
        (false, _) => check(
            "bpf_stats.sysctl",
            false,
            format!("kernel.bpf_stats_enabled = {current}; setting it needs root"),
        ),
        (true, Err(e)) => check(
            "bpf_stats.sysctl",
            false,
            format!("kernel.bpf_stats_enabled = {current}; not writable: {e}"),
        ),
    });
    bpf_stats_syscall(out);
}

/// BPF_ENABLE_STATS turns statistics on only while its descriptor is open: dropped at once.
fn bpf_stats_syscall(out: &mut Vec<Check>) {
    out.push(match sys::enable_stats(sys::Stats::RunTime) {
        Ok(_fd) => check(
            "bpf_stats.syscall",
            true,
            "BPF_ENABLE_STATS works (statistics on only while chokepoint holds it)",
        ),
        Err(e) => check(
            "bpf_stats.syscall",
            false,
            format!("BPF_ENABLE_STATS: {}", chain(&e)),
        ),
    });
}
