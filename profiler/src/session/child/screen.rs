//! The command's terminal output as the plain lines a terminal ends up showing, for the
//! timeline readers: escape sequences (colours, cursor moves, erasing) dropped, `\r\n` a line
//! end, and a line rewritten (after a lone `\r`, a backspace, or the cursor moving back up, as
//! k6 redraws its progress bars ten times a second) kept in its last version only.
//!
//! Only what line-oriented tools print is modelled: rows the cursor can move back into, and a
//! column. Writing over a row replaces the rest of it, so `50%\r100%` and `100%\r50%` both
//! leave only the later text; absolute positioning (full-screen programs) is ignored.
use std::collections::VecDeque;

/// Rows the cursor can move back up into; older rows are final and passed on.
const LIVE_ROWS: usize = 256;
/// Bytes the live rows may hold together (also the most kept of one line); past it, rows
/// above the cursor are passed on early.
const LIVE_BYTES: usize = 4 << 20;
/// Parameter bytes kept of one control sequence.
const MAX_PARAMS: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// After ESC.
    Esc,
    /// In `ESC [ params final`.
    Csi,
    /// In a string (OSC `ESC ]`, DCS `ESC P`, ...) up to BEL or `ESC \`.
    Str,
    /// ESC inside a string.
    StrEsc,
    /// One more byte to drop (`ESC ( B` and other character set choices).
    Skip1,
}

pub struct Screen {
    rows: VecDeque<Vec<u8>>,
    row: usize,
    col: usize,
    /// Bytes in `rows`.
    live: usize,
    /// Rows passed on so far (a saved cursor position is counted from the first row).
    passed: usize,
    saved: Option<(usize, usize)>,
    state: State,
    params: Vec<u8>,
}

impl Default for Screen {
    fn default() -> Self {
        Screen {
            rows: VecDeque::from([Vec::new()]),
            row: 0,
            col: 0,
            live: 0,
            passed: 0,
            saved: None,
            state: State::Ground,
            params: Vec::new(),
        }
    }
}

impl Screen {
    /// Feeds output; `line` is given each line that can no longer change, without its `\n`.
    pub fn feed(&mut self, bytes: &[u8], line: &mut impl FnMut(&[u8])) {
        for &b in bytes {
            self.byte(b, line);
        }
    }

    /// The end of the output: the lines still live, without a last empty one.
    pub fn finish(mut self, line: &mut impl FnMut(&[u8])) {
        if self.rows.back().is_some_and(Vec::is_empty) {
            self.rows.pop_back();
        }
        for r in &self.rows {
            line(r);
        }
    }

    fn byte(&mut self, b: u8, line: &mut impl FnMut(&[u8])) {
        match self.state {
            State::Ground => match b {
                0x1b => self.state = State::Esc,
                b'\n' => self.line_feed(line),
                b'\r' => self.col = 0,
                0x08 => self.col = self.col.saturating_sub(1),
                b'\t' => self.put(b),
                0..0x20 | 0x7f => {}
                _ => self.put(b),
            },
            State::Esc => {
                self.state = State::Ground;
                match b {
                    b'[' => {
                        self.params.clear();
                        self.state = State::Csi;
                    }
                    b']' | b'P' | b'X' | b'^' | b'_' => self.state = State::Str,
                    b'(' | b')' | b'*' | b'+' | b'-' | b'.' | b'/' | b'#' | b'%' | b' ' => {
                        self.state = State::Skip1
                    }
                    b'D' | b'E' => self.line_feed(line),
                    b'M' => self.up(1),
                    b'7' => self.save(),
                    b'8' => self.restore(),
                    0x1b => self.state = State::Esc,
                    _ => {}
                }
            }
            State::Csi => match b {
                0x20..=0x3f if self.params.len() < MAX_PARAMS => self.params.push(b),
                0x20..=0x3f => {}
                0x40..=0x7e => {
                    self.state = State::Ground;
                    self.csi(b, line);
                }
                0x1b => self.state = State::Esc,
                0x18 | 0x1a => self.state = State::Ground,
                _ => {}
            },
            State::Str => match b {
                0x07 => self.state = State::Ground,
                0x1b => self.state = State::StrEsc,
                _ => {}
            },
            State::StrEsc => {
                self.state = State::Ground;
                if b != b'\\' {
                    // The string ended at that ESC, which starts a sequence of its own.
                    self.state = State::Esc;
                    self.byte(b, line);
                }
            }
            State::Skip1 => self.state = State::Ground,
        }
    }

    /// Parameter `i` of the sequence, or `default`.
    fn param_at(&self, i: usize, default: usize) -> usize {
        let p = self.params.split(|&b| b == b';').nth(i).unwrap_or(&[]);
        std::str::from_utf8(p)
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(default)
    }

    fn param(&self, default: usize) -> usize {
        self.param_at(0, default)
    }

