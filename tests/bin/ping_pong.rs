//! A context-switch storm for the scheduler-probe benchmark: `ping-pong PAIRS SECONDS` runs
//! PAIRS pairs of threads that pass one byte back and forth over a pair of pipes for SECONDS.
//! Every hand-over blocks one thread and wakes the other, so the host does two context switches
//! and one wake-up per message with almost no work in between. Prints `round_trips=N`.
use std::{
    env,
    io::{Read, Write},
    os::unix::net::UnixStream,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::Duration,
};

fn main() {
    let args: Vec<String> = env::args().collect();
    let usage = "usage: ping-pong PAIRS SECONDS";
    let pairs: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let seconds: f64 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    for _ in 0..pairs {
        let (mut a, mut b) = UnixStream::pair().expect("socketpair");
        let (stop_a, total_a) = (stop.clone(), total.clone());
        threads.push(thread::spawn(move || {
            let mut byte = [0u8; 1];
            let mut n = 0;
            while !stop_a.load(Ordering::Relaxed) {
                if a.write_all(&byte).is_err() || a.read_exact(&mut byte).is_err() {
                    break;
                }
                n += 1;
            }
            total_a.fetch_add(n, Ordering::Relaxed);
            // Closing our end releases the echo thread.
        }));
        threads.push(thread::spawn(move || {
            let mut byte = [0u8; 1];
            while b.read_exact(&mut byte).is_ok() && b.write_all(&byte).is_ok() {}
        }));
    }
    thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    println!("round_trips={}", total.load(Ordering::Relaxed));
}
