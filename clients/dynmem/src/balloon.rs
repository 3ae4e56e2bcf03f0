//! The service after start-up: balloon inflation and deflation, hot-add refusal, information
//! and status reports, as a state machine the PD feeds with the host's messages.

use crate::msg::{
    self, BalloonRequest, DecodeError, EncodeError, HotAddRequest, Info, InfoEntries, MAX_MESSAGE,
    MAX_RESPONSE_RANGES, MsgType, PageRange, RangeError, StatusReport, UnballoonRequest,
};
use crate::record::{Record, RecordError, Span};

/// Where the guest gets the pages it balloons out and where it puts those the host gives back:
/// the PD, which asks the VMBus driver.
///
/// The driver revokes every mapping of a page before it lends it, so a page the source lends is
/// reachable by no one in the guest. [`Balloon`] reports to the host exactly the ranges `lend`
/// wrote, never anything else, and hands to `reclaim` only ranges it had reported and that the
/// host named in an unballoon request.
pub trait PageSource {
    /// What went wrong in the source.
    type Error;

    /// Lends at most `max` pages in at most `out.len()` ranges written to `out[..n]`; returns
    /// `n`. `Ok(0)` means the source has no page to spare now: the answer to the host ends
    /// there. The pages are the host's once lent, until it gives them back.
    ///
    /// # Errors
    /// The source's failure; the answer ends with the pages lent before it.
    fn lend(&mut self, max: u32, out: &mut [PageRange]) -> Result<usize, Self::Error>;

    /// Takes back `ranges` (pages the source lent earlier, which the host gave back); returns
    /// the pages taken.
    ///
    /// # Errors
    /// The source's failure (the pages are no longer ballooned either way: the host has them
    /// back in the guest).
    fn reclaim(&mut self, ranges: &[PageRange]) -> Result<u32, Self::Error>;
}

/// The figures a status report is made of, in 4 KiB pages, from the PD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryFigures {
    /// Pages the guest has now, ballooned pages not included.
    pub total_pages: u64,
    /// Of those, pages in no use.
    pub free_pages: u64,
}

/// Where the balloon stands; each state carries what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalloonState {
    /// No transaction open.
    Idle,
    /// Answering a balloon request with several messages: the PD sends the message it has and
    /// calls [`Balloon::resume`] for the next.
    Inflating {
        /// The host's transaction id of the request.
        host_trans_id: u32,
        /// Pages the host asked for.
        requested: u32,
        /// Pages still to find.
        remaining: u32,
    },
    /// The host is giving pages back in several requests (its `more_pages` was set); the
    /// answer goes after the last.
    Deflating {
        /// The host's transaction id of the last request.
        host_trans_id: u32,
        /// Pages given back so far in this transaction.
        returned: u64,
    },
}

/// A range the source lent that the balloon could not report, and so did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFault {
    /// Empty or past the 40-bit page limit.
    Invalid(RangeError),
    /// It shares pages with pages already ballooned.
    Overlap,
    /// More pages than asked for in this call.
    Excess,
    /// The source claimed more ranges than the room it was given (ignored beyond the room).
    TooManyRanges,
}

/// What went wrong while serving a message (the [`Reply`] may still carry bytes to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalloonError<E> {
    /// The host's message did not decode.
    Decode(DecodeError),
    /// A request while a multi-message balloon answer is unfinished (the PD did not call
    /// [`Balloon::resume`] until `more` was false).
    OutOfOrder(MsgType),
    /// A message type the guest does not serve after start-up.
    Unexpected(MsgType),
    /// An unballoon request named pages that are not ballooned: the whole request was
    /// refused and nothing was reclaimed.
    NotBallooned(PageRange),
    /// An unballoon request would split the record of ballooned pages and it has no free slot:
    /// refused, nothing reclaimed.
    RecordFull(PageRange),
    /// The source failed to lend; the answer ends with what was lent before.
    Lend(E),
    /// The source lent a range that was not reported (nor kept); the answer ends there.
    BadLoan {
        /// The range.
        range: PageRange,
        /// What was wrong.
        fault: SourceFault,
    },
    /// The source failed to take back pages the host returned (they are no longer ballooned).
    Reclaim(E),
    /// The source took back fewer pages than given.
    ReclaimShort {
        /// Pages given back.
        given: u64,
        /// Pages the source said it took.
        taken: u64,
    },
    /// The host asked to hot-add memory, which this guest does not take (answered: no pages).
    HotAddRefused,
    /// The output buffer is too small.
    Encode(EncodeError),
}

