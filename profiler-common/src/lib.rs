//! Types shared by chokepoint's kernel programs (`chokepoint-ebpf`) and its user-space side.
//!
//! Everything here is `#[repr(C)]`, `Copy`, and has no implicit padding: the kernel writes these
//! bytes and user space reads them back through BPF maps. `aya::Pod` is implemented behind the
//! `user` feature, which only the user-space crate enables.
#![no_std]

/// Number of log2 buckets in every latency histogram: bucket `i` counts values in `[2^i, 2^(i+1))`
/// nanoseconds (bucket 0 also holds 0). 2^36 ns is about 69 s, far beyond any latency we bucket.
pub const HIST_BUCKETS: usize = 36;

/// Slots in the drop-reason table; `enum skb_drop_reason` values beyond it land in the last slot.
pub const DROP_REASON_SLOTS: u32 = 256;

/// TCP states as the kernel numbers them (`include/net/tcp_states.h`).
pub mod tcp_state {
    pub const ESTABLISHED: i32 = 1;
    pub const SYN_SENT: i32 = 2;
    pub const SYN_RECV: i32 = 3;
    pub const CLOSE: i32 = 7;
    pub const LISTEN: i32 = 10;
}

/// Indices into the kernel's global per-CPU counter array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// CLOSE -> SYN_SENT: `connect()` started (the kernel's ActiveOpens).
    ActiveOpens = 0,
    /// LISTEN (or CLOSE, on older kernels) -> SYN_RECV of a child socket: a handshake
    /// completed on a listener (the kernel's PassiveOpens).
    PassiveOpens,
    /// SYN_SENT -> ESTABLISHED.
    ActiveEstablished,
    /// SYN_RECV -> ESTABLISHED.
    PassiveEstablished,
    /// SYN_SENT -> CLOSE: a connect that failed (refused, timed out, reset).
    ConnectFailed,
    /// Any state -> CLOSE.
    Closes,
    /// `tcp_retransmit_skb` while in SYN_SENT.
    SynRetransmits,
    /// `tcp_retransmit_synack`.
    SynAckRetransmits,
    ResetsSent,
    ResetsReceived,
    /// `skb:kfree_skb` events (per reason in the drop table).
    SkbDrops,
    ProcessForks,
    ThreadExits,
    /// A map update failed (map full): the event's contribution is lost, never silently.
    MapUpdateFailed,
    /// A ring buffer reservation failed: the event was dropped.
    RingBufferFull,
    /// A socket entered `SOCKETS` fresh (first send or receive seen; a closed entry reused by a
    /// new socket is not counted): with the map's size, how fast it turns over.
    SockUseInserts,
    /// A thread switched out on a CPU where its switch-in was not seen: its on-CPU slice is
    /// unknown and lost (should stay 0; a non-zero count means missed `sched_switch` runs).
    SwitchUnmatched,
    /// `connect()` failed with EADDRNOTAVAIL: no free local (ephemeral) port for the
    /// destination. Seen as SYN_SENT -> CLOSE with no local port (`connect()` enters SYN_SENT
    /// before it picks one), so also counted as a failed connect.
    ConnectAddrNotAvail,
    /// An off-CPU period (or a wait for a CPU) that began before the duty-cycled scheduler
    /// programs were last attached ended after: counted from the attach, its start unseen.
    OffCpuClipped,
}

pub const COUNTER_SLOTS: u32 = 32;

