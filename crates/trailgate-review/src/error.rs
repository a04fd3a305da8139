//! Why a reviewer context or a session analysis could not be made. Neither ever fails its step:
//! the context becomes "context unavailable: <this>" and the audit "not analysed: <this>", so the
//! messages are written for the approver who reads them.

use trailgate_runbooks::{LoadError, ParamError, RunError};

/// What stopped a context or a session analysis.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// An embedded runbook did not parse: a build defect, reported rather than panicking.
    #[error("runbook {runbook}: {source}")]
    Load { runbook: String, source: LoadError },
    /// A runbook's parameters or window did not bind.
    #[error("runbook {runbook}: {source}")]
    Bind { runbook: String, source: ParamError },
    /// A runbook failed on the records in memory.
    #[error("runbook {runbook}: {source}")]
    Run { runbook: String, source: RunError },
    /// The session window did not bind (the session-audit runbook's own parameters).
    #[error(transparent)]
    Window(ParamError),
    /// The request's `created_at` is not an instant.
    #[error(transparent)]
    CreatedAt(trailgate_domain::Error),
    /// A permission-set grant's sessions cannot be told apart: why (the requester is no
    /// Identity Center session, or the grant never became active and no session can exist).
    #[error("{0}")]
    NoSession(String),
    /// The LookupEvents scan could not run.
    #[error("LookupEvents failed: {0}")]
    LookupRun(RunError),
    /// No LookupEvents page could be read at all: "nothing found" must never stand for
    /// "nothing read". Holds the last reason a call gave.
    #[error("LookupEvents failed: {0}")]
    NothingRead(String),
}