impl<E: core::fmt::Display> core::fmt::Display for BalloonError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BalloonError::Decode(e) => write!(f, "{e}"),
            BalloonError::OutOfOrder(t) => {
                write!(
                    f,
                    "message type {} while a balloon answer is unfinished",
                    t.0
                )
            }
            BalloonError::Unexpected(t) => write!(f, "message type {} not served", t.0),
            BalloonError::NotBallooned(r) => write!(
                f,
                "unballoon request for pages {:#x}+{} that are not ballooned: refused",
                r.start, r.count
            ),
            BalloonError::RecordFull(r) => write!(
                f,
                "unballoon request for pages {:#x}+{} would split the full record: refused",
                r.start, r.count
            ),
            BalloonError::Lend(e) => write!(f, "page source: {e}"),
            BalloonError::BadLoan { range, fault } => write!(
                f,
                "page source lent {:#x}+{} which was not reported ({fault:?})",
                range.start, range.count
            ),
            BalloonError::Reclaim(e) => write!(f, "page source could not reclaim: {e}"),
            BalloonError::ReclaimShort { given, taken } => {
                write!(f, "page source took {taken} of {given} pages back")
            }
            BalloonError::HotAddRefused => write!(f, "hot add refused (not offered)"),
            BalloonError::Encode(e) => write!(f, "{e}"),
        }
    }
}

/// What to do after a message: send `out[..len]` (nothing when `len` is 0); when `more`, call
/// [`Balloon::resume`] after sending for the next message of the same answer. `error` says
/// what went wrong, if anything, even when there is something to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply<E> {
    /// Bytes of the output buffer to send.
    pub len: usize,
    /// Another message of this answer follows.
    pub more: bool,
    /// What went wrong.
    pub error: Option<BalloonError<E>>,
}

impl<E> Reply<E> {
    fn send(len: usize) -> Self {
        Reply {
            len,
            more: false,
            error: None,
        }
    }

    fn fail(error: BalloonError<E>) -> Self {
        Reply {
            len: 0,
            more: false,
            error: Some(error),
        }
    }
}

/// Counters of the balloon, in pages or requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BalloonStats {
    /// Pages ballooned out now.
    pub ballooned_now: u64,
    /// Pages ever reported to the host.
    pub inflated_total: u64,
    /// Pages ever given back by the host (and handed to the source).
    pub deflated_total: u64,
    /// Host requests refused (undecodable, out of order, naming pages not ballooned, hot add).
    pub refused: u64,
    /// Ranges the source lent that were not reported.
    pub source_faults: u64,
    /// Reclaims that failed or came up short.
    pub reclaim_failures: u64,
    /// Messages of types not served after start-up, ignored.
    pub ignored: u64,
    /// The most pages the host may give the guest (its last information message).
    pub host_max_pages: Option<u64>,
}

/// The default capacity of the record of ballooned runs (adjacent runs merge into one).
pub const DEFAULT_RECORD: usize = 128;

/// Ranges asked of the source per call.
const BATCH: usize = 32;

/// The balloon: what is ballooned out (at most `N` separate runs), the open transaction and
/// the counters. Feed it every host message after [`crate::Startup`] is ready.
#[derive(Debug, Clone)]
pub struct Balloon<const N: usize = DEFAULT_RECORD> {
    state: BalloonState,
    record: Record<N>,
    stats: BalloonStats,
}

