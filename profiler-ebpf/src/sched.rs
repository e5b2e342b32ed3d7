//! Per-thread CPU: on-CPU time, voluntary and involuntary switches, run-queue latency; and the
//! process tree (forks, exits) through the ring buffer.
//!
//! `sched_switch` is the hottest program chokepoint has (hundreds of thousands of runs a
//! second under load): one per-CPU slot, at most two hash lookups and one kernel read per run.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns},
    programs::TracePointContext,
};
use chokepoint_common::{
    Counter, EVENT_EXIT, EVENT_FORK, HIST_BUCKETS, OFF_IO, OFF_REASONS, OFF_SLEEP, ProcEvent,
    THREAD_NEW, ThreadCpu, WakeCounts, WakeKey, log2_bucket, off_reason, run,
};

use crate::maps::{
    BPF_NOEXIST, Helper, Memory, RUNNING, THREAD_TEMPLATE, THREADS, TpArgs, WAKES, count,
    duty_epoch, fast_and_compat, field, kernel_offset, raw, send,
};
use crate::timer::woken_by_timer;

/// `prev_state` bits that mean "blocked"; none set means the thread was preempted while
/// runnable (`R` or `R+` in the tracepoint's own format string).
const TASK_REPORT_MASK: i64 = 0xff;
const TASK_INTERRUPTIBLE: i64 = 0x1;
const TASK_UNINTERRUPTIBLE: i64 = 0x2;

fast_and_compat!(
    sched_switch,
    sched_switch_compat,
    switch_tp,
    run::SCHED_SWITCH
);
raw!(
    sched_switch_raw,
    sched_switch_btf,
    "sched_switch",
    switch_raw,
    run::SCHED_SWITCH
);

fn switch_tp<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    let prev: i32 = field!(ctx, FAST, switch_prev_pid);
    let next: i32 = field!(ctx, FAST, switch_next_pid);
    let state: i64 = field!(ctx, FAST, switch_prev_state);
    let current = bpf_get_current_pid_tgid();
    // Only read where its run-time total can be (`exec_runtime` skips a task of 0).
    let task = if kernel_offset!(task_sum_exec_runtime) != 0 {
        // SAFETY: a helper without arguments.
        unsafe { bpf_get_current_task() }
    } else {
        0
    };
    switch::<FAST, Helper>(current, task, prev, next, state, || {
        // Once per thread, so a helper read is fine (a 16-byte direct copy from the context
        // would be a memcpy the verifier refuses).
        let off = if FAST {
            chokepoint_common::BUILT_OFFSETS.switch_prev_comm as usize
        } else {
            crate::maps::offset!(switch_prev_comm)
        };
        // SAFETY: checked by the helper.
        unsafe { ctx.read_at::<[u8; 16]>(off) }.unwrap_or([0; 16])
    })
}

/// `TP_PROTO(bool preempt, struct task_struct *prev, struct task_struct *next,
/// unsigned int prev_state)`.
fn switch_raw<C: TpArgs>(ctx: &C) -> u32 {
    let preempt = ctx.arg(0);
    let prev = ctx.arg(1);
    let next = ctx.arg(2);
    let prev_state = ctx.arg(3);
    let state = report_state(preempt & 0xff != 0, prev_state as u32);
    // `current` is still `prev`: its pid comes with no kernel read.
    let current = bpf_get_current_pid_tgid();
    switch::<true, C::Mem>(
        current,
        prev,
        current as u32 as i32,
        task_pid::<C::Mem>(next),
        state,
        || C::Mem::read(prev, kernel_offset!(task_comm)),
    )
}

/// The state the classic tracepoint reports (`__trace_sched_switch_state`), from the raw one:
/// preempted reads as runnable, `TASK_DEAD` as exited, `TASK_IDLE` as idle (not blocked).
#[inline(always)]
fn report_state(preempt: bool, raw: u32) -> i64 {
    const TASK_REPORT: u32 = 0x7f;
    const TASK_DEAD: u32 = 0x80;
    const TASK_NOLOAD: u32 = 0x400;
    if preempt {
        0x100
    } else if raw & TASK_DEAD != 0 {
        0x20
    } else if raw & TASK_NOLOAD != 0 {
        0x80
    } else {
        (raw & TASK_REPORT) as i64
    }
}

#[inline(always)]
fn task_pid<M: Memory>(task: u64) -> i32 {
    if task == 0 {
        return 0;
    }
    M::read(task, kernel_offset!(task_pid))
}

