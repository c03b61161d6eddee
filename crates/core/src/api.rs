//! Request and response bodies of the HTTP API besides `CallLog`, shared by the
//! server and the Rust SDK.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::model::{CallLog, CallReason, CallStatus, CallType, Presence, Team, UserDbId, UserInfo};

/// RFC 9457 problem details: every error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    /// What was wrong, naming the field or value.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// May be omitted when the username is unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: i64,
    pub user: UserInfo,
}

/// A contact as a request names it. Empty strings mean absent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContactInput {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone_number: Option<String>,
    /// The database id of the user the contact is linked to.
    #[serde(default)]
    pub user_db_id: Option<UserDbId>,
    /// The user id of the user the contact is linked to.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// A team as a request names it: by `id`, else by `name` (and `domain`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamInput {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
}

/// The seed's createCall body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCallRequest {
    pub call_title: String,
    #[serde(default = "standard")]
    pub call_reason: CallReason,
    pub call_type: CallType,
    #[serde(default)]
    pub invited_contacts: Vec<ContactInput>,
    #[serde(default)]
    pub invited_teams: Vec<TeamInput>,
    #[serde(default)]
    pub join_anonymous_allowed: bool,
    /// Ring the invitees at once (the pop-up); omitted means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inform_others_directly: Option<bool>,
    /// The `userDbId` to create the call on behalf of (brokers and admins only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator_user: Option<UserDbId>,
    /// ISO-8601; without an offset it is UTC. In the future, the call is `Planned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planned_date_time: Option<String>,
}

fn standard() -> CallReason {
    CallReason::Standard
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteRequest {
    #[serde(default)]
    pub invited_contacts: Vec<ContactInput>,
    #[serde(default)]
    pub invited_teams: Vec<TeamInput>,
}

#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CallIdQuery {
    pub call_id: Uuid,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct CallLogsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CallStatus>,
    /// From 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// 1 to 100; 20 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallLogPage {
    pub content: Vec<CallLog>,
    pub page: u32,
    pub size: u32,
    pub total_elements: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IceServers {
    pub ice_servers: Vec<IceServer>,
    /// Seconds the credentials stay valid.
    pub ttl: i64,
}

/// How to reach the call's media: peer to peer (MESH, signaling over `/ws`) or
/// through the server's forwarder (SFU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    pub call_type: CallType,
    pub ice_servers: Vec<IceServer>,
    /// WebSocket URL for notifications and signaling.
    pub signaling_url: String,
    /// The caller's own contact id in this call (`from`/`to` of signaling frames).
    pub contact_id: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    pub call_log: CallLog,
    pub media: Media,
}

/// `POST /rtc/joinAnonymous`: a guest link's call and token, and the guest's name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestJoinRequest {
    pub call_id: Uuid,
    /// The `t` of the guest link.
    pub token: String,
    /// The name the others see; 1–100 characters.
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GuestJoinResponse {
    /// A JWT for this guest in this call only: it works for `leaveCall` of this
    /// call and is refused everywhere else.
    pub access_token: String,
    /// The guest's contact id within the call log.
    pub contact_id: i64,
    pub call_log: CallLog,
    pub media: Media,
}

/// The guest link's query.
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GuestPageQuery {
    /// The guest token.
    pub t: String,
}

/// `POST /admin/webhooks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRequest {
    /// `http://` or `https://` URL that receives the domain's call events.
    pub url: String,
}

/// A registered webhook. `secret` is shown once, in the answer to its creation.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookInfo {
    pub id: i64,
    pub url: String,
    pub domain: String,
    pub created_at: String,
    /// The HMAC-SHA256 key of `X-Callhub-Signature`; only in the creation's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookList {
    pub webhooks: Vec<WebhookInfo>,
}

/// One try at sending a delivery.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttemptView {
    pub attempt: i64,
    pub started_at: String,
    pub finished_at: String,
    /// `sent`, `logged`, `cancelled` or `error`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A mail, SMS or webhook delivery of a call and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView {
    pub id: i64,
    pub channel: crate::outbox::Channel,
    /// The email address, phone number or webhook URL.
    pub recipient: String,
    /// `pending`, `sent`, `logged` (no provider configured), `failed` (gave up after
    /// the retry window) or `cancelled` (its webhook was deleted).
    pub status: String,
    /// The invited contact's id within the call log (mail and SMS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<i64>,
    /// The call event's id (webhooks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_id: Option<i64>,
    /// Attempts made (claims by a worker, an interrupted one included).
    pub attempts: i64,
    pub created_at: String,
    /// When the next attempt is due, while pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub attempt_log: Vec<DeliveryAttemptView>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub call_id: Uuid,
    pub deliveries: Vec<DeliveryView>,
}

/// `GET /rtc/contacts`: a search of the caller's domain.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ContactsQuery {
    /// Text the account's id, display name or email (or the team's name) contains,
    /// case-insensitively; empty or omitted lists the domain by display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// 1 to 100; 20 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 100)]
    pub size: Option<u32>,
}

/// An account of the directory, with whether it can take a call now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryContact {
    pub user_db_id: UserDbId,
    pub user_id: String,
    pub display_name: String,
    pub domain: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub phone_number: String,
    pub presence: Presence,
}

/// The answer of `GET /rtc/contacts`: at most `size` accounts and `size` teams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Contacts {
    pub contacts: Vec<DirectoryContact>,
    pub teams: Vec<Team>,
}
