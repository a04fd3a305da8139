//! The AWS sources of `jitctl runbook run|explain`: trail objects in S3 (`s3://bucket/prefix`),
//! CloudTrail LookupEvents (`lookup`) and Athena (`athena`).
//!
//! The planning and the evaluation are trailgate-runbooks' (`S3Source`, `LookupSource`, the SQL
//! compiler and `sql_result`); the AWS calls are trailgate-aws's adapters. What this file adds is
//! the command line's part: one SDK configuration from the normal credential chain with
//! `--profile`, `--region` and `--endpoint-url`, and the progress line. For S3 the objects are
//! fetched here (the planner's list, `--parallelism` at a time, fed in key order) so the progress
//! line can show events as they are scanned; LookupEvents is driven by the engine's source, and
//! its progress counts the events each page brings.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use trailgate_aws::athena::{AthenaOptions, AthenaRunner};
use trailgate_aws::cloudtrail::CloudTrailLookup;
use trailgate_aws::s3::S3Store;
use trailgate_runbooks::athena::Partitions;
use trailgate_runbooks::output::SkipReason;
use trailgate_runbooks::source::files::Limits;
use trailgate_runbooks::source::lookup::{
    LookupBudget, LookupCallError, LookupEventsApi, LookupPage, LookupRequest, LookupSource,
};
use trailgate_runbooks::source::s3;
use trailgate_runbooks::source::s3::{ObjectStore, S3Location, S3Options, S3Source};
use trailgate_runbooks::sql::{Dialect, SqlPlan};
use trailgate_runbooks::{Compiled, RunbookResult, sql_result};

use super::Progress;

/// Options of the AWS sources (ignored by local files).
#[derive(Debug, Clone, clap::Args)]
pub struct AwsSourceArgs {
    /// AWS endpoint for every call (moto, LocalStack, `jitctl local`'s router); S3 then uses
    /// path-style addressing.
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// `--source lookup`: Regions to read, comma-separated (us-east-1 is always added; default
    /// the `--region`).
    #[arg(long, value_delimiter = ',', value_name = "REGION,...")]
    pub regions: Vec<String>,
    /// `--source lookup`: time budget of the whole scan, in seconds; the result says when it cut
    /// the scan.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    pub budget: f64,
    /// `--source lookup`: pages (50 events each) per Region and lookup value.
    #[arg(long, default_value_t = 10)]
    pub max_pages: u32,
    /// `--source s3://...`: objects fetched at once.
    #[arg(long, default_value_t = 8)]
    pub parallelism: usize,
    /// `--source athena`: database of the CloudTrail table.
    #[arg(long, default_value = "default")]
    pub athena_database: String,
    /// `--source athena`: the CloudTrail table (Athena's documented schema).
    #[arg(long, default_value = "cloudtrail_logs")]
    pub athena_table: String,
    /// `--source athena`: workgroup (default: the account's `primary`).
    #[arg(long)]
    pub workgroup: Option<String>,
    /// `--source athena`: `s3://...` for query results (unless the workgroup enforces one).
    #[arg(long, value_name = "S3_URL")]
    pub output_location: Option<String>,
    /// `--source athena`: seconds the queries may take before they are stopped.
    #[arg(long, default_value_t = 300)]
    pub athena_timeout: u64,
    /// `--source athena`: the table was made by `jitctl runbook athena-table` (partition
    /// projection on account, region and day): read only the window's delivery days.
    #[arg(long)]
    pub athena_projected: bool,
    /// `--athena-projected`: only these accounts' partitions, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "ACCOUNT,...",
        requires = "athena_projected"
    )]
    pub athena_accounts: Vec<String>,
    /// `--athena-projected`: only these Regions' partitions, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "REGION,...",
        requires = "athena_projected"
    )]
    pub athena_regions: Vec<String>,
}

impl Default for AwsSourceArgs {
    fn default() -> Self {
        AwsSourceArgs {
            endpoint_url: None,
            regions: Vec::new(),
            budget: 60.0,
            max_pages: 10,
            parallelism: 8,
            athena_database: "default".to_owned(),
            athena_table: "cloudtrail_logs".to_owned(),
            workgroup: None,
            output_location: None,
            athena_timeout: 300,
            athena_projected: false,
            athena_accounts: Vec::new(),
            athena_regions: Vec::new(),
        }
    }
}

/// The global `--profile` and `--region`.
#[derive(Debug, Clone, Default)]
pub struct AwsTarget {
    /// AWS profile.
    pub profile: Option<String>,
    /// Region of S3 and Athena calls, and the default LookupEvents Region.
    pub region: Option<String>,
}

