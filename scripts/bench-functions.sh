#!/usr/bin/env bash
# The function figures (issue 15, item 4; figures in BENCHMARKS.md): zip size, cold-start init
# time and peak RSS of each of template.yaml's ten functions, against the goals zip <= 5 MB,
# init <= 15 ms, peak RSS <= 30 MB.
#
# Builds the functions as `sam build` does for x86_64 on provided.al2023 (BuildMethod
# rust-cargolambda: `cargo lambda build --release --bin <Binary>` at the workspace root, so with
# the release profile of Cargo.toml and cargo-lambda's default x86_64-unknown-linux-gnu target
# linked by zig against provided.al2023's glibc), then runs scripts/bench-functions.py: each
# bootstrap zipped as `sam package` zips it, started RUNS times (default 10) under a local
# Runtime API emulator and AWS stub, and served one event.
# x86_64, not arm64 (the template's default): this machine has no aarch64 Rust standard library
# and rustup cannot download one. Prints a markdown table; raw figures in
# $CARGO_TARGET_DIR/bench-functions/results.json.
#
# Usage: scripts/bench-functions.sh [RUNS] [BINARY...]   (e.g. 10 trailgate-intake)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
runs="${1:-10}"
shift || true

scripts/bootstrap.sh sam
# cargo-lambda, and the python that carries ziglang (cargo-lambda's linker), from the pinned venv.
export PATH="$root/.venv-sam/bin:$PATH"
target="${CARGO_TARGET_DIR:-$root/target}"

# One cargo invocation for all ten: SAM runs one per function, but each resolves features over
# the whole workspace (--bin selects no package), so the artefacts are the same.
bin_args=()
for binary in $(.venv-sam/bin/python scripts/bench-functions.py --binaries); do
  bin_args+=(--bin "$binary")
done
echo "==> cargo lambda build --release (x86_64; a cold build of the AWS SDK takes 15+ minutes on 2 cores)" >&2
cargo lambda build --release --locked "${bin_args[@]}"

echo "==> cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(uname -r)" >&2
exec .venv-sam/bin/python scripts/bench-functions.py --lambda-dir "$target/lambda" \
  --out "$target/bench-functions" --runs "$runs" ${1:+--only "$@"}
