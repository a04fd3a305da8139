//! The catalog: the reviewed list of roles that can be requested, by whom, approved by whom.
//!
//! It is deployed with the stack (the `CATALOG` variable) and loaded once at cold start.
//! Loading validates every entry, so a function never runs with a catalog it cannot trust.

use crate::error::{Error, Result};
use crate::time::parse_duration;
use ::time::Duration;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The whole catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub entries: Vec<Entry>,
}

/// One requestable role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub id: String,
    pub role_arn: String,
    #[serde(default)]
    pub description: String,
    /// Longest grant a requester may ask for (ISO 8601 or short form).
    pub max_duration: String,
    /// How long approvers have before the request expires (default one hour).
    #[serde(default)]
    pub approval_window: Option<String>,
    pub approvers: Vec<Approver>,
    /// How many distinct approvals grant the request (M of N). The first deny ends it.
    #[serde(default = "one")]
    pub quorum: u32,
    /// ARN patterns (`*` wildcard) of the callers who may request this entry.
    pub requesters: Vec<String>,
    #[serde(default)]
    pub ticket_pattern: Option<String>,
    /// Emergency access: no approval, every approver and the alerts topic are told at once,
    /// the duration is capped at [`BREAK_GLASS_MAX_DURATION`], and the session stays flagged
    /// for review until an approver acknowledges it.
    #[serde(default)]
    pub break_glass: bool,
}

/// Someone who may approve requests for an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approver {
    /// Stable id, used in links and the ledger.
    pub id: String,
    /// Where the approval e-mail goes (the SNS filter policy value).
    pub email: String,
    /// The approver's own AWS principal, used to keep them from approving their own request.
    pub arn: String,
}

fn one() -> u32 {
    1
}

/// Default approval window when an entry names none.
pub const DEFAULT_APPROVAL_WINDOW: Duration = Duration::hours(1);

/// The longest grant a break-glass entry may give. Break-glass skips approval; the cap bounds
/// what an unreviewed session can do before it ends on its own.
pub const BREAK_GLASS_MAX_DURATION: Duration = Duration::hours(1);

impl Catalog {
    /// Parses and validates a catalog. `own_role_prefix` names trailgate's own roles
    /// (the stack-name prefix), which can never be requested.
    pub fn load(json: &str, own_role_prefix: &str) -> Result<Catalog> {
        let catalog: Catalog = serde_json::from_str(json)
            .map_err(|err| Error::internal(format!("the catalog is not valid: {err}")))?;
        catalog.validate(own_role_prefix)?;
        Ok(catalog)
    }

    /// Checks every entry; the first problem found is returned with the entry id.
    pub fn validate(&self, own_role_prefix: &str) -> Result<()> {
        let mut ids = HashSet::new();
        for entry in &self.entries {
            if !ids.insert(entry.id.as_str()) {
                return Err(Error::internal(format!(
                    "catalog entry `{}` is defined twice",
                    entry.id
                )));
            }
            entry.validate(own_role_prefix).map_err(|err| {
                Error::internal(format!("catalog entry `{}`: {}", entry.id, err.message))
            })?;
        }
        Ok(())
    }

    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.entries.iter().find(|entry| entry.id == id)
    }
}

impl Entry {
    fn validate(&self, own_role_prefix: &str) -> Result<()> {
        if self.id.is_empty()
            || self.id.len() > 64
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::internal(
                "id must be 1-64 letters, digits, `-` or `_`",
            ));
        }
        let role_name = role_name(&self.role_arn).ok_or_else(|| {
            Error::internal(format!("`{}` is not an IAM role ARN", self.role_arn))
        })?;
        if !own_role_prefix.is_empty() && role_name.starts_with(own_role_prefix) {
            return Err(Error::internal(format!(
                "`{}` is one of trailgate's own roles",
                self.role_arn
            )));
        }
        self.max_duration()?;
        self.approval_window()?;
        if self.break_glass && self.max_duration()? > BREAK_GLASS_MAX_DURATION {
            // Break-glass skips approval, so its compensating controls include a short cap:
            // an entry asking for more is refused at load rather than silently shortened.
            return Err(Error::internal(format!(
                "a break-glass entry may grant at most {} (max_duration is {})",
                crate::time::format_duration(BREAK_GLASS_MAX_DURATION),
                self.max_duration
            )));
        }
        if self.approvers.is_empty() {
            return Err(Error::internal("at least one approver is required"));
        }
        let mut approver_ids = HashSet::new();
        for approver in &self.approvers {
            if approver.id.is_empty()
                || approver.id.len() > 64
                || !approver
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
            {
                return Err(Error::internal(format!(
                    "approver id `{}` must be 1-64 letters, digits, `-_.@`",
                    approver.id
                )));
            }
            if !approver_ids.insert(approver.id.as_str()) {
                return Err(Error::internal(format!(
                    "approver `{}` is listed twice",
                    approver.id
                )));
            }
            if !approver.email.contains('@') {
                return Err(Error::internal(format!(
                    "approver `{}` has no valid e-mail",
                    approver.id
                )));
            }
            if !approver.arn.starts_with("arn:") {
                return Err(Error::internal(format!(
                    "approver `{}` has no principal ARN",
                    approver.id
                )));
            }
        }
        if self.quorum == 0 || self.quorum as usize > self.approvers.len() {
            return Err(Error::internal(format!(
                "quorum {} must be between 1 and the number of approvers ({})",
                self.quorum,
                self.approvers.len()
            )));
        }
        if self.requesters.is_empty() {
            return Err(Error::internal(
                "at least one requester pattern is required",
            ));
        }
        if let Some(pattern) = &self.ticket_pattern {
            regex::Regex::new(pattern)
                .map_err(|err| Error::internal(format!("ticket_pattern: {err}")))?;
        }
        Ok(())
    }

    pub fn max_duration(&self) -> Result<Duration> {
        parse_duration(&self.max_duration).ok_or_else(|| {
            Error::internal(format!(
                "max_duration `{}` is not a duration",
                self.max_duration
            ))
        })
    }

    pub fn approval_window(&self) -> Result<Duration> {
        match &self.approval_window {
            None => Ok(DEFAULT_APPROVAL_WINDOW),
            Some(text) => parse_duration(text).ok_or_else(|| {
                Error::internal(format!("approval_window `{text}` is not a duration"))
            }),
        }
    }

    /// Whether `caller_arn` matches one of the entry's requester patterns.
    pub fn allows_requester(&self, caller_arn: &str) -> bool {
        self.requesters
            .iter()
            .any(|pattern| glob_match(pattern, caller_arn))
    }

    pub fn approver(&self, id: &str) -> Option<&Approver> {
        self.approvers.iter().find(|approver| approver.id == id)
    }

    /// What a requester is shown about the entry (`GET /catalog`): never the approvers'
    /// ARNs or e-mail addresses, which are nobody's business but the stack's.
    pub fn public_view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "role_arn": self.role_arn,
            "description": self.description,
            "max_duration": self.max_duration,
            "approval_window": self.approval_window.as_deref().unwrap_or("PT1H"),
            "quorum": self.quorum,
            "ticket_pattern": self.ticket_pattern,
            "break_glass": self.break_glass,
        })
    }
}

