//! The seed's RtcControllerApi: create calls, read their logs, and answer,
//! decline, leave, end and invite. Handlers resolve contacts, run the rules and
//! store the result in one transaction.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use base64::Engine;
use callhub_core::api::*;
use callhub_core::{
    Actor, Call, CallError, CallLog, Command, ContactId, ContactSpec, NewCall, Role, Team,
    UserInfo, apply, create,
};
use callhub_store::{StoreError, TeamRef};
use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use uuid::Uuid;

use crate::app::{App, Metrics, now};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Authed, Caller};

const MAX_TITLE: usize = 200;
const MAX_CONTACTS: usize = 500;

fn not_visible(call_id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no call {call_id} visible to you"))
}

/// `""` and blanks mean absent, as in the seed's example.
fn present(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn check_email(field: &str, email: &str) -> ApiResult<()> {
    let ok = email.len() <= 254
        && !email.chars().any(char::is_whitespace)
        && email.split_once('@').is_some_and(|(local, host)| {
            !local.is_empty() && host.contains('.') && !host.contains('@')
        });
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "{field}.email: {email:?} is not an email address"
        )))
    }
}

/// Phone numbers are E.164 (`+4917612345678`); spaces, dashes, dots and brackets are dropped.
fn e164(field: &str, phone: &str) -> ApiResult<String> {
    let n: String = phone
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = n.strip_prefix('+').unwrap_or("");
    let ok = (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    if ok {
        Ok(n)
    } else {
        Err(ApiError::BadRequest(format!(
            "{field}.phoneNumber: {phone:?} is not an E.164 number such as +4917612345678"
        )))
    }
}

/// ISO-8601 with an offset, or without one meaning UTC.
fn planned_time(text: &str) -> ApiResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc()))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").map(|t| t.and_utc()))
        .map(|t| DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t))
        .map_err(|_| {
            ApiError::BadRequest(format!("plannedDateTime: {text:?} is not an ISO-8601 date-time such as 2026-11-24T10:00:00Z"))
        })
}

/// Resolves the contacts and teams of a request to accounts of the caller's domain
/// (or external people), naming the first that does not resolve.
async fn resolve(
    app: &App,
    domain: &str,
    contacts: &[ContactInput],
    teams: &[TeamInput],
) -> ApiResult<(Vec<ContactSpec>, Vec<Team>)> {
    if contacts.len() > MAX_CONTACTS {
        return Err(ApiError::BadRequest(format!(
            "invitedContacts: at most {MAX_CONTACTS} contacts per request"
        )));
    }
    let mut specs = Vec::with_capacity(contacts.len());
    for (i, c) in contacts.iter().enumerate() {
        let field = format!("invitedContacts[{i}]");
        let email = present(&c.email);
        if let Some(e) = &email {
            check_email(&field, e)?;
        }
        let phone = present(&c.phone_number)
            .map(|p| e164(&field, &p))
            .transpose()?;
        let user = if let Some(id) = c.user_db_id {
            let user = app.store.user(id).await?.filter(|u| u.domain == domain);
            Some(user.ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{field}.userDbId: no user {id} in domain {domain:?}"
                ))
            })?)
        } else if let Some(user_id) = present(&c.user_id) {
            let in_domain = present(&c.domain).unwrap_or_else(|| domain.to_owned());
            let user = app
                .store
                .user_by_name(&in_domain, &user_id)
                .await?
                .filter(|u| u.domain == domain);
            Some(user.ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{field}.userId: no user {user_id:?} in domain {domain:?}"
                ))
            })?)
        } else {
            None
        };
        let spec = match user {
            Some(u) => ContactSpec {
                display_name: present(&c.display_name).or(Some(u.display_name)),
                domain: Some(u.domain),
                email: email.or(u.email),
                phone_number: phone.or(u.phone_number),
                user_db_id: Some(u.user_db_id),
                user_id: Some(u.user_id),
            },
            None if email.is_none() && phone.is_none() => {
                return Err(ApiError::BadRequest(format!(
                    "{field}: a contact needs a userDbId, a userId, an email or a phoneNumber"
                )));
            }
            None => ContactSpec {
                display_name: present(&c.display_name),
                domain: present(&c.domain),
                email,
                phone_number: phone,
                user_db_id: None,
                user_id: None,
            },
        };
        specs.push(spec);
    }
    let mut found = Vec::with_capacity(teams.len());
    for (i, t) in teams.iter().enumerate() {
        let field = format!("invitedTeams[{i}]");
        let by = match (t.id, present(&t.name)) {
            (Some(id), _) => TeamRef::Id(id),
            (None, Some(name)) => TeamRef::Name {
                domain: present(&t.domain).unwrap_or_else(|| domain.to_owned()),
                name,
            },
            (None, None) => {
                return Err(ApiError::BadRequest(format!(
                    "{field}: a team needs an id or a name"
                )));
            }
        };
        let (team, members) = app
            .store
            .team(&by)
            .await?
            .filter(|(team, _)| team.domain == domain)
            .ok_or_else(|| {
                ApiError::BadRequest(format!("{field}: no such team in domain {domain:?}"))
            })?;
        specs.extend(members.iter().map(UserInfo::as_contact));
        found.push(team);
    }
    Ok((specs, found))
}

