//! Storage on the simulation: the storvsc driver program (`sim_system::storage`) against the
//! simulated host's SCSI controller and RAM disk, over the full driver and the simulated seL4
//! kernel, with an sDDF block client that uses only the queues and the data region: blocks
//! written, flushed and read back, requests split at the host's largest transfer, requests
//! beyond the device refused, a rescind with requests in flight, a hostile host.

use hv_host::{DeviceId, DeviceSpec, Hostile, StorageOptions};
use sddf::{BLK_TRANSFER_SIZE, BlkRequestCode as Code, BlkResponse, BlkStatus};
use sim_system::storage::{BlkTestClient, DATA_PAGES, SharedQueues, StorHandle, StorvscDriver};
use sim_system::{World, WorldConfig};
use vmbus_client::Buffer;
use vmbus_driver::driver::ConnectionState;
use vmbus_driver::ids::ClientId;

const BLOCK: usize = BLK_TRANSFER_SIZE as usize;
/// The host's largest transfer in these tests: 4 sDDF blocks, so 8-block requests are split.
const MAX_TRANSFER: u32 = 4 * BLK_TRANSFER_SIZE;

struct Sys {
    w: World,
    drv: StorHandle,
    client: BlkTestClient,
    dev: DeviceId,
    storage: ClientId,
    pool_before: usize,
}

impl Sys {
    fn boot(hostile: Hostile) -> Self {
        let mut w = World::repository(&WorldConfig::default());
        w.host_mut().set_hostile(hostile);
        let pool_before = w.pool_free();
        let opts = StorageOptions {
            max_transfer: MAX_TRANSFER,
            ..StorageOptions::DEFAULT
        };
        let dev = w
            .host_mut()
            .add_device(DeviceSpec::scsi_with(opts))
            .expect("host takes the device");
        let storage = w.client("storage").expect("a storage client").id;
        let queues = SharedQueues::new();
        let prog = StorvscDriver::new(&queues);
        let drv = prog.handle();
        w.set_program(storage, Box::new(prog));
        w.start();
        w.run_until(
            |w| w.driver().connection().state == ConnectionState::Connected,
            200,
        )
        .expect("connects");
        let d = drv.clone();
        w.run_until(move |_| d.serving() || !d.state().errors.is_empty(), 400)
            .expect("the driver program gets ready");
        assert!(drv.serving(), "{:?}", drv.state().errors);
        let client = BlkTestClient::new(&queues, storage);
        Self {
            w,
            drv,
            client,
            dev,
            storage,
            pool_before,
        }
    }

    fn buffer(&self) -> Buffer {
        self.drv.state().buffer.expect("a data buffer")
    }

    fn write_region(&mut self, offset: usize, data: &[u8]) {
        let b = self.buffer();
        assert!(self.client.write_data(&mut self.w, &b, offset, data));
    }

    fn read_region(&mut self, offset: usize, len: usize) -> Vec<u8> {
        let b = self.buffer();
        let mut v = vec![0u8; len];
        assert!(self.client.read_data(&mut self.w, &b, offset, &mut v));
        v
    }

    fn request(&mut self, code: Code, offset: usize, block: u64, count: u16) -> BlkResponse {
        let id = self
            .client
            .enqueue(code, offset as u64, block, count)
            .expect("queued");
        let r = self.client.wait(&mut self.w, 1, 200);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, id);
        r[0]
    }
}

/// Block `b`'s pattern: every byte names the block and its position.
fn pattern(b: usize) -> Vec<u8> {
    (0..BLOCK)
        .map(|i| (b as u8).wrapping_mul(31) ^ (i as u8) ^ ((i >> 8) as u8))
        .collect()
}