/// Slots of the per-CPU `RUNS` array: every program adds one to its own slot at the top of
/// each run, so user space has every program's exact runs all the time without the kernel's
/// run-time statistics (which cost two clock reads per run and are only on in short windows).
/// A tracepoint's variants (fast, `_compat`, `_raw`) share one slot: only one is attached.
pub mod run {
    pub const INET_SOCK_SET_STATE: u32 = 0;
    pub const TCP_RETRANSMIT_SKB: u32 = 1;
    pub const TCP_RETRANSMIT_SYNACK: u32 = 2;
    pub const TCP_SEND_RESET: u32 = 3;
    pub const TCP_RECEIVE_RESET: u32 = 4;
    pub const KFREE_SKB: u32 = 5;
    /// Retired (2026-12-07): EADDRNOTAVAIL is counted by `inet_sock_set_state`, since a
    /// system-call tracepoint slows every system call on the host. Kept so slots keep numbers.
    pub const SYS_EXIT_CONNECT: u32 = 6;
    pub const SCHED_SWITCH: u32 = 7;
    pub const SCHED_WAKING: u32 = 8;
    pub const SCHED_WAKEUP_NEW: u32 = 9;
    pub const SCHED_PROCESS_FORK: u32 = 10;
    pub const SCHED_PROCESS_EXIT: u32 = 11;
    pub const SOFTIRQ_ENTRY: u32 = 12;
    pub const SOFTIRQ_EXIT: u32 = 13;
    pub const NET_DEV_XMIT: u32 = 14;
    pub const NETIF_RECEIVE_SKB: u32 = 15;
    pub const NETIF_RX: u32 = 16;
    pub const SOCK_SEND_LENGTH: u32 = 17;
    pub const SOCK_RECV_LENGTH: u32 = 18;
    pub const SOCK_SYSCALL_ENTER_SEND: u32 = 19;
    pub const SOCK_SYSCALL_ENTER_RECV: u32 = 20;
    pub const SOCK_SYSCALL_EXIT: u32 = 21;
    pub const EMPTY_RAW: u32 = 22;
    pub const EMPTY_TP: u32 = 23;
    pub const HRTIMER_EXPIRE_ENTRY: u32 = 24;

    /// The program of each slot, by the name user space reports it under (the tracepoint's
    /// program without `_compat` / `_raw`).
    pub const NAMES: [&str; 25] = [
        "inet_sock_set_state",
        "tcp_retransmit_skb",
        "tcp_retransmit_synack",
        "tcp_send_reset",
        "tcp_receive_reset",
        "kfree_skb",
        "sys_exit_connect",
        "sched_switch",
        "sched_waking",
        "sched_wakeup_new",
        "sched_process_fork",
        "sched_process_exit",
        "softirq_entry",
        "softirq_exit",
        "net_dev_xmit",
        "netif_receive_skb",
        "netif_rx",
        "sock_send_length",
        "sock_recv_length",
        "sock_syscall_enter_send",
        "sock_syscall_enter_recv",
        "sock_syscall_exit",
        "empty_raw",
        "empty_tp",
        "hrtimer_expire_entry",
    ];
}

/// Entries of `RUNS` (room to add programs without changing the map's size).
pub const RUN_SLOTS: u32 = 32;

/// Indices into the histogram array (each `HIST_BUCKETS` wide).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Histogram {
    /// SYN_SENT -> ESTABLISHED per socket.
    ConnectLatency = 0,
    /// SYN_RECV -> ESTABLISHED of an accepted child socket.
    HandshakeLatency,
}

pub const HISTOGRAM_KINDS: u32 = 2;

/// Softirq vectors (HI, TIMER, NET_TX, NET_RX, BLOCK, IRQ_POLL, TASKLET, SCHED, HRTIMER, RCU):
/// the softirq table holds their time in ns, then their counts.
pub const SOFTIRQ_VECTORS: u32 = 10;

