//! vzbpf kernel side. One small module per program family; maps and the beancounter
//! arithmetic they share live in `maps` and `ubc`.
#![no_std]
#![no_main]
// BPF inline asm (for atomics, see ubc.rs) is unstable; aya-ebpf enables the same feature.
#![feature(asm_experimental_arch)]

mod bind;
mod blkio;
mod dcache;
mod device;
mod exit;
mod iter;
mod maps;
mod net;
mod noop;
mod signal;
mod sock;
mod sockbuf;
mod sysctl;
mod ubc;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects any program that could reach this; it exists only to link.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
