//! The maps shared by all programs, the field offsets user space fills in, and small helpers
//! to bump counters and histograms.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use chokepoint_common::{
    COUNTER_SLOTS, ConnCounts, ConnKey, Counter, DROP_REASON_SLOTS, HIST_BUCKETS, HISTOGRAM_KINDS,
    Histogram, KernelOffsets, ProcEvent, RUN_SLOTS, RetiredKey, RetiredUse, Running, SockUse,
    ThreadCpu, TracepointOffsets, WakeCounts, WakeKey, log2_bucket,
};

/// Written by user space before load (read-only data): where each tracepoint field lives.
#[unsafe(no_mangle)]
static OFFSETS: TracepointOffsets = TracepointOffsets {
    set_state_skaddr: 0,
    set_state_oldstate: 0,
    set_state_newstate: 0,
    set_state_sport: 0,
    set_state_dport: 0,
    set_state_family: 0,
    set_state_protocol: 0,
    retransmit_skb_state: 0,
    kfree_skb_reason: 0,
    switch_prev_pid: 0,
    switch_prev_state: 0,
    switch_prev_comm: 0,
    switch_next_pid: 0,
    wakeup_pid: 0,
    fork_child_pid: 0,
    exit_pid: 0,
    softirq_vec: 0,
    net_xmit_len: 0,
    net_xmit_name: 0,
    net_receive_len: 0,
    net_receive_name: 0,
    net_rx_len: 0,
    net_rx_name: 0,
    send_length_sk: 0,
    send_length_family: 0,
    send_length_protocol: 0,
    send_length_ret: 0,
    send_length_flags: 0,
    recv_length_sk: 0,
    recv_length_family: 0,
    recv_length_protocol: 0,
    recv_length_ret: 0,
    recv_length_flags: 0,
    expire_hrtimer: 0,
    expire_function: 0,
};

/// Written by user space before load: kernel struct offsets from this kernel's BTF.
#[unsafe(no_mangle)]
static KERNEL_OFFSETS: KernelOffsets = KernelOffsets {
    task_sum_exec_runtime: 0,
    task_pid: 0,
    task_comm: 0,
    sock_v6_daddr: 0,
    sock_v6_rcv_saddr: 0,
    task_files: 0,
    files_fdt: 0,
    fdtable_fd: 0,
    file_private_data: 0,
    socket_file: 0,
    socket_sk: 0,
    sock_family: 0,
    sock_protocol: 0,
    skb_dev: 0,
    netdev_name: 0,
    hrtimer_function: 0,
    hrtimer_sleeper_task: 0,
};

/// One kernel struct offset (`KernelOffsets`) found at start-up.
macro_rules! kernel_offset {
    ($field:ident) => {{
        // SAFETY: a plain read of a static.
        let value = unsafe { core::ptr::read_volatile(&$crate::maps::kernel_offsets().$field) };
        value as usize
    }};
}
pub(crate) use kernel_offset;

/// Reads a `T` at `base + off` in kernel memory (zeroes when the read fails).
#[inline(always)]
pub fn kernel_read<T>(base: u64, off: usize) -> T {
    // SAFETY: the helper checks the read.
    unsafe { aya_ebpf::helpers::bpf_probe_read_kernel((base as usize + off) as *const T) }
        .unwrap_or_else(|_| unsafe { core::mem::zeroed() })
}

/// How a program body reads kernel memory at `base + off`.
pub trait Memory {
    fn read<T>(base: u64, off: usize) -> T;
}

/// Through `bpf_probe_read_kernel`: a raw tracepoint's arguments are plain numbers to the
/// verifier, so every read is a helper call.
pub struct Helper;

/// A plain load: a `tp_btf` program's arguments are typed pointers the verifier follows
/// through the kernel's BTF (the offset is a constant to it: read-only data). The load is one
/// instruction the kernel guards (a fault reads zero), not a helper call. Scalars only, each
/// inside one member: a load across two members is refused at load time, and the raw
/// program is attached instead.
pub struct Direct;

impl Memory for Helper {
    #[inline(always)]
    fn read<T>(base: u64, off: usize) -> T {
        kernel_read(base, off)
    }
}

impl Memory for Direct {
    #[inline(always)]
    fn read<T>(base: u64, off: usize) -> T {
        // SAFETY: checked by the verifier against the pointer's BTF type; a faulting load
        // yields zero (BPF_PROBE_MEM).
        unsafe { core::ptr::read_volatile((base as usize + off) as *const T) }
    }
}

/// The tracepoint's own arguments (`TP_PROTO`), as a raw or a BTF program is handed them
/// (both as an array of u64), and how the body may read kernel memory through them.
pub trait TpArgs {
    type Mem: Memory;
    fn arg(&self, n: usize) -> u64;
}

