//! Slack interactivity requests: is this request from Slack, and which button did whom press.
//!
//! Slack signs every request it sends to an app: `X-Slack-Signature: v0=<hex>` is
//! HMAC-SHA256, under the app's signing secret, of `v0:<X-Slack-Request-Timestamp>:<raw body>`.
//! [`verify`] recomputes it and compares in constant time, and refuses a timestamp more than
//! five minutes from now, so a captured request cannot be replayed later. Within those five
//! minutes a replay reaches the decision core, which records a person's decision once (a
//! repeat changes nothing), exactly as for a clicked e-mail link.
//!
//! [`parse_interaction`] reads a `block_actions` payload (the form field `payload`, JSON) into
//! the only things trailgate uses: the workspace and user **ids** Slack signed (never a name
//! or display name, which users choose), and the one button's action id and value. The value
//! is a [`ButtonValue`]: the decision and the request id, nothing secret and no task token.
//! Which catalog person a Slack user is, and whether they may decide, is for the catalog and
//! the decision core, as for every other way in.

use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::request::is_request_id;

/// How far a request's timestamp may be from now, in seconds (Slack's recommendation).
pub const REPLAY_WINDOW_SECONDS: i64 = 300;

/// Why a request is not a Slack interaction trailgate acts on. The names are stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlackRequestError {
    /// No `X-Slack-Request-Timestamp` header.
    #[error("missing X-Slack-Request-Timestamp")]
    MissingTimestamp,
    /// The timestamp is not Unix seconds.
    #[error("X-Slack-Request-Timestamp is not a Unix time")]
    BadTimestamp,
    /// The timestamp is outside the replay window.
    #[error("the request is {0} s from now, outside the {REPLAY_WINDOW_SECONDS} s window")]
    Stale(i64),
    /// No `X-Slack-Signature` header, or not `v0=` and 64 hex digits.
    #[error("missing or malformed X-Slack-Signature")]
    BadSignatureFormat,
    /// The signature does not match the body and timestamp.
    #[error("the signature does not match")]
    SignatureMismatch,
    /// The body is not a block_actions payload with one button.
    #[error("not a Slack button interaction: {0}")]
    NotAnInteraction(String),
}

impl SlackRequestError {
    /// The stable PascalCase name (for logs and error bodies).
    pub fn name(&self) -> &'static str {
        match self {
            SlackRequestError::MissingTimestamp => "MissingTimestamp",
            SlackRequestError::BadTimestamp => "BadTimestamp",
            SlackRequestError::Stale(_) => "StaleRequest",
            SlackRequestError::BadSignatureFormat => "BadSignatureFormat",
            SlackRequestError::SignatureMismatch => "SignatureMismatch",
            SlackRequestError::NotAnInteraction(_) => "NotAnInteraction",
        }
    }
}

/// Checks that `body` was sent by Slack for the app whose signing secret is `secret`, at a time
/// within [`REPLAY_WINDOW_SECONDS`] of `now` (Unix seconds).
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SlackRequestError> {
    let timestamp = timestamp.ok_or(SlackRequestError::MissingTimestamp)?;
    // Digits only: the timestamp is part of the signed text, so it must be exactly what Slack
    // sent, not a number that parses from something else (`+1`, ` 1`).
    if timestamp.is_empty()
        || timestamp.len() > 12
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SlackRequestError::BadTimestamp);
    }
    let sent: i64 = timestamp
        .parse()
        .map_err(|_| SlackRequestError::BadTimestamp)?;
    let age = now - sent;
    if age.abs() > REPLAY_WINDOW_SECONDS {
        return Err(SlackRequestError::Stale(age));
    }
    let expected = signature
        .and_then(|signature| signature.strip_prefix("v0="))
        .filter(|hex| hex.len() == 64)
        .and_then(|hex| hex::decode(hex).ok())
        .ok_or(SlackRequestError::BadSignatureFormat)?;
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SlackRequestError::SignatureMismatch)
}

/// What a person asked for with a button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ButtonDecision {
    /// Approve the request.
    Approve,
    /// Deny the request.
    Deny,
}

/// A button's value: `approve:<request id>` or `deny:<request id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonValue {
    /// The decision the button stands for.
    pub decision: ButtonDecision,
    /// The request it is for.
    pub request_id: String,
}

impl ButtonValue {
    /// The value to put on a button.
    pub fn encode(&self) -> String {
        let decision = match self.decision {
            ButtonDecision::Approve => "approve",
            ButtonDecision::Deny => "deny",
        };
        format!("{decision}:{}", self.request_id)
    }

