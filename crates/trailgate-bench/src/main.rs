//! `trailgate-bench`: the runbook engine speed benchmark (issues 6 and 16).
//!
//! Builds (or reuses) a deterministic corpus of gzipped trail files (`corpus`), then for each
//! benchmarked runbook times, over the same files with the same thread count: the engine
//! (`FileSource` read in parallel, the code path of `jitctl runbook run`), the SQL contenders of
//! `contenders` (DuckDB 1.5 and 2.0 running the runbook's summary query from
//! `trailgate_runbooks::sql`, ClickHouse embedded as chdb), and two floors: libdeflate
//! decompressing whole objects (the fastest decompression available here: no scan of these
//! files can beat it) and gunzip plus parsing every file into a `serde_json::Value` (the
//! previous floor). Every contender must agree with the engine on the (scanned, matched,
//! outside-window) counts, and the floors with the corpus manifest, or the run fails. The page
//! cache is warmed by reading every file before timing.

mod contenders;
mod corpus;

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use flate2::read::MultiGzDecoder;
use serde_json::{Value, json};
use time::OffsetDateTime;
use trailgate_runbooks::source::files::FileSource;
use trailgate_runbooks::source::parallel::available_threads;
use trailgate_runbooks::sql::{Dialect, Section};
use trailgate_runbooks::{Library, Params, run};

/// Command-line options.
#[derive(Debug, Parser)]
#[command(about = "Runbook engine vs DuckDB 1.5 and 2.0 vs chdb vs the decompression floors")]
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
    /// Python with the `duckdb` module (DuckDB 1.5, the SQL proof's).
    #[arg(long, default_value = ".venv-duckdb/bin/python")]
    python: PathBuf,
    /// Python with DuckDB 2.0 and chdb (`scripts/bootstrap.sh bench`).
    #[arg(long, default_value = ".venv-bench/bin/python")]
    bench_python: PathBuf,
    /// Only build the corpus.
    #[arg(long)]
    corpus_only: bool,
    /// Instead of the benchmark, time each stage on one thread over the first N files
    /// (gunzip, parse to Value, and the engine per runbook on the decompressed bytes).
    #[arg(long)]
    stages: Option<usize>,
    /// Instead of the benchmark, time the scan function's batch step
    /// (`distributed::scan_batch`, the Distributed Map's per-batch work) on one thread over the
    /// first N files as S3 objects held in memory: the scanner Lambda's per-object throughput
    /// without S3's latency.
    #[arg(long)]
    batch: Option<usize>,
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
    if let Some(count) = options.batch {
        return batch(&files[..count.min(files.len())], &library, window, runs);
    }

    warm(&files)?;
    let floors = floors(&files, &corpus, threads, runs)?;
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
    print_report(&corpus, threads, runs, &floors, &rows);
    Ok(())
}

/// The floor (gunzip and split every record) and gunzip alone, once for all runbooks: neither
/// depends on the runbook. Each run is checked against the corpus manifest.
fn floors(
    files: &[PathBuf],
    corpus: &corpus::Corpus,
    threads: usize,
    runs: usize,
) -> Result<Floors> {
    // Each floor's runs, each checked against the manifest (records only where it counts them).
    let timed = |name: &str, records: bool, once: &dyn Fn() -> Result<(f64, u64, u64)>| {
        let mut timing = Timing {
            seconds: Vec::new(),
        };
        for run in 0..runs {
            let (seconds, read, raw) = once()?;
            eprintln!("{name} run {}: {seconds:.2}s", run + 1);
            if raw != corpus.raw_bytes || (records && read != corpus.records) {
                bail!(
                    "{name} read {read} records / {raw} bytes, manifest says {} / {}",
                    corpus.records,
                    corpus.raw_bytes
                );
            }
            timing.seconds.push(seconds);
        }
        Ok(timing)
    };
    Ok(Floors {
        // Gunzip alone with the engine's flate2 backend, for reference.
        gunzip: timed("gunzip", false, &|| floor_once(files, threads, false))?,
        // Whole objects through libdeflate: what no scan of these files can beat.
        deflate: timed("libdeflate", false, &|| {
            libdeflate_once(files, threads).map(|(seconds, raw)| (seconds, 0, raw))
        })?,
        parse: timed("floor", true, &|| floor_once(files, threads, true))?,
    })
}

