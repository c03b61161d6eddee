//! Anonymous guests: the page a guest link opens, and `joinAnonymous`, which lets
//! the holder of a call's link join that one call under a name of their choosing.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use callhub_core::api::{GuestJoinRequest, GuestJoinResponse, GuestPageQuery};
use callhub_core::{Call, CallStatus, Command, apply};
use callhub_store::StoreError;
use uuid::Uuid;

use crate::app::{App, now};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, ClientIp};
use crate::guest::token_matches;

const MAX_NAME: usize = 100;

fn wrong_token() -> ApiError {
    ApiError::NotFound("token: no call with this guest link".into())
}

/// Reads the call of a guest link, counting wrong tokens per client address.
async fn call_of_link(app: &App, ip: &str, call_id: Uuid, token: &str) -> ApiResult<Call> {
    if let Some(retry_after_secs) = app.guest_failures.check(ip) {
        return Err(ApiError::TooManyRequests {
            detail: "too many wrong guest links; wait and retry".into(),
            retry_after_secs,
        });
    }
    let call = app.store.call(call_id).await?;
    match call {
        Some(call) if !call.anonymous_join_allowed => Err(ApiError::Forbidden(
            "callId: this call does not allow anonymous join".into(),
        )),
        Some(call) if token_matches(&call, token) => Ok(call),
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
        (status = 409, description = "The call has ended, or a MESH call is full", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong tokens from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn join_anonymous(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<GuestJoinRequest>,
) -> ApiResult<Json<GuestJoinResponse>> {
    let name = req.display_name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::BadRequest(
            "displayName: must not be empty".into(),
        ));
    }
    if name.chars().count() > MAX_NAME {
        return Err(ApiError::BadRequest(format!(
            "displayName: at most {MAX_NAME} characters"
        )));
    }
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
        (status = 200, description = "The guest page: name the guest and join (HTML; no scripts from elsewhere)", content_type = "text/html"),
        (status = 403, description = "The call does not allow anonymous join", content_type = "text/html"),
        (status = 404, description = "No call with this guest link", content_type = "text/html"),
        (status = 409, description = "The call has ended", content_type = "text/html"),
        (status = 429, description = "Too many wrong links from this address", content_type = "text/html"),
    ))]
pub async fn guest_page(
    State(app): State<Arc<App>>,
    ClientIp(ip): ClientIp,
    Path(call_id): Path<String>,
    ApiQuery(q): ApiQuery<GuestPageQuery>,
) -> Response {
    let Ok(call_id) = call_id.parse::<Uuid>() else {
        return page(
            StatusCode::NOT_FOUND,
            "This link does not open a call",
            "callId: not a call id",
            None,
        )
        .into_response();
    };
    let call = match call_of_link(&app, &ip.to_string(), call_id, q.t.trim()).await {
        Ok(call) => call,
        Err(e) => {
            let status = e.status();
            let mut res = page(
                status,
                "This link does not open a call",
                &e.to_string(),
                None,
            )
            .into_response();
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
        return page(
            StatusCode::CONFLICT,
            &call.title,
            "This call has ended.",
            None,
        )
        .into_response();
    }
    page(
        StatusCode::OK,
        &call.title,
        "You are invited to join this call as a guest.",
        Some((call_id, q.t.trim())),
    )
    .into_response()
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The placeholder guest page until the web client lands: a name field and a
/// button that calls `joinAnonymous` (inline script only).
fn page(
    status: StatusCode,
    title: &str,
    text: &str,
    join: Option<(Uuid, &str)>,
) -> (StatusCode, Html<String>) {
    let form = join
        .map(|(call_id, token)| {
            format!(
                "<form id=join><label>Your name <input name=displayName required maxlength=100></label> \
                 <button>Join</button></form><p id=out></p>\
                 <script>document.getElementById('join').onsubmit=async e=>{{e.preventDefault();\
                 const r=await fetch('/rtc/joinAnonymous',{{method:'POST',headers:{{'content-type':'application/json'}},\
                 body:JSON.stringify({{callId:'{call_id}',token:'{token}',displayName:e.target.displayName.value}})}});\
                 const b=await r.json();document.getElementById('out').textContent=r.ok?'You have joined the call.':b.detail;}};</script>",
                token = esc(token),
            )
        })
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>{t} · callhub</title><style>body{{font:16px/1.5 system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem}}</style>\
         </head><body><h1>{t}</h1><p>{x}</p>{form}</body></html>",
        t = esc(title),
        x = esc(text),
    );
    (status, Html(body))
}
