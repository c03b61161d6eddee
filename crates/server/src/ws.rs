//! `GET /ws`: a user's notifications (sequenced, durable, resumable) and the
//! WebRTC signaling relay between participants of one call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{
    CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use callhub_core::wire::ClientFrame;
use callhub_core::{ContactOrigin, UserInfo};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::app::App;
use crate::auth::GuestClaims;
use crate::error::{ApiError, Problem};
use crate::extract::Authed;
use crate::hub::{Owner, Push};

/// Frames over this size get an `error` frame; the socket stays.
pub const MAX_FRAME: usize = 64 * 1024;
/// Signaling frames (`signal`, `sfu`) may be larger: an SDP grows by about 1 KB
/// per m-line, and an SFU call of 32 sends each client over 60.
pub const MAX_SIGNALING_FRAME: usize = 512 * 1024;
/// Messages over this size close the socket with 1009 (message too big).
const MAX_MESSAGE: usize = 1024 * 1024;
/// Bad frames a socket may send within `BAD_WINDOW` before it is closed with 1008.
const BAD_FRAMES: u32 = 10;
const BAD_WINDOW: Duration = Duration::from_secs(10);
/// How often a socket checks that its session was not revoked on another node.
const REVOCATION_CHECK: Duration = Duration::from_secs(30);
const REPLAY_PAGE: u32 = 500;
/// How long a message that arrived ahead of its predecessor waits for it before
/// the socket reads the missing one from the store. Requests committed together
/// publish their messages each from its own task, so a user's two messages can
/// reach the socket in the wrong order a moment apart; a lost one (a request
/// dropped after its commit, a bus outage) is read after this wait.
const GAP_WAIT: Duration = Duration::from_millis(50);
/// Most queued frames sent with one write; the rest wait a turn, so pings,
/// revocation and the client's own frames are not held up behind a long queue.
const WRITE_BATCH: usize = 64;
/// Bytes a socket gathers before writing them. A commit hands a callee its
/// pop-up (the call log: about 2 KiB with ten invitees) and the call's events
/// together, and under load a wake-up finds several calls' worth queued;
/// gathered, they leave with one `send` at the flush instead of one each.
/// Measured in fan-out (bench/README, "The write buffer, again"): +27-33%
/// messages per server CPU-second over none, the same as 16 KiB, for 1-7 KiB
/// more per socket that was sent a batch (the buffer keeps its capacity; a
/// socket never sent anything holds none).
const WRITE_BUFFER: usize = 8192;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by hand after authentication; this documents them
pub struct WsParams {
    /// The access token, for browsers that cannot set `Authorization`.
    #[serde(rename = "access_token")]
    #[param(rename = "access_token")]
    access_token: Option<String>,
    /// Resume at connect: replay every message after this `seq` first.
    since: Option<i64>,
    /// `false`: this socket is not sent the domain's `presence` frames (a device
    /// that shows no directory: glasses, a connector). Default `true`.
    presence: Option<bool>,
}

/// Who holds a socket.
enum Who {
    User {
        user: UserInfo,
        family: String,
    },
    /// A guest: signaling of its own call only.
    Guest(GuestClaims),
}

impl Who {
    fn owner(&self) -> Owner {
        match self {
            Who::User { user, .. } => Owner::User(user.user_db_id),
            Who::Guest(g) => Owner::Guest(g.call, g.cid),
        }
    }

    fn domain(&self) -> Option<String> {
        match self {
            Who::User { user, .. } => Some(user.domain.clone()),
            Who::Guest(_) => None,
        }
    }
}

