//! The format's JSON documents: the manifest (after its signature checked
//! out, the installer still validates it: the build host is not trusted to
//! be bug-free), the parts index and the inventory a target host hands the
//! bundler.
#![no_main]

use libfuzzer_sys::fuzz_target;
use manifest_schema::{Inventory, Manifest, PartsIndex};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        if manifest_schema::validate_manifest(&m).is_ok() {
            // What the installer computes from a valid manifest must not
            // panic either.
            let _ = m.payload_size();
            let _ = m.carried_blobs();
        }
    }
    let _ = serde_json::from_slice::<PartsIndex>(data);
    let _ = serde_json::from_slice::<Inventory>(data);
});
