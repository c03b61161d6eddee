//! The bus between nodes (`CALLHUB_NATS_URL`): what a node hands its own hub —
//! committed messages, signaling, guests' call events, presence, revocations — is
//! published on core NATS, and what other nodes publish is handed to this node's hub.
//!
//! The store stays the truth. Core NATS delivers at most once, so a node can miss a
//! message (NATS restarting, a slow consumer); sequenced messages are then read from
//! the store by `seq`: every socket fills a gap in `seq` when it sees one; when the
//! bus reconnects or reports a slow consumer, and every second while it is down, the
//! sockets of users with messages written meanwhile (one indexed query) re-read the
//! store; and every socket looks every 30 s in any case. Nothing is lost, only slower.
//! Unsequenced frames (signaling, presence) are not stored: a client that misses one
//! re-offers or reads the directory again, as it does on one node after a reconnect.
//!
//! Presence across nodes: each node tells the others which owners have a socket on
//! it (a delta at each first open and last close, the whole set every `HEARTBEAT`);
//! a node not heard from for `NODE_EXPIRY` while this one is connected is taken as
//! gone with its sockets (while this one is cut off from NATS, nobody expires).
//! A node answers the first note it hears from another with its whole set, so a
//! node that just started knows the others at once, not a heartbeat later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::connection::State;
use callhub_core::{Presence, UserDbId};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::App;
use crate::hub::Owner;
use crate::metrics::{BUS_DROPPED, BUS_FORWARDED, BUS_PUBLISHED, BUS_RECEIVED};

/// How often a node publishes the owners of its sockets.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A node silent for this long is taken as gone, with its sockets.
pub const NODE_EXPIRY: Duration = Duration::from_secs(15);
/// How often sockets re-read the store while the bus is down.
pub const CATCH_UP_WHILE_DOWN: Duration = Duration::from_secs(1);
/// How far before the bus went away a catch-up looks: a message is stamped with
/// its writer's clock before its transaction commits (which may take up to the
/// statement timeout), and nodes' clocks differ a little.
const CATCH_UP_MARGIN: chrono::Duration = chrono::Duration::seconds(15);
/// Messages waiting to go to NATS; past it they are dropped (and counted): the
/// store fills what sequenced messages the other nodes miss.
const OUT_QUEUE: usize = 16_384;

/// What one node tells the others, with its id so it ignores its own.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    origin: Uuid,
    #[serde(flatten)]
    note: Note,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Note {
    /// Committed, sequenced messages of one user, handed over at `at` (Unix ms),
    /// so the receiver's pop-up latency counts the time on the bus.
    Messages { messages: Vec<Sequenced>, at: i64 },
    /// A frame that is not stored, for every socket of an owner (signaling).
    Transient { owner: Owner, frame: String },
    /// Frames for the guests of a call (its events; guests have no stored messages).
    Guests { call: Uuid, frames: Vec<String> },
    /// A presence change, for the sockets of a domain.
    Presence {
        domain: String,
        user: UserDbId,
        presence: Presence,
    },
    /// A revoked refresh-token family: its sockets close.
    Revoke { family: String },
    /// The origin's first socket of an owner opened.
    Opened {
        owner: Owner,
        domain: Option<String>,
    },
    /// The origin's last socket of an owner closed.
    Closed { owner: Owner },
    /// Every owner with a socket on the origin (the heartbeat).
    Sockets {
        owners: Vec<(Owner, Option<String>)>,
    },
    /// The origin is stopping.
    Gone,
    /// An `sfu` payload for the SFU of node `to`, which carries the call.
    Sfu {
        to: Uuid,
        call: Uuid,
        contact: i64,
        owner: Owner,
        payload: serde_json::Value,
    },
    /// A participant left an SFU call, or (contact None) the call ended: the node
    /// carrying it frees the session.
    SfuLeft { call: Uuid, contact: Option<i64> },
}

