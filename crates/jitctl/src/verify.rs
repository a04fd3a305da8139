//! `jitctl verify ID`: checks a request's ledger against its export in the archive bucket.
//!
//! It reads the record and events from the ledger table and `requests/<id>.ndjson` from the
//! archive (S3 Object Lock), verifies both chains, and checks that every exported event is in
//! the ledger unchanged. The archive cannot be altered within its retention, so a difference
//! means the ledger was changed after the request closed. With the chain key (which only
//! trailgate's function roles may read on AWS; on the local stack it is read automatically)
//! the keyed hashes are recomputed too; without it the links, the record digest and the
//! comparison with the export are still checked.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::process::ExitCode;
use trailgate_domain::ledger::Event;
use trailgate_domain::ledger::{
    ChainKey, archive_key, compare_with_export, from_ndjson, verify_chain, verify_events,
};
use trailgate_domain::request::AccessRequest;
use trailgate_domain::service::is_closed;

/// `jitctl verify` arguments.
#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// The request id.
    pub id: String,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

/// Where a request's ledger and archive are: shared by `verify`, `report` and `export`.
#[derive(Args, Debug, Clone, Default)]
pub struct LedgerArgs {
    /// The ledger table (stack output `LedgerTableName`; default: the local stack's).
    #[arg(long)]
    pub table: Option<String>,
    /// The archive bucket (stack output `LedgerArchiveBucketName`; default: the local stack's).
    #[arg(long)]
    pub bucket: Option<String>,
    /// The chain key secret (stack output `ChainKeySecretArn`), to recompute the keyed hashes;
    /// needs a principal the secret's policy lets in. Default: the local stack's.
    #[arg(long)]
    pub chain_key_secret: Option<String>,
    /// Send the AWS calls to this endpoint (a local stack or moto).
    #[arg(long)]
    pub endpoint_url: Option<String>,
}

/// Where the ledger, the archive and the key are.
#[derive(Debug, Clone)]
pub struct Sources {
    pub table: String,
    pub bucket: String,
    pub chain_key_secret: Option<String>,
}

/// What verification found: the lines to print and, if anything is wrong, the problems.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub checked: Vec<String>,
    pub problems: Vec<String>,
}

/// The chain key, when `sources` names its secret.
pub async fn chain_key(
    sdk: &trailgate_aws::SdkConfig,
    sources: &Sources,
) -> Result<Option<ChainKey>> {
    match &sources.chain_key_secret {
        Some(secret) => Ok(Some(
            trailgate_aws::secrets::chain_key_from_sdk(sdk, secret)
                .await
                .with_context(|| format!("reading the chain key {secret}"))?,
        )),
        None => Ok(None),
    }
}

/// Request `id`'s record and events; an error when the ledger has no such request.
pub async fn read_request(
    reader: &trailgate_aws::ledger::LedgerReader,
    id: &str,
) -> Result<(AccessRequest, Vec<Event>)> {
    let record = reader
        .get(id)
        .await
        .context("reading the ledger")?
        .with_context(|| format!("the ledger has no request {id}"))?;
    let events = reader.events(id).await.context("reading the ledger")?;
    Ok((record, events))
}

/// Verifies request `id` with the AWS clients of `sdk`.
pub async fn verify(
    sdk: &trailgate_aws::SdkConfig,
    sources: &Sources,
    id: &str,
) -> Result<Verification> {
    let reader = trailgate_aws::ledger::LedgerReader::from_sdk(sdk, sources.table.clone());
    let (record, events) = read_request(&reader, id).await?;
    verify_read(sdk, sources, &record, &events).await
}

