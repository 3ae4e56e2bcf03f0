//! Byte-exact encodings, the initialisation exchange against a scripted host, hostile
//! completions, SCSI result decoding, READ CAPACITY(16) parsing, `fail_all` and sub-channels.

use crate::cdb::opcode;
use crate::msg::{
    self, ChannelProperties, DecodeError, Operation, PACKET_MAX, SrbReply, srb_status, status,
};
use crate::*;

const ID: u64 = INIT_TRANSACTION_ID;

/// A 64-byte `COMPLETE_IO` packet with `status` and `patches` written at their offsets.
fn completion(st: u32, patches: &[(usize, &[u8])]) -> [u8; 64] {
    let mut p = [0u8; 64];
    p[0] = 1;
    p[8..12].copy_from_slice(&st.to_le_bytes());
    for (at, bytes) in patches {
        p[*at..*at + bytes.len()].copy_from_slice(bytes);
    }
    p
}

/// Properties completion: `max_channel_count`, flags, `max_transfer_bytes`.
fn properties(count: u16, flags: u32, max: u32) -> [u8; 64] {
    completion(
        0,
        &[
            (16, &count.to_le_bytes()),
            (20, &flags.to_le_bytes()),
            (24, &max.to_le_bytes()),
        ],
    )
}

/// An SRB completion: SRB length field, SRB status, SCSI status, sense length, transfer length,
/// sense bytes.
fn srb_done(len: u16, srb: u8, scsi: u8, sense_len: u8, moved: u32, sense: &[u8]) -> [u8; 64] {
    let mut p = completion(0, &[]);
    p[12..14].copy_from_slice(&len.to_le_bytes());
    p[14] = srb;
    p[15] = scsi;
    p[21] = sense_len;
    p[24..28].copy_from_slice(&moved.to_le_bytes());
    p[28..28 + sense.len()].copy_from_slice(sense);
    p
}

fn negotiated(version: Version, max: u32) -> Negotiated {
    Negotiated {
        version,
        properties: ChannelProperties {
            max_channel_count: 0,
            flags: 0,
            max_transfer_bytes: max,
        },
        max_transfer_bytes: max,
        sub_channels_offered: 0,
    }
}

