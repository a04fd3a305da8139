//! The ledger on DynamoDB.
//!
//! One item per request (`pk = REQ#<id>`, `sk = META`) holding the record as JSON in `doc`,
//! with `status`, `expires_at`, `requester` and `event_seq` copied out as attributes for
//! conditions and the `ByStatus` index; one item per event (`sk = EVT#<seq>`).
//! A change is one `TransactWriteItems`: the record only if `event_seq` is still what was read,
//! the event only if it does not exist. Either both land or neither does. The adapter holds the
//! chain key (`CHAIN_KEY_SECRET_ARN`, read at cold start) that the domain seals events with,
//! and refuses a change that was not sealed.
//! The request policy keeps two small item kinds beside the requests, both purged by TTL
//! (`purge_at`): rate counters (`pk = RATE#<requester>`, `sk = <window>`) and idempotency keys
//! (`pk = IDEM#<scope>`, `sk = IDEM`). Neither carries `status`, `requester` or
//! `created_at`, so neither index sees them. Open claims (`pk = OPEN#<key>`, `sk = OPEN`,
//! `request_id`) are written in the transaction that creates a request; they are never
//! purged (one small item per requester and role).

use crate::errors::classify;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use base64::Engine;
use std::collections::HashMap;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ledger::{ChainKey, Change, ClaimExpect, Event, OpenClaim};
use trailgate_domain::ports::{IdempotencyRecord, Ledger, RequestPage};
use trailgate_domain::request::{AccessRequest, Status};
use trailgate_domain::service::STALE;

/// The DynamoDB ledger.
#[derive(Clone, Debug)]
pub struct DynamoLedger {
    client: Client,
    table: String,
    key: ChainKey,
}

const STATUS_INDEX: &str = "ByStatus";
const REQUESTER_INDEX: &str = "ByRequester";
const CLOSED_INDEX: &str = "ByClosedDay";

/// The `GET /requests` page token: the last request's key on `ByRequester`, as base64url
/// JSON. The requester is never in it (it is always the caller), so a token cannot widen a
/// query to someone else's requests.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PageToken {
    id: String,
    created_at: String,
}

fn bad_token() -> Error {
    Error::invalid("next", "`next` is not a page token from this API")
}

fn decode_token(token: &str) -> Result<PageToken> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad_token())?;
    let token: PageToken = serde_json::from_slice(&bytes).map_err(|_| bad_token())?;
    if !trailgate_domain::request::is_request_id(&token.id) || token.created_at.len() > 64 {
        return Err(bad_token());
    }
    Ok(token)
}