#[utoipa::path(post, path = "/rtc/createCall", tag = "rtc", operation_id = "createCallForContacts",
    request_body = CreateCallRequest,
    responses(
        (status = 200, description = "The new call", body = CallLog),
        (status = 400, description = "Invalid body; the detail names the field", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "creatorUser names someone else and the caller is no broker", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_call(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiJson(req): ApiJson<CreateCallRequest>,
) -> ApiResult<Json<CallLog>> {
    let title = req.call_title.trim().to_owned();
    if title.is_empty() {
        return Err(ApiError::BadRequest("callTitle: must not be empty".into()));
    }
    if title.chars().count() > MAX_TITLE {
        return Err(ApiError::BadRequest(format!(
            "callTitle: at most {MAX_TITLE} characters"
        )));
    }
    let planned_at = req
        .planned_date_time
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(planned_time)
        .transpose()?;
    let on_behalf_of = match req.creator_user {
        Some(id) if id != me.user_db_id => {
            if !(me.has_role(Role::Broker) || me.has_role(Role::Admin)) {
                return Err(ApiError::Forbidden(
                    "creatorUser: only a broker or admin may create a call on behalf of another user".into(),
                ));
            }
            let user = app.store.user(id).await?.filter(|u| u.domain == me.domain);
            Some(user.ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "creatorUser: no user {id} in domain {:?}",
                    me.domain
                ))
            })?)
        }
        _ => None,
    };
    let (invited, teams) =
        resolve(&app, &me.domain, &req.invited_contacts, &req.invited_teams).await?;
    let call_id = Uuid::new_v4();
    let new = NewCall {
        call_id,
        title,
        reason: req.call_reason,
        call_type: req.call_type,
        anonymous_join_allowed: req.join_anonymous_allowed,
        inform_others_directly: req.inform_others_directly.unwrap_or(true),
        planned_at,
        requester: me,
        on_behalf_of,
        invited,
        teams,
    };
    let created = create(new, now())?.with_guest_link(crate::guest::token_hash_for(&app, call_id));
    let committed = app.store.insert_call(created).await?;
    app.after_commit(&committed);
    Metrics::inc(&app.metrics.calls_created);
    Ok(Json(call_log(&app, &committed.call)))
}

/// The `CallLog` for an account that sees the call (its creator, broker, invitees
/// or an admin): those may share the guest link, so it carries `joinUrl`.
fn call_log(app: &App, call: &Call) -> CallLog {
    call.to_call_log(crate::guest::join_url(app, call))
}

