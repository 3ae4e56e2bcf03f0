//! Requests for the Dynamic Memory balloon: lend pool pages to the host, take them back, and
//! read the pool's page counts.

use vmbus_driver::control::{
    ClientError as DriverError, LENT_RANGES_PER_RESPONSE, LendLimit, MemoryInfo, PfnRange,
    RECLAIM_RANGES_PER_REQUEST, Request, Response,
};

use crate::client::call;
use crate::env::ClientEnv;
use crate::error::ClientError;

/// Pages the driver lent for the balloon: nothing in the guest maps them any more, the host may
/// have them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lent {
    /// Their frames, in runs of consecutive frame numbers.
    pub ranges: heapless::Vec<PfnRange, LENT_RANGES_PER_RESPONSE>,
    /// Pages in `ranges`.
    pub pages: u32,
    /// Why fewer pages than asked for were lent ([`LendLimit::None`] if none held back).
    pub limit: LendLimit,
}

/// Asks the driver to lend up to `pages` pool pages for the balloon (at most
/// [`LENT_RANGES_PER_RESPONSE`] ranges come back per call; ask again for more).
///
/// # Errors
/// The driver's refusal; [`ClientError::UnexpectedResponse`] if the ranges do not add up to the
/// page count the driver states, or exceed what was asked for.
pub fn balloon_lend<E: ClientEnv>(env: &mut E, pages: u32) -> Result<Lent, ClientError> {
    match call(env, &Request::BalloonLend { pages })? {
        Response::Lent {
            ranges,
            pages: lent,
            limit,
        } => {
            let sum = ranges
                .iter()
                .try_fold(0u32, |acc, r| acc.checked_add(r.count));
            if sum != Some(lent) || lent > pages || ranges.iter().any(|r| r.end().is_none()) {
                return Err(ClientError::UnexpectedResponse);
            }
            Ok(Lent {
                ranges,
                pages: lent,
                limit,
            })
        }
        Response::Error(e) => Err(e.into()),
        _ => Err(ClientError::UnexpectedResponse),
    }
}

/// Gives the frames of `ranges` (lent through this client, returned by the host) back to the
/// driver, in requests of at most [`RECLAIM_RANGES_PER_REQUEST`] ranges; empty ranges are
/// skipped. A request the driver refuses for lack of table space (`NoResources`) is sent again
/// one range at a time. Returns the pages the driver took back.
///
/// # Errors
/// The driver's refusal of a request (`NotLent`, `BadRanges`, ...): that request changed
/// nothing, but the requests before it were reclaimed.
pub fn balloon_reclaim<E: ClientEnv>(env: &mut E, ranges: &[PfnRange]) -> Result<u32, ClientError> {
    let mut total = 0u32;
    let mut batch = heapless::Vec::<PfnRange, RECLAIM_RANGES_PER_REQUEST>::new();
    let mut rest = ranges.iter().filter(|r| r.count > 0).peekable();
    while rest.peek().is_some() {
        batch.clear();
        while !batch.is_full()
            && let Some(r) = rest.next()
        {
            let _ = batch.push(*r);
        }
        match reclaim_once(env, &batch) {
            Err(ClientError::Refused(DriverError::NoResources)) if batch.len() > 1 => {
                for r in &batch {
                    let mut one = heapless::Vec::new();
                    let _ = one.push(*r);
                    total = total.saturating_add(reclaim_once(env, &one)?);
                }
            }
            other => total = total.saturating_add(other?),
        }
    }
    Ok(total)
}

/// One `BalloonReclaim` request.
fn reclaim_once<E: ClientEnv>(
    env: &mut E,
    ranges: &heapless::Vec<PfnRange, RECLAIM_RANGES_PER_REQUEST>,
) -> Result<u32, ClientError> {
    let asked = ranges
        .iter()
        .try_fold(0u32, |acc, r| acc.checked_add(r.count));
    let req = Request::BalloonReclaim {
        ranges: ranges.clone(),
    };
    match call(env, &req)? {
        Response::Reclaimed { pages, .. } if Some(pages) == asked => Ok(pages),
        Response::Error(e) => Err(e.into()),
        _ => Err(ClientError::UnexpectedResponse),
    }
}

