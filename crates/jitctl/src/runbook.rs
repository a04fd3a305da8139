//! `jitctl runbook list|show|run|explain|check|coverage|noise`: the CloudTrail runbooks of
//! `trailgate-runbooks` from the command line.
//!
//! Runbooks are read from a folder (`--dir`, default `runbooks`), or from a YAML file given in
//! place of an id. `run` reads local files and folders, a trail in S3 (`s3://bucket/prefix`),
//! LookupEvents (`lookup`) or an Athena table (`athena`); the AWS sources are in [`sources`].
//! `run --on aws` runs it on the stack's runbook-scan state machine instead ([`remote`]).
//! `explain` shows the whole plan without reading any record.

pub mod remote;
mod sources;

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Subcommand, ValueEnum};
use time::OffsetDateTime;
use trailgate_runbooks::athena::{COMMERCIAL_REGIONS, TrailTable};
use trailgate_runbooks::inventory::Inventory;
use trailgate_runbooks::render::Format;
use trailgate_runbooks::source::files::{FileSource, Limits};
use trailgate_runbooks::source::parallel;
use trailgate_runbooks::source::s3::S3Location;
use trailgate_runbooks::sql::{Dialect, SqlError};
use trailgate_runbooks::{Library, LoadError, Params, Runbook, filter, params, timefmt};

pub use sources::{AwsSourceArgs, AwsTarget, sdk_config};

/// Appends one formatted line to a `String` (output is built first, then written by [`emit`]).
macro_rules! say {
    ($out:expr) => {
        $out.push('\n')
    };
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// Writes the output; a closed pipe (`| head`) is not an error.
fn emit(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => Err(error.into()),
        _ => Ok(()),
    }
}

/// The `jitctl runbook` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunbookCommand {
    /// List the runbooks of the library.
    List {
        #[command(flatten)]
        library: LibraryArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one runbook: what it looks for, its parameters, and its YAML.
    Show {
        /// Runbook id, or a path to a runbook file.
        runbook: String,
        #[command(flatten)]
        library: LibraryArgs,
    },
    /// Run a runbook over CloudTrail logs.
    Run {
        /// Runbook id, or a path to a runbook file.
        runbook: String,
        #[command(flatten)]
        library: LibraryArgs,
        #[command(flatten)]
        query: QueryArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        /// `aws`: run on the deployed stack's runbook-scan state machine, over the trail bucket
        /// it was deployed with (`TrailBucket`), as a Distributed Map; no `--source`.
        #[arg(long, value_enum, default_value_t = RunOn::Here)]
        on: RunOn,
        /// `--on aws`: the stack output `RunbookScanStateMachineArn`.
        #[arg(long, env = "TRAILGATE_SCAN_STATE_MACHINE", value_name = "ARN")]
        state_machine: Option<String>,
        /// `--on aws`: only these accounts' logs, comma-separated (`--regions` narrows the
        /// Regions).
        #[arg(long, value_delimiter = ',', value_name = "ACCOUNT,...")]
        accounts: Vec<String>,
    },
    /// Show the plan of a run without reading records: source, LookupEvents attribute, local
    /// filter, and the SQL for Athena (or DuckDB).
    Explain {
        /// Runbook id, or a path to a runbook file.
        runbook: String,
        #[command(flatten)]
        library: LibraryArgs,
        #[command(flatten)]
        query: QueryArgs,
        /// SQL dialect shown.
        #[arg(long, value_enum, default_value_t = SqlDialect::Athena)]
        dialect: SqlDialect,
        /// Table the SQL reads (the Athena CloudTrail table).
        #[arg(long, default_value = "cloudtrail_logs")]
        table: String,
    },
    /// Print the Athena `CREATE EXTERNAL TABLE` for a trail bucket (Organization trails
    /// included), with partition projection on account, region and day; query it with
    /// `--source athena --athena-projected`.
    AthenaTable {
        /// Where the trail delivers: `s3://bucket[/prefix]`.
        #[arg(long, value_name = "S3_URL")]
        bucket: String,
        /// The Organization id of an Organization trail (`o-...`).
        #[arg(long, value_name = "o-...")]
        organization_id: Option<String>,
        /// Accounts the table reads, comma-separated (an Organization's member accounts).
        #[arg(
            long,
            required = true,
            value_delimiter = ',',
            value_name = "ACCOUNT,..."
        )]
        accounts: Vec<String>,
        /// Regions, comma-separated (default: every commercial Region).
        #[arg(long, value_delimiter = ',', value_name = "REGION,...")]
        regions: Vec<String>,
        /// The first day of logs (YYYY-MM-DD).
        #[arg(long, default_value = "2020-01-01")]
        first_day: String,
        /// `table` or `database.table`.
        #[arg(long, default_value = "cloudtrail_logs")]
        table: String,
    },
    /// Validate runbook files or folders; exits non-zero on the first invalid one.
    Check {
        /// Runbook files or folders of runbooks.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// What the library covers: ATT&CK techniques and event names, each with its runbooks, for
    /// the built-in runbooks and the Sigma rules together. Exits 1 if a technique id is
    /// malformed.
    Coverage {
        #[command(flatten)]
        library: LibraryArgs,
        /// Folder of Sigma rules reported with the library (skipped if it does not exist).
        #[arg(long, default_value = "runbooks/sigma")]
        sigma_dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CoverageFormat::Text)]
        format: CoverageFormat,
    },
    /// Match counts per runbook over local logs (default parameters, every record's time), as
    /// the markdown table of runbooks/README.md.
    Noise {
        #[command(flatten)]
        library: LibraryArgs,
        /// A file or folder of CloudTrail logs.
        #[arg(long = "source", short = 's', value_name = "PATH")]
        source: PathBuf,
    },
}

