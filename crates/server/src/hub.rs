//! The node's sockets by user: committed messages and signaling reach every
//! connected device of their user at once. In-process for one node; what crosses
//! nodes goes through a bus in front of `deliver`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use callhub_core::UserDbId;
use callhub_store::Message;
use tokio::sync::{Notify, mpsc};

/// What a socket's task is told.
#[derive(Debug, Clone)]
pub enum Push {
    /// A committed, sequenced message, and when it was handed over after its commit.
    Sequenced {
        seq: i64,
        body: std::sync::Arc<str>,
        committed: std::time::Instant,
    },
    /// A frame that is not stored (signaling).
    Transient(std::sync::Arc<str>),
}

/// One connected device.
struct Socket {
    id: u64,
    family: String,
    tx: mpsc::Sender<Push>,
    /// Wakes the socket to close it (its session was revoked).
    revoked: std::sync::Arc<Notify>,
    /// Wakes the socket to read what it missed from the store (its queue overflowed).
    lagged: std::sync::Arc<Notify>,
}

/// Queued messages a socket may fall behind by before it is dropped; the client
/// resumes from the store when it reconnects.
pub const SOCKET_QUEUE: usize = 256;

#[derive(Default)]
pub struct Hub {
    sockets: Mutex<HashMap<UserDbId, Vec<Socket>>>,
    next_id: AtomicU64,
    pub connected: AtomicU64,
}

/// A socket's registration; dropping it unregisters the socket.
pub struct Registration<'a> {
    hub: &'a Hub,
    user: UserDbId,
    pub id: u64,
    pub rx: mpsc::Receiver<Push>,
    pub revoked: std::sync::Arc<Notify>,
    pub lagged: std::sync::Arc<Notify>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut sockets = self.hub.sockets.lock().expect("hub lock");
        if let Some(list) = sockets.get_mut(&self.user) {
            list.retain(|s| s.id != self.id);
            if list.is_empty() {
                sockets.remove(&self.user);
            }
        }
        self.hub.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    pub fn register(&self, user: UserDbId, family: &str) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let revoked = std::sync::Arc::new(Notify::new());
        let lagged = std::sync::Arc::new(Notify::new());
        let socket = Socket {
            id,
            family: family.to_owned(),
            tx,
            revoked: revoked.clone(),
            lagged: lagged.clone(),
        };
        self.sockets
            .lock()
            .expect("hub lock")
            .entry(user)
            .or_default()
            .push(socket);
        self.connected.fetch_add(1, Ordering::Relaxed);
        Registration {
            hub: self,
            user,
            id,
            rx,
            revoked,
            lagged,
        }
    }

    /// Whether `user` has a socket on this node.
    pub fn is_connected(&self, user: UserDbId) -> bool {
        self.sockets.lock().expect("hub lock").contains_key(&user)
    }

    /// Hands committed messages to their users' sockets. A socket whose queue is
    /// full misses the message and is told to read what it missed from the store.
    pub fn deliver(&self, messages: &[Message]) {
        if messages.is_empty() {
            return;
        }
        let committed = std::time::Instant::now();
        let sockets = self.sockets.lock().expect("hub lock");
        for m in messages {
            let Some(list) = sockets.get(&m.user) else {
                continue;
            };
            let body: std::sync::Arc<str> = m.body.as_str().into();
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
                }
            }
        }
    }

    /// Sends a frame that is not stored to every socket of `user`.
    pub fn send_transient(&self, user: UserDbId, frame: &str) {
        let sockets = self.sockets.lock().expect("hub lock");
        let frame: std::sync::Arc<str> = frame.into();
        for s in sockets.get(&user).into_iter().flatten() {
            let _ = s.tx.try_send(Push::Transient(frame.clone()));
        }
    }

    /// Closes every socket of a revoked refresh-token family.
    pub fn revoke_family(&self, family: &str) {
        let sockets = self.sockets.lock().expect("hub lock");
        for s in sockets.values().flatten().filter(|s| s.family == family) {
            s.revoked.notify_one();
        }
    }
}
