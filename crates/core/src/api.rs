//! Request and response bodies of the HTTP API besides `CallLog`, shared by the
//! server and the Rust SDK.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::model::{CallLog, CallReason, CallStatus, CallType, Presence, Team, UserDbId, UserInfo};
use crate::text::{
    DisplayName, Domain, Email, InvalidText, PhoneNumber, TeamName, UserId, optional,
};

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
    /// The request's id, as in its `x-request-id` response header and the server log.
    #[serde(rename = "requestId", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest {
    /// 1 to 64 letters, digits or `._@-`.
    #[schema(pattern = r"^ *[A-Za-z0-9._@-]{1,64} *$")]
    pub username: String,
    #[schema(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub password: String,
    /// May be omitted when the username is unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^ *([A-Za-z0-9._@-]{1,64} *)?$")]
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
    /// At most 100 characters.
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub display_name: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^ *([A-Za-z0-9._@-]{1,64} *)?$")]
    pub domain: Option<String>,
    /// `local@host.tld`.
    #[serde(default)]
    #[schema(
        max_length = 254,
        pattern = r"^ *([^\s@\u0000-\u001f\u007f-\u009f]+@[^\s@\u0000-\u001f\u007f-\u009f]*\.[^\s@\u0000-\u001f\u007f-\u009f]*)? *$"
    )]
    pub email: Option<String>,
    /// E.164 (`+4917612345678`); spaces, dashes, dots and brackets are dropped.
    #[serde(default)]
    #[schema(
        max_length = 64,
        pattern = r"^ *([ \-.()]*\+[ \-.()]*[1-9]([ \-.()]*[0-9]){6,14}[ \-.()]*)? *$"
    )]
    pub phone_number: Option<String>,
    /// The database id of the user the contact is linked to.
    #[serde(default, deserialize_with = "integer")]
    pub user_db_id: Option<UserDbId>,
    /// The user id of the user the contact is linked to.
    #[serde(default)]
    #[schema(pattern = r"^ *([A-Za-z0-9._@-]{1,64} *)?$")]
    pub user_id: Option<String>,
}

/// A contact's fields once parsed; absent ones are `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactFields {
    pub display_name: Option<DisplayName>,
    pub domain: Option<Domain>,
    pub email: Option<Email>,
    pub phone_number: Option<PhoneNumber>,
    pub user_db_id: Option<UserDbId>,
    pub user_id: Option<UserId>,
}

impl ContactInput {
    /// Parses every text field; `field` is the contact's place in the request
    /// (`invitedContacts[2]`), so errors name e.g. `invitedContacts[2].email`.
    pub fn parse(&self, field: &str) -> Result<ContactFields, InvalidText> {
        let at = |name: &str| format!("{field}.{name}");
        Ok(ContactFields {
            display_name: optional(self.display_name.as_deref(), |s| {
                DisplayName::parse(&at("displayName"), s)
            })?,
            domain: optional(self.domain.as_deref(), |s| Domain::parse(&at("domain"), s))?,
            email: optional(self.email.as_deref(), |s| Email::parse(&at("email"), s))?,
            phone_number: optional(self.phone_number.as_deref(), |s| {
                PhoneNumber::parse(&at("phoneNumber"), s)
            })?,
            user_db_id: self.user_db_id,
            user_id: optional(self.user_id.as_deref(), |s| UserId::parse(&at("userId"), s))?,
        })
    }
}

/// How a request names a team, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TeamSelector {
    Id(i64),
    /// By name, in `domain` or else the caller's.
    Name {
        domain: Option<Domain>,
        name: TeamName,
    },
}

impl TeamInput {
    pub fn parse(&self, field: &str) -> Result<TeamSelector, InvalidText> {
        if let Some(id) = self.id {
            return Ok(TeamSelector::Id(id));
        }
        let name = optional(self.name.as_deref(), |s| {
            TeamName::parse(&format!("{field}.name"), s)
        })?
        .ok_or_else(|| InvalidText {
            field: field.to_owned(),
            reason: "a team needs an id or a name".into(),
        })?;
        let domain = optional(self.domain.as_deref(), |s| {
            Domain::parse(&format!("{field}.domain"), s)
        })?;
        Ok(TeamSelector::Name { domain, name })
    }
}

/// A team as a request names it: by `id`, else by `name` (and `domain`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamInput {
    #[serde(default, deserialize_with = "integer")]
    pub id: Option<i64>,
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(pattern = r"^ *([A-Za-z0-9._@-]{1,64} *)?$")]
    pub domain: Option<String>,
}

/// The seed's createCall body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateCallRequest {
    /// 1 to 200 characters after trimming.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub call_title: String,
    #[serde(default = "standard")]
    pub call_reason: CallReason,
    pub call_type: CallType,
    /// A call holds at most `CALLHUB_MAX_CALL_CONTACTS` contacts (500 by
    /// default), its creator and the teams' members included.
    #[serde(default)]
    #[schema(max_items = 499)]
    pub invited_contacts: Vec<ContactInput>,
    #[serde(default)]
    pub invited_teams: Vec<TeamInput>,
    #[serde(default)]
    pub join_anonymous_allowed: bool,
    /// Ring the invitees at once (the pop-up); omitted means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inform_others_directly: Option<bool>,
    /// The `userDbId` to create the call on behalf of (brokers and admins only).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integer"
    )]
    pub creator_user: Option<UserDbId>,
    /// ISO-8601; without an offset it is UTC (`2026-11-24T10:00:00` is taken
    /// too). In the future, the call is `Planned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub planned_date_time: Option<String>,
}

/// An integer id, also when a client writes it as `8.0` (JSON has one number
/// type, and JSON Schema counts `8.0` as an integer).
fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an integer id or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            i64::try_from(v)
                .map(Some)
                .map_err(|_| E::custom(format!("{v} is out of range")))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                Ok(Some(v as i64))
            } else {
                Err(E::custom(format!("{v} is not an integer id")))
            }
        }
    }
    d.deserialize_any(Visitor)
}

fn standard() -> CallReason {
    CallReason::Standard
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InviteRequest {
    #[serde(default)]
    #[schema(max_items = 499)]
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
    #[param(minimum = 0, maximum = 1000000)]
    pub page: Option<u32>,
    /// 1 to 100; 20 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 100)]
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
    #[schema(
        min_length = 1,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub token: String,
    /// The name the others see; 1–100 characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
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
    /// `http://` or `https://` URL that receives the domain's call events; not
    /// a loopback, private or link-local address unless the operator allows it.
    #[schema(
        max_length = 2000,
        pattern = r"^ *https?://[^\s\u0000-\u001f\u007f-\u009f]+ *$"
    )]
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
    /// One page of the call's deliveries, oldest first.
    pub deliveries: Vec<DeliveryView>,
    pub page: u32,
    pub size: u32,
    /// Deliveries of the call in all pages.
    pub total_elements: i64,
}

/// `GET /admin/deliveries`: one call's deliveries, a page at a time (a call's
/// webhook deliveries grow with its events).
#[derive(Debug, Clone, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct DeliveriesQuery {
    pub call_id: Uuid,
    /// From 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 0, maximum = 1000000)]
    pub page: Option<u32>,
    /// 1 to 500; 100 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(minimum = 1, maximum = 500)]
    pub size: Option<u32>,
}

/// `GET /rtc/contacts`: a search of the caller's domain.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ContactsQuery {
    /// Text the account's id, display name or email (or the team's name) contains,
    /// case-insensitively; empty or omitted lists the domain by display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 100, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
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
