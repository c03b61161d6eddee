//! What was answered survives: kill -9 of the real binary while calls are being
//! created, timers that outlive the node that set them; and SIGTERM drains.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callhub_client::Client;
use callhub_core::EventType::*;
use callhub_core::{CallStatus, CallType, Role};
use futures::StreamExt;
use tokio::process::{Child, Command};

use crate::helpers::*;

pub(crate) fn callhub(db: &TestDb, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhub"));
    cmd.env("CALLHUB_DATABASE_URL", &db.url)
        .env("CALLHUB_DATA_DIR", &db.dir)
        .env("CALLHUB_LISTEN", format!("127.0.0.1:{port}"))
        // Nodes of the suite run side by side: each SFU on a port of its own.
        .env("CALLHUB_SFU_UDP", "127.0.0.1:0")
        .env("CALLHUB_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

async fn add_user(db: &TestDb, user_id: &str) -> serde_json::Value {
    add_user_with_role(db, user_id, "user").await
}

pub(crate) async fn add_user_with_role(
    db: &TestDb,
    user_id: &str,
    role: &str,
) -> serde_json::Value {
    // `user add` does not create a database; `migrate` does (and is a no-op after).
    let migrated = callhub(db, 0).arg("migrate").status().await.unwrap();
    assert!(migrated.success(), "migrate failed");
    let mut cmd = callhub(db, 0);
    cmd.args([
        "user",
        "add",
        "--domain",
        "ubimax",
        "--user-id",
        user_id,
        "--role",
        role,
        "--password-stdin",
    ])
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    use tokio::io::AsyncWriteExt;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "user add failed");
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line.lines().count(), 1, "one JSON line");
    serde_json::from_str(&line).unwrap()
}

async fn serve(db: &TestDb, port: u16) -> Child {
    serve_with(db, port, &[]).await
}

