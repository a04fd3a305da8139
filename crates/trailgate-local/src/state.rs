//! The state directory of a running local stack: `state.json` (ports, PIDs, endpoints, outputs,
//! users and their keys), the AWS shared config file with one profile per local user, and
//! waiting for a detached stack to say it is ready.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::process;
use crate::router::sigv4::LocalUser;

/// File name of the state file inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// File name of the AWS shared config file inside the state directory.
pub const AWS_CONFIG_FILE: &str = "aws-config";

/// Where a stack is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StackStatus {
    Starting,
    Ready,
    Failed,
}

/// Ports the stack listens on (all on 127.0.0.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// The router's AWS endpoint.
    pub aws: u16,
    /// The router's API Gateway emulation.
    pub api: u16,
    /// moto itself (internal: clients use the AWS endpoint).
    pub moto: u16,
    /// `cargo lambda watch` (internal), when it runs.
    pub lambda: Option<u16>,
}

/// A process of the stack, recorded so that `down` can stop it by PID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRecord {
    pub name: String,
    pub pid: u32,
    /// A piece of its command line, checked before signalling so a reused PID is left alone.
    pub marker: String,
}

/// A resource the local deployer created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedResource {
    #[serde(rename = "type")]
    pub resource_type: String,
    /// What `Ref` gives.
    pub physical_id: String,
    pub arn: Option<String>,
}

/// Contents of `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackState {
    pub status: StackStatus,
    /// Why start-up failed, when `status` is `failed`.
    pub error: Option<String>,
    /// The supervisor process (`trailgate-local serve`, or a test).
    pub pid: u32,
    /// Its command line's first word, to recognise it later.
    pub pid_marker: String,
    pub started_at: String,
    pub repo_root: PathBuf,
    pub state_dir: PathBuf,
    pub stack_name: String,
    pub region: String,
    pub account_id: String,
    /// `http://127.0.0.1:<aws port>`: the endpoint for every AWS client.
    pub aws_endpoint: String,
    /// `http://127.0.0.1:<api port>/v1`.
    pub api_url: String,
    /// `http://127.0.0.1:<api port>/_outbox`.
    pub outbox_url: String,
    pub ports: Ports,
    pub children: Vec<ChildRecord>,
    /// template.yaml's Outputs, resolved.
    pub outputs: BTreeMap<String, String>,
    pub resources: BTreeMap<String, DeployedResource>,
    pub users: Vec<LocalUser>,
    /// The local Organization and its member accounts.
    #[serde(default)]
    pub organization: crate::organization::LocalOrganization,
    /// The local IAM Identity Center (instance, users, permission set).
    #[serde(default)]
    pub identity_center: crate::identity_center::LocalIdentityCenter,
    pub aws_config_file: PathBuf,
    pub logs_dir: PathBuf,
}

impl StackState {
    /// `state_dir/state.json`.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(STATE_FILE)
    }

    /// Reads `state_dir/state.json`.
    pub fn load(state_dir: &Path) -> Result<StackState> {
        let path = StackState::path(state_dir);
        let text = std::fs::read_to_string(&path)
            .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
        serde_json::from_str(&text)
            .map_err(|err| Error::json(format!("parsing {}", path.display()), err))
    }

    /// Writes `state.json` atomically (write, then rename), so readers never see half a file.
    pub fn save(&self) -> Result<()> {
        let path = StackState::path(&self.state_dir);
        let temporary = self
            .state_dir
            .join(format!(".{STATE_FILE}.{}", std::process::id()));
        let text = serde_json::to_string_pretty(self)
            .map_err(|err| Error::json("serialising the state", err))?;
        std::fs::write(&temporary, text)
            .map_err(|err| Error::io(format!("writing {}", temporary.display()), err))?;
        std::fs::rename(&temporary, &path)
            .map_err(|err| Error::io(format!("writing {}", path.display()), err))
    }

    /// A local user by name.
    pub fn user(&self, name: &str) -> Option<&LocalUser> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Whether the supervisor recorded in the file is still running.
    pub fn supervisor_alive(&self) -> bool {
        process::alive(self.pid)
            && process::cmdline(self.pid).is_some_and(|line| line.starts_with(&self.pid_marker))
    }
}

/// The first word of this process's command line.
pub fn own_marker() -> String {
    process::cmdline(std::process::id())
        .and_then(|line| line.split(' ').next().map(str::to_owned))
        .unwrap_or_default()
}

