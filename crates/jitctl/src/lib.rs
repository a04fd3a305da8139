//! The library behind `jitctl`: the signed API client, endpoint discovery and the local-stack
//! commands. The system tests use the same client, so what they test is what users run.

pub mod api;
pub mod approve;
pub mod catalog_check;
pub mod console;
pub mod demo;
pub mod endpoint;
pub mod export;
pub mod local;
pub mod report;
pub mod requests;
pub mod runbook;
pub mod verify;
