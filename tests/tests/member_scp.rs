//! The member accounts' sample SCP (`policies/member-guard-scp.json`) evaluated by the IAM
//! simulator (`@cloud-copilot/iam-simulate`, tests/iam): in a member account, nobody but the agent
//! role writes managed roles' inline policies (where `trailgate-revocations` lives), nobody but
//! the deployer changes the agent role or the member protection policy, and a granted session
//! cannot chain; an administrator's ordinary work, the agent's revokes and the deployer's
//! deploys still pass. Weakened copies of the SCP must be caught.

use anyhow::{Result, ensure};
use serde_json::{Value, json};
use trailgate_system_tests::iam::{Expect, Matrix, Request};
use trailgate_system_tests::template::{MEMBER_ACCOUNT, root};

const AGENT: &str = "trailgate-agent";
const NAME: &str = "member-guard-scp";

fn deployer() -> String {
    format!("arn:aws:iam::{MEMBER_ACCOUNT}:role/stackset-execution")
}

/// policies/member-guard-scp.json with its placeholders filled for [`MEMBER_ACCOUNT`].
fn member_scp() -> Result<Value> {
    let text = std::fs::read_to_string(root().join("policies").join("member-guard-scp.json"))?;
    let filled = text
        .replace("${Partition}", "aws")
        .replace("${AgentRoleName}", AGENT)
        .replace("${DeployRoleArn}", &deployer());
    ensure!(
        !filled.contains("${"),
        "an unknown placeholder in {NAME}.json"
    );
    Ok(serde_json::from_str(&filled)?)
}

fn allow_all() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
}

fn role(name: &str) -> String {
    format!("arn:aws:iam::{MEMBER_ACCOUNT}:role/{name}")
}

/// `principal` (whose role or user ARN is `principal_arn`) with AdministratorAccess, under
/// FullAWSAccess and the member guard, calling `action` on `resource`.
fn admin(
    scp: &Value,
    principal: &str,
    principal_arn: &str,
    action: &str,
    resource: &str,
) -> Request {
    let mut request =
        Request::new(principal, action, resource).with("aws:PrincipalArn", principal_arn);
    request.identity = vec![("AdministratorAccess".into(), allow_all())];
    request.scps = vec![
        vec![("FullAWSAccess".into(), allow_all())],
        vec![
            ("FullAWSAccess".into(), allow_all()),
            (NAME.into(), scp.clone()),
        ],
    ];
    request.resource_account = Some(MEMBER_ACCOUNT.to_owned());
    request
}

