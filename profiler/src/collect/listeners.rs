//! Accept queues of every listening TCP socket: how many established connections wait for
//! `accept()`, against the limit the listener asked for.

use super::CollectError;
use super::sockdiag::{TcpStates, families_for, for_each_tcp_socket};
use crate::recording::{ListenQueue, ListenSource};

/// Kernel number of the LISTEN state.
const TCP_LISTEN: u8 = 10;

/// Every listening TCP socket, v4 and v6, sorted by port. Uses sock_diag; falls back to
/// /proc/net/tcp{,6} when netlink fails (each entry's `source` says which).
pub fn listen_queues() -> Result<Vec<ListenQueue>, CollectError> {
    match listen_queues_from_sock_diag() {
        Ok(queues) => Ok(queues),
        Err(netlink) => {
            log::debug!("listen queues: {netlink}; reading /proc/net/tcp instead");
            listen_queues_from_proc()
        }
    }
}

/// Listening sockets from inet_diag: for LISTEN sockets `idiag_rqueue` is the accept-queue length
/// and `idiag_wqueue` its limit.
pub fn listen_queues_from_sock_diag() -> Result<Vec<ListenQueue>, CollectError> {
    let mut queues = Vec::new();
    for family in families_for(TcpStates::LISTEN) {
        for_each_tcp_socket(family, TcpStates::LISTEN, "listening sockets", |socket| {
            if socket.state == TCP_LISTEN {
                queues.push(ListenQueue {
                    local_address: socket.local.ip(),
                    port: socket.local.port(),
                    accept_queue_len: u64::from(socket.rqueue),
                    accept_queue_limit: Some(u64::from(socket.wqueue)),
                    inode: socket.inode,
                    source: ListenSource::SockDiag,
                });
            }
        })?;
    }
    sort(&mut queues);
    Ok(queues)
}

/// Listening sockets from /proc/net/tcp and tcp6: for LISTEN rows `rx_queue` is the accept-queue
/// length; the limit is not in these files. A missing tcp6 (IPv6 disabled) is not an error.
pub fn listen_queues_from_proc() -> Result<Vec<ListenQueue>, CollectError> {
    let v4 = procfs::net::tcp().map_err(|source| CollectError::Procfs {
        path: "/proc/net/tcp".to_owned(),
        source,
    })?;
    let v6 = match procfs::net::tcp6() {
        Ok(entries) => entries,
        Err(procfs::ProcError::NotFound(_)) => Vec::new(),
        Err(source) => {
            return Err(CollectError::Procfs {
                path: "/proc/net/tcp6".to_owned(),
                source,
            });
        }
    };
    let mut queues: Vec<ListenQueue> = v4
        .iter()
        .chain(&v6)
        .filter(|entry| entry.state == procfs::net::TcpState::Listen)
        .map(|entry| ListenQueue {
            local_address: entry.local_address.ip(),
            port: entry.local_address.port(),
            accept_queue_len: u64::from(entry.rx_queue),
            accept_queue_limit: None,
            inode: entry.inode,
            source: ListenSource::ProcNetTcp,
        })
        .collect();
    sort(&mut queues);
    Ok(queues)
}

fn sort(queues: &mut [ListenQueue]) {
    queues.sort_by_key(|q| (q.port, q.local_address));
}

#[cfg(test)]
pub(crate) mod tests {
    use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use super::*;

    /// A loopback listener with an explicit backlog (std's `bind` picks its own).
    pub(crate) fn listener_with_backlog(backlog: i32) -> TcpListener {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("create socket");
        let address: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
        socket.bind(&address.into()).expect("bind loopback");
        socket.listen(backlog).expect("listen");
        socket.into()
    }

    fn somaxconn() -> u64 {
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .expect("read somaxconn")
            .trim()
            .parse()
            .expect("somaxconn is a number")
    }

    /// Polls `read` until our port shows `want` queued connections (the handshake's last ACK is
    /// processed in softirq, a moment after `connect` returns).
    fn wait_for_queue(
        read: fn() -> Result<Vec<ListenQueue>, CollectError>,
        port: u16,
        want: u64,
    ) -> ListenQueue {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let queues = read().expect("listen queues readable");
            let ours = queues
                .into_iter()
                .find(|q| q.port == port)
                .expect("our listener is listed");
            if ours.accept_queue_len == want || Instant::now() > deadline {
                return ours;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn live_accept_queue_counts_unaccepted_clients() {
        let backlog = 7;
        let listener = listener_with_backlog(backlog);
        let port = listener.local_addr().expect("local addr").port();
        let clients: Vec<TcpStream> = (0..3)
            .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
            .collect();
        let limit = u64::try_from(backlog).expect("positive").min(somaxconn());

        let ours = wait_for_queue(listen_queues, port, 3);
        assert_eq!(ours.source, ListenSource::SockDiag);
        assert_eq!(ours.accept_queue_len, 3, "{ours:?}");
        assert_eq!(ours.accept_queue_limit, Some(limit), "{ours:?}");
        assert_eq!(ours.local_address, IpAddr::from([127, 0, 0, 1]));
        assert_ne!(ours.inode, 0);

        // The /proc fallback must agree with netlink on the same socket.
        let from_proc = wait_for_queue(listen_queues_from_proc, port, 3);
        assert_eq!(from_proc.source, ListenSource::ProcNetTcp);
        assert_eq!(from_proc.accept_queue_limit, None);
        assert_eq!(
            (from_proc.accept_queue_len, from_proc.inode),
            (ours.accept_queue_len, ours.inode)
        );

        // Accepting one drains the queue by one.
        let (_accepted, _) = listener.accept().expect("accept one");
        let after = wait_for_queue(listen_queues, port, 2);
        assert_eq!(after.accept_queue_len, 2);
        drop(clients);
    }

    #[test]
    fn closed_listener_disappears() {
        let listener = listener_with_backlog(4);
        let port = listener.local_addr().expect("local addr").port();
        assert!(
            listen_queues()
                .expect("readable")
                .iter()
                .any(|q| q.port == port)
        );
        drop(listener);
        assert!(
            !listen_queues()
                .expect("readable")
                .iter()
                .any(|q| q.port == port)
        );
    }
}
