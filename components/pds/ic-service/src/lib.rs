//! The common part of the integration-service client PDs (heartbeat, shutdown, time sync, KVP):
//! wait for the service's offer, open its channel, and answer every request the host sends
//! through `ic::service::Endpoint`, echoing the host's transaction id as Hyper-V expects.
//!
//! A PD program makes a [`ServiceChannel`] in its `init`, connects it (this waits for the offer:
//! the driver notifies the client when a matching offer arrives), and calls
//! [`ServiceChannel::pump`] whenever the driver notifies it. When the host rescinds the device
//! the channel is gone; the next pump says so and the program connects again when the host
//! offers the device anew.
#![no_std]

use client_env::{Sel4Env, env_of, wait_for_offer};
use ic::negotiate::Outcome;
use ic::service::{Endpoint, Service, Step};
use pd_runtime::config::PdConfig;
use pd_runtime::println;
use pd_support::cell::StaticCell;
use shared_mem::MappedRing;
use vmbus_client::{Channel, ClientError, open};
use vmbus_driver::guid::Guid;

/// Pages of each ring, header page included: 12 KiB of data each way, room for KVP's largest
/// message (about 2.6 KiB) several times over.
pub const RING_PAGES: u16 = 4;

/// The largest packet the inbound ring can hold (its data area): every packet the host can
/// write fits, so none is ever stuck in the ring for want of room.
pub const MAX_PACKET: usize = (RING_PAGES as usize - 1) * 4096;

/// The receive buffer (in static memory: a PD's stack is small).
static BUF: StaticCell<[u8; MAX_PACKET]> = StaticCell::new([0; MAX_PACKET]);

/// Failures (a corrupt ring, a refused signal) after which the client stops reopening.
pub const MAX_FAILURES: u32 = 8;

/// Attempts (one per wake-up) before a wait for the offer gives up.
const OFFER_TRIES: u32 = 20_000_000;

/// What a pump found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pump {
    /// The ring is drained; wait for the next notification.
    Idle,
    /// The channel is gone (rescinded or torn down): connect again.
    Gone,
    /// The channel failed in another way (the error was logged) and was closed.
    Failed,
}

/// One service's channel.
#[derive(Debug)]
pub struct ServiceChannel<S: Service + 'static> {
    /// The platform.
    pub env: Sel4Env,
    class: Guid,
    channel: Option<Channel<MappedRing>>,
    /// The protocol state (in the program's static memory: a KVP store is large).
    pub endpoint: &'static mut Endpoint<S>,
    buf: &'static mut [u8; MAX_PACKET],
    /// Times the channel opened.
    pub opens: u32,
    /// Times the channel failed (and was closed).
    pub failures: u32,
}

