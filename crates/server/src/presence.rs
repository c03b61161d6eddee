//! Presence, and participants who vanish. Presence is derived, never set by hand:
//! `busy` while joined in a call that has not ended (the store knows), else `online`
//! while a socket is open, else `offline`; each change goes to the sockets of the
//! user's domain as a `presence` frame. A participant whose last socket closed has
//! `CALLHUB_REJOIN_GRACE_SECS` to come back before their `Leave` is written (and the
//! call ends by its rules if they were the last); guests alike, from their join on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use callhub_core::{CallStatus, Command};
use callhub_core::{ContactId, ContactOrigin, EventType, Presence, UserDbId, apply};
use callhub_store::Committed;
use serde_json::json;
use tokio::sync::Mutex as AsyncMutex;
use uuid::Uuid;

use crate::app::{App, now};
use crate::hub::Owner;

const LOCKS: usize = 64;

/// What each user's presence was last announced as (absent: offline).
pub struct Tracker {
    /// A refresh reads and announces under its user's lock, so the last refresh to
    /// run (they follow every change) announces the latest state.
    locks: Vec<AsyncMutex<()>>,
    announced: Mutex<HashMap<UserDbId, Presence>>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            locks: (0..LOCKS).map(|_| AsyncMutex::new(())).collect(),
            announced: Mutex::default(),
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
        app.hub.send_to_domain(domain, &frame(user, now));
        if let Some(bus) = &app.bus {
            bus.presence(app, domain, user, now);
        }
    }
}

impl Tracker {
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
