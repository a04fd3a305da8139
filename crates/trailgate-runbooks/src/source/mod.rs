//! Where records come from: the [`Source`] trait, an in-memory source, local files and folders
//! ([`files`], read in parallel by [`parallel`]), LookupEvents through a caller-supplied API ([`lookup`]) and its record-keeping wrapper ([`recording`]), and trail objects in S3
//! through a caller-supplied object store ([`s3`]; [`memory_bucket`] is one in memory), split
//! over processes by [`distributed`].

pub mod distributed;
pub mod files;
pub mod lookup;
pub mod memory_bucket;
pub mod parallel;
pub mod recording;
pub mod s3;
mod split;

use serde_json::Value;

use crate::engine::Scan;
use crate::error::SourceError;

/// A synchronous source of CloudTrail records.
///
/// A source pushes records into the scan one at a time and reports what it could not read
/// ([`Scan::skip`]) and what it read ([`Scan::file_read`]); it returns an error only when it
/// cannot run at all.
pub trait Source {
    /// Feeds every record (that may fall in `scan.window()`) into `scan`.
    fn scan(&mut self, scan: &mut Scan<'_, '_>) -> Result<(), SourceError>;
}

/// Records already in memory (tests, or records fetched by other means).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    records: Vec<Value>,
}

impl MemorySource {
    /// A source over these records.
    pub fn new(records: Vec<Value>) -> MemorySource {
        MemorySource { records }
    }
}

impl Source for MemorySource {
    fn scan(&mut self, scan: &mut Scan<'_, '_>) -> Result<(), SourceError> {
        scan.file_read();
        for record in &self.records {
            scan.record(record);
        }
        Ok(())
    }
}
