//! Loads the embedded kernel object, fills in this kernel's tracepoint offsets, and attaches
//! every program whose tracepoint exists with the expected fields. What cannot attach is
//! recorded with the reason; the rest runs. Dropping `Probes` detaches everything.
use std::path::Path;

use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{
        BtfTracePoint, Program, ProgramError, RawTracePoint, TracePoint,
        raw_trace_point::RawTracePointLinkId, tp_btf::BtfTracePointLinkId,
        trace_point::TracePointLinkId,
    },
};

use chokepoint_common::KernelOffsets;

use super::{
    format::Format,
    kernel_btf, socket_syscalls,
    tracepoints::{self, TRACEPOINTS, Tracepoint},
};
use crate::recording::{Family, ProbeFailure, ProbeStatus};

/// The kernel object built by `build.rs` (empty when built with `AYA_BUILD_SKIP=1`).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/chokepoint"));

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "this chokepoint binary was built without its kernel programs (AYA_BUILD_SKIP was set); rebuild with `cargo build --release`"
    )]
    NoObject,
    #[error("loading the kernel programs failed")]
    Load(#[source] aya::EbpfError),
    #[error("none of chokepoint's tracepoints could be attached: {0}")]
    NothingAttached(String),
}

/// Set to attach only classic tracepoint programs (for overhead comparisons).
pub const CLASSIC_ENV: &str = "CHOKEPOINT_CLASSIC_TRACEPOINTS";

/// Set to attach the raw-tracepoint programs where BTF ones would attach: the fallback for
/// kernels that refuse `tp_btf`, kept testable (and comparable) on kernels that take it.
pub const RAW_ENV: &str = "CHOKEPOINT_RAW_TRACEPOINTS";

/// The program that tells a wait its own timeout ended (`timer:hrtimer_expire_entry`).
const TIMER_PROGRAM: &str = "hrtimer_expire_entry";

/// Set to attach a program that does nothing at every hook instead of the real ones: the
/// floor a benchmark compares against (`cargo xtask bench --empty`). Nothing is measured.
pub const EMPTY_ENV: &str = "CHOKEPOINT_EMPTY_PROGRAMS";

/// Tests only: the size in bytes of the fork/exit ring buffer (`EVENTS`, 256 KiB built in),
/// rounded up to a power of two of at least a page. A small one overflows under a fork storm,
/// so the end-to-end test of lost events can force what a real storm would need a bigger host
/// for. Not a tuning knob: not in the help or the docs beyond docs/benchmarks.md.
pub const RING_BYTES_ENV: &str = "CHOKEPOINT_TEST_RING_BYTES";

/// `RING_BYTES_ENV`, when set to a number.
fn ring_bytes() -> Option<u32> {
    let bytes: u32 = std::env::var(RING_BYTES_ENV).ok()?.trim().parse().ok()?;
    Some(
        bytes
            .max(4096)
            .checked_next_power_of_two()
            .unwrap_or(1 << 30),
    )
}

pub struct Probes {
    pub ebpf: Ebpf,
    pub status: ProbeStatus,
    /// The link of every tracepoint attached by its own program (by id, `irq/softirq_entry`):
    /// what a duty cycle detaches and attaches again (`probes::duty`).
    pub links: std::collections::HashMap<String, Attached>,
    /// Whether `sched_switch` reads the kernel's own run-time total of each thread
    /// (`se.sum_exec_runtime`, at its BTF offset): on-CPU time then survives the scheduler
    /// programs being detached, and the duty cycle may take them.
    pub run_time_totals: bool,
}

/// A tracepoint's program and its link.
#[derive(Debug)]
pub struct Attached {
    pub program: String,
    pub link: Option<LinkHandle>,
}

#[derive(Debug)]
pub enum LinkHandle {
    Btf(BtfTracePointLinkId),
    Raw(RawTracePointLinkId),
    Classic(TracePointLinkId),
}

/// Why a family left out by choice (`load_except`) is not attached: not a failure, and not a
/// limitation of what the recording can tell.
pub const LEFT_OUT: &str =
    "left out by default (attach with --packet-probes; link statistics give the per-device counts)";

impl Probes {
    pub fn load(tracefs: &Path) -> Result<Self, LoadError> {
        Self::load_except(tracefs, &[])
    }