/// Where `run` scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunOn {
    /// Here, from the `--source` given.
    Here,
    /// On the stack's runbook-scan state machine.
    Aws,
}

/// Formats of `coverage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CoverageFormat {
    /// Indented lists.
    Text,
    /// The whole inventory as JSON.
    Json,
}

/// Where runbooks are read from.
#[derive(Debug, clap::Args)]
pub struct LibraryArgs {
    /// Folder of runbooks.
    #[arg(long = "dir", env = "TRAILGATE_RUNBOOKS", default_value = "runbooks")]
    pub dir: PathBuf,
}

/// What a run reads and how it is bound.
#[derive(Debug, clap::Args)]
pub struct QueryArgs {
    /// Source: a file or folder (repeatable), `s3://bucket/prefix`, `lookup` or `athena`.
    #[arg(long = "source", short = 's', value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// A parameter value, `name=value` (lists comma-separated); repeatable.
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE")]
    pub params: Vec<String>,
    /// Search this far back from now (`24h`, `30m`, `7d`, `P7D`) instead of the runbook's window.
    #[arg(long, conflicts_with_all = ["from", "to"])]
    pub since: Option<String>,
    /// Window start (RFC 3339, e.g. 2023-07-10T11:00:00Z).
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Window end, exclusive (RFC 3339).
    #[arg(long, requires = "from")]
    pub to: Option<String>,
    /// Boxed: the AWS options would make every `jitctl` command as large as this one.
    #[command(flatten)]
    pub aws: Box<AwsSourceArgs>,
}

impl From<OutputFormat> for Format {
    fn from(format: OutputFormat) -> Format {
        match format {
            OutputFormat::Text => Format::Text,
            OutputFormat::Json => Format::Json,
            OutputFormat::Markdown => Format::Markdown,
            OutputFormat::Html => Format::Html,
        }
    }
}

/// Result formats of `run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned tables.
    Text,
    /// Pretty JSON of the whole result.
    Json,
    /// GitHub-flavoured markdown.
    Markdown,
    /// One self-contained HTML page, every value escaped.
    Html,
}

/// SQL dialects of `explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqlDialect {
    /// Amazon Athena (Trino).
    Athena,
    /// DuckDB over local files.
    Duckdb,
}

/// Runs one `jitctl runbook` subcommand; `target` holds the global `--profile` and `--region`
/// used by the AWS sources.
pub async fn run(command: RunbookCommand, target: &AwsTarget) -> Result<ExitCode> {
    match command {
        RunbookCommand::List { library, json } => list(&library, json),
        RunbookCommand::Show { runbook, library } => show(&runbook, &library),
        RunbookCommand::Run {
            runbook,
            library,
            query,
            format,
            on: RunOn::Here,
            ..
        } => run_runbook(&runbook, &library, &query, format, target).await,
        RunbookCommand::Run {
            runbook,
            library,
            query,
            format,
            on: RunOn::Aws,
            state_machine,
            accounts,
        } => {
            let state_machine = state_machine.context(
                "`--on aws` needs `--state-machine` (the stack output RunbookScanStateMachineArn) or TRAILGATE_SCAN_STATE_MACHINE",
            )?;
            run_on_aws(
                &runbook,
                &library,
                &query,
                format,
                target,
                &state_machine,
                &accounts,
            )
            .await
        }
        RunbookCommand::Explain {
            runbook,
            library,
            query,
            dialect,
            table,
        } => explain(&runbook, &library, &query, dialect, &table, target).await,
        RunbookCommand::AthenaTable {
            bucket,
            organization_id,
            accounts,
            regions,
            first_day,
            table,
        } => athena_table(
            bucket,
            organization_id,
            accounts,
            regions,
            &first_day,
            table,
        ),
        RunbookCommand::Check { paths } => Ok(check(&paths)),
        RunbookCommand::Coverage {
            library,
            sigma_dir,
            format,
        } => coverage(&library, &sigma_dir, format),
        RunbookCommand::Noise { library, source } => noise(&library, &source),
    }
}

