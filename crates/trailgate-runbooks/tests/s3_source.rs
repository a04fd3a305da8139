//! The S3 source over an in-memory bucket laid out like a real trail bucket: the real
//! aws_dataset files gzipped under the standard key layout, cloud-snitch's organization-trail
//! object, a digest file, a corrupt object, and a file delivered days after the window. The
//! result must equal the local-file engine's on the same records. (The AWS implementation of the
//! store is tested against moto in trailgate-aws.)

mod common;

use std::io::Write as _;

use common::{library, real_data};
use flate2::Compression;
use flate2::write::GzEncoder;
use time::macros::datetime;
use trailgate_runbooks::Params;
use trailgate_runbooks::source::files::FileSource;
use trailgate_runbooks::source::memory_bucket::MemoryBucket;
use trailgate_runbooks::source::s3::{S3Location, S3Source, run_s3};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

#[tokio::test]
async fn a_trail_bucket_gives_the_same_result_as_the_same_files_on_disk() {
    let Some(data) = real_data() else {
        return;
    };
    let bucket = MemoryBucket::default();
    let day = "trails/AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/10/";
    let folder = data.join("aws_dataset/CloudTrail");
    let mut names: Vec<_> = std::fs::read_dir(&folder)
        .expect("aws_dataset lists")
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
        let bytes = std::fs::read(folder.join(name)).expect("reads");
        bucket.put(format!("{day}{name}.gz"), gzip(&bytes));
    }
    // Noise the planner must leave out or survive.
    let first = std::fs::read(folder.join(&names[0])).expect("reads");
    bucket.put(
        "trails/AWSLogs/123837392027/CloudTrail/us-east-1/2023/07/14/123837392027_CloudTrail_us-east-1_20230714T0000Z_late.json.gz",
        gzip(&first),
    );
    bucket.put(
        "trails/AWSLogs/123837392027/CloudTrail-Digest/us-east-1/2023/07/10/123837392027_CloudTrail-Digest_us-east-1_t_us-east-1_20230710T1200Z.json.gz",
        gzip(b"{\"digestStartTime\":\"x\"}"),
    );
    // A truncated object of someone else's records: read, counted corrupt, nothing matched.
    let other: String = (0..200)
        .map(|index| format!("{{\"eventTime\":\"2023-07-10T12:00:00Z\",\"eventName\":\"E{index}\",\"userIdentity\":{{\"userName\":\"mallory\"}}}},"))
        .collect();
    let mut corrupt = gzip(format!("{{\"Records\":[{}]}}", other.trim_end_matches(',')).as_bytes());
    corrupt.truncate(corrupt.len() / 2);
    bucket.put(
        "trails/AWSLogs/o-1234abcde/222222222222/CloudTrail/eu-west-1/2023/07/10/222222222222_CloudTrail_eu-west-1_20230710T1200Z_cut.json.gz",
        corrupt,
    );

    let params = Params::new().set("requester", "benjamin").window(
        datetime!(2023-07-10 11:00 UTC),
        datetime!(2023-07-10 13:00 UTC),
    );
    let library = library();
    let runbook = library.get("requester-activity").expect("runbook");
    let source = S3Source::new(
        &bucket,
        S3Location::parse("s3://bucket/trails").expect("location"),
    );
    let from_s3 = run_s3(runbook, &params, &source).await.expect("s3 run");
    let mut files = FileSource::new(&folder);
    let from_disk = trailgate_runbooks::run(runbook, &params, &mut files).expect("file run");

    // 55 real objects; the late object and the digest are not read; the corrupt org-trail
    // object is read, counted as corrupt, and its decompressed prefix kept.
    assert_eq!(from_s3.coverage.files_read, 56);
    assert_eq!(from_s3.coverage.skip_reasons.get("corrupt_gzip"), Some(&1));
    assert_eq!(from_s3.coverage.events_matched, 105);
    assert_eq!(from_s3.counts, from_disk.counts);
    assert_eq!(from_s3.distinct, from_disk.distinct);
    assert_eq!(from_s3.first_last_seen, from_disk.first_last_seen);
    assert_eq!(
        from_s3.rows.as_ref().map(|rows| rows.matched),
        from_disk.rows.as_ref().map(|rows| rows.matched)
    );
    assert!(from_s3.coverage.notes[0].contains("56 objects"));
}

#[tokio::test]
async fn the_planner_lists_only_the_window_days_plus_slack() {
    let bucket = MemoryBucket::default();
    for day in ["2023/07/09", "2023/07/10", "2023/07/11", "2023/07/12"] {
        let compact = day.replace('/', "");
        bucket.put(
            format!("AWSLogs/111111111111/CloudTrail/us-east-1/{day}/111111111111_CloudTrail_us-east-1_{compact}T2350Z_a.json.gz"),
            gzip(b"{\"Records\":[]}"),
        );
    }
    let source = S3Source::new(&bucket, S3Location::parse("s3://b").expect("location"));
    let window = trailgate_runbooks::Window {
        start: trailgate_runbooks::timefmt::parse_event_time("2023-07-10T12:00:00Z").expect("time"),
        end: trailgate_runbooks::timefmt::parse_event_time("2023-07-10T23:30:00Z").expect("time"),
    };
    let prefixes = source.day_prefixes(window).await.expect("plans");
    // The slack (1 h) pushes the end past midnight: the 10th and the 11th are listed.
    assert_eq!(
        prefixes,
        vec![
            "AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/10/",
            "AWSLogs/111111111111/CloudTrail/us-east-1/2023/07/11/",
        ]
    );
    let objects = source.plan(window).await.expect("plans");
    // Delivered 2023-07-10T23:50Z is inside [start, end + 1 h); the 11th's 23:50 is not.
    assert_eq!(objects.len(), 1);
    assert!(objects[0].0.contains("20230710T2350Z"));
}
