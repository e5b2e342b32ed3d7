//! Servers whose runtimes schedule the work themselves, so that a rule cannot read threads as
//! requests: Go's `net/http` (goroutines parked in the runtime, a few OS threads), and
//! gunicorn's pre-forked sync workers and threaded workers (Python, one interpreter lock per
//! process).
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use nix::sys::signal::Signal;

use super::{Ctx, LabError, Setup, free_port, hey, io_err, log_file, step, tool, url, wrk};
use crate::lab::guard::Service;

/// A Go HTTP server: every request computes for `work` (a busy loop on the clock), holding
/// one `sync.Mutex` throughout when `locked`. Every second it logs the goroutines waiting in
/// `Lock()` on average and the requests served (the oracle: the application's own count). Waiters on a `sync.Mutex` are goroutines parked
/// in Go's runtime, not threads blocked in the kernel: a handful of OS threads run all of
/// them.
const GO_SERVER: &str = r#"package main

import (
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var mu sync.Mutex

// The oracle, from the application itself: nanoseconds spent waiting in mu.Lock() and
// requests served, printed every second to the log.
var waitNs, served int64

func work(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
	}
}

func main() {
	d, err := time.ParseDuration(os.Args[2])
	if err != nil {
		panic(err)
	}
	locked := os.Args[3] == "locked"
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if locked {
			t := time.Now()
			mu.Lock()
			atomic.AddInt64(&waitNs, int64(time.Since(t)))
			work(d)
			mu.Unlock()
		} else {
			work(d)
		}
		atomic.AddInt64(&served, 1)
		w.Write([]byte("ok\n"))
	})
	go func() {
		for range time.Tick(time.Second) {
			fmt.Printf("lock waiters %.1f, served %d/s\n",
				float64(atomic.SwapInt64(&waitNs, 0))/1e9, atomic.SwapInt64(&served, 0))
		}
	}()
	if err := http.ListenAndServe(os.Args[1], nil); err != nil {
		panic(err)
	}
}
"#;

/// Go's build cache, kept between scenarios and runs (a cold build of `net/http` takes
/// seconds; a warm one a fraction).
fn go_cache() -> PathBuf {
    std::env::temp_dir().join("chokepoint-lab-gocache")
}

/// Build and start the Go server (`go-http`) on a free loopback port.
fn go_server(ctx: &Ctx, work: &str, locked: bool) -> Result<(Service, u16), LabError> {
    let source = ctx.dir.join("server.go");
    std::fs::write(&source, GO_SERVER).map_err(io_err(&source))?;
    let binary = ctx.dir.join("go-http");
    let cache = go_cache();
    step(
        "go build",
        Command::new(tool("go")?)
            .arg("build")
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .env("GOCACHE", &cache)
            .env("GOPATH", cache.join("path"))
            .env("GO111MODULE", "off")
            .current_dir(ctx.dir),
    )?;
    let port = free_port()?;
    let log = log_file(ctx, "go-http")?;
    let mut cmd = Command::new(&binary);
    cmd.arg(format!("127.0.0.1:{port}"))
        .arg(work)
        .arg(if locked { "locked" } else { "free" })
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    let mut server = Service::spawn("go-http", cmd, Signal::SIGTERM)?;
    server.wait_for_port(port, Duration::from_secs(10))?;
    Ok((server, port))
}

/// Every request holds one Go `sync.Mutex` while it computes 2 ms: at most one holder, so
/// at most 500 requests/s however many are in flight, with a core to spare. hey -c16.
pub(super) fn go_mutex(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = go_server(ctx, "2ms", true)?;
    Ok(Setup {
        services: vec![server],
        command: hey(ctx, 16, port, &[])?,
        ..Default::default()
    })
}

/// The control: the same server and work without the mutex: both cores compute.
pub(super) fn go_cpu(ctx: &Ctx) -> Result<Setup, LabError> {
    let (server, port) = go_server(ctx, "2ms", false)?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 16, port, &[])?,
        ..Default::default()
    })
}

