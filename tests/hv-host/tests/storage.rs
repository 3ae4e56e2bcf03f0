//! Storage (storvsp), host side: the vstor initialization answered byte-exact, versions refused
//! the way Linux expects, SCSI commands against the RAM disk through GPA-direct buffers, every
//! guest-provided range checked, and the hostile switches.

mod common;

use common::stor::*;
use common::u32le;
use hv_host::devices::storage::{DISK_SECTORS, OVERSIZE_SENSE_LEN, UNKNOWN_TID_BIT};
use hv_host::{DeviceSpec, GuestError, Hostile, StorFault, StorPhase, StorageOptions};

#[test]
fn initialization_is_answered_byte_exact() {
    let mut s = Stor::scsi(0);
    // A 48-byte request (the pre-5.1 size Linux used before negotiating) gets a 48-byte answer.
    let c = s.call(7, &pkt(BEGIN, &[], 48));
    assert_eq!(c, [&[1u8, 0, 0, 0][..], &[0; 44]].concat());
    let c = s.call(8, &pkt(QUERY_VERSION, &[0x02, 0x06], 64));
    let mut want = vec![0u8; 64];
    want[0] = 1;
    want[12] = 0x02;
    want[13] = 0x06;
    assert_eq!(c, want);
    let c = s.call(9, &pkt(QUERY_PROPERTIES, &[], 64));
    let mut want = vec![0u8; 64];
    want[0] = 1;
    // max_channel_cnt 0 @16, flags 0 @20, max_transfer_bytes 0x40000 @24.
    want[24..28].copy_from_slice(&0x4_0000u32.to_le_bytes());
    assert_eq!(c, want);
    let c = s.call(10, &pkt(END, &[], 64));
    assert_eq!((c.len(), u32le(&c, 8)), (64, 0));
    let ch = s.chan();
    assert_eq!((ch.phase, ch.version), (StorPhase::Ready, Some(0x0602)));
    assert_eq!(
        s.trace(),
        [
            "guest->host storvsp: BEGIN_INITIALIZATION",
            "host->guest storvsp: COMPLETE_IO BEGIN_INITIALIZATION status 0x0",
            "guest->host storvsp: QUERY_PROTOCOL_VERSION 6.2",
            "host->guest storvsp: COMPLETE_IO version 6.2 accepted",
            "guest->host storvsp: QUERY_PROPERTIES",
            "host->guest storvsp: COMPLETE_IO properties max_transfer_bytes=262144 max_channel_cnt=0 flags=0x0",
            "guest->host storvsp: END_INITIALIZATION",
            "host->guest storvsp: COMPLETE_IO END_INITIALIZATION status 0x0",
        ]
    );
    assert_eq!(s.g.host.errors().total(), 0);
}

#[test]
fn versions_outside_5_1_to_6_2_are_refused_with_revision_mismatch() {
    let mut s = Stor::scsi(0);
    s.call(1, &pkt(BEGIN, &[], 64));
    for v in [0x0700u16, 0x0402, 0x0200, 0x0601] {
        let c = s.call(2, &pkt(QUERY_VERSION, &v.to_le_bytes(), 64));
        // Linux: operation COMPLETE_IO with a non-zero status means "try the next one".
        assert_eq!(
            (u32le(&c, 0), u32le(&c, 8)),
            (COMPLETE_IO, REVISION_MISMATCH)
        );
        assert_eq!(&c[12..14], v.to_le_bytes(), "the version is echoed");
        assert_eq!(s.chan().phase, StorPhase::Version);
    }
    for v in [0x0602u16, 0x0600, 0x0501] {
        let mut t = Stor::scsi(0);
        t.init(v);
        assert_eq!(t.chan().version, Some(v));
    }
    // A host without 6.2 makes Linux fall back to 6.0.
    let opts = StorageOptions {
        accept_win10: false,
        ..StorageOptions::DEFAULT
    };
    let mut t = Stor::open(DeviceSpec::scsi_with(opts), 3, 3, 0);
    t.call(1, &pkt(BEGIN, &[], 64));
    let c = t.call(2, &pkt(QUERY_VERSION, &0x0602u16.to_le_bytes(), 64));
    assert_eq!(u32le(&c, 8), REVISION_MISMATCH);
    let c = t.call(3, &pkt(QUERY_VERSION, &0x0600u16.to_le_bytes(), 64));
    assert_eq!(u32le(&c, 8), 0);
}