/// The real binary serving on `port`, with extra environment.
pub(crate) async fn serve_with(db: &TestDb, port: u16, env: &[(&str, String)]) -> Child {
    let child = callhub(db, port)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .arg("serve")
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/health");
    for _ in 0..200 {
        if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("callhub did not come up on {port}");
}

backend_tests! {
    async fn kill_9_while_creating_calls_loses_no_answered_call(backend: Backend) {
        let db = TestDb::new(backend).await;
        let alice = add_user(&db, "alice").await;
        let bob = add_user(&db, "bob").await;
        assert_eq!(alice["userId"], "alice");
        let port = free_port();
        let mut server = serve(&db, port).await;
        let url = format!("http://127.0.0.1:{port}");
        let client = Client::new(&url);
        client.login("alice", PASSWORD, Some("ubimax")).await.unwrap();
        let answered = Arc::new(Mutex::new(Vec::new()));
        let mut writers = Vec::new();
        for _ in 0..6 {
            let rtc = client.rtc();
            let answered = answered.clone();
            let bob_id = bob["userDbId"].as_i64().unwrap();
            writers.push(tokio::spawn(async move {
                let mut req = callhub_client::api::CreateCallRequest {
                    call_title: "durable".into(),
                    call_reason: callhub_core::CallReason::Standard,
                    call_type: CallType::Sfu,
                    invited_contacts: vec![callhub_client::api::ContactInput { user_db_id: Some(bob_id), ..Default::default() }],
                    invited_teams: vec![],
                    join_anonymous_allowed: false,
                    inform_others_directly: None,
                    creator_user: None,
                    planned_date_time: None,
                };
                for i in 0.. {
                    req.call_title = format!("durable {i}");
                    match rtc.create_call_for_contacts(&req).await {
                        Ok(log) => answered.lock().unwrap().push(log.call_id),
                        Err(_) => break, // the server is gone
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.start_kill().unwrap(); // SIGKILL
        server.wait().await.unwrap();
        for w in writers {
            w.await.unwrap();
        }
        let answered = answered.lock().unwrap().clone();
        assert!(answered.len() >= 10, "only {} calls were created before the kill", answered.len());

        let mut server = serve(&db, port).await;
        // The access token outlives the restart: the signing secret is kept in the data dir.
        let rtc = client.rtc();
        for call_id in &answered {
            let log = rtc.get_call_log_by_id(*call_id).await.unwrap_or_else(|e| panic!("call {call_id} was lost: {e}"));
            assert_eq!(events(&log), vec![ev(Created, "alice"), ev(Join, "alice")]);
        }
        server.start_kill().unwrap();
    }

    async fn the_pop_up_of_a_call_answered_right_before_kill_9_reaches_the_invitee(backend: Backend) {
        let db = TestDb::new(backend).await;
        add_user(&db, "alice").await;
        let bob = add_user(&db, "bob").await;
        let port = free_port();
        let mut server = serve(&db, port).await;
        let url = format!("http://127.0.0.1:{port}");
        let (alice_c, bob_c) = (Client::new(&url), Client::new(&url));
        alice_c.login("alice", PASSWORD, Some("ubimax")).await.unwrap();
        bob_c.login("bob", PASSWORD, Some("ubimax")).await.unwrap();
        // One device of Bob stays connected through the crash; another is offline.
        let mut online = bob_c.notifications();
        let seen = match online.recv().await {
            Some(callhub_client::Frame::Hello { seq, .. }) => seq,
            other => panic!("{other:?}"),
        };
        let req = callhub_client::api::CreateCallRequest {
            call_title: "urgent".into(),
            call_reason: callhub_core::CallReason::ServiceRequest,
            call_type: CallType::Mesh,
            invited_contacts: vec![callhub_client::api::ContactInput { user_db_id: bob["userDbId"].as_i64(), ..Default::default() }],
            invited_teams: vec![],
            join_anonymous_allowed: false,
            inform_others_directly: Some(true),
            creator_user: None,
            planned_date_time: None,
        };
        let call = alice_c.rtc().create_call_for_contacts(&req).await.unwrap();
        server.start_kill().unwrap();
        server.wait().await.unwrap();
        let mut server = serve(&db, port).await;
        let is_pop_up = |f: &callhub_client::Frame| {
            matches!(f, callhub_client::Frame::Notification { notification: callhub_core::Notification::IncomingCall { call: c, .. }, .. } if c.call_id == call.call_id)
        };
        // The offline device resumes from what it had seen.
        let mut offline = bob_c.notifications_since(Some(seen));
        let mut got = None;
        while let Ok(Some(f)) = tokio::time::timeout(Duration::from_secs(10), offline.recv()).await {
            if is_pop_up(&f) {
                got = Some(f);
                break;
            }
        }
        let Some(callhub_client::Frame::Notification { seq, .. }) = got else { panic!("the resumed device got no pop-up") };
        assert_eq!(seq, seen + 1, "the pop-up is the first message after what was seen");
        // The connected device reconnected by itself and has it exactly once.
        let mut pop_ups = 0;
        while let Ok(Some(f)) = tokio::time::timeout(Duration::from_secs(3), online.recv()).await {
            pop_ups += usize::from(is_pop_up(&f));
        }
        assert_eq!(pop_ups, 1, "exactly once across the crash");
        server.start_kill().unwrap();
    }

    async fn ring_timeouts_fire_after_a_restart(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.ring_timeout = Duration::from_secs(2)).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&b])).await.unwrap();
        let TestApp { server, db, .. } = app;
        let cfg = server.app.config.clone();
        server.stop().await;
        // A new node on the same database knows of the ringing from the store alone.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let second = callhub_server::Server::start(cfg, listener).await.unwrap();
        let client = Client::new(&second.url());
        client.login("alice", PASSWORD, Some("ubimax")).await.unwrap();
        eventually(10, || async {
            client.rtc().get_call_log_by_id(call.call_id).await.unwrap().call_status == CallStatus::Ended
        })
        .await;
        let log = client.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        assert_eq!(events(&log)[2..], [ev(Missed, "bob"), ev(Leave, "alice"), ev(Ended, "alice")]);
        second.stop().await;
        drop(db);
    }

    async fn sigterm_closes_sockets_with_1001_and_the_node_exits_at_once(backend: Backend) {
        let db = TestDb::new(backend).await;
        add_user(&db, "alice").await;
        let port = free_port();
        let mut server = serve(&db, port).await;
        let url = format!("http://127.0.0.1:{port}");
        let alice = Client::new(&url);
        alice.login("alice", PASSWORD, Some("ubimax")).await.unwrap();
        let ws_url = format!("ws://127.0.0.1:{port}/ws?access_token={}", alice.access_token().await.unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
        assert!(ws.next().await.unwrap().unwrap().to_text().unwrap().contains("hello"));
        let pid = server.id().unwrap().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let code = loop {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("a close frame in time") {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => break u16::from(f.code),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        assert_eq!(code, 1001, "going away: the client reconnects, to another node behind a balancer");
        drop(ws);
        let status = tokio::time::timeout(Duration::from_secs(10), server.wait())
            .await
            .expect("the node exits well within CALLHUB_SHUTDOWN_SECS")
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
}
