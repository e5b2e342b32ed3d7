//! A workload with a known CPU cost for the end-to-end tests: `cpu-burn THREADS SECONDS` spins
//! THREADS threads until each has used SECONDS of CPU, then prints its own rusage
//! (user + system seconds, all threads) as `rusage_seconds=X` and exits.
use std::{env, hint::black_box, thread};

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn rusage_seconds() -> f64 {
    // SAFETY: zeroed rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() {
    let args: Vec<String> = env::args().collect();
    let threads: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .expect("usage: cpu-burn THREADS SECONDS");
    let seconds: f64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .expect("usage: cpu-burn THREADS SECONDS");
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            thread::spawn(move || {
                let mut x = 0u64;
                while thread_cpu_seconds() < seconds {
                    for i in 0..100_000u64 {
                        x = black_box(x.wrapping_mul(31).wrapping_add(i));
                    }
                }
                x
            })
        })
        .collect();
    for w in workers {
        let _ = w.join();
    }
    println!("rusage_seconds={:.6}", rusage_seconds());
}