fn encode_token(record: &AccessRequest) -> Result<String> {
    let json = serde_json::to_vec(&PageToken {
        id: record.id.clone(),
        created_at: record.created_at.clone(),
    })
    .map_err(|err| Error::internal(err.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn pk(id: &str) -> String {
    format!("REQ#{id}")
}

impl DynamoLedger {
    /// The ledger every function uses, configured at cold start: the table from
    /// `LEDGER_TABLE`, the chain key from the secret `CHAIN_KEY_SECRET_ARN` names.
    pub async fn from_env(
        sdk: &aws_config::SdkConfig,
    ) -> std::result::Result<DynamoLedger, Box<dyn std::error::Error + Send + Sync>> {
        let table = crate::config::required("LEDGER_TABLE")?;
        let key = crate::secrets::chain_key_from_sdk(
            sdk,
            &crate::config::required("CHAIN_KEY_SECRET_ARN")?,
        )
        .await?;
        Ok(DynamoLedger::from_sdk(sdk, table, key))
    }

    /// The ledger on `table`, with a client from the shared SDK configuration.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: String, key: ChainKey) -> DynamoLedger {
        DynamoLedger::new(Client::new(sdk), table, key)
    }

    pub fn new(client: Client, table: String, key: ChainKey) -> DynamoLedger {
        DynamoLedger { client, table, key }
    }

    fn record_item(record: &AccessRequest) -> Result<HashMap<String, AttributeValue>> {
        let doc = serde_json::to_string(record).map_err(|err| Error::internal(err.to_string()))?;
        let mut item = HashMap::from([
            ("pk".to_owned(), s(pk(&record.id))),
            ("sk".to_owned(), s("META")),
            ("doc".to_owned(), s(doc)),
            ("status".to_owned(), s(record.status.as_str())),
            ("requester".to_owned(), s(&record.requester)),
            ("created_at".to_owned(), s(&record.created_at)),
            (
                "event_seq".to_owned(),
                AttributeValue::N(record.event_seq.to_string()),
            ),
        ]);
        if let Some(expires_at) = &record.expires_at {
            item.insert("expires_at".to_owned(), s(expires_at));
        }
        // The day the record closed (`updated_at`'s date), for the export sweep's index.
        if trailgate_domain::service::is_closed(record.status)
            && let Some(day) = record.updated_at.get(..10)
        {
            item.insert("closed_day".to_owned(), s(day));
        }
        Ok(item)
    }

    fn event_item(event: &Event) -> Result<HashMap<String, AttributeValue>> {
        let doc = serde_json::to_string(event).map_err(|err| Error::internal(err.to_string()))?;
        Ok(HashMap::from([
            ("pk".to_owned(), s(pk(&event.request_id))),
            ("sk".to_owned(), s(format!("EVT#{:06}", event.seq))),
            ("doc".to_owned(), s(doc)),
        ]))
    }

    /// The claim write of a new request, conditional on what the claim must still hold.
    fn claim_put(
        &self,
        claim: &OpenClaim,
        request_id: &str,
    ) -> aws_sdk_dynamodb::types::builders::PutBuilder {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(HashMap::from([
                ("pk".to_owned(), s(format!("OPEN#{}", claim.key))),
                ("sk".to_owned(), s("OPEN")),
                ("request_id".to_owned(), s(request_id)),
            ])));
        match &claim.expect {
            ClaimExpect::Any => put,
            ClaimExpect::Vacant => put.condition_expression("attribute_not_exists(pk)"),
            ClaimExpect::HeldBy(holder) => put
                .condition_expression("request_id = :holder")
                .expression_attribute_values(":holder", s(holder)),
        }
    }
}

/// Runs a query to its last page and parses every item's `doc`. `query` is the prepared
/// request (table, index, conditions); only the start key changes between pages.
async fn query_all<T: serde::de::DeserializeOwned>(
    query: QueryFluentBuilder,
    what: &str,
) -> Result<Vec<T>> {
    let mut found = Vec::new();
    let mut start = None;
    loop {
        let output = query
            .clone()
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|err| classify(what, &err))?;
        for item in output.items() {
            found.push(parse_doc(item)?);
        }
        match output.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(found),
        }
    }
}

fn parse_doc<T: serde::de::DeserializeOwned>(item: &HashMap<String, AttributeValue>) -> Result<T> {
    let doc = item
        .get("doc")
        .and_then(|value| value.as_s().ok())
        .ok_or_else(|| Error::internal("a ledger item has no `doc`"))?;
    serde_json::from_str(doc)
        .map_err(|err| Error::internal(format!("a ledger item is corrupt: {err}")))
}

/// The request record and its events, read without the chain key: for `jitctl verify`, which
/// may not be allowed to read the key and never writes.
#[derive(Clone, Debug)]
pub struct LedgerReader {
    client: Client,
    table: String,
}

impl LedgerReader {
    /// The ledger table `LEDGER_TABLE`, for reading only (the events function).
    pub fn from_env(
        sdk: &aws_config::SdkConfig,
    ) -> std::result::Result<LedgerReader, crate::config::ConfigError> {
        Ok(LedgerReader::from_sdk(
            sdk,
            crate::config::required("LEDGER_TABLE")?,
        ))
    }

    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: String) -> LedgerReader {
        LedgerReader {
            client: Client::new(sdk),
            table,
        }
    }

    pub async fn get(&self, id: &str) -> Result<Option<AccessRequest>> {
        get_record(&self.client, &self.table, id).await
    }

    pub async fn events(&self, id: &str) -> Result<Vec<Event>> {
        query_events(&self.client, &self.table, id).await
    }

    /// The requests whose last change closed them on `day` (`YYYY-MM-DD`, UTC).
    pub async fn closed_on(&self, day: &str) -> Result<Vec<AccessRequest>> {
        query_closed_on(&self.client, &self.table, day).await
    }
}

