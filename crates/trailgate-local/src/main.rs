//! `trailgate-local`: runs the local stack in the foreground (`serve`, which `jitctl local up`
//! starts detached), stops a detached one (`down`), waits for one (`wait-ready`) or shows it
//! (`status`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use trailgate_local::{LocalStack, StackState, UpOptions};

#[derive(Debug, Parser)]
#[command(
    name = "trailgate-local",
    about = "The trailgate local stack: moto + cargo lambda watch + the endpoint router"
)]
struct Cli {
    /// The repository root (default: the nearest folder upwards holding template.yaml).
    #[arg(long, global = true, env = "TRAILGATE_REPO")]
    repo_root: Option<PathBuf>,
    /// The state directory (default: <repo>/.trailgate/local).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Bring the stack up and keep it up until Ctrl-C or SIGTERM.
    Serve {
        /// The AWS endpoint port (0 = any free port).
        #[arg(long, default_value_t = 4566)]
        aws_port: u16,
        /// The API Gateway emulation port (0 = any free port).
        #[arg(long, default_value_t = 4567)]
        api_port: u16,
        /// Template parameter override, NAME=VALUE (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        parameters: Vec<String>,
        /// CloudTrail log file or folder for LookupEvents (repeatable).
        #[arg(long = "cloudtrail", value_name = "PATH")]
        cloudtrail: Vec<PathBuf>,
        /// Run the template's scheduled functions (the reconciler) every this many seconds.
        #[arg(long, value_name = "SECONDS")]
        reconcile_every: Option<u64>,
        /// Do not start cargo lambda watch.
        #[arg(long)]
        no_lambda: bool,
        /// Add this many accounts (no member stack) to the local Organization's OU Prod.
        #[arg(long, default_value_t = 0)]
        extra_accounts: usize,
    },
    /// Stop a stack started by `serve` (by the PIDs in its state file).
    Down,
    /// Wait until a stack started by `serve` is ready, then print its state file.
    WaitReady {
        #[arg(long, default_value_t = 300)]
        timeout_seconds: u64,
    },
    /// Print the state file of the running stack.
    Status,
}

fn find_repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join("template.yaml").exists() && dir.join("Cargo.toml").exists())
        .map(Path::to_path_buf)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let repo_root = match cli.repo_root {
        Some(root) => root,
        None => {
            let cwd = std::env::current_dir().context("reading the current directory")?;
            find_repo_root(&cwd).context("no template.yaml here or above; pass --repo-root")?
        }
    };
    let state_dir = cli
        .state_dir
        .unwrap_or_else(|| repo_root.join(".trailgate").join("local"));
    match cli.command {
        Command::Serve {
            aws_port,
            api_port,
            parameters,
            cloudtrail,
            reconcile_every,
            no_lambda,
            extra_accounts,
        } => {
            let mut options = UpOptions::new(&repo_root);
            options.state_dir = state_dir;
            options.aws_port = aws_port;
            options.api_port = api_port;
            options.cloudtrail_paths = cloudtrail;
            options.reconcile_every = reconcile_every.map(Duration::from_secs);
            options.lambda = !no_lambda;
            options.extra_accounts = extra_accounts;
            let mut overrides = BTreeMap::new();
            for parameter in parameters {
                let Some((name, value)) = parameter.split_once('=') else {
                    bail!("--param takes NAME=VALUE, got `{parameter}`");
                };
                overrides.insert(name.to_owned(), value.to_owned());
            }
            options.parameters = overrides;
            serve(options).await
        }
        Command::Down => {
            trailgate_local::down(&state_dir)?;
            println!("local stack stopped");
            Ok(())
        }
        Command::WaitReady { timeout_seconds } => {
            let state =
                trailgate_local::wait_ready(&state_dir, Duration::from_secs(timeout_seconds))?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(())
        }
        Command::Status => {
            let state = StackState::load(&state_dir).context("no local stack is running")?;
            println!("{}", serde_json::to_string_pretty(&state)?);
            Ok(())
        }
    }
}

async fn serve(options: UpOptions) -> anyhow::Result<()> {
    let stack = LocalStack::up(options).await?;
    let state = stack.state();
    let users: Vec<&str> = state.users.iter().map(|u| u.name.as_str()).collect();
    // When started detached the output may go nowhere; a closed stdout must not stop the stack.
    say(&format!(
        "local stack ready\n  AWS endpoint  {}\n  API           {}\n  outbox        {}\n  AWS profiles  AWS_CONFIG_FILE={} (profiles: {})\n  logs          {}",
        state.aws_endpoint,
        state.api_url,
        state.outbox_url,
        state.aws_config_file.display(),
        users.join(", "),
        state.logs_dir.display()
    ));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    say("stopping the local stack");
    stack.shutdown().await?;
    Ok(())
}

fn say(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{text}");
}
