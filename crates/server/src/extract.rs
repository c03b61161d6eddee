//! Extractors that turn every bad input into a problem naming it: JSON bodies
//! (whatever their content type, as the seed's `fetch` sends text/plain), query
//! strings, and the bearer token.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use callhub_core::UserInfo;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::auth::GuestClaims;
use crate::error::ApiError;
use crate::listen::BodyReadTimeout;

/// A JSON body, read whatever its `Content-Type`; errors name the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // A client trickling its body would hold the connection and its task.
        let limit = req
            .extensions()
            .get::<BodyReadTimeout>()
            .map_or(Duration::from_secs(10), |t| t.0);
        let read = tokio::time::timeout(limit, Bytes::from_request(req, state));
        let bytes = read
            .await
            .map_err(|_| {
                ApiError::Timeout(format!(
                    "the body did not arrive within {} s",
                    limit.as_secs()
                ))
            })?
            .map_err(|e| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::TooLarge("the body is larger than 1 MiB".into())
                } else {
                    ApiError::BadRequest(format!("cannot read the body: {}", e.body_text()))
                }
            })?;
        Ok(ApiJson(callhub_core::wire::parse_body(&bytes)?))
    }
}

/// A query string; errors name the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                let text = e.body_text();
                ApiError::BadRequest(
                    text.trim_start_matches("Failed to deserialize query string: ")
                        .to_owned(),
                )
            })?;
        Ok(ApiQuery(value))
    }
}

/// The account behind a valid `Authorization: Bearer` access token.
pub struct Authed(pub UserInfo);

impl Authed {
    /// Resolves an access token to its live user and refresh-token family.
    pub async fn session(app: &App, token: &str) -> Result<(UserInfo, String), ApiError> {
        let (user, family) = app.tokens.verify(token).ok_or_else(|| {
            ApiError::Unauthorized("the access token is invalid or expired".into())
        })?;
        let user = app
            .store
            .session_user(user, &family)
            .await?
            .ok_or_else(|| ApiError::Unauthorized("the session has ended; log in again".into()))?;
        Ok((user, family))
    }
}

/// The bearer token of a request.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::Unauthorized("missing Authorization: Bearer <accessToken>".into())
        })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be Bearer <accessToken>".into())
        })?;
    Ok(token.trim())
}

impl FromRequestParts<Arc<App>> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if app.tokens.verify_guest(token).is_some() {
            return Err(ApiError::Unauthorized(
                "a guest's access token works only for leaving its own call".into(),
            ));
        }
        Ok(Authed(Authed::session(app, token).await?.0))
    }
}

/// An account, or a guest of one call (on the routes a guest may use).
pub enum Caller {
    User(UserInfo),
    Guest(GuestClaims),
}

impl FromRequestParts<Arc<App>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, ApiError> {
        let token = bearer(parts)?;
        if let Some(guest) = app.tokens.verify_guest(token) {
            return Ok(Caller::Guest(guest));
        }
        Ok(Caller::User(Authed::session(app, token).await?.0))
    }
}

/// The client's address, for rate limits.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let addr = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(addr))
    }
}
