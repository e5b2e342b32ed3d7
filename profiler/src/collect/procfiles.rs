//! Pure parsers for the small /proc files the host collector reads. Each takes the file's path (for
//! errors) and its text, so tests can feed literal contents.

use std::collections::BTreeMap;

use super::CollectError;

/// Counters of one group (`Tcp`, `TcpExt`, ...), name to value. Values are signed because a few
/// `Tcp:` fields are (`MaxConn` is -1 when unlimited).
pub type CounterGroup = BTreeMap<String, i64>;

/// Parses the header/values line pairs of /proc/net/snmp and /proc/net/netstat:
///
/// ```text
/// Tcp: RtoAlgorithm RtoMin ... ActiveOpens
/// Tcp: 1 200 ... 42
/// ```
///
/// Every group is returned; a header without its values line, a values line whose group differs
/// from its header's, a count mismatch or a non-number is an error naming the line.
pub fn parse_counter_pairs(
    path: &str,
    text: &str,
) -> Result<BTreeMap<String, CounterGroup>, CollectError> {
    let mut groups = BTreeMap::new();
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    while let Some((header_index, header)) = lines.next() {
        let header_line = header_index + 1;
        let (group, names) = split_group(path, header_line, header)?;
        let Some((values_index, values)) = lines.next() else {
            return Err(CollectError::parse(
                path,
                header_line,
                format!("header of group {group:?} has no values line after it"),
            ));
        };
        let values_line = values_index + 1;
        let (values_group, values) = split_group(path, values_line, values)?;
        if values_group != group {
            return Err(CollectError::parse(
                path,
                values_line,
                format!("expected values of group {group:?}, found group {values_group:?}"),
            ));
        }
        let names: Vec<&str> = names.split_whitespace().collect();
        let values: Vec<&str> = values.split_whitespace().collect();
        if names.len() != values.len() {
            return Err(CollectError::parse(
                path,
                values_line,
                format!(
                    "group {group:?} has {} names but {} values",
                    names.len(),
                    values.len()
                ),
            ));
        }
        let mut counters = CounterGroup::new();
        for (name, value) in names.iter().zip(&values) {
            let parsed = value.parse::<i64>().map_err(|_| {
                CollectError::parse(
                    path,
                    values_line,
                    format!("value {value:?} of {group}.{name} is not an integer"),
                )
            })?;
            counters.insert((*name).to_owned(), parsed);
        }
        groups.insert(group.to_owned(), counters);
    }
    Ok(groups)
}

/// Splits `Group: rest` into its group name and the rest.
fn split_group<'a>(
    path: &str,
    line: usize,
    text: &'a str,
) -> Result<(&'a str, &'a str), CollectError> {
    match text.split_once(':') {
        Some((group, rest)) if !group.is_empty() && !group.contains(char::is_whitespace) => {
            Ok((group, rest))
        }
        _ => Err(CollectError::parse(
            path,
            line,
            format!("expected `Group: ...`, found {text:?}"),
        )),
    }
}

/// Parses /proc/net/sockstat and sockstat6: `TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 244`, one
/// group per line of key/value pairs. Returns group to key to value.
pub fn parse_sockstat(
    path: &str,
    text: &str,
) -> Result<BTreeMap<String, BTreeMap<String, u64>>, CollectError> {
    let mut groups = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 1;
        let (group, rest) = split_group(path, line_no, line)?;
        let tokens: Vec<&str> = rest.split_whitespace().collect();
        if !tokens.len().is_multiple_of(2) {
            return Err(CollectError::parse(
                path,
                line_no,
                format!("group {group:?} has a key without a value"),
            ));
        }
        let mut fields = BTreeMap::new();
        for pair in tokens.chunks_exact(2) {
            let (key, value) = (pair[0], pair[1]);
            let parsed = value.parse::<u64>().map_err(|_| {
                CollectError::parse(
                    path,
                    line_no,
                    format!("value {value:?} of {group} {key} is not an unsigned integer"),
                )
            })?;
            fields.insert(key.to_owned(), parsed);
        }
        groups.insert(group.to_owned(), fields);
    }
    Ok(groups)
}

/// One line of a /proc/pressure file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureRecord {
    /// Share of the last 10 s that tasks were stalled, in percent.
    pub avg10_percent: f64,
    /// Stall time since boot, microseconds.
    pub total_us: u64,
}

/// A /proc/pressure/{cpu,io,memory} file. `full` is absent on kernels before 5.13 for cpu.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PressureFile {
    pub some: PressureRecord,
    pub full: Option<PressureRecord>,
}

