//! The ledger archive on S3: each closed request's events as NDJSON under
//! `requests/<id>.ndjson`, in a bucket with Object Lock (compliance mode, default retention
//! from the template), versioned, writable only by the audit function's role.

use crate::errors::classify;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use trailgate_domain::error::{Error, Result};
use trailgate_domain::ports::Archive;

/// The archive bucket.
#[derive(Debug, Clone)]
pub struct S3Archive {
    client: Client,
    bucket: String,
}

impl S3Archive {
    /// The archive `bucket`, with a client from the shared SDK configuration. An endpoint set
    /// in the configuration (the local stack, moto) has no per-bucket host names, so it is
    /// addressed path-style; AWS itself is addressed as usual.
    pub fn from_sdk(sdk: &aws_config::SdkConfig, bucket: String) -> S3Archive {
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        S3Archive {
            client: Client::from_conf(conf),
            bucket,
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The newest version of `key`, `None` when there is none (`jitctl verify`).
    pub async fn get(&self, key: &str) -> Result<Option<String>> {
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|service| service.is_no_such_key()) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(classify("S3 GetObject", &err)),
        };
        let bytes = output
            .body
            .collect()
            .await
            .map_err(|err| Error::retryable(format!("reading s3://{}/{key}: {err}", self.bucket)))?
            .into_bytes();
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| Error::internal(format!("s3://{}/{key} is not UTF-8", self.bucket)))
    }
}

impl Archive for S3Archive {
    async fn put(&self, key: &str, body: &str) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/x-ndjson")
            // S3 refuses uploads into an Object Lock bucket without an integrity checksum.
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|err| classify("S3 PutObject", &err))?;
        Ok(())
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(false),
            Err(err) => Err(classify("S3 HeadObject", &err)),
        }
    }
}
