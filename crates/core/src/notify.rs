//! What each user hears of a transition: the pop-up, the end of ringing, and every
//! event of the calls they take part in (the WebSocket's sequenced messages).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{CallEventView, CallLog, CallStatus, UserDbId};
use crate::rules::{StopReason, Transition};

/// A sequenced message for one user, without its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Notification {
    /// The pop-up: a call rings on every device of the user. `busy`: they are in
    /// another call now (a client shows "call waiting").
    IncomingCall { call: Box<CallLog>, busy: bool },
    #[serde(rename_all = "camelCase")]
    RingingStopped { call_id: Uuid, reason: StopReason },
    #[serde(rename_all = "camelCase")]
    CallEvent {
        call_id: Uuid,
        event: CallEventView,
        call_status: CallStatus,
    },
}

impl Notification {
    pub fn call_id(&self) -> Uuid {
        match self {
            Notification::IncomingCall { call, .. } => call.call_id,
            Notification::RingingStopped { call_id, .. }
            | Notification::CallEvent { call_id, .. } => *call_id,
        }
    }
}

/// The messages a stored transition sends, in order: ringing starts and stops first
/// (they are what a person notices), then the new events to every member of the call.
/// `old_events` is how many events the call had before; ids must be assigned.
/// `busy`: the users who are in another call now (their pop-up says so).
pub fn notifications(
    t: &Transition,
    old_events: usize,
    busy: &[UserDbId],
) -> Vec<(UserDbId, Notification)> {
    let call = &t.call;
    let mut out = Vec::new();
    let user = |id| call.contact(id).user_db_id();
    for &id in &t.outcome.rang {
        if let Some(u) = user(id) {
            out.push((
                u,
                Notification::IncomingCall {
                    call: Box::new(call.to_call_log(None)),
                    busy: busy.contains(&u),
                },
            ));
        }
    }
    for &(id, reason) in &t.outcome.stopped {
        if let Some(u) = user(id) {
            out.push((
                u,
                Notification::RingingStopped {
                    call_id: call.call_id,
                    reason,
                },
            ));
        }
    }
    let members = call.member_users();
    for e in &call.events[old_events..] {
        let view = call.event_view(e);
        for &u in &members {
            out.push((
                u,
                Notification::CallEvent {
                    call_id: call.call_id,
                    event: view.clone(),
                    call_status: call.status,
                },
            ));
        }
    }
    out
}