/// Parses `some avg10=0.97 avg60=2.92 avg300=3.07 total=40245963` (and the `full` line).
pub fn parse_pressure(path: &str, text: &str) -> Result<PressureFile, CollectError> {
    let mut some = None;
    let mut full = None;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let line_no = index + 1;
        let mut tokens = line.split_whitespace();
        let kind = tokens.next().unwrap_or_default();
        let slot = match kind {
            "some" => &mut some,
            "full" => &mut full,
            other => {
                return Err(CollectError::parse(
                    path,
                    line_no,
                    format!("expected `some` or `full`, found {other:?}"),
                ));
            }
        };
        let mut avg10 = None;
        let mut total = None;
        for token in tokens {
            let Some((key, value)) = token.split_once('=') else {
                return Err(CollectError::parse(
                    path,
                    line_no,
                    format!("expected key=value, found {token:?}"),
                ));
            };
            let bad = || CollectError::parse(path, line_no, format!("bad value in {token:?}"));
            match key {
                "avg10" => avg10 = Some(value.parse::<f64>().map_err(|_| bad())?),
                "total" => total = Some(value.parse::<u64>().map_err(|_| bad())?),
                _ => {}
            }
        }
        match (avg10, total) {
            (Some(avg10_percent), Some(total_us)) => {
                *slot = Some(PressureRecord {
                    avg10_percent,
                    total_us,
                })
            }
            _ => {
                return Err(CollectError::parse(
                    path,
                    line_no,
                    "line lacks avg10= or total=",
                ));
            }
        }
    }
    let some = some.ok_or_else(|| CollectError::parse(path, 1, "no `some` line"))?;
    Ok(PressureFile { some, full })
}

