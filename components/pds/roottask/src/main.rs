//! The root task: builds the described system (PDs, memory, channels, grants) and supervises it.
//!
//! It runs first, with every capability the kernel hands out at boot; [`loader`] turns the
//! system table (generated from the system description by `cargo xtask image`) into kernel
//! objects, and [`monitor`] handles faults and reports afterwards.
#![no_std]
#![no_main]

mod alloc;
mod elf;
mod loader;
mod monitor;
mod system;
mod vspace;

use sel4::entry::Start;
use sel4::println;

fn main(start: Start) -> ! {
    println!("root: seL4 root task started");
    let Some(bi) = start.bootinfo else {
        println!("root: no boot information");
        monitor::exit(false);
    };
    let mut a = alloc::Alloc::new(&bi);
    let (slots, ram) = (bi.empty().end - bi.empty().start, a.ram_bytes(&bi));
    println!("root: {slots} free slots, {} MiB of untyped RAM", ram >> 20);
    println!(
        "root: {} PDs, {} regions, {} channels to build",
        system::SYSTEM.pds.len(),
        system::SYSTEM.regions.len(),
        system::SYSTEM.channels.len()
    );
    let hv = bi.hyperv();
    match &hv {
        Some(h) => println!(
            "root: Hyper-V service: SINT2 on vector {:#x} (IRQ {}), VP {}, features {:#x}",
            h.vector, h.irq, h.vp_index, h.features
        ),
        None => println!("root: no Hyper-V service (the kernel found no Hyper-V)"),
    }
    match loader::build(&system::SYSTEM, &mut a, hv.as_ref()) {
        Ok(built) => {
            let c = a.counts.by_kind;
            println!(
                "root: system started; kernel objects created: {} (TCB {}, endpoint {}, notification {}, CNode {}, VSpace {}, paging {}, frame {})",
                a.counts.total(),
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                c[5],
                c[6]
            );
            monitor::run(&system::SYSTEM, &built, &mut a)
        }
        Err(e) => {
            println!("root: build failed: {e}");
            monitor::exit(false)
        }
    }
}

sel4::declare_main!(main);