/// The pool's page counts: pool, free, lent (in all and through this client), reserve and
/// quarantined pages.
///
/// # Errors
/// The driver's refusal.
pub fn memory_info<E: ClientEnv>(env: &mut E) -> Result<MemoryInfo, ClientError> {
    match call(env, &Request::MemoryInfo)? {
        Response::Memory(info) => Ok(info),
        Response::Error(e) => Err(e.into()),
        _ => Err(ClientError::UnexpectedResponse),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use core::sync::atomic::Ordering;
    use vmbus_driver::control::{
        ClientError as DriverError, PfnRange, RECLAIM_RANGES_PER_REQUEST, REQUEST_AREA,
        REQUEST_OFFSET, RESPONSE_AREA, RESPONSE_OFFSET, Request, Response, decode_frame,
        encode_frame,
    };
    use vmbus_driver::ring::{Control, RingMem};

    use crate::env::{ClientEnv, WindowLayout};
    use crate::error::ClientError;

    /// A driver that answers reclaims, refusing with `NoResources` any request of more than
    /// `max_ranges` ranges.
    struct Env {
        control: Vec<u8>,
        requests: Vec<Vec<PfnRange>>,
        max_ranges: usize,
    }

    struct NoMem;

    impl RingMem for NoMem {
        fn data_size(&self) -> u32 {
            0
        }
        fn load(&self, _: Control, _: Ordering) -> u32 {
            0
        }
        fn store(&self, _: Control, _: u32, _: Ordering) {}
        fn swap(&self, _: Control, _: u32, _: Ordering) -> u32 {
            0
        }
        fn fence(&self, _: Ordering) {}
        fn read_data(&self, _: u32, _: &mut [u8]) {}
        fn write_data(&self, _: u32, _: &[u8]) {}
    }

    impl ClientEnv for Env {
        type Mem = NoMem;
        fn ppcall_driver(&mut self) {
            let req: Request =
                decode_frame(&self.control[REQUEST_OFFSET..REQUEST_OFFSET + REQUEST_AREA]).unwrap();
            let Request::BalloonReclaim { ranges } = req else {
                panic!("not a reclaim")
            };
            self.requests.push(ranges.to_vec());
            let resp = if ranges.len() > self.max_ranges {
                Response::Error(DriverError::NoResources)
            } else {
                Response::Reclaimed {
                    pages: ranges.iter().map(|r| r.count).sum(),
                    quarantined: 0,
                }
            };
            encode_frame(
                &resp,
                &mut self.control[RESPONSE_OFFSET..RESPONSE_OFFSET + RESPONSE_AREA],
            )
            .unwrap();
        }
        fn control_read(&mut self, offset: usize, buf: &mut [u8]) {
            buf.copy_from_slice(&self.control[offset..offset + buf.len()]);
        }
        fn control_write(&mut self, offset: usize, data: &[u8]) {
            self.control[offset..offset + data.len()].copy_from_slice(data);
        }
        fn wait_notification(&mut self) -> Option<u64> {
            None
        }
        fn ring_mem(&mut self, _: usize, _: usize) -> NoMem {
            NoMem
        }
        fn window(&self) -> WindowLayout {
            WindowLayout {
                pages: 0,
                max_channels: 0,
            }
        }
    }

    fn ranges(n: u64) -> Vec<PfnRange> {
        (0..n)
            .map(|i| PfnRange {
                start: 0x1000 + i * 10,
                count: 2,
            })
            .collect()
    }

    #[test]
    fn a_reclaim_longer_than_one_request_is_split_and_no_range_is_lost() {
        let mut env = Env {
            control: std::vec![0; 4096],
            requests: Vec::new(),
            max_ranges: usize::MAX,
        };
        let mut all = ranges(70);
        all.insert(3, PfnRange { start: 5, count: 0 });
        assert_eq!(super::balloon_reclaim(&mut env, &all), Ok(140));
        let sizes: Vec<usize> = env.requests.iter().map(Vec::len).collect();
        assert_eq!(
            sizes,
            [RECLAIM_RANGES_PER_REQUEST, RECLAIM_RANGES_PER_REQUEST, 6]
        );
        let sent: Vec<PfnRange> = env.requests.concat();
        assert_eq!(sent, ranges(70), "every non-empty range once, in order");
    }

    #[test]
    fn a_reclaim_refused_for_table_space_is_retried_one_range_at_a_time() {
        let mut env = Env {
            control: std::vec![0; 4096],
            requests: Vec::new(),
            max_ranges: 1,
        };
        assert_eq!(super::balloon_reclaim(&mut env, &ranges(3)), Ok(6));
        let sizes: Vec<usize> = env.requests.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 1, 1, 1]);
        // A single range refused is the driver's answer.
        env.max_ranges = 0;
        assert_eq!(
            super::balloon_reclaim(&mut env, &ranges(1)),
            Err(ClientError::Refused(DriverError::NoResources))
        );
    }
}
