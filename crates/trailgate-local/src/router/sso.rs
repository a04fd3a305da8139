//! IAM Identity Center (`sso-admin`) as AWS runs it, in front of moto: account assignments and
//! permission-set provisioning are asynchronous on AWS, and moto completes them at once (and has
//! no `DescribePermissionSetProvisioningStatus` at all), so an adapter's polling loop, its
//! handling of a `FAILED` request and its idempotent re-grant would never run locally.
//!
//! The router therefore owns six actions (JSON 1.1, `X-Amz-Target: SWBExternalService.<Action>`):
//! - `CreateAccountAssignment`, `DeleteAccountAssignment`, `ProvisionPermissionSet` answer
//!   `Status: IN_PROGRESS` and are remembered here; moto does the work (unless the request is
//!   scripted to fail, which leaves moto untouched).
//! - `DescribeAccountAssignmentCreationStatus`, `DescribeAccountAssignmentDeletionStatus`,
//!   `DescribePermissionSetProvisioningStatus` answer `IN_PROGRESS` for the first
//!   `in_progress_polls` polls of a request id (default 1, taken when the request starts), then
//!   `SUCCEEDED`, or `FAILED` with its `FailureReason`.
//! - Creating an assignment that exists (same instance, account, permission set, principal type
//!   and id) succeeds without a second copy, as on AWS; moto would append a duplicate.
//!
//! Control endpoints on the AWS port: `POST /_local/sso {"in_progress_polls": N}`, `GET
//! /_local/sso` (the setting, the fail rules and the requests), `POST /_local/sso/fail
//! {"action", "count", "reason", "match"}` (the next `count` calls of `action` whose body
//! contains `match` end `FAILED` with `reason`) and `DELETE /_local/sso/fail`.
//! Injected AWS errors (`/_local/faults`, service `sso`) are applied before any of this.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use http::Method;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::{API_BODY_LIMIT, Body, Shared, forward_parts, full, json_response, read_body, respond};

/// The `X-Amz-Target` prefix of sso-admin.
const TARGET_PREFIX: &str = "SWBExternalService.";
/// sso-admin's protocol.
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Most requests remembered; the oldest go first (a poll of a forgotten assignment request
/// falls through to moto, which answers `SUCCEEDED` or `ResourceNotFoundException`).
const MAX_REQUESTS: usize = 10_000;
/// Most `ListAccountAssignments` pages read for the idempotency check; a guard against a
/// `NextToken` that never ends.
const MAX_LIST_PAGES: usize = 100;
/// The `FailureReason` of a fail rule that names none.
const DEFAULT_REASON: &str = "injected by the local stack (POST /_local/sso/fail)";

/// An sso-admin action the router answers itself (or rewrites).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `CreateAccountAssignment`, `DeleteAccountAssignment` or `ProvisionPermissionSet`.
    Start(Kind),
    /// The matching `Describe…Status`.
    Describe(Kind),
}

/// The three kinds of asynchronous request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Creation,
    Deletion,
    Provisioning,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Creation, Kind::Deletion, Kind::Provisioning];

    /// The action that starts a request of this kind (what fail rules name).
    pub fn action(self) -> &'static str {
        match self {
            Kind::Creation => "CreateAccountAssignment",
            Kind::Deletion => "DeleteAccountAssignment",
            Kind::Provisioning => "ProvisionPermissionSet",
        }
    }

    fn describe_action(self) -> &'static str {
        match self {
            Kind::Creation => "DescribeAccountAssignmentCreationStatus",
            Kind::Deletion => "DescribeAccountAssignmentDeletionStatus",
            Kind::Provisioning => "DescribePermissionSetProvisioningStatus",
        }
    }

    /// The member of the answer that holds the status object.
    fn status_key(self) -> &'static str {
        match self {
            Kind::Creation => "AccountAssignmentCreationStatus",
            Kind::Deletion => "AccountAssignmentDeletionStatus",
            Kind::Provisioning => "PermissionSetProvisioningStatus",
        }
    }

    /// The Describe call's request-id parameter.
    fn request_id_param(self) -> &'static str {
        match self {
            Kind::Creation => "AccountAssignmentCreationRequestId",
            Kind::Deletion => "AccountAssignmentDeletionRequestId",
            Kind::Provisioning => "ProvisionPermissionSetRequestId",
        }
    }

    fn from_action(action: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.action() == action)
    }
}

/// The action of an sso-admin `X-Amz-Target` the router intercepts; `None` for the rest, which
/// stream to moto.
pub fn intercepted(target: &str) -> Option<Action> {
    let operation = target.strip_prefix(TARGET_PREFIX)?;
    Kind::ALL.into_iter().find_map(|kind| {
        if operation == kind.action() {
            Some(Action::Start(kind))
        } else if operation == kind.describe_action() {
            Some(Action::Describe(kind))
        } else {
            None
        }
    })
}

