//! The fallback for kernels without `sock:sock_send_length` / `sock:sock_recv_length`: the
//! same request/response turns from the read/write/send/recv system calls, each file
//! descriptor followed to its socket (task -> files -> fdtable -> file -> socket -> sock) at
//! offsets from the kernel's BTF. Costlier (every read and write of every file pays the walk),
//! so it attaches only where the socket tracepoints are missing, or when asked.
//!
//! Left out compared with the socket tracepoints: `MSG_PEEK` receives count as receives.
use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task},
    macros::{map, tracepoint},
    maps::HashMap,
    programs::TracePointContext,
};
use chokepoint_common::{SOCK_DIR_RECV, SOCK_DIR_SEND, run};

use crate::{
    maps::{kernel_offset, kernel_read, ran},
    sock_io::{AF_INET, AF_INET6, IPPROTO_TCP, turn},
};

/// `sys_enter_*`: the first argument (the fd) after `__syscall_nr` and its padding;
/// `sys_exit_*`: `ret` at the same place. Fixed by the syscall trace event class.
const ARG0: usize = 16;

/// Thread -> (fd << 8 | direction) between a system call's entry and its exit.
#[map]
static PENDING: HashMap<u32, u64> = HashMap::with_max_entries(16384, 0);

#[tracepoint]
pub fn sock_syscall_enter_send(ctx: TracePointContext) -> u32 {
    ran(run::SOCK_SYSCALL_ENTER_SEND);
    enter(&ctx, SOCK_DIR_SEND)
}

#[tracepoint]
pub fn sock_syscall_enter_recv(ctx: TracePointContext) -> u32 {
    ran(run::SOCK_SYSCALL_ENTER_RECV);
    enter(&ctx, SOCK_DIR_RECV)
}

#[inline(always)]
fn enter(ctx: &TracePointContext, dir: u8) -> u32 {
    // SAFETY: a context load at a constant offset the verifier checks.
    let fd: u64 = unsafe { core::ptr::read(ctx.as_ptr().cast::<u8>().add(ARG0).cast()) };
    let tid = bpf_get_current_pid_tgid() as u32;
    // A full map only loses this call's turn.
    let _ = PENDING.insert(tid, (fd << 8) | dir as u64, 0);
    0
}

#[tracepoint]
pub fn sock_syscall_exit(ctx: TracePointContext) -> u32 {
    ran(run::SOCK_SYSCALL_EXIT);
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: a map value read once.
    let Some(pending) = (unsafe { PENDING.get(tid) }).copied() else {
        return 0;
    };
    let _ = PENDING.remove(tid);
    // SAFETY: as in `enter`.
    let ret: i64 = unsafe { core::ptr::read(ctx.as_ptr().cast::<u8>().add(ARG0).cast()) };
    if ret <= 0 {
        return 0;
    }
    let Some(sk) = socket_of(pending >> 8) else {
        return 0;
    };
    let family: u16 = kernel_read(sk, kernel_offset!(sock_family));
    let protocol: u16 = kernel_read(sk, kernel_offset!(sock_protocol));
    if protocol == IPPROTO_TCP && (family == AF_INET || family == AF_INET6) {
        turn(sk, family, (pending & 0xff) as u8, ret as u64);
    }
    0
}

/// The `struct sock` behind one of the current task's file descriptors, if it is a socket.
#[inline(always)]
fn socket_of(fd: u64) -> Option<u64> {
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = kernel_read(task, kernel_offset!(task_files));
    let fdt: u64 = nonzero(kernel_read(files, kernel_offset!(files_fdt)))?;
    let fds: u64 = nonzero(kernel_read(fdt, kernel_offset!(fdtable_fd)))?;
    let file: u64 = nonzero(kernel_read(fds, (fd as usize) * 8))?;
    let socket: u64 = nonzero(kernel_read(file, kernel_offset!(file_private_data)))?;
    // A socket's file points back at it; any other kind of file's private data does not.
    let back: u64 = kernel_read(socket, kernel_offset!(socket_file));
    if back != file {
        return None;
    }
    nonzero(kernel_read(socket, kernel_offset!(socket_sk)))
}

#[inline(always)]
fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}
