//! The lab's own HTTP/1.1 test server (`chokepoint lab-server`, hidden): a listener with a chosen
//! backlog and N worker threads, each request costing a chosen amount of CPU and/or sleep.
//!
//! Every worker polls the shared listener and its own connections, like an nginx worker, so
//! requests are never handed between threads: a worker is woken by the client's packets or its
//! own timer, never by a sibling. That keeps the scenarios' wake-up patterns the designed ones.
use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::{AsRawFd, RawFd},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use nix::time::{ClockId, clock_gettime};
use socket2::{Domain, Socket, Type};

/// Arguments of the hidden `lab-server` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Worker threads.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// CPU time each request burns, in microseconds.
    #[arg(long, default_value_t = 0)]
    pub cpu_us: u64,
    /// Time each request sleeps (a slow upstream), in microseconds.
    #[arg(long, default_value_t = 0)]
    pub sleep_us: u64,
    /// Listen backlog (accept-queue limit).
    #[arg(long, default_value_t = 1024)]
    pub backlog: i32,
    /// Pause after each accept, in microseconds (a slow accept loop).
    #[arg(long, default_value_t = 0)]
    pub accept_delay_us: u64,
    /// CPU time each request burns while holding one lock shared by all workers (a global
    /// mutex around a critical section), in microseconds.
    #[arg(long, default_value_t = 0)]
    pub lock_us: u64,
    /// Call this upstream (another lab server on 127.0.0.1) once per request, through a pool
    /// of `upstream_pool` keep-alive connections; 0: no upstream.
    #[arg(long, default_value_t = 0)]
    pub upstream_port: u16,
    #[arg(long, default_value_t = 2)]
    pub upstream_pool: usize,
    /// Process name (shows in verdicts; tells a front tier from its upstream).
    #[arg(long, default_value = "lab-server")]
    pub name: String,
}

/// The upstream pool, when `--upstream-port` is set.
static UPSTREAM: std::sync::OnceLock<super::upstream::Pool> = std::sync::OnceLock::new();

/// The one lock every worker takes for `--lock-us`.
static SHARED: std::sync::Mutex<()> = std::sync::Mutex::new(());

const RESPONSE_BODY: &[u8] = b"ok\n";
/// Requests larger than this are refused (the lab's generators send a few hundred bytes).
const MAX_REQUEST: usize = 64 * 1024;

/// Run the server until killed.
pub fn run(args: &ServerArgs) -> io::Result<()> {
    set_process_name(&args.name);
    if args.upstream_port != 0 {
        let _ = UPSTREAM.set(super::upstream::Pool::connect(
            args.upstream_port,
            args.upstream_pool,
        )?);
    }
    let listener = Arc::new(listen(args.port, args.backlog)?);
    let open = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..args.workers.max(1) {
        let (listener, open) = (Arc::clone(&listener), Arc::clone(&open));
        let args = args.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("lab-worker-{i}"))
                .spawn(move || worker(&listener, &open, &args))?,
        );
    }
    for h in handles {
        match h.join() {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::other("a worker thread panicked")),
        }
    }
    Ok(())
}

/// Names the process as the lab's evidence will show it; "chokepoint" would read as the
/// profiler.
pub(super) fn set_process_name(name: &str) {
    if let Ok(name) = std::ffi::CString::new(name) {
        let _ = nix::sys::prctl::set_name(&name);
    }
}

