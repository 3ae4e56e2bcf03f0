//! Integration tests of the Hyper-V layer through its public API: a small host that validates
//! guest hypercall input with the layer's own decoders and delivers SynIC messages one at a time,
//! as QEMU does.

use std::collections::VecDeque;

use vmbus_driver::hv::cpuid::PrivilegesHigh;
use vmbus_driver::hv::hypercall::{FastRegisters, HypercallControl};
use vmbus_driver::hv::msr;
use vmbus_driver::hv::synic::VMBUS_SLOT_OFFSET;
use vmbus_driver::hv::{
    HVCALL_POST_MESSAGE, HvMessageType, HvStatus, Hypervisor, PostMessageInput, SignalEventInput,
    Sint, SynicPageMsr, VMBUS_SINT, check_vmbus, consume_message, scan_events,
};
use vmbus_driver::ids::{ConnectionId, RelId};

/// A host with one VP's SIM and SIEF pages and a queue of messages waiting for SINT2's slot.
struct Host {
    sim: [u8; 4096],
    sief: [u32; 1024],
    queue: VecDeque<[u8; 256]>,
    posted: Vec<PostMessageInput>,
    signalled: Vec<ConnectionId>,
    eoms: u32,
}

impl Host {
    fn new() -> Self {
        Self {
            sim: [0; 4096],
            sief: [0; 1024],
            queue: VecDeque::new(),
            posted: Vec::new(),
            signalled: Vec::new(),
            eoms: 0,
        }
    }

    fn slot(&mut self, sint: u8) -> &mut [u8] {
        let at = usize::from(sint) * 256;
        &mut self.sim[at..at + 256]
    }

    /// Queues a VMBus message and tries to deliver: into a free slot, or by setting
    /// MessagePending on a busy one and waiting for EOM.
    fn send(&mut self, payload: &[u8]) {
        let mut m = [0u8; 256];
        m[0] = 1;
        m[4] = payload.len() as u8;
        m[16..16 + payload.len()].copy_from_slice(payload);
        self.queue.push_back(m);
        self.deliver();
    }

    fn deliver(&mut self) {
        let Some(next) = self.queue.front().copied() else {
            return;
        };
        let slot = self.slot(VMBUS_SINT);
        if slot[0..4] == [0; 4] {
            slot.copy_from_slice(&next);
            self.queue.pop_front();
            // Whatever still waits finds the slot busy and flags it.
            if !self.queue.is_empty() {
                self.slot(VMBUS_SINT)[5] |= 1;
            }
        } else {
            slot[5] |= 1;
        }
    }
}

impl Hypervisor for Host {
    fn post_message(&mut self, c: ConnectionId, t: HvMessageType, payload: &[u8]) -> HvStatus {
        // The guest side builds the block; the host side validates it from bytes.
        let mut block = [0u8; 256];
        block[0..4].copy_from_slice(&c.0.to_le_bytes());
        block[8..12].copy_from_slice(&t.0.to_le_bytes());
        block[12..16].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        let n = payload.len().min(240);
        block[16..16 + n].copy_from_slice(&payload[..n]);
        match PostMessageInput::decode(&block) {
            Ok(m) => {
                self.posted.push(m);
                HvStatus::SUCCESS
            }
            Err(e) => e.status(),
        }
    }

    fn signal_event(&mut self, c: ConnectionId, flag: u16) -> HvStatus {
        let regs = match SignalEventInput::new(c, flag) {
            Ok(s) => s.fast_registers(),
            Err(e) => return e.status(),
        };
        match SignalEventInput::from_fast_registers(regs) {
            Ok(s) => {
                self.signalled.push(s.connection());
                HvStatus::SUCCESS
            }
            Err(e) => e.status(),
        }
    }

    fn read_message_slot(&mut self, sint: u8) -> [u8; 256] {
        let mut copy = [0u8; 256];
        copy.copy_from_slice(self.slot(sint));
        copy
    }

    fn clear_message_slot(&mut self, sint: u8, expected: HvMessageType) -> bool {
        let slot = self.slot(sint);
        if slot[0..4] != expected.0.to_le_bytes() {
            return false;
        }
        slot[0..4].fill(0);
        true
    }

    fn end_of_message(&mut self) {
        self.eoms += 1;
        self.slot(VMBUS_SINT)[5] &= !1;
        self.deliver();
    }

    fn take_event_flags(&mut self, sint: u8, word: usize) -> u32 {
        std::mem::take(&mut self.sief[usize::from(sint) * 64 + word])
    }
}

