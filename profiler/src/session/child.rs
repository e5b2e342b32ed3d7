//! The load generator `run` starts, its output passed through to ours and kept for the
//! timeline readers. Ctrl-C reaches it once, through us: it leads its own process group.
//!
//! When our stdout is a terminal the command gets one of its own, a pseudo-terminal of the same
//! size, so that it keeps its progress bars and colours: it leads a session with the pty as its
//! controlling terminal, what it writes there is copied to our stdout and kept as the plain
//! lines a terminal ends up showing ([`screen`]), and what is typed on our terminal is copied to
//! it (the pty does not echo it: ours already did). Otherwise (CI, pipes) its stdout and stderr
//! are pipes.
//!
//! A command that can write a timeline when its environment asks (k6, through K6_OUT) and was
//! not told to by its user is asked to, into a directory of ours removed after the run
//! ([`timeline::implied_output`]).
mod screen;

use std::{
    io::{self, IsTerminal},
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use nix::{
    fcntl::{FcntlArg, FdFlag, OFlag, fcntl},
    poll::{PollFd, PollFlags, PollTimeout, poll},
    pty::Winsize,
    sys::termios::{
        LocalFlags, OutputFlags, SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr,
    },
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, unix::AsyncFd},
    process::{Child, Command},
    task::JoinHandle,
};

use self::screen::Screen;
use crate::timeline::{self, ImpliedFile};

/// Output kept for the timeline readers; more than this is passed through but not kept.
const KEEP_BYTES: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("command `{0}` not found (not on PATH and not a file)")]
    NotFound(String),
    #[error("cannot start `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct LoadCommand {
    pub child: Child,
    pub pid: u32,
    pub output: Arc<Mutex<Vec<u8>>>,
    /// Files the command was asked to write through its environment, read after the run.
    pub implied: Vec<ImpliedFile>,
    copies: Vec<JoinHandle<()>>,
    /// Follows our terminal's size (pty only).
    resize: Option<JoinHandle<()>>,
    /// Tells the thread copying our stdin to the pty to stop.
    stop_input: Arc<AtomicBool>,
    /// Where the implied files are; removed on drop.
    _scratch: Option<tempfile::TempDir>,
}

/// A pseudo-terminal for the command.
struct Pty {
    master: OwnedFd,
    slave: OwnedFd,
    /// The slave's end-of-file character (Ctrl-D), sent when our stdin ends.
    eof: u8,
}

