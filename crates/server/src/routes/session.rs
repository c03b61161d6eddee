//! `/login`, `/refresh`, `/logout`: access tokens for 15 minutes, refresh tokens
//! that rotate on every use and give away a thief by their reuse.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use callhub_core::UserInfo;
use callhub_core::api::{LoginRequest, RefreshRequest, TokenResponse};
use callhub_core::text::{Domain, UserId, check_no_control, optional};
use callhub_store::Rotation;

use crate::app::{App, now};
use crate::auth::{random_token, token_hash, verify_password};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ClientIp};

const BAD_LOGIN: &str = "wrong username or password";

/// How much slower a login answers while its account is failing from everywhere.
const ACCOUNT_UNDER_ATTACK_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

fn pair_key(account: &str, ip: &str) -> String {
    format!("{account}|{ip}")
}

fn too_many_logins(retry_after_secs: u64) -> ApiError {
    ApiError::TooManyRequests {
        detail: "too many login attempts; wait and retry".into(),
        retry_after_secs,
    }
}

#[utoipa::path(post, path = "/login", tag = "auth", security(()),
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = TokenResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong username or password", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let username = UserId::parse("username", &req.username)?;
    let domain = optional(req.domain.as_deref(), |d| Domain::parse("domain", d))?;
    check_no_control("password", &req.password)?;
    let ip_key = ip.to_string();
    if let Some(retry_after_secs) = app.login_per_ip.check(&ip_key) {
        return Err(too_many_logins(retry_after_secs));
    }
    app.login_per_ip.spend(&ip_key);
    let candidates = app
        .store
        .login_candidates(&username, domain.as_ref())
        .await?;
    // Failures count against the account meant, however it was named (with or
    // without `domain`), together with the address they came from: a stranger
    // exhausts only their own budget and cannot lock the account's owner out.
    let accounts: Vec<String> = if candidates.is_empty() {
        vec![format!("name:{username}")]
    } else {
        candidates
            .iter()
            .map(|(u, _)| format!("user:{}", u.user_db_id))
            .collect()
    };
    for account in &accounts {
        if let Some(retry_after_secs) = app.login_failures.check(&pair_key(account, &ip_key)) {
            return Err(too_many_logins(retry_after_secs));
        }
    }
    // Many failures against the account from everywhere slow every answer for it
    // down, and refuse nothing.
    if accounts
        .iter()
        .any(|a| app.login_failures_account.check(a).is_some())
    {
        tokio::time::sleep(ACCOUNT_UNDER_ATTACK_DELAY).await;
    }
    // Verify against a dummy hash when no single account matches: both answers take as long.
    let (user, hash) = match <[_; 1]>::try_from(candidates) {
        Ok([(user, hash)]) => (Some(user), hash),
        Err(_) => (None, app.dummy_hash.clone()),
    };
    let ok = verify_password(req.password, hash).await;
    let Some(user) = user.filter(|_| ok) else {
        for account in &accounts {
            app.login_failures.spend(&pair_key(account, &ip_key));
            app.login_failures_account.spend(account);
        }
        app.metrics.count(crate::metrics::LOGINS_FAILED);
        return Err(ApiError::Unauthorized(BAD_LOGIN.into()));
    };
    let family = uuid::Uuid::new_v4().to_string();
    let refresh = random_token();
    app.store
        .start_token_family(
            &family,
            user.user_db_id,
            &token_hash(&refresh),
            expiry(&app),
        )
        .await?;
    Ok(Json(token_response(&app, user, &family, refresh)?))
}

fn expiry(app: &App) -> chrono::DateTime<chrono::Utc> {
    now() + chrono::Duration::from_std(app.tokens.refresh_ttl).unwrap_or(chrono::Duration::days(30))
}

fn token_response(
    app: &App,
    user: UserInfo,
    family: &str,
    refresh: String,
) -> ApiResult<TokenResponse> {
    Ok(TokenResponse {
        access_token: app.tokens.issue(user.user_db_id, family)?,
        refresh_token: refresh,
        token_type: "Bearer".into(),
        expires_in: app.tokens.access_ttl.as_secs() as i64,
        refresh_expires_in: app.tokens.refresh_ttl.as_secs() as i64,
        user,
    })
}

#[utoipa::path(post, path = "/refresh", tag = "auth", security(()),
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair; the presented refresh token is spent", body = TokenResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token (reuse revokes its family)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let next = random_token();
    let rotation = app
        .store
        .rotate_refresh_token(
            &token_hash(&req.refresh_token),
            &token_hash(&next),
            now(),
            expiry(&app),
        )
        .await?;
    match rotation {
        Rotation::Rotated { user, family } => {
            let user = app
                .store
                .user(user)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("the account is gone".into()))?;
            Ok(Json(token_response(&app, user, &family, next)?))
        }
        Rotation::Reused { family } => {
            tracing::warn!("a spent refresh token was presented again; its family is revoked");
            app.revoke_family(&family);
            Err(ApiError::Unauthorized(
                "the refresh token was already used; the session is revoked".into(),
            ))
        }
        Rotation::Invalid => Err(ApiError::Unauthorized(
            "the refresh token is unknown, expired or revoked".into(),
        )),
    }
}

#[utoipa::path(post, path = "/logout", tag = "auth", security(()),
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "The session (refresh-token family) is revoked"),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn logout(
    State(app): State<Arc<App>>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    if let Some(family) = app
        .store
        .revoke_token_family(&token_hash(&req.refresh_token), now())
        .await?
    {
        app.revoke_family(&family);
    }
    Ok(StatusCode::NO_CONTENT)
}
