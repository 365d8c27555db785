//! The verify path: detect compression, read the head, check the
//! signature (against the fixed key `seedgen` signs the seeds with, so
//! mutations past the head reach the entry checks), validate the manifest,
//! stream and hash every entry.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use ed25519_dalek::SigningKey;
use bundle_format::bundle::{self, BundleError, Discard};
use bundle_format::minisign::{KeyId, PublicKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = PublicKey {
        id: KeyId([9; 8]),
        key: SigningKey::from_bytes(&[9; 32]).verifying_key(),
    };
    let origin = Path::new("fuzz.bundle");
    if let Ok(input) = bundle::from_reader(origin, Box::new(Cursor::new(data.to_vec()))) {
        let _ = bundle::read_bundle::<BundleError>(input, &[key], |_| Ok(()), &mut Discard);
    }
    if let Ok(input) = bundle::from_reader(origin, Box::new(Cursor::new(data.to_vec()))) {
        let _ = bundle::read_head_unverified(input);
    }
});
