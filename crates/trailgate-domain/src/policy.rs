//! The IAM documents trailgate writes: the revocations policy on a target role (its statements,
//! their removal times, the capacity it leaves), and the session policy attached to every
//! credential it vends.
//!
//! Both are built here as plain JSON so that their shape is unit-tested, linted and evaluated
//! by an IAM simulator (`tests/tests/iam_eval.rs`), and the adapters only move strings.

use crate::error::{Error, Result};
use crate::time::format_utc;
use ::time::OffsetDateTime;
use serde_json::{Value, json};

/// The inline policy on each target role that holds trailgate's revocations.
pub const REVOCATIONS_POLICY_NAME: &str = "trailgate-revocations";
/// The session tag every vended session carries.
pub const REQUEST_TAG: &str = "trailgate-request";
/// The tag that marks a role as grantable by trailgate.
pub const MANAGED_TAG: &str = "trailgate:managed";
/// The managed policy member/template.yaml creates in each member account, which a member
/// account's target role must have attached (the hub's own roles carry the hub stack's
/// `TrailgateProtectionPolicy`).
pub const MEMBER_PROTECTION_POLICY_NAME: &str = "trailgate-member-protection";
/// The member stack's agent role's default name (`AgentRoleName` in both templates).
pub const AGENT_ROLE_NAME: &str = "trailgate-agent";
/// The session tag the member stack's agent requires for writing or deleting
/// `trailgate-revocations` (member/template.yaml): only the hub's revoke and reconcile roles may
/// set it, so no other hub function can undo a revocation in a member account.
pub const AGENT_WRITE_TAG: (&str, &str) = ("trailgate-agent", "write");
/// IAM's limit on the total size of a role's inline policies (characters, whitespace excluded).
pub const INLINE_POLICY_LIMIT: usize = 10_240;
/// The share of a role's inline-policy room, in percent, past which the reconciler alerts: the
/// role is about to need the role-wide fallback (see [`add_revocation`]).
pub const CAPACITY_WARNING_PERCENT: usize = 80;
/// Revoked requests whose removal times fall in one window of this many seconds share one
/// statement, removable at the window's end: a request's id stays on the role at most this much
/// longer than it must, and the statements' overhead is paid once per window, not per request.
pub const REMOVAL_WINDOW_SECONDS: i64 = 600;

/// The actions a granted session may never call: assuming another role (role chaining) would
/// give a session that carries neither the request tag nor this session policy, so neither the
/// revocation deny nor the expiry reaches it (ARCHITECTURE.md "Role chaining").
pub const CHAINING_ACTIONS: [&str; 4] = [
    "sts:AssumeRole",
    "sts:AssumeRoleWithSAML",
    "sts:AssumeRoleWithWebIdentity",
    "sts:AssumeRoot",
];

/// The session policy for credentials of a grant that ends at `expires_at` (RFC 3339 `Z`).
///
/// A session policy can only narrow the role's permissions: the `Allow *` keeps the role's
/// own policies in force, the first `Deny` makes the session useless after `expires_at` even
/// though STS will not issue sessions shorter than 15 minutes, and the second keeps the session
/// from escaping both by role chaining.
pub fn session_policy(expires_at: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "KeepRolePermissions", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Sid": "DenyAfterGrantExpiry", "Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"DateGreaterThan": {"aws:CurrentTime": expires_at}}},
            {"Sid": "DenyRoleChaining", "Effect": "Deny", "Action": CHAINING_ACTIONS, "Resource": "*"}
        ]
    })
    .to_string()
}

/// Sid of the statement holding the requests removable at `remove_after`: `TGX` and the unix
/// time. IAM allows only letters and digits in a Sid, and the removal time there lets garbage
/// collection work from the policy alone.
fn window_sid(remove_after: i64) -> String {
    format!("TGX{remove_after}")
}

/// Sid of a one-request statement, the format written before statements were shared:
/// `TG`, the request id without punctuation, `X`, the removal time. Still read, never written.
pub fn revocation_sid(request_id: &str, remove_after: i64) -> String {
    format!("TG{}X{remove_after}", id_key(request_id))
}

/// Sid of the role-wide fallback: `TGBEFORE`, the issue time it denies before, `X`, removal.
fn fallback_sid(issued_before: i64, remove_after: i64) -> String {
    format!("TGBEFORE{issued_before}X{remove_after}")
}

