//! Memory accesses of simulated PDs, always through their VSpace.
//!
//! An access is checked page by page before any byte moves, so a faulting access has no effect
//! (as an x86 instruction that faults on its second page stores nothing). The fault names the
//! first byte of the first page that refused the access.

use core::fmt;

use crate::fault::{Access, FaultKind, FaultMessage, PdState};
use crate::frames::PAGE_SIZE;
use crate::ids::{FrameId, PdId};
use crate::sim::Sim;

/// Why a PD's memory access did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemError {
    /// The access faulted; the PD is now stopped and its fault handler has the message.
    Fault(FaultMessage),
    /// The PD is stopped by an earlier fault and executes nothing until resumed.
    Stopped(PdId),
    /// No such PD.
    NoSuchPd(PdId),
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fault(m) => match m.kind {
                FaultKind::VmFault {
                    vaddr,
                    access,
                    present,
                } => write!(
                    f,
                    "pd{} faulted: {} at {vaddr:#x} ({})",
                    m.pd.0,
                    if access == Access::Write {
                        "write"
                    } else {
                        "read"
                    },
                    if present {
                        "not permitted"
                    } else {
                        "not mapped"
                    }
                ),
            },
            Self::Stopped(pd) => write!(f, "pd{} is stopped by a fault", pd.0),
            Self::NoSuchPd(pd) => write!(f, "no pd{}", pd.0),
        }
    }
}

impl std::error::Error for MemError {}

/// One page-sized piece of an access: which frame, where in it, which part of the caller's buffer.
type Piece = (FrameId, usize, core::ops::Range<usize>);

impl Sim {
    /// Reads `buf.len()` bytes at `vaddr` of `pd`'s address space.
    ///
    /// # Errors
    /// [`MemError::Fault`] for an unmapped or unreadable page (recorded and delivered to the
    /// PD's fault handler, the PD stops), [`MemError::Stopped`], [`MemError::NoSuchPd`].
    pub fn read(&mut self, pd: PdId, vaddr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let pieces = self.plan(pd, vaddr, buf.len(), Access::Read)?;
        for (frame, off, range) in pieces {
            if let Some(f) = self.frame_obj(frame) {
                let len = range.len();
                buf[range].copy_from_slice(&f.data[off..off + len]);
            }
        }
        self.counters.reads += 1;
        Ok(())
    }

    /// Writes `data` at `vaddr` of `pd`'s address space.
    ///
    /// # Errors
    /// As [`Sim::read`], with a read-only mapping also faulting.
    pub fn write(&mut self, pd: PdId, vaddr: u64, data: &[u8]) -> Result<(), MemError> {
        let pieces = self.plan(pd, vaddr, data.len(), Access::Write)?;
        for (frame, off, range) in pieces {
            if let Some(f) = self.frame_obj_mut(frame) {
                let len = range.len();
                f.data[off..off + len].copy_from_slice(&data[range]);
            }
        }
        self.counters.writes += 1;
        Ok(())
    }

    /// Loads a little-endian `u32` at `vaddr`.
    ///
    /// # Errors
    /// As [`Sim::read`].
    pub fn read_u32(&mut self, pd: PdId, vaddr: u64) -> Result<u32, MemError> {
        let mut b = [0; 4];
        self.read(pd, vaddr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Loads a little-endian `u64` at `vaddr`.
    ///
    /// # Errors
    /// As [`Sim::read`].
    pub fn read_u64(&mut self, pd: PdId, vaddr: u64) -> Result<u64, MemError> {
        let mut b = [0; 8];
        self.read(pd, vaddr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Stores a little-endian `u32` at `vaddr`.
    ///
    /// # Errors
    /// As [`Sim::write`].
    pub fn write_u32(&mut self, pd: PdId, vaddr: u64, value: u32) -> Result<(), MemError> {
        self.write(pd, vaddr, &value.to_le_bytes())
    }

    /// Stores a little-endian `u64` at `vaddr`.
    ///
    /// # Errors
    /// As [`Sim::write`].
    pub fn write_u64(&mut self, pd: PdId, vaddr: u64, value: u64) -> Result<(), MemError> {
        self.write(pd, vaddr, &value.to_le_bytes())
    }

    /// Reads through `pd`'s VSpace without side effects: a refused access is reported as the
    /// fault it would raise but is neither recorded nor delivered, and the PD keeps running.
    /// For observers that must not disturb the system (and for `&self` seam methods).
    ///
    /// # Errors
    /// The [`FaultKind`] the access would raise; `None` for an unknown or stopped PD.
    pub fn peek(&self, pd: PdId, vaddr: u64, buf: &mut [u8]) -> Result<(), Option<FaultKind>> {
        match self.pd(pd) {
            Ok(p) if p.fault.state == PdState::Running => {}
            _ => return Err(None),
        }
        let pieces = self
            .pieces(pd, vaddr, buf.len(), Access::Read)
            .map_err(Some)?;
        for (frame, off, range) in pieces {
            if let Some(f) = self.frame_obj(frame) {
                let len = range.len();
                buf[range].copy_from_slice(&f.data[off..off + len]);
            }
        }
        Ok(())
    }

    /// Checks a whole access, raising the fault if a page refuses it.
    fn plan(
        &mut self,
        pd: PdId,
        vaddr: u64,
        len: usize,
        access: Access,
    ) -> Result<Vec<Piece>, MemError> {
        match self.pd(pd) {
            Err(_) => return Err(MemError::NoSuchPd(pd)),
            Ok(p) if p.fault.state == PdState::Stopped => return Err(MemError::Stopped(pd)),
            Ok(_) => {}
        }
        self.pieces(pd, vaddr, len, access)
            .map_err(|kind| MemError::Fault(self.raise_fault(pd, kind)))
    }

    /// Splits an access into per-page pieces, or names the fault it raises.
    fn pieces(
        &self,
        pd: PdId,
        vaddr: u64,
        len: usize,
        access: Access,
    ) -> Result<Vec<Piece>, FaultKind> {
        let write = access == Access::Write;
        let mut out = Vec::new();
        let mut done = 0usize;
        while done < len {
            let Some(addr) = vaddr.checked_add(done as u64) else {
                // Wrapping past the top of the address space: nothing is mapped there.
                return Err(FaultKind::VmFault {
                    vaddr,
                    access,
                    present: false,
                });
            };
            let (frame, off) =
                self.translate(pd, addr, write)
                    .map_err(|present| FaultKind::VmFault {
                        vaddr: addr,
                        access,
                        present,
                    })?;
            let chunk = (PAGE_SIZE - off).min(len - done);
            out.push((frame, off, done..done + chunk));
            done += chunk;
        }
        Ok(out)
    }
}
