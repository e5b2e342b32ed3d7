//! Programs that do nothing, attached in place of the real ones when a benchmark asks
//! (`CHOKEPOINT_EMPTY_PROGRAMS`): what the hooks alone cost, the floor under any program body.
use aya_ebpf::{
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};

#[raw_tracepoint]
pub fn empty_raw(_ctx: RawTracePointContext) -> u32 {
    0
}

#[tracepoint]
pub fn empty_tp(_ctx: TracePointContext) -> u32 {
    0
}
