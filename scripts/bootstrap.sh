#!/usr/bin/env bash
# Installs the project's non-Cargo tools, pinned, into the working tree:
#   .venv         moto server for the local stack          (requirements/moto.txt)
#   .venv-sam     aws-sam-cli, cargo-lambda, zig            (requirements/sam.txt)
#   .venv-awscli  AWS CLI v1 for the demo                   (requirements/awscli.txt)
#   .venv-duckdb  DuckDB for the runbook SQL proof + bench  (requirements/duckdb.txt)
#   .venv-bench   DuckDB 2.0 and chdb, bench contenders only (requirements/bench.txt; not in the default set)
#   .venv-lint    parliament, the IAM policy lint           (requirements/lint.txt)
#   .venv-schemathesis  schemathesis, the API fuzzer        (requirements/schemathesis.txt)
#   .venv-ocsf    the OCSF schema and its validator         (requirements/ocsf.txt)
#   node_modules  asl-validator, playwright-core, iam-simulate, iam-data (package.json + package-lock.json, npm ci)
#   chromium      Debian's /usr/bin/chromium for the browser test (apt-get, as root, when missing)
#   .tools        cargo-deny, the supply-chain check          (CARGO_DENY_VERSION below, cargo install)
# Idempotent and fast when nothing changed: each step leaves a stamp holding the hash of its
# inputs and is skipped while the stamp matches. Only package registries are needed.
#
# Usage: scripts/bootstrap.sh [moto|sam|awscli|duckdb|bench|lint|schemathesis|ocsf|node|chromium|deny]...
#        (no argument = all but bench)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() {
  echo "bootstrap: $*" >&2
  exit 1
}

need() {
  command -v "$1" > /dev/null 2>&1 || die "$1 is missing: $2"
}

python="${PYTHON:-python3}"

# hash_of FILE...: one sha256 over the files' contents and the Python version, so a new
# interpreter or an edited requirements file rebuilds the venv.
hash_of() {
  {
    cat "$@"
    "$python" --version 2>&1
  } | sha256sum | cut -d' ' -f1
}

# venv DIR REQUIREMENTS: (re)creates DIR from REQUIREMENTS unless its stamp matches.
venv() {
  local dir="$1" requirements="$2"
  local stamp="$dir/.trailgate-stamp"
  local want
  want="$(hash_of "$requirements")"
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "bootstrap: $dir is up to date"
    return
  fi
  echo "bootstrap: installing $dir from $requirements"
  local started=$SECONDS
  # An existing venv is updated in place (a running moto server keeps working); a broken one is replaced.
  if ! "$dir/bin/python" -c '' > /dev/null 2>&1; then
    rm -rf "$dir"
    "$python" -m venv "$dir" || die "could not create $dir (on Debian: apt-get install python3-venv)"
  fi
  # --no-deps: the requirements files pin the whole resolved set, so pip installs exactly that.
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$requirements" \
    || die "pip install -r $requirements failed (see above)"
  "$dir/bin/pip" check --disable-pip-version-check > /dev/null \
    || die "$requirements does not pin a consistent set: $("$dir/bin/pip" check 2>&1 | head -n 3)"
  echo "$want" > "$stamp"
  echo "bootstrap: $dir ready in $((SECONDS - started)) s"
}

node_modules() {
  need npm "install Node.js 20+ and npm (Debian: apt-get install nodejs npm)"
  local stamp="node_modules/.trailgate-stamp"
  local want
  want="$( (cat package.json package-lock.json; node --version) | sha256sum | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "bootstrap: node_modules is up to date"
    return
  fi
  echo "bootstrap: npm ci"
  local started=$SECONDS
  npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed (see above)"
  echo "$want" > "$stamp"
  echo "bootstrap: node_modules ready in $((SECONDS - started)) s"
}

