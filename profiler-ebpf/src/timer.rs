//! Waits that their own timeout ended. `timer:hrtimer_expire_entry` fires as an hrtimer
//! expires; when its callback is `hrtimer_wakeup`, the timer belongs to a `hrtimer_sleeper`:
//! a task in `epoll_wait`, `poll`, `select`, `futex` or `nanosleep` with a timeout, about to be
//! woken by it. The program notes that task's id on this CPU; the wake-up that follows at once
//! on the same CPU (`sched_waking`, inside the callback) finds it and files the wait under
//! `off_reason::TIMEOUT`, with no waker (the task the interrupt landed on did not wake it).
//!
//! A few thousand runs a second (the scheduler tick and the timed waits), duty-cycled with the
//! scheduler programs.
use aya_ebpf::{
    helpers::bpf_ktime_get_ns, macros::map, maps::PerCpuArray, programs::TracePointContext,
};
use chokepoint_common::run;

use crate::maps::{Memory as _, TpArgs, fast_and_compat, field, kernel_offset, kernel_read, raw};

/// The kernel address of `hrtimer_wakeup` (from /proc/kallsyms), written by user space before
/// load; 0: not known, and the program returns at once.
#[unsafe(no_mangle)]
static HRTIMER_WAKEUP: u64 = 0;

/// Per CPU: `[tid, when]` of the task an expiring sleeper timer is waking now (one slot: one
/// lookup in `sched_waking`).
#[map]
static TIMER_WAKEE: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// A wake-up this long after the expiry on the same CPU is not the one it caused (the callback
/// wakes at once: microseconds; an expiry whose task was already awake leaves a stale mark).
const SAME_EXPIRY_NS: u64 = 100_000;

fast_and_compat!(
    hrtimer_expire_entry,
    hrtimer_expire_entry_compat,
    expire_tp,
    run::HRTIMER_EXPIRE_ENTRY
);
raw!(
    hrtimer_expire_entry_raw,
    hrtimer_expire_entry_btf,
    "hrtimer_expire_entry",
    expire_raw,
    run::HRTIMER_EXPIRE_ENTRY
);

fn expire_tp<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    let function: u64 = field!(ctx, FAST, expire_function);
    if function != wakeup_fn() {
        return 0;
    }
    expired(field!(ctx, FAST, expire_hrtimer))
}

/// `TP_PROTO(struct hrtimer *hrtimer, ktime_t *now)`. The callback is read from the timer; the
/// sleeper's task lies past `struct hrtimer`, outside what the BTF type allows a plain load of,
/// so the reads from it go through the helper (once per timed wake-up only).
fn expire_raw<C: TpArgs>(ctx: &C) -> u32 {
    let timer = ctx.arg(0);
    let function: u64 = C::Mem::read(timer, kernel_offset!(hrtimer_function));
    if function != wakeup_fn() {
        return 0;
    }
    expired(timer)
}

#[inline(always)]
fn wakeup_fn() -> u64 {
    // SAFETY: a plain read of a static.
    let f = unsafe { core::ptr::read_volatile(&HRTIMER_WAKEUP) };
    if f == 0 { u64::MAX } else { f }
}

#[inline(always)]
fn expired(timer: u64) -> u32 {
    let (off, pid_off) = (
        kernel_offset!(hrtimer_sleeper_task),
        kernel_offset!(task_pid),
    );
    if off == 0 || pid_off == 0 || timer == 0 {
        return 0;
    }
    let task: u64 = kernel_read(timer, off);
    if task == 0 {
        return 0;
    }
    let tid: i32 = kernel_read(task, pid_off);
    if let Some(mark) = TIMER_WAKEE.get_ptr_mut(0) {
        // SAFETY: per-CPU slot; an hrtimer callback runs with interrupts off on this CPU.
        unsafe { *mark = [tid as u64, bpf_ktime_get_ns()] };
    }
    0
}

/// Whether the wake-up of `tid` (never 0) at `now` is the one an expiring sleeper timer on
/// this CPU is making (the mark is consumed).
#[inline(always)]
pub fn woken_by_timer(tid: u32, now: u64) -> bool {
    let Some(mark) = TIMER_WAKEE.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: per-CPU slot.
    let mark = unsafe { &mut *mark };
    if mark[0] != u64::from(tid) {
        return false;
    }
    mark[0] = 0;
    now.saturating_sub(mark[1]) < SAME_EXPIRY_NS
}
