//! Operations: `/health`, `/metrics`, the OpenAPI document and a page of docs
//! rendered from it (no scripts from elsewhere: the server may be offline).

use std::fmt::Write;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::Value;

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

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn schema_name(v: &Value) -> String {
    if let Some(r) = v.get("$ref").and_then(Value::as_str) {
        return r.rsplit('/').next().unwrap_or(r).to_owned();
    }
    match v.get("type").and_then(Value::as_str) {
        Some("array") => format!("[{}]", v.get("items").map(schema_name).unwrap_or_default()),
        Some(t) => t.to_owned(),
        None => String::new(),
    }
}

/// One page with every route, its parameters, body and answers, and every schema.
async fn docs() -> impl IntoResponse {
    let doc = serde_json::to_value(super::openapi()).unwrap_or_default();
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>callhub API</title><style>\
         body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         code,pre{background:#f4f4f4;padding:0 .2em}h3{margin-bottom:.2em}.m{font-weight:bold;color:#06c}\
         table{border-collapse:collapse}td{padding:.1em .6em;border-bottom:1px solid #ddd;vertical-align:top}\
         </style></head><body><h1>callhub API</h1><p>The machine-readable document is \
         <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI 3.1). Errors are RFC 9457 \
         <code>application/problem+json</code>. Authenticate with <code>Authorization: Bearer &lt;accessToken&gt;</code> \
         from <code>POST /login</code>.</p><h2>Routes</h2>",
    );
    if let Some(paths) = doc["paths"].as_object() {
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                let _ = write!(
                    h,
                    "<h3><span class=m>{}</span> <code>{}</code></h3>",
                    method.to_uppercase(),
                    esc(path)
                );
                if let Some(id) = op["operationId"].as_str() {
                    let _ = write!(h, "<div>SDK: <code>{}</code></div>", esc(id));
                }
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let _ = write!(
                        h,
                        "<div>{} parameter <code>{}</code>: {}{}</div>",
                        esc(p["in"].as_str().unwrap_or("")),
                        esc(p["name"].as_str().unwrap_or("")),
                        esc(&schema_name(&p["schema"])),
                        if p["required"].as_bool() == Some(true) {
                            " (required)"
                        } else {
                            ""
                        }
                    );
                }
                if let Some(body) = op["requestBody"]["content"]
                    .as_object()
                    .and_then(|c| c.values().next())
                {
                    let _ = write!(
                        h,
                        "<div>Body: <code>{}</code></div>",
                        esc(&schema_name(&body["schema"]))
                    );
                }
                h.push_str("<table>");
                for (status, r) in op["responses"].as_object().into_iter().flatten() {
                    let body = r["content"]
                        .as_object()
                        .and_then(|c| c.values().next())
                        .map(|c| schema_name(&c["schema"]));
                    let _ = write!(
                        h,
                        "<tr><td>{status}</td><td>{}</td><td><code>{}</code></td></tr>",
                        esc(r["description"].as_str().unwrap_or("")),
                        esc(&body.unwrap_or_default())
                    );
                }
                h.push_str("</table>");
            }
        }
    }
    h.push_str("<h2>Schemas</h2>");
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        for (name, s) in schemas {
            let _ = write!(h, "<h3 id=\"{0}\">{0}</h3>", esc(name));
            if let Some(d) = s["description"].as_str() {
                let _ = write!(h, "<p>{}</p>", esc(d));
            }
            if let Some(e) = s["enum"].as_array() {
                let names: Vec<String> = e.iter().map(|v| v.to_string()).collect();
                let _ = write!(h, "<div>One of {}</div>", esc(&names.join(", ")));
            }
            let required: Vec<&str> = s["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if let Some(props) = s["properties"].as_object() {
                h.push_str("<table>");
                for (p, v) in props {
                    let _ = write!(
                        h,
                        "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(p),
                        if required.contains(&p.as_str()) {
                            " *"
                        } else {
                            ""
                        },
                        esc(&schema_name(v)),
                        esc(v["description"].as_str().unwrap_or(""))
                    );
                }
                h.push_str("</table>");
            }
        }
    }
    h.push_str("</body></html>");
    (StatusCode::OK, Html(h))
}
