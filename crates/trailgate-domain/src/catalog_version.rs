//! The deployed catalog's versions: who may push one (`CatalogPublishers`), what a push
//! records (number, document hash, who, when), and the keyed chain over those records that
//! lets `GET /catalog/history` show a deleted, edited or reordered version.
//!
//! The catalog file stays the reviewed source; a push stores it whole, byte for byte, so
//! `sha256sum catalog.json` on the reviewed file equals the version's `sha256`.

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::identity::{Principal, normalise_role_arn};
use crate::ledger::ChainKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The version the functions run before any push: the template's `Catalog` parameter
/// (`CATALOG`). A pushed catalog starts at 1 and replaces it for good.
pub const TEMPLATE_VERSION: u64 = 0;

/// The largest catalog document a push accepts, before compression. 500 entries over 300
/// accounts are about 200 KB; the store's own limit (a DynamoDB item, 400 KB) applies to the
/// compressed document.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;

/// How many versions `GET /catalog/history` returns at most.
pub const HISTORY_LIMIT: usize = 100;

/// What one push recorded. Stored beside the document; the document itself is not part of
/// the record (its `sha256` is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogVersion {
    pub version: u64,
    /// SHA-256 (hex) of the document as pushed.
    pub sha256: String,
    /// The caller's ARN as API Gateway's SigV4 check established it.
    pub pushed_by: String,
    /// The caller's unique principal id (`AIDA…`, `AROA…:<session>`), when API Gateway gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    pub at: String,
    pub entries: usize,
    /// Distinct accounts the entries name (by id; OUs count as one each).
    pub accounts: usize,
    pub bytes: usize,
    /// The previous version's `hash` (empty for version 1).
    pub prev_hash: String,
    /// Which key of the chain-key ring keyed `hash`; absent for the first key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// HMAC (chain key) over every field above.
    pub hash: String,
}

impl CatalogVersion {
    /// The bytes the MAC covers: a JSON array, so no two different records share them.
    fn canonical(&self) -> Vec<u8> {
        serde_json::json!([
            "trailgate-catalog-v1",
            self.version,
            self.sha256,
            self.pushed_by,
            self.principal_id,
            self.at,
            self.entries,
            self.accounts,
            self.bytes,
            self.prev_hash,
            self.key_id,
        ])
        .to_string()
        .into_bytes()
    }

    /// Whether `hash` is this record's MAC under `key`.
    pub fn hash_is_valid(&self, key: &ChainKey) -> bool {
        key.mac_message(self.key_id.as_deref(), &self.canonical())
            .is_some_and(|mac| bool::from(mac.as_bytes().ct_eq(self.hash.as_bytes())))
    }
}

/// SHA-256 of a document, hex.
pub fn document_sha256(document: &[u8]) -> String {
    hex::encode(Sha256::digest(document))
}

/// Who may push a catalog: IAM users and sessions by their normalised principal, and roles
/// (any session of the role). Read from `CATALOG_PUBLISHERS`, comma-separated; empty means
/// nobody, and the template's catalog stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publishers {
    principals: Vec<String>,
    roles: Vec<String>,
}

impl Publishers {
    /// Parses the comma-separated list; an entry that names no principal or role is refused,
    /// as is a wildcard (a publisher can rewrite who may request what: it is named exactly).
    pub fn parse(list: &str) -> Result<Publishers> {
        let mut publishers = Publishers::default();
        for arn in list.split(',').map(str::trim).filter(|arn| !arn.is_empty()) {
            if let Ok(principal) = Principal::parse(arn) {
                publishers.principals.push(principal.key());
            } else if let Some(role) = normalise_role_arn(arn) {
                publishers.roles.push(role);
            } else {
                return Err(Error::internal(format!(
                    "`{arn}` is neither an IAM user, a session nor a role ARN without wildcards"
                )));
            }
        }
        Ok(publishers)
    }

    pub fn is_empty(&self) -> bool {
        self.principals.is_empty() && self.roles.is_empty()
    }

    /// Whether the caller (its SigV4 ARN) is a publisher, compared as principals.
    pub fn allows(&self, caller_arn: &str) -> bool {
        let Ok(principal) = Principal::parse(caller_arn) else {
            return false;
        };
        self.principals.contains(&principal.key())
            || principal
                .role_key()
                .is_some_and(|role| self.roles.contains(&role))
    }
}

/// The next version record for `document` (already validated), chained to `latest`.
pub fn next_version(
    latest: Option<&CatalogVersion>,
    catalog: &Catalog,
    document: &[u8],
    caller: &crate::request::Caller,
    at: String,
    key: &ChainKey,
) -> CatalogVersion {
    let mut accounts: Vec<&str> = catalog
        .entries
        .iter()
        .flat_map(|entry| {
            let arn_account = entry
                .role_arn
                .as_deref()
                .and_then(|arn| arn.split(':').nth(4));
            entry.accounts.iter().map(String::as_str).chain(arn_account)
        })
        .filter(|account| !account.is_empty())
        .collect();
    accounts.sort_unstable();
    accounts.dedup();
    let mut version = CatalogVersion {
        version: latest.map_or(TEMPLATE_VERSION, |v| v.version) + 1,
        sha256: document_sha256(document),
        pushed_by: caller.arn.clone(),
        principal_id: caller.principal_id.clone(),
        at,
        entries: catalog.entries.len(),
        accounts: accounts.len(),
        bytes: document.len(),
        prev_hash: latest.map(|v| v.hash.clone()).unwrap_or_default(),
        key_id: key.current_id().map(str::to_owned),
        hash: String::new(),
    };
    version.hash = key
        .mac_message(version.key_id.as_deref(), &version.canonical())
        .unwrap_or_default();
    version
}