# The browser test drives Debian's chromium with playwright-core; playwright's own browser
# download is never used (it cannot be fetched here, and a distribution package is pinned by apt).
chromium_browser() {
  if [[ -x /usr/bin/chromium ]]; then
    echo "bootstrap: chromium is installed"
    return
  fi
  [[ "$(id -u)" == 0 ]] \
    || die "/usr/bin/chromium is missing and this is not root: run 'sudo apt-get install -y chromium'"
  need apt-get "the browser test needs Debian's chromium at /usr/bin/chromium"
  echo "bootstrap: apt-get install chromium"
  local started=$SECONDS
  apt-get update -qq || die "apt-get update failed (see above)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null \
    || die "apt-get install -y chromium failed (see above)"
  [[ -x /usr/bin/chromium ]] || die "apt-get installed chromium but /usr/bin/chromium is missing"
  echo "bootstrap: chromium ready in $((SECONDS - started)) s"
}

# cargo-deny, pinned; 0.20.2 needs Rust 1.88, below rust-toolchain.toml's. Built from crates.io
# with its own lock file (--locked) into .tools/, so no global cargo bin directory is touched.
CARGO_DENY_VERSION=0.20.2

cargo_deny() {
  need cargo "install Rust with rustup (https://rustup.rs); the toolchain is pinned in rust-toolchain.toml"
  local binary=.tools/bin/cargo-deny
  # The binary's own version is the stamp: asking it costs milliseconds, and a stale or broken
  # install is rebuilt.
  if [[ -x "$binary" && "$("$binary" --version 2> /dev/null)" == "cargo-deny $CARGO_DENY_VERSION" ]]; then
    echo "bootstrap: cargo-deny $CARGO_DENY_VERSION is up to date"
    return
  fi
  echo "bootstrap: cargo install cargo-deny $CARGO_DENY_VERSION into .tools (a few minutes, once)"
  local started=$SECONDS
  # A target dir of its own: the workspace's CARGO_TARGET_DIR would mix cargo-deny's build into it.
  CARGO_TARGET_DIR=.tools/build cargo install --locked --quiet --root .tools \
    cargo-deny --version "$CARGO_DENY_VERSION" \
    || die "cargo install cargo-deny $CARGO_DENY_VERSION failed (see above)"
  rm -rf .tools/build
  echo "bootstrap: cargo-deny ready in $((SECONDS - started)) s"
}

check_python() {
  need "$python" "install Python 3.10+ (Debian: apt-get install python3 python3-venv)"
  "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
    || die "$("$python" --version 2>&1) is too old: Python 3.10+ is required"
}

steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=(moto sam awscli duckdb lint schemathesis ocsf node chromium deny)

for step in "${steps[@]}"; do
  case "$step" in
    moto)
      check_python
      venv .venv requirements/moto.txt
      ;;
    sam)
      check_python
      # cargo-lambda drives cargo: without a Rust toolchain sam build cannot work.
      need cargo "install Rust with rustup (https://rustup.rs); the toolchain is pinned in rust-toolchain.toml"
      venv .venv-sam requirements/sam.txt
      ;;
    awscli)
      check_python
      venv .venv-awscli requirements/awscli.txt
      ;;
    duckdb)
      check_python
      venv .venv-duckdb requirements/duckdb.txt
      ;;
    bench)
      check_python
      venv .venv-bench requirements/bench.txt
      ;;
    lint)
      check_python
      venv .venv-lint requirements/lint.txt
      ;;
    schemathesis)
      check_python
      venv .venv-schemathesis requirements/schemathesis.txt
      ;;
    ocsf)
      check_python
      venv .venv-ocsf requirements/ocsf.txt
      ;;
    node)
      node_modules
      ;;
    chromium)
      chromium_browser
      ;;
    deny)
      cargo_deny
      ;;
    *)
      die "unknown step '$step' (expected moto, sam, awscli, duckdb, bench, lint, schemathesis, ocsf, node, chromium or deny)"
      ;;
  esac
done
