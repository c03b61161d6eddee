//! Several nodes on one PostgreSQL database and one NATS behave as one: pop-ups,
//! signaling, presence and logouts cross nodes, ring timeouts fire once, and a NATS
//! restart loses no sequenced message. PostgreSQL only (SQLite is one node). The
//! nodes are separate `Server`s in this process, each with its own NATS connection,
//! hub and workers; they share the local NATS (`CALLHUB_TEST_NATS_URL`, default
//! 127.0.0.1:4222) under a subject prefix of their own, or a `nats-server` process
//! the test starts itself.
#![cfg(postgres_tests)]

use std::time::Duration;

use callhub_client::{Client, Notifications};
use callhub_core::rules::StopReason;
use callhub_core::text::{DisplayName, Domain, Email, UserId};
use callhub_core::{CallType, EventType, Notification, Presence, Role};
use callhub_server::auth::hash_password;
use callhub_server::{Config, Server};
use callhub_store::NewUser;
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

use crate::helpers::*;
use crate::sockets::{RawWs, expect, incoming, never, raw_socket_at};

fn local_nats() -> String {
    std::env::var("CALLHUB_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// Nodes sharing one database and one NATS.
struct Cluster {
    nodes: Vec<Server>,
    _db: TestDb,
}

impl Cluster {
    async fn start(n: usize, nats: &str, tune: impl Fn(&mut Config)) -> Cluster {
        init_log();
        let db = TestDb::new(Backend::Postgres).await;
        // A prefix of its own: tests running at once share the local NATS.
        let prefix = format!("test{}", Uuid::new_v4().simple());
        let mut nodes = Vec::new();
        for _ in 0..n {
            let mut cfg = test_config(&db);
            cfg.nats_url = Some(nats.to_owned());
            cfg.nats_prefix = prefix.clone();
            tune(&mut cfg);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            cfg.public_url = format!("http://{}", listener.local_addr().unwrap());
            // One after the other: the first makes the JWT secret the others read.
            nodes.push(Server::start(cfg, listener).await.expect("node starts"));
        }
        let cluster = Cluster { nodes, _db: db };
        for i in 0..n {
            cluster.wait_connected(i).await;
        }
        cluster
    }

    fn url(&self, node: usize) -> String {
        self.nodes[node].url()
    }

    async fn wait_connected(&self, node: usize) {
        wait_connected(&self.url(node)).await;
    }

    /// Makes an account and logs it in on `node`.
    async fn user(&self, node: usize, user_id: &str) -> TestUser {
        let info = self.nodes[0]
            .app
            .store
            .create_user(NewUser {
                domain: Domain::parse("domain", "ubimax").unwrap(),
                user_id: UserId::parse("userId", user_id).unwrap(),
                display_name: DisplayName::parse("displayName", &user_id.to_uppercase()).unwrap(),
                email: Some(Email::parse("email", &format!("{user_id}@example.org")).unwrap()),
                phone_number: None,
                roles: vec![Role::User],
                password_hash: hash_password(PASSWORD.into()).await.unwrap(),
            })
            .await
            .unwrap();
        TestUser {
            client: self.login(node, user_id).await,
            info,
        }
    }

    /// Another device of `user_id`, logged in on `node`.
    async fn login(&self, node: usize, user_id: &str) -> Client {
        let client = Client::new(&self.url(node));
        client
            .login(user_id, PASSWORD, Some("ubimax"))
            .await
            .unwrap();
        client
    }

    /// A notification stream of a new device of `user` on `node`.
    async fn device(&self, node: usize, user: &TestUser) -> Notifications {
        let mut n = self.login(node, &user.info.user_id).await.notifications();
        match tokio::time::timeout(Duration::from_secs(5), n.recv()).await {
            Ok(Some(callhub_client::Frame::Hello { .. })) => n,
            other => panic!("expected hello, got {other:?}"),
        }
    }

    async fn metric(&self, node: usize, name: &str) -> f64 {
        metric(&self.url(node), name).await
    }
}

/// Waits (up to 10 s) until the node at `url` says NATS is connected.
async fn wait_connected(url: &str) {
    eventually(
        10,
        || async move { health(url).await["nats"] == "connected" },
    )
    .await;
}

async fn health(url: &str) -> serde_json::Value {
    reqwest::get(format!("{url}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The next presence frame about `user`, skipping others, within 5 s.
async fn presence_of(ws: &mut RawWs, user: i64) -> String {
    loop {
        let f = next_of(ws, &["presence"], 5).await;
        if f["userDbId"] == user {
            return f["presence"].as_str().unwrap().to_owned();
        }
    }
}

/// The next text frame of a type in `types`, skipping others, within `secs`.
async fn next_of(ws: &mut RawWs, types: &[&str], secs: u64) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if types.iter().any(|ty| v["type"] == *ty) {
                    return v;
                }
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no frame of {types:?} within {secs}s: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop_up_made_on_one_node_rings_the_callee_on_another() {
    let c = Cluster::start(3, &local_nats(), |_| {}).await;
    let alice = c.user(0, "alice").await;
    let bob = c.user(1, "bob").await;
    let mut on_b = c.device(1, &bob).await;
    let mut on_c = c.device(2, &bob).await;
    let call = alice
        .rtc()
        .create_call_for_contacts(&call_request(CallType::Mesh, &[&bob]))
        .await
        .unwrap();
    expect(&mut on_b, 5, incoming(call.call_id)).await;
    expect(&mut on_c, 5, incoming(call.call_id)).await;
    // Answering on the third node stops the ringing on the second.
    let bob_on_c = TestUser {
        client: c.login(2, "bob").await,
        info: bob.info.clone(),
    };
    bob_on_c.rtc().join_call(call.call_id).await.unwrap();
    let reason = expect(&mut on_b, 5, |n| match n {
        Notification::RingingStopped { call_id, reason } if *call_id == call.call_id => {
            Some(*reason)
        }
        _ => None,
    })
    .await;
    assert_eq!(reason, StopReason::AnsweredElsewhere);
    assert!(c.metric(0, "callhub_bus_published_total").await >= 1.0);
    assert!(c.metric(1, "callhub_bus_received_total").await >= 1.0);
    assert!(c.metric(1, "callhub_bus_forwarded_frames_total").await >= 1.0);
    assert_eq!(health(&c.url(1)).await["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_crosses_nodes_between_joined_participants() {
    let c = Cluster::start(3, &local_nats(), |_| {}).await;
    let alice = c.user(0, "alice").await;
    let bob = c.user(2, "bob").await;
    let call = alice
        .rtc()
        .create_call_for_contacts(&call_request(CallType::Mesh, &[&bob]))
        .await
        .unwrap();
    let joined = bob.rtc().join_call(call.call_id).await.unwrap();
    let mut a = raw_socket_at(&c.url(0), &alice.token().await).await;
    let mut b = raw_socket_at(&c.url(1), &bob.token().await).await;
    let offer = format!(
        r#"{{"type":"signal","callId":"{}","to":{},"payload":{{"sdp":{{"type":"offer","sdp":"v=0"}}}}}}"#,
        call.call_id, joined.media.contact_id
    );
    a.send(WsMessage::Text(offer.into())).await.unwrap();
    let got = next_of(&mut b, &["signal"], 5).await;
    assert_eq!(got["from"], 1);
    assert_eq!(got["callId"], call.call_id.to_string());
    assert_eq!(got["payload"]["sdp"]["sdp"], "v=0");
    // And back, node B to node A.
    let answer = format!(
        r#"{{"type":"signal","callId":"{}","to":1,"payload":{{"candidate":null}}}}"#,
        call.call_id
    );
    b.send(WsMessage::Text(answer.into())).await.unwrap();
    let back = next_of(&mut a, &["signal"], 5).await;
    assert_eq!(back["from"], joined.media.contact_id);
    assert!(back["payload"]["candidate"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_online_while_a_socket_is_open_on_any_node() {
    let c = Cluster::start(3, &local_nats(), |cfg| {
        cfg.rejoin_grace = Duration::from_secs(1);
    })
    .await;
    let carol = c.user(0, "carol").await;
    let bob = c.user(1, "bob").await;
    let presence_of_bob = || async {
        carol
            .rtc()
            .get_contacts(&callhub_client::api::ContactsQuery {
                q: Some("bob".into()),
                size: None,
            })
            .await
            .unwrap()
            .contacts
            .into_iter()
            .find(|x| x.user_db_id == bob.id())
            .map(|x| x.presence)
            .unwrap()
    };
    assert_eq!(presence_of_bob().await, Presence::Offline);
    let mut watcher = raw_socket_at(&c.url(2), &carol.token().await).await;
    let bobs = raw_socket_at(&c.url(1), &bob.token().await).await;
    // Carol's socket on node C hears of Bob's socket on node B …
    assert_eq!(presence_of(&mut watcher, bob.id()).await, "online");
    // … and the directory on node A shows him online.
    eventually(5, || async { presence_of_bob().await == Presence::Online }).await;
    drop(bobs);
    assert_eq!(presence_of(&mut watcher, bob.id()).await, "offline");
    eventually(5, || async { presence_of_bob().await == Presence::Offline }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_moved_to_another_node_within_the_grace_keeps_its_participant_in() {
    let c = Cluster::start(2, &local_nats(), |cfg| {
        cfg.rejoin_grace = Duration::from_secs(1);
    })
    .await;
    let alice = c.user(0, "alice").await;
    let bob = c.user(0, "bob").await;
    let call = alice
        .rtc()
        .create_call_for_contacts(&call_request(CallType::Sfu, &[&bob]))
        .await
        .unwrap();
    bob.rtc().join_call(call.call_id).await.unwrap();
    let first = raw_socket_at(&c.url(0), &bob.token().await).await;
    // Bob's network changes: his client comes back on the other node.
    let _second = raw_socket_at(&c.url(1), &bob.token().await).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(first);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = alice.rtc().get_call_log_by_id(call.call_id).await.unwrap();
    let bobs_leaves = events(&log)
        .into_iter()
        .filter(|e| *e == ev(EventType::Leave, "bob"))
        .count();
    assert_eq!(
        bobs_leaves,
        0,
        "node A saw Bob's socket on node B: {:?}",
        events(&log)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_node_closes_the_socket_on_another_at_once() {
    let c = Cluster::start(3, &local_nats(), |_| {}).await;
    let bob = c.user(0, "bob").await;
    let mut ws = raw_socket_at(&c.url(1), &bob.token().await).await;
    let refresh = bob.client.refresh_token().unwrap();
    let res = reqwest::Client::new()
        .post(format!("{}/logout", c.url(2)))
        .json(&serde_json::json!({ "refreshToken": refresh }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    // Well within the 30 s recheck that covered other nodes before the bus.
    let code = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Close(Some(frame)))) => break u16::from(frame.code),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
    .expect("closed within 3 s");
    assert_eq!(code, 1008);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_timeout_fires_once_with_three_nodes_watching() {
    let c = Cluster::start(3, &local_nats(), |cfg| {
        cfg.ring_timeout = Duration::from_secs(1);
    })
    .await;
    let alice = c.user(0, "alice").await;
    let bob = c.user(1, "bob").await;
    let mut devices = Vec::new();
    for node in 0..3 {
        devices.push(c.device(node, &bob).await);
    }
    let call = alice
        .rtc()
        .create_call_for_contacts(&call_request(CallType::Mesh, &[&bob]))
        .await
        .unwrap();
    let missed = |n: &Notification| match n {
        Notification::RingingStopped { call_id, reason } if *call_id == call.call_id => {
            Some(*reason)
        }
        _ => None,
    };
    for d in &mut devices {
        assert_eq!(expect(d, 10, missed).await, StopReason::Missed);
    }
    // Every node's worker has had many ticks past the deadline by now.
    for d in &mut devices {
        never(d, 1500, missed).await;
    }
    let log = alice.rtc().get_call_log_by_id(call.call_id).await.unwrap();
    let misses = log
        .call_events
        .iter()
        .filter(|e| e.kind == EventType::Missed)
        .count();
    assert_eq!(misses, 1, "{:?}", events(&log));
    let mut fired = 0.0;
    for node in 0..3 {
        fired += c.metric(node, "callhub_deadlines_fired_total").await;
    }
    assert_eq!(fired, 1.0, "one node applied the timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_node_closes_its_sockets_with_1001_and_the_others_forget_them() {
    let mut c = Cluster::start(2, &local_nats(), |_| {}).await;
    let carol = c.user(1, "carol").await;
    let bob = c.user(0, "bob").await;
    let mut watcher = raw_socket_at(&c.url(1), &carol.token().await).await;
    let mut bobs = raw_socket_at(&c.url(0), &bob.token().await).await;
    assert_eq!(presence_of(&mut watcher, bob.id()).await, "online");
    let stopping = c.nodes.remove(0);
    let stopped = tokio::spawn(stopping.stop());
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(5), bobs.next())
            .await
            .expect("a close frame in time")
        {
            Some(Ok(WsMessage::Close(Some(frame)))) => break u16::from(frame.code),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(code, 1001, "going away: the client reconnects elsewhere");
    drop(bobs);
    tokio::time::timeout(Duration::from_secs(10), stopped)
        .await
        .expect("the node stops in time")
        .unwrap();
    // Told at once, not after the 15 s a silent node is given.
    let offline = tokio::time::timeout(Duration::from_secs(5), presence_of(&mut watcher, bob.id()))
        .await
        .expect("Bob offline within 5 s");
    assert_eq!(offline, "offline");
}

/// A `nats-server` of the test's own, on a free port, that it stops and starts.
struct NatsProcess {
    port: u16,
    child: Option<std::process::Child>,
}

impl NatsProcess {
    fn start(port: u16) -> NatsProcess {
        let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = std::process::Command::new(bin)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server (Debian package nats-server) runs");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server listens on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsProcess {
            port,
            child: Some(child),
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_stopped_and_started_again_loses_no_message() {
    let mut nats = NatsProcess::start(free_port());
    let c = Cluster::start(2, &nats.url(), |_| {}).await;
    let alice = c.user(0, "alice").await;
    let bob = c.user(1, "bob").await;
    let mut ws = raw_socket_at(&c.url(1), &bob.token().await).await;
    let mut seqs = Vec::new();
    let ring = || async {
        alice
            .rtc()
            .create_call_for_contacts(&call_request(CallType::Sfu, &[&bob]))
            .await
            .unwrap();
    };
    // One call through the bus.
    ring().await;
    let f = next_of(&mut ws, &["incomingCall"], 5).await;
    seqs.push(f["seq"].as_i64().unwrap());

    nats.stop();
    eventually(10, || async {
        health(&c.url(1)).await["nats"] == "unreachable"
    })
    .await;
    for _ in 0..3 {
        ring().await;
    }
    // Node B's socket reads them from the store while the bus is down.
    for _ in 0..3 {
        let f = next_of(&mut ws, &["incomingCall"], 10).await;
        seqs.push(f["seq"].as_i64().unwrap());
    }

    let nats = NatsProcess::start(nats.port);
    c.wait_connected(0).await;
    c.wait_connected(1).await;
    ring().await;
    let f = next_of(&mut ws, &["incomingCall"], 10).await;
    seqs.push(f["seq"].as_i64().unwrap());

    // Every message once, in order: seq only grows, without a hole.
    assert_eq!(seqs.len(), 5);
    for pair in seqs.windows(2) {
        assert!(pair[1] > pair[0], "{seqs:?}");
    }
    let stored = c.nodes[1]
        .app
        .store
        .messages_since(bob.id(), 0, 100)
        .await
        .unwrap();
    let pops: Vec<i64> = stored
        .iter()
        .filter(|m| m.body.contains(r#""type":"incomingCall""#))
        .map(|m| m.seq)
        .collect();
    assert_eq!(pops, seqs, "the socket had every pop-up the store has");
    assert!(c.metric(1, "callhub_gaps_filled_total").await >= 1.0);
    drop(nats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_node_under_load_its_users_resume_on_another_with_every_message() {
    use crate::durability::{add_user_with_role, serve_with};
    let db = TestDb::new(Backend::Postgres).await;
    add_user_with_role(&db, "alice", "user").await;
    let bob = add_user_with_role(&db, "bob", "user").await;
    let bob_id = bob["userDbId"].as_i64().unwrap();
    let env = [
        ("CALLHUB_NATS_URL", local_nats()),
        (
            "CALLHUB_NATS_PREFIX",
            format!("test{}", Uuid::new_v4().simple()),
        ),
    ];
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes = Vec::new();
    for port in ports {
        // One after the other: the first makes the JWT secret the others read.
        nodes.push(serve_with(&db, port, &env).await);
    }
    let url = |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    for i in 0..3 {
        wait_connected(&url(i)).await;
    }
    let alice = Client::new(&url(2));
    alice
        .login("alice", PASSWORD, Some("ubimax"))
        .await
        .unwrap();
    let bob_on_a = Client::new(&url(0));
    bob_on_a
        .login("bob", PASSWORD, Some("ubimax"))
        .await
        .unwrap();
    let mut on_a = bob_on_a.notifications();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), on_a.recv()).await,
        Ok(Some(callhub_client::Frame::Hello { .. }))
    ));
    // Node C rings Bob 40 times while his socket is on node A.
    const CALLS: usize = 40;
    let load = tokio::spawn(async move {
        for _ in 0..CALLS {
            let req = callhub_client::api::CreateCallRequest {
                invited_contacts: vec![callhub_client::api::ContactInput {
                    user_db_id: Some(bob_id),
                    ..Default::default()
                }],
                ..call_request(CallType::Sfu, &[])
            };
            alice.rtc().create_call_for_contacts(&req).await.unwrap();
        }
    });
    let mut seen = Vec::new();
    while seen.len() < 10 {
        let (seq, note) = tokio::time::timeout(Duration::from_secs(10), on_a.next_notification())
            .await
            .expect("pop-ups on node A")
            .unwrap();
        if matches!(note, Notification::IncomingCall { .. }) {
            seen.push(seq);
        }
    }
    nodes[0].start_kill().unwrap();
    nodes[0].wait().await.unwrap();
    drop(on_a);
    // Bob's client comes back on node B with what it had seen.
    let bob_on_b = Client::new(&url(1));
    bob_on_b
        .login("bob", PASSWORD, Some("ubimax"))
        .await
        .unwrap();
    let mut on_b = bob_on_b.notifications_since(seen.last().copied());
    load.await.unwrap();
    while seen.len() < CALLS {
        let (seq, note) = tokio::time::timeout(Duration::from_secs(10), on_b.next_notification())
            .await
            .unwrap_or_else(|_| panic!("only {} of {CALLS} pop-ups: {seen:?}", seen.len()))
            .unwrap();
        if matches!(note, Notification::IncomingCall { .. }) {
            seen.push(seq);
        }
    }
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let stored: Vec<i64> = sqlx::query_scalar(
        "SELECT m.seq FROM user_messages m JOIN message_bodies b ON b.id = m.body_id \
         WHERE m.user_db_id = $1 AND b.rest LIKE '%\"type\":\"incomingCall\"%' ORDER BY m.seq",
    )
    .bind(bob_id)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        seen, stored,
        "every pop-up once, in order, across the crash"
    );
    for mut node in nodes.into_iter().skip(1) {
        let _ = node.start_kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_without_a_word_loses_its_sockets_after_the_expiry_and_grace() {
    let (_db, mut nodes, url, alice, bob, call, bob_id) =
        two_nodes_and_an_sfu_call(1, 0, "1").await;
    let [a, b] = &mut nodes;
    bob.rtc().join_call(call.call_id).await.unwrap();
    let mut watcher = raw_socket_at(&url(1), &alice.access_token().await.unwrap()).await;
    let _bobs = raw_socket_at(&url(0), &bob.access_token().await.unwrap()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.start_kill().unwrap();
    a.wait().await.unwrap();
    // Node B hears nothing more of node A; after NODE_EXPIRY (15 s) and the grace,
    // Bob is gone from the call, and his presence follows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut went = None;
    while went.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Bob still in the call 30 s after his node died"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let log = alice.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        if events(&log).contains(&ev(EventType::Leave, "bob")) {
            went = Some(());
        }
    }
    let offline = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let f = next_of(&mut watcher, &["presence"], 30).await;
            if f["userDbId"] == bob_id && f["presence"] == "offline" {
                break;
            }
        }
    })
    .await;
    assert!(offline.is_ok(), "Alice's socket heard Bob go offline");
    let _ = b.start_kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_outage_longer_than_the_node_expiry_drops_nobody_from_a_call() {
    let mut nats = NatsProcess::start(free_port());
    let c = Cluster::start(2, &nats.url(), |cfg| {
        cfg.rejoin_grace = Duration::from_secs(1);
    })
    .await;
    let alice = c.user(1, "alice").await;
    let bob = c.user(0, "bob").await;
    let call = alice
        .rtc()
        .create_call_for_contacts(&call_request(CallType::Sfu, &[&bob]))
        .await
        .unwrap();
    bob.rtc().join_call(call.call_id).await.unwrap();
    let _bobs = raw_socket_at(&c.url(0), &bob.token().await).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    nats.stop();
    // Past the 15 s after which a silent node is taken as gone, and the grace.
    tokio::time::sleep(Duration::from_secs(18)).await;
    let _nats = NatsProcess::start(nats.port);
    c.wait_connected(0).await;
    c.wait_connected(1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let log = alice.rtc().get_call_log_by_id(call.call_id).await.unwrap();
    assert!(
        !events(&log).contains(&ev(EventType::Leave, "bob")),
        "Bob's socket never closed: {:?}",
        events(&log)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_on_another_node_gets_signaling_and_the_calls_events() {
    let c = Cluster::start(2, &local_nats(), |_| {}).await;
    let alice = c.user(0, "alice").await;
    let call = alice
        .rtc()
        .create_call_for_contacts(&crate::guests::open_call(&[]))
        .await
        .unwrap();
    let (call_id, token) =
        callhub_client::parse_guest_link(call.join_url.as_deref().expect("a guest link")).unwrap();
    // The guest joins and opens its socket on node B; Alice is on node A.
    let guest = Client::new(&c.url(1))
        .join_anonymous(&callhub_client::api::GuestJoinRequest {
            call_id,
            token,
            display_name: "Visitor".into(),
        })
        .await
        .unwrap();
    let mut g = raw_socket_at(&c.url(1), &guest.access_token).await;
    let mut a = raw_socket_at(&c.url(0), &alice.token().await).await;
    let offer = format!(
        r#"{{"type":"signal","callId":"{call_id}","to":{},"payload":{{"candidate":null}}}}"#,
        guest.contact_id
    );
    a.send(WsMessage::Text(offer.into())).await.unwrap();
    let got = next_of(&mut g, &["signal"], 5).await;
    assert_eq!(got["from"], 1);
    // A call event committed on node A reaches the guest's socket on node B.
    alice.rtc().end_call(call_id).await.unwrap();
    let ended = loop {
        let f = next_of(&mut g, &["callEvent"], 5).await;
        if f["event"]["type"] == "Ended" {
            break f;
        }
    };
    assert_eq!(ended["callStatus"], "Ended");
    assert!(
        ended.get("seq").is_none(),
        "a guest's events are not sequenced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_starts_knows_the_running_ones_at_once_not_a_heartbeat_later() {
    let c = Cluster::start(3, &local_nats(), |_| {}).await;
    let bus = |i: usize| c.nodes[i].app.bus.as_ref().unwrap();
    let all_known = || {
        (0..3).all(|i| {
            (0..3)
                .filter(|&j| j != i)
                .all(|j| bus(i).knows(bus(j).node))
        })
    };
    let waited = std::time::Instant::now();
    while !all_known() && waited.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        all_known(),
        "1 s after start, not every node knows the others (a heartbeat is every {:?})",
        callhub_server::bus::HEARTBEAT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_log_read_on_one_node_shows_a_change_made_on_another() {
    let c = Cluster::start(2, &local_nats(), |_| {}).await;
    let alice = c.user(0, "alice").await;
    let bob = c.user(1, "bob").await;
    let call = alice
        .rtc()
        .create_call_for_contacts(&call_request(CallType::Mesh, &[&bob]))
        .await
        .unwrap();
    // Node 1 renders the log and keeps it; node 0 then writes Bob's join.
    let before = bob.rtc().get_call_log_by_id(call.call_id).await.unwrap();
    let bob_on_0 = c.login(0, "bob").await;
    bob_on_0.rtc().join_call(call.call_id).await.unwrap();
    let after = bob.rtc().get_call_log_by_id(call.call_id).await.unwrap();
    assert_eq!(
        events(&after)[..],
        [events(&before), vec![ev(EventType::Join, "bob")]].concat()[..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sfu_call_lives_on_one_node_and_moves_when_that_node_drains() {
    use crate::sfu::{Peer, run};
    let mut cluster = Cluster::start(3, &local_nats(), |_| {}).await;
    let alice = cluster.user(0, "alice").await;
    let bob = cluster.user(1, "bob").await;
    let call = alice
        .rtc()
        .create_call_for_contacts(&call_request(CallType::Sfu, &[&bob]))
        .await
        .unwrap();
    let a_id = alice
        .rtc()
        .join_call(call.call_id)
        .await
        .unwrap()
        .media
        .contact_id;
    let b_id = bob
        .rtc()
        .join_call(call.call_id)
        .await
        .unwrap()
        .media
        .contact_id;
    // Alice's socket is on node 0, Bob's on node 1: their `sfu` frames meet on one SFU.
    let mut a = Peer::open(&cluster.url(0), alice.token().await, call.call_id, a_id).await;
    let mut b = Peer::open(&cluster.url(1), bob.token().await, call.call_id, b_id).await;
    run(&mut [&mut a, &mut b], Duration::from_secs(20), |p| {
        p[0].p.sees(b_id) && p[1].p.sees(a_id)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no video both ways in call {}:\n{}\n{}",
            call.call_id,
            a.report(),
            b.report()
        )
    });
    let store = cluster.nodes[0].app.store.clone();
    let node_id = |s: &Server| s.app.bus.as_ref().unwrap().node.to_string();
    let home = store
        .sfu_node(call.call_id)
        .await
        .unwrap()
        .expect("the call's node is recorded");
    let at = cluster
        .nodes
        .iter()
        .position(|n| node_id(n) == home)
        .expect("the recorded node is one of the cluster");
    assert!(
        at < 2,
        "the call lives on a node where one of its participants offered"
    );
    eventually(5, || async {
        cluster
            .nodes
            .iter()
            .enumerate()
            .all(|(i, n)| n.app.sfu.stats().participants == if i == at { 2 } else { 0 })
    })
    .await;

    // SIGTERM's path on the call's node: it gives the call up and tells everyone to
    // offer again; a client whose socket was there reconnects to a live node.
    let stopping = cluster.nodes.remove(at);
    stopping.stop().await;
    let live = cluster.url(cluster.nodes.len() - 1); // the third node, in neither path so far
    for peer in [&mut a, &mut b] {
        run(&mut [&mut *peer], Duration::from_secs(5), |p| {
            p[0].closed || p[0].p.restart_asked
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "{} was told nothing when its SFU's node stopped",
                peer.contact
            )
        });
        let url = peer.closed.then_some(live.as_str());
        peer.renew(url).await;
    }
    run(&mut [&mut a, &mut b], Duration::from_secs(20), |p| {
        p[0].p.sees(b_id) && p[1].p.sees(a_id)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the call did not come back on a live node:\n{}\n{}",
            a.report(),
            b.report()
        )
    });
    let moved = store
        .sfu_node(call.call_id)
        .await
        .unwrap()
        .expect("recorded again");
    assert_ne!(moved, home);
    assert!(
        cluster.nodes.iter().any(|n| node_id(n) == moved),
        "moved to a live node"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sfu_call_comes_back_on_a_live_node_when_its_node_is_killed() {
    use crate::sfu::{Peer, run};
    let (_db, mut nodes, url, alice, bob, call, _) = two_nodes_and_an_sfu_call(0, 1, "30").await;
    let [a_node, _b_node] = &mut nodes;
    let a_id = alice
        .rtc()
        .join_call(call.call_id)
        .await
        .unwrap()
        .media
        .contact_id;
    let b_id = bob
        .rtc()
        .join_call(call.call_id)
        .await
        .unwrap()
        .media
        .contact_id;
    // Alice offers first, on node A: the call lives there; Bob's frames cross from B.
    let mut a = Peer::open(
        &url(0),
        alice.access_token().await.unwrap(),
        call.call_id,
        a_id,
    )
    .await;
    run(&mut [&mut a], Duration::from_secs(10), |p| {
        !p[0].p.tracks.is_empty() || p[0].p.rtc.is_connected()
    })
    .await
    .expect("Alice's session on node A");
    let mut b = Peer::open(
        &url(1),
        bob.access_token().await.unwrap(),
        call.call_id,
        b_id,
    )
    .await;
    run(&mut [&mut a, &mut b], Duration::from_secs(20), |p| {
        p[0].p.sees(b_id) && p[1].p.sees(a_id)
    })
    .await
    .unwrap_or_else(|| panic!("no video both ways; errors {:?} {:?}", a.errors, b.errors));
    // The gauges are read every 5 s.
    eventually(10, || async {
        metric(&url(0), "callhub_sfu_participants").await == 2.0
    })
    .await;

    // Node A dies. Clients do what the web client does: a closed socket reconnects
    // (to B) with a new connection; a connection that brings nothing for 4 s is
    // replaced, and so is an offer left unanswered (its node is gone).
    a_node.start_kill().unwrap();
    a_node.wait().await.unwrap();
    let killed = std::time::Instant::now();
    let mut renewed = [killed, killed];
    let recovered = loop {
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the call did not come back within 60 s"
        );
        run(&mut [&mut a, &mut b], Duration::from_millis(500), |_| false).await;
        if a.closed {
            a.renew(Some(&url(1))).await;
            renewed[0] = std::time::Instant::now();
        }
        for (i, (p, other)) in [(&mut a, b_id), (&mut b, a_id)].into_iter().enumerate() {
            let fresh =
                p.p.received
                    .get(&other)
                    .and_then(|r| r.last_video)
                    .is_some_and(|t| t.elapsed() < Duration::from_secs(1));
            if !fresh && renewed[i].elapsed() > Duration::from_secs(4) {
                p.renew(None).await;
                renewed[i] = std::time::Instant::now();
            }
        }
        if a.p.sees(b_id) && b.p.sees(a_id) && renewed.iter().all(|r| *r > killed) {
            break killed.elapsed();
        }
    };
    // A node is taken for gone after NODE_EXPIRY (15 s): the call moves then.
    assert!(
        recovered >= Duration::from_secs(10),
        "recovered in {recovered:?}, before A could be known dead?"
    );
    eventually(10, || async {
        metric(&url(1), "callhub_sfu_participants").await == 2.0
    })
    .await;
}

/// Two node processes on one database and the local NATS (`grace`: the rejoin
/// grace in seconds), Alice logged in on node `alice_on`, Bob on `bob_on`, and an
/// SFU call from Alice to Bob; with Bob's userDbId.
async fn two_nodes_and_an_sfu_call(
    alice_on: usize,
    bob_on: usize,
    grace: &str,
) -> (
    TestDb,
    [tokio::process::Child; 2],
    impl Fn(usize) -> String,
    Client,
    Client,
    callhub_core::CallLog,
    i64,
) {
    use crate::durability::{add_user_with_role, serve_with};
    let db = TestDb::new(Backend::Postgres).await;
    add_user_with_role(&db, "alice", "user").await;
    add_user_with_role(&db, "bob", "user").await;
    let env = [
        ("CALLHUB_NATS_URL", local_nats()),
        (
            "CALLHUB_NATS_PREFIX",
            format!("test{}", Uuid::new_v4().simple()),
        ),
        ("CALLHUB_REJOIN_GRACE_SECS", grace.into()),
    ];
    let ports = [free_port(), free_port()];
    let nodes = [
        serve_with(&db, ports[0], &env).await,
        serve_with(&db, ports[1], &env).await,
    ];
    let url = move |i: usize| format!("http://127.0.0.1:{}", ports[i]);
    for i in 0..2 {
        wait_connected(&url(i)).await;
    }
    let alice = Client::new(&url(alice_on));
    alice
        .login("alice", PASSWORD, Some("ubimax"))
        .await
        .unwrap();
    let bob = Client::new(&url(bob_on));
    bob.login("bob", PASSWORD, Some("ubimax")).await.unwrap();
    let contacts = bob.rtc().get_contacts(&Default::default()).await.unwrap();
    let bob_id = contacts
        .contacts
        .iter()
        .find(|c| c.user_id == "bob")
        .unwrap()
        .user_db_id;
    let req = callhub_client::api::CreateCallRequest {
        invited_contacts: vec![callhub_client::api::ContactInput {
            user_db_id: Some(bob_id),
            ..Default::default()
        }],
        ..call_request(CallType::Sfu, &[])
    };
    let call = alice.rtc().create_call_for_contacts(&req).await.unwrap();
    (db, nodes, url, alice, bob, call, bob_id)
}
