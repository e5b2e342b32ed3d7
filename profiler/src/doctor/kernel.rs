//! The few system calls doctor makes to test a feature for real rather than infer it: load a
//! trivial BPF program of a given kind and attach it, open a perf event. Everything opened is
//! closed again before returning.
use std::{
    ffi::CStr,
    io, mem,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use aya::Btf;
use aya_obj::{
    btf::BtfKind,
    generated::{
        BPF_ALU64, BPF_EXIT, BPF_JMP, BPF_K, BPF_MOV, PERF_FLAG_FD_CLOEXEC, bpf_attach_type,
        bpf_attr, bpf_cmd, bpf_insn, bpf_prog_type, perf_event_attr, perf_hw_id, perf_sw_ids,
        perf_type_id,
    },
};

/// A BPF program kind that needs more than the trivial program type probe to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// `raw_tp/<name>`: BPF_PROG_TYPE_RAW_TRACEPOINT opened on a tracepoint by name.
    RawTracepoint(&'static CStr),
    /// `tp_btf/<name>`: BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP at the `btf_trace_<name>` typedef.
    BtfTracepoint(&'static str),
    /// `fentry/<func>`: BPF_PROG_TYPE_TRACING, BPF_TRACE_FENTRY at a kernel function (a trampoline).
    Fentry(&'static str),
}

/// Why a test load or attach failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no BTF to find `{0}` in")]
    NoBtf(String, #[source] aya::BtfError),
    #[error("`{0}` is not in the kernel's BTF")]
    NotInBtf(String),
    #[error("program load refused: {error}{}", log.as_deref().map(|l| format!(" (verifier: {l})")).unwrap_or_default())]
    Load {
        error: io::Error,
        log: Option<String>,
    },
    #[error("attach refused: {0}")]
    Attach(io::Error),
}

fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a valid, initialised bpf_attr for `cmd`, and its size is passed along.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut bpf_attr,
            mem::size_of::<bpf_attr>(),
        )
    };
    fd_from(ret)
}

fn fd_from(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = i32::try_from(ret).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this descriptor to us and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn insn(code: u32) -> bpf_insn {
    // SAFETY: all-zero is a valid bpf_insn (registers 0, offset 0, immediate 0).
    let mut i: bpf_insn = unsafe { mem::zeroed() };
    i.code = code as u8;
    i
}

/// `r0 = 0; exit`.
fn load(
    prog_type: bpf_prog_type,
    attach_type: Option<bpf_attach_type>,
    attach_btf_id: u32,
) -> Result<OwnedFd, ProbeError> {
    let insns = [insn(BPF_ALU64 | BPF_MOV | BPF_K), insn(BPF_JMP | BPF_EXIT)];
    let mut log = [0u8; 1024];
    // SAFETY: all-zero is a valid bpf_attr.
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    // SAFETY: writing the BPF_PROG_LOAD member of a zeroed union.
    let u = unsafe { &mut attr.__bindgen_anon_3 };
    u.prog_type = prog_type as u32;
    u.insn_cnt = insns.len() as u32;
    u.insns = insns.as_ptr() as u64;
    u.license = c"GPL".as_ptr() as u64;
    u.log_level = 1;
    u.log_size = log.len() as u32;
    u.log_buf = log.as_mut_ptr() as u64;
    if let Some(t) = attach_type {
        u.expected_attach_type = t as u32;
    }
    u.attach_btf_id = attach_btf_id;
    sys_bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr).map_err(|error| {
        let text = CStr::from_bytes_until_nul(&log)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default();
        ProbeError::Load {
            error,
            log: text
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string),
        }
    })
}

fn raw_tracepoint_open(prog: &OwnedFd, name: Option<&CStr>) -> Result<OwnedFd, ProbeError> {
    // SAFETY: all-zero is a valid bpf_attr.
    let mut attr: bpf_attr = unsafe { mem::zeroed() };
    attr.raw_tracepoint.name = name.map_or(0, |n| n.as_ptr() as u64);
    attr.raw_tracepoint.prog_fd = prog.as_raw_fd() as u32;
    sys_bpf(bpf_cmd::BPF_RAW_TRACEPOINT_OPEN, &mut attr).map_err(ProbeError::Attach)
}

fn btf_id(btf: Option<&Btf>, name: &str, kind: BtfKind) -> Result<u32, ProbeError> {
    let owned;
    let btf = match btf {
        Some(b) => b,
        None => {
            owned = Btf::from_sys_fs().map_err(|e| ProbeError::NoBtf(name.to_string(), e))?;
            &owned
        }
    };
    btf.id_by_type_name_kind(name, kind)
        .map_err(|_| ProbeError::NotInBtf(name.to_string()))
}

