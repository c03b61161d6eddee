//! Presence, and participants who vanish. Presence is derived, never set by hand:
//! `busy` while joined in a call that has not ended (the store knows), else `online`
//! while a socket is open, else `offline`; each change goes to the sockets of the
//! user's domain as a `presence` frame, gathered for `PRESENCE_BATCH` and sent
//! together (the latest state of each user who changed). A participant whose last
//! socket closed has `CALLHUB_REJOIN_GRACE_SECS` to come back before their `Leave`
//! is written (and the call ends by its rules if they were the last); guests
//! alike, from their join on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;

use callhub_core::{CallStatus, Command};
use callhub_core::{ContactId, ContactOrigin, EventType, Presence, UserDbId, apply};
use callhub_store::Committed;
use serde_json::json;
use tokio::sync::{Mutex as AsyncMutex, Notify};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::{App, now};
use crate::hub::Owner;

const LOCKS: usize = 64;

/// How long presence changes gather before they go out. A domain's sockets get
/// what gathered as one batch (one wake-up and one flush each, not one per
/// change), and a user whose presence changes twice in it is announced once, with
/// the latest. At a busy hour every call's start and end changes someone's
/// presence, and each change goes to every socket of the domain.
pub const PRESENCE_BATCH: Duration = Duration::from_millis(100);

/// Changes gathered for the next batch: per domain, each user's latest presence
/// and the order in which the users first changed.
#[derive(Default)]
struct Outgoing {
    domains: HashMap<String, HashMap<UserDbId, Change>>,
    next: u64,
}

/// A user's change in the gathering batch.
struct Change {
    /// When the user first changed in this batch.
    order: u64,
    presence: Presence,
    /// Another node announced it (counted as forwarded from the bus when sent).
    from_bus: bool,
}

/// A domain's part of a batch.
struct Batch {
    domain: String,
    frames: Arc<[Utf8Bytes]>,
    /// How many of `frames` other nodes announced.
    from_bus: usize,
}

/// What each user's presence was last announced as (absent: offline).
pub struct Tracker {
    /// A refresh reads and announces under its user's lock, so the last refresh to
    /// run (they follow every change) announces the latest state.
    locks: Vec<AsyncMutex<()>>,
    announced: Mutex<HashMap<UserDbId, Presence>>,
    outgoing: Mutex<Outgoing>,
    /// Wakes `run` when a batch starts gathering.
    gathering: Notify,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            locks: (0..LOCKS).map(|_| AsyncMutex::new(())).collect(),
            announced: Mutex::default(),
            outgoing: Mutex::default(),
            gathering: Notify::new(),
        }
    }
}

/// Sends each batch of presence changes `PRESENCE_BATCH` after its first change,
/// until `shutdown`.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = app.presence.gathering.notified() => {}
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(PRESENCE_BATCH) => {}
        }
        for batch in app.presence.take_batch() {
            let handed = app.hub.send_to_domain(&batch.domain, batch.frames);
            crate::bus::count_forwarded(&app, "presence", handed * batch.from_bus);
        }
    }
}

/// The presence frame of a change.
pub fn frame(user: UserDbId, presence: Presence) -> String {
    json!({"type": "presence", "userDbId": user, "presence": presence}).to_string()
}

/// Derives `user`'s presence now and tells their domain if it changed.
pub async fn refresh(app: &App, user: UserDbId, domain: &str) {
    let tracker = &app.presence;
    let _order = tracker.locks[user.rem_euclid(LOCKS as i64) as usize]
        .lock()
        .await;
    let busy = match app.store.busy_users(&[user]).await {
        Ok(busy) => !busy.is_empty(),
        Err(e) => {
            tracing::warn!(user, error = %e, "presence could not be read");
            return;
        }
    };
    let now = Presence::of(busy, app.connected(&Owner::User(user)));
    let before = {
        let mut announced = tracker.announced.lock().expect("presence lock");
        if now == Presence::Offline {
            announced.remove(&user)
        } else {
            announced.insert(user, now)
        }
    };
    if before.unwrap_or(Presence::Offline) != now {
        tracker.announce(domain, user, now, false);
        if let Some(bus) = &app.bus {
            bus.presence(app, domain, user, now);
        }
    }
}

