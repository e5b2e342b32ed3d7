//! The system-call fallback of the connection-use programs: where `sock:sock_send_length` /
//! `sock:sock_recv_length` are missing (or `CHOKEPOINT_SOCKET_SYSCALLS=1` asks for it), turns
//! are read from the read/write/send/recv system calls, each fd followed to its socket in the
//! kernel at offsets from BTF (profiler-ebpf/src/sock_syscalls.rs).
use std::path::Path;

use aya::{Ebpf, programs::TracePoint};
use chokepoint_common::KernelOffsets;

use super::{
    format::Format,
    loader::{error_chain, program, refused},
};

/// Set to use the fallback even where the socket tracepoints exist (to test it, or compare).
pub const ENV: &str = "CHOKEPOINT_SOCKET_SYSCALLS";

const SEND: &[&str] = &["write", "writev", "sendto", "sendmsg"];
const RECV: &[&str] = &["read", "readv", "recvfrom", "recvmsg"];

/// Where the programs read the fd (`sys_enter_*`) and the result (`sys_exit_*`).
const ARG0: u32 = 16;

pub fn forced() -> bool {
    std::env::var_os(ENV).is_some()
}

/// Loads the three programs and attaches them to every system call above; returns the
/// tracepoints attached (`syscalls/sys_enter_write`...).
pub fn attach(
    ebpf: &mut Ebpf,
    tracefs: &Path,
    kernel: &KernelOffsets,
) -> Result<Vec<String>, String> {
    if !kernel.has_fd_walk() {
        return Err("the kernel's BTF does not give the fd -> socket offsets".into());
    }
    // The syscall event class puts the first argument and the result at the same place.
    for (event, field) in [("sys_enter_read", "fd"), ("sys_exit_read", "ret")] {
        let path = tracefs.join("events/syscalls").join(event).join("format");
        let format = Format::read(&path).map_err(|e| error_chain(&e))?;
        let offset = format.fields.get(field).map(|f| f.offset);
        if offset != Some(ARG0) {
            return Err(format!(
                "syscalls/{event}: {field} at {offset:?}, the programs read it at {ARG0}"
            ));
        }
    }
    let mut attached = Vec::new();
    let plan: [(&str, &[&str], &str); 3] = [
        ("sock_syscall_enter_send", SEND, "sys_enter_"),
        ("sock_syscall_enter_recv", RECV, "sys_enter_"),
        ("sock_syscall_exit", &[], "sys_exit_"),
    ];
    for (name, calls, prefix) in plan {
        let calls: Vec<&str> = if calls.is_empty() {
            SEND.iter().chain(RECV).copied().collect()
        } else {
            calls.to_vec()
        };
        let program: &mut TracePoint = program(ebpf, name)?;
        program.load().map_err(|e| refused(name, &e))?;
        for call in calls {
            let event = format!("{prefix}{call}");
            program
                .attach("syscalls", &event)
                .map_err(|e| format!("syscalls/{event}: {}", error_chain(&e)))?;
            attached.push(format!("syscalls/{event}"));
        }
    }
    Ok(attached)
}

/// The programs' names, for their run-time statistics.
pub const PROGRAMS: &[&str] = &[
    "sock_syscall_enter_send",
    "sock_syscall_enter_recv",
    "sock_syscall_exit",
];