#[test]
fn host_that_delivers_one_message_at_a_time_progresses_only_through_eom() {
    let mut host = Host::new();
    host.send(&[1]);
    host.send(&[2]);
    host.send(&[3]);
    assert_eq!(
        host.sim[VMBUS_SLOT_OFFSET + 5] & 1,
        1,
        "second message must wait behind the first"
    );
    let mut got = Vec::new();
    while let Some(m) = consume_message(&mut host, VMBUS_SINT).unwrap() {
        got.push(m.payload()[0]);
    }
    assert_eq!(got, [1, 2, 3]);
    assert_eq!(host.eoms, 2);
    assert!(host.queue.is_empty());
}

#[test]
fn malformed_host_message_does_not_block_the_next_one() {
    let mut host = Host::new();
    let mut bad = [0u8; 256];
    bad[0] = 1;
    bad[4] = 250;
    host.queue.push_back(bad);
    host.deliver();
    host.send(&[42]);
    assert!(consume_message(&mut host, VMBUS_SINT).is_err());
    let next = consume_message(&mut host, VMBUS_SINT).unwrap().unwrap();
    assert_eq!(next.payload(), &[42]);
}

#[test]
fn host_refuses_oversized_and_hypervisor_typed_posts() {
    let mut host = Host::new();
    assert_eq!(
        host.post_message(ConnectionId(4), HvMessageType::VMBUS, &[0; 240]),
        HvStatus::SUCCESS
    );
    assert_eq!(
        host.post_message(ConnectionId(4), HvMessageType::VMBUS, &[0; 241]),
        HvStatus::INVALID_PARAMETER
    );
    assert_eq!(
        host.post_message(ConnectionId(4), HvMessageType::TIMER_EXPIRED, &[]),
        HvStatus::INVALID_PARAMETER
    );
    assert_eq!(
        host.post_message(ConnectionId(0x0100_0004), HvMessageType::VMBUS, &[]),
        HvStatus::INVALID_HYPERCALL_INPUT
    );
    assert_eq!(host.posted.len(), 1);
}

#[test]
fn host_refuses_nonzero_flag_numbers_like_kvm() {
    let mut host = Host::new();
    assert_eq!(host.signal_event(ConnectionId(17), 0), HvStatus::SUCCESS);
    assert_eq!(
        host.signal_event(ConnectionId(17), 1),
        HvStatus::INVALID_PORT_ID
    );
    assert_eq!(
        host.signal_event(ConnectionId(1 << 24), 0),
        HvStatus::INVALID_HYPERCALL_INPUT
    );
    assert_eq!(host.signalled, [ConnectionId(17)]);
}

#[test]
fn channel_interrupts_are_found_by_relid_and_cleared() {
    let mut host = Host::new();
    // relid 5 and relid 70 on SINT2 (bitmap at word 2*64).
    host.sief[128] |= 1 << 5;
    host.sief[128 + 2] |= 1 << 6;
    let mut relids = Vec::new();
    scan_events(&mut host, VMBUS_SINT, |r| relids.push(r)).unwrap();
    assert_eq!(relids, [RelId(5), RelId(70)]);
    scan_events(&mut host, VMBUS_SINT, |_| {
        panic!("flags must be cleared by the first scan")
    })
    .unwrap();
}

#[test]
fn enable_values_for_a_qemu_guest_follow_the_enable_sequence() {
    let support = check_vmbus(|leaf, _| match leaf {
        1 => [0, 0, 1 << 31, 0],
        0x4000_0000 => [0x4000_000A, 0x7263_694D, 0x666F_736F, 0x7648_2074],
        0x4000_0001 => [0x3123_7648, 0, 0, 0],
        0x4000_0003 => [0x0276, 0x30, 0, 0],
        _ => [0; 4],
    })
    .unwrap();
    assert!(
        support
            .info
            .privileges_high
            .contains(PrivilegesHigh::POST_MESSAGES)
    );
    // SINT2 = vector | AutoEOI (bit 17), bit 16 clear, from the reset value.
    let sint2 = Sint::RESET
        .with_vector(0x40)
        .unwrap()
        .with_auto_eoi(support.use_auto_eoi)
        .with_masked(false);
    assert_eq!((msr::VMBUS_SINT_MSR, sint2.0), (0x4000_0092, 0x0002_0040));
    let simp = SynicPageMsr(0)
        .with_page_number(0x1_2345)
        .unwrap()
        .with_enabled(true);
    assert_eq!(simp.0, 0x1234_5001);
}

#[test]
fn post_message_is_a_slow_call_and_signal_event_a_fast_one() {
    let post = HypercallControl::simple(HVCALL_POST_MESSAGE)
        .encode()
        .unwrap();
    assert_eq!(post, 0x5C);
    let regs = SignalEventInput::new(ConnectionId(0x20), 0)
        .unwrap()
        .fast_registers();
    assert_eq!(
        regs,
        FastRegisters {
            rcx: 0x1_005D,
            rdx: 0x20,
            r8: 0
        }
    );
}