    /// Like `load`, leaving out the programs of the `skip` families (listed as failed, with the
    /// reason).
    pub fn load_except(tracefs: &Path, skip: &[Family]) -> Result<Self, LoadError> {
        if OBJECT.is_empty() {
            return Err(LoadError::NoObject);
        }
        let mut status = ProbeStatus::default();
        let mut layouts: Vec<(Tracepoint, Format)> = Vec::new();
        for tp in TRACEPOINTS {
            if skip.contains(&tp.family) {
                status.failed.push(ProbeFailure {
                    id: tp.id(),
                    family: tp.family,
                    reason: LEFT_OUT.into(),
                });
                continue;
            }
            match tp.layout(tracefs) {
                Ok(format) => layouts.push((*tp, format)),
                Err(e) => status.failed.push(ProbeFailure {
                    id: tp.id(),
                    family: tp.family,
                    reason: error_chain(&e),
                }),
            }
        }
        let offsets = tracepoints::offsets(&layouts);
        // Without BTF the switch program still times slices itself; say what that costs.
        let kernel =
            kernel_btf::kernel_offsets(Path::new(kernel_btf::VMLINUX_BTF)).unwrap_or_else(|e| {
                status.portable_reads.push(format!(
                    "sched/sched_switch: on-CPU time from switch timestamps only, not the \
                     kernel's own run-time totals ({e}); a switch the kernel does not report \
                     loses a slice"
                ));
                KernelOffsets::default()
            });
        // The timer program needs the address of `hrtimer_wakeup` and the sleeper's task; without
        // them it would run for nothing, so it is not attached, and waits keep the reason they
        // blocked in whatever ended them.
        let hrtimer_wakeup = kernel_symbol("hrtimer_wakeup");
        let timer_unready = match &hrtimer_wakeup {
            Err(why) => Some(why.clone()),
            Ok(_) if kernel.hrtimer_sleeper_task == 0 || kernel.task_pid == 0 => Some(
                "the kernel's BTF gives no offset of hrtimer_sleeper.task or task_struct.pid"
                    .to_string(),
            ),
            Ok(_) => None,
        };
        let hrtimer_wakeup = hrtimer_wakeup.unwrap_or(0);
        let mut loader = EbpfLoader::new();
        loader
            .override_global("OFFSETS", &offsets, true)
            .override_global("KERNEL_OFFSETS", &kernel, true)
            .override_global("HRTIMER_WAKEUP", &hrtimer_wakeup, true);
        if let Some(bytes) = ring_bytes() {
            loader.map_max_entries("EVENTS", bytes);
        }
        let mut ebpf = loader.load(OBJECT).map_err(LoadError::Load)?;
        let mut links = std::collections::HashMap::new();

        let use_raw = std::env::var_os(CLASSIC_ENV).is_none();
        if std::env::var_os(EMPTY_ENV).is_some() {
            attach_empty(
                &mut ebpf,
                &layouts,
                use_raw,
                &kernel,
                &mut status,
                &mut links,
            )?;
            // The empty programs keep nothing to lose: the duty cycle takes the same hooks
            // as the real programs', so `--probes default` gives the default tier's floor.
            return Ok(Self {
                ebpf,
                status,
                links,
                run_time_totals: true,
            });
        }
        let syscall_turns = socket_syscalls::forced() && kernel.has_fd_walk();
        // The kernel's BTF, parsed once for every `tp_btf` program (each is loaded against
        // its tracepoint's type); without it the raw programs attach.
        let btf = if use_raw && std::env::var_os(RAW_ENV).is_none() {
            Btf::from_sys_fs()
                .map_err(|e| {
                    status.portable_reads.push(format!(
                        "BTF tracepoints unavailable ({e}); raw ones attached"
                    ));
                })
                .ok()
        } else {
            None
        };
        for (tp, format) in &layouts {
            if let (TIMER_PROGRAM, Some(why)) = (tp.program, &timer_unready) {
                status.failed.push(ProbeFailure {
                    id: tp.id(),
                    family: tp.family,
                    reason: format!("waits ended by their own timeout are not told apart ({why})"),
                });
                continue;
            }
            if syscall_turns && tp.group == "sock" && tp.family == Family::ConnectionUse {
                status.failed.push(ProbeFailure {
                    id: tp.id(),
                    family: tp.family,
                    reason: format!(
                        "replaced by the system-call fallback ({})",
                        socket_syscalls::ENV
                    ),
                });
                continue;
            }
            if tp.raw && use_raw && raw_ready(tp, &kernel) {
                let by_btf = btf.as_ref().map(|btf| attach_btf(&mut ebpf, tp, btf));
                if let Some(Err(e)) = &by_btf {
                    status.portable_reads.push(format!(
                        "{}: BTF program refused ({e}); raw one attached",
                        tp.id()
                    ));
                }
                let (suffix, attached) = match by_btf {
                    Some(Ok(link)) => ("_btf", Ok(link)),
                    _ => ("_raw", attach_raw(&mut ebpf, tp)),
                };
                match attached {
                    Ok(link) => {
                        status.attached.push(tp.id());
                        status.raw.push(tp.id());
                        if suffix == "_btf" {
                            status.btf.push(tp.id());
                        }
                        links.insert(
                            tp.id(),
                            Attached {
                                program: format!("{}{suffix}", tp.program),
                                link: Some(link),
                            },
                        );
                        continue;
                    }
                    Err(e) => status.portable_reads.push(format!(
                        "{}: raw program refused ({e}); classic one attached",
                        tp.id()
                    )),
                }
            }
            let program = tp.program_for(format);
            let result = match attach(&mut ebpf, tp, &program) {
                // The fast variant uses more helpers (e.g. to read the blocked system call); a
                // kernel that refuses them still gets the portable one.
                Err(first) if program == tp.program && !tp.fields.is_empty() => {
                    let compat = format!("{}_compat", tp.program);
                    attach(&mut ebpf, tp, &compat)
                        .map(|link| {
                            (
                                compat.clone(),
                                link,
                                Some(format!(
                                    "fast program refused ({first}); portable one attached"
                                )),
                            )
                        })
                        .map_err(|second| format!("{first}; {compat}: {second}"))
                }
                other => other.map(|link| {
                    (
                        program.clone(),
                        link,
                        (program != tp.program)
                            .then(|| "record layout differs from the built-in one".to_string()),
                    )
                }),
            };
            match result {
                Ok((name, link, portable)) => {
                    links.insert(
                        tp.id(),
                        Attached {
                            program: name,
                            link: Some(link),
                        },
                    );
                    status.attached.push(tp.id());
                    if let Some(why) = portable {
                        status.portable_reads.push(format!("{}: {why}", tp.id()));
                    }
                }
                Err(reason) => status.failed.push(ProbeFailure {
                    id: tp.id(),
                    family: tp.family,
                    reason,
                }),
            }
        }
        // Connection use (pools) from system calls where the socket tracepoints are missing.
        let socket_tps = ["sock/sock_send_length", "sock/sock_recv_length"];
        let have = socket_tps
            .iter()
            .all(|id| status.attached.iter().any(|a| a == id));
        if !have && !skip.contains(&Family::ConnectionUse) {
            match socket_syscalls::attach(&mut ebpf, tracefs, &kernel) {
                Ok(ids) => {
                    status.portable_reads.push(format!(
                        "connection use (pools) read from {} system calls: sock_send_length/sock_recv_length {}; every read and write pays an fd -> socket walk",
                        ids.len(),
                        if syscall_turns { "left out as asked" } else { "missing" }
                    ));
                    status.attached.extend(ids);
                }
                Err(reason) => status.failed.push(ProbeFailure {
                    id: "syscalls/socket-turns".into(),
                    family: Family::ConnectionUse,
                    reason,
                }),
            }
        }
        if status.attached.is_empty() {
            let reasons: Vec<String> = status
                .failed
                .iter()
                .map(|f| format!("{}: {}", f.id, f.reason))
                .collect();
            return Err(LoadError::NothingAttached(reasons.join("; ")));
        }
        Ok(Self {
            ebpf,
            status,
            links,
            run_time_totals: kernel.task_sum_exec_runtime != 0,
        })
    }
}

