//! `trailgate-bench`: the runbook engine speed benchmark of issue 6.
//!
//! Builds (or reuses) a deterministic corpus of gzipped trail files (`corpus`), then for each
//! benchmarked runbook times three contenders over the same files with the same thread count:
//! the engine (`FileSource` read in parallel, the code path of `jitctl runbook run`), DuckDB
//! running the runbook's SQL from `trailgate_runbooks::sql` over a `duckdb_view` of the files,
//! and the floor (gunzip with the same flate2 backend plus parsing every file into a
//! `serde_json::Value`, no filter). It checks that the engine and DuckDB agree on the counts and
//! prints a markdown table. The page cache is warmed by reading every file before timing.

mod corpus;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use flate2::read::MultiGzDecoder;
use serde_json::{Value, json};
use time::OffsetDateTime;
use trailgate_runbooks::source::files::FileSource;
use trailgate_runbooks::source::parallel::available_threads;
use trailgate_runbooks::sql::{self, Dialect, FileLayout, Section};
use trailgate_runbooks::{Library, Params, run};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Runbook engine vs DuckDB vs the decompress+parse floor")]
struct Options {
    /// Repository root (runbooks/, the DuckDB runner and venv are found from it).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Folder of real CloudTrail files the corpus replays.
    #[arg(
        long,
        default_value = "../shared/data/cloudtrail/aws_dataset/CloudTrail"
    )]
    source: PathBuf,
    /// Where the corpus is built (reused when its parameters match).
    #[arg(long, default_value = "target/bench-corpus")]
    corpus: PathBuf,
    /// Gzipped corpus size to reach, in MB (10^6 bytes).
    #[arg(long, default_value_t = 1100)]
    corpus_mb: u64,
    /// Seed of the corpus generator.
    #[arg(long, default_value_t = 6)]
    seed: u64,
    /// Threads for every contender (default: available parallelism).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed runs per contender; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Python with the `duckdb` module.
    #[arg(long, default_value = ".venv-duckdb/bin/python")]
    python: PathBuf,
    /// Only build the corpus.
    #[arg(long)]
    corpus_only: bool,
    /// Instead of the benchmark, time each stage on one thread over the first N files
    /// (gunzip, parse to Value, and the engine per runbook on the decompressed bytes).
    #[arg(long)]
    stages: Option<usize>,
}

/// A benchmarked runbook and its parameters.
struct Case {
    id: &'static str,
    params: Vec<(&'static str, &'static str)>,
    why: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            id: "logging-tampering",
            params: vec![],
            why: "eventName IN a 22-name list, rows + count_by",
        },
        Case {
            id: "access-denied",
            params: vec![],
            why: "errorCode IN a list, count_by + top + rows",
        },
        Case {
            id: "requester-activity",
            params: vec![("requester", "benjamin")],
            why: "any of 4 identity fields, count_by + 5 distinct + first/last seen + rows",
        },
    ]
}

/// Wall times of one contender, in seconds.
struct Timing {
    seconds: Vec<f64>,
}

impl Timing {
    fn median(&self) -> f64 {
        let mut sorted = self.seconds.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    }

