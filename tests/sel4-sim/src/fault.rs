//! Faults of simulated PDs and their delivery to fault handlers.

use std::collections::VecDeque;

use crate::error::Error;
use crate::ids::PdId;
use crate::sim::Sim;

/// The kind of memory access that faulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
}

/// What went wrong (seL4 fault types the simulation raises).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// `seL4_Fault_VMFault`: an access to a virtual address that is unmapped (`present` false) or
    /// mapped without the needed right (`present` true, as x86's error-code bit 0).
    VmFault {
        /// First byte of the access that the VSpace refused.
        vaddr: u64,
        /// Load or store.
        access: Access,
        /// Whether a mapping existed (a protection fault) or not (a not-present fault).
        present: bool,
    },
}

/// A fault message as the fault handler receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FaultMessage {
    /// The PD that faulted.
    pub pd: PdId,
    /// What happened.
    pub kind: FaultKind,
    /// Sequence number of the fault in the whole simulation (0, 1, ...), for ordering.
    pub seq: u64,
}

/// Whether a PD runs or is stopped by a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PdState {
    /// The PD runs; its accesses are carried out.
    Running,
    /// The PD faulted and waits for its fault handler to resume it; it makes no accesses.
    Stopped,
}

/// Per-PD fault bookkeeping.
#[derive(Debug)]
pub(crate) struct FaultState {
    /// Who receives this PD's faults (Microkit: the parent PD); `None`: nobody, the fault is only
    /// logged and the PD stays stopped (seL4 suspends a thread without a fault handler).
    pub handler: Option<PdId>,
    /// Faults delivered to this PD as a fault handler, oldest first.
    pub inbox: VecDeque<FaultMessage>,
    /// Running or stopped.
    pub state: PdState,
}

impl FaultState {
    pub fn new() -> Self {
        Self {
            handler: None,
            inbox: VecDeque::new(),
            state: PdState::Running,
        }
    }
}

impl Sim {
    /// Makes `handler` the fault handler of `pd` (`None`: no handler).
    ///
    /// # Errors
    /// [`Error::NoSuchPd`] if either PD does not exist.
    pub fn set_fault_handler(&mut self, pd: PdId, handler: Option<PdId>) -> Result<(), Error> {
        if let Some(h) = handler {
            self.pd(h)?;
        }
        self.pd_mut(pd)?.fault.handler = handler;
        Ok(())
    }

    /// Raises a fault for `pd`: stops it, logs the fault and queues it for its handler.
    pub(crate) fn raise_fault(&mut self, pd: PdId, kind: FaultKind) -> FaultMessage {
        let msg = FaultMessage {
            pd,
            kind,
            seq: self.fault_log.len() as u64,
        };
        self.fault_log.push(msg);
        self.counters.faults += 1;
        let handler = match self.pd_mut(pd) {
            Ok(p) => {
                p.fault.state = PdState::Stopped;
                p.fault.handler
            }
            Err(_) => None,
        };
        if let Some(h) = handler
            && let Ok(hp) = self.pd_mut(h)
        {
            hp.fault.inbox.push_back(msg);
        }
        msg
    }

    /// Takes the oldest fault delivered to `handler`, as its `fault()` entry point would.
    ///
    /// # Errors
    /// [`Error::NoSuchPd`] if `handler` does not exist.
    pub fn take_fault(&mut self, handler: PdId) -> Result<Option<FaultMessage>, Error> {
        Ok(self.pd_mut(handler)?.fault.inbox.pop_front())
    }

    /// The faults delivered to `handler` and not yet taken, oldest first.
    ///
    /// # Errors
    /// [`Error::NoSuchPd`] if `handler` does not exist.
    pub fn pending_faults(&self, handler: PdId) -> Result<&VecDeque<FaultMessage>, Error> {
        Ok(&self.pd(handler)?.fault.inbox)
    }

    /// Every fault raised so far, handled or not, in order.
    #[must_use]
    pub fn fault_log(&self) -> &[FaultMessage] {
        &self.fault_log
    }

    /// Whether `pd` runs or is stopped by a fault.
    ///
    /// # Errors
    /// [`Error::NoSuchPd`] if `pd` does not exist.
    pub fn pd_state(&self, pd: PdId) -> Result<PdState, Error> {
        Ok(self.pd(pd)?.fault.state)
    }

    /// Resumes a stopped PD (its fault handler replied to the fault).
    ///
    /// # Errors
    /// [`Error::NoSuchPd`] if `pd` does not exist.
    pub fn resume(&mut self, pd: PdId) -> Result<(), Error> {
        self.pd_mut(pd)?.fault.state = PdState::Running;
        Ok(())
    }
}
