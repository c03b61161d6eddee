//! One test per rule of the call model.

mod common;

use callhub_core::EventType::*;
use callhub_core::*;
use common::*;

fn ringing(call: &Call) -> Vec<ContactId> {
    call.contacts
        .iter()
        .filter(|c| c.ringing_since.is_some())
        .map(|c| c.id)
        .collect()
}

#[test]
fn ordinary_call_starts_with_creator_joined_and_invitee_ringing() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    assert_eq!(t.call.status, CallStatus::Started);
    assert_eq!(kinds(&t.call), vec![(Created, 1), (Join, 1)]);
    assert_eq!(t.outcome.rang, vec![2]);
    assert_eq!(t.call.started_at, Some(t0()));
    assert_eq!(t.call.next_deadline(rules().ring_timeout), Some(secs(60)));
}

#[test]
fn seed_mesh_example_reads_created_join_join() {
    let t = create(new_call(alice(), CallType::Mesh, &[bob()]), t0()).unwrap();
    let t = run(&t.call, Command::Join(act(bob())), secs(5));
    assert_eq!(kinds(&t.call), vec![(Created, 1), (Join, 1), (Join, 2)]);
    assert_eq!(t.outcome.stopped, vec![(2, StopReason::AnsweredElsewhere)]);
    assert!(ringing(&t.call).is_empty());
    let log = t.call.to_call_log(None);
    assert_eq!(log.call_events[2].contact.user_id.as_deref(), Some("bob"));
    assert_eq!(log.invited_contacts.len(), 1);
    assert_eq!(log.creator_contact.id, 1);
}

#[test]
fn mesh_call_with_two_invitees_is_invalid() {
    let err = create(new_call(alice(), CallType::Mesh, &[bob(), carol()]), t0()).unwrap_err();
    assert!(matches!(err, CallError::Invalid(m) if m.contains("MESH")));
}

#[test]
fn creator_listed_among_invitees_is_not_added_twice() {
    let t = create(
        new_call(alice(), CallType::Mesh, &[alice(), bob(), bob()]),
        t0(),
    )
    .unwrap();
    assert_eq!(t.call.contacts.len(), 2);
}

#[test]
fn mesh_call_ends_when_either_side_leaves() {
    let t = create(new_call(alice(), CallType::Mesh, &[bob()]), t0()).unwrap();
    let t = run(&t.call, Command::Join(act(bob())), secs(1));
    let t = run(&t.call, Command::Leave(act(bob())), secs(2));
    assert_eq!(t.call.status, CallStatus::Ended);
    assert_eq!(kinds(&t.call)[3..], [(Leave, 2), (Leave, 1), (Ended, 2)]);
    assert_eq!(t.call.ended_at, Some(secs(2)));
}

#[test]
fn sfu_call_goes_on_while_someone_is_in_and_ends_with_the_last() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob(), carol()]), t0()).unwrap();
    let t = run(&t.call, Command::Join(act(bob())), secs(1));
    let t = run(&t.call, Command::Join(act(carol())), secs(1));
    let t = run(&t.call, Command::Leave(act(alice())), secs(2));
    assert_eq!(t.call.status, CallStatus::Started);
    let t = run(&t.call, Command::Leave(act(bob())), secs(3));
    assert_eq!(t.call.status, CallStatus::Started);
    let t = run(&t.call, Command::Leave(act(carol())), secs(4));
    assert_eq!(t.call.status, CallStatus::Ended);
    assert_eq!(kinds(&t.call).last(), Some(&(Ended, 3)));
}

#[test]
fn only_invitee_declining_ends_the_call_nobody_answered() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    let t = run(&t.call, Command::Decline(act(bob())), secs(3));
    assert_eq!(t.outcome.stopped, vec![(2, StopReason::DeclinedElsewhere)]);
    assert_eq!(t.call.status, CallStatus::Ended);
    assert_eq!(kinds(&t.call)[2..], [(Declined, 2), (Leave, 1), (Ended, 1)]);
}

#[test]
fn one_of_two_declining_keeps_the_other_ringing() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob(), carol()]), t0()).unwrap();
    let t = run(&t.call, Command::Decline(act(bob())), secs(3));
    assert_eq!(t.call.status, CallStatus::Started);
    assert_eq!(ringing(&t.call), vec![3]);
}

#[test]
fn declining_twice_writes_one_event() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob(), carol()]), t0()).unwrap();
    let t = run(&t.call, Command::Decline(act(bob())), secs(3));
    let n = t.call.events.len();
    let t = run(&t.call, Command::Decline(act(bob())), secs(4));
    assert_eq!(t.call.events.len(), n);
}

