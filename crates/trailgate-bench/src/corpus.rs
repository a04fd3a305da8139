//! The benchmark corpus: real CloudTrail records replayed into a large, deterministic set of
//! gzipped trail files in the S3 delivery layout.
//!
//! Each real record keeps its exact text except `eventTime` (shifted onto the corpus timeline)
//! and `eventID`/`requestID` (fresh). Records are drawn with weights so write events stay rare, as
//! in real trails (read-only calls dominate): the runbooks then find a realistic number of
//! matches. Everything derives from the seed and the file index, so the corpus is the same on
//! every machine and whatever the thread count; a manifest records the parameters, and a corpus
//! with the same parameters is reused.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::macros::datetime;

/// Bumped when the generator changes, so old corpora are rebuilt.
const GENERATOR_VERSION: u64 = 1;
/// The account and Region of the replayed trail (those of the real files).
const ACCOUNT: &str = "218007301253";
const REGION: &str = "us-east-1";
/// Start of the corpus timeline; each file covers [`FILE_SECONDS`] of it.
const START: OffsetDateTime = datetime!(2026-01-05 00:00 UTC);
const FILE_SECONDS: i64 = 90;
/// Records per file: uniform in this range (a few hundred KB to a few MB uncompressed).
const RECORDS_PER_FILE: (u64, u64) = (150, 3000);
/// Draw weight of a record that is not read-only, relative to a read-only one.
const WRITE_WEIGHT: f64 = 0.1;
/// Files are generated in rounds of this many, and the size goal is checked between rounds,
/// so the file count does not depend on thread scheduling.
const ROUND: usize = 64;

/// What the corpus is built from and how big it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameters {
    /// Folder of real CloudTrail files (`{"Records": [...]}`, `.json` or `.json.gz`).
    pub source: PathBuf,
    /// Seed of every random choice.
    pub seed: u64,
    /// Stop once the gzipped files reach this many bytes.
    pub target_gz_bytes: u64,
}

/// A built corpus.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The folder holding the trail files (`<corpus>/AWSLogs`; the manifest sits beside it).
    pub root: PathBuf,
    /// Number of files.
    pub files: u64,
    /// Number of records.
    pub records: u64,
    /// Total gzipped size.
    pub gz_bytes: u64,
    /// Total uncompressed size.
    pub raw_bytes: u64,
    /// First and last possible `eventTime` (Unix seconds, end exclusive).
    pub start: i64,
    /// See `start`.
    pub end: i64,
}

/// One real record with the three replaced values cut out.
struct Template {
    /// Text pieces around the placeholders, in order.
    pieces: Vec<String>,
    /// What goes between `pieces[i]` and `pieces[i + 1]`.
    slots: Vec<Slot>,
}

#[derive(Clone, Copy)]
enum Slot {
    Time,
    Uuid,
}

