//! Plumbing shared by the network-path collectors (`topology`, `qdisc`, `conntrack`): one netlink
//! request/reply exchange on a fresh socket, and running a collector inside another network
//! namespace.

use std::fmt::Debug;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_netfilter::NetfilterMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::Socket;
use nix::sched::{CloneFlags, setns};

use super::CollectError;
use crate::recording::NetnsId;

pub mod replay;
#[cfg(test)]
pub(crate) mod testnet;

/// This thread's network namespace. `/proc/self` would name the thread-group leader's, which is
/// not ours once `in_netns` has moved this thread.
const THREAD_NETNS: &str = "/proc/thread-self/ns/net";

/// Where `ip netns add` (and Docker) leave bind mounts of named namespaces.
const NAMED_NETNS_DIRS: [&str; 2] = ["/var/run/netns", "/var/run/docker/netns"];

/// Netlink control messages (NOOP, ERROR, DONE, OVERRUN) have types below this.
const NLMSG_MIN_TYPE: u16 = 0x10;
/// The nfnetlink subsystem of conntrack (`NFNL_SUBSYS_CTNETLINK`, the high byte of the type).
const NFNL_SUBSYS_CTNETLINK: u16 = 1;

/// A netlink family's messages: which message types are handed to its decoder. The others are
/// skipped unread (and counted), so a message of a kind the collectors never asked for cannot
/// reach a crate parser that may not survive it.
pub trait Decoded: NetlinkDeserializable + Debug {
    /// Whether a message of `message_type` (the `nlmsg_type` field, >= `NLMSG_MIN_TYPE`) is
    /// decoded.
    fn decodes(message_type: u16) -> bool;
}

impl Decoded for RouteNetlinkMessage {
    fn decodes(_: u16) -> bool {
        true
    }
}

/// Only conntrack messages: netlink-packet-netfilter 0.4.0 parses every nfnetlink subsystem,
/// and its nftables set parser slices past its buffer on a short nested attribute (found by
/// fuzzing, profiler/tests/fixtures/netlink/found/ctnetlink-nftables-set.bin). A ctnetlink dump
/// socket only ever receives conntrack replies from the kernel.
impl Decoded for NetfilterMessage {
    fn decodes(message_type: u16) -> bool {
        message_type >> 8 == NFNL_SUBSYS_CTNETLINK
    }
}

/// Whether one request asks for a whole table (`NLM_F_DUMP`, replies end with `NLMSG_DONE`) or
/// for one object (the first reply ends the exchange).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchange {
    Dump,
    Single,
}

/// Sends `request` on a fresh socket of `protocol` and calls `visit` for every reply message.
/// `what` names the request in errors. An interrupted dump (`NLM_F_DUMP_INTR`, the table changed
/// meanwhile) is taken as it is: the collectors read counters, and a link or route appearing
/// mid-dump only means it may be missing from this one reading.
pub(crate) fn request<I>(
    protocol: isize,
    message: I,
    exchange: Exchange,
    what: &'static str,
    mut visit: impl FnMut(I) -> Result<(), CollectError>,
) -> Result<(), CollectError>
where
    I: NetlinkSerializable + Decoded,
{
    let io_err = |source| CollectError::Netlink { what, source };
    let mut socket = Socket::new(protocol).map_err(io_err)?;
    socket.bind_auto().map_err(io_err)?;
    socket
        .connect(&netlink_sys::SocketAddr::new(0, 0))
        .map_err(io_err)?;

    let mut header = NetlinkHeader::default();
    header.flags = match exchange {
        Exchange::Dump => NLM_F_REQUEST | NLM_F_DUMP,
        Exchange::Single => NLM_F_REQUEST,
    };
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    packet.finalize();
    let mut out = vec![0; packet.buffer_len()];
    packet.serialize(&mut out);
    socket.send(&out, 0).map_err(io_err)?;

    // The kernel fills each dump batch up to about 32 KiB; one link with its statistics is ~1.5 KiB.
    let mut buffer = vec![0u8; 128 * 1024];
    loop {
        let received = socket.recv(&mut &mut buffer[..], 0).map_err(io_err)?;
        let received = received.min(buffer.len());
        let mut skipped = 0;
        let batch = decode_batch(
            &buffer[..received],
            exchange,
            what,
            &mut skipped,
            &mut visit,
        )?;
        if skipped > 0 {
            log::debug!("{what}: skipped {skipped} messages of another kind");
        }
        if batch == Batch::Done {
            return Ok(());
        }
    }
}

/// Whether a batch of replies ended the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    More,
    Done,
}