fn id_key(request_id: &str) -> String {
    request_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// What a statement of the revocations policy is, read from its Sid.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// Requests sharing a removal window (`TGX<after>`).
    Window(i64),
    /// One request, in the earlier format (`TG<id>X<after>`).
    OneRequest(String, i64),
    /// Every trailgate session issued before the first time (`TGBEFORE<t>X<after>`).
    Fallback(i64, i64),
    /// Not trailgate's: kept untouched.
    Foreign,
}

impl Kind {
    fn of(statement: &Value) -> Kind {
        let Some(sid) = statement.get("Sid").and_then(Value::as_str) else {
            return Kind::Foreign;
        };
        let Some((head, after)) = sid
            .strip_prefix("TG")
            .and_then(|rest| rest.rsplit_once('X'))
        else {
            return Kind::Foreign;
        };
        let Ok(after) = after.parse::<i64>() else {
            return Kind::Foreign;
        };
        if head.is_empty() {
            return Kind::Window(after);
        }
        // Request ids start with a lowercase `r`, so no request's key reads as `BEFORE…`.
        if let Some(Ok(before)) = head.strip_prefix("BEFORE").map(str::parse::<i64>) {
            return Kind::Fallback(before, after);
        }
        Kind::OneRequest(head.to_owned(), after)
    }

    /// When trailgate may remove the statement; `None` for foreign ones.
    fn remove_after(&self) -> Option<i64> {
        match self {
            Kind::Window(after) | Kind::OneRequest(_, after) | Kind::Fallback(_, after) => {
                Some(*after)
            }
            Kind::Foreign => None,
        }
    }
}

fn tag_key() -> String {
    format!("aws:PrincipalTag/{REQUEST_TAG}")
}

/// The request ids a window or one-request statement denies, if it has the shape trailgate
/// writes: `Deny`, every action and resource, `StringEquals` on the request tag.
fn denied_ids(statement: &Value) -> Option<Vec<&str>> {
    if statement.get("Effect").and_then(Value::as_str) != Some("Deny")
        || statement.get("Action").and_then(Value::as_str) != Some("*")
        || statement.get("Resource").and_then(Value::as_str) != Some("*")
    {
        return None;
    }
    let condition = statement.get("Condition")?.as_object()?;
    if condition.len() != 1 {
        return None;
    }
    let keys = condition.get("StringEquals")?.as_object()?;
    if keys.len() != 1 {
        return None;
    }
    one_or_many(keys.get(&tag_key()))
}

fn window_statement(remove_after: i64, ids: &[String]) -> Value {
    json!({
        "Sid": window_sid(remove_after),
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringEquals": {tag_key(): ids}}
    })
}

fn fallback_statement(issued_before: i64, remove_after: i64) -> Result<Value> {
    let before = OffsetDateTime::from_unix_timestamp(issued_before)
        .map_err(|err| Error::internal(format!("bad fallback time {issued_before}: {err}")))?;
    Ok(json!({
        "Sid": fallback_sid(issued_before, remove_after),
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "DateLessThan": {"aws:TokenIssueTime": format_utc(before)},
            "Null": {tag_key(): "false"}
        }
    }))
}

/// The end of the removal window `remove_after` falls in.
fn window_end(remove_after: i64) -> i64 {
    remove_after.div_euclid(REMOVAL_WINDOW_SECONDS) * REMOVAL_WINDOW_SECONDS
        + if remove_after.rem_euclid(REMOVAL_WINDOW_SECONDS) == 0 {
            0
        } else {
            REMOVAL_WINDOW_SECONDS
        }
}

/// The size IAM counts for a policy document: its characters, whitespace excluded.
pub fn policy_size(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}

/// The revocations document [`add_revocation`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The new minified document.
    pub document: String,
    /// Whether the request's own id did not fit and the role-wide fallback was written instead.
    pub fallback: bool,
}

