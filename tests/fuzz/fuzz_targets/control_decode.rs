//! Fuzz target: the client control page, decoded from both ends.
//!
//! The same arbitrary bytes are offered as a client's request frame to the driver's decoder
//! (what the driver does with its client's request area) and as the driver's response frame and
//! status records to the client library (`vmbus_client::call` and `vmbus_client::status` over a
//! control page that holds them). Nothing may panic; whatever decodes must re-encode, within its
//! area, to a frame that decodes to the same value. The client's own request, as it wrote it to
//! the page, must decode on the driver's side to what it sent.
//!
//! Run from the repository root: `cargo +nightly-2026-05-20 fuzz run --fuzz-dir tests/fuzz
//! control_decode` (the nightly `cargo xtask test` pins for Miri).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmbus_client::{ClientEnv, WindowLayout};
use vmbus_driver::control::{
    MAX_SLOTS, REQUEST_AREA, REQUEST_OFFSET, RESPONSE_AREA, RESPONSE_OFFSET, Request, Response,
    STATUS_OFFSET, STATUS_RECORD_SIZE, StatusRecord, decode_frame, encode_frame,
};
use vmbus_driver::ring::{FlatHeader, FlatRingMem};

/// The control page: the status table is its last part.
const CONTROL_PAGE_SIZE: usize = STATUS_OFFSET + MAX_SLOTS * STATUS_RECORD_SIZE;

/// An empty ring header: `ring_mem` is never called by the paths fuzzed here.
static HEADER: FlatHeader = FlatHeader::new();

/// A client's platform whose control page holds the fuzz input; the driver never answers
/// (the "response" is whatever the input put there).
struct Page {
    bytes: Box<[u8; CONTROL_PAGE_SIZE]>,
}

impl ClientEnv for Page {
    type Mem = FlatRingMem<'static>;

    fn ppcall_driver(&mut self) {}

    fn control_read(&mut self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&self.bytes[offset..offset + buf.len()]);
    }

    fn control_write(&mut self, offset: usize, data: &[u8]) {
        // The library writes the request area only.
        assert!(offset >= REQUEST_OFFSET && offset + data.len() <= REQUEST_OFFSET + REQUEST_AREA);
        self.bytes[offset..offset + data.len()].copy_from_slice(data);
    }

    fn wait_notification(&mut self) -> Option<u64> {
        None
    }

    fn ring_mem(&mut self, _first: usize, _pages: usize) -> Self::Mem {
        FlatRingMem::new(&HEADER, &[])
    }

    fn window(&self) -> WindowLayout {
        WindowLayout {
            pages: 0,
            max_channels: 0,
        }
    }
}

/// `data`, cut or zero-padded to `N` bytes.
fn area<const N: usize>(data: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    let n = data.len().min(N);
    a[..n].copy_from_slice(&data[..n]);
    a
}

/// The driver's side: the request area as the driver reads it.
fn driver_decodes(data: &[u8]) {
    let requests = area::<REQUEST_AREA>(data);
    if let Ok(req) = decode_frame::<Request>(&requests) {
        let mut again = [0u8; REQUEST_AREA];
        let n = encode_frame(&req, &mut again).expect("a decoded request re-encodes");
        assert_eq!(
            decode_frame::<Request>(&again[..n]),
            Ok(req),
            "request round trip"
        );
    }
}

/// The client library's side: the response area and the status records.
fn client_decodes(data: &[u8]) {
    let mut page = Page {
        bytes: Box::new([0u8; CONTROL_PAGE_SIZE]),
    };
    let response = area::<RESPONSE_AREA>(data);
    page.bytes[RESPONSE_OFFSET..RESPONSE_OFFSET + RESPONSE_AREA].copy_from_slice(&response);
    let status = area::<{ CONTROL_PAGE_SIZE - STATUS_OFFSET }>(data);
    page.bytes[STATUS_OFFSET..].copy_from_slice(&status);

    let sent = Request::ListOffers {
        start: vmbus_client::RelId(0),
    };
    if let Ok(resp) = vmbus_client::call(&mut page, &sent) {
        let mut again = [0u8; RESPONSE_AREA];
        let n = encode_frame(&resp, &mut again).expect("a decoded response re-encodes");
        assert_eq!(
            decode_frame::<Response>(&again[..n]),
            Ok(resp),
            "response round trip"
        );
    }
    // What the client wrote is what the driver reads.
    let written = area::<REQUEST_AREA>(&page.bytes[REQUEST_OFFSET..]);
    assert_eq!(
        decode_frame::<Request>(&written),
        Ok(sent),
        "the client's own request"
    );

    for slot in 0..MAX_SLOTS {
        let Ok(slot16) = u16::try_from(slot) else {
            break;
        };
        if let Ok(rec) = vmbus_client::status(&mut page, vmbus_client::SlotId(slot16)) {
            let bytes: [u8; STATUS_RECORD_SIZE] = rec.to_bytes();
            assert_eq!(
                StatusRecord::from_bytes(&bytes),
                Some(rec),
                "status round trip"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    driver_decodes(data);
    client_decodes(data);
});
