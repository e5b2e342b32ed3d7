//! TCP request/response turns per socket, from `sock:sock_send_length` and
//! `sock:sock_recv_length`: which connections are busy and for how long. One LRU lookup per
//! event; the 4-tuple is read from the socket once, when it is first seen.
//!
//! Two CPUs can update one socket at once (two threads sending on it, or a send racing a
//! receive); the fields are then updated without atomics and one event's figures may be lost.
//! That is rare for request/response connections and only blurs a turn, so it is accepted.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    programs::TracePointContext,
};
use chokepoint_common::{
    Counter, KEEP_BOTH, KEEP_LOCAL, KEEP_REMOTE, PORT_EPHEMERAL, PORT_LISTENING, SOCK_DIR_RECV,
    SOCK_DIR_SEND, SockUse, run,
};

use crate::maps::{
    BPF_NOEXIST, Memory as _, PORTS, RETIRED, SOCK_TEMPLATE, SOCKETS, TpArgs, count,
    fast_and_compat, field, kernel_offset, kernel_read, raw,
};

pub(crate) const IPPROTO_TCP: u16 = 6;
pub(crate) const AF_INET: u16 = 2;
pub(crate) const AF_INET6: u16 = 10;
/// `MSG_PEEK`: the data stays queued, so it is not a receive.
const MSG_PEEK: i32 = 2;

/// `struct sock_common` begins with these, unchanged for decades: skc_daddr @0,
/// skc_rcv_saddr @4, skc_hash @8, skc_dport @12 (network order), skc_num @14 (host order).
#[repr(C)]
#[derive(Clone, Copy)]
struct SockCommonHead {
    daddr: u32,
    rcv_saddr: u32,
    _hash: u32,
    dport_be: u16,
    num: u16,
}

fast_and_compat!(
    sock_send_length,
    sock_send_length_compat,
    send,
    run::SOCK_SEND_LENGTH
);
fast_and_compat!(
    sock_recv_length,
    sock_recv_length_compat,
    recv,
    run::SOCK_RECV_LENGTH
);
raw!(
    sock_send_length_raw,
    sock_send_length_btf,
    "sock_send_length",
    send_raw,
    run::SOCK_SEND_LENGTH
);
raw!(
    sock_recv_length_raw,
    sock_recv_length_btf,
    "sock_recv_length",
    recv_raw,
    run::SOCK_RECV_LENGTH
);

fn send<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    let protocol: u16 = field!(ctx, FAST, send_length_protocol);
    let family: u16 = field!(ctx, FAST, send_length_family);
    let ret: i32 = field!(ctx, FAST, send_length_ret);
    let flags: i32 = field!(ctx, FAST, send_length_flags);
    if !wanted(protocol, family, ret, flags) {
        return 0;
    }
    let sk: u64 = field!(ctx, FAST, send_length_sk);
    turn(sk, family, SOCK_DIR_SEND, ret as u64);
    0
}

fn recv<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    let protocol: u16 = field!(ctx, FAST, recv_length_protocol);
    let family: u16 = field!(ctx, FAST, recv_length_family);
    let ret: i32 = field!(ctx, FAST, recv_length_ret);
    let flags: i32 = field!(ctx, FAST, recv_length_flags);
    if !wanted(protocol, family, ret, flags) {
        return 0;
    }
    let sk: u64 = field!(ctx, FAST, recv_length_sk);
    turn(sk, family, SOCK_DIR_RECV, ret as u64);
    0
}

fn send_raw<C: TpArgs>(ctx: &C) -> u32 {
    length_raw(ctx, SOCK_DIR_SEND)
}

fn recv_raw<C: TpArgs>(ctx: &C) -> u32 {
    length_raw(ctx, SOCK_DIR_RECV)
}

/// `TP_PROTO(struct sock *sk, int ret, int flags)`: the free arguments are checked first, so a
/// failed or peeking call reads nothing from the socket, and a unix-socket message one field.
#[inline(always)]
fn length_raw<C: TpArgs>(ctx: &C, dir: u8) -> u32 {
    let sk = ctx.arg(0);
    let ret = ctx.arg(1);
    let flags = ctx.arg(2);
    let (ret, flags) = (ret as i32, flags as i32);
    if ret <= 0 || flags & MSG_PEEK != 0 {
        return 0;
    }
    let family: u16 = C::Mem::read(sk, kernel_offset!(sock_family));
    if family != AF_INET && family != AF_INET6 {
        return 0;
    }
    let protocol: u16 = C::Mem::read(sk, kernel_offset!(sock_protocol));
    if protocol != IPPROTO_TCP {
        return 0;
    }
    turn(sk, family, dir, ret as u64);
    0
}

#[inline(always)]
fn wanted(protocol: u16, family: u16, ret: i32, flags: i32) -> bool {
    protocol == IPPROTO_TCP
        && (family == AF_INET || family == AF_INET6)
        && ret > 0
        && flags & MSG_PEEK == 0
}