impl<const N: usize> Default for Balloon<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Balloon<N> {
    /// Nothing ballooned.
    pub fn new() -> Self {
        Balloon {
            state: BalloonState::Idle,
            record: Record::default(),
            stats: BalloonStats::default(),
        }
    }

    /// The state.
    pub fn state(&self) -> BalloonState {
        self.state
    }

    /// The counters.
    pub fn stats(&self) -> BalloonStats {
        BalloonStats {
            ballooned_now: self.record.pages(),
            ..self.stats
        }
    }

    /// The ballooned pages, as sorted runs with adjacent ones merged.
    pub fn ballooned(&self) -> &[Span] {
        self.record.spans()
    }

    /// Serves the host's message `packet`; a reply goes to `out` with `trans_id` in its header.
    ///
    /// - `DM_BALLOON_REQUEST`: asks `source` for pages and answers with the first
    ///   `DM_BALLOON_RESPONSE` (`more`: call [`Balloon::resume`] after sending it). Fewer pages
    ///   than asked when the source runs dry; none, without asking, for a request of 0 pages.
    /// - `DM_UNBALLOON_REQUEST`: checks that every range is ballooned (else refuses the whole
    ///   request and reclaims nothing), hands the ranges to `source.reclaim`, and answers
    ///   `DM_UNBALLOON_RESPONSE` when the host's `more_pages` is 0 (also after a refusal, so the
    ///   host's transaction ends).
    /// - `DM_MEM_HOT_ADD_REQUEST`: answered with no pages (the guest does not offer hot add).
    /// - `DM_INFO_MESSAGE`: the most pages is kept in [`BalloonStats::host_max_pages`].
    /// - Anything else: ignored with [`BalloonError::Unexpected`].
    pub fn on_message<S: PageSource>(
        &mut self,
        packet: &[u8],
        source: &mut S,
        out: &mut [u8; MAX_MESSAGE],
        trans_id: u32,
    ) -> Reply<S::Error> {
        let reply = self.serve(packet, source, out, trans_id);
        if matches!(
            reply.error,
            Some(
                BalloonError::Decode(_)
                    | BalloonError::OutOfOrder(_)
                    | BalloonError::NotBallooned(_)
                    | BalloonError::RecordFull(_)
                    | BalloonError::HotAddRefused
            )
        ) {
            self.stats.refused += 1;
        }
        reply
    }

    fn serve<S: PageSource>(
        &mut self,
        packet: &[u8],
        source: &mut S,
        out: &mut [u8; MAX_MESSAGE],
        trans_id: u32,
    ) -> Reply<S::Error> {
        let h = match msg::split(packet) {
            Ok((h, _)) => h,
            Err(e) => return Reply::fail(BalloonError::Decode(e)),
        };
        if matches!(self.state, BalloonState::Inflating { .. })
            && (h.ty == MsgType::BALLOON_REQUEST || h.ty == MsgType::UNBALLOON_REQUEST)
        {
            return Reply::fail(BalloonError::OutOfOrder(h.ty));
        }
        match h.ty {
            MsgType::BALLOON_REQUEST => match BalloonRequest::decode(packet) {
                Ok((h, req)) => {
                    // A new request ends an unfinished deflate: the pages returned stay returned.
                    self.state = BalloonState::Inflating {
                        host_trans_id: h.trans_id,
                        requested: req.num_pages,
                        remaining: req.num_pages,
                    };
                    self.resume(source, out, trans_id)
                }
                Err(e) => Reply::fail(BalloonError::Decode(e)),
            },
            MsgType::UNBALLOON_REQUEST => self.deflate(packet, source, out, trans_id),
            MsgType::HOT_ADD_REQUEST => {
                // Linux's reading: no pages with success is a permanent failure (the host
                // stops); failure would be a transient one, inviting retries of a hot add this
                // guest never takes.
                let error = match HotAddRequest::decode(packet) {
                    Ok(_) => BalloonError::HotAddRefused,
                    Err(e) => BalloonError::Decode(e),
                };
                match msg::hot_add_response(out, trans_id, 0, true) {
                    Ok(len) => Reply {
                        len,
                        more: false,
                        error: Some(error),
                    },
                    Err(e) => Reply::fail(BalloonError::Encode(e)),
                }
            }
            MsgType::INFO => match InfoEntries::decode(packet) {
                Ok((_, entries)) => {
                    for entry in entries {
                        match entry {
                            Ok(Info::MaxPageCount(n)) => self.stats.host_max_pages = Some(n),
                            Ok(Info::Other { .. }) => {}
                            Err(e) => return Reply::fail(BalloonError::Decode(e)),
                        }
                    }
                    Reply::send(0)
                }
                Err(e) => Reply::fail(BalloonError::Decode(e)),
            },
            ty => {
                self.stats.ignored += 1;
                Reply::fail(BalloonError::Unexpected(ty))
            }
        }
    }