/// Decodes one batch of replies as [`request`] receives it, calling `visit` for every message:
/// pure, so captured dumps replay through it ([`replay`]). Never reads past `bytes`. Messages
/// `I` does not decode ([`Decoded::decodes`]) are stepped over and added to `skipped`.
pub fn decode_batch<I: Decoded>(
    bytes: &[u8],
    exchange: Exchange,
    what: &'static str,
    skipped: &mut usize,
    visit: &mut impl FnMut(I) -> Result<(), CollectError>,
) -> Result<Batch, CollectError> {
    let decode = |reason: String| CollectError::NetlinkDecode { what, reason };
    let mut offset = 0;
    while offset < bytes.len() {
        let header =
            NetlinkBuffer::new_checked(&bytes[offset..]).map_err(|e| decode(e.to_string()))?;
        let message_type = header.message_type();
        if message_type >= NLMSG_MIN_TYPE && !I::decodes(message_type) {
            *skipped += 1;
            // new_checked saw the length fit in `bytes`; a length below a header ends the batch.
            let length = header.length() as usize;
            if length < 16 {
                return Err(decode(format!(
                    "message length {length} is shorter than its header"
                )));
            }
            offset += (length + 3) & !3;
            continue;
        }
        let reply = NetlinkMessage::<I>::deserialize(&bytes[offset..])
            .map_err(|e| decode(e.to_string()))?;
        let length = reply.header.length as usize;
        match reply.payload {
            NetlinkPayload::InnerMessage(inner) => {
                visit(inner)?;
                if exchange == Exchange::Single {
                    return Ok(Batch::Done);
                }
            }
            NetlinkPayload::Done(_) => return Ok(Batch::Done),
            NetlinkPayload::Error(error) => {
                if let Some(code) = error.code {
                    return Err(CollectError::Netlink {
                        what,
                        source: errno(code),
                    });
                }
                // An acknowledgement (error code 0) ends a single request.
                if exchange == Exchange::Single {
                    return Ok(Batch::Done);
                }
            }
            NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
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

/// The errno of a netlink error reply (the kernel sends it negated). Not `ErrorMessage::to_io`:
/// its `abs()` overflows on `i32::MIN`, which a corrupt reply can carry (found by fuzzing).
pub(crate) fn errno(code: std::num::NonZeroI32) -> std::io::Error {
    std::io::Error::from_raw_os_error(code.get().saturating_neg())
}

/// Runs `work` on a thread of its own that has entered the network namespace at `netns_path`
/// (`/var/run/netns/NAME` or `/proc/<pid>/ns/net`). The thread returns to its original namespace
/// before it ends, so no other thread ever sees the switch. Needs CAP_SYS_ADMIN.
pub fn in_netns<T: Send>(
    netns_path: &Path,
    work: impl FnOnce() -> Result<T, CollectError> + Send,
) -> Result<T, CollectError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CollectError::Read { path, source }
    };
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            let target = File::open(netns_path).map_err(read_err(netns_path))?;
            let home_path = Path::new(THREAD_NETNS);
            let home = File::open(home_path).map_err(read_err(home_path))?;
            setns(&target, CloneFlags::CLONE_NEWNET)
                .map_err(|errno| read_err(netns_path)(std::io::Error::from(errno)))?;
            let result = work();
            // Failing to return cannot leak the namespace: this thread ends right here.
            if let Err(errno) = setns(&home, CloneFlags::CLONE_NEWNET) {
                log::warn!("could not return from {}: {errno}", netns_path.display());
            }
            result
        });
        match thread.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The network namespace of the calling thread, named if a bind mount in /var/run/netns (or
/// Docker's /var/run/docker/netns) points at it.
pub fn current_netns() -> Result<NetnsId, CollectError> {
    let path = Path::new(THREAD_NETNS);
    let meta = std::fs::metadata(path).map_err(|source| CollectError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let name = named_netns()
        .into_iter()
        .find(|(_, dev, inode)| *dev == meta.dev() && *inode == meta.ino())
        .and_then(|(path, _, _)| path.file_name().map(|n| n.to_string_lossy().into_owned()));
    Ok(NetnsId {
        inode: meta.ino(),
        name,
    })
}

/// Named namespaces: (bind-mount path, device, inode). A stale name whose namespace is gone is an
/// empty file on tmpfs: its device differs from nsfs, so it matches no namespace.
pub(crate) fn named_netns() -> Vec<(PathBuf, u64, u64)> {
    let mut found = Vec::new();
    for dir in NAMED_NETNS_DIRS {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if let Ok(meta) = std::fs::metadata(&path) {
                found.push((path, meta.dev(), meta.ino()));
            }
        }
    }
    found.sort();
    found
}

/// Identity of the namespace at `path` (a named bind mount or `/proc/<pid>/ns/net`).
pub(crate) fn netns_at(path: &Path, name: Option<String>) -> Result<NetnsId, CollectError> {
    let meta = std::fs::metadata(path).map_err(|source| CollectError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(NetnsId {
        inode: meta.ino(),
        name,
    })
}
