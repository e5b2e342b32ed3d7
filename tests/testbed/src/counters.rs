//! The kernel's own network counters, as `nstat` reads them: /proc/net/snmp (`Tcp:`, `Ip:`,
//! `Udp:`...) and /proc/net/netstat (`TcpExt:`, `IpExt:`...). Tests compare what chokepoint
//! measured with these.
use std::{collections::BTreeMap, fs, path::Path};

use crate::FixtureError;

/// One snapshot of every counter, keyed by (group, name), e.g. ("Tcp", "ActiveOpens").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    values: BTreeMap<(String, String), i64>,
}

impl Counters {
    /// This network namespace's counters.
    pub fn read() -> Counters {
        Self::read_from(Path::new("/proc/net"))
            .expect("/proc/net/snmp and /proc/net/netstat are readable")
    }

    /// The counters of the network namespace `pid` lives in.
    pub fn read_for_pid(pid: u32) -> Counters {
        let dir = format!("/proc/{pid}/net");
        Self::read_from(Path::new(&dir)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reads `snmp` and `netstat` in `dir` (a /proc/.../net directory).
    pub fn read_from(dir: &Path) -> Result<Counters, FixtureError> {
        let mut all = Counters::default();
        for name in ["snmp", "netstat"] {
            let path = dir.join(name);
            let text = fs::read_to_string(&path).map_err(|e| FixtureError::io(&path, e))?;
            let parsed = Self::parse(&text).map_err(|detail| FixtureError::Parse {
                path: path.clone(),
                detail,
            })?;
            all.values.extend(parsed.values);
        }
        Ok(all)
    }

    /// Parses the pairs of lines these files hold: `Group: Name1 Name2...` then
    /// `Group: 1 2...`. An error names the line.
    pub fn parse(text: &str) -> Result<Counters, String> {
        let mut values = BTreeMap::new();
        let mut lines = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty());
        while let Some((hn, header)) = lines.next() {
            let (group, names) = header
                .split_once(':')
                .ok_or_else(|| format!("line {}: no `Group:` prefix", hn + 1))?;
            let (vn, row) = lines.next().ok_or_else(|| {
                format!("line {}: `{group}:` names without a values line", hn + 1)
            })?;
            let (vgroup, nums) = row
                .split_once(':')
                .ok_or_else(|| format!("line {}: no `Group:` prefix", vn + 1))?;
            if vgroup != group {
                return Err(format!(
                    "line {}: `{vgroup}:` values after `{group}:` names",
                    vn + 1
                ));
            }
            let names: Vec<&str> = names.split_whitespace().collect();
            let nums: Vec<&str> = nums.split_whitespace().collect();
            if names.len() != nums.len() {
                return Err(format!(
                    "line {}: {} values for {} `{group}:` names",
                    vn + 1,
                    nums.len(),
                    names.len()
                ));
            }
            for (name, num) in names.into_iter().zip(nums) {
                let v: i64 = num.parse().map_err(|_| {
                    format!("line {}: `{group}:{name}` is `{num}`, not a number", vn + 1)
                })?;
                values.insert((group.to_string(), name.to_string()), v);
            }
        }
        Ok(Counters { values })
    }

    pub fn get(&self, group: &str, name: &str) -> Option<i64> {
        self.values
            .get(&(group.to_string(), name.to_string()))
            .copied()
    }

    /// By nstat's name: `TcpActiveOpens`, `TcpExtListenOverflows`, `IpExtInOctets`.
    pub fn get_nstat(&self, nstat_name: &str) -> Option<i64> {
        self.values
            .iter()
            .filter(|((g, n), _)| nstat_name.strip_prefix(g.as_str()) == Some(n.as_str()))
            // `TcpExt...` also starts with `Tcp`: the longest group wins.
            .max_by_key(|((g, _), _)| g.len())
            .map(|(_, v)| *v)
    }

    /// Every counter's change since `earlier` (gauges like CurrEstab may go negative).
    pub fn delta_since(&self, earlier: &Counters) -> Counters {
        let values = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v - earlier.values.get(k).copied().unwrap_or(0)))
            .collect();
        Counters { values }
    }

    /// The counters that are not zero, as `Group:Name value` lines (for failure messages).
    pub fn nonzero(&self) -> String {
        self.values
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|((g, n), v)| format!("{g}:{n} {v}\n"))
            .collect()
    }
}

