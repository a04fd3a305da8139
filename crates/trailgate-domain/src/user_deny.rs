//! The deny that ends an Identity Center user's live sessions of a permission set, written into
//! the permission set's inline policy (AWS's "Revoke active IAM role sessions created by
//! permission sets"): deleting an account assignment stops new sign-ins, but the sessions
//! already issued live until their own expiry, up to the permission set's session duration.
//!
//! The roles Identity Center provisions (`AWSReservedSSO_*`) cannot be edited through IAM, so
//! the deny travels in the permission set and is provisioned to the account. One statement per
//! (user, account): `Deny *` for sessions of that user (`identitystore:UserId`) in that
//! account (`aws:PrincipalAccount`, because a permission set's inline policy reaches every
//! account it is provisioned to) issued before the revoke (`aws:TokenIssueTime`). Statements
//! trailgate did not write are kept as they are: the inline policy is also the permission
//! set's own.

use crate::error::{Error, Result};
use crate::time::format_utc;
use ::time::OffsetDateTime;
use serde_json::{Value, json};

/// The condition key Identity Center puts on every session it issues.
pub const USER_ID_KEY: &str = "identitystore:UserId";

/// How long past the last session's end a statement stays: 5 minutes of clock skew.
pub const SKEW_SECONDS: i64 = 300;

/// The sid of a user's statement: `TGU`, the user id's letters and digits, the account, `X`,
/// the removal time. Unique per (user, account); the conditions say the rest.
fn user_sid(user_id: &str, account: &str, remove_after: i64) -> String {
    let key: String = user_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    format!("TGU{key}{account}X{remove_after}")
}

/// The sid of the fallback that denies every session issued before a time.
fn fallback_sid(remove_after: i64) -> String {
    format!("TGUALLX{remove_after}")
}

/// When trailgate may remove a statement, if it is one of trailgate's.
fn remove_after(statement: &Value) -> Option<i64> {
    let sid = statement.get("Sid")?.as_str()?;
    let (head, after) = sid.strip_prefix("TGU")?.rsplit_once('X')?;
    (!head.is_empty()).then_some(())?;
    after.parse().ok()
}

fn is_fallback(statement: &Value) -> bool {
    statement
        .get("Sid")
        .and_then(Value::as_str)
        .is_some_and(|sid| sid.starts_with("TGUALLX"))
}

fn condition<'a>(statement: &'a Value, operator: &str, key: &str) -> Option<&'a str> {
    statement
        .get("Condition")?
        .get(operator)?
        .get(key)?
        .as_str()
}

/// The issue time before which a trailgate statement denies sessions, and whose.
fn denied(statement: &Value) -> Option<(Option<(&str, &str)>, i64)> {
    remove_after(statement)?;
    let before = condition(statement, "DateLessThan", "aws:TokenIssueTime")?;
    let before = crate::time::parse_utc(before).ok()?.unix_timestamp();
    if is_fallback(statement) {
        return Some((None, before));
    }
    let user = condition(statement, "StringEquals", USER_ID_KEY)?;
    let account = condition(statement, "StringEquals", "aws:PrincipalAccount")?;
    Some((Some((user, account)), before))
}

fn at(unix: i64) -> Result<String> {
    OffsetDateTime::from_unix_timestamp(unix)
        .map(format_utc)
        .map_err(|err| Error::internal(format!("bad time {unix}: {err}")))
}

fn user_statement(user_id: &str, account: &str, before: i64, after: i64) -> Result<Value> {
    Ok(json!({
        "Sid": user_sid(user_id, account, after),
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {
            "StringEquals": {USER_ID_KEY: user_id, "aws:PrincipalAccount": account},
            "DateLessThan": {"aws:TokenIssueTime": at(before)?}
        }
    }))
}

fn fallback_statement(before: i64, after: i64) -> Result<Value> {
    Ok(json!({
        "Sid": fallback_sid(after),
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"DateLessThan": {"aws:TokenIssueTime": at(before)?}}
    }))
}

/// The document [`add_user_deny`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDeny {
    /// The new minified inline policy.
    pub document: String,
    /// Whether the user's statement did not fit and the permission-set-wide fallback (every
    /// session issued before the revoke, whoever's) was written instead.
    pub fallback: bool,
}

