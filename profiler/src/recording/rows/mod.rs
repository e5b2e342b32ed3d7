//! The rows the collectors and probes fill and an interval (or the header) holds: defined here
//! so the file's format has one owner; `collect` and `probes` read the kernel into them.
mod cpu_limits;
mod host;
mod net;
mod probes;
mod sockets;

pub use cpu_limits::*;
pub use host::*;
pub use net::*;
pub use probes::*;
pub use sockets::*;