#[derive(Debug, Clone)]
struct FailRule {
    kind: Kind,
    reason: String,
    matching: Option<String>,
    remaining: u64,
    failed: u64,
}

#[derive(Debug, Clone)]
struct Request {
    kind: Kind,
    instance_arn: String,
    /// The status object without `Status` and `FailureReason` (those depend on the polls).
    status: Map<String, Value>,
    /// `Some(reason)` when the request ends `FAILED`.
    failure: Option<String>,
    /// How many polls answer `IN_PROGRESS` (the setting when the request started).
    in_progress_polls: u64,
    polls: u64,
}

impl Request {
    fn request_id(&self) -> &str {
        self.status
            .get("RequestId")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The status the last answer gave: `IN_PROGRESS` until a poll has seen the end.
    fn current_status(&self) -> &'static str {
        if self.polls <= self.in_progress_polls {
            "IN_PROGRESS"
        } else if self.failure.is_some() {
            "FAILED"
        } else {
            "SUCCEEDED"
        }
    }

    fn answer(&self) -> Value {
        let mut status = self.status.clone();
        let current = self.current_status();
        status.insert("Status".into(), current.into());
        if let (Some(reason), "FAILED") = (&self.failure, current) {
            status.insert("FailureReason".into(), reason.clone().into());
        }
        Value::Object(status)
    }
}

#[derive(Debug)]
struct State {
    in_progress_polls: u64,
    rules: Vec<FailRule>,
    requests: VecDeque<Request>,
}

/// The asynchrony setting, the fail rules and the requests; shared by every connection of the
/// AWS port.
#[derive(Debug)]
pub struct Sso {
    state: Mutex<State>,
    /// Resource ARN (AWS's form) → tags: moto keeps a permission set's tags but answers no
    /// `ListTagsForResource`, so the router remembers what `CreatePermissionSet` and
    /// `TagResource` set.
    tags: Mutex<std::collections::BTreeMap<String, Vec<(String, String)>>>,
}

impl Sso {
    /// Remembers tags given to `arn`, replacing earlier values of the same keys.
    pub fn tag(&self, arn: &str, tags: &[(String, String)]) {
        let mut all = self.tags.lock().expect("sso tags lock");
        let held = all.entry(arn.to_owned()).or_default();
        for (key, value) in tags {
            held.retain(|(k, _)| k != key);
            held.push((key.clone(), value.clone()));
        }
    }

    /// The tags of `arn`, as `ListTagsForResource` answers them.
    pub fn tags_of(&self, arn: &str) -> Value {
        let all = self.tags.lock().expect("sso tags lock");
        let tags: Vec<Value> = all
            .get(arn)
            .into_iter()
            .flatten()
            .map(|(key, value)| json!({"Key": key, "Value": value}))
            .collect();
        json!({"Tags": tags})
    }
}