fn matrix(scp: &Value) -> Matrix {
    let mut matrix = Matrix::default();
    let user = format!("arn:aws:iam::{MEMBER_ACCOUNT}:user/admin");
    let managed = role("sample-target-member");
    let unmanaged = role("app-role");
    let agent_session =
        format!("arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/{AGENT}/trailgate-revoke");
    let deny = |sid: &str| Expect::deny_by(format!("scp/{NAME}/{sid}"));
    // A role named like Identity Center's passes for an Identity Center session (its maker
    // chooses the session name trailgate resolves to a user), under any path.
    for lookalike in [
        "AWSReservedSSO_Admin_0a1b2c3d4e5f6a7b",
        "x/AWSReservedSSO_Admin_1",
    ] {
        matrix.add(
            NAME,
            format!("an administrator: iam:CreateRole {lookalike}"),
            admin(scp, &user, &user, "iam:CreateRole", &role(lookalike)),
            deny("NobodyMakesIdentityCenterLookalikeRoles"),
        );
    }
    for action in ["iam:PutRolePolicy", "iam:DeleteRolePolicy"] {
        matrix.add(
            NAME,
            format!("an administrator: {action} on a managed role"),
            admin(scp, &user, &user, action, &managed)
                .with("aws:ResourceTag/trailgate:managed", "true"),
            deny("OnlyTheAgentWritesManagedRolesInlinePolicies"),
        );
        matrix.add(
            NAME,
            format!("an administrator's role session: {action} on a managed role"),
            admin(
                scp,
                &format!("arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/Admin/alice"),
                &role("Admin"),
                action,
                &managed,
            )
            .with("aws:ResourceTag/trailgate:managed", "true"),
            deny("OnlyTheAgentWritesManagedRolesInlinePolicies"),
        );
        matrix.add(
            NAME,
            format!("the agent: {action} on a managed role"),
            admin(scp, &agent_session, &role(AGENT), action, &managed)
                .with("aws:ResourceTag/trailgate:managed", "true"),
            Expect::Allow,
        );
        matrix.add(
            NAME,
            format!("an administrator: {action} on any other role"),
            admin(scp, &user, &user, action, &unmanaged),
            Expect::Allow,
        );
    }
    for action in [
        "iam:UpdateAssumeRolePolicy",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:DeleteRole",
        "iam:TagRole",
        "iam:PassRole",
    ] {
        matrix.add(
            NAME,
            format!("an administrator: {action} on the agent role"),
            admin(scp, &user, &user, action, &role(AGENT)),
            deny("NobodyButTheDeployerChangesTheAgent"),
        );
        matrix.add(
            NAME,
            format!("the deployer: {action} on the agent role"),
            admin(
                scp,
                &format!("arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/stackset-execution/cfn"),
                &deployer(),
                action,
                &role(AGENT),
            ),
            Expect::Allow,
        );
    }
    matrix.add(
        NAME,
        "the agent on itself",
        admin(
            scp,
            &agent_session,
            &role(AGENT),
            "iam:UpdateAssumeRolePolicy",
            &role(AGENT),
        ),
        deny("NobodyButTheDeployerChangesTheAgent"),
    );
    matrix.add(
        NAME,
        "an administrator: a new version of the member protection",
        admin(
            scp,
            &user,
            &user,
            "iam:CreatePolicyVersion",
            &format!("arn:aws:iam::{MEMBER_ACCOUNT}:policy/trailgate-member-protection"),
        ),
        deny("NobodyButTheDeployerChangesTheMemberProtection"),
    );
    let granted =
        format!("arn:aws:sts::{MEMBER_ACCOUNT}:assumed-role/sample-target-member/tg-alice-r-x");
    matrix.add(
        NAME,
        "a granted session chaining",
        admin(scp, &granted, &managed, "sts:AssumeRole", &role("other"))
            .with("aws:PrincipalTag/trailgate-request", "r-x"),
        deny("GrantedSessionsDoNotChain"),
    );
    matrix
}

#[test]
fn the_member_guard_holds_and_lets_trailgate_work() -> Result<()> {
    let report = matrix(&member_scp()?).run()?;
    ensure!(
        report.unexpected.is_empty(),
        "{} unexpected of {}:\n{}",
        report.unexpected.len(),
        report.evaluated(),
        report.unexpected.join("\n")
    );
    ensure!(
        report.evaluated() >= 20,
        "only {} cases",
        report.evaluated()
    );
    Ok(())
}

#[test]
fn a_weakened_member_guard_is_caught() -> Result<()> {
    let scp = member_scp()?.to_string();
    for (what, from, to) in [
        // The exception widened to every role: administrators' sessions slip through.
        (
            "any role may write",
            ":role/trailgate-agent\",",
            ":role/*\",",
        ),
        // The tag condition turned around: the managed roles are no longer covered.
        (
            "wrong tag value",
            "\"aws:ResourceTag/trailgate:managed\":\"true\"",
            "\"aws:ResourceTag/trailgate:managed\":\"false\"",
        ),
        // The agent no longer excepted from its own protection.
        (
            "agent not excepted",
            "\"arn:aws:iam::*:role/trailgate-agent\",",
            "",
        ),
    ] {
        ensure!(scp.contains(from), "{what}: `{from}` not in the SCP");
        let weak: Value = serde_json::from_str(&scp.replacen(from, to, 1))?;
        let unexpected = matrix(&weak).run()?.unexpected.len();
        ensure!(unexpected > 0, "{what}: the weakened SCP was not caught");
    }
    Ok(())
}
