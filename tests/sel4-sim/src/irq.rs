//! Interrupts: IRQ handler capabilities, notification binding and acknowledgement.
//!
//! As in seL4, the kernel masks an interrupt line when it delivers the interrupt and unmasks it
//! on `IRQHandler_Ack`. An interrupt raised while masked is latched (the line stays asserted, as
//! for a level-triggered source) and delivered at the acknowledgement, never before.

use crate::cap::Cap;
use crate::error::Error;
use crate::ids::{CapPtr, NtfnId, PdId, SlotRef};
use crate::sim::Sim;

/// Highest interrupt number the model accepts (x86 vectors leave 0..=223 for IRQs).
pub const MAX_IRQ: u32 = 223;

/// State of an interrupt line that has a handler.
#[derive(Debug)]
pub(crate) struct IrqState {
    /// Capabilities to the handler.
    pub handler_caps: u32,
    /// The notification (and the badge of the capability bound) the interrupt signals.
    pub bound: Option<(NtfnId, u64)>,
    /// Delivered and not yet acknowledged.
    pub masked: bool,
    /// Raised while masked; delivered at the next acknowledgement.
    pub latched: bool,
}

/// What raising an interrupt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IrqOutcome {
    /// Delivered: the bound notification was signalled and the line is masked until acked.
    Delivered,
    /// Delivered to nothing (no notification bound); the line is masked until acked.
    Undelivered,
    /// The line is masked (not yet acknowledged): latched for delivery at the acknowledgement.
    Latched,
    /// No handler exists for this interrupt; the kernel ignores it.
    NoHandler,
}

impl Sim {
    /// `IRQControl_Get`: creates the handler capability of `irq` in the lowest free slot of `pd`.
    ///
    /// # Errors
    /// `RangeError` for an IRQ above [`MAX_IRQ`], `RevokeFirst` if `irq` already has a handler
    /// (as seL4), `NotEnoughMemory` for a full CSpace, `NoSuchPd`.
    pub fn create_irq_handler(&mut self, pd: PdId, irq: u32) -> Result<CapPtr, Error> {
        if irq > MAX_IRQ {
            return self.refuse(Error::RangeError);
        }
        if self.irqs.contains_key(&irq) {
            return self.refuse(Error::RevokeFirst);
        }
        let slot = match self.free_slot(pd) {
            Ok(s) => s,
            Err(e) => return self.refuse(e),
        };
        self.irqs.insert(
            irq,
            IrqState {
                handler_caps: 0,
                bound: None,
                masked: false,
                latched: false,
            },
        );
        self.insert_cap(SlotRef::new(pd, slot), Cap::IrqHandler { irq }, None, true);
        Ok(slot)
    }

    fn irq_of(&self, handler: SlotRef) -> Result<u32, Error> {
        match self.slot(handler)?.cap {
            Some(Cap::IrqHandler { irq }) => Ok(irq),
            _ => Err(Error::InvalidCapability),
        }
    }

    /// `IRQHandler_SetNotification`: the interrupt will signal the notification capability
    /// `ntfn` (with its badge). Replaces an earlier binding.
    ///
    /// # Errors
    /// `InvalidCapability` if `handler` is no IRQ handler or `ntfn` no notification capability
    /// with the write right (as seL4); lookup errors.
    pub fn irq_set_notification(&mut self, handler: SlotRef, ntfn: SlotRef) -> Result<(), Error> {
        let irq = match self.irq_of(handler) {
            Ok(i) => i,
            Err(e) => return self.refuse(e),
        };
        let (id, badge) = match self.slot(ntfn).map(|s| s.cap) {
            Ok(Some(Cap::Notification { id, badge, rights })) if rights.write => (id, badge),
            Ok(_) => return self.refuse(Error::InvalidCapability),
            Err(e) => return self.refuse(e),
        };
        self.ntfn_add_ref(id);
        let old = self
            .irqs
            .get_mut(&irq)
            .and_then(|s| s.bound.replace((id, badge)));
        if let Some((old_id, _)) = old {
            self.ntfn_drop_ref(old_id);
        }
        Ok(())
    }

    /// `IRQHandler_Ack`: unmasks the line; a latched interrupt is delivered now.
    ///
    /// # Errors
    /// `InvalidCapability` if `handler` is no IRQ handler capability; lookup errors.
    pub fn irq_ack(&mut self, handler: SlotRef) -> Result<(), Error> {
        let irq = match self.irq_of(handler) {
            Ok(i) => i,
            Err(e) => return self.refuse(e),
        };
        self.counters.irq_acks += 1;
        let latched = self.irqs.get_mut(&irq).is_some_and(|s| {
            s.masked = false;
            core::mem::take(&mut s.latched)
        });
        if latched {
            self.raise_irq(irq);
        }
        Ok(())
    }

    /// The hardware raises interrupt `irq`.
    pub fn raise_irq(&mut self, irq: u32) -> IrqOutcome {
        let Some(state) = self.irqs.get_mut(&irq) else {
            return IrqOutcome::NoHandler;
        };
        if state.masked {
            state.latched = true;
            return IrqOutcome::Latched;
        }
        state.masked = true;
        match state.bound {
            Some((id, badge)) => {
                self.counters.irqs_delivered += 1;
                self.ntfn_signal(id, badge);
                IrqOutcome::Delivered
            }
            None => IrqOutcome::Undelivered,
        }
    }

    /// Whether `irq` is masked (delivered and not yet acknowledged).
    #[must_use]
    pub fn irq_masked(&self, irq: u32) -> bool {
        self.irqs.get(&irq).is_some_and(|s| s.masked)
    }
}
