//! The harness the system tests share: bringing a local stack up and down, the catalog they
//! deploy, template.yaml's IAM documents and the IAM evaluator that judges them, and a
//! context of signed clients and AWS SDK clients with the polling helpers every scenario
//! leans on, and the OCSF schema check.
//!
//! The scenarios themselves stay in `tests/*.rs`; this library holds only what more than one
//! of them needs, in its general form (limits and roles are parameters), so a fix to how the
//! tests wait or read the stack is made once.

pub mod browser;
pub mod catalog;
pub mod ctx;
pub mod iam;
pub mod ocsf;
pub mod stack;
pub mod template;

pub use ctx::{Answer, Ctx, Execution, Mail, post_link};
pub use stack::{report, run_on_stack, run_on_stack_with};
