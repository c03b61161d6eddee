use callhub_core::EventType::*;
use callhub_core::{CallStatus, CallType, Role};

use crate::helpers::*;

backend_tests! {
    async fn glasses_ring_only_once_the_expert_answers(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let BrokerParties { connector, glasses, expert } = app.broker_parties().await;
        let req = broker_request(&glasses, &expert, &connector);
        let log = connector.rtc().create_call_for_contacts(&req).await.unwrap();
        assert_eq!(log.creator_contact.user_id.as_deref(), Some("glasses"));
        assert_eq!(events(&log), vec![ev(Created, "glasses")], "the glasses user neither joins nor rings");
        // Everybody involved sees the call; the connector as its broker.
        glasses.rtc().get_call_log_by_id(log.call_id).await.unwrap();
        let log = expert.rtc().join_call(log.call_id).await.unwrap().call_log;
        assert_eq!(events(&log)[1..], [ev(Join, "expert"), ev(Ringing, "glasses")]);
        let log = glasses.rtc().join_call(log.call_id).await.unwrap().call_log;
        assert_eq!(events(&log).last(), Some(&ev(Join, "glasses")));
        let seen = connector.rtc().get_call_log_by_id(log.call_id).await.unwrap();
        assert_eq!(seen, log);
    }

    async fn expert_declines_then_glasses_never_ring(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let BrokerParties { connector, glasses, expert } = app.broker_parties().await;
        let req = broker_request(&glasses, &expert, &connector);
        let log = connector.rtc().create_call_for_contacts(&req).await.unwrap();
        let log = expert.rtc().decline_call(log.call_id).await.unwrap();
        assert_eq!(events(&log), vec![ev(Created, "glasses"), ev(Declined, "expert"), ev(Ended, "glasses")]);
        assert_eq!(log.call_status, CallStatus::Ended);
    }

    async fn broker_may_end_the_call_it_made(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let BrokerParties { connector, glasses, expert } = app.broker_parties().await;
        let mut req = call_request(CallType::Sfu, &[&expert]);
        req.creator_user = Some(glasses.id());
        let log = connector.rtc().create_call_for_contacts(&req).await.unwrap();
        expert.rtc().join_call(log.call_id).await.unwrap();
        let log = connector.rtc().end_call(log.call_id).await.unwrap();
        assert_eq!(events(&log)[3..], [ev(Leave, "expert"), ev(Ended, "glasses")]);
    }

    async fn non_broker_naming_another_creator_gets_403_and_nothing_is_written(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let glasses = app.user("glasses", &[Role::User]).await;
        let expert = app.user("expert", &[Role::User]).await;
        let mut req = call_request(CallType::Sfu, &[&expert]);
        req.creator_user = Some(glasses.id());
        let err = alice.rtc().create_call_for_contacts(&req).await.unwrap_err();
        assert_eq!(err.status(), Some(403));
        for u in [&alice, &glasses, &expert] {
            assert_eq!(u.rtc().get_call_logs(&Default::default()).await.unwrap().total_elements, 0);
        }
        // Naming oneself is an ordinary call.
        req.creator_user = Some(alice.id());
        let log = alice.rtc().create_call_for_contacts(&req).await.unwrap();
        assert_eq!(events(&log), vec![ev(Created, "alice"), ev(Join, "alice")]);
    }
}
