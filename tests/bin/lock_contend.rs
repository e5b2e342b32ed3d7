//! A workload bound by one lock, for the end-to-end tests: `lock-contend THREADS SECONDS HOLD_US`
//! runs THREADS threads that each take one shared mutex, spin HOLD_US microseconds inside it,
//! and release it, for SECONDS. Throughput is serialised on the lock: the waiters sleep in the
//! kernel (futex) and are woken by the thread that releases it. Prints `acquisitions=N`.
use std::{
    env,
    hint::black_box,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

fn main() {
    let args: Vec<String> = env::args().collect();
    let usage = "usage: lock-contend THREADS SECONDS HOLD_US";
    let threads: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let seconds: f64 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let hold = Duration::from_micros(args.get(3).and_then(|a| a.parse().ok()).expect(usage));
    let lock = Arc::new(Mutex::new(0u64));
    let total = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (lock, total) = (lock.clone(), total.clone());
            thread::spawn(move || {
                while Instant::now() < end {
                    let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                    let until = Instant::now() + hold;
                    while Instant::now() < until {
                        *guard = black_box(guard.wrapping_add(1));
                    }
                    drop(guard);
                    total.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    println!("acquisitions={}", total.load(Ordering::Relaxed));
}
