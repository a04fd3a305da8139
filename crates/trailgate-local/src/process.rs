//! Child processes of the local stack and the Linux process plumbing around them: spawning into
//! their own process group with output to a log file, noticing an early exit, stopping a whole
//! process tree by PID (cargo-lambda starts one child per function), and port checks.
//!
//! Signals go through the `kill` command rather than libc because the workspace forbids unsafe
//! code; process trees are read from /proc.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt as _;

use crate::error::{Error, Result};

/// A child process the stack started, in its own process group.
#[derive(Debug)]
pub struct ChildProcess {
    /// Short name used in messages (`moto`, `cargo lambda watch`).
    pub name: String,
    pub pid: u32,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    child: Option<Child>,
}

/// What to run.
#[derive(Debug)]
pub struct Spawn<'a> {
    pub name: &'a str,
    pub program: &'a Path,
    pub args: &'a [String],
    pub cwd: &'a Path,
    pub env: &'a BTreeMap<String, String>,
    pub env_remove: &'a [&'a str],
    pub log: &'a Path,
}

impl ChildProcess {
    /// Starts a process with its output appended to its log file.
    pub fn spawn(spec: &Spawn<'_>) -> Result<ChildProcess> {
        let log = File::create(spec.log)
            .map_err(|err| Error::io(format!("creating {}", spec.log.display()), err))?;
        let log_err = log
            .try_clone()
            .map_err(|err| Error::io("duplicating a log handle", err))?;
        let mut command = Command::new(spec.program);
        command
            .args(spec.args)
            .current_dir(spec.cwd)
            .envs(spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Its own group, so that stopping it reaches every process it started.
            .process_group(0);
        for name in spec.env_remove {
            command.env_remove(name);
        }
        let child = command.spawn().map_err(|err| {
            if err.kind() == std::io::ErrorKind::NotFound {
                Error::ToolMissing {
                    path: spec.program.display().to_string(),
                }
            } else {
                Error::io(format!("starting {}", spec.name), err)
            }
        })?;
        Ok(ChildProcess {
            name: spec.name.to_owned(),
            pid: child.id(),
            log: spec.log.to_path_buf(),
            child: Some(child),
        })
    }

    /// `Err(ChildExited)` with the tail of its log if the process has ended.
    pub fn check_running(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(Some(status)) => Err(Error::ChildExited {
                name: self.name.clone(),
                status: status.to_string(),
                log: self.log.clone(),
                tail: tail(&self.log, 30),
            }),
            _ => Ok(()),
        }
    }

    /// Stops the process and everything it started: SIGTERM to the group and the tree, up to
    /// `grace` to exit, then SIGKILL.
    pub fn stop(&mut self, grace: Duration) {
        stop_tree(self.pid, grace);
        if let Some(mut child) = self.child.take() {
            // Reap it so no zombie is left behind; it is dead or dying by now.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop(Duration::from_millis(500));
        }
    }
}