/// Byte offsets of the tracepoint fields the programs read. User space reads them from
/// `/sys/kernel/tracing/events/<group>/<name>/format` at start-up and writes them into the
/// program's read-only data, so a kernel with a different record layout still works (or is
/// refused by name) instead of being read at the wrong place.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TracepointOffsets {
    pub set_state_skaddr: u32,
    pub set_state_oldstate: u32,
    pub set_state_newstate: u32,
    pub set_state_sport: u32,
    pub set_state_dport: u32,
    pub set_state_family: u32,
    pub set_state_protocol: u32,
    pub retransmit_skb_state: u32,
    pub kfree_skb_reason: u32,
    pub switch_prev_pid: u32,
    pub switch_prev_state: u32,
    pub switch_prev_comm: u32,
    pub switch_next_pid: u32,
    pub wakeup_pid: u32,
    pub fork_child_pid: u32,
    pub exit_pid: u32,
    pub softirq_vec: u32,
    pub net_xmit_len: u32,
    pub net_xmit_name: u32,
    pub net_receive_len: u32,
    pub net_receive_name: u32,
    pub net_rx_len: u32,
    pub net_rx_name: u32,
    pub send_length_sk: u32,
    pub send_length_family: u32,
    pub send_length_protocol: u32,
    pub send_length_ret: u32,
    pub send_length_flags: u32,
    pub recv_length_sk: u32,
    pub recv_length_family: u32,
    pub recv_length_protocol: u32,
    pub recv_length_ret: u32,
    pub recv_length_flags: u32,
    pub expire_hrtimer: u32,
    pub expire_function: u32,
}

/// The record layouts the kernel programs are compiled against (Linux 6.x, checked on 6.18).
/// The fast program variants read fields at these constant offsets with direct loads (the
/// verifier only allows constant offsets there); user space attaches them only where this
/// kernel's format files agree, and otherwise the `_compat` variants, which read each field at
/// the offset found at start-up through `bpf_probe_read_kernel`.
pub const BUILT_OFFSETS: TracepointOffsets = TracepointOffsets {
    set_state_skaddr: 8,
    set_state_oldstate: 16,
    set_state_newstate: 20,
    set_state_sport: 24,
    set_state_dport: 26,
    set_state_family: 28,
    set_state_protocol: 30,
    retransmit_skb_state: 24,
    kfree_skb_reason: 36,
    switch_prev_pid: 24,
    switch_prev_state: 32,
    switch_prev_comm: 8,
    switch_next_pid: 56,
    wakeup_pid: 24,
    fork_child_pid: 20,
    exit_pid: 24,
    softirq_vec: 8,
    net_xmit_len: 16,
    net_xmit_name: 24,
    net_receive_len: 16,
    net_receive_name: 20,
    net_rx_len: 16,
    net_rx_name: 20,
    send_length_sk: 8,
    send_length_family: 16,
    send_length_protocol: 18,
    send_length_ret: 20,
    send_length_flags: 24,
    recv_length_sk: 8,
    recv_length_family: 16,
    recv_length_protocol: 18,
    recv_length_ret: 20,
    recv_length_flags: 24,
    expire_hrtimer: 8,
    expire_function: 24,
};

/// Connection-setup counts for one (process, port, direction).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnKey {
    /// The connecting process for active opens; 0 for passive opens (they complete in softirq
    /// context, so the owner is found in user space from the listening port).
    pub tgid: u32,
    /// Remote port for active opens, local (listening) port for passive opens.
    pub port: u16,
    /// 0 = active (outbound), 1 = passive (inbound).
    pub direction: u16,
}

pub const DIRECTION_ACTIVE: u16 = 0;
pub const DIRECTION_PASSIVE: u16 = 1;

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnCounts {
    pub opens: u64,
    pub established: u64,
    pub failed: u64,
    /// Sum of the established ones' set-up times (SYN_SENT or SYN_RECV -> ESTABLISHED), ns.
    pub setup_ns: u64,
}

