#!/usr/bin/env bash
# Builds the installer as one static musl binary and checks that it is
# static: the target hosts have no network and maybe no matching libc.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
cargo build --locked --profile release-installer --target "$target" -p installer
bin=target/$target/release-installer/installer
desc=$(file -b "$bin")
echo "$bin: $desc"
case "$desc" in
  *"statically linked"*|*"static-pie linked"*) ;;
  *) echo "build-static: $bin is not statically linked" >&2; exit 1 ;;
esac
# It runs with no dynamic loader at all.
"$bin" --version
ls -l "$bin" | awk '{print "size:", $5, "bytes"}'
