//! Many writers on one call at once: event ids and per-user message sequences
//! keep growing, nobody joins twice, nothing deadlocks.

use callhub_client::api::ContactInput;
use callhub_core::EventType::*;
use callhub_core::{CallType, Role};

use crate::helpers::*;

backend_tests! {
    async fn twenty_invitees_answering_at_once_each_join_once_in_order(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let host = app.user("host", &[Role::User]).await;
        let mut guests = Vec::new();
        for i in 0..20 {
            guests.push(app.user(&format!("expert{i}"), &[Role::User]).await);
        }
        let mut req = call_request(CallType::Sfu, &[]);
        req.invited_contacts = guests.iter().map(|g| g.contact()).collect::<Vec<ContactInput>>();
        let call = host.rtc().create_call_for_contacts(&req).await.unwrap();
        // Every guest answers at the same moment, twice (two devices).
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(40));
        let mut tasks = Vec::new();
        for g in &guests {
            for _ in 0..2 {
                let rtc = g.rtc();
                let start = start.clone();
                tasks.push(tokio::spawn(async move {
                    start.wait().await;
                    rtc.join_call(call.call_id).await.map(|_| ())
                }));
            }
        }
        for t in tasks {
            t.await.unwrap().expect("every answer succeeds");
        }
        let log = host.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        let joins: Vec<String> = events(&log).into_iter().filter(|(k, _)| *k == Join).map(|(_, u)| u).collect();
        assert_eq!(joins.len(), 21, "the host and each expert joined exactly once");
        let mut unique = joins.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 21);
        let ids: Vec<i64> = log.call_events.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "event ids grow: {ids:?}");
        let times: Vec<_> = log.call_events.iter().map(|e| e.timestamp).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "events are in time order");
        // Every member's messages are numbered 1, 2, 3, … without gaps or repeats.
        for u in std::iter::once(&host).chain(&guests) {
            let msgs = app.server.app.store.messages_since(u.id(), 0, 10_000).await.unwrap();
            let seqs: Vec<i64> = msgs.iter().map(|m| m.seq).collect();
            assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "seq of {}", u.info.user_id);
            assert_eq!(app.server.app.store.last_seq(u.id()).await.unwrap(), seqs.len() as i64);
            // Each expert hears of the call (pop-up) and of all 22 events.
            assert!(seqs.len() >= 22, "{} has {} messages", u.info.user_id, seqs.len());
        }
    }

    async fn concurrent_calls_to_the_same_people_keep_their_sequences(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let mut callers = Vec::new();
        for i in 0..8 {
            callers.push(app.user(&format!("caller{i}"), &[Role::User]).await);
        }
        let a = app.user("expert_a", &[Role::User]).await;
        let b = app.user("expert_b", &[Role::User]).await;
        let mut tasks = Vec::new();
        for (i, c) in callers.iter().enumerate() {
            // Half name the experts a, b and half b, a: their counters are still taken in one order.
            let invited = if i % 2 == 0 { [&a, &b] } else { [&b, &a] };
            let mut req = call_request(CallType::Sfu, &invited);
            req.call_title = format!("call {i}");
            let rtc = c.rtc();
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    rtc.create_call_for_contacts(&req).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for u in [&a, &b] {
            let msgs = app.server.app.store.messages_since(u.id(), 0, 10_000).await.unwrap();
            // 40 calls: each a pop-up and two events (Created, Join of the caller).
            assert_eq!(msgs.len(), 40 * 3);
            assert!(msgs.iter().enumerate().all(|(i, m)| m.seq == i as i64 + 1));
            let body: serde_json::Value = serde_json::from_str(&msgs[0].body).unwrap();
            assert_eq!(body["seq"], 1);
            assert_eq!(body["type"], "incomingCall");
        }
    }
}