    fn csi(&mut self, fin: u8, line: &mut impl FnMut(&[u8])) {
        // Private sequences (`ESC [ ? 25 l`, ...) set modes; nothing to show.
        if self
            .params
            .first()
            .is_some_and(|b| matches!(b, b'?' | b'>' | b'<' | b'='))
        {
            return;
        }
        let n = self.param(1).max(1);
        let last = self.rows.len() - 1;
        match fin {
            b'A' => self.up(n),
            b'B' | b'e' => self.row = self.row.saturating_add(n).min(last),
            b'C' | b'a' => self.col = self.col.saturating_add(n),
            b'D' => self.col = self.col.saturating_sub(n),
            b'E' => {
                self.row = self.row.saturating_add(n).min(last);
                self.col = 0;
            }
            b'F' => {
                self.up(n);
                self.col = 0;
            }
            b'G' | b'`' => self.col = n - 1,
            // Rows on the screen are not known: only the column is taken (`ESC [ H` is the
            // start of a row).
            b'H' | b'f' => self.col = self.param_at(1, 1).max(1) - 1,
            b'K' => match self.param(0) {
                0 => self.edit(|r, col| r.truncate(col)),
                1 => self.edit(|r, col| {
                    let end = (col + 1).min(r.len());
                    r[..end].fill(b' ');
                }),
                2 => self.edit(|r, _| r.clear()),
                _ => {}
            },
            b'J' => match self.param(0) {
                0 => {
                    self.edit(|r, col| r.truncate(col));
                    while self.rows.len() > self.row + 1 {
                        let r = self.rows.pop_back().unwrap_or_default();
                        self.live -= r.len();
                    }
                }
                // A cleared screen: what it showed stays in the output, as in a scrollback
                // (3, the scrollback itself, changes nothing here).
                2 if self.rows.len() > 1 || !self.rows[0].is_empty() => {
                    while let Some(r) = self.rows.pop_front() {
                        self.live -= r.len();
                        self.passed += 1;
                        line(&r);
                    }
                    self.rows.push_back(Vec::new());
                    self.row = 0;
                }
                _ => {}
            },
            b's' => self.save(),
            b'u' => self.restore(),
            _ => {}
        }
    }

    /// Changes the cursor's row, keeping `live` right.
    fn edit(&mut self, f: impl FnOnce(&mut Vec<u8>, usize)) {
        let col = self.col;
        let r = &mut self.rows[self.row];
        let before = r.len();
        f(r, col);
        self.live = self.live + r.len() - before;
    }

    fn put(&mut self, b: u8) {
        let col = self.col;
        let r = &mut self.rows[self.row];
        let before = r.len();
        // Writing over a row replaces the rest of it: only its last version is kept.
        r.truncate(col);
        if r.len() < LIVE_BYTES {
            r.resize(col.min(LIVE_BYTES - 1), b' ');
            r.push(b);
        }
        self.live = self.live + r.len() - before;
        self.col += 1;
    }

    fn line_feed(&mut self, line: &mut impl FnMut(&[u8])) {
        self.row += 1;
        self.col = 0;
        if self.row == self.rows.len() {
            self.rows.push_back(Vec::new());
        }
        while self.row > 0 && (self.row >= LIVE_ROWS || self.live > LIVE_BYTES) {
            let r = self.rows.pop_front().unwrap_or_default();
            self.live -= r.len();
            self.row -= 1;
            self.passed += 1;
            line(&r);
        }
    }

    fn up(&mut self, n: usize) {
        self.row = self.row.saturating_sub(n);
    }

    fn save(&mut self) {
        self.saved = Some((self.passed + self.row, self.col));
    }

    fn restore(&mut self) {
        if let Some((row, col)) = self.saved {
            self.row = row.saturating_sub(self.passed).min(self.rows.len() - 1);
            self.col = col;
        }
    }
}

