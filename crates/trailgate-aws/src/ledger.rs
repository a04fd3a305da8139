//! The ledger on DynamoDB.
//!
//! One item per request (`pk = REQ#<id>`, `sk = META`) holding the record as JSON in `doc`,
//! with `status`, `expires_at`, `requester` and `event_seq` copied out as attributes for
//! conditions and the `ByStatus` index; one item per event (`sk = EVT#<seq>`).
//! A change is one `TransactWriteItems`: the record only if `event_seq` is still what was read,
//! the event only if it does not exist. Either both land or neither does.

use crate::errors::classify;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use std::collections::HashMap;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ledger::{Change, Event};
use trailgate_domain::ports::Ledger;
use trailgate_domain::request::{AccessRequest, Status};
use trailgate_domain::service::STALE;

/// The DynamoDB ledger.
#[derive(Clone, Debug)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

const STATUS_INDEX: &str = "ByStatus";

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn pk(id: &str) -> String {
    format!("REQ#{id}")
}

impl DynamoLedger {
    /// The ledger on `table`, with a client from the shared SDK configuration.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, table: String) -> DynamoLedger {
        DynamoLedger::new(Client::new(sdk), table)
    }

    pub fn new(client: Client, table: String) -> DynamoLedger {
        DynamoLedger { client, table }
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

    fn parse_doc<T: serde::de::DeserializeOwned>(
        item: &HashMap<String, AttributeValue>,
    ) -> Result<T> {
        let doc = item
            .get("doc")
            .and_then(|value| value.as_s().ok())
            .ok_or_else(|| Error::internal("a ledger item has no `doc`"))?;
        serde_json::from_str(doc)
            .map_err(|err| Error::internal(format!("a ledger item is corrupt: {err}")))
    }
}

impl Ledger for DynamoLedger {
    async fn get(&self, id: &str) -> Result<Option<AccessRequest>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(id)))
            .key("sk", s("META"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|err| classify("DynamoDB GetItem", &err))?;
        output.item.as_ref().map(Self::parse_doc).transpose()
    }

    async fn commit(&self, change: &Change) -> Result<()> {
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
        let result = self
            .client
            .transact_write_items()
            .transact_items(build(record_put)?)
            .transact_items(build(event_put)?)
            .send()
            .await;
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

    async fn events(&self, id: &str) -> Result<Vec<Event>> {
        let mut events = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :evt)")
                .expression_attribute_values(":pk", s(pk(id)))
                .expression_attribute_values(":evt", s("EVT#"))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| classify("DynamoDB Query", &err))?;
            for item in output.items() {
                events.push(Self::parse_doc(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(events)
    }

    async fn active_expiring_before(&self, before: &str) -> Result<Vec<AccessRequest>> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression("#status = :active AND expires_at < :before")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":active", s("ACTIVE"))
                .expression_attribute_values(":before", s(before))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| classify("DynamoDB Query ByStatus", &err))?;
            for item in output.items() {
                records.push(Self::parse_doc(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(records)
    }

    async fn expiring_after(&self, status: Status, after: &str) -> Result<Vec<AccessRequest>> {
        // Same index and paging as `active_expiring_before`, for the reconciler (issue 5).
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(STATUS_INDEX)
                .key_condition_expression("#status = :status AND expires_at > :after")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()))
                .expression_attribute_values(":after", s(after))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|err| classify("DynamoDB Query ByStatus", &err))?;
            for item in output.items() {
                records.push(Self::parse_doc(item)?);
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        Ok(records)
    }
}
