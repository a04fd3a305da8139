//! The endpoint router: two HTTP servers run in-process on tokio.
//!
//! - The AWS port is what every SDK client and moto's Step Functions interpreter (through
//!   `MOTO_PORT`) calls. Lambda Invoke goes to `cargo lambda watch`, CloudTrail `LookupEvents` is
//!   answered from local files, `/_local/cloudtrail` seeds more records, `/_local/faults` injects
//!   AWS errors into the next matching calls ([`faults`]), IAM Identity Center's account
//!   assignments and permission-set provisioning are made asynchronous as on AWS ([`sso`]), and
//!   everything else is streamed to moto unchanged.
//! - The API port emulates the REST API of template.yaml (stage `v1`, SigV4 checked against the
//!   local users) and serves the outbox page.
//!
//! The deployer fills in the routes, users and renames once the stack is deployed
//! ([`Router::configure`]), and the supervisor tells the router where `cargo lambda watch`
//! listens ([`Router::set_lambda_url`]).

pub mod apigw;
pub mod cloudtrail;
pub mod faults;
pub mod lambda;
pub mod outbox;
pub mod sigv4;
pub mod sso;
mod streams;
pub mod sts;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Display;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use self::cloudtrail::CloudTrail;
use self::sigv4::LocalUser;
use crate::cloudformation::{ACCOUNT_ID, ApiRoute, REGION};
use crate::error::{Error, Result};

/// Error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response body: either a buffer or a stream from moto.
pub type Body = BoxBody<Bytes, BoxError>;

/// How long an invoke may take before the router gives up: `cargo lambda watch` compiles a
/// function on its first invoke, and Lambda's own maximum is 900 s.
const INVOKE_READ_TIMEOUT: Duration = Duration::from_secs(900);
/// API Gateway's payload limit.
const API_BODY_LIMIT: usize = 10 * 1024 * 1024;
/// Lambda's synchronous payload limit.
const INVOKE_BODY_LIMIT: usize = 6 * 1024 * 1024;

/// What the deployer tells the router about the deployed stack.
#[derive(Debug, Clone, Default)]
pub struct RouterConfig {
    pub routes: Vec<ApiRoute>,
    pub users: Vec<LocalUser>,
    /// Deployed function name → binary name, for functions with an explicit `FunctionName`.
    pub renames: HashMap<String, String>,
    /// The emulated REST API's id (what `!Ref TrailgateApi` gives).
    pub api_id: String,
}

/// Append-only line log (router.log); cloning shares the file.
#[derive(Debug, Clone, Default)]
pub struct Log {
    file: Option<Arc<Mutex<std::fs::File>>>,
}

impl Log {
    /// A log appending to `path`.
    pub fn to_file(path: &Path) -> Result<Log> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|err| Error::io(format!("opening {}", path.display()), err))?;
        Ok(Log {
            file: Some(Arc::new(Mutex::new(file))),
        })
    }

    /// A log that drops everything (unit tests).
    pub fn discard() -> Log {
        Log::default()
    }

    /// Writes one timestamped line.
    pub fn line(&self, message: impl Display) {
        if let Some(file) = &self.file {
            let now = OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            if let Ok(mut file) = file.lock() {
                // Logging must never take the router down.
                let _ = writeln!(file, "{now} {message}");
            }
        }
    }
}

struct Shared {
    moto_url: String,
    lambda_url: RwLock<Option<String>>,
    config: RwLock<RouterConfig>,
    users: RwLock<HashMap<String, LocalUser>>,
    cloudtrail: CloudTrail,
    /// The account each access key acts in ([`caller_account`]).
    accounts: Mutex<HashMap<String, String>>,
    /// Every AssumeRole call as its caller sent it (`GET /_local/sts/assume-role`).
    assume_calls: sts::AssumeCalls,
    faults: faults::Faults,
    /// sso-admin's asynchronous requests and scripted failures (`/_local/sso`).
    sso: sso::Sso,
    outbox_seen: Mutex<HashMap<String, u64>>,
    forward: reqwest::Client,
    invoke: reqwest::Client,
    log: Log,
}

