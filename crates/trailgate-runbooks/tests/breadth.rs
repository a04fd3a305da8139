//! Detection breadth (issue 19): the runbooks added for each family of AWS attack technique,
//! and the generalised ones, on events this crate wrote from AWS's documented record shapes
//! (tests/fixtures/breadth.ndjson), plus a realistic benign day (tests/fixtures/benign-day.ndjson).
//!
//! Each breadth event is labelled by its eventID: `fires/<runbook>/<case>` must match the
//! runbook, `quiet/<runbook>/<case>` is a lookalike (routine administration, a bounded grant, a
//! call whose error says nothing happened) that must not. A case named `denied` is the refused
//! attempt (AccessDenied or UnauthorizedOperation) every family reports too.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead as _;

use common::{all_time, fixture, group, library};
use serde_json::Value;
use trailgate_runbooks::source::files::FileSource;
use trailgate_runbooks::{Params, Runbook, Severity, attack, run};

/// The allow-list an operator of the fixtures' account would set: the CI deployment role and
/// the application role that reads its own secrets and calls its model.
const ALLOWED: &str =
    "arn:aws:iam::111122223333:role/github-deploy,arn:aws:iam::111122223333:role/orders-api";

/// The 25 runbooks that existed before issue 19; every other one must have breadth cases.
const BEFORE_ISSUE_19: [&str; 25] = [
    "requester-activity",
    "access-denied",
    "console-login-failures",
    "console-password-spray",
    "console-login-without-mfa",
    "root-usage",
    "logging-tampering",
    "iam-credential-persistence",
    "iam-backdoor-other-user",
    "iam-privilege-escalation",
    "federation-changes",
    "role-assumptions",
    "instance-credentials-off-host",
    "access-key-activity",
    "recon-burst",
    "secrets-access",
    "s3-data-access",
    "sharing-exfiltration",
    "bucket-policy-exposure",
    "network-exposure",
    "compute-abuse",
    "destructive-activity",
    "account-changes",
    "resource-history",
    "jit-session-audit",
];

/// Error codes that mean the caller was refused, as opposed to errors that say nothing happened.
const DENIALS: [&str; 4] = [
    "AccessDenied",
    "AccessDeniedException",
    "Client.UnauthorizedOperation",
    "UnauthorizedOperation",
];

fn records(name: &str) -> Vec<Value> {
    let file = std::fs::File::open(fixture(name)).expect("fixture opens");
    std::io::BufReader::new(file)
        .lines()
        .map(|line| serde_json::from_str(&line.expect("line reads")).expect("fixture line is JSON"))
        .collect()
}

/// Parameters for a run on the fixtures: the whole time range, and [`ALLOWED`] as the allow-list
/// of every runbook that has one.
fn params_for(runbook: &Runbook) -> Params {
    let mut params = all_time();
    if runbook
        .spec()
        .parameters
        .iter()
        .any(|param| param.name == "allowed_principals")
    {
        params = params.set("allowed_principals", ALLOWED);
    }
    if runbook.id() == "identity-center-session-audit" {
        params = common::identity_center_params(params);
    }
    params
}

/// `(verdict, runbook, case)` of a breadth event.
fn label(record: &Value) -> (String, String, String) {
    let id = record["eventID"].as_str().expect("eventID");
    let mut parts = id.splitn(3, '/');
    let (Some(verdict), Some(runbook), Some(case)) = (parts.next(), parts.next(), parts.next())
    else {
        panic!("eventID `{id}` is not verdict/runbook/case");
    };
    (verdict.to_owned(), runbook.to_owned(), case.to_owned())
}