/// The `Tags` list of an sso-admin request (`[{"Key", "Value"}]`).
pub fn tags_in(params: &Value) -> Vec<(String, String)> {
    params
        .get("Tags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tag| {
            Some((
                tag.get("Key")?.as_str()?.to_owned(),
                tag.get("Value")?.as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

impl Default for Sso {
    fn default() -> Sso {
        Sso {
            state: Mutex::new(State {
                in_progress_polls: 1,
                rules: Vec::new(),
                requests: VecDeque::new(),
            }),
            tags: Mutex::default(),
        }
    }
}

impl Sso {
    /// How many polls of a request started from now on answer `IN_PROGRESS`.
    pub fn set_in_progress_polls(&self, polls: u64) {
        self.state.lock().expect("sso lock").in_progress_polls = polls;
    }

    /// Adds a fail rule (or a list of them) from `POST /_local/sso/fail`'s body.
    pub fn add_fail_rules(&self, spec: &Value) -> Result<usize, String> {
        let specs = match spec {
            Value::Array(many) => many.clone(),
            one => vec![one.clone()],
        };
        let mut parsed = Vec::new();
        for spec in &specs {
            let kind = spec
                .get("action")
                .and_then(Value::as_str)
                .and_then(Kind::from_action)
                .ok_or_else(|| {
                    format!(
                        "fail rule needs `action` CreateAccountAssignment, \
                         DeleteAccountAssignment or ProvisionPermissionSet: {spec}"
                    )
                })?;
            let remaining = spec
                .get("count")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("fail rule needs a number `count`: {spec}"))?;
            let text = |name: &str| match spec.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(format!("fail rule's `{name}` must be a string: {spec}")),
            };
            parsed.push(FailRule {
                kind,
                reason: text("reason")?.unwrap_or_else(|| DEFAULT_REASON.to_owned()),
                matching: text("match")?,
                remaining,
                failed: 0,
            });
        }
        let added = parsed.len();
        self.state.lock().expect("sso lock").rules.extend(parsed);
        Ok(added)
    }

    /// Removes every fail rule.
    pub fn clear_fail_rules(&self) {
        self.state.lock().expect("sso lock").rules.clear();
    }

    /// The `FailureReason` this call is scripted to end with, if a rule matches it (and counts
    /// it).
    pub fn take_failure(&self, kind: Kind, body: &str) -> Option<String> {
        let mut state = self.state.lock().expect("sso lock");
        let rule = state.rules.iter_mut().find(|rule| {
            rule.remaining > 0
                && rule.kind == kind
                && rule.matching.as_deref().is_none_or(|m| body.contains(m))
        })?;
        rule.remaining -= 1;
        rule.failed += 1;
        Some(rule.reason.clone())
    }

    /// Remembers a request that has just started and gives the status object to answer with
    /// (`IN_PROGRESS`). `status` is what the Describe calls will show; its `RequestId` is set
    /// to `request_id`.
    pub fn start(
        &self,
        kind: Kind,
        instance_arn: &str,
        request_id: &str,
        mut status: Map<String, Value>,
        failure: Option<String>,
    ) -> Value {
        status.insert("RequestId".into(), request_id.into());
        let mut state = self.state.lock().expect("sso lock");
        let request = Request {
            kind,
            instance_arn: instance_arn.to_owned(),
            status,
            failure,
            in_progress_polls: state.in_progress_polls,
            polls: 0,
        };
        let mut answer = request.answer();
        // The start's answer is IN_PROGRESS whatever the setting: AWS never answers otherwise.
        answer["Status"] = "IN_PROGRESS".into();
        if let Some(answer) = answer.as_object_mut() {
            answer.remove("FailureReason");
        }
        if state.requests.len() == MAX_REQUESTS {
            state.requests.pop_front();
        }
        state.requests.push_back(request);
        answer
    }

    /// One Describe poll of a request: its status object now, or `None` when no request of that
    /// kind has this id in this instance.
    pub fn poll(&self, kind: Kind, request_id: &str, instance_arn: &str) -> Option<Value> {
        let mut state = self.state.lock().expect("sso lock");
        let request = state.requests.iter_mut().find(|request| {
            request.kind == kind
                && request.request_id() == request_id
                && request.instance_arn == instance_arn
        })?;
        request.polls += 1;
        Some(request.answer())
    }

    /// What `GET /_local/sso` shows.
    pub fn describe(&self) -> Value {
        let state = self.state.lock().expect("sso lock");
        let rules: Vec<Value> = state
            .rules
            .iter()
            .map(|rule| {
                json!({"action": rule.kind.action(), "reason": rule.reason, "match": rule.matching,
                       "remaining": rule.remaining, "failed": rule.failed})
            })
            .collect();
        let requests: Vec<Value> = state
            .requests
            .iter()
            .map(|request| {
                json!({"request_id": request.request_id(), "action": request.kind.action(),
                       "status": request.current_status(), "polls": request.polls,
                       "failure_reason": request.failure})
            })
            .collect();
        json!({"in_progress_polls": state.in_progress_polls, "fail_rules": rules, "requests": requests})
    }
}

/// The status object of a request the router answers without moto (scripted failures, an
/// assignment that already exists): the caller's parameters, as AWS echoes them.
fn status_from_params(kind: Kind, params: &Map<String, Value>, now: i64) -> Map<String, Value> {
    let names: &[&str] = match kind {
        Kind::Creation | Kind::Deletion => &[
            "TargetId",
            "TargetType",
            "PermissionSetArn",
            "PrincipalType",
            "PrincipalId",
        ],
        Kind::Provisioning => &["PermissionSetArn"],
    };
    let mut status: Map<String, Value> = names
        .iter()
        .filter_map(|name| Some(((*name).to_owned(), params.get(*name)?.clone())))
        .collect();
    if kind == Kind::Provisioning
        && let Some(target) = params.get("TargetId")
    {
        status.insert("AccountId".into(), target.clone());
    }
    status.insert("CreatedDate".into(), now.into());
    status
}

/// A string parameter the call must carry; the error is AWS's validation message.
fn required(params: &Map<String, Value>, name: &str) -> Result<String, String> {
    params
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            format!(
                "1 validation error detected: Value null at '{name}' failed to satisfy \
                 constraint: Member must not be null"
            )
        })
}

