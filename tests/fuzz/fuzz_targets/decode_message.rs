//! Fuzz target: channel-message decoding of arbitrary bytes at every protocol version.
//!
//! Decoding must never panic; whatever decodes must re-encode (at most 240 bytes) to bytes that
//! decode to the same value under the same version.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmbus_driver::msg::{decode, encode};
use vmbus_driver::version::Version;

fuzz_target!(|data: &[u8]| {
    let versions = core::iter::once(None).chain(Version::ALL.iter().copied().map(Some));
    for version in versions {
        if let Ok(msg) = decode(data, version) {
            let mut buf = [0u8; 240];
            let n = encode(&msg, &mut buf).expect("a decoded message always re-encodes");
            assert!(n <= 240);
            assert_eq!(
                decode(&buf[..n], version),
                Ok(msg),
                "decode(encode(x)) != x"
            );
        }
    }
});
