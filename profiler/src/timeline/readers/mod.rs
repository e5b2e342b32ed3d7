//! One reader per tool; each takes the input positioned at its start.
use std::{io::BufRead, path::Path};

use super::{Format, Timeline, TimelineError, text::Ctx};

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
    }?;
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
