//! Pushing a catalog (`PUT /catalog`) and reading its history (`GET /catalog/history`): who
//! may, what is checked before anything is stored, and the version record a push chains.

use super::with_retry;
use crate::catalog::{Catalog, Protected};
use crate::catalog_version::{
    CatalogVersion, HISTORY_LIMIT, HistoryCheck, MAX_DOCUMENT_BYTES, Publishers, check_history,
    document_sha256, next_version,
};
use crate::error::{Error, Result};
use crate::ledger::ChainKey;
use crate::ports::CatalogStore;
use crate::request::Caller;
use ::time::OffsetDateTime;

/// What the catalog function needs besides the store.
#[derive(Debug, Clone)]
pub struct CatalogAdmin {
    pub publishers: Publishers,
    /// What no entry may name: the same rules every function loads the catalog under.
    pub protected: Protected,
    pub key: ChainKey,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub version: CatalogVersion,
    /// `false` when the document is the current version's byte for byte: nothing was stored.
    pub created: bool,
}

/// Checks and stores `document` as the next version. Nothing is stored unless the caller is a
/// publisher and the document passes every rule `Catalog::load` applies at cold start.
pub async fn push_catalog(
    store: &impl CatalogStore,
    admin: &CatalogAdmin,
    caller: &Caller,
    document: &[u8],
    now: OffsetDateTime,
) -> Result<Pushed> {
    if admin.publishers.is_empty() {
        return Err(Error::forbidden(
            "nobody may push a catalog: the stack names no publishers (template parameter \
             CatalogPublishers)",
        ));
    }
    if !admin.publishers.allows(&caller.arn) {
        return Err(Error::forbidden(format!(
            "`{}` is not a catalog publisher (template parameter CatalogPublishers)",
            caller.arn
        )));
    }
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::too_large(format!(
            "the catalog is {} bytes; at most {MAX_DOCUMENT_BYTES} are accepted",
            document.len()
        )));
    }
    let text = std::str::from_utf8(document)
        .map_err(|_| Error::invalid("body", "the catalog is not UTF-8 text"))?;
    // The same loader as every function's cold start: what is stored, they can load.
    let catalog = Catalog::load_protected(text, &admin.protected)
        .map_err(|err| Error::invalid("catalog", err.message))?;
    let sha256 = document_sha256(document);
    with_retry(|| async {
        let latest = store.latest().await?;
        if let Some(latest) = latest.as_ref().filter(|latest| latest.sha256 == sha256) {
            return Ok(Pushed {
                version: latest.clone(),
                created: false,
            });
        }
        let version = next_version(
            latest.as_ref(),
            &catalog,
            document,
            caller,
            crate::time::format_utc(now),
            &admin.key,
        );
        store.publish(&version, document).await?;
        Ok(Pushed {
            version,
            created: true,
        })
    })
    .await
}

/// The version records, newest first, and whether their chain holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub versions: Vec<CatalogVersion>,
    pub check: HistoryCheck,
}

