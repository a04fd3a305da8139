//! SNS: approval messages (one per approver, routed by the `approver` attribute) and alerts.

use crate::errors::classify;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::{Notifier, Topic};

#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: Client,
    approvals_topic_arn: Option<String>,
    alerts_topic_arn: Option<String>,
}

impl SnsNotifier {
    pub fn from_sdk(
        sdk: &aws_config::SdkConfig,
        approvals_topic_arn: Option<String>,
        alerts_topic_arn: Option<String>,
    ) -> SnsNotifier {
        SnsNotifier::new(Client::new(sdk), approvals_topic_arn, alerts_topic_arn)
    }

    /// A function passes only the topics its role may publish to.
    pub fn new(
        client: Client,
        approvals_topic_arn: Option<String>,
        alerts_topic_arn: Option<String>,
    ) -> SnsNotifier {
        SnsNotifier {
            client,
            approvals_topic_arn,
            alerts_topic_arn,
        }
    }
}

impl Notifier for SnsNotifier {
    async fn publish(
        &self,
        topic: Topic,
        subject: &str,
        message: &str,
        approver: Option<&str>,
    ) -> Result<()> {
        let arn = match topic {
            Topic::Approvals => self.approvals_topic_arn.as_ref(),
            Topic::Alerts => self.alerts_topic_arn.as_ref(),
        }
        .ok_or_else(|| {
            Error::internal(format!("this function has no {topic:?} topic configured"))
        })?;
        let mut publish = self
            .client
            .publish()
            .topic_arn(arn)
            .subject(subject)
            .message(message);
        if let Some(approver) = approver {
            let attribute = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(approver)
                .build()
                .map_err(|err| Error::internal(err.to_string()))?;
            publish = publish.message_attributes("approver", attribute);
        }
        publish
            .send()
            .await
            .map_err(|err| classify("SNS Publish", &err))?;
        Ok(())
    }
}
