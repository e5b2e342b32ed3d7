//! Kernel side: tracepoint layouts, kernel struct offsets (BTF), loading and attaching the programs, reading their maps.
pub mod batch;
pub mod demand;
pub mod duty;
pub mod format;
pub mod kernel_btf;
pub mod loader;
pub mod reader;
pub mod socket_syscalls;
pub mod stats;
pub mod tracepoints;