/// When a wait stamped at `since` counts from: `since`, or the last attach of the duty-cycled
/// programs (`epoch`) for a wait that began before it, whose start went unseen (counted).
#[inline(always)]
fn since_attach(since: u64, epoch: u64) -> u64 {
    if since < epoch {
        count(Counter::OffCpuClipped);
        epoch
    } else {
        since
    }
}

/// `REASONS`: read why a blocking thread blocked (the `_compat` programs do not). `M`: how
/// `task` (the task being switched out, as the program holds it) is read.
#[inline(always)]
fn switch<const REASONS: bool, M: Memory>(
    // `bpf_get_current_pid_tgid()`: the task being switched out.
    current: u64,
    task: u64,
    prev: i32,
    next: i32,
    state: i64,
    comm: impl FnOnce() -> [u8; 16],
) -> u32 {
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(running) = RUNNING.get_ptr_mut(0) else {
        return 0;
    };
    // The default tier detaches these programs between samples: anything stamped before the
    // last attach was followed by switches and wake-ups nobody saw.
    let epoch = duty_epoch();
    // SAFETY: per-CPU slot.
    let running = unsafe { &mut *running };

    if prev > 0
        && let Some(stats) = thread(prev as u32)
    {
        // SAFETY: only the CPU switching `prev` out writes these fields.
        let stats = unsafe { &mut *stats };
        // During the tracepoint `current` is still `prev`.
        stats.tgid = (current >> 32) as u32;
        if stats.comm[0] == 0 {
            stats.comm = comm();
        }
        // This CPU's last seen switch-in, if it was `prev`'s.
        let slice = if running.since_ns < epoch {
            None
        } else if running.tid == prev as u32 && running.since_ns != 0 {
            Some(now.saturating_sub(running.since_ns))
        } else {
            if running.since_ns != 0 {
                count(Counter::SwitchUnmatched);
            }
            None
        };
        // The kernel's own run-time total is exact even when a switch went unreported
        // (seen on this VM: a host agent's thread is switched in and never out); the slice
        // only covers a thread's first switch-out, whose earlier run time predates us.
        let runtime = exec_runtime::<M>(task);
        match runtime {
            Some(rt) if stats.exec_runtime_ns != 0 || stats.flags & THREAD_NEW != 0 => {
                stats.oncpu_ns += rt.saturating_sub(stats.exec_runtime_ns);
            }
            _ => stats.oncpu_ns += slice.unwrap_or(0),
        }
        if let Some(rt) = runtime {
            stats.exec_runtime_ns = rt;
        }
        // It ran, so whatever wait was open is over (one whose wake-up went unseen in a gap).
        stats.off_since_ns = 0;
        if state & TASK_REPORT_MASK == 0 {
            stats.involuntary += 1;
            // Still runnable: its wait for a CPU starts now.
            stats.runnable_since_ns = now;
        } else {
            stats.voluntary += 1;
            // Blocked: the wake-up that ends this names the reason and the waker.
            if state & (TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE) != 0 {
                let uninterruptible = state & TASK_UNINTERRUPTIBLE != 0;
                stats.off_since_ns = now;
                stats.off_state = if uninterruptible {
                    OFF_IO as u32
                } else {
                    OFF_SLEEP as u32
                };
                stats.off_reason = if REASONS {
                    blocked_reason::<M>(uninterruptible)
                } else if uninterruptible {
                    off_reason::DISK
                } else {
                    off_reason::UNKNOWN
                };
            }
        }
    }

    running.tid = if next > 0 { next as u32 } else { 0 };
    running.since_ns = now;
    if next > 0
        && let Some(stats) = THREADS.get_ptr_mut(next as u32)
    {
        // SAFETY: `next` is being switched in on this CPU only.
        let stats = unsafe { &mut *stats };
        if stats.runnable_since_ns != 0 {
            // Runnable since before the last attach and not switched in since: it waited
            // through the attach, and is counted from it.
            let waited = now.saturating_sub(since_attach(stats.runnable_since_ns, epoch));
            stats.runnable_since_ns = 0;
            stats.runq_ns += waited;
            stats.runq_count += 1;
            let b = log2_bucket(waited);
            if b < HIST_BUCKETS {
                stats.runq_hist[b] += 1;
            }
        }
    }
    0
}

