//! The domain error type and the stable names the state machine and the HTTP API rely on.
//!
//! `ErrorKind::name()` is the Lambda `errorType`; the ASL's Retry/Catch match these strings,
//! so renaming one is a breaking change to `statemachine/access-request.asl.json`.

use std::fmt;

/// What went wrong, in the terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed or breaks a rule (HTTP 400).
    InvalidRequest,
    /// The caller may not do this (HTTP 403).
    Forbidden,
    /// The thing does not exist (HTTP 404).
    NotFound,
    /// The thing is in a state that does not allow this (HTTP 409).
    Conflict,
    /// The target role fails the grantable-role contract.
    NotGrantable,
    /// A transient failure: retrying the same call may succeed.
    Retryable,
    /// A bug or a misconfiguration: retrying will not help.
    Internal,
    /// The request body is larger than the API reads (HTTP 413).
    PayloadTooLarge,
    /// The caller sent too many requests in a short time (HTTP 429).
    RateLimited,
}

impl ErrorKind {
    /// The stable PascalCase name used as Lambda `errorType` and HTTP error code.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "InvalidRequest",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::NotGrantable => "NotGrantable",
            ErrorKind::Retryable => "Retryable",
            ErrorKind::Internal => "Internal",
            ErrorKind::PayloadTooLarge => "PayloadTooLarge",
            ErrorKind::RateLimited => "RateLimited",
        }
    }

    /// The HTTP status an API answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::NotGrantable => 409,
            ErrorKind::Retryable => 503,
            ErrorKind::Internal => 500,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::RateLimited => 429,
        }
    }

    /// Every kind, for tests that keep the ASL and this list in step.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::InvalidRequest,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::NotGrantable,
        ErrorKind::Retryable,
        ErrorKind::Internal,
        ErrorKind::PayloadTooLarge,
        ErrorKind::RateLimited,
    ];
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A domain error: a kind, a human sentence, and the request field it is about (if any).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub field: Option<String>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            field: None,
        }
    }

    /// An invalid-input error about one field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::InvalidRequest,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, message)
    }

    pub fn not_grantable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotGrantable, message)
    }

    pub fn retryable(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Retryable, message)
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Internal, message)
    }

    /// A body over the API's size limit.
    pub fn too_large(message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::PayloadTooLarge,
            message: message.into(),
            field: Some("body".to_owned()),
        }
    }

    /// Too many calls by one caller; the API adds `Retry-After`.
    pub fn rate_limited(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::RateLimited, message)
    }

    /// The body every trailgate API answers a mistake with.
    pub fn to_http_body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": { "code": self.kind.name(), "message": self.message, "field": self.field }
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