/// What the scheduler probes keep per thread. Only the CPU that switches the thread out writes
/// `oncpu_ns` and the switch counts; the run-queue figures are written when it is switched in.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadCpu {
    /// Thread-group id (process id); 0 until the thread was first seen switching out.
    pub tgid: u32,
    /// `THREAD_*` bits.
    pub flags: u32,
    /// On-CPU time since the probes were attached (or since the thread was born).
    pub oncpu_ns: u64,
    /// Switched out while blocking (sleep, I/O, lock...).
    pub voluntary: u64,
    /// Switched out while still runnable (preempted).
    pub involuntary: u64,
    /// Time spent runnable but waiting for a CPU, and how many waits that was.
    pub runq_ns: u64,
    pub runq_count: u64,
    pub runq_hist: [u64; HIST_BUCKETS],
    pub comm: [u8; 16],
    /// When the thread last became runnable (woken or preempted); 0 while it runs or sleeps.
    /// Kept here rather than in a map of its own: one hash lookup per switch instead of three.
    pub runnable_since_ns: u64,
    /// Off-CPU time that ended with a wake-up, by the state it blocked in: `[OFF_SLEEP]`
    /// (interruptible: locks, sockets, timers, events) and `[OFF_IO]` (uninterruptible: disk,
    /// some kernel locks).
    pub offcpu_ns: [u64; 2],
    /// When the thread blocked, in which state, and why; 0 while it runs or is runnable.
    pub off_since_ns: u64,
    pub off_state: u32,
    pub off_reason: u32,
    /// The same off-CPU time by reason (`off_reason::*`): the system call the thread blocked
    /// in, read from its saved user registers at switch-out.
    pub offcpu_reason_ns: [u64; OFF_REASONS],
    /// The kernel's own run-time total of the thread (`se.sum_exec_runtime`) at its last
    /// switch-out; 0 until read. On-CPU time is the growth of this figure, so a switch the
    /// tracepoint never reported cannot lose a slice.
    pub exec_runtime_ns: u64,
}

/// The thread was born while the probes were attached: all of its run time is in the window.
pub const THREAD_NEW: u32 = 1;

/// Byte offsets of kernel struct members, from the running kernel's BTF; 0 = unknown (no BTF,
/// or the member is missing), and the programs then fall back to what the tracepoints give.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `offsetof(struct task_struct, se.sum_exec_runtime)`.
    pub task_sum_exec_runtime: u32,
    /// `task_struct.pid` and `task_struct.comm`: what the raw scheduler programs read from the
    /// task pointers they are handed.
    pub task_pid: u32,
    pub task_comm: u32,
    /// `sock_common.skc_v6_daddr` and `skc_v6_rcv_saddr` (0 on kernels without IPv6).
    pub sock_v6_daddr: u32,
    pub sock_v6_rcv_saddr: u32,
    /// The walk from a file descriptor to its socket, for the system-call fallback of the
    /// connection-use programs: `task_struct.files`, `files_struct.fdt`, `fdtable.fd`,
    /// `file.private_data`, `socket.file`, `socket.sk`, `sock_common.skc_family`,
    /// `sock.sk_protocol`.
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub file_private_data: u32,
    pub socket_file: u32,
    pub socket_sk: u32,
    pub sock_family: u32,
    pub sock_protocol: u32,
    /// `sk_buff.dev` and `net_device.name`: the device of a dropped packet.
    pub skb_dev: u32,
    pub netdev_name: u32,
    /// `hrtimer.function` and `hrtimer_sleeper.task`: whether an expiring timer is a
    /// sleeper's, and the task it wakes (a wait that ended by its own timeout).
    pub hrtimer_function: u32,
    pub hrtimer_sleeper_task: u32,
}

impl KernelOffsets {
    /// Whether the raw scheduler programs can run (they read pid and comm of task pointers).
    pub fn has_task(&self) -> bool {
        self.task_pid != 0 && self.task_comm != 0
    }

    /// Whether a dropped packet's device can be named.
    pub fn has_skb_dev(&self) -> bool {
        self.skb_dev != 0 && self.netdev_name != 0
    }

    /// Whether a file descriptor can be followed to its socket (`skc_family` is at offset 16,
    /// never 0; the rest are never at 0 either).
    pub fn has_fd_walk(&self) -> bool {
        [
            self.task_files,
            self.files_fdt,
            self.fdtable_fd,
            self.file_private_data,
            self.socket_file,
            self.socket_sk,
            self.sock_family,
            self.sock_protocol,
        ]
        .iter()
        .all(|&o| o != 0)
    }
}