/// Loads a trivial program of this kind and attaches it; both are released on return. `btf`
/// is the parsed /sys/kernel/btf/vmlinux when the caller already has it.
pub fn load_and_attach(kind: Attach, btf: Option<&Btf>) -> Result<(), ProbeError> {
    match kind {
        Attach::RawTracepoint(name) => {
            let prog = load(bpf_prog_type::BPF_PROG_TYPE_RAW_TRACEPOINT, None, 0)?;
            raw_tracepoint_open(&prog, Some(name)).map(drop)
        }
        Attach::BtfTracepoint(name) => {
            let id = btf_id(btf, &format!("btf_trace_{name}"), BtfKind::Typedef)?;
            let prog = load(
                bpf_prog_type::BPF_PROG_TYPE_TRACING,
                Some(bpf_attach_type::BPF_TRACE_RAW_TP),
                id,
            )?;
            raw_tracepoint_open(&prog, None).map(drop)
        }
        Attach::Fentry(func) => {
            let id = btf_id(btf, func, BtfKind::Func)?;
            let prog = load(
                bpf_prog_type::BPF_PROG_TYPE_TRACING,
                Some(bpf_attach_type::BPF_TRACE_FENTRY),
                id,
            )?;
            raw_tracepoint_open(&prog, None).map(drop)
        }
    }
}

/// A perf event to open for the test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerfCounter {
    SoftwareCpuClock,
    HardwareCycles,
}

/// perf_event_open(attr, pid -1, cpu 0, group -1): a disabled counter for all tasks on CPU 0,
/// closed again at once.
pub fn open_perf_event(counter: PerfCounter) -> io::Result<()> {
    // SAFETY: all-zero is a valid perf_event_attr.
    let mut attr: perf_event_attr = unsafe { mem::zeroed() };
    let (type_, config) = match counter {
        PerfCounter::SoftwareCpuClock => (
            perf_type_id::PERF_TYPE_SOFTWARE as u32,
            perf_sw_ids::PERF_COUNT_SW_CPU_CLOCK as u64,
        ),
        PerfCounter::HardwareCycles => (
            perf_type_id::PERF_TYPE_HARDWARE as u32,
            perf_hw_id::PERF_COUNT_HW_CPU_CYCLES as u64,
        ),
    };
    attr.type_ = type_;
    attr.size = mem::size_of::<perf_event_attr>() as u32;
    attr.config = config;
    attr.set_disabled(1);
    // SAFETY: `attr` is a valid perf_event_attr whose `size` field is its own size.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &attr as *const perf_event_attr,
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC as libc::c_ulong,
        )
    };
    fd_from(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use aya::{programs::ProgramType, sys::is_program_supported};

    use super::*;

    /// Our hand-built loads must agree with aya's own probes of the same program types.
    #[test]
    fn loads_agree_with_aya_probes() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: needs root");
            return;
        }
        let raw = load_and_attach(Attach::RawTracepoint(c"sched_switch"), None);
        let aya_raw = is_program_supported(ProgramType::RawTracePoint);
        assert_eq!(
            raw.is_ok(),
            matches!(aya_raw, Ok(true)),
            "{raw:?} {aya_raw:?}"
        );

        // aya probes fentry at the same function, load and attach.
        let fentry = load_and_attach(Attach::Fentry("bpf_fentry_test1"), None);
        let aya_fentry = is_program_supported(ProgramType::Tracing);
        assert_eq!(
            fentry.is_ok(),
            matches!(aya_fentry, Ok(true)),
            "{fentry:?} {aya_fentry:?}"
        );
    }

    #[test]
    fn unknown_btf_target_is_named() {
        if !std::path::Path::new("/sys/kernel/btf/vmlinux").exists() {
            println!("skipped: needs /sys/kernel/btf/vmlinux");
            return;
        }
        let err = load_and_attach(Attach::BtfTracepoint("no_such_tracepoint_xyz"), None)
            .expect_err("no such typedef");
        assert!(
            err.to_string().contains("btf_trace_no_such_tracepoint_xyz"),
            "{err}"
        );
    }

    #[test]
    fn root_opens_a_software_counter() {
        if !nix::unistd::geteuid().is_root() {
            println!("skipped: needs root");
            return;
        }
        // Root may always open a software counter system-wide on an online CPU.
        open_perf_event(PerfCounter::SoftwareCpuClock).expect("cpu-clock opens as root");
    }
}