impl<S: Service + 'static> ServiceChannel<S> {
    /// The service of the client PD configured by `config`, keeping its state in `endpoint`:
    /// the device class is the first one the description lists for the PD.
    ///
    /// # Panics
    /// When the configuration is not a client's or lists no class (`cargo xtask check` refuses
    /// such a description), or when called twice (one service per PD).
    pub fn new(config: &'static PdConfig, endpoint: &'static mut Endpoint<S>) -> ServiceChannel<S> {
        let Some(class) = config.client.as_ref().and_then(|c| c.classes.first()) else {
            panic!("{} is not a client with a device class", config.name);
        };
        let Some(buf) = BUF.take() else {
            panic!("one service channel per PD");
        };
        ServiceChannel {
            env: env_of(config),
            class: Guid(class.0),
            channel: None,
            endpoint,
            buf,
            opens: 0,
            failures: 0,
        }
    }

    /// Whether the channel is open.
    pub fn is_open(&self) -> bool {
        self.channel.is_some()
    }

    /// Waits for the service's offer and opens its channel, then answers what the host sent
    /// so far.
    pub fn connect(&mut self, on_event: impl FnMut(&mut Endpoint<S>, S::Event)) -> Pump {
        let Some(relid) = wait_for_offer(&mut self.env, self.class, OFFER_TRIES) else {
            println!("{}: no offer of the service's device", S::NAME);
            return Pump::Failed;
        };
        match open(&mut self.env, relid, RING_PAGES, RING_PAGES) {
            Ok(c) => {
                self.opens += 1;
                println!("{}: opened {relid}", S::NAME);
                self.channel = Some(c);
                self.pump(on_event)
            }
            Err(e) => {
                println!("{}: open {relid}: {e}", S::NAME);
                Pump::Failed
            }
        }
    }

    /// A notification from the driver: answers what arrived; when the channel went away,
    /// waits for the host to offer the device again and reconnects.
    pub fn on_notified(&mut self, mut on_event: impl FnMut(&mut Endpoint<S>, S::Event)) {
        if self.failures >= MAX_FAILURES {
            return;
        }
        let mut pump = self.pump(&mut on_event);
        while pump == Pump::Gone {
            println!("{}: waiting for the device to be offered again", S::NAME);
            pump = self.connect(&mut on_event);
        }
    }

    /// The channel failed (a corrupt ring, a refused signal): close it, so that the next
    /// notification opens it afresh, unless it failed [`MAX_FAILURES`] times.
    fn fail_channel(&mut self) -> Pump {
        self.failures += 1;
        if let Some(c) = self.channel.take()
            && let Err(e) = c.close(&mut self.env)
        {
            println!("{}: close after a failure: {e}", S::NAME);
        }
        if self.failures >= MAX_FAILURES {
            println!(
                "{}: the channel failed {MAX_FAILURES} times; giving up",
                S::NAME
            );
        } else {
            println!(
                "{}: channel closed after a failure; it reopens at the next notification",
                S::NAME
            );
        }
        Pump::Failed
    }

    /// Answers every packet waiting in the inbound ring; `on_event` sees each answered service
    /// request after its answer went out.
    pub fn pump(&mut self, mut on_event: impl FnMut(&mut Endpoint<S>, S::Event)) -> Pump {
        let Some(ch) = self.channel.as_mut() else {
            return Pump::Gone;
        };
        loop {
            let received = match ch.recv(&mut self.env, &mut self.buf[..]) {
                Ok(Some(r)) => r,
                Ok(None) => return Pump::Idle,
                Err(ClientError::ChannelGone) => {
                    println!("{}: the channel is gone (rescinded or torn down)", S::NAME);
                    self.channel = None;
                    return Pump::Gone;
                }
                Err(e) => {
                    println!("{}: receive: {e}", S::NAME);
                    return self.fail_channel();
                }
            };
            let step = self.endpoint.on_packet(&mut self.buf[..received.len]);
            let (len, event) = match step {
                Ok(Step::Negotiated { len, outcome }) => {
                    log_negotiation::<S>(outcome);
                    (len, None)
                }
                Ok(Step::Answered { len, event }) => (len, Some(event)),
                Err(e) => {
                    println!("{}: request refused: {e}", S::NAME);
                    continue;
                }
            };
            match ch.send_packet(
                &mut self.env,
                received.transaction_id,
                false,
                &self.buf[..len],
            ) {
                Ok(()) => {}
                Err(ClientError::ChannelGone) => {
                    self.channel = None;
                    return Pump::Gone;
                }
                Err(e) => {
                    println!("{}: answer: {e}", S::NAME);
                    return self.fail_channel();
                }
            }
            if let Some(event) = event {
                on_event(self.endpoint, event);
            }
        }
    }
}

fn log_negotiation<S: Service>(outcome: Outcome) {
    match outcome {
        Outcome::Agreed { framework, service } => println!(
            "{}: negotiated framework {}.{}, service {}.{}",
            S::NAME,
            framework.major,
            framework.minor,
            service.major,
            service.minor
        ),
        Outcome::NoCommonVersion => println!(
            "{}: the host offers no version this client speaks (answered 0/0)",
            S::NAME
        ),
    }
}
