//! The VMBus driver's pool as the balloon's [`PageSource`] (feature `driver`): pages come from
//! the driver's `BalloonLend` (the driver revokes every mapping of them, its own included,
//! before it names them) and go back through `BalloonReclaim` (the driver maps and zeroes them
//! before they return to its pool). The seL4 PD and the simulation use this one source.

use vmbus_client::{ClientEnv, ClientError, PfnRange, balloon_lend, balloon_reclaim};

use crate::PageSource;
use crate::msg::PageRange;

/// Ranges handled per reclaim call to the driver (the library splits further as its requests
/// need).
const RECLAIM_BATCH: usize = 64;

/// The driver's pool, reached through a client's environment.
#[derive(Debug)]
pub struct DriverPages<'a, E: ClientEnv> {
    env: &'a mut E,
    /// Ranges the driver lent that the answer had no room for (or that the protocol cannot
    /// carry) and that could not be given back at once: they stay lent, unreported.
    pub stranded: u32,
}

impl<'a, E: ClientEnv> DriverPages<'a, E> {
    /// The source over `env`.
    pub fn new(env: &'a mut E) -> Self {
        DriverPages { env, stranded: 0 }
    }
}

fn to_pfn(r: &PageRange) -> PfnRange {
    PfnRange {
        start: r.start,
        count: r.count,
    }
}

impl<E: ClientEnv> PageSource for DriverPages<'_, E> {
    type Error = ClientError;

    fn lend(&mut self, max: u32, out: &mut [PageRange]) -> Result<usize, ClientError> {
        let lent = balloon_lend(self.env, max)?;
        let mut n = 0;
        let mut excess: heapless::Vec<PfnRange, RECLAIM_BATCH> = heapless::Vec::new();
        for r in &lent.ranges {
            match (out.get_mut(n), PageRange::new(r.start, r.count)) {
                (Some(slot), Ok(range)) => {
                    *slot = range;
                    n += 1;
                }
                // No room for the range, or one the protocol cannot carry: give it back to
                // the driver rather than lose it.
                _ => {
                    if excess.push(*r).is_err() {
                        self.stranded += 1;
                    }
                }
            }
        }
        if !excess.is_empty() && balloon_reclaim(self.env, &excess).is_err() {
            self.stranded += excess.len() as u32;
        }
        Ok(n)
    }

    fn reclaim(&mut self, ranges: &[PageRange]) -> Result<u32, ClientError> {
        let mut batch: heapless::Vec<PfnRange, RECLAIM_BATCH> = heapless::Vec::new();
        let mut total = 0;
        for r in ranges {
            if batch.push(to_pfn(r)).is_err() {
                total += balloon_reclaim(self.env, &batch)?;
                batch.clear();
                let _ = batch.push(to_pfn(r));
            }
        }
        if !batch.is_empty() {
            total += balloon_reclaim(self.env, &batch)?;
        }
        Ok(total)
    }
}