/// The SDK configuration: the normal credential chain, HTTPS through rustls + ring as in
/// trailgate-aws, the given profile, Region (us-east-1 when nothing names one) and endpoint.
pub async fn sdk_config(target: &AwsTarget, endpoint_url: Option<&str>) -> SdkConfig {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client);
    if let Some(profile) = &target.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(region) = &target.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    if config.region().is_some() {
        return config;
    }
    config
        .into_builder()
        .region(Region::new("us-east-1"))
        .build()
}

fn location(url: &str) -> Result<S3Location> {
    S3Location::parse(url)
        .with_context(|| format!("`{url}` is not an S3 URL such as s3://bucket/prefix/"))
}

fn s3_store(config: &SdkConfig, args: &AwsSourceArgs) -> S3Store {
    // A custom endpoint (moto, MinIO) has no per-bucket host names.
    if args.endpoint_url.is_some() {
        S3Store::path_style(config)
    } else {
        S3Store::new(config)
    }
}

/// Runs the bound runbook over the trail at `url`.
pub async fn run_s3(
    compiled: &Compiled<'_>,
    url: &str,
    target: &AwsTarget,
    args: &AwsSourceArgs,
) -> Result<RunbookResult> {
    let location = location(url)?;
    let config = sdk_config(target, args.endpoint_url.as_deref()).await;
    let store = s3_store(&config, args);
    let options = S3Options {
        parallelism: args.parallelism.max(1),
        ..S3Options::default()
    };
    let slack = options.delivery_slack.as_secs();
    let source = S3Source::new(store.clone(), location.clone()).options(options);
    let mut scan = compiled.scan();
    let objects = source
        .plan(scan.window())
        .await
        .with_context(|| format!("cannot list {url}"))?;
    let total_bytes: u64 = objects.iter().map(|(_, size)| size).sum();
    scan.note(format!(
        "s3://{}/{}: {} objects ({total_bytes} bytes) delivered from the window start to {slack} s after its end",
        location.bucket,
        location.prefix,
        objects.len(),
    ));
    let mut progress = Progress::new("objects", Some(objects.len()), "scanned");
    // Fetches run ahead of the scan, at most `parallelism` at once; records are fed in key
    // order so the result does not depend on which download finishes first.
    let mut pending = VecDeque::new();
    let mut queue = objects.into_iter();
    loop {
        while pending.len() < args.parallelism.max(1) {
            let Some((key, size)) = queue.next() else {
                break;
            };
            let store = store.clone();
            let bucket = location.bucket.clone();
            let fetched = key.clone();
            let handle = tokio::spawn(async move { store.get(&bucket, &fetched).await });
            pending.push_back((key, size, handle));
        }
        let Some((key, size, handle)) = pending.pop_front() else {
            break;
        };
        match handle.await {
            Ok(Ok(bytes)) => s3::feed_object(&key, &bytes, Limits::default(), &mut scan),
            // Counted and skipped, as the engine's S3 source does.
            _ => scan.skip(SkipReason::UnreadableFile),
        }
        progress.step(
            Some(size),
            scan.events_scanned(),
            Some(scan.events_matched()),
        );
    }
    progress.finish(scan.events_scanned(), scan.events_matched());
    Ok(scan.finish())
}

/// The S3 part of `explain`: the day prefixes listed and the objects they hold for the window.
pub async fn explain_s3(
    compiled: &Compiled<'_>,
    url: &str,
    target: &AwsTarget,
    args: &AwsSourceArgs,
) -> Result<Vec<String>> {
    let location = location(url)?;
    let config = sdk_config(target, args.endpoint_url.as_deref()).await;
    let source = S3Source::new(s3_store(&config, args), location.clone());
    let window = compiled.window();
    let prefixes = source
        .day_prefixes(window)
        .await
        .with_context(|| format!("cannot list {url}"))?;
    let objects = source
        .plan(window)
        .await
        .with_context(|| format!("cannot list {url}"))?;
    let bytes: u64 = objects.iter().map(|(_, size)| size).sum();
    let mut lines = vec![format!(
        "  s3://{}/{} in {} (accounts, organization folders and Regions discovered by listing)",
        location.bucket,
        location.prefix,
        config
            .region()
            .map_or("us-east-1", |region| region.as_ref())
    )];
    lines.push(format!(
        "  {} day prefixes (window start to {} s after its end, for delivery lag):",
        prefixes.len(),
        S3Options::default().delivery_slack.as_secs()
    ));
    lines.extend(prefixes.iter().map(|prefix| format!("    {prefix}")));
    lines.push(format!(
        "  {} log objects ({:.1} MB) delivered in that span are read; digest and Insights objects never",
        objects.len(),
        bytes as f64 / 1e6
    ));
    lines.push("  the window and the filter are applied locally to every record".to_owned());
    Ok(lines)
}

