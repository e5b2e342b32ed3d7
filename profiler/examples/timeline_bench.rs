//! Timeline reader throughput: writes a large file per format to a temp dir (k6 JSON the
//! largest, as in real long tests), reads it with the streaming reader, prints MB/s and the
//! process's peak RSS so flat memory is visible. `cargo run --release -p chokepoint
//! --example timeline_bench [MB for k6 json, default 300]`.
use std::{
    fs::File,
    io::{BufWriter, Write},
    path::Path,
    time::Instant,
};

use chokepoint::timeline::read_file;

const T0: u64 = 1_795_422_900;

/// A format's name, size in MB, header, footer and line writer.
type Case = (
    &'static str,
    u64,
    &'static str,
    &'static str,
    Box<dyn FnMut(u64, &mut String)>,
);

fn stamp(ms: u64) -> String {
    let s = T0 + ms / 1000;
    let (h, m, sec) = ((s / 3600) % 24, (s / 60) % 60, s % 60);
    format!("2026-11-23T{h:02}:{m:02}:{sec:02}.{:03}456789Z", ms % 1000)
}

/// Write lines from `line(i)` until the file reaches `mb` megabytes.
fn write(
    path: &Path,
    mb: u64,
    header: &str,
    footer: &str,
    mut line: impl FnMut(u64, &mut String),
) -> std::io::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    w.write_all(header.as_bytes())?;
    let (mut written, mut i, mut s) = (header.len() as u64, 0u64, String::new());
    while written < mb << 20 {
        s.clear();
        line(i, &mut s);
        w.write_all(s.as_bytes())?;
        written += s.len() as u64;
        i += 1;
    }
    w.write_all(footer.as_bytes())?;
    w.flush()?;
    Ok(written)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let k6_mb: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let small = (k6_mb / 4).max(16);
    let dir = tempfile::tempdir()?;
    let cases: Vec<Case> = vec![
        (
            "k6-json",
            k6_mb,
            "",
            "",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let ms = i / 8;
                let (metric, value) = match i % 8 {
                    0 => ("http_reqs", 1.0),
                    1 => ("http_req_duration", 3.2),
                    2 => ("http_req_blocked", 0.01),
                    3 => ("http_req_connecting", 0.0),
                    4 => ("http_req_waiting", 3.0),
                    5 => ("data_received", 120.0),
                    6 => ("iteration_duration", 3.5),
                    _ => ("iterations", 1.0),
                };
                let status = if i % 800 == 0 { "500" } else { "200" };
                let _ = writeln!(
                    s,
                    "{{\"metric\":\"{metric}\",\"type\":\"Point\",\"data\":{{\"time\":\"{}\",\"value\":{value},\"tags\":{{\"expected_response\":\"{}\",\"group\":\"\",\"method\":\"GET\",\"name\":\"http://127.0.0.1:18080/\",\"proto\":\"HTTP/1.1\",\"scenario\":\"default\",\"status\":\"{status}\",\"url\":\"http://127.0.0.1:18080/\"}}}}}}",
                    stamp(ms),
                    status == "200"
                );
            }),
        ),
        (
            "k6-csv",
            small,
            "metric_name,timestamp,metric_value,check,error,error_code,expected_response,group,method,name,proto,scenario,service,status,subproto,tls_version,url,extra_tags,metadata\n",
            "",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let m = if i % 2 == 0 {
                    "http_reqs"
                } else {
                    "http_req_duration"
                };
                let _ = writeln!(
                    s,
                    "{m},{},1.5,,,,true,,GET,http://127.0.0.1:18080/,HTTP/1.1,default,,200,,,http://127.0.0.1:18080/,,",
                    T0 + i / 5000
                );
            }),
        ),
        (
            "hey-csv",
            small,
            "response-time,DNS+dialup,DNS,Request-write,Response-delay,Response-read,status-code,offset\n",
            "",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let _ = writeln!(
                    s,
                    "0.0012,0.0001,0.0000,0.0000,0.0010,0.0001,200,{:.4}",
                    i as f64 / 20000.0
                );
            }),
        ),
        (
            "ab-tsv",
            small,
            "starttime\tseconds\tctime\tdtime\tttime\twait\n",
            "",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let _ = writeln!(
                    s,
                    "Mon Nov 23 08:33:58 2026\t{}\t0\t1\t1\t1",
                    T0 + i / 20000
                );
            }),
        ),
        (
            "pgbench-log",
            small,
            "",
            "",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let _ = writeln!(
                    s,
                    "{} {} 312 0 {} {}",
                    i % 8,
                    i / 8,
                    T0 + i / 20000,
                    (i % 20000) * 50
                );
            }),
        ),
        (
            "vegeta-json",
            small,
            "",
            "",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let _ = writeln!(
                    s,
                    "{{\"attack\":\"a\",\"seq\":{i},\"code\":200,\"timestamp\":\"{}\",\"latency\":1200000,\"bytes_out\":0,\"bytes_in\":3,\"error\":\"\",\"body\":\"b2sK\",\"method\":\"GET\",\"url\":\"http://127.0.0.1:18080/\",\"headers\":{{}}}}",
                    stamp(i / 20)
                );
            }),
        ),
        (
            "vegeta-csv",
            small,
            "",
            "",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let _ = writeln!(
                    s,
                    "{},200,1200000,0,3,\"\",b2sK,a,{i},GET,http://127.0.0.1:18080/,",
                    T0 * 1_000_000_000 + i * 50_000
                );
            }),
        ),
        (
            "jmeter-csv",
            small,
            "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,IdleTime,Connect\n",
            "",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let _ = writeln!(
                    s,
                    "{},12,GET /,200,OK,Thread Group 1-1,text,true,,120,100,8,8,http://127.0.0.1:18080/,11,0,1",
                    T0 * 1000 + i / 20
                );
            }),
        ),
        (
            "jmeter-xml",
            small,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testResults version=\"1.2\">\n",
            "</testResults>\n",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let _ = writeln!(
                    s,
                    "<httpSample t=\"12\" lt=\"11\" ts=\"{}\" s=\"true\" lb=\"GET /\" rc=\"200\" rm=\"OK\" tn=\"TG 1-1\" na=\"8\"/>",
                    T0 * 1000 + i / 20
                );
            }),
        ),
        (
            "gatling-log",
            small,
            "RUN\tsim\tsim\t1795422900000\t \t3.9.5\n",
            "",
            Box::new(|i, s: &mut String| {
                use std::fmt::Write;
                let start = T0 * 1000 + i / 20;
                let _ = writeln!(s, "REQUEST\t\trequest_1\t{start}\t{}\tOK\t ", start + 12);
            }),
        ),
    ];
    println!(
        "{:<12} {:>9} {:>12} {:>9} {:>12}",
        "format", "MB", "requests", "MB/s", "peak RSS MB"
    );
    for (name, mb, header, footer, line) in cases {
        let path = dir.path().join(name);
        let bytes = write(&path, mb, header, footer, line)?;
        let start = Instant::now();
        let t = read_file(&path)?;
        let secs = start.elapsed().as_secs_f64();
        let size = bytes as f64 / (1 << 20) as f64;
        println!(
            "{:<12} {:>9.1} {:>12} {:>9.1} {:>12.1}",
            t.format.name(),
            size,
            t.requests,
            size / secs,
            peak_rss_mb()
        );
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
