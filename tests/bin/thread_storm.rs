//! A fork storm for the end-to-end tests: `thread-storm SPAWNERS THREADS` starts SPAWNERS
//! threads that each start and join THREADS threads doing nothing, one after another: a
//! `sched_process_fork` and a `sched_process_exit` per thread, as fast as this host makes
//! threads (tens of thousands a second). Prints `threads=N` (how many it started) and exits.
use std::{env, thread};

fn main() {
    let args: Vec<String> = env::args().collect();
    let number = |i: usize| -> usize {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .expect("usage: thread-storm SPAWNERS THREADS")
    };
    let (spawners, threads) = (number(1), number(2));
    let started: usize = (0..spawners)
        .map(|_| {
            thread::spawn(move || {
                for _ in 0..threads {
                    thread::spawn(|| {}).join().expect("an empty thread");
                }
                threads
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|s| s.join().expect("a spawner"))
        .sum();
    println!("threads={started}");
}