/// What the history check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryCheck {
    /// Every record's MAC is valid and each names the one before it.
    pub intact: bool,
    /// The first problem, newest-first order, when not intact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// Checks `versions` (newest first, consecutive, as the store returns them): MACs, numbers and
/// links. The oldest record shown links to one not shown unless it is version 1.
pub fn check_history(versions: &[CatalogVersion], key: &ChainKey) -> HistoryCheck {
    let broken = |problem: String| HistoryCheck {
        intact: false,
        problem: Some(problem),
    };
    for (i, record) in versions.iter().enumerate() {
        if !record.hash_is_valid(key) {
            return broken(format!(
                "version {} does not carry its own MAC: it was edited or forged",
                record.version
            ));
        }
        match versions.get(i + 1) {
            Some(older) if older.version + 1 != record.version => {
                return broken(format!(
                    "version {} follows version {}: a version is missing",
                    record.version, older.version
                ));
            }
            Some(older) if older.hash != record.prev_hash => {
                return broken(format!(
                    "version {} does not link to version {}",
                    record.version, older.version
                ));
            }
            None if record.version == 1 && !record.prev_hash.is_empty() => {
                return broken("version 1 links to an earlier version".to_owned());
            }
            _ => {}
        }
    }
    HistoryCheck {
        intact: true,
        problem: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Caller;
    use crate::testing::sample_catalog_json;

    fn key() -> ChainKey {
        ChainKey::new(vec![7u8; 32]).unwrap()
    }

    fn chain(n: u64) -> Vec<CatalogVersion> {
        let json = sample_catalog_json();
        let catalog = Catalog::load(&json, "trailgate-").unwrap();
        let mut out: Vec<CatalogVersion> = Vec::new();
        for i in 0..n {
            let next = next_version(
                out.first(),
                &catalog,
                format!("{json}{}", " ".repeat(i as usize)).as_bytes(),
                &Caller::from_arn("arn:aws:iam::123456789012:user/ops"),
                format!("2026-12-0{}T10:00:00Z", i + 1),
                &key(),
            );
            out.insert(0, next);
        }
        out
    }

    #[test]
    fn versions_count_up_and_chain() {
        let versions = chain(3);
        assert_eq!(
            versions.iter().map(|v| v.version).collect::<Vec<_>>(),
            [3, 2, 1]
        );
        assert_eq!(versions[0].prev_hash, versions[1].hash);
        assert_eq!(versions[2].prev_hash, "");
        assert_eq!(versions[0].entries, 1);
        assert_eq!(versions[0].accounts, 1);
        assert!(check_history(&versions, &key()).intact);
    }

    #[test]
    fn an_edited_missing_or_foreign_record_breaks_the_check() {
        let mut edited = chain(3);
        edited[1].pushed_by = "arn:aws:iam::123456789012:user/someone-else".into();
        let check = check_history(&edited, &key());
        assert!(!check.intact);
        assert!(check.problem.unwrap().contains("version 2"));

        let mut missing = chain(3);
        missing.remove(1);
        assert!(
            check_history(&missing, &key())
                .problem
                .unwrap()
                .contains("missing")
        );

        let other = ChainKey::new(vec![8u8; 32]).unwrap();
        assert!(!check_history(&chain(1), &other).intact);
        // A shown window that starts after version 1 is fine: it links to what is not shown.
        assert!(check_history(&chain(3)[..2], &key()).intact);
    }

    #[test]
    fn publishers_are_compared_as_principals() {
        let publishers = Publishers::parse(
            "arn:aws:iam::123456789012:user/Ops, arn:aws:iam::123456789012:role/deploy/CatalogAdmin",
        )
        .unwrap();
        assert!(publishers.allows("arn:aws:iam::123456789012:user/ops"));
        assert!(publishers.allows("arn:aws:iam::123456789012:user/team/OPS"));
        assert!(publishers.allows("arn:aws:sts::123456789012:assumed-role/catalogadmin/ci-run-7"));
        assert!(!publishers.allows("arn:aws:iam::210987654321:user/ops"));
        assert!(!publishers.allows("arn:aws:sts::123456789012:assumed-role/deploy/ops"));
        // Anyone who can assume some role picks its session name: `ops` there is not the user.
        assert!(!publishers.allows("arn:aws:sts::123456789012:assumed-role/anything/ops"));
        assert!(!publishers.allows("arn:aws:iam::123456789012:role/deploy/CatalogAdmin"));
        assert!(!publishers.allows("ops"));
        assert!(Publishers::parse("").unwrap().is_empty());
        assert!(Publishers::parse("arn:aws:iam::123456789012:user/*").is_err());
    }
}
