//! Behaviour tests of the multi-account rules: which account a request is for, what
//! `GET /catalog` lists, and grant, revoke and the reconciler working per account.

use super::*;
use crate::catalog::{Catalog, Protected};
use crate::error::ErrorKind;
use crate::request::{AccessRequest, NewRequest, Status};
use crate::service::test_support::*;
use crate::service::*;
use crate::testing::*;
use ::time::Duration;
use futures_executor::executor::block_on;

/// `prod-admin`: role `admin` in MEMBER_A and MEMBER_B by id; `prod-ops`: role `ops` in every
/// account under PROD_OU.
fn org_catalog_json() -> String {
    let approvers = r#"[{"id": "bob", "email": "bob@example.com", "arn": "arn:aws:iam::123456789012:user/bob"}]"#;
    format!(
        r#"{{"entries": [
        {{"id": "prod-admin", "role_name": "admin", "accounts": ["{MEMBER_A}", "{MEMBER_B}"],
          "max_duration": "PT4H", "approvers": {approvers}, "quorum": 1,
          "requesters": ["arn:aws:iam::123456789012:user/*"]}},
        {{"id": "prod-ops", "role_name": "ops", "accounts": ["{PROD_OU}"],
          "max_duration": "PT4H", "approvers": {approvers}, "quorum": 1,
          "requesters": ["arn:aws:iam::123456789012:user/*"]}},
        {{"id": "sandbox-admin", "role_arn": "{SAMPLE_ROLE}",
          "max_duration": "PT4H", "approvers": {approvers}, "quorum": 1,
          "requesters": ["arn:aws:iam::123456789012:user/*"]}}
    ]}}"#
    )
}

fn org_catalog() -> Catalog {
    Catalog::load_protected(&org_catalog_json(), &PROTECTED).unwrap()
}

fn asking(catalog_id: &str, account: Option<&str>) -> NewRequest {
    NewRequest {
        catalog_id: catalog_id.into(),
        account: account.map(str::to_owned),
        ..new_request()
    }
}

fn resolve(accounts: &MemoryAccounts, input: &NewRequest) -> crate::error::Result<Target> {
    block_on(resolve_target(accounts, &org_catalog(), &PROTECTED, input))
}

fn refusal(accounts: &MemoryAccounts, input: &NewRequest) -> String {
    let err = resolve(accounts, input).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidRequest, "{err}");
    assert_eq!(err.field.as_deref(), Some("account"), "{err}");
    err.message
}

#[test]
fn a_request_names_the_account_and_gets_that_accounts_role() {
    let accounts = MemoryAccounts::default();
    let target = resolve(&accounts, &asking("prod-admin", Some(MEMBER_B))).unwrap();
    assert_eq!(
        target.role_arn(),
        format!("arn:aws:iam::{MEMBER_B}:role/admin")
    );
    let through_ou = resolve(&accounts, &asking("prod-ops", Some(MEMBER_A))).unwrap();
    assert_eq!(
        through_ou.role_arn(),
        format!("arn:aws:iam::{MEMBER_A}:role/ops")
    );
    // A one-role entry needs no account, and accepts its own.
    let hub = resolve(&accounts, &asking("sandbox-admin", None)).unwrap();
    assert_eq!(hub.role_arn(), SAMPLE_ROLE);
    assert!(resolve(&accounts, &asking("sandbox-admin", Some(HUB_ACCOUNT))).is_ok());
}

#[test]
fn every_wrong_account_is_a_400_naming_it() {
    let accounts = MemoryAccounts::default();
    let cases = [
        (asking("prod-admin", None), "name one with `account`"),
        (asking("prod-admin", Some("12345")), "not a 12-digit"),
        (
            asking("prod-admin", Some("444444444444")),
            "not in the Organization",
        ),
        (
            asking("prod-ops", Some("333333333333")),
            "SUSPENDED in the Organization",
        ),
        (
            asking("prod-ops", Some(MEMBER_B)),
            "does not cover account 222222222222",
        ),
        (
            asking("prod-admin", Some(MANAGEMENT_ACCOUNT)),
            "account 999999999999 is protected",
        ),
        (
            asking("sandbox-admin", Some(MEMBER_A)),
            "in account 123456789012 only",
        ),
    ];
    for (input, expected) in cases {
        let message = refusal(&accounts, &input);
        assert!(message.contains(expected), "{expected}: {message}");
    }
}

#[test]
fn the_management_account_is_refused_even_when_the_catalog_does_not_protect_it() {
    // The Organization names its management account; a hub configured without it still
    // refuses it, from what Organizations says.
    let protected = Protected {
        accounts: Vec::new(),
        ..PROTECTED.clone()
    };
    let json = org_catalog_json().replace(MEMBER_B, MANAGEMENT_ACCOUNT);
    let catalog = Catalog::load_protected(&json, &protected).unwrap();
    let err = block_on(resolve_target(
        &MemoryAccounts::default(),
        &catalog,
        &protected,
        &asking("prod-admin", Some(MANAGEMENT_ACCOUNT)),
    ))
    .unwrap_err();
    assert!(err.message.contains("management account"), "{err}");
}

