#!/usr/bin/env bash
# The main job on the built-in fixtures, from nothing: install the system
# components, start a loopback registry and push the demo images to it,
# then as the vendor make a key, pin, build, inspect and verify a bundle,
# and as the operator verify and install it on a private dockerd and ask
# the app for /health. Everything started here is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

scripts/install-deps.sh >/dev/null
cargo build -q --locked -p bundler -p installer -p fixtures
B=$PWD/target/debug/bundler
I=$PWD/target/debug/installer

work=$(mktemp -d /tmp/bdemo.XXXXXX)
cleanup() {
  if [ -d "$work/opt/demo" ]; then
    (cd "$work/opt/demo" && DOCKER_HOST="unix://$work/dk/docker.sock" /usr/bin/docker compose -p demo down >/dev/null 2>&1) || true
  fi
  scripts/dockerd.sh stop "$work/dk" || true
  scripts/registry.sh stop "$work/registry" || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
step() { if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then printf '\n\033[1m== %s\033[0m\n' "$*" >&2; else printf '\n== %s\n' "$*" >&2; fi; }

step "registry on loopback, with the fixture images"
reg=127.0.0.1:$(free_port)
scripts/registry.sh start "$work/registry" "${reg#*:}"
cargo run -q --locked -p fixtures -- push "$reg"

step "vendor: key pair, pinned spec, bundle"
mkdir -p "$work/vendor"
$B keygen --unencrypted --secret-key "$work/vendor/vendor.key" --public-key "$work/vendor/vendor.pub"
cargo run -q --locked -p fixtures -- app v1 "$reg" "$work/vendor/app" >/dev/null
export BUNDLER_CACHE_DIR=$work/vendor/cache
$B pin "$work/vendor/app/bundle.yaml" --insecure-registry "$reg"
$B build "$work/vendor/app/bundle.yaml" --key "$work/vendor/vendor.key" \
  -o "$work/media/demo-1.0.0.bundle" --insecure-registry "$reg"
$B inspect "$work/media/demo-1.0.0.bundle"
$B verify "$work/media/demo-1.0.0.bundle" --public-key "$work/vendor/vendor.pub"

step "operator: a private dockerd (the disconnected host)"
scripts/dockerd.sh start "$work/dk"
export DOCKER_HOST=unix://$work/dk/docker.sock INSTALLER_DOCKER=/usr/bin/docker

step "operator: verify, then install into $work/opt/demo"
port=$(free_port)
$I verify "$work/media/demo-1.0.0.bundle" --public-key "$work/vendor/vendor.pub"
$I install "$work/media/demo-1.0.0.bundle" --dir "$work/opt/demo" \
  --public-key "$work/vendor/vendor.pub" --set "APP_PORT=$port" --yes
$I status --dir "$work/opt/demo"

step "the app answers"
echo "GET http://127.0.0.1:$port/health -> $(curl -fsS "http://127.0.0.1:$port/health")"
