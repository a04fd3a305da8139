//! The one moto helper of every test that talks to a real moto server (feature `testing`, and
//! this crate's own tests): starting moto on a free port, S3 clients for it, and a trail bucket
//! filled with the real CloudTrail logs of `../shared/data/cloudtrail`.
//!
//! moto comes from `.venv` (`scripts/bootstrap.sh moto`). Without it a test is skipped with a
//! note, except when `CI` is set: there a missing moto must fail rather than pass silently.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, SharedHttpClient};
use aws_sdk_s3::primitives::ByteStream;

/// The workspace root.
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A moto server on a free port, stopped when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts moto and waits until it listens; `None` (with a note) when `.venv` has no moto.
pub fn moto() -> Option<Moto> {
    let server = repository().join(".venv/bin/moto_server");
    if !server.is_file() {
        let message = format!(
            "{} is missing: run scripts/bootstrap.sh moto",
            server.display()
        );
        assert!(std::env::var_os("CI").is_none(), "{message}");
        println!("note: {message}; skipped");
        return None;
    }
    let port = free_port();
    let child = Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        // In UTC, as the local stack runs it.
        .env("TZ", "UTC")
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

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// The SDK's HTTP client as [`crate::sdk::load`] builds it (rustls with ring): the workspace
/// turns the SDK's default client off, so a client built by hand needs one.
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// An S3 client for moto at `url`: path-style (moto has no per-bucket host names), test
/// credentials.
pub fn s3_client(url: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
        .http_client(http_client())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Uploads `file` to `bucket` at `key`.
pub async fn put_file(client: &aws_sdk_s3::Client, bucket: &str, key: &str, file: &Path) {
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

/// `../shared/data/cloudtrail`, or `None` (with a note) where the data is absent.
pub fn cloudtrail_data() -> Option<PathBuf> {
    let data = repository().join("../shared/data/cloudtrail");
    if data.is_dir() {
        return Some(data);
    }
    println!("note: {} is absent; skipped", data.display());
    None
}

/// cloud-snitch's real gzip objects at their real keys: a standard and an organization trail,
/// both delivered on 2025-03-06.
pub const CLOUD_SNITCH_KEYS: [&str; 2] = [
    "AWSLogs/333333333333/CloudTrail/us-east-1/2025/03/06/333333333333_CloudTrail_us-east-1_20250306T0320Z_ZgdYr0lP8M9fWEH8.json.gz",
    "AWSLogs/o-1234abcde/222222222222/CloudTrail/us-east-1/2025/03/06/222222222222_CloudTrail_us-east-1_20250306T0230Z_QF6qcgyiaVnSueXa.json.gz",
];

/// What [`trail_bucket`] uploaded, for comparing with a run on the local files.
pub struct TrailLogs {
    /// The aws_dataset folder (plain JSON files of 2023-07-10).
    pub aws_dataset: PathBuf,
    /// Its file names, sorted.
    pub aws_dataset_names: Vec<String>,
    /// The folder holding [`CLOUD_SNITCH_KEYS`].
    pub cloud_snitch: PathBuf,
}

/// Creates `bucket` and lays the real logs of `data` out in it as a trail delivers them under
/// `prefix`: the aws_dataset files as account `account`'s in us-east-1 on 2023-07-10, and
/// cloud-snitch's objects at [`CLOUD_SNITCH_KEYS`].
pub async fn trail_bucket(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    account: &str,
    data: &Path,
) -> TrailLogs {
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create_bucket");
    let aws_dataset = data.join("aws_dataset/CloudTrail");
    let mut aws_dataset_names: Vec<String> = std::fs::read_dir(&aws_dataset)
        .expect("lists")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    aws_dataset_names.sort();
    for name in &aws_dataset_names {
        let key = format!("{prefix}AWSLogs/{account}/CloudTrail/us-east-1/2023/07/10/{name}");
        put_file(client, bucket, &key, &aws_dataset.join(name)).await;
    }
    let cloud_snitch = data.join("cloud-snitch/backend/report/testdata/aws-cloudtrail-logs");
    for key in CLOUD_SNITCH_KEYS {
        put_file(
            client,
            bucket,
            &format!("{prefix}{key}"),
            &cloud_snitch.join(key),
        )
        .await;
    }
    TrailLogs {
        aws_dataset,
        aws_dataset_names,
        cloud_snitch,
    }
}