#[inline(always)]
pub(crate) fn turn(sk: u64, family: u16, dir: u8, bytes: u64) {
    let now = unsafe { bpf_ktime_get_ns() };
    if let Some(entry) = SOCKETS.get_ptr_mut(sk) {
        // SAFETY: a map value; see the module comment on concurrent updates.
        let e = unsafe { &mut *entry };
        // A turn that began before the last attach (`DUTY_EPOCH`) straddles a gap in which its
        // end may have gone unseen: it is dropped, never completed across the gap.
        let epoch = crate::maps::duty_epoch();
        if e.turn_start_ns < epoch {
            // Last seen before a gap: what it was doing then is unknown now.
            e.last_dir = 0;
        }
        if e.closed != 0 {
            // A closed socket's memory reused by a new socket before user space read its last
            // figures: those are folded into RETIRED under the old identity, and the entry
            // starts afresh for the new socket (the next generation).
            retire(e);
            let generation = e.generation + 1;
            // SAFETY: zeroes the map value in place (a zeroed `SockUse` is its default); no
            // copy on the 512-byte stack.
            unsafe { core::ptr::write_bytes(e as *mut SockUse, 0, 1) };
            e.generation = generation;
            identify(e, sk, family);
        }
        step(e, dir, bytes, now);
        return;
    }
    // Inserted zeroed from the template, then filled in place: a `SockUse` built on the
    // stack does not fit beside the rest of the program's frame.
    let Some(template) = SOCK_TEMPLATE.get_ptr(0) else {
        return;
    };
    count(Counter::SockUseInserts);
    // SAFETY: the template slot is never written, so it stays zeroed.
    #[expect(
        clippy::needless_borrows_for_generic_args,
        reason = "a copy would not fit the 512-byte BPF stack"
    )]
    let inserted = SOCKETS.insert(sk, unsafe { &*template }, BPF_NOEXIST);
    if inserted.is_err() {
        count(Counter::MapUpdateFailed);
    }
    if let Some(entry) = SOCKETS.get_ptr_mut(sk) {
        // SAFETY: a map value (another CPU may have inserted it first: then it continues).
        let e = unsafe { &mut *entry };
        if e.tgid == 0 && e.send_calls == 0 && e.recv_calls == 0 {
            identify(e, sk, family);
        }
        step(e, dir, bytes, now);
    }
}

/// Folds a closed socket's figures into `RETIRED` under its identity (ephemeral port zeroed).
/// Not inlined: its key and figures would crowd the 512-byte stack of the program's frame.
#[inline(never)]
fn retire(e: &SockUse) {
    let key = e.retired_key();
    let figures = e.retired_use();
    if let Some(v) = RETIRED.get_ptr_mut(&key) {
        // SAFETY: a per-CPU value.
        unsafe { (*v).add(&figures) };
        return;
    }
    if RETIRED.insert(&key, &figures, BPF_NOEXIST).is_err() {
        count(Counter::MapUpdateFailed);
    }
}

#[inline(always)]
fn port_kind(port: u16) -> u8 {
    PORTS.get(u32::from(port)).copied().unwrap_or(0)
}

/// Owner (the current process: send and receive run in its context) and 4-tuple.
#[inline(always)]
fn identify(e: &mut SockUse, sk: u64, family: u16) {
    e.tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    e.family = family;
    // SAFETY: the helper checks the read; a failed read leaves the tuple zero.
    let head =
        unsafe { bpf_probe_read_kernel(sk as *const SockCommonHead) }.unwrap_or(SockCommonHead {
            daddr: 0,
            rcv_saddr: 0,
            _hash: 0,
            dport_be: 0,
            num: 0,
        });
    if family == AF_INET {
        e.saddr = head.rcv_saddr;
        e.daddr = head.daddr;
        e.saddr6 = [0; 16];
        e.daddr6 = [0; 16];
    } else {
        e.saddr = 0;
        e.daddr = 0;
        // Once per connection: two helper reads at the offsets the kernel's BTF gave.
        let (d, s) = (
            kernel_offset!(sock_v6_daddr),
            kernel_offset!(sock_v6_rcv_saddr),
        );
        if d != 0 && s != 0 {
            e.daddr6 = kernel_read(sk, d);
            e.saddr6 = kernel_read(sk, s);
        }
    }
    e.sport = head.num;
    e.dport_be = head.dport_be;
    let local = port_kind(head.num);
    e.keep = if local == PORT_LISTENING {
        KEEP_LOCAL
    } else if local == PORT_EPHEMERAL || port_kind(u16::from_be(head.dport_be)) == PORT_LISTENING {
        KEEP_REMOTE
    } else {
        KEEP_BOTH
    };
}

#[inline(always)]
fn step(e: &mut SockUse, dir: u8, bytes: u64, now: u64) {
    if dir == SOCK_DIR_SEND {
        e.send_bytes += bytes;
        e.send_calls += 1;
        if e.last_dir == SOCK_DIR_RECV {
            // The first send after receiving: an inbound request was answered.
            e.recv_to_send_ns += now.saturating_sub(e.turn_start_ns);
            e.recv_turns += 1;
        }
    } else {
        e.recv_bytes += bytes;
        e.recv_calls += 1;
        if e.last_dir == SOCK_DIR_SEND {
            // The first receive after sending: an outbound request got its response.
            e.send_to_recv_ns += now.saturating_sub(e.turn_start_ns);
            e.send_turns += 1;
        }
    }
    if e.last_dir != dir {
        e.turn_start_ns = now;
        e.last_dir = dir;
    }
}
