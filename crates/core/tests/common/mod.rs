//! Shared fixtures: a few accounts of one domain and a clock.
#![allow(dead_code)]

use callhub_core::*;
use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

pub fn user(id: i64, name: &str, roles: &[Role]) -> UserInfo {
    UserInfo {
        user_db_id: id,
        user_id: name.to_owned(),
        domain: "ubimax".to_owned(),
        display_name: name.to_uppercase(),
        email: Some(format!("{name}@example.org")),
        phone_number: None,
        roles: roles.to_vec(),
    }
}

pub fn alice() -> UserInfo {
    user(1, "alice", &[Role::User])
}
pub fn bob() -> UserInfo {
    user(2, "bob", &[Role::User])
}
pub fn carol() -> UserInfo {
    user(3, "carol", &[Role::User])
}
pub fn connector() -> UserInfo {
    user(10, "connector", &[Role::Broker])
}
pub fn glasses() -> UserInfo {
    user(12, "glasses", &[Role::User])
}
pub fn admin() -> UserInfo {
    user(20, "admin", &[Role::Admin])
}
pub fn stranger() -> UserInfo {
    let mut u = user(30, "mallory", &[Role::Admin]);
    u.domain = "elsewhere".into();
    u
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 10, 0, 0).unwrap()
}
pub fn secs(s: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(s)
}
pub fn rules() -> Rules {
    Rules {
        ring_timeout: Duration::seconds(60),
        ..Rules::default()
    }
}

pub fn new_call(requester: UserInfo, call_type: CallType, invited: &[UserInfo]) -> NewCall {
    NewCall {
        call_id: Uuid::new_v4(),
        title: "Test Call".into(),
        reason: CallReason::Standard,
        call_type,
        anonymous_join_allowed: false,
        inform_others_directly: true,
        planned_at: None,
        requester,
        on_behalf_of: None,
        invited: invited.iter().map(UserInfo::as_contact).collect(),
        teams: vec![],
    }
}

/// Numbers new events the way a store does: ids that only grow.
pub fn store(mut t: Transition, next_id: &mut i64) -> Transition {
    for e in t.call.events.iter_mut().filter(|e| e.id == 0) {
        *next_id += 1;
        e.id = *next_id;
    }
    t
}

pub fn kinds(call: &Call) -> Vec<(EventType, ContactId)> {
    call.events.iter().map(|e| (e.kind, e.contact)).collect()
}

pub fn act(u: UserInfo) -> Actor {
    Actor { user: u }
}

pub fn run(call: &Call, cmd: Command, at: DateTime<Utc>) -> Transition {
    apply(call, cmd, at, &rules()).expect("command accepted")
}
