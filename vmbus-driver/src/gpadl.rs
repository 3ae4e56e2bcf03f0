//! GPADL construction from page frame numbers, and the host-side reassembly.
//!
//! A guest describes a buffer to the host as one page-aligned range, the form every host accepts
//! (QEMU requires exactly it): `rangecount = 1`, `byte_offset = 0`, `byte_count = n · 4096`,
//! `range_buflen = 8 + 8n`. The first 26 PFNs ride in GPADL_HEADER, the rest in GPADL_BODY
//! messages of up to 28 each (docs/protocol.md#message-layouts).
//!
//! `range_buflen` is a u16, so a single range can hold at most (65535 − 8) / 8 = [`MAX_PFNS`] =
//! 8190 pages (32 MiB − 8 KiB); larger buffers need several GPADLs.

use core::fmt;

use crate::hv::{PAGE_SIZE_U32, PAGE_SIZE_U64};
use crate::ids::{GpadlId, RelId};
use crate::msg::{ChannelMessage, GpadlBody, GpadlHeader, PfnList, RangeWords};

/// The most PFNs one single-range GPADL can describe: `range_buflen = 8 + 8n` must fit in a u16.
pub const MAX_PFNS: usize = (u16::MAX as usize - 8) / 8;

/// Why a PFN list cannot be described as a GPADL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpadlBuildError {
    /// No PFNs.
    Empty,
    /// More PFNs than one range can describe.
    TooManyPfns {
        /// PFNs given.
        count: usize,
        /// [`MAX_PFNS`].
        max: usize,
    },
}

impl fmt::Display for GpadlBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpadlBuildError::Empty => f.write_str("a GPADL needs at least one page"),
            GpadlBuildError::TooManyPfns { count, max } => {
                write!(
                    f,
                    "{count} pages exceed the {max} one GPADL range can describe"
                )
            }
        }
    }
}

/// The number of channel messages (one header plus bodies) that describe `pfn_count` pages.
pub fn message_count(pfn_count: usize) -> usize {
    1 + pfn_count
        .saturating_sub(GpadlHeader::MAX_PFNS)
        .div_ceil(GpadlBody::MAX_PFNS)
}

/// Iterator over the GPADL_HEADER and GPADL_BODY messages that describe a PFN list. No
/// allocation: each message copies its slice of PFNs into its fixed array.
#[derive(Clone, Debug)]
pub struct GpadlMessages<'a> {
    child_relid: RelId,
    gpadl: GpadlId,
    pfns: &'a [u64],
    /// Index of the next PFN to send; `None` until the header went out.
    next: Option<usize>,
}

/// Builds the messages that create GPADL `gpadl` for channel `child_relid` over `pfns`.
pub fn gpadl_messages(
    child_relid: RelId,
    gpadl: GpadlId,
    pfns: &[u64],
) -> Result<GpadlMessages<'_>, GpadlBuildError> {
    if pfns.is_empty() {
        return Err(GpadlBuildError::Empty);
    }
    if pfns.len() > MAX_PFNS {
        return Err(GpadlBuildError::TooManyPfns {
            count: pfns.len(),
            max: MAX_PFNS,
        });
    }
    Ok(GpadlMessages {
        child_relid,
        gpadl,
        pfns,
        next: None,
    })
}