/// The parameters each kind's start and Describe calls cannot do without.
fn required_params(action: Action) -> &'static [&'static str] {
    match action {
        Action::Start(Kind::Creation | Kind::Deletion) => &[
            "InstanceArn",
            "TargetId",
            "TargetType",
            "PermissionSetArn",
            "PrincipalType",
            "PrincipalId",
        ],
        Action::Start(Kind::Provisioning) => &["InstanceArn", "PermissionSetArn", "TargetType"],
        Action::Describe(kind) => match kind {
            Kind::Creation => &["InstanceArn", "AccountAssignmentCreationRequestId"],
            Kind::Deletion => &["InstanceArn", "AccountAssignmentDeletionRequestId"],
            Kind::Provisioning => &["InstanceArn", "ProvisionPermissionSetRequestId"],
        },
    }
}

fn error(kind: &str, message: &str) -> http::Response<Body> {
    respond(
        400,
        &[("content-type", CONTENT_TYPE), ("x-amzn-ErrorType", kind)],
        json!({"__type": kind, "Message": message}).to_string(),
    )
}

fn answer(kind: Kind, status: Value) -> http::Response<Body> {
    respond(
        200,
        &[("content-type", CONTENT_TYPE)],
        json!({ kind.status_key(): status }).to_string(),
    )
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Serves one intercepted sso-admin call.
pub(super) async fn handle(
    shared: &Arc<Shared>,
    parts: http::request::Parts,
    body: Bytes,
    action: Action,
) -> http::Response<Body> {
    // These calls never reach the generic forwarding path, where injected faults are applied,
    // so they are applied here, before anything else: a test can make CreateAccountAssignment
    // answer ConflictException or ThrottlingException.
    if let Some(fault) = shared.faults.take(&parts.headers, parts.uri.query(), &body) {
        return super::injected(shared, &format!("sso {action:?}"), fault);
    }
    let params = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(params)) => params,
        Ok(_) => return error("SerializationException", "the body must be a JSON object"),
        Err(err) => return error("SerializationException", &err.to_string()),
    };
    for name in required_params(action) {
        if let Err(message) = required(&params, name) {
            return error("ValidationException", &message);
        }
    }
    let instance_arn = required(&params, "InstanceArn").unwrap_or_default();
    match action {
        Action::Describe(kind) => {
            let request_id = required(&params, kind.request_id_param()).unwrap_or_default();
            if let Some(status) = shared.sso.poll(kind, &request_id, &instance_arn) {
                shared.log.line(format!(
                    "sso {}: {request_id} {}",
                    kind.describe_action(),
                    status["Status"]
                ));
                return answer(kind, status);
            }
            if kind == Kind::Provisioning {
                // moto has no such call; AWS's answer to an id it does not know.
                return error(
                    "ResourceNotFoundException",
                    &format!("Provisioning request {request_id} does not exist"),
                );
            }
            // A request from before the router knew it (or forgotten): moto's own answer.
            forward_parts(shared, parts, reqwest::Body::from(body)).await
        }
        Action::Start(kind) => {
            let failure = shared
                .sso
                .take_failure(kind, &String::from_utf8_lossy(&body));
            if let Some(reason) = failure {
                // A scripted failure never reaches moto: a failed creation or provisioning
                // changes nothing, a failed deletion leaves the assignment in place.
                let request_id = super::uuid();
                shared.log.line(format!(
                    "sso {}: {request_id} scripted to fail: {reason}",
                    kind.action()
                ));
                let status = status_from_params(kind, &params, now());
                let status =
                    shared
                        .sso
                        .start(kind, &instance_arn, &request_id, status, Some(reason));
                return answer(kind, status);
            }
            if kind == Kind::Creation && already_assigned(shared, &parts, &params).await {
                let request_id = super::uuid();
                shared.log.line(format!(
                    "sso CreateAccountAssignment: {request_id} already assigned, not forwarded"
                ));
                let status = status_from_params(kind, &params, now());
                let status = shared
                    .sso
                    .start(kind, &instance_arn, &request_id, status, None);
                return answer(kind, status);
            }
            start_in_moto(shared, parts, body, kind, &params, &instance_arn).await
        }
    }
}

