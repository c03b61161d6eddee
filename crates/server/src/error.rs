//! The one error type of the HTTP edge: every failure becomes an RFC 9457
//! `application/problem+json` body naming the problem. 500s are logged, not shown.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use callhub_core::CallError;
use callhub_store::StoreError;

pub use callhub_core::api::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    /// The client did not send its request in time.
    #[error("{0}")]
    Timeout(String),
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub fn problem(status: StatusCode, detail: String) -> Response {
    let body = Problem {
        kind: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").into(),
        status: status.as_u16(),
        detail,
        request_id: crate::observe::request_id(),
    };
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "internal error; see the server log".to_owned()
            }
            ApiError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                "the database is unavailable; try again shortly".to_owned()
            }
            other => other.to_string(),
        };
        let mut res = problem(status, detail);
        let retry = match &self {
            ApiError::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            ApiError::Unavailable(_) => Some(2),
            _ => None,
        };
        if let Some(secs) = retry {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Rules(e) => e.into(),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            e @ (StoreError::Database(_) | StoreError::Sqlite(_) | StoreError::Corrupt(_)) => {
                ApiError::Internal(e.into())
            }
        }
    }
}

impl From<callhub_core::text::InvalidText> for ApiError {
    fn from(e: callhub_core::text::InvalidText) -> Self {
        ApiError::BadRequest(e.to_string())
    }
}

impl From<callhub_core::wire::Malformed> for ApiError {
    fn from(e: callhub_core::wire::Malformed) -> Self {
        ApiError::BadRequest(e.0)
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::NotVisible => ApiError::NotFound("no such call visible to you".into()),
            CallError::Ended => ApiError::Conflict("the call has ended".into()),
            CallError::Forbidden(m) => ApiError::Forbidden(m.into()),
            CallError::Conflict(m) => ApiError::Conflict(m.into()),
            CallError::Invalid(m) => ApiError::BadRequest(m),
        }
    }
}
