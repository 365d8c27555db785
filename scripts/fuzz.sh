#!/usr/bin/env bash
# Runs the fuzz targets (fuzz/fuzz_targets/): scripts/fuzz.sh SECONDS [TARGET...]
#
# Each target first replays its regression inputs (fuzz/regressions/TARGET:
# inputs that once crashed it), then fuzzes for SECONDS starting from the
# committed seeds (fuzz/seeds/TARGET) and the corpus of earlier runs
# (fuzz/corpus/TARGET, not committed). A crash fails the script and leaves
# the input in fuzz/artifacts/TARGET; add it to fuzz/regressions/TARGET with
# the fix.
#
# cargo-fuzz needs nightly rustc flags; this uses the stable toolchain with
# RUSTC_BOOTSTRAP=1 and no sanitizer (safe Rust: the targets look for
# panics, aborts, hangs and runaway memory).
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -ge 1 ] || { echo "usage: scripts/fuzz.sh SECONDS [TARGET...]" >&2; exit 2; }
seconds=$1; shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec manifest signature archive)

command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
export RUSTC_BOOTSTRAP=1
fuzz=(cargo fuzz run --sanitizer none --release)
cargo fuzz build --sanitizer none --release

status=0
summary=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  if compgen -G "fuzz/regressions/$t/*" >/dev/null; then
    echo "== $t: regression inputs"
    "${fuzz[@]}" "$t" fuzz/regressions/"$t"/* -- -runs=1 || { status=1; summary+=("$t: a regression input fails again"); continue; }
  fi
  echo "== $t: fuzzing for $seconds s"
  log=$(mktemp)
  if "${fuzz[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
      -artifact_prefix="fuzz/artifacts/$t/" >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo '?')
    summary+=("$t: ok, $runs runs in $seconds s, coverage $cov, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs")
  else
    status=1
    tail -40 "$log"
    summary+=("$t: FAILED; input in fuzz/artifacts/$t/")
  fi
  rm -f "$log"
done
echo "== fuzz summary"
printf '%s\n' "${summary[@]}"
exit $status
