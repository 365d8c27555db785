//! The committed JSON Schemas must match the types. Regenerate with
//! `UPDATE_SCHEMA=1 cargo test -p manifest-schema --test schema`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn check(file: &str, generated: String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let mut diff = String::new();
        let (a, b): (Vec<_>, Vec<_>) = (committed.lines().collect(), generated.lines().collect());
        for i in 0..a.len().max(b.len()) {
            match (a.get(i), b.get(i)) {
                (Some(x), Some(y)) if x == y => {}
                (x, y) => {
                    diff.push_str(&format!(
                        "{:>5} - {}\n{:>5} + {}\n",
                        i + 1,
                        x.unwrap_or(&""),
                        i + 1,
                        y.unwrap_or(&"")
                    ));
                }
            }
        }
        panic!(
            "{} drifted from the types; rerun with UPDATE_SCHEMA=1 and commit.\n{diff}",
            path.display()
        );
    }
}

#[test]
fn spec_schema_is_committed() {
    check("spec.schema.json", manifest_schema::spec_schema());
}

#[test]
fn manifest_schema_is_committed() {
    check("manifest.schema.json", manifest_schema::manifest_schema());
}

#[test]
fn parts_schema_is_committed() {
    check("parts.schema.json", manifest_schema::parts_schema());
}

#[test]
fn inventory_schema_is_committed() {
    check("inventory.schema.json", manifest_schema::inventory_schema());
}