/// The address of kernel function `name` from /proc/kallsyms (zeroes when `kptr_restrict`
/// hides them).
fn kernel_symbol(name: &str) -> Result<u64, String> {
    const KALLSYMS: &str = "/proc/kallsyms";
    use std::io::BufRead as _;
    let file = std::fs::File::open(KALLSYMS).map_err(|e| format!("{KALLSYMS}: {e}"))?;
    // Core kernel text comes first: the read stops well before the modules.
    let addr = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            let mut f = l.split_ascii_whitespace();
            let (addr, _kind, sym) = (f.next()?, f.next()?, f.next()?);
            (sym == name && f.next().is_none()).then(|| u64::from_str_radix(addr, 16).ok())?
        })
        .ok_or_else(|| format!("{name} is not in {KALLSYMS}"))?;
    if addr == 0 {
        return Err(format!("{KALLSYMS} hides addresses (kernel.kptr_restrict)"));
    }
    Ok(addr)
}

/// Whether the kernel's BTF gave the offsets the raw program of `tp` reads.
fn raw_ready(tp: &Tracepoint, kernel: &KernelOffsets) -> bool {
    match tp.name {
        "kfree_skb" => kernel.has_skb_dev(),
        "inet_sock_set_state" => kernel.sock_protocol != 0,
        "hrtimer_expire_entry" => {
            kernel.hrtimer_function != 0 && kernel.hrtimer_sleeper_task != 0 && kernel.has_task()
        }
        "sock_send_length" | "sock_recv_length" => {
            kernel.sock_protocol != 0 && kernel.sock_family != 0
        }
        _ => kernel.has_task(),
    }
}

