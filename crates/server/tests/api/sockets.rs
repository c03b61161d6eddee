//! The WebSocket with real sockets: pop-ups on every device, ringing stopped for
//! each reason, the broker flow, planned calls, resume, signaling, bad frames.

use std::time::Duration;

use callhub_client::{Client, Frame, Notifications};
use callhub_core::rules::StopReason;
use callhub_core::{CallStatus, CallType, EventType, Notification, Role};
use callhub_server::hub::Owner;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

use crate::helpers::*;

/// A connected stream of a new device (its own login) of `user`.
pub(crate) async fn device(app: &TestApp, user: &TestUser) -> Notifications {
    let c = Client::new(&app.url);
    c.login(&user.info.user_id, PASSWORD, Some(&user.info.domain))
        .await
        .unwrap();
    let mut n = c.notifications();
    match tokio::time::timeout(Duration::from_secs(5), n.recv()).await {
        Ok(Some(Frame::Hello { .. })) => n,
        other => panic!("expected hello, got {other:?}"),
    }
}

/// Waits for the first notification that `pick` accepts.
pub(crate) async fn expect<T>(
    n: &mut Notifications,
    secs: u64,
    mut pick: impl FnMut(&Notification) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, n.next_notification()).await {
            Ok(Some((_, note))) => {
                if let Some(t) = pick(&note) {
                    return t;
                }
            }
            _ => panic!("no such notification within {secs}s"),
        }
    }
}

pub(crate) fn incoming(call_id: Uuid) -> impl FnMut(&Notification) -> Option<()> {
    move |n| {
        matches!(n, Notification::IncomingCall { call, .. } if call.call_id == call_id)
            .then_some(())
    }
}

fn stopped(call_id: Uuid) -> impl FnMut(&Notification) -> Option<StopReason> {
    move |n| match n {
        Notification::RingingStopped { call_id: c, reason } if *c == call_id => Some(*reason),
        _ => None,
    }
}

fn event(call_id: Uuid, kind: EventType) -> impl FnMut(&Notification) -> Option<CallStatus> {
    move |n| match n {
        Notification::CallEvent {
            call_id: c,
            event,
            call_status,
        } if *c == call_id && event.kind == kind => Some(*call_status),
        _ => None,
    }
}

/// Asserts that no notification `pick` accepts arrives for `ms`.
pub(crate) async fn never<T>(
    n: &mut Notifications,
    ms: u64,
    mut pick: impl FnMut(&Notification) -> Option<T>,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    while let Ok(Some((_, note))) = tokio::time::timeout_at(deadline, n.next_notification()).await {
        assert!(pick(&note).is_none(), "unexpected {note:?}");
    }
}

/// A WebSocket opened by hand, for frames the SDK would not send.
pub(crate) type RawWs =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn raw_socket(app: &TestApp, token: &str) -> RawWs {
    raw_socket_at(&app.url, token).await
}

