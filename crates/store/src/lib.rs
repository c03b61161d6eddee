//! callhub's persistence: one `Store` trait for accounts, refresh tokens, calls
//! with their contacts and events, and the per-user message log. `SqlStore`
//! implements it on embedded SQLite and on PostgreSQL.

mod db;
mod directory;
mod migrate;
mod pg;
mod readers;
mod sql;
mod writer;

use async_trait::async_trait;
use callhub_core::text::{DisplayName, Domain, Email, PhoneNumber, TeamName, UserId};
use callhub_core::{
    Call, CallError, CallStatus, Channel, ContactId, Team, Transition, UserDbId, UserInfo,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use sql::{PoolSettings, SqlStore, Synchronous, sqlite_path};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// The call rules refused the command; nothing was written.
    #[error(transparent)]
    Rules(#[from] CallError),
    /// The database cannot be reached or answered too slowly; try again later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// An error of SQLite's writer connection (not sqlx's).
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A new account. `password_hash` is a PHC string (argon2id). Its text is parsed
/// already: the store cannot be handed a control character or an empty name.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub domain: Domain,
    pub user_id: UserId,
    pub display_name: DisplayName,
    pub email: Option<Email>,
    pub phone_number: Option<PhoneNumber>,
    pub roles: Vec<callhub_core::Role>,
    pub password_hash: String,
}

/// A team named as a request names it: by id, or by name within a domain.
#[derive(Debug, Clone)]
pub enum TeamRef {
    Id(i64),
    Name { domain: Domain, name: TeamName },
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was live; it is now spent and the new one belongs to the same family.
    Rotated { user: UserDbId, family: String },
    /// The token had been spent already: theft is assumed and the family is revoked.
    Reused { family: String },
    /// Unknown, expired, or of a revoked family.
    Invalid,
}

/// A sequenced message for one user, as JSON with its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub user: UserDbId,
    pub seq: i64,
    pub body: String,
}

/// A call as stored after a command, with the messages written with it.
#[derive(Debug, Clone)]
pub struct Committed {
    pub call: Call,
    pub messages: Vec<Message>,
    /// How many outbox deliveries (mail, SMS, webhooks) were written with it.
    pub deliveries: usize,
    /// How many events the call had before: `call.events[old_events..]` are new.
    pub old_events: usize,
}

impl Committed {
    /// A command that changed nothing: there is nothing to write.
    pub(crate) fn unchanged(call: Call) -> Committed {
        Committed {
            old_events: call.events.len(),
            call,
            messages: Vec::new(),
            deliveries: 0,
        }
    }

    /// The events this commit wrote.
    pub fn new_events(&self) -> &[callhub_core::Event] {
        &self.call.events[self.old_events.min(self.call.events.len())..]
    }
}

/// An account found in the directory, and whether it is in a call now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub user: UserInfo,
    pub busy: bool,
}

/// A URL an admin registered to receive the call events of a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: i64,
    pub domain: String,
    pub url: String,
    /// The HMAC-SHA256 key the bodies are signed with.
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being sent, under a worker's lease).
    Pending,
    Sent,
    /// No provider is configured: the message was written to the log instead.
    Logged,
    /// Retried for the whole retry window without success.
    Failed,
    /// Its webhook was deleted before it could be sent.
    Cancelled,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Logged => "logged",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        [
            DeliveryStatus::Pending,
            DeliveryStatus::Sent,
            DeliveryStatus::Logged,
            DeliveryStatus::Failed,
            DeliveryStatus::Cancelled,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub call_id: Uuid,
    pub channel: Channel,
    /// The invited contact (mail and SMS).
    pub contact: Option<ContactId>,
    /// The call event's id (webhooks).
    pub event_id: Option<i64>,
    pub webhook_id: Option<i64>,
    /// The address, number or URL.
    pub recipient: String,
    pub status: DeliveryStatus,
    /// Claims so far, the current one included.
    pub attempts: i64,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub done_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// One try at sending a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `sent`, `logged` or `error`.
    pub outcome: String,
    pub detail: Option<String>,
}

/// What a worker decided after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// Done: `Sent` or `Logged`, or `Failed` when the retry window is over.
    Done(DeliveryStatus),
    /// Try again at this time.
    Retry(DateTime<Utc>),
}

/// Counts an operator watches, read from the store (not per request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Calls per stored status (`Planned`, `Started`, `Ended`).
    pub calls_by_status: Vec<(String, i64)>,
    /// Invited contacts whose device is ringing now.
    pub ringing: i64,
    /// Pending deliveries per channel (`mail`, `sms`, `webhook`).
    pub backlog_by_channel: Vec<(String, i64)>,
}