impl TpArgs for aya_ebpf::programs::RawTracePointContext {
    type Mem = Helper;
    #[inline(always)]
    fn arg(&self, n: usize) -> u64 {
        aya_ebpf::programs::RawTracePointContext::arg(self, n)
    }
}

impl TpArgs for aya_ebpf::programs::BtfTracePointContext {
    type Mem = Direct;
    #[inline(always)]
    fn arg(&self, n: usize) -> u64 {
        aya_ebpf::programs::BtfTracePointContext::arg(self, n)
    }
}

#[inline(always)]
pub fn kernel_offsets() -> &'static KernelOffsets {
    &KERNEL_OFFSETS
}

/// Reads one field of the tracepoint record. `FAST` programs load it directly at the
/// compiled-in offset (`BUILT_OFFSETS`: the verifier allows context loads at constant offsets
/// only, and they cost a fraction of a helper call); `_compat` programs read it through
/// `bpf_probe_read_kernel` at the offset user space found in this kernel's format file.
macro_rules! field {
    ($ctx:expr, $fast:expr, $field:ident) => {
        if $fast {
            use aya_ebpf::EbpfContext as _;
            // SAFETY: user space attaches FAST programs only where the format file matches.
            unsafe {
                core::ptr::read(
                    ($ctx)
                        .as_ptr()
                        .cast::<u8>()
                        .add(chokepoint_common::BUILT_OFFSETS.$field as usize)
                        .cast(),
                )
            }
        } else {
            // SAFETY: the helper checks the read; a failed read yields zeroes.
            unsafe { ($ctx).read_at($crate::maps::offset!($field)) }
                .unwrap_or_else(|_| unsafe { core::mem::zeroed() })
        }
    };
}
pub(crate) use field;

/// The offset of one tracepoint field found at start-up.
macro_rules! offset {
    ($field:ident) => {{
        #[allow(
            unused_unsafe,
            reason = "the macro is used both inside and outside unsafe blocks"
        )]
        // SAFETY: a plain read of a static.
        let value = unsafe { core::ptr::read_volatile(&$crate::maps::offsets().$field) };
        value as usize
    }};
}
pub(crate) use offset;

#[inline(always)]
pub fn offsets() -> &'static TracepointOffsets {
    &OFFSETS
}

#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

#[map]
pub static HISTOGRAMS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(HISTOGRAM_KINDS * HIST_BUCKETS as u32, 0);

#[map]
pub static DROP_REASONS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_REASON_SLOTS, 0);

#[map]
pub static CONNECTIONS: PerCpuHashMap<ConnKey, ConnCounts> =
    PerCpuHashMap::with_max_entries(16384, 0);

/// A handshake in progress: when it started and whom it belongs to. Entries leave at
/// ESTABLISHED or CLOSE; a full map is counted (MapUpdateFailed), never silent. A plain hash:
/// LRU maps cost a lock per update on this hot path.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct HandshakeStart {
    pub ts_ns: u64,
    pub key: ConnKey,
}

#[map]
pub static HANDSHAKES: HashMap<u64, HandshakeStart> = HashMap::with_max_entries(65536, 0);

#[map]
pub static THREADS: HashMap<u32, ThreadCpu> = HashMap::with_max_entries(32768, 0);

/// A zeroed `ThreadCpu` to insert from: the struct is too large for the 512-byte BPF stack.
#[map]
pub static THREAD_TEMPLATE: PerCpuArray<ThreadCpu> = PerCpuArray::with_max_entries(1, 0);

/// Waker thread -> wakee thread (with their processes): the hand-over chains that tell lock
/// contention (woken by a sibling) from idleness (woken by the network or a client). User space
/// deletes the pairs of exited threads; a full map is counted (MapUpdateFailed).
#[map]
pub static WAKES: PerCpuHashMap<WakeKey, WakeCounts> = PerCpuHashMap::with_max_entries(32768, 0);

/// TCP sockets that sent or received, by `struct sock` address. LRU: short-lived connections
/// cannot fill it; evictions are counted in user space (inserts - deletes - live).
#[map]
pub static SOCKETS: LruHashMap<u64, SockUse> = LruHashMap::with_max_entries(16384, 0);

/// Closed sockets whose memory a new socket took before user space read their last figures,
/// folded by identity with the ephemeral port zeroed (`RetiredKey`): a churning server's
/// accepted connections add up in one entry per port and client address, a client's in one
/// per endpoint. User space reads and deletes them every interval. Per CPU: two CPUs fold into
/// one entry without atomics. (A map entry per retired socket, as before, cost ~600 ns an
/// insert and overflowed beyond 8,192 reuses an interval, silently.)
#[map]
pub static RETIRED: PerCpuHashMap<RetiredKey, RetiredUse> =
    PerCpuHashMap::with_max_entries(16384, 0);

/// A zeroed `SockUse` to insert from (never written): see `THREAD_TEMPLATE`.
#[map]
pub static SOCK_TEMPLATE: PerCpuArray<SockUse> = PerCpuArray::with_max_entries(1, 0);

