//! The services of this crate as [`Service`]s, ready for an [`Endpoint`](crate::service::Endpoint):
//! each keeps what a report shows (the last heartbeat sequence, the last shutdown request, the
//! clock and the last time sample).

use crate::header::{IcError, IcVersion, MsgType};
use crate::service::Service;
use crate::shutdown::Request;
use crate::timesync::{Clock, Sample};
use crate::{heartbeat, shutdown, timesync};

/// The heartbeat service: answers with the sequence number plus one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Heartbeat {
    /// The sequence number of the last answer.
    pub last: Option<u64>,
}

impl Service for Heartbeat {
    const NAME: &'static str = "heartbeat";
    const TYPE: MsgType = MsgType::HEARTBEAT;
    const VERSIONS: &'static [IcVersion] = &heartbeat::VERSIONS;
    type Event = u64;

    fn answer(&mut self, msg: &mut [u8], _: IcVersion) -> Result<(usize, u64), IcError> {
        let (len, seq) = heartbeat::answer(msg)?;
        self.last = Some(seq);
        Ok((len, seq))
    }
}

/// The shutdown service: accepts shutdown and restart (the program then stops the system),
/// refuses the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shutdown {
    /// The last request the host made.
    pub last: Option<Request>,
}

impl Service for Shutdown {
    const NAME: &'static str = "shutdown";
    const TYPE: MsgType = MsgType::SHUTDOWN;
    const VERSIONS: &'static [IcVersion] = &shutdown::VERSIONS;
    type Event = Request;

    fn answer(&mut self, msg: &mut [u8], _: IcVersion) -> Result<(usize, Request), IcError> {
        let (len, request) = shutdown::answer(msg)?;
        self.last = Some(request);
        Ok((len, request))
    }
}

/// The time synchronisation service: takes each sample into a [`Clock`] over the counter the
/// program reads when the sample arrives (`now`, set before each packet; `None` when the
/// program has no counter reading yet: the sample is then taken as if it arrived the moment the
/// host took it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeSync {
    /// The clock.
    pub clock: Clock,
    /// The last sample and whether the clock took it.
    pub last: Option<(Sample, bool)>,
    /// Samples the clock refused (before 1970, or from the counter's future).
    pub ignored: u64,
    /// The counter reading to use for the next sample (100 ns units).
    pub now: Option<u64>,
}

impl Service for TimeSync {
    const NAME: &'static str = "timesync";
    const TYPE: MsgType = MsgType::TIMESYNC;
    const VERSIONS: &'static [IcVersion] = &timesync::VERSIONS;
    type Event = (Sample, bool);

    fn answer(
        &mut self,
        msg: &mut [u8],
        version: IcVersion,
    ) -> Result<(usize, (Sample, bool)), IcError> {
        let (len, sample) = timesync::answer(msg, version)?;
        let now = self
            .now
            .unwrap_or_else(|| sample.reference.unwrap_or_default());
        let taken = self.clock.update(&sample, now);
        if !taken {
            self.ignored += 1;
        }
        self.last = Some((sample, taken));
        Ok((len, (sample, taken)))
    }
}