pub const OFF_SLEEP: usize = 0;
pub const OFF_IO: usize = 1;

/// Why a thread was off-CPU, from the system call it blocked in.
pub mod off_reason {
    /// futex, futex_waitv: mutexes, condition variables, semaphores.
    pub const LOCK: u32 = 0;
    /// epoll_wait/pwait/pwait2, poll, ppoll, select, pselect6: waiting for events.
    pub const EVENTS: u32 = 1;
    /// read, readv, pread64, recvfrom, recvmsg, recvmmsg: waiting for data.
    pub const READ: u32 = 2;
    /// write, writev, pwrite64, sendto, sendmsg, sendmmsg, sendfile: waiting to send.
    pub const WRITE: u32 = 3;
    /// accept, accept4: waiting for a connection.
    pub const ACCEPT: u32 = 4;
    /// nanosleep, clock_nanosleep: sleeping on purpose.
    pub const SLEEP: u32 = 5;
    /// fsync, fdatasync, sync_file_range, io_getevents, io_uring_enter, or blocked
    /// uninterruptibly outside a known call: storage.
    pub const DISK: u32 = 6;
    /// connect, wait4, waitid and every other call.
    pub const OTHER: u32 = 7;
    /// Not in a system call (page fault, kernel thread) or not readable on this architecture.
    pub const UNKNOWN: u32 = 8;
    /// Any wait above but `SLEEP` that its own timeout ended (the timer of an `epoll_wait`,
    /// `poll`, `futex` or `select` with a timeout expired and woke it): time passing, not
    /// another party, ended it. Told from the others at the wake-up, by the expiring timer.
    pub const TIMEOUT: u32 = 9;
    pub const NAMES: [&str; super::OFF_REASONS] = [
        "lock", "events", "read", "write", "accept", "sleep", "disk", "other", "unknown", "timeout",
    ];

    /// x86_64 system call numbers to reasons.
    pub fn of_x86_64_syscall(nr: i64, uninterruptible: bool) -> u32 {
        match nr {
            202 | 449 => LOCK,
            232 | 281 | 441 | 7 | 271 | 23 | 270 => EVENTS,
            0 | 19 | 17 | 295 | 45 | 47 | 299 => READ,
            1 | 20 | 18 | 296 | 44 | 46 | 307 | 40 => WRITE,
            43 | 288 => ACCEPT,
            35 | 230 => SLEEP,
            74 | 75 | 277 | 208 | 426 => DISK,
            _ if uninterruptible => DISK,
            n if n < 0 => UNKNOWN,
            _ => OTHER,
        }
    }
}

pub const OFF_REASONS: usize = 10;

/// Who woke whom: the waking task and the woken one, each as process (thread group) and thread.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WakeKey {
    /// The task running when the wake-up happened: the waker, or (for wake-ups from interrupt
    /// context, e.g. a packet arriving) whichever task the interrupt landed on; 0 = idle.
    pub waker_tgid: u32,
    pub wakee_tgid: u32,
    pub waker_tid: u32,
    pub wakee_tid: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WakeCounts {
    pub wakes: u64,
    /// The off-CPU time these wake-ups ended.
    pub offcpu_ns: u64,
}

impl Default for ThreadCpu {
    fn default() -> Self {
        Self {
            tgid: 0,
            flags: 0,
            oncpu_ns: 0,
            voluntary: 0,
            involuntary: 0,
            runq_ns: 0,
            runq_count: 0,
            runq_hist: [0; HIST_BUCKETS],
            comm: [0; 16],
            runnable_since_ns: 0,
            offcpu_ns: [0; 2],
            off_since_ns: 0,
            off_state: 0,
            off_reason: 0,
            offcpu_reason_ns: [0; OFF_REASONS],
            exec_runtime_ns: 0,
        }
    }
}

/// The thread currently on a CPU and since when (one slot per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Running {
    pub tid: u32,
    pub _pad: u32,
    pub since_ns: u64,
}

