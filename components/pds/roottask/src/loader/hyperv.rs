//! The driver of a system on Hyper-V: what the kernel's Hyper-V service handed the root task at
//! boot (`sel4::sys::bootinfo::HyperV`) goes to the driver PD, and to no other.
//!
//! - the SynIC message and event-flags frames, mapped read-write where the driver's wiring says
//!   (the message page at `synic_vaddr`, the event flags one page above);
//! - the `X86HyperV` capability (post message, signal event, end of message) at
//!   `pd_runtime::layout::slot::HYPERV`;
//! - the SINT2 interrupt: its handler bound to the driver's notification with the badge of
//!   `sint_channel`, and the handler itself at `IRQ_BASE + sint_channel` so that the driver
//!   acknowledges it with `irq_ack` like any interrupt channel.

use pd_runtime::layout::{PAGE, slot as pds};
use sel4::sys::bootinfo::HyperV as Boot;
use sel4::{Frame, IrqHandler, Notification, Rights, VSpace, Word};

use super::{BuildError, Ctx, PdCaps};
use crate::alloc::Alloc;
use crate::system::HyperV;
use crate::vspace;

/// Gives the driver (capabilities `c`, address space `vs`) the Hyper-V service as `wiring`
/// says; an error when the kernel found no Hyper-V (`boot` is `None`).
pub(super) fn give(
    cx: &mut Ctx<'_>,
    boot: Option<&Boot>,
    wiring: &HyperV,
    c: PdCaps,
    vs: VSpace,
) -> Result<(), BuildError> {
    let Some(boot) = boot else {
        // The description asks for Hyper-V and the kernel did not find it: a clear stop
        // rather than a driver that waits for an interrupt that never comes.
        return Err(BuildError {
            step: "Hyper-V service (the kernel found no Hyper-V: this system runs on Hyper-V or on QEMU with Hyper-V enlightenments)",
            pd: cx.pd,
            error: sel4::Error::IllegalOperation,
        });
    };
    let root = Alloc::root_cnode();
    for (frame, vaddr) in [
        (boot.sim, wiring.synic_vaddr),
        (boot.sief, wiring.synic_vaddr + PAGE),
    ] {
        let copy = at!(cx, "slot", cx.a.slot())?;
        at!(
            cx,
            "copy SynIC frame",
            root.copy(copy, root, frame, Rights::ALL)
        )?;
        at!(
            cx,
            "map SynIC frame",
            vspace::map(cx.a, &mut cx.sp, Frame(copy), vs, vaddr, Rights::READ_WRITE)
        )?;
    }
    let cn = c.cnode();
    at!(
        cx,
        "Hyper-V service cap",
        cn.copy(pds::HYPERV, root, boot.cap, Rights::ALL)
    )?;
    let badged = at!(cx, "slot", cx.a.slot())?;
    at!(
        cx,
        "SINT notification",
        root.mint(
            badged,
            root,
            c.ntfn,
            Rights::ALL,
            1 << Word::from(wiring.sint_channel)
        )
    )?;
    at!(
        cx,
        "bind SINT interrupt",
        IrqHandler(boot.irq_handler).set_notification(Notification(badged))
    )?;
    at!(
        cx,
        "SINT interrupt cap",
        cn.copy(
            pds::IRQ_BASE + Word::from(wiring.sint_channel),
            root,
            boot.irq_handler,
            Rights::ALL
        )
    )?;
    Ok(())
}
