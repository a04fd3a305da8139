#!/usr/bin/env bash
# The runbook engine speed benchmark (issue 6, item 6; figures in BENCHMARKS.md).
#
# Builds trailgate-bench in release, builds (or reuses) the corpus under target/bench-corpus
# (>= 1 GB of gzipped trail files replaying ../shared/data/cloudtrail/aws_dataset/CloudTrail,
# deterministic: same seed, same files), then times the engine, DuckDB and the
# contenders (DuckDB 1.5 and 2.0, ClickHouse embedded as chdb) and the floors (libdeflate gunzip,
# gunzip + parse) on every core and prints a markdown table (progress on stderr).
# Every contender must agree with the engine on the counts or the run fails.
#
# Usage: scripts/bench-runbooks.sh [trailgate-bench options]   (e.g. --runs 5, --threads 1;
#        see `target/release/trailgate-bench --help`)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/bootstrap.sh duckdb bench
cargo build --release -p trailgate-bench
exec target/release/trailgate-bench --repo "$root" "$@"
