//! Shared reading helpers: a line reader that counts lines and names the file in errors, and
//! parsers for the numbers and durations load tools print.
use std::{
    cell::{Cell, RefCell},
    io::{self, BufRead, Read},
    path::{Path, PathBuf},
};

use super::{Format, TimelineError};
use crate::skipped::SkippedLines;

/// Where an error happened: the file and the format being read; the lines left out so far.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub path: PathBuf,
    pub format: Format,
    pub skipped: RefCell<SkippedLines>,
}

impl Ctx {
    pub fn new(path: &Path, format: Format) -> Ctx {
        Ctx {
            path: path.to_path_buf(),
            format,
            skipped: RefCell::new(SkippedLines::new(path)),
        }
    }

    /// A data line that does not read: left out and noted (a corrupt line costs that line
    /// only; `--strict` refuses the file afterwards, see [`super::Timeline::strict`]).
    pub fn skip(&self, line: u64, reason: impl Into<String>) {
        self.skipped.borrow_mut().push(line, reason);
    }

    pub fn err(&self, line: u64, reason: impl Into<String>) -> TimelineError {
        TimelineError::Parse {
            path: self.path.clone(),
            line,
            format: self.format,
            reason: reason.into(),
        }
    }

    pub fn io(&self, e: std::io::Error) -> TimelineError {
        TimelineError::Io {
            path: self.path.clone(),
            source: e,
        }
    }
}

/// Lines without their terminator, one reused buffer, numbered from 1.
pub(crate) struct Lines<R> {
    input: R,
    buf: Vec<u8>,
    pub number: u64,
    /// The last line read had no newline: the file may be truncated there.
    pub unterminated: bool,
}

impl<R: BufRead> Lines<R> {
    pub fn new(input: R) -> Lines<R> {
        Lines {
            input,
            buf: Vec::with_capacity(1024),
            number: 0,
            unterminated: false,
        }
    }

    /// The next line, or None at the end.
    pub fn next_line(&mut self, ctx: &Ctx) -> Result<Option<Line<'_>>, TimelineError> {
        self.buf.clear();
        let n = self
            .input
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| ctx.io(e))?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        self.unterminated = self.buf.last() != Some(&b'\n');
        let mut end = self.buf.len();
        while end > 0 && matches!(self.buf[end - 1], b'\n' | b'\r') {
            end -= 1;
        }
        Ok(Some(Line {
            n: self.number,
            unterminated: self.unterminated,
            bytes: &self.buf[..end],
        }))
    }
}

/// One line: its number, whether it lacked a newline, its bytes without the terminator.
pub(crate) struct Line<'a> {
    pub n: u64,
    pub unterminated: bool,
    pub bytes: &'a [u8],
}

/// The input as a reader sees it, counting its lines and remembering its last byte, so a line
/// left out can be told to be the file's last one cut short (whichever way the reader reads:
/// `read` for the CSV readers, `fill_buf`/`consume` for the line readers).
pub(crate) struct Tracked<'a, R> {
    inner: R,
    tail: &'a Tail,
}

/// What [`Tracked`] saw: newlines and the last byte.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    newlines: Cell<u64>,
    last: Cell<Option<u8>>,
}

impl Tail {
    /// The input's last line when it has no newline (it may be cut short), by number.
    pub fn unterminated_line(&self) -> Option<u64> {
        match self.last.get() {
            Some(b) if b != b'\n' => Some(self.newlines.get() + 1),
            _ => None,
        }
    }

    fn saw(&self, bytes: &[u8]) {
        if let Some(&b) = bytes.last() {
            let nl = bytes.iter().filter(|&&c| c == b'\n').count() as u64;
            self.newlines.set(self.newlines.get() + nl);
            self.last.set(Some(b));
        }
    }
}

impl<'a, R> Tracked<'a, R> {
    pub fn new(inner: R, tail: &'a Tail) -> Self {
        Tracked { inner, tail }
    }
}

impl<R: BufRead> Read for Tracked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.tail.saw(&buf[..n]);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tracked<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // The bytes are buffered already: this fill_buf does no I/O.
        if let Ok(b) = self.inner.fill_buf() {
            self.tail.saw(&b[..amt.min(b.len())]);
        }
        self.inner.consume(amt);
    }
}

