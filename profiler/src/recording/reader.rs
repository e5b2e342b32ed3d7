//! Reads a recording back. A corrupt line costs that line only: it is skipped and named
//! (`skipped`, file:line and why) and `--strict` refuses the recording there instead
//! ([`Recording::read_with`]). A last line cut short by a crash is dropped with a warning, even
//! under `--strict`. The header (line 1) must read: without it nothing else can.
use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    path::{Path, PathBuf},
};

use super::{End, FORMAT_VERSION, Header, Interval, Line};
use crate::skipped::SkippedLines;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read recording {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: not a chokepoint recording header")]
    Header {
        path: PathBuf,
        line: u64,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}:{line}: unreadable line: {reason} (--strict refuses it; without, it is skipped)"
    )]
    Strict {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    #[error("{path}: empty, or its first line is not a chokepoint recording header")]
    NoHeader { path: PathBuf },
    #[error(
        "{path}: recording format {found} is newer than this chokepoint understands ({FORMAT_VERSION})"
    )]
    Version { path: PathBuf, found: u32 },
}

#[derive(Debug, Clone)]
pub struct Recording {
    pub header: Header,
    pub intervals: Vec<Interval>,
    /// None when the recording was cut short (crash, kill -9).
    pub end: Option<End>,
    /// Problems found while reading that did not stop it (a truncated last line, lines
    /// skipped).
    pub warnings: Vec<String>,
    /// The lines that did not read and were left out.
    pub skipped: SkippedLines,
}