/// The history, for publishers and for anyone who approves an entry of `catalog` (the
/// catalog in force): the people whose decisions a change of the catalog redirects.
pub async fn catalog_history(
    store: &impl CatalogStore,
    admin: &CatalogAdmin,
    catalog: &Catalog,
    caller: &Caller,
) -> Result<History> {
    let approves = catalog.person_of(&caller.arn).is_some_and(|person| {
        catalog
            .entries
            .iter()
            .any(|entry| entry.approvers.iter().any(|a| a.id == person))
    });
    if !admin.publishers.allows(&caller.arn) && !approves {
        return Err(Error::forbidden(
            "the catalog's history is shown to its publishers and approvers",
        ));
    }
    let versions = store.history(HISTORY_LIMIT).await?;
    let check = check_history(&versions, &admin.key);
    Ok(History { versions, check })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::testing::{InMemoryCatalogStore, SAMPLE_ROLE, sample_catalog_json};
    use ::time::macros::datetime;

    const OPS: &str = "arn:aws:iam::123456789012:user/ops";

    fn admin() -> CatalogAdmin {
        CatalogAdmin {
            publishers: Publishers::parse(OPS).unwrap(),
            protected: Protected::own_roles("trailgate-"),
            key: ChainKey::new(vec![3u8; 32]).unwrap(),
        }
    }

    fn now() -> OffsetDateTime {
        datetime!(2026-12-06 10:00 UTC)
    }

    #[test]
    fn a_publisher_pushes_versions_and_a_repeat_stores_nothing() {
        futures_executor::executor::block_on(async {
            let store = InMemoryCatalogStore::default();
            let ops = Caller::from_arn(OPS);
            let doc = sample_catalog_json();
            let first = push_catalog(&store, &admin(), &ops, doc.as_bytes(), now())
                .await
                .unwrap();
            assert!(first.created);
            assert_eq!(first.version.version, 1);
            assert_eq!(first.version.pushed_by, OPS);
            assert_eq!(first.version.at, "2026-12-06T10:00:00Z");
            let again = push_catalog(&store, &admin(), &ops, doc.as_bytes(), now())
                .await
                .unwrap();
            assert!(!again.created);
            assert_eq!(again.version, first.version);
            let changed = format!("{doc}\n");
            let second = push_catalog(&store, &admin(), &ops, changed.as_bytes(), now())
                .await
                .unwrap();
            assert_eq!(second.version.version, 2);
            assert_eq!(second.version.prev_hash, first.version.hash);
            assert_eq!(store.document(2).unwrap(), changed.as_bytes());
        })
    }

    #[test]
    fn nothing_is_stored_for_a_stranger_or_a_broken_catalog() {
        futures_executor::executor::block_on(async {
            let store = InMemoryCatalogStore::default();
            let doc = sample_catalog_json();
            let stranger = Caller::from_arn("arn:aws:iam::123456789012:user/alice");
            let err = push_catalog(&store, &admin(), &stranger, doc.as_bytes(), now())
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::Forbidden);
            let nobody = CatalogAdmin {
                publishers: Publishers::default(),
                ..admin()
            };
            let err = push_catalog(
                &store,
                &nobody,
                &Caller::from_arn(OPS),
                doc.as_bytes(),
                now(),
            )
            .await
            .unwrap_err();
            assert!(err.message.contains("CatalogPublishers"), "{err:?}");
            // A rule of the loader: an entry pointing at trailgate's own role.
            let own = doc.replace(
                SAMPLE_ROLE,
                "arn:aws:iam::123456789012:role/trailgate-grant",
            );
            let err = push_catalog(
                &store,
                &admin(),
                &Caller::from_arn(OPS),
                own.as_bytes(),
                now(),
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidRequest);
            assert_eq!(err.field.as_deref(), Some("catalog"));
            assert!(err.message.contains("sandbox-admin"), "{err:?}");
            let err = push_catalog(&store, &admin(), &Caller::from_arn(OPS), b"{", now())
                .await
                .unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidRequest);
            let err = push_catalog(&store, &admin(), &Caller::from_arn(OPS), b"\xff\xfe", now())
                .await
                .unwrap_err();
            assert_eq!(err.field.as_deref(), Some("body"));
            assert!(store.latest().await.unwrap().is_none());
        })
    }

    #[test]
    fn a_lost_race_takes_the_next_number() {
        futures_executor::executor::block_on(async {
            let store = InMemoryCatalogStore::default();
            let ops = Caller::from_arn(OPS);
            let doc = sample_catalog_json();
            push_catalog(&store, &admin(), &ops, doc.as_bytes(), now())
                .await
                .unwrap();
            // Another push lands between this push's read and its write.
            store.race_once(format!("{doc} ").into_bytes(), admin().key);
            let pushed = push_catalog(&store, &admin(), &ops, format!("{doc}  ").as_bytes(), now())
                .await
                .unwrap();
            assert_eq!(pushed.version.version, 3);
            let history = catalog_history(
                &store,
                &admin(),
                &Catalog::load(&doc, "trailgate-").unwrap(),
                &ops,
            )
            .await
            .unwrap();
            assert_eq!(history.versions.len(), 3);
            assert!(history.check.intact, "{:?}", history.check);
        })
    }

    #[test]
    fn history_is_for_publishers_and_approvers() {
        futures_executor::executor::block_on(async {
            let store = InMemoryCatalogStore::default();
            let catalog = Catalog::load(&sample_catalog_json(), "trailgate-").unwrap();
            let approver = &catalog.entries[0].approvers[0].arn;
            assert!(
                catalog_history(
                    &store,
                    &admin(),
                    &catalog,
                    &Caller::from_arn(approver.clone())
                )
                .await
                .is_ok()
            );
            let err = catalog_history(
                &store,
                &admin(),
                &catalog,
                &Caller::from_arn("arn:aws:iam::123456789012:user/alice"),
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind, ErrorKind::Forbidden);
        })
    }
}
