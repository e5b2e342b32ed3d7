//! TCP connection setup: opens, handshake latency, failures, SYN retransmits, resets and
//! packet drops by reason.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::PerCpuHashMap,
    programs::TracePointContext,
};
use chokepoint_common::{
    ConnCounts, ConnKey, Counter, DIRECTION_ACTIVE, DIRECTION_PASSIVE, DROP_REASON_SLOTS,
    DropDevKey, Histogram, IFNAMSIZ, run, tcp_state,
};

use crate::maps::{
    BPF_NOEXIST, CONNECTIONS, DROP_REASONS, HANDSHAKES, HandshakeStart, Memory as _, SOCKETS,
    TpArgs, count, drop_without_device, fast_and_compat, field, kernel_offset, ran, raw, record,
};

const IPPROTO_TCP: u16 = 6;

fast_and_compat!(
    inet_sock_set_state,
    inet_sock_set_state_compat,
    set_state_tp,
    run::INET_SOCK_SET_STATE
);
raw!(
    inet_sock_set_state_raw,
    inet_sock_set_state_btf,
    "inet_sock_set_state",
    set_state_raw,
    run::INET_SOCK_SET_STATE
);

/// One state change as a program sees it. Reads are lazy: most changes (FIN_WAIT1,
/// CLOSE_WAIT...) are not counted, and the raw program then reads nothing from the socket.
trait StateChange {
    fn states(&self) -> (i32, i32);
    fn skaddr(&self) -> u64;
    fn protocol(&self) -> u16;
    /// Local port (host order).
    fn sport(&self) -> u16;
    /// Remote port (host order).
    fn dport(&self) -> u16;
}

struct Record<'a, const FAST: bool>(&'a TracePointContext);

impl<const FAST: bool> StateChange for Record<'_, FAST> {
    fn states(&self) -> (i32, i32) {
        (
            field!(self.0, FAST, set_state_oldstate),
            field!(self.0, FAST, set_state_newstate),
        )
    }
    fn skaddr(&self) -> u64 {
        field!(self.0, FAST, set_state_skaddr)
    }
    fn protocol(&self) -> u16 {
        field!(self.0, FAST, set_state_protocol)
    }
    fn sport(&self) -> u16 {
        field!(self.0, FAST, set_state_sport)
    }
    fn dport(&self) -> u16 {
        field!(self.0, FAST, set_state_dport)
    }
}

/// `TP_PROTO(const struct sock *sk, const int oldstate, const int newstate)`.
struct Args<'a, C>(&'a C);

/// `struct sock_common`: skc_dport @12 (network order), skc_num @14 (host order), unchanged
/// for decades (see sock_io.rs).
const SKC_DPORT: usize = 12;
const SKC_NUM: usize = 14;

impl<C: TpArgs> StateChange for Args<'_, C> {
    fn states(&self) -> (i32, i32) {
        (self.0.arg(1) as i32, self.0.arg(2) as i32)
    }
    fn skaddr(&self) -> u64 {
        self.0.arg(0)
    }
    fn protocol(&self) -> u16 {
        C::Mem::read(self.skaddr(), kernel_offset!(sock_protocol))
    }
    fn sport(&self) -> u16 {
        C::Mem::read(self.skaddr(), SKC_NUM)
    }
    fn dport(&self) -> u16 {
        u16::from_be(C::Mem::read(self.skaddr(), SKC_DPORT))
    }
}

fn set_state_tp<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    set_state(&Record::<FAST>(ctx))
}

fn set_state_raw<C: TpArgs>(ctx: &C) -> u32 {
    set_state(&Args(ctx))
}

