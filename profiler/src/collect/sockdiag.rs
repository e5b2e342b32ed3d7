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
    inet::{ExtensionFlags, InetRequest, InetResponseHeader, SocketId, StateFlags},
};
use netlink_sys::{Socket, protocols::NETLINK_SOCK_DIAG};

use super::CollectError;

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

/// Address families to dump.
pub const FAMILIES: [u8; 2] = [AF_INET, AF_INET6];

/// Calls `visit` for every TCP socket of `family` (AF_INET or AF_INET6) in one of `states`.
pub fn for_each_tcp_socket(
    family: u8,
    states: StateFlags,
    what: &'static str,
    mut visit: impl FnMut(DiagSocket),
) -> Result<(), CollectError> {
    let io_err = |source| CollectError::Netlink { what, source };
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
            extensions: ExtensionFlags::empty(),
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
        let mut offset = 0;
        while offset < received {
            let decode = |e: netlink_packet_core::DecodeError| CollectError::NetlinkDecode {
                what,
                reason: e.to_string(),
            };
            let message = NetlinkBuffer::new_checked(&buffer[offset..received]).map_err(decode)?;
            let length = message.length() as usize;
            match message.message_type() {
                // Only the fixed header is decoded: attributes (none were asked for) are skipped,
                // which matters when the dump holds tens of thousands of sockets.
                SOCK_DIAG_BY_FAMILY => {
                    let header = InetResponseHeader::parse(message.payload()).map_err(decode)?;
                    visit(DiagSocket {
                        state: header.state,
                        local: SocketAddr::new(
                            header.socket_id.source_address,
                            header.socket_id.source_port,
                        ),
                        rqueue: header.recv_queue,
                        wqueue: header.send_queue,
                        inode: u64::from(header.inode),
                    });
                }
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let error = ErrorBuffer::new_checked(message.payload()).map_err(decode)?;
                    if let Some(code) = error.code() {
                        return Err(io_err(std::io::Error::from_raw_os_error(-code.get())));
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
    }
}
