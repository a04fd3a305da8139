//! The lifecycle event bus on EventBridge (`EVENT_BUS_NAME`): `PutEvents`, ten entries at a
//! time, each entry's outcome reported back so the publisher can resume at the first refused one.

use crate::config::{ConfigError, required};
use crate::errors::classify;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::lifecycle::{LifecycleEvent, MAX_ENTRIES_PER_PUT};
use trailgate_domain::ports::EventBus;

/// The stack's lifecycle bus.
#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus: String,
}

impl EventBridgeBus {
    /// The bus named by `EVENT_BUS_NAME`.
    pub fn from_env(
        sdk: &aws_config::SdkConfig,
    ) -> std::result::Result<EventBridgeBus, ConfigError> {
        Ok(EventBridgeBus::new(
            Client::new(sdk),
            required("EVENT_BUS_NAME")?,
        ))
    }

    pub fn new(client: Client, bus: String) -> EventBridgeBus {
        EventBridgeBus { client, bus }
    }
}

impl EventBus for EventBridgeBus {
    async fn put(&self, entries: &[LifecycleEvent]) -> Result<Vec<Option<String>>> {
        if entries.len() > MAX_ENTRIES_PER_PUT {
            return Err(Error::internal(format!(
                "{} entries in one PutEvents (at most {MAX_ENTRIES_PER_PUT})",
                entries.len()
            )));
        }
        let mut request = self.client.put_events();
        for entry in entries {
            request = request.entries(
                PutEventsRequestEntry::builder()
                    .event_bus_name(&self.bus)
                    .source(&entry.source)
                    .detail_type(&entry.detail_type)
                    .detail(entry.detail.to_string())
                    .build(),
            );
        }
        let output = request
            .send()
            .await
            .map_err(|err| classify("EventBridge PutEvents", &err))?;
        Ok(output
            .entries()
            .iter()
            .map(|result| {
                result
                    .error_code()
                    .map(|code| format!("{code}: {}", result.error_message().unwrap_or_default()))
            })
            .collect())
    }
}