/// A socket to the node at `url`, past its `hello`.
pub(crate) async fn raw_socket_at(url: &str, token: &str) -> RawWs {
    let url = format!("{}/ws?access_token={token}", url.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
    ws
}

/// The code of the close frame the server sends next (other frames are skipped).
pub(crate) async fn close_code(ws: &mut RawWs) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(WsMessage::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// The next text frame but `presence` ones (anyone of the domain may cause those;
/// the directory tests read them).
pub(crate) async fn next_text(ws: &mut RawWs) -> serde_json::Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(WsMessage::Text(t))) => {
                let frame: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if frame["type"] != "presence" {
                    return frame;
                }
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

async fn count(conn: &mut sqlx::AnyConnection, table: &str) -> i64 {
    let sql = format!("SELECT CAST(count(*) AS BIGINT) FROM {table}");
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(conn)
        .await
        .unwrap()
}

backend_tests! {
    async fn the_store_names_the_users_with_messages_written_since_a_time(backend: Backend) {
        // What a node that missed the bus asks, to know whose sockets must read the store.
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let carol = app.user("carol", &[Role::User]).await;
        let before = chrono::Utc::now() - chrono::Duration::seconds(1);
        alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        let store = &app.server.app.store;
        let users = store.users_with_messages_since(before).await.unwrap();
        assert!(users.contains(&bob.id()), "{users:?}");
        assert!(!users.contains(&carol.id()), "{users:?}");
        let later = chrono::Utc::now() + chrono::Duration::seconds(5);
        assert!(store.users_with_messages_since(later).await.unwrap().is_empty());
    }

    async fn each_distinct_message_body_is_stored_once_and_pruned_with_its_messages(backend: Backend) {
        // Three callees get the same pop-up and every member the same events: the
        // store keeps each distinct text once, and the seqs per user apart.
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let carol = app.user("carol", &[Role::User]).await;
        let dave = app.user("dave", &[Role::User]).await;
        for _ in 0..2 {
            let req = call_request(CallType::Sfu, &[&bob, &carol, &dave]);
            alice.rtc().create_call_for_contacts(&req).await.unwrap();
        }
        let store = &app.server.app.store;
        let mut messages = 0;
        let mut distinct = std::collections::BTreeSet::new();
        let mut pop_ups = Vec::new();
        for user in [&alice, &bob, &carol, &dave] {
            let stored = store.messages_since(user.id(), 0, 100).await.unwrap();
            for (i, m) in stored.iter().enumerate() {
                assert_eq!(m.seq, i as i64 + 1, "{}'s messages are numbered 1, 2, 3, …", user.info.user_id);
                let head = format!("{{\"seq\":{},", m.seq);
                let rest = m.body.strip_prefix(&head).unwrap_or_else(|| panic!("{} starts with {head}", m.body));
                if rest.contains("\"type\":\"incomingCall\"") {
                    pop_ups.push(rest.to_owned());
                }
                distinct.insert(rest.to_owned());
            }
            messages += stored.len() as i64;
        }
        assert_eq!(pop_ups.len(), 6, "two pop-ups for each callee: {pop_ups:?}");
        assert_eq!(pop_ups[0], pop_ups[2], "bob's and carol's pop-up of one call alike");
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.db.url).await.unwrap();
        assert_eq!(count(&mut conn, "user_messages").await, messages);
        assert_eq!(
            count(&mut conn, "message_bodies").await,
            distinct.len() as i64,
            "each distinct body once ({messages} messages)"
        );
        assert!((distinct.len() as i64) < messages / 2, "{} bodies for {messages} messages", distinct.len());
        // Pruning by age takes the bodies with their messages.
        assert_eq!(store.prune_messages(chrono::Utc::now() - chrono::Duration::seconds(60)).await.unwrap(), 0);
        assert_eq!(count(&mut conn, "message_bodies").await, distinct.len() as i64);
        let pruned = store.prune_messages(chrono::Utc::now() + chrono::Duration::seconds(1)).await.unwrap();
        assert_eq!(pruned, messages as u64);
        assert_eq!(count(&mut conn, "message_bodies").await, 0);
        assert!(store.messages_since(bob.id(), 0, 100).await.unwrap().is_empty());
    }

    async fn messages_stored_before_bodies_were_shared_survive_the_migration(backend: Backend) {
        // A database of migration 5 held each message's whole text in its row;
        // migration 6 moves the texts out, each message keeping its own.
        use callhub_store::Store as _;
        let db = TestDb::new(backend).await;
        callhub_store::SqlStore::migrate_until(&db.url, 5).await.unwrap();
        let old = [
            (7, 1, r#"{"seq":1,"type":"incomingCall","callId":"a"}"#),
            (7, 2, r#"{"seq":2,"type":"callEvent"}"#),
            (7, 10, r#"{"seq":10}"#),
            (8, 1, r#"{"seq":1,"type":"callEvent"}"#),
        ];
        {
            sqlx::any::install_default_drivers();
            let url = if backend == Backend::Sqlite { format!("{}?mode=rw", db.url) } else { db.url.clone() };
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url).await.unwrap();
            for (user, seq, body) in old {
                sqlx::query("INSERT INTO user_messages (user_db_id, seq, body, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(user)
                    .bind(seq as i64)
                    .bind(body)
                    .bind(1_000_i64 * seq as i64)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
        }
        let store = callhub_store::SqlStore::connect(
            &db.url,
            &callhub_store::PoolSettings::default(),
            chrono::Duration::seconds(30),
        )
        .await
        .unwrap();
        for user in [7, 8] {
            let kept: Vec<(i64, String)> = store
                .messages_since(user, 0, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|m| (m.seq, m.body))
                .collect();
            let want: Vec<(i64, String)> = old
                .iter()
                .filter(|(u, _, _)| *u == user)
                .map(|(_, seq, body)| (*seq as i64, body.to_string()))
                .collect();
            assert_eq!(kept, want, "user {user}'s messages after the migration");
        }
        assert_eq!(store.messages_since(7, 1, 100).await.unwrap().len(), 2, "resume after seq 1");
        // The next body written gets an id of its own (PostgreSQL's sequence moved on).
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        let id: i64 = sqlx::query_scalar("INSERT INTO message_bodies (rest, created_at) VALUES ('}', 0) RETURNING id")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(id, 5, "after the four moved bodies");
    }

    async fn pop_up_reaches_every_device_and_answering_on_one_stops_the_others(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let mut phone = device(&app, &bob).await;
        let mut glasses = device(&app, &bob).await;
        let mut caller = device(&app, &alice).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        expect(&mut phone, 5, incoming(call.call_id)).await;
        expect(&mut glasses, 5, incoming(call.call_id)).await;
        bob.rtc().join_call(call.call_id).await.unwrap();
        assert_eq!(expect(&mut phone, 5, stopped(call.call_id)).await, StopReason::AnsweredElsewhere);
        assert_eq!(expect(&mut glasses, 5, stopped(call.call_id)).await, StopReason::AnsweredElsewhere);
        // The caller follows every event of the call.
        assert_eq!(expect(&mut caller, 5, event(call.call_id, EventType::Created)).await, CallStatus::Started);
        expect(&mut caller, 5, event(call.call_id, EventType::Join)).await;
    }

    async fn declining_on_one_device_stops_the_others(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let carol = app.user("carol", &[Role::User]).await;
        let (mut d1, mut d2) = (device(&app, &bob).await, device(&app, &bob).await);
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob, &carol])).await.unwrap();
        expect(&mut d1, 5, incoming(call.call_id)).await;
        bob.rtc().decline_call(call.call_id).await.unwrap();
        assert_eq!(expect(&mut d1, 5, stopped(call.call_id)).await, StopReason::DeclinedElsewhere);
        assert_eq!(expect(&mut d2, 5, stopped(call.call_id)).await, StopReason::DeclinedElsewhere);
    }

    async fn caller_leaving_before_an_answer_cancels_the_ringing(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let (mut d1, mut d2) = (device(&app, &bob).await, device(&app, &bob).await);
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        expect(&mut d1, 5, incoming(call.call_id)).await;
        alice.rtc().leave_call(call.call_id).await.unwrap();
        assert_eq!(expect(&mut d1, 5, stopped(call.call_id)).await, StopReason::Cancelled);
        assert_eq!(expect(&mut d2, 5, stopped(call.call_id)).await, StopReason::Cancelled);
    }

    async fn ring_timeout_stops_the_ringing_as_missed(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.ring_timeout = Duration::from_secs(1)).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let (mut d1, mut d2) = (device(&app, &bob).await, device(&app, &bob).await);
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        assert_eq!(expect(&mut d1, 5, stopped(call.call_id)).await, StopReason::Missed);
        assert_eq!(expect(&mut d2, 5, stopped(call.call_id)).await, StopReason::Missed);
        assert_eq!(expect(&mut d1, 5, event(call.call_id, EventType::Ended)).await, CallStatus::Ended);
    }

    async fn ending_an_answered_call_stops_the_others_ringing_as_ended(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let carol = app.user("carol", &[Role::User]).await;
        let mut c1 = device(&app, &carol).await;
        let mut c2 = device(&app, &carol).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob, &carol])).await.unwrap();
        bob.rtc().join_call(call.call_id).await.unwrap();
        alice.rtc().end_call(call.call_id).await.unwrap();
        assert_eq!(expect(&mut c1, 5, stopped(call.call_id)).await, StopReason::Ended);
        assert_eq!(expect(&mut c2, 5, stopped(call.call_id)).await, StopReason::Ended);
    }

    async fn glasses_ring_only_after_the_expert_answers_and_never_after_a_decline(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let BrokerParties { connector, glasses, expert } = app.broker_parties().await;
        let mut g = device(&app, &glasses).await;
        let mut e = device(&app, &expert).await;
        let req = broker_request(&glasses, &expert, &connector);
        // Declined: the glasses hear the call end, and never ring.
        let declined = connector.rtc().create_call_for_contacts(&req).await.unwrap();
        expect(&mut e, 5, incoming(declined.call_id)).await;
        expert.rtc().decline_call(declined.call_id).await.unwrap();
        let mut rang = false;
        expect(&mut g, 5, |n| {
            rang |= matches!(n, Notification::IncomingCall { .. });
            event(declined.call_id, EventType::Ended)(n)
        })
        .await;
        assert!(!rang, "the glasses rang for a declined call");
        // Answered: the glasses ring after, not before.
        let answered = connector.rtc().create_call_for_contacts(&req).await.unwrap();
        expect(&mut e, 5, incoming(answered.call_id)).await;
        never(&mut g, 300, incoming(answered.call_id)).await;
        expert.rtc().join_call(answered.call_id).await.unwrap();
        expect(&mut g, 5, incoming(answered.call_id)).await;
    }

    async fn planned_call_rings_at_its_time_and_not_before(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let mut d = device(&app, &bob).await;
        let at = chrono::Utc::now() + chrono::Duration::seconds(2);
        let mut req = call_request(CallType::Sfu, &[&bob]);
        req.planned_date_time = Some(at.to_rfc3339());
        let call = alice.rtc().create_call_for_contacts(&req).await.unwrap();
        never(&mut d, 1200, incoming(call.call_id)).await;
        expect(&mut d, 5, incoming(call.call_id)).await;
        assert!(chrono::Utc::now() >= at, "rang before its time");
    }

    async fn resume_after_200_missed_messages_replays_them_all_in_order(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let seen = {
            let c = Client::new(&app.url);
            c.login("bob", PASSWORD, Some("ubimax")).await.unwrap();
            let mut n = c.notifications();
            match n.recv().await { Some(Frame::Hello { seq, .. }) => seq, other => panic!("{other:?}") }
        }; // the device goes offline
        for _ in 0..70 {
            alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        }
        // Each call: the pop-up, Created and the caller's Join: 210 messages missed.
        let raw_token = bob.token().await;
        let mut ws = raw_socket(&app, &raw_token).await;
        ws.send(WsMessage::Text(format!(r#"{{"type":"resume","since":{seen}}}"#).into())).await.unwrap();
        for i in 1..=210 {
            let f = next_text(&mut ws).await;
            assert_eq!(f["seq"], seen + i, "message {i} in order");
        }
        // And then live, without a gap or a repeat at the seam.
        alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        let f = next_text(&mut ws).await;
        assert_eq!(f["seq"], seen + 211);
        assert_eq!(f["type"], "incomingCall");
    }

    async fn a_new_call_s_live_messages_are_byte_for_byte_the_ones_kept_for_resume(backend: Backend) {
        // On PostgreSQL a new call's messages are numbered and written by SQL and
        // sent from what Rust made of the same numbers: the two must agree.
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let mut ws = raw_socket(&app, &bob.token().await).await;
        for _ in 0..2 {
            let req = call_request(CallType::Mesh, &[&bob]);
            alice.rtc().create_call_for_contacts(&req).await.unwrap();
        }
        let stored = app.server.app.store.messages_since(bob.id(), 0, 100).await.unwrap();
        assert!(stored.len() >= 4, "two pop-ups and their events: {stored:?}");
        for (i, m) in stored.iter().enumerate() {
            assert_eq!(m.seq, i as i64 + 1, "stored messages are numbered 1, 2, 3, …");
            let live = loop {
                match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a frame in time") {
                    Some(Ok(WsMessage::Text(t))) if !t.as_str().contains("\"type\":\"presence\"") => {
                        break t.as_str().to_owned();
                    }
                    Some(Ok(_)) => continue,
                    other => panic!("expected a text frame, got {other:?}"),
                }
            };
            assert_eq!(live, m.body, "message {} as sent and as stored", m.seq);
            let parsed: serde_json::Value = serde_json::from_str(&live).unwrap();
            assert_eq!(parsed["seq"], m.seq);
        }
    }

    async fn a_burst_of_live_messages_arrives_complete_and_in_seq_order(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let bob = app.user("bob", &[Role::User]).await;
        let mut ws = raw_socket(&app, &bob.token().await).await;
        // More than one write batch and many times the write buffer, under the
        // queue's depth; none is in the store, so a lost one cannot be read back.
        let messages: Vec<callhub_store::Message> = (1..=200)
            .map(|seq| callhub_store::Message {
                user: bob.id(),
                seq,
                body: serde_json::json!({"type": "burst", "seq": seq, "pad": "x".repeat(seq as usize * 37 % 5000)})
                    .to_string(),
            })
            .collect();
        let hub = &app.server.app.hub;
        assert_eq!(hub.deliver(&messages), 200);
        hub.send_transient(&Owner::User(bob.id()), r#"{"type":"after"}"#);
        for seq in 1..=200 {
            assert_eq!(next_text(&mut ws).await["seq"], seq, "message {seq} in order");
        }
        assert_eq!(next_text(&mut ws).await["type"], "after");
    }

    async fn messages_published_out_of_order_reach_the_socket_in_order_without_a_store_read(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let bob = app.user("bob", &[Role::User]).await;
        let mut ws = raw_socket(&app, &bob.token().await).await;
        let msg = |seq: i64| callhub_store::Message {
            user: bob.id(),
            seq,
            body: serde_json::json!({"type": "burst", "seq": seq}).to_string(),
        };
        let hub = &app.server.app.hub;
        // Requests committed together publish each from its own task: here the
        // later ones first. None is in the store, so a read of it would find nothing.
        hub.deliver(&[msg(3), msg(4)]);
        hub.deliver(&[msg(1)]);
        hub.deliver(&[msg(2)]);
        for seq in 1..=4 {
            assert_eq!(next_text(&mut ws).await["seq"], seq, "message {seq} in order");
        }
        assert_eq!(metric(&app.url, "callhub_gaps_filled_total").await, 0.0, "no store read");
        // One whose predecessor never comes goes out after the wait, behind whatever
        // the store has (nothing here).
        let asked = std::time::Instant::now();
        hub.deliver(&[msg(6)]);
        assert_eq!(next_text(&mut ws).await["seq"], 6);
        assert!(asked.elapsed() >= Duration::from_millis(40), "it waited for 5: {:?}", asked.elapsed());
        hub.deliver(&[msg(7)]);
        assert_eq!(next_text(&mut ws).await["seq"], 7, "and the socket goes on from it");
    }

    async fn signaling_is_relayed_between_joined_participants_only(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let carol = app.user("carol", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        let mut a = raw_socket(&app, &alice.token().await).await;
        let mut b = raw_socket(&app, &bob.token().await).await;
        let mut c = raw_socket(&app, &carol.token().await).await;
        let offer = |to: i64| format!(r#"{{"type":"signal","callId":"{}","to":{to},"payload":{{"sdp":"v=0"}}}}"#, call.call_id);
        // Bob has not joined yet: nobody may signal him, and he may signal nobody.
        a.send(WsMessage::Text(offer(2).into())).await.unwrap();
        assert!(next_text(&mut a).await["detail"].as_str().unwrap().contains("not in this call"));
        b.send(WsMessage::Text(offer(1).into())).await.unwrap();
        let refused = loop {
            let f = next_text(&mut b).await;
            if f["type"] == "error" { break f; }
        };
        assert!(refused["detail"].as_str().unwrap().contains("not joined"));
        bob.rtc().join_call(call.call_id).await.unwrap();
        a.send(WsMessage::Text(offer(2).into())).await.unwrap();
        let got = loop {
            let f = next_text(&mut b).await;
            if f["type"] == "signal" { break f; }
        };
        assert_eq!(got["from"], 1);
        assert_eq!(got["payload"]["sdp"], "v=0");
        assert_eq!(got["callId"], call.call_id.to_string());
        assert!(got.get("seq").is_none(), "signaling is not sequenced");
        // Carol is no participant.
        c.send(WsMessage::Text(offer(1).into())).await.unwrap();
        assert!(next_text(&mut c).await["detail"].as_str().unwrap().contains("no such call"));
    }

    async fn bad_frames_get_errors_and_a_flood_is_closed_with_1008(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let mut ws = raw_socket(&app, &alice.token().await).await;
        for (frame, needle) in [
            (WsMessage::Text("{not json".into()), "bad frame"),
            (WsMessage::Text(r#"{"type":"dance"}"#.into()), "unknown variant"),
            (WsMessage::Text(r#"{"type":"resume","since":"x"}"#.into()), "bad frame"),
            (WsMessage::Text(format!(r#"{{"type":"ping","pad":"{}"}}"#, "x".repeat(70 * 1024)).into()), "64 KiB"),
            (WsMessage::Text(format!(r#"{{"type":"sfu","callId":"{}","payload":{{"pad":"{}"}}}}"#, Uuid::new_v4(), "x".repeat(600 * 1024)).into()), "512 KiB"),
            (WsMessage::Binary(vec![1, 2, 3].into()), "binary"),
        ] {
            ws.send(frame).await.unwrap();
            let f = next_text(&mut ws).await;
            assert_eq!(f["type"], "error");
            assert!(f["detail"].as_str().unwrap().contains(needle), "{f}");
        }
        ws.send(WsMessage::Text(r#"{"type":"ping"}"#.into())).await.unwrap();
        assert_eq!(next_text(&mut ws).await["type"], "pong", "the socket stays open");
        for _ in 0..20 {
            if ws.send(WsMessage::Text("garbage".into())).await.is_err() { break; }
        }
        let closed = close_code(&mut ws).await;
        assert_eq!(closed, 1008);
    }

    async fn sockets_need_a_live_session_and_close_when_it_is_revoked(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let ws_url = app.url.replacen("http", "ws", 1);
        for url in [format!("{ws_url}/ws"), format!("{ws_url}/ws?access_token=forged")] {
            let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
            assert!(err.to_string().contains("401"), "{err}");
        }
        let token = alice.token().await;
        // Authorization: Bearer works as well as the query parameter.
        let mut req = format!("{ws_url}/ws").into_client_request().unwrap();
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        let (mut by_header, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert!(by_header.next().await.unwrap().unwrap().to_text().unwrap().contains("hello"));
        let mut ws = raw_socket(&app, &token).await;
        alice.client.logout().await.unwrap();
        let code = close_code(&mut ws).await;
        assert_eq!(code, 1008);
        let err = tokio_tungstenite::connect_async(format!("{ws_url}/ws?access_token={token}")).await.unwrap_err();
        assert!(err.to_string().contains("401"), "a revoked session cannot open a socket: {err}");
    }

    async fn a_dropped_participant_leaves_after_the_grace_period_unless_back(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.rejoin_grace = Duration::from_secs(1)).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        bob.rtc().join_call(call.call_id).await.unwrap();
        // Bob's socket drops and comes back within the grace: nothing happens.
        let flaky = raw_socket(&app, &bob.token().await).await;
        drop(flaky);
        let back = raw_socket(&app, &bob.token().await).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(alice.rtc().get_call_log_by_id(call.call_id).await.unwrap().call_events.len(), 3);
        // Now it drops for good: Bob leaves.
        drop(back);
        eventually(10, || async {
            let log = alice.rtc().get_call_log_by_id(call.call_id).await.unwrap();
            events(&log).last() == Some(&ev(EventType::Leave, "bob"))
        })
        .await;
    }

    async fn a_silent_peer_is_closed_by_the_keepalive(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.ws_ping_interval = Duration::from_millis(300)).await;
        let alice = app.user("alice", &[Role::User]).await;
        let mut ws = raw_socket(&app, &alice.token().await).await;
        // Not reading means not answering pings.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break true,
                Some(Ok(_)) => continue,
            }
        };
        assert!(closed);
    }

    async fn socket_errors_are_problems_and_authentication_comes_first(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        app.raw("GET", "/ws?since=abc", None, None).await.assert_problem(401, "access");
        app.raw("GET", "/ws?since=abc&access_token=forged", None, None).await.assert_problem(401, "invalid");
        let token = alice.token().await;
        app.raw("GET", &format!("/ws?since=abc&access_token={token}"), None, None).await.assert_problem(400, "since");
        app.raw("GET", "/ws?since=5", Some(&token), None).await.assert_problem(400, "WebSocket");
    }

    async fn a_message_over_1_mib_closes_the_socket_with_1009(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let mut ws = raw_socket(&app, &alice.token().await).await;
        let _ = ws.send(WsMessage::Text("x".repeat(2 * 1024 * 1024).into())).await;
        let code = close_code(&mut ws).await;
        assert_eq!(code, 1009);
    }

    async fn join_answers_the_callers_own_contact_id(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        let joined = bob.rtc().join_call(call.call_id).await.unwrap();
        let mine = joined.call_log.invited_contacts.iter().find(|c| c.user_db_id == Some(bob.id())).unwrap();
        assert_eq!(joined.media.contact_id, mine.id);
        assert_eq!(joined.media.call_type, CallType::Mesh);
        assert!(joined.media.signaling_url.ends_with("/ws"));
    }
}
