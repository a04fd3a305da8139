//! `jitctl catalog check FILE`: validates a catalog file before it is deployed, with every
//! problem reported as `file:line:column: message`.
//!
//! The rules are the functions' own (`trailgate_domain::catalog::Catalog`), so a file that
//! passes here loads at cold start. JSON syntax errors carry serde's position; a broken entry is
//! reported at the line of its `"id"`, and every entry is checked, not just the first bad one.
//! With `--roles`, each entry's role is also checked in IAM against the contract the grant
//! step enforces (`trailgate_domain::service::check_grantable`, the same function), so a role
//! that is untagged, missing or trusted too widely is found before anyone waits for an
//! approval that could never be granted, and each permission set in IAM Identity Center (it
//! exists and is tagged as trailgate's). The grant step checks both again every time.

use std::collections::{HashMap, HashSet};
use trailgate_domain::catalog::Catalog;
use trailgate_domain::error::ErrorKind;
use trailgate_domain::identity::Principal;
use trailgate_domain::ports::{IdentityCenter, Principals, Roles};
use trailgate_domain::request::Assignment;

/// Checks `text` (the contents of `file`) and returns the problems found, empty when valid.
pub fn check(file: &str, text: &str, own_role_prefix: &str) -> Vec<String> {
    let catalog: Catalog = match serde_json::from_str(text) {
        Ok(catalog) => catalog,
        Err(err) => {
            // serde_json appends " at line L column C"; report the position in front instead.
            let message = err.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            return vec![format!("{file}:{}:{}: {message}", err.line(), err.column())];
        }
    };
    let lines = id_lines(text);
    let position = |id: &str| {
        lines
            .get(id)
            .map(|(line, column)| format!("{line}:{column}"))
            .unwrap_or_else(|| "1:1".into())
    };
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for entry in &catalog.entries {
        if !seen.insert(entry.id.as_str()) {
            problems.push(format!(
                "{file}:{}: catalog entry `{}` is defined twice",
                position(&entry.id),
                entry.id
            ));
            continue;
        }
        let single = Catalog {
            people: Vec::new(),
            trusted_session_roles: catalog.trusted_session_roles.clone(),
            entries: vec![entry.clone()],
        };
        if let Err(err) = single.validate(own_role_prefix) {
            problems.push(format!("{file}:{}: {}", position(&entry.id), err.message));
        }
    }
    if catalog.entries.is_empty() {
        problems.push(format!("{file}:1:1: the catalog has no entries"));
    }
    // What no single entry shows: people and principals across entries (one person, one id).
    if problems.is_empty()
        && let Err(err) = catalog.validate(own_role_prefix)
    {
        problems.push(format!("{file}:1:1: {}", err.message));
    }
    problems
}

/// Checks each entry's role of a catalog that passed [`check`] against the grant contract,
/// and that every IAM user the catalog names as a person's principal exists; returns the
/// problems as `file:line:column: entry `id`: message` (or `person `id``). Errs when IAM
/// cannot be asked (credentials, network), which is not a problem of the catalog.
/// Role sessions (Identity Center, SAML) cannot be looked up: they exist only while in use.
pub async fn check_roles<R: Roles + Principals>(
    roles: &R,
    file: &str,
    text: &str,
    contract: trailgate_domain::service::RoleContract<'_>,
) -> anyhow::Result<Vec<String>> {
    let catalog: Catalog = serde_json::from_str(text)?;
    let lines = id_lines(text);
    let mut problems = Vec::new();
    for entry in &catalog.entries {
        // An entry over several member accounts is checked at each grant, through that
        // account's agent role, which this command's credentials cannot assume.
        if entry.permission_set.is_some() {
            // Checked in Identity Center by `check_permission_sets`.
            continue;
        }
        let Some(role_arn) = entry.single_role() else {
            eprintln!(
                "{file}: entry `{}`: {} not checked here (member accounts are checked at grant)",
                entry.id,
                entry.target_label()
            );
            continue;
        };
        let checked = trailgate_domain::service::check_grantable(roles, contract, role_arn).await;
        match checked {
            Ok(()) => {}
            Err(err) if err.kind == ErrorKind::NotGrantable => {
                let (line, column) = lines.get(&entry.id).copied().unwrap_or((1, 1));
                problems.push(format!(
                    "{file}:{line}:{column}: entry `{}`: {}",
                    entry.id, err.message
                ));
            }
            Err(err) => anyhow::bail!("checking role `{role_arn}` in IAM: {}", err.message),
        }
    }
    for (person, arn) in catalog.principals() {
        let Ok(principal @ Principal::IamUser { .. }) = Principal::parse(arn) else {
            continue;
        };
        let name = arn.rsplit('/').next().unwrap_or_default();
        let found = roles
            .iam_user_arn(name)
            .await
            .map_err(|err| anyhow::anyhow!("looking up IAM user `{name}`: {}", err.message))?;
        let (line, column) = lines.get(person).copied().unwrap_or((1, 1));
        match found.as_deref().map(Principal::parse) {
            Some(Ok(actual)) if actual.key() == principal.key() => {}
            Some(_) => problems.push(format!(
                "{file}:{line}:{column}: person `{person}`: `{arn}` is not the IAM user `{name}` ({})",
                found.as_deref().unwrap_or_default()
            )),
            None => problems.push(format!(
                "{file}:{line}:{column}: person `{person}`: IAM user `{arn}` does not exist"
            )),
        }
    }
    Ok(problems)
}