/// Adds the deny for `user_id`'s sessions in `account` issued before `issued_before` to the
/// permission set's inline policy `current`, keeps it until `remove_after` (the last such
/// session's end plus skew), and drops trailgate statements whose time has passed. A second
/// revoke of the same user and account widens the one statement (latest issue time, latest
/// removal). When the result would not fit in `room` (IAM's inline-policy limit, counted
/// without whitespace), every trailgate statement is replaced by one fallback denying every
/// session of the permission set issued before the latest time: it covers each revoked user,
/// and ends other users' current sessions too, who must sign in again.
pub fn add_user_deny(
    current: Option<&str>,
    user_id: &str,
    account: &str,
    issued_before: i64,
    remove_after: i64,
    now: i64,
    room: usize,
) -> Result<UserDeny> {
    let mut statements = statements_of(current)?;
    let (mut before, mut after) = (issued_before, remove_after);
    statements.retain(|statement| {
        let Some(until) = self::remove_after(statement) else {
            return true;
        };
        if until <= now {
            return false;
        }
        match denied(statement) {
            Some((Some((user, acct)), was_before)) if user == user_id && acct == account => {
                before = before.max(was_before);
                after = after.max(until);
                false
            }
            _ => true,
        }
    });
    let mut with_user = statements.clone();
    with_user.push(user_statement(user_id, account, before, after)?);
    let document = document_of(with_user);
    if crate::policy::policy_size(&document) <= room {
        return Ok(UserDeny {
            document,
            fallback: false,
        });
    }
    let (mut latest_before, mut latest_after) = (before, after);
    let foreign: Vec<Value> = statements
        .into_iter()
        .filter(|statement| {
            let Some(until) = self::remove_after(statement) else {
                return true;
            };
            if let Some((_, was_before)) = denied(statement) {
                latest_before = latest_before.max(was_before);
            }
            latest_after = latest_after.max(until);
            false
        })
        .collect();
    let mut with_fallback = foreign;
    with_fallback.push(fallback_statement(latest_before, latest_after)?);
    let document = document_of(with_fallback);
    if crate::policy::policy_size(&document) > room {
        return Err(Error::not_grantable(
            "the permission set's own inline policy leaves no room for trailgate's deny",
        ));
    }
    Ok(UserDeny {
        document,
        fallback: true,
    })
}

/// Whether `document` denies `user_id`'s sessions in `account` issued before `issued_before`
/// (its own statement, or a fallback reaching as far).
pub fn denies_user(document: &str, user_id: &str, account: &str, issued_before: i64) -> bool {
    let Ok(statements) = statements_of(Some(document)) else {
        return false;
    };
    statements.iter().any(|statement| {
        statement.get("Effect").and_then(Value::as_str) == Some("Deny")
            && match denied(statement) {
                Some((Some((user, acct)), before)) => {
                    user == user_id && acct == account && before >= issued_before
                }
                Some((None, before)) => before >= issued_before,
                None => false,
            }
    })
}

/// The document without trailgate statements whose time has passed: `None` when nothing
/// changes, `Some(None)` when nothing is left.
pub fn collect_garbage(current: &str, now: i64) -> Result<Option<Option<String>>> {
    let statements = statements_of(Some(current))?;
    let before = statements.len();
    let kept: Vec<Value> = statements
        .into_iter()
        .filter(|statement| remove_after(statement).is_none_or(|until| until > now))
        .collect();
    if kept.len() == before {
        return Ok(None);
    }
    Ok(Some((!kept.is_empty()).then(|| document_of(kept))))
}

fn document_of(statements: Vec<Value>) -> String {
    json!({"Version": "2012-10-17", "Statement": statements}).to_string()
}