#[test]
fn every_labelled_event_fires_or_stays_quiet_for_its_runbook() {
    let library = library();
    let mut wrong = Vec::new();
    for record in records("breadth.ndjson") {
        let (verdict, id, case) = label(&record);
        let Some(runbook) = library.get(&id) else {
            panic!("breadth case {case} names unknown runbook `{id}`");
        };
        let compiled = runbook.compile(&params_for(runbook)).expect("binds");
        let expected = match verdict.as_str() {
            "fires" => true,
            "quiet" => false,
            other => panic!("unknown verdict `{other}`"),
        };
        if compiled.matches(&record) != expected {
            wrong.push(format!("{verdict}/{id}/{case}"));
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts: {wrong:#?}");
}

#[test]
fn scanning_the_file_matches_exactly_the_events_the_matcher_accepts() {
    // The scan goes through the literal prefilter; it must neither drop nor add a record.
    let library = library();
    let all = records("breadth.ndjson");
    for runbook in library.iter() {
        let params = params_for(runbook);
        if runbook.spec().parameters.iter().any(|param| param.required) {
            continue;
        }
        let compiled = runbook.compile(&params).expect("binds");
        let expected = all.iter().filter(|record| compiled.matches(record)).count() as u64;
        let mut source = FileSource::new(fixture("breadth.ndjson"));
        let result = run(runbook, &params, &mut source).expect("runs");
        assert_eq!(result.coverage.events_scanned, all.len() as u64);
        assert_eq!(result.coverage.events_matched, expected, "{}", runbook.id());
    }
}

#[test]
fn every_new_runbook_has_a_firing_a_denied_and_a_quiet_case() {
    let library = library();
    let mut cases: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for record in records("breadth.ndjson") {
        let (verdict, id, case) = label(&record);
        if case == "denied" {
            let code = record["errorCode"].as_str().unwrap_or_default();
            assert!(
                DENIALS.contains(&code),
                "{id}/denied has errorCode `{code}`"
            );
        }
        cases.entry(id).or_default().insert((verdict, case));
    }
    let mut missing = Vec::new();
    for runbook in library.iter() {
        if BEFORE_ISSUE_19.contains(&runbook.id()) {
            continue;
        }
        let have = cases.get(runbook.id()).cloned().unwrap_or_default();
        let fires = have
            .iter()
            .any(|(verdict, case)| verdict == "fires" && case != "denied");
        let denied = have.contains(&("fires".to_owned(), "denied".to_owned()));
        let quiet = have.iter().any(|(verdict, _)| verdict == "quiet");
        if !(fires && denied && quiet) {
            missing.push(format!(
                "{} (fires {fires}, denied {denied}, quiet {quiet})",
                runbook.id()
            ));
        }
    }
    assert!(missing.is_empty(), "runbooks without cases: {missing:#?}");
}

#[test]
fn the_library_has_sixty_runbooks_whose_detections_name_valid_attack_ids() {
    let library = library();
    assert!(library.len() >= 60, "{} runbooks", library.len());
    for runbook in library.iter() {
        let spec = runbook.spec();
        // Context runbooks (info: what a requester did, a resource's history) are not
        // detections and may name no technique; every detection names one.
        assert!(
            spec.severity == Severity::Info || !spec.attack.is_empty(),
            "{} names no technique",
            runbook.id()
        );
        for id in &spec.attack {
            assert!(
                attack::is_well_formed(id),
                "{}: `{id}` is malformed",
                runbook.id()
            );
            assert!(
                attack::name(id).is_some(),
                "{}: `{id}` is not in data/attack-cloud-techniques.tsv",
                runbook.id()
            );
        }
        assert!(
            !spec.next_steps.is_empty(),
            "{} has no next steps",
            runbook.id()
        );
    }
}

#[test]
fn thresholded_runbooks_find_the_burst_and_not_the_single_calls() {
    let breadth = fixture("breadth.ndjson");
    let ssm = run_with_allow_list("ssm-command-fanout", breadth.clone());
    // Five commands and the denied session of mallory.
    assert_eq!(
        group(&ssm, &["arn:aws:iam::111122223333:user/mallory"]),
        Some(6)
    );
    assert!(ssm.has_findings());
    let deletion = run_with_allow_list("mass-deletion", breadth.clone());
    // Twenty object deletions and the denied DeleteBucket; the deployment role's teardown is
    // allow-listed.
    assert_eq!(
        group(&deletion, &["arn:aws:iam::111122223333:user/mallory"]),
        Some(21)
    );
    assert_eq!(
        deletion.counts.as_ref().map(|counts| counts.groups.len()),
        Some(1)
    );
    let probes = run_with_allow_list("sts-identity-probes", breadth);
    let counts = probes.counts.as_ref().expect("counts");
    assert_eq!(counts.groups.len(), 1);
    assert_eq!(counts.groups[0].key[0], "AKIAEXAMPLEMALLORY01");
    assert_eq!(counts.groups[0].distinct, Some(2));
}

fn run_with_allow_list(id: &str, path: std::path::PathBuf) -> trailgate_runbooks::RunbookResult {
    let library = library();
    let runbook = library.get(id).expect("runbook exists");
    let mut source = FileSource::new(path);
    run(runbook, &params_for(runbook), &mut source).expect("runs")
}

#[test]
fn a_benign_day_raises_no_medium_or_higher_finding() {
    // Deployments by the CI role (allow-listed as an operator would), console use through SAML,
    // AWS services acting for the account, logging turned on, grants bounded by conditions.
    let library = library();
    let mut fired = Vec::new();
    let mut low = Vec::new();
    for runbook in library.iter() {
        if runbook.spec().parameters.iter().any(|param| param.required) {
            continue;
        }
        let mut source = FileSource::new(fixture("benign-day.ndjson"));
        let result = run(runbook, &params_for(runbook), &mut source).expect("runs");
        assert!(result.coverage.events_scanned >= 40, "{}", runbook.id());
        if result.has_findings() {
            if runbook.spec().severity >= Severity::Medium {
                fired.push(format!("{}: {}", runbook.id(), result.to_text()));
            } else {
                low.push(runbook.id().to_owned());
            }
        }
    }
    assert!(fired.is_empty(), "fired on a benign day: {fired:#?}");
    // Context runbooks may list benign activity; these are the ones that do, so a change shows:
    // the developer's denied cost page, the console's reads, the CI role's web-identity
    // assumption and the instance's object read.
    assert_eq!(
        low,
        vec![
            "access-denied",
            "recon-burst",
            "role-assumptions",
            "s3-data-access"
        ]
    );
}

/// The new runbooks on the real logs nobody here wrote (an attack simulation, see
/// ../shared/data/cloudtrail/SOURCES.md); the counts were read from the files with Python.
#[test]
fn new_runbooks_find_the_simulated_attacks_in_the_real_logs() {
    let Some(folder) = common::real_data() else {
        return;
    };
    let matched = |id: &str| common::run_on(id, all_time(), folder.clone());
    // AddPermission20150331v2 with principal "*" on stratus-red-team-backdoor-f-func.
    let public = matched("resource-policy-public");
    assert_eq!(
        common::column(&public, "requestParameters.functionName"),
        vec!["stratus-red-team-backdoor-f-func"]
    );
    // The lifecycle rule "nuke-cloudtrail-logs-after-1-day" on the trail's bucket.
    let lifecycle = matched("s3-lifecycle-expiration");
    assert_eq!(
        common::column(
            &lifecycle,
            "requestParameters.LifecycleConfiguration.Rule.ID"
        ),
        vec!["nuke-cloudtrail-logs-after-1-day"]
    );
    // The refused LeaveOrganization: a denied attempt is reported.
    let organizations = matched("organizations-changes");
    assert_eq!(
        group(&organizations, &["LeaveOrganization", "AccessDenied"]),
        Some(1)
    );
    // CreateTrustAnchor and CreateProfile.
    assert_eq!(matched("roles-anywhere-changes").coverage.events_matched, 2);
    // The two UpdateFunctionCode20150331v2 calls.
    assert_eq!(matched("lambda-code-change").coverage.events_matched, 2);
    // SSH from the world in the flat cidrIp form (port 22); the 443 rule is not sensitive.
    assert_eq!(
        common::column(
            &matched("security-group-sensitive-ports"),
            "requestParameters.fromPort"
        ),
        vec!["22"]
    );
    // One SendCommand: under the fan-out threshold.
    let ssm = matched("ssm-command-fanout");
    assert_eq!(
        (ssm.coverage.events_matched, ssm.has_findings()),
        (1, false)
    );
    // bert-jan's cleanup (72 deletions) is the one principal over the mass-deletion threshold.
    let deletion = matched("mass-deletion");
    assert_eq!(
        group(&deletion, &["arn:aws:iam::123837392027:user/bert-jan"]),
        Some(72)
    );
    assert_eq!(
        deletion.counts.as_ref().map(|counts| counts.groups.len()),
        Some(1)
    );
    // Every Stratus Red Team call announces the tool in its user agent.
    assert!(matched("offensive-tool-user-agent").coverage.events_matched > 1000);
}
