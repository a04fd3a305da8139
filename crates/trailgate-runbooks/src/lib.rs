//! trailgate-runbooks: CloudTrail runbooks as data, and the engine that runs them.
//!
//! A runbook is a YAML file (see `runbooks/README.md`): parameters, a time window, a filter over
//! record fields, an output shape, severity, ATT&CK references and next steps. The engine binds
//! parameters ([`Runbook::compile`]), streams records from a [`source::Source`] through the
//! filter, and aggregates a [`RunbookResult`] with honest [`Coverage`].
//!
//! # Layout
//! - `spec`: the serde types of the YAML format.
//! - `runbook`: parsing and validation with `file:line:column: path: problem` errors.
//! - `params`: parameter values and the time window.
//! - `filter`: field paths and the compiled matcher.
//! - `engine`: binding, the streaming [`engine::Scan`], and [`run`].
//! - `output` and `render`: the result, its bounded aggregators, and text/markdown/JSON/HTML rendering.
//! - `source`: the [`source::Source`] trait, local files and folders, and LookupEvents.
//! - `library`: loading a folder of runbooks.
//! - `sigma`: Sigma rules for aws/cloudtrail translated into runbooks (recognised by `Runbook::parse`).
//! - `sql`: the same bound runbook compiled to SQL for Athena's CloudTrail table (and DuckDB).
//! - `athena`: the Athena table DDL over a trail bucket (partition projection on account, Region
//!   and day) and the partitions a window reads.
//! - `sql_result`: a result assembled from the rows of those SQL queries.
//! - `attack`: ATT&CK technique ids and the known cloud techniques (`data/`).
//! - `inventory`: what a set of runbooks covers (techniques, event names).
//! - `noise`: match counts per runbook on a body of logs.
//!
//! The crate does no I/O except the file source (std::fs + flate2); LookupEvents is reached
//! through the [`source::lookup::LookupEventsApi`] trait, implemented elsewhere.

pub mod athena;
pub mod attack;
pub mod engine;
pub mod error;
pub mod filter;
pub mod inventory;
pub mod library;
mod locate;
pub mod noise;
pub mod output;
pub mod params;
mod prefilter;
pub mod render;
pub mod runbook;
pub mod sigma;
pub mod source;
pub mod spec;
pub mod sql;
pub mod sql_result;
mod template;
pub mod timefmt;
mod validate;

pub use engine::{Compiled, Scan, ScanState, StateError, run};
pub use error::{InvalidRunbook, LoadError, ParamError, Problem, RunError, SourceError};
pub use library::Library;
pub use output::{Coverage, RunbookResult};
pub use params::{Params, Window};
pub use runbook::Runbook;
pub use spec::Severity;