/// `EMPTY_ENV`: the empty programs at the hooks the real ones would use (raw where theirs is),
/// each link kept under its hook's id for the duty cycle.
fn attach_empty(
    ebpf: &mut Ebpf,
    layouts: &[(Tracepoint, Format)],
    use_raw: bool,
    kernel: &KernelOffsets,
    status: &mut ProbeStatus,
    links: &mut std::collections::HashMap<String, Attached>,
) -> Result<(), LoadError> {
    let nothing = |reason: String| LoadError::NothingAttached(reason);
    program::<RawTracePoint>(ebpf, "empty_raw")
        .and_then(|p| p.load().map_err(|e| refused("empty_raw", &e)))
        .map_err(nothing)?;
    program::<TracePoint>(ebpf, "empty_tp")
        .and_then(|p| p.load().map_err(|e| refused("empty_tp", &e)))
        .map_err(nothing)?;
    for (tp, _) in layouts {
        let raw = tp.raw && use_raw && raw_ready(tp, kernel);
        let attached = if raw {
            program::<RawTracePoint>(ebpf, "empty_raw").and_then(|p| {
                p.attach(tp.name)
                    .map(|l| ("empty_raw", LinkHandle::Raw(l)))
                    .map_err(|e| error_chain(&e))
            })
        } else {
            program::<TracePoint>(ebpf, "empty_tp").and_then(|p| {
                p.attach(tp.group, tp.name)
                    .map(|l| ("empty_tp", LinkHandle::Classic(l)))
                    .map_err(|e| error_chain(&e))
            })
        };
        match attached {
            Ok((program, link)) => {
                links.insert(
                    tp.id(),
                    Attached {
                        program: program.into(),
                        link: Some(link),
                    },
                );
                status.attached.push(tp.id());
                if raw {
                    status.raw.push(tp.id());
                }
            }
            Err(reason) => status.failed.push(ProbeFailure {
                id: tp.id(),
                family: tp.family,
                reason,
            }),
        }
    }
    status.portable_reads.push(format!(
        "every hook runs an empty program ({EMPTY_ENV}): nothing is measured"
    ));
    Ok(())
}

/// The program `name` of the kernel object, as its program type.
/// Writes the drop reasons the raw `kfree_skb` program counts without their device.
pub fn set_socket_level_drops(ebpf: &mut Ebpf, bits: [u64; 4]) -> Result<(), String> {
    const MAP: &str = "DROPS_WITHOUT_DEVICE";
    // An object built before the map: every drop is looked up by device.
    let Some(map) = ebpf.map_mut(MAP) else {
        return Ok(());
    };
    let mut words: aya::maps::Array<_, u64> =
        aya::maps::Array::try_from(map).map_err(|e| format!("{MAP}: {e}"))?;
    for (i, w) in bits.into_iter().enumerate() {
        words
            .set(i as u32, w, 0)
            .map_err(|e| format!("writing {MAP}: {e}"))?;
    }
    Ok(())
}

pub(crate) fn program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut P, String>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the kernel object"))?
        .try_into()
        .map_err(|e| format!("program {name}: {e}"))
}

/// A load error as the verifier (or the kernel) gave it.
pub(crate) fn refused(name: &str, e: &ProgramError) -> String {
    format!("verifier rejected {name}: {}", error_chain(e))
}

fn attach(ebpf: &mut Ebpf, tp: &Tracepoint, name: &str) -> Result<LinkHandle, String> {
    let program: &mut TracePoint = program(ebpf, name)?;
    program.load().map_err(|e| refused(name, &e))?;
    program
        .attach(tp.group, tp.name)
        .map(LinkHandle::Classic)
        .map_err(|e| format!("attach failed: {}", error_chain(&e)))
}

/// The `tp_btf` program of `tp`, loaded against the tracepoint's type in the kernel's BTF.
fn attach_btf(ebpf: &mut Ebpf, tp: &Tracepoint, btf: &Btf) -> Result<LinkHandle, String> {
    let name = format!("{}_btf", tp.program);
    let program: &mut BtfTracePoint = program(ebpf, &name)?;
    program.load(tp.name, btf).map_err(|e| refused(&name, &e))?;
    program
        .attach()
        .map(LinkHandle::Btf)
        .map_err(|e| format!("attach failed: {}", error_chain(&e)))
}

fn attach_raw(ebpf: &mut Ebpf, tp: &Tracepoint) -> Result<LinkHandle, String> {
    let name = format!("{}_raw", tp.program);
    let program: &mut RawTracePoint = program(ebpf, &name)?;
    program.load().map_err(|e| refused(&name, &e))?;
    program
        .attach(tp.name)
        .map(LinkHandle::Raw)
        .map_err(|e| format!("attach failed: {}", error_chain(&e)))
}

/// An error and its sources on one line (the verifier log sits in a source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