#[test]
fn ring_timeout_writes_missed_and_ends_an_unanswered_call() {
    let t = create(new_call(alice(), CallType::Mesh, &[bob()]), t0()).unwrap();
    let early = run(&t.call, Command::Tick, secs(59));
    assert_eq!(early.call, t.call, "nothing falls due before the timeout");
    let t = run(&t.call, Command::Tick, secs(60));
    assert_eq!(t.outcome.stopped, vec![(2, StopReason::Missed)]);
    assert_eq!(kinds(&t.call)[2..], [(Missed, 2), (Leave, 1), (Ended, 1)]);
    assert_eq!(t.call.next_deadline(rules().ring_timeout), None);
}

#[test]
fn caller_leaving_before_an_answer_cancels_the_ringing() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob(), carol()]), t0()).unwrap();
    let t = run(&t.call, Command::Leave(act(alice())), secs(2));
    assert_eq!(t.call.status, CallStatus::Ended);
    assert_eq!(
        t.outcome.stopped,
        vec![(2, StopReason::Cancelled), (3, StopReason::Cancelled)]
    );
}

#[test]
fn end_after_an_answer_stops_the_others_with_ended() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob(), carol()]), t0()).unwrap();
    let t = run(&t.call, Command::Join(act(bob())), secs(1));
    let t = run(&t.call, Command::End(act(alice())), secs(2));
    assert_eq!(t.outcome.stopped, vec![(3, StopReason::Ended)]);
    assert_eq!(kinds(&t.call)[3..], [(Leave, 1), (Leave, 2), (Ended, 1)]);
}

#[test]
fn only_creator_broker_or_admin_may_end() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    let err = apply(&t.call, Command::End(act(bob())), secs(1), &rules()).unwrap_err();
    assert!(matches!(err, CallError::Forbidden(_)));
    let ended = run(&t.call, Command::End(act(admin())), secs(1));
    assert_eq!(ended.call.status, CallStatus::Ended);
    assert_eq!(kinds(&ended.call).last(), Some(&(Ended, 1)));
}

#[test]
fn inform_others_directly_false_rings_nobody() {
    let mut new = new_call(alice(), CallType::Sfu, &[bob()]);
    new.inform_others_directly = false;
    let t = create(new, t0()).unwrap();
    assert!(t.outcome.rang.is_empty());
    assert_eq!(t.call.next_deadline(rules().ring_timeout), None);
    let t = run(&t.call, Command::Join(act(bob())), secs(30));
    assert_eq!(kinds(&t.call).last(), Some(&(Join, 2)));
}

#[test]
fn other_domains_do_not_see_the_call() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    assert!(!t.call.visible_to(&stranger()));
    assert!(!t.call.visible_to(&carol()));
    assert!(t.call.visible_to(&admin()));
    let err = apply(&t.call, Command::Join(act(stranger())), secs(1), &rules()).unwrap_err();
    assert_eq!(err, CallError::NotVisible);
}

#[test]
fn ended_call_accepts_no_join() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    let t = run(&t.call, Command::End(act(alice())), secs(1));
    let err = apply(&t.call, Command::Join(act(bob())), secs(2), &rules()).unwrap_err();
    assert_eq!(err, CallError::Ended);
}

#[test]
fn joining_twice_writes_one_join() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    let t = run(&t.call, Command::Join(act(bob())), secs(1));
    let again = run(&t.call, Command::Join(act(bob())), secs(2));
    assert_eq!(again.call, t.call);
}

#[test]
fn mesh_call_refuses_a_third_participant() {
    let t = create(new_call(alice(), CallType::Mesh, &[bob()]), t0()).unwrap();
    let t = run(&t.call, Command::Join(act(bob())), secs(1));
    let err = apply(&t.call, Command::Join(act(admin())), secs(2), &rules()).unwrap_err();
    assert!(matches!(err, CallError::Conflict(_)));
}

#[test]
fn leaving_without_being_in_and_declining_while_in_are_conflicts() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    let err = apply(&t.call, Command::Leave(act(bob())), secs(1), &rules()).unwrap_err();
    assert!(matches!(err, CallError::Conflict(_)));
    let err = apply(&t.call, Command::Decline(act(alice())), secs(1), &rules()).unwrap_err();
    assert!(matches!(err, CallError::Conflict(_)));
}

