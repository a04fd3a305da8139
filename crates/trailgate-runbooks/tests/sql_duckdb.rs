//! The SQL compiler proven against the engine: every runbook of the library, bound to real
//! parameter values, is compiled with `Dialect::DuckDb`, run by DuckDB over the same files the
//! engine reads (the real logs in ../shared/data/cloudtrail and this crate's fixtures, through
//! `sql::duckdb_view`, which exposes the Athena table's columns), and each output section must
//! equal the engine's: summary counts, rows, groups, top values, distinct values, first/last seen.
//!
//! DuckDB comes from `.venv-duckdb` (`scripts/bootstrap.sh duckdb`). Without it the test fails
//! when `CI` is set and is skipped with a note otherwise.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{
    all_time, duckdb, duckdb_python, fixture, identity_center_params, library, real_data, table,
};
use serde_json::json;
use time::macros::datetime;
use trailgate_runbooks::source::files::FileSource;
use trailgate_runbooks::sql::{self, Dialect, FileLayout, Section};
use trailgate_runbooks::{Params, RunbookResult, run, timefmt};

/// A set of files read both ways.
struct Dataset {
    name: &'static str,
    /// What the engine reads (a file or folder).
    root: PathBuf,
    /// The DuckDB view over the same files, one per layout.
    views: Vec<(FileLayout, Vec<PathBuf>)>,
}

/// One runbook with one set of parameter values.
struct Case {
    runbook: String,
    label: String,
    params: Params,
}

/// Parameter sets per runbook: values that find something in the data, values that find
/// nothing, and injection attempts (which must find nothing, and not break the SQL).
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |runbook: &str, label: &str, params: Params| {
        cases.push(Case {
            runbook: runbook.to_owned(),
            label: label.to_owned(),
            params,
        });
    };
    for runbook in library().iter() {
        let id = runbook.id();
        match id {
            "requester-activity" => {
                add(id, "benjamin", all_time().set("requester", "benjamin"));
                add(id, "bert-jan", all_time().set("requester", "Bert-Jan"));
                add(id, "injection", all_time().set("requester", "' OR 1=1 --"));
                add(
                    id,
                    "injection-2",
                    all_time().set("requester", "x') OR ('a'='a"),
                );
                add(
                    id,
                    "identity-center-user",
                    all_time().set("requester", "nobody").set(
                        "identity_center_user_ids",
                        "94482488-3041-7026-18f3-be45837cd0e4",
                    ),
                );
            }
            "access-key-activity" => {
                add(
                    id,
                    "key",
                    all_time().set("access_key_id", "AKIATFQR7NSCUXC3DDDP"),
                );
                // The condition is case-sensitive: the lower-case key finds nothing.
                add(
                    id,
                    "lower-case key",
                    all_time().set("access_key_id", "akiatfqr7nscuxc3dddp"),
                );
            }
            "resource-history" => {
                add(
                    id,
                    "role",
                    all_time().set("resource", "stratus-red-team-backdoor-r-role"),
                );
                add(
                    id,
                    "snapshot",
                    all_time().set("resource", "snap-083d3b857c13988bc"),
                );
                add(id, "quote", all_time().set("resource", "'"));
                add(id, "percent", all_time().set("resource", "%"));
            }
            "jit-session-audit" => {
                add(
                    id,
                    "bert-jan",
                    all_time()
                        .set("requester", "bert-jan")
                        .set("request_id", "r-1")
                        .set("session_name", "tg-bert-jan-r-1"),
                );
                add(
                    id,
                    "alice",
                    all_time()
                        .set("requester", "alice")
                        .set("request_id", "r-7f3a9c")
                        .set("session_name", "tg-alice-r-7f3a9c"),
                );
                add(
                    id,
                    "injection",
                    all_time()
                        .set("requester", "' OR ''='")
                        .set("request_id", "1' OR '1'='1")
                        .set("session_name", "x' OR 'y'='y"),
                );
            }
            "identity-center-session-audit" => {
                add(id, "alice", identity_center_params(all_time()));
                add(
                    id,
                    "injection",
                    all_time()
                        .set("user_name", "' OR ''='")
                        .set("user_id", "1' OR '1'='1")
                        .set("permission_set", "%")
                        .set("account", "_"),
                );
            }
            _ => {
                let required: Vec<&str> = runbook
                    .spec()
                    .parameters
                    .iter()
                    .filter(|param| param.required)
                    .map(|param| param.name.as_str())
                    .collect();
                assert!(
                    required.is_empty(),
                    "runbook `{id}` has required parameters {required:?}: add a case here"
                );
                add(id, "defaults", all_time());
                // A narrow window: 12:00 to 12:10 on the day of the attack simulation.
                add(
                    id,
                    "12:00-12:10",
                    Params::new().window(
                        datetime!(2023-07-10 12:00 UTC),
                        datetime!(2023-07-10 12:10 UTC),
                    ),
                );
            }
        }
    }
    cases
}

