//! A bundle packed by stock tools, as the README's "The bundle format"
//! describes it: GNU tar in each of its formats (its own, with long names
//! as `././@LongLink` entries; POSIX pax; ustar with the prefix field),
//! the `zstd` and `gzip` commands or none, and a manifest edited by hand and signed
//! with the `minisign` command. Each verifies against the minisign key, and
//! one installs on Docker 20.10 with its long-named file in place and the
//! pinned image running.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use fixtures::harness::{capture, installer_verify, shared, Host, Vendor};
use manifest_schema::Digest;
use sha2::Digest as _;

/// A file the vendor's build never wrote, added by hand: its name's last
/// part fits ustar's name field and the rest its prefix field, but the
/// whole is over ustar's 100 bytes.
fn long_dest() -> String {
    format!("conf.d/{}/long-name.conf", "d".repeat(120))
}

const LONG_BODY: &[u8] = b"added by hand\n";

fn run(cmd: &mut Command) {
    let r = capture(cmd);
    assert_eq!(r.code, 0, "{cmd:?}: {}", r.stderr);
}

/// Unpacks `bundle` into `dir`, adds the long-named file to it and to the
/// manifest, signs the manifest with a new minisign key, and returns the
/// entries in the order the reader requires, with the key's public file.
fn unpack_and_edit(bundle: &Path, dir: &Path) -> (Vec<String>, PathBuf) {
    let tree = dir.join("tree");
    std::fs::create_dir(&tree).unwrap();
    run(Command::new("tar")
        .args(["-I", "zstd", "-xf"])
        .arg(bundle)
        .arg("-C")
        .arg(&tree));
    let listed = capture(Command::new("tar").args(["-I", "zstd", "-tf"]).arg(bundle));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let mut order: Vec<String> = listed.stdout.lines().map(str::to_owned).collect();

    let dest = long_dest();
    let path = tree.join("files").join(&dest);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, LONG_BODY).unwrap();
    // tar stores the mode on disk, which must be the manifest's.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let manifest_path = tree.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let files = m["files"].as_array_mut().unwrap();
    files.push(serde_json::json!({
        "path": dest,
        "size": LONG_BODY.len(),
        "sha256": Digest::from_sha256_bytes(&sha2::Sha256::digest(LONG_BODY).into()).to_string(),
        "mode": 0o644,
    }));
    files.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    std::fs::write(&manifest_path, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    // The files come sorted by path, byte order.
    let entry = format!("files/{dest}");
    let at = order
        .iter()
        .position(|e| {
            e.starts_with("files/") && e.as_str() > entry.as_str() || e.starts_with("images/")
        })
        .unwrap();
    order.insert(at, entry);

    let (public, secret) = (dir.join("m.pub"), dir.join("m.key"));
    run(Command::new("minisign")
        .args(["-G", "-W", "-p"])
        .arg(&public)
        .arg("-s")
        .arg(&secret)
        .stdin(Stdio::null()));
    std::fs::remove_file(tree.join("manifest.json.minisig")).unwrap();
    run(Command::new("minisign")
        .arg("-S")
        .arg("-s")
        .arg(&secret)
        .arg("-m")
        .arg(&manifest_path)
        .arg("-x")
        .arg(tree.join("manifest.json.minisig"))
        .args(["-t", "signed with the minisign command"])
        .stdin(Stdio::null()));
    (order, public)
}

/// `tar --format=FORMAT` of `order` from `tree`, through `compress`
/// (`None`: the tar as it is).
fn pack(tree: &Path, order: &[String], format: &str, compress: Option<&str>, out: &Path) {
    let mut tar = Command::new("tar");
    tar.arg(format!("--format={format}")).arg("-C").arg(tree);
    let Some(compress) = compress else {
        let status = tar.arg("-cf").arg(out).args(order).status().unwrap();
        assert!(status.success(), "tar --format={format}");
        return;
    };
    let mut tar = tar
        .arg("-cf")
        .arg("-")
        .args(order)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let file = std::fs::File::create(out).unwrap();
    let status = Command::new(compress)
        .arg("-c")
        .stdin(tar.stdout.take().unwrap())
        .stdout(file)
        .status()
        .unwrap();
    assert!(tar.wait().unwrap().success(), "tar --format={format}");
    assert!(status.success(), "{compress} for {format}");
}

#[test]
fn bundles_packed_by_gnu_tar_plain_or_compressed_and_signed_by_minisign_verify_and_install() {
    let vendor = Vendor::new(&shared().registry);
    let bundle = vendor.bundle("v1", &[]);
    let dir = tempfile::tempdir().unwrap();
    let (order, public) = unpack_and_edit(&bundle, dir.path());
    let tree = dir.path().join("tree");
    let mut packed = Vec::new();
    for (format, compress) in [
        ("gnu", Some("zstd")),
        ("posix", Some("gzip")),
        ("ustar", Some("zstd")),
        ("gnu", None),
    ] {
        let out = dir
            .path()
            .join(format!("{format}-{}.bundle", compress.unwrap_or("plain")));
        pack(&tree, &order, format, compress, &out);
        let r = installer_verify(&out, &public);
        assert_eq!(r.code, 0, "{format} + {compress:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("every entry matches the manifest"),
            "{format} + {compress:?}: {}",
            r.stderr
        );
        packed.push(out);
    }
    // GNU tar's format really did spell the long name its own way.
    let raw = zstd::decode_all(std::fs::File::open(&packed[0]).unwrap()).unwrap();
    assert!(
        raw.windows(13).any(|w| w == b"././@LongLink"),
        "no GNU long name entry"
    );
    // The vendor's key does not verify what the minisign command signed.
    let r = installer_verify(&packed[0], &vendor.public_key);
    assert_eq!(r.code, 2, "{}", r.stderr);

    let host = Host::new(None);
    let port = format!("APP_PORT={}", host.port);
    let r = host.install(
        &packed[0],
        &["--public-key", public.to_str().unwrap(), "--set", &port],
    );
    assert_eq!(r.code, 0, "install: {}", r.stderr);
    assert_eq!(
        std::fs::read(host.install_dir().join(long_dest())).unwrap(),
        LONG_BODY
    );
    assert_eq!(host.health(), "ok 1.0.0\n");
    let m: manifest_schema::Manifest =
        serde_json::from_slice(&std::fs::read(tree.join("manifest.json")).unwrap()).unwrap();
    let web = m
        .images
        .iter()
        .find(|i| i.name == "demo/web:1.0.0")
        .unwrap();
    assert_eq!(
        host.docker.service_image("web"),
        web.config.digest.to_string()
    );
    host.down();
}
