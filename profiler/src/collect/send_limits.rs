//! What held back the sending side of served connections: for the established TCP sockets on
//! listening ports, the kernel's own per-socket timers (tcp_info chrono: time busy sending,
//! time limited by the peer's receive window, time limited by the socket's send buffer) and
//! how many sockets have a full send buffer. A fan-out server whose sends stall shows it here.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use netlink_packet_sock_diag::inet::ExtensionFlags;

use super::{
    CollectError,
    sockdiag::{TcpChrono, TcpStates, families_for, for_each_tcp_socket_with},
};
use crate::recording::SendLimit;

/// One socket as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketReading {
    pub cookie: u64,
    pub port: u16,
    pub chrono: TcpChrono,
    /// (queued bytes, send buffer size).
    pub send_queue: Option<(u32, u32)>,
}

/// A socket counts as full at this share of its send buffer: the kernel wakes a blocked
/// writer only once a third of the buffer is free again.
const FULL: f64 = 0.9;

/// Share of one CPU the dumps may use on average. A dump walks the kernel's whole established
/// hash table, TIME_WAIT sockets included (tens of thousands under connection churn: ~5 ms a
/// walk here), so reads are spaced by their own measured duration; the kernel's chrono totals
/// are cumulative, so a skipped interval's time shows in the next read.
const DUMP_BUDGET: f64 = 0.005;

/// Keeps each socket's last totals so an interval gets deltas.
#[derive(Debug, Default)]
pub struct SendLimitCollector {
    prev: HashMap<u64, TcpChrono>,
    /// No dump before this (the budget); None: dump at the next call.
    next_read: Option<Instant>,
}

impl SendLimitCollector {
    /// Reads the established sockets on `ports` (the host's namespace) and returns this
    /// interval's figures per port, owners filled in from `owners`.
    pub fn sample(
        &mut self,
        ports: &HashSet<u16>,
        owners: &HashMap<u16, String>,
    ) -> Result<Vec<SendLimit>, CollectError> {
        if ports.is_empty() {
            self.prev.clear();
            return Ok(Vec::new());
        }
        let started = Instant::now();
        if self.next_read.is_some_and(|at| started < at) {
            return Ok(Vec::new());
        }
        let mut readings = Vec::new();
        for family in families_for(TcpStates::ESTABLISHED) {
            for_each_tcp_socket_with(
                family,
                TcpStates::ESTABLISHED,
                ExtensionFlags::INFO | ExtensionFlags::SKMEMINFO,
                "served sockets",
                |socket, extras| {
                    let port = socket.local.port();
                    if let (true, Some(chrono)) = (ports.contains(&port), extras.chrono) {
                        readings.push(SocketReading {
                            cookie: extras.cookie,
                            port,
                            chrono,
                            send_queue: extras.send_queue,
                        });
                    }
                },
            )?;
        }
        self.next_read = Some(started + spacing(started.elapsed()));
        let mut out = aggregate(&self.prev, &readings);
        for row in &mut out {
            row.owner = owners.get(&row.port).cloned();
        }
        self.prev = readings.iter().map(|r| (r.cookie, r.chrono)).collect();
        Ok(out)
    }
}

/// How long to wait after a dump that took `took` to keep within `DUMP_BUDGET`, minus a
/// little so a read due at the next interval is not pushed one interval further by jitter.
fn spacing(took: Duration) -> Duration {
    took.div_f64(DUMP_BUDGET)
        .saturating_sub(Duration::from_millis(50))
}

