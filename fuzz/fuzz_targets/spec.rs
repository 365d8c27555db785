//! `bundle.yaml` as the bundler reads it: YAML, the schema, the rules.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = bundler::spec::parse(std::path::Path::new("bundle.yaml"), text);
    }
});
