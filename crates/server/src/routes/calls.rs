//! The seed's RtcControllerApi: create calls, read their logs, and answer,
//! decline, leave, end and invite. Handlers resolve contacts, run the rules and
//! store the result in one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use base64::Engine;
use callhub_core::api::*;
use callhub_core::text::{CallTitle, Domain, UserId, optional, planned_time};
use callhub_core::{
    Actor, Call, CallError, CallLog, Command, ContactId, ContactSpec, Delivery, NewCall, Role,
    Team, Transition, UserDbId, UserInfo, apply, create, deliveries,
};
use callhub_store::{StoreError, TeamRef};
use chrono::Utc;
use hmac::{Hmac, Mac};
use uuid::Uuid;

use crate::app::{App, now};
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{ApiJson, ApiQuery, Authed, Caller};

fn not_visible(call_id: Uuid) -> ApiError {
    ApiError::NotFound(format!("no call {call_id} visible to you"))
}

/// Resolves the contacts and teams of a request to accounts of the caller's domain
/// (or external people), naming the first that does not resolve.
async fn resolve(
    app: &App,
    domain: &str,
    contacts: &[ContactInput],
    teams: &[TeamInput],
) -> ApiResult<(Vec<ContactSpec>, Vec<Team>)> {
    let max = app.config.max_call_contacts;
    if contacts.len() > max {
        return Err(ApiError::BadRequest(format!(
            "invitedContacts: at most {max} contacts per call (CALLHUB_MAX_CALL_CONTACTS)"
        )));
    }
    let domain_name = Domain::parse("domain", domain)?;
    let parsed: Vec<_> = contacts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let field = format!("invitedContacts[{i}]");
            let fields = c.parse(&field);
            (field, fields)
        })
        .collect();
    // A name in another domain never resolves: the account must be in the caller's.
    let in_domain =
        |c: &ContactFields| c.domain.as_ref().unwrap_or(&domain_name).as_str() == domain;
    // Every invitee named by account is read in one go (ten invitees were ten reads).
    let ids: Vec<UserDbId> = parsed
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok()?.user_db_id)
        .collect();
    let names: Vec<UserId> = parsed
        .iter()
        .filter_map(|(_, c)| {
            let c = c
                .as_ref()
                .ok()
                .filter(|c| c.user_db_id.is_none() && in_domain(c))?;
            c.user_id.clone()
        })
        .collect();
    let accounts = if ids.is_empty() && names.is_empty() {
        Vec::new()
    } else {
        app.store.users_in(domain, &ids, &names).await?
    };
    let by_id: HashMap<UserDbId, &UserInfo> = accounts.iter().map(|u| (u.user_db_id, u)).collect();
    let by_name: HashMap<&str, &UserInfo> =
        accounts.iter().map(|u| (u.user_id.as_str(), u)).collect();
    let mut specs = Vec::with_capacity(contacts.len());
    // The first contact in order that is malformed or does not resolve is named.
    for (field, c) in parsed {
        let c = c?;
        let user = if let Some(id) = c.user_db_id {
            Some(by_id.get(&id).map(|u| (*u).clone()).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{field}.userDbId: no user {id} in domain {domain:?}"
                ))
            })?)
        } else if let Some(user_id) = &c.user_id {
            let user = by_name
                .get(user_id.as_str())
                .filter(|_| in_domain(&c))
                .map(|u| (*u).clone());
            Some(user.ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{field}.userId: no user {user_id:?} in domain {domain:?}",
                    user_id = user_id.as_str()
                ))
            })?)
        } else {
            None
        };
        let email = c.email.map(String::from);
        let phone = c.phone_number.map(String::from);
        let display_name = c.display_name.map(String::from);
        let spec = match user {
            Some(u) => ContactSpec {
                display_name: display_name.or(Some(u.display_name)),
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
                display_name,
                domain: c.domain.map(String::from),
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
        let by = match t.parse(&field)? {
            TeamSelector::Id(id) => TeamRef::Id(id),
            TeamSelector::Name { domain: d, name } => TeamRef::Name {
                domain: d.unwrap_or_else(|| domain_name.clone()),
                name,
            },
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
        (status = 429, description = TOO_MANY_INVITATIONS, body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_call(
    State(app): State<Arc<App>>,
    Authed(me): Authed,
    ApiJson(req): ApiJson<CreateCallRequest>,
) -> ApiResult<Json<CallLog>> {
    let title = CallTitle::parse("callTitle", &req.call_title)?;
    let planned_at = optional(req.planned_date_time.as_deref(), |s| {
        planned_time("plannedDateTime", s)
    })?;
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
    let call_id = Uuid::now_v7();
    let new = NewCall {
        call_id,
        title: title.into(),
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
    let requester = new.requester.user_db_id;
    let created = create(new, now())?.with_guest_link(crate::guest::token_hash_for(&app, call_id));
    let max = app.config.max_call_contacts;
    if created.call.contacts.len() > max {
        return Err(ApiError::BadRequest(format!(
            "invitedContacts: a call holds at most {max} contacts, its creator and teams' members included (CALLHUB_MAX_CALL_CONTACTS)"
        )));
    }
    let invitations = external_invitations(&created, 0);
    spend_invitations(&app, requester, invitations)?;
    let committed = app.store.insert_call(created).await.inspect_err(|_| {
        refund_invitations(&app, requester, invitations);
    })?;
    app.after_commit(&committed);
    app.metrics.count(crate::metrics::CALLS_CREATED);
    Ok(Json(call_log(&app, &committed.call)))
}

/// How many mails and SMS a transition sends (webhooks are the operator's own).
fn external_invitations(t: &Transition, old_events: usize) -> u32 {
    deliveries(t, old_events)
        .iter()
        .filter(|d| matches!(d, Delivery::Invitation { .. }))
        .count() as u32
}

fn invitation_key(user: UserDbId) -> String {
    format!("user:{user}")
}

/// Spends `n` of the account's hourly budget of external invitations, or answers
/// 429 before anything is written.
fn spend_invitations(app: &App, user: UserDbId, n: u32) -> ApiResult<()> {
    if n == 0 {
        return Ok(());
    }
    app.invitations
        .take(&invitation_key(user), n)
        .map_err(|retry_after_secs| ApiError::TooManyRequests {
            detail: format!(
                "this would send {n} mail or SMS invitations, more than your account has left this hour (CALLHUB_INVITES_PER_HOUR is {})",
                app.config.invites_per_hour
            ),
            retry_after_secs,
        })
}

fn refund_invitations(app: &App, user: UserDbId, n: u32) {
    if n > 0 {
        app.invitations.refund(&invitation_key(user), n);
    }
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
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let version = app
        .store
        .call_version(q.call_id)
        .await?
        .ok_or_else(|| not_visible(q.call_id))?;
    let rendered = match app.call_logs.get(q.call_id, version) {
        Some(r) => r,
        None => {
            let call = app
                .store
                .call(q.call_id)
                .await?
                .ok_or_else(|| not_visible(q.call_id))?;
            let body = serde_json::to_vec(&call_log(&app, &call))
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("rendering a call log: {e}")))?;
            let r = Arc::new(crate::call_logs::Rendered {
                call,
                body: body.into(),
            });
            app.call_logs.put(r.clone());
            r
        }
    };
    if !rendered.call.visible_to(&me) {
        return Err(not_visible(q.call_id));
    }
    let json = [(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    )];
    Ok((json, rendered.body.clone()).into_response())
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
    app.metrics.count(crate::metrics::CALL_COMMANDS);
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
const BAD_CALL_ID: &str = "callId missing or not a UUID";
const TOO_MANY_INVITATIONS: &str = "More mail and SMS invitations than the account has left this hour (CALLHUB_INVITES_PER_HOUR); see Retry-After";
const CONFLICT: &str = "The call has ended, or the command does not fit the caller's state in it";

#[utoipa::path(post, path = "/rtc/joinCall", tag = "rtc", operation_id = "joinCall",
    params(CallIdQuery),
    responses(
        (status = 200, description = "Joined (writes Join; stops the ringing on the caller's other devices)", body = JoinResponse),
        (status = 400, description = BAD_CALL_ID, body = Problem, content_type = "application/problem+json"),
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
        (status = 400, description = BAD_CALL_ID, body = Problem, content_type = "application/problem+json"),
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
        (status = 400, description = BAD_CALL_ID, body = Problem, content_type = "application/problem+json"),
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
            app.metrics.count(crate::metrics::CALL_COMMANDS);
            app.after_commit(&committed);
            Ok(Json(committed.call.to_call_log(None)))
        }
    }
}

#[utoipa::path(post, path = "/rtc/endCall", tag = "rtc", operation_id = "endCall",
    params(CallIdQuery),
    responses(
        (status = 200, description = "Ended (Leave for those still in, then Ended)", body = CallLog),
        (status = 400, description = BAD_CALL_ID, body = Problem, content_type = "application/problem+json"),
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
        (status = 409, description = "The call has ended, or would hold more contacts than CALLHUB_MAX_CALL_CONTACTS", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = TOO_MANY_INVITATIONS, body = Problem, content_type = "application/problem+json"),
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
    // What the invitation would send, seen on the call as read: the budget is
    // spent before the write, and given back when the write is refused.
    let requester = me.user_db_id;
    let preview = apply(
        &call,
        Command::Invite(Actor { user: me.clone() }, specs.clone(), teams.clone()),
        now(),
        &app.rules,
    );
    let invitations = preview.map_or(0, |t| external_invitations(&t, call.events.len()));
    spend_invitations(&app, requester, invitations)?;
    let call = command(&app, me, q.call_id, move |a| {
        Command::Invite(a, specs.clone(), teams.clone())
    })
    .await
    .inspect_err(|_| refund_invitations(&app, requester, invitations))?;
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