/// Per local port, from user space: `PORT_LISTENING`, `PORT_EPHEMERAL` or 0. Read once per
/// socket, when it is first seen, to decide which port is its ephemeral one.
#[map]
pub static PORTS: Array<u8> = Array::with_max_entries(65536, 0);

#[map]
pub static RUNNING: PerCpuArray<Running> = PerCpuArray::with_max_entries(1, 0);

/// Every program's runs, one slot each (`chokepoint_common::run`): counted all the time, so the
/// kernel's run-time statistics need only be on in short windows to price a run.
#[map]
pub static RUNS: PerCpuArray<u64> = PerCpuArray::with_max_entries(RUN_SLOTS, 0);

/// CLOCK_MONOTONIC ns at which user space last attached the duty-cycled programs (0 while
/// every program stays attached: `--probes all`). The default tier detaches them between
/// samples (`probes/duty.rs`): what a program last saw of a socket or a thread before that
/// time straddles a gap in which events went unseen (a turn's end, a wake-up, a switch-in).
#[map]
pub static DUTY_EPOCH: Array<u64> = Array::with_max_entries(1, 0);

/// The last attach of the duty-cycled programs (0: never detached).
#[inline(always)]
pub fn duty_epoch() -> u64 {
    DUTY_EPOCH.get(0).copied().unwrap_or(0)
}

/// Drop reasons (a bit each, `reason / 64` the word) whose packets the raw `kfree_skb` program
/// counts by reason only, without looking up their device: the socket-level ones (a closed
/// socket's queue purged: one per connection under churn), where no device explains the
/// drop. User space sets the bits from this kernel's reason names after loading.
#[map]
pub static DROPS_WITHOUT_DEVICE: Array<u64> = Array::with_max_entries(4, 0);

/// Whether `reason` is one of [`DROPS_WITHOUT_DEVICE`].
#[inline(always)]
pub fn drop_without_device(reason: u32) -> bool {
    DROPS_WITHOUT_DEVICE
        .get(reason / 64)
        .is_some_and(|w| (*w >> (reason % 64)) & 1 != 0)
}

#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

pub const BPF_NOEXIST: u64 = 1;

#[inline(always)]
pub fn add(counter: Counter, n: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, and the program cannot be preempted by itself on this CPU.
        unsafe { *slot += n };
    }
}

/// One run of the program of `slot`, first thing in every program body. A per-CPU array
/// lookup the verifier inlines: a few instructions, no helper call.
#[inline(always)]
pub fn ran(slot: u32) {
    if let Some(n) = RUNS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, and the program cannot be preempted by itself on this CPU.
        unsafe { *n += 1 };
    }
}

#[inline(always)]
pub fn count(counter: Counter) {
    add(counter, 1);
}

#[inline(always)]
pub fn record(histogram: Histogram, value_ns: u64) {
    let index = histogram as u32 * HIST_BUCKETS as u32 + log2_bucket(value_ns) as u32;
    if let Some(slot) = HISTOGRAMS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
pub fn send(event: &ProcEvent) {
    if EVENTS.output::<ProcEvent>(event, 0).is_err() {
        count(Counter::RingBufferFull);
    }
}

/// The two entry points that take the tracepoint's own arguments (no trace record is built):
/// `tp_btf` (`$btf`: typed pointers, plain loads) and the raw tracepoint (`$name`: helper
/// reads), the fallback where the kernel refuses the first. One body, generic over `TpArgs`.
macro_rules! raw {
    ($name:ident, $btf:ident, $tracepoint:literal, $body:ident, $slot:expr) => {
        #[aya_ebpf::macros::raw_tracepoint(tracepoint = $tracepoint)]
        pub fn $name(ctx: aya_ebpf::programs::RawTracePointContext) -> u32 {
            $crate::maps::ran($slot);
            $body(&ctx)
        }

        #[aya_ebpf::macros::btf_tracepoint(function = $tracepoint)]
        pub fn $btf(ctx: aya_ebpf::programs::BtfTracePointContext) -> u32 {
            $crate::maps::ran($slot);
            $body(&ctx)
        }
    };
}
pub(crate) use raw;

/// Two entry points per program: the fast one (constant offsets) and `_compat`; both count
/// their runs in `$slot` (one of them is attached).
macro_rules! fast_and_compat {
    ($fast:ident, $compat:ident, $body:ident, $slot:expr) => {
        #[aya_ebpf::macros::tracepoint]
        pub fn $fast(ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            $crate::maps::ran($slot);
            $body::<true>(&ctx)
        }

        #[aya_ebpf::macros::tracepoint]
        pub fn $compat(ctx: aya_ebpf::programs::TracePointContext) -> u32 {
            $crate::maps::ran($slot);
            $body::<false>(&ctx)
        }
    };
}
pub(crate) use fast_and_compat;
