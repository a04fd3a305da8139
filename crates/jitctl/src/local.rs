//! `jitctl local`: bring the local stack up in the background, stop it, show it, and run the demo.
//!
//! The stack itself is `trailgate-local serve` (crate trailgate-local), started detached in its
//! own process group so that it outlives this command; `down` stops it and its children by the
//! PIDs recorded in its state file.

use crate::endpoint::{Target, local_state_dir};
use anyhow::{Context, Result, bail};
use clap::Subcommand;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;
use trailgate_local::StackState;

#[derive(Subcommand)]
pub enum LocalCommand {
    /// Start the local stack in the background (moto, cargo lambda watch, the router).
    Up {
        /// Ports for the AWS endpoint and the API (0 = any free port).
        #[arg(long, default_value_t = 4566)]
        aws_port: u16,
        #[arg(long, default_value_t = 4567)]
        api_port: u16,
        /// CloudTrail log files or folders for LookupEvents (repeatable).
        #[arg(long = "cloudtrail", value_name = "PATH")]
        cloudtrail: Vec<PathBuf>,
    },
    /// Stop the local stack and every process it started.
    Down,
    /// Show where the local stack listens.
    Status,
    /// Run one request through its whole life on the local stack and print a timeline.
    Demo {
        /// How long the demo grant lasts.
        #[arg(long, default_value = "PT20S")]
        duration: String,
        /// Ask for the sample role of this member account of the local Organization (`prod`
        /// or `data`) instead of the hub's.
        #[arg(long)]
        member: Option<String>,
    },
}

pub async fn run(command: LocalCommand, target: &Target) -> Result<ExitCode> {
    let state_dir =
        local_state_dir().context("run jitctl local from inside the trailgate repository")?;
    match command {
        LocalCommand::Up {
            aws_port,
            api_port,
            cloudtrail,
        } => {
            let state = up(&state_dir, aws_port, api_port, &cloudtrail)?;
            print_state(&state);
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Down => {
            trailgate_local::down(&state_dir)?;
            println!("local stack stopped");
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Status => {
            let state =
                StackState::load(&state_dir).context("no local stack has been started here")?;
            if !state.supervisor_alive() {
                bail!("the local stack is not running (start it with `jitctl local up`)");
            }
            print_state(&state);
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Demo { duration, member } => {
            crate::demo::run(&state_dir, target, &duration, member.as_deref()).await
        }
    }
}

/// Starts the stack unless it already runs; returns its state once it is ready.
pub fn up(
    state_dir: &Path,
    aws_port: u16,
    api_port: u16,
    cloudtrail: &[PathBuf],
) -> Result<StackState> {
    if let Ok(state) = StackState::load(state_dir)
        && state.supervisor_alive()
    {
        eprintln!("the local stack is already running");
        return Ok(state);
    }
    let repo_root = state_dir
        .parent()
        .and_then(Path::parent)
        .context("bad state directory")?
        .to_path_buf();
    let server = sibling_binary("trailgate-local")?;
    std::fs::create_dir_all(state_dir.join("logs"))?;
    let log = std::fs::File::create(state_dir.join("logs").join("supervisor.log"))?;
    let mut command = Command::new(&server);
    command
        .arg("--repo-root")
        .arg(&repo_root)
        .arg("--state-dir")
        .arg(state_dir)
        .arg("serve")
        .arg("--aws-port")
        .arg(aws_port.to_string())
        .arg("--api-port")
        .arg(api_port.to_string())
        .arg("--reconcile-every")
        .arg("60");
    for path in cloudtrail {
        command.arg("--cloudtrail").arg(path);
    }
    // Its own process group: Ctrl-C in this terminal must not take the stack down with it.
    command
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .current_dir(&repo_root);
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", server.display()))?;
    eprintln!(
        "starting the local stack (pid {}); logs in {}",
        child.id(),
        state_dir.join("logs").display()
    );
    Ok(trailgate_local::wait_ready(
        state_dir,
        Duration::from_secs(600),
    )?)
}

/// A binary installed next to this one (cargo builds them into the same folder).
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let candidate = exe.with_file_name(name);
    if candidate.is_file() {
        return Ok(candidate);
    }
    bail!(
        "`{name}` was not found next to {}: build it with `cargo build --bins`",
        exe.display()
    )
}

fn print_state(state: &StackState) {
    println!("API:        {}", state.api_url);
    println!("AWS:        {}", state.aws_endpoint);
    println!("outbox:     {}", state.outbox_url);
    println!(
        "profiles:   AWS_CONFIG_FILE={} ({})",
        state.aws_config_file.display(),
        state
            .users
            .iter()
            .map(|u| u.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("logs:       {}", state.logs_dir.display());
}
