//! The supervisor: brings the local stack up (router, moto, deployer, `cargo lambda watch`),
//! records it in the state directory, and takes it down again, by handle ([`LocalStack`]) or by
//! the PIDs in the state file ([`down`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cloudformation::{
    self, ACCOUNT_ID, DeployOptions, Deployment, REGION, STACK_NAME, UserSpec,
};
use crate::error::{Error, Result};
use crate::process::{self, ChildProcess, Spawn};
use crate::router::cloudtrail::CloudTrail;
use crate::router::{Log, Router, RouterConfig};
use crate::state::{self, ChildRecord, Ports, StackState, StackStatus};

/// How long moto and `cargo lambda watch` get to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// How long children get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Marks in a command line that identify the stack's children (checked before signalling).
const MOTO_MARKER: &str = "moto";
const LAMBDA_MARKER: &str = "lambda watch";

/// How to bring the stack up.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The repository (template.yaml, local/, .venv, .venv-sam).
    pub repo_root: PathBuf,
    /// Where state.json, aws-config and logs/ go (default `<repo>/.trailgate/local`).
    pub state_dir: PathBuf,
    /// The AWS endpoint port (0 = pick a free port).
    pub aws_port: u16,
    /// The API Gateway emulation port (0 = pick a free port).
    pub api_port: u16,
    /// Template parameter overrides, over `local/parameters.json`.
    pub parameters: BTreeMap<String, String>,
    /// CloudTrail log files or folders that LookupEvents serves.
    pub cloudtrail_paths: Vec<PathBuf>,
    /// When set, every Schedule event's function runs this often.
    pub reconcile_every: Option<Duration>,
    /// The local IAM users (default alice, bob, carol).
    pub users: Vec<UserSpec>,
    /// Whether to run `cargo lambda watch` (off for tests that only need AWS resources).
    pub lambda: bool,
    /// Instances `cargo lambda watch` may run per function (its default, and ours, is 1).
    /// Lambda itself runs concurrent invocations in separate instances; a test that needs
    /// concurrent invocations to really overlap asks for more. Not the default: on two cores,
    /// extra instances slow the context step enough to miss short approval windows.
    pub lambda_concurrency: u16,
    /// Accounts added to the local Organization's OU Prod beyond `prod` and `data`, without a
    /// member stack: an Organization of realistic size for the catalog benchmark.
    pub extra_accounts: usize,
}

impl UpOptions {
    /// The defaults: ports 4566 (AWS) and 4567 (API), state in `<repo>/.trailgate/local`.
    pub fn new(repo_root: impl Into<PathBuf>) -> UpOptions {
        let repo_root = repo_root.into();
        UpOptions {
            state_dir: repo_root.join(".trailgate").join("local"),
            repo_root,
            aws_port: 4566,
            api_port: 4567,
            parameters: BTreeMap::new(),
            cloudtrail_paths: Vec::new(),
            reconcile_every: None,
            users: UserSpec::defaults(),
            lambda: true,
            lambda_concurrency: 1,
            extra_accounts: 0,
        }
    }
}

/// A running local stack. Dropping it stops every child process; [`LocalStack::shutdown`] does
/// the same gracefully.
pub struct LocalStack {
    state: StackState,
    deployment: Deployment,
    router: Option<Router>,
    moto: Option<ChildProcess>,
    lambda: Option<ChildProcess>,
    stopped: bool,
}