    fn all(&self) -> String {
        self.seconds
            .iter()
            .map(|seconds| format!("{seconds:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn main() -> Result<()> {
    let options = Options::parse();
    let threads = options.threads.unwrap_or_else(available_threads).max(1);
    let runs = options.runs.max(1);
    let parameters = corpus::Parameters {
        source: options.source.clone(),
        seed: options.seed,
        target_gz_bytes: options.corpus_mb * 1_000_000,
    };
    let started = Instant::now();
    let corpus = corpus::build(&options.corpus, &parameters, threads)?;
    eprintln!(
        "corpus ready in {:.1}s: {} files, {} records, {:.3} GB gz, {:.3} GB raw",
        started.elapsed().as_secs_f64(),
        corpus.files,
        corpus.records,
        corpus.gz_bytes as f64 / 1e9,
        corpus.raw_bytes as f64 / 1e9
    );
    if options.corpus_only {
        return Ok(());
    }
    let files = FileSource::new(&corpus.root)
        .files()
        .context("listing the corpus")?;
    if files.len() as u64 != corpus.files {
        bail!(
            "the corpus has {} files but its manifest says {}: delete {} and rerun",
            files.len(),
            corpus.files,
            corpus.root.display()
        );
    }
    let library = Library::load_dir(options.repo.join("runbooks"))?;
    let window = (
        OffsetDateTime::from_unix_timestamp(corpus.start)?,
        OffsetDateTime::from_unix_timestamp(corpus.end)?,
    );
    if let Some(count) = options.stages {
        return stages(&files[..count.min(files.len())], &library, window);
    }

    warm(&files)?;
    let (floor, gunzip) = floors(&files, &corpus, threads, runs)?;
    let mut rows = Vec::new();
    for case in cases() {
        let bench = Bench {
            options: &options,
            corpus: &corpus,
            files: &files,
            library: &library,
            window,
            threads,
            runs,
        };
        rows.push(measure(&bench, case)?);
    }
    print_report(&corpus, threads, runs, &floor, &gunzip, &rows);
    Ok(())
}

/// The floor (gunzip and split every record) and gunzip alone, once for all runbooks: neither
/// depends on the runbook. Each run is checked against the corpus manifest.
fn floors(
    files: &[PathBuf],
    corpus: &corpus::Corpus,
    threads: usize,
    runs: usize,
) -> Result<(Timing, Timing)> {
    let mut floor = Timing {
        seconds: Vec::new(),
    };
    // Gunzip alone, for reference: what no scan of these files can beat.
    let mut gunzip = Timing {
        seconds: Vec::new(),
    };
    for run in 0..runs {
        let (seconds, _, raw) = floor_once(files, threads, false)?;
        eprintln!("gunzip run {}: {seconds:.2}s", run + 1);
        if raw != corpus.raw_bytes {
            bail!(
                "gunzip gave {raw} bytes, manifest says {}",
                corpus.raw_bytes
            );
        }
        gunzip.seconds.push(seconds);
    }
    for run in 0..runs {
        let (seconds, records, raw) = floor_once(files, threads, true)?;
        eprintln!("floor run {}: {seconds:.2}s", run + 1);
        if records != corpus.records || raw != corpus.raw_bytes {
            bail!(
                "floor read {records} records / {raw} bytes, manifest says {} / {}",
                corpus.records,
                corpus.raw_bytes
            );
        }
        floor.seconds.push(seconds);
    }
    Ok((floor, gunzip))
}

/// What every runbook of one benchmark run is measured with.
struct Bench<'a> {
    options: &'a Options,
    corpus: &'a corpus::Corpus,
    files: &'a [PathBuf],
    library: &'a Library,
    window: (OffsetDateTime, OffsetDateTime),
    threads: usize,
    runs: usize,
}

/// One runbook in the engine and in DuckDB; the two must count the same records.
fn measure(bench: &Bench<'_>, case: Case) -> Result<Row> {
    let Bench {
        options,
        corpus,
        files,
        library,
        window,
        threads,
        runs,
    } = *bench;
    let runbook = library
        .get(case.id)
        .with_context(|| format!("no runbook `{}`", case.id))?;
    let params = case.params.iter().fold(
        Params::new().window(window.0, window.1),
        |params, (k, v)| params.set(k, v),
    );
    let (engine, engine_counts) = engine_runs(runbook, &params, corpus, threads, runs, case.id)?;

    let compiled = runbook.compile(&params)?;
    let plan = compiled.to_sql(Dialect::DuckDb, "ct")?;
    let summary = plan
        .queries
        .iter()
        .find(|query| query.section == Section::Summary)
        .context("the SQL plan has no summary query")?;
    let (duckdb, duckdb_counts, version) =
        duckdb_runs(options, files, threads, runs, &summary.sql, case.id)?;
    if duckdb_counts != engine_counts {
        bail!(
            "{}: engine (scanned, matched, outside) = {engine_counts:?} but DuckDB = {duckdb_counts:?}",
            case.id
        );
    }
    eprintln!(
        "{}: engine and DuckDB agree: scanned {}, matched {}",
        case.id, engine_counts.0, engine_counts.1
    );
    Ok((case, engine, duckdb, engine_counts, version))
}

/// The engine's runs of one runbook over the corpus: every file read, no record skipped, the
/// same (scanned, matched, outside) counts every run.
fn engine_runs(
    runbook: &trailgate_runbooks::Runbook,
    params: &Params,
    corpus: &corpus::Corpus,
    threads: usize,
    runs: usize,
    id: &str,
) -> Result<(Timing, (u64, u64, u64))> {
    let mut engine = Timing {
        seconds: Vec::new(),
    };
    let mut engine_counts = None;
    for run_index in 0..runs {
        let started = Instant::now();
        let mut source = FileSource::new(&corpus.root).threads(threads);
        let result = run(runbook, params, &mut source)?;
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("{id} engine run {}: {seconds:.2}s", run_index + 1);
        let coverage = &result.coverage;
        let counts = (
            coverage.events_scanned,
            coverage.events_matched,
            coverage.events_outside_window,
        );
        if coverage.records_skipped != 0 || coverage.files_read != corpus.files {
            bail!(
                "{id}: the engine skipped {} records and read {} files",
                coverage.records_skipped,
                coverage.files_read
            );
        }
        if engine_counts.is_some_and(|previous| previous != counts) {
            bail!("{id}: the engine's counts changed between runs");
        }
        engine_counts = Some(counts);
        engine.seconds.push(seconds);
    }
    Ok((engine, engine_counts.context("no engine run")?))
}

/// Reads every file once so every contender starts with the page cache warm.
fn warm(files: &[PathBuf]) -> Result<()> {
    let started = Instant::now();
    let mut total = 0u64;
    let mut buffer = Vec::new();
    for file in files {
        buffer.clear();
        std::fs::File::open(file)?.read_to_end(&mut buffer)?;
        total += buffer.len() as u64;
    }
    eprintln!(
        "page cache warmed: {:.2} GB read in {:.1}s",
        total as f64 / 1e9,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Gunzips and (if `parse`) parses every file into a `Value`, on `threads` threads; returns
/// (seconds, records (0 without `parse`), uncompressed bytes).
fn floor_once(files: &[PathBuf], threads: usize, parse: bool) -> Result<(f64, u64, u64)> {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let records = AtomicU64::new(0);
    let raw = AtomicU64::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let mut bytes = Vec::new();
                    while let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                        bytes.clear();
                        MultiGzDecoder::new(std::fs::File::open(file)?).read_to_end(&mut bytes)?;
                        if parse {
                            let document: Value = serde_json::from_slice(&bytes)?;
                            let count = document["Records"].as_array().map_or(0, Vec::len);
                            records.fetch_add(count as u64, Ordering::Relaxed);
                        }
                        raw.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a floor worker panicked"))??;
        }
        Ok(())
    })?;
    Ok((
        started.elapsed().as_secs_f64(),
        records.into_inner(),
        raw.into_inner(),
    ))
}

/// Runs the summary query `runs` times on DuckDB; returns the timings, the counts (scanned,
/// matched, outside window) and DuckDB's version.
fn duckdb_runs(
    options: &Options,
    files: &[PathBuf],
    threads: usize,
    runs: usize,
    sql: &str,
    id: &str,
) -> Result<(Timing, (u64, u64, u64), String)> {
    let python = options.repo.join(&options.python);
    let runner = options
        .repo
        .join("crates/trailgate-runbooks/tests/support/duckdb_run.py");
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let view = sql::duckdb_view("ct", &paths, FileLayout::Records)?;
    let queries: Vec<Value> = (0..runs)
        .map(|run| json!({"id": format!("{id}/{run}"), "sql": sql}))
        .collect();
    let request = json!({"threads": threads, "setup": [view], "queries": queries});
    let mut child = Command::new(&python)
        .arg(&runner)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (run scripts/bootstrap.sh duckdb)",
                python.display()
            )
        })?;
    child
        .stdin
        .take()
        .context("DuckDB runner stdin")?
        .write_all(&serde_json::to_vec(&request)?)?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "DuckDB runner failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let answer: Value = serde_json::from_slice(&output.stdout)?;
    if let Some(errors) = answer["errors"].as_object()
        && !errors.is_empty()
    {
        bail!("DuckDB rejected the query: {errors:?}");
    }
    let mut timing = Timing {
        seconds: Vec::new(),
    };
    let mut counts = None;
    for run in 0..runs {
        let result = &answer["results"][format!("{id}/{run}")];
        let seconds = result["seconds"]
            .as_f64()
            .context("DuckDB answer without seconds")?;
        eprintln!("{id} DuckDB run {}: {seconds:.2}s", run + 1);
        timing.seconds.push(seconds);
        let row = &result["rows"][0];
        let number = |index: usize| row[index].as_u64().unwrap_or(u64::MAX);
        counts = Some((number(0), number(1), number(2)));
    }
    let version = answer["duckdb"].as_str().unwrap_or("?").to_owned();
    Ok((timing, counts.context("no DuckDB run")?, version))
}