    /// Writes the next `DM_BALLOON_RESPONSE` of an unfinished answer (after the PD sent the one
    /// before); in any other state, nothing (`len` 0).
    ///
    /// One message carries up to [`MAX_RESPONSE_RANGES`] ranges; `more_pages` is set when the
    /// message is full and pages are still to find, so the last message may carry none (as
    /// Linux's does when it runs dry after a full message). Ranges the source lends are
    /// checked (valid, not already ballooned, no more pages than asked); one that fails is
    /// neither reported nor kept, and the answer ends there.
    pub fn resume<S: PageSource>(
        &mut self,
        source: &mut S,
        out: &mut [u8; MAX_MESSAGE],
        trans_id: u32,
    ) -> Reply<S::Error> {
        let BalloonState::Inflating {
            host_trans_id,
            requested,
            mut remaining,
        } = self.state
        else {
            return Reply::send(0);
        };
        let mut n = 0;
        let mut ended = false;
        let mut error = None;
        let mut batch = [PageRange { start: 0, count: 0 }; BATCH];
        while n < MAX_RESPONSE_RANGES && remaining > 0 && !ended {
            // Each range takes at most one slot of the record: ask for no more than it holds.
            let room = BATCH
                .min(MAX_RESPONSE_RANGES - n)
                .min(self.record.free_slots());
            if room == 0 {
                ended = true;
                break;
            }
            let got = match source.lend(remaining, &mut batch[..room]) {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Ok(k) => k,
                Err(e) => {
                    error = Some(BalloonError::Lend(e));
                    break;
                }
            };
            if got > room {
                self.stats.source_faults += 1;
                error = Some(BalloonError::BadLoan {
                    range: batch[room - 1],
                    fault: SourceFault::TooManyRanges,
                });
                ended = true;
            }
            for r in &batch[..got.min(room)] {
                let fault = match PageRange::new(r.start, r.count) {
                    Err(e) => Some(SourceFault::Invalid(e)),
                    Ok(_) if r.count > remaining => Some(SourceFault::Excess),
                    Ok(_) => match self.record.add(r) {
                        Err(RecordError::Overlap) => Some(SourceFault::Overlap),
                        // Not reached: the room asked for is at most the free slots.
                        Err(_) => Some(SourceFault::TooManyRanges),
                        Ok(()) => None,
                    },
                };
                if let Some(fault) = fault {
                    self.stats.source_faults += 1;
                    error = Some(BalloonError::BadLoan { range: *r, fault });
                    ended = true;
                    continue;
                }
                // Valid: checked just above.
                let _ = msg::put_range(out, n, r);
                n += 1;
                remaining -= r.count;
                self.stats.inflated_total += u64::from(r.count);
            }
        }
        let more = n == MAX_RESPONSE_RANGES && remaining > 0 && !ended && error.is_none();
        let len = msg::finish_balloon_response(out, trans_id, n, more);
        self.state = if more {
            BalloonState::Inflating {
                host_trans_id,
                requested,
                remaining,
            }
        } else {
            BalloonState::Idle
        };
        Reply { len, more, error }
    }