fn datasets() -> Vec<Dataset> {
    let mut datasets = Vec::new();
    if let Some(folder) = real_data() {
        let files = FileSource::new(&folder).files().expect("real data lists");
        datasets.push(Dataset {
            name: "real",
            root: folder,
            views: vec![(FileLayout::Records, files)],
        });
    }
    datasets.push(Dataset {
        name: "benign",
        root: fixture("benign.json"),
        views: vec![(FileLayout::Records, vec![fixture("benign.json")])],
    });
    datasets.push(Dataset {
        name: "attacks",
        root: fixture("attacks.ndjson"),
        views: vec![(FileLayout::Lines, vec![fixture("attacks.ndjson")])],
    });
    // The detection-breadth cases and the benign day (tests/breadth.rs): every family's firing,
    // denied and quiet events, so the SQL of the newer runbooks is proven on what they match.
    for (name, file) in [
        ("breadth", "breadth.ndjson"),
        ("benign_day", "benign-day.ndjson"),
    ] {
        datasets.push(Dataset {
            name,
            root: fixture(file),
            views: vec![(FileLayout::Lines, vec![fixture(file)])],
        });
    }
    datasets
}

#[test]
fn every_runbook_gives_the_same_result_in_duckdb_sql_and_in_the_engine() {
    prove(Dialect::DuckDb);
}

/// The Athena SQL itself, executed: every query is parsed as Trino and transpiled to DuckDB by
/// sqlglot, then run over the same view, and must equal the engine like the DuckDB dialect.
#[test]
fn every_runbook_gives_the_same_result_in_athena_sql_transpiled_by_sqlglot_and_in_the_engine() {
    prove(Dialect::Athena);
}

