//! Finer scheduling for the race tests: a driver step that handles at most one SynIC message.
//!
//! In a normal driver step the interrupt handler consumes every pending message, and since the
//! simulated host answers a posted message at once, a whole exchange (a rescind, CLOSECHANNEL,
//! GPADL_TEARDOWN, GPADL_TORNDOWN, RELID_RELEASED) can complete inside one step. A race test
//! must inject its input between any two of those messages. [`World::driver_message_step`]
//! runs the same handler but shows it the message slot as empty once it consumed one message,
//! which is exactly what the driver sees when the host is slower than the driver; the next call
//! continues with the next message.

use sel4_sim::SlotRef;
use vmbus_driver::hv::{HvMessageType, HvStatus, Hypervisor};
use vmbus_driver::ids::ConnectionId;

use crate::kernel::DriverKernel;
use crate::world::{Core, TraceEvent, World};
use hv_host::GuestPort;

/// A hypervisor seam that hides the message slot after one message was consumed (after the
/// consumer's re-read of the pending flag, so the EOM rule still sees the real slot).
struct OneMessage<'a, H: Hypervisor> {
    inner: &'a mut H,
    cleared: bool,
    reads_after_clear: u32,
}

impl<H: Hypervisor> Hypervisor for OneMessage<'_, H> {
    fn post_message(
        &mut self,
        connection: ConnectionId,
        message_type: HvMessageType,
        payload: &[u8],
    ) -> HvStatus {
        self.inner.post_message(connection, message_type, payload)
    }

    fn signal_event(&mut self, connection: ConnectionId, flag_number: u16) -> HvStatus {
        self.inner.signal_event(connection, flag_number)
    }

    fn read_message_slot(&mut self, sint: u8) -> [u8; 256] {
        if self.cleared {
            self.reads_after_clear += 1;
            if self.reads_after_clear > 1 {
                return [0; 256];
            }
        }
        self.inner.read_message_slot(sint)
    }

    fn clear_message_slot(&mut self, sint: u8, expected_type: HvMessageType) -> bool {
        let ok = self.inner.clear_message_slot(sint, expected_type);
        self.cleared |= ok;
        ok
    }

    fn end_of_message(&mut self) {
        self.inner.end_of_message();
    }

    fn take_event_flags(&mut self, sint: u8, word: usize) -> u32 {
        self.inner.take_event_flags(sint, word)
    }
}

impl Core {
    /// The interrupt part of a driver step, handling at most one message.
    fn driver_interrupt_one(&mut self) {
        let driver_pd = self.inst.driver();
        let word = {
            let mut k = self.inst.kernel().borrow_mut();
            match k.seam.driver_notification() {
                Some(n) => k.sim.wait(SlotRef::new(driver_pd, n)).ok().flatten(),
                None => None,
            }
        };
        let delivered = word.is_some_and(|w| w & self.inst.vmbus_irq().badge != 0);
        if !delivered && !self.interrupt_more {
            return;
        }
        let now = self.now;
        {
            let mut k = self.inst.kernel().borrow_mut();
            let mut dk = DriverKernel::new(&mut k, self.inst.clients());
            let mut port = GuestPort::new(&mut self.host);
            let mut hv = OneMessage {
                inner: &mut port,
                cleared: false,
                reads_after_clear: 0,
            };
            self.driver.on_interrupt(&mut hv, &mut dk, now);
        }
        // A message left in the slot is handled at the next step, interrupt or not.
        self.interrupt_more = self.host.synic().slot_busy();
        self.trace(TraceEvent::DriverInterrupt {
            more: self.interrupt_more,
        });
        self.raise_pending_irq();
    }
}

impl World {
    /// A driver step (faults, interrupt, tick) whose interrupt handler takes at most one SynIC
    /// message; the rest wait for the next step (see the module documentation).
    pub fn driver_message_step(&mut self) {
        let core = &mut self.core;
        core.driver_faults();
        core.driver_interrupt_one();
        core.driver_tick();
    }
}