#[inline(always)]
fn set_state(change: &impl StateChange) -> u32 {
    let (old, new) = change.states();
    let counted = matches!(
        (old, new),
        (
            _,
            tcp_state::SYN_SENT | tcp_state::SYN_RECV | tcp_state::CLOSE
        ) | (
            tcp_state::SYN_SENT | tcp_state::SYN_RECV,
            tcp_state::ESTABLISHED
        )
    );
    if !counted || change.protocol() != IPPROTO_TCP {
        return 0;
    }

    match (old, new) {
        (tcp_state::CLOSE, tcp_state::SYN_SENT) => {
            count(Counter::ActiveOpens);
            // connect() runs in the caller's context: this is the connecting process.
            let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
            let key = ConnKey {
                tgid,
                port: change.dport(),
                direction: DIRECTION_ACTIVE,
            };
            bump(&key, |c| c.opens += 1);
            start_handshake(change.skaddr(), key);
        }
        // The child socket is cloned from the listener (LISTEN -> SYN_RECV on current
        // kernels, CLOSE -> SYN_RECV on older ones).
        (tcp_state::LISTEN | tcp_state::CLOSE, tcp_state::SYN_RECV) => {
            count(Counter::PassiveOpens);
            // Runs in softirq context: the owner is found from the listening port.
            let key = ConnKey {
                tgid: 0,
                port: change.sport(),
                direction: DIRECTION_PASSIVE,
            };
            bump(&key, |c| c.opens += 1);
            start_handshake(change.skaddr(), key);
        }
        (tcp_state::SYN_SENT, tcp_state::ESTABLISHED) => {
            count(Counter::ActiveEstablished);
            finish_handshake(change.skaddr(), Histogram::ConnectLatency);
        }
        (tcp_state::SYN_RECV, tcp_state::ESTABLISHED) => {
            count(Counter::PassiveEstablished);
            finish_handshake(change.skaddr(), Histogram::HandshakeLatency);
        }
        (tcp_state::SYN_SENT | tcp_state::SYN_RECV, tcp_state::CLOSE) => {
            if old == tcp_state::SYN_SENT {
                count(Counter::ConnectFailed);
                // connect() enters SYN_SENT before it picks a local port, and leaves it for
                // CLOSE when none is free: a failure still without a port is an EADDRNOTAVAIL.
                // (Counted here rather than at `sys_exit_connect`: a system-call tracepoint
                // sends every system call on the host through the slow path.)
                if change.sport() == 0 {
                    count(Counter::ConnectAddrNotAvail);
                }
            }
            count(Counter::Closes);
            let skaddr = change.skaddr();
            // SAFETY: copied out before removal.
            if let Some(start) = unsafe { HANDSHAKES.get(skaddr) }.copied() {
                let _ = HANDSHAKES.remove(skaddr);
                bump(&start.key, |c| c.failed += 1);
            }
        }
        (_, tcp_state::CLOSE) => {
            count(Counter::Closes);
            // User space deletes the entry once it has read its last figures.
            if let Some(entry) = SOCKETS.get_ptr_mut(change.skaddr()) {
                // SAFETY: a map value; a single byte store.
                unsafe { (*entry).closed = 1 };
            }
        }
        _ => {}
    }
    0
}

/// Times the handshake: a `HANDSHAKES` entry until ESTABLISHED or CLOSE. The default tier
/// attaches this program in sampled intervals and on demand (`profiler/src/probes/demand.rs`);
/// user space empties `HANDSHAKES` when it detaches it, so no entry outlives the program.
#[inline(always)]
fn start_handshake(skaddr: u64, key: ConnKey) {
    let start = HandshakeStart {
        ts_ns: unsafe { bpf_ktime_get_ns() },
        key,
    };
    if HANDSHAKES.insert(skaddr, start, 0).is_err() {
        count(Counter::MapUpdateFailed);
    }
}

#[inline(always)]
fn finish_handshake(skaddr: u64, histogram: Histogram) {
    // SAFETY: the entry is copied out before it is removed.
    let Some(start) = (unsafe { HANDSHAKES.get(skaddr) }).copied() else {
        return;
    };
    let _ = HANDSHAKES.remove(skaddr);
    let now = unsafe { bpf_ktime_get_ns() };
    let took = now.saturating_sub(start.ts_ns);
    record(histogram, took);
    bump(&start.key, |c| {
        c.established += 1;
        c.setup_ns += took;
    });
}

