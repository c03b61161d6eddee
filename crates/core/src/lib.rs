//! callhub's call model: the seed's `CallLog` and its parts, and the rules of
//! ringing, joining, declining, missing and ending, as pure functions of the time.

pub mod api;
pub mod model;
pub mod notify;
pub mod outbox;
pub mod rules;
pub mod text;
pub mod wire;

pub use model::*;
pub use notify::{Notification, notifications};
pub use outbox::{Channel, Delivery, deliveries};
pub use rules::{
    Actor, CallError, Command, NewCall, Outcome, Rules, StopReason, Transition, apply, create,
};
