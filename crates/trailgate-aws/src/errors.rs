//! Error translation at the edges: SDK errors into domain kinds, domain errors into the
//! Lambda `Diagnostic` whose `errorType` the state machine's Retry/Catch match.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use lambda_runtime::Diagnostic;
use trailgate_domain::{Error, ErrorKind};

/// Error codes AWS services use for transient conditions.
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionConflictException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalServerError",
    "InternalServiceError",
    "InternalServerErrorException",
    "ServiceFailure",
];

/// Classifies an SDK error: transport failures and throttling are `Retryable`, the rest
/// `Internal`. `what` names the call (`DynamoDB GetItem`) for the message.
pub fn classify<E, R>(what: &str, err: &SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            let code = inner.code().unwrap_or("Unknown");
            let message = inner.message().unwrap_or("");
            let text = format!("{what} failed: {code}: {message}");
            if TRANSIENT_CODES.contains(&code) {
                Error::retryable(text)
            } else {
                Error::internal(text)
            }
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Error::retryable(format!("{what} failed: {err}"))
        }
        _ => Error::internal(format!("{what} failed: {err}")),
    }
}

/// A domain error on its way out of a Lambda handler.
#[derive(Debug)]
pub struct LambdaError(pub Error);

impl From<Error> for LambdaError {
    fn from(err: Error) -> Self {
        LambdaError(err)
    }
}

impl From<LambdaError> for Diagnostic {
    fn from(err: LambdaError) -> Diagnostic {
        Diagnostic {
            error_type: err.0.kind.name().to_owned(),
            error_message: err.0.message,
        }
    }
}

/// The `errorType` names the state machine may match, for consistency tests.
pub fn error_type_names() -> Vec<&'static str> {
    ErrorKind::ALL.iter().map(|kind| kind.name()).collect()
}
