//! minisign signature and public key files.
#![no_main]

use ed25519_dalek::SigningKey;
use bundle_format::minisign::{KeyId, PublicKey, Signature};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let trusted = PublicKey {
        id: KeyId([9; 8]),
        key: SigningKey::from_bytes(&[9; 32]).verifying_key(),
    };
    if let Ok(sig) = Signature::parse(text) {
        // Verifying a parsed signature against a message and a key must
        // not panic, whatever the signature holds.
        let _ = sig.verify(b"message", std::slice::from_ref(&trusted));
        let round = Signature::parse(&sig.to_file()).expect("a written signature parses");
        assert_eq!(round.to_file(), sig.to_file());
    }
    if let Ok(k) = PublicKey::parse(text) {
        let round = PublicKey::parse(&k.to_file()).expect("a written key parses");
        assert_eq!(round, k);
    }
});