impl trailgate_domain::ports::RecordReader for LedgerReader {
    async fn record(&self, id: &str) -> Result<Option<AccessRequest>> {
        get_record(&self.client, &self.table, id).await
    }
}

async fn query_closed_on(client: &Client, table: &str, day: &str) -> Result<Vec<AccessRequest>> {
    let query = client
        .query()
        .table_name(table)
        .index_name(CLOSED_INDEX)
        .key_condition_expression("closed_day = :day")
        .expression_attribute_values(":day", s(day));
    query_all(query, "DynamoDB Query ByClosedDay").await
}

async fn get_record(client: &Client, table: &str, id: &str) -> Result<Option<AccessRequest>> {
    let output = client
        .get_item()
        .table_name(table)
        .key("pk", s(pk(id)))
        .key("sk", s("META"))
        .consistent_read(true)
        .send()
        .await
        .map_err(|err| classify("DynamoDB GetItem", &err))?;
    output.item.as_ref().map(parse_doc).transpose()
}

async fn query_events(client: &Client, table: &str, id: &str) -> Result<Vec<Event>> {
    let query = client
        .query()
        .table_name(table)
        .key_condition_expression("pk = :pk AND begins_with(sk, :evt)")
        .expression_attribute_values(":pk", s(pk(id)))
        .expression_attribute_values(":evt", s("EVT#"))
        .consistent_read(true);
    query_all(query, "DynamoDB Query").await
}

impl Ledger for DynamoLedger {
    async fn get(&self, id: &str) -> Result<Option<AccessRequest>> {
        get_record(&self.client, &self.table, id).await
    }

    fn chain_key(&self) -> &ChainKey {
        &self.key
    }

