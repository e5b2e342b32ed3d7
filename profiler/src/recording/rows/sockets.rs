//! Socket rows: the accept queue of each listening socket (`Interval::listeners`) and what held
//! back the served sockets' sends (`Interval::send_limits`). `collect::listeners` and
//! `collect::send_limits` fill them over sock_diag.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where a `ListenQueue` was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenSource {
    /// inet_diag over NETLINK_SOCK_DIAG, filtered to LISTEN in the kernel.
    SockDiag,
    /// /proc/net/tcp and /proc/net/tcp6 (read when netlink failed).
    ProcNetTcp,
}

/// One listening TCP socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenQueue {
    pub local_address: IpAddr,
    pub port: u16,
    /// Connections that finished the handshake and wait for `accept()` (sk_ack_backlog).
    pub accept_queue_len: u64,
    /// The accept-queue limit: min(listen backlog, net.core.somaxconn) (sk_max_ack_backlog). The
    /// kernel drops (ListenOverflows) once the queue holds more than this. `None` from
    /// /proc/net/tcp, which does not show it (its tx_queue is write_seq - snd_una, 0 for listeners).
    pub accept_queue_limit: Option<u64>,
    /// Socket inode, to match against /proc/<pid>/fd links.
    pub inode: u64,
    pub source: ListenSource,
}

/// One listening port's served sockets over an interval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendLimit {
    pub port: u16,
    /// The process listening on the port, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Established sockets on the port at the read.
    pub sockets: u64,
    /// Of those, sockets whose queued bytes fill at least 90 % of their send buffer: a sender
    /// writing to them now blocks (or gets EAGAIN).
    pub full_send_buffers: u64,
    /// Summed over the sockets, in this interval: time with data to send, and the parts of it
    /// held back by the peer's receive window and by the send buffer.
    pub busy_us: u64,
    pub rwnd_limited_us: u64,
    pub sndbuf_limited_us: u64,
}

impl SendLimit {
    /// Share of the busy time the sockets were held back (window or send buffer).
    pub fn limited_share(&self) -> f64 {
        if self.busy_us == 0 {
            return 0.0;
        }
        (self.rwnd_limited_us + self.sndbuf_limited_us) as f64 / self.busy_us as f64
    }
}
