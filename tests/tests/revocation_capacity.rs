//! Issue 12, capacity on the local stack: 500 revocations on one role over a day, written by
//! the domain's revoke and reconcile use cases through the real IAM adapter into moto, with
//! the role's other inline policy counted. The clock is simulated (a day in well under a
//! minute), the ledger is the in-memory one, IAM is moto: every revoke must succeed by name,
//! the role's inline policies as moto stores them must stay inside IAM's 10,240 characters
//! with collection running every 5 minutes, and the last document as moto returns it is judged
//! by the IAM evaluator (tests/src/iam.rs).

use anyhow::{Context, Result, anyhow, ensure};
use serde_json::json;
use time::Duration;
use trailgate_aws::roles::IamRoles;
use trailgate_domain::policy::{self, REVOCATIONS_POLICY_NAME};
use trailgate_domain::request::Status;
use trailgate_domain::service;
use trailgate_domain::testing::{
    MemoryIdentityCenter, MemoryLedger, MemoryNotifier, now, pending_request, seed,
};
use trailgate_system_tests::iam::{Expect, Matrix, Request};
use trailgate_system_tests::run_on_stack;
use trailgate_system_tests::template::ACCOUNT;

const ROLE: &str = "sample-target-trailgate";
const REVOCATIONS: i64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_revocations_on_one_role_over_a_day() -> Result<()> {
    run_on_stack("revocation-capacity", &[], |ctx| async move {
        // The role's own inline policy, which IAM counts against the same limit.
        let own = json!({"Version": "2012-10-17", "Statement": [{"Sid": "TeamExtras", "Effect": "Allow",
            "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{}/*", "t".repeat(1_900))}]})
        .to_string();
        ctx.iam
            .put_role_policy()
            .role_name(ROLE)
            .policy_name("team-extras")
            .policy_document(&own)
            .send()
            .await?;
        let roles = IamRoles::new(ctx.iam.clone());
        let ledger = MemoryLedger::default();
        let notifier = MemoryNotifier::default();
        let start = now();
        let mut next_reconcile = start;
        let (mut largest, mut most_ids, mut reconciles) = (0, 0, 0);
        let mut revoked = Vec::new();
        for n in 0..REVOCATIONS {
            let at = start + Duration::seconds(n * 86_400 / REVOCATIONS);
            while next_reconcile <= at {
                let report = service::reconcile(&ledger, &roles, &MemoryIdentityCenter::default(), &notifier, next_reconcile)
                    .await
                    .map_err(|e| anyhow!("reconcile: {e}"))?;
                ensure!(report.failed.is_empty(), "{report:?}");
                ensure!(report.near_capacity.is_empty(), "near the limit: {report:?}");
                next_reconcile += Duration::minutes(5);
                reconciles += 1;
            }
            // Grants of 5 minutes to 4 hours; an early revoke keeps its deny until expires_at
            // plus the margin, so the longest ones overlap most.
            let mut request = pending_request();
            request.id = format!("r-{n:026}");
            request.status = Status::Active;
            request.expires_at = Some(trailgate_domain::time::format_utc(
                at + Duration::minutes(5 + (n * 37) % 240),
            ));
            seed(&ledger, request.clone());
            service::revoke(&ledger, &roles, &request.id, "capacity test", at)
                .await
                .map_err(|e| anyhow!("revoke {n}: {e}"))?;
            let stored = ctx.revocations(ROLE).await?;
            let contents = policy::contents(&stored).map_err(|e| anyhow!("{e}"))?;
            ensure!(contents.fallback_before.is_none(), "revoke {n} fell back: {stored}");
            ensure!(
                policy::denies_request(&stored, &request.id),
                "revoke {n}: moto's policy does not name it"
            );
            let used = policy::policy_size(&stored) + policy::policy_size(&own);
            ensure!(used <= policy::INLINE_POLICY_LIMIT, "revoke {n}: {used} characters");
            largest = largest.max(used);
            most_ids = most_ids.max(contents.request_ids);
            revoked.push(request.id);
        }
        println!(
            "{REVOCATIONS} revocations over a simulated day on {ROLE} (moto), {reconciles} reconciler runs: \
             at most {most_ids} ids live, largest inline total {largest} of {} characters",
            policy::INLINE_POLICY_LIMIT
        );
        // One statement per request would have needed about 170 characters each.
        ensure!(
            most_ids * 170 + policy::policy_size(&own) > policy::INLINE_POLICY_LIMIT,
            "the day never needed the compaction ({most_ids} live)"
        );

        // The last document exactly as moto returns it, judged by the evaluator.
        let stored = ctx.revocations(ROLE).await?;
        let document: serde_json::Value = serde_json::from_str(&stored)?;
        let session = |id: &str| {
            let mut request = Request::new(
                &format!("arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/tg-alice-{id}"),
                "s3:GetObject",
                "arn:aws:s3:::customer-data/export.csv",
            )
            .with("aws:PrincipalTag/trailgate-request", id)
            .with("aws:SourceIdentity", "alice");
            request.identity = vec![
                ("AdministratorAccess".into(), json!({"Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})),
                (REVOCATIONS_POLICY_NAME.into(), document.clone()),
                ("team-extras".into(), serde_json::from_str(&own).expect("own policy")),
            ];
            request
        };
        let mut matrix = Matrix::default();
        let live: Vec<&String> = revoked
            .iter()
            .filter(|id| policy::denies_request(&stored, id))
            .collect();
        ensure!(live.len() >= 10, "only {} live at the end of the day", live.len());
        for id in &live {
            matrix.add("moto's trailgate-revocations", "a live revoked request", session(id), Expect::deny_by("TGX"));
        }
        matrix.add("moto's trailgate-revocations", "a request never revoked", session("r-neverrevokedneverrevoked00"), Expect::Allow);
        let report = matrix.run()?;
        println!("{}", report.table());
        ensure!(report.unexpected.is_empty(), "{}", report.unexpected.join("\n"));

        // A day later everything is collected and the policy deleted.
        let report = service::reconcile(&ledger, &roles, &MemoryIdentityCenter::default(), &notifier, start + Duration::days(2))
            .await
            .map_err(|e| anyhow!("reconcile: {e}"))?;
        ensure!(report.failed.is_empty(), "{report:?}");
        ensure!(
            ctx.revocations(ROLE).await?.is_empty(),
            "statements left after every grant ended: {}",
            ctx.revocations(ROLE).await?
        );
        Ok(())
    })
    .await
    .context("revocation capacity")
}
