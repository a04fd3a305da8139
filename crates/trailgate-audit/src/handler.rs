//! Translates the `Audit Session` step, which records the end-of-session report, `Audit Again`
//! (`"action": "reaudit"`), its second pass after CloudTrail's late deliveries, and the
//! `Export Ledger` step (`"action": "export"`), which writes a closed request's verified events
//! to the archive bucket.
//!
//! The report covers what the ledger knows (grant window, credentials issued, the verified event
//! chain) and what CloudTrail shows the session did in the target account (`trailgate-review`'s
//! [`audit_session`]): its LookupEvents, and the trail bucket when one is configured.

use serde::Deserialize;
use serde_json::{Value, json};
use trailgate_aws::LambdaError;
use trailgate_aws::s3::S3Store;
use trailgate_domain::error::Error;
use trailgate_domain::ports::{Archive, Ledger, Notifier};
use trailgate_domain::request::Status;
use trailgate_domain::service;
use trailgate_runbooks::source::lookup::AccountLookups;
use trailgate_runbooks::source::s3::ObjectStore;

use trailgate_review::session::{Settings, audit_session};
use trailgate_review::trail::TrailBucket;

#[derive(Deserialize)]
struct Input {
    request_id: String,
    /// `audit` (the default), `reaudit` (the second pass, `Audit Again`) or `export`.
    #[serde(default)]
    action: Option<String>,
}

/// What the handler needs, built once at cold start.
pub struct Deps<L, N, P, R, T = S3Store> {
    pub ledger: L,
    pub notifier: N,
    /// LookupEvents in the account the session acted in.
    pub lookups: P,
    /// The trail bucket, when one is configured (`TRAIL_BUCKET`): the data events.
    pub trail: Option<TrailBucket<T>>,
    pub archive: R,
    pub catalog: trailgate_aws::catalog::CatalogSource,
    pub settings: Settings,
}

pub async fn handle<
    L: Ledger,
    N: Notifier,
    P: AccountLookups + Sync,
    R: Archive,
    T: ObjectStore + Sync,
