//! CloudTrail `LookupEvents`, which moto does not implement, served from local CloudTrail log
//! files (`{"Records": [...]}`, plain or gzipped) with the real API's rules: one lookup
//! attribute, a time range, 1–50 events per page, an opaque `NextToken` bound to the query,
//! newest first, and the 2 requests per second per account and region limit.
//!
//! Like the real API it answers for the caller's own account only: each record belongs to the
//! account its `recipientAccountId` names (records without one, and every record of the files
//! given at start, belong to the hub, [`ACCOUNT_ID`]), and a call sees only its caller's
//! account's records. The router tells the caller's account from the access key.

use std::collections::{HashMap, VecDeque};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::cloudformation::ACCOUNT_ID;
use crate::error::{Error, Result};

/// Whether an `X-Amz-Target` names LookupEvents: the Rust SDK sends
/// `CloudTrail_20131101.LookupEvents`, boto3 and older SDKs the same with a
/// `com.amazonaws.cloudtrail.v20131101.` prefix.
pub fn is_lookup_events(target: &str) -> bool {
    target == "CloudTrail_20131101.LookupEvents"
        || target == "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
}

/// CloudTrail's LookupEvents quota: 2 requests per second per account per region.
const REQUESTS_PER_SECOND: usize = 2;

/// One indexed CloudTrail record.
#[derive(Debug, Clone)]
struct Indexed {
    /// The account whose history the record is part of.
    account: String,
    time: i64,
    event_id: String,
    event_name: String,
    event_source: String,
    read_only: Option<bool>,
    access_key_id: Option<String>,
    username: Option<String>,
    resources: Vec<(Option<String>, Option<String>)>,
    record: Value,
}

/// A LookupEvents failure, answered as HTTP 400 with `{"__type", "message"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    fn new(kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
        }
    }

    /// The JSON 1.1 error body.
    pub fn body(&self) -> Value {
        json!({"__type": self.kind, "message": self.message})
    }
}