/// The Regions a LookupEvents scan reads (us-east-1 added by the source itself).
fn lookup_regions(config: &SdkConfig, args: &AwsSourceArgs) -> Vec<String> {
    let mut regions: Vec<String> = args
        .regions
        .iter()
        .map(|region| region.trim().to_owned())
        .filter(|region| !region.is_empty())
        .collect();
    if regions.is_empty() {
        regions.push(
            config
                .region()
                .map_or("us-east-1", |region| region.as_ref())
                .to_owned(),
        );
    }
    regions
}

fn budget(args: &AwsSourceArgs) -> Result<LookupBudget> {
    if !args.budget.is_finite() || args.budget < 0.0 {
        bail!("`--budget {}`: expected a number of seconds", args.budget);
    }
    Ok(LookupBudget {
        max_pages_per_query: args.max_pages.max(1),
        deadline: Some(Duration::from_secs_f64(args.budget)),
        ..LookupBudget::default()
    })
}

/// Runs the bound runbook over LookupEvents with its `lookup` hint.
pub async fn run_lookup(
    compiled: &Compiled<'_>,
    target: &AwsTarget,
    args: &AwsSourceArgs,
) -> Result<RunbookResult> {
    if compiled.lookup().is_none_or(|plan| plan.values.is_empty()) {
        bail!(
            "runbook `{}` has no `lookup` hint, so it cannot run on LookupEvents: use files, s3:// or athena",
            compiled.runbook().id()
        );
    }
    let config = sdk_config(target, args.endpoint_url.as_deref()).await;
    let regions = lookup_regions(&config, args);
    let region_refs: Vec<&str> = regions.iter().map(String::as_str).collect();
    let api = Counting {
        api: CloudTrailLookup::new(&config),
        progress: Mutex::new(Progress::new("pages", None, "received")),
        pages: Mutex::new((0, 0)),
    };
    let source = LookupSource::new(api, &region_refs).budget(budget(args)?);
    let mut scan = compiled.scan();
    source.scan(&mut scan).await?;
    let result = scan.finish();
    if let Ok(progress) = source.api().progress.lock() {
        progress.finish(
            result.coverage.events_scanned,
            result.coverage.events_matched,
        );
    }
    if let Some(reason) = result.coverage.nothing_read() {
        // A scan that read nothing is not "no findings".
        bail!("LookupEvents returned nothing to scan: {reason}");
    }
    Ok(result)
}

/// The lookup part of `explain`.
pub async fn explain_lookup(
    compiled: &Compiled<'_>,
    target: &AwsTarget,
    args: &AwsSourceArgs,
) -> Result<Vec<String>> {
    let Some(plan) = compiled.lookup().filter(|plan| !plan.values.is_empty()) else {
        bail!(
            "runbook `{}` has no `lookup` hint, so it cannot run on LookupEvents",
            compiled.runbook().id()
        );
    };
    let config = sdk_config(target, args.endpoint_url.as_deref()).await;
    let regions = lookup_regions(&config, args);
    let region_refs: Vec<&str> = regions.iter().map(String::as_str).collect();
    let source = LookupSource::new(NoApi, &region_refs);
    let mut lines = vec![format!(
        "  LookupEvents in {} (us-east-1 always: IAM, STS and sign-in events land there)",
        source.regions().join(", ")
    )];
    lines.push(format!(
        "  server-side attribute {} = {} (one paged query per value and Region)",
        plan.attribute.as_str(),
        plan.values.join(" | ")
    ));
    lines.push(format!(
        "  2 calls/s per Region, backoff on ThrottlingException; budget {} s, {} pages of 50 per query",
        args.budget,
        args.max_pages.max(1)
    ));
    lines.push("  the rest of the filter and the window are applied locally".to_owned());
    Ok(lines)
}

/// Counts pages and events for the progress line while the engine's source drives the calls.
struct Counting<A> {
    api: A,
    progress: Mutex<Progress>,
    /// Pages and events received so far.
    pages: Mutex<(u64, u64)>,
}