/// Parses /proc/sys/net/ipv4/ip_local_port_range: two numbers, low and high (inclusive).
pub fn parse_port_range(path: &str, text: &str) -> Result<(u16, u16), CollectError> {
    let numbers: Vec<&str> = text.split_whitespace().collect();
    let parse = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| CollectError::parse(path, 1, format!("{s:?} is not a port number")))
    };
    match numbers.as_slice() {
        [low, high] => {
            let (low, high) = (parse(low)?, parse(high)?);
            if low > high {
                return Err(CollectError::parse(
                    path,
                    1,
                    format!("range {low}..{high} is empty"),
                ));
            }
            Ok((low, high))
        }
        _ => Err(CollectError::parse(
            path,
            1,
            format!("expected two port numbers, found {text:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 1234
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens CurrEstab
Tcp: 1 200 120000 -1 42 17 3
Udp: InDatagrams NoPorts
Udp: 10 2
";

    #[test]
    fn counter_pairs_parse_every_group() {
        let groups = parse_counter_pairs("/proc/net/snmp", SNMP).expect("valid snmp");
        assert_eq!(groups.len(), 3);
        let tcp = &groups["Tcp"];
        assert_eq!(tcp["ActiveOpens"], 42);
        assert_eq!(tcp["PassiveOpens"], 17);
        assert_eq!(tcp["MaxConn"], -1);
        assert_eq!(groups["Udp"]["NoPorts"], 2);
        assert_eq!(groups["Ip"]["InReceives"], 1234);
    }

    #[test]
    fn netstat_groups_parse() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\n\
                    TcpExt: 0 5 7\n\
                    IpExt: InNoRoutes InOctets\n\
                    IpExt: 0 99999999999\n";
        let groups = parse_counter_pairs("/proc/net/netstat", text).expect("valid netstat");
        assert_eq!(groups["TcpExt"]["ListenOverflows"], 5);
        assert_eq!(groups["TcpExt"]["ListenDrops"], 7);
        assert_eq!(groups["IpExt"]["InOctets"], 99_999_999_999);
    }

    fn parse_error_line(err: CollectError) -> (String, usize, String) {
        match err {
            CollectError::Parse { path, line, reason } => (path, line, reason),
            other => panic!("expected a parse error, got {other}"),
        }
    }

    #[test]
    fn counter_pairs_count_mismatch_names_the_values_line() {
        let text = "Tcp: A B C\nTcp: 1 2\n";
        let err = parse_counter_pairs("/proc/net/snmp", text).expect_err("mismatch");
        let (path, line, _) = parse_error_line(err);
        assert_eq!((path.as_str(), line), ("/proc/net/snmp", 2));
    }

    #[test]
    fn counter_pairs_non_number_names_its_line() {
        let text = "Ip: A\nIp: 1\nTcp: A B\nTcp: 1 x\n";
        let err = parse_counter_pairs("/proc/net/snmp", text).expect_err("bad value");
        let message = err.to_string();
        assert!(message.starts_with("/proc/net/snmp:4:"), "{message}");
        assert!(message.contains("Tcp.B"), "{message}");
    }

    #[test]
    fn counter_pairs_missing_values_line_is_an_error() {
        let err = parse_counter_pairs("snmp", "Ip: A\nIp: 1\nTcp: A B\n").expect_err("missing");
        assert_eq!(parse_error_line(err).1, 3);
    }

    #[test]
    fn counter_pairs_group_mismatch_is_an_error() {
        let err = parse_counter_pairs("snmp", "Tcp: A\nUdp: 1\n").expect_err("mismatch");
        let (_, line, reason) = parse_error_line(err);
        assert_eq!(line, 2);
        assert!(reason.contains("Udp"), "{reason}");
    }

    #[test]
    fn counter_pairs_line_without_group_is_an_error() {
        let err = parse_counter_pairs("snmp", "Tcp: A\nTcp: 1\nno colon here\n").expect_err("bad");
        assert_eq!(parse_error_line(err).1, 3);
    }

    #[test]
    fn sockstat_parses_groups() {
        let text = "sockets: used 11\n\
                    TCP: inuse 5 orphan 1 tw 3 alloc 9 mem 244\n\
                    UDP: inuse 0 mem 0\n\
                    FRAG: inuse 0 memory 0\n";
        let groups = parse_sockstat("/proc/net/sockstat", text).expect("valid sockstat");
        assert_eq!(groups["TCP"]["inuse"], 5);
        assert_eq!(groups["TCP"]["orphan"], 1);
        assert_eq!(groups["TCP"]["tw"], 3);
        assert_eq!(groups["TCP"]["alloc"], 9);
        assert_eq!(groups["TCP"]["mem"], 244);
        assert_eq!(groups["sockets"]["used"], 11);
    }

    #[test]
    fn sockstat_odd_tokens_and_bad_numbers_name_the_line() {
        let err =
            parse_sockstat("sockstat", "sockets: used 1\nTCP: inuse 5 orphan\n").expect_err("odd");
        assert_eq!(parse_error_line(err).1, 2);
        let err = parse_sockstat("sockstat", "TCP: inuse -5\n").expect_err("negative");
        assert_eq!(parse_error_line(err).1, 1);
    }

    #[test]
    fn pressure_parses_some_and_full() {
        let text = "some avg10=0.97 avg60=2.92 avg300=3.07 total=40245963\n\
                    full avg10=1.50 avg60=0.00 avg300=0.00 total=12\n";
        let parsed = parse_pressure("/proc/pressure/io", text).expect("valid pressure");
        assert_eq!(parsed.some.avg10_percent, 0.97);
        assert_eq!(parsed.some.total_us, 40_245_963);
        let full = parsed.full.expect("full line present");
        assert_eq!(full.avg10_percent, 1.5);
        assert_eq!(full.total_us, 12);
    }

    #[test]
    fn pressure_without_full_line() {
        let parsed = parse_pressure("cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\n")
            .expect("some only");
        assert_eq!(parsed.full, None);
        assert_eq!(parsed.some.total_us, 5);
    }

    #[test]
    fn pressure_malformed_lines_name_the_line() {
        let text = "some avg10=0.00 avg60=0.00 avg300=0.00 total=5\nfull avg10=x total=1\n";
        let err = parse_pressure("/proc/pressure/memory", text).expect_err("bad avg10");
        let (path, line, _) = parse_error_line(err);
        assert_eq!((path.as_str(), line), ("/proc/pressure/memory", 2));
        let err = parse_pressure("p", "some avg10=0.00\n").expect_err("no total");
        assert_eq!(parse_error_line(err).1, 1);
        let err = parse_pressure("p", "some total=1 avg10=0\nhalf avg10=0 total=1\n")
            .expect_err("bad kind");
        assert_eq!(parse_error_line(err).1, 2);
    }

    #[test]
    fn port_range_parses_and_rejects() {
        assert_eq!(
            parse_port_range("r", "32768\t60999\n").expect("valid"),
            (32768, 60999)
        );
        assert!(parse_port_range("r", "32768\n").is_err());
        assert!(parse_port_range("r", "60999 32768\n").is_err());
        assert!(parse_port_range("r", "1 70000\n").is_err());
    }
}