    fn deflate<S: PageSource>(
        &mut self,
        packet: &[u8],
        source: &mut S,
        out: &mut [u8; MAX_MESSAGE],
        trans_id: u32,
    ) -> Reply<S::Error> {
        let (h, req) = match UnballoonRequest::decode(packet) {
            Ok(x) => x,
            Err(e) => return Reply::fail(BalloonError::Decode(e)),
        };
        let mut returned = match self.state {
            BalloonState::Deflating { returned, .. } => returned,
            _ => 0,
        };
        // Check every range on a copy first: the request is taken whole or not at all.
        let mut after = self.record;
        let mut error = None;
        for r in req.ranges.iter() {
            match after.remove(&r) {
                Ok(()) => {}
                Err(RecordError::Full) => {
                    error = Some(BalloonError::RecordFull(r));
                    break;
                }
                Err(_) => {
                    error = Some(BalloonError::NotBallooned(r));
                    break;
                }
            }
        }
        if error.is_none() {
            self.record = after;
            let given = req.ranges.pages();
            returned += given;
            self.stats.deflated_total += given;
            error = self.reclaim(&req, source, given);
        }
        if req.more_pages {
            self.state = BalloonState::Deflating {
                host_trans_id: h.trans_id,
                returned,
            };
            return Reply {
                len: 0,
                more: false,
                error,
            };
        }
        self.state = BalloonState::Idle;
        match msg::unballoon_response(out, trans_id) {
            Ok(len) => Reply {
                len,
                more: false,
                error,
            },
            Err(e) => Reply::fail(BalloonError::Encode(e)),
        }
    }

    /// Hands the request's ranges to the source in batches; the first failure.
    fn reclaim<S: PageSource>(
        &mut self,
        req: &UnballoonRequest<'_>,
        source: &mut S,
        given: u64,
    ) -> Option<BalloonError<S::Error>> {
        let mut batch = [PageRange { start: 0, count: 0 }; BATCH];
        let mut taken = 0u64;
        let mut error = None;
        let mut ranges = req.ranges.iter().peekable();
        while ranges.peek().is_some() {
            let mut k = 0;
            for r in ranges.by_ref().take(BATCH) {
                batch[k] = r;
                k += 1;
            }
            match source.reclaim(&batch[..k]) {
                Ok(t) => taken += u64::from(t),
                Err(e) => {
                    if error.is_none() {
                        error = Some(BalloonError::Reclaim(e));
                    }
                }
            }
        }
        if error.is_none() && taken != given {
            error = Some(BalloonError::ReclaimShort { given, taken });
        }
        if error.is_some() {
            self.stats.reclaim_failures += 1;
        }
        error
    }

    /// The status report for `figures`: `num_avail` the free pages; `num_committed` the pages
    /// in use plus the pages ballooned out (Linux also counts ballooned pages as committed, so
    /// that the host does not see them as room to balloon further; it adds a floor below which
    /// it will not balloon, which here is the PD's page source's business). Page-file fields
    /// zero, as Linux sends them.
    pub fn status(&self, figures: &MemoryFigures) -> StatusReport {
        let free = figures.free_pages.min(figures.total_pages);
        StatusReport {
            num_avail: free,
            num_committed: (figures.total_pages - free).saturating_add(self.record.pages()),
            ..StatusReport::default()
        }
    }

    /// Writes [`Balloon::status`] as a `DM_STATUS_REPORT` into `out`; its length (48).
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] when `out` is shorter than 48 bytes.
    pub fn status_report(
        &self,
        figures: &MemoryFigures,
        out: &mut [u8],
        trans_id: u32,
    ) -> Result<usize, EncodeError> {
        self.status(figures).encode(out, trans_id)
    }
}