impl<A: LookupEventsApi + Sync> LookupEventsApi for Counting<A> {
    async fn lookup(&self, request: LookupRequest) -> Result<LookupPage, LookupCallError> {
        let page = self.api.lookup(request).await;
        if let Ok(page) = &page {
            let events = match self.pages.lock() {
                Ok(mut pages) => {
                    pages.0 += 1;
                    pages.1 += page.events.len() as u64;
                    pages.1
                }
                Err(_) => 0,
            };
            if let Ok(mut progress) = self.progress.lock() {
                progress.step(None, events, None);
            }
        }
        page
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        self.api.sleep(duration)
    }

    fn now(&self) -> std::time::Instant {
        self.api.now()
    }
}

/// No API: `explain` only wants the source's Region list.
struct NoApi;

impl LookupEventsApi for NoApi {
    fn lookup(
        &self,
        _request: LookupRequest,
    ) -> impl Future<Output = Result<LookupPage, LookupCallError>> + Send {
        std::future::ready(Err(LookupCallError::Failed("no API".to_owned())))
    }

    fn sleep(&self, _duration: Duration) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// The Athena SQL plan of the bound runbook over `--athena-table`.
pub fn athena_plan(compiled: &Compiled<'_>, args: &AwsSourceArgs) -> Result<SqlPlan> {
    let partitions = athena_partitions(args);
    compiled
        .to_sql_over(Dialect::Athena, &args.athena_table, partitions.as_ref())
        .with_context(|| {
            format!(
                "runbook `{}` cannot be compiled to Athena SQL",
                compiled.runbook().id()
            )
        })
}

/// The partitions a run reads from a table made by `jitctl runbook athena-table`
/// (`--athena-projected`): the window's delivery days, and the accounts and Regions asked for.
pub fn athena_partitions(args: &AwsSourceArgs) -> Option<Partitions> {
    args.athena_projected.then(|| Partitions {
        accounts: args.athena_accounts.clone(),
        regions: args.athena_regions.clone(),
        ..Partitions::default()
    })
}

/// Runs the bound runbook's SQL in Athena and assembles the result from the section rows.
pub async fn run_athena(
    compiled: &Compiled<'_>,
    target: &AwsTarget,
    args: &AwsSourceArgs,
) -> Result<RunbookResult> {
    let plan = athena_plan(compiled, args)?;
    let config = sdk_config(target, args.endpoint_url.as_deref()).await;
    let runner = AthenaRunner::new(&config);
    let options = AthenaOptions {
        database: args.athena_database.clone(),
        workgroup: args.workgroup.clone(),
        output_location: args.output_location.clone(),
        timeout: Duration::from_secs(args.athena_timeout),
        ..AthenaOptions::default()
    };
    let statements: Vec<String> = plan.queries.iter().map(|query| query.sql.clone()).collect();
    let progress = Progress::new("queries", Some(statements.len()), "scanned");
    let outputs = runner.run(&statements, &options).await?;
    let bytes: u64 = outputs
        .iter()
        .filter_map(|output| output.bytes_scanned)
        .sum();
    let ids: Vec<&str> = outputs
        .iter()
        .map(|output| output.execution_id.as_str())
        .collect();
    let notes = vec![format!(
        "Athena {}.{}: {} queries ({}), {bytes} bytes scanned",
        args.athena_database,
        args.athena_table,
        outputs.len(),
        ids.join(", ")
    )];
    let sections: Vec<_> = plan
        .queries
        .into_iter()
        .zip(outputs)
        .map(|(query, output)| (query.section, output.rows))
        .collect();
    let result = sql_result::assemble(compiled, &sections, notes)?;
    progress.finish(
        result.coverage.events_scanned,
        result.coverage.events_matched,
    );
    Ok(result)
}

/// The Athena part of `explain` (the SQL itself is printed by the caller).
pub fn explain_athena(args: &AwsSourceArgs) -> Vec<String> {
    vec![
        format!(
            "  Athena: database {}, table {}, workgroup {}, results to {}",
            args.athena_database,
            args.athena_table,
            args.workgroup.as_deref().unwrap_or("(default)"),
            args.output_location
                .as_deref()
                .unwrap_or("(the workgroup's location)")
        ),
        "  one query per output section below, started together, polled with backoff, results paged"
            .to_owned(),
        if args.athena_projected {
            "  projected table: only the window's delivery days are read (`day` partitions)"
                .to_owned()
        } else {
            "  every partition of the table is read (`--athena-projected` prunes a table made by `jitctl runbook athena-table`)"
                .to_owned()
        },
    ]
}