/// Rare events sent through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcEvent {
    pub kind: u32,
    /// Fork: the new task's id. Exit: the exiting thread's id.
    pub pid: u32,
    /// Fork: the process (thread group) that forked. Exit: the thread's process.
    pub tgid: u32,
    pub _pad: u32,
    pub ts_ns: u64,
    pub comm: [u8; 16],
}

pub const EVENT_FORK: u32 = 1;
pub const EVENT_EXIT: u32 = 2;

/// Closed sockets whose memory a new socket reused before user space read their last
/// figures are folded into `RETIRED` under this key: the socket's identity with its ephemeral
/// port zeroed ([`SockUse::keep`]), so the connections a server accepts on one port, or a
/// client opens to one endpoint, add up in one entry instead of one each.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RetiredKey {
    pub tgid: u32,
    pub family: u16,
    /// Local port (host order), 0 when ephemeral.
    pub sport: u16,
    /// Remote port (network order, as `skc_dport`), 0 when ephemeral.
    pub dport_be: u16,
    pub _pad: u16,
    pub saddr: u32,
    pub daddr: u32,
    pub saddr6: [u8; 16],
    pub daddr6: [u8; 16],
}

/// What [`SockUse::keep`] says of a socket's ports, decided when it is first seen from
/// `PORTS` (filled by user space: [`PORT_LISTENING`], [`PORT_EPHEMERAL`]).
pub const KEEP_BOTH: u8 = 0;
/// Its local port listens: an accepted connection; the client's port is zeroed.
pub const KEEP_LOCAL: u8 = 1;
/// Its local port is ephemeral (or its remote one a local listener): a client connection;
/// its own port is zeroed.
pub const KEEP_REMOTE: u8 = 2;
/// `PORTS` values.
pub const PORT_LISTENING: u8 = 1;
pub const PORT_EPHEMERAL: u8 = 2;

/// The summed figures of the closed sockets folded into one `RETIRED` entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetiredUse {
    pub connections: u64,
    pub send_to_recv_ns: u64,
    pub recv_to_send_ns: u64,
    pub send_turns: u64,
    pub recv_turns: u64,
}

impl SockUse {
    /// The `RETIRED` key this socket folds into when it retires.
    pub fn retired_key(&self) -> RetiredKey {
        RetiredKey {
            tgid: self.tgid,
            family: self.family,
            sport: if self.keep == KEEP_REMOTE {
                0
            } else {
                self.sport
            },
            dport_be: if self.keep == KEEP_LOCAL {
                0
            } else {
                self.dport_be
            },
            _pad: 0,
            saddr: self.saddr,
            daddr: self.daddr,
            saddr6: self.saddr6,
            daddr6: self.daddr6,
        }
    }

    /// Its figures as one retired connection.
    pub fn retired_use(&self) -> RetiredUse {
        RetiredUse {
            connections: 1,
            send_to_recv_ns: self.send_to_recv_ns,
            recv_to_send_ns: self.recv_to_send_ns,
            send_turns: self.send_turns,
            recv_turns: self.recv_turns,
        }
    }
}

impl RetiredUse {
    pub fn add(&mut self, o: &RetiredUse) {
        self.connections += o.connections;
        self.send_to_recv_ns += o.send_to_recv_ns;
        self.recv_to_send_ns += o.recv_to_send_ns;
        self.send_turns += o.send_turns;
        self.recv_turns += o.recv_turns;
    }
}