impl std::fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStack")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The template parameters of the local stack: `local/parameters.json` (a flat JSON object), with
/// `Catalog` taken from `local/catalog.json` unless the file sets it.
pub fn local_parameters(repo_root: &Path) -> Result<BTreeMap<String, String>> {
    let local = repo_root.join("local");
    let mut parameters = BTreeMap::new();
    let path = local.join("parameters.json");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
        let document: BTreeMap<String, Value> = serde_json::from_str(&text)
            .map_err(|err| Error::json(format!("parsing {}", path.display()), err))?;
        for (name, value) in document {
            let value = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
            parameters.insert(name, value);
        }
    }
    let catalog = local.join("catalog.json");
    if !parameters.contains_key("Catalog") && catalog.exists() {
        let text = std::fs::read_to_string(&catalog)
            .map_err(|err| Error::io(format!("reading {}", catalog.display()), err))?;
        let document: Value = serde_json::from_str(&text)
            .map_err(|err| Error::json(format!("parsing {}", catalog.display()), err))?;
        parameters.insert("Catalog".to_owned(), document.to_string());
    }
    Ok(parameters)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl LocalStack {
    /// Brings the stack up; on failure every child started so far is stopped and the state file
    /// says `failed` with the reason.
    pub async fn up(options: UpOptions) -> Result<LocalStack> {
        // In a workspace build reqwest is unified with jitctl's `rustls-no-provider` feature, and
        // then every client needs a process-wide crypto provider; ring is the workspace's choice.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let repo = options
            .repo_root
            .canonicalize()
            .map_err(|err| Error::io(format!("repository {}", options.repo_root.display()), err))?;
        let state_dir = options.state_dir.clone();
        let logs_dir = state_dir.join("logs");
        std::fs::create_dir_all(&logs_dir)
            .map_err(|err| Error::io(format!("creating {}", logs_dir.display()), err))?;
        if let Ok(existing) = StackState::load(&state_dir)
            && existing.pid != std::process::id()
            && existing.supervisor_alive()
        {
            return Err(Error::AlreadyRunning {
                pid: existing.pid,
                state_dir,
            });
        }
        if !repo.join("template.yaml").exists() {
            return Err(Error::Template(format!(
                "{} not found",
                repo.join("template.yaml").display()
            )));
        }
        // Tools first, so that a fresh clone gets the bootstrap hint before anything starts.
        moto_command(&repo)?;
        if !repo.join(".venv-sam/bin/python").exists() {
            return Err(Error::ToolMissing {
                path: ".venv-sam/bin/python".into(),
            });
        }
        if options.lambda && !repo.join(".venv-sam/bin/cargo-lambda").exists() {
            return Err(Error::ToolMissing {
                path: ".venv-sam/bin/cargo-lambda".into(),
            });
        }
        let aws_listener = process::bind(options.aws_port)?;
        let api_listener = process::bind(options.api_port)?;
        let port = |l: &std::net::TcpListener| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(|e| Error::io("router port", e))
        };
        let (aws_port, api_port) = (port(&aws_listener)?, port(&api_listener)?);
        let moto_port = process::free_port()?;
        let aws_endpoint = format!("http://127.0.0.1:{aws_port}");
        let mut stack = LocalStack {
            state: StackState {
                status: StackStatus::Starting,
                error: None,
                pid: std::process::id(),
                pid_marker: state::own_marker(),
                started_at: now_rfc3339(),
                repo_root: repo.clone(),
                state_dir: state_dir.clone(),
                stack_name: STACK_NAME.to_owned(),
                region: REGION.to_owned(),
                account_id: ACCOUNT_ID.to_owned(),
                aws_endpoint: aws_endpoint.clone(),
                api_url: format!(
                    "http://127.0.0.1:{api_port}/{}",
                    crate::router::apigw::STAGE
                ),
                outbox_url: format!("http://127.0.0.1:{api_port}/_outbox"),
                ports: Ports {
                    aws: aws_port,
                    api: api_port,
                    moto: moto_port,
                    lambda: None,
                },
                children: Vec::new(),
                outputs: BTreeMap::new(),
                resources: BTreeMap::new(),
                users: Vec::new(),
                organization: Default::default(),
                identity_center: Default::default(),
                aws_config_file: state_dir.join(state::AWS_CONFIG_FILE),
                logs_dir: logs_dir.clone(),
            },
            deployment: Deployment::default(),
            router: None,
            moto: None,
            lambda: None,
            stopped: false,
        };
        stack.state.save()?;
        let started = Instant::now();
        match stack.start(&options, aws_listener, api_listener).await {
            Ok(()) => {
                stack.state.status = StackStatus::Ready;
                stack.state.save()?;
                if let Some(router) = &stack.router {
                    router_log(&stack.state).line(format!(
                        "stack ready in {} ms (router: {} CloudTrail records)",
                        started.elapsed().as_millis(),
                        router.cloudtrail_records()
                    ));
                }
                Ok(stack)
            }
            Err(err) => {
                stack.state.status = StackStatus::Failed;
                stack.state.error = Some(err.to_string());
                let _ = stack.state.save();
                stack.stop_children(Duration::from_secs(1));
                stack.stopped = true;
                Err(err)
            }
        }
    }

    async fn start(
        &mut self,
        options: &UpOptions,
        aws_listener: std::net::TcpListener,
        api_listener: std::net::TcpListener,
    ) -> Result<()> {
        let repo = self.state.repo_root.clone();
        let log = router_log(&self.state);
        let moto_url = format!("http://127.0.0.1:{}", self.state.ports.moto);
        let cloudtrail = CloudTrail::load(&options.cloudtrail_paths)?;
        self.router = Some(Router::start(
            aws_listener,
            api_listener,
            moto_url.clone(),
            cloudtrail,
            log.clone(),
        )?);

        // moto, told that the router is its endpoint so that the Step Functions interpreter's
        // Lambda (and every other) call goes through the router.
        let (program, mut args) = moto_command(&repo)?;
        args.extend([
            "-H".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            self.state.ports.moto.to_string(),
        ]);
        let env = BTreeMap::from([
            ("MOTO_PORT".to_owned(), self.state.ports.aws.to_string()),
            ("TZ".to_owned(), "UTC".to_owned()),
        ]);
        let moto = ChildProcess::spawn(&Spawn {
            name: "moto",
            program: &program,
            args: &args,
            cwd: &repo,
            env: &env,
            env_remove: &[],
            log: &self.state.logs_dir.join("moto.log"),
        })?;
        self.state.children.push(ChildRecord {
            name: "moto".into(),
            pid: moto.pid,
            marker: MOTO_MARKER.into(),
        });
        self.moto = Some(moto);
        self.state.save()?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| Error::Http {
                context: "building an HTTP client".into(),
                message: err.to_string(),
            })?;
        let moto = self.moto.as_mut().expect("moto just started");
        wait_until(moto, START_TIMEOUT, || {
            let http = http.clone();
            let url = format!("{moto_url}/moto-api/config");
            async move {
                http.get(url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await?;
        // The interpreter flag must be on before any state machine is created.
        http.post(format!("{moto_url}/moto-api/config"))
            .header("content-type", "application/json")
            .body(r#"{"stepfunctions":{"execute_state_machine":true}}"#)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|err| Error::Http {
                context: "turning on moto's Step Functions interpreter".into(),
                message: err.to_string(),
            })?;
        log.line("moto ready, Step Functions interpreter on");

        // The Organization first: the hub's parameters and catalog name its accounts.
        let mut organization =
            crate::organization::create(&self.state.aws_endpoint, options.extra_accounts, &log)
                .await?;
        let names: Vec<String> = options.users.iter().map(|u| u.name.clone()).collect();
        let identity_center =
            crate::identity_center::create(&self.state.aws_endpoint, &names, &log).await?;
        let mut parameters = organization.hub_parameters();
        parameters.extend(local_parameters(&repo)?);
        parameters.extend(options.parameters.clone());
        if let Some(catalog) = parameters.get_mut("Catalog") {
            *catalog = identity_center.substitute(&organization.substitute(catalog));
        }
        let work_dir = self.state.state_dir.join("deploy");
        let deployment = cloudformation::deploy(&DeployOptions {
            repo: &repo,
            template: "template.yaml",
            work_dir: &work_dir,
            endpoint: &self.state.aws_endpoint,
            api_port: self.state.ports.api,
            parameters: &parameters,
            users: &options.users,
            log: &log,
            member: None,
        })
        .await?;
        crate::organization::deploy_members(
            &mut organization,
            &repo,
            &work_dir,
            &self.state.aws_endpoint,
            &deployment.outputs,
            &log,
        )
        .await?;
        self.state.organization = organization;
        self.state.identity_center = identity_center;
        let router = self.router.as_mut().expect("router started");
        router.configure(RouterConfig {
            routes: deployment.routes.clone(),
            users: deployment.users.clone(),
            renames: deployment.renames.clone(),
            api_id: deployment.api_id.clone(),
        });
        self.state.outputs = deployment.outputs.clone();
        self.state.resources = deployment.resources.clone();
        self.state.users = deployment.users.clone();
        state::write_aws_config(
            &self.state.aws_config_file,
            &self.state.users,
            &self.state.aws_endpoint,
            REGION,
            &self.state.identity_center.sso_role_arn,
        )?;
        self.state.save()?;

        if options.lambda {
            self.start_lambda(&deployment, options.lambda_concurrency.max(1))
                .await?;
            let router = self.router.as_mut().expect("router started");
            for mapping in &deployment.streams {
                router.stream(mapping.clone());
            }
        }
        if let Some(every) = options.reconcile_every {
            let router = self.router.as_mut().expect("router started");
            for schedule in &deployment.schedules {
                log.line(format!(
                    "scheduling {} every {} s (template: {})",
                    schedule.binary,
                    every.as_secs(),
                    schedule.expression
                ));
                router.schedule(schedule.binary.clone(), every, schedule.input.clone());
            }
        }
        self.deployment = deployment;
        Ok(())
    }

    async fn start_lambda(&mut self, deployment: &Deployment, concurrency: u16) -> Result<()> {
        let repo = self.state.repo_root.clone();
        let port = process::free_port()?;
        // cargo lambda watch hands its own environment to every function it starts (checked with
        // cargo-lambda 1.9.2), which keeps JSON values such as CATALOG intact where
        // `--env-var K=V,K2=V2` would split them at commas.
        let mut env = deployment.function_environment()?;
        env.extend([
            (
                "AWS_ENDPOINT_URL".to_owned(),
                self.state.aws_endpoint.clone(),
            ),
            ("AWS_REGION".to_owned(), REGION.to_owned()),
            ("AWS_DEFAULT_REGION".to_owned(), REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ]);
        let path = std::env::var("PATH").unwrap_or_default();
        env.insert(
            "PATH".to_owned(),
            format!("{}:{path}", repo.join(".venv-sam/bin").display()),
        );
        // The caller's AWS profile must not leak into the functions, and cargo's per-crate
        // variables (set when this runs under `cargo test`) must not reach `cargo run`.
        let mut remove: Vec<String> = [
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        remove.extend(std::env::vars().map(|(k, _)| k).filter(|k| {
            k.starts_with("CARGO_")
                && k != "CARGO_HOME"
                && k != "CARGO_TARGET_DIR"
                && !k.starts_with("CARGO_BUILD_")
        }));
        let remove: Vec<&str> = remove.iter().map(String::as_str).collect();
        let args: Vec<String> = [
            "lambda",
            "watch",
            "-P",
            &port.to_string(),
            "-A",
            "127.0.0.1",
            "--concurrency",
            &concurrency.to_string(),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        let lambda = ChildProcess::spawn(&Spawn {
            name: "cargo lambda watch",
            program: Path::new("cargo"),
            args: &args,
            cwd: &repo,
            env: &env,
            env_remove: &remove,
            log: &self.state.logs_dir.join("lambda.log"),
        })?;
        self.state.children.push(ChildRecord {
            name: "cargo lambda watch".into(),
            pid: lambda.pid,
            marker: LAMBDA_MARKER.into(),
        });
        self.state.ports.lambda = Some(port);
        self.lambda = Some(lambda);
        self.state.save()?;
        let lambda = self.lambda.as_mut().expect("just started");
        wait_until(lambda, START_TIMEOUT, || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await?;
        self.router
            .as_ref()
            .expect("router started")
            .set_lambda_url(format!("http://127.0.0.1:{port}"));
        router_log(&self.state).line(format!("cargo lambda watch ready on port {port}"));
        Ok(())
    }

    /// What the state file says (ports, endpoints, users, outputs).
    pub fn state(&self) -> &StackState {
        &self.state
    }

    /// What the deployer created.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Stops the router and every child (SIGTERM, then SIGKILL after a grace period) and removes
    /// the state file.
    pub async fn shutdown(mut self) -> Result<()> {
        self.stopped = true;
        if let Some(router) = self.router.as_mut() {
            router.shutdown();
        }
        let lambda = self.lambda.take();
        let moto = self.moto.take();
        let lambda_port = self.state.ports.lambda;
        tokio::task::spawn_blocking(move || stop_processes(lambda, moto, lambda_port, STOP_GRACE))
            .await
            .map_err(|err| Error::Http {
                context: "stopping children".into(),
                message: err.to_string(),
            })?;
        remove_state_file(&self.state.state_dir)
    }

    fn stop_children(&mut self, grace: Duration) {
        if let Some(router) = self.router.as_mut() {
            router.shutdown();
        }
        stop_processes(
            self.lambda.take(),
            self.moto.take(),
            self.state.ports.lambda,
            grace,
        );
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        if !self.stopped {
            self.stop_children(Duration::from_secs(1));
            if self.state.status != StackStatus::Failed {
                let _ = remove_state_file(&self.state.state_dir);
            }
        }
    }
}

fn stop_processes(
    lambda: Option<ChildProcess>,
    moto: Option<ChildProcess>,
    lambda_port: Option<u16>,
    grace: Duration,
) {
    if let Some(mut lambda) = lambda {
        lambda.stop(grace);
    }
    if let Some(port) = lambda_port {
        stop_function_processes(port, grace);
    }
    if let Some(mut moto) = moto {
        moto.stop(grace);
    }
}

/// Function processes cargo-lambda started carry `AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:<port>/`;
/// any still alive (for instance re-parented after their parent died) are stopped here.
fn stop_function_processes(lambda_port: u16, grace: Duration) {
    let needle = format!("AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:{lambda_port}/");
    for pid in process::find_by_environment(&needle) {
        process::stop_tree(pid, grace);
    }
}

fn router_log(state: &StackState) -> Log {
    Log::to_file(&state.logs_dir.join("router.log")).unwrap_or_else(|_| Log::discard())
}

fn remove_state_file(state_dir: &Path) -> Result<()> {
    match std::fs::remove_file(StackState::path(state_dir)) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::io("removing the state file", err)),
    }
}

/// moto's server with the CloudFormation shim: `.venv/bin/python local/moto_server.py`.
fn moto_command(repo: &Path) -> Result<(PathBuf, Vec<String>)> {
    let python = repo.join(".venv/bin/python");
    if !python.exists() || !repo.join(".venv/lib").exists() {
        return Err(Error::ToolMissing {
            path: ".venv/bin/python".into(),
        });
    }
    let shim = repo.join("local/moto_server.py");
    Ok((python, vec![shim.display().to_string()]))
}

/// Polls `ready` until it holds, failing early (with the log tail) if the child exits.
async fn wait_until<F, Fut>(child: &mut ChildProcess, timeout: Duration, mut ready: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        child.check_running()?;
        if ready().await {
            return Ok(());
        }
        if started.elapsed() > timeout {
            return Err(Error::StartTimeout {
                name: child.name.clone(),
                seconds: timeout.as_secs(),
                log: child.log.clone(),
                tail: process::tail(&child.log, 30),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops a stack by the PIDs in its state file: asks the supervisor to shut down (SIGTERM), then
/// stops any child that is still alive (moto, `cargo lambda watch` and the function processes it
/// started), and removes the state file. Nothing running is not an error.
pub fn down(state_dir: &Path) -> Result<()> {
    let state = match StackState::load(state_dir) {
        Ok(state) => state,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    if state.pid != std::process::id() && state.supervisor_alive() {
        process::terminate(state.pid);
        let deadline = Instant::now() + Duration::from_secs(20);
        while process::alive(state.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if process::alive(state.pid) {
            process::stop_tree(state.pid, Duration::from_secs(1));
        }
    }
    for child in &state.children {
        let ours = process::cmdline(child.pid).is_some_and(|line| line.contains(&child.marker));
        if process::alive(child.pid) && ours {
            process::stop_tree(child.pid, STOP_GRACE);
        }
    }
    if let Some(port) = state.ports.lambda {
        stop_function_processes(port, STOP_GRACE);
    }
    remove_state_file(state_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_parameters_embed_the_catalog() {
        let repo = std::env::temp_dir().join(format!("trailgate-params-{}", std::process::id()));
        std::fs::create_dir_all(repo.join("local")).unwrap();
        std::fs::write(
            repo.join("local/parameters.json"),
            r#"{"ApproverEmails": "bob@example.com", "AuditDelaySeconds": 2}"#,
        )
        .unwrap();
        std::fs::write(repo.join("local/catalog.json"), "{\n  \"entries\": []\n}\n").unwrap();
        let parameters = local_parameters(&repo).unwrap();
        assert_eq!(parameters["ApproverEmails"], "bob@example.com");
        assert_eq!(parameters["AuditDelaySeconds"], "2");
        assert_eq!(parameters["Catalog"], r#"{"entries":[]}"#);
        std::fs::remove_dir_all(&repo).unwrap();
    }

    #[test]
    fn the_project_catalog_follows_the_contract() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let parameters = local_parameters(&repo).unwrap();
        assert_eq!(
            parameters["ApproverEmails"],
            "bob@example.com,carol@example.com"
        );
        let catalog: Value = serde_json::from_str(&parameters["Catalog"]).unwrap();
        let entry = &catalog["entries"][0];
        assert_eq!(entry["id"], "sandbox-admin");
        assert_eq!(
            entry["role_arn"],
            "arn:aws:iam::123456789012:role/sample-target-trailgate"
        );
        assert_eq!(entry["approvers"].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn missing_tools_are_reported_before_anything_starts() {
        let repo = std::env::temp_dir().join(format!("trailgate-notools-{}", std::process::id()));
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("template.yaml"), "Resources: {}\n").unwrap();
        let mut options = UpOptions::new(&repo);
        options.aws_port = 0;
        options.api_port = 0;
        let err = LocalStack::up(options).await.unwrap_err().to_string();
        assert_eq!(err, ".venv/bin/python not found: run `make bootstrap`");
        std::fs::remove_dir_all(&repo).unwrap();
    }

    #[tokio::test]
    async fn a_taken_port_stops_start_up_before_any_child_starts() {
        let taken = process::bind(0).unwrap();
        let port = taken.local_addr().unwrap().port();
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let state_dir =
            std::env::temp_dir().join(format!("trailgate-taken-{}", std::process::id()));
        let mut options = UpOptions::new(&repo);
        options.state_dir = state_dir.clone();
        options.aws_port = port;
        options.api_port = 0;
        let err = LocalStack::up(options).await.unwrap_err();
        // Without the virtualenvs the missing tool is reported first, which is fine too.
        if !matches!(err, Error::ToolMissing { .. }) {
            assert_eq!(
                err.to_string(),
                format!(
                    "port {port} on 127.0.0.1 is in use; is a local stack already running? `jitctl local down`"
                )
            );
            assert!(
                !StackState::path(&state_dir).exists(),
                "nothing was started or recorded"
            );
        }
        let _ = std::fs::remove_dir_all(&state_dir);
    }

    #[test]
    fn down_without_a_stack_is_a_no_op() {
        let dir = std::env::temp_dir().join(format!("trailgate-nostack-{}", std::process::id()));
        down(&dir).unwrap();
    }
}