/// `output` as the lines a terminal ends up showing, each ending in `\n`.
#[cfg(test)]
pub fn clean(output: &[u8]) -> String {
    let mut out = Vec::new();
    let mut keep = |l: &[u8]| {
        out.extend_from_slice(l);
        out.push(b'\n');
    };
    let mut s = Screen::default();
    s.feed(output, &mut keep);
    s.finish(&mut keep);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_and_crlf_are_dropped() {
        assert_eq!(
            clean(b"\x1b[1mHTTP\x1b[0m\r\n  a\x1b[2;37m....:\x1b[0m \x1b[36m12\x1b[0m\r\n"),
            "HTTP\n  a....: 12\n"
        );
        assert_eq!(clean(b"no newline at the end"), "no newline at the end\n");
        assert_eq!(clean(b""), "");
        assert_eq!(clean(b"a\n\nb\n"), "a\n\nb\n");
    }

    #[test]
    fn a_rewritten_line_keeps_its_last_version() {
        assert_eq!(clean(b"10%\r50%\r100%\r\ndone\r\n"), "100%\ndone\n");
        // A shorter rewrite does not keep the end of the longer one.
        assert_eq!(clean(b"progress 100%\rok\r\n"), "ok\n");
        // `\r` then the line end keeps the line.
        assert_eq!(clean(b"kept\r\r\n"), "kept\n");
        assert_eq!(clean(b"spin |\x08/\x08-\r\n"), "spin -\n");
        assert_eq!(clean(b"old text\r\x1b[Knew\r\n"), "new\n");
        assert_eq!(clean(b"abc\x1b[2Kxyz\n"), "   xyz\n");
    }

    #[test]
    fn escape_sequences_split_across_reads_are_still_dropped() {
        let text = b"\x1b[33mred\x1b[0m\r\n\x1b]0;title\x07x\x1b]8;;http://a\x1b\\link\x1b]8;;\x1b\\\r\n\x1b(Bplain\r\n";
        for split in 0..text.len() {
            let mut out = Vec::new();
            let mut keep = |l: &[u8]| {
                out.extend_from_slice(l);
                out.push(b'\n');
            };
            let mut s = Screen::default();
            s.feed(&text[..split], &mut keep);
            s.feed(&text[split..], &mut keep);
            s.finish(&mut keep);
            assert_eq!(
                String::from_utf8_lossy(&out),
                "red\nxlink\nplain\n",
                "split at {split}"
            );
        }
    }

    /// What k6 writes on a terminal (taken from k6 v1.1): a progress block redrawn by moving
    /// the cursor up, the summary drawn over the last block, and a final block.
    #[test]
    fn k6_progress_bars_keep_only_their_last_version() {
        let mut raw =
            b"\x1b[0K\r\n     execution: \x1b[36mlocal\x1b[0m\x1b[0K\r\n\x1b[0K\r\n\x1b[K\r\n"
                .to_vec();
        for (s, n) in [("00.1s", 126), ("00.2s", 274), ("03.0s", 3825)] {
            raw.extend_from_slice(
                format!(
                    "running ({s}), 2/2 VUs, {n} complete and 0 interrupted iterations\x1b[K\r\n\
                     default   [=>\x1b[2m---\x1b[22m] 2 VUs  {s}/3s\x1b[K\r\n\r\x1b[J\x1b[3A"
                )
                .as_bytes(),
            );
            if s != "03.0s" {
                raw.extend_from_slice(b"\x1b[K\r\n");
            }
        }
        raw.extend_from_slice(
            b"\x1b[0K\r\n\x1b[0K\r\n  \xe2\x96\x88 \x1b[1mTOTAL RESULTS\x1b[0m \x1b[0K\r\n\x1b[0K\r\n\
              \x20   http_reqs\x1b[2;37m.....:\x1b[0m \x1b[36m3832\x1b[0m   \x1b[2;36m1276.9/s\x1b[0m\x1b[0K\r\n\
              \x1b[0K\r\n\x1b[K\r\n\
              running (03.0s), 2/2 VUs, 3825 complete and 0 interrupted iterations\x1b[K\r\n\
              default   [====\x1b[2m-\x1b[22m] 2 VUs  3.0s/3s\x1b[K\r\n\r\x1b[J\x1b[3A\x1b[K\r\n\
              running (03.0s), 0/2 VUs, 3832 complete and 0 interrupted iterations\x1b[K\r\n\
              default \x1b[32m\xe2\x9c\x93\x1b[0m [=====] 2 VUs  3s\x1b[K\r\n",
        );
        assert_eq!(
            clean(&raw),
            "\n     execution: local\n\n\n\n  █ TOTAL RESULTS \n\n    http_reqs.....: 3832   1276.9/s\n\n\n\
             running (03.0s), 0/2 VUs, 3832 complete and 0 interrupted iterations\n\
             default ✓ [=====] 2 VUs  3s\n"
        );
    }

    #[test]
    fn old_rows_are_passed_on_and_memory_stays_bounded() {
        let mut lines = 0;
        let mut s = Screen::default();
        let row = vec![b'x'; 100];
        for _ in 0..10_000 {
            s.feed(&row, &mut |_| lines += 1);
            s.feed(b"\r\n", &mut |_| lines += 1);
        }
        assert_eq!(lines, 10_000 - LIVE_ROWS + 1);
        assert!(s.rows.len() <= LIVE_ROWS);
        // A line without end is cut at LIVE_BYTES.
        let mut s = Screen::default();
        for _ in 0..(LIVE_BYTES / row.len() + 10) {
            s.feed(&row, &mut |_| {});
        }
        assert_eq!(s.live, LIVE_BYTES);
        // Many long rows are passed on before LIVE_ROWS.
        let long = vec![b'y'; LIVE_BYTES / 8];
        let mut passed = 0;
        let mut s = Screen::default();
        for _ in 0..20 {
            s.feed(&long, &mut |_| passed += 1);
            s.feed(b"\n", &mut |_| passed += 1);
        }
        assert!(passed >= 10, "{passed}");
        assert!(s.live <= LIVE_BYTES + long.len());
    }

    #[test]
    fn saved_cursor_positions_and_cleared_screens() {
        assert_eq!(clean(b"a\x1b7\r\nb\r\nc\x1b8X\r\n"), "aX\nb\nc\n");
        // `clear`: what the screen showed stays, as in a scrollback.
        assert_eq!(
            clean(b"one\r\ntwo\x1b[H\x1b[2J\x1b[3Jthree\r\n"),
            "one\ntwo\nthree\n"
        );
        assert_eq!(
            clean(b"\x1b[?25lhidden cursor\x1b[?25h\r\n"),
            "hidden cursor\n"
        );
    }
}