/// [`verify`] of a record and events already read from the ledger (`jitctl report` reads them
/// once for both).
pub async fn verify_read(
    sdk: &trailgate_aws::SdkConfig,
    sources: &Sources,
    record: &AccessRequest,
    events: &[Event],
) -> Result<Verification> {
    let id = record.id.as_str();
    let archive = trailgate_aws::archive::S3Archive::from_sdk(sdk, sources.bucket.clone());
    let key = chain_key(sdk, sources).await?;
    let mut found = Verification::default();
    let hashes = |checked: bool| {
        if checked {
            "keyed hashes recomputed"
        } else {
            "keyed hashes not recomputed: no chain key"
        }
    };
    match verify_chain(record, events, key.as_ref()) {
        Ok(report) => found.checked.push(format!(
            "ledger: {} events ({} keyed, {}), {}, status {}",
            report.events,
            report.keyed,
            hashes(report.hashes_checked),
            if report.record_covered {
                "the record matches its last event"
            } else {
                "an unkeyed (version 1) chain: the record is not covered"
            },
            record.status,
        )),
        Err(err) => found.problems.push(format!("ledger: {}", err.message)),
    }
    let object = archive_key(id);
    let location = format!("s3://{}/{object}", sources.bucket);
    match archive.get(&object).await.context("reading the archive")? {
        None if is_closed(record.status) => found.problems.push(format!(
            "export: {location} does not exist, but the request is {} (its Export Ledger step has not run or failed)",
            record.status
        )),
        None => found.checked.push(format!(
            "export: none yet; the request is {} and is exported when it closes",
            record.status
        )),
        Some(text) => match from_ndjson(&text).map_err(|err| err.message).and_then(|exported| {
            let report = verify_events(id, &exported, key.as_ref()).map_err(|err| err.message)?;
            let agreement =
                compare_with_export(id, events, &exported).map_err(|err| err.message)?;
            Ok((report, agreement))
        }) {
            Ok((report, agreement)) => {
                found.checked.push(format!(
                    "export: {location}: {} events ({}), identical to the ledger's",
                    report.events,
                    hashes(report.hashes_checked)
                ));
                if agreement.later > 0 {
                    found.checked.push(format!(
                        "{} later ledger event(s) after the export, covered by the chain only",
                        agreement.later
                    ));
                }
            }
            Err(message) => found.problems.push(format!("export {location}: {message}")),
        },
    }
    Ok(found)
}

/// The AWS clients and the sources `args` name, the local stack's where they name none.
pub async fn open(
    args: &LedgerArgs,
    aws: &crate::runbook::AwsTarget,
) -> Result<(trailgate_aws::SdkConfig, Sources)> {
    let local = crate::endpoint::local_state_dir()
        .and_then(|dir| trailgate_local::StackState::load(&dir).ok());
    let output = |name: &str| {
        local
            .as_ref()
            .and_then(|state| state.outputs.get(name).cloned())
    };
    let sources = Sources {
        table: match args.table.clone().or_else(|| output("LedgerTableName")) {
            Some(table) => table,
            None => bail!("no ledger table: pass --table (the stack output LedgerTableName)"),
        },
        bucket: match args
            .bucket
            .clone()
            .or_else(|| output("LedgerArchiveBucketName"))
        {
            Some(bucket) => bucket,
            None => {
                bail!("no archive bucket: pass --bucket (the stack output LedgerArchiveBucketName)")
            }
        },
        chain_key_secret: args
            .chain_key_secret
            .clone()
            .or_else(|| output("ChainKeySecretArn")),
    };
    let endpoint = args
        .endpoint_url
        .clone()
        .or_else(|| local.as_ref().map(|state| state.aws_endpoint.clone()));
    let sdk = match (&args.endpoint_url, &local) {
        // The local stack's moto takes any credentials, and needs no profile.
        (None, Some(state)) if args.table.is_none() => {
            trailgate_local::cloudformation::sdk_config(&state.aws_endpoint)
        }
        _ => crate::runbook::sdk_config(aws, endpoint.as_deref()).await,
    };
    Ok((sdk, sources))
}

/// `jitctl verify ID`: prints what was checked; exits 1 with every difference found.
pub async fn run(args: VerifyArgs, aws: &crate::runbook::AwsTarget) -> Result<ExitCode> {
    let (sdk, sources) = open(&args.ledger, aws).await?;
    let found = verify(&sdk, &sources, &args.id).await?;
    for line in &found.checked {
        println!("{}: {line}", args.id);
    }
    if found.problems.is_empty() {
        println!("{}: verified", args.id);
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &found.problems {
        eprintln!("{}: FAILED: {problem}", args.id);
    }
    Ok(ExitCode::FAILURE)
}