/// Writes an AWS shared config file with one profile per local user.
pub fn write_aws_config(
    path: &Path,
    users: &[LocalUser],
    endpoint: &str,
    region: &str,
    sso_role_arn: &str,
) -> Result<()> {
    let mut text = String::from(
        "# Written by trailgate-local: one profile per local user of the local stack.\n",
    );
    for user in users {
        text.push_str(&format!(
            "\n[profile {}]\naws_access_key_id = {}\naws_secret_access_key = {}\nregion = {region}\nendpoint_url = {endpoint}\n",
            user.name, user.access_key_id, user.secret_access_key
        ));
    }
    if !sso_role_arn.is_empty() {
        // `<name>-sso`: the user's Identity Center session, as the local stand-in makes it.
        for user in users {
            text.push_str(&format!(
                "\n[profile {}-sso]\nrole_arn = {sso_role_arn}\nsource_profile = {}\nrole_session_name = {}\nregion = {region}\nendpoint_url = {endpoint}\n",
                user.name,
                user.name,
                crate::identity_center::LocalIdentityCenter::user_name(&user.name)
            ));
        }
    }
    std::fs::write(path, text).map_err(|err| Error::io(format!("writing {}", path.display()), err))
}

/// Waits until the stack in `state_dir` says it is ready and its supervisor is alive.
///
/// Fails at once when the stack reports a start-up failure, and after a short grace period when
/// the recorded supervisor is gone (a stale file from a stack that died). Callers that spawn a
/// detached `trailgate-local serve` should call [`crate::down`] first, which removes any stale
/// state file.
pub fn wait_ready(state_dir: &Path, timeout: Duration) -> Result<StackState> {
    let started = Instant::now();
    let mut dead_since: Option<Instant> = None;
    let logs = state_dir.join("logs");
    loop {
        if let Ok(state) = StackState::load(state_dir) {
            match state.status {
                StackStatus::Failed => {
                    return Err(Error::NotReady {
                        state_dir: state_dir.to_path_buf(),
                        message: state.error.unwrap_or_else(|| "start-up failed".into()),
                    });
                }
                _ if !process::alive(state.pid) => {
                    let since = *dead_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_secs(3) {
                        return Err(Error::NotReady {
                            state_dir: state_dir.to_path_buf(),
                            message: format!(
                                "the stack's process (pid {}) is gone; see {}",
                                state.pid,
                                logs.display()
                            ),
                        });
                    }
                }
                StackStatus::Ready => return Ok(state),
                StackStatus::Starting => dead_since = None,
            }
        }
        if started.elapsed() > timeout {
            return Err(Error::NotReady {
                state_dir: state_dir.to_path_buf(),
                message: format!(
                    "not ready after {} s; see {}",
                    timeout.as_secs(),
                    logs.display()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &Path, status: StackStatus, pid: u32) -> StackState {
        StackState {
            status,
            error: (status == StackStatus::Failed).then(|| "moto exited".to_owned()),
            pid,
            pid_marker: own_marker(),
            started_at: "2026-01-01T00:00:00Z".into(),
            repo_root: dir.to_path_buf(),
            state_dir: dir.to_path_buf(),
            stack_name: "trailgate".into(),
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            aws_endpoint: "http://127.0.0.1:4566".into(),
            api_url: "http://127.0.0.1:4567/v1".into(),
            outbox_url: "http://127.0.0.1:4567/_outbox".into(),
            ports: Ports {
                aws: 4566,
                api: 4567,
                moto: 5000,
                lambda: Some(9000),
            },
            children: vec![],
            outputs: BTreeMap::new(),
            resources: BTreeMap::new(),
            users: vec![],
            organization: Default::default(),
            identity_center: Default::default(),
            aws_config_file: dir.join(AWS_CONFIG_FILE),
            logs_dir: dir.join("logs"),
        }
    }

    #[test]
    fn round_trips_and_waits() {
        let dir = std::env::temp_dir().join(format!("trailgate-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        state(&dir, StackStatus::Ready, std::process::id())
            .save()
            .unwrap();
        let loaded = wait_ready(&dir, Duration::from_secs(1)).unwrap();
        assert_eq!(loaded.ports.aws, 4566);
        assert!(loaded.supervisor_alive());

        state(&dir, StackStatus::Failed, std::process::id())
            .save()
            .unwrap();
        let err = wait_ready(&dir, Duration::from_secs(1))
            .unwrap_err()
            .to_string();
        assert!(err.contains("moto exited"), "{err}");

        state(&dir, StackStatus::Starting, std::process::id())
            .save()
            .unwrap();
        let err = wait_ready(&dir, Duration::from_millis(300))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not ready after"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writes_one_profile_per_user() {
        let dir = std::env::temp_dir().join(format!("trailgate-awsconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let user = LocalUser {
            name: "alice".into(),
            role: "requester".into(),
            email: "alice@example.com".into(),
            user_id: "AIDA".into(),
            arn: "arn:aws:iam::123456789012:user/alice".into(),
            access_key_id: "AKIA1".into(),
            secret_access_key: "s3cret".into(),
        };
        let path = dir.join(AWS_CONFIG_FILE);
        write_aws_config(&path, &[user], "http://127.0.0.1:4566", "us-east-1", "").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("[profile alice]\naws_access_key_id = AKIA1\naws_secret_access_key = s3cret\nregion = us-east-1\nendpoint_url = http://127.0.0.1:4566\n"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