impl Catalog {
    /// The entries `caller_arn` may request, in catalog order.
    pub fn requestable_by<'c>(&'c self, caller_arn: &str) -> Vec<&'c Entry> {
        self.entries
            .iter()
            .filter(|entry| entry.allows_requester(caller_arn))
            .collect()
    }
}

/// The role name of an IAM role ARN (`arn:aws:iam::123:role/path/name` → `name`).
pub fn role_name(role_arn: &str) -> Option<&str> {
    let mut parts = role_arn.splitn(6, ':');
    let (arn, _partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" || service != "iam" || account.is_empty() {
        return None;
    }
    let path_and_name = resource.strip_prefix("role/")?;
    let name = path_and_name.rsplit('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(index) => rest = &rest[index + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_catalog_json;

    #[test]
    fn sample_catalog_loads() {
        let catalog = Catalog::load(&sample_catalog_json(), "trailgate-").unwrap();
        let entry = catalog.entry("sandbox-admin").unwrap();
        assert!(entry.allows_requester("arn:aws:iam::123456789012:user/alice"));
        assert!(!entry.allows_requester("arn:aws:iam::999999999999:user/alice"));
        assert_eq!(entry.max_duration().unwrap(), Duration::hours(4));
    }

    #[test]
    fn own_roles_and_bad_entries_are_rejected() {
        let own = sample_catalog_json()
            .replace("role/sample-target-trailgate", "role/trailgate-GrantRole");
        let err = Catalog::load(&own, "trailgate-").unwrap_err();
        assert!(err.message.contains("trailgate's own roles"), "{err}");

        let quorum = sample_catalog_json().replace("\"quorum\": 1", "\"quorum\": 3");
        assert!(
            Catalog::load(&quorum, "trailgate-")
                .unwrap_err()
                .message
                .contains("quorum")
        );

        let unknown = sample_catalog_json().replace("\"quorum\": 1", "\"quorum\": 1, \"color\": 1");
        assert!(Catalog::load(&unknown, "trailgate-").is_err());

        // The sample entry allows four hours: too long for break-glass.
        let glass =
            sample_catalog_json().replace("\"break_glass\": false", "\"break_glass\": true");
        let err = Catalog::load(&glass, "trailgate-").unwrap_err();
        assert!(
            err.message
                .contains("break-glass entry may grant at most PT1H"),
            "{err}"
        );
        let capped = glass.replace("\"PT4H\"", "\"PT1H\"");
        assert!(Catalog::load(&capped, "trailgate-").unwrap().entries[0].break_glass);
    }

    #[test]
    fn glob_matching() {
        assert!(glob_match(
            "arn:aws:iam::1:user/*",
            "arn:aws:iam::1:user/alice"
        ));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abde"));
        assert!(!glob_match(
            "arn:aws:iam::1:user/alice",
            "arn:aws:iam::1:user/alice2"
        ));
        assert!(!glob_match("ab*ba", "aba"));
    }

    #[test]
    fn role_names() {
        assert_eq!(
            role_name("arn:aws:iam::123:role/path/to/admin"),
            Some("admin")
        );
        assert_eq!(role_name("arn:aws:iam::123:user/admin"), None);
        assert_eq!(role_name("not-an-arn"), None);
    }
}
