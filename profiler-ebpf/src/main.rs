//! chokepoint's kernel programs. Every program is a classic tracepoint (the base layer every
//! kernel we support has), aggregates into maps in the kernel, and sends only rare process
//! events through a ring buffer. User space reads the maps once per interval.
#![no_std]
#![no_main]

mod conn;
mod maps;
mod net;
mod sched;
mod sock_io;
mod softirq;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
