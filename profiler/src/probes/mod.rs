//! Kernel side: tracepoint layouts, loading and attaching the programs, reading their maps.
pub mod format;
pub mod tracepoints;
