//! Issue 12: an independent IAM evaluator (`@cloud-copilot/iam-simulate`, tests/src/iam.rs)
//! over every document trailgate writes or deploys, against a matrix of requests with the
//! outcome each must have:
//! - the revocations policy as the revoke use case writes it: the revoked request's session is
//!   explicitly denied on every representative action, another request's session on the same
//!   role is not touched;
//! - the session policy and session tags exactly as the vend use case sends them to AssumeRole:
//!   every session is denied after `expires_at`, and none can chain into another role;
//! - the trust-policy contract (`policy::check_trust_policy`, the sample role's trust policy);
//! - each function's role policy from template.yaml (what it needs allowed, the rest denied),
//!   `TrailgateProtectionPolicy`, and the sample SCP `policies/guard-scp.json`;
//! - the capacity of one role over a day of 500 revocations.
//!
//! The check can fail: weakened copies of the deny, the session policy and the trust contract
//! are each caught. The per-document figure is SECURITY.md's table, which must match.

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::{Value, json};
use std::future::Future;
use trailgate_domain::catalog::Catalog;
use trailgate_domain::policy::{self, REVOCATIONS_POLICY_NAME};
use trailgate_domain::ports::AssumeRequest;
use trailgate_domain::request::Status;
use trailgate_domain::service;
use trailgate_domain::testing::{
    MemoryIssuer, MemoryLedger, MemoryNotifier, MemoryRoles, alice, now, pending_request,
    sample_catalog_json, seed,
};
use trailgate_system_tests::iam::{Expect, Matrix, Report, Request};
use trailgate_system_tests::template::{ACCOUNT, REGION, STACK, Template, root};

const ROLE: &str = "sample-target-trailgate";
const REVOKED: &str = "r-aaaaaaaaaaaaaaaaaaaaaaaaaa";
const OTHER: &str = "r-bbbbbbbbbbbbbbbbbbbbbbbbbb";
const EXPIRES_AT: &str = "2026-11-21T12:00:00Z";
/// Within the grant (vended at 10:00, revoked at 10:30).
const DURING: &str = "2026-11-21T11:00:00Z";
const AFTER: &str = "2026-11-21T12:00:01Z";
const VENDED_AT: &str = "2026-11-21T10:00:00Z";

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn arn_role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

fn function_role(function: &str) -> String {
    arn_role(&format!("{STACK}-{function}Role"))
}

fn function_session(function: &str) -> String {
    format!("arn:aws:sts::{ACCOUNT}:assumed-role/{STACK}-{function}Role/{STACK}-{function}")
}

fn parse(text: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("not JSON: {text}"))
}

/// Every document the matrix judges, as trailgate writes or deploys it.
#[derive(Clone)]
struct Docs {
    /// `trailgate-revocations` on the sample role after the revoke use case revoked REVOKED.
    revocations: Value,
    /// What the vend use case sent to AssumeRole for each request.
    assume_revoked: AssumeRequest,
    assume_other: AssumeRequest,
    /// The sample role's trust policy from template.yaml.
    sample_trust: Value,
    /// The protection policy from template.yaml.
    protection: Value,
    /// template.yaml, for the functions' role policies.
    template: std::sync::Arc<Template>,
    /// policies/guard-scp.json with its placeholders filled in.
    scp: Value,
}

/// Vends credentials for two ACTIVE requests on the sample role, then revokes the first, all
/// through the domain's own use cases, and reads template.yaml and the SCP.
fn documents() -> Result<Docs> {
    let ledger = MemoryLedger::default();
    let roles = MemoryRoles::with_sample_role();
    let issuer = MemoryIssuer::default();
    let catalog =
        Catalog::load(&sample_catalog_json(), "trailgate-").map_err(|e| anyhow!("{e}"))?;
    for id in [REVOKED, OTHER] {
        let mut request = pending_request();
        request.id = id.to_owned();
        request.status = Status::Active;
        request.expires_at = Some(EXPIRES_AT.to_owned());
        seed(&ledger, request);
        block_on(service::vend(
            &ledger,
            &issuer,
            &catalog,
            &alice(),
            id,
            now(),
        ))
        .map_err(|e| anyhow!("vend {id}: {e}"))?;
    }
    block_on(service::revoke(
        &ledger,
        &roles,
        REVOKED,
        "revoked early by the requester",
        now() + time::Duration::minutes(30),
    ))
    .map_err(|e| anyhow!("revoke: {e}"))?;
    let revocations = roles
        .policy(ROLE, REVOCATIONS_POLICY_NAME)
        .context("the revoke wrote no revocations policy")?;
    let calls = issuer.calls.lock().expect("lock").clone();
    ensure!(calls.len() == 2, "{calls:?}");
    let template = Template::load()?;
    let trust = template.resolve(
        template
            .properties("SampleTargetRole")?
            .get("AssumeRolePolicyDocument")
            .context("no trust policy")?,
    );
    let protection = template.resolve(
        template
            .properties("TrailgateProtectionPolicy")?
            .get("PolicyDocument")
            .context("no protection policy")?,
    );
    Ok(Docs {
        revocations: parse(&revocations)?,
        assume_revoked: calls[0].clone(),
        assume_other: calls[1].clone(),
        sample_trust: trust,
        protection,
        template: std::sync::Arc::new(template),
        scp: guard_scp()?,
    })
}

/// policies/guard-scp.json for the stack `trailgate` in the test account.
fn guard_scp() -> Result<Value> {
    let text = std::fs::read_to_string(root().join("policies").join("guard-scp.json"))?;
    let filled = text
        .replace("${Partition}", "aws")
        .replace("${AccountId}", ACCOUNT)
        .replace("${StackName}", STACK)
        .replace("${DeployRoleArn}", &deploy_role());
    ensure!(
        !filled.contains("${"),
        "an unknown placeholder in guard-scp.json"
    );
    parse(&filled)
}

fn deploy_role() -> String {
    arn_role("trailgate-deployer")
}

fn allow_all() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
}

/// SCPs as an organisation has them: FullAWSAccess at the root and on the account, and the
/// guard on the account.
fn scps(docs: &Docs) -> Vec<Vec<(String, Value)>> {
    vec![
        vec![("FullAWSAccess".into(), allow_all())],
        vec![
            ("FullAWSAccess".into(), allow_all()),
            ("guard-scp".into(), docs.scp.clone()),
        ],
    ]
}

/// A granted session's request exactly as STS would see it from the AssumeRole call: the
/// session tags become principal tags, the source identity `aws:SourceIdentity`, the session
/// policy the session's. The role is an administrator: the revocation must hold whatever the
/// role may do. The protection policy and the revocations policy are its other policies.
fn session(docs: &Docs, assume: &AssumeRequest, action: &str, resource: &str, at: &str) -> Request {
    let role = assume.role_arn.rsplit('/').next().unwrap_or_default();
    let mut request = Request::new(
        &format!(
            "arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{}",
            assume.session_name
        ),
        action,
        resource,
    )
    .with("aws:SourceIdentity", assume.source_identity.as_str())
    .with("aws:PrincipalArn", assume.role_arn.as_str())
    .with("aws:CurrentTime", at)
    .with("aws:TokenIssueTime", VENDED_AT);
    for (key, value) in &assume.tags {
        request = request.with(&format!("aws:PrincipalTag/{key}"), value.as_str());
    }
    request.identity = vec![
        ("AdministratorAccess".into(), allow_all()),
        ("TrailgateProtectionPolicy".into(), docs.protection.clone()),
        (REVOCATIONS_POLICY_NAME.into(), docs.revocations.clone()),
    ];
    request.session = Some(parse(&assume.session_policy).expect("session policy"));
    request.scps = scps(docs);
    request
}