fn header(op: u8) -> [u8; 12] {
    [op, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
}

#[test]
fn bodiless_requests_are_64_bytes_of_operation_completion_flag_and_zeros() {
    let mut out = [0xAAu8; PACKET_MAX];
    for (op, code) in [
        (Operation::BEGIN_INITIALIZATION, 7u8),
        (Operation::QUERY_PROPERTIES, 10),
        (Operation::END_INITIALIZATION, 8),
    ] {
        out.fill(0xAA);
        assert_eq!(msg::simple_request(&mut out, op), 64);
        let mut want = [0u8; 64];
        want[..12].copy_from_slice(&header(code));
        assert_eq!(out, want);
    }
}

#[test]
fn version_request_carries_major_minor_little_endian_and_zero_revision() {
    let mut out = [0xAAu8; PACKET_MAX];
    assert_eq!(msg::version_request(&mut out, Version::WIN10), 64);
    let mut want = [0u8; 64];
    want[..12].copy_from_slice(&header(9));
    want[12] = 0x02; // minor
    want[13] = 0x06; // major
    assert_eq!(out, want);
    assert_eq!(
        (
            Version::WIN8_1.0,
            Version::WIN8.0,
            Version::WIN7.0,
            Version::WIN6.0
        ),
        (0x0600, 0x0501, 0x0402, 0x0200)
    );
}

#[test]
fn sub_channel_request_carries_the_count_at_offset_12() {
    let mut out = [0xAAu8; PACKET_MAX];
    assert_eq!(msg::sub_channel_request(&mut out, 0x0107), 64);
    let mut want = [0u8; 64];
    want[..12].copy_from_slice(&header(13));
    want[12] = 0x07;
    want[13] = 0x01;
    assert_eq!(out, want);
}

#[test]
fn win8_srb_is_64_bytes_with_the_windows_8_fields() {
    let mut out = [0xAAu8; PACKET_MAX];
    let cmd = Command::read_16(0x0102_0304_0506_0708, 2, 512).unwrap();
    let srb = msg::Srb {
        lun: Lun {
            port: 1,
            path: 2,
            target: 3,
            lun: 4,
        },
        cdb: cmd.cdb,
        cdb_len: cmd.cdb_len,
        direction: cmd.direction,
        data_len: cmd.data_len,
    };
    assert_eq!(msg::srb_request(&mut out, Version::WIN10, &srb), 64);
    #[rustfmt::skip]
    let want: [u8; 64] = [
        3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        52, 0, 0, 0, 1, 2, 3, 4, 16, 0x14, 1, 0, 0x00, 0x04, 0, 0,
        0x88, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0x48, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(out, want);
}

#[test]
fn pre_win8_srb_is_48_bytes_with_an_18_byte_sense_request() {
    let mut out = [0xAAu8; PACKET_MAX];
    let cmd = Command::write_16(9, 1, 4096, false).unwrap();
    let srb = msg::Srb {
        lun: Lun::default(),
        cdb: cmd.cdb,
        cdb_len: cmd.cdb_len,
        direction: cmd.direction,
        data_len: cmd.data_len,
    };
    assert_eq!(msg::srb_request(&mut out, Version::WIN7, &srb), 48);
    #[rustfmt::skip]
    let want: [u8; 48] = [
        3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        36, 0, 0, 0, 0, 0, 0, 0, 16, 0x12, 0, 0, 0x00, 0x10, 0, 0,
        0x8A, 0, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(out[..48], want);
    assert!(out[48..].iter().all(|&b| b == 0));
}

#[test]
fn gpa_range_encodes_reserved_count_length_offset_and_frames() {
    let pfns = [0x1_2345u64, 0x1_2346];
    let b = DataBuffer {
        offset: 0x200,
        len: 4096,
        pfns: &pfns,
    };
    let mut out = [0xAAu8; 40];
    assert_eq!(b.encode_ext(&mut out), Ok(32));
    #[rustfmt::skip]
    let want: [u8; 32] = [
        0, 0, 0, 0, 1, 0, 0, 0, 0, 0x10, 0, 0, 0, 0x02, 0, 0,
        0x45, 0x23, 1, 0, 0, 0, 0, 0, 0x46, 0x23, 1, 0, 0, 0, 0, 0,
    ];
    assert_eq!(out[..32], want);
    let short = DataBuffer {
        pfns: &pfns[..1],
        ..b
    };
    assert_eq!(
        short.check(),
        Err(BufferError::PageCount { spans: 2, given: 1 })
    );
    assert_eq!(
        DataBuffer { offset: 4096, ..b }.check(),
        Err(BufferError::Offset(4096))
    );
    assert_eq!(
        b.encode_ext(&mut [0u8; 31]),
        Err(BufferError::Output { needed: 32 })
    );
}

#[test]
fn cdb_builders_follow_spc_and_sbc() {
    let t = Command::test_unit_ready();
    assert_eq!(
        (t.cdb, t.cdb_len, t.direction, t.data_len),
        ([0; 16], 6, Direction::None, 0)
    );
    let i = Command::inquiry(0x0124);
    assert_eq!(i.cdb[..6], [0x12, 0, 0, 0x01, 0x24, 0]);
    assert_eq!((i.direction, i.data_len), (Direction::In, 0x124));
    let v = Command::inquiry_vpd(0x83, 255);
    assert_eq!(v.cdb[..6], [0x12, 1, 0x83, 0, 255, 0]);
    let r = Command::read_capacity_16();
    assert_eq!(
        r.cdb,
        [0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]
    );
    let w = Command::write_16(0x10, 8, 512, true).unwrap();
    assert_eq!(
        w.cdb,
        [0x8A, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 8, 0, 0]
    );
    assert_eq!((w.direction, w.data_len), (Direction::Out, 4096));
    let s = Command::synchronize_cache_16(0, 0);
    assert_eq!(s.cdb[0], opcode::SYNCHRONIZE_CACHE_16);
    assert_eq!(
        (s.cdb_len, s.direction, s.data_len),
        (16, Direction::None, 0)
    );
    assert_eq!(
        Command::read_16(0, u32::MAX, 512),
        Err(CommandError::TooLong {
            blocks: u32::MAX,
            block_size: 512
        })
    );
    assert_eq!(Command::read_16(0, 1, 0), Err(CommandError::ZeroBlockSize));
}

/// Runs the exchange against a host that refuses every version listed in `refuse` and answers
/// the properties with `props`; the packets the guest sent (operation and version word).
fn run_init(
    refuse: &[Version],
    props: [u8; 64],
) -> (Result<Negotiated, InitError>, [(u32, u16); 8]) {
    let mut out = [0u8; PACKET_MAX];
    let mut sent = [(0u32, 0u16); 8];
    let (mut init, n) = Init::begin(&mut out);
    assert_eq!(n, 64);
    let mut k = 0;
    loop {
        sent[k] = (msg::u32_at(&out, 0), msg::u16_at(&out, 12));
        let op = Operation(msg::u32_at(&out, 0));
        let answer = match op {
            Operation::QUERY_PROTOCOL_VERSION
                if refuse.contains(&Version(msg::u16_at(&out, 12))) =>
            {
                completion(status::REVISION_MISMATCH, &[(12, &out[12..14])])
            }
            Operation::QUERY_PROPERTIES => props,
            _ => completion(0, &[]),
        };
        k += 1;
        match init.on_packet(init.transaction_id(), &answer, &mut out) {
            Ok(InitStep::Send(64)) => {}
            Ok(InitStep::Ready(n)) => {
                assert_eq!(init, Init::Ready(n));
                return (Ok(n), sent);
            }
            Ok(other) => panic!("{other:?}"),
            Err(e) => {
                assert_eq!(init, Init::Failed(e));
                return (Err(e), sent);
            }
        }
    }
}

#[test]
fn init_walks_versions_newest_first_past_a_refusal() {
    let (r, sent) = run_init(&[Version::WIN10], properties(7, 1, 0x4_0000));
    let n = r.unwrap();
    assert_eq!(
        sent[..5],
        [(7, 0), (9, 0x0602), (9, 0x0600), (10, 0), (8, 0)]
    );
    assert_eq!(n.version, Version::WIN8_1);
    assert_eq!(n.max_transfer_bytes, 0x4_0000);
    assert_eq!(n.sub_channels_offered, 7);
}

#[test]
fn init_fails_when_every_version_is_refused() {
    let (r, sent) = run_init(&Version::PROPOSALS, properties(0, 0, 0x4_0000));
    assert_eq!(r, Err(InitError::NoCommonVersion));
    assert_eq!(sent[5], (9, 0x0200));
}

#[test]
fn old_version_ignores_the_multi_channel_flag_and_pages_round_the_transfer_down() {
    let refuse = [Version::WIN10, Version::WIN8_1, Version::WIN8];
    let (r, _) = run_init(&refuse, properties(4, 1, 0x4_0fff));
    let n = r.unwrap();
    assert_eq!(n.version, Version::WIN7);
    assert_eq!(n.sub_channels_offered, 0);
    assert_eq!(n.max_transfer_bytes, 0x4_0000);
    let (r, _) = run_init(&[], properties(0, 0, 4095));
    assert_eq!(
        r,
        Err(InitError::NoTransfer {
            max_transfer_bytes: 4095
        })
    );
}

#[test]
fn init_refuses_wrong_operations_ids_statuses_and_late_packets() {
    let mut out = [0u8; PACKET_MAX];
    let (mut init, _) = Init::begin(&mut out);
    // A host notification before the bus is up is ignored.
    let mut enumerate = completion(0, &[]);
    enumerate[0] = 11;
    assert_eq!(init.on_packet(0, &enumerate, &mut out), Ok(InitStep::Wait));
    assert_eq!(init, Init::Begin);
    // Not COMPLETE_IO.
    let e = init.on_packet(ID, &enumerate, &mut out).unwrap_err();
    assert_eq!(
        e,
        InitError::Decode(DecodeError::Operation {
            expected: Operation::COMPLETE_IO,
            got: Operation(11)
        })
    );
    assert_eq!(init, Init::Failed(e));
    assert_eq!(
        init.on_packet(ID, &completion(0, &[]), &mut out),
        Err(InitError::OutOfOrder)
    );

    let (mut init, _) = Init::begin(&mut out);
    assert_eq!(
        init.on_packet(5, &completion(0, &[]), &mut out),
        Err(InitError::Transaction(5))
    );
    let (mut init, _) = Init::begin(&mut out);
    assert_eq!(
        init.on_packet(ID, &completion(status::INVALID_DEVICE_STATE, &[]), &mut out),
        Err(InitError::Refused {
            operation: Operation::BEGIN_INITIALIZATION,
            status: status::INVALID_DEVICE_STATE
        })
    );
    // Properties shorter than the 24 bytes they need.
    let mut init = Init::Properties {
        version: Version::WIN10,
    };
    assert_eq!(
        init.on_packet(
            init.transaction_id(),
            &properties(0, 0, 0x1000)[..35],
            &mut out
        ),
        Err(InitError::Decode(DecodeError::Truncated {
            needed: 36,
            got: 35
        }))
    );
}

#[test]
fn a_duplicated_init_completion_is_ignored_not_taken_as_the_next_steps_answer() {
    let mut out = [0u8; PACKET_MAX];
    let (mut init, _) = Init::begin(&mut out);
    let begun = init.transaction_id();
    assert_eq!(
        init.on_packet(begun, &completion(0, &[]), &mut out),
        Ok(InitStep::Send(64))
    );
    // The host completes BEGIN_INITIALIZATION again: not the answer to the version proposal.
    assert_eq!(
        init.on_packet(begun, &completion(0, &[]), &mut out),
        Ok(InitStep::Stale(begun))
    );
    assert_eq!(init, Init::Proposing { index: 0 });
    assert_ne!(init.transaction_id(), begun);
    // The proposal's own answer still moves the exchange on.
    assert_eq!(
        init.on_packet(init.transaction_id(), &completion(0, &[]), &mut out),
        Ok(InitStep::Send(64))
    );
    assert!(matches!(init, Init::Properties { .. }));
    // An id no step used is still refused.
    assert_eq!(
        init.on_packet(begun - 40, &completion(0, &[]), &mut out),
        Err(InitError::Transaction(begun - 40))
    );
}

fn ready_table(version: Version, depth: usize) -> Requests<8> {
    Requests::new(&negotiated(version, 0x2_0000), depth)
}

fn read_one(r: &mut Requests<8>, out: &mut [u8; PACKET_MAX]) -> Submitted {
    let pfns = [0x99u64];
    let b = DataBuffer {
        offset: 0,
        len: 1024,
        pfns: &pfns,
    };
    r.submit(
        Lun::default(),
        &Command::read_16(0, 2, 512).unwrap(),
        Some(&b),
        out,
    )
    .unwrap()
}

#[test]
fn a_completion_matches_its_request_and_reports_a_short_transfer() {
    let mut out = [0u8; PACKET_MAX];
    let mut r = ready_table(Version::WIN10, 4);
    let a = read_one(&mut r, &mut out);
    let b = read_one(&mut r, &mut out);
    assert!(a.gpa_direct && a.len == 64 && a.transaction_id != b.transaction_id);
    assert_ne!(a.transaction_id & 0xffff_ffff, 0);
    assert_eq!(r.outstanding(), 2);
    let done = r
        .on_packet(b.transaction_id, &srb_done(52, 1, 0, 0, 512, &[]))
        .unwrap();
    assert_eq!(
        done,
        Incoming::Done(Done {
            transaction_id: b.transaction_id,
            opcode: opcode::READ_16,
            result: Ok(Transfer {
                transferred: 512,
                requested: 1024
            })
        })
    );
    assert!(matches!(done, Incoming::Done(Done { result: Ok(t), .. }) if t.is_short()));
    assert_eq!(r.outstanding(), 1);
    assert_eq!(r.stats().short, 1);
}

#[test]
fn hostile_completions_are_errors_never_panics() {
    let mut out = [0u8; PACKET_MAX];
    let mut r = ready_table(Version::WIN10, 4);
    let ok = srb_done(52, 1, 0, 0, 1024, &[]);
    // Unknown ids: slot 0, beyond the depth, the init id.
    for id in [1u64 << 32, (1 << 32) | 5, ID] {
        assert_eq!(r.on_packet(id, &ok), Err(HostError::UnknownId(id)));
    }
    // A slot that is free.
    assert_eq!(
        r.on_packet((1 << 32) | 1, &ok),
        Err(HostError::NotOutstanding((1 << 32) | 1))
    );
    // Duplicate completion.
    let a = read_one(&mut r, &mut out);
    assert!(r.on_packet(a.transaction_id, &ok).is_ok());
    assert_eq!(
        r.on_packet(a.transaction_id, &ok),
        Err(HostError::NotOutstanding(a.transaction_id))
    );
    // A late duplicate after the slot was reused for a newer request.
    let b = read_one(&mut r, &mut out);
    assert_eq!(
        b.transaction_id & 0xffff_ffff,
        a.transaction_id & 0xffff_ffff
    );
    assert_eq!(
        r.on_packet(a.transaction_id, &ok),
        Err(HostError::NotOutstanding(a.transaction_id))
    );
    assert_eq!(r.outstanding(), 1);
    // Oversize sense length: the request is ended and named.
    let e = r
        .on_packet(b.transaction_id, &srb_done(52, 0x84, 2, 21, 0, &[]))
        .unwrap_err();
    assert_eq!(
        e,
        HostError::Malformed {
            transaction_id: b.transaction_id,
            error: DecodeError::SenseLength {
                length: 21,
                max: 20
            }
        }
    );
    assert_eq!(e.ended(), Some(b.transaction_id));
    assert_eq!(r.outstanding(), 0);
    // SRB length mismatch.
    let c = read_one(&mut r, &mut out);
    assert_eq!(
        r.on_packet(c.transaction_id, &srb_done(40, 1, 0, 0, 1024, &[])),
        Err(HostError::Malformed {
            transaction_id: c.transaction_id,
            error: DecodeError::SrbLength {
                length: 40,
                expected: 52
            }
        })
    );
    // More bytes than the request moves.
    let d = read_one(&mut r, &mut out);
    assert_eq!(
        r.on_packet(d.transaction_id, &srb_done(52, 1, 0, 0, 1025, &[])),
        Err(HostError::TransferBeyondRequest {
            transaction_id: d.transaction_id,
            transferred: 1025,
            requested: 1024
        })
    );
    // Truncated: fewer bytes than the version's SRB.
    let f = read_one(&mut r, &mut out);
    assert_eq!(
        r.on_packet(f.transaction_id, &ok[..63]),
        Err(HostError::Malformed {
            transaction_id: f.transaction_id,
            error: DecodeError::Truncated {
                needed: 64,
                got: 63
            }
        })
    );
    // A completion with id 0, and an undecodable unsolicited packet.
    assert_eq!(r.on_packet(0, &ok), Err(HostError::CompletionWithoutId));
    assert_eq!(
        r.on_packet(0, &[11, 0]),
        Err(HostError::Unsolicited(DecodeError::Truncated {
            needed: 12,
            got: 2
        }))
    );
    assert_eq!(r.outstanding(), 0);
    assert_eq!(r.stats().hostile, 12);
}

#[test]
fn pre_win8_completions_are_48_bytes_and_openvmm_writes_the_52_byte_length() {
    let mut out = [0u8; PACKET_MAX];
    let mut r = ready_table(Version::WIN7, 4);
    let a = read_one(&mut r, &mut out);
    assert_eq!(a.len, 48);
    let mut p = srb_done(36, 1, 0, 0, 1024, &[]);
    assert!(r.on_packet(a.transaction_id, &p[..48]).is_ok());
    let b = read_one(&mut r, &mut out);
    p[12] = 52;
    assert!(r.on_packet(b.transaction_id, &p[..48]).is_ok());
    assert_eq!(
        SrbReply::decode(&p[..47], Version::WIN7),
        Err(DecodeError::Truncated {
            needed: 48,
            got: 47
        })
    );
}

#[test]
fn srb_and_scsi_status_and_sense_become_a_clear_error() {
    let mut out = [0u8; PACKET_MAX];
    let mut r = ready_table(Version::WIN10, 8);
    let mut run = |p: [u8; 64]| {
        let s = read_one(&mut r, &mut out);
        match r.on_packet(s.transaction_id, &p).unwrap() {
            Incoming::Done(d) => d.result,
            other => panic!("{other:?}"),
        }
    };
    // CHECK CONDITION, fixed sense: ILLEGAL REQUEST, LBA out of range (21h/00h).
    let mut fixed = [0u8; 18];
    fixed[0] = 0x70;
    fixed[2] = 0x05;
    fixed[7] = 10;
    fixed[12] = 0x21;
    assert_eq!(
        run(srb_done(52, 0x84, 2, 18, 0, &fixed)),
        Err(IoError::CheckCondition(Sense {
            key: 5,
            asc: 0x21,
            ascq: 0
        }))
    );
    // Descriptor sense: UNIT ATTENTION, capacity changed (2Ah/09h).
    assert_eq!(
        run(srb_done(
            52,
            0x84,
            2,
            8,
            0,
            &[0x72, 0x06, 0x2a, 0x09, 0, 0, 0, 0]
        )),
        Err(IoError::CheckCondition(Sense {
            key: 6,
            asc: 0x2a,
            ascq: 9
        }))
    );
    // CHECK CONDITION without valid sense, INVALID_LUN (what OpenVMM sends for a missing LUN).
    assert_eq!(
        run(srb_done(52, srb_status::INVALID_LUN, 2, 20, 0, &[])),
        Err(IoError::NoDevice { srb_status: 0x20 })
    );
    // CHECK CONDITION, autosense flag but garbage sense.
    assert_eq!(
        run(srb_done(52, 0x84, 2, 1, 0, &[0x00])),
        Err(IoError::ScsiStatus {
            scsi_status: 2,
            srb_status: 4
        })
    );
    assert_eq!(
        run(srb_done(52, srb_status::ABORTED, 0, 0, 0, &[])),
        Err(IoError::Aborted { srb_status: 2 })
    );
    assert_eq!(
        run(srb_done(52, srb_status::BUSY, 0, 0, 0, &[])),
        Err(IoError::Busy)
    );
    assert_eq!(
        run(srb_done(52, 1, 0x18, 0, 0, &[])),
        Err(IoError::ScsiStatus {
            scsi_status: 0x18,
            srb_status: 1
        })
    );
    assert_eq!(
        run(srb_done(52, 0x30 | 0x40, 0, 0, 0, &[])),
        Err(IoError::Srb { srb_status: 0x30 })
    );
    // DATA_OVERRUN with GOOD status: a short transfer, not an error.
    assert_eq!(
        run(srb_done(52, srb_status::DATA_OVERRUN, 0, 0, 100, &[])),
        Ok(Transfer {
            transferred: 100,
            requested: 1024
        })
    );
}

#[test]
fn submit_checks_buffers_limits_and_the_queue_depth() {
    let mut out = [0u8; PACKET_MAX];
    let mut r = ready_table(Version::WIN10, 2);
    let pfns = [1u64];
    let b = DataBuffer {
        offset: 0,
        len: 512,
        pfns: &pfns,
    };
    let read = Command::read_16(0, 1, 512).unwrap();
    let lun = Lun::default();
    assert_eq!(
        r.submit(lun, &read, None, &mut out),
        Err(SubmitError::BufferMismatch)
    );
    assert_eq!(
        r.submit(lun, &Command::test_unit_ready(), Some(&b), &mut out),
        Err(SubmitError::BufferMismatch)
    );
    let big = Command::read_16(0, 257, 512).unwrap();
    assert_eq!(
        r.submit(lun, &big, Some(&b), &mut out),
        Err(SubmitError::TooLarge {
            len: 257 * 512,
            max: 0x2_0000
        })
    );
    let two = Command::read_16(0, 2, 512).unwrap();
    assert_eq!(
        r.submit(lun, &two, Some(&b), &mut out),
        Err(SubmitError::BufferLength {
            buffer: 512,
            command: 1024
        })
    );
    let tur = r
        .submit(lun, &Command::test_unit_ready(), None, &mut out)
        .unwrap();
    assert!(!tur.gpa_direct);
    assert_eq!(out[22], 2); // data_in: no data
    r.submit(lun, &read, Some(&b), &mut out).unwrap();
    assert_eq!(
        r.submit(lun, &read, Some(&b), &mut out),
        Err(SubmitError::QueueFull)
    );
    // A failed send gives the slot back.
    r.cancel(tur.transaction_id).unwrap();
    assert_eq!(
        r.cancel(tur.transaction_id),
        Err(HostError::NotOutstanding(tur.transaction_id))
    );
    assert!(r.submit(lun, &read, Some(&b), &mut out).is_ok());
    assert_eq!(r.depth(), 2);
    assert_eq!(
        Requests::<8>::new(&negotiated(Version::WIN10, 4096), 100).depth(),
        8
    );
}

#[test]
fn queue_depth_follows_ring_size_and_transfer_size() {
    // 256 KiB transfers: 16 + 8 + 8 + 8 * 65 + 64 + 8 = 624 bytes of ring per request.
    assert_eq!(ring_bytes_per_request(0x4_0000), 624);
    assert_eq!(queue_depth_for(124 * 1024, 0x4_0000), 203);
    assert_eq!(queue_depth_for(100, 0x4_0000), 1);
}

#[test]
fn fail_all_ends_every_outstanding_request_with_channel_gone() {
    let mut out = [0u8; PACKET_MAX];
    let mut r = ready_table(Version::WIN10, 8);
    let ids = [
        read_one(&mut r, &mut out).transaction_id,
        read_one(&mut r, &mut out).transaction_id,
        read_one(&mut r, &mut out).transaction_id,
    ];
    assert!(
        r.on_packet(ids[1], &srb_done(52, 1, 0, 0, 1024, &[]))
            .is_ok()
    );
    let mut seen = [0u64; 4];
    let mut k = 0;
    let n = r.fail_all(|d| {
        assert_eq!(d.result, Err(IoError::ChannelGone));
        assert_eq!(d.opcode, opcode::READ_16);
        seen[k] = d.transaction_id;
        k += 1;
    });
    assert_eq!(n, 2);
    assert_eq!(seen[..2], [ids[0], ids[2]]);
    assert_eq!(r.outstanding(), 0);
    // A completion arriving after the rescind is for nothing outstanding.
    assert_eq!(
        r.on_packet(ids[0], &srb_done(52, 1, 0, 0, 1024, &[])),
        Err(HostError::NotOutstanding(ids[0]))
    );
    assert_eq!(r.fail_all(|_| panic!("nothing left")), 0);
}

#[test]
fn host_notifications_ask_for_a_rescan() {
    let mut r = ready_table(Version::WIN10, 2);
    let mut p = completion(0, &[]);
    p[0] = 11;
    assert_eq!(r.on_packet(0, &p), Ok(Incoming::Rescan));
    p[0] = 2;
    assert_eq!(r.on_packet(0, &p[..12]), Ok(Incoming::Rescan));
    p[0] = 12;
    assert_eq!(
        r.on_packet(0, &p),
        Ok(Incoming::Ignored(Operation::FC_HBA_DATA))
    );
}

#[test]
fn read_capacity_16_data_is_parsed_and_checked() {
    let mut d = [0u8; 32];
    d[0..8].copy_from_slice(&0x0000_0000_01ff_ffffu64.to_be_bytes());
    d[8..12].copy_from_slice(&512u32.to_be_bytes());
    d[13] = 0x03;
    d[14] = 0x80;
    let c = Capacity::parse(&d).unwrap();
    assert_eq!(
        c,
        Capacity {
            blocks: 0x0200_0000,
            block_size: 512,
            physical_exponent: 3,
            thin: true
        }
    );
    assert_eq!(c.bytes(), 16 << 30);
    assert_eq!(
        Capacity::parse(&d[..12]).map(|c| (c.blocks, c.thin)),
        Ok((0x0200_0000, false))
    );
    assert_eq!(
        Capacity::parse(&d[..11]),
        Err(CapacityError::Short { got: 11 })
    );
    d[8..12].fill(0);
    assert_eq!(Capacity::parse(&d), Err(CapacityError::ZeroBlockSize));
    d[0..8].fill(0xff);
    d[11] = 1;
    assert_eq!(Capacity::parse(&d), Err(CapacityError::LbaOverflow));
}

#[test]
fn sub_channels_are_asked_for_within_the_offer_and_counted() {
    let mut out = [0u8; PACKET_MAX];
    let mut n = negotiated(Version::WIN10, 4096);
    assert_eq!(SubChannels::new(&n), SubChannels::Unsupported);
    assert_eq!(SubChannels::new(&n).request(3, &mut out), Ok(None));
    n.sub_channels_offered = 2;
    let mut s = SubChannels::new(&n);
    assert_eq!(s.on_opened(), Err(SubChannelError::State));
    assert_eq!(s.request(5, &mut out), Ok(Some(64)));
    assert_eq!((msg::u32_at(&out, 0), msg::u16_at(&out, 12)), (13, 2));
    assert_eq!(s.request(1, &mut out), Err(SubChannelError::State));
    assert_eq!(
        s.on_completion(7, &completion(0, &[])),
        Err(SubChannelError::Transaction(7))
    );
    assert_eq!(s.on_completion(ID, &completion(0, &[])), Ok(2));
    assert_eq!(s.channels(), 1);
    assert_eq!(s.on_opened(), Ok(1));
    assert_eq!(s.on_opened(), Ok(2));
    assert_eq!(s.on_opened(), Err(SubChannelError::TooMany));
    assert_eq!([0, 1, 2, 3].map(|k| s.channel_for(k)), [0, 1, 2, 0]);
    let mut refused = SubChannels::Requested { count: 2 };
    assert_eq!(
        refused.on_completion(ID, &completion(status::INVALID_PARAMETER, &[])),
        Ok(0)
    );
    assert_eq!(refused, SubChannels::Refused(status::INVALID_PARAMETER));
}

#[test]
fn errors_display_their_facts() {
    extern crate std;
    use std::string::ToString;
    assert_eq!(
        IoError::CheckCondition(Sense {
            key: 5,
            asc: 0x24,
            ascq: 0
        })
        .to_string(),
        "check condition: sense key 0x5, ASC 0x24, ASCQ 0x00"
    );
    assert_eq!(
        HostError::NotOutstanding(0x1_0000_0001).to_string(),
        "completion for id 0x100000001, which is not outstanding"
    );
    assert_eq!(Version::WIN8_1.to_string(), "6.0");
}