/// Runs every case on every dataset in the engine and in `dialect`'s SQL, and compares them.
fn prove(dialect: Dialect) {
    let Some(python) = duckdb_python() else {
        return;
    };
    let library = library();
    let cases = cases();
    let mut setup = Vec::new();
    let mut queries = Vec::new();
    // (query id) -> (dataset, case index, section).
    let mut expected = Expected::new();
    let mut engine: BTreeMap<(usize, usize), RunbookResult> = BTreeMap::new();
    let datasets = datasets();
    for (dataset_index, dataset) in datasets.iter().enumerate() {
        let view = format!("ct_{}", dataset.name);
        let parts: Vec<String> = dataset
            .views
            .iter()
            .enumerate()
            .map(|(index, (layout, files))| {
                let name = format!("{view}_{index}");
                let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
                setup.push(sql::duckdb_view(&name, &files, *layout).expect("view compiles"));
                format!("SELECT * FROM {name}")
            })
            .collect();
        // The queries read the view's columns from a table: the same data, parsed once
        // instead of once per query (hundreds of queries).
        setup.push(format!(
            "CREATE TABLE {view} AS {}",
            parts.join(" UNION ALL ")
        ));
        for (case_index, case) in cases.iter().enumerate() {
            let runbook = library.get(&case.runbook).expect("runbook exists");
            let mut source = FileSource::new(&dataset.root);
            let result = run(runbook, &case.params, &mut source).expect("engine runs");
            let compiled = runbook.compile(&case.params).expect("binds");
            let plan = match compiled.to_sql(dialect, &view) {
                Ok(plan) => plan,
                Err(error) => panic!("{} does not compile to SQL: {error}", case.runbook),
            };
            for query in plan.queries {
                let id = format!(
                    "{}/{}/{}/{}",
                    dataset.name,
                    case.runbook,
                    case.label,
                    query.section.name()
                );
                queries.push(json!({"id": id, "sql": query.sql}));
                expected.insert(id, (dataset_index, case_index, query.section));
            }
            engine.insert((dataset_index, case_index), result);
        }
    }
    let (version, compared) = run_and_compare(&python, dialect, setup, queries, &expected, &engine);
    let mut matched_cases = 0;
    for ((dataset_index, case_index), result) in &engine {
        if result.coverage.events_matched > 0 {
            matched_cases += 1;
        }
        println!(
            "{:8} {:32} {:18} scanned {:5} matched {:4}",
            datasets[*dataset_index].name,
            cases[*case_index].runbook,
            cases[*case_index].label,
            result.coverage.events_scanned,
            result.coverage.events_matched
        );
    }
    println!(
        "{} on DuckDB {version}: {compared} section queries compared over {} runs ({matched_cases} with matches)",
        dialect.as_str(),
        engine.len()
    );
    // The proof means something only if most runbooks find something somewhere.
    let ids_with_matches: std::collections::BTreeSet<&str> = engine
        .iter()
        .filter(|(_, result)| result.coverage.events_matched > 0)
        .map(|((_, case_index), _)| cases[*case_index].runbook.as_str())
        .collect();
    assert!(
        ids_with_matches.len() >= 20,
        "only {} runbooks matched anything: {ids_with_matches:?}",
        ids_with_matches.len()
    );
}

/// Which engine result and section each query id is compared with: (dataset, case, section).
type Expected = BTreeMap<String, (usize, usize, Section)>;