/// Adds (or keeps) the deny for `request_id` to the current revocations document and drops
/// statements whose removal time has passed. `remove_after` must be no earlier than the end of
/// the last credential the request could have been vended (its `expires_at`: the session policy
/// denies everything after it). `room` is what IAM leaves for this document: the limit less the
/// role's other inline policies.
///
/// The id joins the statement of its removal window. When the document would not fit in
/// `room`, every trailgate statement is replaced by one role-wide fallback that denies every
/// trailgate session issued before `now`: it covers each revoked request (their sessions were
/// all vended before they were revoked, and a vend that races a revoke withholds what it got),
/// and it also ends the other grants' current sessions, which must fetch new credentials. A
/// revoke never fails for want of room; the reconciler alerts on a role near the limit or
/// holding a fallback.
pub fn add_revocation(
    current: Option<&str>,
    request_id: &str,
    remove_after: i64,
    now: i64,
    room: usize,
) -> Result<Revocation> {
    let mut statements = current_statements(current)?;
    let key = id_key(request_id);
    let window = window_end(remove_after);
    statements.retain(|statement| match Kind::of(statement) {
        // This request's statement in the earlier format is folded into its window.
        Kind::OneRequest(id, _) if id == key => false,
        kind => kind.remove_after().is_none_or(|after| after > now),
    });
    // The id may already sit in another window (a retried revoke with another margin): one
    // place only, so each id is counted once.
    for statement in &mut statements {
        if matches!(Kind::of(statement), Kind::Window(after) if after != window) {
            strip_id(statement, request_id);
        }
    }
    statements.retain(|statement| {
        !matches!(Kind::of(statement), Kind::Window(_))
            || denied_ids(statement).is_some_and(|ids| !ids.is_empty())
    });
    match statements
        .iter_mut()
        .find(|statement| Kind::of(statement) == Kind::Window(window))
    {
        Some(statement) => {
            let mut ids: Vec<String> = denied_ids(statement)
                .unwrap_or_default()
                .into_iter()
                .map(str::to_owned)
                .collect();
            ids.push(request_id.to_owned());
            ids.sort_unstable();
            ids.dedup();
            *statement = window_statement(window, &ids);
        }
        None => statements.push(window_statement(window, &[request_id.to_owned()])),
    }
    let document = document_of(statements.clone());
    if policy_size(&document) <= room {
        return Ok(Revocation {
            document,
            fallback: false,
        });
    }
    // The fallback stays as long as the longest-lived statement it replaces.
    let mut last_removal = window;
    statements.retain(|statement| match Kind::of(statement).remove_after() {
        Some(after) => {
            last_removal = last_removal.max(after);
            false
        }
        None => true,
    });
    statements.push(fallback_statement(now, last_removal)?);
    let document = document_of(statements);
    if policy_size(&document) > room {
        return Err(Error::internal(format!(
            "the role's other inline policies leave {room} characters of IAM's {INLINE_POLICY_LIMIT}: not even the role-wide fallback deny ({} characters) fits",
            policy_size(&document)
        )));
    }
    Ok(Revocation {
        document,
        fallback: true,
    })
}

fn strip_id(statement: &mut Value, request_id: &str) {
    let Some(ids) = denied_ids(statement) else {
        return;
    };
    if !ids.contains(&request_id) {
        return;
    }
    let kept: Vec<String> = ids
        .into_iter()
        .filter(|id| *id != request_id)
        .map(str::to_owned)
        .collect();
    if let Kind::Window(after) = Kind::of(statement) {
        *statement = window_statement(after, &kept);
    }
}

fn document_of(statements: Vec<Value>) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

/// Drops expired statements. Returns `None` when nothing changed, `Some(None)` when the policy
/// is now empty (delete it), `Some(Some(doc))` for a smaller document.
pub fn collect_garbage(current: &str, now: i64) -> Result<Option<Option<String>>> {
    let statements = current_statements(Some(current))?;
    let before = statements.len();
    let kept: Vec<Value> = statements
        .into_iter()
        .filter(|statement| {
            Kind::of(statement)
                .remove_after()
                .is_none_or(|after| after > now)
        })
        .collect();
    if kept.len() == before {
        return Ok(None);
    }
    if kept.is_empty() {
        return Ok(Some(None));
    }
    Ok(Some(Some(document_of(kept))))
}

/// Whether the document names `request_id` in one of trailgate's deny statements.
pub fn denies_request(document: &str, request_id: &str) -> bool {
    let Ok(statements) = current_statements(Some(document)) else {
        return false;
    };
    statements.iter().any(|statement| {
        !matches!(Kind::of(statement), Kind::Foreign | Kind::Fallback(..))
            && denied_ids(statement).is_some_and(|ids| ids.contains(&request_id))
    })
}

