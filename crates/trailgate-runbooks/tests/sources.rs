//! Sources: bad files and records are counted and skipped without losing the rest; gzip and
//! plain files read the same; digests are skipped; LookupEvents is driven with a budget and
//! honest coverage (tested with an in-memory fake).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{all_time, fixture, library, real_data, run_on};
use flate2::Compression;
use flate2::write::GzEncoder;
use trailgate_runbooks::render::Format;
use trailgate_runbooks::source::MemorySource;
use trailgate_runbooks::source::lookup::{
    LookupBudget, LookupCallError, LookupEvent, LookupEventsApi, LookupPage, LookupRequest,
    LookupSource, run_lookup,
};
use trailgate_runbooks::spec::LookupAttribute;
use trailgate_runbooks::{Runbook, run};

fn record(name: &str, time: &str) -> String {
    format!(
        r#"{{"eventVersion":"1.08","eventTime":"{time}","eventSource":"cloudtrail.amazonaws.com","eventName":"{name}","userIdentity":{{"type":"IAMUser","arn":"arn:aws:iam::1:user/x"}},"requestParameters":null}}"#
    )
}

fn temp_folder(name: &str) -> PathBuf {
    let folder =
        std::env::temp_dir().join(format!("trailgate-runbooks-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).expect("temp folder");
    folder
}

#[test]
fn bad_input_is_counted_and_the_rest_of_each_file_is_kept() {
    let folder = temp_folder("bad");
    let good = record("StopLogging", "2024-01-01T00:00:00Z");
    // Invalid JSON, a scalar, and an oversized record between good ones.
    let huge = record(&"X".repeat(2 * 1024 * 1024), "2024-01-01T00:00:01Z");
    let records = format!(r#"{{"Records":[{good},{{"eventName": nope}},42,{huge},{good}]}}"#);
    std::fs::write(folder.join("a.json"), records).expect("write");
    // One record per line with a broken line and no eventTime in another.
    let lines = format!("{good}\nnot json at all\n{{\"eventName\":\"StopLogging\"}}\n{good}\n");
    std::fs::write(folder.join("b.json"), lines).expect("write");
    // A gzip file cut in the middle: the records before the cut are still read.
    let many: Vec<String> = (0..200)
        .map(|second| {
            record(
                "StopLogging",
                &format!("2024-01-01T01:{:02}:{:02}Z", second / 60, second % 60),
            )
        })
        .collect();
    let mut compressed = GzEncoder::new(Vec::new(), Compression::default());
    compressed
        .write_all(format!(r#"{{"Records":[{}]}}"#, many.join(",")).as_bytes())
        .expect("compress");
    let compressed = compressed.finish().expect("compress");
    std::fs::write(
        folder.join("c.json.gz"),
        &compressed[..compressed.len() / 2],
    )
    .expect("write");
    // Digest files and other extensions are not read.
    std::fs::create_dir_all(folder.join("CloudTrail-Digest")).expect("digest folder");
    std::fs::write(
        folder.join("CloudTrail-Digest/d.json"),
        format!(r#"{{"Records":[{good}]}}"#),
    )
    .expect("write");
    std::fs::write(folder.join("notes.txt"), "hello").expect("write");

    let result = run_on("logging-tampering", all_time(), folder.clone());
    let _ = std::fs::remove_dir_all(&folder);
    let reasons = &result.coverage.skip_reasons;
    assert_eq!(result.coverage.files_read, 3);
    assert_eq!(reasons.get("invalid_json"), Some(&2));
    assert_eq!(reasons.get("non_object_record"), Some(&1));
    assert_eq!(reasons.get("record_too_large"), Some(&1));
    assert_eq!(reasons.get("missing_event_time"), Some(&1));
    assert_eq!(reasons.get("corrupt_gzip"), Some(&1));
    assert_eq!(reasons.get("truncated_record"), Some(&1));
    // 2 + 2 good records in the plain files, and the part of the gzip file before the cut.
    let from_gzip = result.coverage.events_matched - 4;
    assert!(
        from_gzip > 20 && from_gzip < 200,
        "{from_gzip} records recovered from the truncated gzip file"
    );
    assert_eq!(
        result.coverage.events_scanned,
        result.coverage.events_matched
    );
}

#[test]
fn gzip_and_plain_copies_read_the_same() {
    let Some(data) = real_data() else { return };
    let plain = data.join("trailscraper/tests/cloudtrail/data/111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json");
    let gzipped = data.join("trailscraper/tests/cloudtrail/data/111111111111_CloudTrail_eu-central-1_20171211T1505Z_A6kvhMoVeCsc7v8U.json.gz");
    let from_plain = run_on("role-assumptions", all_time(), plain);
    let from_gzip = run_on("role-assumptions", all_time(), gzipped);
    assert_eq!(from_plain.coverage.events_scanned, 2);
    assert_eq!(from_plain.rows, from_gzip.rows);
    assert_eq!(from_plain.counts, from_gzip.counts);
    // The org-trail gzip object of cloud-snitch mixes eventVersion 1.08, 1.10 and 1.11.
    let org =
        data.join("cloud-snitch/backend/report/testdata/aws-cloudtrail-logs/AWSLogs/o-1234abcde");
    let result = run_on("role-assumptions", all_time(), org);
    assert_eq!(
        (
            result.coverage.events_scanned,
            result.coverage.events_matched,
            result.coverage.records_skipped
        ),
        (20, 2, 0)
    );
}

#[test]
fn a_missing_path_is_an_error_not_an_empty_result() {
    let library = library();
    let runbook = library.get("root-usage").expect("runbook");
    let mut source = trailgate_runbooks::source::files::FileSource::new("/nonexistent/trailgate");
    let error = run(runbook, &all_time(), &mut source)
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert!(error.starts_with("/nonexistent/trailgate: "), "{error}");
}

#[test]
fn rows_are_bounded_and_results_render() {
    let text = "id: t\ntitle: Test\nseverity: low\nfilter: {field: eventName, prefix: Stop}\noutput:\n  rows: {columns: [eventTime, eventName], limit: 3}\n  count_by: {fields: [eventName]}\n";
    let runbook = Runbook::parse(text, "t.yaml").expect("loads");
    let records: Vec<serde_json::Value> = (0..10)
        .rev()
        .map(|second| {
            serde_json::from_str(&record(
                "StopLogging",
                &format!("2024-01-01T00:00:0{second}Z"),
            ))
            .expect("json")
        })
        .collect();
    let result = run(&runbook, &all_time(), &mut MemorySource::new(records)).expect("runs");
    let rows = result.rows.as_ref().expect("rows");
    assert_eq!(rows.matched, 10);
    // The three oldest, whatever the input order.
    let times: Vec<&str> = rows.rows.iter().map(|row| row[0].as_str()).collect();
    assert_eq!(
        times,
        vec![
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:01Z",
            "2024-01-01T00:00:02Z"
        ]
    );
    let table = result.render(Format::Text);
    assert!(table.contains("Events (3 of 10)"), "{table}");
    assert!(table.contains("StopLogging  10"), "{table}");
    let markdown = result.render(Format::Markdown);
    assert!(
        markdown.contains("| eventName | count |\n|---|---|\n| StopLogging | 10 |"),
        "{markdown}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&result.render(Format::Json)).expect("json output parses");
    assert_eq!(json["coverage"]["events_matched"], 10);
    assert_eq!(json["coverage"]["window"]["start"], "2000-01-01T00:00:00Z");
}

/// A fake LookupEvents over canned pages; records every call and every sleep. Its clock moves
/// only when it sleeps, so the pacer's waits are exact.
struct FakeLookup {
    /// Pages per (region, value); each call returns the page at its token's index.
    pages: Vec<(String, String, Vec<LookupPage>)>,
    throttle_first: Mutex<u32>,
    calls: Mutex<Vec<LookupRequest>>,
    sleeps: Mutex<Vec<Duration>>,
    start: Instant,
}

impl FakeLookup {
    fn new(pages: Vec<(String, String, Vec<LookupPage>)>, throttle_first: u32) -> FakeLookup {
        FakeLookup {
            pages,
            throttle_first: Mutex::new(throttle_first),
            calls: Mutex::new(Vec::new()),
            sleeps: Mutex::new(Vec::new()),
            start: Instant::now(),
        }
    }
}

impl LookupEventsApi for FakeLookup {
    async fn lookup(&self, request: LookupRequest) -> Result<LookupPage, LookupCallError> {
        self.calls.lock().expect("lock").push(request.clone());
        {
            let mut throttles = self.throttle_first.lock().expect("lock");
            if *throttles > 0 {
                *throttles -= 1;
                return Err(LookupCallError::Throttled);
            }
        }
        let index: usize = request
            .next_token
            .as_deref()
            .map_or(0, |token| token.parse().unwrap_or(0));
        let pages = self
            .pages
            .iter()
            .find(|(region, value, _)| *region == request.region && *value == request.value);
        Ok(pages
            .and_then(|(_, _, pages)| pages.get(index).cloned())
            .unwrap_or_default())
    }

    async fn sleep(&self, duration: Duration) {
        self.sleeps.lock().expect("lock").push(duration);
    }

    fn now(&self) -> Instant {
        self.start + self.sleeps.lock().expect("lock").iter().sum::<Duration>()
    }
}

fn page(records: &[(&str, &str, &str)], next: Option<&str>) -> LookupPage {
    LookupPage {
        events: records
            .iter()
            .map(|(id, name, time)| LookupEvent {
                event_id: Some((*id).to_owned()),
                cloud_trail_event: Some(record(name, time)),
            })
            .collect(),
        next_token: next.map(str::to_owned),
    }
}

#[tokio::test]
async fn lookup_uses_the_hint_pages_through_and_always_covers_us_east_1() {
    let library = library();
    let runbook = library.get("logging-tampering").expect("runbook");
    let stop = "StopLogging".to_owned();
    let fake = FakeLookup::new(
        vec![
            (
                "eu-west-1".to_owned(),
                stop.clone(),
                vec![
                    page(&[("e1", "StopLogging", "2024-01-01T00:00:00Z")], Some("1")),
                    page(&[("e2", "StopLogging", "2024-01-01T00:01:00Z")], None),
                ],
            ),
            // The same event seen twice (e1) is counted once; a non-matching event is filtered locally.
            (
                "us-east-1".to_owned(),
                stop.clone(),
                vec![page(
                    &[
                        ("e1", "StopLogging", "2024-01-01T00:00:00Z"),
                        ("e3", "StartLogging", "2024-01-01T00:02:00Z"),
                    ],
                    None,
                )],
            ),
        ],
        1,
    );
    let budget = LookupBudget {
        deadline: None,
        ..LookupBudget::default()
    };
    let source = LookupSource::new(fake, &["eu-west-1"]).budget(budget);
    assert_eq!(source.regions(), ["eu-west-1", "us-east-1"]);
    let result = run_lookup(runbook, &all_time(), &source)
        .await
        .expect("runs");
    assert_eq!(result.coverage.events_matched, 2);
    assert_eq!(result.coverage.events_scanned, 3);
    assert!(!result.coverage.truncated, "{:?}", result.coverage.notes);
    let calls = source.api().calls.lock().expect("lock").clone();
    assert!(
        calls
            .iter()
            .all(|call| call.attribute == LookupAttribute::EventName && call.max_results == 50)
    );
    assert_eq!(calls[0].region, "eu-west-1");
    assert_eq!(calls[0].value, "StopLogging");
    // One throttled call retried after the first backoff, then pacing between calls.
    assert_eq!(calls[0].next_token, None);
    assert_eq!(calls[1].next_token, None);
    assert_eq!(calls[2].next_token.as_deref(), Some("1"));
    let sleeps = source.api().sleeps.lock().expect("lock").clone();
    assert_eq!(sleeps[0], Duration::from_secs(1));
    assert!(
        sleeps[1..]
            .iter()
            .all(|sleep| *sleep == Duration::from_millis(500))
    );
    // Every hinted event name is queried in both regions.
    let hinted = runbook.spec().lookup.as_ref().expect("hint").values.len();
    assert_eq!(calls.len(), 2 * hinted + 2);
}

#[tokio::test]
async fn a_page_budget_cuts_the_scan_and_says_so() {
    let library = library();
    let runbook = library.get("requester-activity").expect("runbook");
    let pages: Vec<LookupPage> = (0..5)
        .map(|index| {
            page(
                &[(&format!("e{index}"), "GetUser", "2024-01-01T00:00:00Z")],
                Some(&(index + 1).to_string()),
            )
        })
        .collect();
    let fake = FakeLookup::new(vec![("us-east-1".to_owned(), "alice".to_owned(), pages)], 0);
    let budget = LookupBudget {
        max_pages_per_query: 2,
        deadline: None,
        ..LookupBudget::default()
    };
    let source = LookupSource::new(fake, &[]).budget(budget);
    let result = run_lookup(runbook, &all_time().set("requester", "alice"), &source)
        .await
        .expect("runs");
    assert!(result.coverage.truncated);
    assert_eq!(result.coverage.files_read, 2);
    assert!(
        result
            .coverage
            .notes
            .iter()
            .any(|note| note.contains("page budget of 2")),
        "{:?}",
        result.coverage.notes
    );
    let calls = source.api().calls.lock().expect("lock").clone();
    assert_eq!(calls.len(), 2);
    assert!(
        calls
            .iter()
            .all(|call| call.attribute == LookupAttribute::Username && call.value == "alice")
    );
}

#[tokio::test]
async fn a_runbook_without_a_hint_cannot_use_lookup_events() {
    let library = library();
    let runbook = library.get("recon-burst").expect("runbook");
    let source = LookupSource::new(FakeLookup::new(Vec::new(), 0), &[]);
    let error = run_lookup(runbook, &all_time(), &source)
        .await
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    assert_eq!(
        error,
        "runbook `recon-burst` has no `lookup` hint and cannot run on LookupEvents"
    );
}

#[test]
fn the_attack_fixture_is_one_record_per_line() {
    let result = run_on("root-usage", all_time(), fixture("attacks.ndjson"));
    assert_eq!(
        (
            result.coverage.events_scanned,
            result.coverage.records_skipped
        ),
        (18, 0)
    );
}

/// A gzip bomb: `members` concatenated gzip members, each 10 MiB of zeros (about 10 KB), so
/// the file is about `members` x 10 KB and inflates to `members` x 10 MiB.
fn gzip_bomb(members: usize) -> Vec<u8> {
    let mut member = GzEncoder::new(Vec::new(), Compression::best());
    let zeros = vec![0u8; 1024 * 1024];
    for _ in 0..10 {
        member.write_all(&zeros).expect("compress");
    }
    let member = member.finish().expect("compress");
    member.repeat(members)
}

#[test]
fn a_ten_gigabyte_gzip_bomb_is_refused_counted_and_the_scan_goes_on() {
    let folder = temp_folder("bomb");
    let good = record("StopLogging", "2024-01-01T00:00:00Z");
    std::fs::write(folder.join("a.json"), format!(r#"{{"Records":[{good}]}}"#)).expect("write");
    // 1,024 members: 10 GiB once inflated, from a 10 MB file.
    let bomb = gzip_bomb(1024);
    assert!(bomb.len() < 16 * 1024 * 1024, "{} bytes", bomb.len());
    std::fs::write(folder.join("b.json.gz"), &bomb).expect("write");
    std::fs::write(
        folder.join("c.json"),
        format!(r#"{{"Records":[{good},{good}]}}"#),
    )
    .expect("write");
    // The default cap, on one thread and on two (each worker reuses its buffer).
    for threads in [1, 2] {
        let runbook = library();
        let runbook = runbook.get("logging-tampering").expect("runbook");
        let mut source =
            trailgate_runbooks::source::files::FileSource::new(&folder).threads(threads);
        let result = run(runbook, &all_time(), &mut source).expect("runs");
        let coverage = &result.coverage;
        assert_eq!(coverage.files_read, 3, "{threads} threads");
        assert_eq!(
            coverage.skip_reasons.get("object_too_large"),
            Some(&1),
            "{:?}",
            coverage.skip_reasons
        );
        assert_eq!(
            coverage.events_matched, 3,
            "the files around the bomb are read"
        );
        let text = result.render(Format::Text);
        assert!(text.contains("object_too_large"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&folder);
}

#[test]
fn an_object_just_under_the_cap_is_read_and_one_byte_over_is_refused() {
    use trailgate_runbooks::source::files::{Inflated, inflate};
    let body = format!(
        r#"{{"Records":[{}]}}"#,
        record("StopLogging", "2024-01-01T00:00:00Z")
    );
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(body.as_bytes()).expect("compress");
    let gz = gz.finish().expect("compress");
    let size = body.len() as u64;
    let mut out = Vec::new();
    assert_eq!(inflate(&gz[..], true, size, &mut out), Inflated::Whole);
    assert_eq!(out, body.as_bytes());
    assert_eq!(
        inflate(&gz[..], true, size - 1, &mut out),
        Inflated::TooLarge
    );
    assert!(out.is_empty());
    assert_eq!(
        inflate(body.as_bytes(), false, size - 1, &mut out),
        Inflated::TooLarge
    );
    assert_eq!(
        inflate(body.as_bytes(), false, size, &mut out),
        Inflated::Whole
    );
    // The S3 path shares the cap: a bomb object is refused, the next object is read.
    let library = library();
    let runbook = library.get("logging-tampering").expect("runbook");
    let compiled = runbook.compile(&all_time()).expect("binds");
    let mut scan = compiled.scan();
    let limits = trailgate_runbooks::source::files::Limits {
        max_object_bytes: 64 * 1024 * 1024,
        ..Default::default()
    };
    let s3 = trailgate_runbooks::source::s3::feed_object;
    s3(
        "AWSLogs/1/CloudTrail/r/2024/01/01/bomb.json.gz",
        &gzip_bomb(8),
        limits,
        &mut scan,
    );
    s3(
        "AWSLogs/1/CloudTrail/r/2024/01/01/ok.json.gz",
        &gz,
        limits,
        &mut scan,
    );
    let result = scan.finish();
    assert_eq!(result.coverage.files_read, 2);
    assert_eq!(
        result.coverage.skip_reasons.get("object_too_large"),
        Some(&1)
    );
    assert_eq!(result.coverage.events_matched, 1);
}