fn statements_of(current: Option<&str>) -> Result<Vec<Value>> {
    let Some(text) = current.filter(|text| !text.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let document: Value = serde_json::from_str(text).map_err(|err| {
        Error::internal(format!(
            "the permission set's inline policy is not JSON: {err}"
        ))
    })?;
    match document.get("Statement") {
        Some(Value::Array(statements)) => Ok(statements.clone()),
        Some(statement @ Value::Object(_)) => Ok(vec![statement.clone()]),
        None => Ok(Vec::new()),
        Some(_) => Err(Error::internal(
            "the permission set's inline policy has a malformed Statement",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "94482488-3041-7026-18f3-be45837cd0e4";
    const OTHER: &str = "c4d8f4a8-1011-70c1-5dce-0e5d4fa4bb2e";
    const ACCOUNT: &str = "111111111111";
    const OWN: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadOnly","Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}"#;

    #[test]
    fn the_deny_names_the_user_the_account_and_the_issue_time_and_keeps_the_sets_own_policy() {
        let deny = add_user_deny(Some(OWN), USER, ACCOUNT, 1_000, 5_000, 1_000, 10_240).unwrap();
        assert!(!deny.fallback);
        let doc: Value = serde_json::from_str(&deny.document).unwrap();
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements[0]["Sid"], "ReadOnly");
        let ours = &statements[1];
        assert_eq!(ours["Effect"], "Deny");
        assert_eq!(ours["Condition"]["StringEquals"][USER_ID_KEY], USER);
        assert_eq!(
            ours["Condition"]["StringEquals"]["aws:PrincipalAccount"],
            ACCOUNT
        );
        assert_eq!(
            ours["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
            "1970-01-01T00:16:40Z"
        );
        assert!(denies_user(&deny.document, USER, ACCOUNT, 1_000));
        assert!(
            !denies_user(&deny.document, USER, ACCOUNT, 1_001),
            "a later revoke is not covered"
        );
        assert!(!denies_user(&deny.document, OTHER, ACCOUNT, 1_000));
        assert!(!denies_user(&deny.document, USER, "222222222222", 1_000));
        assert!(!denies_user(OWN, USER, ACCOUNT, 1_000));
    }

    #[test]
    fn a_second_revoke_widens_the_one_statement_and_expired_ones_are_collected() {
        let first = add_user_deny(None, USER, ACCOUNT, 1_000, 5_000, 1_000, 10_240).unwrap();
        let other = add_user_deny(
            Some(&first.document),
            OTHER,
            ACCOUNT,
            1_500,
            2_000,
            1_500,
            10_240,
        )
        .unwrap();
        let second = add_user_deny(
            Some(&other.document),
            USER,
            ACCOUNT,
            3_000,
            4_000,
            3_000,
            10_240,
        )
        .unwrap();
        let doc: Value = serde_json::from_str(&second.document).unwrap();
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(
            statements.len(),
            1,
            "OTHER's statement expired at 2000: {doc}"
        );
        assert!(denies_user(&second.document, USER, ACCOUNT, 3_000));
        assert_eq!(
            remove_after(&statements[0]),
            Some(5_000),
            "the later removal is kept"
        );
        assert_eq!(collect_garbage(&second.document, 4_999).unwrap(), None);
        assert_eq!(
            collect_garbage(&second.document, 5_000).unwrap(),
            Some(None)
        );
        let mixed = add_user_deny(Some(OWN), USER, ACCOUNT, 1_000, 5_000, 1_000, 10_240).unwrap();
        let collected = collect_garbage(&mixed.document, 6_000)
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&collected).unwrap(),
            serde_json::from_str::<Value>(OWN).unwrap()
        );
    }

    #[test]
    fn without_room_one_fallback_denies_every_session_issued_before_the_latest_revoke() {
        let first = add_user_deny(Some(OWN), USER, ACCOUNT, 1_000, 9_000, 1_000, 10_240).unwrap();
        let room = crate::policy::policy_size(&first.document) + 10;
        let next = add_user_deny(
            Some(&first.document),
            OTHER,
            ACCOUNT,
            2_000,
            8_000,
            2_000,
            room,
        )
        .unwrap();
        assert!(next.fallback);
        assert!(denies_user(&next.document, USER, ACCOUNT, 1_000));
        assert!(denies_user(&next.document, OTHER, ACCOUNT, 2_000));
        let doc: Value = serde_json::from_str(&next.document).unwrap();
        assert_eq!(
            doc["Statement"][0]["Sid"], "ReadOnly",
            "the set's own statement stays"
        );
        assert_eq!(remove_after(&doc["Statement"][1]), Some(9_000));
        let no_room = add_user_deny(Some(OWN), USER, ACCOUNT, 1_000, 9_000, 1_000, 20);
        assert!(
            no_room.is_err(),
            "a policy that leaves no room is an error, never silence"
        );
    }

    #[test]
    fn statements_of_others_that_look_alike_are_never_touched() {
        let foreign = r#"{"Version":"2012-10-17","Statement":[{"Sid":"TGUnotours","Effect":"Deny","Action":"*","Resource":"*"}]}"#;
        assert_eq!(collect_garbage(foreign, i64::MAX).unwrap(), None);
        assert!(add_user_deny(Some("not json"), USER, ACCOUNT, 1, 2, 1, 10_240).is_err());
    }
}