    /// Parses a button value; anything but the two forms with a well-formed request id is
    /// refused.
    pub fn parse(value: &str) -> Option<ButtonValue> {
        let (decision, request_id) = value.split_once(':')?;
        let decision = match decision {
            "approve" => ButtonDecision::Approve,
            "deny" => ButtonDecision::Deny,
            _ => return None,
        };
        is_request_id(request_id).then(|| ButtonValue {
            decision,
            request_id: request_id.to_owned(),
        })
    }
}

/// A pressed button, as Slack signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// The workspace (`T...`).
    pub team_id: String,
    /// The user who pressed (`U...` or `W...`): the id, which the user cannot choose.
    pub user_id: String,
    /// The button's `action_id`.
    pub action_id: String,
    /// The button's value.
    pub value: ButtonValue,
    /// Where to post the updated message (a `hooks.slack.com` URL), if Slack gave one.
    pub response_url: Option<String>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    user: Id,
    team: Option<Id>,
    #[serde(default)]
    actions: Vec<Action>,
    response_url: Option<String>,
}

#[derive(Deserialize)]
struct Id {
    id: String,
    team_id: Option<String>,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    #[serde(rename = "type")]
    kind: String,
    value: Option<String>,
}

/// Reads a verified request body (`application/x-www-form-urlencoded` with one `payload`
/// field) as a button interaction.
pub fn parse_interaction(body: &[u8]) -> Result<Interaction, SlackRequestError> {
    let not = |why: &str| SlackRequestError::NotAnInteraction(why.to_owned());
    let mut payloads = form_urlencoded::parse(body).filter(|(key, _)| key == "payload");
    let (_, payload) = payloads.next().ok_or_else(|| not("no payload field"))?;
    if payloads.next().is_some() {
        return Err(not("more than one payload field"));
    }
    let payload: Payload<'_> =
        serde_json::from_str(&payload).map_err(|error| not(&format!("payload: {error}")))?;
    if payload.kind != "block_actions" {
        return Err(not(&format!("type `{}`", payload.kind)));
    }
    let [action] = payload.actions.as_slice() else {
        return Err(not("not exactly one action"));
    };
    if action.kind != "button" {
        return Err(not(&format!("action type `{}`", action.kind)));
    }
    let value = action
        .value
        .as_deref()
        .and_then(ButtonValue::parse)
        .ok_or_else(|| not("the button's value is not a trailgate decision"))?;
    let team_id = payload
        .team
        .map(|team| team.id)
        .or(payload.user.team_id)
        .ok_or_else(|| not("no team id"))?;
    let id = |text: &str| {
        !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    if !id(&team_id) || !id(&payload.user.id) {
        return Err(not("malformed team or user id"));
    }
    let response_url = payload
        .response_url
        .filter(|url| url.starts_with("https://hooks.slack.com/"));
    Ok(Interaction {
        team_id,
        user_id: payload.user.id,
        action_id: action.action_id.clone(),
        value,
        response_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example ("Verifying requests from Slack"): secret, timestamp, body and
    // the signature Slack computed.
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TIMESTAMP: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const NOW: i64 = 1_531_420_618 + 10;

    fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key");
        mac.update(format!("v0:{timestamp}:").as_bytes());
        mac.update(body);
        format!("v0={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(sign(SECRET, TIMESTAMP, BODY.as_bytes()), SIGNATURE);
        assert_eq!(
            verify(
                SECRET,
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY.as_bytes(),
                NOW
            ),
            Ok(())
        );
    }

    #[test]
    fn forged_tampered_stale_and_malformed_requests_are_refused() {
        let check =
            |secret: &[u8], timestamp: Option<&str>, signature: Option<&str>, body: &str, now| {
                verify(secret, timestamp, signature, body.as_bytes(), now)
            };
        let tampered = BODY.replace("roadrunner", "coyote");
        assert_eq!(
            check(SECRET, Some(TIMESTAMP), Some(SIGNATURE), &tampered, NOW),
            Err(SlackRequestError::SignatureMismatch)
        );
        assert_eq!(
            check(
                b"another-secret",
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY,
                NOW
            ),
            Err(SlackRequestError::SignatureMismatch)
        );
        // The timestamp is signed: moving it to look fresh breaks the signature.
        let now = 1_531_420_618 + 3600;
        assert_eq!(
            check(SECRET, Some(TIMESTAMP), Some(SIGNATURE), BODY, now),
            Err(SlackRequestError::Stale(3600))
        );
        let fresh = (now - 1).to_string();
        assert_eq!(
            check(SECRET, Some(&fresh), Some(SIGNATURE), BODY, now),
            Err(SlackRequestError::SignatureMismatch)
        );
        assert_eq!(
            check(
                SECRET,
                Some(TIMESTAMP),
                Some(SIGNATURE),
                BODY,
                1_531_420_618 - 301
            ),
            Err(SlackRequestError::Stale(-301))
        );
        for bad in [
            "",
            "+1531420618",
            " 1531420618",
            "1531420618.5",
            "99999999999999",
        ] {
            assert_eq!(
                check(SECRET, Some(bad), Some(SIGNATURE), BODY, NOW),
                Err(SlackRequestError::BadTimestamp),
                "{bad:?}"
            );
        }
        assert_eq!(
            check(SECRET, None, Some(SIGNATURE), BODY, NOW),
            Err(SlackRequestError::MissingTimestamp)
        );
        for bad in [
            None,
            Some(""),
            Some("v1=a2114d57"),
            Some(&SIGNATURE[..40]),
            Some("v0=zz"),
        ] {
            assert_eq!(
                check(SECRET, Some(TIMESTAMP), bad, BODY, NOW),
                Err(SlackRequestError::BadSignatureFormat),
                "{bad:?}"
            );
        }
    }

    fn form(payload: &serde_json::Value) -> Vec<u8> {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish()
            .into_bytes()
    }

    fn block_actions(value: &str) -> serde_json::Value {
        serde_json::json!({
            "type": "block_actions",
            "user": {"id": "U0123ABCD", "username": "alice", "name": "alice", "team_id": "T0TEAM"},
            "api_app_id": "A0APP",
            "token": "verification-token-unused",
            "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0CHAN", "is_ephemeral": false},
            "trigger_id": "1.2.3",
            "team": {"id": "T0TEAM", "domain": "example"},
            "channel": {"id": "C0CHAN", "name": "access"},
            "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
            "actions": [{
                "action_id": "trailgate-approve",
                "block_id": "decide",
                "text": {"type": "plain_text", "text": "Approve", "emoji": true},
                "value": value,
                "style": "primary",
                "type": "button",
                "action_ts": "1700000001.000200"
            }]
        })
    }

    #[test]
    fn a_button_press_gives_the_ids_slack_signed_and_the_decision() {
        let interaction = parse_interaction(&form(&block_actions(
            "approve:r-abcdefghijklmnopqrstuvwxyz",
        )))
        .expect("parses");
        assert_eq!(
            interaction,
            Interaction {
                team_id: "T0TEAM".to_owned(),
                user_id: "U0123ABCD".to_owned(),
                action_id: "trailgate-approve".to_owned(),
                value: ButtonValue {
                    decision: ButtonDecision::Approve,
                    request_id: "r-abcdefghijklmnopqrstuvwxyz".to_owned()
                },
                response_url: Some("https://hooks.slack.com/actions/T0TEAM/1/abc".to_owned()),
            }
        );
        assert_eq!(
            interaction.value.encode(),
            "approve:r-abcdefghijklmnopqrstuvwxyz"
        );
    }

    #[test]
    fn payloads_that_are_not_one_trailgate_button_are_refused() {
        let refused = |body: Vec<u8>| {
            matches!(
                parse_interaction(&body),
                Err(SlackRequestError::NotAnInteraction(_))
            )
        };
        assert!(refused(b"token=x".to_vec()));
        assert!(refused(b"payload=not-json".to_vec()));
        for value in [
            "approve:",
            "grant:r-abcdefghijklmnopqrstuvwxyz",
            "approve:r-abcdefghijklmnopqrstuvwxy1",
            "deny:../x",
            "",
        ] {
            assert!(refused(form(&block_actions(value))), "{value:?}");
        }
        let mut two = block_actions("deny:r-abcdefghijklmnopqrstuvwxyz");
        let action = two["actions"][0].clone();
        two["actions"].as_array_mut().expect("actions").push(action);
        assert!(refused(form(&two)));
        let mut modal = block_actions("deny:r-abcdefghijklmnopqrstuvwxyz");
        modal["type"] = serde_json::json!("view_submission");
        assert!(refused(form(&modal)));
        let mut odd = block_actions("deny:r-abcdefghijklmnopqrstuvwxyz");
        odd["user"]["id"] = serde_json::json!("U1<script>");
        assert!(refused(form(&odd)));
        let mut twice = form(&block_actions("deny:r-abcdefghijklmnopqrstuvwxyz"));
        twice.extend_from_slice(b"&");
        twice.extend_from_slice(&form(&block_actions(
            "approve:r-abcdefghijklmnopqrstuvwxyz",
        )));
        assert!(refused(twice));
        // A response URL that is not Slack's is dropped, never followed.
        let mut elsewhere = block_actions("deny:r-abcdefghijklmnopqrstuvwxyz");
        elsewhere["response_url"] = serde_json::json!("https://attacker.example/x");
        let parsed = parse_interaction(&form(&elsewhere)).expect("parses");
        assert_eq!(parsed.response_url, None);
    }
}