/// Forwards a start to moto and turns its completed answer into an `IN_PROGRESS` one; moto's
/// errors (`ResourceNotFoundException` for a deletion of nothing, say) pass through unchanged.
async fn start_in_moto(
    shared: &Arc<Shared>,
    parts: http::request::Parts,
    body: Bytes,
    kind: Kind,
    params: &Map<String, Value>,
    instance_arn: &str,
) -> http::Response<Body> {
    let reply = match call_moto(shared, parts, body).await {
        Ok(reply) => reply,
        Err(response) => return response,
    };
    if reply.0.status != 200 {
        return pass_through(reply);
    }
    let mut status = match serde_json::from_slice::<Value>(&reply.1)
        .ok()
        .and_then(|mut value| value.get_mut(kind.status_key()).map(Value::take))
    {
        Some(Value::Object(status)) => status,
        _ => {
            shared.log.line(format!(
                "sso {}: unexpected answer from moto, passed through: {}",
                kind.action(),
                String::from_utf8_lossy(&reply.1)
            ));
            return pass_through(reply);
        }
    };
    status.remove("Status");
    let request_id = match kind {
        // moto's creation id is fresh, and its own Describe knows it.
        Kind::Creation | Kind::Provisioning => status
            .get("RequestId")
            .and_then(Value::as_str)
            .map_or_else(super::uuid, str::to_owned),
        // moto answers a deletion with the creation's id and date; AWS gives a new request.
        Kind::Deletion => {
            status.insert("CreatedDate".into(), now().into());
            super::uuid()
        }
    };
    // moto names the caller's account; AWS the account provisioned to.
    if kind == Kind::Provisioning
        && let Some(target) = params.get("TargetId")
    {
        status.insert("AccountId".into(), target.clone());
    }
    shared
        .log
        .line(format!("sso {}: {request_id} IN_PROGRESS", kind.action()));
    let status = shared
        .sso
        .start(kind, instance_arn, &request_id, status, None);
    answer(kind, status)
}

/// moto's answer, buffered: its response's parts and body.
type MotoReply = (http::response::Parts, Bytes);

/// Sends a call to moto and reads the whole answer; a 502 response when moto is not there.
async fn call_moto(
    shared: &Arc<Shared>,
    parts: http::request::Parts,
    body: Bytes,
) -> Result<MotoReply, http::Response<Body>> {
    let response = forward_parts(shared, parts, reqwest::Body::from(body)).await;
    let (parts, body) = response.into_parts();
    match body.collect().await {
        Ok(collected) => Ok((parts, collected.to_bytes())),
        Err(err) => Err(json_response(
            502,
            &json!({"__type": "ServiceUnavailable", "message": format!("reading moto's answer: {err}")}),
        )),
    }
}

fn pass_through((parts, body): MotoReply) -> http::Response<Body> {
    http::Response::from_parts(parts, full(body))
}

/// Whether moto already holds this assignment (instance, account, permission set, principal
/// type and id), read with `ListAccountAssignments` under the caller's own headers (moto picks
/// the account from the access key and checks no signature). `false` when moto cannot say:
/// the creation is then forwarded and moto's answer decides.
async fn already_assigned(
    shared: &Arc<Shared>,
    parts: &http::request::Parts,
    params: &Map<String, Value>,
) -> bool {
    let field = |name: &str| params.get(name).cloned().unwrap_or(Value::Null);
    let mut next_token: Option<Value> = None;
    for _ in 0..MAX_LIST_PAGES {
        let mut query = json!({
            "InstanceArn": field("InstanceArn"),
            "AccountId": field("TargetId"),
            "PermissionSetArn": field("PermissionSetArn"),
        });
        if let Some(token) = next_token.take() {
            query["NextToken"] = token;
        }
        let body = Bytes::from(query.to_string());
        let mut list = parts.clone();
        list.headers.insert(
            "x-amz-target",
            http::HeaderValue::from_static("SWBExternalService.ListAccountAssignments"),
        );
        list.headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from(body.len()),
        );
        let page = match call_moto(shared, list, body).await {
            Ok((reply, page)) if reply.status == 200 => serde_json::from_slice::<Value>(&page).ok(),
            _ => None,
        };
        let Some(page) = page else {
            shared
                .log
                .line("sso CreateAccountAssignment: ListAccountAssignments failed, forwarding");
            return false;
        };
        let found = page["AccountAssignments"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|assignment| {
                assignment["PrincipalType"] == field("PrincipalType")
                    && assignment["PrincipalId"] == field("PrincipalId")
            });
        if found {
            return true;
        }
        match page.get("NextToken") {
            Some(token) if !token.is_null() => next_token = Some(token.clone()),
            _ => return false,
        }
    }
    false
}

