//! The node's sockets by owner (an account, or a guest of one call): committed
//! messages and signaling reach every connected device of their owner at once, and
//! presence changes every socket of a domain. In-process; `App` hands
//! the same to the bus (`bus`), and the bus hands what other nodes publish to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use callhub_core::{ContactId, UserDbId};
use callhub_store::Message;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

/// Whose socket it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Owner {
    User(UserDbId),
    /// A guest holds a call-scoped token: signaling and events of that call only.
    Guest(Uuid, ContactId),
}

/// What a socket's task is told. Frames are `Utf8Bytes`, made once per message:
/// every socket it goes to, and the WebSocket frame, share the same bytes.
#[derive(Debug, Clone)]
pub enum Push {
    /// A committed, sequenced message, and when it was handed over after its commit.
    Sequenced {
        seq: i64,
        body: Utf8Bytes,
        committed: std::time::Instant,
    },
    /// A frame that is not stored (signaling, a guest's call events).
    Transient(Utf8Bytes),
    /// Frames that are not stored, sent together (a domain's presence changes).
    Transients(Arc<[Utf8Bytes]>),
}

/// One connected device.
struct Socket {
    id: u64,
    /// The refresh-token family of an account's socket (None for guests).
    family: Option<String>,
    /// The account's domain (None for guests).
    domain: Option<Arc<str>>,
    /// Whether the domain's presence frames are sent to it (`/ws?presence=false`: no).
    hears_presence: bool,
    tx: mpsc::Sender<Push>,
    /// Wakes the socket to close it (its session was revoked).
    revoked: Arc<Notify>,
    /// Wakes the socket to read what it missed from the store (its queue overflowed).
    lagged: Arc<Notify>,
}

/// Queued messages a socket may fall behind by before it is dropped; the client
/// resumes from the store when it reconnects.
pub const SOCKET_QUEUE: usize = 256;

#[derive(Default)]
pub struct Hub {
    sockets: Mutex<HashMap<Owner, Vec<Socket>>>,
    next_id: AtomicU64,
    pub connected: AtomicU64,
}

