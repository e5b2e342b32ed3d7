//! Packets and bytes per network device: `net:net_dev_xmit` (handed to the driver),
//! `net:netif_receive_skb` (received into the stack) and `net:netif_rx` (queued to a CPU's
//! backlog by a software device). The record names the device through a
//! `__data_loc char[]` field: a u32 holding the name's offset in the record (low 16 bits) and
//! its length (high 16 bits).
use aya_ebpf::{
    EbpfContext as _, helpers::bpf_probe_read_kernel_str_bytes, macros::map, maps::PerCpuHashMap,
    programs::TracePointContext,
};
use chokepoint_common::{
    Counter, IFNAMSIZ, NET_BACKLOG, NET_RECEIVE, NET_XMIT, NetDevCounts, NetDevKey, run,
};

use crate::maps::{count, fast_and_compat, field};

#[map]
pub static NET_DEVICES: PerCpuHashMap<NetDevKey, NetDevCounts> =
    PerCpuHashMap::with_max_entries(1024, 0);

fast_and_compat!(net_dev_xmit, net_dev_xmit_compat, xmit, run::NET_DEV_XMIT);
fast_and_compat!(
    netif_receive_skb,
    netif_receive_skb_compat,
    receive,
    run::NETIF_RECEIVE_SKB
);
fast_and_compat!(netif_rx, netif_rx_compat, backlog, run::NETIF_RX);

fn xmit<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    let len: u32 = field!(ctx, FAST, net_xmit_len);
    let loc: u32 = field!(ctx, FAST, net_xmit_name);
    bump(ctx, loc, NET_XMIT, len);
    0
}

fn receive<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    let len: u32 = field!(ctx, FAST, net_receive_len);
    let loc: u32 = field!(ctx, FAST, net_receive_name);
    bump(ctx, loc, NET_RECEIVE, len);
    0
}

fn backlog<const FAST: bool>(ctx: &TracePointContext) -> u32 {
    let len: u32 = field!(ctx, FAST, net_rx_len);
    let loc: u32 = field!(ctx, FAST, net_rx_name);
    bump(ctx, loc, NET_BACKLOG, len);
    0
}

#[inline(always)]
fn bump(ctx: &TracePointContext, loc: u32, direction: u32, len: u32) {
    let mut key = NetDevKey {
        name: [0; IFNAMSIZ],
        direction,
    };
    let offset = (loc & 0xffff) as usize;
    // SAFETY: the helper checks the read; it stops at the NUL and leaves the rest zero.
    let src = unsafe { ctx.as_ptr().cast::<u8>().add(offset) };
    if unsafe { bpf_probe_read_kernel_str_bytes(src, &mut key.name) }.is_err() {
        return;
    }
    if let Some(c) = NET_DEVICES.get_ptr_mut(key) {
        // SAFETY: per-CPU value.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len as u64;
        }
        return;
    }
    let first = NetDevCounts {
        packets: 1,
        bytes: len as u64,
    };
    if NET_DEVICES.insert(key, first, 0).is_err() {
        count(Counter::MapUpdateFailed);
    }
}