/// Checks each permission-set entry of a catalog that passed [`check`] against the grant's
/// contract for permission sets (`trailgate_domain::service::check_permission_set`, the same
/// function): the permission set exists in its instance and is tagged `trailgate:managed=true`.
/// Problems as in [`check_roles`]; errs when Identity Center cannot be asked.
pub async fn check_permission_sets<I: IdentityCenter>(
    identity_center: &I,
    file: &str,
    text: &str,
) -> anyhow::Result<Vec<String>> {
    let catalog: Catalog = serde_json::from_str(text)?;
    let lines = id_lines(text);
    let mut problems = Vec::new();
    for entry in &catalog.entries {
        let Some(set) = &entry.permission_set else {
            continue;
        };
        // The account and user do not matter to the permission set's own contract.
        let probe = Assignment {
            instance_arn: set.instance_arn.clone(),
            permission_set_arn: set.permission_set_arn.clone(),
            account: String::new(),
            user_id: String::new(),
        };
        match trailgate_domain::service::check_permission_set(identity_center, &probe).await {
            Ok(_) => {}
            Err(err) if err.kind == ErrorKind::NotGrantable => {
                let (line, column) = lines.get(&entry.id).copied().unwrap_or((1, 1));
                problems.push(format!(
                    "{file}:{line}:{column}: entry `{}`: {}",
                    entry.id, err.message
                ));
            }
            Err(err) => anyhow::bail!(
                "checking permission set `{}` in IAM Identity Center: {}",
                set.permission_set_arn,
                err.message
            ),
        }
    }
    Ok(problems)
}