/// A WSGI application for gunicorn: every request computes for `work_ms` (busy loop) and
/// then sleeps for `sleep_ms`.
fn wsgi_app(dir: &Path, work_ms: u32, sleep_ms: u32) -> Result<(), LabError> {
    let path = dir.join("app.py");
    let text = format!(
        "import time\n\
         def app(environ, start_response):\n    \
             end = time.perf_counter() + {work}\n    \
             while time.perf_counter() < end:\n        \
                 pass\n    \
             if {sleep} > 0:\n        \
                 time.sleep({sleep})\n    \
             start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', '3')])\n    \
             return [b'ok\\n']\n",
        work = work_ms as f64 / 1000.0,
        sleep = sleep_ms as f64 / 1000.0,
    );
    std::fs::write(&path, text).map_err(io_err(&path))
}

/// Start gunicorn (`--workers`, `--threads`, a worker class) serving `app.py` in the
/// scenario's directory.
fn gunicorn(ctx: &Ctx, flags: &[&str]) -> Result<(Service, u16), LabError> {
    let port = free_port()?;
    let log = log_file(ctx, "gunicorn")?;
    let mut cmd = Command::new(tool("gunicorn")?);
    cmd.arg("--chdir")
        .arg(ctx.dir)
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(["--backlog", "256", "--timeout", "120"])
        .args(flags)
        .arg("app:app")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io_err(ctx.dir))?)
        .stderr(log);
    let mut server = Service::spawn("gunicorn", cmd, Signal::SIGTERM)?;
    server.wait_for_port(port, Duration::from_secs(15))?;
    Ok((server, port))
}

/// gunicorn's pre-forked sync workers (2, one request at a time each), 3 ms of Python per
/// request; `ab -c 8` run by a `bash -c` script, as CI steps write it: the two worker
/// processes share the two cores. A service of two processes, each near a core, is judged
/// as one service with both cores, and `bash` is never a candidate.
pub(super) fn gunicorn_sync_cpu(ctx: &Ctx) -> Result<Setup, LabError> {
    wsgi_app(ctx.dir, 3, 0)?;
    let (server, port) = gunicorn(ctx, &["--workers", "2", "--worker-class", "sync"])?;
    let script = format!(
        "set -e; echo \"load: ab against port {port}\"; {ab} -q -c 8 -t {secs} -n 10000000 {url}; echo done",
        ab = tool("ab")?,
        secs = ctx.seconds,
        url = url(port)
    );
    Ok(Setup {
        services: vec![server],
        command: vec![tool("bash")?, "-c".into(), script],
        ..Default::default()
    })
}

/// gunicorn's threaded worker (one process, 16 threads), every request sleeping 20 ms (a slow
/// backend), wrk -c8: idle threads park on the worker's queue and the interpreter lock
/// passes between threads all the time, yet nothing is contended: throughput is 8 / 20 ms.
pub(super) fn gunicorn_gthread_sleep(ctx: &Ctx) -> Result<Setup, LabError> {
    wsgi_app(ctx.dir, 0, 20)?;
    let (server, port) = gunicorn(
        ctx,
        &[
            "--workers",
            "1",
            "--threads",
            "16",
            "--worker-class",
            "gthread",
        ],
    )?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 8, port, &[])?,
        ..Default::default()
    })
}

/// gunicorn's threaded worker (one process, 8 threads), 3 ms of Python per request, wrk
/// -c16: the interpreter lock lets one thread run Python at a time, so the worker computes on
/// one core's worth while the other core idles and requests queue for the lock.
pub(super) fn gunicorn_gthread_gil(ctx: &Ctx) -> Result<Setup, LabError> {
    wsgi_app(ctx.dir, 3, 0)?;
    let (server, port) = gunicorn(
        ctx,
        &[
            "--workers",
            "1",
            "--threads",
            "8",
            "--worker-class",
            "gthread",
        ],
    )?;
    Ok(Setup {
        services: vec![server],
        command: wrk(ctx, 1, 16, port, &[])?,
        ..Default::default()
    })
}
