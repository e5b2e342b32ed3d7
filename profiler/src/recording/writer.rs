//! Appends lines to a recording, flushing each one. When a write fails (a full disk, a quota,
//! an I/O error) the file keeps what was written and every later line is kept in memory
//! instead: the session carries on and its verdict covers the whole run ([`Finished`]).
use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use super::{End, Header, Interval, Line, Recording};
use crate::skipped::SkippedLines;

pub struct RecordingWriter {
    path: PathBuf,
    /// None once a write failed.
    out: Option<BufWriter<File>>,
    written: u64,
    spilled: Option<Spilled>,
    /// For a recording in memory when the file no longer reads back.
    header: Header,
}

/// What a failed write left to memory.
struct Spilled {
    error: io::Error,
    intervals: Vec<Interval>,
}

/// How the recording ended up.
pub enum Finished {
    /// Every line is in the file.
    Written,
    /// A write failed: the file holds the lines before it (its last one possibly cut short),
    /// the recording as a whole is here.
    InMemory {
        error: io::Error,
        /// Intervals the file holds.
        written: u64,
        recording: Box<Recording>,
    },
}

impl RecordingWriter {
    /// Creates the file with mode 0600: a recording names processes and ports. The header
    /// must be written: without it nothing of the file would read.
    pub fn create(path: &Path, header: &Header) -> io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        let mut out = BufWriter::new(file);
        write_line(&mut out, &Line::Header(header.clone()))?;
        Ok(Self {
            path: path.to_path_buf(),
            out: Some(out),
            written: 0,
            spilled: None,
            header: header.clone(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an interval; the first failed write is returned (to be said once) and from then
    /// on intervals are kept in memory.
    pub fn interval(&mut self, interval: &Interval) -> Option<&io::Error> {
        if let Some(out) = &mut self.out {
            match write_line(out, &Line::Interval(interval.clone())) {
                Ok(()) => {
                    self.written += 1;
                    return None;
                }
                Err(error) => {
                    self.stop_writing();
                    self.spilled = Some(Spilled {
                        error,
                        intervals: vec![interval.clone()],
                    });
                    return self.spilled.as_ref().map(|s| &s.error);
                }
            }
        }
        if let Some(s) = &mut self.spilled {
            s.intervals.push(interval.clone());
        }
        None
    }

    /// Writes the end line and syncs; when a write failed (now or before), the whole recording
    /// in memory: the header and the intervals the file holds read back, the rest appended.
    pub fn end(mut self, end: &End) -> Finished {
        if let Some(out) = &mut self.out {
            match write_line(out, &Line::End(end.clone())).and_then(|()| out.get_ref().sync_all()) {
                Ok(()) => return Finished::Written,
                Err(error) => {
                    self.stop_writing();
                    self.spilled = Some(Spilled {
                        error,
                        intervals: Vec::new(),
                    });
                }
            }
        }
        let Some(spilled) = self.spilled.take() else {
            return Finished::Written;
        };
        // The file gone or replaced meanwhile: only what memory kept.
        let mut recording = Recording::read(&self.path).unwrap_or_else(|e| {
            self.written = 0;
            Recording {
                header: self.header.clone(),
                intervals: Vec::new(),
                end: None,
                warnings: vec![format!("{}: does not read back: {e}", self.path.display())],
                skipped: SkippedLines::new(&self.path),
            }
        });
        // Only what the file holds whole, then what memory kept.
        recording.intervals.truncate(self.written as usize);
        recording.intervals.extend(spilled.intervals);
        recording.end = Some(end.clone());
        recording.warnings.retain(|w| !w.contains("no end line"));
        recording.warnings.push(format!(
            "{}: writing it failed after {} intervals ({}): the analysis covers all {} intervals, kept in memory; the file holds the first {}",
            self.path.display(),
            self.written,
            spilled.error,
            recording.intervals.len(),
            self.written
        ));
        Finished::InMemory {
            error: spilled.error,
            written: self.written,
            recording: Box::new(recording),
        }
    }

    /// Drops the file without flushing what a failed write left in the buffer (a retry at
    /// drop would append half a line later).
    fn stop_writing(&mut self) {
        if let Some(out) = self.out.take() {
            let _ = out.into_parts();
        }
    }
}

fn write_line(out: &mut BufWriter<File>, line: &Line) -> io::Result<()> {
    serde_json::to_writer(&mut *out, line)?;
    out.write_all(b"\n")?;
    out.flush()
}
