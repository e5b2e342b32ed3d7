//! Softirq time per vector (NET_RX, NET_TX, TIMER...): packet processing and other deferred
//! kernel work that no process is charged for. Softirqs do not nest on a CPU, so one per-CPU
//! start time is enough.
use aya_ebpf::{
    helpers::bpf_ktime_get_ns, macros::map, maps::PerCpuArray, programs::TracePointContext,
};
use chokepoint_common::{SOFTIRQ_VECTORS, run};

use crate::maps::{TpArgs, fast_and_compat, field, raw};

#[map]
static SOFTIRQ_SINCE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Per vector: nanoseconds at `[vec]`, runs at `[SOFTIRQ_VECTORS + vec]`.
#[map]
pub static SOFTIRQS: PerCpuArray<u64> = PerCpuArray::with_max_entries(2 * SOFTIRQ_VECTORS, 0);

fast_and_compat!(
    softirq_entry,
    softirq_entry_compat,
    entry_tp,
    run::SOFTIRQ_ENTRY
);
fast_and_compat!(
    softirq_exit,
    softirq_exit_compat,
    exit_tp,
    run::SOFTIRQ_EXIT
);
raw!(
    softirq_entry_raw,
    softirq_entry_btf,
    "softirq_entry",
    entry_raw,
    run::SOFTIRQ_ENTRY
);
raw!(
    softirq_exit_raw,
    softirq_exit_btf,
    "softirq_exit",
    exit_raw,
    run::SOFTIRQ_EXIT
);

fn entry_tp<const FAST: bool>(_ctx: &TracePointContext) -> u32 {
    entry()
}

fn entry_raw<C: TpArgs>(_ctx: &C) -> u32 {
    entry()
}

fn exit_tp<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    exit(field!(ctx, FAST, softirq_vec))
}

/// `TP_PROTO(unsigned int vec_nr)`.
fn exit_raw<C: TpArgs>(ctx: &C) -> u32 {
    exit(ctx.arg(0) as u32)
}

#[inline(always)]
fn entry() -> u32 {
    if let Some(since) = SOFTIRQ_SINCE.get_ptr_mut(0) {
        // SAFETY: per-CPU slot.
        unsafe { *since = bpf_ktime_get_ns() };
    }
    0
}

#[inline(always)]
fn exit(vec: u32) -> u32 {
    let Some(since) = SOFTIRQ_SINCE.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: per-CPU slot.
    let start = unsafe { core::mem::replace(&mut *since, 0) };
    if start == 0 || vec >= SOFTIRQ_VECTORS {
        return 0;
    }
    let took = unsafe { bpf_ktime_get_ns() }.saturating_sub(start);
    if let Some(ns) = SOFTIRQS.get_ptr_mut(vec) {
        // SAFETY: per-CPU slot.
        unsafe { *ns += took };
    }
    if let Some(n) = SOFTIRQS.get_ptr_mut(SOFTIRQ_VECTORS + vec) {
        // SAFETY: per-CPU slot.
        unsafe { *n += 1 };
    }
    0
}