/// A blocking listener on 127.0.0.1:`port` (0: any free port) with this accept-queue limit.
pub(super) fn listen_local(port: u16, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

fn listen(port: u16, backlog: i32) -> io::Result<TcpListener> {
    let listener = listen_local(port, backlog)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// `open`: connections held by all workers together. A worker holding more than its share
/// stops accepting until the others catch up: otherwise, on a busy host, the first worker to
/// run can take every connection of a burst and the "N-worker" server is a one-thread server.
fn worker(listener: &TcpListener, open: &AtomicUsize, args: &ServerArgs) -> io::Result<()> {
    let workers = args.workers.max(1);
    let mut conns: Vec<Conn> = Vec::new();
    loop {
        let accepting = conns.len() * workers <= open.load(Ordering::Relaxed);
        // Not accepting: poll a negative fd, which poll(2) ignores (indices stay the same).
        let listen_fd = if accepting { listener.as_raw_fd() } else { -1 };
        let mut fds: Vec<libc::pollfd> = std::iter::once(listen_fd)
            .chain(conns.iter().map(|c| c.stream.as_raw_fd()))
            .map(pollfd)
            .collect();
        // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
        // Short timeout while not accepting: the share is looked at again soon.
        let timeout = if accepting { 1000 } else { 20 };
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let listener_ready = fds[0].revents != 0;
        let ready: Vec<bool> = fds[1..].iter().map(|f| f.revents != 0).collect();
        // Serve ready connections; drop the closed ones (indices shift, so walk backwards).
        for i in (0..ready.len()).rev() {
            if ready[i] && !serve(&mut conns[i], args) {
                conns.swap_remove(i);
                open.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if listener_ready {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false)?;
                    let _ = stream.set_nodelay(true);
                    conns.push(Conn {
                        stream,
                        buf: Vec::new(),
                    });
                    open.fetch_add(1, Ordering::Relaxed);
                    if args.accept_delay_us > 0 {
                        std::thread::sleep(Duration::from_micros(args.accept_delay_us));
                    }
                }
                // Another worker took it, or the client gave up before we got to it.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// Read what is there and answer every complete request. False when the connection is done.
fn serve(conn: &mut Conn, args: &ServerArgs) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    let n = match conn.stream.read(&mut chunk) {
        Ok(0) | Err(_) => return false,
        Ok(n) => n,
    };
    conn.buf.extend_from_slice(&chunk[..n]);
    loop {
        let Some(head_end) = find(&conn.buf, b"\r\n\r\n") else {
            return conn.buf.len() <= MAX_REQUEST;
        };
        let head = String::from_utf8_lossy(&conn.buf[..head_end]).to_ascii_lowercase();
        let body_len = content_length(&head);
        let total = head_end + 4 + body_len;
        if conn.buf.len() < total {
            return total <= MAX_REQUEST;
        }
        let http10 = head.lines().next().is_some_and(|l| l.ends_with("http/1.0"));
        let connection = header(&head, "connection").unwrap_or_default();
        let keep_alive = if http10 {
            connection == "keep-alive"
        } else {
            connection != "close"
        };
        conn.buf.drain(..total);
        work(args);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
            RESPONSE_BODY.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        let mut out = response.into_bytes();
        out.extend_from_slice(RESPONSE_BODY);
        if conn.stream.write_all(&out).is_err() || !keep_alive {
            return false;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of a header in a lower-cased request head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

/// The Content-Length of a lower-cased message head (0 when absent).
pub(super) fn content_length(head: &str) -> usize {
    header(head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0)
}

/// The request's cost: CPU burnt (thread CPU time, so a busy host does not shorten it), then
/// sleep, then the upstream call.
fn work(args: &ServerArgs) {
    if args.cpu_us > 0 {
        burn(Duration::from_micros(args.cpu_us));
    }
    if args.lock_us > 0 {
        let _held = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        burn(Duration::from_micros(args.lock_us));
    }
    if args.sleep_us > 0 {
        std::thread::sleep(Duration::from_micros(args.sleep_us));
    }
    if let Some(pool) = UPSTREAM.get() {
        // A failed call still answers the client: the scenario measures waiting, not errors.
        let _ = pool.call();
    }
}

fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).map_or(Duration::ZERO, Duration::from)
}

fn burn(amount: Duration) {
    let end = thread_cpu() + amount;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    while thread_cpu() < end {
        // About a microsecond of arithmetic between clock reads (each read is a system call).
        for _ in 0..1000 {
            x = x.rotate_left(5) ^ x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        }
        std::hint::black_box(x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_by_name() {
        let head = "get / http/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 5";
        assert_eq!(header(head, "connection").as_deref(), Some("close"));
        assert_eq!(header(head, "content-length").as_deref(), Some("5"));
        assert_eq!(header(head, "accept"), None);
    }

    #[test]
    fn keep_alive_requests_are_answered_in_order() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let args = ServerArgs {
            port,
            workers: 1,
            cpu_us: 50,
            sleep_us: 0,
            backlog: 8,
            accept_delay_us: 0,
            lock_us: 0,
            upstream_port: 0,
            upstream_pool: 2,
            name: "lab-server-test".into(),
        };
        let server_args = args.clone();
        std::thread::spawn(move || run(&server_args));
        let mut stream = (0..100)
            .find_map(|_| {
                TcpStream::connect(("127.0.0.1", port))
                    .inspect_err(|_| std::thread::sleep(Duration::from_millis(20)))
                    .ok()
            })
            .expect("server listens");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut got = String::new();
        stream.read_to_string(&mut got).expect("read");
        assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 2, "{got}");
        assert!(got.ends_with("Connection: close\r\n\r\nok\n"), "{got}");
    }
}