#[inline(always)]
fn bump(key: &ConnKey, update: impl FnOnce(&mut ConnCounts)) {
    if let Some(counts) = CONNECTIONS.get_ptr_mut(key) {
        // SAFETY: per-CPU value.
        update(unsafe { &mut *counts });
        return;
    }
    let mut counts = ConnCounts::default();
    update(&mut counts);
    // Another program on this CPU cannot have inserted it meanwhile; NOEXIST guards the rest.
    if CONNECTIONS.insert(key, counts, BPF_NOEXIST).is_err() {
        count(Counter::MapUpdateFailed);
    }
}

fast_and_compat!(
    tcp_retransmit_skb,
    tcp_retransmit_skb_compat,
    retransmit_skb,
    run::TCP_RETRANSMIT_SKB
);

fn retransmit_skb<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    let state: i32 = field!(ctx, FAST, retransmit_skb_state);
    if state == tcp_state::SYN_SENT {
        count(Counter::SynRetransmits);
    }
    0
}

#[tracepoint]
pub fn tcp_retransmit_synack(_ctx: TracePointContext) -> u32 {
    ran(run::TCP_RETRANSMIT_SYNACK);
    count(Counter::SynAckRetransmits);
    0
}

#[tracepoint]
pub fn tcp_send_reset(_ctx: TracePointContext) -> u32 {
    ran(run::TCP_SEND_RESET);
    count(Counter::ResetsSent);
    0
}

#[tracepoint]
pub fn tcp_receive_reset(_ctx: TracePointContext) -> u32 {
    ran(run::TCP_RECEIVE_RESET);
    count(Counter::ResetsReceived);
    0
}

fast_and_compat!(kfree_skb, kfree_skb_compat, free_skb_tp, run::KFREE_SKB);
raw!(
    kfree_skb_raw,
    kfree_skb_btf,
    "kfree_skb",
    free_skb_raw,
    run::KFREE_SKB
);

/// Packets dropped per device and reason (the raw program only: the classic record has no
/// device).
#[map]
pub static DROPS_BY_DEVICE: PerCpuHashMap<DropDevKey, u64> =
    PerCpuHashMap::with_max_entries(1024, 0);

fn free_skb_tp<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    dropped(field!(ctx, FAST, kfree_skb_reason));
    0
}

/// `TP_PROTO(struct sk_buff *skb, void *location, enum skb_drop_reason reason, ...)`.
fn free_skb_raw<C: TpArgs>(ctx: &C) -> u32 {
    let skb = ctx.arg(0);
    let reason = ctx.arg(2) as u32;
    dropped(reason);
    if drop_without_device(reason) {
        return 0;
    }
    let mut key = DropDevKey {
        name: [0; IFNAMSIZ],
        reason,
    };
    let dev: u64 = C::Mem::read(skb, kernel_offset!(skb_dev));
    if dev != 0 {
        key.name = C::Mem::read(dev, kernel_offset!(netdev_name));
    }
    match DROPS_BY_DEVICE.get_ptr_mut(key) {
        // SAFETY: per-CPU value.
        Some(n) => unsafe { *n += 1 },
        None => {
            if DROPS_BY_DEVICE.insert(key, 1, BPF_NOEXIST).is_err() {
                count(Counter::MapUpdateFailed);
            }
        }
    }
    0
}

#[inline(always)]
fn dropped(reason: u32) {
    count(Counter::SkbDrops);
    let slot = if reason < DROP_REASON_SLOTS {
        reason
    } else {
        DROP_REASON_SLOTS - 1
    };
    if let Some(n) = DROP_REASONS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot.
        unsafe { *n += 1 };
    }
}
