//! Hostile bundles, generated here (never committed): each must be refused
//! by `installer verify` and `installer install` with a specific message and
//! exit code, leaving the install dir byte-identical and the engine's image
//! list unchanged.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use fixtures::harness::{
    capture, free_port, installer_verify, shared, tree_hash, Dockerd, Ran, Vendor,
};
use installer::minisign::{prehash, Algorithm, KeyId, PublicKey, Signature};
use installer::tarfmt::{header_block, set_checksum, TarReader, BLOCK};
use manifest_schema::Manifest;

#[derive(Clone, Debug)]
struct E {
    name: Vec<u8>,
    kind: u8,
    data: Vec<u8>,
    mode: u32,
    link: Vec<u8>,
}

impl E {
    fn file(name: &str, data: &[u8]) -> E {
        E {
            name: name.as_bytes().to_vec(),
            kind: b'0',
            data: data.to_vec(),
            mode: 0o644,
            link: vec![],
        }
    }
    fn special(name: &[u8], kind: u8, link: &str) -> E {
        E {
            name: name.to_vec(),
            kind,
            data: vec![],
            mode: 0o644,
            link: link.as_bytes().to_vec(),
        }
    }
}

fn tar_bytes(entries: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    let pad = |out: &mut Vec<u8>| {
        let n = out.len() % BLOCK;
        if n != 0 {
            out.resize(out.len() + BLOCK - n, 0);
        }
    };
    for e in entries {
        let plain =
            e.name.len() <= 100 && !e.name.contains(&0) && std::str::from_utf8(&e.name).is_ok();
        if !plain {
            let mut body = b" path=".to_vec();
            body.extend_from_slice(&e.name);
            body.push(b'\n');
            let mut len = body.len() + 1;
            while body.len() + len.to_string().len() != len {
                len = body.len() + len.to_string().len();
            }
            let mut rec = len.to_string().into_bytes();
            rec.extend_from_slice(&body);
            out.extend_from_slice(&header_block(b"pax", b"", b'x', rec.len() as u64, 0o644, 0));
            out.extend_from_slice(&rec);
            pad(&mut out);
        }
        let name: &[u8] = if plain { &e.name } else { b"long" };
        let mut h = header_block(name, b"", e.kind, e.data.len() as u64, e.mode, 0);
        h[157..157 + e.link.len()].copy_from_slice(&e.link);
        set_checksum(&mut h);
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.data);
        pad(&mut out);
    }
    out.extend_from_slice(&[0u8; 2 * BLOCK]);
    out
}

/// Compresses as the bundler does: independent frames that declare their
/// size and end with zstd's checksum (small frames, so that even these
/// small bundles have many).
fn zstd(raw: &[u8]) -> Vec<u8> {
    let mut c = zstd::bulk::Compressor::new(3).unwrap();
    c.include_checksum(true).unwrap();
    c.include_contentsize(true).unwrap();
    raw.chunks(64 << 10)
        .flat_map(|p| c.compress(p).unwrap())
        .collect()
}

/// One streamed frame of unknown size, as `zstd` writes to a pipe: the
/// installer reads it on its one-thread path.
fn zstd_stream(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = zstd::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(raw).unwrap();
    e.finish().unwrap()
}

/// A signer the test controls, trusted by the install under test.
struct Forger {
    sk: SigningKey,
    pk: PublicKey,
    pub_path: PathBuf,
}

impl Forger {
    fn new(dir: &Path, seed: u8) -> Forger {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let pk = PublicKey {
            id: KeyId([seed; 8]),
            key: sk.verifying_key(),
        };
        let pub_path = dir.join(format!("forger{seed}.pub"));
        std::fs::write(&pub_path, pk.to_file()).unwrap();
        Forger { sk, pk, pub_path }
    }

    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let comment = "forged in a test";
        let s = self.sk.sign(&prehash(msg)).to_bytes();
        let mut g = s.to_vec();
        g.extend_from_slice(comment.as_bytes());
        Signature {
            algorithm: Algorithm::Prehashed,
            key_id: self.pk.id,
            signature: s,
            untrusted_comment: "test".into(),
            trusted_comment: comment.into(),
            global_signature: self.sk.sign(&g).to_bytes(),
        }
        .to_file()
        .into_bytes()
    }
}

