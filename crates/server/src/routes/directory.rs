//! The directory: whom a caller can call in their own domain, and who can take a
//! call now (presence).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use callhub_core::Presence;
use callhub_core::api::{Contacts, ContactsQuery, DirectoryContact};

use crate::app::App;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiQuery, Caller};
use crate::hub::Owner;

const MAX_QUERY: usize = 100;

#[utoipa::path(get, path = "/rtc/contacts", tag = "rtc", operation_id = "getContacts",
    params(ContactsQuery),
    responses(
        (status = 200, description = "Accounts (with presence) and teams of the caller's domain matching `q`, sorted by name", body = Contacts),
        (status = 400, description = "`q` over 100 characters or with control characters, or `size` not 1 to 100", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A guest's call-scoped token: guests do not see the directory", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn contacts(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ContactsQuery>,
) -> ApiResult<Json<Contacts>> {
    let Caller::User(me) = caller else {
        return Err(ApiError::Forbidden(
            "guests do not see the directory".into(),
        ));
    };
    let size = q.size.unwrap_or(20);
    if !(1..=100).contains(&size) {
        return Err(ApiError::BadRequest(format!(
            "size: {size} is not between 1 and 100"
        )));
    }
    // The limits hold for the text as sent (the document's `maxLength` and
    // `pattern`); surrounding spaces are trimmed only for the match.
    let raw = q.q.as_deref().unwrap_or_default();
    if raw.chars().count() > MAX_QUERY {
        return Err(ApiError::BadRequest(format!(
            "q: at most {MAX_QUERY} characters"
        )));
    }
    if raw.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(
            "q: control characters are not allowed".into(),
        ));
    }
    let text = raw.trim();
    let (found, teams) = app
        .store
        .directory(&me.domain, &text.to_lowercase(), size)
        .await?;
    let contacts = found
        .into_iter()
        .map(|entry| {
            let u = entry.user;
            let connected = app.connected(&Owner::User(u.user_db_id));
            DirectoryContact {
                presence: Presence::of(entry.busy, connected),
                user_db_id: u.user_db_id,
                user_id: u.user_id,
                display_name: u.display_name,
                domain: u.domain,
                email: u.email.unwrap_or_default(),
                phone_number: u.phone_number.unwrap_or_default(),
            }
        })
        .collect();
    Ok(Json(Contacts { contacts, teams }))
}