/// Why the current thread is blocking: the system call it is in, from the user registers the
/// kernel saved on entry (`orig_ax` on x86_64). Only the fast programs do this; `_compat` ones
/// fall back to the blocked state alone.
#[inline(always)]
fn blocked_reason<M: Memory>(uninterruptible: bool) -> u32 {
    #[cfg(bpf_target_arch = "x86_64")]
    {
        use aya_ebpf::helpers::generated::{bpf_get_current_task_btf, bpf_task_pt_regs};
        /// `offsetof(struct pt_regs, orig_ax)` on x86_64.
        const ORIG_AX: usize = 15 * 8;
        // SAFETY: helpers on the current task; `M` reads a typed pointer (`bpf_task_pt_regs`
        // returns one) or goes through the helper.
        let nr = unsafe {
            let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as u64;
            if regs == 0 {
                -1
            } else {
                M::read::<i64>(regs, ORIG_AX)
            }
        };
        off_reason::of_x86_64_syscall(nr, uninterruptible)
    }
    #[cfg(not(bpf_target_arch = "x86_64"))]
    {
        if uninterruptible {
            off_reason::DISK
        } else {
            off_reason::UNKNOWN
        }
    }
}

/// `task`'s `se.sum_exec_runtime`, where this kernel's BTF gave its offset. `task` is the
/// current task (valid while its program runs).
#[inline(always)]
fn exec_runtime<M: Memory>(task: u64) -> Option<u64> {
    let off = kernel_offset!(task_sum_exec_runtime);
    if off == 0 || task == 0 {
        return None;
    }
    // A task switched out has run: zero is a read that failed.
    let rt: u64 = M::read(task, off);
    (rt != 0).then_some(rt)
}

/// The stats slot of a thread, created zeroed on first sight.
#[inline(always)]
fn thread(tid: u32) -> Option<*mut ThreadCpu> {
    if let Some(p) = THREADS.get_ptr_mut(tid) {
        return Some(p);
    }
    let template = THREAD_TEMPLATE.get_ptr(0)?;
    // SAFETY: the template slot is never written, so it stays zeroed. Borrowed, not copied:
    // the struct does not fit the BPF stack.
    #[expect(
        clippy::needless_borrows_for_generic_args,
        reason = "a copy would not fit the 512-byte BPF stack"
    )]
    let inserted = THREADS.insert(tid, unsafe { &*template }, BPF_NOEXIST);
    if inserted.is_err() {
        count(Counter::MapUpdateFailed);
    }
    THREADS.get_ptr_mut(tid)
}

// `sched_waking` fires in the waker's context; `sched_wakeup` may fire later on the target CPU
// (queued remote wake-ups), where `current` is whatever runs there, often idle.
fast_and_compat!(
    sched_waking,
    sched_waking_compat,
    wakeup_tp,
    run::SCHED_WAKING
);
fast_and_compat!(
    sched_wakeup_new,
    sched_wakeup_new_compat,
    wakeup_tp,
    run::SCHED_WAKEUP_NEW
);
raw!(
    sched_waking_raw,
    sched_waking_btf,
    "sched_waking",
    wakeup_raw,
    run::SCHED_WAKING
);
raw!(
    sched_wakeup_new_raw,
    sched_wakeup_new_btf,
    "sched_wakeup_new",
    wakeup_raw,
    run::SCHED_WAKEUP_NEW
);

fn wakeup_tp<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    wakeup(field!(ctx, FAST, wakeup_pid))
}

/// `TP_PROTO(struct task_struct *p)`.
fn wakeup_raw<C: TpArgs>(ctx: &C) -> u32 {
    wakeup(task_pid::<C::Mem>(ctx.arg(0)))
}

