//! The HTTP API: each route's handler, and the OpenAPI document built from them,
//! so the document cannot leave a route out.

pub mod admin;
pub mod calls;
pub mod directory;
mod docs_page;
pub mod guest;
pub mod meta;
pub mod session;
pub mod web;

use std::sync::{Arc, OnceLock};

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;

#[derive(OpenApi)]
#[openapi(
    info(title = "callhub", description = "Audio and video calls: the RtcControllerApi call API, accounts, notifications."),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(callhub_core::Notification, callhub_core::StopReason, callhub_core::Presence)),
    tags(
        (name = "auth", description = "Login, refresh and logout"),
        (name = "rtc", description = "The seed's RtcControllerApi: calls and their logs"),
        (name = "guests", description = "Anonymous guests: the guest link's page and joining by it"),
        (name = "notifications", description = "The WebSocket: pop-ups, ringing, call events, signaling"),
        (name = "admin", description = "Webhooks of a domain and the delivery state of its calls (admins)"),
        (name = "operations", description = "Health, metrics and this document"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", scheme);
    }
}

pub fn api() -> OpenApiRouter<Arc<App>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(session::login))
        .routes(routes!(session::refresh))
        .routes(routes!(session::logout))
        .routes(routes!(calls::create_call))
        .routes(routes!(calls::get_call_log_by_id))
        .routes(routes!(calls::get_call_logs))
        .routes(routes!(calls::join_call))
        .routes(routes!(calls::decline_call))
        .routes(routes!(calls::leave_call))
        .routes(routes!(calls::end_call))
        .routes(routes!(calls::invite_contacts))
        .routes(routes!(calls::ice_servers))
        .routes(routes!(directory::contacts))
        .routes(routes!(guest::join_anonymous))
        .routes(routes!(guest::guest_page))
        .routes(routes!(admin::create_webhook, admin::list_webhooks))
        .routes(routes!(admin::delete_webhook))
        .routes(routes!(admin::deliveries))
        .routes(routes!(crate::ws::ws))
        .routes(routes!(meta::health))
        .routes(routes!(meta::metrics))
}

/// The OpenAPI document of the running code.
pub fn openapi() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(|| api().split_for_parts().1)
}