/// The indexed local CloudTrail history and the per-region rate limiter.
#[derive(Debug, Default)]
pub struct CloudTrail {
    /// Newest first; ties broken by event id so paging is stable.
    events: Mutex<Vec<Indexed>>,
    calls: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl CloudTrail {
    /// Indexes every `.json`/`.json.gz` file under the given folders and files, as the hub
    /// account's history (they are the local user's own logs, whatever accounts they came from).
    pub fn load(paths: &[PathBuf]) -> Result<CloudTrail> {
        let trail = CloudTrail::default();
        let mut files = Vec::new();
        for path in paths {
            collect_files(path, &mut files)?;
        }
        for file in files {
            let document = read_document(&file)?;
            trail
                .add_records(&document, Some(ACCOUNT_ID))
                .map_err(|message| {
                    Error::Template(format!("CloudTrail file {}: {message}", file.display()))
                })?;
        }
        Ok(trail)
    }

    /// Adds the records of a `{"Records": [...]}` document, each to the account its
    /// `recipientAccountId` names (the hub's when it names none); returns how many were added.
    pub fn add(&self, document: &Value) -> std::result::Result<usize, String> {
        self.add_records(document, None)
    }

    fn add_records(
        &self,
        document: &Value,
        account: Option<&str>,
    ) -> std::result::Result<usize, String> {
        let records = document
            .get("Records")
            .and_then(Value::as_array)
            .ok_or_else(|| "expected {\"Records\": [...]}".to_owned())?;
        let mut indexed: Vec<Indexed> = records
            .iter()
            .filter_map(|record| index_record(record, account))
            .collect();
        let added = indexed.len();
        let mut events = self.events.lock().expect("cloudtrail lock");
        events.append(&mut indexed);
        events.sort_by(|a, b| {
            b.time
                .cmp(&a.time)
                .then_with(|| b.event_id.cmp(&a.event_id))
        });
        Ok(added)
    }

    /// How many records are indexed.
    pub fn len(&self) -> usize {
        self.events.lock().expect("cloudtrail lock").len()
    }

    /// Whether no record is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts a call against the account's rate limit in the region; `Err` when over it.
    pub fn admit(
        &self,
        account: &str,
        region: &str,
        now: Instant,
    ) -> std::result::Result<(), ApiError> {
        let mut calls = self.calls.lock().expect("cloudtrail lock");
        let window = calls.entry(format!("{account}/{region}")).or_default();
        while window
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= REQUESTS_PER_SECOND {
            return Err(ApiError::new("ThrottlingException", "Rate exceeded"));
        }
        window.push_back(now);
        Ok(())
    }

    /// Answers a LookupEvents request body from `account`'s history.
    pub fn lookup(&self, account: &str, request: &Value) -> std::result::Result<Value, ApiError> {
        let attributes = request
            .get("LookupAttributes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if attributes.len() > 1 {
            return Err(ApiError::new(
                "InvalidLookupAttributesException",
                "You cannot specify more than one lookup attribute.",
            ));
        }
        let filter = match attributes.first() {
            Some(attribute) => {
                let key = attribute
                    .get("AttributeKey")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let value = attribute
                    .get("AttributeValue")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                const KEYS: [&str; 8] = [
                    "AccessKeyId",
                    "EventId",
                    "EventName",
                    "EventSource",
                    "ReadOnly",
                    "ResourceName",
                    "ResourceType",
                    "Username",
                ];
                if !KEYS.contains(&key) {
                    return Err(ApiError::new(
                        "InvalidLookupAttributesException",
                        format!("Invalid attribute key `{key}`."),
                    ));
                }
                Some((key.to_owned(), value.to_owned()))
            }
            None => None,
        };
        let start = epoch_seconds(request.get("StartTime"));
        let end = epoch_seconds(request.get("EndTime"));
        if let (Some(start), Some(end)) = (start, end)
            && start > end
        {
            return Err(ApiError::new(
                "InvalidTimeRangeException",
                "Start time must be equal to or earlier than end time.",
            ));
        }
        let max_results = match request.get("MaxResults") {
            None | Some(Value::Null) => 50,
            Some(value) => match value.as_i64() {
                Some(n) if (1..=50).contains(&n) => n as usize,
                _ => {
                    return Err(ApiError::new(
                        "InvalidMaxResultsException",
                        "MaxResults must be between 1 and 50.",
                    ));
                }
            },
        };
        let query_hash = {
            let digest = Sha256::digest(format!("{filter:?}|{start:?}|{end:?}").as_bytes());
            hex::encode(&digest[..8])
        };
        let cursor = match request.get("NextToken").and_then(Value::as_str) {
            Some(token) => Some(decode_token(token, &query_hash).ok_or_else(|| {
                ApiError::new(
                    "InvalidNextTokenException",
                    "Invalid NextToken: it must come from a call with the same parameters.",
                )
            })?),
            None => None,
        };

        let events = self.events.lock().expect("cloudtrail lock");
        let mut page = Vec::new();
        let mut more = false;
        for event in events.iter().filter(|event| event.account == account) {
            // Keyset paging: everything strictly after the cursor in newest-first order, so
            // records added between pages do not shift what the next page returns.
            if let Some((time, id)) = &cursor
                && (event.time, &event.event_id) >= (*time, id)
            {
                continue;
            }
            if start.is_some_and(|s| event.time < s) || end.is_some_and(|e| event.time > e) {
                continue;
            }
            if let Some((key, value)) = &filter
                && !matches(event, key, value)
            {
                continue;
            }
            if page.len() == max_results {
                more = true;
                break;
            }
            page.push(event);
        }
        let next_token = match (more, page.last()) {
            (true, Some(last)) => Some(encode_token(last.time, &last.event_id, &query_hash)),
            _ => None,
        };
        let events: Vec<Value> = page.iter().map(|event| render(event)).collect();
        let mut response = json!({ "Events": events });
        if let Some(token) = next_token {
            response["NextToken"] = Value::String(token);
        }
        Ok(response)
    }
}

fn matches(event: &Indexed, key: &str, value: &str) -> bool {
    match key {
        "AccessKeyId" => event.access_key_id.as_deref() == Some(value),
        "EventId" => event.event_id == value,
        "EventName" => event.event_name == value,
        "EventSource" => event.event_source == value,
        "ReadOnly" => event.read_only.map(|b| b.to_string()).as_deref() == Some(value),
        "ResourceName" => event
            .resources
            .iter()
            .any(|(_, name)| name.as_deref() == Some(value)),
        "ResourceType" => event
            .resources
            .iter()
            .any(|(kind, _)| kind.as_deref() == Some(value)),
        "Username" => event.username.as_deref() == Some(value),
        _ => false,
    }
}

fn render(event: &Indexed) -> Value {
    let resources: Vec<Value> = event
        .resources
        .iter()
        .map(|(kind, name)| json!({"ResourceType": kind, "ResourceName": name}))
        .collect();
    let mut out = json!({
        "EventId": event.event_id,
        "EventName": event.event_name,
        "EventTime": event.time,
        "EventSource": event.event_source,
        "Resources": resources,
        "CloudTrailEvent": event.record.to_string(),
    });
    if let Some(read_only) = event.read_only {
        out["ReadOnly"] = Value::String(read_only.to_string());
    }
    if let Some(key) = &event.access_key_id {
        out["AccessKeyId"] = Value::String(key.clone());
    }
    if let Some(username) = &event.username {
        out["Username"] = Value::String(username.clone());
    }
    out
}

/// Whether `text` is an AWS account id (12 digits).
fn is_account_id(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit())
}

