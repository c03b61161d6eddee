//! Random sequences of commands never break the call's invariants.

mod common;

use callhub_core::*;
use chrono::Duration;
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Join(usize),
    Decline(usize),
    Leave(usize),
    End(usize),
    Invite(usize, usize),
    Drop(i64),
    Wait(i64),
    GuestJoin,
    GuestLeave(i64),
}

fn people() -> Vec<UserInfo> {
    vec![alice(), bob(), carol(), connector(), glasses(), admin()]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..6usize).prop_map(Step::Join),
        (0..6usize).prop_map(Step::Decline),
        (0..6usize).prop_map(Step::Leave),
        (0..6usize).prop_map(Step::End),
        (0..6usize, 0..6usize).prop_map(|(a, b)| Step::Invite(a, b)),
        (1..6i64).prop_map(Step::Drop),
        (0..90i64).prop_map(Step::Wait),
        Just(Step::GuestJoin),
        (1..8i64).prop_map(Step::GuestLeave),
    ]
}

fn new_call_strategy() -> impl Strategy<Value = NewCall> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(0..200i64),
        proptest::sample::subsequence(vec![1usize, 2, 3, 5], 0..4),
    )
        .prop_map(|(mesh, broker, inform, guests, planned, invited)| {
            let p = people();
            let (requester, invited): (UserInfo, Vec<UserInfo>) = if broker {
                (
                    connector(),
                    invited
                        .iter()
                        .map(|&i| p[i].clone())
                        .chain([connector()])
                        .collect(),
                )
            } else {
                (alice(), invited.iter().map(|&i| p[i].clone()).collect())
            };
            let mut new = new_call(
                requester,
                if mesh { CallType::Mesh } else { CallType::Sfu },
                &invited,
            );
            if broker {
                new.on_behalf_of = Some(glasses());
            }
            new.inform_others_directly = inform;
            new.anonymous_join_allowed = guests;
            new.planned_at = planned.map(secs);
            new
        })
}

/// Every invariant a stored call keeps.
fn check(call: &Call, rules: &Rules) {
    let mut joined: Vec<ContactId> = Vec::new();
    let mut last_id = 0;
    let mut last_at = call.created_at;
    for (i, e) in call.events.iter().enumerate() {
        assert!(e.id > last_id, "event ids only grow");
        assert!(e.at >= last_at, "events are in time order");
        last_id = e.id;
        last_at = e.at;
        match e.kind {
            EventType::Join => {
                assert!(
                    !joined.contains(&e.contact),
                    "{:?} joined twice at once",
                    e.contact
                );
                joined.push(e.contact);
            }
            EventType::Leave => {
                assert!(joined.contains(&e.contact), "leave without join");
                joined.retain(|&c| c != e.contact);
            }
            EventType::Ended => {
                assert_eq!(i, call.events.len() - 1, "nothing follows Ended");
                assert!(joined.is_empty(), "everyone left before Ended");
            }
            EventType::Created => assert_eq!(i, 0),
            _ => {}
        }
        if call.call_type == CallType::Mesh {
            assert!(joined.len() <= 2, "MESH is 1:1");
        }
    }
    let ended = call.events.last().map(|e| e.kind) == Some(EventType::Ended);
    assert_eq!(ended, call.status == CallStatus::Ended);
    assert_eq!(ended, call.ended_at.is_some());
    if call.status == CallStatus::Planned {
        assert!(joined.is_empty() && call.started_at.is_none());
    }
    for c in &call.contacts {
        if c.ringing_since.is_some() {
            assert!(!joined.contains(&c.id), "a participant does not ring");
            assert!(c.user_db_id().is_some(), "only accounts ring");
            assert_ne!(c.origin, ContactOrigin::Guest, "guests never ring");
            if call.broker.is_some() && c.id != CREATOR {
                assert_ne!(call.broker, c.user_db_id(), "the broker never rings");
            }
        }
    }
    if call.broker.is_some() {
        let expert_joined = call
            .contacts
            .iter()
            .any(|c| c.id != CREATOR && call.broker != c.user_db_id() && call.ever_joined(c.id));
        let creator_rang = call
            .events
            .iter()
            .any(|e| e.contact == CREATOR && e.kind == EventType::Ringing);
        assert!(
            !creator_rang || expert_joined,
            "the glasses ring only after an expert answered"
        );
    }
    if ended {
        assert!(call.contacts.iter().all(|c| c.ringing_since.is_none()));
        assert_eq!(call.next_deadline(rules.ring_timeout), None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_commands_keep_the_invariants(new in new_call_strategy(), steps in prop::collection::vec(step(), 0..40)) {
        let rules = Rules { ring_timeout: Duration::seconds(60), ..Rules::default() };
        let p = people();
        let mut ids = 0;
        let Ok(t) = create(new, t0()) else { return Ok(()) };
        let mut call = store(t, &mut ids).call;
        check(&call, &rules);
        let mut now = t0();
        for s in steps {
            let cmd = match s {
                Step::Join(u) => Command::Join(act(p[u].clone())),
                Step::Decline(u) => Command::Decline(act(p[u].clone())),
                Step::Leave(u) => Command::Leave(act(p[u].clone())),
                Step::End(u) => Command::End(act(p[u].clone())),
                Step::Invite(u, v) => Command::Invite(act(p[u].clone()), vec![p[v].as_contact()], vec![]),
                Step::Drop(c) if c <= call.contacts.len() as i64 => Command::Drop(c),
                Step::Drop(_) => continue,
                Step::GuestJoin => Command::JoinGuest { display_name: "Visitor".into() },
                Step::GuestLeave(c) => Command::LeaveGuest(c),
                Step::Wait(s) => { now += Duration::seconds(s); Command::Tick }
            };
            let was_ended = call.status == CallStatus::Ended;
            match apply(&call, cmd.clone(), now, &rules) {
                Ok(t) => {
                    let next = store(t, &mut ids).call;
                    if was_ended {
                        prop_assert_eq!(next.events.len(), call.events.len(), "an ended call takes no event: {:?}", cmd);
                    }
                    call = next;
                }
                Err(e) => {
                    if matches!(cmd, Command::Join(_)) && was_ended && call.visible_to(&match &cmd { Command::Join(a) => a.user.clone(), _ => unreachable!() }) {
                        prop_assert_eq!(e, CallError::Ended);
                    }
                }
            }
            check(&call, &rules);
        }
    }
}
