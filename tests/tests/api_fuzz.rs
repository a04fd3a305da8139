//! schemathesis against the local stack: every route of `openapi.yaml` fuzzed (examples,
//! coverage and fuzzing phases, valid and invalid inputs) through the real router and
//! binaries. Passes only with zero server errors and every response conforming to the spec
//! (status, content type, headers, body schema). Prints the number of generated cases.
//!
//! schemathesis cannot sign SigV4, so it talks to a small signing reverse proxy (Python,
//! `requests-aws4auth` from the same venv) that re-signs each call as alice with her keys
//! from the stack's AWS config file. The proxy answers 599 only when it cannot forward,
//! which schemathesis would report as a server error, so a proxy fault cannot pass silently.

use anyhow::{Context, Result, bail, ensure};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use trailgate_system_tests::run_on_stack;

/// Test cases per operation and phase; with 12 operations this keeps the run to minutes.
const MAX_EXAMPLES: &str = "25";

/// The signing reverse proxy: listens on an ephemeral port, prints it, forwards every call to
/// the API origin signed for `execute-api` as the given profile.
const PROXY: &str = r#"
import configparser, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
import requests
from requests_aws4auth import AWS4Auth

origin, config_file, profile, region = sys.argv[1:5]
config = configparser.ConfigParser()
config.read(config_file)
section = config["profile " + profile]
# Only host and x-amz-* are signed: aws4auth shlex-parses the headers it signs, and fuzzed
# values (an unbalanced quote in a content-type) would make the proxy, not the API, fail.
auth = AWS4Auth(section["aws_access_key_id"], section["aws_secret_access_key"], region,
                "execute-api", include_hdrs=["host", "x-amz-*"])
LOG = len(sys.argv) > 5
session = requests.Session()
HOP = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding", "authorization"}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def forward(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        try:
            request = requests.Request(self.command, origin + self.path, data=body,
                                       headers=headers).prepare()
            # Signed on a copy holding only what SigV4 covers here, then the signature headers
            # are copied over: aws4auth shlex-parses header values, and a fuzzed value with an
            # unbalanced quote would make the proxy, not the API, fail.
            minimal = request.copy()
            minimal.headers = requests.structures.CaseInsensitiveDict(
                {"host": request.url.split("/")[2]})
            auth(minimal)
            for name in ("authorization", "x-amz-date", "x-amz-content-sha256"):
                if name in minimal.headers:
                    request.headers[name] = minimal.headers[name]
            if LOG:
                print(self.command, self.path, dict(request.headers), flush=True, file=sys.stderr)
            reply = session.send(request, timeout=60, allow_redirects=False)
            status, out_headers, content = reply.status_code, reply.headers, reply.content
        except Exception as err:
            status, out_headers, content = 599, {"content-type": "text/plain"}, ("proxy: %r" % err).encode()
        self.send_response(status)
        for k, v in out_headers.items():
            if k.lower() not in {"content-length", "connection", "transfer-encoding", "content-encoding"}:
                self.send_header(k, v)
        self.send_header("content-length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)
    # Every method schemathesis tries (it probes undeclared ones such as TRACE and QUERY)
    # goes to the API.
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self.forward
        raise AttributeError(name)

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One schemathesis run through the signing proxy as `profile`, over the operations `only`
/// selects (empty: all); the number of generated cases.
async fn fuzz(
    ctx: &trailgate_system_tests::Ctx,
    venv: &std::path::Path,
    profile: &str,
    only: &[&str],
) -> Result<u64> {
    let api: reqwest::Url = ctx.state.api_url.parse()?;
    let origin = api.origin().ascii_serialization();
    let mut proxy = tokio::process::Command::new(venv.join("python"));
    proxy
        .arg("-c")
        .arg(PROXY)
        .arg(&origin)
        .arg(&ctx.state.aws_config_file)
        .arg(profile)
        .arg(&ctx.state.region);
    // Debugging aids: TRAILGATE_FUZZ_LOG=1 logs each forwarded call to stderr, and
    // TRAILGATE_FUZZ_ARGS adds schemathesis options (e.g. `--include-path /requests`).
    if std::env::var_os("TRAILGATE_FUZZ_LOG").is_some() {
        proxy.arg("log");
    }
    let extra: Vec<String> = std::env::var("TRAILGATE_FUZZ_ARGS")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut proxy = proxy
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the signing proxy")?;
    let mut lines = BufReader::new(proxy.stdout.take().context("proxy stdout")?).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("the signing proxy did not start")??
        .context("the signing proxy exited")?;
    let url = format!("http://127.0.0.1:{}{}", port.trim(), api.path());

    let output = tokio::process::Command::new(venv.join("schemathesis"))
        // Its cache (`.schemathesis/`) goes into the stack's state directory, removed
        // after a passing run, not into the repository.
        .current_dir(&ctx.state.state_dir)
        .arg("run")
        .arg(repo_root().join("openapi.yaml"))
        .args(["--url", &url])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", MAX_EXAMPLES, "--workers", "2", "--seed", "1"])
        .args(["--generation-database", "none", "--no-color"])
        .args(["--request-timeout", "60"])
        .args(&extra)
        .args(only)
        .output()
        .await
        .context("running schemathesis")?;
    let _ = proxy.kill().await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    // The summary line reads e.g. "Test cases:  1234 generated, 1234 passed".
    let generated = stdout
        .lines()
        .find_map(|line| {
            let (count, _) = line.split_once(" generated")?;
            count.split_whitespace().last()?.parse::<u64>().ok()
        })
        .context("schemathesis printed no case count")?;
    println!("schemathesis generated {generated} test cases as {profile}");
    ensure!(
        output.status.success(),
        "schemathesis found problems (exit {:?}); see its output above",
        output.status.code()
    );
    ensure!(generated > 0, "schemathesis generated no cases");
    Ok(generated)
}

#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_error_and_every_response_conforms() -> Result<()> {
    let venv = repo_root().join(".venv-schemathesis/bin");
    if !venv.join("schemathesis").exists() {
        if std::env::var("CI").as_deref() == Ok("true") {
            bail!("schemathesis is not installed: run scripts/bootstrap.sh schemathesis");
        }
        eprintln!(
            "skipped: .venv-schemathesis is missing (scripts/bootstrap.sh schemathesis); CI=true fails instead"
        );
        return Ok(());
    }
    run_on_stack("api-fuzz", &[], |ctx| async move {
        // Every route as alice, a requester: the catalog push is refused before its body is read.
        fuzz(&ctx, &venv, "alice", &[]).await?;
        // The catalog routes as carol, the local stack's publisher, so the push's parser and
        // rules see every generated body (a valid catalog it stores is a new version).
        fuzz(&ctx, &venv, "carol", &["--include-path-regex", "^/catalog"]).await?;
        Ok(())
    })
    .await
}
