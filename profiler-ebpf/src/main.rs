//! chokepoint's kernel programs: classic tracepoints (the base layer every kernel we support
//! has), and for the hottest variants that take the tracepoint's own arguments: BTF
//! tracepoints (plain loads through typed pointers), raw tracepoints where those are refused. They
//! aggregate into maps in the kernel and send only rare process events through a ring buffer.
//! User space reads the maps once per interval.
#![no_std]
#![no_main]

mod conn;
mod empty;
mod maps;
mod net;
mod sched;
mod sock_io;
mod sock_syscalls;
mod softirq;
mod timer;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
