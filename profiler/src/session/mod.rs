//! The recording session behind `run`, `record` and `daemon`: [`Session::open`] attaches the
//! probes (and starts the load generator), [`Session::run`] reads every source once per
//! interval and hands each interval to its [`Sink`]s (the recording file is one), and it
//! detaches on every exit path (dropping `Probes` detaches; nothing is pinned).
mod assemble;
mod child;
mod conn_use;
mod network;
pub mod pools;
pub mod processes;
mod retired;
mod sampler;
pub mod sink;
pub mod status;

use std::{
    collections::BTreeMap,
    io,
    path::PathBuf,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aya::maps::RingBuf;
use chokepoint_common::{EVENT_EXIT, EVENT_FORK, ProcEvent};
use nix::sys::signal::Signal;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

pub use self::child::SpawnError;
pub use self::sink::{RecordingSink, Sink, StatusSink};
use self::{child::LoadCommand, processes::ProcessTable, sampler::Sampler};
use crate::{
    collect, doctor,
    probes::{
        loader::{LEFT_OUT, LoadError, Probes},
        reader::{MapReader, ReadError},
        stats::StatsGuard,
        tracepoints,
    },
    recording::{End, FORMAT_VERSION, Family, Finished, Header, Interval, Mark},
    timeline,
};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Privilege(String),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Maps(#[from] ReadError),
    #[error("ring buffer EVENTS: {0}")]
    RingBuffer(String),
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("cannot write recording {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("installing signal handlers")]
    Signal(#[source] io::Error),
}

pub struct Options {
    pub out: PathBuf,
    pub interval: Duration,
    /// The load generator to start (`run`); None for `record`.
    pub command: Option<Vec<String>>,
    /// `record --duration`.
    pub duration: Option<Duration>,
    /// Probe families left out (the per-packet programs unless `--packet-probes`).
    pub skip_families: Vec<Family>,
    /// `--exact-overhead`: the kernel's run-time statistics on for the whole recording.
    pub exact_overhead: bool,
    /// `--probes`: which programs run when.
    pub tier: crate::probes::duty::Tier,
}

pub struct Outcome {
    pub recording: PathBuf,
    /// Whether every line reached the file; when a write failed (a full disk), the whole
    /// recording in memory, to be analysed as it is.
    pub finished: Finished,
    /// The command's exit code (None for `record`, or when it died of a signal).
    pub exit_code: Option<i32>,
    /// The signal that killed the command (e.g. a forwarded Ctrl-C, or a `kill -9`).
    pub exit_signal: Option<i32>,
}

/// The wall clock, ns since the epoch.
pub fn now_unix_ns() -> u64 {
    unix_ns()
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// chokepoint's own CPU time (all threads, user + system).
fn self_cpu_ns() -> u64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| {
            let tv = |t: nix::sys::time::TimeVal| {
                t.tv_sec() as u64 * 1_000_000_000 + t.tv_usec() as u64 * 1000
            };
            tv(u.user_time()) + tv(u.system_time())
        })
        .unwrap_or(0)
}

/// Checks privileges and tracefs before anything is attached.
fn preflight() -> Result<doctor::Report, SessionError> {
    let report = doctor::inspect(true);
    let missing: Vec<String> = report
        .missing_required()
        .iter()
        .filter(|c| c.id.starts_with("privilege") || c.id == "tracefs")
        .map(|c| format!("{} ({})", c.id, c.detail))
        .collect();
    if !missing.is_empty() {
        return Err(SessionError::Privilege(format!(
            "chokepoint needs root, or CAP_BPF and CAP_PERFMON, and tracefs: missing {}; nothing was attached",
            missing.join(", ")
        )));
    }
    Ok(report)
}

/// What [`Session::open`] needs (a subset of [`Options`]: no file, no duration).
pub struct OpenOptions {
    pub interval: Duration,
    pub command: Option<Vec<String>>,
    pub skip_families: Vec<Family>,
    pub exact_overhead: bool,
    pub tier: crate::probes::duty::Tier,
}

/// How a session's run ended.
pub struct Ended {
    pub end: End,
    /// The signal that killed the command (e.g. a forwarded Ctrl-C, or a `kill -9`).
    pub exit_signal: Option<i32>,
}

/// Marks waiting for the next interval: at most this many between two intervals.
pub const MARKS_PER_INTERVAL: usize = 64;

/// Hands marks to a running session; each lands in the next interval it reads.
#[derive(Clone)]
pub struct MarkSender(tokio::sync::mpsc::Sender<Mark>);

impl MarkSender {
    /// A sender and the receiver a session (or a test) drains.
    pub fn channel() -> (Self, tokio::sync::mpsc::Receiver<Mark>) {
        let (tx, rx) = tokio::sync::mpsc::channel(MARKS_PER_INTERVAL);
        (Self(tx), rx)
    }

    /// False when too many marks are already waiting for the next interval.
    pub fn mark(&self, text: String) -> bool {
        self.0
            .try_send(Mark {
                unix_ns: unix_ns(),
                text,
            })
            .is_ok()
    }
}

/// An attached session: probes loaded, collectors started, the header written down. Fields
/// drop in order: the ring buffer and the readers before the probes, the statistics last.
pub struct Session {
    events: AsyncFd<RingBuf<aya::maps::MapData>>,
    sampler: Sampler,
    probes: Probes,
    /// The default tier's duty cycle (None with `--probes all`).
    duty: Option<crate::probes::duty::DutyCycle>,
    stats: Option<StatsGuard>,
    table: ProcessTable,
    header: Header,
    interval: Duration,
    load: Option<LoadCommand>,
    marks: tokio::sync::mpsc::Receiver<Mark>,
    mark_sender: MarkSender,
}

impl Session {
    /// Checks privileges, attaches the probes, takes the baselines and starts the command (if
    /// any). Must be called inside the tokio runtime (the ring buffer registers with it).
    pub fn open(opts: &OpenOptions) -> Result<Self, SessionError> {
        let report = preflight()?;
        let tracefs = PathBuf::from(tracepoints::TRACEFS);
        let mut limitations: Vec<String> = report
            .checks
            .iter()
            .filter(|c| !c.ok && c.id.starts_with("tracepoint."))
            .map(|c| format!("{}: {}", c.id, c.detail))
            .collect();

        // Run-time statistics on throughout only with --exact-overhead; otherwise the sampler
        // turns them on in short windows (probes::stats).
        let (stats, bpf_stats) = StatsGuard::for_recording(opts.exact_overhead, &mut limitations);

        let mut probes = Probes::load_except(&tracefs, &opts.skip_families)?;
        for f in probes.status.failed.iter().filter(|f| f.reason != LEFT_OUT) {
            limitations.push(format!("{} not attached: {}", f.id, f.reason));
        }
        let mut maps = MapReader::new(&mut probes.ebpf)?;
        // After attaching: threads already running get their run-time totals so far.
        maps.seed_threads(&collect::processes::thread_run_times());
        // Before the first read, not after it: a socket that retires is folded under its
        // service port or endpoint only once the programs know which ports listen and which
        // are ephemeral; unfolded, a second of churn overflows `RETIRED`.
        let listening = collect::listeners::listen_queues()
            .unwrap_or_default()
            .iter()
            .map(|q| q.port)
            .collect();
        maps.set_ports(&listening, collect::host::ephemeral_range());
        let events = probes
            .ebpf
            .take_map("EVENTS")
            .ok_or(ReadError::MissingMap("EVENTS"))?;
        let events =
            RingBuf::try_from(events).map_err(|e| SessionError::RingBuffer(e.to_string()))?;
        // SAFETY: the ring buffer owns its fd and moves into the AsyncFd, so the fd stays open
        // for as long as it is registered.
        let events = unsafe { AsyncFd::register(events) }
            .map_err(|e| SessionError::RingBuffer(e.to_string()))?;

        let host = match collect::host::HostCollector::new() {
            Ok(h) => Some(h),
            Err(e) => {
                limitations.push(format!("host counters unavailable: {e}"));
                None
            }
        };

        let drop_reasons: BTreeMap<u32, String> = tracepoints::drop_reason_names(&tracefs)
            .into_iter()
            .collect();
        // Without it, socket-level drops are looked up by device too: slower, not wrong.
        if let Err(e) = crate::probes::loader::set_socket_level_drops(
            &mut probes.ebpf,
            tracepoints::socket_level_drop_bits(&drop_reasons),
        ) {
            limitations.push(e);
        }
        let profiler_pid = std::process::id();
        let mut table = ProcessTable::new(profiler_pid, None);
        let started_unix_ns = unix_ns();
        let started_monotonic_ns = monotonic_ns();
        // Baselines are taken after attaching, before the command starts.
        let softirq_names = tracepoints::softirq_names(&tracefs).into_iter().collect();
        let mut sampler = Sampler::new(
            &probes.ebpf,
            maps,
            host,
            drop_reasons.clone(),
            softirq_names,
        );

        let (net, topology, net_limitations) = network::NetSampler::new();
        limitations.extend(net_limitations);
        sampler.set_network(net);

        let load = match &opts.command {
            Some(argv) => {
                let cmd = LoadCommand::spawn(argv)?;
                table.set_load_root(cmd.pid);
                Some(cmd)
            }
            None => None,
        };

        let duty = crate::probes::duty::DutyCycle::new(opts.tier, &probes);
        if duty.as_ref().is_some_and(|d| d.cycles_sched()) {
            sampler.refresh_all_threads();
        }
        let header = Header {
            format_version: FORMAT_VERSION,
            chokepoint_version: env!("CARGO_PKG_VERSION").to_string(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            kernel: nix::sys::utsname::uname()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            started_unix_ns,
            started_monotonic_ns,
            interval_seconds: opts.interval.as_secs_f64(),
            command: opts.command.clone(),
            command_pid: load.as_ref().map(|l| l.pid),
            profiler_pid,
            probes: probes.status.clone(),
            bpf_stats,
            drop_reasons: drop_reasons.iter().map(|(k, v)| (*k, v.clone())).collect(),
            limitations,
            topology,
            inventory: Some(collect::inventory::read()),
            tier: crate::probes::duty::DutyCycle::describe(opts.tier, duty.as_ref()),
        };
        let (mark_sender, marks) = MarkSender::channel();
        Ok(Self {
            events,
            sampler,
            probes,
            duty,
            stats,
            table,
            header,
            interval: opts.interval,
            load,
            marks,
            mark_sender,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The load generator's pid (`run`).
    pub fn load_pid(&self) -> Option<u32> {
        self.load.as_ref().map(|l| l.pid)
    }

    pub fn marks(&self) -> MarkSender {
        self.mark_sender.clone()
    }

    /// Reads an interval every `interval` and hands it to every sink until the command exits
    /// or `stop` resolves (to the end's reason: `signal`, `duration`...); then the last,
    /// partial interval, detaches, reads the command's output and ends every sink.
    pub async fn run(
        mut self,
        sinks: &mut [&mut dyn Sink],
        stop: impl std::future::Future<Output = &'static str>,
    ) -> Ended {
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + self.interval, self.interval);
        tokio::pin!(stop);
        let mut exit_code = None;
        let mut exit_signal = None;
        let reason;
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    let iv = self.take();
                    for s in sinks.iter_mut() { s.interval(&iv); }
                    drop(iv);
                    ticks += 1;
                    if ticks.is_multiple_of(TRIM_EVERY) {
                        release_free_heap();
                    }
                }
                guard = self.events.readable_mut() => {
                    let Ok(mut guard) = guard else { continue };
                    let ring = guard.get_inner_mut();
                    while let Some(item) = ring.next() {
                        if item.len() < std::mem::size_of::<ProcEvent>() { continue; }
                        // SAFETY: the kernel wrote a ProcEvent (repr(C), Pod) of at least this size.
                        let ev: ProcEvent = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                        match ev.kind {
                            EVENT_FORK if self.table.forked(ev.pid, ev.tgid) => self.sampler.pid_reused(ev.pid),
                            EVENT_EXIT => self.sampler.thread_exited(ev.pid),
                            _ => {}
                        }
                    }
                    guard.clear_ready();
                }
                status = async { match self.load.as_mut() { Some(l) => l.child.wait().await, None => std::future::pending().await } } => {
                    match status {
                        Ok(s) => {
                            use std::os::unix::process::ExitStatusExt;
                            exit_code = s.code();
                            exit_signal = s.signal();
                        }
                        Err(_) => exit_code = None,
                    }
                    reason = "command-exited";
                    break;
                }
                r = &mut stop => { reason = r; break; }
            }
        }

        // The last, partial interval, then detach before anything else can fail.
        for s in sinks.iter_mut() {
            s.stopping();
        }
        let last = self.take();
        for s in sinks.iter_mut() {
            s.interval(&last);
        }
        let Session {
            events,
            sampler,
            probes,
            stats,
            table,
            header,
            mut load,
            ..
        } = self;
        drop(events);
        drop(sampler);
        drop(probes);
        drop(stats);

        let (mut load_timelines, mut load_errors) = (Vec::new(), Vec::new());
        if let (Some(l), Some(argv)) = (load.as_mut(), header.command.as_ref()) {
            let output = l.finish_output().await;
            for t in timeline::from_command_with(argv, &output, &l.implied, header.started_unix_ns)
            {
                match t {
                    Ok(t) => load_timelines.push(t),
                    Err(e) => load_errors.push(e.to_string()),
                }
            }
        }
        let end = End {
            ended_unix_ns: unix_ns(),
            reason: reason.to_string(),
            exit_code,
            exit_signal,
            load: load_timelines,
            load_errors,
            pids_reused: table.reused(),
        };
        for s in sinks.iter_mut() {
            s.end(&end);
        }
        Ended { end, exit_signal }
    }

    /// One interval, with the marks made since the last one.
    fn take(&mut self) -> Interval {
        // The duty cycle attaches right before the maps are read and detaches right after:
        // what ran in the interval ending now is what its figures hold (up to the µs of an
        // attach), and a slow detach costs the next, unmeasured interval.
        let said = self.duty.as_ref().map_or(0, |d| d.errors.len());
        let detached = match self.duty.as_mut() {
            Some(duty) => {
                let detached = (duty.detached(), duty.on_demand());
                duty.before_read(&mut self.probes);
                self.sampler.set_use_window(conn_use::UseWindow {
                    detached: detached
                        .0
                        .iter()
                        .any(|id| crate::probes::duty::is_conn_use(id)),
                    since_ns: duty.epoch_ns(),
                });
                self.sampler.next_detached(duty.next_detached());
                detached
            }
            None => (Vec::new(), None),
        };
        let mut iv = self.sampler.take(&self.probes.ebpf, &mut self.table);
        (iv.detached, iv.on_demand) = detached;
        if !iv.setup_counted() {
            crate::probes::demand::setup_from_kernel(&mut iv);
        }
        if let Some(duty) = self.duty.as_mut() {
            // A sample's cost spaces the next one (a context-switch storm: one in ten).
            duty.observe(&iv.overhead.programs, iv.seconds());
            let own_netns = self.sampler.own_netns();
            duty.ask(crate::probes::demand::setup_question(
                &iv,
                own_netns.as_deref(),
            ));
            if duty.after_read(&mut self.probes) {
                self.sampler.forget_sockets();
            }
            for e in &duty.errors[said..] {
                crate::errln!("chokepoint: duty cycle: {e}");
            }
        }
        while let Ok(m) = self.marks.try_recv() {
            iv.marks.push(m);
        }
        iv
    }
}

/// `run` and `record`: one session, its recording file and the status line.
pub async fn record(opts: Options) -> Result<Outcome, SessionError> {
    let session = Session::open(&OpenOptions {
        interval: opts.interval,
        command: opts.command.clone(),
        skip_families: opts.skip_families.clone(),
        exact_overhead: opts.exact_overhead,
        tier: opts.tier,
    })?;
    let load_pid = session.load_pid();
    let mut file = match RecordingSink::create(opts.out.clone(), session.header()) {
        Ok(w) => w,
        Err(source) => {
            // Don't leave the load generator running without us.
            if let Some(pid) = load_pid {
                child::signal_group(pid, Signal::SIGTERM);
            }
            return Err(SessionError::Write {
                path: opts.out.clone(),
                source,
            });
        }
    };
    crate::cli::stderr_write(
        format!(
            "{}\n",
            status::first_line(&session.header().probes, &opts.out, opts.command.is_some())
        )
        .as_bytes(),
    );
    let mut live = StatusSink::new(opts.command.is_some());

    let mut sigint = signal(SignalKind::interrupt()).map_err(SessionError::Signal)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(SessionError::Signal)?;
    let duration = opts.duration;
    // Ctrl-C and SIGTERM go to the command when there is one (its exit ends the session),
    // else they stop the recording.
    let stop = async move {
        let deadline = tokio::time::sleep(duration.unwrap_or(Duration::from_secs(u64::MAX / 4)));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = sigint.recv() => match load_pid {
                    Some(pid) => child::signal_group(pid, Signal::SIGINT),
                    None => return "signal",
                },
                _ = sigterm.recv() => match load_pid {
                    Some(pid) => child::signal_group(pid, Signal::SIGTERM),
                    None => return "signal",
                },
                _ = &mut deadline, if load_pid.is_none() => return "duration",
            }
        }
    };
    let ended = session.run(&mut [&mut file, &mut live], stop).await;
    Ok(Outcome {
        recording: opts.out,
        finished: file.finished(),
        exit_code: ended.end.exit_code,
        exit_signal: ended.exit_signal,
    })
}

/// Free heap memory is handed back to the kernel every this many intervals.
const TRIM_EVERY: u64 = 10;

/// Hands the allocator's free memory back to the kernel. Every interval builds and drops
/// tables of megabytes under connection churn; glibc keeps freed blocks in its heaps and,
/// once its thresholds have adapted to blocks that size, rarely returns them, so resident
/// memory follows the heap's fragmented high-water mark and creeps up in steps over hours.
/// `malloc_trim` releases the free pages of every arena (a walk of the free lists: well under
/// a millisecond for heaps of tens of MiB).
fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only inspects and releases the allocator's own free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}
