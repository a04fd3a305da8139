//! What jitctl's integration tests share: the jitctl binary run with test credentials, and
//! trailgate-aws's moto helper (the repository root, a moto server on a free port, S3 clients).

#![allow(dead_code)] // Each test file uses its own subset.

use std::process::Command;

// moto, its clients and the trail bucket are trailgate-aws's test helper, shared with its own tests.
#[allow(unused_imports)] // Each test file uses its own subset.
pub use trailgate_aws::testing::{
    cloudtrail_data, http_client, moto, repository, s3_client, trail_bucket,
};

/// Runs the jitctl binary with test credentials and no profile files; returns (status ok,
/// stdout, stderr).
pub fn jitctl(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_jitctl"))
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .output()
        .expect("jitctl runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
