//! The call domain's data: calls, their contacts, teams and events, and the JSON
//! shapes of the seed's API (`CallLog`, `CallLogContact`, …) derived from them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::ToSchema;
use uuid::Uuid;

pub type UserDbId = i64;
/// A contact's id within one call log (1, 2, …), as the seed's event example shows.
pub type ContactId = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallReason {
    Standard,
    ServiceRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum CallType {
    /// 1:1, peer to peer.
    #[serde(rename = "MESH")]
    Mesh,
    /// Multi-party, through the server's forwarder.
    #[serde(rename = "SFU")]
    Sfu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum CallStatus {
    Planned,
    Started,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    Created,
    Join,
    Leave,
    Invited,
    Ringing,
    Declined,
    Missed,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Broker,
    Admin,
}

macro_rules! str_enum {
    ($ty:ty { $($variant:ident => $text:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }
        }
        impl std::str::FromStr for $ty {
            type Err = $crate::model::UnknownName;
            fn from_str(s: &str) -> Result<Self, $crate::model::UnknownName> {
                match s { $($text => Ok(Self::$variant),)* _ => Err($crate::model::UnknownName(s.to_owned())) }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}
pub(crate) use str_enum;

/// A stored name that no variant carries (a database written by a newer version).
#[derive(Debug, thiserror::Error)]
#[error("unknown name {0:?}")]
pub struct UnknownName(pub String);

str_enum!(CallReason { Standard => "STANDARD", ServiceRequest => "SERVICE_REQUEST" });
str_enum!(CallType { Mesh => "MESH", Sfu => "SFU" });
str_enum!(CallStatus { Planned => "Planned", Started => "Started", Ended => "Ended" });
str_enum!(EventType {
    Created => "Created", Join => "Join", Leave => "Leave", Invited => "Invited",
    Ringing => "Ringing", Declined => "Declined", Missed => "Missed", Ended => "Ended",
});
str_enum!(Role { User => "user", Broker => "broker", Admin => "admin" });
str_enum!(Presence { Online => "online", Busy => "busy", Offline => "offline" });

/// Whether an account can take a call now, derived and never set by hand: `busy`
/// while joined in a call that has not ended, else `online` while a socket of theirs
/// is open, else `offline`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    Online,
    Busy,
    Offline,
}

impl Presence {
    pub fn of(busy: bool, connected: bool) -> Presence {
        match (busy, connected) {
            (true, _) => Presence::Busy,
            (false, true) => Presence::Online,
            (false, false) => Presence::Offline,
        }
    }
}

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    pub user_db_id: UserDbId,
    pub user_id: String,
    pub domain: String,
    pub display_name: String,
    #[serde(serialize_with = "text_or_empty", default)]
    pub email: Option<String>,
    #[serde(serialize_with = "text_or_empty", default)]
    pub phone_number: Option<String>,
    pub roles: Vec<Role>,
}

impl UserInfo {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// This user as a contact of a call, before the call numbers it.
    pub fn as_contact(&self) -> ContactSpec {
        ContactSpec {
            display_name: Some(self.display_name.clone()),
            domain: Some(self.domain.clone()),
            email: self.email.clone(),
            phone_number: self.phone_number.clone(),
            user_db_id: Some(self.user_db_id),
            user_id: Some(self.user_id.clone()),
        }
    }
}

/// A team as the API shows it; inviting a team invites its members of that moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub domain: String,
}

/// Who a contact is, before the call gives it an id: an account (with `user_db_id`)
/// or an external person reached by mail or SMS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContactSpec {
    pub display_name: Option<String>,
    pub domain: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub user_db_id: Option<UserDbId>,
    pub user_id: Option<String>,
}

/// How a contact came into the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContactOrigin {
    Creator,
    Invited,
    /// A broker or admin who joined a call that did not invite them.
    Joined,
    Guest,
}

str_enum!(ContactOrigin { Creator => "creator", Invited => "invited", Joined => "joined", Guest => "guest" });

/// One party of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    pub origin: ContactOrigin,
    pub spec: ContactSpec,
    /// Set while this contact's devices ring.
    pub ringing_since: Option<DateTime<Utc>>,
}

