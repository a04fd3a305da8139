//! trailgate-review: the rules that decide what reviewers and approvers are told, separate from
//! the functions that serve them.
//!
//! # Layout
//! - [`gather`]: the reviewer context of a request: the paced history fetch, the approval-context
//!   runbooks over it, new origins and previous requests, ranked into a
//!   [`trailgate_domain::findings::ContextSummary`].
//! - [`scan`]: the three-phase LookupEvents fetch behind it (the requester's history, high-risk
//!   event names first, then the rest), driven through the runbooks' resumable LookupEvents mode.
//! - [`origins`]: Regions and source IPs new to the requester.
//! - [`history`]: the requester's previous trailgate requests and what their sessions did.
//! - [`session`]: the end-of-session audit: the session-audit runbook over LookupEvents and the
//!   incident runbooks over the session's records.
//! - [`trail`]: the session audit's trail-bucket source (data events, and a watermark per
//!   Region), when a trail bucket is configured.
//! - [`report`]: a session's actions, errors and resources.
//! - [`policy`]: the least-privilege policy a session's calls suggest, scoped to their resources.
//! - [`iam`]: AWS's Service Authorization Reference (generated data) and the IAM actions a
//!   CloudTrail call needs.
//! - [`error`]: why a context or a session analysis could not be made.
//!
//! No AWS SDK and no runtime: CloudTrail is reached through
//! [`trailgate_runbooks::source::lookup::LookupEventsApi`], the ledger through
//! [`trailgate_domain::ports::Ledger`], and time through the port's clock and sleep plus the
//! wall-clock `now` the caller passes in, so every rule runs in tests on a virtual clock.

pub mod error;
pub mod gather;
pub mod history;
pub mod iam;
pub mod origins;
pub mod policy;
pub mod report;
pub mod scan;
pub mod session;
pub mod trail;

pub use error::ReviewError;