impl Recording {
    /// Reads what reads: a corrupt line is skipped and noted in `skipped` and `warnings`.
    pub fn read(path: &Path) -> Result<Self, RecordingError> {
        let file = File::open(path).map_err(|source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::read_from(BufReader::with_capacity(1 << 16, file), path)
    }

    /// [`Recording::read`] from any buffered reader; `path` names it in errors.
    pub fn read_from(mut input: impl BufRead, path: &Path) -> Result<Self, RecordingError> {
        let io_err = |source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut header = None;
        let mut intervals = Vec::new();
        let mut end = None;
        let mut warnings = Vec::new();
        let mut skipped = SkippedLines::new(path);
        // The last non-empty line, and whether it failed as a cut line would (end of input
        // inside a value, or no newline).
        let mut last = (0u64, false);
        let mut buf = Vec::with_capacity(64 << 10);
        let mut n = 0u64;
        loop {
            buf.clear();
            if input.read_until(b'\n', &mut buf).map_err(io_err)? == 0 {
                break;
            }
            n += 1;
            let unterminated = buf.last() != Some(&b'\n');
            let text = buf.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let parsed = serde_json::from_slice::<Line>(text);
            last = (n, false);
            let line = match (parsed, header.is_some()) {
                (Ok(line), _) => line,
                (Err(source), false) => {
                    return Err(RecordingError::Header {
                        path: path.to_path_buf(),
                        line: n,
                        source,
                    });
                }
                (Err(e), true) => {
                    last.1 = e.is_eof() || unterminated;
                    skipped.push(n, crate::skipped::json_reason(&e));
                    continue;
                }
            };
            match line {
                Line::Header(h) if header.is_none() => {
                    if h.format_version > FORMAT_VERSION {
                        return Err(RecordingError::Version {
                            path: path.to_path_buf(),
                            found: h.format_version,
                        });
                    }
                    header = Some(h);
                }
                _ if header.is_none() => {
                    return Err(RecordingError::NoHeader {
                        path: path.to_path_buf(),
                    });
                }
                Line::Header(_) => {
                    warnings.push(format!("{}:{n}: extra header ignored", path.display()))
                }
                Line::Interval(iv) => intervals.push(iv),
                Line::End(e) => end = Some(e),
            }
        }
        let header = header.ok_or_else(|| RecordingError::NoHeader {
            path: path.to_path_buf(),
        })?;
        if last.1 && skipped.lines.last().is_some_and(|l| l.line == last.0) {
            skipped.last_was_truncated(last.0);
            warnings.push(format!(
                "{}:{}: last line is truncated (the recorder stopped mid-write); it was skipped",
                path.display(),
                last.0
            ));
        }
        warnings.extend(skipped.summary());
        if end.is_none() {
            warnings.push(format!(
                "{}: no end line: the recording was cut short; analysing the {} intervals it has",
                path.display(),
                intervals.len()
            ));
        }
        Ok(Self {
            header,
            intervals,
            end,
            warnings,
            skipped,
        })
    }

    /// [`Recording::read`], and with `strict` the first corrupt line is an error naming the
    /// file and line (as is a corrupt line in a load timeline the recording carries).
    pub fn read_with(path: &Path, strict: bool) -> Result<Self, RecordingError> {
        let r = Self::read(path)?;
        if !strict {
            return Ok(r);
        }
        let load = r.end.iter().flat_map(|e| &e.load).map(|t| &t.skipped_lines);
        for s in std::iter::once(&r.skipped).chain(load) {
            if let Some(l) = s.refused() {
                return Err(RecordingError::Strict {
                    path: s.file.clone(),
                    line: l.line,
                    reason: l.reason.clone(),
                });
            }
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::{
        analysis::fixtures::{header, interval},
        recording::RecordingWriter,
    };

    fn written(n: u32) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let mut w = RecordingWriter::create(file.path(), &header()).expect("create");
        for i in 0..n {
            assert!(w.interval(&interval(i, 0.5)).is_none(), "append");
        }
        let finished = w.end(&End {
            ended_unix_ns: 1,
            reason: "duration".into(),
            exit_code: None,
            exit_signal: None,
            load: Vec::new(),
            load_errors: Vec::new(),
            pids_reused: 0,
        });
        assert!(matches!(finished, crate::recording::Finished::Written));
        file
    }

    #[test]
    fn round_trip_keeps_every_interval_and_the_end() {
        let file = written(3);
        let r = Recording::read(file.path()).expect("reads");
        assert_eq!(r.intervals.len(), 3);
        assert_eq!(r.intervals[2], interval(2, 0.5));
        assert!(r.end.is_some());
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file.path())
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_cut_last_line_is_dropped_with_a_warning() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let mut w = RecordingWriter::create(file.path(), &header()).expect("create");
        assert!(w.interval(&interval(0, 0.5)).is_none(), "append");
        drop(w);
        let full = serde_json::to_string(&crate::recording::Line::Interval(interval(1, 0.5)))
            .expect("json");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(file.path())
            .expect("open");
        f.write_all(&full.as_bytes()[..full.len() / 2])
            .expect("write");
        let r = Recording::read(file.path()).expect("reads what is whole");
        assert_eq!(r.intervals.len(), 1);
        assert!(r.end.is_none());
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains(":3: last line is truncated")),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn garbage_in_the_middle_costs_that_line_and_strict_names_it() {
        let file = written(2);
        let text = std::fs::read_to_string(file.path()).expect("read");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(2, "{\"kind\":\"interval\",\"index\":\"x\"}");
        lines.insert(3, "\u{1}not json at all");
        std::fs::write(file.path(), lines.join("\n") + "\n").expect("write");
        let r = Recording::read(file.path()).expect("reads what is whole");
        assert_eq!(r.intervals.len(), 2);
        assert!(r.end.is_some());
        assert_eq!(r.skipped.count, 2);
        assert_eq!(r.skipped.lines[0].line, 3);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("2 unreadable lines skipped")),
            "{:?}",
            r.warnings
        );
        let err = Recording::read_with(file.path(), true).expect_err("--strict");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{}:3: unreadable line", file.path().display())),
            "{msg}"
        );
    }

    #[test]
    fn a_cut_last_line_is_not_refused_under_strict() {
        let file = written(2);
        let mut text = std::fs::read(file.path()).expect("read");
        text.truncate(text.len() - 10);
        std::fs::write(file.path(), &text).expect("write");
        let r = Recording::read_with(file.path(), true).expect("a cut last line is a warning");
        assert!(r.end.is_none() && r.skipped.lines[0].truncated);
    }

    #[test]
    fn a_corrupt_header_is_fatal_and_names_line_one() {
        let file = written(1);
        let mut text = std::fs::read(file.path()).expect("read");
        text[5] = b'#';
        std::fs::write(file.path(), &text).expect("write");
        let msg = Recording::read(file.path())
            .expect_err("no header")
            .to_string();
        assert!(
            msg.contains(&format!(
                "{}:1: not a chokepoint recording header",
                file.path().display()
            )),
            "{msg}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_recording_says_so() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), "time,requests\n1,2\n").expect("write");
        let err = Recording::read(file.path()).expect_err("not a recording");
        assert!(err.to_string().contains(":1"), "{err}");
    }
}
