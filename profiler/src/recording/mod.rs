//! The recording: an append-only JSON-lines file. A header, one line per interval (flushed as
//! it is written, so a crash loses at most one interval), and an end line. `analysis` reads it
//! back; nothing here touches the kernel. The format is documented in docs/recording.md.
mod histogram;
pub mod pools;
mod reader;
mod rows;
mod types;
mod writer;

pub use histogram::LogHistogram;
pub use reader::{Recording, RecordingError};
pub use rows::*;
pub use types::*;
pub use writer::{Finished, RecordingWriter};

/// Bumped when a change would make older readers misread a recording.
pub const FORMAT_VERSION: u32 = 1;