type Row = (Case, Timing, Timing, (u64, u64, u64), String);

fn print_report(
    corpus: &corpus::Corpus,
    threads: usize,
    runs: usize,
    floor: &Timing,
    gunzip: &Timing,
    rows: &[Row],
) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let version = rows.first().map_or("?", |row| row.4.as_str());
    println!(
        "Machine: {} logical CPUs ({cpu}); every contender on {threads} threads; median of {runs} runs; page cache warm (every file read once before timing).",
        available_threads()
    );
    println!(
        "Corpus: {} files, {} records, {:.3} GB gzipped, {:.3} GB uncompressed.",
        corpus.files,
        corpus.records,
        corpus.gz_bytes as f64 / 1e9,
        corpus.raw_bytes as f64 / 1e9
    );
    println!(
        "DuckDB {version}: the runbook's summary query (one scan: scanned, matched, outside-window counts) over `sql::duckdb_view`."
    );
    println!();
    println!(
        "| runbook | contender | median s (all runs) | records/s | MB/s gz | MB/s raw | DuckDB ÷ engine | engine ÷ floor |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let rate = |seconds: f64| {
        format!(
            "{:.0} | {:.0} | {:.0}",
            corpus.records as f64 / seconds,
            corpus.gz_bytes as f64 / 1e6 / seconds,
            corpus.raw_bytes as f64 / 1e6 / seconds
        )
    };
    for (case, engine, duckdb, counts, _) in rows {
        let (engine_s, duckdb_s, floor_s) = (engine.median(), duckdb.median(), floor.median());
        println!(
            "| {} ({}; {} matched) | trailgate | {engine_s:.2} ({}) | {} | {:.2}x | {:.2}x |",
            case.id,
            case.why,
            counts.1,
            engine.all(),
            rate(engine_s),
            duckdb_s / engine_s,
            engine_s / floor_s
        );
        println!(
            "| | DuckDB | {duckdb_s:.2} ({}) | {} | 1.00x | |",
            duckdb.all(),
            rate(duckdb_s)
        );
    }
    let floor_s = floor.median();
    println!(
        "| (any) | floor: gunzip + parse to Value | {floor_s:.2} ({}) | {} | | 1.00x |",
        floor.all(),
        rate(floor_s)
    );
    let gunzip_s = gunzip.median();
    println!(
        "| (any) | gunzip alone (reference, not a contender) | {gunzip_s:.2} ({}) | {} | | {:.2}x |",
        gunzip.all(),
        rate(gunzip_s),
        gunzip_s / floor_s
    );
}

