//! The pushed catalog on DynamoDB (`CatalogTable`) and the copy each function runs with.
//!
//! Items: `pk = CATALOG`, `sk = HEAD` (the current version: `version`, `record`, `doc`) and
//! `sk = V#<20-digit version>` (every version: `version`, `record`, `doc`). `doc` is the
//! document as pushed, gzipped; `record` is the [`CatalogVersion`] as JSON. A push is one
//! transaction: the version item only if it does not exist, HEAD only if it still holds the
//! version before. Readers need one `GetItem` on HEAD.
//!
//! [`CatalogSource`] is what the functions hold: the catalog read at cold start (HEAD, or the
//! template's `CATALOG` before the first push) and read again when it is older than
//! `CATALOG_REFRESH_SECONDS`, so a push reaches every warm function within that time. A stored
//! version is used only if its record carries the chain key's MAC ([`CatalogSource::sealed_by`])
//! and its document matches the record's SHA-256: whoever could write the table still could not
//! hand the functions a catalog the catalog function did not store.

use crate::config::{self, ConfigError};
use crate::errors::classify;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use trailgate_domain::catalog::{Catalog, Protected};
use trailgate_domain::catalog_version::{CatalogVersion, TEMPLATE_VERSION};
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ledger::ChainKey;
use trailgate_domain::ports::CatalogStore;
use trailgate_domain::service::STALE;

const PK: &str = "CATALOG";
const HEAD: &str = "HEAD";

/// The largest gzipped document stored: a DynamoDB item holds 400 KB, record included.
pub const MAX_STORED_BYTES: usize = 380 * 1024;

/// A catalog document is at most this big once inflated: a stored document was at most
/// `trailgate_domain::catalog_version::MAX_DOCUMENT_BYTES` when pushed, so anything bigger is
/// not one of ours.
const MAX_INFLATED_BYTES: u64 = trailgate_domain::catalog_version::MAX_DOCUMENT_BYTES as u64;

fn version_key(version: u64) -> String {
    format!("V#{version:020}")
}

fn gzip(document: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    encoder.write_all(document).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|err| Error::internal(format!("the stored catalog is not gzip: {err}")))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(Error::internal(
            "the stored catalog inflates past its limit",
        ));
    }
    Ok(out)
}

/// A stored catalog item, decoded.
struct Stored {
    record: CatalogVersion,
    doc: Option<Vec<u8>>,
}

fn decode(item: &HashMap<String, AttributeValue>) -> Result<Stored> {
    let record = item
        .get("record")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| Error::internal("a catalog item has no record"))?;
    let record: CatalogVersion = serde_json::from_str(record)
        .map_err(|err| Error::internal(format!("a catalog record is not valid: {err}")))?;
    let doc = match item.get("doc").and_then(|v| v.as_b().ok()) {
        Some(blob) => Some(gunzip(blob.as_ref())?),
        None => None,
    };
    Ok(Stored { record, doc })
}

/// `CatalogTable`, as the catalog function writes and reads it.
#[derive(Clone, Debug)]
pub struct DynamoCatalog {
    client: Client,
    table: String,
}

impl DynamoCatalog {
    pub fn new(client: Client, table: String) -> DynamoCatalog {
        DynamoCatalog { client, table }
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: String) -> DynamoCatalog {
        DynamoCatalog::new(Client::new(sdk), table)
    }