/// The running router; dropping it (or [`Router::shutdown`]) stops both servers.
pub struct Router {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    /// The AWS endpoint port.
    pub aws_port: u16,
    /// The API Gateway emulation port.
    pub api_port: u16,
}

#[derive(Clone, Copy, Debug)]
enum Side {
    Aws,
    Api,
}

impl Router {
    /// Starts serving on two already-bound listeners (bound by the caller so that a taken port is
    /// reported before anything starts, and so that moto can be told the AWS port).
    pub fn start(
        aws: std::net::TcpListener,
        api: std::net::TcpListener,
        moto_url: String,
        cloudtrail: CloudTrail,
        log: Log,
    ) -> Result<Router> {
        let aws_port = aws
            .local_addr()
            .map_err(|err| Error::io("router address", err))?
            .port();
        let api_port = api
            .local_addr()
            .map_err(|err| Error::io("router address", err))?
            .port();
        let client = |read_timeout: Option<Duration>| {
            let mut builder = reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(60))
                .pool_idle_timeout(Duration::from_secs(30));
            if let Some(read_timeout) = read_timeout {
                builder = builder.read_timeout(read_timeout);
            }
            builder.build().map_err(|err| Error::Http {
                context: "building the router's HTTP client".into(),
                message: err.to_string(),
            })
        };
        let shared = Arc::new(Shared {
            moto_url,
            lambda_url: RwLock::new(None),
            config: RwLock::new(RouterConfig::default()),
            users: RwLock::new(HashMap::new()),
            cloudtrail,
            accounts: Mutex::new(HashMap::new()),
            assume_calls: sts::AssumeCalls::default(),
            faults: faults::Faults::default(),
            sso: sso::Sso::default(),
            outbox_seen: Mutex::new(HashMap::new()),
            forward: client(None)?,
            invoke: client(Some(INVOKE_READ_TIMEOUT))?,
            log,
        });
        let mut tasks = Vec::new();
        for (listener, side) in [(aws, Side::Aws), (api, Side::Api)] {
            listener
                .set_nonblocking(true)
                .map_err(|err| Error::io("router listener", err))?;
            let listener =
                TcpListener::from_std(listener).map_err(|err| Error::io("router listener", err))?;
            tasks.push(tokio::spawn(serve(listener, shared.clone(), side)));
        }
        shared.log.line(format!(
            "router up: aws port {aws_port}, api port {api_port}"
        ));
        Ok(Router {
            shared,
            tasks,
            aws_port,
            api_port,
        })
    }

    /// Installs what the deployer learnt: routes, users, function renames, API id.
    pub fn configure(&self, config: RouterConfig) {
        let users = config
            .users
            .iter()
            .map(|u| (u.access_key_id.clone(), u.clone()))
            .collect();
        *self.shared.users.write().expect("router lock") = users;
        *self.shared.config.write().expect("router lock") = config;
    }

    /// Points Lambda invokes at `cargo lambda watch` (`http://127.0.0.1:<port>`).
    pub fn set_lambda_url(&self, url: String) {
        *self.shared.lambda_url.write().expect("router lock") = Some(url);
    }

    /// How many CloudTrail records are indexed.
    pub fn cloudtrail_records(&self) -> usize {
        self.shared.cloudtrail.len()
    }

    /// Invokes `binary` every `every`, as EventBridge would for a `Schedule` event.
    pub fn schedule(&mut self, binary: String, every: Duration, input: Option<String>) {
        let shared = self.shared.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            // The first tick fires at once; a schedule first fires one period after creation.
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let payload = match &input {
                    Some(input) => input.clone(),
                    None => scheduled_event(&binary).to_string(),
                };
                match shared.call_function(&binary, Bytes::from(payload)).await {
                    Ok((status, body)) => shared.log.line(format!(
                        "schedule {binary}: HTTP {status} {}",
                        String::from_utf8_lossy(&body)
                    )),
                    Err(message) => shared.log.line(format!("schedule {binary}: {message}")),
                }
            }
        }));
    }

    /// Polls a DynamoDB stream and invokes its function with each batch, as the Lambda
    /// service does for an event source mapping ([`streams`]).
    pub fn stream(&mut self, mapping: crate::cloudformation::StreamMapping) {
        let shared = self.shared.clone();
        self.shared.log.line(format!(
            "polling {} for {} (batches of {})",
            mapping.stream_arn, mapping.binary, mapping.batch_size
        ));
        self.tasks
            .push(tokio::spawn(streams::poll(shared, mapping)));
    }

    /// Stops both servers and the scheduler.
    pub fn shutdown(&mut self) {
        for task in self.tasks.drain(..) {
            task.abort();
        }
        self.shared.log.line("router stopped");
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// An EventBridge scheduled event for the reconciler.
fn scheduled_event(binary: &str) -> Value {
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "version": "0",
        "id": uuid(),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": now,
        "region": REGION,
        "resources": [format!("arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/trailgate-{binary}-schedule")],
        "detail": {},
    })
}

