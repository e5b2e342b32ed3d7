//! Where a session's intervals go: the recording file, the live status line, the daemon's
//! metrics and rolling window. A session hands every interval to each of its sinks in turn;
//! a sink that fails (a full disk) says so and goes on or stops by itself, never the session.
use std::{path::PathBuf, time::Instant};

use super::status::LiveStatus;
use crate::recording::{End, Finished, Header, Interval, RecordingWriter};

/// A consumer of a session's intervals.
pub trait Sink {
    /// Each interval as it is read (the last one may be shorter).
    fn interval(&mut self, iv: &Interval);
    /// The session is stopping: the last, partial interval follows.
    fn stopping(&mut self) {}
    /// The session ended (after the probes were detached).
    fn end(&mut self, _end: &End) {}
}

/// The recording file: every interval appended and flushed; when a write fails the file keeps
/// what it has and the rest stays in memory ([`Finished::InMemory`]), said once.
pub struct RecordingSink {
    path: PathBuf,
    writer: Option<RecordingWriter>,
    finished: Option<Finished>,
    said_write_failed: bool,
}

impl RecordingSink {
    pub fn create(path: PathBuf, header: &Header) -> std::io::Result<Self> {
        let writer = RecordingWriter::create(&path, header)?;
        Ok(Self {
            path,
            writer: Some(writer),
            finished: None,
            said_write_failed: false,
        })
    }

    /// How the recording ended up (after [`Sink::end`]).
    pub fn finished(&mut self) -> Finished {
        self.finished.take().unwrap_or(Finished::Written)
    }
}

impl Sink for RecordingSink {
    fn interval(&mut self, iv: &Interval) {
        if let Some(w) = &mut self.writer
            && let Some(e) = w.interval(iv)
        {
            write_failed(&self.path, e);
            self.said_write_failed = true;
        }
    }

    fn end(&mut self, end: &End) {
        let Some(w) = self.writer.take() else { return };
        let finished = w.end(end);
        if let Finished::InMemory { error, .. } = &finished
            && !self.said_write_failed
        {
            write_failed(&self.path, error);
        }
        self.finished = Some(finished);
    }
}

/// Said once, when the first write of the recording fails: the session goes on in memory.
fn write_failed(path: &std::path::Path, e: &std::io::Error) {
    crate::errln!(
        "\nchokepoint: cannot write recording {}: {e}; carrying on in memory: the verdict covers the whole run",
        path.display()
    );
}

/// The status line on the terminal ([`LiveStatus`]).
pub struct StatusSink {
    live: LiveStatus,
    started: Instant,
    stopping: bool,
}

impl StatusSink {
    pub fn new(command: bool) -> Self {
        Self {
            live: LiveStatus::new(command),
            started: Instant::now(),
            stopping: false,
        }
    }
}

impl Sink for StatusSink {
    fn interval(&mut self, iv: &Interval) {
        if !self.stopping {
            self.live.show(iv, self.started.elapsed());
        }
    }

    /// The last, partial interval is not shown: the line ends here.
    fn stopping(&mut self) {
        self.stopping = true;
        self.live.finish();
    }

    fn end(&mut self, _end: &End) {
        self.live.finish();
    }
}
