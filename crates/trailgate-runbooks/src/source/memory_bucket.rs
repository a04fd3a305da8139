//! An S3 bucket in memory with ListObjectsV2's semantics (prefix, `/` delimiter, continuation
//! pages of ten keys), as an [`ObjectStore`]: for tests of code that scans a trail bucket, here
//! and in the crates above, without an S3 endpoint. The AWS store is tested against moto.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use super::s3::{ListPage, ListRequest, ObjectStore, ObjectWriter, StoreError};

/// Keys to object bodies (the bucket name of a call is not looked at: one bucket).
#[derive(Debug, Default)]
pub struct MemoryBucket {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
}

/// Keys and folders per list page: small, so pagination is exercised.
const PAGE: usize = 10;

impl MemoryBucket {
    /// Stores `body` at `key`, replacing what was there.
    pub fn put(&self, key: impl Into<String>, body: Vec<u8>) {
        self.objects().insert(key.into(), body);
    }

    /// The keys stored, in order.
    pub fn keys(&self) -> Vec<String> {
        self.objects().keys().cloned().collect()
    }

    fn objects(&self) -> MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.objects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ObjectWriter for MemoryBucket {
    fn put_object(
        &self,
        _bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.put(key, body);
        async { Ok(()) }
    }

    fn delete_object(
        &self,
        _bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.objects().remove(key);
        async { Ok(()) }
    }
}

impl ObjectStore for MemoryBucket {
    fn list(
        &self,
        request: ListRequest,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send {
        let start: usize = request
            .continuation
            .as_deref()
            .map_or(0, |token| token.parse().unwrap_or(0));
        // (is a folder, key or folder, size), in key order as S3 lists them.
        let mut entries: Vec<(bool, String, u64)> = Vec::new();
        let objects = self.objects();
        for (key, body) in objects.range(request.prefix.clone()..) {
            let Some(rest) = key.strip_prefix(&request.prefix) else {
                break;
            };
            match (&request.delimiter, rest.find('/')) {
                (Some(_), Some(at)) => {
                    let folder = format!("{}{}", request.prefix, &rest[..=at]);
                    if entries.last().map(|entry| &entry.1) != Some(&folder) {
                        entries.push((true, folder, 0));
                    }
                }
                _ => entries.push((false, key.clone(), body.len() as u64)),
            }
        }
        drop(objects);
        let page: Vec<_> = entries.iter().skip(start).take(PAGE).collect();
        let continuation = (start + PAGE < entries.len()).then(|| (start + PAGE).to_string());
        let result = Ok(ListPage {
            objects: page
                .iter()
                .filter(|entry| !entry.0)
                .map(|entry| (entry.1.clone(), entry.2))
                .collect(),
            common_prefixes: page
                .iter()
                .filter(|entry| entry.0)
                .map(|entry| entry.1.clone())
                .collect(),
            continuation,
        });
        async move { result }
    }

    fn get(
        &self,
        _bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send {
        let result = self
            .objects()
            .get(key)
            .cloned()
            .ok_or_else(|| StoreError(format!("NoSuchKey `{key}`")));
        async move { result }
    }
}
