//! Captured netlink dumps decoded exactly as the collectors decode what the kernel sends them:
//! the same batch decoders ([`super::decode_batch`], the inet_diag one) and the same
//! conversions into links, addresses, routes, qdiscs, sockets and conntrack entries. Nothing
//! here opens a socket: the property tests and fuzz targets feed it bytes (captures in
//! profiler/tests/fixtures/netlink, written by its capture.py), so a reply the kernel could
//! send can never panic or hang a collector.
use std::collections::HashMap;

use netlink_packet_netfilter::{
    NetfilterMessage, NetfilterMessageInner, conntrack::ConntrackMessage,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{super::CollectError, Batch, Exchange, decode_batch};
use crate::collect::{conntrack, qdisc, sockdiag, topology};

/// The batches of one capture, decoded as a dump reply: what the decoders understood.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Messages turned into a link, address, route, qdisc, socket or conntrack entry.
    pub objects: usize,
    /// Messages of a kind the collector does not decode, stepped over unread.
    pub skipped: usize,
    /// The capture ended with NLMSG_DONE.
    pub done: bool,
}

/// An rtnetlink dump (links, addresses, routes or qdiscs, as `topology` and `qdisc` read them).
pub fn rtnetlink(bytes: &[u8]) -> Result<Replayed, CollectError> {
    let mut objects = 0;
    let mut skipped = 0;
    let names = HashMap::new();
    let batch = decode_batch(
        bytes,
        Exchange::Dump,
        "rtnetlink dump (replayed)",
        &mut skipped,
        &mut |reply: RouteNetlinkMessage| {
            let understood = match &reply {
                RouteNetlinkMessage::NewLink(m) => {
                    topology::link_from_message(m);
                    true
                }
                RouteNetlinkMessage::NewAddress(m) => topology::address_from_message(m).is_some(),
                RouteNetlinkMessage::NewRoute(m) => topology::route_from_message(m).is_some(),
                RouteNetlinkMessage::NewQueueDiscipline(m) => {
                    qdisc::qdisc_from_message(m, &names);
                    true
                }
                _ => false,
            };
            objects += usize::from(understood);
            Ok(())
        },
    )?;
    Ok(Replayed {
        objects,
        skipped,
        done: batch == Batch::Done,
    })
}

/// An inet_diag TCP dump, its attributes (tcp_info, meminfo) decoded as `send_limits` asks.
pub fn sock_diag(bytes: &[u8]) -> Result<Replayed, CollectError> {
    let mut objects = 0;
    let mut count = |_: sockdiag::DiagSocket, _: &sockdiag::DiagExtras| objects += 1;
    let bare = sockdiag::decode_batch(bytes, true, "inet_diag dump (replayed)", &mut count);
    let batch = sockdiag::decode_batch(bytes, false, "inet_diag dump (replayed)", &mut count);
    bare?;
    Ok(Replayed {
        objects,
        skipped: 0,
        done: batch? == Batch::Done,
    })
}

/// A ctnetlink conntrack dump, as `conntrack::entries_for_ports` reads it.
pub fn ctnetlink(bytes: &[u8]) -> Result<Replayed, CollectError> {
    let mut objects = 0;
    let mut skipped = 0;
    let batch = decode_batch(
        bytes,
        Exchange::Dump,
        "ctnetlink dump (replayed)",
        &mut skipped,
        &mut |reply: NetfilterMessage| {
            if let NetfilterMessageInner::Conntrack(ConntrackMessage::New(attributes)) = reply.inner
            {
                conntrack::entry_from_attributes(&attributes);
                objects += 1;
            }
            Ok(())
        },
    )?;
    Ok(Replayed {
        objects,
        skipped,
        done: batch == Batch::Done,
    })
}

/// The tc options payloads and tcp_info blobs the collectors decode by hand.
pub fn raw_attributes(bytes: &[u8]) {
    qdisc::tbf_rate(bytes);
    qdisc::htb_rates(bytes);
    sockdiag::TcpChrono::from_tcp_info(bytes);
}
