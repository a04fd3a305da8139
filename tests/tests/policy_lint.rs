//! The IAM lint (issue 5): every policy in template.yaml and every document the code writes
//! (the per-request deny, the session policy, the target-role trust policy) passes `parliament`
//! with no findings.
//!
//! parliament comes from `.venv-lint` (`scripts/bootstrap.sh lint`, pinned in
//! requirements/lint.txt). Without it the test fails under CI (`CI=true`) and is skipped, loudly,
//! elsewhere. Template policies are linted with their intrinsics resolved to ARNs of the right
//! shape, so parliament can check action/resource pairs. parliament only knows identity and
//! resource policies: a trust policy is linted as the resource policy it is, with the role it
//! is attached to as its `Resource` (which is implicit in IAM).

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value as Json, json};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use trailgate_system_tests::template::{self, ACCOUNT, STACK, Template};

fn root() -> PathBuf {
    template::root()
}

/// The parliament executable, or `None` (after saying why) when it may be skipped.
fn parliament() -> Result<Option<PathBuf>> {
    let path = root().join(".venv-lint").join("bin").join("parliament");
    if path.exists() {
        return Ok(Some(path));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        bail!(
            "{} is missing: run scripts/bootstrap.sh lint",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED: {} is missing (scripts/bootstrap.sh lint); CI=true makes this a failure",
        path.display()
    );
    Ok(None)
}

/// parliament's findings for one policy document, as JSON objects.
fn lint(parliament: &PathBuf, document: &Json) -> Result<Vec<Json>> {
    // --string, not --file: parliament refuses --file whenever stdin is not a terminal.
    let output = Command::new(parliament)
        .arg("--json")
        .arg("--string")
        .arg(document.to_string())
        .stdin(Stdio::null())
        .output()
        .context("running parliament")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let findings: Vec<Json> = stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parliament's output: {stdout}"))?;
    // Exit 0 = clean, 1 = findings; anything else (a crash, a usage error) is not a verdict.
    match output.status.code() {
        Some(0) | Some(1) => Ok(findings),
        other => Err(anyhow!(
            "parliament exited {other:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        )),
    }
}

/// Every policy document in template.yaml and member/template.yaml: (where, document).
fn template_policies() -> Result<Vec<(String, Json)>> {
    // The trail parameters set, so the conditional trail-read policies name a real bucket.
    let mut policies = Template::load_file(
        "template.yaml",
        ACCOUNT,
        STACK,
        &[
            ("TrailBucket", Json::String("org-trail".into())),
            ("TrailPrefix", Json::String("logs/".into())),
            (
                "TrailKmsKeyArn",
                Json::String(
                    "arn:aws:kms:us-east-1:222222222222:key/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
                        .into(),
                ),
            ),
        ],
    )?
    .policies()?;
    let member = Template::load_member()?.policies()?;
    anyhow::ensure!(
        member.len() >= 5,
        "found only {} member policies",
        member.len()
    );
    policies.extend(
        member
            .into_iter()
            .map(|(name, document)| (format!("member/{name}"), document)),
    );
    Ok(policies)
}

/// The documents the code writes, as it writes them.
fn code_policies() -> Result<Vec<(String, Json)>> {
    use trailgate_domain::policy;
    let room = policy::INLINE_POLICY_LIMIT;
    let deny = policy::add_revocation(None, "r-aaaaaaaaaaaaaaaaaaaaaaaaaa", 1_800_000_000, 0, room)
        .map_err(|err| anyhow!("{err}"))?
        .document;
    let two = policy::add_revocation(
        Some(&deny),
        "r-bbbbbbbbbbbbbbbbbbbbbbbbbb",
        1_800_000_000,
        0,
        room,
    )
    .map_err(|err| anyhow!("{err}"))?
    .document;
    // A full role's role-wide fallback, as written when the ids no longer fit.
    let fallback = policy::add_revocation(
        Some(&two),
        "r-cccccccccccccccccccccccccc",
        1_800_000_000,
        1_700_000_000,
        // Room for the fallback alone, not for three ids.
        260,
    )
    .map_err(|err| anyhow!("{err}"))?;
    anyhow::ensure!(fallback.fallback, "{fallback:?}");
    let mut trust: Json = serde_json::from_str(&trailgate_domain::testing::broker_trust_policy())?;
    for statement in trust["Statement"].as_array_mut().into_iter().flatten() {
        statement["Resource"] = json!(format!("arn:aws:iam::{ACCOUNT}:role/sample-target-{STACK}"));
    }
    Ok(vec![
        (
            "revocations policy (one request)".into(),
            serde_json::from_str(&deny)?,
        ),
        (
            "revocations policy (two requests)".into(),
            serde_json::from_str(&two)?,
        ),
        (
            "revocations policy (role-wide fallback)".into(),
            serde_json::from_str(&fallback.document)?,
        ),
        (
            "session policy".into(),
            serde_json::from_str(&policy::session_policy("2026-11-21T12:00:00Z"))?,
        ),
        ("target-role trust policy".into(), trust),
    ])
}

/// Findings accepted after review: (policy, issue, why). Each must still occur (a stale entry
/// fails the test), so the list only ever holds disagreements someone has looked at.
const ACCEPTED: &[(&str, &str, &str)] = &[
    (
        "DecisionFunction.Policies[2]",
        "RESOURCE_MISMATCH",
        // parliament follows the Service Authorization Reference, which lists no resource type
        // for states:SendTask*. In practice IAM evaluates them against the state machine that owns
        // the task token: AWS's own AccessDenied messages name `...:stateMachine:<name>` as the
        // resource, an AWS CDK maintainer tested that the scoping works for Lambda callbacks
        // (aws/aws-cdk#8486), and SAM's StepFunctionsCallbackPolicy (aws/serverless-application-model
        // #3545) scopes them the same way. Scoped is least privilege; `*` would let the public
        // decision function complete any task in the account.
        "SendTask* scoped to the state machine, as SAM's StepFunctionsCallbackPolicy does",
    ),
    (
        "EventsFunction.Policies[0]",
        "RESOURCE_MISMATCH",
        // parliament splits an ARN at every `:`, and a DynamoDB stream's label is a timestamp
        // with colons (`table/T/stream/2026-12-07T00:00:00.000`, as `!GetAtt LedgerTable.StreamArn`
        // gives it), so it matches no stream ARN; the same statement with a colon-free label
        // passes. The resource is exactly the ledger's stream.
        "the ledger's stream ARN, whose label has colons parliament does not parse",
    ),
    (
        "RunbookScanStateMachine.Policies[1]",
        "RESOURCE_MISMATCH",
        // The Service Authorization Reference gives states:DescribeExecution two resource
        // types, `execution` and `express`, and parliament wants a resource of each. The scan's
        // Distributed Map runs STANDARD child executions (statemachine/runbook-scan.asl.json),
        // whose ARNs are the labelled `execution:<machine>/ScanBatches:<id>` the statement
        // names; no express execution exists to describe.
        "DescribeExecution on the scan's STANDARD child executions only, not on express ones",
    ),
];

#[test]
fn every_policy_passes_parliament() -> Result<()> {
    let Some(parliament) = parliament()? else {
        return Ok(());
    };
    let mut policies = template_policies()?;
    assert!(
        policies.len() >= 12,
        "found only {} policies in template.yaml",
        policies.len()
    );
    policies.extend(code_policies()?);
    let mut failures = Vec::new();
    let mut accepted_seen = Vec::new();
    for (name, document) in &policies {
        assert!(
            !document.to_string().contains("unresolved"),
            "{name}: {document}"
        );
        for finding in lint(&parliament, document)? {
            let issue = finding["issue"].as_str().unwrap_or_default();
            match ACCEPTED
                .iter()
                .find(|(policy, accepted, _)| policy == name && *accepted == issue)
            {
                Some(entry) => {
                    eprintln!("accepted: {name}: {issue} ({})", entry.2);
                    accepted_seen.push((entry.0, entry.1));
                }
                None => failures.push(format!("{name}: {finding}")),
            }
        }
    }
    for (policy, issue, _) in ACCEPTED {
        if !accepted_seen.contains(&(*policy, *issue)) {
            failures.push(format!(
                "{policy}: accepted finding {issue} no longer occurs; remove it from ACCEPTED"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "parliament findings:\n{}",
        failures.join("\n")
    );
    Ok(())
}

#[test]
fn the_lint_catches_a_bad_policy() -> Result<()> {
    // The check must be able to fail: a misspelt action and a malformed statement are findings.
    let Some(parliament) = parliament()? else {
        return Ok(());
    };
    let bad = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iam:PutRolePolicyy", "Resource": "*"},
        {"Effect": "Allow", "Action": "s3:GetObject"}]});
    let findings = lint(&parliament, &bad)?;
    assert!(findings.len() >= 2, "{findings:?}");
    Ok(())
}