#[test]
fn admin_joining_uninvited_is_a_contact_but_not_an_invitee() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    let t = run(&t.call, Command::Join(act(admin())), secs(1));
    assert_eq!(kinds(&t.call).last(), Some(&(Join, 3)));
    assert_eq!(t.call.to_call_log(None).invited_contacts.len(), 1);
}

#[test]
fn invite_writes_invited_and_rings_the_new_contact() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    let t = run(
        &t.call,
        Command::Invite(
            act(alice()),
            vec![carol().as_contact(), bob().as_contact()],
            vec![],
        ),
        secs(5),
    );
    assert_eq!(kinds(&t.call).last(), Some(&(Invited, 3)));
    assert_eq!(t.outcome.rang, vec![3]);
    assert_eq!(t.call.next_deadline(rules().ring_timeout), Some(secs(60)));
}

#[test]
fn reinviting_after_a_decline_rings_again() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob(), carol()]), t0()).unwrap();
    let t = run(&t.call, Command::Decline(act(bob())), secs(1));
    let t = run(
        &t.call,
        Command::Invite(act(alice()), vec![bob().as_contact()], vec![]),
        secs(2),
    );
    assert_eq!(t.outcome.rang, vec![2]);
    assert_eq!(kinds(&t.call).last(), Some(&(Invited, 2)));
}

#[test]
fn inviting_a_second_person_to_mesh_is_invalid_and_changes_nothing() {
    let t = create(new_call(alice(), CallType::Mesh, &[bob()]), t0()).unwrap();
    let err = apply(
        &t.call,
        Command::Invite(act(alice()), vec![carol().as_contact()], vec![]),
        secs(1),
        &rules(),
    )
    .unwrap_err();
    assert!(matches!(err, CallError::Invalid(_)));
}

#[test]
fn external_contacts_are_kept_but_never_rung() {
    let mut new = new_call(alice(), CallType::Sfu, &[bob()]);
    new.invited.push(ContactSpec {
        email: Some("guest@example.com".into()),
        ..Default::default()
    });
    let t = create(new, t0()).unwrap();
    assert_eq!(t.call.contacts.len(), 3);
    assert_eq!(t.outcome.rang, vec![2]);
    // Bob's decline ends it: the external contact cannot be rung.
    let t = run(&t.call, Command::Decline(act(bob())), secs(1));
    assert_eq!(t.call.status, CallStatus::Ended);
}

// The broker flow.

fn broker_call() -> Transition {
    let mut new = new_call(connector(), CallType::Sfu, &[bob(), connector()]);
    new.on_behalf_of = Some(glasses());
    create(new, t0()).unwrap()
}

#[test]
fn broker_call_has_glasses_as_creator_who_neither_joins_nor_rings() {
    let t = broker_call();
    assert_eq!(t.call.contact(CREATOR).user_db_id(), Some(12));
    assert_eq!(t.call.broker, Some(10));
    assert_eq!(kinds(&t.call), vec![(Created, 1)]);
    assert_eq!(
        t.outcome.rang,
        vec![2],
        "only the expert rings; never the connector"
    );
    assert!(t.call.visible_to(&connector()));
}

#[test]
fn expert_answers_then_glasses_ring_then_join() {
    let t = run(&broker_call().call, Command::Join(act(bob())), secs(3));
    assert_eq!(kinds(&t.call)[1..], [(Join, 2), (Ringing, 1)]);
    assert_eq!(t.outcome.rang, vec![1]);
    let t = run(&t.call, Command::Join(act(glasses())), secs(5));
    assert_eq!(kinds(&t.call).last(), Some(&(Join, 1)));
    assert_eq!(t.outcome.stopped, vec![(1, StopReason::AnsweredElsewhere)]);
}

#[test]
fn expert_declines_then_glasses_never_ring() {
    let t = run(&broker_call().call, Command::Decline(act(bob())), secs(3));
    assert_eq!(t.call.status, CallStatus::Ended);
    assert!(t.outcome.rang.is_empty());
    assert!(
        !t.call
            .events
            .iter()
            .any(|e| e.contact == CREATOR && e.kind == Ringing)
    );
}

#[test]
fn expert_misses_then_call_ends_without_ringing_glasses() {
    let t = run(&broker_call().call, Command::Tick, secs(60));
    assert_eq!(kinds(&t.call)[1..], [(Missed, 2), (Ended, 1)]);
    assert!(t.outcome.rang.is_empty());
}