/// `/_local/sso` (`POST {"in_progress_polls": N}` sets the asynchrony, anything else shows the
/// state) and `/_local/sso/fail` (`POST` adds fail rules, `DELETE` clears them).
pub(super) async fn manage(
    shared: &Arc<Shared>,
    request: http::Request<Incoming>,
    path: &str,
) -> http::Response<Body> {
    let method = request.method().clone();
    if method == Method::DELETE && path == "/_local/sso/fail" {
        shared.sso.clear_fail_rules();
        shared.log.line("sso fail rules cleared");
        return json_response(200, &shared.sso.describe());
    }
    if method != Method::POST {
        return json_response(200, &shared.sso.describe());
    }
    let body = match read_body(request.into_body(), API_BODY_LIMIT).await {
        Ok(body) => body,
        Err(message) => return json_response(400, &json!({"message": message})),
    };
    let spec: Value = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(err) => return json_response(400, &json!({"message": err.to_string()})),
    };
    if path == "/_local/sso/fail" {
        return match shared.sso.add_fail_rules(&spec) {
            Ok(added) => {
                shared.log.line(format!("sso fail rules added: {spec}"));
                let mut state = shared.sso.describe();
                state["added"] = added.into();
                json_response(200, &state)
            }
            Err(message) => json_response(400, &json!({"message": message})),
        };
    }
    match spec.get("in_progress_polls").and_then(Value::as_u64) {
        Some(polls) => {
            shared.sso.set_in_progress_polls(polls);
            shared.log.line(format!("sso in_progress_polls = {polls}"));
            json_response(200, &shared.sso.describe())
        }
        None => json_response(
            400,
            &json!({"message": format!("expected {{\"in_progress_polls\": N}}, got {spec}")}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-1";

    fn params(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn creation_params() -> Map<String, Value> {
        params(json!({
            "InstanceArn": INSTANCE,
            "TargetId": "111111111111",
            "TargetType": "AWS_ACCOUNT",
            "PermissionSetArn": "arn:aws:sso:::permissionSet/ssoins-1/ps-1",
            "PrincipalType": "USER",
            "PrincipalId": "user-alice",
        }))
    }

    #[test]
    fn only_the_six_asynchronous_actions_are_intercepted() {
        assert_eq!(
            intercepted("SWBExternalService.CreateAccountAssignment"),
            Some(Action::Start(Kind::Creation))
        );
        assert_eq!(
            intercepted("SWBExternalService.DescribeAccountAssignmentDeletionStatus"),
            Some(Action::Describe(Kind::Deletion))
        );
        assert_eq!(
            intercepted("SWBExternalService.DescribePermissionSetProvisioningStatus"),
            Some(Action::Describe(Kind::Provisioning))
        );
        assert_eq!(
            intercepted("SWBExternalService.ProvisionPermissionSet"),
            Some(Action::Start(Kind::Provisioning))
        );
        assert_eq!(
            intercepted("SWBExternalService.ListAccountAssignments"),
            None
        );
        assert_eq!(intercepted("SWBExternalService.CreatePermissionSet"), None);
        assert_eq!(intercepted("Other.CreateAccountAssignment"), None);
    }

    #[test]
    fn a_request_is_in_progress_for_the_set_polls_then_succeeds() {
        let sso = Sso::default();
        sso.set_in_progress_polls(2);
        let status = params(json!({"TargetId": "111111111111", "CreatedDate": 5}));
        let started = sso.start(Kind::Creation, INSTANCE, "req-1", status, None);
        assert_eq!(started["Status"], "IN_PROGRESS");
        assert_eq!(started["RequestId"], "req-1");
        assert_eq!(started["TargetId"], "111111111111");
        // A setting changed later does not change a request already running.
        sso.set_in_progress_polls(0);
        let statuses: Vec<Value> = (0..4)
            .map(|_| sso.poll(Kind::Creation, "req-1", INSTANCE).unwrap()["Status"].clone())
            .collect();
        assert_eq!(
            statuses,
            ["IN_PROGRESS", "IN_PROGRESS", "SUCCEEDED", "SUCCEEDED"]
        );
        let last = sso.poll(Kind::Creation, "req-1", INSTANCE).unwrap();
        assert!(last.get("FailureReason").is_none());
        assert_eq!(last["CreatedDate"], 5);
        let state = sso.describe();
        assert_eq!(state["in_progress_polls"], 0);
        assert_eq!(
            state["requests"],
            json!([{"request_id": "req-1", "action": "CreateAccountAssignment",
                    "status": "SUCCEEDED", "polls": 5, "failure_reason": null}])
        );
    }

    #[test]
    fn with_no_in_progress_polls_the_start_is_still_in_progress_and_the_first_poll_ends_it() {
        let sso = Sso::default();
        sso.set_in_progress_polls(0);
        let started = sso.start(
            Kind::Provisioning,
            INSTANCE,
            "p-1",
            Map::new(),
            Some("boom".into()),
        );
        assert_eq!(started["Status"], "IN_PROGRESS");
        assert!(started.get("FailureReason").is_none());
        assert_eq!(sso.describe()["requests"][0]["status"], "IN_PROGRESS");
        let polled = sso.poll(Kind::Provisioning, "p-1", INSTANCE).unwrap();
        assert_eq!(polled["Status"], "FAILED");
        assert_eq!(polled["FailureReason"], "boom");
    }

    #[test]
    fn a_poll_finds_only_its_kind_its_id_and_its_instance() {
        let sso = Sso::default();
        sso.start(Kind::Creation, INSTANCE, "same-id", Map::new(), None);
        assert!(sso.poll(Kind::Deletion, "same-id", INSTANCE).is_none());
        assert!(sso.poll(Kind::Creation, "other-id", INSTANCE).is_none());
        assert!(
            sso.poll(Kind::Creation, "same-id", "arn:aws:sso:::instance/ssoins-2")
                .is_none()
        );
        // The misses counted no poll of the request.
        assert_eq!(sso.describe()["requests"][0]["polls"], 0);
        assert_eq!(
            sso.poll(Kind::Creation, "same-id", INSTANCE).unwrap()["Status"],
            "IN_PROGRESS"
        );
        assert_eq!(
            sso.poll(Kind::Creation, "same-id", INSTANCE).unwrap()["Status"],
            "SUCCEEDED"
        );
    }

    #[test]
    fn fail_rules_fire_for_their_action_and_match_then_run_out() {
        let sso = Sso::default();
        let added = sso
            .add_fail_rules(&json!({"action": "CreateAccountAssignment", "count": 2,
                                    "reason": "no such principal", "match": "user-alice"}))
            .unwrap();
        assert_eq!(added, 1);
        let alice = r#"{"PrincipalId":"user-alice"}"#;
        let bob = r#"{"PrincipalId":"user-bob"}"#;
        assert_eq!(sso.take_failure(Kind::Creation, bob), None);
        assert_eq!(sso.take_failure(Kind::Deletion, alice), None);
        assert_eq!(
            sso.take_failure(Kind::Creation, alice).as_deref(),
            Some("no such principal")
        );
        assert!(sso.take_failure(Kind::Creation, alice).is_some());
        assert_eq!(sso.take_failure(Kind::Creation, alice), None);
        let rules = &sso.describe()["fail_rules"];
        assert_eq!(rules[0]["remaining"], 0);
        assert_eq!(rules[0]["failed"], 2);
        assert_eq!(rules[0]["match"], "user-alice");
    }

    #[test]
    fn fail_rules_are_checked_and_cleared() {
        let sso = Sso::default();
        assert!(
            sso.add_fail_rules(&json!({"action": "CreatePermissionSet", "count": 1}))
                .is_err()
        );
        assert!(
            sso.add_fail_rules(&json!({"action": "DeleteAccountAssignment"}))
                .is_err()
        );
        assert!(
            sso.add_fail_rules(
                &json!({"action": "DeleteAccountAssignment", "count": 1, "match": 3})
            )
            .is_err()
        );
        let added = sso
            .add_fail_rules(&json!([
                {"action": "DeleteAccountAssignment", "count": 1},
                {"action": "ProvisionPermissionSet", "count": 1, "reason": "quota"},
            ]))
            .unwrap();
        assert_eq!(added, 2);
        assert_eq!(
            sso.take_failure(Kind::Deletion, "{}").as_deref(),
            Some(DEFAULT_REASON)
        );
        sso.clear_fail_rules();
        assert_eq!(sso.take_failure(Kind::Provisioning, "{}"), None);
        assert_eq!(sso.describe()["fail_rules"], json!([]));
    }

    #[test]
    fn a_failed_request_shows_its_reason_only_once_it_has_ended() {
        let sso = Sso::default();
        let status = status_from_params(Kind::Deletion, &creation_params(), 1_700_000_000);
        let started = sso.start(
            Kind::Deletion,
            INSTANCE,
            "d-1",
            status,
            Some("access denied".into()),
        );
        assert_eq!(started["Status"], "IN_PROGRESS");
        assert_eq!(started["PrincipalId"], "user-alice");
        let first = sso.poll(Kind::Deletion, "d-1", INSTANCE).unwrap();
        assert_eq!(first["Status"], "IN_PROGRESS");
        assert!(first.get("FailureReason").is_none());
        let second = sso.poll(Kind::Deletion, "d-1", INSTANCE).unwrap();
        assert_eq!(second["Status"], "FAILED");
        assert_eq!(second["FailureReason"], "access denied");
        assert_eq!(second["RequestId"], "d-1");
        let listed = &sso.describe()["requests"][0];
        assert_eq!(listed["status"], "FAILED");
        assert_eq!(listed["failure_reason"], "access denied");
    }

    #[test]
    fn made_up_statuses_echo_the_callers_parameters() {
        let assignment = status_from_params(Kind::Creation, &creation_params(), 42);
        assert_eq!(
            Value::Object(assignment),
            json!({"TargetId": "111111111111", "TargetType": "AWS_ACCOUNT",
                   "PermissionSetArn": "arn:aws:sso:::permissionSet/ssoins-1/ps-1",
                   "PrincipalType": "USER", "PrincipalId": "user-alice", "CreatedDate": 42})
        );
        let provisioning = status_from_params(Kind::Provisioning, &creation_params(), 42);
        assert_eq!(
            Value::Object(provisioning),
            json!({"AccountId": "111111111111",
                   "PermissionSetArn": "arn:aws:sso:::permissionSet/ssoins-1/ps-1",
                   "CreatedDate": 42})
        );
    }

    #[test]
    fn missing_parameters_are_validation_errors() {
        let mut incomplete = creation_params();
        incomplete.remove("PrincipalId");
        let missing: Vec<&str> = required_params(Action::Start(Kind::Creation))
            .iter()
            .copied()
            .filter(|name| required(&incomplete, name).is_err())
            .collect();
        assert_eq!(missing, ["PrincipalId"]);
        let message = required(&incomplete, "PrincipalId").unwrap_err();
        assert!(message.contains("'PrincipalId'"), "{message}");
        assert!(
            required_params(Action::Describe(Kind::Provisioning))
                .contains(&"ProvisionPermissionSetRequestId")
        );
    }

    #[test]
    fn the_oldest_requests_are_forgotten_first() {
        let sso = Sso::default();
        for n in 0..=MAX_REQUESTS {
            sso.start(
                Kind::Creation,
                INSTANCE,
                &format!("r-{n}"),
                Map::new(),
                None,
            );
        }
        assert!(sso.poll(Kind::Creation, "r-0", INSTANCE).is_none());
        assert!(sso.poll(Kind::Creation, "r-1", INSTANCE).is_some());
        assert!(
            sso.poll(Kind::Creation, &format!("r-{MAX_REQUESTS}"), INSTANCE)
                .is_some()
        );
    }
}

/// moto names a permission set `arn:aws:sso:::instance/<instance>/ps-…`; AWS (and the SDK's
/// documented pattern, and trailgate's catalog check) `arn:aws:sso:::permissionSet/<instance>/ps-…`.
/// The router speaks AWS's form to its callers and moto's to moto.
pub(super) fn to_moto_arns(body: &[u8]) -> Bytes {
    Bytes::from(
        String::from_utf8_lossy(body)
            .replace(":sso:::permissionSet/", ":sso:::instance/")
            .into_bytes(),
    )
}

/// [`to_moto_arns`] the other way: every `:sso:::instance/<instance>/ps-` becomes
/// `:sso:::permissionSet/<instance>/ps-`; a bare instance ARN stays as it is.
pub(super) fn to_aws_arns(body: &[u8]) -> Bytes {
    let text = String::from_utf8_lossy(body);
    let marker = ":sso:::instance/";
    let mut out = String::with_capacity(text.len() + 64);
    let mut rest = text.as_ref();
    while let Some(at) = rest.find(marker) {
        let after = &rest[at + marker.len()..];
        let instance_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            .unwrap_or(after.len());
        let is_permission_set = after[instance_len..].starts_with("/ps-");
        out.push_str(&rest[..at]);
        out.push_str(if is_permission_set {
            ":sso:::permissionSet/"
        } else {
            marker
        });
        rest = after;
    }
    out.push_str(rest);
    Bytes::from(out.into_bytes())
}

#[cfg(test)]
mod arn_tests {
    use super::*;

    #[test]
    fn permission_set_arns_are_translated_both_ways_and_instance_arns_kept() {
        let aws = r#"{"InstanceArn":"arn:aws:sso:::instance/ssoins-abcdefgh12345678","PermissionSetArn":"arn:aws:sso:::permissionSet/ssoins-abcdefgh12345678/ps-0123456789abcdef"}"#;
        let moto = to_moto_arns(aws.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&moto),
            r#"{"InstanceArn":"arn:aws:sso:::instance/ssoins-abcdefgh12345678","PermissionSetArn":"arn:aws:sso:::instance/ssoins-abcdefgh12345678/ps-0123456789abcdef"}"#
        );
        assert_eq!(String::from_utf8_lossy(&to_aws_arns(&moto)), aws);
    }
}