/// The rules to run on a call inside the transaction that holds it.
pub type CallUpdate<'a> =
    &'a (dyn Fn(&Call) -> std::result::Result<Transition, CallError> + Send + Sync);

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Whether the database answers.
    async fn health(&self) -> Result<()>;

    async fn create_user(&self, user: NewUser) -> Result<UserInfo>;
    async fn user(&self, id: UserDbId) -> Result<Option<UserInfo>>;
    /// The user of an access token, if its refresh-token family is not revoked.
    async fn session_user(&self, id: UserDbId, family: &str) -> Result<Option<UserInfo>>;
    async fn user_by_name(&self, domain: &Domain, user_id: &UserId) -> Result<Option<UserInfo>>;
    /// The accounts of `domain` among `ids` and user ids `names`, read together (a
    /// call's invitees: one read, not one each); those not found are left out.
    async fn users_in(
        &self,
        domain: &str,
        ids: &[UserDbId],
        names: &[UserId],
    ) -> Result<Vec<UserInfo>>;
    /// Accounts a login may mean, with their password hashes.
    async fn login_candidates(
        &self,
        user_id: &UserId,
        domain: Option<&Domain>,
    ) -> Result<Vec<(UserInfo, String)>>;

    async fn create_team(
        &self,
        domain: &Domain,
        name: &TeamName,
        members: &[UserId],
    ) -> Result<(Team, Vec<UserInfo>)>;
    async fn team(&self, team: &TeamRef) -> Result<Option<(Team, Vec<UserInfo>)>>;

    /// Accounts and teams of `domain` whose text (id, display name, email; a team's
    /// name) contains `needle` (lower case; empty: all), at most `size` of each,
    /// sorted by name.
    async fn directory(
        &self,
        domain: &str,
        needle: &str,
        size: u32,
    ) -> Result<(Vec<DirectoryEntry>, Vec<Team>)>;
    /// Those of `users` who are joined in a call that has not ended.
    async fn busy_users(&self, users: &[UserDbId]) -> Result<Vec<UserDbId>>;

    /// Starts a refresh-token family with its first token.
    async fn start_token_family(
        &self,
        family: &str,
        user: UserDbId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()>;
    /// Spends `old_hash` and issues `new_hash` in its family, or detects reuse.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        new_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<Rotation>;
    /// Revokes the family of a token (logout) and names it. Unknown tokens are ignored.
    async fn revoke_token_family(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>>;
    async fn token_family_revoked(&self, family: &str) -> Result<bool>;

    /// The node whose SFU carries the call's media (several nodes), if any.
    async fn sfu_node(&self, call: Uuid) -> Result<Option<String>>;
    /// Makes `node` the call's SFU node if the call's node is still `expected`
    /// (None: no node); answers the call's node after it (`node`, or whoever took
    /// it first). NotFound for no such call.
    async fn claim_sfu_node(
        &self,
        call: Uuid,
        node: &str,
        expected: Option<&str>,
    ) -> Result<String>;
    /// A stopping node gives up its calls: a live node takes each over at its next
    /// offer. Answers how many.
    async fn release_sfu_node(&self, node: &str) -> Result<u64>;

    /// Stores a new call with its events and messages in one transaction.
    async fn insert_call(&self, created: Transition) -> Result<Committed>;
    /// Runs `update` on the call under a lock and stores what it returns, with the
    /// messages it sends, in one transaction. A refusal writes nothing.
    async fn update_call(&self, call_id: Uuid, update: CallUpdate<'_>) -> Result<Committed>;
    async fn call(&self, call_id: Uuid) -> Result<Option<Call>>;
    /// The call's `version` (None: no such call): one lookup by key, to tell
    /// whether something read from the call earlier is still current.
    async fn call_version(&self, call_id: Uuid) -> Result<Option<i64>>;
    /// Calls `user` takes part in (or brokered), newest first, with their total.
    async fn calls_of_user(
        &self,
        user: UserDbId,
        status: Option<CallStatus>,
        page: u32,
        size: u32,
    ) -> Result<(Vec<Call>, i64)>;
    /// Calls whose next deadline (a ring timeout, a planned start) is due.
    async fn due_calls(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Uuid>>;

    async fn create_webhook(&self, domain: &str, url: &str, secret: &str) -> Result<Webhook>;
    async fn webhooks(&self, domain: &str) -> Result<Vec<Webhook>>;
    async fn webhook(&self, id: i64) -> Result<Option<Webhook>>;
    /// Deletes a webhook of `domain` and cancels its pending deliveries; false if unknown.
    async fn delete_webhook(&self, domain: &str, id: i64) -> Result<bool>;

    /// Takes up to `limit` due deliveries for one worker: each is leased until
    /// `lease_until`, so no other worker takes it meanwhile and, should this one
    /// die mid-send, it is taken again after the lease. A webhook's deliveries of
    /// one call are taken one at a time, in order.
    async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>>;
    /// Records an attempt and what follows from it, and releases the lease.
    async fn finish_delivery(&self, id: i64, attempt: Attempt, result: AttemptResult)
    -> Result<()>;
    /// Every delivery of a call, oldest first, with its attempts.
    /// One page (`size` from `page * size`) of a call's deliveries with their
    /// attempts, oldest first, and how many the call has in all.
    async fn deliveries_of_call(
        &self,
        call_id: Uuid,
        page: u32,
        size: u32,
    ) -> Result<(Vec<(OutboxEntry, Vec<Attempt>)>, i64)>;

    async fn last_seq(&self, user: UserDbId) -> Result<i64>;
    async fn messages_since(&self, user: UserDbId, seq: i64, limit: u32) -> Result<Vec<Message>>;
    /// The users with messages written (by the writer's clock) at or after `since`:
    /// whose sockets a node that missed the bus must have re-read the store.
    async fn users_with_messages_since(&self, since: DateTime<Utc>) -> Result<Vec<UserDbId>>;
    /// Forgets messages written before `before`.
    /// Calls by status, contacts ringing and the outbox backlog, for `/metrics`.
    async fn gauges(&self) -> Result<Gauges>;

    async fn prune_messages(&self, before: DateTime<Utc>) -> Result<u64>;
}
