//! The AWS error codes the fake answers with. One type serves both faces: the in-memory face
//! turns it into a porter-identity [`Error`], the HTTP face into a rest-json error response.

use porter_identity_core::{Cloud, Error, ErrorKind};

/// An AWS error code the fake can return, with the HTTP status the EKS model gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    ResourceNotFound,
    ResourceInUse,
    ResourceLimitExceeded,
    InvalidParameter,
    InvalidRequest,
    Throttling,
    Server,
    /// IAM's "not found" (`NoSuchEntity`); never served over HTTP, IAM is not on the HTTP face.
    NoSuchEntity,
    AccessDenied,
    UnrecognizedClient,
    Client,
}

impl Code {
    /// The code as AWS spells it (`x-amzn-errortype`).
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Code::ResourceNotFound => "ResourceNotFoundException",
            Code::ResourceInUse => "ResourceInUseException",
            Code::ResourceLimitExceeded => "ResourceLimitExceededException",
            Code::InvalidParameter => "InvalidParameterException",
            Code::InvalidRequest => "InvalidRequestException",
            Code::Throttling => "ThrottlingException",
            Code::Server => "ServerException",
            Code::NoSuchEntity => "NoSuchEntity",
            Code::AccessDenied => "AccessDeniedException",
            Code::UnrecognizedClient => "UnrecognizedClientException",
            Code::Client => "ClientException",
        }
    }

    /// The HTTP status: from the botocore model's `error.httpStatusCode` where the model has
    /// the shape, else what AWS sends for the common codes (429 throttling, 403 auth).
    pub(crate) const fn status(self) -> u16 {
        match self {
            Code::ResourceNotFound | Code::NoSuchEntity => 404,
            Code::ResourceInUse => 409,
            Code::ResourceLimitExceeded
            | Code::InvalidParameter
            | Code::InvalidRequest
            | Code::Client => 400,
            Code::Throttling => 429,
            Code::Server => 500,
            Code::AccessDenied | Code::UnrecognizedClient => 403,
        }
    }

    /// The kind the real SDK adapter maps this code to.
    pub(crate) const fn kind(self) -> ErrorKind {
        match self {
            Code::ResourceNotFound | Code::NoSuchEntity => ErrorKind::NotFound,
            Code::ResourceInUse => ErrorKind::AlreadyExists,
            Code::ResourceLimitExceeded => ErrorKind::LimitExceeded,
            Code::InvalidParameter | Code::InvalidRequest => ErrorKind::InvalidInput,
            Code::Throttling => ErrorKind::Throttled,
            Code::Server => ErrorKind::Unavailable,
            Code::AccessDenied => ErrorKind::PermissionDenied,
            Code::UnrecognizedClient => ErrorKind::Unauthenticated,
            Code::Client => ErrorKind::Other,
        }
    }

    /// The code to answer with when a test injects a failure of `kind`, and its AWS message.
    pub(crate) fn for_injected(kind: ErrorKind) -> (Code, &'static str) {
        match kind {
            ErrorKind::Throttled => (Code::Throttling, "Rate exceeded"),
            ErrorKind::Unavailable => (
                Code::Server,
                "An internal error occurred. Please try again later.",
            ),
            ErrorKind::NotFound => (Code::ResourceNotFound, "The resource could not be found."),
            // EKS has no separate "conflict" code on these operations: a concurrent writer
            // shows as ResourceInUseException.
            ErrorKind::AlreadyExists | ErrorKind::Conflict => (
                Code::ResourceInUse,
                "The specified resource is in use by another request.",
            ),
            ErrorKind::LimitExceeded => (
                Code::ResourceLimitExceeded,
                "You have reached the limit for this resource.",
            ),
            ErrorKind::InvalidInput => (Code::InvalidParameter, "The request is not valid."),
            ErrorKind::PermissionDenied => (
                Code::AccessDenied,
                "User is not authorized to perform this operation.",
            ),
            ErrorKind::Unauthenticated => (
                Code::UnrecognizedClient,
                "The security token included in the request is invalid.",
            ),
            _ => (Code::Client, "The request failed."),
        }
    }
}

/// An AWS error answered by the fake: a code, the kind callers see, and AWS's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwsError {
    pub(crate) code: Code,
    /// Usually `code.kind()`; an injected failure keeps the kind the test asked for.
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

impl AwsError {
    pub(crate) fn new(code: Code, message: impl Into<String>) -> Self {
        AwsError {
            code,
            kind: code.kind(),
            message: message.into(),
        }
    }

    pub(crate) fn injected(kind: ErrorKind) -> Self {
        let (code, message) = Code::for_injected(kind);
        AwsError {
            code,
            kind,
            message: message.to_owned(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::ResourceNotFound, message)
    }

    pub(crate) fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidParameter, message)
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(Code::InvalidRequest, message)
    }

    pub(crate) fn no_such_entity(message: impl Into<String>) -> Self {
        Self::new(Code::NoSuchEntity, message)
    }

    /// The porter-identity error the real SDK adapter would have produced for `operation`.
    pub(crate) fn into_error(self, operation: &str) -> Error {
        Error::cloud(self.kind, Cloud::Aws, operation, self.message)
    }
}
