//! `jitctl report ID --format html|json`: one request as an auditor keeps it.
//!
//! It reads the record and events from the ledger, runs `jitctl verify`'s checks (both chains,
//! the export in the Object Lock archive), checks the revoke by its effect (the target role's
//! `trailgate-revocations` as IAM returns it now, read with the caller's credentials), and
//! writes the page or JSON of `trailgate_domain::request_report`. Exits 1 when a check fails,
//! after writing the report, so the failure is in the report too.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use time::OffsetDateTime;
use trailgate_domain::policy::REVOCATIONS_POLICY_NAME;
use trailgate_domain::ports::Roles;
use trailgate_domain::request::AccessRequest;
use trailgate_domain::request_report::{self, Check, Outcome, Report};

use crate::verify::{LedgerArgs, Sources, verify_read};

/// `jitctl report` arguments.
#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The request id.
    pub id: String,
    /// `html`: one self-contained page; `json`: the same content as data.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Write the report here instead of to standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Html,
    Json,
}

/// The report of request `id`, every check run.
pub async fn report(
    sdk: &trailgate_aws::SdkConfig,
    sources: &Sources,
    id: &str,
    now: OffsetDateTime,
) -> Result<Report> {
    let reader = trailgate_aws::ledger::LedgerReader::from_sdk(sdk, sources.table.clone());
    let (record, events) = crate::verify::read_request(&reader, id).await?;
    let verification = verify_read(sdk, sources, &record, &events).await?;
    let integrity = if verification.problems.is_empty() {
        Check::new(
            "ledger chain and archive",
            Outcome::Passed,
            verification.checked,
        )
    } else {
        let mut lines = verification.problems;
        lines.extend(verification.checked);
        Check::new("ledger chain and archive", Outcome::Failed, lines)
    };
    let revoke = revoke_check(sdk, &record, now).await;
    Ok(request_report::build(
        &record,
        &events,
        vec![integrity],
        revoke,
        now,
    ))
}

/// The revoke, checked by what IAM holds now. Only a role in the account of the caller's
/// credentials is read: `GetRole` must return exactly the record's ARN, else the check says it
/// could not be made (a role in another account, or deleted) instead of reading a namesake.
async fn revoke_check(
    sdk: &trailgate_aws::SdkConfig,
    record: &AccessRequest,
    now: OffsetDateTime,
) -> Check {
    let not_checked = |why: String| Check::new("revoke in effect", Outcome::NotChecked, vec![why]);
    if record.revoked_at.is_none() || record.expires_at.is_none() {
        return request_report::judge_revoke(record, None, now);
    }
    if record.assignment.is_some() {
        return not_checked(
            "a permission-set grant: its deny is in the permission set, which the reconciler re-checks; this report does not read Identity Center".to_owned(),
        );
    }
    let roles = trailgate_aws::roles::IamRoles::from_sdk(sdk);
    match roles.describe(&record.role_arn).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return not_checked(format!(
                "{} is not visible with these credentials (another account, or deleted): run the report with a profile of account {}",
                record.role_arn,
                record.target_account()
            ));
        }
        Err(err) => {
            return not_checked(format!("IAM GetRole {}: {}", record.role_arn, err.message));
        }
    }
    match roles
        .inline_policy(&record.role_arn, REVOCATIONS_POLICY_NAME)
        .await
    {
        Ok(document) => request_report::judge_revoke(record, document.as_deref(), now),
        Err(err) => not_checked(format!(
            "IAM GetRolePolicy {}: {}",
            record.role_arn, err.message
        )),
    }
}

/// `jitctl report ID`: writes the report; exits 1 if a check failed.
pub async fn run(args: ReportArgs, aws: &crate::runbook::AwsTarget) -> Result<ExitCode> {
    let (sdk, sources) = crate::verify::open(&args.ledger, aws).await?;
    let report = report(&sdk, &sources, &args.id, OffsetDateTime::now_utc()).await?;
    let text = match args.format {
        ReportFormat::Html => request_report::html(&report),
        ReportFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{}: report written to {}", args.id, path.display());
        }
        None => print!("{text}"),
    }
    if report.has_failures() {
        eprintln!("{}: FAILED: a check failed (see the report)", args.id);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