/// Whether the document ends every session of a request revoked at `revoked_at` (unix time):
/// it names the request, or a role-wide fallback denies sessions issued before then or later.
/// The revoke's read-back check, and what keeps the reconciler from re-adding requests a
/// fallback already covers.
pub fn covers(document: &str, request_id: &str, revoked_at: i64) -> bool {
    if denies_request(document, request_id) {
        return true;
    }
    let Ok(statements) = current_statements(Some(document)) else {
        return false;
    };
    statements.iter().any(|statement| {
        matches!(Kind::of(statement), Kind::Fallback(before, _) if before >= revoked_at)
            && statement.get("Effect").and_then(Value::as_str) == Some("Deny")
            && statement.get("Action").and_then(Value::as_str) == Some("*")
    })
}

/// What the revocations document holds: live request ids, and the issue time of a role-wide
/// fallback if one is in force (for the reconciler's alert).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// Request ids denied by name.
    pub request_ids: usize,
    /// The fallback's `aws:TokenIssueTime` bound (unix time), if one is present.
    pub fallback_before: Option<i64>,
}

/// Reads what a revocations document holds.
pub fn contents(document: &str) -> Result<Contents> {
    let mut found = Contents::default();
    for statement in current_statements(Some(document))? {
        match Kind::of(&statement) {
            Kind::Window(_) | Kind::OneRequest(..) => {
                found.request_ids += denied_ids(&statement).map_or(0, |ids| ids.len());
            }
            Kind::Fallback(before, _) => {
                found.fallback_before = Some(found.fallback_before.unwrap_or(before).max(before));
            }
            Kind::Foreign => {}
        }
    }
    Ok(found)
}

/// The actions a target role's trust policy may allow, and only to the credentials function.
pub const BROKER_ACTIONS: [&str; 3] = ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"];

/// Checks the trust half of the grantable-role contract (DESIGN.md decision 1): every `Allow`
/// in `trust_policy` names only `broker_role_arn` as principal, allows only [`BROKER_ACTIONS`],
/// and the statement allowing `sts:AssumeRole` requires a source identity. `Deny` statements
/// only narrow who may assume the role, so they are accepted as they are.
///
/// Returns the reason the policy fails, as a sentence for the `NotGrantable` message.
pub fn check_trust_policy(trust_policy: &str, broker_role_arn: &str) -> Result<(), String> {
    let document: Value = serde_json::from_str(trust_policy)
        .map_err(|err| format!("its trust policy is not JSON: {err}"))?;
    let statements = match document.get("Statement") {
        Some(Value::Array(statements)) => statements.clone(),
        Some(statement @ Value::Object(_)) => vec![statement.clone()],
        _ => return Err("its trust policy has no statements".into()),
    };
    let mut allows_assume = false;
    for (n, statement) in statements.iter().enumerate() {
        let sid = statement.get("Sid").and_then(Value::as_str).map_or_else(
            || format!("statement {n}"),
            |sid| format!("statement `{sid}`"),
        );
        match statement.get("Effect").and_then(Value::as_str) {
            Some("Deny") => continue,
            Some("Allow") => {}
            other => return Err(format!("{sid} has an unknown Effect {other:?}")),
        }
        // The inverted forms allow everyone but the listed principals or actions.
        for inverted in ["NotPrincipal", "NotAction"] {
            if statement.get(inverted).is_some() {
                return Err(format!("{sid} uses `{inverted}`"));
            }
        }
        let principals = statement
            .get("Principal")
            .ok_or_else(|| format!("{sid} has no Principal"))?;
        let only_broker = principals.as_object().is_some_and(|map| {
            map.len() == 1
                && one_or_many(map.get("AWS")).is_some_and(|arns| arns == [broker_role_arn])
        });
        if !only_broker {
            return Err(format!(
                "{sid} trusts {principals}, not only the credentials function's role `{broker_role_arn}`"
            ));
        }
        let actions = one_or_many(statement.get("Action"))
            .ok_or_else(|| format!("{sid} has no Action list"))?;
        if let Some(extra) = actions.iter().find(|action| {
            !BROKER_ACTIONS
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(action))
        }) {
            return Err(format!(
                "{sid} allows `{extra}`; only {} are allowed",
                BROKER_ACTIONS.join(", ")
            ));
        }
        if actions
            .iter()
            .any(|a| a.eq_ignore_ascii_case("sts:AssumeRole"))
        {
            if !requires_source_identity(statement) {
                return Err(format!(
                    "{sid} allows sts:AssumeRole without a condition requiring a source identity (e.g. `\"Null\": {{\"sts:SourceIdentity\": \"false\"}}`)"
                ));
            }
            allows_assume = true;
        }
    }
    if !allows_assume {
        return Err(format!(
            "its trust policy does not let the credentials function's role `{broker_role_arn}` assume it"
        ));
    }
    Ok(())
}