/// Per-port figures from this read's sockets against the previous totals. A socket seen for
/// the first time counts from its start (it was opened during the interval or just before the
/// first read); sockets gone since the last read are not counted (their last part is lost,
/// which only understates).
pub fn aggregate(prev: &HashMap<u64, TcpChrono>, readings: &[SocketReading]) -> Vec<SendLimit> {
    let mut by_port: BTreeMap<u16, SendLimit> = BTreeMap::new();
    for r in readings {
        let before = prev.get(&r.cookie).copied().unwrap_or_default();
        let row = by_port.entry(r.port).or_insert_with(|| SendLimit {
            port: r.port,
            ..SendLimit::default()
        });
        row.sockets += 1;
        row.busy_us += r.chrono.busy_us.saturating_sub(before.busy_us);
        row.rwnd_limited_us += r
            .chrono
            .rwnd_limited_us
            .saturating_sub(before.rwnd_limited_us);
        row.sndbuf_limited_us += r
            .chrono
            .sndbuf_limited_us
            .saturating_sub(before.sndbuf_limited_us);
        if let Some((queued, buffer)) = r.send_queue
            && buffer > 0
            && queued as f64 >= FULL * buffer as f64
        {
            row.full_send_buffers += 1;
        }
    }
    by_port.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dumps_are_spaced_to_stay_within_their_budget() {
        // A cheap dump (few sockets) runs every interval...
        assert!(spacing(Duration::from_millis(1)) < Duration::from_secs(1));
        // ...one that walks tens of thousands of TIME_WAIT sockets every few.
        let slow = spacing(Duration::from_millis(10));
        assert!(
            slow > Duration::from_millis(1900) && slow < Duration::from_secs(2),
            "{slow:?}"
        );
    }

    fn reading(cookie: u64, port: u16, t: [u64; 3], queue: Option<(u32, u32)>) -> SocketReading {
        SocketReading {
            cookie,
            port,
            chrono: TcpChrono {
                busy_us: t[0],
                rwnd_limited_us: t[1],
                sndbuf_limited_us: t[2],
            },
            send_queue: queue,
        }
    }

    #[test]
    fn deltas_per_port_with_new_sockets_counted_from_their_start() {
        let prev = HashMap::from([(
            1,
            TcpChrono {
                busy_us: 1_000,
                rwnd_limited_us: 500,
                sndbuf_limited_us: 0,
            },
        )]);
        let rows = aggregate(
            &prev,
            &[
                reading(1, 80, [3_000, 2_000, 100], Some((16_000, 16_384))),
                reading(2, 80, [500, 0, 400], Some((1_000, 16_384))),
                reading(3, 443, [10, 0, 0], None),
            ],
        );
        assert_eq!(rows.len(), 2);
        let web = &rows[0];
        assert_eq!((web.port, web.sockets, web.full_send_buffers), (80, 2, 1));
        assert_eq!(
            (web.busy_us, web.rwnd_limited_us, web.sndbuf_limited_us),
            (2_500, 1_500, 500)
        );
        assert!((web.limited_share() - 0.8).abs() < 1e-9);
        assert_eq!(rows[1].port, 443);
        assert_eq!(rows[1].full_send_buffers, 0);
    }

    #[test]
    fn a_reused_cookie_with_smaller_totals_never_goes_negative() {
        let prev = HashMap::from([(
            7,
            TcpChrono {
                busy_us: 9_000,
                rwnd_limited_us: 9_000,
                sndbuf_limited_us: 9_000,
            },
        )]);
        let rows = aggregate(&prev, &[reading(7, 80, [10, 5, 5], None)]);
        assert_eq!(rows[0].busy_us, 0);
        assert_eq!(rows[0].limited_share(), 0.0);
    }

    #[test]
    fn tcp_info_chrono_fields_are_read_at_their_uapi_offsets() {
        let mut info = vec![0u8; 232];
        info[168..176].copy_from_slice(&1_000u64.to_ne_bytes());
        info[176..184].copy_from_slice(&600u64.to_ne_bytes());
        info[184..192].copy_from_slice(&300u64.to_ne_bytes());
        assert_eq!(
            TcpChrono::from_tcp_info(&info),
            Some(TcpChrono {
                busy_us: 1_000,
                rwnd_limited_us: 600,
                sndbuf_limited_us: 300
            })
        );
        assert_eq!(TcpChrono::from_tcp_info(&info[..160]), None);
    }

    #[test]
    fn this_kernel_reports_the_chrono_of_a_stalled_local_connection() {
        use std::{
            io::Write,
            net::{TcpListener, TcpStream},
            time::Duration,
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let _client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (mut served, _) = listener.accept().expect("accept");
        served
            .set_write_timeout(Some(Duration::from_millis(300)))
            .expect("timeout");
        // The client never reads: the window closes and the send buffer fills.
        let chunk = vec![0u8; 64 * 1024];
        while served.write(&chunk).is_ok() {}
        let mut c = SendLimitCollector::default();
        let rows = c
            .sample(&HashSet::from([port]), &HashMap::new())
            .expect("sock_diag");
        let row = rows
            .iter()
            .find(|r| r.port == port)
            .expect("the served socket");
        assert_eq!(row.sockets, 1);
        assert_eq!(row.full_send_buffers, 1, "{row:?}");
        assert!(row.busy_us > 0 && row.limited_share() > 0.5, "{row:?}");
    }
}