impl Tracker {
    /// The gathered batch, taken: per domain, its frames in the order in which the
    /// users first changed, each with the user's latest presence.
    fn take_batch(&self) -> Vec<Batch> {
        let batch = std::mem::take(&mut self.outgoing.lock().expect("presence lock").domains);
        batch
            .into_iter()
            .map(|(domain, changes)| {
                let mut changes: Vec<_> = changes.into_iter().collect();
                changes.sort_unstable_by_key(|(_, c)| c.order);
                Batch {
                    domain,
                    from_bus: changes.iter().filter(|(_, c)| c.from_bus).count(),
                    frames: changes
                        .into_iter()
                        .map(|(user, c)| Utf8Bytes::from(frame(user, c.presence)))
                        .collect(),
                }
            })
            .collect()
    }

    /// Queues a presence change for this node's sockets of `domain`: it goes out
    /// with the next batch. `from_bus`: another node announced it.
    pub fn announce(&self, domain: &str, user: UserDbId, presence: Presence, from_bus: bool) {
        let mut out = self.outgoing.lock().expect("presence lock");
        let first = out.domains.is_empty();
        let order = out.next;
        out.next += 1;
        out.domains
            .entry(domain.to_owned())
            .or_default()
            .entry(user)
            .and_modify(|c| {
                c.presence = presence;
                c.from_bus = from_bus;
            })
            .or_insert(Change {
                order,
                presence,
                from_bus,
            });
        if first {
            self.gathering.notify_one();
        }
    }

    /// Another node announced `user`'s presence: this node need not announce it again.
    pub fn heard(&self, user: UserDbId, presence: Presence) {
        let mut announced = self.announced.lock().expect("presence lock");
        if presence == Presence::Offline {
            announced.remove(&user);
        } else {
            announced.insert(user, presence);
        }
    }
}

/// After a commit: the users who joined or left the call may have changed presence.
pub fn call_changed(app: &Arc<App>, committed: &Committed) {
    let call = &committed.call;
    let mut users: Vec<UserDbId> = committed
        .new_events()
        .iter()
        .filter(|e| matches!(e.kind, EventType::Join | EventType::Leave))
        .filter_map(|e| call.contact(e.contact).user_db_id())
        .collect();
    if users.is_empty() {
        return;
    }
    users.sort_unstable();
    users.dedup();
    let app = app.clone();
    let domain = call.domain.clone();
    tokio::spawn(async move {
        for user in users {
            refresh(&app, user, &domain).await;
        }
    });
}

/// A socket of `owner` opened.
pub async fn socket_opened(app: &App, owner: &Owner, domain: Option<&str>) {
    if let Some(bus) = &app.bus {
        bus.socket_opened(app, owner, domain);
    }
    if let (Owner::User(user), Some(domain)) = (owner, domain) {
        refresh(app, *user, domain).await;
    }
}

/// A socket of `owner` closed: presence now, and the grace period if it was the last.
pub fn socket_closed(app: Arc<App>, owner: Owner, domain: Option<String>) {
    if let Some(bus) = &app.bus
        && !app.hub.is_connected(&owner)
    {
        bus.socket_closed(&app, &owner);
    }
    owner_gone(app, owner, domain);
}

/// `owner` may have no socket left on any node: presence now, and the grace period.
pub fn owner_gone(app: Arc<App>, owner: Owner, domain: Option<String>) {
    tokio::spawn(async move {
        if let (Owner::User(user), Some(domain)) = (&owner, &domain) {
            refresh(&app, *user, domain).await;
        }
        drop_after_grace(&app, owner).await;
    });
}

