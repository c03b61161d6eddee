//! Any bytes as the body of every route that takes one: parsing never panics,
//! and whatever parses into the domain's text types holds no control character.
#![no_main]

use callhub_core::api::{
    CreateCallRequest, GuestJoinRequest, InviteRequest, LoginRequest, RefreshRequest,
    WebhookRequest,
};
use callhub_core::text::{CallTitle, DisplayName, Domain, UserId, optional, planned_time};
use callhub_core::wire::parse_body;
use libfuzzer_sys::fuzz_target;

fn clean(s: &str) {
    assert!(!s.chars().any(char::is_control), "{s:?} kept a control character");
    assert_eq!(s, s.trim(), "{s:?} is not trimmed");
}

fn contacts_and_teams(
    contacts: &[callhub_core::api::ContactInput],
    teams: &[callhub_core::api::TeamInput],
) {
    for (i, c) in contacts.iter().enumerate() {
        if let Ok(f) = c.parse(&format!("invitedContacts[{i}]")) {
            f.display_name.iter().for_each(|v| clean(v.as_str()));
            f.domain.iter().for_each(|v| clean(v.as_str()));
            f.email.iter().for_each(|v| clean(v.as_str()));
            f.user_id.iter().for_each(|v| clean(v.as_str()));
            if let Some(p) = &f.phone_number {
                assert!(p.as_str().starts_with('+'), "{p}");
            }
        }
    }
    for (i, t) in teams.iter().enumerate() {
        let _ = t.parse(&format!("invitedTeams[{i}]"));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_body::<CreateCallRequest>(data) {
        if let Ok(t) = CallTitle::parse("callTitle", &req.call_title) {
            clean(t.as_str());
        }
        let _ = optional(req.planned_date_time.as_deref(), |s| {
            planned_time("plannedDateTime", s)
        });
        contacts_and_teams(&req.invited_contacts, &req.invited_teams);
    }
    if let Ok(req) = parse_body::<InviteRequest>(data) {
        contacts_and_teams(&req.invited_contacts, &req.invited_teams);
    }
    if let Ok(req) = parse_body::<LoginRequest>(data) {
        if let Ok(u) = UserId::parse("username", &req.username) {
            clean(u.as_str());
        }
        let _ = optional(req.domain.as_deref(), |d| Domain::parse("domain", d));
    }
    if let Ok(req) = parse_body::<GuestJoinRequest>(data) {
        if let Ok(n) = DisplayName::parse("displayName", &req.display_name) {
            clean(n.as_str());
        }
    }
    let _ = parse_body::<RefreshRequest>(data);
    let _ = parse_body::<WebhookRequest>(data);
});
