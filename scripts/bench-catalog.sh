#!/usr/bin/env bash
# GET /catalog over a large Organization (issue 13, item 3; figures in BENCHMARKS.md).
#
# Brings up the local stack with N extra accounts (default 300, no member stack) in the local
# Organization's OU Prod and a catalog entry over that OU, then times `jitctl catalog --json`
# as alice: the first call (intake's cold start and the Organization walk: ListAccounts,
# ListRoots, ListChildren through the management account's reader role) and CALLS more
# (default 20), answered from intake's cache (ORGANIZATION_CACHE_SECONDS). Each figure is the
# whole CLI call: process start, SigV4 signing, the API emulation, Lambda, the reply.
# Prints a markdown table; the stack is stopped at the end.
#
# Usage: scripts/bench-catalog.sh [ACCOUNTS] [CALLS]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
accounts="${1:-300}"
calls="${2:-20}"

scripts/bootstrap.sh
cargo build --workspace --bins --locked
bin="${CARGO_TARGET_DIR:-$root/target}/debug"

state="$root/.trailgate/local"
if "$bin/jitctl" local status > /dev/null 2>&1; then
  echo "a local stack is running ($state): stop it first (make down)" >&2
  exit 1
fi
mkdir -p "$state/logs"

# The sample catalog plus one entry over OU Prod: every account in it is requestable.
catalog="$(.venv/bin/python - <<'EOF'
import json
catalog = json.load(open("local/catalog.json"))
catalog["entries"].append({
    "id": "prod-ou-readonly", "role_name": "sample-target-member", "accounts": ["${ProdOu}"],
    "description": "view-only in any account of OU Prod", "max_duration": "PT1H",
    "approval_window": "PT5M", "quorum": 1,
    "approvers": [{"id": "bob", "email": "bob@example.com", "arn": "arn:aws:iam::123456789012:user/bob"}],
    "requesters": ["arn:aws:iam::123456789012:user/alice"]})
print(json.dumps(catalog))
EOF
)"

echo "==> local stack with $accounts extra accounts (creating them takes a while)" >&2
started=$(date +%s)
"$bin/trailgate-local" --state-dir "$state" serve --extra-accounts "$accounts" \
  --param "Catalog=$catalog" > "$state/logs/bench-serve.log" 2>&1 &
trap '"$bin/trailgate-local" --state-dir "$state" down > /dev/null 2>&1 || true' EXIT
"$bin/trailgate-local" --state-dir "$state" wait-ready --timeout-seconds 1200 > /dev/null
echo "    ready in $(( $(date +%s) - started )) s" >&2
export AWS_CONFIG_FILE="$state/aws-config"

# One call: prints "<milliseconds> <accounts listed for prod-ou-readonly>".
call() {
  local t0 t1 out
  t0=$(date +%s%N)
  out="$("$bin/jitctl" --profile alice catalog --json)"
  t1=$(date +%s%N)
  local listed
  listed="$(printf '%s' "$out" | .venv/bin/python -c '
import json, sys
entries = json.load(sys.stdin)["entries"]
print(next(len(e["accounts_available"]) for e in entries if e["id"] == "prod-ou-readonly"))')"
  echo "$(( (t1 - t0) / 1000000 )) $listed"
}

read -r cold listed < <(call)
expected=$((accounts + 1))
if [ "$listed" != "$expected" ]; then
  echo "prod-ou-readonly lists $listed accounts, expected $expected (prod and the extra ones)" >&2
  exit 1
fi
warm=()
for _ in $(seq "$calls"); do
  read -r ms n < <(call)
  [ "$n" = "$expected" ] || { echo "a cached call listed $n accounts" >&2; exit 1; }
  warm+=("$ms")
done
sorted=($(printf '%s\n' "${warm[@]}" | sort -n))
median=${sorted[$(( ${#sorted[@]} / 2 ))]}
max=${sorted[$(( ${#sorted[@]} - 1 ))]}
min=${sorted[0]}

echo
echo "| accounts in the Organization | accounts listed for the OU entry | first call (cold start, Organization walk) | cached calls ($calls): min / median / max |"
echo "|---:|---:|---:|---:|"
echo "| $((accounts + 3)) | $listed | ${cold} ms | ${min} / ${median} / ${max} ms |"