#[test]
fn an_account_without_the_agent_role_is_refused_before_anything_is_recorded() {
    let accounts = MemoryAccounts::default();
    accounts.unreachable.lock().unwrap().push(MEMBER_A.into());
    let message = refusal(&accounts, &asking("prod-admin", Some(MEMBER_A)));
    assert!(
        message.contains("no `trailgate-agent` role") && message.contains(MEMBER_A),
        "{message}"
    );
    assert!(resolve(&accounts, &asking("prod-admin", Some(MEMBER_B))).is_ok());
}

#[test]
fn without_an_organization_only_the_hubs_roles_resolve() {
    let accounts = MemoryAccounts::default();
    *accounts.organization.lock().unwrap() = None;
    let message = refusal(&accounts, &asking("prod-admin", Some(MEMBER_A)));
    assert!(message.contains("belongs to no Organization"), "{message}");
    assert!(resolve(&accounts, &asking("sandbox-admin", None)).is_ok());
}

#[test]
fn the_catalog_refuses_protected_accounts_the_agent_role_and_mixed_forms() {
    let protected = Protected {
        accounts: vec![MANAGEMENT_ACCOUNT.into(), HUB_ACCOUNT.into()],
        ..PROTECTED.clone()
    };
    // With the hub protected, its sample role is no longer requestable.
    let err = Catalog::load_protected(&org_catalog_json(), &protected).unwrap_err();
    assert!(err.message.contains("123456789012 is protected"), "{err}");
    let cases = [
        (
            org_catalog_json().replace(MEMBER_B, MANAGEMENT_ACCOUNT),
            "999999999999 is protected",
        ),
        (
            org_catalog_json().replace(
                "\"role_name\": \"ops\"",
                "\"role_name\": \"trailgate-agent\"",
            ),
            "agent role",
        ),
        (
            org_catalog_json().replace(PROD_OU, "ou-x"),
            "neither a 12-digit account id nor an OU id",
        ),
        (
            org_catalog_json().replace(
                "\"role_name\": \"admin\"",
                &format!("\"role_arn\": \"{SAMPLE_ROLE}\", \"role_name\": \"admin\""),
            ),
            "not both",
        ),
        (
            org_catalog_json().replace(&format!(", \"accounts\": [\"{PROD_OU}\"]"), ""),
            "names the accounts it covers",
        ),
    ];
    for (json, expected) in cases {
        let err = Catalog::load_protected(&json, &PROTECTED).unwrap_err();
        assert!(err.message.contains(expected), "{expected}: {err}");
    }
}

#[test]
fn the_catalog_lists_the_accounts_each_entry_may_be_requested_in() {
    let accounts = MemoryAccounts::default();
    let listed = block_on(requestable(
        &accounts,
        &org_catalog(),
        &PROTECTED,
        "arn:aws:iam::123456789012:user/alice",
    ))
    .unwrap();
    let ids = |index: usize| -> Vec<String> {
        listed[index]["accounts_available"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(0), [MEMBER_A, MEMBER_B]);
    // Through the OU: the active account only, not the suspended one.
    assert_eq!(ids(1), [MEMBER_A]);
    assert_eq!(listed[1]["accounts_available"][0]["name"], "prod");
    assert_eq!(ids(2), [HUB_ACCOUNT]);
    assert_eq!(*accounts.reads.lock().unwrap(), 1);
    // Nobody else sees anything, and the Organization is not read for them.
    let stranger = block_on(requestable(
        &accounts,
        &org_catalog(),
        &PROTECTED,
        "arn:aws:iam::999999999999:user/mallory",
    ))
    .unwrap();
    assert!(stranger.is_empty());
    assert_eq!(*accounts.reads.lock().unwrap(), 1);
}

/// An ACTIVE request for `admin` in `account`, seeded in `ledger`.
fn active_in(ledger: &MemoryLedger, roles: &MemoryRoles, id: &str, account: &str) -> String {
    let catalog = org_catalog();
    let entry = catalog.entry("prod-admin").unwrap();
    let target = resolve(
        &MemoryAccounts::default(),
        &asking("prod-admin", Some(account)),
    )
    .unwrap();
    let mut request = AccessRequest::create_for(
        id.into(),
        &alice(),
        &asking("prod-admin", Some(account)),
        entry,
        &target,
        now(),
    )
    .unwrap();
    request.status = Status::Approved;
    let id = seed(ledger, request).id;
    block_on(activate(ledger, roles, &catalog, contract(), &id, now())).unwrap();
    id
}

fn member_roles() -> MemoryRoles {
    let roles = MemoryRoles::default();
    for account in [MEMBER_A, MEMBER_B] {
        roles.add_role(
            &format!("arn:aws:iam::{account}:role/admin"),
            &[("trailgate:managed", "true")],
        );
    }
    roles
}

#[test]
fn a_member_role_needs_its_own_accounts_protection_policy() {
    let roles = member_roles();
    let role = format!("arn:aws:iam::{MEMBER_A}:role/admin");
    block_on(check_grantable(&roles, contract(), &role)).unwrap();
    // The hub's protection policy means nothing in another account.
    roles.detach_all(&role);
    roles
        .roles
        .lock()
        .unwrap()
        .get_mut(&role)
        .unwrap()
        .0
        .attached_policies = vec![PROTECTION_POLICY.into()];
    let err = block_on(check_grantable(&roles, contract(), &role)).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotGrantable);
    assert!(
        err.message
            .contains("111111111111:policy/trailgate-member-protection"),
        "{err}"
    );
    // A protected account's role is refused at grant even if it is tagged and trusts us.
    let management = format!("arn:aws:iam::{MANAGEMENT_ACCOUNT}:role/admin");
    roles.add_role(&management, &[("trailgate:managed", "true")]);
    let err = block_on(check_grantable(&roles, contract(), &management)).unwrap_err();
    assert!(err.message.contains("protected"), "{err}");
}

