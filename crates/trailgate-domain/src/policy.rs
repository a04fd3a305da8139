//! The IAM documents trailgate writes: the per-request deny on a target role, and the session
//! policy attached to every credential it vends.
//!
//! Both are built here as plain JSON so that their shape is unit-tested and linted, and the
//! adapters only move strings.

use crate::error::{Error, Result};
use serde_json::{Value, json};

/// The inline policy on each target role that holds trailgate's revocations.
pub const REVOCATIONS_POLICY_NAME: &str = "trailgate-revocations";
/// The session tag every vended session carries.
pub const REQUEST_TAG: &str = "trailgate-request";
/// The tag that marks a role as grantable by trailgate.
pub const MANAGED_TAG: &str = "trailgate:managed";
/// IAM's limit on the total size of a role's inline policies (characters, whitespace excluded).
pub const INLINE_POLICY_LIMIT: usize = 10_240;

/// The session policy for credentials of a grant that ends at `expires_at` (RFC 3339 `Z`).
///
/// A session policy can only narrow the role's permissions: the `Allow *` keeps the role's
/// own policies in force, and the `Deny` makes the session useless after `expires_at` even
/// though STS will not issue sessions shorter than 15 minutes.
pub fn session_policy(expires_at: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "KeepRolePermissions", "Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Sid": "DenyAfterGrantExpiry", "Effect": "Deny", "Action": "*", "Resource": "*",
             "Condition": {"DateGreaterThan": {"aws:CurrentTime": expires_at}}}
        ]
    })
    .to_string()
}

/// Sid of a request's deny statement: `TG`, the request id without punctuation, `X`, and the
/// unix time after which the statement may be removed. IAM allows only letters and digits in
/// a Sid, and encoding the removal time there lets garbage collection work from the policy alone.
pub fn revocation_sid(request_id: &str, remove_after: i64) -> String {
    let id: String = request_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("TG{id}X{remove_after}")
}

fn parse_sid(sid: &str) -> Option<(&str, i64)> {
    let rest = sid.strip_prefix("TG")?;
    let (id, after) = rest.rsplit_once('X')?;
    Some((id, after.parse().ok()?))
}

/// The deny statement for one request: every action, for sessions tagged with the request id.
fn revocation_statement(request_id: &str, remove_after: i64) -> Value {
    json!({
        "Sid": revocation_sid(request_id, remove_after),
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"StringEquals": {format!("aws:PrincipalTag/{REQUEST_TAG}"): request_id}}
    })
}

/// Adds (or keeps) the deny for `request_id` to the current revocations document and drops
/// statements whose removal time has passed. `remove_after` must be no earlier than the end of
/// the last credential the request could have been vended (its `expires_at`: the session policy
/// denies everything after it).
///
/// Returns the new minified document.
pub fn add_revocation(
    current: Option<&str>,
    request_id: &str,
    remove_after: i64,
    now: i64,
) -> Result<String> {
    let mut statements = current_statements(current)?;
    let id_key: String = request_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    statements.retain(|statement| {
        match statement
            .get("Sid")
            .and_then(Value::as_str)
            .and_then(parse_sid)
        {
            // Replace this request's own statement (it is re-added below).
            Some((id, _)) if id == id_key => false,
            Some((_, after)) => after > now,
            // Statements trailgate did not write are kept untouched.
            None => true,
        }
    });
    statements.push(revocation_statement(request_id, remove_after));
    let document = json!({"Version": "2012-10-17", "Statement": statements}).to_string();
    if document.len() > INLINE_POLICY_LIMIT {
        return Err(Error::internal(format!(
            "the `{REVOCATIONS_POLICY_NAME}` policy would be {} characters, over IAM's {INLINE_POLICY_LIMIT}",
            document.len()
        )));
    }
    Ok(document)
}

/// Drops expired statements. Returns `None` when nothing changed, `Some(None)` when the policy
/// is now empty (delete it), `Some(Some(doc))` for a smaller document.
pub fn collect_garbage(current: &str, now: i64) -> Result<Option<Option<String>>> {
    let statements = current_statements(Some(current))?;
    let before = statements.len();
    let kept: Vec<Value> = statements
        .into_iter()
        .filter(|statement| {
            match statement
                .get("Sid")
                .and_then(Value::as_str)
                .and_then(parse_sid)
            {
                Some((_, after)) => after > now,
                None => true,
            }
        })
        .collect();
    if kept.len() == before {
        return Ok(None);
    }
    if kept.is_empty() {
        return Ok(Some(None));
    }
    Ok(Some(Some(
        json!({"Version": "2012-10-17", "Statement": kept}).to_string(),
    )))
}

/// Whether the document denies sessions tagged with `request_id` (the read-back check).
pub fn denies_request(document: &str, request_id: &str) -> bool {
    let Ok(statements) = current_statements(Some(document)) else {
        return false;
    };
    let key = format!("aws:PrincipalTag/{REQUEST_TAG}");
    statements.iter().any(|statement| {
        statement.get("Effect").and_then(Value::as_str) == Some("Deny")
            && statement.get("Action").and_then(Value::as_str) == Some("*")
            && statement
                .pointer("/Condition/StringEquals")
                .and_then(|c| c.get(&key))
                .and_then(Value::as_str)
                == Some(request_id)
    })
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

    #[test]
    fn a_revocation_denies_only_its_request() {
        let document = add_revocation(None, "r-abc", 2000, 1000).unwrap();
        assert!(denies_request(&document, "r-abc"));
        assert!(!denies_request(&document, "r-abd"));
        let both = add_revocation(Some(&document), "r-abd", 2000, 1000).unwrap();
        assert!(denies_request(&both, "r-abc") && denies_request(&both, "r-abd"));
    }

    #[test]
    fn revoking_twice_keeps_one_statement() {
        let once = add_revocation(None, "r-abc", 2000, 1000).unwrap();
        let twice = add_revocation(Some(&once), "r-abc", 2000, 1000).unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn expired_statements_are_collected_and_foreign_ones_kept() {
        let foreign = r#"{"Version":"2012-10-17","Statement":[{"Sid":"Manual","Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#;
        let first = add_revocation(Some(foreign), "r-old", 1500, 1000).unwrap();
        let second = add_revocation(Some(&first), "r-new", 3000, 2000).unwrap();
        assert!(!denies_request(&second, "r-old"));
        assert!(denies_request(&second, "r-new"));
        assert!(second.contains("Manual"));
        assert_eq!(collect_garbage(&second, 2500).unwrap(), None);
        let collected = collect_garbage(&second, 3500).unwrap().unwrap().unwrap();
        assert!(!denies_request(&collected, "r-new") && collected.contains("Manual"));
        let only_ours = add_revocation(None, "r-x", 10, 0).unwrap();
        assert_eq!(collect_garbage(&only_ours, 11).unwrap(), Some(None));
    }

    #[test]
    fn the_policy_never_outgrows_iams_limit() {
        // Many live revocations on one role: the add that would pass the limit fails loudly
        // instead of writing a policy IAM would reject.
        let mut document: Option<String> = None;
        let mut added = 0;
        for n in 0..200 {
            match add_revocation(document.as_deref(), &format!("r-{n:026}"), 10_000, 0) {
                Ok(next) => {
                    added += 1;
                    document = Some(next);
                }
                Err(err) => {
                    assert!(err.message.contains("over IAM's"), "{err}");
                    break;
                }
            }
        }
        assert!(added > 20 && added < 200, "{added}");
        assert!(document.unwrap().len() <= INLINE_POLICY_LIMIT);
        // Once they expire, the same role takes new revocations again.
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
    }
}
