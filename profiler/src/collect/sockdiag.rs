//! TCP socket dumps over NETLINK_SOCK_DIAG (inet_diag), with a kernel-side state filter so only the
//! sockets asked for cross into user space.

use std::net::SocketAddr;

use netlink_packet_core::{
    ErrorBuffer, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, Parseable,
};
use netlink_packet_sock_diag::{
    SockDiagMessage,
    constants::{AF_INET, AF_INET6, IPPROTO_TCP, SOCK_DIAG_BY_FAMILY},
    inet::{
        ExtensionFlags, InetRequest, InetResponse, InetResponseHeader, SocketId, StateFlags,
        nlas::Nla,
    },
};
use netlink_sys::{Socket, protocols::NETLINK_SOCK_DIAG};

use super::{CollectError, net::Batch};

pub use netlink_packet_sock_diag::inet::StateFlags as TcpStates;

/// The fields of one inet_diag reply that the collectors use.
#[derive(Debug, Clone, Copy)]
pub struct DiagSocket {
    /// Kernel TCP state number (10 is LISTEN).
    pub state: u8,
    pub local: SocketAddr,
    /// idiag_rqueue: for LISTEN sockets the accept-queue length, otherwise unread bytes.
    pub rqueue: u32,
    /// idiag_wqueue: for LISTEN sockets the accept-queue limit, otherwise unsent bytes.
    pub wqueue: u32,
    pub inode: u64,
}

/// What the extensions asked for (`for_each_tcp_socket_with`) carry for one socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiagExtras {
    /// The kernel's socket cookie: unique for the socket's life, unlike addresses or inodes.
    pub cookie: u64,
    /// tcp_info's chrono totals (INET_DIAG_INFO), where the kernel has them (4.10+).
    pub chrono: Option<TcpChrono>,
    /// sk_wmem_queued and sk_sndbuf (INET_DIAG_SKMEMINFO).
    pub send_queue: Option<(u32, u32)>,
}

/// How long a socket had data to send, and how much of that it was held back by the peer's
/// receive window or by its own send buffer (`tcpi_busy_time`, `tcpi_rwnd_limited`,
/// `tcpi_sndbuf_limited`; microseconds since the connection began).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpChrono {
    pub busy_us: u64,
    pub rwnd_limited_us: u64,
    pub sndbuf_limited_us: u64,
}

/// `struct tcp_info` offsets of `tcpi_busy_time`, `tcpi_rwnd_limited`, `tcpi_sndbuf_limited`
/// (uapi: fixed since 4.10, only ever appended to).
const TCPI_BUSY_TIME: usize = 168;

impl TcpChrono {
    /// From the raw `struct tcp_info` bytes; None when the kernel's struct is too old.
    pub fn from_tcp_info(info: &[u8]) -> Option<Self> {
        let u64_at = |off: usize| {
            info.get(off..off + 8)
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
        };
        Some(Self {
            busy_us: u64_at(TCPI_BUSY_TIME)?,
            rwnd_limited_us: u64_at(TCPI_BUSY_TIME + 8)?,
            sndbuf_limited_us: u64_at(TCPI_BUSY_TIME + 16)?,
        })
    }
}

/// Address families to dump.
pub const FAMILIES: [u8; 2] = [AF_INET, AF_INET6];

/// The families worth dumping for sockets in `states`. A dump walks the whole established hash
/// table whatever its family (v4 and v6 share it), so an empty family costs as much as a full
/// one: AF_INET6 is left out when `/proc/net/sockstat6` says no IPv6 TCP socket is in use
/// (`TCP6: inuse 0`; listening and connected sockets count there, TIME_WAIT ones do not, so a
/// dump that asks for TIME_WAIT keeps both).
pub fn families_for(states: StateFlags) -> Vec<u8> {
    let v6_in_use =
        || std::fs::read_to_string("/proc/net/sockstat6").map_or(true, |text| tcp6_in_use(&text));
    if states.contains(StateFlags::TIME_WAIT) || v6_in_use() {
        FAMILIES.to_vec()
    } else {
        vec![AF_INET]
    }
}

/// `TCP6: inuse N` with N > 0, or a file that does not say (then assume sockets exist).
fn tcp6_in_use(sockstat6: &str) -> bool {
    sockstat6
        .lines()
        .find_map(|line| line.strip_prefix("TCP6: inuse "))
        .and_then(|n| n.split_whitespace().next()?.parse::<u64>().ok())
        .is_none_or(|n| n > 0)
}

/// Calls `visit` for every TCP socket of `family` (AF_INET or AF_INET6) in one of `states`.
pub fn for_each_tcp_socket(
    family: u8,
    states: StateFlags,
    what: &'static str,
    mut visit: impl FnMut(DiagSocket),
) -> Result<(), CollectError> {
    for_each_tcp_socket_with(family, states, ExtensionFlags::empty(), what, |s, _| {
        visit(s)
    })
}