/// A random UUID v4 string.
pub fn uuid() -> String {
    let n: u128 = rand::random();
    let n = (n & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, side: Side) {
    // Connections live in the set so that aborting this task ends them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |request| {
                            let shared = shared.clone();
                            async move {
                                let response = match side {
                                    Side::Aws => handle_aws(&shared, request).await,
                                    Side::Api => handle_api(&shared, peer, request).await,
                                };
                                Ok::<_, Infallible>(response)
                            }
                        });
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(err) => {
                    shared.log.line(format!("accept failed: {err}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> http::Response<Body> {
    let mut response = http::Response::new(full(body));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(*name),
            HeaderValue::try_from(*value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    response
}

fn json_response(status: u16, value: &Value) -> http::Response<Body> {
    respond(
        status,
        &[("content-type", "application/json")],
        value.to_string(),
    )
}

async fn read_body(body: Incoming, limit: usize) -> std::result::Result<Bytes, String> {
    Limited::new(body, limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|err| err.to_string())
}

impl Shared {
    /// Invokes a function binary on `cargo lambda watch`; the emulator's status and body.
    async fn call_function(
        &self,
        binary: &str,
        payload: Bytes,
    ) -> std::result::Result<(u16, Bytes), String> {
        let base = self
            .lambda_url
            .read()
            .expect("router lock")
            .clone()
            .ok_or_else(|| "the Lambda emulator (cargo lambda watch) is not running".to_owned())?;
        let started = Instant::now();
        let url = format!("{base}/2015-03-31/functions/{binary}/invocations");
        let response = self
            .invoke
            .post(&url)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .map_err(|err| format!("the Lambda emulator at {base} is not reachable: {err}"))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|err| format!("reading {binary}'s reply: {err}"))?;
        self.log.line(format!(
            "invoke {binary}: HTTP {status} in {} ms",
            started.elapsed().as_millis()
        ));
        if status >= 300 {
            self.log.line(format!(
                "invoke {binary} reply: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        Ok((status, body))
    }
}

async fn handle_aws(
    shared: &Arc<Shared>,
    request: http::Request<Incoming>,
) -> http::Response<Body> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::POST {
        if let Some(function) = lambda::invoke_target(&path) {
            let function = function.to_owned();
            return invoke(shared, request, &function).await;
        }
        let target = request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        if target.is_some_and(cloudtrail::is_lookup_events) {
            return lookup_events(shared, request).await;
        }
        // Ahead of the fault-injection path below, which only buffers while faults are armed:
        // these calls are always buffered, and apply the injected faults themselves.
        if let Some(target) = target.filter(|t| t.starts_with("SWBExternalService.")) {
            let target = target.to_owned();
            return sso_admin(shared, request, &target).await;
        }
        if path == "/_local/cloudtrail" {
            return seed_cloudtrail(shared, request).await;
        }
    }
    if path == "/_local/health" {
        return json_response(200, &json!({"ok": true}));
    }
    if path == "/_local/faults" {
        return manage_faults(shared, request).await;
    }
    if path == "/_local/sso" || path == "/_local/sso/fail" {
        return sso::manage(shared, request, &path).await;
    }
    if path == "/_local/sts/assume-role" {
        return json_response(200, &json!({"calls": shared.assume_calls.list()}));
    }
    let to_sts = request.method() == Method::POST
        && request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(sigv4::credential_service)
            .is_some_and(|service| service == "sts");
    if shared.faults.armed() || to_sts {
        // Only while faults are armed, and for STS, are bodies buffered: the query protocols
        // name the action in the body, and an AssumeRole call is recorded as sent.
        let (parts, body) = request.into_parts();
        let body = match read_body(body, 64 * 1024 * 1024).await {
            Ok(body) => body,
            Err(message) => return json_response(400, &json!({"message": message})),
        };
        let assume_role = to_sts && shared.assume_calls.record(&body);
        if let Some(fault) = shared.faults.take(&parts.headers, parts.uri.query(), &body) {
            shared.log.line(format!(
                "fault injected: {} {} -> {} {}",
                parts.method, path, fault.status, fault.code
            ));
            return respond(
                fault.status,
                &[
                    ("content-type", fault.content_type),
                    ("x-amzn-ErrorType", &fault.code),
                ],
                fault.body,
            );
        }
        if assume_role {
            return forward_assume_role(shared, parts, body).await;
        }
        return forward_parts(shared, parts, reqwest::Body::from(body)).await;
    }
    forward_to_moto(shared, request).await
}

/// Answers an injected fault (and logs it under `what`).
fn injected(shared: &Shared, what: &str, fault: faults::FaultReply) -> http::Response<Body> {
    shared.log.line(format!(
        "fault injected: {what} -> {} {}",
        fault.status, fault.code
    ));
    respond(
        fault.status,
        &[
            ("content-type", fault.content_type),
            ("x-amzn-ErrorType", &fault.code),
        ],
        fault.body,
    )
}

/// `POST /_local/faults` adds rules, `GET` lists them, `DELETE` removes them (all, or those
/// with the body's `match`).
async fn manage_faults(
    shared: &Arc<Shared>,
    request: http::Request<Incoming>,
) -> http::Response<Body> {
    match *request.method() {
        Method::POST => {
            let body = match read_body(request.into_body(), API_BODY_LIMIT).await {
                Ok(body) => body,
                Err(message) => return json_response(400, &json!({"message": message})),
            };
            let spec: Value = match serde_json::from_slice(&body) {
                Ok(spec) => spec,
                Err(err) => return json_response(400, &json!({"message": err.to_string()})),
            };
            match shared.faults.add(&spec) {
                Ok(added) => {
                    shared.log.line(format!("fault rules added: {spec}"));
                    json_response(200, &json!({"added": added, "rules": shared.faults.list()}))
                }
                Err(message) => json_response(400, &json!({"message": message})),
            }
        }
        Method::DELETE => {
            let body = read_body(request.into_body(), API_BODY_LIMIT)
                .await
                .unwrap_or_default();
            let matching = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|spec| spec.get("match").and_then(Value::as_str).map(str::to_owned));
            shared.faults.clear(matching.as_deref());
            shared
                .log
                .line(format!("fault rules cleared (match {matching:?})"));
            json_response(200, &json!({"rules": shared.faults.list()}))
        }
        _ => json_response(200, &json!({"rules": shared.faults.list()})),
    }
}

async fn invoke(
    shared: &Arc<Shared>,
    request: http::Request<Incoming>,
    function: &str,
) -> http::Response<Body> {
    let renames = shared.config.read().expect("router lock").renames.clone();
    let binary = lambda::binary_name(function, &renames);
    let invocation_type = request
        .headers()
        .get("x-amz-invocation-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("RequestResponse")
        .to_owned();
    let payload = match read_body(request.into_body(), INVOKE_BODY_LIMIT).await {
        Ok(payload) => payload,
        Err(message) => {
            let reply = lambda::service_error(413, "RequestTooLargeException", "User", &message);
            return respond(
                reply.status,
                &[("x-amzn-ErrorType", "RequestTooLargeException")],
                reply.body,
            );
        }
    };
    match invocation_type.as_str() {
        "DryRun" => return respond(204, &[], Bytes::new()),
        "Event" => {
            // Asynchronous invoke: Lambda queues it and answers 202 at once.
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(message) = shared.call_function(&binary, payload).await {
                    shared.log.line(format!("async invoke {binary}: {message}"));
                }
            });
            return respond(202, &[], Bytes::new());
        }
        _ => {}
    }
    let reply = match shared.call_function(&binary, payload).await {
        Ok((status, body)) => lambda::translate(status, body, &binary),
        Err(message) => {
            shared.log.line(format!("invoke {binary}: {message}"));
            lambda::service_error(502, "ServiceException", "Service", &message)
        }
    };
    let request_id = uuid();
    let mut headers: Vec<(&str, &str)> = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    headers.push(("x-amzn-RequestId", &request_id));
    respond(reply.status, &headers, reply.body)
}

async fn lookup_events(
    shared: &Arc<Shared>,
    request: http::Request<Incoming>,
) -> http::Response<Body> {
    let region = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::credential_region)
        .unwrap_or_else(|| REGION.to_owned());
    let content_type = [("content-type", "application/x-amz-json-1.1")];
    let (parts, body) = request.into_parts();
    let body = match read_body(body, API_BODY_LIMIT).await {
        Ok(body) => body,
        Err(message) => {
            return json_response(
                400,
                &json!({"__type": "SerializationException", "message": message}),
            );
        }
    };
    // LookupEvents is served here rather than by moto, so injected faults are applied here too:
    // tests make the context step's CloudTrail source fail deterministically this way.
    if let Some(fault) = shared.faults.take(&parts.headers, parts.uri.query(), &body) {
        return injected(shared, "LookupEvents", fault);
    }
    let error = |error: cloudtrail::ApiError| {
        let mut response = respond(400, &content_type, error.body().to_string());
        if let Ok(kind) = HeaderValue::from_str(error.kind) {
            response.headers_mut().insert("x-amzn-ErrorType", kind);
        }
        response
    };
    let account = caller_account(shared, &parts.headers).await;
    if let Err(throttled) = shared.cloudtrail.admit(&account, &region, Instant::now()) {
        shared
            .log
            .line(format!("LookupEvents throttled in {account} {region}"));
        return error(throttled);
    }
    let query: Value = match serde_json::from_slice(&body) {
        Ok(query) => query,
        Err(err) => {
            return error(cloudtrail::ApiError {
                kind: "SerializationException",
                message: err.to_string(),
            });
        }
    };
    match shared.cloudtrail.lookup(&account, &query) {
        Ok(page) => {
            shared.log.line(format!(
                "LookupEvents {account} {region}: {} events",
                page["Events"].as_array().map_or(0, Vec::len)
            ));
            respond(200, &content_type, page.to_string())
        }
        Err(failure) => error(failure),
    }
}

/// The account a signed request acts in, as moto sees its access key: a key from AssumeRole
/// acts in the assumed role's account, any other key in the default (hub) account. moto is asked
/// once per key (it does not check signatures, so the caller's own Authorization header names
/// the key), and the answer cached; when moto cannot say, the hub's.
async fn caller_account(shared: &Arc<Shared>, headers: &HeaderMap) -> String {
    let Some(key) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(sigv4::credential_access_key)
    else {
        return ACCOUNT_ID.to_owned();
    };
    if let Some(account) = shared.accounts.lock().expect("accounts lock").get(&key) {
        return account.clone();
    }
    let asked = shared
        .forward
        .post(format!("{}/", shared.moto_url))
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            http::header::AUTHORIZATION,
            format!(
                "AWS4-HMAC-SHA256 Credential={key}/20260101/{REGION}/sts/aws4_request, \
                 SignedHeaders=host, Signature=0"
            ),
        )
        .body("Action=GetCallerIdentity&Version=2011-06-15")
        .send()
        .await;
    let account = match asked {
        Ok(reply) => reply.text().await.ok().and_then(|xml| {
            let start = xml.find("<Account>")? + "<Account>".len();
            let end = start + xml[start..].find("</Account>")?;
            Some(xml[start..end].trim().to_owned())
        }),
        Err(_) => None,
    };
    match account {
        Some(account) => {
            shared
                .accounts
                .lock()
                .expect("accounts lock")
                .insert(key, account.clone());
            account
        }
        None => ACCOUNT_ID.to_owned(),
    }
}

