//! Lines a reader left out: a corrupt line in a recording or a load file costs that line only.
//! Readers note each one here (its number and why); `--strict` refuses the file at the first
//! corrupt one instead. A last line cut short (the writer stopped mid-line) is only a warning,
//! even under `--strict`. JSON: `skipped_lines` (docs/json.md, docs/timeline.md).
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How many skipped lines a file lists; the rest are only counted.
pub const LISTED: usize = 100;

/// The lines of one file that were left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SkippedLines {
    pub file: PathBuf,
    /// Every line left out, listed or not.
    pub count: u64,
    /// The first [`LISTED`] of them, in file order.
    pub lines: Vec<SkippedLine>,
}

/// One line left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedLine {
    /// From 1.
    pub line: u64,
    pub reason: String,
    /// The file's last line, cut short: a warning, never refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

impl SkippedLines {
    pub fn new(file: &Path) -> SkippedLines {
        SkippedLines {
            file: file.to_path_buf(),
            count: 0,
            lines: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn push(&mut self, line: u64, reason: impl Into<String>) {
        self.count += 1;
        if self.lines.len() < LISTED {
            self.lines.push(SkippedLine {
                line,
                reason: reason.into(),
                truncated: false,
            });
        }
    }

    /// The last line left out was the file's last, cut short: marks it truncated (when listed).
    pub fn last_was_truncated(&mut self, last_line: u64) {
        let all_listed = self.count == self.lines.len() as u64;
        if let Some(l) = self.lines.last_mut()
            && l.line == last_line
            && all_listed
        {
            l.truncated = true;
        }
    }

    /// The first line `--strict` refuses: a corrupt one (a truncated last line is not).
    pub fn refused(&self) -> Option<&SkippedLine> {
        self.lines.iter().find(|l| !l.truncated)
    }

    /// Lines left out other than a truncated last one.
    pub fn corrupt(&self) -> u64 {
        self.count - self.lines.iter().filter(|l| l.truncated).count() as u64
    }

    /// One sentence for `limitations[]` and warnings, or None when nothing corrupt was skipped.
    pub fn summary(&self) -> Option<String> {
        let first = self.refused()?;
        let n = self.corrupt();
        Some(format!(
            "{}: {n} unreadable line{} skipped (first {}:{}: {}); --strict refuses the file instead",
            self.file.display(),
            if n == 1 { "" } else { "s" },
            self.file.display(),
            first.line,
            first.reason
        ))
    }
}

/// A JSON error on one line, said by column (serde_json counts lines within the slice it was
/// given: always line 1 here).
pub fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(what) => format!("{what} (column {})", e.column()),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_line_lists_the_first_hundred_and_refuses_only_corrupt_ones() {
        let mut s = SkippedLines::new(Path::new("k6.json"));
        assert!(s.refused().is_none() && s.summary().is_none());
        s.push(7, "bad JSON");
        s.last_was_truncated(7);
        assert!(
            s.refused().is_none(),
            "a truncated last line is only a warning"
        );
        let mut s = SkippedLines::new(Path::new("k6.json"));
        for n in 0..150 {
            s.push(n + 2, "bad JSON");
        }
        assert_eq!((s.count, s.lines.len()), (150, LISTED));
        assert_eq!(s.refused().map(|l| l.line), Some(2));
        let text = s.summary().expect("corrupt lines");
        assert!(text.contains("150 unreadable lines") && text.contains("k6.json:2: bad JSON"));
    }
}