>(
    payload: Value,
    deps: &Deps<L, N, P, R, T>,
) -> Result<Value, LambdaError> {
    let (ledger, settings) = (&deps.ledger, &deps.settings);
    let input: Input = serde_json::from_value(payload)
        .map_err(|err| Error::internal(format!("bad Audit Session input: {err}")))?;
    let second_pass = match input.action.as_deref() {
        None | Some("audit") => false,
        Some("reaudit") => true,
        Some("export") => {
            let exported = service::export(ledger, &deps.archive, &input.request_id).await?;
            tracing::info!(request_id = %input.request_id, events = exported.events, key = %exported.key, "ledger exported");
            // `Closed?` routes on the status: DENIED, AUDITED, or an expired/cancelled end.
            return Ok(json!({ "status": exported.status.as_str(), "events": exported.events }));
        }
        Some(other) => {
            return Err(Error::internal(format!("unknown audit action `{other}`")).into());
        }
    };
    let request = ledger
        .get(&input.request_id)
        .await?
        .ok_or_else(|| Error::not_found(format!("request {} not found", input.request_id)))?;
    let now = time::OffsetDateTime::now_utc();
    // Only a REVOKED request gets analysed by the first pass, and only an AUDITED one whose
    // report is not final by the second; the use cases decide what the others get (the stored
    // report, or a Conflict), so a retried step does not scan CloudTrail again.
    let due = if second_pass {
        request.awaits_second_audit()
    } else {
        request.status == Status::Revoked
    };
    let cloudtrail = if due {
        audit_session(&deps.lookups, deps.trail.as_ref(), settings, &request, now).await
    } else {
        json!({"analysed": false, "reason": "not due"})
    };
    let catalog = deps.catalog.current().await;
    let report = if second_pass {
        service::reaudit(
            ledger,
            &deps.notifier,
            &catalog,
            &input.request_id,
            cloudtrail,
            now,
        )
        .await?
    } else {
        service::audit(
            ledger,
            &deps.notifier,
            &catalog,
            &input.request_id,
            cloudtrail,
            now,
        )
        .await?
    };
    // Small on purpose: the report lives in the ledger, not in the execution's state.
    Ok(json!({
        "credentials_issued": report["credentials_issued"],
        "ledger_chain_verified": report["ledger_chain_verified"],
        "complete": report["cloudtrail"]["coverage"]["complete"],
        "final": report["final"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use trailgate_domain::catalog::Catalog;
    use trailgate_domain::testing::*;
    use trailgate_runbooks::source::lookup::{
        LookupCallError, LookupEvent, LookupEventsApi, LookupPage, LookupRequest, OneAccount,
    };

    /// LookupEvents answering `Username` = the session name with fixed records.
    #[derive(Clone)]
    struct FakeApi {
        records: Vec<Value>,
        fail: bool,
    }

    impl LookupEventsApi for FakeApi {
        async fn lookup(&self, request: LookupRequest) -> Result<LookupPage, LookupCallError> {
            if self.fail {
                return Err(LookupCallError::Failed("AccessDeniedException".into()));
            }
            let events = self
                .records
                .iter()
                .filter(|r| {
                    r["userIdentity"]["arn"]
                        .as_str()
                        .is_some_and(|arn| arn.ends_with(&format!("/{}", request.value)))
                })
                .map(|r| LookupEvent {
                    event_id: r["eventID"].as_str().map(str::to_owned),
                    cloud_trail_event: Some(r.to_string()),
                })
                .collect();
            Ok(LookupPage {
                events,
                next_token: None,
            })
        }

        async fn sleep(&self, _duration: Duration) {}
    }

    /// The handler's dependencies around `ledger` and `api`, with the sample catalog.
    fn deps(
        ledger: MemoryLedger,
        api: FakeApi,
    ) -> Deps<MemoryLedger, MemoryNotifier, OneAccount<FakeApi>, MemoryArchive> {
        Deps {
            ledger,
            notifier: MemoryNotifier::default(),
            lookups: OneAccount(api),
            trail: None,
            archive: MemoryArchive::default(),
            catalog: trailgate_aws::catalog::CatalogSource::fixed(
                Catalog::load(&sample_catalog_json(), "trailgate-").unwrap(),
            ),
            settings: settings(),
        }
    }

    fn settings() -> Settings {
        Settings {
            regions: vec!["us-east-1".into()],
            budget: Duration::from_secs(5),
        }
    }

    fn session_call(i: u32, session: &str, id: &str, name: &str, read_only: bool) -> Value {
        json!({
            "eventID": format!("e{i}"),
            "eventTime": trailgate_domain::time::format_utc(time::OffsetDateTime::now_utc() - time::Duration::seconds(30)),
            "eventName": name,
            "eventSource": "s3.amazonaws.com",
            "readOnly": read_only,
            "requestParameters": {"bucketName": "team-data"},
            "userIdentity": {
                "type": "AssumedRole",
                "principalId": format!("AROAEXAMPLE:{session}"),
                "arn": format!("arn:aws:sts::123456789012:assumed-role/sandbox/{session}"),
                "sessionContext": {"sourceIdentity": "alice"},
            },
            "x": id,
        })
    }

    fn quiet_api() -> FakeApi {
        FakeApi {
            records: Vec::new(),
            fail: false,
        }
    }

    #[tokio::test]
    async fn only_revoked_requests_are_audited() {
        let deps_pending = deps(MemoryLedger::default(), quiet_api());
        let id = seed(&deps_pending.ledger, pending_request()).id;
        let err = handle(json!({"request_id": id}), &deps_pending)
            .await
            .unwrap_err();
        assert_eq!(err.0.kind.name(), "Conflict");
        assert!(deps_pending.notifier.sent.lock().unwrap().is_empty());

        let revoked = deps(MemoryLedger::default(), quiet_api());
        let mut request = pending_request();
        request.status = Status::Revoked;
        let id = seed(&revoked.ledger, request).id;
        let out = handle(json!({"request_id": id}), &revoked).await.unwrap();
        assert_eq!(out["ledger_chain_verified"], true);
        assert_eq!(revoked.ledger.record(&id).unwrap().status, Status::Audited);
        // The approvers (bob and carol) get the report.
        assert_eq!(revoked.notifier.sent.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn the_export_action_archives_a_closed_request_and_names_its_status() {
        let deps = deps(MemoryLedger::default(), quiet_api());
        let mut request = pending_request();
        request.status = Status::Revoked;
        let id = seed(&deps.ledger, request).id;
        // REVOKED is not closed yet: the audit comes first.
        let err = handle(json!({"request_id": id, "action": "export"}), &deps)
            .await
            .unwrap_err();
        assert_eq!(err.0.kind.name(), "Conflict");
        handle(json!({"request_id": id}), &deps).await.unwrap();
        let out = handle(json!({"request_id": id, "action": "export"}), &deps)
            .await
            .unwrap();
        assert_eq!(out, json!({"status": "AUDITED", "events": 2}));
        let objects = deps.archive.objects.lock().unwrap().clone();
        let body = &objects[&format!("requests/{id}.ndjson")];
        assert_eq!(body.lines().count(), 2);
        let err = handle(json!({"request_id": id, "action": "nonsense"}), &deps)
            .await
            .unwrap_err();
        assert_eq!(err.0.kind.name(), "Internal");
    }

    #[tokio::test]
    async fn the_report_names_what_the_session_did() {
        let mut request = pending_request();
        request.status = Status::Revoked;
        request.requester_identity = "alice".into();
        let session = service::session_name(&request);
        let id = request.id.clone();
        let api = FakeApi {
            records: vec![
                session_call(1, &session, &id, "ListObjects", true),
                session_call(2, &session, &id, "PutObject", false),
                // Another request's session of the same requester: not this audit's business.
                session_call(3, "tg-alice-r-other", "r-other", "DeleteBucket", false),
            ],
            fail: false,
        };
        let audited = deps(MemoryLedger::default(), api);
        seed(&audited.ledger, request);
        handle(json!({"request_id": id}), &audited).await.unwrap();
        let report = audited.ledger.record(&id).unwrap().audit.unwrap();
        let cloudtrail = &report["cloudtrail"];
        assert_eq!(cloudtrail["analysed"], true, "{cloudtrail}");
        assert_eq!(cloudtrail["events"], 2);
        assert_eq!(cloudtrail["reads"], 1);
        assert_eq!(cloudtrail["writes"], 1);
        assert_eq!(cloudtrail["resources"], json!(["s3:team-data"]));
        // Actions as IAM names them (ListObjects is s3:ListBucket), scoped where the record names
        // the resource (the bucket; PutObject's record names no key, so its object is `*`).
        assert_eq!(
            cloudtrail["suggested_policy"]["Statement"],
            json!([
                {"Sid": "Useds3", "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::team-data"]},
                {"Sid": "Useds32", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "*"},
            ])
        );
        // The other session's DeleteBucket is not this session's incident.
        assert_eq!(cloudtrail["incident_findings"], json!([]));
        let sent = audited.notifier.sent.lock().unwrap().clone();
        assert!(
            sent[0].2.contains("s3: ListObjects x1, PutObject x1"),
            "{}",
            sent[0].2
        );

        let mut request = pending_request();
        request.status = Status::Revoked;
        let failing = FakeApi {
            records: Vec::new(),
            fail: true,
        };
        let unanalysed = deps(MemoryLedger::default(), failing);
        let id = seed(&unanalysed.ledger, request).id;
        handle(json!({"request_id": id}), &unanalysed)
            .await
            .unwrap();
        let report = unanalysed.ledger.record(&id).unwrap().audit.unwrap();
        assert_eq!(report["cloudtrail"]["analysed"], false);
        assert!(
            report["cloudtrail"]["reason"]
                .as_str()
                .unwrap()
                .contains("AccessDeniedException")
        );
        // The e-mail says so rather than implying the session was quiet.
        let sent = unanalysed.notifier.sent.lock().unwrap().clone();
        assert!(
            sent[0].2.contains("CloudTrail: not analysed"),
            "{}",
            sent[0].2
        );
    }
}