/// The line and column of each entry's `"id": "<value>"`, for pointing at a broken entry.
/// Only the first occurrence of each value is kept; a duplicate is then reported at the first.
fn id_lines(text: &str) -> HashMap<String, (usize, usize)> {
    let pattern = regex::Regex::new(r#""id"\s*:\s*"([^"\\]*)""#).expect("static regex");
    let mut found = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        for capture in pattern.captures_iter(line) {
            let (Some(whole), Some(value)) = (capture.get(0), capture.get(1)) else {
                continue;
            };
            found
                .entry(value.as_str().to_owned())
                .or_insert((index + 1, whole.start() + 1));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(entries: &str) -> String {
        format!("{{\"entries\": [\n{entries}\n]}}\n")
    }

    fn entry(id: &str, role: &str, quorum: u32) -> String {
        format!(
            r#"  {{"id": "{id}",
   "role_arn": "arn:aws:iam::123456789012:role/{role}",
   "max_duration": "PT4H",
   "approvers": [{{"id": "bob", "email": "bob@example.com", "arn": "arn:aws:iam::123456789012:user/bob"}}],
   "quorum": {quorum},
   "requesters": ["arn:aws:iam::123456789012:user/*"]}}"#
        )
    }

    #[tokio::test]
    async fn permission_sets_are_checked_in_identity_center_at_their_entries() {
        use trailgate_domain::testing::{
            INSTANCE_ARN, MemoryIdentityCenter, PERMISSION_SET_ARN, PS_ACCOUNT,
        };
        let ps_entry = |id: &str, set: &str| {
            format!(
                r#"  {{"id": "{id}",
   "permission_set": {{"instance_arn": "{INSTANCE_ARN}", "permission_set_arn": "{set}"}},
   "accounts": ["{PS_ACCOUNT}"],
   "max_duration": "PT4H",
   "approvers": [{{"id": "bob", "email": "bob@example.com", "arn": "arn:aws:iam::123456789012:user/bob"}}],
   "requesters": ["arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_*"]}}"#
            )
        };
        let missing = format!(
            "{}/ps-ffffffffffffffff",
            INSTANCE_ARN.replace("instance", "permissionSet")
        );
        let text = catalog(&format!(
            "{},\n{}",
            ps_entry("prod-admin", PERMISSION_SET_ARN),
            ps_entry("gone", &missing)
        ));
        assert_eq!(check("c.json", &text, "trailgate-"), Vec::<String>::new());
        let center = MemoryIdentityCenter::default();
        let problems = check_permission_sets(&center, "c.json", &text)
            .await
            .unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("c.json:8:4: entry `gone`: permission set")
                && problems[0].contains("does not exist"),
            "{problems:?}"
        );
        // Untagged: nobody meant trailgate to hand it out.
        center
            .permission_sets
            .lock()
            .unwrap()
            .get_mut(PERMISSION_SET_ARN)
            .unwrap()
            .0
            .tags
            .clear();
        let problems = check_permission_sets(&center, "c.json", &text)
            .await
            .unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("entry `prod-admin`")
                && problems[0].contains("trailgate:managed=true"),
            "{problems:?}"
        );
    }

    #[test]
    fn a_valid_catalog_has_no_problems() {
        let text = catalog(&entry("sandbox-admin", "sandbox", 1));
        assert_eq!(check("c.json", &text, "trailgate-"), Vec::<String>::new());
    }

    #[test]
    fn every_broken_entry_is_reported_at_its_id_line() {
        let text = catalog(
            &[
                entry("ok", "sandbox", 1),
                entry("own", "trailgate-GrantRole", 1),
                entry("quorum", "db", 2),
            ]
            .join(",\n"),
        );
        let problems = check("c.json", &text, "trailgate-");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("c.json:8:4: ")
                && problems[0].contains("trailgate's own roles"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("c.json:14:4: ") && problems[1].contains("quorum 2"),
            "{problems:?}"
        );
    }

    #[test]
    fn syntax_errors_and_unknown_fields_carry_their_position() {
        let problems = check(
            "c.json",
            "{\"entries\": [\n  {\"id\": \"x\",,}\n]}",
            "trailgate-",
        );
        assert!(problems[0].starts_with("c.json:2:"), "{problems:?}");
        let unknown = catalog(
            &entry("x", "sandbox", 1)
                .replace("\"quorum\": 1", "\"quorum\": 1, \"colour\": \"red\""),
        );
        let problems = check("c.json", &unknown, "trailgate-");
        assert!(
            problems[0].contains("unknown field `colour`"),
            "{problems:?}"
        );
    }

    #[test]
    fn duplicates_and_empty_catalogs_are_problems() {
        let text = catalog(&[entry("same", "a", 1), entry("same", "b", 1)].join(",\n"));
        assert!(check("c.json", &text, "trailgate-")[0].contains("defined twice"));
        assert!(check("c.json", "{\"entries\": []}", "trailgate-")[0].contains("no entries"));
    }

    #[tokio::test]
    async fn an_approver_who_is_no_iam_user_is_a_problem_at_the_person() {
        use trailgate_domain::testing::{MemoryRoles, contract};
        let roles = MemoryRoles::with_sample_role();
        roles
            .users
            .lock()
            .unwrap()
            .push("arn:aws:iam::123456789012:user/bob".into());
        // A typo names nobody: the check that bob is never his own approver would compare
        // against a principal nobody calls with.
        let text =
            catalog(&entry("good", "sample-target-trailgate", 1)).replace("user/bob", "user/bbo");
        let problems = check_roles(&roles, "c.json", &text, contract())
            .await
            .unwrap();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains(
                "person `bob`: IAM user `arn:aws:iam::123456789012:user/bbo` does not exist"
            ),
            "{problems:#?}"
        );
    }

    #[tokio::test]
    async fn roles_are_checked_against_the_grant_contract_at_their_entries() {
        use trailgate_domain::testing::{MemoryRoles, contract};
        let roles = MemoryRoles::with_sample_role();
        roles
            .users
            .lock()
            .unwrap()
            .push("arn:aws:iam::123456789012:user/bob".into());
        roles.add_role("untagged", &[]);
        roles.add_role("wide", &[("trailgate:managed", "true")]);
        roles.set_trust(
            "wide",
            r#"{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}"#,
        );
        let text = catalog(
            &[
                entry("good", "sample-target-trailgate", 1),
                entry("untagged", "untagged", 1),
                entry("wide", "wide", 1),
                entry("missing", "no-such-role", 1),
            ]
            .join(",\n"),
        );
        assert_eq!(check("c.json", &text, "trailgate-"), Vec::<String>::new());
        let problems = check_roles(&roles, "c.json", &text, contract())
            .await
            .unwrap();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems[0].starts_with("c.json:8:4: entry `untagged`: ")
                && problems[0].contains("is not tagged `trailgate:managed=true`"),
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with("c.json:14:4: entry `wide`: ")
                && problems[1].contains("breaks the trust contract"),
            "{problems:#?}"
        );
        assert!(
            problems[2].starts_with("c.json:20:4: entry `missing`: ")
                && problems[2].contains("does not exist"),
            "{problems:#?}"
        );
    }
}