async fn seed_cloudtrail(
    shared: &Arc<Shared>,
    request: http::Request<Incoming>,
) -> http::Response<Body> {
    let body = match read_body(request.into_body(), 64 * 1024 * 1024).await {
        Ok(body) => body,
        Err(message) => return json_response(400, &json!({"message": message})),
    };
    let document: Value = match serde_json::from_slice(&body) {
        Ok(document) => document,
        Err(err) => return json_response(400, &json!({"message": err.to_string()})),
    };
    match shared.cloudtrail.add(&document) {
        Ok(added) => {
            shared
                .log
                .line(format!("seeded {added} CloudTrail records"));
            json_response(
                200,
                &json!({"added": added, "total": shared.cloudtrail.len()}),
            )
        }
        Err(message) => json_response(400, &json!({"message": message})),
    }
}

/// Headers that belong to one connection and must not be forwarded.
fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn strip_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    let names: Vec<_> = out.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for name in names {
        out.remove(name);
    }
    out
}

async fn forward_to_moto(
    shared: &Arc<Shared>,
    request: http::Request<Incoming>,
) -> http::Response<Body> {
    let (parts, body) = request.into_parts();
    forward_parts(shared, parts, reqwest::Body::wrap(body)).await
}

/// Every sso-admin call: permission-set ARNs translated to moto's form on the way in and back
/// on the way out ([`sso::to_moto_arns`]), the asynchronous actions emulated ([`sso::handle`]),
/// the rest forwarded.
async fn sso_admin(
    shared: &Arc<Shared>,
    request: http::Request<Incoming>,
    target: &str,
) -> http::Response<Body> {
    let action = sso::intercepted(target);
    let operation = target.rsplit('.').next().unwrap_or_default();
    let (mut parts, body) = request.into_parts();
    let raw = match read_body(body, API_BODY_LIMIT).await {
        Ok(body) => body,
        Err(message) => {
            return json_response(
                400,
                &json!({"__type": "SerializationException", "message": message}),
            );
        }
    };
    let params: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let resource = params
        .get("ResourceArn")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match operation {
        "ListTagsForResource" => return json_response(200, &shared.sso.tags_of(resource)),
        "TagResource" => {
            shared.sso.tag(resource, &sso::tags_in(&params));
            return json_response(200, &json!({}));
        }
        _ => {}
    }
    let body = sso::to_moto_arns(&raw);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let response = match action {
        Some(action) => sso::handle(shared, parts, body, action).await,
        None => forward_parts(shared, parts, reqwest::Body::from(body)).await,
    };
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return json_response(
                502,
                &json!({"__type": "ServiceUnavailable", "message": format!("reading moto's answer: {err}")}),
            );
        }
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let bytes = sso::to_aws_arns(&bytes);
    if operation == "CreatePermissionSet" && parts.status.is_success() {
        let created: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if let Some(arn) = created["PermissionSet"]["PermissionSetArn"].as_str() {
            shared.sso.tag(arn, &sso::tags_in(&params));
        }
    }
    http::Response::from_parts(parts, full(bytes))
}

