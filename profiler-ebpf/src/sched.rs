//! Per-thread CPU: on-CPU time, voluntary and involuntary switches, run-queue latency; and the
//! process tree (forks, exits) through the ring buffer.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use chokepoint_common::{Counter, EVENT_EXIT, EVENT_FORK, HIST_BUCKETS, ProcEvent, ThreadCpu, log2_bucket};

use crate::maps::{
    BPF_NOEXIST, RUNNABLE_SINCE, RUNNING, THREAD_TEMPLATE, THREADS, count, offset, send,
};

/// `prev_state` bits that mean "blocked"; none set means the thread was preempted while
/// runnable (`R` or `R+` in the tracepoint's own format string).
const TASK_REPORT_MASK: i64 = 0xff;

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    let _ = try_switch(&ctx);
    0
}

fn try_switch(ctx: &TracePointContext) -> Result<(), i32> {
    count(Counter::SchedSwitches);
    let now = unsafe { bpf_ktime_get_ns() };
    let prev: i32 = unsafe { ctx.read_at(offset!(switch_prev_pid))? };
    let next: i32 = unsafe { ctx.read_at(offset!(switch_next_pid))? };
    let running = RUNNING.get_ptr_mut(0).ok_or(0)?;
    // SAFETY: per-CPU slot.
    let running = unsafe { &mut *running };

    if prev > 0 {
        let prev = prev as u32;
        if let Some(stats) = thread(prev) {
            // SAFETY: only the CPU switching `prev` out writes these fields.
            let stats = unsafe { &mut *stats };
            // During the tracepoint `current` is still `prev`.
            stats.tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
            if stats.comm[0] == 0 {
                if let Ok(comm) = unsafe { ctx.read_at::<[u8; 16]>(offset!(switch_prev_comm)) } {
                    stats.comm = comm;
                }
            }
            if running.tid == prev && running.since_ns != 0 {
                stats.oncpu_ns += now.saturating_sub(running.since_ns);
            }
            let state: i64 = unsafe { ctx.read_at(offset!(switch_prev_state))? };
            if state & TASK_REPORT_MASK == 0 {
                stats.involuntary += 1;
                // Still runnable: its wait for a CPU starts now.
                let _ = RUNNABLE_SINCE.insert(prev, now, 0);
            } else {
                stats.voluntary += 1;
            }
        }
    }

    running.tid = if next > 0 { next as u32 } else { 0 };
    running.since_ns = now;
    if next > 0 {
        let next = next as u32;
        // SAFETY: copied out before removal.
        if let Some(since) = unsafe { RUNNABLE_SINCE.get(next) }.copied() {
            let _ = RUNNABLE_SINCE.remove(next);
            if let Some(stats) = thread(next) {
                let waited = now.saturating_sub(since);
                // SAFETY: `next` is being switched in on this CPU only.
                let stats = unsafe { &mut *stats };
                stats.runq_ns += waited;
                stats.runq_count += 1;
                let b = log2_bucket(waited);
                if b < HIST_BUCKETS {
                    stats.runq_hist[b] += 1;
                }
            }
        }
    }
    Ok(())
}

/// The stats slot of a thread, created zeroed on first sight.
#[inline(always)]
fn thread(tid: u32) -> Option<*mut ThreadCpu> {
    if let Some(p) = THREADS.get_ptr_mut(tid) {
        return Some(p);
    }
    let template = THREAD_TEMPLATE.get_ptr(0)?;
    // SAFETY: the template slot is never written, so it stays zeroed.
    if THREADS.insert(tid, unsafe { &*template }, BPF_NOEXIST).is_err() {
        count(Counter::MapUpdateFailed);
    }
    THREADS.get_ptr_mut(tid)
}

#[tracepoint]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    wakeup(&ctx);
    0
}

#[tracepoint]
pub fn sched_wakeup_new(ctx: TracePointContext) -> u32 {
    wakeup(&ctx);
    0
}

#[inline(always)]
fn wakeup(ctx: &TracePointContext) {
    count(Counter::SchedWakeups);
    if let Ok(pid) = unsafe { ctx.read_at::<i32>(offset!(wakeup_pid)) } {
        if pid > 0 {
            // Keep the first wake-up if it is woken twice before it runs.
            let _ = RUNNABLE_SINCE.insert(pid as u32, unsafe { bpf_ktime_get_ns() }, BPF_NOEXIST);
        }
    }
}

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    count(Counter::ProcessForks);
    if let Ok(child) = unsafe { ctx.read_at::<i32>(offset!(fork_child_pid)) } {
        send(&ProcEvent {
            kind: EVENT_FORK,
            pid: child as u32,
            tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
            _pad: 0,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            comm: [0; 16],
        });
    }
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    count(Counter::ThreadExits);
    if let Ok(pid) = unsafe { ctx.read_at::<i32>(offset!(exit_pid)) } {
        send(&ProcEvent {
            kind: EVENT_EXIT,
            pid: pid as u32,
            tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
            _pad: 0,
            ts_ns: unsafe { bpf_ktime_get_ns() },
            comm: [0; 16],
        });
    }
    0
}