#[test]
fn revoking_in_one_account_leaves_the_same_role_name_in_another_untouched() {
    let (ledger, roles) = (MemoryLedger::default(), member_roles());
    let in_a = active_in(&ledger, &roles, "r-aaaaaaaaaaaaaaaaaaaaaaaaaa", MEMBER_A);
    let in_b = active_in(&ledger, &roles, "r-bbbbbbbbbbbbbbbbbbbbbbbbbb", MEMBER_B);
    block_on(revoke(&ledger, &roles, &in_a, "early", now())).unwrap();
    let deny_a = roles
        .policy(
            &format!("arn:aws:iam::{MEMBER_A}:role/admin"),
            "trailgate-revocations",
        )
        .expect("the deny is written in account A");
    assert!(deny_a.contains(&in_a));
    assert_eq!(
        roles.policy(
            &format!("arn:aws:iam::{MEMBER_B}:role/admin"),
            "trailgate-revocations"
        ),
        None,
        "account B's role is not touched"
    );
    assert_eq!(ledger.record(&in_b).unwrap().status, Status::Active);
}

#[test]
fn one_accounts_iam_failing_never_blocks_the_reconciler_in_another() {
    let (ledger, roles) = (MemoryLedger::default(), member_roles());
    let in_a = active_in(&ledger, &roles, "r-aaaaaaaaaaaaaaaaaaaaaaaaaa", MEMBER_A);
    let in_b = active_in(&ledger, &roles, "r-bbbbbbbbbbbbbbbbbbbbbbbbbb", MEMBER_B);
    roles.failing_accounts.lock().unwrap().push(MEMBER_A.into());
    let notifier = MemoryNotifier::default();
    let report = block_on(reconcile(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
        &notifier,
        now() + Duration::hours(2) + Duration::minutes(1),
    ))
    .unwrap();
    assert_eq!(report.revoked, std::slice::from_ref(&in_b));
    assert!(
        report.failed.iter().any(|(what, _)| *what == in_a),
        "{report:?}"
    );
    assert!(
        roles
            .policy(
                &format!("arn:aws:iam::{MEMBER_B}:role/admin"),
                "trailgate-revocations"
            )
            .is_some_and(|deny| deny.contains(&in_b))
    );
    // The failed account's grant is revoked in the ledger (REVOKED comes first) and its deny
    // waits for the next run, which succeeds once the account answers again.
    roles.failing_accounts.lock().unwrap().clear();
    let again = block_on(reconcile(
        &ledger,
        &roles,
        &MemoryIdentityCenter::default(),
        &notifier,
        now() + Duration::hours(2) + Duration::minutes(6),
    ))
    .unwrap();
    assert!(again.failed.is_empty(), "{again:?}");
    assert!(
        roles
            .policy(
                &format!("arn:aws:iam::{MEMBER_A}:role/admin"),
                "trailgate-revocations"
            )
            .is_some_and(|deny| deny.contains(&in_a))
    );
}

#[test]
fn an_edited_record_pointing_at_another_account_is_never_granted() {
    // Whoever can write the ledger points an approved request at a role the entry does not
    // cover (a third account) or at the management account: activation refuses both, and the
    // request stays APPROVED with nothing written to any role.
    let roles = member_roles();
    for account in ["444444444444", MANAGEMENT_ACCOUNT] {
        let arn = format!("arn:aws:iam::{account}:role/admin");
        roles.add_role(&arn, &[("trailgate:managed", "true")]);
        let ledger = MemoryLedger::default();
        let catalog = org_catalog();
        let entry = catalog.entry("prod-admin").unwrap();
        let target = resolve(
            &MemoryAccounts::default(),
            &asking("prod-admin", Some(MEMBER_A)),
        )
        .unwrap();
        let mut request = AccessRequest::create_for(
            "r-aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            &alice(),
            &asking("prod-admin", Some(MEMBER_A)),
            entry,
            &target,
            now(),
        )
        .unwrap();
        request.status = Status::Approved;
        request.role_arn = arn.clone();
        let id = seed(&ledger, request).id;
        let err =
            block_on(activate(&ledger, &roles, &catalog, contract(), &id, now())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotGrantable, "{account}: {err}");
        assert_eq!(ledger.record(&id).unwrap().status, Status::Approved);
        assert_eq!(*roles.writes.lock().unwrap(), 0);
    }
}