/// Forwards an `AssumeRole` call and reads its answer: a session of an Identity Center role
/// becomes a caller the API accepts ([`sts::identity_center_session`]).
async fn forward_assume_role(
    shared: &Arc<Shared>,
    parts: http::request::Parts,
    body: Bytes,
) -> http::Response<Body> {
    let (parts, body) = forward_parts(shared, parts, reqwest::Body::from(body))
        .await
        .into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return json_response(
                502,
                &json!({"__type": "ServiceUnavailable", "message": format!("reading moto's answer: {err}")}),
            );
        }
    };
    if parts.status.is_success()
        && let Some(session) = sts::identity_center_session(&String::from_utf8_lossy(&bytes))
    {
        shared.log.line(format!(
            "Identity Center session {} accepted by the API ({})",
            session.arn, session.access_key_id
        ));
        let mut users = shared.users.write().expect("router lock");
        users.insert(session.access_key_id.clone(), session);
    }
    http::Response::from_parts(parts, full(bytes))
}

async fn forward_parts(
    shared: &Arc<Shared>,
    parts: http::request::Parts,
    body: reqwest::Body,
) -> http::Response<Body> {
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{path_and_query}", shared.moto_url);
    // The Host header stays as sent, so moto builds URLs (queue URLs and the like) that point
    // back at the router. Bodies stream both ways.
    let forwarded = shared
        .forward
        .request(parts.method.clone(), &url)
        .headers(strip_hop_by_hop(&parts.headers))
        .body(body)
        .send()
        .await;
    match forwarded {
        Ok(response) => {
            let response: http::Response<reqwest::Body> = response.into();
            let (mut parts, body) = response.into_parts();
            parts.headers = strip_hop_by_hop(&parts.headers);
            http::Response::from_parts(parts, body.map_err(|err| Box::new(err) as BoxError).boxed())
        }
        Err(err) => {
            shared
                .log
                .line(format!("forward {} {path_and_query}: {err}", parts.method));
            json_response(
                502,
                &json!({"__type": "ServiceUnavailable", "message": format!("moto is not reachable: {err}")}),
            )
        }
    }
}