/// A string or a list of strings, as IAM allows for principals and actions.
fn one_or_many(value: Option<&Value>) -> Option<Vec<&str>> {
    match value? {
        Value::String(one) => Some(vec![one.as_str()]),
        Value::Array(many) => many.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// Whether a statement's condition makes `sts:SourceIdentity` mandatory: `Null` false, or a
/// string comparison on it without `IfExists` (which would pass when it is absent).
fn requires_source_identity(statement: &Value) -> bool {
    let Some(conditions) = statement.get("Condition").and_then(Value::as_object) else {
        return false;
    };
    conditions.iter().any(|(operator, keys)| {
        let Some(value) = keys
            .as_object()
            .and_then(|keys| {
                keys.iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case("sts:SourceIdentity"))
            })
            .map(|(_, value)| value)
        else {
            return false;
        };
        if operator == "Null" {
            return value.as_str() == Some("false") || value == &Value::Bool(false);
        }
        operator.starts_with("String")
            && !operator.ends_with("IfExists")
            && !operator.starts_with("StringNot")
    })
}

fn current_statements(current: Option<&str>) -> Result<Vec<Value>> {
    let Some(text) = current else {
        return Ok(Vec::new());
    };
    let document: Value = serde_json::from_str(text).map_err(|err| {
        Error::internal(format!(
            "the `{REVOCATIONS_POLICY_NAME}` policy is not JSON: {err}"
        ))
    })?;
    match document.get("Statement") {
        Some(Value::Array(statements)) => Ok(statements.clone()),
        Some(statement @ Value::Object(_)) => Ok(vec![statement.clone()]),
        None => Ok(Vec::new()),
        Some(_) => Err(Error::internal(format!(
            "the `{REVOCATIONS_POLICY_NAME}` policy has a malformed Statement"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOM: usize = INLINE_POLICY_LIMIT;

    fn add(current: Option<&str>, id: &str, remove_after: i64, now: i64) -> String {
        let revocation = add_revocation(current, id, remove_after, now, ROOM).unwrap();
        assert!(!revocation.fallback);
        revocation.document
    }

    #[test]
    fn a_revocation_denies_only_its_request() {
        let document = add(None, "r-abc", 2000, 1000);
        assert!(denies_request(&document, "r-abc"));
        assert!(!denies_request(&document, "r-abd"));
        let both = add(Some(&document), "r-abd", 2000, 1000);
        assert!(denies_request(&both, "r-abc") && denies_request(&both, "r-abd"));
    }

    #[test]
    fn requests_of_one_removal_window_share_a_statement() {
        let first = add(None, "r-abc", 1201, 0);
        let second = add(Some(&first), "r-abd", 1500, 0);
        let third = add(Some(&second), "r-abe", 1900, 0);
        let statements = current_statements(Some(&third)).unwrap();
        // 1201 and 1500 fall in the window closing at 1800; 1900 in the next one.
        assert_eq!(statements.len(), 2, "{third}");
        assert_eq!(statements[0]["Sid"], "TGX1800");
        assert_eq!(
            statements[0]["Condition"]["StringEquals"]["aws:PrincipalTag/trailgate-request"],
            json!(["r-abc", "r-abd"])
        );
        assert_eq!(statements[1]["Sid"], "TGX2400");
        assert_eq!(window_end(1800), 1800);
        // A window never ends before a removal time in it.
        for t in [1, 599, 600, 601, 12_345] {
            assert!(window_end(t) >= t && window_end(t) - t < REMOVAL_WINDOW_SECONDS);
        }
    }

    #[test]
    fn revoking_twice_keeps_one_entry() {
        let once = add(None, "r-abc", 2000, 1000);
        let twice = add(Some(&once), "r-abc", 2000, 1000);
        assert_eq!(once, twice);
        // A retry with a later removal time moves the id rather than copying it.
        let moved = add(Some(&once), "r-abc", 5000, 1000);
        assert_eq!(moved.matches("r-abc").count(), 1, "{moved}");
        assert!(moved.contains("TGX5400") && !moved.contains("TGX2400"));
    }

    #[test]
    fn expired_statements_are_collected_and_foreign_ones_kept() {
        let foreign = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Manual","Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#;
        let first = add(Some(foreign), "r-old", 1500, 1000);
        let second = add(Some(&first), "r-new", 3000, 2000);
        assert!(!denies_request(&second, "r-old"));
        assert!(denies_request(&second, "r-new"));
        assert!(second.contains("Manual"));
        assert_eq!(collect_garbage(&second, 2500).unwrap(), None);
        let collected = collect_garbage(&second, 3500).unwrap().unwrap().unwrap();
        assert!(!denies_request(&collected, "r-new") && collected.contains("Manual"));
        let only_ours = add(None, "r-x", 10, 0);
        assert_eq!(collect_garbage(&only_ours, 600).unwrap(), Some(None));
    }

    #[test]
    fn statements_in_the_one_request_format_are_read_and_folded_in() {
        // Roles revoked before statements were shared hold one statement per request.
        let legacy = json!({"Version": "2012-10-17", "Statement": [
            {"Sid": revocation_sid("r-old", 5000), "Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"StringEquals": {"aws:PrincipalTag/trailgate-request": "r-old"}}},
            {"Sid": revocation_sid("r-gone", 900), "Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"StringEquals": {"aws:PrincipalTag/trailgate-request": "r-gone"}}}]})
        .to_string();
        assert!(denies_request(&legacy, "r-old"));
        assert_eq!(contents(&legacy).unwrap().request_ids, 2);
        let next = add(Some(&legacy), "r-new", 5000, 1000);
        assert!(denies_request(&next, "r-old") && denies_request(&next, "r-new"));
        assert!(!next.contains("r-gone"), "expired statement kept: {next}");
        let again = add(Some(&legacy), "r-old", 5000, 1000);
        assert_eq!(again.matches("r-old").count(), 1, "{again}");
        let collected = collect_garbage(&legacy, 1000).unwrap().unwrap().unwrap();
        assert!(denies_request(&collected, "r-old") && !collected.contains("r-gone"));
    }

    #[test]
    fn hundreds_of_live_revocations_fit_on_one_role() {
        // One statement per request filled the limit at about 50; shared statements hold
        // hundreds of ids (31 characters each).
        let mut document: Option<String> = None;
        for n in 0..300 {
            document = Some(add(
                document.as_deref(),
                &format!("r-{n:026}"),
                10_000 + n,
                0,
            ));
        }
        let document = document.unwrap();
        assert!(
            policy_size(&document) <= INLINE_POLICY_LIMIT,
            "{}",
            document.len()
        );
        assert_eq!(contents(&document).unwrap().request_ids, 300);
    }

    #[test]
    fn a_full_role_gets_the_role_wide_fallback_instead_of_a_failed_revoke() {
        let room = 2_000;
        let mut document: Option<String> = None;
        let mut fallback_at = None;
        for n in 0..100 {
            let id = format!("r-{n:026}");
            let revocation =
                add_revocation(document.as_deref(), &id, 10_000 + 100 * n, 5_000, room).unwrap();
            assert!(policy_size(&revocation.document) <= room);
            assert!(covers(&revocation.document, &id, 5_000), "{n}");
            if revocation.fallback {
                fallback_at = Some(n);
                document = Some(revocation.document);
                break;
            }
            document = Some(revocation.document);
        }
        let n = fallback_at.expect("the small room never filled");
        assert!(n > 30, "{n}");
        let document = document.unwrap();
        let found = contents(&document).unwrap();
        assert_eq!(
            found,
            Contents {
                request_ids: 0,
                fallback_before: Some(5_000)
            }
        );
        // It covers every request revoked until its issue bound, not later ones, and lasts
        // as long as the longest-lived statement it replaced.
        assert!(covers(&document, "r-00000000000000000000000000", 4_000));
        assert!(!covers(&document, "r-later", 5_001));
        let last_window = window_end(10_000 + 100 * n);
        assert_eq!(collect_garbage(&document, last_window - 1).unwrap(), None);
        assert_eq!(collect_garbage(&document, last_window).unwrap(), Some(None));
        // The next revoke on the role is by name again.
        let next = add_revocation(Some(&document), "r-later", 20_000, 6_000, room).unwrap();
        assert!(!next.fallback && denies_request(&next.document, "r-later"));
        // Other inline policies that leave no room at all are an error, not a silent no-op.
        let err = add_revocation(None, "r-x", 10, 0, 100).unwrap_err();
        assert!(
            err.message.contains("not even the role-wide fallback"),
            "{err}"
        );
    }

    const BROKER: &str = "arn:aws:iam::123456789012:role/trailgate-CredentialsFunctionRole-X";

    fn trust(statement: Value) -> String {
        json!({"Version": "2012-10-17", "Statement": [statement]}).to_string()
    }

    fn good_statement() -> Value {
        json!({"Sid": "TrailgateBrokerOnly", "Effect": "Allow", "Principal": {"AWS": BROKER},
               "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"],
               "Condition": {"Null": {"sts:SourceIdentity": "false", "aws:RequestTag/trailgate-request": "false"}}})
    }

    #[test]
    fn a_trust_policy_naming_only_the_broker_with_a_source_identity_is_accepted() {
        assert_eq!(check_trust_policy(&trust(good_statement()), BROKER), Ok(()));
        let mut string_like = good_statement();
        string_like["Condition"] = json!({"StringLike": {"sts:SourceIdentity": "*"}});
        assert_eq!(check_trust_policy(&trust(string_like), BROKER), Ok(()));
        // A deny only narrows who may assume the role.
        let with_deny = json!({"Version": "2012-10-17", "Statement": [good_statement(),
            {"Effect": "Deny", "Principal": "*", "Action": "sts:AssumeRole",
             "Condition": {"StringEquals": {"sts:SourceIdentity": "mallory"}}}]})
        .to_string();
        assert_eq!(check_trust_policy(&with_deny, BROKER), Ok(()));
    }

    #[test]
    fn bad_trust_policies_are_refused_with_the_reason() {
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut statement = good_statement();
            f(&mut statement);
            trust(statement)
        };
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "not JSON"),
            (
                json!({"Version": "2012-10-17"}).to_string(),
                "no statements",
            ),
            (
                edit(&|s| s["Principal"] = json!({"AWS": "arn:aws:iam::123456789012:root"})),
                "not only the credentials",
            ),
            (
                edit(&|s| {
                    s["Principal"] = json!({"AWS": [BROKER, "arn:aws:iam::123456789012:user/eve"]})
                }),
                "not only the credentials",
            ),
            (
                edit(&|s| s["Principal"] = json!("*")),
                "not only the credentials",
            ),
            (
                edit(&|s| s["Principal"] = json!({"AWS": BROKER, "Service": "ec2.amazonaws.com"})),
                "not only the credentials",
            ),
            (edit(&|s| s["Action"] = json!("sts:*")), "allows `sts:*`"),
            (
                edit(&|s| s["Action"] = json!(["sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"])),
                "allows `sts:AssumeRoleWithWebIdentity`",
            ),
            (
                edit(&|s| {
                    s.as_object_mut().unwrap().remove("Condition");
                }),
                "without a condition",
            ),
            (
                edit(&|s| {
                    s["Condition"] = json!({"StringLikeIfExists": {"sts:SourceIdentity": "*"}})
                }),
                "without a condition",
            ),
            (
                edit(&|s| s["Condition"] = json!({"Null": {"sts:SourceIdentity": "true"}})),
                "without a condition",
            ),
            (
                edit(&|s| s["Action"] = json!("sts:TagSession")),
                "does not let",
            ),
            (
                edit(&|s| {
                    s.as_object_mut().unwrap().remove("Principal");
                    s["NotPrincipal"] = json!({"AWS": BROKER});
                }),
                "`NotPrincipal`",
            ),
        ];
        for (policy, expect) in cases {
            let err = check_trust_policy(&policy, BROKER).expect_err(&policy);
            assert!(err.contains(expect), "{policy}: {err}");
        }
    }

    #[test]
    fn session_policy_denies_after_expiry() {
        let policy: Value = serde_json::from_str(&session_policy("2026-11-21T12:00:00Z")).unwrap();
        assert_eq!(
            policy
                .pointer("/Statement/1/Condition/DateGreaterThan/aws:CurrentTime")
                .unwrap(),
            "2026-11-21T12:00:00Z"
        );
        let chaining = &policy["Statement"][2];
        assert_eq!(chaining["Effect"], "Deny");
        assert_eq!(chaining["Action"], json!(CHAINING_ACTIONS));
    }
}
