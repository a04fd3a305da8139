//! trailgate's AWS adapters: the only crate that calls AWS.
//!
//! # Layout
//! - [`sdk`]: one SDK configuration per process (HTTPS through rustls + ring).
//! - [`config`]: environment variables, read once at cold start.
//! - [`errors`]: SDK errors classified into domain kinds; domain errors into Lambda `Diagnostic`s.
//! - [`catalog`]: the pushed catalog on DynamoDB, and the copy each function runs with (TTL).
//! - [`ledger`], [`workflow`], [`notifier`], [`credentials`], [`roles`], [`secrets`]: the ports.
//! - `cloudtrail` (feature `cloudtrail`): LookupEvents behind trailgate-runbooks' lookup source.
//! - `archive` (feature `archive`): the ledger archive on S3 (closed requests' events, Object Lock).
//! - [`s3`]: the object store behind trailgate-runbooks' S3 source (CloudTrail trail buckets).
//! - `scans` (feature `s3`): the runbook-scan state machine as jitctl starts and follows it.
//! - `athena` (feature `athena`): runs the SQL of trailgate-runbooks' SQL back-end in Athena.
//! - [`agents`]: sessions in member accounts through their agent roles.
//! - `identity_center` (feature `identity-center`): IAM Identity Center's account assignments, permission sets and users.
//! - `organizations` (feature `organizations`): the Organization's accounts and OUs, cached, and the agent probe.
//! - `eventbridge` (feature `eventbridge`): the lifecycle event bus (the events function).
//! - [`apigw`]: API Gateway proxy events in, JSON or HTML responses out.
//! - `testing` (feature `testing`): moto for tests: the server, S3 clients, a filled trail bucket.

pub mod agents;
pub mod apigw;
#[cfg(feature = "archive")]
pub mod archive;
#[cfg(feature = "athena")]
pub mod athena;
pub mod catalog;
#[cfg(feature = "cloudtrail")]
pub mod cloudtrail;
pub mod config;
pub mod credentials;
pub mod errors;
#[cfg(feature = "eventbridge")]
pub mod eventbridge;
#[cfg(feature = "identity-center")]
pub mod identity_center;
pub mod ledger;
pub mod notifier;
#[cfg(feature = "organizations")]
pub mod organizations;
pub mod roles;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(feature = "s3")]
pub mod scans;
pub mod sdk;
pub mod secrets;
#[cfg(all(feature = "s3", any(test, feature = "testing")))]
pub mod testing;
pub mod workflow;

pub use aws_config::SdkConfig;
pub use errors::LambdaError;
