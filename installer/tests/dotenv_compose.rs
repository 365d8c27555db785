//! The installer reads `.env` as the real compose binaries do: one table
//! of cases, each read by `envfile::parse` and by `docker compose config`
//! (v2, the plugin) and `docker-compose config` (v1, Debian's 1.29), and
//! values the installer writes read back unchanged by both. Where v1 reads
//! a case differently the table says how (the README lists the same).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use installer::envfile;

/// (key, .env lines, v2's value and ours, v1's value where it differs).
/// `None` is "not set".
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<Option<&'static str>>,
);

const CASES: &[Case] = &[
    ("BOMKEY", "\u{feff}BOMKEY=1\n", Some("1"), None),
    (
        "APP_PORT",
        "APP_PORT=18555 # the port\n",
        Some("18555"),
        None,
    ),
    (
        "QUOTED_PORT",
        "QUOTED_PORT=\"18555\" # port\n",
        Some("18555"),
        None,
    ),
    ("HASH", "HASH=a#b\n", Some("a#b"), None),
    ("SINGLE", "SINGLE='$HOME x\\'y'\n", Some("$HOME x'y"), None),
    (
        "DOUBLE",
        "DOUBLE=\"a\\nb\\$c$$d\\\\e\\\"f\"\n",
        Some("a\nb$c$d\\e\"f"),
        // python-dotenv keeps `\$` and `$$` as written.
        Some(Some("a\nb\\$c$$d\\e\"f")),
    ),
    ("MULTI", "MULTI=\"l1\nl2\"\n", Some("l1\nl2"), None),
    ("EXPORTED", "export  EXPORTED = v \n", Some("v"), None),
    ("EMPTY", "EMPTY=\n", Some(""), None),
    // v1 sets a key without `=` to the empty string.
    ("NOEQ", "NOEQ\n", None, Some(Some(""))),
    (
        "EXPANDED",
        "EXPANDED=${HASH}-${SINGLE}\n",
        Some("a#b-$HOME x'y"),
        None,
    ),
    // v1 expands `${HASH}` inside single quotes too.
    (
        "LITERAL",
        "LITERAL='${HASH}'\n",
        Some("${HASH}"),
        Some(Some("a#b")),
    ),
    // v1 expands `${HASH}` after `$$`.
    (
        "DOLLARS",
        "DOLLARS=\"x$${HASH}\"\n",
        Some("x${HASH}"),
        Some(Some("x$a#b")),
    ),
    ("CRLF", "CRLF=1\r\n", Some("1"), None),
    ("LATER", "LATER=1\nLATER=2\n", Some("2"), None),
    // v1 does not read compose's YAML-style `KEY: value` (last: it warns).
    ("YAMLISH", "YAMLISH: yam\n", Some("yam"), Some(None)),
];

/// Tricky values the installer may write (`--set`, defaults, secrets),
/// with v1's reading where it differs.
const WRITTEN: &[(&str, Option<&str>)] = &[
    ("ops@example.com", None),
    ("two words", None),
    ("a #b", None),
    ("$HOME", None),
    ("it's", None),
    ("l1\nl2", None),
    // A `$` beside a quote needs double quotes, where v2 reads `$$` as `$`
    // and v1 keeps both: no spelling suits both, and v2 is the default.
    ("a\\b$c'", Some("a\\b$$c'")),
    ("", None),
    ("p@ss:w0rd/+=", None),
];

const UNSET: &str = "__unset__";

fn compose_file(keys: &[String]) -> String {
    let mut s = String::from("services:\n  s:\n    image: busybox\n    environment:\n");
    for k in keys {
        s.push_str(&format!("      {k}: \"${{{k}-{UNSET}}}\"\n"));
    }
    s
}

/// What `cmd config` resolves each key's value to (`None`: unset).
fn resolved(mut cmd: Command, dir: &Path, keys: &[String]) -> Vec<Option<String>> {
    let out = cmd
        .current_dir(dir)
        .args(["-f", "compose.yml", "config"])
        .env_remove("NOEQ")
        .output()
        .expect("compose config");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_slice(&out.stdout).unwrap();
    let env = &v["services"]["s"]["environment"];
    keys.iter()
        .map(|k| {
            // `config` writes a literal `$` as `$$`.
            let s = env[k.as_str()].as_str().unwrap().replace("$$", "$");
            (s != UNSET).then_some(s)
        })
        .collect()
}

fn v2() -> Command {
    let mut c = Command::new("/usr/bin/docker");
    c.arg("compose");
    c
}

fn v1() -> Command {
    // Debian's compose 1.29 by its path: a v2 binary may stand earlier in
    // PATH under the same name.
    let c = Command::new("/usr/bin/docker-compose");
    let v = Command::new("/usr/bin/docker-compose")
        .arg("version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("version 1."),
        "/usr/bin/docker-compose is not compose v1"
    );
    c
}

#[test]
fn the_installer_reads_env_files_as_compose_v2_and_v1_do() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let mut keys = Vec::new();
    for (k, lines, _, _) in CASES {
        text.push_str(lines);
        keys.push(k.to_string());
    }
    let written: Vec<(String, String)> = WRITTEN
        .iter()
        .enumerate()
        .map(|(i, (v, _))| (format!("WRITTEN_{i}"), v.to_string()))
        .collect();
    // The YAML-style case stays last (v1 stops reading a line it cannot
    // parse); the written values go before it.
    let (last, rest) = text.rsplit_once("YAMLISH").unwrap();
    let text = format!("{}YAMLISH{rest}", envfile::append(last, &written));
    keys.extend(written.iter().map(|(k, _)| k.clone()));
    std::fs::write(dir.path().join(".env"), &text).unwrap();
    std::fs::write(dir.path().join("compose.yml"), compose_file(&keys)).unwrap();

    let ours = envfile::parse(&text);
    assert!(envfile::read(&text).is_ok());
    let got_v2 = resolved(v2(), dir.path(), &keys);
    let got_v1 = resolved(v1(), dir.path(), &keys);
    let mut want: Vec<(Option<String>, Option<String>)> = CASES
        .iter()
        .map(|(_, _, w, w1)| {
            let w = w.map(str::to_owned);
            let w1 = w1
                .map(|x| x.map(str::to_owned))
                .unwrap_or_else(|| w.clone());
            (w, w1)
        })
        .collect();
    want.extend(
        WRITTEN
            .iter()
            .map(|(v, v1)| (Some(v.to_string()), Some(v1.unwrap_or(v).to_string()))),
    );
    for (i, k) in keys.iter().enumerate() {
        let (w, w1) = &want[i];
        assert_eq!(ours.get(k).cloned(), *w, "ours, {k}");
        assert_eq!(got_v2[i], *w, "compose v2, {k}");
        assert_eq!(got_v1[i], *w1, "compose v1, {k}");
    }
}
