//! member/template.yaml against the contract the hub's code relies on: the agent role is the
//! only way in, trusted by the hub's function roles by ARN from inside the Organization, able to
//! write nothing but `trailgate-revocations` on managed roles; the names the code uses (agent
//! role, member protection policy) are the template's; and no statement grants a wildcard.

use anyhow::{Context, Result, ensure};
use serde_json::Value as Json;
use serde_json::json;
use trailgate_domain::policy::{AGENT_ROLE_NAME, MEMBER_PROTECTION_POLICY_NAME};
use trailgate_system_tests::template::{
    AGENT_TRUSTED_ROLES, AGENT_WRITER_ROLES, MEMBER_ACCOUNT, ORGANIZATION, Template,
};

fn statements(document: &Json) -> Vec<&Json> {
    match &document["Statement"] {
        Json::Array(items) => items.iter().collect(),
        single @ Json::Object(_) => vec![single],
        _ => Vec::new(),
    }
}

fn list(value: &Json) -> Vec<String> {
    match value {
        Json::String(text) => vec![text.clone()],
        Json::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn policy<'a>(policies: &'a [(String, Json)], name: &str) -> Result<&'a Json> {
    policies
        .iter()
        .find(|(found, _)| found == name)
        .map(|(_, document)| document)
        .with_context(|| format!("no policy {name}"))
}

/// The hub's function roles, by ARN: the only principals a member stack's roles trust.
fn hub_roles() -> Result<Vec<String>> {
    let hub = Template::load()?;
    Ok(AGENT_TRUSTED_ROLES
        .iter()
        .map(|r| hub.reference(r))
        .collect())
}

fn writer_roles() -> Result<Vec<String>> {
    let hub = Template::load()?;
    Ok(AGENT_WRITER_ROLES
        .iter()
        .map(|r| hub.reference(r))
        .collect())
}