impl Contact {
    pub fn user_db_id(&self) -> Option<UserDbId> {
        self.spec.user_db_id
    }
}

/// One entry of a call's log. `id` is the database's, and only grows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: i64,
    pub kind: EventType,
    pub at: DateTime<Utc>,
    pub contact: ContactId,
}

/// A call with everything the rules need to decide the next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The database's id, 0 until stored.
    pub id: i64,
    pub call_id: Uuid,
    pub domain: String,
    pub title: String,
    pub reason: CallReason,
    pub call_type: CallType,
    pub status: CallStatus,
    pub anonymous_join_allowed: bool,
    pub inform_others_directly: bool,
    pub planned_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The account that created the call on behalf of its creator (the broker flow).
    pub broker: Option<UserDbId>,
    /// When the planned call's invitees are to ring; cleared once they have.
    pub ring_pending_at: Option<DateTime<Utc>>,
    /// SHA-256 (hex) of the guest link's token, where anonymous join is allowed.
    pub guest_token_hash: Option<String>,
    pub contacts: Vec<Contact>,
    pub teams: Vec<Team>,
    pub events: Vec<Event>,
    /// How many times the stored call has changed (0 as created): every stored
    /// change of the call, its contacts or its events counts one. What was read
    /// or rendered from version `v` is current while the row still says `v`.
    pub version: i64,
}

pub const CREATOR: ContactId = 1;

impl Call {
    pub fn contact(&self, id: ContactId) -> &Contact {
        &self.contacts[(id - 1) as usize]
    }

    pub fn contact_mut(&mut self, id: ContactId) -> &mut Contact {
        &mut self.contacts[(id - 1) as usize]
    }

    pub fn contact_of_user(&self, user: UserDbId) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.user_db_id() == Some(user))
    }

    /// Users with an account who take part in the call and so hear of its events.
    pub fn member_users(&self) -> Vec<UserDbId> {
        let mut users: Vec<UserDbId> = self
            .contacts
            .iter()
            .filter_map(Contact::user_db_id)
            .collect();
        users.extend(self.broker);
        users.sort_unstable();
        users.dedup();
        users
    }

    /// Whether `user` may see the call: its creator, invitees, broker, and the admins
    /// of its domain.
    pub fn visible_to(&self, user: &UserInfo) -> bool {
        self.broker == Some(user.user_db_id)
            || self.contact_of_user(user.user_db_id).is_some()
            || (user.has_role(Role::Admin) && user.domain == self.domain)
    }

    /// The contact ids that are in the call now, rebuilt from the log.
    pub fn joined(&self) -> Vec<ContactId> {
        let mut joined = Vec::new();
        for e in &self.events {
            match e.kind {
                EventType::Join => joined.push(e.contact),
                EventType::Leave => joined.retain(|&c| c != e.contact),
                _ => {}
            }
        }
        joined
    }

    pub fn is_joined(&self, contact: ContactId) -> bool {
        self.joined().contains(&contact)
    }

    pub fn ever_joined(&self, contact: ContactId) -> bool {
        self.events
            .iter()
            .any(|e| e.kind == EventType::Join && e.contact == contact)
    }

    /// The latest of `Invited`, `Declined`, `Missed` for a contact, if any.
    pub fn last_answer(&self, contact: ContactId) -> Option<EventType> {
        self.events
            .iter()
            .rev()
            .filter(|e| e.contact == contact)
            .map(|e| e.kind)
            .find(|k| {
                matches!(
                    k,
                    EventType::Invited | EventType::Declined | EventType::Missed | EventType::Join
                )
            })
    }

    /// When the rules next need to look at this call by themselves (a ring timeout,
    /// the planned time), if ever.
    pub fn next_deadline(&self, ring_timeout: chrono::Duration) -> Option<DateTime<Utc>> {
        if self.status == CallStatus::Ended {
            return None;
        }
        self.contacts
            .iter()
            .filter_map(|c| c.ringing_since.map(|t| t + ring_timeout))
            .chain(self.ring_pending_at)
            .min()
    }

    /// The seed's `CallLog` view of the call.
    pub fn to_call_log(&self, join_url: Option<String>) -> CallLog {
        let view = |c: &Contact| CallLogContact::from(c);
        CallLog {
            id: self.id,
            call_id: self.call_id,
            call_title: self.title.clone(),
            call_reason: self.reason,
            call_type: self.call_type,
            call_status: self.status,
            anonymous_join_allow: self.anonymous_join_allowed,
            inform_others_directly: self.inform_others_directly,
            planned_date_time: self.planned_at,
            created_at: self.created_at,
            started_at: self.started_at,
            ended_at: self.ended_at,
            creator_contact: view(self.contact(CREATOR)),
            invited_contacts: self
                .contacts
                .iter()
                .filter(|c| c.origin == ContactOrigin::Invited)
                .map(view)
                .collect(),
            invited_teams: self.teams.clone(),
            call_events: self.events.iter().map(|e| self.event_view(e)).collect(),
            join_url,
        }
    }

    pub fn event_view(&self, e: &Event) -> CallEventView {
        CallEventView {
            id: e.id,
            kind: e.kind,
            timestamp: e.at,
            contact: self.contact(e.contact).into(),
        }
    }
}

