//! callhub's persistence: one `Store` trait for accounts, refresh tokens, calls
//! with their contacts and events, and the per-user message log. `SqlStore`
//! implements it on embedded SQLite and on PostgreSQL.

mod migrate;
mod sql;

use async_trait::async_trait;
use callhub_core::{Call, CallError, CallStatus, Team, Transition, UserDbId, UserInfo};
use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use sql::{PoolSettings, SqlStore};

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
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A new account. `password_hash` is a PHC string (argon2id).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub domain: String,
    pub user_id: String,
    pub display_name: String,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub roles: Vec<callhub_core::Role>,
    pub password_hash: String,
}

/// A team named as a request names it: by id, or by name within a domain.
#[derive(Debug, Clone)]
pub enum TeamRef {
    Id(i64),
    Name { domain: String, name: String },
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
    async fn user_by_name(&self, domain: &str, user_id: &str) -> Result<Option<UserInfo>>;
    /// Accounts a login may mean, with their password hashes.
    async fn login_candidates(
        &self,
        user_id: &str,
        domain: Option<&str>,
    ) -> Result<Vec<(UserInfo, String)>>;

    async fn create_team(
        &self,
        domain: &str,
        name: &str,
        members: &[String],
    ) -> Result<(Team, Vec<UserInfo>)>;
    async fn team(&self, team: &TeamRef) -> Result<Option<(Team, Vec<UserInfo>)>>;

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

    /// Stores a new call with its events and messages in one transaction.
    async fn insert_call(&self, created: Transition) -> Result<Committed>;
    /// Runs `update` on the call under a lock and stores what it returns, with the
    /// messages it sends, in one transaction. A refusal writes nothing.
    async fn update_call(&self, call_id: Uuid, update: CallUpdate<'_>) -> Result<Committed>;
    async fn call(&self, call_id: Uuid) -> Result<Option<Call>>;
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

    async fn last_seq(&self, user: UserDbId) -> Result<i64>;
    async fn messages_since(&self, user: UserDbId, seq: i64, limit: u32) -> Result<Vec<Message>>;
    /// Forgets messages written before `before`.
    async fn prune_messages(&self, before: DateTime<Utc>) -> Result<u64>;
}
