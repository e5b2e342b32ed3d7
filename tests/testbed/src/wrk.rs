//! Running wrk and reading its summary.
use std::{path::Path, process::Command, time::Duration};

use crate::tools::{output_within, tool};

/// One wrk run: `Wrk::new(url).connections(64).seconds(5).close(true).run()`.
#[derive(Debug, Clone)]
pub struct Wrk {
    pub url: String,
    pub threads: u32,
    pub connections: u32,
    pub seconds: u32,
    /// Send `Connection: close`: every request on a new connection.
    pub close: bool,
}

impl Wrk {
    pub fn new(url: &str) -> Wrk {
        Wrk {
            url: url.to_string(),
            threads: 2,
            connections: 64,
            seconds: 5,
            close: false,
        }
    }
    pub fn threads(mut self, n: u32) -> Self {
        self.threads = n;
        self
    }
    pub fn connections(mut self, n: u32) -> Self {
        self.connections = n;
        self
    }
    pub fn seconds(mut self, n: u32) -> Self {
        self.seconds = n;
        self
    }
    pub fn close(mut self, on: bool) -> Self {
        self.close = on;
        self
    }

    /// The arguments after `wrk`.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            format!("-t{}", self.threads),
            format!("-c{}", self.connections),
            format!("-d{}s", self.seconds),
        ];
        if self.close {
            a.extend(["-H".to_string(), "Connection: close".to_string()]);
        }
        a.push(self.url.clone());
        a
    }

    /// The whole command line, wrk's absolute path first (for `chokepoint run -- ...`).
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![tool("wrk").to_string_lossy().into_owned()];
        v.extend(self.args());
        v
    }

    /// Runs wrk and parses its summary; panics when it fails or prints no summary.
    pub fn run(&self) -> WrkReport {
        self.run_with(&tool("wrk"))
    }

    pub fn run_with(&self, wrk: &Path) -> WrkReport {
        let limit = Duration::from_secs(u64::from(self.seconds) + 60);
        let out = output_within(Command::new(wrk).args(self.args()), limit);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "wrk {:?} failed ({}): {}{}",
            self.args(),
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        );
        WrkReport::parse(&text).unwrap_or_else(|e| panic!("wrk output: {e}\n{text}"))
    }
}

/// wrk's summary lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkReport {
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    /// connect + read + write + timeout socket errors.
    pub socket_errors: u64,
    pub non_2xx_3xx: u64,
}

impl WrkReport {
    pub fn parse(text: &str) -> Result<WrkReport, String> {
        let mut requests = None;
        let mut seconds = None;
        let mut rps = None;
        let mut socket_errors = 0;
        let mut non_2xx_3xx = 0;
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            let bad = |what: &str| format!("line {}: {what} in `{l}`", i + 1);
            if let Some(v) = l.strip_prefix("Requests/sec:") {
                rps = Some(v.trim().parse::<f64>().map_err(|_| bad("no number"))?);
            } else if let Some((n, rest)) = l.split_once(" requests in ") {
                requests = Some(
                    n.trim()
                        .parse::<u64>()
                        .map_err(|_| bad("no request count"))?,
                );
                let dur = rest.split(',').next().unwrap_or_default().trim();
                seconds = Some(parse_wrk_duration(dur).ok_or_else(|| bad("no duration"))?);
            } else if let Some(v) = l.strip_prefix("Socket errors:") {
                for part in v.split(',') {
                    let n = part
                        .split_whitespace()
                        .nth(1)
                        .ok_or_else(|| bad("no count"))?;
                    socket_errors += n.parse::<u64>().map_err(|_| bad("no count"))?;
                }
            } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
                non_2xx_3xx = v.trim().parse().map_err(|_| bad("no count"))?;
            }
        }
        Ok(WrkReport {
            requests: requests.ok_or("no `N requests in T` line")?,
            seconds: seconds.ok_or("no duration")?,
            requests_per_sec: rps.ok_or("no `Requests/sec:` line")?,
            socket_errors,
            non_2xx_3xx,
        })
    }
}

/// wrk's durations: `5.00s`, `1.00m`, `500.00ms`, `12.00us`.
fn parse_wrk_duration(s: &str) -> Option<f64> {
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().ok()?;
    Some(match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nginx::Nginx;

    #[test]
    fn parses_the_summary_and_names_a_bad_line() {
        let text = "Running 5s test @ http://127.0.0.1:1/\n  2 threads and 64 connections\n  \
                    1234 requests in 2.50s, 1.00MB read\n  \
                    Socket errors: connect 1, read 2, write 3, timeout 4\n  \
                    Non-2xx or 3xx responses: 7\nRequests/sec:    493.60\nTransfer/sec:  0.40MB\n";
        let r = WrkReport::parse(text).expect("parses");
        assert_eq!((r.requests, r.socket_errors, r.non_2xx_3xx), (1234, 10, 7));
        assert!((r.seconds - 2.5).abs() < 1e-9 && (r.requests_per_sec - 493.6).abs() < 1e-9);
        assert!(
            WrkReport::parse("Requests/sec: fast\n")
                .expect_err("bad")
                .starts_with("line 1:")
        );
        assert!(WrkReport::parse("nothing\n").is_err());
        assert_eq!(parse_wrk_duration("1.00m"), Some(60.0));
        assert_eq!(parse_wrk_duration("5x"), None);
    }

    #[test]
    fn wrk_against_nginx_counts_what_nginx_counts() {
        let nginx = Nginx::start();
        let before = nginx.stub_status();
        let r = Wrk::new(&nginx.url())
            .connections(8)
            .seconds(1)
            .close(true)
            .run();
        let after = nginx.stub_status();
        assert!(r.requests > 100, "{r:?}");
        assert_eq!(r.socket_errors + r.non_2xx_3xx, 0, "{r:?}");
        // wrk counts completed requests; nginx also served the ones cut off at the end and
        // our own status request.
        let served = after.requests - before.requests - 1;
        assert!(
            served >= r.requests && served <= r.requests + 8 + 1,
            "nginx {served}, wrk {}",
            r.requests
        );
        // Connection: close: one connection per request.
        let accepted = after.accepts - before.accepts - 1;
        assert!(
            accepted >= r.requests,
            "nginx accepted {accepted} for {} requests",
            r.requests
        );
    }
}
