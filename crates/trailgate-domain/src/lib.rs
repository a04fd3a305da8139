//! trailgate's domain: everything that decides, nothing that talks to the outside world.
//!
//! # Layout
//! - [`error`]: the error type and its stable `errorType` names (matched by the state machine).
//! - [`time`]: UTC instants and ISO-8601 durations as trailgate writes and reads them.
//! - [`catalog`]: what can be requested, by whom, approved by whom, and who is which person.
//! - [`catalog_version`]: the deployed catalog's versions, who may push one, and their chain.
//! - [`identity`]: principal ARNs parsed and normalised, and which of them name a person.
//! - [`request`]: an access request, its status and the transitions between statuses.
//! - [`request_report`]: one request as an auditor keeps it (JSON, and a self-contained HTML page).
//! - [`findings`]: what reviewers are shown (findings, evidence, coverage, the stored context)
//!   and its bounds; `trailgate-review` produces the findings.
//! - [`ledger`]: hash-chained audit events and the change set a transition commits.
//! - [`lifecycle`]: the lifecycle events for an event bus, one per ledger event, and `closed`.
//! - [`link`]: approval links signed for one approver and bound to one request's content.
//! - [`slack`]: Slack interactivity requests: the signature check (replay window, constant-time
//!   compare) and a button press read into the ids Slack signed and the decision.
//! - [`ocsf`]: the ledger's events as OCSF 1.8.0 events (User Access Management, Authentication).
//! - [`organization`]: the Organization's accounts and OUs, as intake needs them.
//! - [`policy`]: the IAM documents trailgate writes (per-request deny, session policy).
//! - [`user_deny`]: the deny in a permission set that ends an Identity Center user's sessions.
//! - [`html`]: the one HTML escaper of every page trailgate renders.
//! - [`ports`]: the traits the AWS adapters implement.
//! - [`service`]: the use cases (submit, approve, grant, vend, revoke, ...) written against the ports.
//!
//! This crate does no I/O: randomness and the current time are passed in by the caller,
//! so every rule here is testable with plain values.

pub mod catalog;
pub mod catalog_version;
pub mod error;
pub mod findings;
pub mod html;
pub mod identity;
pub mod ledger;
pub mod lifecycle;
pub mod link;
pub mod ocsf;
pub mod organization;
pub mod policy;
pub mod ports;
pub mod request;
pub mod request_report;
pub mod service;
pub mod slack;
pub mod time;
pub mod user_deny;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::{Error, ErrorKind};
