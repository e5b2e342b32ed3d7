//! Fixtures for chokepoint's end-to-end tests: everything `chokepoint-testbed` offers (real
//! servers, load generators, kernel counters, the binary under test) plus what needs the
//! profiler crate itself (nginx inside the lab's docker-like network).
mod netns;
mod programs;

pub use chokepoint_testbed::*;
pub use netns::{NsNginx, netns_unavailable};
pub use programs::{held_program_ids, left_behind, program_ids};
