//! `jitctl list|cancel|catalog`: a requester's view of their own requests and of what they may
//! request. Human tables by default, `--json` for scripts (the server's JSON, unchanged).
//! [`summary`] is the human view of one request that `status`, `request`, `revoke` and `ack`
//! print: the decision, the reviewer context, the break-glass review state and the audit.

use crate::api::{Client, segment};
use crate::endpoint::Target;
use anyhow::{Context, Result};
use clap::Args;
use serde_json::Value;
use std::process::ExitCode;

/// Arguments of `jitctl list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// How many requests per page (1 to 50).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Follow the pages to the end instead of showing only the newest page.
    #[arg(long)]
    pub all: bool,
    /// Print JSON (one array of requests).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `jitctl cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The request id, e.g. r-...
    pub id: String,
    /// Print the request as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `jitctl catalog`: without a subcommand, the entries you may request.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CatalogArgs {
    #[command(subcommand)]
    pub command: Option<CatalogCommand>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `jitctl catalog` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum CatalogCommand {
    /// Validate catalog files before deploying them; problems are printed as
    /// `file:line:column: message` and the exit code is 1.
    Check {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Roles whose name starts with this belong to trailgate and can never be requested
        /// (the stack name and a dash).
        #[arg(long, default_value = "trailgate-")]
        role_prefix: String,
        /// Also check each entry's role in IAM against the contract the grant step enforces
        /// (it exists, is tagged `trailgate:managed=true`, and trusts only the credentials
        /// function's role, requiring a source identity, and has the stack's protection policy
        /// attached), and that the IAM users it names exist. Needs iam:GetRole, iam:ListRoleTags,
        /// iam:ListAttachedRolePolicies and iam:GetUser,
        /// --broker-role-arn and --protection-policy-arn.
        #[arg(long, requires_all = ["broker_role_arn", "protection_policy_arn"])]
        roles: bool,
        /// The credentials function's role: the stack output `CredentialsFunctionRoleArn`.
        #[arg(long, value_name = "ARN")]
        broker_role_arn: Option<String>,
        /// The stack's `TrailgateProtectionPolicy`: the stack output `ProtectionPolicyArn`.
        #[arg(long, value_name = "ARN")]
        protection_policy_arn: Option<String>,
        /// Send the IAM calls of --roles to this endpoint (a local stack or moto).
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
    },
    /// Deploy a catalog file as the next version (`catalog check` runs first; a broken file is
    /// never sent). The stack re-checks it; every function runs it within
    /// `CatalogRefreshSeconds`. Only the stack's `CatalogPublishers` may push.
    Push {
        file: std::path::PathBuf,
        /// As for `catalog check`: the stack name and a dash.
        #[arg(long, default_value = "trailgate-")]
        role_prefix: String,
        /// Print the stored version record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every pushed version, newest first: number, when, who, size, SHA-256, and whether the
    /// chain over the records holds (publishers and approvers).
    History {
        #[arg(long)]
        json: bool,
    },
}

/// `jitctl catalog push FILE`.
async fn push(
    target: &Target,
    file: &std::path::Path,
    role_prefix: &str,
    json: bool,
) -> Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file.display().to_string();
    let text = String::from_utf8_lossy(&bytes);
    let problems = crate::catalog_check::check(&name, &text, role_prefix);
    if !problems.is_empty() {
        for problem in &problems {
            println!("{problem}");
        }
        eprintln!("not pushed: {} problem(s) in {name}", problems.len());
        return Ok(ExitCode::FAILURE);
    }
    let client = Client::connect(target).await?;
    let reply = client
        .put("/catalog", bytes)
        .await
        .with_context(|| format!("{name} was not pushed"))?;
    let version = &reply["version"];
    if json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
    } else if reply["created"] == true {
        println!(
            "catalog version {} pushed: {} entries over {} accounts, sha256 {}; every function runs it within {} s",
            version["version"],
            version["entries"],
            version["accounts"],
            version["sha256"].as_str().unwrap_or("-"),
            reply["refresh_seconds"]
        );
    } else {
        println!(
            "unchanged: {name} is version {} already (sha256 {})",
            version["version"],
            version["sha256"].as_str().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `jitctl catalog history`.
async fn history(target: &Target, json: bool) -> Result<ExitCode> {
    let client = Client::connect(target).await?;
    let history = client.get("/catalog/history").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&history)?);
        return Ok(ExitCode::SUCCESS);
    }
    let versions = history["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        println!("no catalog was pushed: the functions run the template's Catalog parameter");
        return Ok(ExitCode::SUCCESS);
    }
    let text = |v: &Value, name: &str| match &v[name] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                text(v, "version"),
                text(v, "at"),
                text(v, "pushed_by"),
                text(v, "entries"),
                text(v, "accounts"),
                text(v, "bytes"),
                text(v, "sha256").chars().take(16).collect(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "VERSION", "AT", "BY", "ENTRIES", "ACCOUNTS", "BYTES", "SHA256"
            ],
            &rows
        )
    );
    if history["chain"]["intact"] == true {
        println!("chain: intact ({} version(s) shown)", versions.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "chain: BROKEN: {}",
            history["chain"]["problem"].as_str().unwrap_or("?")
        );
        Ok(ExitCode::FAILURE)
    }
}