/// One counter of this namespace now, e.g. `kernel_counter("Tcp", "ActiveOpens")` or
/// `kernel_counter("TcpExt", "ListenOverflows")`. Panics if the kernel has no such counter.
pub fn kernel_counter(group: &str, name: &str) -> u64 {
    let v = Counters::read()
        .get(group, name)
        .unwrap_or_else(|| panic!("the kernel has no counter {group}:{name}"));
    u64::try_from(v).unwrap_or_else(|_| panic!("{group}:{name} is {v}, not a count"))
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    const SAMPLE: &str = "Tcp: RtoAlgorithm MaxConn ActiveOpens CurrEstab\n\
                          Tcp: 1 -1 500 7\n\
                          TcpExt: ListenOverflows ListenDrops\n\
                          TcpExt: 3 4\n";

    #[test]
    fn parses_pairs_of_lines_with_signed_values() {
        let c = Counters::parse(SAMPLE).expect("parses");
        assert_eq!(c.get("Tcp", "MaxConn"), Some(-1));
        assert_eq!(c.get("Tcp", "ActiveOpens"), Some(500));
        assert_eq!(c.get("TcpExt", "ListenDrops"), Some(4));
        assert_eq!(c.get("Tcp", "ListenDrops"), None);
        assert_eq!(c.get_nstat("TcpActiveOpens"), Some(500));
        assert_eq!(c.get_nstat("TcpExtListenOverflows"), Some(3));
        assert_eq!(c.get_nstat("TcpListenOverflows"), None);
    }

    #[test]
    fn bad_input_names_the_line() {
        let short = "Tcp: A B\nTcp: 1\n";
        assert!(
            Counters::parse(short)
                .expect_err("count mismatch")
                .starts_with("line 2:")
        );
        let word = "Udp: A\nUdp: x\n";
        assert!(
            Counters::parse(word)
                .expect_err("not a number")
                .contains("line 2: `Udp:A`")
        );
        let mixed = "Tcp: A\nUdp: 1\n";
        assert!(
            Counters::parse(mixed)
                .expect_err("groups differ")
                .starts_with("line 2:")
        );
        assert!(
            Counters::parse("Tcp: A\n")
                .expect_err("no values")
                .starts_with("line 1:")
        );
    }

    #[test]
    fn delta_subtracts_per_counter() {
        let a = Counters::parse("Tcp: ActiveOpens CurrEstab\nTcp: 10 5\n").expect("a");
        let b = Counters::parse("Tcp: ActiveOpens CurrEstab\nTcp: 25 2\n").expect("b");
        let d = b.delta_since(&a);
        assert_eq!(d.get("Tcp", "ActiveOpens"), Some(15));
        assert_eq!(d.get("Tcp", "CurrEstab"), Some(-3));
    }

    #[test]
    fn real_counters_move_with_real_connections() {
        let before = Counters::read();
        assert!(
            before.get("TcpExt", "ListenOverflows").is_some(),
            "netstat read too"
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let n = 20;
        for _ in 0..n {
            let _client = TcpStream::connect(addr).expect("connect");
            let _server = listener.accept().expect("accept");
        }
        let d = Counters::read().delta_since(&before);
        // Other processes may open connections too, so at least ours.
        assert!(
            d.get("Tcp", "ActiveOpens").unwrap_or(0) >= n,
            "{}",
            d.nonzero()
        );
        assert!(
            d.get("Tcp", "PassiveOpens").unwrap_or(0) >= n,
            "{}",
            d.nonzero()
        );
        assert!(kernel_counter("Tcp", "ActiveOpens") >= n as u64);
    }
}
