//! The local stack end to end against the real template.yaml: moto, the router, the deployer and
//! `cargo lambda watch` come up on free ports; the resources are checked through the router with
//! the AWS SDK; the API refuses unsigned calls; CloudTrail LookupEvents, the Lambda route and the
//! outbox answer; and shutdown leaves no process behind.
//!
//! Needs the project's virtualenvs (`make bootstrap`): `.venv` (moto) and `.venv-sam`
//! (cargo-lambda).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use trailgate_local::cloudformation::sdk_config;
use trailgate_local::process;
use trailgate_local::{LocalStack, UpOptions};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Every process of the stack: the children and everything they started.
fn stack_processes(stack: &LocalStack) -> Vec<u32> {
    let mut pids = Vec::new();
    for child in &stack.state().children {
        pids.push(child.pid);
        pids.extend(process::descendants(child.pid));
    }
    if let Some(port) = stack.state().ports.lambda {
        pids.extend(process::find_by_environment(&format!(
            "AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:{port}/"
        )));
    }
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brings_the_stack_up_checks_it_and_leaves_nothing_behind() {
    let state_dir = std::env::temp_dir().join(format!("trailgate-local-it-{}", std::process::id()));
    let mut options = UpOptions::new(repo_root());
    options.state_dir = state_dir.clone();
    options.aws_port = 0;
    options.api_port = 0;
    let stack = LocalStack::up(options)
        .await
        .expect("the local stack comes up");
    let pids = stack_processes(&stack);
    // Check inside a task so that a failed assertion still reaches the shutdown below.
    let state = stack.state().clone();
    let checks = tokio::spawn(async move { check(&state).await });
    let outcome = checks.await;
    stack.shutdown().await.expect("clean shutdown");
    let alive: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|pid| process::alive(*pid))
        .collect();
    assert!(alive.is_empty(), "processes left alive: {alive:?}");
    assert!(
        !state_dir.join("state.json").exists(),
        "shutdown removes the state file"
    );
    let _ = std::fs::remove_dir_all(&state_dir);
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

async fn check(state: &trailgate_local::StackState) {
    let config = sdk_config(&state.aws_endpoint);
    let outputs = &state.outputs;
    assert_eq!(outputs["ApiUrl"], state.api_url);
    assert_eq!(
        outputs["SampleTargetRoleArn"],
        "arn:aws:iam::123456789012:role/sample-target-trailgate"
    );

    // DynamoDB: the ledger with its index.
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let table = dynamodb
        .describe_table()
        .table_name(&outputs["LedgerTableName"])
        .send()
        .await
        .unwrap();
    let table = table.table().unwrap();
    let indexes: Vec<&str> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|i| i.index_name())
        .collect();
    assert_eq!(indexes, ["ByStatus", "ByRequester", "ByClosedDay"]);

    // SNS: one filtered e-mail subscription per approver.
    let sns = aws_sdk_sns::Client::new(&config);
    let subscriptions = sns
        .list_subscriptions_by_topic()
        .topic_arn(&outputs["ApprovalsTopicArn"])
        .send()
        .await
        .unwrap();
    let mut endpoints: Vec<&str> = subscriptions
        .subscriptions()
        .iter()
        .filter_map(|s| s.endpoint())
        .collect();
    endpoints.sort_unstable();
    assert_eq!(endpoints, ["bob@example.com", "carol@example.com"]);
    let first = subscriptions.subscriptions()[0].subscription_arn().unwrap();
    let attributes = sns
        .get_subscription_attributes()
        .subscription_arn(first)
        .send()
        .await
        .unwrap();
    let filter: Value =
        serde_json::from_str(&attributes.attributes().unwrap()["FilterPolicy"]).unwrap();
    assert!(filter["approver"].is_array(), "{filter}");

    // Secrets Manager: the generated 64-character link key.
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let secret = secrets
        .get_secret_value()
        .secret_id(&outputs["LinkSigningSecretArn"])
        .send()
        .await
        .unwrap();
    assert_eq!(secret.secret_string().unwrap().len(), 64);

    // IAM: the sample target role is tagged and trusts only the credentials function's role.
    let iam = aws_sdk_iam::Client::new(&config);
    let role = iam
        .get_role()
        .role_name("sample-target-trailgate")
        .send()
        .await
        .unwrap();
    let role = role.role().unwrap();
    let trust = percent_encoding::percent_decode_str(role.assume_role_policy_document().unwrap())
        .decode_utf8_lossy();
    assert!(
        trust.contains(&outputs["CredentialsFunctionRoleArn"]),
        "{trust}"
    );
    assert!(
        role.tags()
            .iter()
            .any(|t| t.key() == "trailgate:managed" && t.value() == "true")
    );
    let users = iam.list_users().send().await.unwrap();
    assert_eq!(users.users().len(), 3);

    // Step Functions: the state machine with its substitutions resolved.
    let sfn = aws_sdk_sfn::Client::new(&config);
    let machine = sfn
        .describe_state_machine()
        .state_machine_arn(&outputs["StateMachineArn"])
        .send()
        .await
        .unwrap();
    assert!(!machine.definition().contains("${"));
    assert!(
        machine
            .definition()
            .contains("arn:aws:lambda:us-east-1:123456789012:function:trailgate-ContextFunction-")
    );

    // The API refuses unsigned and wrongly signed calls to AWS_IAM routes.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let unsigned = http
        .post(format!("{}/requests", state.api_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    assert_eq!(
        unsigned.json::<Value>().await.unwrap(),
        json!({"message": "Missing Authentication Token"})
    );
    let forged = http
        .get(format!("{}/requests/r-1", state.api_url))
        .header("x-amz-date", "20260101T000000Z")
        .header("authorization", "AWS4-HMAC-SHA256 Credential=AKIANOBODY/20260101/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(
        forged.json::<Value>().await.unwrap()["message"],
        "The security token included in the request is invalid."
    );

    // CloudTrail: seeded records come back through the real SDK, and the rate limit holds.
    let seeded = http
        .post(format!("{}/_local/cloudtrail", state.aws_endpoint))
        .json(&json!({"Records": [{
            "eventTime": "2026-01-02T03:04:05Z", "eventID": "e-1", "eventName": "ListBuckets",
            "eventSource": "s3.amazonaws.com", "readOnly": true,
            "userIdentity": {"type": "IAMUser", "userName": "alice", "accessKeyId": "AKIAALICE"},
        }]}))
        .send()
        .await
        .unwrap();
    assert_eq!(seeded.status(), 200);
    let no_retries = config
        .to_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let cloudtrail = aws_sdk_cloudtrail::Client::new(&no_retries);
    let mut throttled = false;
    for _ in 0..3 {
        let lookup = cloudtrail
            .lookup_events()
            .lookup_attributes(
                aws_sdk_cloudtrail::types::LookupAttribute::builder()
                    .attribute_key(aws_sdk_cloudtrail::types::LookupAttributeKey::Username)
                    .attribute_value("alice")
                    .build()
                    .unwrap(),
            )
            .send()
            .await;
        match lookup {
            Ok(page) => {
                let event = &page.events()[0];
                assert_eq!(event.event_id(), Some("e-1"));
                assert_eq!(event.event_time().unwrap().secs(), 1_767_323_045);
                assert_eq!(event.access_key_id(), Some("AKIAALICE"));
            }
            Err(err) => {
                let err = err.into_service_error();
                assert_eq!(err.meta().code(), Some("ThrottlingException"), "{err:?}");
                throttled = true;
            }
        }
    }
    assert!(throttled, "the third call within a second is throttled");

    // Lambda: an ARN is cut to a binary name, and an unknown binary is Lambda's 404.
    let invoke = http
        .post(format!(
            "{}/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Ano-such-binary/invocations",
            state.aws_endpoint
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(invoke.status(), 404);
    assert_eq!(
        invoke.headers()["x-amzn-errortype"],
        "ResourceNotFoundException"
    );

    // Outbox: a published message shows up, newest first, with its link clickable.
    sns.publish()
        .topic_arn(&outputs["ApprovalsTopicArn"])
        .subject("Access request r-1")
        .message("Approve: http://127.0.0.1:1/v1/decisions/r-1?a=bob&s=x")
        .message_attributes(
            "approver",
            aws_sdk_sns::types::MessageAttributeValue::builder()
                .data_type("String")
                .string_value("bob@example.com")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let outbox_json = state.outbox_url.replace("/_outbox", "/_outbox.json");
    let messages: Value = http
        .get(outbox_json)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(messages[0]["subject"], "Access request r-1");
    assert_eq!(messages[0]["attributes"]["approver"], "bob@example.com");
    let page = http
        .get(&state.outbox_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("<a href=\"http://127.0.0.1:1/v1/decisions/r-1?a=bob&amp;s=x\">"),
        "{page}"
    );

    // The state file and the AWS config file are in place.
    let saved = trailgate_local::StackState::load(&state.state_dir).unwrap();
    assert_eq!(saved.status, trailgate_local::StackStatus::Ready);
    let aws_config = std::fs::read_to_string(&state.aws_config_file).unwrap();
    assert!(aws_config.contains("[profile alice]") && aws_config.contains(&state.aws_endpoint));
    tokio::time::sleep(Duration::from_millis(10)).await;
}
