//! Admin routes of a domain: webhooks that receive its call events, and the
//! delivery state (mail, SMS, webhooks) of its calls.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use callhub_core::api::{
    DeliveriesQuery, DeliveryAttemptView, DeliveryList, DeliveryView, WebhookInfo, WebhookList,
    WebhookRequest,
};
use callhub_core::{Role, UserInfo, format_time};
use callhub_store::{DeliveryStatus, Webhook};

use callhub_core::text::check_no_control;

use crate::app::App;
use crate::auth::random_token;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Authed};

/// Webhooks one domain may register: each event of its calls is sent to every one.
pub const MAX_WEBHOOKS: usize = 20;

fn admin(me: &UserInfo) -> ApiResult<()> {
    if me.has_role(Role::Admin) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only an admin of the domain may do this".into(),
        ))
    }
}

fn info(w: Webhook, secret: bool) -> WebhookInfo {
    WebhookInfo {
        id: w.id,
        url: w.url,
        domain: w.domain,
        created_at: format_time(&w.created_at),
        secret: secret.then_some(w.secret),
    }
}

async fn check_url(app: &App, url: &str) -> ApiResult<()> {
    let refuse = |why: String| ApiError::BadRequest(format!("url: {why}"));
    check_no_control("url", url)?;
    if url.len() > 2000 || url.chars().any(char::is_whitespace) {
        return Err(refuse(format!("{url:?} is not an http:// or https:// URL")));
    }
    if app.senders.webhook_allow_private {
        return crate::outbox::target::host_port(url)
            .map(|_| ())
            .map_err(refuse);
    }
    crate::outbox::target::check_url(url).await.map_err(refuse)
}

#[utoipa::path(post, path = "/admin/webhooks", tag = "admin", operation_id = "createWebhook",
    request_body = WebhookRequest,
    responses(
        (status = 201, description = "Registered for the admin's domain; the answer carries the signing secret, shown this once", body = WebhookInfo),
        (status = 400, description = "Invalid body; the detail names the field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The domain already has 20 webhooks", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_webhook(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiJson(req): ApiJson<WebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookInfo>)> {
    admin(&me)?;
    let url = req.url.trim();
    check_url(&app, url).await?;
    if app.store.webhooks(&me.domain).await?.len() >= MAX_WEBHOOKS {
        return Err(ApiError::Conflict(format!(
            "url: the domain already has {MAX_WEBHOOKS} webhooks; delete one first"
        )));
    }
    let hook = app
        .store
        .create_webhook(&me.domain, url, &random_token())
        .await?;
    Ok((StatusCode::CREATED, Json(info(hook, true))))
}

#[utoipa::path(get, path = "/admin/webhooks", tag = "admin", operation_id = "listWebhooks",
    responses(
        (status = 200, description = "The webhooks of the admin's domain (without secrets)", body = WebhookList),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_webhooks(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
) -> ApiResult<Json<WebhookList>> {
    admin(&me)?;
    let hooks = app.store.webhooks(&me.domain).await?;
    Ok(Json(WebhookList {
        webhooks: hooks.into_iter().map(|w| info(w, false)).collect(),
    }))
}

#[utoipa::path(delete, path = "/admin/webhooks/{id}", tag = "admin", operation_id = "deleteWebhook",
    params(("id" = i64, Path, description = "The webhook's id")),
    responses(
        (status = 204, description = "Deleted; its pending deliveries are cancelled"),
        (status = 400, description = "The id is not a webhook id (a 64-bit integer)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook in the admin's domain", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_webhook(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    admin(&me)?;
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("id: {id:?} is not a webhook id")))?;
    if app.store.delete_webhook(&me.domain, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "id: no webhook {id} in your domain"
        )))
    }
}

#[utoipa::path(get, path = "/admin/deliveries", tag = "admin", operation_id = "getDeliveries",
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "A page of the call's mail, SMS and webhook deliveries, oldest first, with their attempts", body = DeliveryList),
        (status = 400, description = "callId missing or not a UUID, or a bad page or size", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call in the admin's domain", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn deliveries(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiQuery(q): ApiQuery<DeliveriesQuery>,
) -> ApiResult<Json<DeliveryList>> {
    admin(&me)?;
    let page = q.page.unwrap_or(0);
    let size = q.size.unwrap_or(100);
    if !(1..=500).contains(&size) {
        return Err(ApiError::BadRequest(format!(
            "size: {size} is not between 1 and 500"
        )));
    }
    if page > 1_000_000 {
        return Err(ApiError::BadRequest(format!("page: {page} is too large")));
    }
    app.store
        .call(q.call_id)
        .await?
        .filter(|c| c.domain == me.domain)
        .ok_or_else(|| {
            ApiError::NotFound(format!("callId: no call {} in your domain", q.call_id))
        })?;
    let (rows, total) = app.store.deliveries_of_call(q.call_id, page, size).await?;
    let deliveries = rows
        .into_iter()
        .map(|(d, attempts)| DeliveryView {
            id: d.id,
            channel: d.channel,
            recipient: d.recipient,
            status: d.status.as_str().into(),
            contact_id: d.contact,
            event_id: d.event_id,
            webhook_id: d.webhook_id,
            attempts: d.attempts,
            created_at: format_time(&d.created_at),
            next_attempt_at: (d.status == DeliveryStatus::Pending)
                .then(|| format_time(&d.next_attempt_at)),
            done_at: d.done_at.as_ref().map(format_time),
            last_error: d.last_error,
            attempt_log: attempts
                .into_iter()
                .map(|a| DeliveryAttemptView {
                    attempt: a.attempt,
                    started_at: format_time(&a.started_at),
                    finished_at: format_time(&a.finished_at),
                    outcome: a.outcome,
                    detail: a.detail,
                })
                .collect(),
        })
        .collect();
    Ok(Json(DeliveryList {
        call_id: q.call_id,
        deliveries,
        page,
        size,
        total_elements: total,
    }))
}