/// Builds the corpus under `root`, or reuses the one there if its manifest has the same
/// parameters.
pub fn build(root: &Path, parameters: &Parameters, threads: usize) -> Result<Corpus> {
    let manifest_path = root.join("manifest.json");
    let wanted = manifest_key(parameters);
    if let Ok(text) = fs::read_to_string(&manifest_path)
        && let Ok(manifest) = serde_json::from_str::<Value>(&text)
        && manifest.get("parameters") == Some(&wanted)
    {
        let number = |key: &str| manifest[key].as_u64().unwrap_or(0);
        eprintln!("corpus: reusing {}", root.display());
        return Ok(Corpus {
            root: root.join("AWSLogs"),
            files: number("files"),
            records: number("records"),
            gz_bytes: number("gz_bytes"),
            raw_bytes: number("raw_bytes"),
            start: START.unix_timestamp(),
            end: START.unix_timestamp() + number("files") as i64 * FILE_SECONDS,
        });
    }
    if root.exists() {
        fs::remove_dir_all(root).with_context(|| format!("removing {}", root.display()))?;
    }
    let (templates, weights) = load_templates(&parameters.source)?;
    eprintln!(
        "corpus: {} real records from {}; building >= {} MB of gzip under {} on {threads} threads",
        templates.len(),
        parameters.source.display(),
        parameters.target_gz_bytes / 1_000_000,
        root.display()
    );
    let cumulative: Vec<f64> = weights
        .iter()
        .scan(0.0, |sum, weight| {
            *sum += weight;
            Some(*sum)
        })
        .collect();
    let mut totals = (0u64, 0u64, 0u64);
    let mut files = 0usize;
    while totals.1 < parameters.target_gz_bytes {
        let round: Vec<(u64, u64, u64)> = {
            let next = AtomicUsize::new(files);
            let end = files + ROUND;
            let results = std::sync::Mutex::new(Vec::new());
            std::thread::scope(|scope| -> Result<()> {
                let workers: Vec<_> = (0..threads.max(1))
                    .map(|_| {
                        scope.spawn(|| -> Result<()> {
                            loop {
                                let index = next.fetch_add(1, Ordering::Relaxed);
                                if index >= end {
                                    return Ok(());
                                }
                                let stats = write_file(
                                    root,
                                    parameters.seed,
                                    index,
                                    &templates,
                                    &cumulative,
                                )?;
                                results
                                    .lock()
                                    .map_err(|_| anyhow::anyhow!("a corpus worker panicked"))?
                                    .push(stats);
                            }
                        })
                    })
                    .collect();
                for worker in workers {
                    worker
                        .join()
                        .map_err(|_| anyhow::anyhow!("a corpus worker panicked"))??;
                }
                Ok(())
            })?;
            results
                .into_inner()
                .map_err(|_| anyhow::anyhow!("a corpus worker panicked"))?
        };
        for (records, gz, raw) in round {
            totals.0 += records;
            totals.1 += gz;
            totals.2 += raw;
        }
        files += ROUND;
        eprintln!(
            "corpus: {files} files, {:.0} MB gzip",
            totals.1 as f64 / 1e6
        );
    }
    let manifest = serde_json::json!({
        "parameters": wanted,
        "files": files,
        "records": totals.0,
        "gz_bytes": totals.1,
        "raw_bytes": totals.2,
    });
    fs::write(&manifest_path, serde_json::to_vec_pretty(&manifest)?)?;
    Ok(Corpus {
        root: root.join("AWSLogs"),
        files: files as u64,
        records: totals.0,
        gz_bytes: totals.1,
        raw_bytes: totals.2,
        start: START.unix_timestamp(),
        end: START.unix_timestamp() + files as i64 * FILE_SECONDS,
    })
}

fn manifest_key(parameters: &Parameters) -> Value {
    serde_json::json!({
        "generator": GENERATOR_VERSION,
        "source": parameters.source.to_string_lossy(),
        "seed": parameters.seed,
        "target_gz_bytes": parameters.target_gz_bytes,
    })
}

/// Reads every record of the source folder (sorted, so the order is stable) as a template.
fn load_templates(source: &Path) -> Result<(Vec<Template>, Vec<f64>)> {
    let mut paths: Vec<PathBuf> = fs::read_dir(source)
        .with_context(|| format!("reading {}", source.display()))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".json"))
        .collect();
    paths.sort();
    let mut templates = Vec::new();
    let mut weights = Vec::new();
    #[derive(serde::Deserialize)]
    struct File<'a> {
        #[serde(rename = "Records", borrow)]
        records: Vec<&'a RawValue>,
    }
    for path in &paths {
        let text = fs::read_to_string(path)?;
        let file: File<'_> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a trail file", path.display()))?;
        for raw in file.records {
            let value: Value = serde_json::from_str(raw.get())?;
            if let Some(template) = template(raw.get(), &value) {
                let read_only = value["readOnly"].as_bool().unwrap_or(false);
                weights.push(if read_only { 1.0 } else { WRITE_WEIGHT });
                templates.push(template);
            }
        }
    }
    if templates.is_empty() {
        bail!("no usable records in {}", source.display());
    }
    Ok((templates, weights))
}