/// Runs the queries on DuckDB (Athena's through sqlglot) after `setup`, and compares each
/// section with the engine's result; panics with every difference. Returns DuckDB's version and
/// the number of sections compared.
fn run_and_compare(
    python: &Path,
    dialect: Dialect,
    setup: Vec<String>,
    queries: Vec<serde_json::Value>,
    expected: &Expected,
    engine: &BTreeMap<(usize, usize), RunbookResult>,
) -> (String, usize) {
    let mut request = json!({"setup": setup, "queries": queries});
    if dialect == Dialect::Athena {
        request["read"] = json!("trino");
    }
    let answer = duckdb(python, &request);
    let errors = answer["errors"].as_object().expect("errors object");
    assert!(
        errors.is_empty(),
        "{} of {} {} queries rejected: {errors:#?}",
        errors.len(),
        queries.len(),
        dialect.as_str()
    );
    let results = answer["results"].as_object().expect("results object");
    let mut failures = Vec::new();
    let mut compared = 0;
    for (id, (dataset_index, case_index, section)) in expected {
        let result = &engine[&(*dataset_index, *case_index)];
        let rows = table(&results[id.as_str()]);
        if let Err(difference) = compare(section, result, &rows) {
            failures.push(format!("{id}: {difference}"));
        }
        compared += 1;
    }
    assert!(
        failures.is_empty(),
        "{} of {compared} sections differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (answer["duckdb"].to_string(), compared)
}

fn compare(section: &Section, result: &RunbookResult, sql: &[Vec<String>]) -> Result<(), String> {
    let same = |engine: Vec<Vec<String>>| {
        if engine == sql {
            Ok(())
        } else {
            Err(format!("engine {engine:?}\n    sql    {sql:?}"))
        }
    };
    match section {
        Section::Summary => {
            let coverage = &result.coverage;
            same(vec![vec![
                coverage.events_scanned.to_string(),
                coverage.events_matched.to_string(),
                coverage.events_outside_window.to_string(),
            ]])
        }
        Section::Rows => {
            let rows = result.rows.as_ref().ok_or("no rows section")?;
            compare_rows(&rows.columns, &rows.rows, rows.matched, sql)
        }
        Section::CountBy => {
            let counts = result.counts.as_ref().ok_or("no count_by section")?;
            same(
                counts
                    .groups
                    .iter()
                    .map(|group| {
                        let mut row = group.key.clone();
                        row.push(group.count.to_string());
                        if let Some(distinct) = group.distinct {
                            row.push(distinct.to_string());
                        }
                        row.push(counts.groups_total.to_string());
                        row
                    })
                    .collect(),
            )
        }
        Section::Top => {
            let top = result.top.as_ref().ok_or("no top section")?;
            same(
                top.values
                    .iter()
                    .map(|value| vec![value.value.clone(), value.count.to_string()])
                    .collect(),
            )
        }
        Section::Distinct(field) => {
            let section = result
                .distinct
                .iter()
                .find(|section| &section.field == field)
                .ok_or("no distinct section")?;
            same(
                section
                    .values
                    .iter()
                    .map(|value| vec![value.value.clone(), value.count.to_string()])
                    .collect(),
            )
        }
        Section::FirstLastSeen => {
            let seen = result
                .first_last_seen
                .as_ref()
                .ok_or("no first_last_seen")?;
            same(
                seen.entries
                    .iter()
                    .map(|entry| {
                        let mut row = entry.key.clone();
                        row.push(entry.first.clone());
                        row.push(entry.last.clone());
                        row.push(entry.count.to_string());
                        row
                    })
                    .collect(),
            )
        }
    }
}

/// Rows are compared as multisets: records with the same `eventTime` second have no defined
/// order in either engine. When the limit cut the rows, records at the boundary second are
/// interchangeable, so only the rows before it are compared as sets, and the counts must agree.
fn compare_rows(
    columns: &[String],
    engine: &[Vec<String>],
    matched: u64,
    sql: &[Vec<String>],
) -> Result<(), String> {
    if engine.len() != sql.len() {
        return Err(format!(
            "engine {} rows, sql {} rows",
            engine.len(),
            sql.len()
        ));
    }
    let cut = matched > engine.len() as u64;
    let time_column = columns.iter().position(|column| column == "eventTime");
    let second = |row: &Vec<String>| {
        time_column
            .and_then(|index| timefmt::parse_event_time(&row[index]))
            .unwrap_or(0)
    };
    let (mut left, mut right): (Vec<Vec<String>>, Vec<Vec<String>>) = if cut {
        let Some(_) = time_column else {
            return Ok(());
        };
        let boundary = engine.last().map(second).unwrap_or(0);
        let sql_boundary = sql.last().map(second).unwrap_or(0);
        if boundary != sql_boundary {
            return Err(format!(
                "boundary second differs: engine {boundary}, sql {sql_boundary}"
            ));
        }
        (
            engine
                .iter()
                .filter(|row| second(row) != boundary)
                .cloned()
                .collect(),
            sql.iter()
                .filter(|row| second(row) != boundary)
                .cloned()
                .collect(),
        )
    } else {
        (engine.to_vec(), sql.to_vec())
    };
    // The time order itself must agree: the multiset of seconds in order.
    let engine_seconds: Vec<i64> = engine.iter().map(second).collect();
    let sql_seconds: Vec<i64> = sql.iter().map(second).collect();
    if engine_seconds != sql_seconds {
        return Err("rows are not in the same time order".to_owned());
    }
    left.sort();
    right.sort();
    if left == right {
        Ok(())
    } else {
        Err(format!("engine {left:?}\n    sql    {right:?}"))
    }
}

/// Athena is not available here, so its dialect is checked for what can be checked offline:
/// every runbook compiles, and parameters appear only as quoted literals.
#[test]
fn every_compiled_athena_query_parses_as_trino_sql() {
    // sqlglot (pinned in requirements/duckdb.txt, in the same venv as DuckDB) reads Athena's
    // dialect as Trino's: a query it cannot parse would fail in the customer's account.
    let Some(python) = duckdb_python() else {
        return;
    };
    let library = library();
    let mut queries = Vec::new();
    for case in cases() {
        let runbook = library.get(&case.runbook).expect("runbook exists");
        let compiled = runbook.compile(&case.params).expect("binds");
        let plan = compiled
            .to_sql(Dialect::Athena, "default.cloudtrail_logs")
            .unwrap_or_else(|error| {
                panic!("{} does not compile for Athena: {error}", case.runbook)
            });
        for (n, query) in plan.queries.iter().enumerate() {
            queries.push(
                json!({"id": format!("{}/{}/{n}", case.runbook, case.label), "sql": query.sql}),
            );
        }
    }
    // The table's DDL (partition projection on an Organization trail) is Hive DDL, as Athena
    // runs it.
    let ddl = trailgate_runbooks::athena::TrailTable {
        table: "security.cloudtrail_org".to_owned(),
        bucket: "org-trail-logs".to_owned(),
        prefix: "trails/".to_owned(),
        organization: Some("o-a1b2c3d4e5".to_owned()),
        accounts: vec!["111122223333".to_owned(), "444455556666".to_owned()],
        regions: vec!["us-east-1".to_owned(), "eu-west-1".to_owned()],
        first_day: time::macros::date!(2024 - 01 - 01),
    }
    .ddl()
    .expect("table is valid");
    queries.push(json!({"id": "ddl", "sql": ddl, "read": "athena", "kind": "create"}));
    // The check can fail: a broken query must be reported, and only it.
    queries.push(
        json!({"id": "self-check/broken", "sql": "SELECT count(* FROM \"default\".\"t\" WHERE"}),
    );
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/sqlglot_parse.py");
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python starts");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        &serde_json::to_vec(&json!({"queries": queries})).expect("serializes"),
    )
    .expect("request is written");
    let output = child.wait_with_output().expect("python finishes");
    assert!(
        output.status.success(),
        "sqlglot runner failed (scripts/bootstrap.sh duckdb installs sqlglot): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON answer");
    let errors = answer["errors"].as_object().expect("errors");
    assert!(
        errors.contains_key("self-check/broken"),
        "the broken query passed: {answer}"
    );
    assert_eq!(
        errors.len(),
        1,
        "Athena queries sqlglot cannot parse as Trino: {answer}"
    );
    assert_eq!(answer["parsed"], queries.len() - 1, "{answer}");
    println!(
        "sqlglot {}: {} Athena queries parse as Trino",
        answer["sqlglot"],
        queries.len() - 1
    );
}