/// A socket's registration; dropping it unregisters the socket.
pub struct Registration<'a> {
    hub: &'a Hub,
    owner: Owner,
    pub id: u64,
    pub rx: mpsc::Receiver<Push>,
    pub revoked: Arc<Notify>,
    pub lagged: Arc<Notify>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut sockets = self.hub.sockets.lock().expect("hub lock");
        if let Some(list) = sockets.get_mut(&self.owner) {
            list.retain(|s| s.id != self.id);
            if list.is_empty() {
                sockets.remove(&self.owner);
            }
        }
        self.hub.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    /// Registers an account's socket, of a refresh-token family, in its domain.
    /// `hears_presence`: whether it is sent the domain's presence frames.
    pub fn register(
        &self,
        user: UserDbId,
        family: &str,
        domain: &str,
        hears_presence: bool,
    ) -> Registration<'_> {
        self.add(
            Owner::User(user),
            Some(family.to_owned()),
            Some(domain.into()),
            hears_presence,
        )
    }

    /// Registers a guest's socket for its call.
    pub fn register_guest(&self, call: Uuid, contact: ContactId) -> Registration<'_> {
        self.add(Owner::Guest(call, contact), None, None, false)
    }

    fn add(
        &self,
        owner: Owner,
        family: Option<String>,
        domain: Option<Arc<str>>,
        hears_presence: bool,
    ) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let revoked = Arc::new(Notify::new());
        let lagged = Arc::new(Notify::new());
        let socket = Socket {
            id,
            family,
            domain,
            hears_presence,
            tx,
            revoked: revoked.clone(),
            lagged: lagged.clone(),
        };
        self.sockets
            .lock()
            .expect("hub lock")
            .entry(owner.clone())
            .or_default()
            .push(socket);
        self.connected.fetch_add(1, Ordering::Relaxed);
        Registration {
            hub: self,
            owner,
            id,
            rx,
            revoked,
            lagged,
        }
    }

    /// Whether `owner` has a socket on this node.
    pub fn is_connected(&self, owner: &Owner) -> bool {
        self.sockets.lock().expect("hub lock").contains_key(owner)
    }

    /// Every owner with a socket here, with the domain of an account's sockets.
    pub fn owners(&self) -> Vec<(Owner, Option<String>)> {
        let sockets = self.sockets.lock().expect("hub lock");
        sockets
            .iter()
            .map(|(owner, list)| {
                let domain = list
                    .iter()
                    .find_map(|s| s.domain.as_deref().map(str::to_owned));
                (owner.clone(), domain)
            })
            .collect()
    }

    /// Tells every account's socket to read what it missed from the store (the bus
    /// came back, or dropped messages).
    pub fn catch_up_all(&self) {
        let sockets = self.sockets.lock().expect("hub lock");
        for (owner, list) in sockets.iter() {
            if matches!(owner, Owner::User(_)) {
                for s in list {
                    s.lagged.notify_one();
                }
            }
        }
    }

    /// Tells the sockets of these users to read what they missed from the store.
    pub fn catch_up(&self, users: &[callhub_core::UserDbId]) {
        let sockets = self.sockets.lock().expect("hub lock");
        for user in users {
            for s in sockets.get(&Owner::User(*user)).into_iter().flatten() {
                s.lagged.notify_one();
            }
        }
    }

    /// Hands committed messages to their users' sockets. A socket whose queue is
    /// full misses the message and is told to read what it missed from the store.
    /// Answers how many sockets were handed one.
    pub fn deliver(&self, messages: &[Message]) -> usize {
        self.deliver_handed(messages, std::time::Instant::now())
    }

    /// `deliver`, of messages handed over after their commit at `committed` (on
    /// another node: before they crossed the bus).
    pub fn deliver_handed(&self, messages: &[Message], committed: std::time::Instant) -> usize {
        let mut handed = 0;
        if messages.is_empty() {
            return handed;
        }
        let sockets = self.sockets.lock().expect("hub lock");
        for m in messages {
            let Some(list) = sockets.get(&Owner::User(m.user)) else {
                continue;
            };
            let body = Utf8Bytes::from(m.body.as_str());
            for s in list {
                if s.tx
                    .try_send(Push::Sequenced {
                        seq: m.seq,
                        body: body.clone(),
                        committed,
                    })
                    .is_err()
                {
                    s.lagged.notify_one();
                } else {
                    handed += 1;
                }
            }
        }
        handed
    }

    /// Sends a frame that is not stored to every socket of `owner`.
    pub fn send_transient(&self, owner: &Owner, frame: &str) -> usize {
        let sockets = self.sockets.lock().expect("hub lock");
        let frame = Utf8Bytes::from(frame);
        sockets
            .get(owner)
            .into_iter()
            .flatten()
            .filter(|s| s.tx.try_send(Push::Transient(frame.clone())).is_ok())
            .count()
    }

    /// Sends a frame that is not stored to every socket of the guests of `call`.
    pub fn send_to_guests(&self, call: Uuid, frames: &[String]) -> usize {
        let mut handed = 0;
        let sockets = self.sockets.lock().expect("hub lock");
        let guests: Vec<&Socket> = sockets
            .iter()
            .filter(|(owner, _)| matches!(owner, Owner::Guest(c, _) if *c == call))
            .flat_map(|(_, list)| list)
            .collect();
        for frame in frames {
            let frame = Utf8Bytes::from(frame);
            for s in &guests {
                handed += usize::from(s.tx.try_send(Push::Transient(frame.clone())).is_ok());
            }
        }
        handed
    }

    /// Sends frames that are not stored to every account's socket of `domain`,
    /// together: one entry in each socket's queue, one wake-up.
    pub fn send_to_domain(&self, domain: &str, frames: Arc<[Utf8Bytes]>) -> usize {
        let sockets = self.sockets.lock().expect("hub lock");
        sockets
            .values()
            .flatten()
            .filter(|s| s.hears_presence && s.domain.as_deref() == Some(domain))
            .filter(|s| s.tx.try_send(Push::Transients(frames.clone())).is_ok())
            .count()
    }

    /// Closes every socket of a revoked refresh-token family.
    pub fn revoke_family(&self, family: &str) -> usize {
        let sockets = self.sockets.lock().expect("hub lock");
        let mut closed = 0;
        for s in sockets
            .values()
            .flatten()
            .filter(|s| s.family.as_deref() == Some(family))
        {
            s.revoked.notify_one();
            closed += 1;
        }
        closed
    }

    /// Closes every socket (the node is stopping): each says 1001 "going away", and
    /// its client reconnects, to another node behind the load balancer.
    pub fn close_all(&self) {
        // Dropping the senders ends each socket's queue.
        self.sockets.lock().expect("hub lock").clear();
    }
}
