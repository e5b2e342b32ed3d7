//! The lab's WebSocket fan-out (`chokepoint lab-fanout`, hidden) and its slow consumers
//! (`chokepoint lab-ws-reader`, hidden).
//!
//! The server broadcasts each message from one thread with blocking sends, one client after
//! another, the way a naive chat or ticker server does: a client whose small send buffer is
//! full stalls the delivery to every client after it (head-of-line blocking) while the CPUs
//! idle. The readers are such clients: a small receive buffer, drained slowly.
use std::{
    io::{self, Read},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tungstenite::{HandshakeError, Message, Utf8Bytes, WebSocket, error::ProtocolError};

use super::server::{listen_local, set_process_name};

/// Arguments of the hidden `lab-fanout` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct FanoutArgs {
    /// Port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// SO_SNDBUF of every accepted connection, in bytes (the kernel doubles it).
    #[arg(long, default_value_t = 16384)]
    pub sndbuf: usize,
    /// Size of each message's text, in bytes.
    #[arg(long, default_value_t = 4096)]
    pub message_bytes: usize,
    /// Messages broadcast per second.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: u32,
    /// Process name (shows in verdicts).
    #[arg(long, default_value = "lab-fanout")]
    pub name: String,
}

/// Arguments of the hidden `lab-ws-reader` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ReaderArgs {
    /// The fan-out server's port on 127.0.0.1.
    #[arg(long)]
    pub port: u16,
    /// Connections, one thread each.
    #[arg(long, default_value_t = 2)]
    pub clients: usize,
    /// SO_RCVBUF set before connecting, in bytes (the kernel doubles it).
    #[arg(long, default_value_t = 4096)]
    pub rcvbuf: usize,
    /// Bytes read at a time.
    #[arg(long, default_value_t = 1024)]
    pub read_bytes: usize,
    /// Pause between reads, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub every_ms: u64,
}

type Clients = Arc<Mutex<Vec<WebSocket<TcpStream>>>>;

/// Run the fan-out server until killed (SIGTERM's default action ends it).
pub fn run(args: &FanoutArgs) -> io::Result<()> {
    set_process_name(&args.name);
    let listener = listen_local(args.port, 1024)?;
    let clients: Clients = Arc::new(Mutex::new(Vec::new()));
    let accept = {
        let (clients, sndbuf) = (Arc::clone(&clients), args.sndbuf);
        std::thread::Builder::new()
            .name("fanout-accept".into())
            .spawn(move || accept_loop(&listener, &clients, sndbuf))?
    };
    let broadcast = {
        let (clients, args) = (Arc::clone(&clients), args.clone());
        std::thread::Builder::new()
            .name("fanout-send".into())
            .spawn(move || broadcast_loop(&clients, &args))?
    };
    for h in [accept, broadcast] {
        match h.join() {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::other("a fan-out thread panicked")),
        }
    }
    Ok(())
}

fn accept_loop(listener: &TcpListener, clients: &Clients, sndbuf: usize) -> io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => return Err(e),
        };
        // Before the handshake, so the whole session runs with the small buffer.
        let _ = SockRef::from(&stream).set_send_buffer_size(sndbuf);
        let _ = stream.set_nodelay(true);
        // A client that never finishes its handshake must not hold up the next one.
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        match tungstenite::accept(stream) {
            Ok(mut ws) => {
                let _ = ws.get_mut().set_read_timeout(None);
                clients
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(ws);
            }
            // Closed before a request: a port probe (the lab's wait_for_port), not a client.
            Err(HandshakeError::Failure(tungstenite::Error::Protocol(
                ProtocolError::HandshakeIncomplete,
            ))) => {}
            Err(e) => eprintln!("lab-fanout: handshake failed: {e}"),
        }
    }
}

fn broadcast_loop(clients: &Clients, args: &FanoutArgs) -> io::Result<()> {
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut next = Instant::now();
    let mut seq: u64 = 0;
    let mut report = Report::new();
    let mut round: Vec<WebSocket<TcpStream>> = Vec::new();
    loop {
        let now = Instant::now();
        if now < next {
            std::thread::sleep(next - now);
        } else {
            // Behind: no sleep, and no burst to catch up afterwards either.
            next = now;
        }
        next += interval;
        // Out of the mutex for the round: the accept thread adds clients while a send blocks.
        round.append(&mut clients.lock().unwrap_or_else(PoisonError::into_inner));
        let text: Utf8Bytes = message(unix_us(), seq, args.message_bytes).into();
        let started = Instant::now();
        // In order, each send blocking until the kernel took the whole frame.
        round.retain_mut(|ws| ws.send(Message::Text(text.clone())).is_ok());
        report.round(started.elapsed(), round.len());
        seq += 1;
        // Back in, ahead of the clients that joined during the round.
        let mut shared = clients.lock().unwrap_or_else(PoisonError::into_inner);
        round.append(&mut shared);
        std::mem::swap(&mut *shared, &mut round);
    }
}

/// Rounds per second and the slowest round, every 5 s on stderr (the scenario's log).
struct Report {
    since: Instant,
    rounds: u64,
    slowest: Duration,
}

impl Report {
    fn new() -> Report {
        Report {
            since: Instant::now(),
            rounds: 0,
            slowest: Duration::ZERO,
        }
    }

