//! Anonymous guests: the page a guest link opens, and `joinAnonymous`, which lets
//! the holder of a call's link join that one call under a name of their choosing.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use callhub_core::api::{GuestJoinRequest, GuestJoinResponse, GuestPageQuery};
use callhub_core::text::{DisplayName, check_no_control};
use callhub_core::{Call, CallStatus, Command, apply};
use callhub_store::StoreError;
use uuid::Uuid;

use crate::app::{App, now};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, ClientIp};
use crate::guest::token_matches;
use crate::routes::web::esc;

fn wrong_token() -> ApiError {
    ApiError::NotFound("token: no call with this guest link".into())
}

/// Reads the call of a guest link, counting wrong tokens per client address.
/// The right token always opens its call: it is 256 bits, so no count of
/// guesses gets near it, and the limit only slows scanning — whereas refusing
/// it would let a stranger behind the same address lock real guests out.
async fn call_of_link(app: &App, ip: &str, call_id: Uuid, token: &str) -> ApiResult<Call> {
    let call = app.store.call(call_id).await?;
    if let Some(call) = call.as_ref()
        && call.anonymous_join_allowed
        && token_matches(call, token)
    {
        return Ok(call.clone());
    }
    if let Some(retry_after_secs) = app.guest_failures.check(ip) {
        return Err(ApiError::TooManyRequests {
            detail: "too many wrong guest links; wait and retry".into(),
            retry_after_secs,
        });
    }
    match call {
        Some(call) if !call.anonymous_join_allowed => Err(ApiError::Forbidden(
            "callId: this call does not allow anonymous join".into(),
        )),
        _ => {
            app.guest_failures.spend(ip);
            Err(wrong_token())
        }
    }
}

#[utoipa::path(post, path = "/rtc/joinAnonymous", tag = "guests", operation_id = "joinAnonymous", security(()),
    request_body = GuestJoinRequest,
    responses(
        (status = 200, description = "Joined as an anonymous guest (writes Join); the access token works for this call's leaveCall only", body = GuestJoinResponse),
        (status = 400, description = "Invalid body; the detail names the field", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The call does not allow anonymous join", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No call with this guest link (a wrong token)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The call has ended, a MESH call is full, or the call holds CALLHUB_MAX_CALL_CONTACTS contacts", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong tokens from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn join_anonymous(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<GuestJoinRequest>,
) -> ApiResult<Json<GuestJoinResponse>> {
    let name = DisplayName::parse("displayName", &req.display_name)?.into_string();
    check_no_control("token", &req.token)?;
    if req.token.trim().is_empty() {
        return Err(ApiError::BadRequest("token: must not be empty".into()));
    }
    call_of_link(&app, &ip.to_string(), req.call_id, req.token.trim()).await?;
    let rules = app.rules;
    let result = app
        .store
        .update_call(req.call_id, &|call| {
            apply(
                call,
                Command::JoinGuest {
                    display_name: name.clone(),
                },
                now(),
                &rules,
            )
        })
        .await;
    app.metrics.count(crate::metrics::CALL_COMMANDS);
    let committed = match result {
        Ok(c) => c,
        Err(StoreError::NotFound) => return Err(wrong_token()),
        Err(e) => return Err(e.into()),
    };
    app.after_commit(&committed);
    let call = committed.call;
    // The guest is the contact the command added: the last one.
    let contact = call.contacts.len() as i64;
    crate::presence::guest_joined(app.clone(), call.call_id, contact);
    Ok(Json(GuestJoinResponse {
        access_token: app.tokens.issue_guest(call.call_id, contact)?,
        contact_id: contact,
        media: super::calls::media(&app, &call, None, contact),
        call_log: call.to_call_log(None),
    }))
}

#[utoipa::path(get, path = "/join/{callId}", tag = "guests", operation_id = "guestPage", security(()),
    params(("callId" = Uuid, Path, description = "The call"), GuestPageQuery),
    responses(
        (status = 200, description = "The web client's guest page: the guest names themself and joins, then talks in the call (HTML; no inline or foreign scripts, see its Content-Security-Policy)", content_type = "text/html"),
        (status = 400, description = "The query has no t", body = Problem, content_type = "application/problem+json"),
        (status = 304, description = "The client's page is unchanged since the `If-None-Match` ETag"),
        (status = 403, description = "The call does not allow anonymous join", content_type = "text/html"),
        (status = 404, description = "No call with this guest link", content_type = "text/html"),
        (status = 409, description = "The call has ended", content_type = "text/html"),
        (status = 429, description = "Too many wrong links from this address", content_type = "text/html"),
    ))]
pub async fn guest_page(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Path(call_id): Path<String>,
    ApiQuery(q): ApiQuery<GuestPageQuery>,
) -> Response {
    let refused = |status, detail: &str| {
        let mut res = page(status, "This link does not open a call", detail);
        crate::routes::web::secure_for(&mut res, &headers);
        res
    };
    let Ok(call_id) = call_id.parse::<Uuid>() else {
        return refused(StatusCode::NOT_FOUND, "callId: not a call id");
    };
    let call = match call_of_link(&app, &ip.to_string(), call_id, q.t.trim()).await {
        Ok(call) => call,
        Err(e) => {
            let mut res = refused(e.status(), &e.to_string());
            if let ApiError::TooManyRequests {
                retry_after_secs, ..
            } = e
            {
                res.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(retry_after_secs.max(1)),
                );
            }
            return res;
        }
    };
    if call.status == CallStatus::Ended {
        let mut res = page(StatusCode::CONFLICT, &call.title, "This call has ended.");
        crate::routes::web::secure_for(&mut res, &headers);
        return res;
    }
    // The client reads the call and the token from its address and joins by them.
    let inviter = crate::outbox::mail::inviter(&call);
    crate::routes::web::guest_page(&headers, &call.title, &inviter).await
}

/// Why a guest link opens no call, in the client's look (its stylesheet; no script).
fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{t} · callhub</title><link rel=stylesheet href=\"/assets/style.css\">\
         <link rel=icon href=\"/assets/icon.svg\"></head><body class=plain>\
         <main class=\"card narrow\"><p class=brand>callhub</p><h1>{t}</h1><p>{x}</p></main></body></html>",
        t = esc(title),
        x = esc(text),
    );
    (status, Html(body)).into_response()
}