#[test]
fn glasses_declining_after_the_expert_answered_ends_the_call() {
    let t = run(&broker_call().call, Command::Join(act(bob())), secs(3));
    let t = run(&t.call, Command::Decline(act(glasses())), secs(4));
    assert_eq!(t.call.status, CallStatus::Ended);
    assert_eq!(kinds(&t.call)[3..], [(Declined, 1), (Leave, 2), (Ended, 1)]);
}

#[test]
fn non_broker_naming_another_creator_is_forbidden() {
    let mut new = new_call(alice(), CallType::Sfu, &[bob()]);
    new.on_behalf_of = Some(glasses());
    assert!(matches!(
        create(new, t0()).unwrap_err(),
        CallError::Forbidden(_)
    ));
}

#[test]
fn naming_oneself_as_creator_is_an_ordinary_call() {
    let mut new = new_call(alice(), CallType::Sfu, &[bob()]);
    new.on_behalf_of = Some(alice());
    let t = create(new, t0()).unwrap();
    assert_eq!(t.call.broker, None);
    assert_eq!(kinds(&t.call), vec![(Created, 1), (Join, 1)]);
}

#[test]
fn broker_mesh_call_counts_the_expert_not_the_connector() {
    let mut new = new_call(connector(), CallType::Mesh, &[bob(), connector()]);
    new.on_behalf_of = Some(glasses());
    assert!(create(new, t0()).is_ok());
}

// Planned calls.

fn planned_call(at: i64) -> Transition {
    let mut new = new_call(alice(), CallType::Sfu, &[bob()]);
    new.planned_at = Some(secs(at));
    create(new, t0()).unwrap()
}

#[test]
fn planned_call_waits_and_rings_everyone_at_its_time() {
    let t = planned_call(3600);
    assert_eq!(t.call.status, CallStatus::Planned);
    assert_eq!(kinds(&t.call), vec![(Created, 1)]);
    assert!(t.outcome.rang.is_empty());
    assert_eq!(t.call.next_deadline(rules().ring_timeout), Some(secs(3600)));
    let before = run(&t.call, Command::Tick, secs(3599));
    assert_eq!(before.call, t.call);
    let t = run(&t.call, Command::Tick, secs(3600));
    assert_eq!(t.call.status, CallStatus::Started);
    assert_eq!(t.call.started_at, Some(secs(3600)));
    assert_eq!(t.outcome.rang, vec![1, 2]);
    assert_eq!(kinds(&t.call)[1..], [(Ringing, 1), (Ringing, 2)]);
}

#[test]
fn planned_call_starts_at_the_first_join() {
    let t = planned_call(3600);
    let t = run(&t.call, Command::Join(act(bob())), secs(10));
    assert_eq!(t.call.status, CallStatus::Started);
    assert_eq!(t.call.started_at, Some(secs(10)));
    // Leaving before the planned time does not end it; Alice still rings at its time.
    let t = run(&t.call, Command::Leave(act(bob())), secs(20));
    assert_eq!(t.call.status, CallStatus::Started);
    let t = run(&t.call, Command::Tick, secs(3600));
    assert_eq!(t.outcome.rang, vec![1]);
}

#[test]
fn planned_time_in_the_past_starts_at_once() {
    let mut new = new_call(alice(), CallType::Sfu, &[bob()]);
    new.planned_at = Some(secs(-10));
    let t = create(new, t0()).unwrap();
    assert_eq!(t.call.status, CallStatus::Started);
    assert_eq!(t.outcome.rang, vec![2]);
}

#[test]
fn declining_a_planned_call_ahead_of_time_is_not_rung_later() {
    let mut new = new_call(alice(), CallType::Sfu, &[bob(), carol()]);
    new.planned_at = Some(secs(100));
    let t = create(new, t0()).unwrap();
    let t = run(&t.call, Command::Decline(act(bob())), secs(1));
    assert_eq!(t.call.status, CallStatus::Planned);
    let t = run(&t.call, Command::Tick, secs(100));
    assert_eq!(t.outcome.rang, vec![1, 3]);
}

// What users hear.