#[utoipa::path(get, path = "/ws", tag = "notifications",
    params(WsParams),
    responses(
        (status = 101, description = "Switching to the WebSocket: the server sends `hello`, then `incomingCall`, `ringingStopped`, `callEvent` (each with a per-user `seq`, see the Notification schema), `signal`, `sfu` and `presence` (not sequenced); the client may send `resume`, `signal`, `sfu` and `ping`. A guest's call-scoped token opens it for `signal` and `sfu` frames of its own call (and that call's events, unsequenced)"),
        (status = 400, description = "Not a WebSocket upgrade, `since` not an integer, or `presence` neither true nor false (after authentication)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No, bad, expired or revoked access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A guest who is no longer in its call", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn ws(
    State(app): State<Arc<App>>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Authenticate first: whatever else is wrong, a stranger only learns 401.
    let query = Query::<Vec<(String, String)>>::try_from_uri(&uri).map(|Query(q)| q);
    let param = |name: &str| {
        query
            .as_ref()
            .ok()
            .and_then(|q| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::to_owned);
    let token = bearer.or_else(|| param("access_token")).ok_or_else(|| {
        ApiError::Unauthorized(
            "missing Authorization: Bearer <accessToken> or ?access_token=".into(),
        )
    })?;
    let who = match app.tokens.verify_guest(token.trim()) {
        Some(guest) => {
            let call = app.store.call(guest.call).await?;
            let in_call = call.is_some_and(|c| {
                (1..=c.contacts.len() as i64).contains(&guest.cid) && c.is_joined(guest.cid)
            });
            if !in_call {
                return Err(ApiError::Forbidden(
                    "this guest is no longer in its call; join again by the link".into(),
                ));
            }
            Who::Guest(guest)
        }
        None => {
            let (user, family) = Authed::session(&app, token.trim()).await?;
            Who::User { user, family }
        }
    };
    if let Err(e) = &query {
        return Err(ApiError::BadRequest(format!(
            "the query string is malformed: {}",
            e.body_text()
        )));
    }
    let since = param("since")
        .map(|s| {
            s.trim().parse::<i64>().map_err(|_| {
                ApiError::BadRequest(format!("since: {s:?} is not an integer (a message seq)"))
            })
        })
        .transpose()?;
    let hears_presence = match param("presence").as_deref().map(str::trim) {
        None | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "presence: {other:?} is neither true nor false"
            )));
        }
    };
    let upgrade = upgrade
        .map_err(|e| ApiError::BadRequest(format!("not a WebSocket upgrade: {}", e.body_text())))?;
    Ok(upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .read_buffer_size(1024)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| async move {
            let owner = who.owner();
            let domain = who.domain();
            Session {
                app: app.clone(),
                who,
                hears_presence,
                last_sent: 0,
                early: BTreeMap::new(),
                early_until: None,
            }
            .run(socket, since)
            .await;
            crate::presence::socket_closed(app, owner, domain);
        }))
}

struct Session {
    app: Arc<App>,
    who: Who,
    /// Whether the domain's `presence` frames are sent to this socket.
    hears_presence: bool,
    /// The last sequenced message this socket has sent.
    last_sent: i64,
    /// Messages that arrived ahead of one still missing, by seq, with their commit
    /// time: sent once the gap closes, or after `GAP_WAIT` from the store.
    early: BTreeMap<i64, (Utf8Bytes, Instant)>,
    /// When the first of `early` arrived plus `GAP_WAIT`.
    early_until: Option<tokio::time::Instant>,
}

type Sink = futures::stream::SplitSink<WebSocket, WsMessage>;

