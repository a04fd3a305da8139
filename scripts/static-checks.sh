#!/usr/bin/env bash
# Offline static checks of the deployable artefacts (local-aws.md §10-§11):
#   1. asl-validator on the state machine (cfn-lint does not look inside a DefinitionUri file);
#   2. sam validate --lint (SAM transform + cfn-lint, with Fn::ForEach expanded locally);
#   3. sam build as the packaging check: every function binary compiles with cargo-lambda + zig
#      and lands in .aws-sam/static-checks/<Function>/bootstrap as an x86-64 ELF.
# Needs scripts/bootstrap.sh sam node (run here when missing). No AWS account, no Docker.
#
# Usage: scripts/static-checks.sh [asl|validate|build]...   (no argument = all three)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() {
  echo "static-checks: $*" >&2
  exit 1
}

steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(asl validate build)

# Tools: the pinned venv first on PATH (sam, cargo-lambda, and the python that carries ziglang).
if [[ ! -x .venv-sam/bin/sam || ! -x node_modules/.bin/asl-validator ]]; then
  scripts/bootstrap.sh sam node
fi
export PATH="$root/.venv-sam/bin:$PATH"
export SAM_CLI_TELEMETRY=0 AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

# Parameters for the offline build:
# - x86_64: the CI machine has no aarch64 Rust standard library and rustup cannot download one;
#   sam build reads Architectures from Globals (!Ref Architecture) with these overrides.
# - ApproverEmails has no default; sam must know it to expand Fn::ForEach locally.
build_parameters=(Architecture=x86_64 ApproverEmails=static-checks@example.com)
build_dir=.aws-sam/static-checks

timed() {
  local name="$1"
  shift
  local started=$SECONDS
  echo "static-checks: $name"
  "$@"
  echo "static-checks: $name ok ($((SECONDS - started)) s)"
}

asl() {
  local file
  for file in statemachine/*.asl.json; do
    node_modules/.bin/asl-validator --json-path "$file"
  done
}

validate() {
  sam validate --lint --language-extensions --template-file template.yaml
}

build() {
  # This is a packaging check, not the release artefact: thin LTO and 4 codegen units (the
  # release profile) cost minutes on 2 cores and prove nothing more here.
  # The cargo target dir (target/, shared with the other builds, target triple
  # x86_64-unknown-linux-gnu) persists between runs, so a rerun only relinks what changed.
  # --no-cached: with CodeUri ./ SAM's build cache would hash the whole workspace (target/,
  # .venv*, node_modules) once per function and never hit, since target/ changes on every build.
  # --build-dir: its own folder, so a later `sam deploy` (which reads .aws-sam/build) can never
  # ship these x86_64 check binaries to the arm64 functions.
  # Optimisation is off for the same reason: a cold optimised build of the AWS SDK took 15 min
  # on a busy 2-core machine, and what this step proves (every function compiles, links for
  # provided.al2023 and is packaged) does not depend on it.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_OPT_LEVEL=0 \
    CARGO_PROFILE_RELEASE_DEBUG=0 \
    sam build --template-file template.yaml --build-dir "$build_dir" --no-cached --parallel \
    --language-extensions --parameter-overrides "${build_parameters[@]}"

  # Every function must have produced an x86-64 ELF named bootstrap, linked against a glibc
  # that provided.al2023 has (2.34).
  local functions n=0 function artefact machine glibc
  functions="$(grep -E '^  [A-Za-z]+Function:$' template.yaml | tr -d ' :')"
  for function in $functions; do
    artefact="$build_dir/$function/bootstrap"
    [[ -f "$artefact" ]] || die "sam build produced no $artefact"
    # ELF magic, then e_machine (offset 18, little endian): 0x3e = x86-64, 0xb7 = aarch64.
    [[ "$(head -c 4 "$artefact" | od -An -c | tr -d ' ')" == '177ELF' ]] || die "$artefact is not an ELF binary"
    machine="$(od -An -j 18 -N 2 -t x2 "$artefact" | tr -d ' ')"
    [[ "$machine" == "003e" ]] || die "$artefact is not x86-64 (e_machine 0x$machine)"
    if command -v readelf > /dev/null; then
      glibc="$(readelf -V --wide "$artefact" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n 1)"
      [[ "$(printf '%s\n' "$glibc" GLIBC_2.34 | sort -V | tail -n 1)" == GLIBC_2.34 ]] \
        || die "$artefact needs $glibc; provided.al2023 has GLIBC_2.34"
    fi
    n=$((n + 1))
  done
  [[ $n -eq 12 ]] || die "expected 12 functions in template.yaml (ten steps, the events function and the scan function), found $n"
  echo "static-checks: $n function binaries built (x86-64 ELF, glibc <= 2.34) in $build_dir"
}

for step in "${steps[@]}"; do
  case "$step" in
    asl) timed "asl-validator" asl ;;
    validate) timed "sam validate --lint" validate ;;
    build) timed "sam build (x86_64, offline)" build ;;
    *) die "unknown step '$step' (expected asl, validate or build)" ;;
  esac
done