fn athena_table(
    bucket: String,
    organization: Option<String>,
    accounts: Vec<String>,
    regions: Vec<String>,
    first_day: &str,
    table: String,
) -> Result<ExitCode> {
    let location = S3Location::parse(&bucket)
        .with_context(|| format!("--bucket `{bucket}`: expected s3://bucket[/prefix]"))?;
    let first_day = time::Date::parse(
        first_day,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .with_context(|| format!("--first-day `{first_day}`: expected YYYY-MM-DD"))?;
    let regions = if regions.is_empty() {
        COMMERCIAL_REGIONS
            .iter()
            .map(|region| (*region).to_owned())
            .collect()
    } else {
        regions
    };
    let ddl = TrailTable {
        table,
        bucket: location.bucket,
        prefix: location.prefix,
        organization,
        accounts,
        regions,
        first_day,
    }
    .ddl()?;
    emit(&format!(
        "{ddl};
"
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn coverage(args: &LibraryArgs, sigma_dir: &Path, format: CoverageFormat) -> Result<ExitCode> {
    let inventory = load_inventory(args, sigma_dir)?;
    let mut out = String::new();
    match format {
        CoverageFormat::Text => out.push_str(&inventory.to_text()),
        CoverageFormat::Json => say!(out, "{}", serde_json::to_string_pretty(&inventory)?),
    }
    emit(&out)?;
    let malformed = inventory
        .techniques
        .values()
        .any(|technique| !technique.well_formed);
    Ok(if malformed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The built-in library and, when the folder exists, the Sigma rules, in one inventory.
fn load_inventory(args: &LibraryArgs, sigma_dir: &Path) -> Result<Inventory> {
    let library = load_library(args)?;
    let mut inventory = Inventory::default();
    inventory.add("built-in", library.iter());
    // The Sigma folder is a separate library (see runbooks/README.md); it is reported with the
    // built-in one because together they are what an operator can run.
    if sigma_dir.is_dir() {
        let sigma = Library::load_dir(sigma_dir)
            .with_context(|| format!("cannot load the Sigma rules in {}", sigma_dir.display()))?;
        inventory.add("sigma", sigma.iter());
    }
    Ok(inventory)
}

fn noise(args: &LibraryArgs, source: &Path) -> Result<ExitCode> {
    let library = load_library(args)?;
    let measured = trailgate_runbooks::noise::measure(&library, source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    emit(&trailgate_runbooks::noise::table(&measured))?;
    Ok(ExitCode::SUCCESS)
}

fn load_library(args: &LibraryArgs) -> Result<Library> {
    Library::load_dir(&args.dir)
        .with_context(|| format!("cannot load the runbooks in {}", args.dir.display()))
}

/// A runbook by id from the library, or from a file when the argument names one.
fn load_runbook(name: &str, args: &LibraryArgs) -> Result<Runbook> {
    let path = Path::new(name);
    if name.ends_with(".yaml") || name.ends_with(".yml") || path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?;
        return Ok(Runbook::parse(&text, name)?);
    }
    let library = load_library(args)?;
    match library.get(name) {
        Some(runbook) => Ok(runbook.clone()),
        None => bail!(
            "no runbook `{name}` in {} (see `jitctl runbook list`)",
            args.dir.display()
        ),
    }
}

fn list(args: &LibraryArgs, json: bool) -> Result<ExitCode> {
    let library = load_library(args)?;
    let mut out = String::new();
    if json {
        let entries: Vec<serde_json::Value> = library
            .iter()
            .map(|runbook| {
                let spec = runbook.spec();
                serde_json::json!({
                    "id": spec.id,
                    "title": spec.title,
                    "severity": spec.severity,
                    "lookup": spec.lookup.as_ref().map(|lookup| lookup.attribute.as_str()),
                    "file": runbook.file(),
                })
            })
            .collect();
        say!(out, "{}", serde_json::to_string_pretty(&entries)?);
        emit(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = library
        .iter()
        .map(|runbook| runbook.id().len())
        .max()
        .unwrap_or(2);
    say!(
        out,
        "{:width$}  {:8}  {:12}  TITLE",
        "ID",
        "SEVERITY",
        "LOOKUP"
    );
    for runbook in library.iter() {
        let lookup = runbook
            .spec()
            .lookup
            .as_ref()
            .map_or("-", |lookup| lookup.attribute.as_str());
        say!(
            out,
            "{:width$}  {:8}  {:12}  {}",
            runbook.id(),
            runbook.severity().to_string(),
            lookup,
            runbook.title()
        );
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn show(name: &str, args: &LibraryArgs) -> Result<ExitCode> {
    let runbook = load_runbook(name, args)?;
    let spec = runbook.spec();
    let mut out = String::new();
    say!(out, "{} ({})", spec.title, spec.id);
    say!(out, "severity: {}", spec.severity);
    if !spec.attack.is_empty() {
        say!(out, "ATT&CK:   {}", spec.attack.join(", "));
    }
    say!(out, "window:   {}", spec.window.lookback);
    if let Some(lookup) = &spec.lookup {
        say!(
            out,
            "lookup:   {} = {}",
            lookup.attribute.as_str(),
            lookup.values.join(", ")
        );
    }
    say!(out, "file:     {}", runbook.file());
    if !spec.description.trim().is_empty() {
        say!(out, "\n{}", spec.description.trim());
    }
    if !spec.parameters.is_empty() {
        say!(out, "\nparameters:");
        for param in &spec.parameters {
            let default = match &param.default {
                Some(default) => format!(" (default {})", serde_json::to_string(default)?),
                None if param.required => " (required)".to_owned(),
                None => String::new(),
            };
            say!(
                out,
                "  {} : {}{default}  {}",
                param.name,
                params::type_name(param.kind),
                param.description
            );
        }
    }
    say!(
        out,
        "\nfilter:\n{}",
        indent(&filter::describe(&spec.filter))
    );
    if !spec.next_steps.is_empty() {
        say!(out, "next steps:");
        for step in &spec.next_steps {
            say!(out, "  - {step}");
        }
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}\n"))
        .collect::<String>()
}

/// Parses `--param`, `--since`, `--from`/`--to` into engine parameters.
fn params(query: &QueryArgs) -> Result<Params> {
    let mut params = Params::new();
    for pair in &query.params {
        let Some((name, value)) = pair.split_once('=') else {
            bail!("`--param {pair}`: expected NAME=VALUE");
        };
        params = params.set(name.trim(), value);
    }
    if let Some(since) = &query.since {
        params = params.lookback(parse_since(since)?);
    }
    if let (Some(from), Some(to)) = (&query.from, &query.to) {
        params = params.window(parse_time(from)?, parse_time(to)?);
    }
    Ok(params)
}

/// `24h`, `30m`, `90s`, `7d`, `2w`, or ISO-8601 (`P7D`, `PT4H`).
fn parse_since(text: &str) -> Result<time::Duration> {
    if let Some(duration) = timefmt::parse_duration(&text.to_ascii_uppercase()) {
        return Ok(duration);
    }
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let count: i64 = number
        .parse()
        .with_context(|| format!("`--since {text}`: expected e.g. 24h, 30m, 7d or P7D"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => bail!("`--since {text}`: unknown unit `{unit}` (use s, m, h, d or w)"),
    };
    Ok(time::Duration::seconds(count * seconds))
}

fn parse_time(text: &str) -> Result<OffsetDateTime> {
    timefmt::parse_event_time(text)
        .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
        .with_context(|| format!("`{text}` is not an RFC 3339 time such as 2023-07-10T11:00:00Z"))
}

/// What `--source` names.
#[derive(Debug)]
enum Source {
    Files(Vec<PathBuf>),
    S3(String),
    Lookup,
    Athena,
}

fn source(query: &QueryArgs) -> Result<Source> {
    let Some(first) = query.sources.first() else {
        bail!(
            "no `--source`: give a file or folder of CloudTrail logs, s3://bucket/prefix, lookup or athena"
        );
    };
    let special = |text: &str| text.starts_with("s3://") || text == "lookup" || text == "athena";
    if query.sources.len() > 1 && query.sources.iter().any(|source| special(source)) {
        bail!("several `--source` values are only supported for files and folders");
    }
    Ok(match first.as_str() {
        text if text.starts_with("s3://") => Source::S3(text.to_owned()),
        "lookup" => Source::Lookup,
        "athena" => Source::Athena,
        _ => Source::Files(query.sources.iter().map(PathBuf::from).collect()),
    })
}

async fn run_runbook(
    name: &str,
    args: &LibraryArgs,
    query: &QueryArgs,
    format: OutputFormat,
    target: &AwsTarget,
) -> Result<ExitCode> {
    let runbook = load_runbook(name, args)?;
    let params = params(query)?;
    let compiled = runbook.compile(&params)?;
    let result = match source(query)? {
        Source::Files(roots) => run_files(&compiled, roots)?,
        Source::S3(url) => sources::run_s3(&compiled, &url, target, &query.aws).await?,
        Source::Lookup => sources::run_lookup(&compiled, target, &query.aws).await?,
        Source::Athena => sources::run_athena(&compiled, target, &query.aws).await?,
    };
    let mut out = result.render(format.into());
    if !out.ends_with('\n') {
        out.push('\n');
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `run --on aws`: the runbook must be one of the library's (the scan function has the
/// repository's library built in), and the trail is the stack's.
async fn run_on_aws(
    name: &str,
    args: &LibraryArgs,
    query: &QueryArgs,
    format: OutputFormat,
    target: &AwsTarget,
    state_machine: &str,
    accounts: &[String],
) -> Result<ExitCode> {
    if !query.sources.is_empty() {
        bail!("`--on aws` reads the trail bucket the stack was deployed with: drop `--source`");
    }
    if Path::new(name).exists() {
        bail!("`--on aws` runs the library's runbooks by id, not the file `{name}`");
    }
    let runbook = load_runbook(name, args)?;
    let compiled = runbook.compile(&params(query)?)?;
    let request = remote::request(&compiled, &query.params, accounts, &query.aws.regions)?;
    let config = sdk_config(target, query.aws.endpoint_url.as_deref()).await;
    let execution = remote::execution_name(runbook.id(), OffsetDateTime::now_utc());
    let (result, _summary) =
        remote::scan_on_aws(&config, state_machine, &request, &execution).await?;
    let mut out = result.render(format.into());
    if !out.ends_with('\n') {
        out.push('\n');
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn run_files(
    compiled: &trailgate_runbooks::Compiled<'_>,
    roots: Vec<PathBuf>,
) -> Result<trailgate_runbooks::RunbookResult> {
    let file_source = FileSource::with_roots(roots);
    let files = file_source.files()?;
    let sizes: Vec<u64> = files
        .iter()
        .map(|file| std::fs::metadata(file).map_or(0, |metadata| metadata.len()))
        .collect();
    let mut scan = compiled.scan();
    // Files are scanned on every core; the workers report each finished file here, and the
    // merged result is the same as a sequential scan's (trailgate-runbooks' parallel tests).
    let progress = std::sync::Mutex::new((
        Progress::new("files", Some(files.len()), "scanned"),
        0u64,
        0u64,
    ));
    parallel::scan_files_with(
        &files,
        Limits::default(),
        parallel::available_threads(),
        &mut scan,
        &|done: parallel::FileDone| {
            if let Ok(mut guard) = progress.lock() {
                let (progress, scanned, matched) = &mut *guard;
                *scanned += done.events_scanned;
                *matched += done.events_matched;
                let (scanned, matched) = (*scanned, *matched);
                progress.step(sizes.get(done.index).copied(), scanned, Some(matched));
            }
        },
    );
    if let Ok(guard) = progress.lock() {
        guard.0.finish(scan.events_scanned(), scan.events_matched());
    }
    Ok(scan.finish())
}

/// The progress line on stderr: shown after the first second of a scan, refreshed in place on a
/// terminal (every 200 ms) or printed every 5 s when stderr is a file or pipe. Units are files,
/// S3 objects, LookupEvents pages or Athena queries; MB/s is shown when bytes are known.
struct Progress {
    started: Instant,
    last: Option<Instant>,
    unit: &'static str,
    total: Option<usize>,
    /// What happens to the events counted: `scanned` by the engine, or `received` from an API
    /// (LookupEvents, whose source holds the scan until it ends).
    events_verb: &'static str,
    done: usize,
    bytes: Option<u64>,
    terminal: bool,
    shown: bool,
}

impl Progress {
    fn new(unit: &'static str, total: Option<usize>, events_verb: &'static str) -> Progress {
        Progress {
            started: Instant::now(),
            last: None,
            unit,
            total,
            events_verb,
            done: 0,
            bytes: None,
            terminal: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    /// One unit done, with its size when known, and the running event counts.
    fn step(&mut self, bytes: Option<u64>, events: u64, matched: Option<u64>) {
        self.done += 1;
        if let Some(bytes) = bytes {
            *self.bytes.get_or_insert(0) += bytes;
        }
        let elapsed = self.started.elapsed();
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        let due = self.last.map_or(elapsed >= Duration::from_secs(1), |last| {
            last.elapsed() >= every
        });
        if !due {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let mut line = match self.total {
            Some(total) => format!("{}/{total} {}", self.done, self.unit),
            None => format!("{} {}", self.done, self.unit),
        };
        let _ = write!(line, ", {events} events {}", self.events_verb);
        if let Some(matched) = matched {
            let _ = write!(line, ", {matched} matched");
        }
        let _ = write!(line, ", {:.0} events/s", events as f64 / seconds);
        if let Some(bytes) = self.bytes {
            let _ = write!(line, ", {:.1} MB/s", bytes as f64 / 1e6 / seconds);
        }
        let mut stderr = std::io::stderr();
        if self.terminal {
            let _ = write!(stderr, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(stderr, "{line}");
        }
        let _ = stderr.flush();
    }

    /// The summary line, when a progress line was shown (or the scan took over a second).
    fn finish(&self, events: u64, matched: u64) {
        let elapsed = self.started.elapsed();
        if !self.shown && elapsed < Duration::from_secs(1) {
            return;
        }
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let mut line = format!(
            "{} {}, {events} events scanned, {matched} matched in {seconds:.1} s ({:.0} events/s",
            self.done,
            self.unit,
            events as f64 / seconds
        );
        if let Some(bytes) = self.bytes {
            let _ = write!(line, ", {:.1} MB/s read", bytes as f64 / 1e6 / seconds);
        }
        line.push(')');
        if self.terminal {
            eprintln!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

async fn explain(
    name: &str,
    args: &LibraryArgs,
    query: &QueryArgs,
    dialect: SqlDialect,
    table: &str,
    target: &AwsTarget,
) -> Result<ExitCode> {
    let runbook = load_runbook(name, args)?;
    let params = params(query)?;
    let compiled = runbook.compile(&params)?;
    let spec = runbook.spec();
    let mut out = String::new();
    say!(out, "runbook:  {} ({})", spec.title, spec.id);
    say!(out, "window:   {}", compiled.window());
    for (name, values) in compiled.bound() {
        say!(out, "param:    {name} = {}", values.join(","));
    }
    say!(out, "\nsource:");
    // With `--source athena` the SQL shown is the one that runs: Athena's, on its table.
    let mut dialect = dialect;
    let mut table = table.to_owned();
    if query.sources.is_empty() {
        say!(out, "  none given (`--source PATH|s3://...|lookup|athena`)");
    } else {
        match source(query)? {
            Source::Files(roots) => {
                let files = FileSource::with_roots(roots).files()?;
                let bytes: u64 = files
                    .iter()
                    .filter_map(|file| std::fs::metadata(file).ok())
                    .map(|metadata| metadata.len())
                    .sum();
                say!(
                    out,
                    "  {} local files ({:.1} MB on disk); .json and .json.gz, digest and Insights files skipped",
                    files.len(),
                    bytes as f64 / 1e6
                );
                say!(
                    out,
                    "  every record is read; the window and the filter are applied locally"
                );
            }
            Source::S3(url) => {
                for line in sources::explain_s3(&compiled, &url, target, &query.aws).await? {
                    say!(out, "{line}");
                }
            }
            Source::Lookup => {
                for line in sources::explain_lookup(&compiled, target, &query.aws).await? {
                    say!(out, "{line}");
                }
            }
            Source::Athena => {
                for line in sources::explain_athena(&query.aws) {
                    say!(out, "{line}");
                }
                dialect = SqlDialect::Athena;
                table.clone_from(&query.aws.athena_table);
            }
        }
    }
    say!(out, "\nLookupEvents (server-side attribute):");
    match compiled.lookup() {
        Some(plan) => {
            for value in &plan.values {
                say!(out, "  {} = {value}", plan.attribute.as_str());
            }
            say!(
                out,
                "  one paged query per value and region (us-east-1 always included), 2 calls/s per region"
            );
        }
        None => say!(out, "  none: this runbook needs files, S3 or SQL"),
    }
    say!(
        out,
        "\nlocal filter (applied to every record in the window):"
    );
    out.push_str(&indent(&filter::describe(&spec.filter)));
    let dialect = match dialect {
        SqlDialect::Athena => Dialect::Athena,
        SqlDialect::Duckdb => Dialect::DuckDb,
    };
    say!(out, "\nSQL ({}, table {table}):", dialect.as_str());
    let partitions = matches!(query.sources.first().map(String::as_str), Some("athena"))
        .then(|| sources::athena_partitions(&query.aws))
        .flatten();
    match compiled.to_sql_over(dialect, &table, partitions.as_ref()) {
        Ok(plan) => {
            for query in plan.queries {
                say!(out, "-- {}\n{};\n", query.section.name(), query.sql);
            }
        }
        Err(error @ (SqlError::InvalidTable(_) | SqlError::InvalidPartition(_))) => {
            return Err(error.into());
        }
        Err(error) => say!(out, "  no SQL translation: {error}"),
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// Validates every runbook file given (folders: every `*.yaml`/`*.yml` inside), printing each
/// error as `file:line:column: path: problem`; ids must be unique across everything checked.
fn check(paths: &[PathBuf]) -> ExitCode {
    let mut library = Library::default();
    let mut errors: Vec<LoadError> = Vec::new();
    let mut checked = 0;
    for path in paths {
        if path.is_dir() {
            let (folder, folder_errors) = Library::check_dir(path);
            checked += folder.len() + folder_errors.len();
            errors.extend(folder_errors);
            for runbook in folder.iter() {
                if let Err(error) = library.insert(runbook.clone()) {
                    errors.push(error);
                }
            }
            continue;
        }
        checked += 1;
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(source) => {
                errors.push(LoadError::Read {
                    file: path.clone(),
                    source,
                });
                continue;
            }
        };
        match Runbook::parse(&text, &path.display().to_string()) {
            Ok(runbook) => {
                if let Err(error) = library.insert(runbook) {
                    errors.push(error);
                }
            }
            Err(error) => errors.push(error),
        }
    }
    for error in &errors {
        eprintln!("{error}");
    }
    if errors.is_empty() {
        println!("ok: {} runbooks", library.len());
        ExitCode::SUCCESS
    } else {
        eprintln!("{} of {checked} runbook files are invalid", errors.len());
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_short_and_iso_durations() {
        for (text, seconds) in [
            ("24h", 86_400),
            ("30m", 1800),
            ("7d", 604_800),
            ("90s", 90),
            ("P7D", 604_800),
            ("pt4h", 14_400),
        ] {
            assert_eq!(
                parse_since(text)
                    .map(|duration| duration.whole_seconds())
                    .ok(),
                Some(seconds),
                "{text}"
            );
        }
        for text in ["", "h", "24x", "-1h", "P1M"] {
            assert!(parse_since(text).is_err(), "{text}");
        }
    }

    #[test]
    fn sources_are_classified() {
        let query = |sources: &[&str]| QueryArgs {
            sources: sources.iter().map(|source| (*source).to_owned()).collect(),
            params: Vec::new(),
            since: None,
            from: None,
            to: None,
            aws: Box::default(),
        };
        assert!(
            matches!(source(&query(&["logs", "more"])), Ok(Source::Files(roots)) if roots.len() == 2)
        );
        assert!(matches!(source(&query(&["s3://b/p"])), Ok(Source::S3(_))));
        assert!(matches!(source(&query(&["lookup"])), Ok(Source::Lookup)));
        assert!(matches!(source(&query(&["athena"])), Ok(Source::Athena)));
        assert!(source(&query(&[])).is_err());
        assert!(source(&query(&["logs", "lookup"])).is_err());
    }

    fn repository(path: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(path)
    }

    #[test]
    fn a_projected_athena_run_reads_only_its_days_accounts_and_regions() {
        let library = Library::load_dir(repository("runbooks")).expect("loads");
        let runbook = library.get("logging-tampering").expect("runbook");
        let params = Params::new().window(
            time::macros::datetime!(2024-05-01 22:00 UTC),
            time::macros::datetime!(2024-05-02 06:00 UTC),
        );
        let compiled = runbook.compile(&params).expect("binds");
        let mut args = sources::AwsSourceArgs::default();
        let whole = sources::athena_plan(&compiled, &args).expect("compiles");
        assert!(!whole.queries[0].sql.contains("\"day\""));
        args.athena_projected = true;
        args.athena_accounts = vec!["111122223333".to_owned()];
        args.athena_regions = vec!["eu-west-1".to_owned(), "us-east-1".to_owned()];
        let pruned = sources::athena_plan(&compiled, &args).expect("compiles");
        for query in &pruned.queries {
            assert!(
                query.sql.contains(
                    "WHERE \"day\" >= '2024/05/01' AND \"day\" <= '2024/05/02' AND \"account\" IN ('111122223333') AND \"region\" IN ('eu-west-1', 'us-east-1')"
                ),
                "{}",
                query.sql
            );
        }
        args.athena_accounts = vec!["1' OR '1'='1".to_owned()];
        let refused = sources::athena_plan(&compiled, &args).expect_err("a hostile account");
        assert!(format!("{refused:#}").contains("12-digit"), "{refused:#}");
    }

    #[test]
    fn athena_table_refuses_what_is_not_a_bucket_account_or_day() {
        let table = |bucket: &str, accounts: &[&str], day: &str| {
            athena_table(
                bucket.to_owned(),
                Some("o-a1b2c3d4e5".to_owned()),
                accounts.iter().map(|a| (*a).to_owned()).collect(),
                vec!["eu-west-1".to_owned()],
                day,
                "cloudtrail_logs".to_owned(),
            )
        };
        assert!(table("https://bucket", &["111122223333"], "2024-01-01").is_err());
        assert!(table("s3://Bad_Bucket", &["111122223333"], "2024-01-01").is_err());
        assert!(table("s3://org-trail", &["1234"], "2024-01-01").is_err());
        assert!(table("s3://org-trail", &["111122223333"], "2024/01/01").is_err());
    }

    #[test]
    fn check_accepts_the_library_and_rejects_a_broken_file() {
        assert_eq!(check(&[repository("runbooks")]), ExitCode::SUCCESS);
        let folder = std::env::temp_dir().join(format!("jitctl-check-{}", std::process::id()));
        std::fs::create_dir_all(&folder).expect("temp folder");
        let bad = folder.join("bad.yaml");
        std::fs::write(
            &bad,
            "id: bad\ntitle: t\nseverity: low\nfilter:\n  field: eventName\n  regex: '('\n",
        )
        .expect("write");
        assert_eq!(check(std::slice::from_ref(&bad)), ExitCode::FAILURE);
        // The same id twice is an error too.
        let good = folder.join("good.yaml");
        std::fs::write(
            &good,
            "id: x\ntitle: t\nseverity: low\nfilter: {field: a, exists: true}\n",
        )
        .expect("write");
        assert_eq!(check(&[good.clone(), good]), ExitCode::FAILURE);
        let _ = std::fs::remove_dir_all(&folder);
    }

    #[test]
    fn coverage_reports_built_in_runbooks_and_sigma_rules_together() {
        let library = LibraryArgs {
            dir: repository("runbooks"),
        };
        let inventory = load_inventory(&library, &repository("runbooks/sigma")).expect("loads");
        let built_in = Library::load_dir(repository("runbooks")).expect("loads");
        let sigma = Library::load_dir(repository("runbooks/sigma")).expect("loads");
        assert_eq!(inventory.runbooks.len(), built_in.len() + sigma.len());
        // StopLogging is watched by a curated runbook and by the Sigma rule for it.
        let stop_logging = &inventory.event_names["StopLogging"];
        assert!(stop_logging.contains(&"logging-tampering".to_owned()));
        assert!(stop_logging.contains(&"aws-cloudtrail-disable-logging".to_owned()));
        // Lambda's versioned event names are watched by prefix.
        assert!(
            inventory.event_names["UpdateFunctionCode*"].contains(&"lambda-code-change".to_owned())
        );
        assert!(inventory.techniques["T1562.008"].runbooks.len() > 5);
        assert!(
            inventory
                .techniques
                .values()
                .all(|technique| technique.well_formed)
        );
        // Without the Sigma folder the report is the built-in library alone.
        let alone =
            load_inventory(&library, &repository("runbooks/no-such-folder")).expect("loads");
        assert_eq!(alone.runbooks.len(), built_in.len());
    }

    #[tokio::test]
    async fn run_and_explain_work_on_the_real_logs() {
        let logs = repository("../shared/data/cloudtrail");
        if !logs.is_dir() {
            println!("note: {} is absent; skipped", logs.display());
            return;
        }
        let library = LibraryArgs {
            dir: repository("runbooks"),
        };
        let target = AwsTarget::default();
        let query = QueryArgs {
            sources: vec![logs.display().to_string()],
            params: vec!["requester=benjamin".to_owned()],
            since: None,
            from: Some("2023-07-10T00:00:00Z".to_owned()),
            to: Some("2023-07-11T00:00:00Z".to_owned()),
            aws: Box::default(),
        };
        for format in [
            OutputFormat::Text,
            OutputFormat::Json,
            OutputFormat::Markdown,
            OutputFormat::Html,
        ] {
            assert!(
                run_runbook("requester-activity", &library, &query, format, &target)
                    .await
                    .is_ok()
            );
        }
        assert!(
            explain(
                "requester-activity",
                &library,
                &query,
                SqlDialect::Athena,
                "ct",
                &target
            )
            .await
            .is_ok()
        );
        assert!(
            explain(
                "requester-activity",
                &library,
                &query,
                SqlDialect::Athena,
                "a;b",
                &target
            )
            .await
            .is_err()
        );
        let missing = QueryArgs {
            params: Vec::new(),
            ..query
        };
        assert!(
            run_runbook(
                "requester-activity",
                &library,
                &missing,
                OutputFormat::Text,
                &target
            )
            .await
            .is_err()
        );
    }

    #[test]
    fn params_reject_a_pair_without_equals() {
        let query = QueryArgs {
            sources: Vec::new(),
            params: vec!["requester".to_owned()],
            since: None,
            from: None,
            to: None,
            aws: Box::default(),
        };
        assert!(params(&query).is_err());
    }
}
