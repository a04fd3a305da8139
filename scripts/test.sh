#!/usr/bin/env bash
# Every test trailgate has, in one command (what `.ci/run` runs):
#   tools (pinned venvs, npm, Rust components, cargo-deny) -> generated data current -> fmt -> clippy -> cargo deny
#   (bans, licences, sources; see deny.toml for why not advisories) -> build -> unit and system
#   tests (the system tests bring up the local stack: moto, cargo lambda watch, the router)
#   -> static checks (asl-validator, sam validate --lint, sam build).
# Works from a clean clone; needs only the package registries.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() {
  echo
  echo "==> $*"
}

started=$SECONDS
step "tools"
scripts/bootstrap.sh

step "generated data is current (the Service Authorization Reference copy: node scripts/gen-iam-actions.mjs --check)"
node scripts/gen-iam-actions.mjs --check

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Advisories are left out: their database is cloned from GitHub, which this machine and CI cannot
# reach (deny.toml says more).
step "cargo deny check bans licenses sources (deny.toml)"
.tools/bin/cargo-deny --locked check bans licenses sources

step "cargo build (the binaries cargo lambda watch and the system tests run)"
cargo build --workspace --bins --locked

step "runbook coverage (jitctl runbook coverage: ATT&CK techniques and event names of the library; exits 1 on a malformed technique id)"
cargo run --quiet --locked -p jitctl -- runbook coverage > /dev/null

step "cargo test (unit tests, event fixtures, system tests on the local stack)"
cargo test --workspace --locked

step "static checks (asl-validator, sam validate --lint, sam build)"
scripts/static-checks.sh

echo
echo "all checks passed in $((SECONDS - started)) s"
