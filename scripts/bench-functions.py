"""The function figures of issue 15, item 4 (run by scripts/bench-functions.sh; see BENCHMARKS.md).

For each function of template.yaml, from the bootstrap cargo lambda built:
- zips it as `sam package` does (samcli/lib/package/utils.py `make_zip`: Python zipfile,
  ZIP_DEFLATED at zlib's default level, the file's mode in `external_attr`) and reports the size;
- starts it RUNS times, each a cold start, under a Lambda Runtime API emulator and an AWS stub
  (one HTTP server on 127.0.0.1, `AWS_LAMBDA_RUNTIME_API` and `AWS_ENDPOINT_URL` both point at
  it), with the environment template.yaml gives the function (dummy values that parse) plus the
  variables Lambda itself sets;
- init = from just before the spawn until the server receives the first
  `GET /2018-06-01/runtime/invocation/next`, which is where Lambda's Init Duration ends;
- peak RSS = VmHWM of /proc/<pid>/status when that first `next` arrives (after init), and again
  when the second one arrives (after serving one event).

The AWS stub answers what the functions call: Secrets Manager `GetSecretValue` with a 64-character
key (every function reads the chain key during init, some the link key too), every other JSON-
protocol call with `{}` (DynamoDB `GetItem` then finds no item, so the event below ends in "no such
request"), and query/REST-XML calls (STS, IAM, SNS, S3) with an AccessDenied error. Every call is
recorded with its phase (init or invoke), so a function that calls AWS during init shows it.

Prints a markdown table on stdout, progress on stderr, and writes every run's figures as JSON.
"""

import argparse
import http.server
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_PREFIX = "/2018-06-01/runtime/"
REQUEST_ID = "r-aaaaaaaaaaaaaaaaaaaaaaaaaa"

# The event each function serves once per run: the repository's fixture where there is one, and
# for audit and reconcile (no fixture) what the state machine and the schedule send. All of them
# name a request the stubbed ledger does not hold, so each handler does its first ledger read(s)
# and answers "not found" (or, for the reconciler, sweeps an empty ledger) without real AWS.
EVENTS = {
    "trailgate-intake": "events/intake/get_request.json",
    "trailgate-context": "events/context/gather_context.json",
    "trailgate-approval": "events/approval/request_approval.json",
    "trailgate-decision": "events/decision/get_confirm.json",
    "trailgate-grant": "events/grant/activate.json",
    "trailgate-credentials": "events/credentials/get_credentials.json",
    "trailgate-revoke": "events/revoke/expired.json",
    "trailgate-audit": {"request_id": REQUEST_ID},
    "trailgate-catalog": "events/catalog/catalog_history.json",
    # The stubbed ledger holds no record: the function stops at the first event and reports it.
    "trailgate-events": "events/events/ledger_stream.json",
    # No trail bucket is configured: the plan is refused after the library loads.
    "trailgate-scan": "events/scan/plan.json",
    "trailgate-reconcile": {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-03T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/trailgate-reconcile"],
        "detail": {},
    },
}