impl Note {
    fn kind(&self) -> &'static str {
        match self {
            Note::Messages { .. } => "messages",
            Note::Transient { .. } => "signal",
            Note::Guests { .. } => "guests",
            Note::Presence { .. } => "presence",
            Note::Revoke { .. } => "revoke",
            Note::Sfu { .. } | Note::SfuLeft { .. } => "sfu",
            Note::Opened { .. } | Note::Closed { .. } | Note::Sockets { .. } | Note::Gone => {
                "sockets"
            }
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Sequenced {
    user: UserDbId,
    seq: i64,
    body: String,
}

/// The sockets of another node, as last heard.
struct Remote {
    seen: Instant,
    owners: HashMap<Owner, Option<String>>,
}

/// What the bus's task takes over when the node starts.
struct Parts {
    subscriber: async_nats::Subscriber,
    events: mpsc::UnboundedReceiver<async_nats::Event>,
    out: mpsc::Receiver<Outgoing>,
}

struct Outgoing {
    kind: &'static str,
    subject: String,
    payload: Vec<u8>,
}

pub struct Bus {
    /// This node's id, in everything it publishes.
    pub node: Uuid,
    prefix: String,
    client: async_nats::Client,
    out: mpsc::Sender<Outgoing>,
    remote: Mutex<HashMap<Uuid, Remote>>,
    parts: Mutex<Option<Parts>>,
    /// When this node began listening: a node it has not heard from yet is not
    /// taken as gone before it could have been heard (`NODE_EXPIRY`).
    started: Instant,
}

impl Bus {
    /// Connects to NATS, or keeps trying in the background: a node starts (and
    /// serves, from the store) while NATS is down.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Bus> {
        let node = Uuid::new_v4();
        // A comma-separated list: the client moves to another server when one fails.
        let servers: Vec<&str> = url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let (events_tx, events) = mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::new()
            .name(format!("callhub {node}"))
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            // Back soon after a NATS restart: 100 ms more per attempt, at most 2 s.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 100).min(2000))
            })
            .event_callback(move |event| {
                let tx = events_tx.clone();
                async move {
                    let _ = tx.send(event);
                }
            })
            .connect(servers)
            .await
            .map_err(|e| anyhow::anyhow!("CALLHUB_NATS_URL={url:?}: {e}"))?;
        let subscriber = client
            .subscribe(format!("{prefix}.>"))
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to {prefix}.> on NATS: {e}"))?;
        let (out_tx, out) = mpsc::channel(OUT_QUEUE);
        Ok(Bus {
            node,
            prefix: prefix.to_owned(),
            client,
            out: out_tx,
            remote: Mutex::default(),
            started: Instant::now(),
            parts: Mutex::new(Some(Parts {
                subscriber,
                events,
                out,
            })),
        })
    }

    /// Whether the connection to NATS is up.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    fn send(&self, app: &App, subject: String, note: Note) {
        let kind = note.kind();
        let envelope = Envelope {
            origin: self.node,
            note,
        };
        let payload = serde_json::to_vec(&envelope).expect("a bus note serializes");
        if self
            .out
            .try_send(Outgoing {
                kind,
                subject,
                payload,
            })
            .is_err()
        {
            app.metrics.count_kind(BUS_DROPPED, kind);
        }
    }

    /// Committed messages, by user.
    pub fn messages(&self, app: &App, messages: &[callhub_store::Message]) {
        let mut by_user: HashMap<UserDbId, Vec<Sequenced>> = HashMap::new();
        for m in messages {
            by_user.entry(m.user).or_default().push(Sequenced {
                user: m.user,
                seq: m.seq,
                body: m.body.clone(),
            });
        }
        for (user, messages) in by_user {
            let subject = format!("{}.user.{user}", self.prefix);
            let at = chrono::Utc::now().timestamp_millis();
            self.send(app, subject, Note::Messages { messages, at });
        }
    }

    pub fn transient(&self, app: &App, owner: &Owner, frame: &str) {
        let subject = match owner {
            Owner::User(user) => format!("{}.user.{user}", self.prefix),
            Owner::Guest(call, _) => format!("{}.guest.{call}", self.prefix),
        };
        let note = Note::Transient {
            owner: owner.clone(),
            frame: frame.to_owned(),
        };
        self.send(app, subject, note);
    }

    pub fn guests(&self, app: &App, call: Uuid, frames: &[String]) {
        let subject = format!("{}.guest.{call}", self.prefix);
        let frames = frames.to_vec();
        self.send(app, subject, Note::Guests { call, frames });
    }

    pub fn presence(&self, app: &App, domain: &str, user: UserDbId, presence: Presence) {
        let subject = format!("{}.presence", self.prefix);
        let domain = domain.to_owned();
        let note = Note::Presence {
            domain,
            user,
            presence,
        };
        self.send(app, subject, note);
    }

    pub fn revoke(&self, app: &App, family: &str) {
        let subject = format!("{}.revoke", self.prefix);
        let family = family.to_owned();
        self.send(app, subject, Note::Revoke { family });
    }

    pub fn socket_opened(&self, app: &App, owner: &Owner, domain: Option<&str>) {
        let subject = format!("{}.sockets", self.prefix);
        let note = Note::Opened {
            owner: owner.clone(),
            domain: domain.map(str::to_owned),
        };
        self.send(app, subject, note);
    }

    pub fn socket_closed(&self, app: &App, owner: &Owner) {
        let subject = format!("{}.sockets", self.prefix);
        let owner = owner.clone();
        self.send(app, subject, Note::Closed { owner });
    }

    fn heartbeat(&self, app: &App) {
        let subject = format!("{}.sockets", self.prefix);
        let owners = app.hub.owners();
        self.send(app, subject, Note::Sockets { owners });
    }

    /// Hands an `sfu` payload to the SFU of node `to`.
    pub fn sfu(
        &self,
        app: &App,
        to: Uuid,
        from: callhub_sfu::PeerId,
        owner: &Owner,
        payload: serde_json::Value,
    ) {
        let subject = format!("{}.sfu.{to}", self.prefix);
        let note = Note::Sfu {
            to,
            call: from.call,
            contact: from.contact,
            owner: owner.clone(),
            payload,
        };
        self.send(app, subject, note);
    }

    /// Tells every node that a participant left an SFU call (None: it ended).
    pub fn sfu_left(&self, app: &App, call: Uuid, contact: Option<i64>) {
        let subject = format!("{}.sfu.left", self.prefix);
        self.send(app, subject, Note::SfuLeft { call, contact });
    }

    /// Whether node `id` has been heard from lately (this node: always). A node
    /// not heard from at all counts as alive while this one has listened for
    /// less than `NODE_EXPIRY`: a node that just started knows nobody yet, and
    /// must not take over an SFU call from a node that carries it.
    pub fn node_alive(&self, id: Uuid) -> bool {
        id == self.node
            || self
                .heard(id)
                .unwrap_or_else(|| self.started.elapsed() <= NODE_EXPIRY)
    }

    /// Whether this node has heard from node `id` and takes it as alive.
    pub fn knows(&self, id: Uuid) -> bool {
        self.heard(id) == Some(true)
    }

    /// Whether node `id` was heard from within `NODE_EXPIRY`; None: never heard.
    fn heard(&self, id: Uuid) -> Option<bool> {
        let remote = self.remote.lock().expect("bus lock");
        remote.get(&id).map(|r| r.seen.elapsed() <= NODE_EXPIRY)
    }

    /// Whether another node has a socket of `owner`.
    pub fn remote_connected(&self, owner: &Owner) -> bool {
        self.remote
            .lock()
            .expect("bus lock")
            .values()
            .any(|r| r.owners.contains_key(owner))
    }

    /// Counts every known node as heard now (this node was cut off, not they).
    fn heard_all_now(&self) {
        for r in self.remote.lock().expect("bus lock").values_mut() {
            r.seen = Instant::now();
        }
    }

    /// Forgets nodes not heard from for `NODE_EXPIRY`; answers their owners.
    fn expire(&self) -> Vec<(Owner, Option<String>)> {
        let mut remote = self.remote.lock().expect("bus lock");
        let dead: Vec<Uuid> = remote
            .iter()
            .filter(|(_, r)| r.seen.elapsed() > NODE_EXPIRY)
            .map(|(id, _)| *id)
            .collect();
        dead.iter()
            .filter_map(|id| remote.remove(id))
            .flat_map(|r| r.owners)
            .collect()
    }

    /// Updates what another node's sockets are; answers owners it no longer has
    /// when it said it is gone, and whether the node was new to this one.
    fn heard_sockets(&self, origin: Uuid, note: Note) -> (Vec<(Owner, Option<String>)>, bool) {
        let mut remote = self.remote.lock().expect("bus lock");
        if let Note::Gone = note {
            let owners = remote
                .remove(&origin)
                .map(|r| r.owners.into_iter().collect())
                .unwrap_or_default();
            return (owners, false);
        }
        let new = !remote.contains_key(&origin);
        let node = remote.entry(origin).or_insert_with(|| Remote {
            seen: Instant::now(),
            owners: HashMap::new(),
        });
        node.seen = Instant::now();
        match note {
            Note::Opened { owner, domain } => {
                node.owners.insert(owner, domain);
            }
            Note::Closed { owner } => {
                node.owners.remove(&owner);
            }
            Note::Sockets { owners } => node.owners = owners.into_iter().collect(),
            _ => {}
        }
        (Vec::new(), new)
    }
}

