//! Load-generator timelines: readers for each tool's output, alignment, knee/USL analysis.
pub mod cli;