async fn handle_api(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    request: http::Request<Incoming>,
) -> http::Response<Body> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET && (path == "/_outbox" || path == "/_outbox.json") {
        return outbox(shared, path.ends_with(".json")).await;
    }
    let Some((route, path_parameters, resource_path)) = find_route(shared, request.method(), &path)
    else {
        return missing_token();
    };
    let api_id = shared.config.read().expect("router lock").api_id.clone();
    let (parts, body) = request.into_parts();
    let body = match read_body(body, API_BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => return json_response(413, &json!({"message": "Request Too Long"})),
    };
    let now = OffsetDateTime::now_utc();
    let identity = if route.iam_auth {
        match authenticate(shared, &parts, &body, now) {
            Ok(identity) => Some(identity),
            Err(rejection) => return rejected(shared, &parts.method, &path, rejection),
        }
    } else {
        None
    };
    let request_id = uuid();
    let event = apigw::proxy_event(&apigw::ProxyInput {
        route: &route,
        path_parameters: &path_parameters,
        method: parts.method.as_str(),
        path: &resource_path,
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body: &body,
        identity: identity.as_ref(),
        source_ip: &peer.ip().to_string(),
        request_id: &request_id,
        api_id: &api_id,
        now,
    });
    let log_prefix = format!("api {} {path}", parts.method);
    match call_route(shared, &route, &event, &log_prefix).await {
        Some(reply) => api_response(reply, &request_id),
        None => internal_error(&request_id),
    }
}