/// The reference timings that do not depend on the runbook.
struct Floors {
    /// gunzip (flate2) + parse every file into a `Value`.
    parse: Timing,
    /// gunzip (flate2) alone.
    gunzip: Timing,
    /// libdeflate, whole objects, alone.
    deflate: Timing,
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

/// One runbook in the engine and in every SQL contender; all must count the same records.
fn measure(bench: &Bench<'_>, case: Case) -> Result<Row> {
    let Bench {
        corpus,
        library,
        window,
        threads,
        runs,
        ..
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
    let mut measured = Vec::new();
    for contender in [Engine::DuckDb, Engine::DuckDb2, Engine::Chdb] {
        let (result, counts) = sql_runs(bench, contender, &summary.sql, case.id)?;
        if counts != engine_counts {
            bail!(
                "{}: engine (scanned, matched, outside) = {engine_counts:?} but {} = {counts:?}",
                case.id,
                result.name
            );
        }
        eprintln!(
            "{}: engine and {} agree: scanned {}, matched {}",
            case.id, result.name, counts.0, counts.1
        );
        measured.push(result);
    }
    Ok(Row {
        case,
        engine,
        contenders: measured,
        counts: engine_counts,
    })
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
    let records = AtomicU64::new(0);
    let raw = AtomicU64::new(0);
    let seconds = on_threads(files, threads, Vec::new, |file, bytes| {
        bytes.clear();
        MultiGzDecoder::new(std::fs::File::open(file)?).read_to_end(bytes)?;
        if parse {
            let document: Value = serde_json::from_slice(bytes)?;
            let count = document["Records"].as_array().map_or(0, Vec::len);
            records.fetch_add(count as u64, Ordering::Relaxed);
        }
        raw.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    })?;
    Ok((seconds, records.into_inner(), raw.into_inner()))
}

/// Decompresses every file whole with libdeflate on `threads` threads; returns (seconds,
/// uncompressed bytes). The output buffer is sized from the gzip trailer (ISIZE), and the
/// output must match the trailer's CRC-32 and size: libdeflate decodes one member only, so a
/// multi-member object fails here instead of being under-counted (the corpus is single-member,
/// and the caller checks the bytes against its manifest).
fn libdeflate_once(files: &[PathBuf], threads: usize) -> Result<(f64, u64)> {
    let raw = AtomicU64::new(0);
    let fresh = || (libdeflater::Decompressor::new(), Vec::new(), Vec::new());
    let seconds = on_threads(files, threads, fresh, |file, state| {
        let (decompressor, input, output) = state;
        input.clear();
        std::fs::File::open(file)?.read_to_end(input)?;
        let Some(trailer) = input.len().checked_sub(8).map(|at| &input[at..]) else {
            bail!("{}: not gzip", file.display());
        };
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        // The trailer is the file's word: refuse a claim past CloudTrail's sizes.
        if size > 1 << 30 {
            bail!("{}: claims {size} bytes uncompressed", file.display());
        }
        output.resize(size as usize, 0);
        let written = decompressor
            .gzip_decompress(input, output)
            .map_err(|error| anyhow::anyhow!("{}: {error:?}", file.display()))?;
        if written != size as usize || libdeflater::crc32(&output[..written]) != crc {
            bail!("{}: multi-member or corrupt gzip", file.display());
        }
        raw.fetch_add(written as u64, Ordering::Relaxed);
        Ok(())
    })?;
    Ok((seconds, raw.into_inner()))
}

/// Runs `work` on every file, `threads` workers taking the next file from a shared counter,
/// each with its own `state`; returns the wall time in seconds, or the first error.
fn on_threads<S>(
    files: &[PathBuf],
    threads: usize,
    state: impl Fn() -> S + Sync,
    work: impl Fn(&PathBuf, &mut S) -> Result<()> + Sync,
) -> Result<f64> {
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let mut own = state();
                    while let Some(file) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                        work(file, &mut own)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    Ok(started.elapsed().as_secs_f64())
}

/// A SQL contender: which engine, through which Python.
#[derive(Clone, Copy)]
enum Engine {
    /// DuckDB 1.5 (`--python`).
    DuckDb,
    /// DuckDB 2.0 (`--bench-python`).
    DuckDb2,
    /// ClickHouse embedded (`--bench-python`).
    Chdb,
}

/// One contender's runs of one runbook.
struct Measured {
    name: String,
    timing: Timing,
}

/// Runs one runbook's summary query `runs` times on `engine`; returns the contender's name
/// (with its version), the timings and the counts (scanned, matched, outside window).
fn sql_runs(
    bench: &Bench<'_>,
    engine: Engine,
    duckdb_sql: &str,
    id: &str,
) -> Result<(Measured, (u64, u64, u64))> {
    let options = bench.options;
    let (python, script, setup) = match engine {
        Engine::DuckDb => (
            &options.python,
            "crates/trailgate-runbooks/tests/support/duckdb_run.py",
            "scripts/bootstrap.sh duckdb",
        ),
        Engine::DuckDb2 => (
            &options.bench_python,
            "crates/trailgate-runbooks/tests/support/duckdb_run.py",
            "scripts/bootstrap.sh bench",
        ),
        Engine::Chdb => (
            &options.bench_python,
            "crates/trailgate-bench/support/chdb_run.py",
            "scripts/bootstrap.sh bench",
        ),
    };
    let request = match engine {
        Engine::DuckDb | Engine::DuckDb2 => json!({
            "threads": bench.threads,
            "setup": [contenders::duckdb_view("ct", bench.files)?],
            "queries": contenders::repeated(id, duckdb_sql, bench.runs),
        }),
        Engine::Chdb => {
            let sql = contenders::clickhouse_summary(
                id,
                &bench.corpus.root,
                (
                    bench.window.0.unix_timestamp(),
                    bench.window.1.unix_timestamp(),
                ),
                bench.threads,
            )?;
            json!({"queries": contenders::repeated(id, &sql, bench.runs)})
        }
    };
    let answer = contenders::run_python(
        &options.repo.join(python),
        &options.repo.join(script),
        &request,
        setup,
    )?;
    let name = match engine {
        Engine::DuckDb | Engine::DuckDb2 => {
            format!("DuckDB {}", answer["duckdb"].as_str().unwrap_or("?"))
        }
        Engine::Chdb => format!(
            "chdb {} (ClickHouse {})",
            answer["chdb"].as_str().unwrap_or("?"),
            answer["clickhouse"].as_str().unwrap_or("?")
        ),
    };
    let mut timing = Timing {
        seconds: Vec::new(),
    };
    let mut counts = None;
    for run in 0..bench.runs {
        let result = &answer["results"][format!("{id}/{run}")];
        let seconds = result["seconds"]
            .as_f64()
            .with_context(|| format!("{name}: an answer without seconds"))?;
        eprintln!("{id} {name} run {}: {seconds:.2}s", run + 1);
        timing.seconds.push(seconds);
        let these = contenders::counts(&result["rows"][0]);
        if counts.is_some_and(|previous| previous != these) {
            bail!("{id}: {name}'s counts changed between runs");
        }
        counts = Some(these);
    }
    let counts = counts.with_context(|| format!("no {name} run"))?;
    Ok((Measured { name, timing }, counts))
}

/// One runbook's measurements: the engine, then every contender.
struct Row {
    case: Case,
    engine: Timing,
    contenders: Vec<Measured>,
    counts: (u64, u64, u64),
}

fn print_report(
    corpus: &corpus::Corpus,
    threads: usize,
    runs: usize,
    floors: &Floors,
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
        "Contenders run the runbook's summary (one scan: scanned, matched, outside-window counts), each agreeing with the engine: DuckDB the compiled SQL over a typed `from_json` view, chdb a ClickHouse query over a typed JSONEachRow schema (crates/trailgate-bench/src/contenders.rs)."
    );
    println!();
    println!(
        "| runbook | contender | median s (all runs) | records/s | MB/s gz | MB/s raw | contender ÷ engine | ÷ libdeflate floor |"
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
    let deflate_s = floors.deflate.median();
    for row in rows {
        let engine_s = row.engine.median();
        println!(
            "| {} ({}; {} matched) | trailgate | {engine_s:.2} ({}) | {} | 1.00x | {:.2}x |",
            row.case.id,
            row.case.why,
            row.counts.1,
            row.engine.all(),
            rate(engine_s),
            engine_s / deflate_s
        );
        for contender in &row.contenders {
            let seconds = contender.timing.median();
            println!(
                "| | {} | {seconds:.2} ({}) | {} | {:.2}x | {:.2}x |",
                contender.name,
                contender.timing.all(),
                rate(seconds),
                seconds / engine_s,
                seconds / deflate_s
            );
        }
    }
    for (name, timing) in [
        ("floor: libdeflate, whole objects", &floors.deflate),
        ("gunzip alone (flate2, the engine's)", &floors.gunzip),
        ("gunzip + parse to Value (the old floor)", &floors.parse),
    ] {
        let seconds = timing.median();
        println!(
            "| (any) | {name} | {seconds:.2} ({}) | {} | | {:.2}x |",
            timing.all(),
            rate(seconds),
            seconds / deflate_s
        );
    }
}

/// Single-thread stage timings over `files`, to see where the time goes.
/// `--batch N`: the scan function's batch step over N corpus files on a one-thread runtime (a
/// 1,769 MB Lambda has one vCPU), its objects in an in-memory bucket under trail keys: objects
/// and gzipped MB per second, median of `runs`, per runbook.
fn batch(
    files: &[PathBuf],
    library: &Library,
    window: (OffsetDateTime, OffsetDateTime),
    runs: usize,
) -> Result<()> {
    use trailgate_runbooks::source::distributed::{Batch, scan_batch};
    use trailgate_runbooks::source::files::Limits;
    use trailgate_runbooks::source::memory_bucket::MemoryBucket;

    let bucket = MemoryBucket::default();
    let mut keys = Vec::new();
    let mut bytes = 0u64;
    for (n, file) in files.iter().enumerate() {
        let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        bytes += body.len() as u64;
        let key = format!(
            "AWSLogs/123456789012/CloudTrail/us-east-1/2026/01/01/123456789012_CloudTrail_us-east-1_20260101T0000Z_{n:06}.json.gz"
        );
        bucket.put(key.clone(), body);
        keys.push(key);
    }
    let batch = Batch {
        index: 0,
        first_file: 0,
        keys,
        bytes,
    };
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    println!(
        "scan function batch step, 1 thread, {} objects, {:.1} MB gzipped (avg {:.0} KB), median of {runs}\n",
        files.len(),
        bytes as f64 / 1e6,
        bytes as f64 / files.len().max(1) as f64 / 1e3
    );
    println!("| runbook | seconds | objects/s | MB/s gzipped | events scanned |");
    println!("|---|---:|---:|---:|---:|");
    for case in cases() {
        let runbook = library.get(case.id).context("runbook")?;
        let params = case
            .params
            .iter()
            .fold(Params::new(), |params, (name, value)| {
                params.set(name, value)
            })
            .window(window.0, window.1);
        let compiled = runbook.compile(&params)?;
        let mut timing = Timing {
            seconds: Vec::new(),
        };
        let mut scanned = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let state = runtime.block_on(scan_batch(
                &compiled,
                &bucket,
                "bench",
                "",
                &batch,
                8,
                Limits::default(),
            ))?;
            timing.seconds.push(started.elapsed().as_secs_f64());
            let mut whole = compiled.scan();
            whole.absorb(state)?;
            scanned = whole.finish().coverage.events_scanned;
        }
        let seconds = timing.median();
        println!(
            "| {} | {seconds:.2} | {:.0} | {:.1} | {scanned} |",
            case.id,
            files.len() as f64 / seconds,
            bytes as f64 / 1e6 / seconds
        );
    }
    Ok(())
}

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