/// `jitctl list`: your requests, newest first.
pub async fn list(target: &Target, args: ListArgs) -> Result<ExitCode> {
    let client = Client::connect(target).await?;
    let mut requests = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut path = format!("/requests?limit={}", args.limit);
        if let Some(token) = &next {
            path.push_str(&format!("&next={}", segment(token)));
        }
        let page = client.get(&path).await?;
        requests.extend(page["requests"].as_array().cloned().unwrap_or_default());
        next = page["next"].as_str().map(str::to_owned);
        if !args.all || next.is_none() {
            break;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&requests)?);
    } else if requests.is_empty() {
        println!("no requests");
    } else {
        let text = |r: &Value, name: &str| r[name].as_str().unwrap_or("-").to_owned();
        let rows: Vec<Vec<String>> = requests
            .iter()
            .map(|r| {
                vec![
                    text(r, "id"),
                    text(r, "status"),
                    text(r, "catalog_id"),
                    text(r, "duration"),
                    text(r, "created_at"),
                    text(r, "expires_at"),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &["ID", "STATUS", "CATALOG", "DURATION", "CREATED", "EXPIRES"],
                &rows
            )
        );
        if next.is_some() {
            println!("(more: jitctl list --all)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `jitctl cancel ID`: withdraw a pending request.
pub async fn cancel(target: &Target, args: CancelArgs) -> Result<ExitCode> {
    let client = Client::connect(target).await?;
    let request = client
        .post_json(
            &format!("/requests/{}/cancel", segment(&args.id)),
            &serde_json::json!({}),
        )
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&request)?);
    } else {
        println!(
            "request {} is {}",
            request["id"].as_str().unwrap_or("-"),
            request["status"].as_str().unwrap_or("-")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `jitctl catalog`: the entries you may request.
pub async fn catalog(target: &Target, args: CatalogArgs) -> Result<ExitCode> {
    match &args.command {
        Some(CatalogCommand::Push {
            file,
            role_prefix,
            json,
        }) => return push(target, file, role_prefix, *json).await,
        Some(CatalogCommand::History { json }) => return history(target, *json).await,
        _ => {}
    }
    if let Some(CatalogCommand::Check {
        files,
        role_prefix,
        roles,
        broker_role_arn,
        protection_policy_arn,
        endpoint_url,
    }) = args.command
    {
        let iam = match (roles, broker_role_arn, protection_policy_arn) {
            (true, Some(broker), Some(protection)) => {
                let aws = crate::runbook::AwsTarget {
                    profile: target.profile.clone(),
                    region: target.region.clone(),
                };
                let config = crate::runbook::sdk_config(&aws, endpoint_url.as_deref()).await;
                // Identity Center is called as the delegated administrator the functions are:
                // the command's own credentials.
                let agents = trailgate_aws::agents::Agents::new(
                    &config,
                    "",
                    trailgate_domain::policy::AGENT_ROLE_NAME,
                    "jitctl",
                );
                Some((
                    trailgate_aws::roles::IamRoles::from_sdk(&config),
                    trailgate_aws::identity_center::IdentityCenterClient::new(
                        std::sync::Arc::new(agents),
                        None,
                    ),
                    broker,
                    protection,
                ))
            }
            _ => None,
        };
        let mut problems = 0;
        let mut permission_sets = false;
        for file in &files {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let name = file.display().to_string();
            let mut found = crate::catalog_check::check(&name, &text, &role_prefix);
            if let (true, Some((iam, identity_center, broker, protection))) =
                (found.is_empty(), &iam)
            {
                let protected = trailgate_domain::catalog::Protected::own_roles(&role_prefix);
                let contract = trailgate_domain::service::RoleContract {
                    protected: &protected,
                    broker_role_arn: broker,
                    protection_policy_arn: protection,
                };
                found = crate::catalog_check::check_roles(iam, &name, &text, contract).await?;
                found.extend(
                    crate::catalog_check::check_permission_sets(identity_center, &name, &text)
                        .await?,
                );
                permission_sets |= serde_json::from_str::<trailgate_domain::catalog::Catalog>(
                    &text,
                )
                .is_ok_and(|catalog| catalog.entries.iter().any(|e| e.permission_set.is_some()));
            }
            for problem in found {
                println!("{problem}");
                problems += 1;
            }
        }
        if problems > 0 {
            return Ok(ExitCode::FAILURE);
        }
        let checked = match (iam.is_some(), permission_sets) {
            (true, true) => " and their roles and permission sets",
            (true, false) => " and their roles",
            (false, _) => "",
        };
        println!("{} catalog file(s){checked} valid", files.len());
        return Ok(ExitCode::SUCCESS);
    }
    let client = Client::connect(target).await?;
    let catalog = client.get("/catalog").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&catalog)?);
        return Ok(ExitCode::SUCCESS);
    }
    let entries = catalog["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!("there is nothing you may request");
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let accounts: Vec<String> = e["accounts_available"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|a| match a["name"].as_str() {
                    Some(name) if !name.is_empty() => {
                        format!("{} ({name})", a["id"].as_str().unwrap_or("-"))
                    }
                    _ => a["id"].as_str().unwrap_or("-").to_owned(),
                })
                .collect();
            vec![
                e["id"].as_str().unwrap_or("-").to_owned(),
                if accounts.is_empty() {
                    "-".to_owned()
                } else {
                    accounts.join(", ")
                },
                e["max_duration"].as_str().unwrap_or("-").to_owned(),
                e["quorum"].to_string(),
                e["ticket_pattern"].as_str().unwrap_or("-").to_owned(),
                e["description"].as_str().unwrap_or("").to_owned(),
            ]
        })
        .collect();
    print!(
        "{}",
        table(
            &[
                "ID",
                "ACCOUNTS",
                "MAX",
                "APPROVALS",
                "TICKET",
                "DESCRIPTION"
            ],
            &rows
        )
    );
    Ok(ExitCode::SUCCESS)
}

