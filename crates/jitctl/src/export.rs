//! `jitctl export`: requests' ledger events for a SIEM, as OCSF 1.8.0 events or as the
//! ledger's own NDJSON, to standard output, a file or an S3 object.
//!
//! Which requests: the ids given, and every request closed on each `--closed-on` day (the
//! ledger's `ByClosedDay` index, as the reconciler's export sweep reads it). Each request's
//! chain is verified before anything of it is written (links and the record digest; with the
//! chain key, the keyed hashes too): a SIEM must not be fed a ledger that was changed.
//! The mapping itself is `trailgate_domain::ocsf`.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use std::collections::BTreeSet;
use std::process::ExitCode;
use trailgate_domain::ledger::{to_ndjson, verify_chain};
use trailgate_domain::ports::Archive;
use trailgate_domain::request::is_request_id;

use crate::verify::{LedgerArgs, Sources};

/// `jitctl export` arguments.
#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// Request ids to export.
    pub ids: Vec<String>,
    /// Also export every request closed on this day (`YYYY-MM-DD`, UTC); repeatable.
    #[arg(long = "closed-on", value_name = "DAY")]
    pub closed_on: Vec<String>,
    /// `ocsf`: OCSF 1.8.0 events, one a line; `ndjson`: the ledger's events as stored.
    #[arg(long, value_enum, default_value_t = ExportFormat::Ocsf)]
    pub format: ExportFormat,
    /// Write to this file, or to `s3://bucket/key`, instead of standard output.
    #[arg(long, short)]
    pub out: Option<String>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Ocsf,
    Ndjson,
}

/// A `--closed-on` day: exactly `YYYY-MM-DD`, a real date.
fn check_day(day: &str) -> Result<()> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(day, &format) {
        Ok(_) if day.len() == 10 => Ok(()),
        _ => bail!("--closed-on {day:?}: give a day as YYYY-MM-DD"),
    }
}

/// The export of the requests `ids` and those closed on `days`, in `format`: the text and the
/// number of requests and events in it.
pub async fn export(
    sdk: &trailgate_aws::SdkConfig,
    sources: &Sources,
    ids: &[String],
    days: &[String],
    format: ExportFormat,
) -> Result<(String, usize, usize)> {
    for id in ids {
        if !is_request_id(id) {
            bail!("{id:?} is not a request id (r- and 26 letters and digits)");
        }
    }
    for day in days {
        check_day(day)?;
    }
    let reader = trailgate_aws::ledger::LedgerReader::from_sdk(sdk, sources.table.clone());
    let key = crate::verify::chain_key(sdk, sources).await?;
    let mut wanted: BTreeSet<String> = ids.iter().cloned().collect();
    for day in days {
        for record in reader.closed_on(day).await.context("reading the ledger")? {
            wanted.insert(record.id);
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    let (mut out, mut events_written) = (String::new(), 0);
    for id in &wanted {
        let (record, events) = crate::verify::read_request(&reader, id).await?;
        verify_chain(&record, &events, key.as_ref())
            .map_err(|err| anyhow::anyhow!("{id}: not exported: {}", err.message))?;
        match format {
            ExportFormat::Ndjson => {
                out.push_str(&to_ndjson(&events).map_err(|err| anyhow::anyhow!(err.message))?)
            }
            ExportFormat::Ocsf => {
                for event in trailgate_domain::ocsf::events(&record, &events, version)
                    .map_err(|err| anyhow::anyhow!("{id}: {}", err.message))?
                {
                    out.push_str(&serde_json::to_string(&event)?);
                    out.push('\n');
                }
            }
        }
        events_written += events.len();
    }
    Ok((out, wanted.len(), events_written))
}

/// `jitctl export`: writes the export, then says how much to standard error.
pub async fn run(args: ExportArgs, aws: &crate::runbook::AwsTarget) -> Result<ExitCode> {
    if args.ids.is_empty() && args.closed_on.is_empty() {
        bail!("nothing to export: give request ids, or --closed-on DAY");
    }
    let (sdk, sources) = crate::verify::open(&args.ledger, aws).await?;
    let (text, requests, events) =
        export(&sdk, &sources, &args.ids, &args.closed_on, args.format).await?;
    match args.out.as_deref() {
        Some(target) if target.starts_with("s3://") => {
            let (bucket, key) = target
                .strip_prefix("s3://")
                .and_then(|rest| rest.split_once('/'))
                .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty())
                .with_context(|| format!("{target:?}: give s3://bucket/key"))?;
            trailgate_aws::archive::S3Archive::from_sdk(&sdk, bucket.to_owned())
                .put(key, &text)
                .await
                .map_err(|err| anyhow::anyhow!("writing {target}: {}", err.message))?;
        }
        Some(path) => std::fs::write(path, &text).with_context(|| format!("writing {path}"))?,
        None => print!("{text}"),
    }
    eprintln!(
        "exported {events} events of {requests} request(s){}",
        args.out.map(|to| format!(" to {to}")).unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
