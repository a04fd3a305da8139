//! Builders for the catalog a system test deploys through the stack's `Catalog` parameter.
//!
//! Every test uses the stack's default users (alice requests, bob and carol approve) in the
//! sample account; the entries differ in role, window, approvers and quorum, so those are the
//! fields a test sets and everything else has a default.

use serde_json::{Value, json};

/// The account of the local stack's users and roles.
pub const ACCOUNT: &str = "123456789012";

/// The ARN of the IAM role `name` in the local account.
pub fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

/// A catalog approver: the local user `name`, mailed at `<name>@example.com`.
pub fn user(name: &str) -> Value {
    json!({"id": name, "email": format!("{name}@example.com"), "arn": format!("arn:aws:iam::{ACCOUNT}:user/{name}")})
}

/// One catalog entry. Build it with [`Entry::new`] and struct-update syntax for the fields a
/// test cares about.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The catalog id requests name.
    pub id: &'static str,
    /// The target role's ARN.
    pub role_arn: String,
    /// Free text shown to approvers.
    pub description: &'static str,
    /// The longest grant, as an ISO 8601 duration.
    pub max_duration: &'static str,
    /// How long approvers have to decide, as an ISO 8601 duration.
    pub approval_window: &'static str,
    /// The approvers, by local user name.
    pub approvers: Vec<&'static str>,
    /// How many approvals grant the request.
    pub quorum: u32,
    /// Emergency access without approval (max_duration must be at most PT1H).
    pub break_glass: bool,
    /// People told of the entry's requests who cannot approve them, by name
    /// (`<name>@example.com`).
    pub notify: Vec<&'static str>,
}

impl Entry {
    /// An entry for `role_arn` with the defaults most scenarios use: up to an hour, a
    /// five-minute approval window, bob and carol approving, one approval enough.
    pub fn new(id: &'static str, role_arn: impl Into<String>) -> Self {
        Self {
            id,
            role_arn: role_arn.into(),
            description: "test entry",
            max_duration: "PT1H",
            approval_window: "PT5M",
            approvers: vec!["bob", "carol"],
            quorum: 1,
            break_glass: false,
            notify: Vec::new(),
        }
    }

    /// The entry as the catalog JSON has it; alice is always the only requester.
    pub fn to_json(&self) -> Value {
        let mut entry = json!({"id": self.id, "role_arn": self.role_arn, "description": self.description,
               "max_duration": self.max_duration, "approval_window": self.approval_window,
               "approvers": self.approvers.iter().map(|name| user(name)).collect::<Vec<_>>(),
               "quorum": self.quorum, "requesters": [format!("arn:aws:iam::{ACCOUNT}:user/alice")],
               "break_glass": self.break_glass});
        if !self.notify.is_empty() {
            entry["notify"] = json!(
                self.notify
                    .iter()
                    .map(|name| json!({"id": name, "email": format!("{name}@example.com")}))
                    .collect::<Vec<_>>()
            );
        }
        entry
    }
}

/// The `Catalog` parameter value for `entries`.
pub fn catalog(entries: &[Entry]) -> String {
    json!({"entries": entries.iter().map(Entry::to_json).collect::<Vec<_>>()}).to_string()
}