    /// HEAD's attributes in `projection`.
    async fn get_head(&self, projection: &str) -> Result<Option<HashMap<String, AttributeValue>>> {
        let mut get = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(PK.into()))
            .key("sk", AttributeValue::S(HEAD.into()))
            .projection_expression(projection)
            .consistent_read(true);
        // `record` is a DynamoDB reserved word; an alias the projection does not use is an error.
        if projection.contains("#r") {
            get = get.expression_attribute_names("#r", "record");
        }
        Ok(get
            .send()
            .await
            .map_err(|e| classify("DynamoDB GetItem (catalog)", &e))?
            .item)
    }

    /// HEAD, with its document when `with_doc`.
    async fn head(&self, with_doc: bool) -> Result<Option<Stored>> {
        let projection = if with_doc {
            "version, #r, doc"
        } else {
            "version, #r"
        };
        self.get_head(projection)
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// The current version's number only (cheap: the refresh check).
    async fn head_version(&self) -> Result<Option<u64>> {
        Ok(self
            .get_head("version")
            .await?
            .as_ref()
            .and_then(|item| item.get("version"))
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok()))
    }

    fn item(
        &self,
        sk: String,
        record: &CatalogVersion,
        version: u64,
        doc: &[u8],
    ) -> Result<HashMap<String, AttributeValue>> {
        let record = serde_json::to_string(record)
            .map_err(|err| Error::internal(format!("catalog record: {err}")))?;
        Ok(HashMap::from([
            ("pk".to_owned(), AttributeValue::S(PK.into())),
            ("sk".to_owned(), AttributeValue::S(sk)),
            ("version".to_owned(), AttributeValue::N(version.to_string())),
            ("record".to_owned(), AttributeValue::S(record)),
            (
                "doc".to_owned(),
                AttributeValue::B(aws_smithy_types::Blob::new(doc.to_vec())),
            ),
        ]))
    }
}

impl CatalogStore for DynamoCatalog {
    async fn latest(&self) -> Result<Option<CatalogVersion>> {
        Ok(self.head(false).await?.map(|stored| stored.record))
    }

    async fn publish(&self, version: &CatalogVersion, document: &[u8]) -> Result<()> {
        let doc = gzip(document);
        if doc.len() > MAX_STORED_BYTES {
            return Err(Error::too_large(format!(
                "the catalog is {} bytes gzipped; CatalogTable holds at most {MAX_STORED_BYTES}",
                doc.len()
            )));
        }
        let version_item =
            self.item(version_key(version.version), version, version.version, &doc)?;
        let head_item = self.item(HEAD.into(), version, version.version, &doc)?;
        let build =
            |put: aws_sdk_dynamodb::types::builders::PutBuilder| -> Result<TransactWriteItem> {
                Ok(TransactWriteItem::builder()
                    .put(
                        put.build()
                            .map_err(|err| Error::internal(format!("catalog put: {err}")))?,
                    )
                    .build())
            };
        let version_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(version_item))
            .condition_expression("attribute_not_exists(pk)");
        let head_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(head_item));
        let head_put = if version.version == TEMPLATE_VERSION + 1 {
            head_put.condition_expression("attribute_not_exists(pk)")
        } else {
            head_put
                .condition_expression("version = :previous")
                .expression_attribute_values(
                    ":previous",
                    AttributeValue::N((version.version - 1).to_string()),
                )
        };
        let result = self
            .client
            .transact_write_items()
            .transact_items(build(version_put)?)
            .transact_items(build(head_put)?)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                let lost_race = err.as_service_error().is_some_and(|service| match service {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e) => {
                        e.cancellation_reasons().iter().any(|reason| reason.code() == Some("ConditionalCheckFailed"))
                    }
                    _ => false,
                });
                if lost_race {
                    Err(Error::conflict(STALE))
                } else {
                    Err(classify("DynamoDB TransactWriteItems (catalog)", &err))
                }
            }
        }
    }

    async fn history(&self, limit: usize) -> Result<Vec<CatalogVersion>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :v)")
            .expression_attribute_values(":pk", AttributeValue::S(PK.into()))
            .expression_attribute_values(":v", AttributeValue::S("V#".into()))
            .projection_expression("version, #r")
            .expression_attribute_names("#r", "record")
            .scan_index_forward(false)
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("DynamoDB Query (catalog history)", &e))?;
        out.items()
            .iter()
            .map(|item| decode(item).map(|stored| stored.record))
            .collect()
    }
}

