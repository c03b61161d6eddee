//! What was answered survives: kill -9 of the real binary while calls are being
//! created, and timers that outlive the node that set them.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callhub_client::Client;
use callhub_core::EventType::*;
use callhub_core::{CallStatus, CallType, Role};
use tokio::process::{Child, Command};

use crate::helpers::*;

fn callhub(db: &TestDb, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhub"));
    cmd.env("CALLHUB_DATABASE_URL", &db.url)
        .env("CALLHUB_DATA_DIR", &db.dir)
        .env("CALLHUB_LISTEN", format!("127.0.0.1:{port}"))
        .env("CALLHUB_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

async fn add_user(db: &TestDb, user_id: &str) -> serde_json::Value {
    let mut cmd = callhub(db, 0);
    cmd.args([
        "user",
        "add",
        "--domain",
        "ubimax",
        "--user-id",
        user_id,
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
    let child = callhub(db, port).arg("serve").spawn().unwrap();
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
}