#[test]
fn win7_requests_are_shorter_and_win8_requests_must_be_full_size() {
    let opts = StorageOptions {
        accept_win7: true,
        ..StorageOptions::DEFAULT
    };
    let mut s = Stor::open(DeviceSpec::scsi_with(opts), 3, 3, 0);
    s.init(0x0402);
    // A 48-byte TEST UNIT READY (header + 0x24-byte request) is whole at 4.2.
    let c = s.call(5, &srb(&[0; 6], NONE, 0, 0)[..48]);
    assert_eq!(c.len(), 48);
    assert_eq!(fields(&c).0, 0x01);
    assert_eq!(u16::from_le_bytes([c[12], c[13]]), 0x24);
    // At 6.2 the same 48 bytes are short: refused, answered INVALID_REQUEST in a 64-byte packet.
    let mut s = Stor::scsi(0);
    s.init(0x0602);
    let c = s.call(6, &srb(&[0; 6], NONE, 0, 0)[..48]);
    assert_eq!(
        (c.len(), u32le(&c, 8), fields(&c).0),
        (64, INVALID_PARAMETER, 0x06)
    );
    assert_eq!(u16::from_le_bytes([c[12], c[13]]), 0x34);
    assert!(matches!(
        s.errors()[..],
        [GuestError::Storage(
            _,
            StorFault::Truncated { op: 3, len: 48 }
        )]
    ));
}

#[test]
fn requests_out_of_order_are_invalid_device_state() {
    let mut s = Stor::scsi(0);
    let c = s.call(1, &srb(&[0; 6], NONE, 0, 0));
    assert_eq!(u32le(&c, 8), INVALID_DEVICE_STATE);
    s.call(2, &pkt(BEGIN, &[], 64));
    let c = s.call(3, &pkt(QUERY_PROPERTIES, &[], 64));
    assert_eq!(u32le(&c, 8), INVALID_DEVICE_STATE);
    let c = s.call(4, &pkt(42, &[], 64));
    assert_eq!(u32le(&c, 8), 0xC000_0010);
    assert_eq!(
        s.errors(),
        [
            GuestError::Storage(
                s.relid,
                StorFault::OutOfOrder {
                    op: EXECUTE_SRB,
                    phase: StorPhase::Begin
                }
            ),
            GuestError::Storage(
                s.relid,
                StorFault::OutOfOrder {
                    op: QUERY_PROPERTIES,
                    phase: StorPhase::Version
                }
            ),
            GuestError::Storage(s.relid, StorFault::UnknownOperation(42)),
        ]
    );
}

