//! The local stack: trailgate on one machine with real engines and no AWS account.
//!
//! # Layout
//!
//! - [`stack`]: the supervisor. [`LocalStack::up`] binds the router's ports, starts moto (told
//!   via `MOTO_PORT` that the router is its endpoint), turns on moto's Step Functions
//!   interpreter, deploys template.yaml, starts `cargo lambda watch` with the functions'
//!   environment and writes the state directory; [`down`] stops a detached stack by PID.
//! - [`router`]: the endpoint router (AWS port: Lambda Invoke → cargo-lambda, CloudTrail
//!   LookupEvents from local files, everything else → moto; API port: API Gateway REST
//!   emulation with SigV4, and the SNS outbox page).
//! - [`cloudformation`]: deploys template.yaml through the SAM transform and moto's
//!   CloudFormation (`local/sam_deploy.py`, with `local/moto_server.py`'s shim) and reads the
//!   stack back.
//! - [`organization`]: the local Organization (a management and two member accounts) and the
//!   member stack deployed in each.
//! - [`state`]: `state.json`, the AWS config file, [`wait_ready`].
//! - [`process`]: child processes, process trees and ports.
//!
//! See `crates/trailgate-local/README.md` for how to run it by hand.

pub mod cloudformation;
pub mod error;
pub mod identity_center;
pub mod organization;
pub mod process;
pub mod router;
pub mod stack;
pub mod state;

// The entry points the CLI and the system tests use.
pub use error::{Error, Result};
pub use stack::{LocalStack, UpOptions, down, local_parameters};
pub use state::{StackState, StackStatus, wait_ready};
