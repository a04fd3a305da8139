//! The IAM evaluator the policy tests judge trailgate's documents with: requests built here,
//! evaluated by `@cloud-copilot/iam-simulate` (an independent IAM policy simulator, pinned in
//! package.json and installed by `scripts/bootstrap.sh node`) through `tests/iam/evaluate.mjs`,
//! and a matrix that counts, per document, how many outcomes were as expected.
//!
//! moto evaluates no IAM policy, so this is where "a revoke ends every session of that request
//! and nothing else" is measured rather than read off the statement's text.

use crate::template::{ACCOUNT, root};
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

/// What the simulator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Decision {
    /// An Allow applied and no Deny did.
    Allowed,
    /// A Deny statement applied.
    ExplicitlyDenied,
    /// Nothing allowed it.
    ImplicitlyDenied,
    /// The simulator refused the request (unknown action, bad policy, wrong resource type).
    Error,
}

/// The outcome a request must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Allowed.
    Allow,
    /// An explicit Deny by a statement whose `<policy type>/<policy name>/<Sid>` contains
    /// the text (e.g. `identity/trailgate-revocations/TGX`).
    DenyBy(String),
    /// Denied, explicitly or implicitly.
    Deny,
}

impl Expect {
    /// An explicit Deny by a statement matching `by`.
    pub fn deny_by(by: impl Into<String>) -> Expect {
        Expect::DenyBy(by.into())
    }

    fn holds(&self, outcome: &Outcome) -> bool {
        match self {
            Expect::Allow => outcome.decision == Decision::Allowed,
            Expect::Deny => matches!(
                outcome.decision,
                Decision::ExplicitlyDenied | Decision::ImplicitlyDenied
            ),
            Expect::DenyBy(by) => {
                outcome.decision == Decision::ExplicitlyDenied
                    && outcome.denied_by.iter().any(|d| d.contains(by.as_str()))
            }
        }
    }
}

/// The simulator's answer to one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The decision.
    pub decision: Decision,
    /// The explicit denies, as `<policy type>/<policy name>/<Sid>`.
    pub denied_by: Vec<String>,
    /// The simulator's errors, for [`Decision::Error`].
    pub errors: Value,
}

/// One request, with the documents in force: a principal calling `action` on `resource`.
#[derive(Debug, Clone)]
pub struct Request {
    /// The calling principal's ARN (a role session is `arn:aws:sts::…:assumed-role/…`).
    pub principal: String,
    /// `service:Action`.
    pub action: String,
    /// The resource ARN, or `*` for actions without resource types.
    pub resource: String,
    /// Request context (`aws:PrincipalTag/…`, `aws:CurrentTime`, `sts:SourceIdentity`, …).
    pub context: BTreeMap<String, Value>,
    /// The principal's identity policies, named.
    pub identity: Vec<(String, Value)>,
    /// The session policy, if any.
    pub session: Option<Value>,
    /// The resource's policy (a role's trust policy for `sts:AssumeRole`), if any.
    pub resource_policy: Option<Value>,
    /// SCPs, root first: one list of named policies per level.
    pub scps: Vec<Vec<(String, Value)>>,
    /// The resource's account, when it is not the principal's usual [`ACCOUNT`] (a member
    /// account's resource): IAM asks for a resource policy across accounts.
    pub resource_account: Option<String>,
}

impl Request {
    /// `principal` calling `action` on `resource`, with nothing in force yet.
    pub fn new(principal: &str, action: &str, resource: &str) -> Request {
        Request {
            principal: principal.to_owned(),
            action: action.to_owned(),
            resource: resource.to_owned(),
            context: BTreeMap::new(),
            identity: Vec::new(),
            session: None,
            resource_policy: None,
            scps: Vec::new(),
            resource_account: None,
        }
    }

    /// Adds a context key.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Request {
        self.context.insert(key.to_owned(), value.into());
        self
    }

    fn simulation(&self) -> Value {
        let named = |policies: &[(String, Value)]| -> Vec<Value> {
            policies
                .iter()
                .map(|(name, policy)| json!({"name": name, "policy": policy}))
                .collect()
        };
        let scps: Vec<Value> = self
            .scps
            .iter()
            .enumerate()
            .map(|(level, policies)| {
                json!({"orgIdentifier": format!("level-{level}"), "policies": named(policies)})
            })
            .collect();
        let mut simulation = json!({
            "request": {
                "principal": self.principal,
                "action": self.action,
                "resource": {
                    "resource": self.resource,
                    "accountId": self.resource_account.as_deref().unwrap_or(ACCOUNT),
                },
                "contextVariables": self.context,
            },
            "identityPolicies": named(&self.identity),
            "serviceControlPolicies": scps,
            "resourceControlPolicies": [],
        });
        if let Some(session) = &self.session {
            simulation["sessionPolicy"] = session.clone();
        }
        if let Some(policy) = &self.resource_policy {
            simulation["resourcePolicy"] = policy.clone();
        }
        simulation
    }
}