/// The same, asking for `extensions` (INFO, SKMEMINFO) and handing what they carry to `visit`.
pub fn for_each_tcp_socket_with(
    family: u8,
    states: StateFlags,
    extensions: ExtensionFlags,
    what: &'static str,
    mut visit: impl FnMut(DiagSocket, &DiagExtras),
) -> Result<(), CollectError> {
    let io_err = |source| CollectError::Netlink { what, source };
    let bare = extensions.is_empty();
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(io_err)?;
    socket.bind_auto().map_err(io_err)?;
    socket
        .connect(&netlink_sys::SocketAddr::new(0, 0))
        .map_err(io_err)?;

    let socket_id = if family == AF_INET6 {
        SocketId::new_v6()
    } else {
        SocketId::new_v4()
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions,
            states,
            socket_id,
        })
        .into(),
    );
    request.finalize();
    let mut out = vec![0; request.buffer_len()];
    request.serialize(&mut out);
    socket.send(&out, 0).map_err(io_err)?;

    // Dumps arrive as batches of messages, each batch at most a few pages.
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let received = socket.recv(&mut &mut buffer[..], 0).map_err(io_err)?;
        let received = received.min(buffer.len());
        if decode_batch(&buffer[..received], bare, what, &mut visit)? == Batch::Done {
            return Ok(());
        }
    }
}

/// Decodes one batch of inet_diag replies as [`for_each_tcp_socket_with`] receives it (with
/// `bare`, the fixed header only): pure, so captured dumps replay through it. Never reads past
/// `bytes`.
pub(crate) fn decode_batch(
    bytes: &[u8],
    bare: bool,
    what: &'static str,
    visit: &mut impl FnMut(DiagSocket, &DiagExtras),
) -> Result<Batch, CollectError> {
    let decode = |e: netlink_packet_core::DecodeError| CollectError::NetlinkDecode {
        what,
        reason: e.to_string(),
    };
    let mut offset = 0;
    while offset < bytes.len() {
        let message = NetlinkBuffer::new_checked(&bytes[offset..]).map_err(decode)?;
        let length = message.length() as usize;
        match message.message_type() {
            // Only the fixed header is decoded unless attributes were asked for, which
            // matters when the dump holds tens of thousands of sockets.
            SOCK_DIAG_BY_FAMILY => {
                let mut extras = DiagExtras::default();
                let header = if bare {
                    InetResponseHeader::parse(message.payload()).map_err(decode)?
                } else {
                    let full = InetResponse::parse(message.payload()).map_err(decode)?;
                    for nla in &full.nlas {
                        match nla {
                            Nla::TcpInfo(info) => {
                                extras.chrono = TcpChrono::from_tcp_info(info);
                            }
                            Nla::MemInfo(m) => {
                                extras.send_queue = Some((m.send_queue, m.send_queue_max));
                            }
                            _ => {}
                        }
                    }
                    full.header
                };
                extras.cookie = u64::from_ne_bytes(header.socket_id.cookie);
                visit(
                    DiagSocket {
                        state: header.state,
                        local: SocketAddr::new(
                            header.socket_id.source_address,
                            header.socket_id.source_port,
                        ),
                        rqueue: header.recv_queue,
                        wqueue: header.send_queue,
                        inode: u64::from(header.inode),
                    },
                    &extras,
                );
            }
            NLMSG_DONE => return Ok(Batch::Done),
            NLMSG_ERROR => {
                let error = ErrorBuffer::new_checked(message.payload()).map_err(decode)?;
                if let Some(code) = error.code() {
                    return Err(CollectError::Netlink {
                        what,
                        source: super::net::errno(code),
                    });
                }
            }
            _ => {}
        }
        if length == 0 {
            break;
        }
        // Netlink messages are 4-byte aligned.
        offset += (length + 3) & !3;
    }
    Ok(Batch::More)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_is_dumped_unless_sockstat6_says_no_tcp6_socket_is_in_use() {
        assert!(!tcp6_in_use("TCP6: inuse 0\nUDP6: inuse 2\n"));
        assert!(tcp6_in_use("TCP6: inuse 3\nUDP6: inuse 0\n"));
        // Unreadable or unexpected: dump it rather than miss sockets.
        assert!(tcp6_in_use(""));
        assert!(tcp6_in_use("TCP6: inuse many\n"));
    }

    #[test]
    fn time_wait_dumps_keep_both_families() {
        assert_eq!(families_for(StateFlags::all()), FAMILIES.to_vec());
    }
}