/// Hands what other nodes publish to this node's hub, publishes what this node
/// queued, and keeps the sockets whole while NATS is away, until shutdown.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let Some(bus) = app.bus.as_ref() else {
        return;
    };
    let Some(Parts {
        mut subscriber,
        mut events,
        out,
    }) = bus.parts.lock().expect("bus lock").take()
    else {
        return;
    };
    let publisher = tokio::spawn(publish(app.clone(), out));
    let mut ticks = tokio::time::interval(CATCH_UP_WHILE_DOWN);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heartbeat = Instant::now()
        .checked_sub(HEARTBEAT)
        .unwrap_or_else(Instant::now);
    // Since when this node may have missed messages of the bus (while it is down:
    // the last catch-up).
    let mut missed_since: Option<chrono::DateTime<chrono::Utc>> = None;
    loop {
        tokio::select! {
            message = subscriber.next() => match message {
                Some(m) => receive(&app, bus, &m.payload),
                None => {
                    tracing::warn!("the NATS subscription ended");
                    break;
                }
            },
            Some(event) = events.recv() => match event {
                async_nats::Event::Disconnected => {
                    missed_since.get_or_insert_with(chrono::Utc::now);
                    tracing::warn!("NATS disconnected; sockets read the store until it is back");
                }
                async_nats::Event::Connected => {
                    tracing::info!("NATS connected");
                    if let Some(since) = missed_since.take() {
                        // What other nodes published meanwhile is in the store.
                        tokio::spawn(catch_up(app.clone(), since));
                        bus.heartbeat(&app);
                    }
                    // The others get a full expiry from now to be heard again.
                    bus.heard_all_now();
                }
                async_nats::Event::SlowConsumer(_) => {
                    tracing::warn!("NATS dropped messages to this slow consumer; sockets read the store");
                    tokio::spawn(catch_up(app.clone(), chrono::Utc::now()));
                }
                other => tracing::info!(event = %other, "NATS"),
            },
            _ = ticks.tick() => {
                if !bus.is_connected() {
                    let now = chrono::Utc::now();
                    tokio::spawn(catch_up(app.clone(), missed_since.unwrap_or(now)));
                    missed_since = Some(now);
                }
                if last_heartbeat.elapsed() >= HEARTBEAT {
                    last_heartbeat = Instant::now();
                    bus.heartbeat(&app);
                }
                // Cut off from NATS, this node hears nobody: silence proves nothing.
                if bus.is_connected() {
                    for (owner, domain) in bus.expire() {
                        owner_left(&app, owner, domain);
                    }
                }
            },
            _ = shutdown.cancelled() => break,
        }
    }
    bus.send(&app, format!("{}.sockets", bus.prefix), Note::Gone);
    // Let the publisher send what is queued (Gone last), briefly.
    drop(subscriber);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while bus.out.capacity() < bus.out.max_capacity() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = bus.client.flush().await;
    })
    .await;
    publisher.abort();
}

