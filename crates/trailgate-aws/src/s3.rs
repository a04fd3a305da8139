//! S3 for the runbook engine: [`S3Store`] implements trailgate-runbooks' `ObjectStore` (list a
//! prefix, read an object) with the AWS SDK, so `S3Source` can scan a trail bucket.
//!
//! Errors are reported as text with the SDK's full context: the S3 source counts a failed object
//! and stops only when a listing fails, so no retry classification is needed here (the SDK's
//! standard retry already covers throttling and 5xx).

use std::future::Future;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use trailgate_runbooks::source::s3::{ListPage, ListRequest, ObjectStore, StoreError};

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

#[cfg(test)]
mod tests {
    //! Against a real moto S3 server (`.venv/bin/moto_server`, from `scripts/bootstrap.sh moto`):
    //! skipped with a note when it is missing, a failure when `CI` is set.

    use super::*;
    use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_s3::primitives::ByteStream;
    use std::net::{TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};
    use trailgate_runbooks::source::s3::{S3Location, S3Source, run_s3};
    use trailgate_runbooks::{Library, Params};

    /// A moto server on a free port, stopped when dropped.
    struct Moto {
        child: Child,
        url: String,
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn repository() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    fn moto() -> Option<Moto> {
        let server = repository().join(".venv/bin/moto_server");
        if !server.is_file() {
            let message = format!(
                "{} is missing: run scripts/bootstrap.sh moto",
                server.display()
            );
            assert!(std::env::var_os("CI").is_none(), "{message}");
            println!("note: {message}; moto S3 test skipped");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    fn client(url: &str) -> Client {
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .force_path_style(true)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .http_client(http_client)
            .build();
        Client::from_conf(config)
    }

    async fn put(client: &Client, bucket: &str, key: &str, file: &Path) {
        let body = std::fs::read(file).expect("test file reads");
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .expect("put_object");
    }

    #[tokio::test]
    async fn a_trail_bucket_on_moto_is_scanned_by_key_layout() {
        let data = repository().join("../shared/data/cloudtrail");
        if !data.is_dir() {
            println!("note: {} is absent; skipped", data.display());
            return;
        }
        let Some(moto) = moto() else {
            return;
        };
        let client = client(&moto.url);
        let bucket = "trail-bucket";
        client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("create_bucket");
        // The real aws_dataset files (plain JSON) under the standard layout.
        let folder = data.join("aws_dataset/CloudTrail");
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .expect("lists")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        for name in &names {
            let key = format!("logs/AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/{name}");
            put(&client, bucket, &key, &folder.join(name)).await;
        }
        // cloud-snitch's real gzip objects, standard and organization trail, at their real keys.
        let snitch = data.join("cloud-snitch/backend/report/testdata/aws-cloudtrail-logs");
        for key in [
            "AWSLogs/333333333333/CloudTrail/us-east-1/2025/03/06/333333333333_CloudTrail_us-east-1_20250306T0320Z_ZgdYr0lP8M9fWEH8.json.gz",
            "AWSLogs/o-1234abcde/222222222222/CloudTrail/us-east-1/2025/03/06/222222222222_CloudTrail_us-east-1_20250306T0230Z_QF6qcgyiaVnSueXa.json.gz",
        ] {
            put(&client, bucket, &format!("logs/{key}"), &snitch.join(key)).await;
        }
        // A digest beside the logs is never read.
        put(
            &client,
            bucket,
            "logs/AWSLogs/123837392027/CloudTrail-Digest/us-east-1/2023/07/10/123837392027_CloudTrail-Digest_us-east-1_t_us-east-1_20230710T1200Z.json.gz",
            &folder.join(&names[0]),
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