/// Representative actions across services, with a resource of the right type; none is one of
/// trailgate's own resources, so only a revocation or the expiry may deny them.
fn representative_actions() -> Vec<(&'static str, String)> {
    let a = ACCOUNT;
    let r = REGION;
    let mut actions: Vec<(&str, String)> = vec![
        // IAM
        ("iam:CreateUser", format!("arn:aws:iam::{a}:user/mallory")),
        (
            "iam:CreateAccessKey",
            format!("arn:aws:iam::{a}:user/alice"),
        ),
        (
            "iam:AttachUserPolicy",
            format!("arn:aws:iam::{a}:user/alice"),
        ),
        ("iam:PutUserPolicy", format!("arn:aws:iam::{a}:user/alice")),
        ("iam:CreateRole", format!("arn:aws:iam::{a}:role/backdoor")),
        ("iam:PassRole", format!("arn:aws:iam::{a}:role/app")),
        ("iam:GetRole", format!("arn:aws:iam::{a}:role/app")),
        ("iam:ListRoles", "*".into()),
        (
            "iam:CreateLoginProfile",
            format!("arn:aws:iam::{a}:user/mallory"),
        ),
        (
            "iam:UpdateAssumeRolePolicy",
            format!("arn:aws:iam::{a}:role/app"),
        ),
        // S3
        (
            "s3:GetObject",
            "arn:aws:s3:::customer-data/export.csv".into(),
        ),
        ("s3:PutObject", "arn:aws:s3:::customer-data/drop.bin".into()),
        (
            "s3:DeleteObject",
            "arn:aws:s3:::customer-data/export.csv".into(),
        ),
        ("s3:ListBucket", "arn:aws:s3:::customer-data".into()),
        ("s3:PutBucketPolicy", "arn:aws:s3:::customer-data".into()),
        ("s3:DeleteBucket", "arn:aws:s3:::customer-data".into()),
        ("s3:ListAllMyBuckets", "*".into()),
        // EC2
        ("ec2:DescribeInstances", "*".into()),
        (
            "ec2:RunInstances",
            format!("arn:aws:ec2:{r}:{a}:instance/*"),
        ),
        (
            "ec2:TerminateInstances",
            format!("arn:aws:ec2:{r}:{a}:instance/i-0123456789abcdef0"),
        ),
        (
            "ec2:StopInstances",
            format!("arn:aws:ec2:{r}:{a}:instance/i-0123456789abcdef0"),
        ),
        (
            "ec2:AuthorizeSecurityGroupIngress",
            format!("arn:aws:ec2:{r}:{a}:security-group/sg-0123456789abcdef0"),
        ),
        (
            "ec2:CreateKeyPair",
            format!("arn:aws:ec2:{r}:{a}:key-pair/backdoor"),
        ),
        ("ec2:DescribeSecurityGroups", "*".into()),
        // STS (role chaining itself is the session policy's matter, see the chaining rows)
        ("sts:DecodeAuthorizationMessage", "*".into()),
        ("sts:GetAccessKeyInfo", "*".into()),
        // KMS
        (
            "kms:Decrypt",
            format!("arn:aws:kms:{r}:{a}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ),
        (
            "kms:Encrypt",
            format!("arn:aws:kms:{r}:{a}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ),
        (
            "kms:ScheduleKeyDeletion",
            format!("arn:aws:kms:{r}:{a}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ),
        (
            "kms:PutKeyPolicy",
            format!("arn:aws:kms:{r}:{a}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ),
        (
            "kms:CreateGrant",
            format!("arn:aws:kms:{r}:{a}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        ),
        ("kms:CreateKey", "*".into()),
        ("kms:ListKeys", "*".into()),
        // Secrets Manager
        (
            "secretsmanager:GetSecretValue",
            format!("arn:aws:secretsmanager:{r}:{a}:secret:prod-db-AbCdEf"),
        ),
        (
            "secretsmanager:PutSecretValue",
            format!("arn:aws:secretsmanager:{r}:{a}:secret:prod-db-AbCdEf"),
        ),
        (
            "secretsmanager:DeleteSecret",
            format!("arn:aws:secretsmanager:{r}:{a}:secret:prod-db-AbCdEf"),
        ),
        ("secretsmanager:ListSecrets", "*".into()),
        // Lambda
        (
            "lambda:InvokeFunction",
            format!("arn:aws:lambda:{r}:{a}:function:payments"),
        ),
        (
            "lambda:UpdateFunctionCode",
            format!("arn:aws:lambda:{r}:{a}:function:payments"),
        ),
        (
            "lambda:CreateFunction",
            format!("arn:aws:lambda:{r}:{a}:function:backdoor"),
        ),
        (
            "lambda:AddPermission",
            format!("arn:aws:lambda:{r}:{a}:function:payments"),
        ),
        (
            "lambda:GetFunction",
            format!("arn:aws:lambda:{r}:{a}:function:payments"),
        ),
        ("lambda:ListFunctions", "*".into()),
        // CloudTrail
        (
            "cloudtrail:StopLogging",
            format!("arn:aws:cloudtrail:{r}:{a}:trail/org-trail"),
        ),
        (
            "cloudtrail:DeleteTrail",
            format!("arn:aws:cloudtrail:{r}:{a}:trail/org-trail"),
        ),
        (
            "cloudtrail:UpdateTrail",
            format!("arn:aws:cloudtrail:{r}:{a}:trail/org-trail"),
        ),
        (
            "cloudtrail:PutEventSelectors",
            format!("arn:aws:cloudtrail:{r}:{a}:trail/org-trail"),
        ),
        ("cloudtrail:LookupEvents", "*".into()),
        // Organizations
        ("organizations:LeaveOrganization", "*".into()),
        ("organizations:ListAccounts", "*".into()),
        ("organizations:DescribeOrganization", "*".into()),
        ("organizations:CreateAccount", "*".into()),
        // DynamoDB, SNS, Step Functions: the same services as trailgate, other resources.
        (
            "dynamodb:Scan",
            format!("arn:aws:dynamodb:{r}:{a}:table/orders"),
        ),
        (
            "dynamodb:DeleteTable",
            format!("arn:aws:dynamodb:{r}:{a}:table/orders"),
        ),
        ("sns:Publish", format!("arn:aws:sns:{r}:{a}:ops")),
        (
            "states:StartExecution",
            format!("arn:aws:states:{r}:{a}:stateMachine:billing"),
        ),
    ];
    actions.sort();
    actions
}

/// The resource's own policy where its service requires one: a KMS key is usable only if its
/// key policy lets IAM policies grant it (the default key policy does).
fn resource_policy_of(resource: &str) -> Option<Value> {
    resource.contains(":key/").then(|| {
        json!({"Version": "2012-10-17", "Statement": [{"Sid": "EnableIamPolicies", "Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "kms:*", "Resource": "*"}]})
    })
}

/// Another role the granted session might chain into; its trust policy trusts the account, as
/// most roles' do, so only the session's own policies can stop the chain.
fn chain_targets() -> Vec<(&'static str, String, Value)> {
    let trusting_account = |role: &str| {
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
            "Action": "sts:AssumeRole", "Resource": arn_role(role)}]})
    };
    vec![
        (
            "sts:AssumeRole",
            arn_role("prod-admin"),
            trusting_account("prod-admin"),
        ),
        ("sts:AssumeRole", arn_role(ROLE), trusting_account(ROLE)),
    ]
}

/// The revocations policy and the session policy with its tags, on the granted role.
fn session_rows(docs: &Docs, matrix: &mut Matrix) {
    let deny = "trailgate-revocations (revoke use case)";
    let session_doc = "session policy + tags (vend's AssumeRole)";
    for (action, resource) in representative_actions() {
        let on = |assume: &AssumeRequest, at: &str| {
            let mut request = session(docs, assume, action, &resource, at);
            request.resource_policy = resource_policy_of(&resource);
            request
        };
        matrix.add(
            deny,
            "the revoked request's session",
            on(&docs.assume_revoked, DURING),
            Expect::deny_by(format!("identity/{REVOCATIONS_POLICY_NAME}/TGX")),
        );
        matrix.add(
            deny,
            "another request's session on the same role, untouched",
            on(&docs.assume_other, DURING),
            Expect::Allow,
        );
        for (who, assume) in [
            ("revoked", &docs.assume_revoked),
            ("other", &docs.assume_other),
        ] {
            matrix.add(
                session_doc,
                format!("the {who} request's session after expires_at"),
                on(assume, AFTER),
                Expect::deny_by("session/session/DenyAfterGrantExpiry"),
            );
        }
    }
    for (action, target, trust) in chain_targets() {
        for (who, assume) in [
            ("revoked", &docs.assume_revoked),
            ("other", &docs.assume_other),
        ] {
            let mut request = session(docs, assume, action, &target, DURING);
            request.resource_policy = Some(trust.clone());
            matrix.add(
                session_doc,
                format!("the {who} request's session chaining into another role"),
                request,
                Expect::deny_by("session/session/DenyRoleChaining"),
            );
        }
    }
}

/// The protection policy: no granted session, revoked or not, touches trailgate itself.
fn protection_rows(docs: &Docs, matrix: &mut Matrix) {
    let t = &docs.template;
    let table = t.reference("LedgerTable.Arn");
    let machine = format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-access-request");
    let execution =
        format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{STACK}-access-request:r-x");
    let function = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-GrantFunction");
    let own_role = function_role("CredentialsFunction");
    let probes: Vec<(&str, String, &str)> = vec![
        ("dynamodb:GetItem", table.clone(), "HideLedger"),
        (
            "dynamodb:Query",
            format!("{table}/index/ByStatus"),
            "HideLedger",
        ),
        ("dynamodb:PutItem", table.clone(), "ProtectLedger"),
        ("dynamodb:DeleteTable", table, "ProtectLedger"),
        (
            "states:GetExecutionHistory",
            execution.clone(),
            "HideWorkflow",
        ),
        ("states:StopExecution", execution, "ProtectWorkflow"),
        (
            "states:UpdateStateMachine",
            machine.clone(),
            "ProtectWorkflow",
        ),
        ("states:StartExecution", machine, "ProtectWorkflow"),
        (
            "sns:Publish",
            t.reference("ApprovalsTopic"),
            "ProtectTopics",
        ),
        ("sns:Subscribe", t.reference("AlertsTopic"), "ProtectTopics"),
        (
            "secretsmanager:GetSecretValue",
            t.reference("LinkSigningSecret"),
            "ProtectLinkKey",
        ),
        (
            "lambda:UpdateFunctionCode",
            function.clone(),
            "ProtectFunctions",
        ),
        ("lambda:InvokeFunction", function, "ProtectFunctions"),
        ("iam:PassRole", own_role.clone(), "ProtectRoles"),
        ("iam:UpdateAssumeRolePolicy", own_role, "ProtectRoles"),
        ("iam:PutRolePolicy", arn_role(ROLE), "ProtectManagedRoles"),
        (
            "iam:DeleteRolePolicy",
            arn_role(ROLE),
            "ProtectManagedRoles",
        ),
        ("iam:UntagRole", arn_role(ROLE), "ProtectManagedRoles"),
        (
            "iam:DetachRolePolicy",
            arn_role(ROLE),
            "ProtectManagedRoles",
        ),
        (
            "iam:CreatePolicyVersion",
            t.reference("TrailgateProtectionPolicy"),
            "ProtectThisPolicy",
        ),
        (
            "cloudformation:UpdateStack",
            format!("arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/0a1b2c3d"),
            "ProtectStack",
        ),
        (
            "events:DisableRule",
            format!(
                "arn:aws:events:{REGION}:{ACCOUNT}:rule/{STACK}-ReconcileFunctionEvery5Minutes"
            ),
            "ProtectScheduleAndLogs",
        ),
    ];
    for (action, resource, sid) in probes {
        let mut request = session(docs, &docs.assume_other, action, &resource, DURING)
            .with("aws:ResourceTag/trailgate:managed", "true");
        if !action.starts_with("iam:") || resource != arn_role(ROLE) {
            request.context.remove("aws:ResourceTag/trailgate:managed");
        }
        matrix.add(
            "TrailgateProtectionPolicy",
            "a granted session on trailgate's own resources",
            request,
            Expect::deny_by(format!("identity/TrailgateProtectionPolicy/{sid}")),
        );
    }
}

/// The broker assuming `role_arn`, with the given trust policy and, when `identity`, the
/// credentials function's role policies from the template.
fn broker_assume(
    docs: &Docs,
    role_arn: &str,
    trust: &Value,
    identity: bool,
    source_identity: Option<&str>,
    managed: bool,
) -> Request {
    let mut request = Request::new(
        &function_session("CredentialsFunction"),
        "sts:AssumeRole",
        role_arn,
    )
    .with("aws:PrincipalArn", function_role("CredentialsFunction"))
    .with("aws:RequestTag/trailgate-request", OTHER)
    .with("aws:TagKeys", json!(["trailgate-request"]));
    if let Some(who) = source_identity {
        request = request.with("sts:SourceIdentity", who);
    }
    if managed {
        request = request.with("aws:ResourceTag/trailgate:managed", "true");
    }
    let mut trust = trust.clone();
    for statement in trust["Statement"].as_array_mut().into_iter().flatten() {
        statement["Resource"] = json!(role_arn);
    }
    request.resource_policy = Some(trust);
    if identity {
        request.identity = docs
            .template
            .function_policies("CredentialsFunction")
            .expect("credentials policies");
    }
    request
}

/// The trust contract: trust policies `check_trust_policy` accepts let only the credentials
/// function's role in, and only with a source identity; judged on the trust policy alone (in
/// one account a trust policy that names the role needs no identity allow).
fn trust_rows(docs: &Docs, matrix: &mut Matrix, trust_policies: &[(String, Value)]) {
    let broker = function_role("CredentialsFunction");
    let target = arn_role(ROLE);
    for (name, trust) in trust_policies {
        let document = format!("trust contract ({name})");
        let accepted = policy::check_trust_policy(&trust.to_string(), &broker);
        matrix.add(
            &document,
            format!("check_trust_policy accepts it: {accepted:?}"),
            broker_assume(docs, &target, trust, false, Some("alice"), true),
            if accepted.is_ok() {
                Expect::Allow
            } else {
                Expect::Deny
            },
        );
        matrix.add(
            &document,
            "the broker without a source identity",
            broker_assume(docs, &target, trust, false, None, true),
            Expect::Deny,
        );
        for stranger in [
            format!("arn:aws:iam::{ACCOUNT}:user/alice"),
            format!(
                "arn:aws:sts::{ACCOUNT}:assumed-role/{STACK}-GrantFunctionRole/{STACK}-GrantFunction"
            ),
            format!("arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/tg-alice-{OTHER}"),
        ] {
            let mut request = broker_assume(docs, &target, trust, false, Some("alice"), true);
            request.principal = stranger.clone();
            let arn = if stranger.contains(":assumed-role/") {
                let role = stranger.split('/').nth(1).unwrap_or_default();
                arn_role(role)
            } else {
                stranger.clone()
            };
            request = request.with("aws:PrincipalArn", arn);
            matrix.add(
                &document,
                format!("{stranger} assuming the target"),
                request,
                Expect::Deny,
            );
        }
    }
}

/// The credentials function's role policy decides when a role's trust would let it in.
fn broker_rows(docs: &Docs, matrix: &mut Matrix) {
    let document = "CredentialsFunction role policy";
    let broker = function_role("CredentialsFunction");
    let by_account = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]}]});
    let by_broker = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": broker}, "Action": ["sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"]}]});
    matrix.add(
        document,
        "a managed target with a source identity",
        broker_assume(
            docs,
            &arn_role(ROLE),
            &docs.sample_trust,
            true,
            Some("alice"),
            true,
        ),
        Expect::Allow,
    );
    for (trust_name, trust) in [
        ("trusting the account", &by_account),
        ("naming the broker", &by_broker),
    ] {
        matrix.add(
            document,
            format!("a role not tagged trailgate:managed, {trust_name}"),
            broker_assume(
                docs,
                &arn_role("prod-admin"),
                trust,
                true,
                Some("alice"),
                false,
            ),
            Expect::Deny,
        );
        matrix.add(
            document,
            format!("one of trailgate's own roles, tagged managed, {trust_name}"),
            broker_assume(
                docs,
                &function_role("GrantFunction"),
                trust,
                true,
                Some("alice"),
                true,
            ),
            Expect::deny_by("NeverOwnRoles"),
        );
        matrix.add(
            document,
            format!("a managed role without a source identity, {trust_name}"),
            broker_assume(docs, &arn_role(ROLE), trust, true, None, true),
            Expect::Deny,
        );
    }
}

/// What each function may do: (function, what it needs).
fn needs() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        (
            "IntakeFunction",
            &["ledger", "chain", "catalog", "start", "revocations"],
        ),
        ("ContextFunction", &["ledger", "chain", "lookup"]),
        (
            "ApprovalFunction",
            &["ledger", "chain", "catalog", "mail", "alert", "key"],
        ),
        (
            "DecisionFunction",
            &["ledger", "chain", "catalog", "answer", "key"],
        ),
        ("GrantFunction", &["ledger", "chain", "catalog", "inspect"]),
        (
            "CredentialsFunction",
            &["ledger", "chain", "catalog", "assume"],
        ),
        (
            "RevokeFunction",
            &["ledger", "chain", "revocations", "alert"],
        ),
        (
            "AuditFunction",
            &["ledger", "chain", "catalog", "lookup", "mail"],
        ),
        (
            "ReconcileFunction",
            &["ledger", "chain", "catalog", "revocations", "alert"],
        ),
        // No ledger: it writes the catalog's versions and nothing else.
        ("CatalogFunction", &["chain", "catalog", "publish"]),
        // Reads records and the stream, puts on the bus; writes no ledger item, holds no key.
        ("EventsFunction", &["record", "stream", "bus", "failed"]),
    ]
}

/// Probes of the functions' role policies: (need it serves or "" for none, action, resource,
/// the target role is managed).
fn function_probes(docs: &Docs) -> Vec<(&'static str, &'static str, String, bool)> {
    let t = &docs.template;
    let table = t.reference("LedgerTable.Arn");
    let machine = format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-access-request");
    let execution =
        format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{STACK}-access-request:r-x");
    let catalog = t.reference("CatalogTable.Arn");
    vec![
        ("catalog", "dynamodb:GetItem", catalog.clone(), false),
        ("publish", "dynamodb:PutItem", catalog.clone(), false),
        ("publish", "dynamodb:Query", catalog.clone(), false),
        ("", "dynamodb:UpdateItem", catalog.clone(), false),
        ("", "dynamodb:DeleteItem", catalog.clone(), false),
        ("", "dynamodb:Scan", catalog, false),
        (
            "chain",
            "secretsmanager:GetSecretValue",
            t.reference("ChainKeySecret"),
            false,
        ),
        ("ledger|record", "dynamodb:GetItem", table.clone(), false),
        (
            "stream",
            "dynamodb:GetRecords",
            t.reference("LedgerTable.StreamArn"),
            false,
        ),
        (
            "stream",
            "dynamodb:GetShardIterator",
            t.reference("LedgerTable.StreamArn"),
            false,
        ),
        (
            "bus",
            "events:PutEvents",
            t.reference("LifecycleEventBus.Arn"),
            false,
        ),
        (
            "",
            "events:PutEvents",
            format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"),
            false,
        ),
        (
            "",
            "events:DeleteEventBus",
            t.reference("LifecycleEventBus.Arn"),
            false,
        ),
        (
            "failed",
            "sqs:SendMessage",
            t.reference("LifecycleEventsFailedQueue.Arn"),
            false,
        ),
        (
            "ledger",
            "dynamodb:Query",
            format!("{table}/index/ByStatus"),
            false,
        ),
        ("ledger", "dynamodb:PutItem", table.clone(), false),
        ("ledger", "dynamodb:UpdateItem", table.clone(), false),
        ("", "dynamodb:DeleteItem", table.clone(), false),
        ("", "dynamodb:Scan", table.clone(), false),
        ("", "dynamodb:DeleteTable", table, false),
        (
            "",
            "dynamodb:GetItem",
            format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders"),
            false,
        ),
        ("start", "states:StartExecution", machine.clone(), false),
        ("", "states:StopExecution", execution.clone(), false),
        ("", "states:GetExecutionHistory", execution, false),
        ("", "states:UpdateStateMachine", machine.clone(), false),
        // The simulator follows the Service Authorization Reference, which gives SendTask* no
        // resource type, so it is asked on "*"; see `function_rows` for the decision function.
        ("answer", "states:SendTaskSuccess", "*".into(), false),
        ("answer", "states:SendTaskFailure", "*".into(), false),
        ("mail", "sns:Publish", t.reference("ApprovalsTopic"), false),
        ("alert", "sns:Publish", t.reference("AlertsTopic"), false),
        ("", "sns:Subscribe", t.reference("ApprovalsTopic"), false),
        (
            "",
            "sns:Publish",
            format!("arn:aws:sns:{REGION}:{ACCOUNT}:ops"),
            false,
        ),
        (
            "key",
            "secretsmanager:GetSecretValue",
            t.reference("LinkSigningSecret"),
            false,
        ),
        (
            "",
            "secretsmanager:PutSecretValue",
            t.reference("LinkSigningSecret"),
            false,
        ),
        (
            "",
            "secretsmanager:GetSecretValue",
            format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:prod-db-AbCdEf"),
            false,
        ),
        ("lookup", "cloudtrail:LookupEvents", "*".into(), false),
        (
            "",
            "cloudtrail:StopLogging",
            format!("arn:aws:cloudtrail:{REGION}:{ACCOUNT}:trail/org-trail"),
            false,
        ),
        ("revocations", "iam:PutRolePolicy", arn_role(ROLE), true),
        ("revocations", "iam:GetRolePolicy", arn_role(ROLE), true),
        ("revocations", "iam:DeleteRolePolicy", arn_role(ROLE), true),
        ("revocations", "iam:ListRolePolicies", arn_role(ROLE), true),
        ("", "iam:PutRolePolicy", arn_role("prod-admin"), false),
        (
            "",
            "iam:PutRolePolicy",
            function_role("GrantFunction"),
            true,
        ),
        ("", "iam:UpdateAssumeRolePolicy", arn_role(ROLE), true),
        ("", "iam:AttachRolePolicy", arn_role(ROLE), true),
        ("inspect", "iam:GetRole", arn_role(ROLE), true),
        ("inspect", "iam:ListRoleTags", arn_role(ROLE), true),
        (
            "inspect",
            "iam:ListAttachedRolePolicies",
            arn_role(ROLE),
            true,
        ),
        (
            "",
            "iam:CreateUser",
            format!("arn:aws:iam::{ACCOUNT}:user/mallory"),
            false,
        ),
        (
            "",
            "iam:CreateAccessKey",
            format!("arn:aws:iam::{ACCOUNT}:user/alice"),
            false,
        ),
        ("", "iam:PassRole", arn_role(ROLE), true),
        ("assume", "sts:AssumeRole", arn_role(ROLE), true),
        ("", "sts:AssumeRole", arn_role("prod-admin"), false),
        (
            "",
            "lambda:InvokeFunction",
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-GrantFunction"),
            false,
        ),
        (
            "",
            "lambda:UpdateFunctionCode",
            format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-GrantFunction"),
            false,
        ),
        (
            "",
            "s3:GetObject",
            "arn:aws:s3:::customer-data/export.csv".into(),
            false,
        ),
        (
            "",
            "kms:Decrypt",
            format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            false,
        ),
        (
            "",
            "ec2:RunInstances",
            format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/*"),
            false,
        ),
        ("", "organizations:LeaveOrganization", "*".into(), false),
    ]
}

fn function_request(
    docs: &Docs,
    function: &str,
    action: &str,
    resource: &str,
    managed: bool,
) -> Request {
    let mut request = Request::new(&function_session(function), action, resource)
        .with("aws:PrincipalArn", function_role(function));
    if managed {
        request = request.with("aws:ResourceTag/trailgate:managed", "true");
    }
    if resource.contains(":table/") && resource.contains("CatalogTable") {
        // The only partition key trailgate's code uses there.
        request = request.with("dynamodb:LeadingKeys", json!(["CATALOG"]));
    }
    if action == "sts:AssumeRole" {
        // The contract's own trust policy, so the identity policy is what decides.
        let mut trust = docs.sample_trust.clone();
        for statement in trust["Statement"].as_array_mut().into_iter().flatten() {
            statement["Resource"] = json!(resource);
        }
        request.resource_policy = Some(trust);
        request = request
            .with("sts:SourceIdentity", "alice")
            .with("aws:RequestTag/trailgate-request", OTHER)
            .with("aws:TagKeys", json!(["trailgate-request"]));
    }
    request.identity = docs
        .template
        .function_policies(function)
        .expect("function policies");
    request
}

/// Each function's role policy: what it needs allowed, everything else denied; and the same
/// requests under the guard SCP, which must not stop trailgate from working.
fn function_rows(docs: &Docs, matrix: &mut Matrix) {
    for (function, needed) in needs() {
        for (need, action, resource, managed) in function_probes(docs) {
            // `a|b`: a probe any function with either need may do.
            let wanted = !need.is_empty() && need.split('|').any(|one| needed.contains(&one));
            if wanted && need == "answer" {
                // The one known disagreement (SECURITY.md): IAM authorises SendTask* against
                // the state machine of the token, which is what the decision function's
                // statement names; the simulator knows no resource for it and would refuse.
                // Every other function is still asked, on "*", and must be denied.
                continue;
            }
            let mut request = function_request(docs, function, action, &resource, managed);
            matrix.add(
                &format!("{function} role policy"),
                if wanted {
                    "an action it needs"
                } else {
                    "an action it does not need"
                },
                request.clone(),
                if wanted { Expect::Allow } else { Expect::Deny },
            );
            if wanted {
                request.scps = scps(docs);
                matrix.add(
                    "guard SCP",
                    format!("{function} under the SCP, an action it needs"),
                    request,
                    Expect::Allow,
                );
            }
        }
    }
}

/// The guard SCP: administrators of the account cannot drive or change trailgate, granted
/// sessions cannot chain, the deployer can still deploy.
fn scp_rows(docs: &Docs, matrix: &mut Matrix) {
    let function = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-GrantFunction");
    let machine = format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK}-access-request");
    let admin = |principal: &str, principal_arn: &str, action: &str, resource: &str| {
        let mut request =
            Request::new(principal, action, resource).with("aws:PrincipalArn", principal_arn);
        request.identity = vec![("AdministratorAccess".into(), allow_all())];
        request.scps = scps(docs);
        request
    };
    let alice = format!("arn:aws:iam::{ACCOUNT}:user/alice");
    let denied: Vec<(&str, String, &str)> = vec![
        (
            "lambda:InvokeFunction",
            function.clone(),
            "OnlyTheWorkflowInvokesTheStepFunctions",
        ),
        (
            "states:StartExecution",
            machine.clone(),
            "OnlyIntakeStartsExecutions",
        ),
        (
            "states:SendTaskSuccess",
            "*".into(),
            "OnlyTheDecisionFunctionCompletesTasks",
        ),
        (
            "states:StopExecution",
            format!("arn:aws:states:{REGION}:{ACCOUNT}:execution:{STACK}-access-request:r-x"),
            "NobodyButTheDeployerChangesTheWorkflow",
        ),
        (
            "lambda:UpdateFunctionCode",
            function.clone(),
            "NobodyButTheDeployerChangesTheWorkflow",
        ),
        (
            "iam:PutRolePolicy",
            function_role("CredentialsFunction"),
            "NobodyButTheDeployerMakesOrChangesTrailgateRoles",
        ),
        (
            "iam:UpdateAssumeRolePolicy",
            function_role("CredentialsFunction"),
            "NobodyButTheDeployerMakesOrChangesTrailgateRoles",
        ),
        (
            "iam:PassRole",
            function_role("CredentialsFunction"),
            "NobodyButTheDeployerMakesOrChangesTrailgateRoles",
        ),
        // A role named like Identity Center's would pass as an Identity Center session whose
        // session name (which its maker chooses) intake resolves to a user: Identity Center
        // makes its roles through its service-linked role, which no SCP restricts.
        (
            "iam:CreateRole",
            format!("arn:aws:iam::{ACCOUNT}:role/AWSReservedSSO_ProdAccess_0a1b2c3d4e5f6a7b"),
            "NobodyMakesIdentityCenterLookalikeRoles",
        ),
        // Under any path: the session's ARN shows the role's name only.
        (
            "iam:CreateRole",
            format!("arn:aws:iam::{ACCOUNT}:role/lookalike/AWSReservedSSO_Fake_0000000000000000"),
            "NobodyMakesIdentityCenterLookalikeRoles",
        ),
        (
            "iam:UpdateAssumeRolePolicy",
            format!("arn:aws:iam::{ACCOUNT}:role/AWSReservedSSO_ProdAccess_0a1b2c3d4e5f6a7b"),
            "NobodyMakesIdentityCenterLookalikeRoles",
        ),
    ];
    for (action, resource, sid) in denied {
        matrix.add(
            "guard SCP",
            format!("an account administrator: {sid}"),
            admin(&alice, &alice, action, &resource),
            Expect::deny_by(format!("scp/guard-scp/{sid}")),
        );
    }
    let deployer = format!("arn:aws:sts::{ACCOUNT}:assumed-role/trailgate-deployer/ci");
    for (action, resource) in [
        ("lambda:UpdateFunctionCode", function.clone()),
        ("states:UpdateStateMachine", machine),
        ("iam:PutRolePolicy", function_role("CredentialsFunction")),
    ] {
        matrix.add(
            "guard SCP",
            "the deployer deploys",
            admin(&deployer, &deploy_role(), action, &resource),
            Expect::Allow,
        );
    }
    let machine_role =
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/{STACK}-AccessRequestStateMachineRole/x");
    matrix.add(
        "guard SCP",
        "the state machine invokes a step",
        admin(
            &machine_role,
            &function_role("AccessRequestStateMachine"),
            "lambda:InvokeFunction",
            &function,
        ),
        Expect::Allow,
    );
    // The runbook-scan state machine invokes its scan function (issue 16).
    let scan_machine =
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/{STACK}-RunbookScanStateMachineRole/x");
    matrix.add(
        "guard SCP",
        "the runbook-scan state machine invokes its scan function",
        admin(
            &scan_machine,
            &function_role("RunbookScanStateMachine"),
            "lambda:InvokeFunction",
            &format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-ScanFunction-AbC123"),
        ),
        Expect::Allow,
    );
    for (action, target, trust) in chain_targets() {
        let mut request = admin(
            &format!("arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/tg-alice-{OTHER}"),
            &arn_role(ROLE),
            action,
            &target,
        )
        .with("aws:PrincipalTag/trailgate-request", OTHER);
        request.resource_policy = Some(trust);
        matrix.add(
            "guard SCP",
            "a granted session chaining, whatever its session policy",
            request,
            Expect::deny_by("scp/guard-scp/GrantedSessionsDoNotChain"),
        );
    }
}

/// A function's role as SAM names it (`<stack>-<Function>Role-<suffix>`), which is what the
/// resource policies match, and its Lambda session.
fn sam_function_role(function: &str) -> (String, String) {
    let role = format!("{STACK}-{function}Role-1A2B3C4D5E6F");
    (
        format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{STACK}-{function}"),
    )
}

/// Issue 20's bypasses, judged by the resource policies alone (no SCP): an account
/// administrator (`AdministratorAccess`) is explicitly denied writing or reading the ledger,
/// reading either HMAC key (to sign links or seal forged ledger events) or decrypting it, and
/// subscribing to the approvals topic with an address of its own (every approver's links) or
/// publishing to it; the functions that use each resource, and the stack's own approver
/// subscriptions, still can.
fn resource_rows(matrix: &mut Matrix) -> Result<()> {
    resource_rows_with(matrix, &|_, policy| policy)
}

/// [`resource_rows`] with each resource policy passed through `edit(logical id, policy)`
/// first, so a weakened copy can be judged by the same rows.
fn resource_rows_with(matrix: &mut Matrix, edit: &dyn Fn(&str, Value) -> Value) -> Result<()> {
    let approvers = json!(["bob@example.com", "carol@example.com"]);
    let t = Template::load_file(
        "template.yaml",
        ACCOUNT,
        STACK,
        &[("ApproverEmails", approvers)],
    )?;
    let policy = |id: &str, key: &[&str]| -> Result<Value> {
        let mut value = t.properties(id)?;
        for part in key {
            value = value
                .get(*part)
                .with_context(|| format!("{id} has no {part}"))?;
        }
        Ok(edit(id, t.resolve(value)))
    };
    let table = t.reference("LedgerTable.Arn");
    let ledger = policy("LedgerTable", &["ResourcePolicy", "PolicyDocument"])?;
    let catalog = t.reference("CatalogTable.Arn");
    let catalog_policy = policy("CatalogTable", &["ResourcePolicy", "PolicyDocument"])?;
    let link_secret = t.reference("LinkSigningSecret");
    let link_secret_policy = policy("LinkSigningSecretPolicy", &["ResourcePolicy"])?;
    let link_key = t.reference("LinkSigningKey.Arn");
    let link_key_policy = policy("LinkSigningKey", &["KeyPolicy"])?;
    let chain_secret = t.reference("ChainKeySecret");
    let chain_secret_policy = policy("ChainKeySecretPolicy", &["ResourcePolicy"])?;
    let chain_key = t.reference("ChainKeyEncryptionKey.Arn");
    let chain_key_policy = policy("ChainKeyEncryptionKey", &["KeyPolicy"])?;
    let topic = t.reference("ApprovalsTopic");
    let topic_policy = policy("ApprovalsTopicPolicy", &["PolicyDocument"])?;
    let bus = t.reference("LifecycleEventBus.Arn");
    // AWS::Events::EventBusPolicy holds one statement; the bus's policy is that statement.
    let bus_policy = json!({
        "Version": "2012-10-17",
        "Statement": [policy("LifecycleEventBusPolicy", &["Statement"])?],
    });
    let via_secrets_manager = format!("secretsmanager.{REGION}.amazonaws.com");

    let admin = format!("arn:aws:iam::{ACCOUNT}:user/admin");
    let by_admin = |action: &str, resource: &str, policy: &Value| {
        let mut request =
            Request::new(&admin, action, resource).with("aws:PrincipalArn", admin.as_str());
        request.identity = vec![("AdministratorAccess".into(), allow_all())];
        request.resource_policy = Some(policy.clone());
        request
    };
    let bypasses: Vec<(&str, Request, &str)> = vec![
        (
            "mark a request ACTIVE in the ledger",
            by_admin("dynamodb:UpdateItem", &table, &ledger),
            "OnlyTrailgateFunctionsUseTheLedger",
        ),
        (
            "write a ledger item",
            by_admin("dynamodb:PutItem", &table, &ledger),
            "OnlyTrailgateFunctionsUseTheLedger",
        ),
        (
            "read a task token from the ledger",
            by_admin("dynamodb:GetItem", &table, &ledger),
            "OnlyTrailgateFunctionsUseTheLedger",
        ),
        (
            "query the ledger's index",
            by_admin(
                "dynamodb:Query",
                &format!("{table}/index/ByStatus"),
                &ledger,
            ),
            "OnlyTrailgateFunctionsUseTheLedger",
        ),
        (
            "read the link key to sign any link",
            by_admin(
                "secretsmanager:GetSecretValue",
                &link_secret,
                &link_secret_policy,
            ),
            "OnlyApprovalAndDecisionReadTheKey",
        ),
        (
            "replace the link key",
            by_admin(
                "secretsmanager:PutSecretValue",
                &link_secret,
                &link_secret_policy,
            ),
            "OnlyApprovalAndDecisionReadTheKey",
        ),
        (
            "decrypt the link key",
            by_admin("kms:Decrypt", &link_key, &link_key_policy)
                .with("kms:ViaService", via_secrets_manager.as_str()),
            "OnlyApprovalAndDecisionDecrypt",
        ),
        (
            "read the chain key to seal forged events",
            by_admin(
                "secretsmanager:GetSecretValue",
                &chain_secret,
                &chain_secret_policy,
            ),
            "OnlyTrailgateFunctionsReadTheChainKey",
        ),
        (
            "replace the chain key",
            by_admin(
                "secretsmanager:PutSecretValue",
                &chain_secret,
                &chain_secret_policy,
            ),
            "NobodyReplacesTheChainKey",
        ),
        (
            "decrypt the chain key",
            by_admin("kms:Decrypt", &chain_key, &chain_key_policy)
                .with("kms:ViaService", via_secrets_manager.as_str()),
            "OnlyTrailgateFunctionsDecrypt",
        ),
        (
            "subscribe to every approver's links",
            by_admin("sns:Subscribe", &topic, &topic_policy)
                .with("sns:Endpoint", "mallory@example.com")
                .with("sns:Protocol", "email"),
            "OnlyTheApproversSubscribe",
        ),
        (
            "publish a forged approval mail",
            by_admin("sns:Publish", &topic, &topic_policy),
            "OnlyTrailgateFunctionsPublish",
        ),
        (
            "rewrite the catalog (who may request and approve)",
            by_admin("dynamodb:PutItem", &catalog, &catalog_policy),
            "OnlyTheCatalogFunctionWrites",
        ),
        (
            "edit a catalog version's record",
            by_admin("dynamodb:UpdateItem", &catalog, &catalog_policy),
            "OnlyTheCatalogFunctionWrites",
        ),
        (
            "delete a catalog version",
            by_admin("dynamodb:DeleteItem", &catalog, &catalog_policy),
            "NoVersionIsDeleted",
        ),
        (
            "read the catalog's approver principals",
            by_admin("dynamodb:GetItem", &catalog, &catalog_policy),
            "OnlyTrailgateFunctionsReadTheCatalog",
        ),
        (
            "forge a lifecycle event (a grant, a closed request) on the bus",
            by_admin("events:PutEvents", &bus, &bus_policy),
            "OnlyTheEventsFunctionPuts",
        ),
    ];
    for (what, request, sid) in bypasses {
        matrix.add(
            "resource policies",
            format!("an account administrator cannot {what}"),
            request,
            Expect::deny_by(sid),
        );
    }
    // What still works: the stack subscribing its approvers, and each function on the
    // resources it uses, with its own identity policies.
    matrix.add(
        "resource policies",
        "the stack subscribes an approver's address",
        by_admin("sns:Subscribe", &topic, &topic_policy)
            .with("sns:Endpoint", "bob@example.com")
            .with("sns:Protocol", "email"),
        Expect::Allow,
    );
    let uses: Vec<(&str, &str, String, &Value, Option<&str>)> = vec![
        (
            "DecisionFunction",
            "dynamodb:UpdateItem",
            table.clone(),
            &ledger,
            None,
        ),
        (
            "CredentialsFunction",
            "dynamodb:GetItem",
            table.clone(),
            &ledger,
            None,
        ),
        (
            "ApprovalFunction",
            "secretsmanager:GetSecretValue",
            link_secret.clone(),
            &link_secret_policy,
            None,
        ),
        (
            "DecisionFunction",
            "secretsmanager:GetSecretValue",
            link_secret.clone(),
            &link_secret_policy,
            None,
        ),
        (
            "ApprovalFunction",
            "kms:Decrypt",
            link_key.clone(),
            &link_key_policy,
            Some(via_secrets_manager.as_str()),
        ),
        (
            "GrantFunction",
            "secretsmanager:GetSecretValue",
            chain_secret.clone(),
            &chain_secret_policy,
            None,
        ),
        (
            "GrantFunction",
            "kms:Decrypt",
            chain_key.clone(),
            &chain_key_policy,
            Some(via_secrets_manager.as_str()),
        ),
        (
            "ApprovalFunction",
            "sns:Publish",
            topic.clone(),
            &topic_policy,
            None,
        ),
        (
            "AuditFunction",
            "sns:Publish",
            topic.clone(),
            &topic_policy,
            None,
        ),
        (
            "CatalogFunction",
            "dynamodb:PutItem",
            catalog.clone(),
            &catalog_policy,
            None,
        ),
        (
            "IntakeFunction",
            "dynamodb:GetItem",
            catalog.clone(),
            &catalog_policy,
            None,
        ),
        (
            "EventsFunction",
            "dynamodb:GetItem",
            table.clone(),
            &ledger,
            None,
        ),
        (
            "EventsFunction",
            "events:PutEvents",
            bus.clone(),
            &bus_policy,
            None,
        ),
    ];
    for (function, action, resource, policy, via) in uses {
        let (role, session) = sam_function_role(function);
        let mut request =
            Request::new(&session, action, &resource).with("aws:PrincipalArn", role.as_str());
        if let Some(via) = via {
            request = request.with("kms:ViaService", via);
        }
        if resource == catalog {
            request = request.with("dynamodb:LeadingKeys", json!(["CATALOG"]));
        }
        request.identity = t.function_policies(function)?;
        request.resource_policy = Some(policy.clone());
        matrix.add(
            "resource policies",
            format!("{function} uses what it needs"),
            request,
            Expect::Allow,
        );
    }
    // A function that does not use a key is still refused it by the key's own policy.
    let (role, session) = sam_function_role("IntakeFunction");
    let mut request = Request::new(&session, "secretsmanager:GetSecretValue", &link_secret)
        .with("aws:PrincipalArn", role.as_str());
    request.identity = vec![("AdministratorAccess".into(), allow_all())];
    request.resource_policy = Some(link_secret_policy.clone());
    matrix.add(
        "resource policies",
        "intake, even if its role allowed it, cannot read the link key",
        request,
        Expect::deny_by("OnlyApprovalAndDecisionReadTheKey"),
    );
    // Only the events function puts on the bus, whatever another function's role allows.
    let (role, session) = sam_function_role("AuditFunction");
    let mut request =
        Request::new(&session, "events:PutEvents", &bus).with("aws:PrincipalArn", role.as_str());
    request.identity = vec![("AdministratorAccess".into(), allow_all())];
    request.resource_policy = Some(bus_policy.clone());
    matrix.add(
        "resource policies",
        "the audit function, even if its role allowed it, cannot put on the lifecycle bus",
        request,
        Expect::deny_by("OnlyTheEventsFunctionPuts"),
    );
    // Only the catalog function writes the catalog, whatever another function's role allows;
    // and not even it deletes a version.
    for (function, action, sid) in [
        (
            "IntakeFunction",
            "dynamodb:PutItem",
            "OnlyTheCatalogFunctionWrites",
        ),
        (
            "DecisionFunction",
            "dynamodb:UpdateItem",
            "OnlyTheCatalogFunctionWrites",
        ),
        (
            "CatalogFunction",
            "dynamodb:DeleteItem",
            "NoVersionIsDeleted",
        ),
    ] {
        let (role, session) = sam_function_role(function);
        let mut request = Request::new(&session, action, &catalog)
            .with("aws:PrincipalArn", role.as_str())
            .with("dynamodb:LeadingKeys", json!(["CATALOG"]));
        request.identity = vec![("AdministratorAccess".into(), allow_all())];
        request.resource_policy = Some(catalog_policy.clone());
        matrix.add(
            "resource policies",
            format!("{function}, even if its role allowed it, cannot {action} on the catalog"),
            request,
            Expect::deny_by(sid),
        );
    }
    Ok(())
}

fn trust_policies(docs: &Docs) -> Vec<(String, Value)> {
    let broker = function_role("CredentialsFunction");
    let mut string_like = docs.sample_trust.clone();
    string_like["Statement"][0]["Condition"] = json!({"StringLike": {"sts:SourceIdentity": "*"}});
    vec![
        (
            "SampleTargetRole in template.yaml".into(),
            docs.sample_trust.clone(),
        ),
        (
            "the minimal contract".into(),
            parse(
                &trailgate_domain::testing::broker_trust_policy()
                    .replace(trailgate_domain::testing::BROKER_ROLE, &broker),
            )
            .expect("trust"),
        ),
        ("StringLike on the source identity".into(), string_like),
    ]
}

fn full_matrix(docs: &Docs) -> Matrix {
    let mut matrix = Matrix::default();
    session_rows(docs, &mut matrix);
    protection_rows(docs, &mut matrix);
    trust_rows(docs, &mut matrix, &trust_policies(docs));
    broker_rows(docs, &mut matrix);
    function_rows(docs, &mut matrix);
    scp_rows(docs, &mut matrix);
    resource_rows(&mut matrix).expect("the resource policies in template.yaml");
    matrix
}

fn fail_on_unexpected(report: &Report) -> Result<()> {
    ensure!(
        report.unexpected.is_empty(),
        "{} unexpected outcomes of {}:\n{}",
        report.unexpected.len(),
        report.evaluated(),
        report.unexpected.join("\n")
    );
    Ok(())
}

#[test]
fn every_document_holds_over_the_whole_matrix() -> Result<()> {
    let docs = documents()?;
    let report = full_matrix(&docs).run()?;
    let table = report.table();
    println!("{table}");
    fail_on_unexpected(&report)?;
    let revoked_rows = report.per_document["trailgate-revocations (revoke use case)"].0 / 2;
    ensure!(
        revoked_rows >= 50,
        "only {revoked_rows} actions on the revoked session"
    );
    // The figure in SECURITY.md is this run's table.
    let security = std::fs::read_to_string(root().join("SECURITY.md"))?;
    ensure!(
        security.contains(&table),
        "SECURITY.md's table is not this run's; replace it with:\n{table}"
    );
    Ok(())
}

/// Evaluates `matrix` and returns how many outcomes were unexpected.
fn unexpected(matrix: &Matrix) -> Result<usize> {
    Ok(matrix.run()?.unexpected.len())
}

#[test]
fn weakened_documents_are_caught() -> Result<()> {
    let docs = documents()?;
    let mut caught = Vec::new();

    // The deny, with the tag key misspelt (a statement that never matches) and narrowed to S3.
    for (what, weaken) in [
        (
            "tag key misspelt",
            (
                "aws:PrincipalTag/trailgate-request",
                "aws:PrincipalTag/trailgate_request",
            ),
        ),
        (
            "narrowed to S3",
            ("\"Action\":\"*\"", "\"Action\":\"s3:*\""),
        ),
    ] {
        let mut weak = docs.clone();
        weak.revocations = parse(&docs.revocations.to_string().replace(weaken.0, weaken.1))?;
        ensure!(
            weak.revocations != docs.revocations,
            "{what}: nothing changed"
        );
        let mut matrix = Matrix::default();
        session_rows(&weak, &mut matrix);
        caught.push((format!("deny {what}"), unexpected(&matrix)?));
    }

    // The session policy without its expiry, and without its chaining deny.
    for (what, sid) in [
        ("without its expiry", "DenyAfterGrantExpiry"),
        ("without the chaining deny", "DenyRoleChaining"),
    ] {
        let mut weak = docs.clone();
        for assume in [&mut weak.assume_revoked, &mut weak.assume_other] {
            let mut policy = parse(&assume.session_policy)?;
            policy["Statement"]
                .as_array_mut()
                .context("statements")?
                .retain(|statement| statement["Sid"] != sid);
            assume.session_policy = policy.to_string();
        }
        let mut matrix = Matrix::default();
        session_rows(&weak, &mut matrix);
        caught.push((format!("session policy {what}"), unexpected(&matrix)?));
    }

    // The trust contract without its source-identity condition: check_trust_policy refuses it,
    // and the evaluator lets the broker in without a source identity.
    let mut weak_trust = docs.sample_trust.clone();
    weak_trust["Statement"][0]
        .as_object_mut()
        .context("statement")?
        .remove("Condition");
    let refused = policy::check_trust_policy(
        &weak_trust.to_string(),
        &function_role("CredentialsFunction"),
    );
    ensure!(
        refused.is_err(),
        "check_trust_policy accepted a trust without a condition"
    );
    let mut matrix = Matrix::default();
    // Judged as if it were accepted: the evaluator must show what the check protects against.
    let mut rows = Matrix::default();
    trust_rows(&docs, &mut rows, &[("weakened".into(), weak_trust)]);
    for mut case in rows.cases {
        if case.what.starts_with("check_trust_policy") {
            case.expect = Expect::Allow;
        }
        matrix.cases.push(case);
    }
    caught.push((
        "trust without the source-identity condition".into(),
        unexpected(&matrix)?,
    ));

    // The ledger's deny with its exception widened to any role of the account, and the
    // approvals topic's subscription deny gone.
    for (what, id, edit) in [
        (
            "ledger policy letting in any principal of the account",
            "LedgerTable",
            (":role/trailgate-*FunctionRole-*", ":*"),
        ),
        (
            "topic policy without the subscription deny",
            "ApprovalsTopicPolicy",
            ("OnlyTheApproversSubscribe", "AnyoneSubscribes"),
        ),
    ] {
        let mut matrix = Matrix::default();
        resource_rows_with(&mut matrix, &|resource, policy| {
            if resource != id {
                return policy;
            }
            let text = policy.to_string().replace(edit.0, edit.1);
            let mut weak: Value = serde_json::from_str(&text).expect("JSON");
            if id == "ApprovalsTopicPolicy" {
                weak["Statement"]
                    .as_array_mut()
                    .expect("statements")
                    .retain(|statement| statement["Sid"] != "AnyoneSubscribes");
            }
            weak
        })?;
        caught.push((what.to_owned(), unexpected(&matrix)?));
    }

    println!("{caught:#?}");
    for (what, count) in &caught {
        ensure!(*count > 0, "the weakened document ({what}) went unnoticed");
    }
    Ok(())
}

/// The deny a permission-set revoke writes into the permission set's inline policy (issue 14,
/// `user_deny.rs`), judged by the evaluator as the provisioned role's policy: it ends the
/// revoked user's sessions in that account issued before the revoke, and nothing else; its
/// fallback ends every session issued before; and a weakened deny (no issue time) is caught.
#[test]
fn the_permission_set_deny_ends_only_the_revoked_users_earlier_sessions() -> Result<()> {
    use trailgate_domain::user_deny::add_user_deny;
    let (alice, bob) = (
        "94482488-3041-7026-18f3-be45837cd0e4",
        "b0b00000-0000-4000-8000-000000000001",
    );
    let (member, other) = ("111111111111", "222222222222");
    let own = json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "ProdAccess", "Effect": "Allow", "Action": ["s3:GetObject", "ec2:DescribeInstances"], "Resource": "*"}
    ]});
    let revoked_at = 1_796_000_000_i64;
    let deny = add_user_deny(
        Some(&own.to_string()),
        alice,
        member,
        revoked_at,
        revoked_at + 3900,
        revoked_at,
        10_240,
    )?;
    let fallback = add_user_deny(
        Some(&deny.document),
        bob,
        member,
        revoked_at + 10,
        revoked_at + 3910,
        revoked_at,
        policy::policy_size(&deny.document) + 10,
    )?;
    ensure!(fallback.fallback, "the second deny should not have fitted");
    let at = |unix: i64| {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .map(trailgate_domain::time::format_utc)
            .unwrap_or_default()
    };
    let session = |document: &str,
                   user: &str,
                   account: &str,
                   issued: i64,
                   action: &str|
     -> Result<Request> {
        let mut request = Request::new(
            &format!("arn:aws:sts::{account}:assumed-role/AWSReservedSSO_ProdAccess_0a1b2c3d4e5f6a7b/{user}@example.com"),
            action,
            "arn:aws:s3:::prod-data/report.csv",
        )
        .with("identitystore:UserId", user)
        .with("aws:PrincipalAccount", account)
        .with("aws:TokenIssueTime", at(issued))
        .with("aws:CurrentTime", at(revoked_at + 600));
        request.identity = vec![(
            "AWSReservedSSO_ProdAccess inline".to_owned(),
            parse(document)?,
        )];
        request.resource_account = Some(account.to_owned());
        Ok(request)
    };
    let doc = "permission-set deny (revoke use case)";
    let mut matrix = Matrix::default();
    let get = "s3:GetObject";
    matrix.add(
        doc,
        "alice's session issued before the revoke",
        session(&deny.document, alice, member, revoked_at - 60, get)?,
        Expect::deny_by("TGU"),
    );
    matrix.add(
        doc,
        "alice's session issued after it (a later grant)",
        session(&deny.document, alice, member, revoked_at + 60, get)?,
        Expect::Allow,
    );
    matrix.add(
        doc,
        "bob's session of the same permission set",
        session(&deny.document, bob, member, revoked_at - 60, get)?,
        Expect::Allow,
    );
    matrix.add(
        doc,
        "alice's session in another account",
        session(&deny.document, alice, other, revoked_at - 60, get)?,
        Expect::Allow,
    );
    matrix.add(
        doc,
        "the fallback: bob's earlier session",
        session(&fallback.document, bob, member, revoked_at - 60, get)?,
        Expect::deny_by("TGUALL"),
    );
    matrix.add(
        doc,
        "the fallback: alice's earlier session",
        session(&fallback.document, alice, member, revoked_at - 60, get)?,
        Expect::deny_by("TGUALL"),
    );
    matrix.add(
        doc,
        "the fallback: a session issued after both revokes",
        session(&fallback.document, bob, member, revoked_at + 60, get)?,
        Expect::Allow,
    );
    let report = matrix.run()?;
    ensure!(report.unexpected.is_empty(), "{:#?}", report.unexpected);
    ensure!(report.evaluated() == 7);

    // Weakened: a deny without the issue time would also end the user's later grants.
    let weakened = deny.document.replace("DateLessThan", "DateGreaterThan");
    let mut caught = Matrix::default();
    caught.add(
        doc,
        "weakened: alice's earlier session",
        session(&weakened, alice, member, revoked_at - 60, get)?,
        Expect::deny_by("TGU"),
    );
    ensure!(
        unexpected(&caught)? == 1,
        "a deny that no longer covers earlier sessions went unnoticed"
    );
    Ok(())
}

#[test]
fn five_hundred_revocations_on_one_role_over_a_day_stay_inside_the_limit() -> Result<()> {
    // A day of revocations on one role, one every ~173 s, each grant ending up to four hours
    // after its revoke (early revokes keep their deny until expires_at + the margin), with a
    // 2,000-character inline policy of the role's own beside trailgate's; the reconciler runs
    // every 5 minutes. Every revoke must succeed by name (no fallback), and the policies must
    // stay inside IAM's limit all day.
    let ledger = MemoryLedger::default();
    let roles = MemoryRoles::with_sample_role();
    let notifier = MemoryNotifier::default();
    let own = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Own", "Effect": "Allow",
        "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{}/*", "x".repeat(1_900))}]})
    .to_string();
    roles.put_policy(ROLE, "team-extras", &own);
    let start = now();
    let mut largest = 0;
    let mut most_ids = 0;
    let mut next_reconcile = start;
    let mut revoked = Vec::new();
    for n in 0..500i64 {
        let at = start + time::Duration::seconds(n * 86_400 / 500);
        while next_reconcile <= at {
            block_on(service::reconcile(
                &ledger,
                &roles,
                &trailgate_domain::testing::MemoryIdentityCenter::default(),
                &notifier,
                next_reconcile,
            ))
            .map_err(|e| anyhow!("reconcile: {e}"))?;
            next_reconcile += time::Duration::minutes(5);
        }
        let mut request = pending_request();
        request.id = format!("r-{n:026}");
        request.status = Status::Active;
        request.expires_at = Some(trailgate_domain::time::format_utc(
            at + time::Duration::minutes(5 + (n * 37) % 240),
        ));
        seed(&ledger, request.clone());
        block_on(service::revoke(&ledger, &roles, &request.id, "test", at))
            .map_err(|e| anyhow!("revoke {n}: {e}"))?;
        let document = roles
            .policy(ROLE, REVOCATIONS_POLICY_NAME)
            .context("no policy")?;
        let contents = policy::contents(&document).map_err(|e| anyhow!("{e}"))?;
        ensure!(
            contents.fallback_before.is_none(),
            "revoke {n} needed the fallback"
        );
        let used = policy::policy_size(&document) + policy::policy_size(&own);
        ensure!(
            used <= policy::INLINE_POLICY_LIMIT,
            "revoke {n}: {used} characters"
        );
        largest = largest.max(used);
        most_ids = most_ids.max(contents.request_ids);
        revoked.push((request.id.clone(), at));
    }
    println!(
        "500 revocations over a day: at most {most_ids} ids live, largest inline total {largest} of {} characters",
        policy::INLINE_POLICY_LIMIT
    );
    // The day's last document, as the evaluator sees it: every request whose grant has not
    // ended is denied by name, and a request never revoked is not.
    let final_doc = parse(
        &roles
            .policy(ROLE, REVOCATIONS_POLICY_NAME)
            .context("no policy")?,
    )?;
    let mut docs = documents()?;
    docs.revocations = final_doc;
    let mut matrix = Matrix::default();
    let live: Vec<&String> = revoked
        .iter()
        .map(|(id, _)| id)
        .filter(|id| policy::denies_request(&docs.revocations.to_string(), id))
        .collect();
    ensure!(live.len() >= 10, "only {} live", live.len());
    for id in &live {
        let mut assume = docs.assume_other.clone();
        assume.tags = vec![(policy::REQUEST_TAG.into(), (*id).clone())];
        matrix.add(
            "capacity",
            "a live revoked request",
            session(
                &docs,
                &assume,
                "s3:GetObject",
                "arn:aws:s3:::customer-data/export.csv",
                DURING,
            ),
            Expect::deny_by("TGX"),
        );
    }
    matrix.add(
        "capacity",
        "a request never revoked",
        session(
            &docs,
            &docs.assume_other,
            "s3:GetObject",
            "arn:aws:s3:::customer-data/export.csv",
            DURING,
        ),
        Expect::Allow,
    );
    let report = matrix.run()?;
    println!("{}", report.table());
    fail_on_unexpected(&report)
}

/// Issue 18: with `TrailBucket` set, the audit function's role may list and read the trail's
/// `AWSLogs/` under its prefix and decrypt through S3 with the trail's key, and nothing more;
/// so may the runbook-scan function (issue 16), which also writes its own bucket's `runs/`; no
/// other function may read the trail; without the parameter, not even the audit function.
#[test]
fn only_the_audit_function_reads_the_trail_and_only_its_logs() -> Result<()> {
    const KEY: &str = "arn:aws:kms:us-east-1:222222222222:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";
    let with_trail = Template::load_file(
        "template.yaml",
        ACCOUNT,
        STACK,
        &[
            ("TrailBucket", json!("org-trail")),
            ("TrailPrefix", json!("logs/")),
            ("TrailKmsKeyArn", json!(KEY)),
        ],
    )?;
    let without = Template::load()?;
    let object = "arn:aws:s3:::org-trail/logs/AWSLogs/o-exampleorg1/111111111111/CloudTrail/us-east-1/2026/12/07/111111111111_CloudTrail_us-east-1_20261207T1005Z_a.json.gz";
    let request = |template: &Template, function: &str, action: &str, resource: &str| {
        let mut request = Request::new(&function_session(function), action, resource)
            .with("aws:PrincipalArn", function_role(function));
        request.identity = template.function_policies(function).expect("policies");
        request
    };
    let mut matrix = Matrix::default();
    let mut row = |what: &str, request: Request, expect: Expect| {
        matrix.add("trail bucket read", what, request, expect);
    };
    let audit =
        |action: &str, resource: &str| request(&with_trail, "AuditFunction", action, resource);
    row(
        "audit lists the trail's AWSLogs/",
        audit("s3:ListBucket", "arn:aws:s3:::org-trail").with("s3:prefix", "logs/AWSLogs/"),
        Expect::Allow,
    );
    row(
        "audit lists an account's day folder",
        audit("s3:ListBucket", "arn:aws:s3:::org-trail").with(
            "s3:prefix",
            "logs/AWSLogs/o-exampleorg1/111111111111/CloudTrail/us-east-1/2026/12/07/",
        ),
        Expect::Allow,
    );
    row(
        "audit reads a log object",
        audit("s3:GetObject", object),
        Expect::Allow,
    );
    // The runbook-scan function reads the same logs, and its own bucket's runs only.
    let scan =
        |action: &str, resource: &str| request(&with_trail, "ScanFunction", action, resource);
    let run_object = format!(
        "{}/runs/r1/parts/000000.json",
        with_trail.reference("ScanBucket.Arn")
    );
    row(
        "scan reads a log object",
        scan("s3:GetObject", object),
        Expect::Allow,
    );
    for action in ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"] {
        row(
            &format!("scan {action} on a run's part"),
            scan(action, &run_object),
            Expect::Allow,
        );
    }
    row(
        "scan lists its runs",
        scan("s3:ListBucket", &with_trail.reference("ScanBucket.Arn"))
            .with("s3:prefix", "runs/r1/"),
        Expect::Allow,
    );
    // The key is in the log archive account: its key policy must name the audit role too
    // (output AuditFunctionRoleArn), as the README's trail set-up says.
    let key_policy = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": function_role("AuditFunction")},
        "Action": "kms:Decrypt",
        "Resource": "*",
    }]});
    let in_log_archive = |mut request: Request| {
        request.resource_account = Some("222222222222".into());
        request
    };
    let mut decrypt = in_log_archive(
        audit("kms:Decrypt", KEY).with("kms:ViaService", "s3.us-east-1.amazonaws.com"),
    );
    row(
        "audit decrypts through S3, without the key policy's grant",
        decrypt.clone(),
        Expect::Deny,
    );
    decrypt.resource_policy = Some(key_policy.clone());
    row("audit decrypts through S3", decrypt, Expect::Allow);
    let mut outside = in_log_archive(audit("kms:Decrypt", KEY));
    outside.resource_policy = Some(key_policy);
    row("audit decrypts outside S3", outside, Expect::Deny);
    for (what, request) in [
        (
            "audit lists the bucket's root",
            audit("s3:ListBucket", "arn:aws:s3:::org-trail").with("s3:prefix", ""),
        ),
        (
            "audit lists beside the prefix",
            audit("s3:ListBucket", "arn:aws:s3:::org-trail").with("s3:prefix", "other/AWSLogs/"),
        ),
        (
            "audit reads outside AWSLogs/",
            audit("s3:GetObject", "arn:aws:s3:::org-trail/logs/config.json"),
        ),
        (
            "audit reads another bucket's logs",
            audit(
                "s3:GetObject",
                "arn:aws:s3:::other-trail/logs/AWSLogs/1/x.json.gz",
            ),
        ),
        (
            "audit overwrites a log object",
            audit("s3:PutObject", object),
        ),
        (
            "audit deletes a log object",
            audit("s3:DeleteObject", object),
        ),
        (
            "audit decrypts with another key",
            audit(
                "kms:Decrypt",
                "arn:aws:kms:us-east-1:222222222222:key/ffffffff-4f50-6172-8394-a5b6c7d8e9f0",
            )
            .with("kms:ViaService", "s3.us-east-1.amazonaws.com"),
        ),
        ("scan overwrites a log object", scan("s3:PutObject", object)),
        ("scan deletes a log object", scan("s3:DeleteObject", object)),
        (
            "scan writes outside its runs",
            scan(
                "s3:PutObject",
                &format!("{}/other.json", with_trail.reference("ScanBucket.Arn")),
            ),
        ),
        (
            "context reads a log object",
            request(&with_trail, "ContextFunction", "s3:GetObject", object),
        ),
        (
            "revoke reads a log object",
            request(&with_trail, "RevokeFunction", "s3:GetObject", object),
        ),
        (
            "without TrailBucket, audit reads a log object",
            request(&without, "AuditFunction", "s3:GetObject", object),
        ),
    ] {
        row(what, request, Expect::Deny);
    }
    let report = matrix.run()?;
    fail_on_unexpected(&report)?;
    ensure!(report.evaluated() == 24, "{} requests", report.evaluated());
    Ok(())
}