#[utoipa::path(get, path = "/rtc/getCallLogById", tag = "rtc", operation_id = "getCallLogById",
    params(CallIdQuery),
    responses(
        (status = 200, description = "The call and its log of events", body = CallLog),
        (status = 400, description = "callId missing or not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such call visible to the caller", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_call_log_by_id(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiQuery(q): ApiQuery<CallIdQuery>,
) -> ApiResult<Json<CallLog>> {
    let call = app
        .store
        .call(q.call_id)
        .await?
        .filter(|c| c.visible_to(&me))
        .ok_or_else(|| not_visible(q.call_id))?;
    Ok(Json(call_log(&app, &call)))
}

#[utoipa::path(get, path = "/rtc/getCallLogs", tag = "rtc", operation_id = "getCallLogs",
    params(CallLogsQuery),
    responses(
        (status = 200, description = "The caller's calls, newest first", body = CallLogPage),
        (status = 400, description = "Bad status, page or size", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn get_call_logs(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiQuery(q): ApiQuery<CallLogsQuery>,
) -> ApiResult<Json<CallLogPage>> {
    let page = q.page.unwrap_or(0);
    let size = q.size.unwrap_or(20);
    if !(1..=100).contains(&size) {
        return Err(ApiError::BadRequest(format!(
            "size: {size} is not between 1 and 100"
        )));
    }
    if page > 1_000_000 {
        return Err(ApiError::BadRequest(format!("page: {page} is too large")));
    }
    let (calls, total) = app
        .store
        .calls_of_user(me.user_db_id, q.status, page, size)
        .await?;
    Ok(Json(CallLogPage {
        content: calls.iter().map(|c| call_log(&app, c)).collect(),
        page,
        size,
        total_elements: total,
    }))
}

/// Runs one command of `me` on a call under its lock and answers with the result.
async fn command(
    app: &Arc<App>,
    me: UserInfo,
    call_id: Uuid,
    make: impl Fn(Actor) -> Command + Send + Sync,
) -> ApiResult<Call> {
    let rules = app.rules;
    let actor = Actor { user: me };
    let result = app
        .store
        .update_call(call_id, &|call| {
            if !call.visible_to(&actor.user) {
                return Err(CallError::NotVisible);
            }
            apply(call, make(actor.clone()), now(), &rules)
        })
        .await;
    Metrics::inc(&app.metrics.call_commands);
    match result {
        Ok(committed) => {
            app.after_commit(&committed);
            Ok(committed.call)
        }
        Err(StoreError::NotFound | StoreError::Rules(CallError::NotVisible)) => {
            Err(not_visible(call_id))
        }
        Err(e) => Err(e.into()),
    }
}

const NOT_FOUND: &str = "No such call visible to the caller";
const CONFLICT: &str = "The call has ended, or the command does not fit the caller's state in it";

#[utoipa::path(post, path = "/rtc/joinCall", tag = "rtc", operation_id = "joinCall",
    params(CallIdQuery),
    responses(
        (status = 200, description = "Joined (writes Join; stops the ringing on the caller's other devices)", body = JoinResponse),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = NOT_FOUND, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = CONFLICT, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn join_call(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiQuery(q): ApiQuery<CallIdQuery>,
) -> ApiResult<Json<JoinResponse>> {
    let user = me.user_db_id;
    let call = command(&app, me, q.call_id, Command::Join).await?;
    let contact = call.contact_of_user(user).map_or(0, |c| c.id);
    Ok(Json(JoinResponse {
        media: media(&app, &call, Some(user), contact),
        call_log: call_log(&app, &call),
    }))
}

#[utoipa::path(post, path = "/rtc/declineCall", tag = "rtc", operation_id = "declineCall",
    params(CallIdQuery),
    responses(
        (status = 200, description = "Declined (writes Declined)", body = CallLog),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = NOT_FOUND, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = CONFLICT, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn decline_call(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiQuery(q): ApiQuery<CallIdQuery>,
) -> ApiResult<Json<CallLog>> {
    Ok(Json(call_log(
        &app,
        &command(&app, me, q.call_id, Command::Decline).await?,
    )))
}

#[utoipa::path(post, path = "/rtc/leaveCall", tag = "rtc", operation_id = "leaveCall",
    params(CallIdQuery),
    responses(
        (status = 200, description = "Left (writes Leave; the call may end by its rules). A guest leaves with the access token of joinAnonymous", body = CallLog),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = NOT_FOUND, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = CONFLICT, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn leave_call(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<CallIdQuery>,
) -> ApiResult<Json<CallLog>> {
    match caller {
        Caller::User(me) => Ok(Json(call_log(
            &app,
            &command(&app, me, q.call_id, Command::Leave).await?,
        ))),
        Caller::Guest(guest) => {
            // A guest token is for its own call only; any other is not there for it.
            if guest.call != q.call_id {
                return Err(not_visible(q.call_id));
            }
            let rules = app.rules;
            let committed = app
                .store
                .update_call(q.call_id, &|call| {
                    apply(call, Command::LeaveGuest(guest.cid), now(), &rules)
                })
                .await?;
            Metrics::inc(&app.metrics.call_commands);
            app.after_commit(&committed);
            Ok(Json(committed.call.to_call_log(None)))
        }
    }
}

#[utoipa::path(post, path = "/rtc/endCall", tag = "rtc", operation_id = "endCall",
    params(CallIdQuery),
    responses(
        (status = 200, description = "Ended (Leave for those still in, then Ended)", body = CallLog),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Only the creator, the broker or an admin may end the call", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = NOT_FOUND, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = CONFLICT, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end_call(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiQuery(q): ApiQuery<CallIdQuery>,
) -> ApiResult<Json<CallLog>> {
    Ok(Json(call_log(
        &app,
        &command(&app, me, q.call_id, Command::End).await?,
    )))
}

#[utoipa::path(post, path = "/rtc/inviteContacts", tag = "rtc", operation_id = "inviteContacts",
    params(CallIdQuery),
    request_body = InviteRequest,
    responses(
        (status = 200, description = "Invited (writes Invited and rings them)", body = CallLog),
        (status = 400, description = "Invalid body; the detail names the contact", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = NOT_FOUND, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = CONFLICT, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn invite_contacts(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiQuery(q): ApiQuery<CallIdQuery>,
    ApiJson(req): ApiJson<InviteRequest>,
) -> ApiResult<Json<CallLog>> {
    // Contacts resolve in the call's domain; a call the caller cannot see is a 404 first.
    let call = app
        .store
        .call(q.call_id)
        .await?
        .filter(|c| c.visible_to(&me))
        .ok_or_else(|| not_visible(q.call_id))?;
    if req.invited_contacts.is_empty() && req.invited_teams.is_empty() {
        return Err(ApiError::BadRequest(
            "invitedContacts: name at least one contact or team".into(),
        ));
    }
    let (specs, teams) = resolve(
        &app,
        &call.domain,
        &req.invited_contacts,
        &req.invited_teams,
    )
    .await?;
    let call = command(&app, me, q.call_id, move |a| {
        Command::Invite(a, specs.clone(), teams.clone())
    })
    .await?;
    Ok(Json(call_log(&app, &call)))
}

#[utoipa::path(get, path = "/rtc/iceServers", tag = "rtc", operation_id = "getIceServers",
    responses(
        (status = 200, description = "STUN/TURN servers with TURN REST credentials (coturn use-auth-secret)", body = IceServers),
        (status = 401, description = "No or bad access token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ice_servers(State(app): State<Arc<App>>, Authed(me): Authed) -> Json<IceServers> {
    Json(IceServers {
        ice_servers: turn_credentials(&app, Some(me.user_db_id)),
        ttl: TURN_TTL,
    })
}

const TURN_TTL: i64 = 86_400;

/// TURN REST credentials: `username = <expiry>:<user>` (`guest` for guests),
/// `credential = base64(HMAC-SHA1(secret, username))`.
fn turn_credentials(app: &App, user: Option<i64>) -> Vec<IceServer> {
    let cfg = &app.config;
    let Some(secret) = cfg
        .turn_secret
        .as_deref()
        .filter(|_| !cfg.turn_urls.is_empty())
    else {
        return Vec::new();
    };
    let who = user.map_or_else(|| "guest".to_owned(), |u| u.to_string());
    let username = format!("{}:{who}", Utc::now().timestamp() + TURN_TTL);
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![IceServer {
        urls: cfg.turn_urls.clone(),
        username: Some(username),
        credential: Some(credential),
    }]
}

/// How `contact` of `call` reaches its media; `user` names the TURN credentials
/// (None for a guest).
pub(crate) fn media(app: &App, call: &Call, user: Option<i64>, contact: ContactId) -> Media {
    let ws = app.config.public_url.replacen("http", "ws", 1);
    Media {
        call_type: call.call_type,
        ice_servers: turn_credentials(app, user),
        signaling_url: format!("{ws}/ws"),
        contact_id: contact,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_must_be_e164() {
        assert_eq!(e164("c", "+49 176 1234-5678").unwrap(), "+4917612345678");
        for bad in [
            "017612345678",
            "+0176123456",
            "+49abc1234567",
            "+12",
            "+1234567890123456",
        ] {
            assert!(e164("c", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn planned_times_with_and_without_offset() {
        assert_eq!(
            planned_time("2026-11-24T10:00:00Z").unwrap().to_rfc3339(),
            "2026-11-24T10:00:00+00:00"
        );
        assert_eq!(
            planned_time("2026-11-24T12:00:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-24T10:00:00+00:00"
        );
        assert_eq!(
            planned_time("2026-11-24T10:00:00.5")
                .unwrap()
                .timestamp_millis()
                % 1000,
            500
        );
        assert!(planned_time("tomorrow").is_err());
        assert!(planned_time("2026-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_host() {
        assert!(check_email("c", "test@test.de").is_ok());
        for bad in ["test", "@test.de", "a b@test.de", "a@localhost"] {
            assert!(check_email("c", bad).is_err(), "{bad}");
        }
    }
}