fn index_record(record: &Value, account: Option<&str>) -> Option<Indexed> {
    let account = account
        .map(str::to_owned)
        .or_else(|| {
            record
                .get("recipientAccountId")
                .and_then(Value::as_str)
                .filter(|id| is_account_id(id))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| ACCOUNT_ID.to_owned());
    let time = record.get("eventTime").and_then(Value::as_str)?;
    let time = OffsetDateTime::parse(time, &Rfc3339).ok()?.unix_timestamp();
    let text = |key: &str| record.get(key).and_then(Value::as_str).map(str::to_owned);
    let identity = record.get("userIdentity").cloned().unwrap_or(Value::Null);
    let identity_text = |key: &str| identity.get(key).and_then(Value::as_str).map(str::to_owned);
    let username = match identity_text("type").as_deref() {
        Some("IAMUser") => identity_text("userName"),
        // For assumed roles CloudTrail shows the session name, the last part of the ARN.
        Some("AssumedRole") => identity_text("arn")
            .and_then(|arn| arn.rsplit('/').next().map(str::to_owned))
            .or_else(|| {
                identity
                    .pointer("/sessionContext/sessionIssuer/userName")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
        Some("Root") => Some("root".to_owned()),
        Some("AWSService") => identity_text("invokedBy"),
        _ => identity_text("userName").or_else(|| identity_text("principalId")),
    };
    let read_only = match record.get("readOnly") {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    let resources = record
        .get("resources")
        .and_then(Value::as_array)
        .map(|resources| {
            resources
                .iter()
                .map(|r| {
                    let kind = r.get("type").and_then(Value::as_str).map(str::to_owned);
                    let name = r.get("ARN").and_then(Value::as_str).map(str::to_owned);
                    (kind, name)
                })
                .collect()
        })
        .unwrap_or_default();
    Some(Indexed {
        account,
        time,
        event_id: text("eventID")
            .unwrap_or_else(|| hex::encode(&Sha256::digest(record.to_string().as_bytes())[..16])),
        event_name: text("eventName").unwrap_or_default(),
        event_source: text("eventSource").unwrap_or_default(),
        read_only,
        access_key_id: identity_text("accessKeyId"),
        username,
        resources,
        record: record.clone(),
    })
}

fn epoch_seconds(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_f64().map(|f| f.floor() as i64),
        Value::String(s) => s.parse::<f64>().ok().map(|f| f.floor() as i64),
        _ => None,
    }
}

fn encode_token(time: i64, event_id: &str, query_hash: &str) -> String {
    let raw = json!({"t": time, "id": event_id, "q": query_hash}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_token(token: &str, query_hash: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let value: Value = serde_json::from_slice(&raw).ok()?;
    if value.get("q")?.as_str()? != query_hash {
        return None;
    }
    Some((
        value.get("t")?.as_i64()?,
        value.get("id")?.as_str()?.to_owned(),
    ))
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let metadata = std::fs::metadata(path)
        .map_err(|err| Error::io(format!("CloudTrail path {}", path.display()), err))?;
    if metadata.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|err| Error::io(format!("listing {}", path.display()), err))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        let name = entry
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if entry.is_dir() {
            collect_files(&entry, out)?;
        } else if name.ends_with(".json") || name.ends_with(".json.gz") {
            out.push(entry);
        }
    }
    Ok(())
}

fn read_document(path: &Path) -> Result<Value> {
    let bytes =
        std::fs::read(path).map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
    let bytes = if path.to_string_lossy().ends_with(".gz") {
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut decoded)
            .map_err(|err| Error::io(format!("gunzipping {}", path.display()), err))?;
        decoded
    } else {
        bytes
    };
    serde_json::from_slice(&bytes)
        .map_err(|err| Error::json(format!("parsing {}", path.display()), err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: i64, user: &str, name: &str) -> Value {
        let time = OffsetDateTime::from_unix_timestamp(1_700_000_000 + i)
            .unwrap()
            .format(&Rfc3339)
            .unwrap();
        json!({
            "eventVersion": "1.08",
            "eventTime": time,
            "eventID": format!("id-{i:03}"),
            "eventName": name,
            "eventSource": "s3.amazonaws.com",
            "readOnly": name.starts_with("Get") || name.starts_with("List"),
            "userIdentity": {"type": "IAMUser", "userName": user, "accessKeyId": format!("AKIA{}", user.to_uppercase())},
            "resources": [{"ARN": format!("arn:aws:s3:::bucket-{i}"), "type": "AWS::S3::Bucket"}],
        })
    }

    fn trail() -> CloudTrail {
        let trail = CloudTrail::default();
        let records: Vec<Value> = (0..120)
            .map(|i| {
                record(
                    i,
                    if i % 2 == 0 { "alice" } else { "bob" },
                    if i % 3 == 0 { "PutObject" } else { "GetObject" },
                )
            })
            .collect();
        assert_eq!(trail.add(&json!({ "Records": records })).unwrap(), 120);
        trail
    }

    #[test]
    fn filters_by_one_attribute_newest_first() {
        let trail = trail();
        let page = trail.lookup(ACCOUNT_ID, &json!({"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice"}], "MaxResults": 5})).unwrap();
        let events = page["Events"].as_array().unwrap();
        assert_eq!(events.len(), 5);
        assert_eq!(events[0]["EventId"], "id-118");
        assert_eq!(events[1]["EventId"], "id-116");
        assert_eq!(events[0]["Username"], "alice");
        assert_eq!(events[0]["AccessKeyId"], "AKIAALICE");
        assert_eq!(events[0]["EventTime"], 1_700_000_118);
        assert_eq!(events[0]["ReadOnly"], "true");
        assert_eq!(
            events[0]["Resources"][0],
            json!({"ResourceType": "AWS::S3::Bucket", "ResourceName": "arn:aws:s3:::bucket-118"})
        );
        let original: Value =
            serde_json::from_str(events[0]["CloudTrailEvent"].as_str().unwrap()).unwrap();
        assert_eq!(original["eventID"], "id-118");
        let writes = trail.lookup(ACCOUNT_ID, &json!({"LookupAttributes": [{"AttributeKey": "ReadOnly", "AttributeValue": "false"}]})).unwrap();
        assert_eq!(writes["Events"].as_array().unwrap().len(), 40);
        let one = trail.lookup(ACCOUNT_ID, &json!({"LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": "arn:aws:s3:::bucket-7"}]})).unwrap();
        assert_eq!(one["Events"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn pages_with_next_token_and_time_range() {
        let trail = trail();
        let query = json!({"StartTime": 1_700_000_010, "EndTime": 1_700_000_109.5});
        let mut seen = Vec::new();
        let mut request = query.clone();
        loop {
            let page = trail.lookup(ACCOUNT_ID, &request).unwrap();
            let events = page["Events"].as_array().unwrap();
            assert!(events.len() <= 50);
            seen.extend(
                events
                    .iter()
                    .map(|e| e["EventId"].as_str().unwrap().to_owned()),
            );
            match page.get("NextToken") {
                Some(token) => {
                    request = query.clone();
                    request["NextToken"] = token.clone();
                }
                None => break,
            }
        }
        assert_eq!(seen.len(), 100);
        assert_eq!(seen.first().unwrap(), "id-109");
        assert_eq!(seen.last().unwrap(), "id-010");
        // A token used with other parameters is refused.
        let first = trail.lookup(ACCOUNT_ID, &query).unwrap();
        let mut other = json!({"StartTime": 1_700_000_000});
        other["NextToken"] = first["NextToken"].clone();
        assert_eq!(
            trail.lookup(ACCOUNT_ID, &other).unwrap_err().kind,
            "InvalidNextTokenException"
        );
    }

    #[test]
    fn validates_like_the_real_api() {
        let trail = trail();
        let two = json!({"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "a"}, {"AttributeKey": "EventName", "AttributeValue": "b"}]});
        assert_eq!(
            trail.lookup(ACCOUNT_ID, &two).unwrap_err().kind,
            "InvalidLookupAttributesException"
        );
        assert_eq!(
            trail
                .lookup(ACCOUNT_ID, &json!({"MaxResults": 51}))
                .unwrap_err()
                .kind,
            "InvalidMaxResultsException"
        );
        assert_eq!(
            trail
                .lookup(ACCOUNT_ID, &json!({"MaxResults": 0}))
                .unwrap_err()
                .kind,
            "InvalidMaxResultsException"
        );
        assert_eq!(
            trail
                .lookup(ACCOUNT_ID, &json!({"StartTime": 10, "EndTime": 5}))
                .unwrap_err()
                .kind,
            "InvalidTimeRangeException"
        );
        assert_eq!(
            trail.lookup(ACCOUNT_ID, &json!({})).unwrap()["Events"]
                .as_array()
                .unwrap()
                .len(),
            50
        );
    }

    #[test]
    fn recognises_both_target_spellings() {
        assert!(is_lookup_events("CloudTrail_20131101.LookupEvents"));
        assert!(is_lookup_events(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents"
        ));
        assert!(!is_lookup_events("CloudTrail_20131101.CreateTrail"));
    }

    #[test]
    fn throttles_at_two_requests_per_second_per_region() {
        let trail = CloudTrail::default();
        let t0 = Instant::now();
        assert!(trail.admit(ACCOUNT_ID, "us-east-1", t0).is_ok());
        assert!(
            trail
                .admit(ACCOUNT_ID, "us-east-1", t0 + Duration::from_millis(100))
                .is_ok()
        );
        let err = trail
            .admit(ACCOUNT_ID, "us-east-1", t0 + Duration::from_millis(200))
            .unwrap_err();
        assert_eq!(
            err.body(),
            json!({"__type": "ThrottlingException", "message": "Rate exceeded"})
        );
        assert!(
            trail
                .admit(ACCOUNT_ID, "eu-west-1", t0 + Duration::from_millis(200))
                .is_ok(),
            "limits are per region"
        );
        assert!(
            trail
                .admit(ACCOUNT_ID, "us-east-1", t0 + Duration::from_millis(1000))
                .is_ok()
        );
    }

    #[test]
    fn each_account_sees_its_own_history_at_its_own_rate() {
        let trail = CloudTrail::default();
        let mut member = record(1, "alice", "StopLogging");
        member["recipientAccountId"] = json!("111111111111");
        let mut hub = record(2, "alice", "ListBuckets");
        hub["recipientAccountId"] = json!(ACCOUNT_ID);
        // No recipientAccountId: the hub's.
        let bare = record(3, "alice", "GetObject");
        trail.add(&json!({"Records": [member, hub, bare]})).unwrap();
        let names = |account: &str| -> Vec<String> {
            trail.lookup(account, &json!({})).unwrap()["Events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|event| event["EventName"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(names("111111111111"), ["StopLogging"]);
        assert_eq!(names(ACCOUNT_ID), ["GetObject", "ListBuckets"]);
        assert!(names("222222222222").is_empty());
        // The rate limit is per account: a busy hub does not throttle a member.
        let t0 = Instant::now();
        for at in [0, 100] {
            assert!(
                trail
                    .admit(ACCOUNT_ID, "us-east-1", t0 + Duration::from_millis(at))
                    .is_ok()
            );
        }
        assert!(
            trail
                .admit(ACCOUNT_ID, "us-east-1", t0 + Duration::from_millis(200))
                .is_err()
        );
        assert!(
            trail
                .admit("111111111111", "us-east-1", t0 + Duration::from_millis(200))
                .is_ok()
        );
    }

    #[test]
    fn assumed_role_username_is_the_session_name() {
        let trail = CloudTrail::default();
        let mut r = record(1, "x", "GetObject");
        r["userIdentity"] = json!({"type": "AssumedRole", "arn": "arn:aws:sts::123456789012:assumed-role/sandbox-admin/alice-r-1", "accessKeyId": "ASIAX"});
        trail.add(&json!({"Records": [r]})).unwrap();
        let page = trail.lookup(ACCOUNT_ID, &json!({"LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "alice-r-1"}]})).unwrap();
        assert_eq!(page["Events"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn loads_plain_and_gzipped_files_from_folders() {
        let dir = std::env::temp_dir().join(format!("trailgate-ct-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::write(
            dir.join("a.json"),
            json!({"Records": [record(1, "alice", "GetObject")]}).to_string(),
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(
            &mut gz,
            json!({"Records": [record(2, "bob", "PutObject")]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        std::fs::write(dir.join("nested/b.json.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(dir.join("ignored.txt"), "not json").unwrap();
        let trail = CloudTrail::load(std::slice::from_ref(&dir)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(trail.len(), 2);
    }
}