enum Flow {
    Go,
    Close(u16, &'static str),
}

impl Session {
    async fn run(mut self, socket: WebSocket, since: Option<i64>) {
        let app = self.app.clone();
        let mut reg = match &self.who {
            Who::User { user, family } => {
                app.hub
                    .register(user.user_db_id, family, &user.domain, self.hears_presence)
            }
            Who::Guest(g) => app.hub.register_guest(g.call, g.cid),
        };
        crate::presence::socket_opened(&app, &self.who.owner(), self.who.domain().as_deref()).await;
        let (mut sink, mut stream) = socket.split();
        // Registered before reading the counter: nothing committed after it is missed.
        let current = match &self.who {
            Who::User { user, .. } => match app.store.last_seq(user.user_db_id).await {
                Ok(current) => current,
                Err(_) => return,
            },
            Who::Guest(_) => 0,
        };
        self.last_sent = current;
        let hello = json!({"type": "hello", "seq": current, "sessionId": Uuid::new_v4()});
        if sink
            .send(WsMessage::Text(hello.to_string().into()))
            .await
            .is_err()
        {
            return;
        }
        if let Some(since) = since.filter(|_| matches!(self.who, Who::User { .. }))
            && self
                .replay(&mut sink, since.max(0), i64::MAX)
                .await
                .is_err()
        {
            return;
        }
        let ping_every = app.config.ws_ping_interval;
        let mut ping = tokio::time::interval(ping_every);
        ping.tick().await;
        let mut check = tokio::time::interval(REVOCATION_CHECK);
        check.tick().await;
        let mut last_heard = Instant::now();
        let mut bad: (u32, Instant) = (0, Instant::now());
        let flow = loop {
            let step: Result<Flow, ()> = tokio::select! {
                push = reg.rx.recv() => match push {
                    Some(push) => self.push_queued(&mut sink, push, &mut reg.rx).await.map(|_| Flow::Go),
                    None => Ok(Flow::Close(close_code::AWAY, "node shutting down")),
                },
                _ = reg.lagged.notified() => self.fill_gap(&mut sink, i64::MAX, false).await.map(|_| Flow::Go),
                _ = tokio::time::sleep_until(self.early_until.unwrap_or_else(tokio::time::Instant::now)), if self.early_until.is_some() => {
                    self.fill_early(&mut sink).await.map(|_| Flow::Go)
                },
                _ = reg.revoked.notified() => Ok(Flow::Close(close_code::POLICY, "session revoked")),
                frame = stream.next() => match frame {
                    Some(Err(e)) if too_large(&e) => Ok(Flow::Close(close_code::SIZE, "a message over 1 MiB")),
                    None | Some(Err(_)) | Some(Ok(WsMessage::Close(_))) => Err(()),
                    Some(Ok(m)) => {
                        last_heard = Instant::now();
                        match self.receive(&mut sink, m).await {
                            Ok(true) => Ok(Flow::Go),
                            Ok(false) => {
                                if bad.1.elapsed() > BAD_WINDOW { bad = (0, Instant::now()); }
                                bad.0 += 1;
                                Ok(if bad.0 > BAD_FRAMES { Flow::Close(close_code::POLICY, "too many bad frames") } else { Flow::Go })
                            }
                            Err(()) => Err(()),
                        }
                    }
                },
                _ = ping.tick() => {
                    if last_heard.elapsed() > ping_every * 2 {
                        Ok(Flow::Close(close_code::AWAY, "no answer to pings"))
                    } else {
                        sink.send(WsMessage::Ping(Default::default())).await.map(|_| Flow::Go).map_err(drop)
                    }
                },
                _ = check.tick() => match &self.who {
                    Who::User { family, .. } => match app.store.token_family_revoked(family).await {
                        Ok(true) => Ok(Flow::Close(close_code::POLICY, "session revoked")),
                        // With other nodes, a bus message may have gone missing with
                        // nothing after it to show the gap: look in the store.
                        _ if app.bus.is_some() => self.fill_gap(&mut sink, i64::MAX, false).await.map(|_| Flow::Go),
                        _ => Ok(Flow::Go),
                    },
                    Who::Guest(_) => Ok(Flow::Go),
                },
            };
            match step {
                Ok(Flow::Go) => continue,
                Ok(close) => break close,
                Err(()) => return,
            }
        };
        if let Flow::Close(code, reason) = flow {
            let _ = sink
                .send(WsMessage::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
            // The closing handshake: read until the client's Close (briefly). Dropping
            // the connection with its frames unread would reset it, and the client
            // could lose our Close frame and its code.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(m)) = stream.next().await {
                    if matches!(m, WsMessage::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }

    /// Sends `first` and what is queued behind it (up to `WRITE_BATCH`) with one
    /// flush: a commit hands a socket its messages together, and one write each
    /// would cost a system call and a wake-up of the peer per message.
    async fn push_queued(
        &mut self,
        sink: &mut Sink,
        first: Push,
        rx: &mut mpsc::Receiver<Push>,
    ) -> Result<(), ()> {
        let mut popups = Vec::new();
        let mut next = Some(first);
        let mut fed = 0;
        while let Some(push) = next.take() {
            match push {
                Push::Sequenced {
                    seq,
                    body,
                    committed,
                } => {
                    self.forward(sink, seq, body, committed, &mut popups)
                        .await?
                }
                Push::Transient(frame) => sink.feed(WsMessage::Text(frame)).await.map_err(drop)?,
                Push::Transients(frames) => {
                    for frame in frames.iter() {
                        sink.feed(WsMessage::Text(frame.clone()))
                            .await
                            .map_err(drop)?;
                    }
                }
            }
            fed += 1;
            if fed < WRITE_BATCH {
                next = rx.try_recv().ok();
            }
        }
        sink.flush().await.map_err(drop)?;
        self.observe_popups(popups);
        Ok(())
    }

    /// Records how long each pop-up took from its commit to the socket.
    fn observe_popups(&self, popups: Vec<Instant>) {
        for committed in popups {
            let popup = committed.elapsed();
            self.app.metrics.observe(crate::metrics::POPUP_DELAY, popup);
        }
    }

    /// Queues a live message on the socket in order: older ones are dropped as
    /// already sent, and one that comes ahead of a missing one waits in `early`
    /// (see `GAP_WAIT`). Adds the commit time of each pop-up it queues to `popups`.
    async fn forward(
        &mut self,
        sink: &mut Sink,
        seq: i64,
        body: Utf8Bytes,
        committed: Instant,
        popups: &mut Vec<Instant>,
    ) -> Result<(), ()> {
        if seq <= self.last_sent {
            return Ok(());
        }
        if seq > self.last_sent + 1 {
            self.early.insert(seq, (body, committed));
            self.early_until
                .get_or_insert_with(|| tokio::time::Instant::now() + GAP_WAIT);
            return Ok(());
        }
        self.queue(sink, seq, body, committed, popups).await?;
        self.release_early(sink, popups, false).await
    }

    /// Queues the messages of `early` that follow what was sent, in order, and drops
    /// those sent meanwhile; with `all`, also those after a gap the store could not
    /// fill (there is nothing more to wait for).
    async fn release_early(
        &mut self,
        sink: &mut Sink,
        popups: &mut Vec<Instant>,
        all: bool,
    ) -> Result<(), ()> {
        while let Some(entry) = self.early.first_entry() {
            let seq = *entry.key();
            if seq > self.last_sent + 1 && !all {
                break;
            }
            let (body, committed) = entry.remove();
            if seq > self.last_sent {
                self.queue(sink, seq, body, committed, popups).await?;
            }
        }
        if self.early.is_empty() {
            self.early_until = None;
        }
        Ok(())
    }

    /// The wait for a missing message is over: reads it (and what came early) from
    /// the store, and sends whatever of `early` the store did not have.
    async fn fill_early(&mut self, sink: &mut Sink) -> Result<(), ()> {
        let upto = self
            .early
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.last_sent);
        self.fill_gap(sink, upto, true).await
    }

    /// Queues one sequenced message, the next after `last_sent`.
    async fn queue(
        &mut self,
        sink: &mut Sink,
        seq: i64,
        body: Utf8Bytes,
        committed: Instant,
        popups: &mut Vec<Instant>,
    ) -> Result<(), ()> {
        if body.contains(r#""type":"incomingCall""#) {
            popups.push(committed);
        }
        sink.feed(WsMessage::Text(body)).await.map_err(drop)?;
        self.last_sent = seq;
        Ok(())
    }

    /// Sends what this socket missed, after its last sent message up to `upto`,
    /// from the store, and then what came early and follows it (with `all`, all
    /// that came early: see `release_early`).
    async fn fill_gap(&mut self, sink: &mut Sink, upto: i64, all: bool) -> Result<(), ()> {
        if self.replay(sink, self.last_sent, upto).await? > 0 {
            self.app.metrics.count(crate::metrics::GAPS_FILLED);
        }
        let mut popups = Vec::new();
        self.release_early(sink, &mut popups, all).await?;
        sink.flush().await.map_err(drop)?;
        self.observe_popups(popups);
        Ok(())
    }

    /// Sends stored messages after `after` up to `upto`; answers how many.
    async fn replay(&mut self, sink: &mut Sink, after: i64, upto: i64) -> Result<usize, ()> {
        let Who::User { user, .. } = &self.who else {
            return Ok(0); // guests have no stored messages
        };
        let mut sent = 0;
        let user = user.user_db_id;
        let mut cursor = after;
        loop {
            let page = match self
                .app
                .store
                .messages_since(user, cursor, REPLAY_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, "replaying messages failed");
                    return send(
                        sink,
                        &error_frame("messages could not be read; resume again shortly"),
                    )
                    .await
                    .map(|_| sent);
                }
            };
            let full = page.len() == REPLAY_PAGE as usize;
            // A page goes out with one flush, as live messages do.
            for m in page.into_iter().take_while(|m| m.seq <= upto) {
                cursor = m.seq;
                sink.feed(WsMessage::Text(m.body.into()))
                    .await
                    .map_err(drop)?;
                sent += 1;
                self.last_sent = self.last_sent.max(cursor);
            }
            sink.flush().await.map_err(drop)?;
            if !full || cursor >= upto {
                return Ok(sent);
            }
        }
    }

