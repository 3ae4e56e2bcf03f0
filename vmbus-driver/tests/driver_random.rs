//! Driver core under random interleavings of host messages (valid, stale, forged and garbage),
//! client requests, faults, silences, timeouts and unloads: no panic, and after every step the
//! page accounting and the grant invariant hold (docs/lifetime.md).

mod driver_fakes;

use driver_fakes::*;
use vmbus_driver::control::{ChannelHandle, Request};
use vmbus_driver::driver::{AbstractPhase, ConnectionState};
use vmbus_driver::ids::{ClientId, GpadlId, RelId};
use vmbus_driver::msg::{ChannelMessage, GpadlCreated, MessageType, OpenChannelResult};

/// xorshift64*: deterministic, seedable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const RELIDS: u32 = 6;

fn check_invariants(w: &World, step: usize) {
    assert!(
        w.k.violations.is_empty(),
        "step {step}: {:?}",
        w.k.violations
    );
    // Every page out of the pool belongs to a channel or is quarantined.
    let held: usize = w.d.channels().map(|c| c.pages).sum();
    assert_eq!(
        w.k.pages_out(),
        held + w.d.quarantined_pages(),
        "step {step}: page accounting"
    );
    // A client can reach pages only of a channel it holds open.
    for r in 1..=RELIDS {
        if let Some(a) = w.d.abstract_channel(RelId(r))
            && a.pages_granted
        {
            assert_eq!(a.phase, AbstractPhase::Open, "step {step}: relid {r}");
        }
    }
    let granted_total: usize = w.k.granted.values().filter(|g| !g.is_empty()).count();
    let open_pages: usize =
        w.d.channels()
            .filter(|c| {
                w.d.abstract_channel(c.relid)
                    .is_some_and(|a| a.pages_granted)
            })
            .map(|c| c.pages)
            .sum();
    assert_eq!(granted_total, open_pages, "step {step}: grants");
    let s = w.d.stats();
    assert!(s.relids_released <= s.rescinds, "step {step}");
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let offers = (1..=RELIDS)
        .map(|r| match r % 3 {
            0 => offer(r, NET, 1, (r % 2) as u16),
            1 => offer(r, SCSI, r as u8, 0),
            _ => offer(r, HEARTBEAT, r as u8, 0),
        })
        .collect();
    let mut w = World::new(offers);
    w.connect();
    let mut handles: Vec<(ClientId, ChannelHandle)> = Vec::new();
    let silenceable = [
        MessageType::GPADL_CREATED.0,
        MessageType::OPENCHANNEL_RESULT.0,
        MessageType::GPADL_TORNDOWN.0,
        MessageType::UNLOAD_RESPONSE.0,
    ];
    for step in 0..steps {
        let client = if rng.below(2) == 0 { A } else { B };
        let relid = 1 + rng.below(u64::from(RELIDS)) as u32;
        match rng.below(16) {
            0..=2 => {
                let out = 2 + rng.below(3) as u16;
                let inn = 2 + rng.below(3) as u16;
                let req = Request::Open {
                    relid: RelId(relid),
                    out_ring_pages: out,
                    in_ring_pages: inn,
                };
                if let vmbus_driver::control::Response::Opening { handle } = w.call(client, req) {
                    handles.push((client, handle));
                }
            }
            3 => {
                if !handles.is_empty() {
                    let (c, h) = handles[rng.below(handles.len() as u64) as usize];
                    w.call(c, Request::Close { handle: h });
                }
            }
            4 => {
                if !handles.is_empty() {
                    let (c, h) = handles[rng.below(handles.len() as u64) as usize];
                    w.call(c, Request::Signal { handle: h });
                }
            }
            5 => w.hv.rescind(relid),
            6 => {
                let o = match relid % 3 {
                    0 => offer(relid, NET, 1, (relid % 2) as u16),
                    1 => offer(relid, SCSI, relid as u8, 0),
                    _ => offer(relid, HEARTBEAT, relid as u8, 0),
                };
                w.hv.send(&ChannelMessage::OfferChannel(o));
            }
            7 => w.hv.raise(relid),
            8 => {
                // A forged or stale reply naming a recent GPADL.
                let headers = w.posts_of(MessageType::GPADL_HEADER);
                let g = headers
                    .get(rng.below(headers.len() as u64 + 1) as usize)
                    .map(|h| u32_at(h, 12))
                    .unwrap_or(rng.next() as u32);
                match rng.below(3) {
                    0 => w.hv.send(&ChannelMessage::GpadlCreated(GpadlCreated {
                        child_relid: RelId(relid),
                        gpadl: GpadlId(g),
                        creation_status: rng.below(2) as u32,
                    })),
                    1 => w.hv.torndown(g),
                    _ => {
                        w.hv.send(&ChannelMessage::OpenChannelResult(OpenChannelResult {
                            child_relid: RelId(relid),
                            openid: g,
                            status: rng.below(2) as u32,
                        }))
                    }
                }
            }
            9 => {
                let len = rng.below(60) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                w.hv.send_raw(&bytes);
            }
            10 if rng.below(3) == 0 => {
                let t = silenceable[rng.below(silenceable.len() as u64) as usize];
                if !w.hv.silent.remove(&t) {
                    w.hv.silent.insert(t);
                }
            }
            10 => {}
            11 => w.tick(1 + rng.below(TIMEOUT)),
            12 => w.d.on_client_fault(&mut w.hv, &mut w.k, client, w.now),
            13 => {
                if rng.below(8) == 0 {
                    w.d.unload(&mut w.hv, &mut w.k, w.now);
                }
            }
            14 => {
                if matches!(
                    w.d.connection().state,
                    ConnectionState::Disconnected | ConnectionState::Failed
                ) {
                    w.hv.silent.remove(&MessageType::VERSION_RESPONSE.0);
                    w.d.start(&mut w.hv, w.now);
                }
            }
            _ => {
                w.hv.post_failures
                    .push_back(vmbus_driver::hv::HvStatus::INSUFFICIENT_BUFFERS);
            }
        }
        // Deliver part of what the host queued, sometimes all of it.
        let passes = rng.below(3);
        for _ in 0..passes {
            w.d.on_interrupt(&mut w.hv, &mut w.k, w.now);
        }
        check_invariants(&w, step);
    }
    // Let everything settle: answer everything, run out every timeout.
    w.hv.silent.clear();
    w.hv.post_failures.clear();
    w.pump();
    for _ in 0..4 {
        w.tick(TIMEOUT);
        w.pump();
    }
    check_invariants(&w, steps);
    if std::env::var("DRIVER_RANDOM_STATS").is_ok() {
        let s = w.d.stats();
        println!(
            "seed {seed}: opens {} teardowns {} rescinds {} released {} quarantined {} hostile {} timeouts {}",
            s.opens,
            s.teardowns_completed,
            s.rescinds,
            s.relids_released,
            s.quarantined_pages,
            s.hostile,
            s.timeouts
        );
    }
    assert_eq!(
        w.d.channels()
            .filter(|c| matches!(
                w.d.abstract_channel(c.relid).map(|a| a.phase),
                Some(AbstractPhase::Teardown)
            ))
            .count(),
        0,
        "seed {seed}: a teardown never finished"
    );
    // Every accepted rescind led to exactly one RELID_RELEASED.
    let s = w.d.stats();
    assert_eq!(s.relids_released, s.rescinds, "seed {seed}");
    assert_eq!(
        w.posts_of(MessageType::RELID_RELEASED).len() as u64,
        s.rescinds
    );
}

#[test]
fn random_interleavings_keep_page_and_grant_invariants() {
    for seed in 0..150 {
        run(seed, 250);
    }
}
