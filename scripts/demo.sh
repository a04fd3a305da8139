#!/usr/bin/env bash
# The main job in one command: installs the tools, builds, brings the local stack up and runs
# one request through context, approval (a click on the approver's link), credentials used by
# the AWS CLI, expiry, revoke and audit, printing a timeline. The stack stays up afterwards
# (open the outbox it prints); `make down` stops it.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/bootstrap.sh
echo "==> cargo build (first time: a few minutes on 2 cores)"
cargo build --workspace --bins --locked
exec target/debug/jitctl local demo "$@"