/// Cuts the values of `eventTime`, `eventID` and `requestID` out of the record's text.
fn template(text: &str, value: &Value) -> Option<Template> {
    let mut cuts: Vec<(usize, usize, Slot)> = Vec::new();
    for (key, slot) in [
        ("eventTime", Slot::Time),
        ("eventID", Slot::Uuid),
        ("requestID", Slot::Uuid),
    ] {
        let Some(current) = value.get(key).and_then(Value::as_str) else {
            if key == "requestID" {
                continue;
            }
            return None;
        };
        let needle = format!("\"{key}\":\"{current}\"");
        let at = text.find(&needle)?;
        let start = at + key.len() + 4;
        cuts.push((start, start + current.len(), slot));
    }
    cuts.sort_by_key(|cut| cut.0);
    let mut pieces = Vec::new();
    let mut slots = Vec::new();
    let mut position = 0;
    for (start, end, slot) in cuts {
        pieces.push(text[position..start].to_owned());
        slots.push(slot);
        position = end;
    }
    pieces.push(text[position..].to_owned());
    Some(Template { pieces, slots })
}

/// SplitMix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn uuid(&mut self, out: &mut String) {
        let (high, low) = (self.next(), self.next());
        let text = format!("{high:016x}{low:016x}");
        out.push_str(&text[0..8]);
        out.push('-');
        out.push_str(&text[8..12]);
        out.push_str("-4");
        out.push_str(&text[13..16]);
        out.push('-');
        out.push(['8', '9', 'a', 'b'][(low & 3) as usize]);
        out.push_str(&text[17..20]);
        out.push('-');
        out.push_str(&text[20..32]);
    }
}

/// Writes file `index`; returns (records, gzipped bytes, raw bytes).
fn write_file(
    root: &Path,
    seed: u64,
    index: usize,
    templates: &[Template],
    cumulative: &[f64],
) -> Result<(u64, u64, u64)> {
    let mut rng = Rng::new(seed, index as u64);
    let file_start = START.unix_timestamp() + index as i64 * FILE_SECONDS;
    let count = RECORDS_PER_FILE.0 + rng.below(RECORDS_PER_FILE.1 - RECORDS_PER_FILE.0 + 1);
    let total_weight = cumulative.last().copied().unwrap_or(1.0);
    let mut offsets: Vec<i64> = (0..count)
        .map(|_| rng.below(FILE_SECONDS as u64) as i64)
        .collect();
    offsets.sort_unstable();
    let mut text = String::with_capacity(count as usize * 1500);
    text.push_str("{\"Records\":[");
    for (position, offset) in offsets.iter().enumerate() {
        if position > 0 {
            text.push(',');
        }
        let draw = rng.unit() * total_weight;
        let chosen = cumulative
            .partition_point(|&sum| sum <= draw)
            .min(templates.len() - 1);
        let template = &templates[chosen];
        for (piece, slot) in template.pieces.iter().zip(&template.slots) {
            text.push_str(piece);
            match slot {
                Slot::Time => text.push_str(&format_time(file_start + offset)),
                Slot::Uuid => rng.uuid(&mut text),
            }
        }
        if let Some(last) = template.pieces.last() {
            text.push_str(last);
        }
    }
    text.push_str("]}");
    let delivered = OffsetDateTime::from_unix_timestamp(file_start + FILE_SECONDS + 300)?;
    let folder = root.join(format!(
        "AWSLogs/{ACCOUNT}/CloudTrail/{REGION}/{:04}/{:02}/{:02}",
        delivered.year(),
        u8::from(delivered.month()),
        delivered.day()
    ));
    fs::create_dir_all(&folder)?;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let suffix: String = (0..16)
        .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len() as u64) as usize]))
        .collect();
    let name = format!(
        "{ACCOUNT}_CloudTrail_{REGION}_{:04}{:02}{:02}T{:02}{:02}Z_{suffix}.json.gz",
        delivered.year(),
        u8::from(delivered.month()),
        delivered.day(),
        delivered.hour(),
        delivered.minute()
    );
    let path = folder.join(name);
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = GzEncoder::new(BufWriter::new(file), Compression::default());
    encoder.write_all(text.as_bytes())?;
    let mut writer = encoder.finish()?;
    writer.flush()?;
    let gz = fs::metadata(&path)?.len();
    Ok((count, gz, text.len() as u64))
}

/// `2026-01-05T00:00:00Z`, as CloudTrail writes `eventTime`.
fn format_time(seconds: i64) -> String {
    trailgate_runbooks::timefmt::format_unix(seconds)
}
