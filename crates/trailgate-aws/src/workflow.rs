//! Step Functions: starting the access-request execution and completing the approval task.

use crate::errors::classify;
use aws_sdk_sfn::Client;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::Workflow;

#[derive(Clone, Debug)]
pub struct SfnWorkflow {
    client: Client,
    state_machine_arn: String,
}

impl SfnWorkflow {
    pub fn from_sdk(sdk: &aws_config::SdkConfig, state_machine_arn: String) -> SfnWorkflow {
        SfnWorkflow::new(Client::new(sdk), state_machine_arn)
    }

    pub fn new(client: Client, state_machine_arn: String) -> SfnWorkflow {
        SfnWorkflow {
            client,
            state_machine_arn,
        }
    }
}

impl Workflow for SfnWorkflow {
    async fn start(&self, name: &str, input: &serde_json::Value) -> Result<()> {
        self.client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            // Named by the request id: a retried intake cannot start a second execution.
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .map_err(|err| classify("Step Functions StartExecution", &err))?;
        Ok(())
    }

    async fn complete(&self, task_token: &str, output: &serde_json::Value) -> Result<()> {
        match self
            .client
            .send_task_success()
            .task_token(task_token)
            .output(output.to_string())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let gone = err.as_service_error().is_some_and(|service| {
                    service.is_task_timed_out()
                        || service.is_invalid_token()
                        || service.is_task_does_not_exist()
                });
                if gone {
                    Err(Error::conflict(
                        "the approval window closed before the decision reached the workflow",
                    ))
                } else {
                    Err(classify("Step Functions SendTaskSuccess", &err))
                }
            }
        }
    }
}