/// The catalog a function runs with, and where it comes from.
#[derive(Clone)]
pub struct CatalogSource {
    inner: Arc<Inner>,
}

struct Inner {
    origin: Origin,
    snapshot: Mutex<Snapshot>,
    /// The chain key every stored version's record must be sealed with ([`CatalogSource::sealed_by`]).
    key: OnceLock<ChainKey>,
}

enum Origin {
    /// A catalog given once (tests; a deployment without `CATALOG_TABLE`).
    Fixed,
    Table {
        table: DynamoCatalog,
        refresh: Duration,
        protected: Protected,
    },
}

#[derive(Clone)]
struct Snapshot {
    catalog: Arc<Catalog>,
    version: u64,
    /// The stored version's record (`None`: the template's catalog).
    record: Option<CatalogVersion>,
    checked: Instant,
}

impl std::fmt::Debug for CatalogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogSource")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl CatalogSource {
    /// Always `catalog`, never read again.
    pub fn fixed(catalog: Catalog) -> CatalogSource {
        CatalogSource {
            inner: Arc::new(Inner {
                origin: Origin::Fixed,
                snapshot: Mutex::new(Snapshot {
                    catalog: Arc::new(catalog),
                    version: TEMPLATE_VERSION,
                    record: None,
                    checked: Instant::now(),
                }),
                key: OnceLock::new(),
            }),
        }
    }

    /// The catalog at cold start, with what is never requestable ([`config::protected`]): the
    /// current version in `CATALOG_TABLE`, or the template's `CATALOG` before the first push
    /// (and where no table is configured). A stored catalog that does not load fails the
    /// cold start, as a broken `CATALOG` does.
    pub async fn from_env(
        sdk: &aws_config::SdkConfig,
    ) -> std::result::Result<(CatalogSource, Protected), Box<dyn std::error::Error + Send + Sync>>
    {
        let protected = config::protected()?;
        let table = config::optional("CATALOG_TABLE", "");
        if table.is_empty() {
            return Ok((
                CatalogSource::fixed(config::template_catalog(&protected)?),
                protected,
            ));
        }
        let refresh = config::seconds("CATALOG_REFRESH_SECONDS", 60)?;
        let table = DynamoCatalog::from_sdk(sdk, table);
        let (catalog, version, record) = match table.head(true).await? {
            Some(stored) => {
                let catalog =
                    load_stored(&stored, &protected).map_err(|err| ConfigError::Invalid {
                        name: "CATALOG_TABLE",
                        reason: err.message,
                    })?;
                (catalog, stored.record.version, Some(stored.record))
            }
            None => (
                config::template_catalog(&protected)?,
                TEMPLATE_VERSION,
                None,
            ),
        };
        let source = CatalogSource {
            inner: Arc::new(Inner {
                origin: Origin::Table {
                    table,
                    refresh: Duration::from_secs(refresh.whole_seconds().unsigned_abs()),
                    protected: protected.clone(),
                },
                snapshot: Mutex::new(Snapshot {
                    catalog: Arc::new(catalog),
                    version,
                    record,
                    checked: Instant::now(),
                }),
                key: OnceLock::new(),
            }),
        };
        Ok((source, protected))
    }

    fn snapshot(&self) -> Snapshot {
        self.inner
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn store(&self, snapshot: Snapshot) {
        *self
            .inner
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = snapshot;
    }

    /// Requires every stored version to be sealed with `key` (the ledger's chain key, which the
    /// catalog function seals each record with): the version read at cold start is checked now,
    /// and a refresh never takes one that is not. Called once, after the key is read (the two
    /// reads run at once during init).
    pub fn sealed_by(&self, key: &ChainKey) -> std::result::Result<(), ConfigError> {
        let snapshot = self.snapshot();
        if let Some(record) = &snapshot.record
            && !record.hash_is_valid(key)
        {
            return Err(ConfigError::Invalid {
                name: "CATALOG_TABLE",
                reason: format!(
                    "catalog version {} is not sealed with the chain key: the catalog function did not store it",
                    record.version
                ),
            });
        }
        let _ = self.inner.key.set(key.clone());
        Ok(())
    }

    /// The version in use (0: the template's).
    pub fn version(&self) -> u64 {
        self.snapshot().version
    }

    /// The catalog to decide with now: the copy in hand while it is fresh, else the current
    /// version, read again. A read that fails keeps the copy in hand (and tries again next
    /// time); a stored version that does not load is logged and skipped, never used.
    pub async fn current(&self) -> Arc<Catalog> {
        let snapshot = self.snapshot();
        let Origin::Table {
            table,
            refresh,
            protected,
        } = &self.inner.origin
        else {
            return snapshot.catalog;
        };
        if snapshot.checked.elapsed() < *refresh {
            return snapshot.catalog;
        }
        match table.head_version().await {
            Ok(version) if version.unwrap_or(TEMPLATE_VERSION) == snapshot.version => {
                self.store(Snapshot {
                    checked: Instant::now(),
                    ..snapshot.clone()
                });
                return snapshot.catalog;
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(error = %err.message, "reading the catalog version failed; using the copy in hand");
                return snapshot.catalog;
            }
        }
        let loaded = match table.head(true).await {
            Ok(Some(stored)) => match self.inner.key.get() {
                Some(key) if !stored.record.hash_is_valid(key) => Err(Error::internal(format!(
                    "catalog version {} is not sealed with the chain key",
                    stored.record.version
                ))),
                _ => load_stored(&stored, protected).map(|c| (c, stored.record)),
            },
            // HEAD gone: nobody can delete it (CatalogTable's policy); keep what we have.
            Ok(None) => Err(Error::internal("the catalog table has no current version")),
            Err(err) => {
                tracing::warn!(error = %err.message, "reading the catalog failed; using the copy in hand");
                return snapshot.catalog;
            }
        };
        match loaded {
            Ok((catalog, record)) => {
                tracing::info!(
                    from = snapshot.version,
                    to = record.version,
                    "catalog version changed"
                );
                let catalog = Arc::new(catalog);
                self.store(Snapshot {
                    catalog: catalog.clone(),
                    version: record.version,
                    record: Some(record),
                    checked: Instant::now(),
                });
                catalog
            }
            Err(err) => {
                tracing::error!(error = %err.message, "the current catalog does not load; keeping the copy in hand");
                self.store(Snapshot {
                    checked: Instant::now(),
                    ..snapshot.clone()
                });
                snapshot.catalog
            }
        }
    }
}

