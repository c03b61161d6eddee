//! Request and response bodies of the HTTP API besides `CallLog`, shared by the
//! server and the Rust SDK.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::model::{CallLog, CallReason, CallStatus, CallType, UserDbId, UserInfo};

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
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    pub call_log: CallLog,
    pub media: Media,
}
