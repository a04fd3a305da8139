//! S3 for the runbook engine: [`S3Store`] implements trailgate-runbooks' `ObjectStore` (list a
//! prefix, read an object) with the AWS SDK, so `S3Source` can scan a trail bucket, and its
//! `ObjectWriter` (put, delete) for the distributed scan's own bucket.
//!
//! Errors are reported as text with the SDK's full context: the S3 source counts a failed object
//! and stops only when a listing fails, so no retry classification is needed here (the SDK's
//! standard retry already covers throttling and 5xx).

use std::future::Future;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use trailgate_runbooks::source::s3::{
    ListPage, ListRequest, ObjectStore, ObjectWriter, StoreError,
};

use crate::SdkConfig;

/// S3 through the AWS SDK.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
}

impl S3Store {
    /// A store from the shared SDK configuration ([`crate::sdk::load`]).
    pub fn new(config: &SdkConfig) -> S3Store {
        S3Store {
            client: Client::new(config),
        }
    }

    /// A store from the shared SDK configuration with path-style addressing, for endpoints
    /// without per-bucket host names (moto, MinIO, the local stack).
    pub fn path_style(config: &SdkConfig) -> S3Store {
        let conf = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build();
        S3Store {
            client: Client::from_conf(conf),
        }
    }

    /// A store from the shared SDK configuration, path-style when it names a custom endpoint
    /// (the local stack), virtual-hosted otherwise (AWS).
    pub fn for_sdk(config: &SdkConfig) -> S3Store {
        if config.endpoint_url().is_some() {
            S3Store::path_style(config)
        } else {
            S3Store::new(config)
        }
    }

    /// A store over an already configured client (custom endpoint, path-style addressing).
    pub fn from_client(client: Client) -> S3Store {
        S3Store { client }
    }
}

impl ObjectStore for S3Store {
    fn list(
        &self,
        request: ListRequest,
    ) -> impl Future<Output = Result<ListPage, StoreError>> + Send {
        let client = self.client.clone();
        async move {
            let output = client
                .list_objects_v2()
                .bucket(request.bucket)
                .prefix(request.prefix)
                .set_delimiter(request.delimiter)
                .set_continuation_token(request.continuation)
                .send()
                .await
                .map_err(|error| StoreError(DisplayErrorContext(&error).to_string()))?;
            let objects = output
                .contents()
                .iter()
                .filter_map(|object| {
                    let size = u64::try_from(object.size().unwrap_or(0)).unwrap_or(0);
                    object.key().map(|key| (key.to_owned(), size))
                })
                .collect();
            let common_prefixes = output
                .common_prefixes()
                .iter()
                .filter_map(|prefix| prefix.prefix().map(str::to_owned))
                .collect();
            let continuation = if output.is_truncated() == Some(true) {
                output.next_continuation_token().map(str::to_owned)
            } else {
                None
            };
            Ok(ListPage {
                objects,
                common_prefixes,
                continuation,
            })
        }
    }

    fn get(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send {
        let call = self.client.get_object().bucket(bucket).key(key);
        async move {
            let output = call
                .send()
                .await
                .map_err(|error| StoreError(DisplayErrorContext(&error).to_string()))?;
            let body = output
                .body
                .collect()
                .await
                .map_err(|error| StoreError(error.to_string()))?;
            Ok(body.into_bytes().to_vec())
        }
    }
}

impl ObjectWriter for S3Store {
    fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let call = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into());
        async move {
            call.send()
                .await
                .map(|_| ())
                .map_err(|error| StoreError(DisplayErrorContext(&error).to_string()))
        }
    }

    fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let call = self.client.delete_object().bucket(bucket).key(key);
        async move {
            call.send()
                .await
                .map(|_| ())
                .map_err(|error| StoreError(DisplayErrorContext(&error).to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    //! Against a real moto S3 server (`crate::testing`): skipped with a note when it is missing,
    //! a failure when `CI` is set.

    use super::*;
    use crate::testing::{cloudtrail_data, moto, put_file, repository, s3_client, trail_bucket};
    use trailgate_runbooks::source::s3::{S3Location, S3Source, run_s3};
    use trailgate_runbooks::{Library, Params};

    #[tokio::test]
    async fn a_trail_bucket_on_moto_is_scanned_by_key_layout() {
        let Some(data) = cloudtrail_data() else {
            return;
        };
        let Some(moto) = moto() else {
            return;
        };
        let client = s3_client(&moto.url);
        let bucket = "trail-bucket";
        // The real aws_dataset files (plain JSON) and cloud-snitch's gzip objects (standard and
        // organization trail) under the standard layout.
        let logs = trail_bucket(&client, bucket, "logs/", "123837392027", &data).await;
        // A digest beside the logs is never read.
        put_file(
            &client,
            bucket,
            "logs/AWSLogs/123837392027/CloudTrail-Digest/us-east-1/2023/07/10/123837392027_CloudTrail-Digest_us-east-1_t_us-east-1_20230710T1200Z.json.gz",
            &logs.aws_dataset.join(&logs.aws_dataset_names[0]),
        )
        .await;

        let library = Library::load_dir(repository().join("runbooks")).expect("library");
        let store = S3Store::from_client(client);
        let location = S3Location::parse(&format!("s3://{bucket}/logs/")).expect("location");
        let source = S3Source::new(&store, location);

        let runbook = library.get("requester-activity").expect("runbook");
        let params = Params::new().set("requester", "benjamin").window(
            time::macros::datetime!(2023-07-10 11:00 UTC),
            time::macros::datetime!(2023-07-10 13:00 UTC),
        );
        let result = run_s3(runbook, &params, &source).await.expect("runs");
        // 55 objects of 2023-07-10 (the 2025 objects are outside the days listed).
        assert_eq!(result.coverage.files_read, 55);
        assert_eq!(result.coverage.events_scanned, 2900);
        assert_eq!(result.coverage.events_matched, 105);
        assert_eq!(result.coverage.records_skipped, 0);

        // The 2025 day: both layouts are found and their gzip is read (21 records).
        let root = library.get("root-usage").expect("runbook");
        let params = Params::new().window(
            time::macros::datetime!(2025-03-06 00:00 UTC),
            time::macros::datetime!(2025-03-06 12:00 UTC),
        );
        let result = run_s3(root, &params, &source).await.expect("runs");
        assert_eq!(result.coverage.files_read, 2);
        assert_eq!(result.coverage.events_scanned, 21);
        assert_eq!(result.coverage.records_skipped, 0);
    }
}