#[test]
fn every_runbook_compiles_for_athena_with_quoted_parameters() {
    for case in cases() {
        let library = library();
        let runbook = library.get(&case.runbook).expect("runbook exists");
        let compiled = runbook.compile(&case.params).expect("binds");
        let plan = match compiled.to_sql(Dialect::Athena, "default.cloudtrail_logs") {
            Ok(plan) => plan,
            Err(error) => panic!("{} does not compile for Athena: {error}", case.runbook),
        };
        assert!(plan.queries.len() >= 2, "{}", case.runbook);
        for query in &plan.queries {
            assert!(query.sql.contains("FROM \"default\".\"cloudtrail_logs\""));
            assert!(query.sql.contains("from_iso8601_timestamp"));
            assert!(!query.sql.contains("lambda "), "{}", query.sql);
        }
        if case.label.starts_with("injection") {
            // The quotes of the attack are doubled inside a literal.
            assert!(plan.filter.contains("''"), "{}", plan.filter);
        }
    }
}

/// A trail bucket on disk: an Organization trail's folders for two accounts over five days,
/// written from the attack and breadth fixtures with their times moved into those days, each
/// file in the folder of its delivery (ten minutes after its last record, so the records of a
/// day's last minutes are in the next day's folder).
struct TrailBucket {
    root: PathBuf,
    /// Every log file, with its folder's day (`2024/05/0N`).
    files: Vec<(PathBuf, String)>,
}

