//! The AWS Organization as trailgate sees it: its accounts, the OUs above each, and its
//! management account. Intake reads it through the `Accounts` port (cached by the adapter) to
//! tell which accounts a catalog entry covers and to refuse accounts outside it.

use serde::Serialize;

/// A snapshot of the Organization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Organization {
    /// The management account: never requestable, whatever the catalog says.
    pub management_account: String,
    pub accounts: Vec<OrgAccount>,
}

/// One member account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgAccount {
    pub id: String,
    pub name: String,
    /// `ACTIVE`, or `SUSPENDED` / `PENDING_CLOSURE` (never requestable).
    pub status: String,
    /// Every OU above the account, nearest first (the root is not an OU).
    #[serde(skip)]
    pub ous: Vec<String>,
}

impl Organization {
    pub fn account(&self, id: &str) -> Option<&OrgAccount> {
        self.accounts.iter().find(|account| account.id == id)
    }
}

impl OrgAccount {
    pub fn is_active(&self) -> bool {
        self.status == "ACTIVE"
    }
}