/// One TCP socket's use, keyed by its `struct sock` address in `SOCKETS`: who sends and
/// receives on it, its 4-tuple, and its request/response turns. Both orientations are
/// accumulated; user space decides which applies (inbound if the local port listens).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockUse {
    /// The process that first sent or received on it (send/recv run in process context).
    pub tgid: u32,
    /// `AF_INET` (2) or `AF_INET6` (10).
    pub family: u16,
    /// `SOCK_DIR_*` of the last send or receive (0 before the first).
    pub last_dir: u8,
    /// Set by `inet_sock_set_state` at -> CLOSE: user space deletes it after reading.
    pub closed: u8,
    /// IPv4 addresses as the kernel stores them (network byte order); 0 for IPv6 (see
    /// `saddr6`, `daddr6`).
    pub saddr: u32,
    pub daddr: u32,
    /// Local port (host order) and remote port (network order, as `skc_dport`).
    pub sport: u16,
    pub dport_be: u16,
    /// Connections this entry has held: a closed socket's memory reused by a new socket
    /// continues the entry (counters stay cumulative, the 4-tuple and owner are the new one's)
    /// so short-lived connections between two reads are still counted.
    pub generation: u32,
    /// When the current direction's run started (first send after a receive, or the
    /// reverse); CLOCK_MONOTONIC ns.
    pub turn_start_ns: u64,
    /// Time from the first send of a turn to the first receive after it (an outbound
    /// connection's busy time), and from the first receive to the first send (an inbound
    /// one's). Completed turns only; user space adds the turn in flight.
    pub send_to_recv_ns: u64,
    pub recv_to_send_ns: u64,
    /// Completed turns each way.
    pub send_turns: u64,
    pub recv_turns: u64,
    pub send_bytes: u64,
    pub recv_bytes: u64,
    pub send_calls: u64,
    pub recv_calls: u64,
    /// IPv6 addresses (`skc_v6_rcv_saddr`, `skc_v6_daddr`) of an `AF_INET6` socket, where the
    /// kernel's BTF gave their offsets; zero otherwise (the socket is then known by its ports).
    pub saddr6: [u8; 16],
    pub daddr6: [u8; 16],
    /// `KEEP_*`: which of its ports identify it when it retires ([`SockUse::retired_key`]).
    pub keep: u8,
    pub _pad: [u8; 7],
}

pub const SOCK_DIR_SEND: u8 = 1;
pub const SOCK_DIR_RECV: u8 = 2;

/// log2 bucket of a value in nanoseconds.
#[inline(always)]
pub fn log2_bucket(v: u64) -> usize {
    if v == 0 {
        return 0;
    }
    let b = 63 - v.leading_zeros() as usize;
    if b >= HIST_BUCKETS {
        HIST_BUCKETS - 1
    } else {
        b
    }
}

/// `NetDevKey::direction`: packets handed to a device's driver (`net:net_dev_xmit`) and packets
/// a device received into the stack (`net:netif_receive_skb`).
pub const NET_XMIT: u32 = 0;
pub const NET_RECEIVE: u32 = 1;
/// Packets queued to a CPU's backlog by `netif_rx` (loopback, veth and other software devices
/// hand packets over this way; `netif_receive_skb` sees them again when the backlog runs).
pub const NET_BACKLOG: u32 = 2;
/// Device names are at most IFNAMSIZ (16) bytes with the NUL.
pub const IFNAMSIZ: usize = 16;

/// Per device name and direction (all namespaces together: the record carries only the name).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NetDevKey {
    /// NUL-padded.
    pub name: [u8; IFNAMSIZ],
    pub direction: u32,
}

/// Packets dropped per device name and `enum skb_drop_reason` (name empty: no device, e.g. a
/// drop in the socket layer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DropDevKey {
    pub name: [u8; IFNAMSIZ],
    pub reason: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetDevCounts {
    pub packets: u64,
    pub bytes: u64,
}