impl TrailBucket {
    fn write(name: &str) -> TrailBucket {
        use std::io::Write as _;
        let root =
            std::env::temp_dir().join(format!("trailgate-trail-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let mut records: Vec<serde_json::Value> = Vec::new();
        for file in ["attacks.ndjson", "breadth.ndjson"] {
            let text = std::fs::read_to_string(fixture(file)).expect("fixture reads");
            records.extend(
                text.lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| serde_json::from_str(line).expect("fixture line is JSON")),
            );
        }
        let accounts = ["111122223333", "444455556666"];
        let first = datetime!(2024-05-01 0:00 UTC).unix_timestamp();
        // (account, region, folder day, delivery minute) -> records.
        let mut files: BTreeMap<(String, String, String, i64), Vec<serde_json::Value>> =
            BTreeMap::new();
        for (index, mut record) in records.into_iter().enumerate() {
            let index = index as i64;
            // Spread over five days and the whole clock, with some in each day's last minutes.
            let second = if index % 9 == 0 {
                86_400 - 120
            } else {
                (index * 7_919) % 86_400
            };
            let time = first + (index % 5) * 86_400 + second;
            let account = accounts[(index % 2) as usize];
            let region = record["awsRegion"]
                .as_str()
                .unwrap_or("us-east-1")
                .to_owned();
            record["eventTime"] = json!(timefmt::format_unix(time));
            record["recipientAccountId"] = json!(account);
            let delivered = (time / 300) * 300 + 600;
            let day = time::OffsetDateTime::from_unix_timestamp(delivered)
                .expect("in range")
                .date();
            let folder = trailgate_runbooks::source::s3::day_folder(day);
            files
                .entry((account.to_owned(), region, folder, delivered))
                .or_default()
                .push(record);
        }
        let mut written = Vec::new();
        for ((account, region, folder, delivered), records) in files {
            let stamp = timefmt::format_unix(delivered).replace(['-', ':'], "");
            let stamp = &stamp[..13];
            let dir = root.join(format!(
                "AWSLogs/o-a1b2c3d4e5/{account}/CloudTrail/{region}/{folder}"
            ));
            std::fs::create_dir_all(&dir).expect("folder is created");
            let path = dir.join(format!(
                "{account}_CloudTrail_{region}_{stamp}Z_{}.json.gz",
                written.len()
            ));
            let body = serde_json::to_vec(&json!({ "Records": records })).expect("serializes");
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&body).expect("gzip");
            std::fs::write(&path, encoder.finish().expect("gzip")).expect("file is written");
            written.push((path, folder));
        }
        TrailBucket {
            root,
            files: written,
        }
    }
}