    /// Handles a client frame. `Ok(false)`: it was bad (an error frame went back).
    async fn receive(&mut self, sink: &mut Sink, m: WsMessage) -> Result<bool, ()> {
        let text = match m {
            WsMessage::Text(t) => t,
            WsMessage::Binary(_) => {
                send(
                    sink,
                    &error_frame("binary frames are not accepted; send JSON text"),
                )
                .await?;
                return Ok(false);
            }
            _ => return Ok(true), // pings and pongs: the peer is alive
        };
        let too_big = |limit: usize, what: &str| {
            error_frame(&format!(
                "frame of {} bytes is over the {} KiB limit{what}",
                text.len(),
                limit / 1024
            ))
        };
        if text.len() > MAX_SIGNALING_FRAME {
            send(sink, &too_big(MAX_SIGNALING_FRAME, " of signaling frames")).await?;
            return Ok(false);
        }
        let parsed = serde_json::from_str::<ClientFrame>(text.as_str());
        let signaling = matches!(
            parsed,
            Ok(ClientFrame::Signal { .. } | ClientFrame::Sfu { .. })
        );
        if text.len() > MAX_FRAME && !signaling {
            send(sink, &too_big(MAX_FRAME, "")).await?;
            return Ok(false);
        }
        let frame = match parsed {
            Ok(f) => f,
            Err(e) => {
                send(sink, &error_frame(&format!("bad frame: {e}"))).await?;
                return Ok(false);
            }
        };
        match frame {
            ClientFrame::Ping => send(sink, r#"{"type":"pong"}"#).await?,
            ClientFrame::Resume { .. } if matches!(self.who, Who::Guest(_)) => {
                send(
                    sink,
                    &error_frame(
                        "a guest's socket carries signaling only: there is nothing to resume",
                    ),
                )
                .await?;
                return Ok(false);
            }
            ClientFrame::Resume { since } => {
                self.replay(sink, since.max(0), i64::MAX).await?;
            }
            ClientFrame::Signal {
                call_id,
                to,
                payload,
            } => {
                if let Err(why) = self.relay(call_id, to, payload).await {
                    send(sink, &error_frame(&format!("signal refused: {why}"))).await?;
                }
            }
            ClientFrame::Sfu { call_id, payload } => {
                if let Err(why) = self.to_sfu(call_id, payload).await {
                    send(sink, &error_frame(&format!("sfu refused: {why}"))).await?;
                }
            }
        }
        Ok(true)
    }

    /// The caller's contact in `call_id` if it has joined that call (and the call
    /// is visible to it).
    async fn joined_contact(&self, call_id: Uuid) -> Result<(callhub_core::Call, i64), String> {
        let call = self
            .app
            .store
            .call(call_id)
            .await
            .map_err(|e| e.to_string())?;
        let from = match &self.who {
            Who::User { user, .. } => {
                let call = call
                    .as_ref()
                    .filter(|c| c.visible_to(user))
                    .ok_or("no such call visible to you")?;
                call.contact_of_user(user.user_db_id).map(|c| c.id)
            }
            Who::Guest(g) if g.call == call_id => Some(g.cid),
            Who::Guest(_) => return Err("a guest signals in its own call only".into()),
        };
        let call = call.ok_or("no such call visible to you")?;
        let from = from
            .filter(|&id| call.is_joined(id))
            .ok_or("you have not joined this call")?;
        Ok((call, from))
    }

    /// Hands an `sfu` frame to the SFU, for a participant who has joined the SFU call.
    async fn to_sfu(&self, call_id: Uuid, payload: serde_json::Value) -> Result<(), String> {
        let (call, from) = self.joined_contact(call_id).await?;
        if call.call_type != callhub_core::CallType::Sfu {
            return Err("this is a MESH call: use signal frames".into());
        }
        let peer = callhub_sfu::PeerId {
            call: call_id,
            contact: from,
        };
        crate::sfu::route(&self.app, peer, self.who.owner(), payload).await
    }

    /// Relays signaling to another participant who has joined the same call.
    async fn relay(
        &self,
        call_id: Uuid,
        to: i64,
        payload: serde_json::Value,
    ) -> Result<(), String> {
        let (call, from) = self.joined_contact(call_id).await?;
        let recipient = (1..=call.contacts.len() as i64)
            .contains(&to)
            .then(|| call.contact(to))
            .filter(|c| call.is_joined(c.id) && c.id != from)
            .ok_or_else(|| format!("contact {to} is not in this call"))?;
        let owner = match recipient.user_db_id() {
            Some(user) => Owner::User(user),
            None if recipient.origin == ContactOrigin::Guest => Owner::Guest(call_id, recipient.id),
            None => return Err("that participant has no socket".into()),
        };
        let frame = json!({"type": "signal", "callId": call_id, "from": from, "payload": payload});
        self.app.send_transient(&owner, &frame.to_string());
        Ok(())
    }
}

async fn send(sink: &mut Sink, text: &str) -> Result<(), ()> {
    sink.send(WsMessage::Text(text.into())).await.map_err(drop)
}

fn error_frame(detail: &str) -> String {
    json!({"type": "error", "detail": detail}).to_string()
}

/// Whether a read failed because the peer's message is over the limit (tungstenite's
/// capacity error, which axum passes on only as text).
fn too_large(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("Message too long")
}
