//! One reader per tool; each takes the input positioned at its start.
use std::{io::BufRead, path::Path};

use super::{
    Format, Timeline, TimelineError,
    text::{Ctx, Tail, Tracked},
};

mod ab;
mod gatling;
mod hey;
mod jmeter;
mod k6;
mod locust;
mod oha;
mod pgbench;
mod siege;
mod vegeta;
mod wrk;

pub(crate) fn read<R: BufRead>(
    input: R,
    source: &Path,
    format: Format,
) -> Result<Timeline, TimelineError> {
    let ctx = Ctx::new(source, format);
    let tail = Tail::default();
    let input = Tracked::new(input, &tail);
    let t = match format {
        Format::K6Json => k6::json(input, &ctx),
        Format::K6Csv => k6::csv(input, &ctx),
        Format::K6Summary => k6::summary(input, &ctx),
        Format::K6Text => k6::text(input, &ctx),
        Format::HeyCsv => hey::csv(input, &ctx),
        Format::HeyText => hey::text(input, &ctx),
        Format::WrkText => wrk::text(input, &ctx),
        Format::AbTsv => ab::tsv(input, &ctx),
        Format::AbCsv => ab::csv(input, &ctx),
        Format::AbText => ab::text(input, &ctx),
        Format::VegetaJson => vegeta::json(input, &ctx),
        Format::VegetaCsv => vegeta::csv(input, &ctx),
        Format::VegetaReport => vegeta::report(input, &ctx),
        Format::OhaJson => oha::json(input, &ctx),
        Format::LocustCsv => locust::history(input, &ctx),
        Format::LocustStats => locust::stats(input, &ctx),
        Format::JmeterCsv => jmeter::csv(input, &ctx),
        Format::JmeterXml => jmeter::xml(input, &ctx),
        Format::GatlingLog => gatling::log(input, &ctx),
        Format::PgbenchLog => pgbench::log(input, &ctx),
        Format::PgbenchAggregate => pgbench::aggregate(input, &ctx),
        Format::PgbenchText => pgbench::text(input, &ctx),
        Format::SiegeLog => siege::log(input, &ctx),
        Format::SiegeText => siege::text(input, &ctx),
    };
    let mut skipped = ctx.skipped.into_inner();
    if let Some(last) = tail.unterminated_line() {
        skipped.last_was_truncated(last);
    }
    let mut t = match t {
        Ok(t) => t,
        // Nothing read: say what was left out, it is probably why.
        Err(TimelineError::Parse {
            path,
            line,
            format,
            mut reason,
        }) if !skipped.is_empty() => {
            if let Some(first) = skipped.lines.first() {
                reason.push_str(&format!(
                    " ({} lines skipped, the first {}:{}: {})",
                    skipped.count,
                    path.display(),
                    first.line,
                    first.reason
                ));
            }
            return Err(TimelineError::Parse {
                path,
                line,
                format,
                reason,
            });
        }
        Err(e) => return Err(e),
    };
    if let Some(last) = skipped.lines.last().filter(|l| l.truncated) {
        t.warnings.push(format!(
            "{}:{}: last line is truncated (the tool stopped mid-write); it was skipped",
            source.display(),
            last.line
        ));
    }
    t.warnings.extend(skipped.summary());
    t.skipped_lines = skipped;
    Ok(t)
}

/// Split a line on `sep`: how many fields there are, and the first `N` of them.
pub(crate) fn split<const N: usize>(line: &[u8], sep: u8) -> (usize, [&[u8]; N]) {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut count = 0;
    for f in line.split(move |&b| b == sep) {
        if count < N {
            out[count] = f;
        }
        count += 1;
    }
    (count, out)
}

pub(crate) fn parse_f64(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?.trim();
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

pub(crate) fn parse_u64(b: &[u8]) -> Option<u64> {
    let b = trim(b);
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    let mut v = 0u64;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
    }
    Some(v)
}

pub(crate) fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}
