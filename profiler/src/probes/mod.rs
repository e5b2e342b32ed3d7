//! Kernel side: tracepoint layouts, loading and attaching the programs, reading their maps.
pub mod format;
pub mod loader;
pub mod reader;
pub mod stats;
pub mod tracepoints;
