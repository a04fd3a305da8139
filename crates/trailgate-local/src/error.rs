//! The library's error type: every way bringing the local stack up or down can fail, worded so
//! that the person at the terminal knows what to do next.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the local stack.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A port the stack needs is taken, most often by a stack that is still running.
    #[error(
        "port {port} on 127.0.0.1 is in use; is a local stack already running? `jitctl local down`"
    )]
    PortInUse { port: u16 },

    /// A stack recorded in the state directory is still running.
    #[error(
        "a local stack is already running (pid {pid}, state in {}); `jitctl local down`",
        state_dir.display()
    )]
    AlreadyRunning { pid: u32, state_dir: PathBuf },

    /// A tool that `make bootstrap` installs is missing.
    #[error("{path} not found: run `make bootstrap`")]
    ToolMissing { path: String },

    /// A child process ended while the stack was starting.
    #[error("{name} exited during start-up ({status}); last lines of {}:\n{tail}", log.display())]
    ChildExited {
        name: String,
        status: String,
        log: PathBuf,
        tail: String,
    },

    /// A child process did not answer in time.
    #[error("{name} was not ready after {seconds} s; last lines of {}:\n{tail}", log.display())]
    StartTimeout {
        name: String,
        seconds: u64,
        log: PathBuf,
        tail: String,
    },

    /// template.yaml (or a file it points at) cannot be understood.
    #[error("template: {0}")]
    Template(String),

    /// Two functions set the same environment variable to different values, and the local stack
    /// runs every function under one `cargo lambda watch` process environment.
    #[error(
        "environment variable `{name}` is `{first}` in {first_function} but `{second}` in \
         {second_function}; the local stack gives all functions one environment"
    )]
    EnvConflict {
        name: String,
        first: String,
        first_function: String,
        second: String,
        second_function: String,
    },

    /// The deploy (the transform, CreateStack, or reading the stack back) failed.
    #[error("deploying `{logical_id}`: {message}")]
    Deploy { logical_id: String, message: String },

    /// A local file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A JSON document (state file, parameters, catalog) is malformed.
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },

    /// An HTTP call to a child process failed.
    #[error("{context}: {message}")]
    Http { context: String, message: String },

    /// The stack did not report ready in time, or reported a failure.
    #[error("local stack in {}: {message}", state_dir.display())]
    NotReady { state_dir: PathBuf, message: String },
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// Wraps a JSON error with the file or document it came from.
    pub(crate) fn json(context: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Json {
            context: context.into(),
            source,
        }
    }

    /// Wraps a deploy failure for one resource.
    pub(crate) fn deploy(logical_id: &str, message: impl std::fmt::Display) -> Error {
        Error::Deploy {
            logical_id: logical_id.to_owned(),
            message: message.to_string(),
        }
    }
}
