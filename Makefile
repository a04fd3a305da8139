# The commands a developer needs. Each installs what it uses (scripts/bootstrap.sh).

.PHONY: demo demo-member test bootstrap build up down fmt lint static-checks bench-runbooks bench-catalog bench-identity-center bench-functions

## The main job on the local stack: a request from submit to audit, with a timeline.
demo:
	scripts/demo.sh

# The same, for the sample role of the local Organization's member account `prod`.
demo-member:
	scripts/demo.sh --member prod

## Every test: fmt, clippy, unit, system tests on the local stack, static checks (what CI runs).
test:
	scripts/test.sh

bootstrap:
	scripts/bootstrap.sh

build:
	cargo build --workspace --bins

## Start / stop the local stack in the background.
up: bootstrap build
	target/debug/jitctl local up

down:
	target/debug/jitctl local down

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

static-checks:
	scripts/static-checks.sh

## Runbook engine speed vs DuckDB 1.5 and 2.0, chdb and the decompression floors (slow: builds a 1 GB corpus once).
bench-runbooks:
	scripts/bench-runbooks.sh

# GET /catalog over an Organization of 300 more accounts, cold and from intake's cache.
bench-catalog:
	scripts/bench-catalog.sh

# Permission-set grant and revoke latency on the local stack, Identity Center's asynchrony on.
bench-identity-center:
	scripts/bootstrap.sh
	IDENTITY_CENTER_BENCH_ROUNDS=$${ROUNDS:-10} cargo test --locked -p trailgate-system-tests --test identity_center -- --nocapture 2>&1 | grep -E '^(ok|bench):'

# Zip size, cold-start init and peak RSS of the ten functions (x86_64 release build, RUNS cold starts each).
bench-functions:
	scripts/bench-functions.sh $${RUNS:-10}