/// API Gateway's answer to a path outside the stage or without a route.
fn missing_token() -> http::Response<Body> {
    respond(
        403,
        &[
            ("content-type", "application/json"),
            ("x-amzn-ErrorType", "MissingAuthenticationTokenException"),
        ],
        json!({"message": "Missing Authentication Token"}).to_string(),
    )
}

/// The route of a request under the stage, its path parameters and its path without the stage.
fn find_route(
    shared: &Shared,
    method: &Method,
    path: &str,
) -> Option<(ApiRoute, BTreeMap<String, String>, String)> {
    let stage_prefix = format!("/{}", apigw::STAGE);
    let resource_path = match path.strip_prefix(&stage_prefix) {
        Some("") => "/".to_owned(),
        Some(rest) if rest.starts_with('/') => rest.to_owned(),
        _ => return None,
    };
    let config = shared.config.read().expect("router lock");
    let (route, parameters) = apigw::match_route(&config.routes, method.as_str(), &resource_path)?;
    Some((route.clone(), parameters, resource_path))
}

/// SigV4 (`AWS_IAM`) against the local users.
fn authenticate(
    shared: &Shared,
    parts: &http::request::Parts,
    body: &[u8],
    now: OffsetDateTime,
) -> std::result::Result<sigv4::CallerIdentity, sigv4::Rejection> {
    let received = sigv4::ReceivedRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query(),
        headers: &parts.headers,
        body,
    };
    let users = shared.users.read().expect("router lock").clone();
    sigv4::verify(&received, &users, now)
}