/// Has the sockets of users with messages written since `since` (less the margin)
/// read the store: what other nodes published while this one missed the bus.
async fn catch_up(app: Arc<App>, since: chrono::DateTime<chrono::Utc>) {
    match app
        .background
        .users_with_messages_since(since - CATCH_UP_MARGIN)
        .await
    {
        Ok(users) => app.hub.catch_up(&users),
        Err(e) => {
            tracing::warn!(error = %e, "looking for missed messages failed; every socket reads the store");
            app.hub.catch_up_all();
        }
    }
}

/// Sends what the node queued, in order.
async fn publish(app: Arc<App>, mut out: mpsc::Receiver<Outgoing>) {
    let Some(bus) = app.bus.as_ref() else {
        return;
    };
    while let Some(o) = out.recv().await {
        match bus.client.publish(o.subject, o.payload.into()).await {
            Ok(()) => app.metrics.count_kind(BUS_PUBLISHED, o.kind),
            Err(e) => {
                tracing::warn!(error = %e, "publishing on NATS failed");
                app.metrics.count_kind(BUS_DROPPED, o.kind);
            }
        }
    }
}

fn receive(app: &Arc<App>, bus: &Bus, payload: &[u8]) {
    let envelope: Envelope = match serde_json::from_slice(payload) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "an unreadable message on the bus");
            return;
        }
    };
    if envelope.origin == bus.node {
        return;
    }
    let kind = envelope.note.kind();
    app.metrics.count_kind(BUS_RECEIVED, kind);
    let hub = &app.hub;
    let forwarded = match envelope.note {
        Note::Messages { messages, at } => {
            let messages: Vec<callhub_store::Message> = messages
                .into_iter()
                .map(|m| callhub_store::Message {
                    user: m.user,
                    seq: m.seq,
                    body: m.body,
                })
                .collect();
            // The sender's clock: exact on one host, as good as NTP across hosts.
            let on_bus = chrono::Utc::now().timestamp_millis().saturating_sub(at);
            let handed = Instant::now()
                .checked_sub(Duration::from_millis(on_bus.clamp(0, 60_000) as u64))
                .unwrap_or_else(Instant::now);
            hub.deliver_handed(&messages, handed)
        }
        Note::Transient { owner, frame } => hub.send_transient(&owner, &frame),
        Note::Guests { call, frames } => hub.send_to_guests(call, &frames),
        Note::Presence {
            domain,
            user,
            presence,
        } => {
            app.presence.heard(user, presence);
            // Counted as forwarded when its batch goes out (`presence::run`).
            app.presence.announce(&domain, user, presence, true);
            0
        }
        Note::Revoke { family } => hub.revoke_family(&family),
        Note::Sfu {
            to,
            call,
            contact,
            owner,
            payload,
        } => {
            tracing::debug!(%call, contact, %to, here = to == bus.node, "sfu payload heard on the bus");
            if to == bus.node {
                let from = callhub_sfu::PeerId { call, contact };
                let app = app.clone();
                tokio::spawn(async move {
                    if let Err(why) = app.sfu.signal(from, owner.clone(), payload).await {
                        let frame = serde_json::json!({"type": "error", "detail": format!("sfu refused: {why}")});
                        app.send_transient(&owner, &frame.to_string());
                    }
                });
            }
            0
        }
        Note::SfuLeft { call, contact } => {
            app.sfu.left_here(call, contact);
            0
        }
        note => {
            let (gone, new) = bus.heard_sockets(envelope.origin, note);
            for (owner, domain) in gone {
                owner_left(app, owner, domain);
            }
            if new {
                // A node that just started heard this one's last heartbeat before it
                // listened: it learns this node's sockets now, not a heartbeat later.
                bus.heartbeat(app);
            }
            0
        }
    };
    count_forwarded(app, kind, forwarded);
}

/// Counts frames from other nodes handed to this node's sockets.
pub fn count_forwarded(app: &App, kind: &'static str, frames: usize) {
    if frames > 0 {
        app.metrics
            .record(|| metrics::counter!(BUS_FORWARDED, "kind" => kind).increment(frames as u64));
    }
}

/// A node that had a socket of `owner` is gone: its presence, and its grace period.
fn owner_left(app: &Arc<App>, owner: Owner, domain: Option<String>) {
    if app.connected(&owner) {
        return;
    }
    crate::presence::owner_gone(app.clone(), owner, domain);
}