# Dummy values for every variable template.yaml sets (Globals and per function); the run fails
# on a variable missing here, so a new variable in the template cannot be silently left unset.
ACCOUNT = "123456789012"
TEMPLATE_VALUES = {
    "LEDGER_TABLE": "trailgate-LedgerTable-BENCH",
    "CHAIN_KEY_SECRET_ARN": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ChainKeySecret-AbCdEf",
    "HUB_ACCOUNT_ID": ACCOUNT,
    "AGENT_ROLE_NAME": "trailgate-agent",
    "MANAGEMENT_ACCOUNT_ID": "999999999999",
    "HUB_ROLES_REQUESTABLE": "true",
    "STATE_MACHINE_ARN": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:trailgate-access-request",
    "AUDIT_DELAY_SECONDS": "900",
    "REAUDIT_DELAY_SECONDS": "3600",
    "TRAILGATE_ROLE_PREFIX": "trailgate-",
    "REQUESTS_PER_MINUTE": "10",
    "ONE_OPEN_REQUEST_PER_ROLE": "true",
    "ORGANIZATION_READER_ROLE_ARN": "",
    "CONTEXT_BUDGET_SECONDS": "10",
    "CONTEXT_REGIONS": "us-east-1",
    "APPROVALS_TOPIC_ARN": f"arn:aws:sns:us-east-1:{ACCOUNT}:trailgate-ApprovalsTopic-BENCH",
    "ALERTS_TOPIC_ARN": f"arn:aws:sns:us-east-1:{ACCOUNT}:trailgate-AlertsTopic-BENCH",
    "LINK_SECRET_ARN": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:LinkSigningSecret-AbCdEf",
    "DECISION_BASE_URL": "https://abcdef1234.execute-api.us-east-1.amazonaws.com/v1",
    "CREDENTIALS_ROLE_ARN": f"arn:aws:iam::{ACCOUNT}:role/trailgate-CredentialsFunctionRole-BENCH",
    "PROTECTION_POLICY_ARN": f"arn:aws:iam::{ACCOUNT}:policy/trailgate-protection",
    "ARCHIVE_BUCKET": "trailgate-ledgerarchivebucket-bench",
    # No item in the stub's table: the functions start on the template's catalog (CATALOG), as
    # a stack does before its first push, after the one GetItem a pushed catalog also costs.
    "CATALOG_TABLE": "trailgate-CatalogTable-BENCH",
    "CATALOG_REFRESH_SECONDS": "60",
    "CATALOG_PUBLISHERS": f"arn:aws:iam::{ACCOUNT}:user/ops",
    "EVENT_BUS_NAME": "trailgate-lifecycle",
    "TRAIL_BUCKET": "",
    "TRAIL_PREFIX": "",
    "SCAN_BUCKET": "trailgate-scanbucket-bench",
    "SCAN_BATCH_BYTES": "1073741824",
}


def local_catalog():
    """local/catalog.json (three entries: an IAM role, member accounts, a permission set) with its
    local-stack placeholders replaced by values of the right shape: a richer catalog than the
    template's one-entry sample, so parsing it at cold start is not understated."""
    text = (ROOT / "local/catalog.json").read_text()
    text = text.replace("${IdentityCenterInstance}", "arn:aws:sso:::instance/ssoins-0123456789abcdef")
    text = text.replace(
        "${PermissionSet:ProdAccess}",
        "arn:aws:sso:::permissionSet/ssoins-0123456789abcdef/ps-0123456789abcdef",
    )
    text = text.replace("${MemberAccount:prod}", "111111111111").replace("${MemberAccount:data}", "222222222222")
    users = iter(range(1, 100))
    text = re.sub(r"\$\{IdentityCenterUser:\w+\}", lambda _: f"9067d1a2-{next(users):04d}-4b5c-8d9e-0123456789ab", text)
    leftover = re.findall(r"\$\{[^}]*\}", text)
    if leftover:
        sys.exit(f"bench-functions: local/catalog.json has placeholders this script does not fill: {leftover}")
    return json.dumps(json.loads(text))