impl Drop for TrailBucket {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[test]
fn partitioned_sql_reads_only_the_window_days_and_equals_the_engine_on_those_folders_in_duckdb() {
    prove_partitioned(Dialect::DuckDb);
}

#[test]
fn partitioned_athena_sql_reads_only_the_window_days_and_equals_the_engine_on_those_folders() {
    prove_partitioned(Dialect::Athena);
}

/// Every runbook over a projected table (`athena::TrailTable`) with a window of a day and a
/// half: the queries, pruned by `athena::Partitions`, must equal the engine run over exactly the
/// day folders the S3 source would list, scanned counts included; and those must be fewer than
/// the table holds, or the pruning proved nothing.
fn prove_partitioned(dialect: Dialect) {
    use trailgate_runbooks::athena::Partitions;
    use trailgate_runbooks::source::s3::{day_folder, delivery_days};
    let Some(python) = duckdb_python() else {
        return;
    };
    let bucket = TrailBucket::write(dialect.as_str());
    let (start, end) = (
        datetime!(2024-05-02 6:00 UTC),
        datetime!(2024-05-03 18:00 UTC),
    );
    let partitions = Partitions::default();
    let window = trailgate_runbooks::params::Window {
        start: start.unix_timestamp(),
        end: end.unix_timestamp(),
    };
    let (first, last) = delivery_days(window, partitions.delivery_slack_seconds).expect("days");
    let (first, last) = (day_folder(first), day_folder(last));
    assert_eq!(
        (first.as_str(), last.as_str()),
        ("2024/05/02", "2024/05/03")
    );
    let read: Vec<PathBuf> = bucket
        .files
        .iter()
        .filter(|(_, day)| *day >= first && *day <= last)
        .map(|(path, _)| path.clone())
        .collect();
    assert!(read.len() < bucket.files.len(), "every folder is read");
    let all: Vec<&Path> = bucket
        .files
        .iter()
        .map(|(path, _)| path.as_path())
        .collect();
    let setup = vec![
        sql::duckdb_trail_view("ct_trail_view", &all).expect("view compiles"),
        "CREATE TABLE ct_trail AS SELECT * FROM ct_trail_view".to_owned(),
    ];
    let library = library();
    let mut queries = Vec::new();
    let mut expected = Expected::new();
    let mut engine = BTreeMap::new();
    let mut scanned = 0;
    let mut outside = 0;
    for (case_index, case) in cases().iter().enumerate() {
        let params = case.params.clone().window(start, end);
        let runbook = library.get(&case.runbook).expect("runbook exists");
        let mut source = FileSource::with_roots(read.clone());
        let result = run(runbook, &params, &mut source).expect("engine runs");
        scanned = result.coverage.events_scanned;
        outside = result.coverage.events_outside_window;
        let compiled = runbook.compile(&params).expect("binds");
        let plan = compiled
            .to_sql_over(dialect, "ct_trail", Some(&partitions))
            .unwrap_or_else(|error| panic!("{} does not compile: {error}", case.runbook));
        for query in plan.queries {
            assert!(
                query
                    .sql
                    .contains("\"day\" >= '2024/05/02' AND \"day\" <= '2024/05/03'")
            );
            let id = format!(
                "trail/{}/{}/{}",
                case.runbook,
                case.label,
                query.section.name()
            );
            queries.push(json!({"id": id, "sql": query.sql}));
            expected.insert(id, (0, case_index, query.section));
        }
        engine.insert((0, case_index), result);
    }
    // The window starts after the first folder's day begins and the slack reaches past its
    // end: records outside it are read (and counted), as the S3 source reads them.
    assert!(
        outside > 0 && scanned > outside,
        "{scanned} scanned, {outside} outside"
    );
    let matched = engine
        .values()
        .filter(|result| result.coverage.events_matched > 0)
        .count();
    assert!(matched >= 20, "only {matched} runs matched anything");
    // Without the partition predicate the same query counts the whole table.
    let library_case = library.get("logging-tampering").expect("runbook exists");
    let whole = library_case
        .compile(&Params::new().window(start, end))
        .expect("binds")
        .to_sql(dialect, "ct_trail")
        .expect("compiles");
    let (version, compared) =
        run_and_compare(&python, dialect, setup.clone(), queries, &expected, &engine);
    let mut request = json!({
        "setup": setup,
        "queries": [{"id": "whole-table", "sql": whole.queries[0].sql}],
    });
    if dialect == Dialect::Athena {
        request["read"] = json!("trino");
    }
    let answer = duckdb(&python, &request);
    let total = table(&answer["results"]["whole-table"])[0][0].clone();
    assert!(
        total.parse::<u64>().expect("a count") > scanned,
        "the table holds {total}, the pruned queries read {scanned}"
    );
    println!(
        "{} on DuckDB {version}: {compared} partitioned sections equal the engine; {scanned} of {total} records read ({} of {} files)",
        dialect.as_str(),
        read.len(),
        bucket.files.len()
    );
}