/// The seed's `CallLog`: the call with its contacts and its log of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallLog {
    /// Incremental id generated by the database.
    pub id: i64,
    /// UUID generated by the application.
    pub call_id: Uuid,
    pub call_title: String,
    pub call_reason: CallReason,
    pub call_type: CallType,
    pub call_status: CallStatus,
    /// Whether anonymous joins are allowed (the request calls it `joinAnonymousAllowed`).
    pub anonymous_join_allow: bool,
    pub inform_others_directly: bool,
    #[serde(serialize_with = "opt_time")]
    pub planned_date_time: Option<DateTime<Utc>>,
    #[serde(serialize_with = "time")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "opt_time")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "opt_time")]
    pub ended_at: Option<DateTime<Utc>>,
    /// The user that created the call, or the `creatorUser` a broker named.
    pub creator_contact: CallLogContact,
    pub invited_contacts: Vec<CallLogContact>,
    pub invited_teams: Vec<Team>,
    pub call_events: Vec<CallEventView>,
    /// The guest link, where anonymous join is allowed, for those who may share it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub join_url: Option<String>,
}

/// The seed's `CallLogContact`. Absent text fields read as `""`, as in the seed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallLogContact {
    /// The contact's id within this call log.
    pub id: ContactId,
    #[serde(serialize_with = "text_or_empty", default)]
    pub display_name: Option<String>,
    #[serde(serialize_with = "text_or_empty", default)]
    pub domain: Option<String>,
    #[serde(serialize_with = "text_or_empty", default)]
    pub email: Option<String>,
    #[serde(serialize_with = "text_or_empty", default)]
    pub phone_number: Option<String>,
    pub user_db_id: Option<UserDbId>,
    #[serde(serialize_with = "text_or_empty", default)]
    pub user_id: Option<String>,
    /// True for guests who joined by link.
    #[serde(skip_serializing_if = "is_false", default)]
    pub anonymous: bool,
}

impl From<&Contact> for CallLogContact {
    fn from(c: &Contact) -> Self {
        let s = &c.spec;
        CallLogContact {
            id: c.id,
            display_name: s.display_name.clone(),
            domain: s.domain.clone(),
            email: s.email.clone(),
            phone_number: s.phone_number.clone(),
            user_db_id: s.user_db_id,
            user_id: s.user_id.clone(),
            anonymous: c.origin == ContactOrigin::Guest,
        }
    }
}

/// One event of a `CallLog`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CallEvent)]
pub struct CallEventView {
    /// Incremental id generated by the database.
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(serialize_with = "time")]
    pub timestamp: DateTime<Utc>,
    pub contact: CallLogContact,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn text_or_empty<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_deref().unwrap_or(""))
}

/// Timestamps are UTC with milliseconds: `2026-11-23T10:00:00.000Z`.
pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

fn opt_time<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => time(t, s),
        None => s.serialize_none(),
    }
}