    async fn commit(&self, change: &Change) -> Result<()> {
        if !change.is_sealed() {
            return Err(Error::internal("an unsealed change reached the ledger"));
        }
        let mut record_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::record_item(&change.record)?));
        record_put = match change.expected_seq {
            None => record_put.condition_expression("attribute_not_exists(pk)"),
            Some(seq) => record_put
                .condition_expression("event_seq = :seq")
                .expression_attribute_values(":seq", AttributeValue::N(seq.to_string())),
        };
        let event_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(Self::event_item(&change.event)?))
            .condition_expression("attribute_not_exists(pk)");
        let build = |put: aws_sdk_dynamodb::types::builders::PutBuilder| {
            put.build()
                .map(|put| TransactWriteItem::builder().put(put).build())
                .map_err(|err| Error::internal(err.to_string()))
        };
        let mut transaction = self
            .client
            .transact_write_items()
            .transact_items(build(record_put)?)
            .transact_items(build(event_put)?);
        if let Some(claim) = &change.claim {
            transaction =
                transaction.transact_items(build(self.claim_put(claim, &change.record.id))?);
        }
        let result = transaction.send().await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => {
                let cancelled = err
                    .as_service_error()
                    .is_some_and(|service| service.is_transaction_canceled_exception());
                let conflict_only = err
                    .as_service_error()
                    .and_then(|service| match service {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(e) => {
                            Some(e.cancellation_reasons().iter().all(|reason| {
                                matches!(reason.code(), None | Some("None") | Some("ConditionalCheckFailed"))
                            }))
                        }
                        _ => None,
                    })
                    .unwrap_or(false);
                if cancelled && conflict_only {
                    Err(Error::conflict(STALE))
                } else if cancelled {
                    Err(Error::retryable(format!(
                        "DynamoDB TransactWriteItems was cancelled: {err:?}"
                    )))
                } else {
                    Err(classify("DynamoDB TransactWriteItems", &err))
                }
            }
        }
    }

    async fn open_claim(&self, key: &str) -> Result<Option<String>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("OPEN#{key}")))
            .key("sk", s("OPEN"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| classify("DynamoDB GetItem", &err))?;
        Ok(output
            .item
            .as_ref()
            .and_then(|item| item.get("request_id"))
            .and_then(|value| value.as_s().ok())
            .cloned())
    }

    async fn events(&self, id: &str) -> Result<Vec<Event>> {
        query_events(&self.client, &self.table, id).await
    }

    async fn active_expiring_before(&self, before: &str) -> Result<Vec<AccessRequest>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(STATUS_INDEX)
            .key_condition_expression("#status = :active AND expires_at < :before")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":active", s("ACTIVE"))
            .expression_attribute_values(":before", s(before));
        query_all(query, "DynamoDB Query ByStatus").await
    }

    async fn expiring_after(&self, status: Status, after: &str) -> Result<Vec<AccessRequest>> {
        // The reconciler's view of REVOKED/AUDITED grants whose deny is still needed.
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(STATUS_INDEX)
            .key_condition_expression("#status = :status AND expires_at > :after")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status.as_str()))
            .expression_attribute_values(":after", s(after));
        query_all(query, "DynamoDB Query ByStatus").await
    }

    async fn closed_on(&self, day: &str) -> Result<Vec<AccessRequest>> {
        query_closed_on(&self.client, &self.table, day).await
    }

    async fn by_requester(
        &self,
        requester: &str,
        limit: usize,
        next: Option<&str>,
    ) -> Result<RequestPage> {
        let start = match next {
            None => None,
            Some(token) => {
                let token = decode_token(token)?;
                Some(HashMap::from([
                    ("pk".to_owned(), s(pk(&token.id))),
                    ("sk".to_owned(), s("META")),
                    ("requester".to_owned(), s(requester)),
                    ("created_at".to_owned(), s(token.created_at)),
                ]))
            }
        };
        // One more than asked: whether it exists says if there is a next page, so the last
        // page never hands out a token that leads to an empty page.
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(REQUESTER_INDEX)
            .key_condition_expression("requester = :requester")
            .expression_attribute_values(":requester", s(requester))
            .scan_index_forward(false)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|err| classify("DynamoDB Query ByRequester", &err))?;
        let mut requests: Vec<AccessRequest> = output
            .items()
            .iter()
            .map(parse_doc)
            .collect::<Result<_>>()?;
        let more = requests.len() > limit;
        requests.truncate(limit);
        let next = match requests.last() {
            Some(last) if more => Some(encode_token(last)?),
            _ => None,
        };
        Ok(RequestPage { requests, next })
    }

    async fn count_call(
        &self,
        requester: &str,
        window: &str,
        limit: u32,
        purge_at: i64,
    ) -> Result<bool> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("RATE#{requester}")))
            .key("sk", s(window))
            .update_expression("ADD calls :one SET purge_at = :purge")
            .condition_expression("attribute_not_exists(calls) OR calls < :limit")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .expression_attribute_values(":purge", AttributeValue::N(purge_at.to_string()))
            .send()
            .await;
        updated(result, "DynamoDB UpdateItem rate counter")
    }

    async fn idempotency(&self, scope: &str) -> Result<Option<IdempotencyRecord>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(format!("IDEM#{scope}")))
            .key("sk", s("IDEM"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| classify("DynamoDB GetItem idempotency", &err))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let text = |name: &str| {
            item.get(name)
                .and_then(|value| value.as_s().ok())
                .cloned()
                .ok_or_else(|| Error::internal(format!("an idempotency item has no `{name}`")))
        };
        let status = item
            .get("http_status")
            .and_then(|value| value.as_n().ok())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| Error::internal("an idempotency item has no `http_status`"))?;
        Ok(Some(IdempotencyRecord {
            scope: scope.to_owned(),
            body_hash: text("body_hash")?,
            request_id: text("request_id")?,
            status,
        }))
    }

    async fn remember(&self, record: &IdempotencyRecord, purge_at: i64) -> Result<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("IDEM#{}", record.scope)))
            .item("sk", s("IDEM"))
            .item("body_hash", s(&record.body_hash))
            .item("request_id", s(&record.request_id))
            .item("http_status", AttributeValue::N(record.status.to_string()))
            .item("purge_at", AttributeValue::N(purge_at.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(err) => Err(classify("DynamoDB PutItem idempotency", &err)),
        }
    }

    async fn hold_assignment(&self, key: &str, request_id: &str) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("HOLD#{key}")))
            .key("sk", s("HOLD"))
            .update_expression("ADD holders :id")
            .condition_expression("attribute_not_exists(fence)")
            .expression_attribute_values(":id", AttributeValue::Ss(vec![request_id.to_owned()]))
            .send()
            .await;
        if updated(result, "DynamoDB UpdateItem hold")? {
            Ok(())
        } else {
            Err(Error::retryable(FENCED))
        }
    }

    async fn release_assignment(&self, key: &str, request_id: &str) -> Result<bool> {
        let released = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("HOLD#{key}")))
            .key("sk", s("HOLD"))
            .update_expression("DELETE holders :id")
            .expression_attribute_values(":id", AttributeValue::Ss(vec![request_id.to_owned()]))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await
            .map_err(|err| classify("DynamoDB UpdateItem release", &err))?;
        let others = released
            .attributes
            .as_ref()
            .and_then(|item| item.get("holders"))
            .and_then(|value| value.as_ss().ok())
            .is_some_and(|holders| !holders.is_empty());
        if others {
            return Ok(false);
        }
        // Conditional on the holders still being none: a grant that took the assignment since
        // the release keeps it, and this revoke leaves it alone.
        let fenced = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("HOLD#{key}")))
            .key("sk", s("HOLD"))
            .update_expression("SET fence = :id")
            .condition_expression(
                "attribute_not_exists(holders) AND (attribute_not_exists(fence) OR fence = :id)",
            )
            .expression_attribute_values(":id", s(request_id))
            .send()
            .await;
        match fenced {
            Ok(_) => Ok(true),
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                let item = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", s(format!("HOLD#{key}")))
                    .key("sk", s("HOLD"))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|err| classify("DynamoDB GetItem holders", &err))?
                    .item
                    .unwrap_or_default();
                let held = item
                    .get("holders")
                    .and_then(|value| value.as_ss().ok())
                    .is_some_and(|holders| !holders.is_empty());
                if held {
                    Ok(false)
                } else {
                    Err(Error::retryable(FENCED))
                }
            }
            Err(err) => Err(classify("DynamoDB UpdateItem fence", &err)),
        }
    }

    async fn unfence_assignment(&self, key: &str, request_id: &str) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("HOLD#{key}")))
            .key("sk", s("HOLD"))
            .update_expression("REMOVE fence")
            .condition_expression("fence = :id")
            .expression_attribute_values(":id", s(request_id))
            .send()
            .await;
        updated(result, "DynamoDB UpdateItem unfence").map(|_| ())
    }

    async fn take_slot(
        &self,
        key: &str,
        slot: u32,
        holder: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<bool> {
        // One item per slot, so taking one is a single conditional write; `purge_at` lets the
        // table's TTL collect slots nobody has used for a day.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("SLOT#{key}")))
            .key("sk", s(slot.to_string()))
            .update_expression("SET holder = :me, lease_until = :until, purge_at = :purge")
            .condition_expression(
                "attribute_not_exists(holder) OR holder = :me OR lease_until < :now",
            )
            .expression_attribute_values(":me", s(holder))
            .expression_attribute_values(":until", AttributeValue::N(lease_until.to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(
                ":purge",
                AttributeValue::N((lease_until + 86_400).to_string()),
            )
            .send()
            .await;
        updated(result, "DynamoDB UpdateItem take slot")
    }

    async fn free_slot(&self, key: &str, slot: u32, holder: &str) -> Result<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("SLOT#{key}")))
            .key("sk", s(slot.to_string()))
            .update_expression("REMOVE holder, lease_until")
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        updated(result, "DynamoDB UpdateItem free slot").map(|_| ())
    }
}

/// A conditional UpdateItem's outcome: `true` written, `false` its condition failed; other
/// errors classified as `what`.
fn updated<T>(
    result: std::result::Result<
        T,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        >,
    >,
    what: &str,
) -> Result<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(err) => Err(classify(what, &err)),
    }
}

/// Why a grant waits: the assignment it would share is being removed.
const FENCED: &str = "another request's revoke is removing this account assignment; try again";

#[cfg(test)]
mod page_token_tests {
    use super::*;
    use trailgate_domain::testing::pending_request;

    #[test]
    fn page_tokens_round_trip_and_forged_ones_are_400s_on_next() {
        let record = pending_request();
        let token = decode_token(&encode_token(&record).unwrap()).unwrap();
        assert_eq!(
            (token.id.as_str(), token.created_at.as_str()),
            (record.id.as_str(), record.created_at.as_str())
        );
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"id":"../x","created_at":"z"}"#);
        for bad in ["not-a-token", "", &forged] {
            let err = decode_token(bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("next"), "{bad}");
        }
    }
}
