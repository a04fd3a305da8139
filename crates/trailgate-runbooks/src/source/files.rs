//! Local CloudTrail files and folders: `.json` and `.json.gz`, S3 layout or one record per line.
//!
//! This is the crate's only I/O (std::fs and flate2). Folders are walked recursively in sorted
//! order so results are reproducible; digest and Insights files are skipped by name because they
//! are not management or data events. A bad file or record is counted and skipped, never fatal,
//! and a file that inflates past [`Limits::max_object_bytes`] (a gzip bomb) is refused whole.
//! With [`FileSource::threads`] above one, files are read in parallel ([`super::parallel`]).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::Source;
use super::split::{self, Item};
use crate::engine::Scan;
use crate::error::SourceError;
use crate::output::SkipReason;

/// CloudTrail events are at most 256 KB; anything far larger is not a CloudTrail record.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1024 * 1024;

/// The most one file or object may decompress to. CloudTrail's delivery files are tens of MB
/// uncompressed; a file that inflates past this (a gzip bomb: 10 KB can inflate to 10 MB, and
/// concatenated members to any size) is refused whole, so a reader's buffer stays under about
/// twice this cap (its geometric growth) whatever the file claims.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 512 * 1024 * 1024;

/// The size limits of a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Records larger than this (bytes, uncompressed) are skipped without being parsed.
    pub max_record_bytes: usize,
    /// Files or objects that decompress past this (bytes) are refused whole.
    pub max_object_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
        }
    }
}

/// How reading one file or object into memory ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inflated {
    /// Read whole.
    Whole,
    /// The stream broke; what came before is in the buffer.
    Broken,
    /// Past [`Limits::max_object_bytes`]: the buffer was emptied.
    TooLarge,
}

/// Reads `reader` (gunzipping every member when `gzipped`) into `out`, at most `cap` bytes.
pub fn inflate(reader: impl Read, gzipped: bool, cap: u64, out: &mut Vec<u8>) -> Inflated {
    out.clear();
    // One byte past the cap tells "exactly the cap" from "more".
    let limit = cap.saturating_add(1);
    let result = if gzipped {
        MultiGzDecoder::new(reader).take(limit).read_to_end(out)
    } else {
        reader.take(limit).read_to_end(out)
    };
    if out.len() as u64 > cap {
        out.clear();
        // A reused buffer must not keep the bomb's memory for the rest of the scan.
        out.shrink_to(64 * 1024 * 1024);
        return Inflated::TooLarge;
    }
    match result {
        Ok(_) => Inflated::Whole,
        Err(_) => Inflated::Broken,
    }
}

/// Files and folders on the local disk.
#[derive(Debug, Clone)]
pub struct FileSource {
    roots: Vec<PathBuf>,
    limits: Limits,
    threads: usize,
}

impl FileSource {
    /// A source over one file or folder.
    pub fn new(root: impl Into<PathBuf>) -> FileSource {
        FileSource {
            roots: vec![root.into()],
            limits: Limits::default(),
            threads: 1,
        }
    }

    /// A source over several files or folders.
    pub fn with_roots(roots: Vec<PathBuf>) -> FileSource {
        FileSource {
            roots,
            limits: Limits::default(),
            threads: 1,
        }
    }

    /// Records larger than this (in bytes, uncompressed) are skipped without being parsed.
    pub fn max_record_bytes(mut self, limit: usize) -> FileSource {
        self.limits.max_record_bytes = limit;
        self
    }

    /// Files that decompress past this (in bytes) are refused whole and counted
    /// (default [`DEFAULT_MAX_OBJECT_BYTES`]).
    pub fn max_object_bytes(mut self, limit: u64) -> FileSource {
        self.limits.max_object_bytes = limit;
        self
    }

    /// Reads files on this many threads (1, the default, reads them in order on the caller's
    /// thread; [`super::parallel::available_threads`] gives the machine's parallelism). The
    /// result is the same either way, except which keys a grouping keeps past its cap.
    pub fn threads(mut self, threads: usize) -> FileSource {
        self.threads = threads.max(1);
        self
    }

    /// The files this source reads, in reading order.
    pub fn files(&self) -> Result<Vec<PathBuf>, SourceError> {
        let mut files = Vec::new();
        for root in &self.roots {
            let metadata = std::fs::metadata(root).map_err(|source| SourceError::Path {
                path: root.clone(),
                source,
            })?;
            if metadata.is_dir() {
                walk(root, &mut files).map_err(|source| SourceError::Path {
                    path: root.clone(),
                    source,
                })?;
            } else {
                // A file named explicitly is read whatever its extension.
                files.push(root.clone());
            }
        }
        Ok(files)
    }
}

impl Source for FileSource {
    fn scan(&mut self, scan: &mut Scan<'_, '_>) -> Result<(), SourceError> {
        let files = self.files()?;
        if self.threads > 1 && files.len() > 1 {
            super::parallel::scan_files(&files, self.limits, self.threads, scan);
            return Ok(());
        }
        let mut buffer = Vec::new();
        for file in &files {
            read_file_with(file, self.limits, scan, &mut buffer);
        }
        Ok(())
    }
}

fn walk(folder: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(folder)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_not_events(&name) {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&path, files)?;
        } else if is_log_file(&name) {
            files.push(path);
        }
    }
    Ok(())
}

/// Digest and Insights folders and files (`CloudTrail-Digest`, `CloudTrail-Insight`).
fn is_not_events(name: &str) -> bool {
    name.contains("CloudTrail-Digest") || name.contains("CloudTrail-Insight")
}

fn is_log_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".json") || lower.ends_with(".json.gz")
}

/// Reads one file into the scan; problems are counted, never returned.
pub fn read_file(path: &Path, limits: Limits, scan: &mut Scan<'_, '_>) {
    read_file_with(path, limits, scan, &mut Vec::new());
}

/// [`read_file`] decompressing into `bytes`, a buffer reused across files (its contents are
/// replaced) so large files do not reallocate it every time.
pub fn read_file_with(path: &Path, limits: Limits, scan: &mut Scan<'_, '_>, bytes: &mut Vec<u8>) {
    bytes.clear();
    let file = match File::open(path) {
        Ok(file) => file,
        Err(_) => {
            scan.skip(SkipReason::UnreadableFile);
            return;
        }
    };
    let gzipped = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    scan.file_read();
    match inflate(file, gzipped, limits.max_object_bytes, bytes) {
        Inflated::Whole => {}
        // Whatever was decompressed before the error is still in `bytes`: keep those records.
        Inflated::Broken => scan.skip(if gzipped {
            SkipReason::CorruptGzip
        } else {
            SkipReason::UnreadableFile
        }),
        Inflated::TooLarge => {
            scan.skip(SkipReason::ObjectTooLarge);
            return;
        }
    }
    feed_bytes(bytes, limits.max_record_bytes, scan);
}

/// Splits and parses a file's (decompressed) bytes into the scan.
pub fn feed_bytes(bytes: &[u8], max_record_bytes: usize, scan: &mut Scan<'_, '_>) {
    split::split(bytes, max_record_bytes, &mut |item| match item {
        Item::Skip(reason) => scan.skip(reason),
        Item::Record(slice) => scan.record_bytes(slice),
        Item::Checked(slice, time) => scan.checked_record(slice, time),
    });
}
