//! The scan function's entry point: loads the embedded runbook library and the trail the stack
//! reads at cold start, and serves the runbook-scan state machine's `Plan`, `Scan Batch` and
//! `Merge` steps.
// The handler's future (three steps, each awaiting S3 through the source) nests deeper than
// the compiler's default layout depth.
#![recursion_limit = "256"]

mod handler;

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use trailgate_aws::s3::S3Store;
use trailgate_aws::{config, sdk};
use trailgate_runbooks::source::distributed::BatchLimits;
use trailgate_runbooks::source::s3::S3Location;
use trailgate_runbooks::{Library, Runbook};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/runbooks.rs"));
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = sdk::load().await;
    let mut library = Library::default();
    for (name, text) in embedded::RUNBOOKS {
        library.insert(Runbook::parse(text, name)?)?;
    }
    let bucket = config::optional("TRAIL_BUCKET", "");
    let trail = if bucket.is_empty() {
        None
    } else {
        let url = format!("s3://{bucket}/{}", config::optional("TRAIL_PREFIX", ""));
        Some(S3Location::parse(&url).ok_or_else(|| {
            format!("TRAIL_BUCKET and TRAIL_PREFIX do not name an S3 location: {url}")
        })?)
    };
    let defaults = BatchLimits::default();
    let limits = BatchLimits {
        // Smaller batches for tests on the local stack; the default is sized for a Lambda.
        max_bytes: config::optional("SCAN_BATCH_BYTES", &defaults.max_bytes.to_string())
            .parse()
            .map_err(|err| format!("SCAN_BATCH_BYTES: {err}"))?,
        max_keys: defaults.max_keys,
    };
    let deps = handler::Deps {
        store: S3Store::for_sdk(&sdk),
        library,
        trail,
        scan_bucket: config::required("SCAN_BUCKET")?,
        limits,
    };
    run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handler::handle(event.payload, &deps)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_library_is_the_repositorys_whole_runbooks_folder() {
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../runbooks"))
            .expect("lists")
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "yaml"))
            .count();
        assert_eq!(embedded::RUNBOOKS.len(), on_disk);
        let mut library = Library::default();
        for (name, text) in embedded::RUNBOOKS {
            library
                .insert(Runbook::parse(text, name).expect("parses"))
                .expect("unique");
        }
        assert!(library.get("logging-tampering").is_some());
    }
}