#[cfg(feature = "user")]
mod user {
    use super::*;
    // SAFETY: all of these are repr(C), Copy, and have no implicit padding.
    unsafe impl aya::Pod for TracepointOffsets {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for ConnKey {}
    unsafe impl aya::Pod for ConnCounts {}
    unsafe impl aya::Pod for ThreadCpu {}
    unsafe impl aya::Pod for Running {}
    unsafe impl aya::Pod for ProcEvent {}
    unsafe impl aya::Pod for WakeKey {}
    unsafe impl aya::Pod for WakeCounts {}
    unsafe impl aya::Pod for NetDevKey {}
    unsafe impl aya::Pod for NetDevCounts {}
    unsafe impl aya::Pod for DropDevKey {}
    unsafe impl aya::Pod for SockUse {}
    unsafe impl aya::Pod for RetiredKey {}
    unsafe impl aya::Pod for RetiredUse {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log2_and_clamped() {
        assert_eq!(log2_bucket(0), 0);
        assert_eq!(log2_bucket(1), 0);
        assert_eq!(log2_bucket(2), 1);
        assert_eq!(log2_bucket(3), 1);
        assert_eq!(log2_bucket(1024), 10);
        assert_eq!(log2_bucket(u64::MAX), HIST_BUCKETS - 1);
    }

    #[test]
    fn syscalls_map_to_reasons() {
        use off_reason::*;
        assert_eq!(of_x86_64_syscall(202, false), LOCK);
        assert_eq!(of_x86_64_syscall(232, false), EVENTS);
        assert_eq!(of_x86_64_syscall(288, false), ACCEPT);
        assert_eq!(of_x86_64_syscall(0, true), READ);
        assert_eq!(of_x86_64_syscall(999, true), DISK);
        assert_eq!(of_x86_64_syscall(999, false), OTHER);
        assert_eq!(of_x86_64_syscall(-1, false), UNKNOWN);
        assert_eq!(NAMES.len(), OFF_REASONS);
    }

    #[test]
    fn run_slots_name_their_programs_in_order() {
        assert!(run::NAMES.len() as u32 <= RUN_SLOTS);
        assert_eq!(
            run::NAMES[run::INET_SOCK_SET_STATE as usize],
            "inet_sock_set_state"
        );
        assert_eq!(run::NAMES[run::SCHED_SWITCH as usize], "sched_switch");
        assert_eq!(
            run::NAMES[run::SOCK_RECV_LENGTH as usize],
            "sock_recv_length"
        );
        assert_eq!(
            run::NAMES[run::SOCK_SYSCALL_EXIT as usize],
            "sock_syscall_exit"
        );
        assert_eq!(run::NAMES[run::EMPTY_TP as usize], "empty_tp");
        assert_eq!(
            run::NAMES[run::HRTIMER_EXPIRE_ENTRY as usize],
            "hrtimer_expire_entry"
        );
        assert_eq!(run::HRTIMER_EXPIRE_ENTRY as usize, run::NAMES.len() - 1);
        assert!(run::NAMES.len() <= RUN_SLOTS as usize);
    }

    #[test]
    fn shared_types_have_no_padding() {
        use core::mem::size_of;
        assert_eq!(size_of::<ConnKey>(), 8);
        assert_eq!(size_of::<ConnCounts>(), 32);
        assert_eq!(
            size_of::<ThreadCpu>(),
            8 + 5 * 8 + HIST_BUCKETS * 8 + 16 + 8 + 16 + 8 + 8 + OFF_REASONS * 8 + 8
        );
        assert_eq!(size_of::<WakeKey>(), 16);
        assert_eq!(size_of::<WakeCounts>(), 16);
        assert_eq!(size_of::<ProcEvent>(), 16 + 8 + 16);
        assert_eq!(size_of::<TracepointOffsets>(), 35 * 4);
        assert_eq!(size_of::<KernelOffsets>(), 17 * 4);
        assert_eq!(size_of::<DropDevKey>(), 20);
        assert_eq!(size_of::<NetDevKey>(), 20);
        assert_eq!(size_of::<NetDevCounts>(), 16);
        assert_eq!(size_of::<SockUse>(), 24 + 9 * 8 + 2 * 16 + 1 + 7);
        assert_eq!(size_of::<RetiredKey>(), 4 + 2 + 2 + 2 + 2 + 4 + 4 + 2 * 16);
        assert_eq!(size_of::<RetiredUse>(), 5 * 8);
    }
}