/// A real bundle's entries, re-signed by `forger`.
fn entries_of(bundle: &Path) -> Vec<E> {
    let raw = zstd::decode_all(std::fs::File::open(bundle).unwrap()).unwrap();
    let mut r = TarReader::new(raw.as_slice());
    let mut v = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Some(h) = r.next_header().unwrap() {
        let mut data = Vec::new();
        r.read_data::<installer::tarfmt::TarError>(h.size, &mut buf, |c| {
            data.extend_from_slice(c);
            Ok(())
        })
        .unwrap();
        v.push(E {
            name: h.path,
            kind: h.kind,
            data,
            mode: h.mode,
            link: h.link,
        });
    }
    v
}

fn resign(entries: &mut [E], f: &Forger) {
    let sig = f.sign(&entries[0].data);
    entries[1].data = sig;
}

fn with_manifest(entries: &[E], f: &Forger, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<E> {
    let mut v: serde_json::Value = serde_json::from_slice(&entries[0].data).unwrap();
    edit(&mut v);
    let mut e = entries.to_vec();
    e[0].data = serde_json::to_vec_pretty(&v).unwrap();
    resign(&mut e, f);
    e
}

fn index_of(entries: &[E], prefix: &str) -> usize {
    entries
        .iter()
        .position(|e| e.name.starts_with(prefix.as_bytes()))
        .unwrap()
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    code: i32,
    message: String,
}

fn case(name: &str, bytes: Vec<u8>, code: i32, message: &str) -> Case {
    Case {
        name: name.into(),
        bytes,
        code,
        message: message.into(),
    }
}

fn cases(base: &[E], good: &Forger, other: &Forger) -> Vec<Case> {
    let z = |e: &[E]| zstd(&tar_bytes(e));
    let mut v = Vec::new();
    let valid = z(base);

    let mut e = base.to_vec();
    let n = e[0].data.len();
    e[0].data[n / 2] ^= 0x20;
    v.push(case(
        "flipped_manifest_byte",
        z(&e),
        2,
        "does not match the signed data",
    ));

    let mut e = base.to_vec();
    e[1].data[60] = if e[1].data[60] == b'A' { b'B' } else { b'A' };
    v.push(case("flipped_signature_byte", z(&e), 2, "signature"));

    let mut e = base.to_vec();
    let i = index_of(&e, "files/docker-compose.yml");
    e[i].data[5] ^= 1;
    v.push(case(
        "flipped_file_byte",
        z(&e),
        2,
        "entry files/docker-compose.yml: sha256 mismatch: manifest says sha256:",
    ));

    for (i, b) in base
        .iter()
        .enumerate()
        .filter(|(_, b)| b.name.starts_with(b"images/blobs/"))
    {
        let mut e = base.to_vec();
        let k = e[i].data.len() / 2;
        e[i].data[k] ^= 0x80;
        let name = String::from_utf8(b.name.clone()).unwrap();
        v.push(case(
            &format!("flipped_blob_byte_{}", &name[20..32]),
            z(&e),
            2,
            &format!("entry {name}: sha256 mismatch"),
        ));
    }

    // Damage to the compression itself: to the bundler's frames, and to one
    // streamed frame (the one-thread path).
    for (prefix, good) in [
        ("", valid.clone()),
        ("stream_", zstd_stream(&tar_bytes(base))),
    ] {
        let mut b = good.clone();
        b[5] ^= 0xff;
        v.push(case(
            &format!("{prefix}flipped_compression_framing"),
            b,
            2,
            "hint: the bundle is damaged or incomplete",
        ));
        let mut b = good.clone();
        let k = b.len() - 2; // inside the last frame's content checksum
        b[k] ^= 0xff;
        v.push(case(
            &format!("{prefix}flipped_compressed_checksum"),
            b,
            2,
            "hint: the bundle is damaged or incomplete",
        ));
        for pct in [1, 10, 50, 90, 99] {
            v.push(case(
                &format!("{prefix}truncated_at_{pct}pct"),
                good[..good.len() * pct / 100].to_vec(),
                2,
                "copy it again",
            ));
        }
        let mut b = good;
        b.extend_from_slice(b"garbage after the frame");
        v.push(case(
            &format!("{prefix}trailing_garbage"),
            b,
            2,
            "hint: the bundle is damaged or incomplete",
        ));
    }

    // Frames the bundler never writes, after sized ones.
    let mut b = valid.clone();
    b.extend(zstd_stream(b"more"));
    v.push(case("frame_without_size", b, 2, "declares no content size"));
    let mut b = valid.clone();
    let mut c = zstd::bulk::Compressor::new(1).unwrap();
    c.include_contentsize(true).unwrap();
    b.extend(c.compress(&vec![0u8; (8 << 20) + 1]).unwrap());
    v.push(case(
        "frame_over_the_size_limit",
        b,
        2,
        "over the limit of 8388608",
    ));
    let mut b = valid.clone();
    b.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]);
    v.push(case(
        "skippable_frame",
        b,
        2,
        "not a zstd frame (first bytes 502a4d18)",
    ));

    let blobs: Vec<usize> = (0..base.len())
        .filter(|i| base[*i].name.starts_with(b"images/blobs/"))
        .collect();
    let mut e = base.to_vec();
    e.swap(blobs[0], blobs[1]);
    v.push(case(
        "reordered_entries",
        z(&e),
        2,
        "is out of order: expected",
    ));
    let mut e = base.to_vec();
    e.insert(blobs[1], base[blobs[0]].clone());
    v.push(case("duplicated_entry", z(&e), 2, "appears twice"));
    let mut e = base.to_vec();
    e.pop();
    v.push(case(
        "missing_entry",
        z(&e),
        2,
        "the archive ends before 1 listed entries",
    ));
    let mut e = base.to_vec();
    e.insert(3, E::file("files/zz-unlisted.sh", b"#!/bin/sh\n"));
    v.push(case(
        "unlisted_entry",
        z(&e),
        2,
        "is not listed in the manifest",
    ));

    let hostile_names: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "absolute_path",
            b"/etc/cron.d/evil".to_vec(),
            "absolute paths are not allowed",
        ),
        (
            "dotdot_path",
            b"files/../../../etc/passwd".to_vec(),
            "`..` components are not allowed",
        ),
        ("nul_in_name", b"files/a\0b".to_vec(), "contains a NUL byte"),
        (
            "very_long_name",
            [
                b"files/".to_vec(),
                vec![b'a'; 200],
                b"/".to_vec(),
                vec![b'b'; 5000],
            ]
            .concat(),
            "longer than 4096 bytes",
        ),
        (
            "non_utf8_name",
            b"files/caf\xe9.yml".to_vec(),
            "not valid UTF-8",
        ),
    ];
    for (name, path, msg) in hostile_names {
        let mut e = base.to_vec();
        e.insert(
            2,
            E {
                name: path,
                kind: b'0',
                data: b"x".to_vec(),
                mode: 0o644,
                link: vec![],
            },
        );
        v.push(case(name, z(&e), 2, msg));
    }
    let specials: Vec<(&str, E, &str)> = vec![
        (
            "symlink",
            E::special(b"files/hooks", b'2', "/etc"),
            "is a symlink to \"/etc\"",
        ),
        (
            "hardlink",
            E::special(b"files/docker-compose.yml", b'1', "/etc/shadow"),
            "is a hard link",
        ),
        (
            "char_device",
            E::special(b"files/null", b'3', ""),
            "is a character device",
        ),
        (
            "block_device",
            E::special(b"files/sda", b'4', ""),
            "is a block device",
        ),
        ("fifo", E::special(b"files/pipe", b'6', ""), "is a fifo"),
        (
            "directory",
            E::special(b"files/dir", b'5', ""),
            "is a directory",
        ),
    ];
    for (name, special, msg) in specials {
        let mut e = base.to_vec();
        e.insert(2, special);
        v.push(case(name, z(&e), 2, msg));
    }
    // A link, then a file written through it.
    let mut e = base.to_vec();
    e.insert(2, E::special(b"files/hooks", b'2', "/tmp"));
    e.insert(3, E::file("files/hooks/backup.sh", b"evil"));
    v.push(case("link_then_file_through_it", z(&e), 2, "is a symlink"));
    let mut e = base.to_vec();
    let i = index_of(&e, "files/hooks/backup.sh");
    e[i].mode = 0o4755;
    v.push(case(
        "setuid_bit",
        z(&e),
        2,
        "has setuid, setgid or sticky bits",
    ));

    // Signatures.
    let mut e = base.to_vec();
    resign(&mut e, other);
    v.push(case("untrusted_key", z(&e), 2, "which is not trusted"));
    let e = with_manifest(base, good, |m| {
        m["files"][0]["sha256"] = serde_json::json!(format!("sha256:{}", "ab".repeat(32)));
    });
    v.push(case(
        "valid_signature_wrong_content",
        z(&e),
        2,
        "sha256 mismatch: manifest says sha256:abab",
    ));
    let e = with_manifest(base, good, |m| {
        m["files"][0]["path"] = "../../etc/cron.d/evil".into()
    });
    v.push(case(
        "signed_manifest_dotdot_path",
        z(&e),
        2,
        "`..` components are not allowed",
    ));
    let e = with_manifest(base, good, |m| {
        m["files"][0]["path"] = ".installer/keys/evil.pub".into()
    });
    v.push(case(
        "signed_manifest_state_dir_path",
        z(&e),
        2,
        "is inside the installer's own state dir",
    ));
    let e = with_manifest(base, good, |m| m["files"][0]["mode"] = 0o4755.into());
    v.push(case(
        "signed_manifest_setuid_mode",
        z(&e),
        2,
        "setuid, setgid and sticky bits are refused",
    ));

    // Sizes that lie.
    let mut e = base.to_vec();
    let i = index_of(&e, "files/docker-compose.yml");
    e[i].data.extend_from_slice(&[b'#'; 4096]);
    v.push(case(
        "entry_larger_than_manifest",
        z(&e),
        2,
        "the manifest says",
    ));
    let mut raw = tar_bytes(base);
    raw.extend(std::iter::repeat_n(0u8, 64 << 20));
    v.push(case(
        "decompression_bomb",
        zstd(&raw),
        2,
        "larger than the manifest declares",
    ));
    v.push(case(
        "stream_decompression_bomb",
        zstd_stream(&raw),
        2,
        "larger than the manifest declares",
    ));

    // A plain tar (`tar cf`) is read as it is and checked like the others.
    let mut e = base.to_vec();
    let i = index_of(&e, "files/docker-compose.yml");
    e[i].data[5] ^= 1;
    v.push(case(
        "plain_tar_flipped_file_byte",
        tar_bytes(&e),
        2,
        "entry files/docker-compose.yml: sha256 mismatch: manifest says sha256:",
    ));

    // Not bundles: a tar without the ustar magic (v7) is not taken for one.
    let mut v7 = tar_bytes(base);
    v7[257..263].fill(0);
    v.push(case(
        "wrong_compression_v7_tar",
        v7,
        2,
        "unknown compression (first bytes 6d616e69)",
    ));
    v.push(case(
        "wrong_compression_xz",
        b"\xfd7zXZ\0\0\0".to_vec(),
        2,
        "unknown compression (first bytes fd377a58)",
    ));
    v.push(case(
        "empty_file",
        Vec::new(),
        2,
        "empty file; hint: the copy is incomplete",
    ));
    v
}

