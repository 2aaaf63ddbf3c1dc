#!/usr/bin/env bash
# Runs the fuzz targets: `fuzz/run.sh SECONDS [target...]` runs each named target (all by
# default) for SECONDS, one after the other, starting from the kept seeds in
# fuzz/corpus/<target>/ (read only: what the fuzzer finds goes to a scratch dir). Stops by
# itself; exits non-zero as soon as a target crashes (the input is kept in
# fuzz/artifacts/<target>/). `fuzz/run.sh --seeds` rewrites the kept seeds from the encoders.
#
# Long runs by hand: FUZZ_RUNS=N stops each target after N executions (or SECONDS, whichever
# comes first), FUZZ_SANITIZER=none builds without AddressSanitizer (the decoders are safe
# Rust: bounds and overflow checks stay on, runs are several times faster).
#
# Needs nightly and cargo-fuzz (`cargo install cargo-fuzz`). The build goes to
# $CARGO_TARGET_DIR/fuzz (or fuzz/target) so it never mixes with the workspace's.
set -euo pipefail
cd "$(dirname "$0")"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

if [ "${1:-}" = "--seeds" ]; then
  rm -rf corpus
  exec cargo +nightly run --quiet --example seeds -- corpus
fi

seconds="${1:?usage: fuzz/run.sh SECONDS [target...] | fuzz/run.sh --seeds}"
shift
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

sanitizer=(--sanitizer "${FUZZ_SANITIZER:-address}")
runs=()
if [ -n "${FUZZ_RUNS:-}" ]; then runs=(-runs="$FUZZ_RUNS"); fi

# One build of every target first, so the time limit is all fuzzing.
cargo +nightly fuzz build --debug-assertions "${sanitizer[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target"
  echo "== fuzz $target for ${seconds}s"
  # -rss_limit_mb: a decoder that buffers whatever a peer announces shows up as a crash.
  status=0
  cargo +nightly fuzz run --debug-assertions "${sanitizer[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536 -print_final_stats=1 "${runs[@]}" \
    >"$scratch/log" 2>&1 || status=$?
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$scratch/log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 60 "$scratch/log" >&2
    echo "fuzz target $target failed: the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
