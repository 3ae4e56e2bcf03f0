//! The time sync client of `system.xml`: answers the host's time samples
//! (`ic::services::TimeSync`), keeps a clock from them over the cycle counter calibrated
//! against the samples (`ic::counter::CycleCounter`, whose docs state the accuracy), and lets
//! other PDs read it by a protected call (`pd_support::abi::clock`).
#![no_std]
#![no_main]

use ic::counter::CycleCounter;
use ic::service::Endpoint;
use ic::services::TimeSync;
use ic::timesync::{Clock, Sample, UNIX_EPOCH_FILETIME};
use ic_service::ServiceChannel;
use pd_runtime::{Channel, Handler, Message, println};
use pd_support::abi::clock;
use pd_support::cell::StaticCell;
use pd_support::cycles;

// `CONFIGS`: this PD's window, control page, driver channel and device class, generated from the
// system description by build.rs.
include!(concat!(env!("OUT_DIR"), "/config.rs"));

/// Log one sample in this many.
const LOG_EVERY: u64 = 4;

static ENDPOINT: StaticCell<Endpoint<TimeSync>> = StaticCell::new(Endpoint::new(TimeSync {
    clock: Clock::new(),
    last: None,
    ignored: 0,
    now: None,
}));

struct TimeSyncPd {
    channel: ServiceChannel<TimeSync>,
    counter: CycleCounter,
    samples: u64,
}

/// A sample's counter value: the reference time it carries (4.0), else the host time itself
/// (older services: then the clock's error includes the delivery delay).
fn counter_of(sample: &Sample) -> u64 {
    sample.reference.unwrap_or(sample.host_time)
}

/// What the PD does with each sample the channel answered (`cycles`: the cycle counter when
/// the notification that brought it arrived).
fn take_sample(
    counter: &mut CycleCounter,
    samples: &mut u64,
    cycles: u64,
    ep: &mut Endpoint<TimeSync>,
    sample: Sample,
    taken: bool,
) {
    if !taken {
        if sample.unix_nanos().is_none() {
            println!("timesync: sample before 1970 ignored");
            return;
        }
        // Our counter estimate ran behind the host's reference (calibration drift): take the
        // sample as arriving the moment the host took it.
        ep.service.clock.update(&sample, counter_of(&sample));
    }
    counter.on_sample(cycles, counter_of(&sample));
    *samples += 1;
    if *samples % LOG_EVERY == 1 {
        let secs = sample.host_time.saturating_sub(UNIX_EPOCH_FILETIME) / 10_000_000;
        println!(
            "timesync: sample {} ({:?}): host time {secs} s after 1970, reference {:?}, counter calibrated: {}",
            *samples,
            sample.kind,
            sample.reference,
            counter.calibrated()
        );
    }
}

impl TimeSyncPd {
    /// Answers what arrived (`connect`: first wait for the offer and open).
    fn serve(&mut self, connect: bool) {
        // The cycle count at arrival stands for every sample this notification brings.
        let cycles = cycles::read();
        let calibrated = self.counter.calibrated();
        self.channel.endpoint.service.now = calibrated.then(|| self.counter.read(cycles)).flatten();
        let (counter, samples) = (&mut self.counter, &mut self.samples);
        let on_event = |ep: &mut Endpoint<TimeSync>, (sample, taken): (Sample, bool)| {
            take_sample(counter, samples, cycles, ep, sample, taken);
        };
        if connect {
            self.channel.connect(on_event);
        } else {
            self.channel.on_notified(on_event);
        }
    }

    fn read_clock(&self) -> Message {
        let svc = &self.channel.endpoint.service;
        let reading = self
            .counter
            .read(cycles::read())
            .and_then(|counter| Some((counter, svc.clock.now(counter)?)));
        let Some((counter, unix)) = reading else {
            return Message::new(1, &[0, 0, 0, 0]);
        };
        let age = svc
            .last
            .map(|(s, _)| counter.saturating_sub(counter_of(&s)).saturating_mul(100))
            .unwrap_or(0);
        Message::new(
            0,
            &[
                unix,
                age,
                self.samples,
                u64::from(self.counter.calibrated()),
            ],
        )
    }
}

impl Handler for TimeSyncPd {
    fn notified(&mut self, _: Channel) {
        self.serve(false);
    }

    fn protected(&mut self, _: Channel, msg: Message) -> Message {
        match msg.label() {
            clock::NOW => self.read_clock(),
            _ => Message::new(u64::MAX, &[]),
        }
    }
}

fn init() -> TimeSyncPd {
    let Some(endpoint) = ENDPOINT.take() else {
        panic!("time sync state taken twice");
    };
    let mut pd = TimeSyncPd {
        channel: ServiceChannel::new(pd_runtime::own_config(CONFIGS), endpoint),
        counter: CycleCounter::new(),
        samples: 0,
    };
    pd.serve(true);
    pd
}

pd_runtime::protection_domain!(init);