/// Single-thread stage timings over `files`, to see where the time goes.
fn stages(
    files: &[PathBuf],
    library: &Library,
    window: (OffsetDateTime, OffsetDateTime),
) -> Result<()> {
    let started = Instant::now();
    let mut documents = Vec::new();
    for file in files {
        let mut bytes = Vec::new();
        MultiGzDecoder::new(std::fs::File::open(file)?).read_to_end(&mut bytes)?;
        documents.push(bytes);
    }
    let raw: usize = documents.iter().map(Vec::len).sum();
    let report = |name: &str, seconds: f64| {
        println!(
            "{name:40} {seconds:7.3}s {:8.0} MB/s raw",
            raw as f64 / 1e6 / seconds
        );
    };
    report("gunzip", started.elapsed().as_secs_f64());
    let started = Instant::now();
    for bytes in &documents {
        let _: Value = serde_json::from_slice(bytes)?;
    }
    report("parse to Value", started.elapsed().as_secs_f64());
    let started = Instant::now();
    for bytes in &documents {
        let _: serde::de::IgnoredAny = serde_json::from_slice(bytes)?;
    }
    report("parse to IgnoredAny", started.elapsed().as_secs_f64());
    for case in cases() {
        let runbook = library.get(case.id).context("runbook")?;
        let params = case.params.iter().fold(
            Params::new().window(window.0, window.1),
            |params, (k, v)| params.set(k, v),
        );
        let compiled = runbook.compile(&params)?;
        let started = Instant::now();
        let mut scan = compiled.scan();
        for bytes in &documents {
            trailgate_runbooks::source::files::feed_bytes(bytes, 1 << 20, &mut scan);
        }
        let matched = scan.events_matched();
        report(
            &format!("engine {} ({matched} matched)", case.id),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(())
}
