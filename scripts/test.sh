#!/usr/bin/env bash
# The test command: installs what is missing, starts the real components
# (loopback registry with and without auth), pushes the fixture images, then
# runs fmt, clippy and every test. Stops what it started, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

scripts/install-deps.sh

work=$(mktemp -d /tmp/bundler-test.XXXXXX)
cleanup() {
  scripts/registry.sh stop "$work/registry" || true
  scripts/registry.sh stop "$work/auth-registry" || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "== fmt"
cargo fmt --all -- --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== docs"
# Broken intra-doc links, in the public docs (where a private item linked
# from public docs is one) and in the private items' docs.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --document-private-items
# The test binaries carry the installer's fault points (compiled out of the
# shipped static binary); tests/crash.rs switches them on with FAILPOINTS.
features=(--features installer/failpoints)
cargo build --workspace --all-targets --locked "${features[@]}"
echo "== static installer"
scripts/build-static.sh

port=$(free_port); scripts/registry.sh start "$work/registry" "$port"
export TEST_REGISTRY=127.0.0.1:$port
aport=$(free_port)
export TEST_AUTH_USER=vendor TEST_AUTH_PASSWORD="s3cret-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
scripts/registry.sh start "$work/auth-registry" "$aport" "$TEST_AUTH_USER" "$TEST_AUTH_PASSWORD"
export TEST_AUTH_REGISTRY=127.0.0.1:$aport
cargo run -q --locked -p fixtures -- push "$TEST_REGISTRY" >/dev/null
cargo run -q --locked -p fixtures -- push "$TEST_AUTH_REGISTRY" "$TEST_AUTH_USER" "$TEST_AUTH_PASSWORD" >/dev/null

echo "== tests"
cargo nextest run --workspace --locked --no-fail-fast "${features[@]}" "$@"

# A short smoke of every fuzz target (regression inputs, then the seeds);
# scripts/fuzz.sh SECONDS runs them longer.
echo "== fuzz smoke"
scripts/fuzz.sh "${FUZZ_SMOKE_SECONDS:-15}"
