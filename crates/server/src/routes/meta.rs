//! Operations: `/health`, `/metrics`, the OpenAPI document and the page of docs
//! rendered from it (`docs_page`).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::app::App;
use crate::error::{ApiError, Problem};

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`
    pub status: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses(
        (status = 200, description = "The node can serve: its database answers", body = Health),
        (status = 503, description = "The database is unreachable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn health(State(app): State<Arc<App>>) -> Result<Json<Health>, ApiError> {
    app.store
        .health()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(Health { status: "ok" }))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    let m = &app.metrics;
    let mut out = String::new();
    let _ = writeln!(out, "# TYPE callhub_http_responses_total counter");
    for (i, c) in m.responses.iter().enumerate() {
        let _ = writeln!(
            out,
            "callhub_http_responses_total{{class=\"{}xx\"}} {}",
            i + 1,
            c.load(Ordering::Relaxed)
        );
    }
    for (name, c) in [
        ("callhub_calls_created_total", &m.calls_created),
        ("callhub_call_commands_total", &m.call_commands),
        ("callhub_logins_failed_total", &m.logins_failed),
        ("callhub_deadlines_fired_total", &m.deadlines_fired),
        ("callhub_deliveries_sent_total", &m.deliveries_sent),
        ("callhub_deliveries_failed_total", &m.deliveries_failed),
        ("callhub_delivery_retries_total", &m.delivery_retries),
    ] {
        let _ = writeln!(
            out,
            "# TYPE {name} counter\n{name} {}",
            c.load(Ordering::Relaxed)
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async { Json(super::openapi().clone()) }),
        )
        .route("/docs", get(docs))
}

/// Every operation and schema of the OpenAPI document, as one page.
async fn docs(State(app): State<Arc<App>>) -> impl IntoResponse {
    let doc = serde_json::to_value(super::openapi()).unwrap_or_default();
    (
        StatusCode::OK,
        Html(super::docs_page::render(&doc, &app.config.public_url)),
    )
}
