//! What a transition sends outside the WebSocket: mail and SMS invitations to the
//! contacts it invites, and each new event to the webhooks of the call's domain.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Call, ContactId, ContactOrigin, EventType};
use crate::rules::Transition;

/// The way a delivery travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Mail,
    Sms,
    Webhook,
}

crate::model::str_enum!(Channel { Mail => "mail", Sms => "sms", Webhook => "webhook" });

/// One delivery a transition asks for; the store writes it to its outbox in the
/// same transaction as the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// An invitation to a contact, to its email (`Mail`) or phone number (`Sms`).
    Invitation {
        contact: ContactId,
        channel: Channel,
        to: String,
    },
    /// A new event of the call (an index into `call.events`), for every webhook.
    Event { index: usize },
}

/// The deliveries of a transition from a call that had `old_events` events. A
/// new call invites every invitee; later, each `Invited` event invites its contact.
/// The broker is the one who asked, and gets no invitation.
pub fn deliveries(t: &Transition, old_events: usize) -> Vec<Delivery> {
    let call = &t.call;
    let invited: Vec<ContactId> = if old_events == 0 {
        call.contacts
            .iter()
            .filter(|c| c.origin == ContactOrigin::Invited)
            .map(|c| c.id)
            .collect()
    } else {
        call.events[old_events..]
            .iter()
            .filter(|e| e.kind == EventType::Invited)
            .map(|e| e.contact)
            .collect()
    };
    let mut out = Vec::new();
    for id in invited {
        if is_broker(call, id) {
            continue;
        }
        let spec = &call.contact(id).spec;
        if let Some(to) = &spec.email {
            out.push(Delivery::Invitation {
                contact: id,
                channel: Channel::Mail,
                to: to.clone(),
            });
        }
        if let Some(to) = &spec.phone_number {
            out.push(Delivery::Invitation {
                contact: id,
                channel: Channel::Sms,
                to: to.clone(),
            });
        }
    }
    out.extend((old_events..call.events.len()).map(|index| Delivery::Event { index }));
    out
}

fn is_broker(call: &Call, id: ContactId) -> bool {
    call.broker.is_some() && call.contact(id).user_db_id() == call.broker
}