/// A plain left-aligned table: a header row, then one row per item, columns two spaces apart.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (n, cell) in row.iter().enumerate() {
            widths[n] = widths[n].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (n, cell) in cells.into_iter().enumerate() {
            if n == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[n]));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_trim_the_last() {
        let rows = vec![
            vec!["r-1".to_owned(), "PENDING".to_owned()],
            vec!["r-22".to_owned(), "ACTIVE".to_owned()],
        ];
        assert_eq!(
            table(&["ID", "STATUS"], &rows),
            "ID    STATUS\nr-1   PENDING\nr-22  ACTIVE\n"
        );
    }
}

/// One request for a human: what was asked, how it ended, what reviewers saw, whether a
/// break-glass session still needs review, and what the audit found.
pub fn summary(request: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let field = |name: &str| request[name].as_str().unwrap_or("-").to_owned();
    let _ = writeln!(out, "request   {}", field("id"));
    let _ = writeln!(out, "status    {}", field("status"));
    let _ = writeln!(out, "role      {}", field("role_arn"));
    let _ = writeln!(out, "duration  {}", field("duration"));
    if let Some(start_at) = request["start_at"].as_str() {
        let _ = writeln!(out, "starts    {start_at} (scheduled)");
    }
    let _ = writeln!(out, "reason    {}", field("reason"));
    if let Some(outcome) = request["outcome"].as_str() {
        let _ = writeln!(out, "outcome   {outcome}");
    }
    if let Some(expires_at) = request["expires_at"].as_str() {
        let _ = writeln!(out, "expires   {expires_at}");
    }
    if request["break_glass"] == true {
        let review = &request["review"];
        let state = if review["required"] == true {
            "NEEDS REVIEW (an approver runs `jitctl ack ID`)".to_owned()
        } else {
            let ack = &review["acknowledgement"];
            format!(
                "acknowledged by {} at {}{}",
                ack["by"].as_str().unwrap_or("?"),
                ack["at"].as_str().unwrap_or("?"),
                ack["comment"]
                    .as_str()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            )
        };
        let _ = writeln!(out, "break-glass  {state}");
    }
    if let Some(context) = request["context"].as_object() {
        let _ = writeln!(
            out,
            "context   {}",
            context
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or("-")
        );
        for line in context
            .get("lines")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let _ = writeln!(out, "          {line}");
        }
    }
    let cloudtrail = &request["audit"]["cloudtrail"];
    if request["audit"].is_object() {
        if cloudtrail["analysed"] == true {
            let number = |name: &str| cloudtrail[name].as_u64().unwrap_or(0);
            let _ = writeln!(
                out,
                "audit     {} calls ({} writes, {} reads), {} resources",
                number("events"),
                number("writes"),
                number("reads"),
                number("resources_total")
            );
            for (service, actions) in cloudtrail["actions_by_service"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let names: Vec<String> = actions
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, count)| format!("{name} x{count}"))
                    .collect();
                let _ = writeln!(out, "          {service}: {}", names.join(", "));
            }
            for finding in cloudtrail["incident_findings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                let _ = writeln!(out, "          ! {finding}");
            }
            if cloudtrail["suggested_policy"].is_object() {
                let _ = writeln!(
                    out,
                    "          least-privilege policy from the calls made: `--json`, audit.cloudtrail.suggested_policy"
                );
            }
            // Calls no IAM action authorises are not in that policy; say so rather than let the
            // policy look complete.
            if let Some(unmapped) = cloudtrail["suggested_policy_unmapped"]
                .as_object()
                .filter(|calls| !calls.is_empty())
            {
                let calls: Vec<String> = unmapped
                    .iter()
                    .map(|(call, count)| format!("{call} x{count}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "          not in the policy (no IAM action): {}",
                    calls.join(", ")
                );
            }
        } else {
            let _ = writeln!(
                out,
                "audit     CloudTrail not analysed: {}",
                cloudtrail["reason"].as_str().unwrap_or("-")
            );
        }
    }
    out
}