/// Stops a process tree by PID: the process group led by `pid`, and every descendant found in
/// /proc (snapshotted before signalling, because children of a dead parent are re-parented).
pub fn stop_tree(pid: u32, grace: Duration) {
    let mut pids = vec![pid];
    pids.extend(descendants(pid));
    signal_group(pid, "TERM");
    signal(&pids, "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && pids.iter().any(|p| alive(*p)) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Anything started during the grace period is caught here too.
    for extra in descendants(pid) {
        if !pids.contains(&extra) {
            pids.push(extra);
        }
    }
    signal_group(pid, "KILL");
    let remaining: Vec<u32> = pids.into_iter().filter(|p| alive(*p)).collect();
    signal(&remaining, "KILL");
}

fn signal(pids: &[u32], name: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn signal_group(pgid: u32, name: &str) {
    let _ = Command::new("kill")
        .args([format!("-{name}"), "--".to_owned(), format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Sends SIGTERM to one process (used to ask a detached supervisor to shut down).
pub fn terminate(pid: u32) {
    signal(&[pid], "TERM");
}

/// Whether a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(process_state(&stat), Some('Z' | 'X')),
        Err(_) => false,
    }
}

/// The command line of a process, arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8_lossy(part).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn process_state(stat: &str) -> Option<char> {
    // The command name is in parentheses and may contain spaces: read after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

fn parent_pid(stat: &str) -> Option<u32> {
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Every descendant of `pid` (children, grandchildren, …), from /proc.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat"))
                && let Some(parent) = parent_pid(&stat)
            {
                children.entry(parent).or_default().push(child);
            }
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![pid];
    while let Some(next) = queue.pop() {
        for child in children.get(&next).into_iter().flatten() {
            if !out.contains(child) {
                out.push(*child);
                queue.push(*child);
            }
        }
    }
    out
}

/// Processes whose environment contains `needle` (e.g. `AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:
/// <port>/`, which cargo-lambda gives every function it starts): finds function processes even
/// after their parent died and they were re-parented.
pub fn find_by_environment(needle: &str) -> Vec<u32> {
    let own = std::process::id();
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        if let Ok(environment) = std::fs::read(format!("/proc/{pid}/environ"))
            && environment
                .split(|b| *b == 0)
                .any(|entry| entry.starts_with(needle.as_bytes()))
        {
            found.push(pid);
        }
    }
    found
}

/// Binds 127.0.0.1:`port` (0 = any free port), reporting a taken port clearly.
pub fn bind(port: u16) -> Result<TcpListener> {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).map_err(|err| {
        if err.kind() == std::io::ErrorKind::AddrInUse {
            Error::PortInUse { port }
        } else {
            Error::io(format!("binding 127.0.0.1:{port}"), err)
        }
    })
}

/// A port that was free a moment ago, for a child process to bind.
pub fn free_port() -> Result<u16> {
    let listener = bind(0)?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|err| Error::io("reading a bound port", err))
}

/// The last `lines` lines of a log file (empty if it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat_fields_even_with_spaces_in_the_name() {
        let stat = "1234 (cargo lambda (x)) S 1 1234 1234 0 -1";
        assert_eq!(process_state(stat), Some('S'));
        assert_eq!(parent_pid(stat), Some(1));
    }

    #[test]
    fn stops_a_process_tree_and_reports_early_exits() {
        let dir = std::env::temp_dir().join(format!("trailgate-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("tree.log");
        let args = vec![
            "-c".to_owned(),
            "sleep 60 & sleep 60 & echo started; wait".to_owned(),
        ];
        let mut tree = ChildProcess::spawn(&Spawn {
            name: "tree",
            program: Path::new("/bin/sh"),
            args: &args,
            cwd: &dir,
            env: &BTreeMap::new(),
            env_remove: &[],
            log: &log,
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while descendants(tree.pid).len() < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let children = descendants(tree.pid);
        assert_eq!(children.len(), 2, "{children:?}");
        tree.check_running().unwrap();
        tree.stop(Duration::from_secs(2));
        assert!(!alive(tree.pid));
        assert!(
            children.iter().all(|pid| !alive(*pid)),
            "no sleep left behind"
        );

        let args = vec!["-c".to_owned(), "echo one; echo two >&2; exit 3".to_owned()];
        let mut quick = ChildProcess::spawn(&Spawn {
            name: "quick",
            program: Path::new("/bin/sh"),
            args: &args,
            cwd: &dir,
            env: &BTreeMap::new(),
            env_remove: &[],
            log: &dir.join("quick.log"),
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let err = quick.check_running().unwrap_err().to_string();
        assert!(
            err.contains("quick exited during start-up") && err.contains("two"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_taken_port_is_reported_clearly() {
        let taken = bind(0).unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = bind(port).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "port {port} on 127.0.0.1 is in use; is a local stack already running? `jitctl local down`"
            )
        );
    }

    #[test]
    fn a_missing_program_is_a_missing_tool() {
        let log =
            std::env::temp_dir().join(format!("trailgate-missing-{}.log", std::process::id()));
        let err = ChildProcess::spawn(&Spawn {
            name: "nothing",
            program: Path::new("/nonexistent/.venv/bin/moto_server"),
            args: &[],
            cwd: Path::new("/"),
            env: &BTreeMap::new(),
            env_remove: &[],
            log: &log,
        })
        .unwrap_err();
        let _ = std::fs::remove_file(&log);
        assert!(matches!(err, Error::ToolMissing { .. }), "{err}");
    }
}