impl Iterator for GpadlMessages<'_> {
    type Item = ChannelMessage;

    fn next(&mut self) -> Option<ChannelMessage> {
        let n = self.pfns.len();
        match self.next {
            None => {
                let take = n.min(GpadlHeader::MAX_PFNS);
                let mut range_data = RangeWords::new();
                // byte_count (bits 31:0) = n pages, byte_offset (bits 63:32) = 0. n <= 8190 so
                // neither the u32 byte count nor the u16 buffer length can overflow.
                let byte_count = n as u64 * PAGE_SIZE_U64;
                let _ = range_data.push(byte_count);
                for p in &self.pfns[..take] {
                    let _ = range_data.push(*p);
                }
                self.next = Some(take);
                Some(ChannelMessage::GpadlHeader(GpadlHeader {
                    child_relid: self.child_relid,
                    gpadl: self.gpadl,
                    range_buflen: (8 + 8 * n) as u16,
                    rangecount: 1,
                    range_data,
                }))
            }
            Some(start) if start < n => {
                let end = n.min(start + GpadlBody::MAX_PFNS);
                self.next = Some(end);
                Some(ChannelMessage::GpadlBody(GpadlBody {
                    // Linux sends 0; nobody reads it.
                    msgnumber: 0,
                    gpadl: self.gpadl,
                    pfns: PfnList::from_slice(&self.pfns[start..end])?,
                }))
            }
            Some(_) => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.pfns.len();
        let left = match self.next {
            None => message_count(n),
            Some(start) => n.saturating_sub(start).div_ceil(GpadlBody::MAX_PFNS),
        };
        (left, Some(left))
    }
}

impl ExactSizeIterator for GpadlMessages<'_> {}

/// Why a host refuses a GPADL message sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReassemblyError {
    /// A GPADL_HEADER arrived while another GPADL is incomplete or its result not yet taken.
    HeaderWhileBusy {
        /// The GPADL in progress.
        current: GpadlId,
        /// The new header's GPADL.
        got: GpadlId,
    },
    /// A GPADL_BODY arrived with no GPADL in progress.
    BodyWithoutHeader {
        /// The body's GPADL.
        gpadl: GpadlId,
    },
    /// A GPADL_BODY for a GPADL other than the one in progress.
    UnknownGpadl {
        /// The GPADL in progress.
        expected: GpadlId,
        /// The body's GPADL.
        got: GpadlId,
    },
    /// The header describes more than one range; only single-range GPADLs are reassembled.
    MultiRange {
        /// The header's rangecount.
        rangecount: u16,
    },
    /// The range is not page-aligned (byte_offset != 0, byte_count not a multiple of 4096 or 0),
    /// or range_buflen does not match it.
    RangeInvalid,
    /// More pages than this reassembler holds.
    TooManyPfns {
        /// Pages described.
        count: usize,
        /// The reassembler's capacity.
        capacity: usize,
    },
    /// The messages carry more PFNs than the header described.
    Overflow {
        /// The GPADL concerned.
        gpadl: GpadlId,
    },
}

impl fmt::Display for ReassemblyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReassemblyError::HeaderWhileBusy { current, got } => {
                write!(f, "GPADL header for {got} while {current} is in progress")
            }
            ReassemblyError::BodyWithoutHeader { gpadl } => {
                write!(f, "GPADL body for {gpadl} without a header")
            }
            ReassemblyError::UnknownGpadl { expected, got } => {
                write!(f, "GPADL body for {got}, expected {expected}")
            }
            ReassemblyError::MultiRange { rangecount } => {
                write!(
                    f,
                    "GPADL describes {rangecount} ranges; only one is supported"
                )
            }
            ReassemblyError::RangeInvalid => f.write_str("GPADL range is not page-aligned"),
            ReassemblyError::TooManyPfns { count, capacity } => {
                write!(f, "GPADL of {count} pages exceeds capacity {capacity}")
            }
            ReassemblyError::Overflow { gpadl } => {
                write!(f, "{gpadl} carries more PFNs than its header described")
            }
        }
    }
}

/// What a message did to the reassembly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// More GPADL_BODY messages are needed for this many PFNs.
    NeedMore {
        /// PFNs still missing.
        remaining: usize,
    },
    /// All PFNs arrived; read them with [`Reassembler::complete`].
    Complete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Collecting {
        child_relid: RelId,
        gpadl: GpadlId,
        total: usize,
    },
    Complete {
        child_relid: RelId,
        gpadl: GpadlId,
    },
}

/// A finished GPADL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedGpadl<'a> {
    /// The owning channel.
    pub child_relid: RelId,
    /// The GPADL id.
    pub gpadl: GpadlId,
    /// Its pages, in order.
    pub pfns: &'a [u64],
}