#[cfg(test)]
mod summary_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_shows_review_state_context_and_audit() {
        let request = json!({
            "id": "r-1", "status": "AUDITED", "role_arn": "arn:aws:iam::1:role/x", "duration": "30m",
            "reason": "incident", "break_glass": true,
            "review": {"required": true, "acknowledgement": null},
            "context": {"available": true, "summary": "12 events", "lines": ["! high: Logging tampering (1 events)"]},
            "audit": {"cloudtrail": {"analysed": true, "events": 3, "writes": 1, "reads": 2, "resources_total": 1,
                "actions_by_service": {"s3": {"GetObject": 2, "PutObject": 1}},
                "incident_findings": ["high: Logging and monitoring tampering (1 events)"],
                "suggested_policy": {"Version": "2012-10-17"},
                "suggested_policy_unmapped": {"signin:ConsoleLogin": 2}}}
        });
        let text = summary(&request);
        assert!(text.contains("break-glass  NEEDS REVIEW"), "{text}");
        assert!(text.contains("! high: Logging tampering"), "{text}");
        assert!(
            text.contains("audit     3 calls (1 writes, 2 reads), 1 resources"),
            "{text}"
        );
        assert!(text.contains("s3: GetObject x2, PutObject x1"), "{text}");
        assert!(
            text.contains("not in the policy (no IAM action): signin:ConsoleLogin x2"),
            "{text}"
        );
        assert!(
            text.contains("! high: Logging and monitoring tampering"),
            "{text}"
        );

        let acked = json!({"id": "r-1", "break_glass": true, "review": {"required": false,
            "acknowledgement": {"by": "bob", "at": "2026-11-21T10:00:00Z", "comment": "fine"}}});
        assert!(summary(&acked).contains("acknowledged by bob at 2026-11-21T10:00:00Z: fine"));
        // A normal request says nothing about break-glass.
        assert!(!summary(&json!({"id": "r-2"})).contains("break-glass"));
    }
}