#[test]
fn inquiry_read_capacity_report_luns_and_test_unit_ready() {
    for spec in [DeviceSpec::scsi(), DeviceSpec::ide()] {
        let mut s = Stor::open(spec, 3, 3, 2);
        s.init(0x0602);
        let d = s.data;
        s.send_gpa(11, &srb(&[0x12, 0, 0, 0, 96, 0], READ, 96, 0), d, 0, 96);
        let c = s.one(11);
        assert_eq!(fields(&c), (0x01, 0x00, 0, 36));
        let p = s.page(d);
        assert_eq!(p[0], 0, "direct-access device, LUN present");
        assert_eq!(&p[8..16], b"Msft    ");
        assert_eq!(&p[16..32], b"Virtual Disk    ");
        // READ CAPACITY(16): last LBA, 512-byte blocks.
        let cdb = [0x9E, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
        s.send_gpa(12, &srb(&cdb, READ, 32, 0), d + 1, 0, 32);
        assert_eq!(fields(&s.one(12)), (0x01, 0x00, 0, 32));
        let p = s.page(d + 1);
        assert_eq!(&p[..8], (DISK_SECTORS as u64 - 1).to_be_bytes());
        assert_eq!(&p[8..12], 512u32.to_be_bytes());
        // READ CAPACITY(10).
        s.send_gpa(
            13,
            &srb(&[0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], READ, 8, 0),
            d,
            8,
            8,
        );
        assert_eq!(fields(&s.one(13)).3, 8);
        assert_eq!(&s.page(d)[8..12], (DISK_SECTORS as u32 - 1).to_be_bytes());
        // REPORT LUNS: LUN 0 only.
        let cdb = [0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0];
        s.send_gpa(14, &srb(&cdb, READ, 64, 0), d + 1, 0, 64);
        assert_eq!(fields(&s.one(14)).3, 16);
        assert_eq!(
            &s.page(d + 1)[..16],
            [0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // TEST UNIT READY and SYNCHRONIZE CACHE (10), (16) in-band.
        for cdb in [&[0u8; 6][..], &[0x35; 1][..], &[0x91; 1][..]] {
            let c = s.call(15, &srb(cdb, NONE, 0, 0));
            assert_eq!((u32le(&c, 8), fields(&c)), (0, (0x01, 0, 0, 0)));
        }
        // Another LUN: INQUIRY says "not present", anything else INVALID_LUN.
        s.send_gpa(16, &srb(&[0x12, 0, 0, 0, 36, 0], READ, 36, 1), d, 0, 36);
        assert_eq!(fields(&s.one(16)).0, 0x01);
        assert_eq!(s.page(d)[0], 0x7F);
        let c = s.call(17, &srb(&[0; 6], NONE, 0, 1));
        assert_eq!((fields(&c).0, u32le(&c, 8)), (0x20, 0xC000_00C0));
        assert_eq!(s.g.host.errors().total(), 0);
    }
}

#[test]
fn write_then_read_back_across_pages() {
    let mut s = Stor::scsi(10);
    s.init(0x0602);
    let d = s.data;
    // 24 sectors from offset 512 of the first page: the buffer spans 4 pages.
    let len = 24 * 512u32;
    {
        let mut m = s.g.mem.0.borrow_mut();
        for i in 0..len as usize {
            let at = 512 + i;
            m[d + at / 4096][at % 4096] = (i * 7 % 251) as u8;
        }
    }
    s.send_gpa(21, &srb(&rw10(0x2A, 10, 24), WRITE, len, 0), d, 512, len);
    let c = s.one(21);
    assert_eq!((u32le(&c, 8), fields(&c)), (0, (0x01, 0, 0, len)));
    let disk = s.g.host.storage().disk();
    for i in 0..len as usize {
        assert_eq!(disk[10 * 512 + i], (i * 7 % 251) as u8, "disk byte {i}");
    }
    assert!(disk[..10 * 512].iter().all(|&b| b == 0));
    assert!(disk[34 * 512..].iter().all(|&b| b == 0));
    // READ(16) into other pages, at another offset.
    s.send_gpa(22, &srb(&rw16(0x88, 10, 24), READ, len, 0), d + 5, 100, len);
    assert_eq!(fields(&s.one(22)), (0x01, 0, 0, len));
    let m = s.g.mem.0.borrow();
    for i in 0..len as usize {
        let at = 100 + i;
        assert_eq!(
            m[d + 5 + at / 4096][at % 4096],
            (i * 7 % 251) as u8,
            "read byte {i}"
        );
    }
    drop(m);
    let st = s.g.host.storage().stats();
    assert_eq!(
        (st.sectors_written, st.sectors_read, st.srb_errors),
        (24, 24, 0)
    );
    let t = s.trace();
    assert!(
        t.contains(
            &"guest->host storvsp: EXECUTE_SRB WRITE(10) lun 0 lba 10 blocks 24, 12288 bytes"
                .to_string()
        ),
        "{t:?}"
    );
    assert!(
        t.contains(&"host->guest storvsp: COMPLETE_IO srb 0x01 scsi 0x00 12288 bytes".to_string()),
        "{t:?}"
    );
}

#[test]
fn unknown_opcodes_and_lbas_past_the_end_are_illegal_requests() {
    let mut s = Stor::scsi(2);
    s.init(0x0602);
    let d = s.data;
    // MODE SENSE(6): not implemented.
    s.send_gpa(
        31,
        &srb(&[0x1A, 0, 0x3F, 0, 192, 0], READ, 192, 0),
        d,
        0,
        192,
    );
    let c = s.one(31);
    assert_eq!(u32le(&c, 8), IO_DEVICE_ERROR);
    assert_eq!(fields(&c), (0x84, 0x02, 18, 0));
    assert_eq!(
        (c[28], c[30], c[35], c[40], c[41]),
        (0x70, 0x05, 10, 0x20, 0x00)
    );
    // READ(16) of the last sector and one more.
    let last = DISK_SECTORS as u64 - 1;
    s.send_gpa(32, &srb(&rw16(0x88, last, 2), READ, 1024, 0), d, 0, 1024);
    let c = s.one(32);
    assert_eq!(fields(&c), (0x84, 0x02, 18, 0));
    assert_eq!((c[30], c[40]), (0x05, 0x21));
    // An LBA that overflows.
    s.send_gpa(33, &srb(&rw16(0x8A, u64::MAX, 1), WRITE, 512, 0), d, 0, 512);
    assert_eq!(s.one(33)[40], 0x21);
    // The last sector alone is fine.
    s.send_gpa(34, &srb(&rw16(0x88, last, 1), READ, 512, 0), d, 0, 512);
    assert_eq!(fields(&s.one(34)).0, 0x01);
    assert_eq!(s.g.host.storage().stats().srb_errors, 3);
    assert_eq!(
        s.g.host.errors().total(),
        0,
        "SCSI errors are not guest errors"
    );
}

#[test]
fn bad_buffers_are_guest_errors_answered_invalid_request() {
    let opts = StorageOptions {
        max_transfer: 8192,
        ..StorageOptions::DEFAULT
    };
    let mut s = Stor::open(DeviceSpec::scsi_with(opts), 3, 3, 4);
    s.init(0x0602);
    let d = s.data;
    s.g.mem.0.borrow_mut()[d].fill(0xAB);
    let relid = s.relid;
    // A page that is not guest memory.
    let bogus = 0xDEAD_0000;
    let pfns = [s.g.mem.pfn(d), bogus];
    s.send_ranges(41, &srb(&rw10(0x2A, 0, 16), WRITE, 8192, 0), 0, 8192, &pfns);
    let c = s.one(41);
    assert_eq!(
        (u32le(&c, 8), fields(&c)),
        (INVALID_PARAMETER, (0x06, 0, 0, 0))
    );
    // A byte count other than the SRB's.
    s.send_gpa(42, &srb(&rw10(0x2A, 0, 2), WRITE, 1024, 0), d, 0, 512);
    assert_eq!(fields(&s.one(42)).0, 0x06);
    // More than the max transfer.
    s.send_gpa(43, &srb(&rw10(0x2A, 0, 24), WRITE, 12288, 0), d, 0, 12288);
    assert_eq!(fields(&s.one(43)).0, 0x06);
    // Data without a buffer.
    let c = s.call(44, &srb(&rw10(0x28, 0, 1), READ, 512, 0));
    assert_eq!(fields(&c).0, 0x06);
    // A READ whose data_in says write.
    s.send_gpa(45, &srb(&rw10(0x28, 0, 1), WRITE, 512, 0), d, 0, 512);
    assert_eq!(fields(&s.one(45)).0, 0x06);
    assert_eq!(
        s.errors(),
        [
            GuestError::Storage(relid, StorFault::NotGuestMemory(bogus)),
            GuestError::Storage(
                relid,
                StorFault::LengthMismatch {
                    range: 512,
                    srb: 1024
                }
            ),
            GuestError::Storage(
                relid,
                StorFault::TooLarge {
                    len: 12288,
                    max: 8192
                }
            ),
            GuestError::Storage(relid, StorFault::NoBuffer(512)),
            GuestError::Storage(
                relid,
                StorFault::WrongDirection {
                    op: 0x28,
                    data_in: 0
                }
            ),
        ]
    );
    assert!(
        s.g.host.storage().disk().iter().all(|&b| b == 0),
        "nothing was written"
    );
    assert!(s.page(d).iter().all(|&b| b == 0xAB), "nothing was read");
    assert_eq!(s.g.host.storage().stats().refused, 5);
    // The device still serves.
    s.send_gpa(46, &srb(&rw10(0x2A, 0, 1), WRITE, 512, 0), d, 0, 512);
    assert_eq!(fields(&s.one(46)).0, 0x01);
    assert_eq!(s.g.host.storage().disk()[0], 0xAB);
}

#[test]
fn completions_wait_for_ring_space_and_count_as_outstanding() {
    // 4 KiB host-to-guest ring: about 44 completions of 88 bytes fit.
    let mut s = Stor::open(DeviceSpec::scsi(), 4, 2, 0);
    s.init(0x0602);
    let mut b = s.tx.batch().unwrap();
    for t in 0..60 {
        b.write_inband(100 + t, true, &srb(&[0; 6], NONE, 0, 0))
            .unwrap();
    }
    b.commit();
    s.signal();
    let first = s.recv();
    let waiting = s.g.host.storage().stats().outstanding;
    assert!(
        waiting > 0 && first.len() as u64 + waiting == 60,
        "{} + {waiting}",
        first.len()
    );
    // The guest read the completions; the host is told (pending_send_sz) and answers the rest.
    s.signal();
    let rest = s.recv();
    assert_eq!(first.len() + rest.len(), 60);
    let tids: Vec<u64> = first.iter().chain(&rest).map(|p| p.1).collect();
    assert_eq!(tids, (100..160).collect::<Vec<_>>());
    assert_eq!(s.g.host.storage().stats().outstanding, 0);
}

/// A device at 6.2 with `h` set, one WRITE of 2 sectors and one INQUIRY to lun 1... answered.
fn hostile(h: Hostile) -> (Stor, Vec<(u16, u64, Vec<u8>)>) {
    let mut s = Stor::scsi(2);
    s.init(0x0602);
    s.g.host.set_hostile(h);
    let d = s.data;
    s.send_gpa(51, &srb(&rw10(0x2A, 0, 2), WRITE, 1024, 0), d, 0, 1024);
    let v = s.recv();
    (s, v)
}

#[test]
fn hostile_completions_for_unknown_transaction_ids() {
    let (s, v) = hostile(Hostile {
        stor_unknown_tid: true,
        ..Hostile::NONE
    });
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].1, 51 ^ UNKNOWN_TID_BIT);
    assert!(
        s.trace()
            .iter()
            .any(|l| l.contains("(hostile) sent for transaction"))
    );
}

#[test]
fn hostile_duplicated_completions() {
    let (_, v) = hostile(Hostile {
        stor_duplicate: true,
        ..Hostile::NONE
    });
    assert_eq!(v.len(), 2);
    assert_eq!(v[0], v[1]);
    assert_eq!(v[0].1, 51);
}

#[test]
fn hostile_bad_srb_lengths() {
    let (_, v) = hostile(Hostile {
        stor_bad_srb_length: true,
        ..Hostile::NONE
    });
    assert_eq!(u16::from_le_bytes([v[0].2[12], v[0].2[13]]), 0x24);
    let (_, v) = hostile(Hostile::NONE);
    assert_eq!(u16::from_le_bytes([v[0].2[12], v[0].2[13]]), 0x34);
}

#[test]
fn hostile_oversize_sense_lengths() {
    let (_, v) = hostile(Hostile {
        stor_oversize_sense: true,
        ..Hostile::NONE
    });
    assert_eq!(fields(&v[0].2).2, OVERSIZE_SENSE_LEN);
}

#[test]
fn hostile_short_transfer_lengths() {
    let (s, v) = hostile(Hostile {
        stor_short_transfer: true,
        ..Hostile::NONE
    });
    assert_eq!(fields(&v[0].2), (0x01, 0, 0, 512));
    assert_eq!(
        s.g.host.storage().stats().sectors_written,
        2,
        "all of it was moved"
    );
    assert!(
        s.trace()
            .iter()
            .any(|l| l.ends_with("(hostile) 512 bytes reported, 1024 moved"))
    );
}
