//! JMeter JTL results: CSV (`timeStamp,elapsed,label,responseCode,...`) and XML
//! (`<testResults><httpSample t=".." ts=".." s="true" rc="200" na=".."/>`).
use std::io::BufRead;

use quick_xml::events::{BytesStart, Event};

use super::{
    super::{
        Clock, Timeline, TimelineError,
        series::{Outcome, Series},
        text::{Ctx, num},
    },
    k6::{csv_err, next_record},
};

/// A sample's outcome: `success=false` with a numeric code is that status; JMeter's
/// `Non HTTP response code: java.net.SocketTimeoutException` and friends are named.
fn outcome(success: bool, code: &str) -> Outcome {
    if success {
        return Outcome::Ok;
    }
    if let Ok(c) = code.trim().parse::<u16>() {
        return if c >= 400 {
            Outcome::Status(c)
        } else {
            Outcome::Other
        };
    }
    let c = code.to_ascii_lowercase();
    if c.contains("timeout") {
        Outcome::Timeout
    } else if c.contains("connect") || c.contains("socket") || c.contains("nohttpresponse") {
        Outcome::Connection
    } else {
        Outcome::Other
    }
}

/// `timeStamp` is the sample's start in ms since the epoch, `elapsed` its time in ms.
fn add(series: &mut Series, ts_ms: f64, elapsed_ms: f64, o: Outcome, threads: Option<f64>) {
    let done = (ts_ms + elapsed_ms) / 1000.0;
    series.request(done, o, 1);
    series.latency(done, elapsed_ms / 1000.0);
    if let Some(n) = threads {
        series.offered(done, n);
    }
}

pub(crate) fn csv<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut rdr = ::csv::ReaderBuilder::new().from_reader(input);
    let h = rdr.byte_headers().map_err(|e| csv_err(ctx, &e))?.clone();
    let col = |n: &str| h.iter().position(|c| c == n.as_bytes());
    let (Some(ts_i), Some(el_i)) = (col("timeStamp"), col("elapsed")) else {
        return Err(ctx.err(1, "missing timeStamp or elapsed column"));
    };
    let (ok_i, rc_i, threads_i) = (col("success"), col("responseCode"), col("allThreads"));
    let mut series = Series::new(1.0);
    let mut rec = ::csv::ByteRecord::new();
    while next_record(&mut rdr, &mut rec, ctx)? {
        let n = rec.position().map_or(0, |p| p.line());
        let s = |i: Option<usize>| {
            i.and_then(|i| rec.get(i))
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or("")
        };
        let (Some(ts), Some(el)) = (num(s(Some(ts_i))), num(s(Some(el_i)))) else {
            ctx.skip(
                n,
                "bad timeStamp or elapsed (timestamps must be ms since the epoch)",
            );
            continue;
        };
        let success = ok_i.is_none() || s(ok_i) == "true";
        add(
            &mut series,
            ts,
            el,
            outcome(success, s(rc_i)),
            num(s(threads_i)),
        );
    }
    if series.requests() == 0 {
        return Err(ctx.err(1, "no samples"));
    }
    Ok(series.finish(ctx.format, &ctx.path, Clock::Absolute))
}

pub(crate) fn xml<R: BufRead>(input: R, ctx: &Ctx) -> Result<Timeline, TimelineError> {
    let mut rdr = quick_xml::Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut series = Series::new(1.0);
    let mut depth = 0usize;
    let mut line = 1u64;
    loop {
        let ev = rdr.read_event_into(&mut buf);
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => return Err(ctx.err(line, format!("bad XML: {e}"))),
        };
        match &ev {
            Event::Start(e) if is_sample(e) => {
                depth += 1;
                if depth == 1 {
                    sample(e, &mut series, ctx, line)?;
                }
            }
            Event::Empty(e) if is_sample(e) && depth == 0 => sample(e, &mut series, ctx, line)?,
            Event::End(e) if matches!(e.name().as_ref(), b"httpSample" | b"sample") => {
                depth = depth.saturating_sub(1)
            }
            Event::Eof => break,
            _ => {}
        }
        drop(ev);
        line += buf.iter().filter(|&&b| b == b'\n').count() as u64;
        buf.clear();
    }
    if depth != 0 {
        return Err(ctx.err(line, "truncated: an unclosed sample element"));
    }
    if series.requests() == 0 {
        return Err(ctx.err(line, "no httpSample or sample elements"));
    }
    Ok(series.finish(ctx.format, &ctx.path, Clock::Absolute))
}

fn is_sample(e: &BytesStart<'_>) -> bool {
    matches!(e.name().as_ref(), b"httpSample" | b"sample")
}

fn sample(
    e: &BytesStart<'_>,
    series: &mut Series,
    ctx: &Ctx,
    line: u64,
) -> Result<(), TimelineError> {
    let (mut t, mut ts, mut s, mut rc, mut na) = (None, None, true, String::new(), None);
    for a in e.attributes() {
        let a = a.map_err(|err| ctx.err(line, format!("bad attribute: {err}")))?;
        let v = String::from_utf8_lossy(&a.value).into_owned();
        match a.key.as_ref() {
            b"t" => t = num(&v),
            b"ts" => ts = num(&v),
            b"s" => s = v == "true",
            b"rc" => rc = v,
            b"na" => na = num(&v),
            _ => {}
        }
    }
    let (Some(t), Some(ts)) = (t, ts) else {
        return Err(ctx.err(line, "a sample without t or ts"));
    };
    add(series, ts, t, outcome(s, &rc), na);
    Ok(())
}