#[test]
fn notifications_pop_up_for_the_invitee_and_events_reach_every_member() {
    let mut id = 0;
    let t = store(
        create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap(),
        &mut id,
    );
    let n = notifications(&t, 0, &[]);
    assert!(
        matches!(&n[0], (2, Notification::IncomingCall { call, busy: false }) if call.call_events.len() == 2)
    );
    let n = notifications(&t, 0, &[2]);
    assert!(
        matches!(&n[0], (2, Notification::IncomingCall { busy: true, .. })),
        "a callee in another call hears that this one waits"
    );
    let events: Vec<_> = n
        .iter()
        .filter(|(_, m)| matches!(m, Notification::CallEvent { .. }))
        .collect();
    assert_eq!(events.len(), 4, "two events to two members");
    let old = t.call.events.len();
    let t = store(run(&t.call, Command::Join(act(bob())), secs(1)), &mut id);
    let n = notifications(&t, old, &[]);
    assert_eq!(
        n[0],
        (
            2,
            Notification::RingingStopped {
                call_id: t.call.call_id,
                reason: StopReason::AnsweredElsewhere
            }
        )
    );
    let json = serde_json::to_value(&n[1].1).unwrap();
    assert_eq!(json["type"], "callEvent");
    assert_eq!(json["event"]["type"], "Join");
    assert_eq!(json["event"]["id"], 3);
    assert_eq!(json["callStatus"], "Started");
}

#[test]
fn call_log_json_matches_the_seed() {
    let mut new = new_call(alice(), CallType::Sfu, &[bob()]);
    new.anonymous_join_allowed = true;
    let t = create(new, t0()).unwrap();
    let v = serde_json::to_value(t.call.to_call_log(None)).unwrap();
    assert_eq!(v["anonymousJoinAllow"], true);
    assert_eq!(v["callReason"], "STANDARD");
    assert_eq!(v["callType"], "SFU");
    assert_eq!(v["callStatus"], "Started");
    assert_eq!(v["createdAt"], "2026-11-23T10:00:00.000Z");
    assert_eq!(v["plannedDateTime"], serde_json::Value::Null);
    assert_eq!(v["invitedContacts"][0]["phoneNumber"], "");
    assert_eq!(v["invitedContacts"][0]["userDbId"], 2);
    assert_eq!(v["callEvents"][0]["type"], "Created");
    assert!(v.get("joinUrl").is_none());
}

fn open_to_guests(call_type: CallType, invited: &[UserInfo]) -> NewCall {
    let mut new = new_call(alice(), call_type, invited);
    new.anonymous_join_allowed = true;
    new
}

fn guest(name: &str) -> Command {
    Command::JoinGuest {
        display_name: name.into(),
    }
}

#[test]
fn guest_joins_as_an_anonymous_contact_and_leaves() {
    let t = create(open_to_guests(CallType::Sfu, &[bob()]), t0())
        .unwrap()
        .with_guest_link("ab".repeat(32));
    assert_eq!(t.call.guest_token_hash, Some("ab".repeat(32)));
    let t = run(&t.call, guest("Visitor"), secs(1));
    let id = t.call.contacts.len() as ContactId;
    let c = t.call.contact(id);
    assert_eq!(c.origin, ContactOrigin::Guest);
    assert_eq!(c.user_db_id(), None);
    assert_eq!(c.spec.display_name.as_deref(), Some("Visitor"));
    assert_eq!(kinds(&t.call)[2..], [(Join, id)]);
    assert!(t.outcome.rang.is_empty(), "guests never ring anyone");
    let log = t.call.to_call_log(None);
    let view = &log.call_events[2].contact;
    assert!(view.anonymous && view.user_db_id.is_none());
    assert!(
        log.invited_contacts.iter().all(|c| !c.anonymous),
        "a guest is not an invitee"
    );
    let t = run(&t.call, Command::LeaveGuest(id), secs(2));
    assert_eq!(kinds(&t.call).last(), Some(&(Leave, id)));
    assert_eq!(
        t.call.status,
        CallStatus::Started,
        "the creator is still in"
    );
}

#[test]
fn guest_join_is_forbidden_where_the_call_does_not_allow_it() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0())
        .unwrap()
        .with_guest_link("ab".repeat(32));
    let err = apply(&t.call, guest("Visitor"), secs(1), &rules()).unwrap_err();
    assert!(matches!(err, CallError::Forbidden(_)));
    assert_eq!(
        t.call.guest_token_hash, None,
        "no guest token is kept for such a call"
    );
}

#[test]
fn guest_cannot_join_an_ended_call_or_a_full_mesh_call() {
    let t = create(open_to_guests(CallType::Mesh, &[bob()]), t0()).unwrap();
    let full = run(&t.call, Command::Join(act(bob())), secs(1));
    let err = apply(&full.call, guest("Visitor"), secs(2), &rules()).unwrap_err();
    assert!(matches!(err, CallError::Conflict(_)));
    let ended = run(&full.call, Command::Leave(act(bob())), secs(3));
    let err = apply(&ended.call, guest("Visitor"), secs(4), &rules()).unwrap_err();
    assert_eq!(err, CallError::Ended);
}

