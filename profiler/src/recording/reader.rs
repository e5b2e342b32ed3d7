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