/// Read a whole (small, text) input, capped so garbage cannot exhaust memory.
pub(crate) fn read_text<R: BufRead>(mut input: R, ctx: &Ctx) -> Result<String, TimelineError> {
    const CAP: u64 = 64 << 20;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut input, CAP), &mut bytes)
        .map_err(|e| ctx.io(e))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub(crate) fn num(s: &str) -> Option<f64> {
    let v: f64 = s.trim().parse().ok()?;
    v.is_finite().then_some(v)
}

/// `14.09k`, `1.2M`, `512`.
pub(crate) fn si_num(s: &str) -> Option<f64> {
    let s = s.trim();
    let (n, mul) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1e3),
        'M' => (&s[..s.len() - 1], 1e6),
        'G' => (&s[..s.len() - 1], 1e9),
        _ => (s, 1.0),
    };
    Some(num(n)? * mul)
}

/// A duration as load tools print it, in seconds: `477.00us`, `8.81ms`, `1.2s`, `2m`,
/// `1m30s`, `1h2m3.5s`, `502.72µs`, `120ns`.
pub(crate) fn duration_s(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
            .unwrap_or(rest.len());
        // `e` may start no unit only when followed by a digit; keep it simple: no exponent units.
        let (n, tail) = rest.split_at(digits);
        let n = num(n)?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let mul = match unit.trim() {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" | "" | "secs" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * mul;
        rest = next;
    }
    Some(total)
}

/// Unix seconds from an RFC 3339 timestamp (`2024-01-02T03:04:05.123456789Z`, `+01:00`).
pub(crate) fn rfc3339_s(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let int = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    let (y, mo, d) = (int(0..4)?, int(5..7)?, int(8..10)?);
    let (h, mi, se) = (int(11..13)?, int(14..16)?, int(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut i = 19;
    let mut frac = 0.0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        let mut scale = 0.1;
        while i < b.len() && b[i].is_ascii_digit() {
            frac += f64::from(b[i] - b'0') * scale;
            scale /= 10.0;
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let o = int(i + 1..i + 3)? * 3600 + int(i + 4..i + 6)? * 60;
            if sign == b'+' { o } else { -o }
        }
        None => 0,
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86400 + h * 3600 + mi * 60 + se - offset) as f64 + frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-11-23 08:33:58` (local time written by the tool; read as UTC).
pub(crate) fn datetime_s(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.len() != 19 {
        return None;
    }
    rfc3339_s(s)
}

/// The value after `key` on the first line that contains it (`key` included in the search).
pub(crate) fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let i = text.find(key)?;
    let rest = &text[i + key.len()..];
    Some(rest.lines().next().unwrap_or("").trim())
}

/// The first whitespace-separated word of `s`.
pub(crate) fn word(s: &str) -> &str {
    s.split_whitespace().next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_every_unit() {
        let close = |a: Option<f64>, b: f64| (a.expect("parses") - b).abs() < 1e-12;
        assert!(close(duration_s("477.00us"), 477e-6));
        assert!(close(duration_s("8.81ms"), 8.81e-3));
        assert!(close(duration_s("502.72µs"), 502.72e-6));
        assert!(close(duration_s("1m30s"), 90.0));
        assert!(close(duration_s("1h2m3.5s"), 3723.5));
        assert!(close(duration_s("0.4781 secs"), 0.4781));
        assert_eq!(duration_s("fast"), None);
        assert_eq!(duration_s(""), None);
    }

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339_s("1970-01-01T00:00:00Z"), Some(0.0));
        // 2000-03-01 is day 11017 (a leap-year boundary).
        assert_eq!(rfc3339_s("2000-03-01T00:00:00Z"), Some(11017.0 * 86400.0));
        let t = rfc3339_s("2026-11-23T08:34:32.5+01:00").expect("parses");
        let u = rfc3339_s("2026-11-23T07:34:32.5Z").expect("parses");
        assert_eq!(t, u);
        assert_eq!(rfc3339_s("2026-13-23T07:34:32Z"), None);
        assert_eq!(rfc3339_s("2026-11-23T07:34:32.Z"), None);
        assert_eq!(rfc3339_s("not a time at all!!"), None);
    }

    #[test]
    fn si_numbers() {
        assert_eq!(si_num("14.09k"), Some(14090.0));
        assert_eq!(si_num("2M"), Some(2e6));
        assert_eq!(si_num("k"), None);
    }
}
