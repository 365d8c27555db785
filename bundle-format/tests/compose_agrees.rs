//! The built-in compose resolver and the real `docker compose config`
//! (the v2 plugin) agree on every case: interpolation, several files,
//! `extends` in the same file and across files (chained), `include`,
//! override files and profiles. Where compose runs, its answer is the
//! authority; the built-in one stands in where it does not.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::process::Command;

use bundle_format::compose::{from_config, resolve};
use bundle_format::envfile;
use rstest::rstest;

/// Files (the first ones, up to the last `*.yml` named in `order`, are
/// passed with `-f`), the `.env`, and the images each service runs.
#[rstest]
#[case::interpolation(
    &[("c.yml", "services:\n  web:\n    image: vendor/app:${APP_VERSION:-1.0.0}\n")],
    &["c.yml"], "APP_VERSION=2.0.0\n",
    &[("web", "vendor/app:2.0.0")]
)]
#[case::default_when_unset(
    &[("c.yml", "services:\n  web:\n    image: vendor/app:${APP_VERSION:-1.0.0}\n")],
    &["c.yml"], "",
    &[("web", "vendor/app:1.0.0")]
)]
#[case::override_file_wins(
    &[("c.yml", "services:\n  web:\n    image: a:1\n"), ("c.override.yml", "services:\n  web:\n    image: a:2\n  extra:\n    image: b:1\n")],
    &["c.yml", "c.override.yml"], "",
    &[("extra", "b:1"), ("web", "a:2")]
)]
#[case::extends_same_file_with_anchors(
    &[("c.yml", "x-common: &x\n  restart: 'no'\nservices:\n  base:\n    <<: *x\n    image: a:1\n  web:\n    extends: base\n")],
    &["c.yml"], "",
    &[("base", "a:1"), ("web", "a:1")]
)]
#[case::extends_other_file_chained(
    &[("c.yml", "services:\n  web:\n    extends: {file: base.yml, service: mid}\n"),
      ("base.yml", "services:\n  common:\n    image: vendor/base:${TAG}\n  mid:\n    extends: common\n")],
    &["c.yml"], "TAG=7\n",
    &[("web", "vendor/base:7")]
)]
#[case::own_image_beats_extended(
    &[("c.yml", "services:\n  web:\n    image: mine:1\n    extends: {file: base.yml, service: common}\n"),
      ("base.yml", "services:\n  common:\n    image: theirs:1\n")],
    &["c.yml"], "",
    &[("web", "mine:1")]
)]
#[case::include(
    &[("c.yml", "include:\n  - inc.yml\n  - path: [more.yml]\nservices:\n  web:\n    image: a:1\n"),
      ("inc.yml", "services:\n  db:\n    image: db:${DB_TAG:-16}\n"),
      ("more.yml", "services:\n  cache:\n    image: cache:1\n")],
    &["c.yml"], "DB_TAG=17\n",
    &[("cache", "cache:1"), ("db", "db:17"), ("web", "a:1")]
)]
#[case::inactive_profile(
    &[("c.yml", "services:\n  web:\n    image: a:1\n  debug:\n    image: dbg:1\n    profiles: [debug]\n")],
    &["c.yml"], "",
    &[("web", "a:1")]
)]
#[case::active_profile_from_env(
    &[("c.yml", "services:\n  web:\n    image: a:1\n  debug:\n    image: dbg:1\n    profiles: [debug]\n")],
    &["c.yml"], "COMPOSE_PROFILES=other,debug\n",
    &[("debug", "dbg:1"), ("web", "a:1")]
)]
#[case::env_file_and_quoted_env(
    &[("c.yml", "services:\n  web:\n    image: \"vendor/app:${V}\"\n    env_file: [app.env]\n"), ("app.env", "X=1\n")],
    &["c.yml"], "V=\"3.1\" # pinned\n",
    &[("web", "vendor/app:3.1")]
)]
fn the_built_in_resolver_agrees_with_compose_config(
    #[case] files: &[(&str, &str)],
    #[case] order: &[&str],
    #[case] env: &str,
    #[case] want: &[(&str, &str)],
) {
    let want: BTreeMap<String, Option<String>> = want
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect();
    let src: BTreeMap<String, String> = files
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let order: Vec<String> = order.iter().map(|s| s.to_string()).collect();

    let r = resolve(&src, &order, &envfile::parse(env));
    assert!(r.problems.is_empty(), "{:?}", r.problems);
    assert_eq!(r.images(), want, "built-in");

    let dir = tempfile::tempdir().unwrap();
    for (k, v) in files {
        std::fs::write(dir.path().join(k), v).unwrap();
    }
    std::fs::write(dir.path().join(".env"), env).unwrap();
    let mut c = Command::new("/usr/bin/docker");
    c.arg("compose")
        .arg("--project-directory")
        .arg(dir.path())
        .args(["-p", "agree"])
        .env_remove("COMPOSE_PROFILES");
    for f in &order {
        c.arg("-f").arg(dir.path().join(f));
    }
    let out = c.arg("config").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        from_config(&out.stdout).unwrap(),
        want,
        "docker compose config"
    );
}