/// The host's inverse of [`gpadl_messages`]: takes a GPADL_HEADER then its GPADL_BODY messages and
/// yields the PFN list, holding at most `N` PFNs in place.
///
/// One GPADL at a time; a host that lets GPADLs interleave keeps one reassembler per pending
/// GPADL. An error that concerns the GPADL in progress (range, size, overflow) abandons it; an
/// error about a stray message (another GPADL's body or header) leaves it untouched.
#[derive(Clone, Debug)]
pub struct Reassembler<const N: usize> {
    state: State,
    pfns: [u64; N],
    have: usize,
}

impl<const N: usize> Default for Reassembler<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Reassembler<N> {
    /// An idle reassembler.
    pub const fn new() -> Self {
        Reassembler {
            state: State::Idle,
            pfns: [0; N],
            have: 0,
        }
    }

    /// Forgets any GPADL in progress or completed.
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.have = 0;
    }

    /// The completed GPADL, once [`Progress::Complete`] was returned.
    pub fn complete(&self) -> Option<CompletedGpadl<'_>> {
        match self.state {
            State::Complete { child_relid, gpadl } => Some(CompletedGpadl {
                child_relid,
                gpadl,
                pfns: &self.pfns[..self.have],
            }),
            _ => None,
        }
    }

    /// Starts a GPADL from its header.
    pub fn header(&mut self, h: &GpadlHeader) -> Result<Progress, ReassemblyError> {
        match self.state {
            State::Collecting { gpadl, .. } | State::Complete { gpadl, .. } => {
                return Err(ReassemblyError::HeaderWhileBusy {
                    current: gpadl,
                    got: h.gpadl,
                });
            }
            State::Idle => {}
        }
        if h.rangecount != 1 {
            return Err(ReassemblyError::MultiRange {
                rangecount: h.rangecount,
            });
        }
        let (byte_count, byte_offset) = h.first_range().ok_or(ReassemblyError::RangeInvalid)?;
        let page = PAGE_SIZE_U32;
        if byte_offset != 0 || byte_count == 0 || !byte_count.is_multiple_of(page) {
            return Err(ReassemblyError::RangeInvalid);
        }
        let total = (byte_count / page) as usize;
        if usize::from(h.range_buflen) != 8 + 8 * total {
            return Err(ReassemblyError::RangeInvalid);
        }
        if total > N {
            return Err(ReassemblyError::TooManyPfns {
                count: total,
                capacity: N,
            });
        }
        let carried = h.pfns();
        if carried.len() > total {
            return Err(ReassemblyError::Overflow { gpadl: h.gpadl });
        }
        self.pfns[..carried.len()].copy_from_slice(carried);
        self.have = carried.len();
        self.state = State::Collecting {
            child_relid: h.child_relid,
            gpadl: h.gpadl,
            total,
        };
        Ok(self.progress())
    }

    /// Adds a body's PFNs to the GPADL in progress.
    pub fn body(&mut self, b: &GpadlBody) -> Result<Progress, ReassemblyError> {
        let (child_relid, gpadl, total) = match self.state {
            State::Collecting {
                child_relid,
                gpadl,
                total,
            } => (child_relid, gpadl, total),
            State::Idle | State::Complete { .. } => {
                return Err(ReassemblyError::BodyWithoutHeader { gpadl: b.gpadl });
            }
        };
        if b.gpadl != gpadl {
            return Err(ReassemblyError::UnknownGpadl {
                expected: gpadl,
                got: b.gpadl,
            });
        }
        let add = b.pfns.as_slice();
        let end = self.have + add.len();
        if end > total {
            self.reset();
            return Err(ReassemblyError::Overflow { gpadl });
        }
        self.pfns[self.have..end].copy_from_slice(add);
        self.have = end;
        self.state = State::Collecting {
            child_relid,
            gpadl,
            total,
        };
        Ok(self.progress())
    }

    fn progress(&mut self) -> Progress {
        if let State::Collecting {
            child_relid,
            gpadl,
            total,
        } = self.state
        {
            if self.have < total {
                return Progress::NeedMore {
                    remaining: total - self.have,
                };
            }
            self.state = State::Complete { child_relid, gpadl };
        }
        Progress::Complete
    }
}
