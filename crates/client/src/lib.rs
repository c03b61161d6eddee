//! The Rust SDK of callhub: log in, keep the session fresh, and call the seed's
//! `RtcControllerApi` (`create_call_for_contacts`, `get_call_log_by_id`, …).
//!
//! ```no_run
//! # async fn demo() -> Result<(), callhub_client::ClientError> {
//! use callhub_client::{Client, api::CreateCallRequest};
//! let client = Client::new("http://127.0.0.1:8080");
//! client.login("tester", "secret123", Some("ubimax")).await?;
//! let rtc = client.rtc();
//! let logs = rtc.get_call_logs(&Default::default()).await?;
//! # Ok(()) }
//! ```

mod notifications;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use callhub_core::api;
use callhub_core::api::*;
use callhub_core::{CallLog, UserInfo};
pub use notifications::{Frame, Notifications};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use callhub_core::api::Problem;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{} {}: {}", .0.status, .0.title, .0.detail)]
    Problem(Problem),
    #[error("unexpected answer {status}: {body}")]
    Unexpected { status: u16, body: String },
    #[error("not logged in")]
    NotLoggedIn,
}

impl ClientError {
    /// The HTTP status of a problem answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Problem(p) => Some(p.status),
            ClientError::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A session as a tool keeps it between runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedSession {
    pub server: String,
    pub access_token: String,
    pub refresh_token: String,
    /// When to refresh the access token, in Unix seconds.
    pub refresh_at: i64,
    pub user: UserInfo,
}

#[derive(Debug, Clone)]
struct Session {
    access_token: String,
    refresh_token: String,
    /// When the access token stops working, less a margin.
    refresh_at: Instant,
    user: UserInfo,
}

/// A connection to one callhub server with (after `login`) one session, refreshed
/// before its access token expires. Cheap to clone; clones share the session.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    session: Arc<Mutex<Option<Session>>>,
    refreshing: Arc<tokio::sync::Mutex<()>>,
}