#[test]
fn blocks_written_through_sddf_read_back_identical_from_the_host_disk() {
    let mut s = Sys::boot(Hostile::NONE);
    let info = s.drv.state().info.expect("storage info");
    // The host's 256 KiB disk: 64 sDDF blocks; 4 blocks per SCSI command.
    assert_eq!((info.capacity, info.block_size), (64, 4));
    const N: usize = 16;
    // Blocks 0..16 of the region hold the data written to disk blocks 8..24.
    let data: Vec<u8> = (0..N).flat_map(pattern).collect();
    s.write_region(0, &data);
    let srbs0 = s.w.host().storage().stats().srbs;
    let cmds0 = s.drv.state().scsi_commands;
    // Two 8-block writes: each larger than the host's largest transfer, split in two.
    for half in 0..2 {
        let r = s.request(Code::Write, half * 8 * BLOCK, 8 + half as u64 * 8, 8);
        assert_eq!((r.status, r.success_count), (BlkStatus::Ok, 8));
    }
    assert_eq!(
        s.drv.state().scsi_commands - cmds0,
        4,
        "each write split in two"
    );
    let r = s.request(Code::Flush, 0, 0, 0);
    assert_eq!(r.status, BlkStatus::Ok);
    // The disk holds the pattern.
    let disk = s.w.host().storage().disk();
    assert_eq!(&disk[8 * BLOCK..24 * BLOCK], &data[..], "the host's disk");
    assert!(disk[..8 * BLOCK].iter().all(|&b| b == 0));
    // Read all 16 back in one request into region blocks 32..48 (split in four).
    let cmds1 = s.drv.state().scsi_commands;
    let r = s.request(Code::Read, 32 * BLOCK, 8, 16);
    assert_eq!((r.status, r.success_count), (BlkStatus::Ok, 16));
    assert_eq!(
        s.drv.state().scsi_commands - cmds1,
        4,
        "the read split in four"
    );
    let back = s.read_region(32 * BLOCK, N * BLOCK);
    assert!(back == data, "read back differs from what was written");
    let stats = s.w.host().storage().stats();
    assert_eq!(stats.srbs - srbs0, 2 * 2 + 1 + 4);
    assert_eq!(stats.sectors_written, (N * BLOCK / 512) as u64);
    assert!(stats.sectors_read >= (N * BLOCK / 512) as u64);
    assert_eq!(stats.srb_errors, 0);
    assert_eq!(s.w.host().errors().total(), 0);
    assert!(s.drv.state().host_errors.is_empty());
    // Several requests in flight at once: every one answered, in any order.
    let ids: Vec<u32> = (0..4)
        .map(|i| {
            s.client
                .enqueue(Code::Read, (48 + i * 4) * BLOCK as u64, 8 + i * 4, 4)
                .unwrap()
        })
        .collect();
    let mut rs = s.client.wait(&mut s.w, 4, 200);
    rs.sort_by_key(|r| r.id);
    assert_eq!(rs.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert!(rs.iter().all(|r| r.status == BlkStatus::Ok));
    assert!(s.read_region(48 * BLOCK, N * BLOCK) == data);
}

#[test]
fn a_request_beyond_the_device_is_refused_without_reaching_the_host() {
    let mut s = Sys::boot(Hostile::NONE);
    let srbs = s.w.host().storage().stats().srbs;
    // The device has 64 blocks: 60..68 runs past its end; 64 is past it.
    for (block, count) in [(60u64, 8u16), (64, 1), (u64::MAX - 8, 4)] {
        let r = s.request(Code::Read, 0, block, count);
        assert_eq!((r.status, r.success_count), (BlkStatus::InvalidParam, 0));
    }
    let r = s.request(Code::Write, 0, 63, 2);
    assert_eq!(r.status, BlkStatus::InvalidParam);
    // A count that overflows the block number is refused by the client's own queue end.
    assert!(s.client.enqueue(Code::Read, 0, u64::MAX - 1, 4).is_err());
    assert_eq!(
        s.w.host().storage().stats().srbs,
        srbs,
        "nothing reached the host"
    );
    // The last block itself is fine.
    let r = s.request(Code::Read, 0, 63, 1);
    assert_eq!(r.status, BlkStatus::Ok);
    assert_eq!(s.w.host().storage().stats().srbs, srbs + 1);
}

#[test]
fn a_rescind_mid_traffic_answers_every_request_with_no_device_and_nothing_leaks() {
    let mut s = Sys::boot(Hostile::NONE);
    let data: Vec<u8> = (0..DATA_PAGES as usize / 2).flat_map(pattern).collect();
    s.write_region(0, &data);
    // Requests in flight: the program takes them at its next step, the host answers later.
    let mut ids = Vec::new();
    for i in 0..8u64 {
        let code = if i % 2 == 0 { Code::Write } else { Code::Read };
        ids.push(
            s.client
                .enqueue(code, i * 8 * BLOCK as u64, i * 8, 8)
                .unwrap(),
        );
    }
    // One step: the driver program sends them (16 SCSI commands: each request split in two);
    // the host has not run them yet.
    let cmds0 = s.drv.state().scsi_commands;
    let srbs0 = s.w.host().storage().stats().srbs;
    s.w.step();
    assert_eq!(s.drv.state().scsi_commands - cmds0, 16);
    assert_eq!(s.w.host().storage().stats().srbs, srbs0, "still in flight");
    let answered_early = s.client.responses();
    assert!(
        answered_early.len() < ids.len(),
        "requests still in flight when the host rescinds"
    );
    s.w.host_mut().remove_device(s.dev).unwrap();
    // More requests after the rescind.
    for i in 0..4u64 {
        ids.push(s.client.enqueue(Code::Read, 0, i, 1).unwrap());
    }
    let mut rs = answered_early;
    rs.extend(s.client.wait(&mut s.w, ids.len() - rs.len(), 200));
    rs.sort_by_key(|r| r.id);
    assert_eq!(
        rs.iter().map(|r| r.id).collect::<Vec<_>>(),
        ids,
        "every request answered exactly once"
    );
    let no_device = rs
        .iter()
        .filter(|r| r.status == BlkStatus::NoDevice)
        .count();
    // Nothing the host had completed: every one of the 12 is answered NoDevice.
    assert_eq!(no_device, ids.len(), "{rs:?}");
    assert!(
        rs.iter()
            .all(|r| matches!(r.status, BlkStatus::Ok | BlkStatus::NoDevice)),
        "{rs:?}"
    );
    assert_eq!(s.drv.state().gone, 1);
    // The teardown ends; every page of the rings and of the data buffer is back in the pool.
    s.w.run(100);
    assert!(s.w.driver_channels().is_empty() || s.drv.state().buffer.is_none());
    assert_eq!(
        s.w.pool_free() + s.w.connection_pages(),
        s.pool_before,
        "every pool page back"
    );
    assert_eq!(s.w.driver().lent_pages(), 0);
    assert!(!s.w.client_stopped(s.storage));
    // The device comes back: the program opens it again and serves.
    s.dev = s.w.host_mut().add_device(DeviceSpec::scsi()).unwrap();
    let d = s.drv.clone();
    s.w.run_until(move |_| d.serving(), 400)
        .expect("serving again");
    assert_eq!(s.drv.state().opens, 2);
    let r = s.request(Code::Read, 0, 0, 1);
    assert_eq!(r.status, BlkStatus::Ok);
}

#[test]
fn a_buffer_page_is_unreachable_by_the_client_after_the_rescind() {
    let mut s = Sys::boot(Hostile::NONE);
    let b = s.buffer();
    let mut page = [0u8; 16];
    assert!(s.client.read_data(&mut s.w, &b, 5 * BLOCK, &mut page));
    s.w.host_mut().remove_device(s.dev).unwrap();
    let d = s.drv.clone();
    s.w.run_until(move |_| d.state().gone == 1, 100)
        .expect("the program saw the channel go");
    s.w.run(50);
    assert!(
        !s.client.read_data(&mut s.w, &b, 5 * BLOCK, &mut page),
        "the data buffer's page is still mapped in the client after the rescind"
    );
    assert!(!s.client.write_data(&mut s.w, &b, 0, &[1, 2, 3]));
}

#[test]
fn a_completion_with_an_unknown_transaction_id_becomes_an_error_response_not_a_panic() {
    let mut s = Sys::boot(Hostile::NONE);
    s.w.host_mut().set_hostile(Hostile {
        stor_unknown_tid: true,
        ..Hostile::NONE
    });
    s.write_region(0, &pattern(1));
    let id = s.client.enqueue(Code::Write, 0, 1, 1).unwrap();
    s.w.run(30);
    assert!(
        !s.drv.state().host_errors.is_empty(),
        "the stray completion is seen as the host's"
    );
    assert!(
        s.client.responses().is_empty(),
        "no answer for a request the host never completed"
    );
    // The device goes away: the request is answered (NoDevice), nothing hangs.
    s.w.host_mut().remove_device(s.dev).unwrap();
    let r = s.client.wait(&mut s.w, 1, 200);
    assert_eq!((r[0].id, r[0].status), (id, BlkStatus::NoDevice));
}

#[test]
fn a_short_transfer_from_the_host_is_an_io_error_response() {
    let mut s = Sys::boot(Hostile::NONE);
    s.w.host_mut().set_hostile(Hostile {
        stor_short_transfer: true,
        ..Hostile::NONE
    });
    let r = s.request(Code::Read, 0, 0, 8);
    assert_eq!(r.status, BlkStatus::Io);
    assert!(r.success_count < 8);
    s.w.host_mut().set_hostile(Hostile::NONE);
    let r = s.request(Code::Read, 0, 0, 8);
    assert_eq!((r.status, r.success_count), (BlkStatus::Ok, 8));
}

#[test]
fn a_duplicated_completion_answers_the_request_once_and_the_copy_is_the_hosts_error() {
    let mut s = Sys::boot(Hostile::NONE);
    s.w.host_mut().set_hostile(Hostile {
        stor_duplicate: true,
        ..Hostile::NONE
    });
    for b in 0..8 {
        s.write_region(b * BLOCK, &pattern(b));
    }
    // 8 blocks: two SCSI commands (the host's largest transfer is 4 blocks), each completed twice.
    let w = s.request(Code::Write, 0, 0, 8);
    assert_eq!((w.status, w.success_count), (BlkStatus::Ok, 8));
    s.w.run(20);
    assert!(
        s.client.responses().is_empty(),
        "the duplicate completions answered nothing more"
    );
    let stray = s.drv.state().host_errors.len();
    assert!(stray >= 2, "each duplicate is the host's error: {stray}");
    let r = s.request(Code::Read, 8 * BLOCK, 0, 8);
    assert_eq!((r.status, r.success_count), (BlkStatus::Ok, 8));
    for b in 0..8 {
        assert_eq!(
            s.read_region((8 + b) * BLOCK, BLOCK),
            pattern(b),
            "block {b}"
        );
    }
    assert_eq!(s.drv.state().gone, 0);
    assert!(!s.w.client_stopped(s.storage));
}

/// Boots an honest host, turns `hostile` on: a one-block read is an I/O error whose cause the
/// driver names (`why` in its host errors); with the host honest again the next read succeeds.
fn a_bent_completion_is_an_io_error_and_the_device_recovers(hostile: Hostile, why: &str) {
    let mut s = Sys::boot(Hostile::NONE);
    s.w.host_mut().set_hostile(hostile);
    let r = s.request(Code::Read, 0, 0, 1);
    assert_eq!((r.status, r.success_count), (BlkStatus::Io, 0));
    assert!(
        s.drv.state().host_errors.iter().any(|e| e.contains(why)),
        "{:?}",
        s.drv.state().host_errors
    );
    s.w.host_mut().set_hostile(Hostile::NONE);
    let r = s.request(Code::Read, 0, 0, 1);
    assert_eq!((r.status, r.success_count), (BlkStatus::Ok, 1));
    assert!(!s.w.client_stopped(s.storage));
}

#[test]
fn an_srb_completion_of_the_wrong_length_is_an_io_error_and_the_next_request_succeeds() {
    a_bent_completion_is_an_io_error_and_the_device_recovers(
        Hostile {
            stor_bad_srb_length: true,
            ..Hostile::NONE
        },
        "SRB length",
    );
}

#[test]
fn a_sense_length_beyond_the_sense_area_is_an_io_error_not_a_read_past_it() {
    a_bent_completion_is_an_io_error_and_the_device_recovers(
        Hostile {
            stor_oversize_sense: true,
            ..Hostile::NONE
        },
        "sense length",
    );
}

#[test]
fn a_host_that_completes_every_request_twice_from_the_start_still_initialises_and_serves() {
    // Duplicated completions during the initialisation exchange are ignored as the host's
    // errors, not taken as the next step's answer.
    let mut s = Sys::boot(Hostile {
        stor_duplicate: true,
        ..Hostile::NONE
    });
    assert!(
        s.drv
            .state()
            .host_errors
            .iter()
            .any(|e| e.contains("second completion")),
        "{:?}",
        s.drv.state().host_errors
    );
    s.write_region(0, &pattern(3));
    let w = s.request(Code::Write, 0, 3, 1);
    assert_eq!((w.status, w.success_count), (BlkStatus::Ok, 1));
    let r = s.request(Code::Read, BLOCK, 3, 1);
    assert_eq!((r.status, r.success_count), (BlkStatus::Ok, 1));
    assert_eq!(s.read_region(BLOCK, BLOCK), pattern(3));
}