/// A guest joined: without a socket within the grace period they are dropped too
/// (a page closed before it connected must not keep the call alive).
pub fn guest_joined(app: Arc<App>, call: Uuid, contact: ContactId) {
    tokio::spawn(async move { drop_after_grace(&app, Owner::Guest(call, contact)).await });
}

async fn drop_after_grace(app: &Arc<App>, owner: Owner) {
    if app.connected(&owner) {
        return;
    }
    tokio::time::sleep(app.config.rejoin_grace).await;
    if app.connected(&owner) {
        return;
    }
    match owner {
        Owner::User(user) => drop_participant(app, user).await,
        Owner::Guest(call, contact) => drop_guest(app, call, contact).await,
    }
}

/// Applies `Drop` for a participant whose sockets all closed.
async fn drop_participant(app: &Arc<App>, user: UserDbId) {
    let Ok((calls, _)) = app
        .store
        .calls_of_user(user, Some(CallStatus::Started), 0, 100)
        .await
    else {
        return;
    };
    for call in calls {
        let Some(contact) = call
            .contact_of_user(user)
            .map(|c| c.id)
            .filter(|&c| call.is_joined(c))
        else {
            continue;
        };
        let rules = app.rules;
        match app
            .store
            .update_call(call.call_id, &|c| {
                apply(c, Command::Drop(contact), now(), &rules)
            })
            .await
        {
            Ok(committed) => app.after_commit(&committed),
            Err(e) => {
                tracing::warn!(call_id = %call.call_id, error = %e, "dropping a participant failed")
            }
        }
    }
}

/// Writes the `Leave` of a guest who has no socket, if they are still in the call.
async fn drop_guest(app: &Arc<App>, call_id: Uuid, contact: ContactId) {
    let rules = app.rules;
    let result = app
        .store
        .update_call(call_id, &|c| {
            let in_call = (1..=c.contacts.len() as i64).contains(&contact)
                && c.contact(contact).origin == ContactOrigin::Guest
                && c.is_joined(contact);
            if in_call {
                apply(c, Command::LeaveGuest(contact), now(), &rules)
            } else {
                Ok(callhub_core::Transition {
                    call: c.clone(),
                    outcome: Default::default(),
                })
            }
        })
        .await;
    match result {
        Ok(committed) => app.after_commit(&committed),
        Err(e) => tracing::warn!(%call_id, error = %e, "dropping a guest failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(frames: &[Utf8Bytes]) -> Vec<serde_json::Value> {
        frames
            .iter()
            .map(|f| serde_json::from_str(f.as_str()).unwrap())
            .collect()
    }

    #[test]
    fn a_batch_holds_each_users_latest_presence_in_first_change_order_per_domain() {
        let tracker = Tracker::default();
        tracker.announce("acme", 7, Presence::Online, false);
        tracker.announce("acme", 3, Presence::Busy, true);
        tracker.announce("rival", 9, Presence::Online, false);
        tracker.announce("acme", 7, Presence::Busy, false);
        tracker.announce("acme", 7, Presence::Offline, false);
        let mut batch = tracker.take_batch();
        batch.sort_by(|a, b| a.domain.cmp(&b.domain));
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].domain, "acme");
        assert_eq!(
            batch[0].from_bus, 1,
            "user 3's change came from another node"
        );
        assert_eq!(batch[1].from_bus, 0);
        assert_eq!(
            texts(&batch[0].frames),
            vec![
                json!({"type": "presence", "userDbId": 7, "presence": "offline"}),
                json!({"type": "presence", "userDbId": 3, "presence": "busy"}),
            ]
        );
        assert_eq!(
            texts(&batch[1].frames),
            vec![json!({"type": "presence", "userDbId": 9, "presence": "online"})]
        );
        assert!(tracker.take_batch().is_empty(), "a batch is sent once");
    }
}
