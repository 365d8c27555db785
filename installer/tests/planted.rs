//! Another account that can write to the install dir (the app's service
//! user, a container that bind-mounts it, an operator in the `docker` group)
//! plants links, fifos and dirs where the root installer writes: `.env`,
//! the managed files and their `.new` siblings, `backups/`, and every kind
//! of file in the state dir (state, journal, lock, keys, blobs, staging,
//! kept releases), and at the temp names the installer once used. Each
//! install and rollback must refuse (exit 1, naming the path) or carry on
//! without following the link; never write a byte outside the install dir,
//! never change `.env`, never stop the running release, and never exit 5.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use fixtures::harness::{shared, tree_hash, Host, Vendor};

/// What a plant does to the install dir, and how to undo it.
struct Plant {
    /// Path below the install dir.
    at: &'static str,
    /// What is put there.
    what: What,
}

#[derive(Clone, Copy)]
enum What {
    /// A link to the victim file outside the install dir.
    LinkToVictim,
    /// A link to a path outside that does not exist yet (a write through
    /// it would create it).
    DanglingLink,
    /// A link to a dir outside the install dir.
    LinkToDir,
    /// A named pipe (a read of it would hang).
    Fifo,
}

impl Plant {
    /// Plants it, moving what was there aside; returns the aside path.
    fn plant(&self, dir: &Path, outside: &Path) -> Option<PathBuf> {
        let p = dir.join(self.at);
        let aside = dir.with_file_name("aside");
        let had = std::fs::symlink_metadata(&p).is_ok();
        if had {
            std::fs::rename(&p, &aside).unwrap();
        }
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        match self.what {
            What::LinkToVictim => symlink(outside.join("victim"), &p).unwrap(),
            What::DanglingLink => symlink(outside.join("created"), &p).unwrap(),
            What::LinkToDir => symlink(outside.join("dir"), &p).unwrap(),
            What::Fifo => {
                let ok = std::process::Command::new("mkfifo")
                    .arg(&p)
                    .status()
                    .unwrap();
                assert!(ok.success());
            }
        }
        had.then_some(aside)
    }

    fn undo(&self, dir: &Path, aside: Option<PathBuf>) {
        let p = dir.join(self.at);
        std::fs::remove_file(&p).unwrap();
        if let Some(a) = aside {
            std::fs::rename(a, &p).unwrap();
        }
    }
}

/// A dir beside the install dir: what a planted link points to.
fn outside(host: &Host) -> PathBuf {
    let o = host.dir.path().join("outside");
    std::fs::create_dir_all(o.join("dir")).unwrap();
    std::fs::write(o.join("victim"), b"root:$6$precious\n").unwrap();
    std::fs::write(o.join("dir/keep"), b"not the installer's\n").unwrap();
    o
}