fn forge_base(dir: &Path) -> (Vendor, Vec<E>, Forger, Forger) {
    let vendor = Vendor::new(&shared().registry);
    let bundle = vendor.bundle("v1", &[]);
    let good = Forger::new(dir, 7);
    let other = Forger::new(dir, 9);
    let mut base = entries_of(&bundle);
    resign(&mut base, &good);
    (vendor, base, good, other)
}

fn check(r: &Ran, c: &Case, what: &str) {
    assert_eq!(r.code, c.code, "{} ({what}): {}", c.name, r.stderr);
    assert!(
        r.stderr.contains(&c.message),
        "{} ({what}): expected {:?} in:\n{}",
        c.name,
        c.message,
        r.stderr
    );
}

#[test]
fn verify_refuses_every_hostile_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let (_vendor, base, good, other) = forge_base(dir.path());
    // The re-signed base itself is fine.
    // So is the same archive as one streamed zstd frame.
    for (name, bytes) in [
        ("ok.bundle", zstd(&tar_bytes(&base))),
        ("ok-stream.bundle", zstd_stream(&tar_bytes(&base))),
        ("ok-plain.bundle", tar_bytes(&base)),
    ] {
        let ok = dir.path().join(name);
        std::fs::write(&ok, bytes).unwrap();
        let r = installer_verify(&ok, &good.pub_path);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
    let all = cases(&base, &good, &other);
    assert!(all.len() > 40, "{}", all.len());
    for c in &all {
        let p = dir.path().join(format!("{}.bundle", c.name));
        std::fs::write(&p, &c.bytes).unwrap();
        let r = installer_verify(&p, &good.pub_path);
        check(&r, c, "verify");
    }
    // A directory holding no bundle (or several) is refused, naming what it found.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = installer_verify(&empty, &good.pub_path);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "expected one split bundle (NAME.parts.json) or one .bundle file, found 0 and 0"
        ),
        "{}",
        r.stderr
    );
}

