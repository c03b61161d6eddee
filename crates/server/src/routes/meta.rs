//! Operations: `/health`, `/metrics`, the OpenAPI document and the page of docs
//! rendered from it (`docs_page`).

use std::sync::Arc;

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
    /// See `NatsState`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsState>,
}

/// Where `CALLHUB_NATS_URL` is set: whether this node reaches NATS (`unreachable`:
/// it still serves, and its sockets read what other nodes commit from the store
/// until NATS is back). Absent on a single node.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NatsState {
    Connected,
    Unreachable,
}

#[utoipa::path(get, path = "/health", tag = "operations", security(()),
    responses(
        (status = 200, description = "The node can serve: its database answers. `nats` says whether the bus to the other nodes is up, where one is configured", body = Health),
        (status = 503, description = "The database is unreachable", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn health(State(app): State<Arc<App>>) -> Result<Json<Health>, ApiError> {
    app.store
        .health()
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let nats = app.bus.as_ref().map(|bus| {
        if bus.is_connected() {
            NatsState::Connected
        } else {
            NatsState::Unreachable
        }
    });
    Ok(Json(Health { status: "ok", nats }))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain")))]
pub async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
        .into_response()
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