def template_functions():
    """(logical id, binary, [environment variable names]) for every function of template.yaml,
    read with SAM CLI's own YAML loader (it knows the CloudFormation tags; the script runs in the
    pinned .venv-sam)."""
    from samcli.yamlhelper import yaml_parse

    template = yaml_parse((ROOT / "template.yaml").read_text())
    global_vars = list(template["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    functions = [
        (
            logical_id,
            resource["Metadata"]["BuildProperties"]["Binary"],
            global_vars + list(resource["Properties"].get("Environment", {}).get("Variables", {})),
        )
        for logical_id, resource in template["Resources"].items()
        if isinstance(resource, dict) and resource.get("Type") == "AWS::Serverless::Function"
    ]
    if not functions:
        sys.exit("bench-functions: template.yaml has no AWS::Serverless::Function")
    return functions


def function_env(logical_id, variables, port, task_root, catalog):
    """The process environment: what Lambda sets on provided.al2023 (names from the Lambda
    developer guide, "Defined runtime environment variables"), then the template's variables."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "_HANDLER": "bootstrap",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDA_RUNTIME_DIR": str(task_root),
        "AWS_EXECUTION_ENV": "AWS_Lambda_provided.al2023",
        "AWS_LAMBDA_FUNCTION_NAME": f"trailgate-{logical_id}-BENCH",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/trailgate-{logical_id}-BENCH",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        # Dummy credentials: the environment provider answers at once, as the execution role's
        # injected credentials do on Lambda (no IMDS or profile lookups).
        "AWS_ACCESS_KEY_ID": "ASIABENCHBENCHBENCH0",
        "AWS_SECRET_ACCESS_KEY": "benchbenchbenchbenchbenchbenchbenchbench",
        "AWS_SESSION_TOKEN": "bench-session-token",
        # Every SDK client goes to the stub; not a Lambda variable, the one deviation.
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    for name in variables:
        if name == "CATALOG":
            env[name] = catalog
        elif name in TEMPLATE_VALUES:
            env[name] = TEMPLATE_VALUES[name]
        else:
            sys.exit(f"bench-functions: template.yaml sets {name} for {logical_id}; add a dummy value to TEMPLATE_VALUES")
    return env


def vm_status(pid):
    """VmHWM and VmRSS of `pid` in KiB (None once the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = dict(re.findall(r"^(VmHWM|VmRSS):\s+(\d+) kB$", text, re.M))
    return {"hwm_kib": int(fields["VmHWM"]), "rss_kib": int(fields["VmRSS"])}


class Run:
    """One cold start: what the server saw, filled in by its handler threads."""

    def __init__(self, event_bytes):
        self.event_bytes = event_bytes
        self.pid = None
        self.spawned = threading.Event()
        self.done = threading.Event()
        self.t_spawn = None
        self.nexts = 0
        self.init_ns = None
        self.after_init = None
        self.after_invoke = None
        self.outcome = None
        self.init_error = None
        self.aws_calls = []
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write (buffered, flushed after each request) with Nagle off:
    # otherwise the body waits for the client's delayed ACK of the headers, 40 ms per call on
    # Linux loopback, which would be counted as the function's init time.
    wbufsize = -1
    disable_nagle_algorithm = True
    run = None  # the Run in progress, set by the main thread before each spawn

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status, body=b"", content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        now = time.monotonic_ns()
        run = Handler.run
        if not self.path.startswith(RUNTIME_PREFIX):
            return self.aws(now)
        if not self.path.endswith("/invocation/next"):
            return self.reply(404)
        run.spawned.wait()
        with run.lock:
            run.nexts += 1
            n = run.nexts
        if n == 1:
            run.init_ns = now - run.t_spawn
            run.after_init = vm_status(run.pid)
            deadline = str(int(time.time() * 1000) + 30_000)
            return self.reply(
                200,
                run.event_bytes,
                headers=[
                    ("Lambda-Runtime-Aws-Request-Id", "bench-invocation-1"),
                    ("Lambda-Runtime-Deadline-Ms", deadline),
                    ("Lambda-Runtime-Invoked-Function-Arn", f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:bench"),
                    ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0"),
                ],
            )
        # Back for a second event: the first is served. Hold the request until the process is
        # killed, as Lambda does between invocations.
        run.after_invoke = vm_status(run.pid)
        run.done.set()
        time.sleep(5)

    def do_POST(self):
        now = time.monotonic_ns()
        run = Handler.run
        if not self.path.startswith(RUNTIME_PREFIX):
            return self.aws(now)
        body = self.body()
        if self.path.endswith("/init/error"):
            run.init_error = body.decode(errors="replace")
            self.reply(202, b"{}")
            run.done.set()
            return
        kind = "response" if self.path.endswith("/response") else "error"
        run.outcome = {"kind": kind, "body": body.decode(errors="replace")[:400]}
        self.reply(202, b"{}")

    def do_PUT(self):
        self.aws(time.monotonic_ns())

    def do_DELETE(self):
        self.aws(time.monotonic_ns())

    def do_HEAD(self):
        self.aws(time.monotonic_ns())

    def aws(self, now):
        """The AWS stub (see the module docstring)."""
        run = Handler.run
        body = self.body()
        target = self.headers.get("X-Amz-Target")
        action = re.search(rb"(?:^|&)Action=(\w+)", body) if body else None
        operation = target or (f"Query {action.group(1).decode()}" if action else f"{self.command} {self.path.split('?')[0]}")
        with run.lock:
            run.aws_calls.append(
                {"t_ms": (now - run.t_spawn) / 1e6, "phase": "init" if run.nexts == 0 else "invoke", "operation": operation}
            )
        if target == "secretsmanager.GetSecretValue":
            secret = json.loads(body or b"{}").get("SecretId", "bench")
            answer = {"ARN": secret, "Name": "bench", "VersionId": "v1", "SecretString": "k" * 64}
            return self.reply(200, json.dumps(answer).encode(), "application/x-amz-json-1.1")
        if target:
            return self.reply(200, b"{}", "application/x-amz-json-1.0")
        if action:
            error = b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>bench stub</Message></Error><RequestId>bench</RequestId></ErrorResponse>"
        else:
            error = b"<Error><Code>AccessDenied</Code><Message>bench stub</Message><RequestId>bench</RequestId></Error>"
        self.reply(403, error, "text/xml")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def handle_error(self, request, client_address):
        # A killed function leaves its held `next` connection reset; that is the end of a run,
        # not an error worth a traceback.
        pass


def one_run(bootstrap, env, event_bytes, log):
    run = Run(event_bytes)
    Handler.run = run
    run.t_spawn = time.monotonic_ns()
    proc = subprocess.Popen([str(bootstrap)], env=env, cwd=bootstrap.parent, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    run.pid = proc.pid
    run.spawned.set()
    # A failed init may exit without telling the Runtime API (main returning an error does):
    # stop waiting as soon as the process is gone.
    deadline = time.monotonic() + 30
    while not run.done.wait(timeout=0.02) and proc.poll() is None and time.monotonic() < deadline:
        pass
    exit_code = proc.poll()
    proc.kill()
    proc.wait()
    if not run.done.is_set():
        run.init_error = run.init_error or f"no second /next (exit code {exit_code})"
    return run


def zip_like_sam(bootstrap, out):
    """samcli's make_zip for a directory holding only `bootstrap`."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = os.stat(bootstrap).st_mode << 16
        archive.writestr(info, bootstrap.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
    return out.stat().st_size


def summary(values):
    return statistics.median(values), max(values)


# The goals of issue 15, in the strict reading: MB = 10^6 bytes.
GOAL_ZIP_BYTES = 5_000_000
GOAL_INIT_MS = 15
GOAL_RSS_MB = 30


def goals_missed(result):
    """The goals a function misses: zip size, init by its median, peak RSS by its maximum."""
    missed = []
    if result["zip_bytes"] > GOAL_ZIP_BYTES:
        missed.append("zip")
    if summary(result["init_ms"])[0] > GOAL_INIT_MS:
        missed.append("init")
    if max(result["peak_rss_after_invoke_mib"]) * 1.048576 > GOAL_RSS_MB:
        missed.append("RSS")
    return missed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lambda-dir", help="cargo lambda's output: <dir>/<binary>/bootstrap")
    parser.add_argument("--out", help="folder for the zips, the logs and results.json")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--only", nargs="*", help="binaries to measure (default: every function)")
    parser.add_argument("--binaries", action="store_true", help="print the functions' binaries and exit")
    args = parser.parse_args()
    if args.binaries:
        print("\n".join(binary for _, binary, _ in template_functions()))
        return

    if not args.lambda_dir or not args.out:
        parser.error("--lambda-dir and --out are required")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    catalog = local_catalog()
    server = Server(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    results = []
    for logical_id, binary, variables in template_functions():
        if args.only and binary not in args.only:
            continue
        bootstrap = Path(args.lambda_dir) / binary / "bootstrap"
        if not bootstrap.is_file():
            sys.exit(f"bench-functions: {bootstrap} is missing (build first)")
        event = EVENTS[binary]
        event_bytes = (ROOT / event).read_bytes() if isinstance(event, str) else json.dumps(event).encode()
        env = function_env(logical_id, variables, port, bootstrap.parent, catalog)
        zip_bytes = zip_like_sam(bootstrap, out / f"{binary}.zip")
        runs = []
        with open(out / f"{binary}.log", "wb") as log:
            for i in range(args.runs):
                run = one_run(bootstrap, env, event_bytes, log)
                if run.init_error or run.after_invoke is None or run.outcome is None:
                    sys.exit(f"bench-functions: {binary} run {i + 1} failed: {run.init_error or 'no invocation outcome'} (see {out / (binary + '.log')})")
                runs.append(run)
        init_ms = [r.init_ns / 1e6 for r in runs]
        hwm_init = [r.after_init["hwm_kib"] / 1024 for r in runs]
        hwm_invoke = [r.after_invoke["hwm_kib"] / 1024 for r in runs]
        first = runs[0]
        result = {
            "function": logical_id,
            "binary": binary,
            "bootstrap_bytes": bootstrap.stat().st_size,
            "zip_bytes": zip_bytes,
            "init_ms": init_ms,
            "peak_rss_after_init_mib": hwm_init,
            "peak_rss_after_invoke_mib": hwm_invoke,
            "event": event if isinstance(event, str) else "inline: " + json.dumps(event),
            "outcome": first.outcome,
            "aws_calls_first_run": first.aws_calls,
        }
        results.append(result)
        init_calls = [c["operation"] for c in first.aws_calls if c["phase"] == "init"]
        print(
            f"bench-functions: {binary}: zip {zip_bytes} B, init median {summary(init_ms)[0]:.1f} ms, "
            f"peak RSS {summary(hwm_invoke)[0]:.1f} MiB; AWS calls during init: {init_calls or 'none'}",
            file=sys.stderr,
        )
    (out / "results.json").write_text(json.dumps(results, indent=2))
    server.shutdown()

    mb = 1_000_000
    print(f"| function | zip MB (bytes) | bootstrap MB | init median / max ms ({args.runs} cold starts) | peak RSS after init: median / max MiB | peak RSS after one event: median / max MiB | AWS calls during init | event served (outcome) | goals (zip <= 5 MB, init <= 15 ms, RSS <= 30 MB) |")
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    for r in results:
        init_med, init_max = summary(r["init_ms"])
        ri_med, ri_max = summary(r["peak_rss_after_init_mib"])
        rv_med, rv_max = summary(r["peak_rss_after_invoke_mib"])
        calls = [c["operation"].split(".")[-1] for c in r["aws_calls_first_run"] if c["phase"] == "init"]
        missed = goals_missed(r)
        print(
            f"| {r['function']} | {r['zip_bytes'] / mb:.2f} ({r['zip_bytes']}) | {r['bootstrap_bytes'] / mb:.2f} "
            f"| {init_med:.1f} / {init_max:.1f} | {ri_med:.1f} / {ri_max:.1f} | {rv_med:.1f} / {rv_max:.1f} "
            f"| {', '.join(calls) or 'none'} | {Path(r['event']).name if not r['event'].startswith('inline') else 'inline'} ({r['outcome']['kind']}) "
            f"| {'missed: ' + ', '.join(missed) if missed else 'met'} |"
        )
    print(f"\nraw figures: {out / 'results.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