/// Evaluates requests in one run of the simulator, answers in order.
pub fn evaluate(requests: &[Request]) -> Result<Vec<Outcome>> {
    let script = root().join("tests").join("iam").join("evaluate.mjs");
    let module = root()
        .join("node_modules")
        .join("@cloud-copilot")
        .join("iam-simulate");
    ensure!(
        module.exists(),
        "{} is missing: run scripts/bootstrap.sh node (package.json pins it)",
        module.display()
    );
    let input: Vec<Value> = requests
        .iter()
        .enumerate()
        .map(|(n, request)| json!({"id": n.to_string(), "simulation": request.simulation()}))
        .collect();
    let mut child = Command::new("node")
        .arg(&script)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running node (Node.js 20+ is needed for the IAM evaluator)")?;
    let mut stdin = child.stdin.take().context("node's stdin")?;
    let body = serde_json::to_vec(&input)?;
    // Written on its own thread: node answers only after reading everything, and a large
    // matrix would otherwise fill both pipes.
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("writing to node panicked"))??;
    if !output.status.success() {
        bail!(
            "the IAM evaluator failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let answers: Vec<Value> = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "the evaluator's output: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })?;
    ensure!(
        answers.len() == requests.len(),
        "{} answers for {} requests",
        answers.len(),
        requests.len()
    );
    Ok(answers
        .into_iter()
        .map(|answer| Outcome {
            decision: match answer["result"].as_str() {
                Some("Allowed") => Decision::Allowed,
                Some("ExplicitlyDenied") => Decision::ExplicitlyDenied,
                Some("ImplicitlyDenied") => Decision::ImplicitlyDenied,
                _ => Decision::Error,
            },
            denied_by: answer["denied_by"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            errors: answer["errors"].clone(),
        })
        .collect())
}

/// One row of the matrix: which document it judges, what is asked, what must come out.
#[derive(Debug, Clone)]
pub struct Case {
    /// The document the row is about (the figure's row).
    pub document: String,
    /// What the row checks, for failure messages.
    pub what: String,
    /// The request.
    pub request: Request,
    /// The outcome it must have.
    pub expect: Expect,
}

/// A set of cases, evaluated together.
#[derive(Debug, Default)]
pub struct Matrix {
    /// The cases, in the order added.
    pub cases: Vec<Case>,
}

/// Per document: requests evaluated, outcomes as expected, and each unexpected one.
#[derive(Debug, Default)]
pub struct Report {
    /// document → (evaluated, expected).
    pub per_document: BTreeMap<String, (usize, usize)>,
    /// One line per unexpected outcome.
    pub unexpected: Vec<String>,
}

impl Matrix {
    /// Adds a case.
    pub fn add(
        &mut self,
        document: &str,
        what: impl Into<String>,
        request: Request,
        expect: Expect,
    ) {
        self.cases.push(Case {
            document: document.to_owned(),
            what: what.into(),
            request,
            expect,
        });
    }

    /// Evaluates every case.
    pub fn run(&self) -> Result<Report> {
        let requests: Vec<Request> = self.cases.iter().map(|case| case.request.clone()).collect();
        let outcomes = evaluate(&requests)?;
        let mut report = Report::default();
        for (case, outcome) in self.cases.iter().zip(outcomes) {
            let row = report
                .per_document
                .entry(case.document.clone())
                .or_default();
            row.0 += 1;
            if case.expect.holds(&outcome) {
                row.1 += 1;
            } else {
                report.unexpected.push(format!(
                    "[{}] {}: {} {} on {}: expected {:?}, got {:?} (denied by {:?}){}",
                    case.document,
                    case.what,
                    case.request.principal,
                    case.request.action,
                    case.request.resource,
                    case.expect,
                    outcome.decision,
                    outcome.denied_by,
                    if outcome.errors.is_null() {
                        String::new()
                    } else {
                        format!(" errors: {}", outcome.errors)
                    }
                ));
            }
        }
        Ok(report)
    }
}

impl Report {
    /// Requests evaluated in all.
    pub fn evaluated(&self) -> usize {
        self.per_document.values().map(|(n, _)| n).sum()
    }

    /// The figure: one Markdown row per document and a total.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| document | requests evaluated | outcomes as expected | unexpected |\n|---|---:|---:|---:|\n",
        );
        for (document, (evaluated, expected)) in &self.per_document {
            out.push_str(&format!(
                "| {document} | {evaluated} | {expected} | {} |\n",
                evaluated - expected
            ));
        }
        let expected: usize = self.per_document.values().map(|(_, e)| e).sum();
        out.push_str(&format!(
            "| **all** | **{}** | **{expected}** | **{}** |\n",
            self.evaluated(),
            self.evaluated() - expected
        ));
        out
    }
}
