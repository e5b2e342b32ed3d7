//! Gatling's tab-separated `simulation.log` (3.x text format): `RUN`, `USER`, `REQUEST`,
//! `GROUP`, `ERROR` records. Field layout varies by version, so a REQUEST is read around its
//! `OK`/`KO` field: the two fields before it are start and end, in ms since the epoch.
use std::io::BufRead;

use super::{
    super::{
        Clock, Timeline, TimelineError,
        series::{Outcome, Series},
        text::{Ctx, Lines},
    },
    parse_u64, split,
};

fn ko(message: &[u8]) -> Outcome {
    let m = String::from_utf8_lossy(message).to_ascii_lowercase();
    if m.contains("timeout") || m.contains("timed out") {
        return Outcome::Timeout;
    }
    if m.contains("connect") || m.contains("connection") {
        return Outcome::Connection;
    }
    // `status.find.in(200,...), but actually found 500`
    if let Some(i) = m.find("found ")
        && let Ok(code) = m[i + 6..]
            .chars()
            .take(3)
            .collect::<String>()
            .parse::<u16>()
        && code >= 400
    {
        return Outcome::Status(code);
    }
    Outcome::Other
}

pub(crate) fn log<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut lines = Lines::new(input);
    let mut series = Series::new(1.0);
    let mut users: i64 = 0;
    while let Some(l) = lines.next_line(ctx)? {
        let (n, line) = (l.n, l.bytes);
        if line.is_empty() {
            continue;
        }
        let (nf, f) = split::<16>(line, b'\t');
        let f = &f[..nf.min(16)];
        let trunc = if l.unterminated {
            " (truncated line)"
        } else {
            ""
        };
        match f[0] {
            b"REQUEST" => {
                let Some(k) = f
                    .iter()
                    .position(|x| matches!(*x, b"OK" | b"KO"))
                    .filter(|&k| k >= 3)
                else {
                    ctx.skip(n, format!("REQUEST without OK/KO{trunc}"));
                    continue;
                };
                let (Some(start), Some(end)) = (parse_u64(f[k - 2]), parse_u64(f[k - 1])) else {
                    ctx.skip(n, format!("bad start/end timestamps{trunc}"));
                    continue;
                };
                let done = end as f64 / 1000.0;
                let o = if f[k] == b"OK" {
                    Outcome::Ok
                } else {
                    ko(f.get(k + 1).copied().unwrap_or_default())
                };
                series.request(done, o, 1);
                series.latency(done, end.saturating_sub(start) as f64 / 1000.0);
            }
            b"USER" => {
                let Some(k) = f.iter().position(|x| matches!(*x, b"START" | b"END")) else {
                    ctx.skip(n, format!("USER without START/END{trunc}"));
                    continue;
                };
                let Some(ts) = f[k + 1..].iter().find_map(|x| parse_u64(x)) else {
                    ctx.skip(n, format!("USER without a timestamp{trunc}"));
                    continue;
                };
                users += if f[k] == b"START" { 1 } else { -1 };
                series.offered(ts as f64 / 1000.0, users.max(0) as f64);
            }
            b"RUN" | b"GROUP" | b"ERROR" | b"ASSERTION" => {}
            other => {
                ctx.skip(
                    n,
                    format!(
                        "unknown record {:?}{trunc}",
                        String::from_utf8_lossy(&other[..other.len().min(20)])
                    ),
                );
                continue;
            }
        }
    }
    if series.requests() == 0 {
        return Err(ctx.err(lines.number.max(1), "no REQUEST records"));
    }
    Ok(series.finish(ctx.format, &ctx.path, Clock::Absolute))
}