#[test]
fn planted_links_are_refused_or_ignored_and_nothing_outside_changes() {
    let vendor = Vendor::new(&shared().registry);
    let (v1, v2) = (vendor.bundle("v1", &[]), vendor.bundle("v2", &[]));
    let host = Host::new(None);
    let dir = host.install_dir();
    host.install_first(&vendor, &v1);
    let r = host.install(&v2, &["--set", "ADMIN_EMAIL=ops@example.com"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // 1.0.0 runs and 2.0.0 is kept: both an upgrade and a rollback have
    // somewhere to go.
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 1.0.0\n");
    let out = outside(&host);
    let key = std::fs::read_dir(dir.join(".installer/keys"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let key_at: &'static str = Box::leak(format!(".installer/keys/{key}").into_boxed_str());

    // (where, what, the text the refusal must name)
    let cases: Vec<(Plant, &str)> = vec![
        // The install dir: .env, a managed file, a managed file's dir, the
        // `.new` beside an edited file, the backups dir.
        (
            Plant {
                at: ".env",
                what: What::LinkToVictim,
            },
            "/.env is a symbolic link",
        ),
        (
            Plant {
                at: ".env",
                what: What::Fifo,
            },
            "/.env is a fifo",
        ),
        (
            Plant {
                at: "docker-compose.yml",
                what: What::LinkToVictim,
            },
            "/docker-compose.yml is a symbolic link",
        ),
        (
            Plant {
                at: "docker-compose.yml.new",
                what: What::DanglingLink,
            },
            "/docker-compose.yml.new is a symbolic link",
        ),
        (
            Plant {
                at: "hooks",
                what: What::LinkToDir,
            },
            "/hooks is a symbolic link, not a directory",
        ),
        (
            Plant {
                at: "backups",
                what: What::LinkToDir,
            },
            "/backups is a symbolic link, not a directory",
        ),
        // The state dir: each kind of file the installer writes there.
        (
            Plant {
                at: ".installer/state.json",
                what: What::LinkToVictim,
            },
            "/.installer/state.json is a symbolic link",
        ),
        (
            Plant {
                at: ".installer/journal.json",
                what: What::DanglingLink,
            },
            "/.installer/journal.json is a symbolic link",
        ),
        (
            Plant {
                at: ".installer/lock",
                what: What::LinkToVictim,
            },
            "/.installer/lock is a symbolic link",
        ),
        (
            Plant {
                at: key_at,
                what: What::LinkToVictim,
            },
            "is a symbolic link",
        ),
        (
            Plant {
                at: ".installer/keys",
                what: What::LinkToDir,
            },
            "/.installer/keys is a symbolic link",
        ),
        (
            Plant {
                at: ".installer/blobs",
                what: What::LinkToDir,
            },
            "/.installer/blobs is a symbolic link",
        ),
        (
            Plant {
                at: ".installer/staging",
                what: What::LinkToDir,
            },
            "/.installer/staging is a symbolic link",
        ),
        (
            Plant {
                at: ".installer/releases/1.0.0/manifest.json",
                what: What::LinkToVictim,
            },
            "/.installer/releases/1.0.0/manifest.json is a symbolic link",
        ),
        // The temp names the installer used to write through.
        (
            Plant {
                at: ".installer/.state.json.installer-tmp",
                what: What::DanglingLink,
            },
            "/.installer/.state.json.installer-tmp is a symbolic link",
        ),
        (
            Plant {
                at: ".installer/.journal.json.installer-tmp",
                what: What::LinkToVictim,
            },
            "/.installer/.journal.json.installer-tmp is a symbolic link",
        ),
        // The state dir itself.
        (
            Plant {
                at: ".installer",
                what: What::LinkToDir,
            },
            "/.installer is a symbolic link, not a directory",
        ),
    ];
    let outside_before = tree_hash(&out);
    for (plant, says) in &cases {
        let aside = plant.plant(&dir, &out);
        let before = tree_hash(&dir);
        for (what, r) in [
            ("install", host.install(&v2, &[])),
            ("rollback", host.run(&["rollback"], &[])),
        ] {
            assert_eq!(r.code, 1, "{what} with {}: {}", plant.at, r.stderr);
            assert!(
                r.stderr.contains(says),
                "{what} with {}: {}",
                plant.at,
                r.stderr
            );
            assert!(
                r.stderr.contains("nothing was changed"),
                "{what} with {}: {}",
                plant.at,
                r.stderr
            );
            assert_eq!(tree_hash(&dir), before, "{what} with {}", plant.at);
            assert_eq!(
                tree_hash(&out),
                outside_before,
                "{what} with {}: outside",
                plant.at
            );
            assert!(!out.join("created").exists(), "{what} with {}", plant.at);
            assert_eq!(host.health(), "ok 1.0.0\n", "{what} with {}", plant.at);
        }
        plant.undo(&dir, aside);
    }

    // Links at the install dir's old temp names are never followed: the
    // upgrade goes ahead, writing .env and the compose file, and nothing
    // outside changes.
    for name in ["..env.installer-tmp", ".docker-compose.yml.installer-tmp"] {
        symlink(out.join("victim"), dir.join(name)).unwrap();
    }
    let env_before = std::fs::read(dir.join(".env")).unwrap();
    let r = host.install(&v2, &["--set", "NEW_SETTING=1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 2.0.0\n");
    assert_eq!(tree_hash(&out), outside_before);
    let env_after = std::fs::read(dir.join(".env")).unwrap();
    assert_eq!(
        env_after,
        [env_before.as_slice(), b"NEW_SETTING=1\n"].concat()
    );
    for name in ["..env.installer-tmp", ".docker-compose.yml.installer-tmp"] {
        assert!(std::fs::symlink_metadata(dir.join(name))
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // The state dir is no one else's to write.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join(".installer"))
            .unwrap()
            .permissions(),
    );
    std::fs::set_permissions(
        dir.join(".installer"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("is writable by group or others (mode 777)"),
        "{}",
        r.stderr
    );
    assert_eq!(host.health(), "ok 2.0.0\n");
    std::fs::set_permissions(
        dir.join(".installer"),
        std::os::unix::fs::PermissionsExt::from_mode(mode),
    )
    .unwrap();
    let r = host.run(&["rollback"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(host.health(), "ok 1.0.0\n");
    assert_eq!(tree_hash(&out), outside_before);
}
