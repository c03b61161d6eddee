use std::time::Duration;

use callhub_core::EventType::*;
use callhub_core::{CallStatus, CallType, Role};

use crate::helpers::*;

backend_tests! {
    async fn unanswered_ringing_is_missed_after_the_ring_timeout(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.ring_timeout = Duration::from_secs(1)).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&b])).await.unwrap();
        let early = a.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        assert_eq!(early.call_events.len(), 2, "nothing is missed before the timeout");
        eventually(10, || async {
            a.rtc().get_call_log_by_id(call.call_id).await.unwrap().call_status == CallStatus::Ended
        })
        .await;
        let log = a.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        assert_eq!(events(&log)[2..], [ev(Missed, "bob"), ev(Leave, "alice"), ev(Ended, "alice")]);
        let missed_at = log.call_events[2].timestamp;
        assert!(missed_at - log.created_at >= chrono::Duration::seconds(1));
    }

    /// What a transition changes of a contact (Bob stops ringing when he
    /// answers) is what the next transition reads back: were it not stored, Carol's
    /// answer would load Bob ringing still, and the ring timeout would miss him.
    async fn an_answered_callee_stays_answered_through_later_changes(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.ring_timeout = Duration::from_secs(1)).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let c = app.user("carol", &[Role::User]).await;
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&b, &c])).await.unwrap();
        b.rtc().join_call(call.call_id).await.unwrap();
        c.rtc().join_call(call.call_id).await.unwrap();
        b.rtc().leave_call(call.call_id).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let log = a.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        assert_eq!(
            events(&log)[2..],
            [ev(Join, "bob"), ev(Join, "carol"), ev(Leave, "bob")],
            "past the ring timeout, nobody who answered is missed"
        );
        assert_eq!(log.call_status, CallStatus::Started);
    }

    async fn broker_call_ends_when_the_expert_misses_it(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.ring_timeout = Duration::from_secs(1)).await;
        let BrokerParties { connector, glasses, expert } = app.broker_parties().await;
        let req = broker_request(&glasses, &expert, &connector);
        let call = connector.rtc().create_call_for_contacts(&req).await.unwrap();
        eventually(10, || async {
            glasses.rtc().get_call_log_by_id(call.call_id).await.unwrap().call_status == CallStatus::Ended
        })
        .await;
        let log = glasses.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        assert_eq!(events(&log), vec![ev(Created, "glasses"), ev(Missed, "expert"), ev(Ended, "glasses")]);
    }

    async fn planned_call_waits_for_its_time_then_starts_and_rings(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let at = chrono::Utc::now() + chrono::Duration::seconds(2);
        let mut req = call_request(CallType::Sfu, &[&b]);
        req.planned_date_time = Some(at.to_rfc3339());
        let log = a.rtc().create_call_for_contacts(&req).await.unwrap();
        assert_eq!(log.call_status, CallStatus::Planned);
        assert_eq!(events(&log), vec![ev(Created, "alice")]);
        assert!(log.started_at.is_none());
        assert_eq!(log.planned_date_time.unwrap().timestamp_millis(), at.timestamp_millis());
        eventually(10, || async {
            a.rtc().get_call_log_by_id(log.call_id).await.unwrap().call_status == CallStatus::Started
        })
        .await;
        let log = a.rtc().get_call_log_by_id(log.call_id).await.unwrap();
        assert_eq!(events(&log)[1..], [ev(Ringing, "alice"), ev(Ringing, "bob")]);
        assert!(log.started_at.unwrap() >= at - chrono::Duration::milliseconds(1));
    }

    async fn planned_call_starts_early_at_the_first_join(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let mut req = call_request(CallType::Sfu, &[&b]);
        req.planned_date_time = Some("2099-01-01T10:00:00".into());
        let log = a.rtc().create_call_for_contacts(&req).await.unwrap();
        assert_eq!(log.call_status, CallStatus::Planned);
        let log = b.rtc().join_call(log.call_id).await.unwrap().call_log;
        assert_eq!(log.call_status, CallStatus::Started);
        assert_eq!(events(&log), vec![ev(Created, "alice"), ev(Join, "bob")]);
    }
}