/// A SigV4 rejection, answered (and logged) as API Gateway does.
fn rejected(
    shared: &Shared,
    method: &Method,
    path: &str,
    rejection: sigv4::Rejection,
) -> http::Response<Body> {
    let kind = match rejection {
        sigv4::Rejection::MissingToken => "MissingAuthenticationTokenException",
        sigv4::Rejection::InvalidKey => "UnrecognizedClientException",
        sigv4::Rejection::Malformed(_) => "IncompleteSignatureException",
        _ => "InvalidSignatureException",
    };
    shared.log.line(format!("api {method} {path}: 403 {kind}"));
    respond(
        403,
        &[
            ("content-type", "application/json"),
            ("x-amzn-ErrorType", kind),
        ],
        json!({"message": rejection.message()}).to_string(),
    )
}

/// Calls the route's function with the proxy event; `None` (logged) when it failed or its
/// answer is not a proxy response, which API Gateway turns into a 502.
async fn call_route(
    shared: &Shared,
    route: &ApiRoute,
    event: &Value,
    log_prefix: &str,
) -> Option<apigw::ProxyReply> {
    let reply = match shared
        .call_function(&route.binary, Bytes::from(event.to_string()))
        .await
    {
        Ok((200, payload)) => match apigw::proxy_reply(&payload) {
            Some(reply) => reply,
            None => {
                shared.log.line(format!(
                    "{log_prefix}: malformed Lambda proxy response from {}: {}",
                    route.binary,
                    String::from_utf8_lossy(&payload)
                ));
                return None;
            }
        },
        Ok((status, payload)) => {
            shared.log.line(format!(
                "{log_prefix}: {} failed (HTTP {status}): {}",
                route.binary,
                String::from_utf8_lossy(&payload)
            ));
            return None;
        }
        Err(message) => {
            shared.log.line(format!("{log_prefix}: {message}"));
            return None;
        }
    };
    shared.log.line(format!(
        "{log_prefix} -> {}: {}",
        route.binary, reply.status
    ));
    Some(reply)
}

fn internal_error(request_id: &str) -> http::Response<Body> {
    respond(
        502,
        &[
            ("content-type", "application/json"),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", "InternalServerErrorException"),
        ],
        json!({"message": "Internal server error"}).to_string(),
    )
}

/// The function's proxy reply as the HTTP response, with API Gateway's request id.
fn api_response(reply: apigw::ProxyReply, request_id: &str) -> http::Response<Body> {
    let mut response = http::Response::new(full(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in &reply.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}

async fn outbox(shared: &Arc<Shared>, as_json: bool) -> http::Response<Body> {
    let url = format!("{}/moto-api/data.json", shared.moto_url);
    let data: Value = match shared.forward.get(&url).send().await {
        Ok(response) => match response.bytes().await.map(|b| serde_json::from_slice(&b)) {
            Ok(Ok(data)) => data,
            Ok(Err(err)) => {
                return json_response(502, &json!({"message": format!("moto's data.json: {err}")}));
            }
            Err(err) => {
                return json_response(502, &json!({"message": format!("moto's data.json: {err}")}));
            }
        },
        Err(err) => {
            return json_response(
                502,
                &json!({"message": format!("moto is not reachable: {err}")}),
            );
        }
    };
    let messages = {
        let mut seen = shared.outbox_seen.lock().expect("router lock");
        outbox::newest_first(outbox::messages_from_moto(&data), &mut seen)
    };
    if as_json {
        let value = serde_json::to_value(&messages).unwrap_or(Value::Null);
        return json_response(200, &value);
    }
    respond(
        200,
        &[("content-type", "text/html; charset=utf-8")],
        outbox::render_html(&messages),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_look_like_v4() {
        let id = uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, uuid());
    }

    #[test]
    fn scheduled_events_look_like_eventbridge() {
        let event = scheduled_event("trailgate-reconcile");
        assert_eq!(event["detail-type"], "Scheduled Event");
        assert_eq!(event["source"], "aws.events");
        assert!(event["time"].as_str().unwrap().ends_with('Z'));
    }
}