fn load_stored(stored: &Stored, protected: &Protected) -> Result<Catalog> {
    let doc = stored
        .doc
        .as_deref()
        .ok_or_else(|| Error::internal("the current catalog item has no document"))?;
    if trailgate_domain::catalog_version::document_sha256(doc) != stored.record.sha256 {
        return Err(Error::internal(format!(
            "catalog version {} does not match its recorded SHA-256",
            stored.record.version
        )));
    }
    let text =
        std::str::from_utf8(doc).map_err(|_| Error::internal("the stored catalog is not UTF-8"))?;
    Catalog::load_protected(text, protected).map_err(|err| {
        Error::internal(format!(
            "catalog version {}: {}",
            stored.record.version, err.message
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_round_trip_and_bombs_are_refused() {
        let doc = br#"{"entries":[]}"#.repeat(100);
        assert_eq!(gunzip(&gzip(&doc)).unwrap(), doc);
        let bomb = gzip(&vec![b' '; MAX_INFLATED_BYTES as usize + 10]);
        assert!(gunzip(&bomb).unwrap_err().message.contains("limit"));
        assert!(gunzip(b"not gzip").is_err());
    }

    #[test]
    fn version_keys_sort_as_numbers() {
        assert!(version_key(9) < version_key(10));
        assert_eq!(version_key(42), "V#00000000000000000042");
    }
}