impl LoadCommand {
    pub fn spawn(argv: &[String]) -> Result<Self, SpawnError> {
        let program = argv
            .first()
            .ok_or_else(|| SpawnError::NotFound(String::new()))?;
        let mut cmd = Command::new(program);
        cmd.args(&argv[1..]).kill_on_drop(false);

        let (mut implied, mut scratch) = (Vec::new(), None);
        if let Some(o) = timeline::implied_output(argv, |v| std::env::var_os(v).is_some()) {
            match scratch_dir() {
                Ok(dir) => {
                    let (value, file) = o.at(dir.path());
                    cmd.env(o.var, value);
                    implied.push(file);
                    scratch = Some(dir);
                }
                Err(e) => log::warn!("{} not set (no directory for its file): {e}", o.var),
            }
        }

        let pty = if io::stdout().is_terminal() {
            match open_pty() {
                Ok(p) => Some(p),
                Err(e) => {
                    log::warn!("no terminal for the command (its output goes through pipes): {e}");
                    None
                }
            }
        } else {
            None
        };
        let stdin_on_pty = pty.is_some() && io::stdin().is_terminal();
        let stderr_on_pty = pty.is_some() && io::stderr().is_terminal();
        match &pty {
            Some(p) => {
                let slave = || p.slave.try_clone().map(Stdio::from);
                let spawn_err = |source| SpawnError::Spawn {
                    command: program.clone(),
                    source,
                };
                cmd.stdout(slave().map_err(spawn_err)?);
                cmd.stderr(if stderr_on_pty {
                    slave().map_err(spawn_err)?
                } else {
                    Stdio::piped()
                });
                cmd.stdin(if stdin_on_pty {
                    slave().map_err(spawn_err)?
                } else {
                    Stdio::inherit()
                });
                // SAFETY: runs in the forked child before exec, calling only async-signal-safe
                // functions (setsid, ioctl).
                unsafe { cmd.pre_exec(lead_session_on_stdout) };
            }
            None => {
                cmd.stdin(Stdio::inherit())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .process_group(0);
            }
        }
        let mut child = cmd.spawn().map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                SpawnError::NotFound(program.clone())
            } else {
                SpawnError::Spawn {
                    command: program.clone(),
                    source,
                }
            }
        })?;
        // Our copies of the pty's slave close here: the master reads the end once the
        // command's do.
        drop(cmd);
        let pid = child.id().unwrap_or(0);
        let output = Arc::new(Mutex::new(Vec::new()));
        let stop_input = Arc::new(AtomicBool::new(false));
        let mut copies = Vec::new();
        let mut resize = None;
        if let Some(Pty { master, slave, eof }) = pty {
            drop(slave);
            if stdin_on_pty {
                match master.try_clone() {
                    Ok(m) => {
                        let stop = stop_input.clone();
                        let started = std::thread::Builder::new()
                            .name("command stdin".into())
                            .spawn(move || copy_input(m, eof, &stop));
                        if let Err(e) = started {
                            log::warn!("what is typed does not reach the command: {e}");
                        }
                    }
                    Err(e) => log::warn!("what is typed does not reach the command: {e}"),
                }
            }
            if let Ok(m) = master.try_clone() {
                resize = Some(tokio::spawn(follow_window_size(m)));
            }
            // SAFETY: the master moves into the AsyncFd, so its fd stays open and the same for
            // as long as it is registered.
            match unsafe { AsyncFd::register_with_interest(master, Interest::READABLE) } {
                Ok(master) => copies.push(tokio::spawn(tee_terminal(master, output.clone()))),
                Err(e) => log::warn!("the command's terminal output is not shown: {e}"),
            }
        }
        if let Some(out) = child.stdout.take() {
            // Under `--json -` stdout carries the JSON only: the command's output goes to
            // stderr with the summary.
            copies.push(if crate::cli::human_on_stderr() {
                tokio::spawn(tee(out, tokio::io::stderr(), output.clone()))
            } else {
                tokio::spawn(tee(out, tokio::io::stdout(), output.clone()))
            });
        }
        if let Some(err) = child.stderr.take() {
            copies.push(tokio::spawn(tee(err, tokio::io::stderr(), output.clone())));
        }
        Ok(Self {
            child,
            pid,
            output,
            implied,
            copies,
            resize,
            stop_input,
            _scratch: scratch,
        })
    }

    /// Waits for the output copies to drain, returning what was kept.
    pub async fn finish_output(&mut self) -> Vec<u8> {
        self.stop_input.store(true, Ordering::Relaxed);
        if let Some(r) = self.resize.take() {
            r.abort();
        }
        for c in self.copies.drain(..) {
            let _ = c.await;
        }
        self.output.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

impl Drop for LoadCommand {
    fn drop(&mut self) {
        self.stop_input.store(true, Ordering::Relaxed);
        if let Some(r) = self.resize.take() {
            r.abort();
        }
    }
}

/// A private directory for the implied files: TMPDIR, else /var/tmp (k6's JSON output takes a
/// few KB a request, too much for a /tmp in memory), else the system's temp dir.
fn scratch_dir() -> io::Result<tempfile::TempDir> {
    let builder = || {
        let mut b = tempfile::Builder::new();
        b.prefix("chokepoint-run-");
        b
    };
    match std::env::var_os("TMPDIR") {
        Some(dir) => builder().tempdir_in(dir),
        None => builder()
            .tempdir_in("/var/tmp")
            .or_else(|_| builder().tempdir()),
    }
}

/// Our terminal's size, if `fd` is one.
fn window_size(fd: BorrowedFd<'_>) -> Option<Winsize> {
    let mut ws = Winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct it is given.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some(ws)
}

/// A pty the size of our terminal, its master non-blocking, neither end inherited by the
/// command's own children. It does not echo what is typed (our terminal already did), nor
/// process what the command writes (`\n` to `\r\n`): our terminal does that when we pass it
/// on, so the command's bytes reach it as if the command wrote there itself.
fn open_pty() -> io::Result<Pty> {
    let size = window_size(io::stdout().as_fd());
    let p = nix::pty::openpty(size.as_ref(), None)?;
    let mut t = tcgetattr(&p.slave)?;
    t.local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ECHONL | LocalFlags::ECHOE | LocalFlags::ECHOK);
    t.output_flags.remove(OutputFlags::OPOST);
    tcsetattr(&p.slave, SetArg::TCSANOW, &t)?;
    let eof = t.control_chars[SpecialCharacterIndices::VEOF as usize];
    for fd in [&p.master, &p.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    let flags = OFlag::from_bits_truncate(fcntl(&p.master, FcntlArg::F_GETFL)?);
    fcntl(&p.master, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(Pty {
        master: p.master,
        slave: p.slave,
        eof,
    })
}

/// In the command before exec: a new session (its id, and the process group's, is the
/// command's pid, so `signal_group` still reaches it) with the pty on stdout as its
/// controlling terminal.
fn lead_session_on_stdout() -> io::Result<()> {
    // SAFETY: setsid and ioctl(TIOCSCTTY) take no pointers.
    unsafe {
        if libc::setsid() < 0 || libc::ioctl(libc::STDOUT_FILENO, libc::TIOCSCTTY, 0) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Keeps the pty the size of our terminal.
async fn follow_window_size(master: OwnedFd) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut changes) = signal(SignalKind::window_change()) else {
        return;
    };
    while changes.recv().await.is_some() {
        if let Some(ws) = window_size(io::stdout().as_fd()) {
            // SAFETY: TIOCSWINSZ reads one winsize.
            unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
    }
}

/// Whether we are in the foreground of our terminal: reading it from the background would
/// stop all of chokepoint (SIGTTIN).
fn foreground(tty: BorrowedFd<'_>) -> bool {
    nix::unistd::tcgetpgrp(tty).is_ok_and(|g| g == nix::unistd::getpgrp())
}

/// Copies what is typed on our terminal (stdin) to the pty, and its end (Ctrl-D on a line of
/// its own) as the pty's end-of-file character, until `stop`. Runs on a thread of its own: a
/// read of a terminal cannot be cancelled, and a blocked one must not hold up the runtime.
fn copy_input(master: OwnedFd, eof: u8, stop: &AtomicBool) {
    let stdin = io::stdin();
    let tty = stdin.as_fd();
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(tty, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(200u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        let ready = fds[0].revents().unwrap_or(PollFlags::empty());
        if !ready.contains(PollFlags::POLLIN) {
            // Hung up, or not readable any more.
            return;
        }
        if !foreground(tty) {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let n = match nix::unistd::read(tty, &mut buf) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(_) => return,
        };
        let sent = if n == 0 {
            write_all(master.as_fd(), &[eof], stop)
        } else {
            write_all(master.as_fd(), &buf[..n], stop)
        };
        if !sent {
            return;
        }
    }
}

/// Writes all of `bytes` to the non-blocking master; false once it cannot be written (the
/// command is gone) or `stop` is set.
fn write_all(master: BorrowedFd<'_>, mut bytes: &[u8], stop: &AtomicBool) -> bool {
    while !bytes.is_empty() {
        match nix::unistd::write(master, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::EAGAIN) => {
                // The command is not reading: wait for room.
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                let mut fds = [PollFd::new(master, PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(200u16));
            }
            Err(_) => return false,
        }
    }
    true
}

/// Keeps `line` and its `\n` while the kept output has room.
fn keep_line(keep: &Mutex<Vec<u8>>, line: &[u8]) {
    if let Ok(mut k) = keep.lock()
        && k.len() + line.len() < KEEP_BYTES
    {
        k.extend_from_slice(line);
        k.push(b'\n');
    }
}

/// One read of the pty's master: 0 at the end (EIO once no process has the slave open).
async fn read_master(master: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut ready = master.readable().await?;
        match ready.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
            Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// Copies the command's terminal output to our stdout as it is, keeping its plain lines.
async fn tee_terminal(master: AsyncFd<OwnedFd>, keep: Arc<Mutex<Vec<u8>>>) {
    let mut to = tokio::io::stdout();
    let mut screen = Screen::default();
    let mut line = |l: &[u8]| keep_line(&keep, l);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match read_master(&master, &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = to.write_all(&buf[..n]).await;
        let _ = to.flush().await;
        screen.feed(&buf[..n], &mut line);
    }
    screen.finish(&mut line);
}

async fn tee(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    keep: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let _ = to.write_all(&buf[..n]).await;
        let _ = to.flush().await;
        if let Ok(mut k) = keep.lock()
            && k.len() + n <= KEEP_BYTES
        {
            k.extend_from_slice(&buf[..n]);
        }
    }
}

/// Sends `signal` to the command's whole process group (it leads its own group, and with a
/// pty its own session: both have its pid as id).
pub fn signal_group(pid: u32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), signal);
}
