//! Guest links: the token of a call's link is derived from the server's secret and
//! the call id (so it is rebuilt, never stored), and the store keeps only its hash.

use callhub_core::{Call, CallStatus};
use uuid::Uuid;

use crate::app::App;
use crate::auth::token_hash;

/// The hash kept on a new call that allows anonymous join.
pub fn token_hash_for(app: &App, call_id: Uuid) -> String {
    token_hash(&app.tokens.guest_link_token(call_id))
}

/// Whether `token` is the guest token of `call`.
pub fn token_matches(call: &Call, token: &str) -> bool {
    call.guest_token_hash
        .as_deref()
        .is_some_and(|h| token_matches_hash(h, token))
}

pub use callhub_tokens::token_matches_hash;

/// `<public url>/join/<callId>?t=<token>` while the call allows guests and is not over.
pub fn join_url(app: &App, call: &Call) -> Option<String> {
    (call.anonymous_join_allowed
        && call.guest_token_hash.is_some()
        && call.status != CallStatus::Ended)
        .then(|| {
            format!(
                "{}/join/{}?t={}",
                app.config.public_url,
                call.call_id,
                app.tokens.guest_link_token(call.call_id)
            )
        })
}

/// The link an invitation carries: the guest link where the call allows guests,
/// else the web client's page of the call (it asks an account to log in first).
pub fn invitation_link(app: &App, call: &Call) -> String {
    join_url(app, call)
        .unwrap_or_else(|| format!("{}/call/{}", app.config.public_url, call.call_id))
}
