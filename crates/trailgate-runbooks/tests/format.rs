//! Loading runbooks: precise errors for bad files, and the library's duplicate-id check.

use trailgate_runbooks::{LoadError, Problem, Runbook};

const GOOD: &str = "\
id: sample
title: Sample
severity: low
parameters:
  - name: who
    required: true
filter:
  all:
    - field: eventName
      equals: ConsoleLogin
    - field: userIdentity.userName
      equals: \"{{ who }}\"
";

fn invalid(text: &str) -> trailgate_runbooks::InvalidRunbook {
    match Runbook::parse(text, "runbooks/x.yaml") {
        Err(LoadError::Invalid(invalid)) => *invalid,
        Err(other) => panic!("unexpected error {other}"),
        Ok(runbook) => panic!("`{}` should not load", runbook.id()),
    }
}

#[test]
fn a_good_runbook_loads() {
    let runbook = Runbook::parse(GOOD, "runbooks/x.yaml").expect("loads");
    assert_eq!(runbook.id(), "sample");
}

#[test]
fn a_bad_regex_names_file_line_column_and_path() {
    let text = GOOD.replace("      equals: ConsoleLogin", "      regex: \"(unclosed\"");
    let error = invalid(&text);
    assert_eq!(error.path, "filter.all[0].regex");
    assert_eq!((error.line, error.column), (Some(10), Some(14)));
    assert!(matches!(error.problem, Problem::InvalidRegex(_)));
    assert!(
        error
            .to_string()
            .starts_with("runbooks/x.yaml:10:14: filter.all[0].regex: invalid regex"),
        "{error}"
    );
}

#[test]
fn unknown_fields_are_rejected_with_their_location() {
    let text = GOOD.replace("      equals: ConsoleLogin", "      equal: ConsoleLogin");
    let error = invalid(&text);
    assert_eq!(error.path, "filter.all[0]");
    assert_eq!(error.line, Some(10));
    assert!(
        matches!(&error.problem, Problem::Syntax(message) if message.contains("unknown field `equal`")),
        "{error}"
    );
}

#[test]
fn unknown_parameter_references_are_rejected() {
    let text = GOOD.replace("{{ who }}", "{{ whom }}");
    let error = invalid(&text);
    assert_eq!(error.path, "filter.all[1].equals");
    assert_eq!(error.line, Some(12));
    assert_eq!(error.problem, Problem::UnknownParameter("whom".to_owned()));
}

#[test]
fn meaning_errors_have_precise_problems() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "      equals: ConsoleLogin",
            "      cidr: 10.0.0.0/33",
            "filter.all[0].cidr",
        ),
        (
            "      equals: ConsoleLogin",
            "      gt: many",
            "filter.all[0].gt",
        ),
        (
            "      equals: ConsoleLogin",
            "      equals: x\n      prefix: y",
            "filter.all[0]",
        ),
        (
            "    - field: eventName\n      equals: ConsoleLogin",
            "    - equals: ConsoleLogin",
            "filter.all[0]",
        ),
        (
            "field: eventName",
            "field: event..Name",
            "filter.all[0].field",
        ),
        ("id: sample", "id: Not Valid", "id"),
        (
            "severity: low",
            "severity: low\nwindow:\n  lookback: P1M",
            "window.lookback",
        ),
    ];
    for (from, to, path) in cases {
        let text = GOOD.replacen(from, to, 1);
        let error = invalid(&text);
        assert_eq!(&error.path, path, "{to}: {error}");
        assert!(error.line.is_some(), "{to}: no line in {error}");
    }
    let text = GOOD.replace("    required: true", "    required: false");
    assert_eq!(invalid(&text).problem, Problem::MissingDefault);
}

#[test]
fn yaml_syntax_errors_carry_a_location() {
    let error = invalid("id: x\ntitle: [unclosed\n");
    assert!(error.line.is_some());
    assert!(matches!(error.problem, Problem::Syntax(_)));
}

#[test]
fn parameters_are_checked_when_binding() {
    let runbook = Runbook::parse(GOOD, "x.yaml").expect("loads");
    let missing = runbook
        .compile(&trailgate_runbooks::Params::new())
        .err()
        .map(|error| error.to_string());
    assert_eq!(missing.as_deref(), Some("missing required parameter `who`"));
    let unknown = runbook
        .compile(
            &trailgate_runbooks::Params::new()
                .set("who", "a")
                .set("what", "b"),
        )
        .err()
        .map(|error| error.to_string());
    assert_eq!(unknown.as_deref(), Some("unknown parameter `what`"));
}

#[test]
fn duplicate_ids_are_rejected_by_the_library() {
    let folder =
        std::env::temp_dir().join(format!("trailgate-runbooks-dup-{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("temp folder");
    std::fs::write(folder.join("a.yaml"), GOOD).expect("write");
    std::fs::write(folder.join("b.yaml"), GOOD).expect("write");
    let error = trailgate_runbooks::Library::load_dir(&folder)
        .err()
        .map(|error| error.to_string())
        .unwrap_or_default();
    let _ = std::fs::remove_dir_all(&folder);
    assert!(error.contains("duplicate runbook id `sample`"), "{error}");
    assert!(
        error.contains("a.yaml") && error.contains("b.yaml"),
        "{error}"
    );
}

#[test]
fn the_readme_example_is_a_valid_runbook() {
    let readme = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../runbooks/README.md"
    ))
    .expect("README");
    let start = readme.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = start + readme[start..].find("```").expect("block end");
    let runbook = Runbook::parse(&readme[start..end], "README.md").expect("the example loads");
    assert_eq!(runbook.id(), "console-password-spray");
}