    fn round(&mut self, took: Duration, clients: usize) {
        self.rounds += 1;
        self.slowest = self.slowest.max(took);
        let elapsed = self.since.elapsed();
        if elapsed >= Duration::from_secs(5) {
            eprintln!(
                "lab-fanout: {:.1} rounds/s to {clients} clients, slowest round {:.1} ms",
                self.rounds as f64 / elapsed.as_secs_f64(),
                self.slowest.as_secs_f64() * 1e3
            );
            *self = Report::new();
        }
    }
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// `{"t":<unix ms with µs>,"seq":N,"pad":"xx..."}`, padded to `size` bytes (never shorter than
/// its fields).
fn message(unix_us: u64, seq: u64, size: usize) -> String {
    // From integer microseconds: an f64 of ~1.7e15 µs would round the last digit.
    let head = format!(
        "{{\"t\":{}.{:03},\"seq\":{seq},\"pad\":\"",
        unix_us / 1000,
        unix_us % 1000
    );
    const TAIL: &str = "\"}";
    let pad = size.saturating_sub(head.len() + TAIL.len());
    let mut s = String::with_capacity(head.len() + pad + TAIL.len());
    s.push_str(&head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str(TAIL);
    s
}

/// Run the slow readers until the server goes away.
pub fn run_reader(args: &ReaderArgs) -> io::Result<()> {
    set_process_name("ws-reader");
    let mut handles = Vec::new();
    for i in 0..args.clients.max(1) {
        let args = args.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("ws-reader-{i}"))
                .spawn(move || slow_reader(&args))?,
        );
    }
    let mut result = Ok(());
    for h in handles {
        let r = h
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a reader thread panicked")));
        if result.is_ok() {
            result = r;
        }
    }
    result
}

fn slow_reader(args: &ReaderArgs) -> io::Result<()> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    // Before connecting: the window scale is agreed in the handshake.
    socket.set_recv_buffer_size(args.rcvbuf)?;
    socket.connect(&SocketAddrV4::new(Ipv4Addr::LOCALHOST, args.port).into())?;
    let stream: TcpStream = socket.into();
    let url = format!("ws://127.0.0.1:{}/", args.port);
    let (mut ws, _) = tungstenite::client::client(url.as_str(), stream)
        .map_err(|e| io::Error::other(format!("WebSocket handshake: {e}")))?;
    // Raw bytes, not frames: only the pace of draining the socket matters.
    let mut buf = vec![0u8; args.read_bytes.max(1)];
    let pause = Duration::from_millis(args.every_ms);
    loop {
        match ws.get_mut().read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(_) => std::thread::sleep(pause),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_exactly_the_asked_size() {
        for size in [64, 100, 1024, 4096, 65536] {
            assert_eq!(message(1_763_914_449_123_456, 7, size).len(), size);
        }
    }

    #[test]
    fn message_is_json_with_time_and_sequence() {
        let m = message(1_763_914_449_123_456, 42, 4096);
        let v: serde_json::Value = serde_json::from_str(&m).expect("valid JSON");
        assert_eq!(v["seq"], 42);
        let t = v["t"].as_f64().expect("t is a number");
        assert!((t - 1_763_914_449_123.456).abs() < 1e-3, "{t}");
        let pad = v["pad"].as_str().expect("pad is a string");
        assert!(pad.bytes().all(|b| b == b'x'));
        assert!(m.starts_with(r#"{"t":1763914449123.456,"seq":42,"pad":""#));
    }

    #[test]
    fn message_keeps_small_millisecond_fractions() {
        // 5 µs past the millisecond: ".005", not ".5".
        let m = message(1_000_005, 0, 0);
        assert!(m.starts_with(r#"{"t":1000.005,"#), "{m}");
    }

    #[test]
    fn message_never_truncates_its_fields() {
        let m = message(1_763_914_449_123_456, u64::MAX, 8);
        assert!(m.len() > 8);
        let v: serde_json::Value = serde_json::from_str(&m).expect("valid JSON");
        assert_eq!(v["seq"].as_u64(), Some(u64::MAX));
        assert_eq!(v["pad"], "");
    }

    #[test]
    fn broadcast_reaches_clients_in_order_and_drops_the_gone() {
        let listener = listen_local(0, 16).expect("listen");
        let port = listener.local_addr().expect("addr").port();
        let clients: Clients = Arc::new(Mutex::new(Vec::new()));
        {
            let clients = Arc::clone(&clients);
            std::thread::spawn(move || accept_loop(&listener, &clients, 16384));
        }
        let connect = || {
            let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let url = format!("ws://127.0.0.1:{port}/");
            tungstenite::client::client(url.as_str(), stream)
                .expect("handshake")
                .0
        };
        let mut a = connect();
        let b = connect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while clients.lock().expect("lock").len() < 2 {
            assert!(Instant::now() < deadline, "clients not accepted");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(b);
        let args = FanoutArgs {
            port,
            sndbuf: 16384,
            message_bytes: 256,
            rate: 100,
            name: "test".into(),
        };
        {
            let clients = Arc::clone(&clients);
            std::thread::spawn(move || broadcast_loop(&clients, &args));
        }
        let mut seqs = Vec::new();
        while seqs.len() < 3 {
            let m = a.read().expect("read");
            let text = m.to_text().expect("text");
            assert_eq!(text.len(), 256);
            let v: serde_json::Value = serde_json::from_str(text).expect("JSON");
            seqs.push(v["seq"].as_u64().expect("seq"));
        }
        assert_eq!(seqs, [seqs[0], seqs[0] + 1, seqs[0] + 2]);
        // The closed client fails a send within a few rounds and is dropped.
        let deadline = Instant::now() + Duration::from_secs(10);
        while clients.lock().expect("lock").len() != 1 {
            assert!(Instant::now() < deadline, "closed client kept");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
