//! getCallLogById's answers, kept as JSON bytes per call and version.
//!
//! A call's log is read far more often than it changes (a dashboard polls it, a
//! connector after each step), and rendering it is most of the request: the call,
//! its contacts and every event read, each event's contact copied and escaped
//! into JSON (bench/README.md, "What bounds getCallLogById"). A rendering stays
//! good while the stored call's `version` is the one it was made from, which one
//! lookup by key tells; so it serves every node's changes alike, whichever node
//! wrote them.
//!
//! Bounded by bytes in two generations: renderings go into the young one; when it
//! holds `GENERATION_BYTES` it becomes the old one and the previous old one is
//! dropped; a rendering found in the old one moves back to the young. The calls
//! in use stay, the rest go, without a list to keep in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Bytes;
use callhub_core::Call;
use uuid::Uuid;

/// What each generation holds at most, counting a rendering's JSON twice (the
/// call it was made from, kept to decide who may see it, is about as large).
const GENERATION_BYTES: usize = 16 << 20;

/// A call's log as answered, and the call it was rendered from.
pub struct Rendered {
    pub call: Call,
    pub body: Bytes,
}

impl Rendered {
    fn cost(&self) -> usize {
        2 * self.body.len() + 256
    }
}

#[derive(Default)]
pub struct CallLogs {
    inner: Mutex<Generations>,
}

#[derive(Default)]
struct Generations {
    young: HashMap<Uuid, Arc<Rendered>>,
    young_bytes: usize,
    old: HashMap<Uuid, Arc<Rendered>>,
}

impl Generations {
    fn insert(&mut self, id: Uuid, r: Arc<Rendered>) {
        if self.young_bytes + r.cost() > GENERATION_BYTES {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += r.cost();
        if let Some(was) = self.young.insert(id, r) {
            self.young_bytes = self.young_bytes.saturating_sub(was.cost());
        }
    }
}

impl CallLogs {
    /// The rendering of `call_id` at `version`, if one is kept.
    pub fn get(&self, call_id: Uuid, version: i64) -> Option<Arc<Rendered>> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = g.young.get(&call_id) {
            return (r.call.version == version).then(|| r.clone());
        }
        let r = g.old.remove(&call_id)?;
        if r.call.version != version {
            return None;
        }
        g.insert(call_id, r.clone());
        Some(r)
    }

    /// Keeps a rendering, unless one of a newer version is kept already.
    pub fn put(&self, r: Arc<Rendered>) {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let id = r.call.call_id;
        let newer = g
            .young
            .get(&id)
            .or_else(|| g.old.get(&id))
            .is_some_and(|kept| kept.call.version > r.call.version);
        if !newer {
            g.old.remove(&id);
            g.insert(id, r);
        }
    }

    /// How many renderings are kept, and their bytes of JSON.
    pub fn held(&self) -> (usize, usize) {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let all = g.young.values().chain(g.old.values());
        all.fold((0, 0), |(n, b), r| (n + 1, b + r.body.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(call_id: Uuid, version: i64, bytes: usize) -> Arc<Rendered> {
        use callhub_core::{CallReason, CallStatus, CallType};
        let call = Call {
            id: 1,
            call_id,
            domain: "example.com".into(),
            title: String::new(),
            reason: CallReason::Standard,
            call_type: CallType::Mesh,
            status: CallStatus::Started,
            anonymous_join_allowed: false,
            inform_others_directly: false,
            planned_at: None,
            created_at: chrono::Utc::now(),
            started_at: None,
            ended_at: None,
            broker: None,
            ring_pending_at: None,
            guest_token_hash: None,
            contacts: vec![],
            teams: vec![],
            events: vec![],
            version,
        };
        Arc::new(Rendered {
            call,
            body: Bytes::from(vec![b' '; bytes]),
        })
    }

    #[test]
    fn a_rendering_serves_only_its_own_version() {
        let logs = CallLogs::default();
        let id = Uuid::new_v4();
        logs.put(rendered(id, 3, 100));
        assert!(logs.get(id, 3).is_some());
        assert!(logs.get(id, 4).is_none(), "a newer call is rendered again");
        logs.put(rendered(id, 4, 100));
        logs.put(rendered(id, 3, 100)); // a slow reader's older rendering
        assert!(
            logs.get(id, 4).is_some(),
            "an older rendering replaced a newer one"
        );
    }

    #[test]
    fn the_calls_in_use_stay_and_the_rest_go_within_two_generations() {
        let logs = CallLogs::default();
        let hot = Uuid::new_v4();
        logs.put(rendered(hot, 0, 1000));
        let each = 64 << 10;
        let per_generation = GENERATION_BYTES / (2 * each + 256);
        for _ in 0..3 * per_generation {
            logs.put(rendered(Uuid::new_v4(), 0, each));
            assert!(
                logs.get(hot, 0).is_some(),
                "a call read all along was dropped"
            );
        }
        let (n, bytes) = logs.held();
        assert!(n <= 2 * per_generation + 1, "{n} renderings held");
        assert!(bytes <= GENERATION_BYTES, "{bytes} bytes of JSON held");
    }
}
