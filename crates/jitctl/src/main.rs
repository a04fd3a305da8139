//! `jitctl`: the command-line client of trailgate.
//!
//! Requesters use it to ask for access, follow a request, and plug vended credentials into
//! every AWS tool through `credential_process`; developers use `jitctl local` to run the whole
//! system on their machine. Errors are printed as one sentence with the server's error code.

use anyhow::Result;
use clap::{Parser, Subcommand};
use jitctl::{api, endpoint, local};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "jitctl",
    version,
    about = "Just-in-time AWS access with trailgate"
)]
struct Cli {
    /// trailgate API URL (default: $TRAILGATE_ENDPOINT, then ~/.config/trailgate/config.json, then the local stack).
    #[arg(long, global = true, env = "TRAILGATE_ENDPOINT")]
    endpoint: Option<String>,
    /// AWS profile whose credentials sign the API calls.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    profile: Option<String>,
    /// AWS region of the API (default: the profile's, then us-east-1).
    #[arg(long, global = true)]
    region: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask for temporary access to a catalog entry.
    Request {
        /// Catalog entry id, e.g. sandbox-admin.
        catalog_id: String,
        /// How long, e.g. 2h, 30m, PT1H30M.
        #[arg(long, short)]
        duration: String,
        /// Why you need it (shown to the approvers).
        #[arg(long, short)]
        reason: String,
        /// Ticket reference, if the entry requires one.
        #[arg(long)]
        ticket: Option<String>,
        /// The account to be granted the entry's role in (entries over several accounts;
        /// `jitctl catalog` lists them).
        #[arg(long)]
        account: Option<String>,
        /// Start the grant later (RFC 3339, e.g. 2026-12-08T09:00:00Z), within the entry's
        /// `max_start_delay`: approvals are collected now, and `jitctl cancel` works until a
        /// minute before.
        #[arg(long, value_name = "TIME")]
        start_at: Option<String>,
        /// Return at once instead of waiting for the decision.
        #[arg(long)]
        no_wait: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a request.
    Status {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// List your requests, newest first.
    List(jitctl::requests::ListArgs),
    /// Cancel one of your requests while it is PENDING.
    Cancel(jitctl::requests::CancelArgs),
    /// Show the catalog entries you may request.
    Catalog(jitctl::requests::CatalogArgs),
    /// Approve a request as yourself (you must be one of its approvers).
    Approve(jitctl::approve::DecisionArgs),
    /// Deny a request as yourself (you must be one of its approvers).
    Deny(jitctl::approve::DecisionArgs),
    /// End an active grant now (the requester or one of its approvers): trailgate denies every
    /// session of the request on the target role and stops vending credentials.
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Sign off a break-glass session after reviewing it (an approver of the entry, not the
    /// requester). Until an approver does, the request stays flagged for review.
    Ack {
        id: String,
        /// What you checked (kept in the ledger).
        #[arg(long, short)]
        comment: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Check a request's ledger against its export in the Object Lock archive: both chains,
    /// and every exported event unchanged in the ledger. Exits 1 on any difference.
    Verify(jitctl::verify::VerifyArgs),
    /// One request as an auditor keeps it: who asked and why, the context shown, every
    /// decision, the credentials issued, what was done, the revoke checked by its effect, and
    /// the chain checks; one self-contained HTML page or JSON. Exits 1 if a check fails.
    Report(jitctl::report::ReportArgs),
    /// Requests' ledger events for a SIEM: OCSF 1.8.0 (User Access Management, Authentication)
    /// or the ledger's NDJSON, to standard output, a file or s3://bucket/key.
    Export(jitctl::export::ExportArgs),
    /// Print credentials for an active grant in the AWS `credential_process` format.
    CredentialProcess {
        #[arg(long)]
        request: String,
    },
    /// Write an AWS profile whose credentials come from `jitctl credential-process`.
    Profile {
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Print an AWS console sign-in URL for an active grant (federation endpoint).
    Console(jitctl::console::ConsoleArgs),
    /// Run trailgate on this machine (moto, cargo-lambda, the router).
    Local {
        #[command(subcommand)]
        command: local::LocalCommand,
    },
    /// CloudTrail runbooks: list, show, run, explain, check.
    Runbook {
        #[command(subcommand)]
        command: jitctl::runbook::RunbookCommand,
    },
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Add (or replace) a profile for an active grant.
    Add(jitctl::console::ProfileArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(err) => {
            eprintln!("jitctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let target = endpoint::Target {
        endpoint: cli.endpoint,
        profile: cli.profile,
        region: cli.region,
        aws_config_file: None,
    };
    match cli.command {
        Command::Request {
            catalog_id,
            duration,
            reason,
            ticket,
            account,
            start_at,
            no_wait,
            json,
        } => {
            let client = api::Client::connect(&target).await?;
            let mut body = serde_json::json!({"catalog_id": catalog_id, "duration": duration, "reason": reason, "ticket": ticket});
            if let Some(account) = account {
                body["account"] = serde_json::Value::String(account);
            }
            if let Some(start_at) = start_at {
                body["start_at"] = serde_json::Value::String(start_at);
            }
            let created = client.post_json("/requests", &body).await?;
            let id = created["id"].as_str().unwrap_or_default().to_owned();
            if no_wait {
                print_request(&created, json);
                return Ok(ExitCode::SUCCESS);
            }
            eprintln!(
                "request {id} is PENDING; waiting for the approvers (Ctrl-C stops waiting, not the request)"
            );
            let decided = client
                .wait_while(&id, &["PENDING"], std::time::Duration::from_secs(24 * 3600))
                .await?;
            print_request(&decided, json);
            Ok(
                if decided["status"] == "DENIED" || decided["status"] == "EXPIRED" {
                    ExitCode::from(3)
                } else {
                    ExitCode::SUCCESS
                },
            )
        }
        Command::Status { id, json } => {
            let client = api::Client::connect(&target).await?;
            print_request(
                &client
                    .get(&format!("/requests/{}", api::segment(&id)))
                    .await?,
                json,
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke { id, json } => {
            let client = api::Client::connect(&target).await?;
            let revoked = client
                .post_json(
                    &format!("/requests/{}/revoke", api::segment(&id)),
                    &serde_json::json!({}),
                )
                .await?;
            print_request(&revoked, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Ack { id, comment, json } => {
            let client = api::Client::connect(&target).await?;
            let acked = client
                .post_json(
                    &format!("/requests/{}/ack", api::segment(&id)),
                    &serde_json::json!({ "comment": comment }),
                )
                .await?;
            print_request(&acked, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::CredentialProcess { request } => {
            let client = api::Client::connect(&target).await?;
            let credentials = client
                .get(&format!("/requests/{}/credentials", api::segment(&request)))
                .await?;
            if credentials["Version"] != 1 || !credentials["AccessKeyId"].is_string() {
                anyhow::bail!("the server's answer is not in the credential_process format");
            }
            println!("{credentials}");
            Ok(ExitCode::SUCCESS)
        }
        Command::List(args) => jitctl::requests::list(&target, args).await,
        Command::Cancel(args) => jitctl::requests::cancel(&target, args).await,
        Command::Catalog(args) => jitctl::requests::catalog(&target, args).await,
        Command::Approve(args) => jitctl::approve::run(&target, args, true).await,
        Command::Deny(args) => jitctl::approve::run(&target, args, false).await,
        Command::Profile {
            command: ProfileCommand::Add(args),
        } => {
            jitctl::console::add_profile(&target, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Console(args) => {
            jitctl::console::console(&target, args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify(args) => jitctl::verify::run(args, &aws_target(&target)).await,
        Command::Report(args) => jitctl::report::run(args, &aws_target(&target)).await,
        Command::Export(args) => jitctl::export::run(args, &aws_target(&target)).await,
        Command::Local { command } => local::run(command, &target).await,
        Command::Runbook { command } => jitctl::runbook::run(command, &aws_target(&target)).await,
    }
}

/// Prints a request as a short human summary, or as JSON.
fn print_request(request: &serde_json::Value, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(request).unwrap_or_default()
        );
        return;
    }
    print!("{}", jitctl::requests::summary(request));
}

/// The profile and Region the AWS-reading commands (verify, report, export, runbook) use.
fn aws_target(target: &endpoint::Target) -> jitctl::runbook::AwsTarget {
    jitctl::runbook::AwsTarget {
        profile: target.profile.clone(),
        region: target.region.clone(),
    }
}