/// Makes ring rustls's process-wide crypto provider, so HTTPS works (reqwest is
/// built without a provider of its own). Harmless when one is installed already.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    pub fn new(base_url: &str) -> Client {
        install_tls_provider();
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client"),
            base: base_url.trim_end_matches('/').to_owned(),
            session: Arc::new(Mutex::new(None)),
            refreshing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// A client on a session saved by `saved_session`.
    pub fn from_saved(saved: SavedSession) -> Client {
        let client = Client::new(&saved.server);
        let left = (saved.refresh_at - unix_now()).max(0) as u64;
        *client.session.lock().expect("session lock") = Some(Session {
            access_token: saved.access_token,
            refresh_token: saved.refresh_token,
            refresh_at: Instant::now() + Duration::from_secs(left),
            user: saved.user,
        });
        client
    }

    /// The session, to keep between runs of a tool.
    pub fn saved_session(&self) -> Option<SavedSession> {
        let s = self.session.lock().expect("session lock");
        let s = s.as_ref()?;
        let left = s
            .refresh_at
            .saturating_duration_since(Instant::now())
            .as_secs() as i64;
        Some(SavedSession {
            server: self.base.clone(),
            access_token: s.access_token.clone(),
            refresh_token: s.refresh_token.clone(),
            refresh_at: unix_now() + left,
            user: s.user.clone(),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The logged-in user.
    pub fn user(&self) -> Option<UserInfo> {
        self.session
            .lock()
            .expect("session lock")
            .as_ref()
            .map(|s| s.user.clone())
    }

    /// The current access token, as the WebSocket and other tools need it.
    pub async fn access_token(&self) -> Result<String> {
        self.fresh_token().await
    }

    pub fn refresh_token(&self) -> Option<String> {
        self.session
            .lock()
            .expect("session lock")
            .as_ref()
            .map(|s| s.refresh_token.clone())
    }

    fn keep(&self, t: TokenResponse) -> UserInfo {
        // Refresh at 80% of the lifetime, so a slow request never carries a dead token.
        let life = Duration::from_secs(t.expires_in.max(0) as u64);
        let session = Session {
            access_token: t.access_token,
            refresh_token: t.refresh_token,
            refresh_at: Instant::now() + life.mul_f64(0.8),
            user: t.user.clone(),
        };
        *self.session.lock().expect("session lock") = Some(session);
        t.user
    }

    pub async fn login(
        &self,
        username: &str,
        password: &str,
        domain: Option<&str>,
    ) -> Result<UserInfo> {
        let body = LoginRequest {
            username: username.into(),
            password: password.into(),
            domain: domain.map(Into::into),
        };
        let t: TokenResponse =
            answer(self.http.post(format!("{}/login", self.base)).json(&body)).await?;
        Ok(self.keep(t))
    }

    /// Trades the refresh token for a new pair now.
    pub async fn refresh(&self) -> Result<()> {
        let token = self.refresh_token().ok_or(ClientError::NotLoggedIn)?;
        let body = RefreshRequest {
            refresh_token: token,
        };
        let t: TokenResponse =
            answer(self.http.post(format!("{}/refresh", self.base)).json(&body)).await?;
        self.keep(t);
        Ok(())
    }

    /// Ends the session on the server and here.
    pub async fn logout(&self) -> Result<()> {
        let Some(token) = self.refresh_token() else {
            return Ok(());
        };
        let res = self
            .http
            .post(format!("{}/logout", self.base))
            .json(&RefreshRequest {
                refresh_token: token,
            })
            .send()
            .await?;
        *self.session.lock().expect("session lock") = None;
        check(res).await.map(drop)
    }

    async fn fresh_token(&self) -> Result<String> {
        let due = {
            let s = self.session.lock().expect("session lock");
            let s = s.as_ref().ok_or(ClientError::NotLoggedIn)?;
            if Instant::now() < s.refresh_at {
                return Ok(s.access_token.clone());
            }
            s.refresh_token.clone()
        };
        // One refresh at a time: a second would present a spent token and revoke the session.
        let _guard = self.refreshing.lock().await;
        let current = self.refresh_token();
        if current.as_deref() == Some(due.as_str()) {
            self.refresh().await?;
        }
        let s = self.session.lock().expect("session lock");
        Ok(s.as_ref()
            .ok_or(ClientError::NotLoggedIn)?
            .access_token
            .clone())
    }

    /// A request with the session's bearer token.
    pub async fn request(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let token = self.fresh_token().await?;
        Ok(self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token))
    }

    /// `POST /rtc/joinAnonymous`: joins the call of a guest link, without an account.
    /// The answer's access token works for that call's `leaveCall` only.
    pub async fn join_anonymous(&self, body: &GuestJoinRequest) -> Result<GuestJoinResponse> {
        answer(
            self.http
                .post(format!("{}/rtc/joinAnonymous", self.base))
                .json(body),
        )
        .await
    }

    /// The seed's `RtcControllerApi` on this session.
    pub fn rtc(&self) -> RtcControllerApi {
        RtcControllerApi {
            client: self.clone(),
        }
    }
}

/// The call id and token of a guest link (`…/join/<callId>?t=<token>`).
pub fn parse_guest_link(link: &str) -> Option<(Uuid, String)> {
    let (path, query) = link.split_once('?')?;
    let call_id = path
        .rsplit_once("/join/")?
        .1
        .trim_end_matches('/')
        .parse()
        .ok()?;
    let token = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("t="))?
        .to_owned();
    (!token.is_empty()).then_some((call_id, token))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn check(res: reqwest::Response) -> Result<reqwest::Response> {
    if res.status().is_success() {
        return Ok(res);
    }
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    match serde_json::from_str::<Problem>(&body) {
        Ok(p) => Err(ClientError::Problem(p)),
        Err(_) => Err(ClientError::Unexpected { status, body }),
    }
}

async fn answer<T: DeserializeOwned>(req: RequestBuilder) -> Result<T> {
    let res = check(req.send().await?).await?;
    let status = res.status();
    let body = res.bytes().await?;
    serde_json::from_slice(&body).map_err(|e| ClientError::Unexpected {
        status: if status == StatusCode::OK {
            200
        } else {
            status.as_u16()
        },
        body: format!("{e}: {}", String::from_utf8_lossy(&body)),
    })
}

/// The call API, named as the seed's SDK names it.
#[derive(Clone)]
pub struct RtcControllerApi {
    client: Client,
}

impl RtcControllerApi {
    async fn call_command<T: DeserializeOwned>(&self, path: &str, call_id: Uuid) -> Result<T> {
        let req = self
            .client
            .request(Method::POST, path)
            .await?
            .query(&[("callId", call_id)]);
        answer(req).await
    }

    /// `POST /rtc/createCall`.
    pub async fn create_call_for_contacts(&self, body: &CreateCallRequest) -> Result<CallLog> {
        answer(
            self.client
                .request(Method::POST, "/rtc/createCall")
                .await?
                .json(body),
        )
        .await
    }

    /// `GET /rtc/getCallLogById`.
    pub async fn get_call_log_by_id(&self, call_id: Uuid) -> Result<CallLog> {
        answer(
            self.client
                .request(Method::GET, "/rtc/getCallLogById")
                .await?
                .query(&[("callId", call_id)]),
        )
        .await
    }

    /// `GET /rtc/getCallLogs`.
    pub async fn get_call_logs(&self, query: &CallLogsQuery) -> Result<CallLogPage> {
        answer(
            self.client
                .request(Method::GET, "/rtc/getCallLogs")
                .await?
                .query(query),
        )
        .await
    }

    pub async fn join_call(&self, call_id: Uuid) -> Result<JoinResponse> {
        self.call_command("/rtc/joinCall", call_id).await
    }

    pub async fn decline_call(&self, call_id: Uuid) -> Result<CallLog> {
        self.call_command("/rtc/declineCall", call_id).await
    }

    pub async fn leave_call(&self, call_id: Uuid) -> Result<CallLog> {
        self.call_command("/rtc/leaveCall", call_id).await
    }

    pub async fn end_call(&self, call_id: Uuid) -> Result<CallLog> {
        self.call_command("/rtc/endCall", call_id).await
    }

    pub async fn invite_contacts(&self, call_id: Uuid, body: &InviteRequest) -> Result<CallLog> {
        let req = self
            .client
            .request(Method::POST, "/rtc/inviteContacts")
            .await?
            .query(&[("callId", call_id)]);
        answer(req.json(body)).await
    }

    pub async fn ice_servers(&self) -> Result<IceServers> {
        answer(self.client.request(Method::GET, "/rtc/iceServers").await?).await
    }

    /// `GET /rtc/contacts`: accounts (with presence) and teams of the caller's
    /// domain whose id, name or email contains `query`.
    pub async fn get_contacts(&self, query: &ContactsQuery) -> Result<Contacts> {
        answer(
            self.client
                .request(Method::GET, "/rtc/contacts")
                .await?
                .query(query),
        )
        .await
    }
}