/// The agent's trust: [`check_trust`]'s statement, and a second one that lets only the hub's
/// revoking functions tag their sessions, with the write tag and no other.
fn check_agent_trust(trust: &Json) -> Result<()> {
    let found = statements(trust);
    ensure!(found.len() == 2, "two trust statements, got {trust}");
    let assume = json!({"Statement": [found[0]]});
    check_trust(&assume, &hub_roles()?)?;
    let tag = found[1];
    ensure!(list(&tag["Action"]) == ["sts:TagSession"], "{tag}");
    ensure!(
        list(&tag["Principal"]["AWS"]) == writer_roles()?,
        "tags: {tag}"
    );
    let (key, value) = trailgate_domain::policy::AGENT_WRITE_TAG;
    ensure!(
        tag["Condition"]["StringEquals"][format!("aws:RequestTag/{key}")] == value
            && tag["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == ORGANIZATION
            && list(&tag["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]) == [key],
        "the write tag is not pinned: {tag}"
    );
    Ok(())
}

/// One statement: the hub's function roles by ARN, `sts:AssumeRole`, inside the Organization.
fn check_trust(trust: &Json, expected: &[String]) -> Result<()> {
    let found = statements(trust);
    ensure!(found.len() == 1, "one trust statement, got {trust}");
    let statement = found[0];
    let principals = list(&statement["Principal"]["AWS"]);
    ensure!(principals == expected, "trusts {principals:?}");
    ensure!(
        principals
            .iter()
            .all(|p| !p.contains('*') && p.contains(":role/")),
        "principals must be role ARNs, not accounts or wildcards"
    );
    ensure!(
        statement["Condition"]["StringEquals"]["aws:PrincipalOrgID"] == ORGANIZATION,
        "no aws:PrincipalOrgID condition: {statement}"
    );
    ensure!(list(&statement["Action"]) == ["sts:AssumeRole"]);
    Ok(())
}

/// The agent's permissions: reads of this account's roles, writes of inline policies only on
/// managed roles, LookupEvents, and nothing else.
fn check_agent(agent: &Json) -> Result<()> {
    let mut allowed = Vec::new();
    for statement in statements(agent) {
        let actions = list(&statement["Action"]);
        let resources = list(&statement["Resource"]);
        for action in &actions {
            ensure!(!action.contains('*'), "wildcard action {action}");
        }
        if statement["Effect"] != "Allow" {
            continue;
        }
        allowed.extend(actions.iter().cloned());
        let writes = actions
            .iter()
            .any(|a| a == "iam:PutRolePolicy" || a == "iam:DeleteRolePolicy");
        if writes {
            ensure!(
                statement["Condition"]["StringEquals"]["aws:ResourceTag/trailgate:managed"]
                    == "true",
                "writes not limited to managed roles: {statement}"
            );
            let (key, value) = trailgate_domain::policy::AGENT_WRITE_TAG;
            ensure!(
                statement["Condition"]["StringEquals"][format!("aws:PrincipalTag/{key}")] == value,
                "writes not limited to the revoking functions' sessions: {statement}"
            );
        }
        for resource in &resources {
            ensure!(
                resource == "*" && actions == ["cloudtrail:LookupEvents"]
                    || resource.starts_with(&format!("arn:aws:iam::{MEMBER_ACCOUNT}:role/")),
                "{actions:?} on {resource}"
            );
        }
    }
    allowed.sort();
    ensure!(
        allowed
            == [
                "cloudtrail:LookupEvents",
                "iam:DeleteRolePolicy",
                "iam:GetRole",
                "iam:GetRolePolicy",
                "iam:ListAttachedRolePolicies",
                "iam:ListRolePolicies",
                "iam:ListRoleTags",
                "iam:PutRolePolicy",
            ],
        "the agent may {allowed:?}"
    );
    Ok(())
}

#[test]
fn the_agent_role_trusts_only_the_hubs_function_roles_inside_the_organization() -> Result<()> {
    let policies = Template::load_member()?.policies()?;
    check_agent_trust(policy(&policies, "AgentRole.AssumeRolePolicyDocument")?)
        .context("AgentRole")?;
    let reader = policy(&policies, "OrganizationReaderRole.AssumeRolePolicyDocument")?;
    check_trust(reader, &hub_roles()?).context("OrganizationReaderRole")?;
    Ok(())
}

#[test]
fn the_agent_writes_only_revocations_of_managed_roles_and_reads_cloudtrail() -> Result<()> {
    let policies = Template::load_member()?.policies()?;
    check_agent(policy(&policies, "AgentRole.Policies[0]")?)
}

#[test]
fn the_names_the_code_uses_are_the_templates() -> Result<()> {
    let member = Template::load_member()?;
    let hub = Template::load()?;
    let default = |template: &Template, name: &str| {
        template.yaml["Parameters"][name]["Default"]
            .as_str()
            .map(str::to_owned)
    };
    ensure!(default(&member, "AgentRoleName").as_deref() == Some(AGENT_ROLE_NAME));
    ensure!(default(&hub, "AgentRoleName").as_deref() == Some(AGENT_ROLE_NAME));
    ensure!(
        member.properties("MemberProtectionPolicy")?["ManagedPolicyName"].as_str()
            == Some(MEMBER_PROTECTION_POLICY_NAME)
    );
    // The sample member role carries it, as the grant check requires of every member role.
    let attached = member.resolve(&member.properties("SampleTargetRole")?["ManagedPolicyArns"]);
    ensure!(
        list(&attached).contains(&member.reference("MemberProtectionPolicy")),
        "sample member role attaches {attached}"
    );
    Ok(())
}

#[test]
fn a_weakened_agent_is_caught() -> Result<()> {
    // The checks must be able to fail: an agent trusting a whole account, trusting from outside
    // the Organization, writing any role's policies, or allowed one more action.
    let policies = Template::load_member()?.policies()?;
    let trust = policy(&policies, "AgentRole.AssumeRolePolicyDocument")?;
    let mut account = trust.clone();
    account["Statement"][0]["Principal"]["AWS"] =
        Json::String("arn:aws:iam::123456789012:root".into());
    let mut outside = trust.clone();
    outside["Statement"][0]
        .as_object_mut()
        .context("statement")?
        .remove("Condition");
    // Every hub role allowed to tag its session (so to write), or any tag value.
    let mut all_tag = trust.clone();
    all_tag["Statement"][1]["Principal"]["AWS"] = trust["Statement"][0]["Principal"]["AWS"].clone();
    let mut any_value = trust.clone();
    any_value["Statement"][1]["Condition"]["StringEquals"]
        .as_object_mut()
        .context("condition")?
        .remove("aws:RequestTag/trailgate-agent");
    for weakened in [account, outside, all_tag, any_value] {
        ensure!(check_agent_trust(&weakened).is_err(), "{weakened}");
    }
    let agent = policy(&policies, "AgentRole.Policies[0]")?;
    let mut any_role = agent.clone();
    for statement in any_role["Statement"].as_array_mut().context("statements")? {
        if statement["Sid"] == "WriteRevocations" {
            statement
                .as_object_mut()
                .context("statement")?
                .remove("Condition");
        }
    }
    let mut untagged = agent.clone();
    for statement in untagged["Statement"].as_array_mut().context("statements")? {
        if statement["Sid"] == "WriteRevocations" {
            statement["Condition"]["StringEquals"]
                .as_object_mut()
                .context("condition")?
                .remove("aws:PrincipalTag/trailgate-agent");
        }
    }
    let mut more = agent.clone();
    more["Statement"][0]["Action"]
        .as_array_mut()
        .context("actions")?
        .push(Json::String("iam:UpdateAssumeRolePolicy".into()));
    for weakened in [any_role, untagged, more] {
        ensure!(check_agent(&weakened).is_err(), "{weakened}");
    }
    Ok(())
}

/// By effect, with the IAM evaluator: the agent's own policy lets a session of the hub's
/// revoking functions (tagged `trailgate-agent=write`) write a managed role's revocations, and
/// refuses the same write to an untagged session (the grant, context and audit functions'),
/// which may still read them and look up events.
#[test]
fn only_tagged_agent_sessions_write_revocations() -> Result<()> {
    use trailgate_system_tests::iam::{Expect, Matrix, Request};
    let policies = Template::load_member()?.policies()?;
    let agent = policy(&policies, "AgentRole.Policies[0]")?.clone();
    let (key, value) = trailgate_domain::policy::AGENT_WRITE_TAG;
    let role = |name: &str| format!("arn:aws:iam::{MEMBER_ACCOUNT}:role/{name}");
    let managed = role("sample-target-member");
    let request = |function: &str, tagged: bool, action: &str, resource: &str| {
        let mut request = Request::new(
            &format!(
                "arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/{AGENT_ROLE_NAME}/trailgate-{function}"
            ),
            action,
            resource,
        )
        .with("aws:PrincipalArn", role(AGENT_ROLE_NAME));
        if resource.contains(":role/") {
            request = request.with("aws:ResourceTag/trailgate:managed", "true");
        }
        if tagged {
            request = request.with(&format!("aws:PrincipalTag/{key}"), value);
        }
        request.identity = vec![("trailgate-agent".into(), agent.clone())];
        request.resource_account = Some(MEMBER_ACCOUNT.to_owned());
        request
    };
    let mut matrix = Matrix::default();
    for action in ["iam:PutRolePolicy", "iam:DeleteRolePolicy"] {
        matrix.add(
            "agent",
            "revoke writes",
            request("revoke", true, action, &managed),
            Expect::Allow,
        );
        for reader in ["grant", "context", "audit"] {
            matrix.add(
                "agent",
                format!("{reader} cannot write"),
                request(reader, false, action, &managed),
                Expect::Deny,
            );
        }
    }
    // The attack on the tag itself: a reading function asking STS for a write-tagged agent
    // session. The agent's trust lets only the writers tag, so only they get one.
    let trust = policy(&policies, "AgentRole.AssumeRolePolicyDocument")?.clone();
    // The role as the trust document names it (the harness resolves it by logical id).
    let agent_role = trust["Statement"][1]["Resource"]
        .as_str()
        .context("trust resource")?
        .to_owned();
    let hub = Template::load()?;
    for (function, allowed) in [
        ("Revoke", true),
        ("Context", false),
        ("Audit", false),
        ("Grant", false),
    ] {
        let hub_role = hub.reference(&format!("{function}FunctionRole"));
        let mut tag = Request::new(
            &format!("arn:aws:sts::123456789012:assumed-role/trailgate-{function}FunctionRole/x"),
            "sts:TagSession",
            &agent_role,
        )
        .with("aws:PrincipalArn", hub_role.as_str())
        .with("aws:PrincipalOrgID", ORGANIZATION)
        .with(&format!("aws:RequestTag/{key}"), value)
        .with("aws:TagKeys", json!([key]));
        tag.identity = vec![(
            "AdministratorAccess".into(),
            json!({"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}),
        )];
        tag.resource_policy = Some(trust.clone());
        tag.resource_account = Some(MEMBER_ACCOUNT.to_owned());
        matrix.add(
            "agent trust",
            format!("{function} tags its agent session for writing"),
            tag,
            if allowed { Expect::Allow } else { Expect::Deny },
        );
    }
    matrix.add(
        "agent",
        "context reads",
        request("context", false, "iam:GetRolePolicy", &managed),
        Expect::Allow,
    );
    matrix.add(
        "agent",
        "context looks up",
        request("context", false, "cloudtrail:LookupEvents", "*"),
        Expect::Allow,
    );
    let report = matrix.run()?;
    ensure!(
        report.unexpected.is_empty() && report.evaluated() == 14,
        "{} evaluated, unexpected: {:?}",
        report.evaluated(),
        report.unexpected
    );
    Ok(())
}