/// The same cases in-process, against the verifying reader itself (no
/// binary, no file): each is refused as a verification failure with the
/// same message.
#[test]
fn the_reader_refuses_every_hostile_bundle_in_process() {
    use bundle_format::bundle::{self, EntryKind, EntrySink};
    #[derive(Default)]
    struct Seen(Vec<String>);
    impl EntrySink for Seen {
        fn begin(&mut self, name: &str, _: EntryKind<'_>) -> std::io::Result<()> {
            self.0.push(name.to_owned());
            Ok(())
        }
        fn data(&mut self, _: &[u8]) -> std::io::Result<()> {
            Ok(())
        }
        fn finish(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let read = |bytes: Vec<u8>, key: &PublicKey, sink: &mut Seen| {
        let input = bundle::from_reader(
            Path::new("in-memory"),
            Box::new(std::io::Cursor::new(bytes)),
        )?;
        bundle::read_bundle::<bundle::BundleError>(
            input,
            std::slice::from_ref(key),
            |_| Ok(()),
            sink,
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let (_vendor, base, good, other) = forge_base(dir.path());
    let mut seen = Seen::default();
    let ok = read(zstd(&tar_bytes(&base)), &good.pk, &mut seen).expect("the re-signed base reads");
    let all_entries = seen.0.len();
    assert_eq!(
        all_entries,
        ok.manifest().files.len()
            + ok.manifest().layout.len()
            + ok.manifest().carried_blobs().len()
    );
    for c in cases(&base, &good, &other) {
        let mut seen = Seen::default();
        let e = match read(c.bytes, &good.pk, &mut seen) {
            Ok(_) => panic!("{}: read in-process without error", c.name),
            Err(e) => e,
        };
        let text = bundle_format::error_text(&e);
        assert!(
            e.is_verification(),
            "{}: not a verification failure: {text}",
            c.name
        );
        assert!(
            text.contains(&c.message),
            "{}: expected {:?} in {text}",
            c.name,
            c.message
        );
        assert!(seen.0.len() <= all_entries, "{}: {:?}", c.name, seen.0);
    }
}

#[test]
fn install_refuses_every_hostile_bundle_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_vendor, base, good, other) = forge_base(dir.path());
    let docker = Dockerd::start();
    let install_dir = dir.path().join("opt");
    let port = free_port();
    let ok = dir.path().join("ok.bundle");
    std::fs::write(&ok, zstd(&tar_bytes(&base))).unwrap();
    let r = capture(
        docker
            .installer()
            .arg("install")
            .arg(&ok)
            .arg("--dir")
            .arg(&install_dir)
            .arg("--public-key")
            .arg(&good.pub_path)
            .args(["--yes", "--set", &format!("APP_PORT={port}")]),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(install_dir.join("data/keep.me"), b"operator data").unwrap();
    let tree = tree_hash(&install_dir);
    let images = docker.image_list();
    for c in cases(&base, &good, &other) {
        let p = dir.path().join(format!("{}.bundle", c.name));
        std::fs::write(&p, &c.bytes).unwrap();
        let r = capture(
            docker
                .installer()
                .arg("install")
                .arg(&p)
                .arg("--dir")
                .arg(&install_dir)
                .args(["--yes", "--allow-downgrade"]),
        );
        check(&r, &c, "install");
        assert_eq!(
            tree_hash(&install_dir),
            tree,
            "{}: the install dir changed",
            c.name
        );
        assert_eq!(
            docker.image_list(),
            images,
            "{}: the engine's images changed",
            c.name
        );
    }
    // Into a fresh dir, nothing is left behind either.
    let fresh = dir.path().join("fresh");
    let c = &cases(&base, &good, &other)[2];
    let p = dir.path().join("fresh.bundle");
    std::fs::write(&p, &c.bytes).unwrap();
    let r = capture(
        docker
            .installer()
            .arg("install")
            .arg(&p)
            .arg("--dir")
            .arg(&fresh)
            .arg("--public-key")
            .arg(&good.pub_path)
            .arg("--yes"),
    );
    check(&r, c, "fresh install");
    assert!(
        !fresh.exists(),
        "a failed first install leaves no dir behind"
    );
    let _ = docker
        .docker()
        .args(["compose", "-p", "demo", "down"])
        .current_dir(&install_dir)
        .output();
}

#[test]
fn a_bundle_of_100000_entries_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (_vendor, base, good, _) = forge_base(dir.path());
    let mut m: Manifest = serde_json::from_slice(&base[0].data).unwrap();
    let n = 100_000;
    let mut files: Vec<E> = Vec::with_capacity(n);
    for i in 0..n {
        let path = format!("many/{:03}/{i:06}.txt", i % 1000);
        let data = format!("{i}\n").into_bytes();
        m.files.push(manifest_schema::FileEntry {
            path: manifest_schema::RelPath::new(&path).unwrap(),
            size: data.len() as u64,
            sha256: manifest_schema::Digest::from_sha256_bytes(&sha2_digest(&data)),
            mode: 0o644,
        });
        files.push(E::file(&format!("files/{path}"), &data));
    }
    let mut e = base.clone();
    e[0].data = serde_json::to_vec(&m).unwrap();
    resign(&mut e, &good);
    // Files sort by path; the many/ files come before the base's files.
    let mut all_files: Vec<E> = e
        .iter()
        .filter(|x| x.name.starts_with(b"files/"))
        .cloned()
        .chain(files)
        .collect();
    all_files.sort_by(|a, b| a.name.cmp(&b.name));
    let rest: Vec<E> = e
        .iter()
        .filter(|x| x.name.starts_with(b"images/"))
        .cloned()
        .collect();
    let entries: Vec<E> = e[..2]
        .iter()
        .cloned()
        .chain(all_files)
        .chain(rest)
        .collect();
    let p = dir.path().join("many.bundle");
    std::fs::write(&p, zstd(&tar_bytes(&entries))).unwrap();
    let r = installer_verify(&p, &good.pub_path);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

fn sha2_digest(b: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(b).into()
}