#[inline(always)]
fn wakeup(pid: i32) -> u32 {
    if pid <= 0 {
        return 0;
    }
    if let Some(stats) = thread(pid as u32) {
        // SAFETY: a racing switch-in on another CPU at worst loses this one sample.
        let stats = unsafe { &mut *stats };
        let now = unsafe { bpf_ktime_get_ns() };
        let epoch = duty_epoch();
        // Keep the first wake-up if it is woken twice before it runs; a mark from before the
        // last attach is stale (its switch-in went unseen), and this wake-up starts the wait.
        if stats.runnable_since_ns == 0 || stats.runnable_since_ns < epoch {
            stats.runnable_since_ns = now;
        }
        if stats.off_since_ns != 0 {
            // Blocked since before the last attach, and not switched out since (every
            // switch-out after the attach restamps it): off-CPU through the attach, counted
            // from it, in the reason it blocked in then.
            let off = now.saturating_sub(since_attach(stats.off_since_ns, epoch));
            stats.off_since_ns = 0;
            let state = if stats.off_state as usize == OFF_IO {
                OFF_IO
            } else {
                OFF_SLEEP
            };
            stats.offcpu_ns[state] += off;
            // Ended by its own timeout: time passing woke it, so no task did (the one the
            // timer interrupt landed on is not its waker).
            let timed_out = woken_by_timer(pid as u32, now);
            let reason = if timed_out && stats.off_reason != off_reason::SLEEP {
                off_reason::TIMEOUT
            } else {
                stats.off_reason
            } as usize;
            if reason < OFF_REASONS {
                stats.offcpu_reason_ns[reason] += off;
            }
            let current = if timed_out {
                0
            } else {
                bpf_get_current_pid_tgid()
            };
            let key = WakeKey {
                waker_tgid: (current >> 32) as u32,
                wakee_tgid: stats.tgid,
                waker_tid: current as u32,
                wakee_tid: pid as u32,
            };
            match WAKES.get_ptr_mut(key) {
                // SAFETY: per-CPU value.
                Some(w) => unsafe {
                    (*w).wakes += 1;
                    (*w).offcpu_ns += off;
                },
                None => {
                    if WAKES
                        .insert(
                            key,
                            WakeCounts {
                                wakes: 1,
                                offcpu_ns: off,
                            },
                            BPF_NOEXIST,
                        )
                        .is_err()
                    {
                        count(Counter::MapUpdateFailed);
                    }
                }
            }
        }
    }
    0
}

fast_and_compat!(
    sched_process_fork,
    sched_process_fork_compat,
    fork_tp,
    run::SCHED_PROCESS_FORK
);
raw!(
    sched_process_fork_raw,
    sched_process_fork_btf,
    "sched_process_fork",
    fork_raw,
    run::SCHED_PROCESS_FORK
);

fn fork_tp<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    fork(field!(ctx, FAST, fork_child_pid))
}

/// `TP_PROTO(struct task_struct *parent, struct task_struct *child)`.
fn fork_raw<C: TpArgs>(ctx: &C) -> u32 {
    fork(task_pid::<C::Mem>(ctx.arg(1)))
}

#[inline(always)]
fn fork(child: i32) -> u32 {
    count(Counter::ProcessForks);
    if child > 0
        && let Some(stats) = thread(child as u32)
    {
        // SAFETY: the child has not run yet; a stale slot of a reused id starts over.
        let stats = unsafe { &mut *stats };
        stats.flags |= THREAD_NEW;
        stats.exec_runtime_ns = 0;
    }
    send(&ProcEvent {
        kind: EVENT_FORK,
        pid: child as u32,
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        _pad: 0,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        comm: [0; 16],
    });
    0
}

fast_and_compat!(
    sched_process_exit,
    sched_process_exit_compat,
    exit_tp,
    run::SCHED_PROCESS_EXIT
);
raw!(
    sched_process_exit_raw,
    sched_process_exit_btf,
    "sched_process_exit",
    exit_raw,
    run::SCHED_PROCESS_EXIT
);

fn exit_tp<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    exit(field!(ctx, FAST, exit_pid))
}

/// `TP_PROTO(struct task_struct *p, ...)`.
fn exit_raw<C: TpArgs>(ctx: &C) -> u32 {
    exit(task_pid::<C::Mem>(ctx.arg(0)))
}

#[inline(always)]
fn exit(pid: i32) -> u32 {
    count(Counter::ThreadExits);
    // The exiting thread is current: its on-CPU time brought up to its kernel total here, so
    // none is lost while `sched_switch` is detached (user space reads the totals of live
    // threads from procfs then, and an exited thread's are gone).
    if pid > 0
        && let Some(stats) = THREADS.get_ptr_mut(pid as u32)
    {
        // SAFETY: only the exiting thread's own CPU writes its slot now.
        let stats = unsafe { &mut *stats };
        if (stats.exec_runtime_ns != 0 || stats.flags & THREAD_NEW != 0)
            // SAFETY: a helper without arguments.
            && let Some(rt) = exec_runtime::<Helper>(unsafe { bpf_get_current_task() })
        {
            stats.oncpu_ns += rt.saturating_sub(stats.exec_runtime_ns);
            stats.exec_runtime_ns = rt;
        }
    }
    send(&ProcEvent {
        kind: EVENT_EXIT,
        pid: pid as u32,
        tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
        _pad: 0,
        ts_ns: unsafe { bpf_ktime_get_ns() },
        comm: [0; 16],
    });
    0
}