#[test]
fn the_last_guest_leaving_ends_an_sfu_call() {
    let t = create(open_to_guests(CallType::Sfu, &[bob()]), t0()).unwrap();
    let t = run(&t.call, guest("Visitor"), secs(1));
    let t = run(&t.call, Command::Leave(act(alice())), secs(2));
    assert_eq!(t.call.status, CallStatus::Started);
    let id = t.call.contacts.len() as ContactId;
    let t = run(&t.call, Command::LeaveGuest(id), secs(3));
    assert_eq!(t.call.status, CallStatus::Ended);
    assert_eq!(kinds(&t.call).last(), Some(&(Ended, id)));
}

#[test]
fn leave_guest_names_only_guests_who_are_in() {
    let t = create(open_to_guests(CallType::Sfu, &[bob()]), t0()).unwrap();
    for not_a_guest in [1, 2, 9] {
        let err = apply(&t.call, Command::LeaveGuest(not_a_guest), secs(1), &rules()).unwrap_err();
        assert!(matches!(err, CallError::Conflict(_)), "{not_a_guest}");
    }
    let t = run(&t.call, guest("Visitor"), secs(1));
    let t = run(&t.call, Command::LeaveGuest(3), secs(2));
    let err = apply(&t.call, Command::LeaveGuest(3), secs(3), &rules()).unwrap_err();
    assert!(matches!(err, CallError::Conflict(_)), "leaving twice");
}

#[test]
fn a_guest_joining_starts_a_planned_call() {
    let mut new = open_to_guests(CallType::Sfu, &[bob()]);
    new.planned_at = Some(secs(3600));
    let t = create(new, t0()).unwrap();
    let t = run(&t.call, guest("Visitor"), secs(10));
    assert_eq!(t.call.status, CallStatus::Started);
    assert_eq!(t.call.started_at, Some(secs(10)));
}

#[test]
fn a_new_call_invites_by_mail_and_sms_and_sends_its_events_to_webhooks() {
    let mut new = new_call(alice(), CallType::Sfu, &[bob()]);
    new.invited.push(ContactSpec {
        display_name: Some("Visitor".into()),
        email: Some("visitor@example.com".into()),
        phone_number: Some("+4917612345678".into()),
        ..ContactSpec::default()
    });
    new.inform_others_directly = false; // mail and SMS go out all the same
    let t = create(new, t0()).unwrap();
    let mail = |contact, to: &str| Delivery::Invitation {
        contact,
        channel: Channel::Mail,
        to: to.into(),
    };
    assert_eq!(
        deliveries(&t, 0),
        vec![
            mail(2, "bob@example.org"),
            mail(3, "visitor@example.com"),
            Delivery::Invitation {
                contact: 3,
                channel: Channel::Sms,
                to: "+4917612345678".into()
            },
            Delivery::Event { index: 0 },
            Delivery::Event { index: 1 },
        ]
    );
}

#[test]
fn only_contacts_invited_by_the_transition_get_an_invitation() {
    let t = create(new_call(alice(), CallType::Sfu, &[bob()]), t0()).unwrap();
    let n = t.call.events.len();
    let t = run(&t.call, Command::Join(act(bob())), secs(1));
    assert_eq!(deliveries(&t, n), vec![Delivery::Event { index: n }]);
    let n = t.call.events.len();
    let t = run(
        &t.call,
        Command::Invite(act(alice()), vec![carol().as_contact()], vec![]),
        secs(2),
    );
    assert_eq!(
        deliveries(&t, n),
        vec![
            Delivery::Invitation {
                contact: 3,
                channel: Channel::Mail,
                to: "carol@example.org".into()
            },
            Delivery::Event { index: n },
        ]
    );
}

#[test]
fn the_broker_gets_no_invitation_of_its_own_call() {
    let mut new = new_call(connector(), CallType::Sfu, &[bob(), connector()]);
    new.on_behalf_of = Some(glasses());
    let t = create(new, t0()).unwrap();
    let invited: Vec<ContactId> = deliveries(&t, 0)
        .into_iter()
        .filter_map(|d| match d {
            Delivery::Invitation { contact, .. } => Some(contact),
            Delivery::Event { .. } => None,
        })
        .collect();
    assert_eq!(invited, vec![2], "bob only; not the connector");
}
