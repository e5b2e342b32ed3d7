//! Programs that do nothing, attached in place of the real ones when a benchmark asks
//! (`CHOKEPOINT_EMPTY_PROGRAMS`): what the hooks alone cost, the floor under any program body.
//! They count their runs as every program does (`RUNS`), so the floor includes that counter
//! and its recordings are priced like any other.
use aya_ebpf::{
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use chokepoint_common::run;

use crate::maps::ran;

#[raw_tracepoint]
pub fn empty_raw(_ctx: RawTracePointContext) -> u32 {
    ran(run::EMPTY_RAW);
    0
}

#[tracepoint]
pub fn empty_tp(_ctx: TracePointContext) -> u32 {
    ran(run::EMPTY_TP);
    0
}
