//! Reads a recording back. A last line cut short by a crash is dropped with a warning; a bad
//! line anywhere else is an error naming the file and line.
use std::{
    fs::File,
    io::{self, BufRead, BufReader},
    path::{Path, PathBuf},
};

use super::{End, FORMAT_VERSION, Header, Interval, Line};

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read recording {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}:{line}: not a chokepoint recording line")]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
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
    /// Problems found while reading that did not stop it (a truncated last line).
    pub warnings: Vec<String>,
}

impl Recording {
    pub fn read(path: &Path) -> Result<Self, RecordingError> {
        let io_err = |source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let lines: Vec<String> = BufReader::new(file)
            .lines()
            .collect::<Result<_, _>>()
            .map_err(io_err)?;
        let mut header = None;
        let mut intervals = Vec::new();
        let mut end = None;
        let mut warnings = Vec::new();
        let last = lines
            .iter()
            .rposition(|l| !l.trim().is_empty())
            .unwrap_or(0);
        for (i, text) in lines.iter().enumerate() {
            if text.trim().is_empty() {
                continue;
            }
            let line = match serde_json::from_str::<Line>(text) {
                Ok(line) => line,
                Err(e) if i == last && i > 0 && e.is_eof() => {
                    warnings.push(format!(
                        "{}:{}: last line is truncated (the recorder stopped mid-write); it was skipped",
                        path.display(),
                        i + 1
                    ));
                    continue;
                }
                Err(source) => {
                    return Err(RecordingError::Parse {
                        path: path.to_path_buf(),
                        line: i + 1,
                        source,
                    });
                }
            };
            match line {
                Line::Header(h) if i == 0 => {
                    if h.format_version > FORMAT_VERSION {
                        return Err(RecordingError::Version {
                            path: path.to_path_buf(),
                            found: h.format_version,
                        });
                    }
                    header = Some(h);
                }
                Line::Header(_) => warnings.push(format!(
                    "{}:{}: extra header ignored",
                    path.display(),
                    i + 1
                )),
                Line::Interval(iv) => intervals.push(iv),
                Line::End(e) => end = Some(e),
            }
        }
        let header = header.ok_or_else(|| RecordingError::NoHeader {
            path: path.to_path_buf(),
        })?;
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
        })
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
            w.interval(&interval(i, 0.5)).expect("append");
        }
        w.end(&End {
            ended_unix_ns: 1,
            reason: "duration".into(),
            exit_code: None,
            load: Vec::new(),
            load_errors: Vec::new(),
            pids_reused: 0,
        })
        .expect("end");
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
        w.interval(&interval(0, 0.5)).expect("append");
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
    fn garbage_in_the_middle_names_file_and_line() {
        let file = written(2);
        let text = std::fs::read_to_string(file.path()).expect("read");
        let mut lines: Vec<&str> = text.lines().collect();
        lines.insert(2, "{\"kind\":\"interval\",\"index\":\"x\"}");
        std::fs::write(file.path(), lines.join("\n")).expect("write");
        let err = Recording::read(file.path()).expect_err("bad line");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{}:3", file.path().display())),
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
