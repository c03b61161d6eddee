//! `callhub-cli` against a real server: log in, create, read, watch a pop-up, and
//! search the directory.

use std::process::{Output, Stdio};

use callhub_core::Role;
use callhub_core::text::{DisplayName, Domain, UserId};
use callhub_server::auth::hash_password;
use callhub_server::{Config, Server};
use callhub_store::NewUser;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

fn cli(session: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhub-cli"));
    cmd.env("CALLHUB_CLI_SESSION", session).kill_on_drop(true);
    cmd
}

/// `callhub-cli args` to its end, with `stdin` piped in.
async fn output(session: &std::path::Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = cli(session)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

async fn run(session: &std::path::Path, args: &[&str], stdin: Option<&str>) -> serde_json::Value {
    let out = output(session, args, stdin).await;
    assert!(
        out.status.success(),
        "callhub-cli {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A server with `alice` and `bob` (password secret123) on a fresh SQLite database.
async fn server_with_alice_and_bob() -> (Server, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "callhub-cli-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let cfg = Config::with_database(
        &format!("sqlite://{}", dir.join("db.sqlite").display()),
        dir.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::start(cfg, listener).await.unwrap();
    for name in ["alice", "bob"] {
        server
            .app
            .store
            .create_user(NewUser {
                domain: Domain::parse("domain", "ubimax").unwrap(),
                user_id: UserId::parse("userId", name).unwrap(),
                display_name: DisplayName::parse("displayName", name).unwrap(),
                email: None,
                phone_number: None,
                roles: vec![Role::User],
                password_hash: hash_password("secret123".into()).await.unwrap(),
            })
            .await
            .unwrap();
    }
    (server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_to_a_loopback_address_without_scheme_uses_http() {
    let (server, dir) = server_with_alice_and_bob().await;
    let session = dir.join("alice.json");
    let address = server.addr.to_string(); // 127.0.0.1:<port>, no scheme
    let me = run(
        &session,
        &["login", "--server", &address, "--user", "alice"],
        Some("secret123\n"),
    )
    .await;
    assert_eq!(me["userId"], "alice");
    let list = run(&session, &["call", "list"], None).await;
    assert_eq!(list["totalElements"], 0);

    let out = output(
        &dir.join("other.json"),
        &["login", "--server", "calls.example.org", "--user", "alice"],
        Some("secret123\n"),
    )
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("https://calls.example.org"), "{err}");
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_password_is_refused_before_anything_is_sent() {
    // A listener that counts who connects: the refusal must come before any.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let connected = tokio::spawn(async move { listener.accept().await.is_ok() });
    let dir = std::env::temp_dir().join(format!(
        "callhub-cli-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    for stdin in ["", "\n"] {
        let out = output(
            &dir.join("s.json"),
            &["login", "--server", &server, "--user", "alice"],
            Some(stdin),
        )
        .await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stdin:?}");
        assert!(err.contains("no password on standard input"), "{err}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !connected.is_finished(),
        "callhub-cli connected to the server"
    );
    connected.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_create_get_and_watch_a_pop_up() {
    let (server, dir) = server_with_alice_and_bob().await;
    let (alice, bob) = (dir.join("alice.json"), dir.join("bob.json"));
    let url = server.url();
    let me = run(
        &alice,
        &[
            "login", "--server", &url, "--user", "alice", "--domain", "ubimax",
        ],
        Some("secret123\n"),
    )
    .await;
    assert_eq!(me["userId"], "alice");
    run(
        &bob,
        &["login", "--server", &url, "--user", "bob"],
        Some("secret123\n"),
    )
    .await;

    let mut watch = cli(&bob)
        .args(["watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(watch.stderr.take().unwrap()).lines();
    let connected = err.next_line().await.unwrap().unwrap();
    assert!(connected.contains("connected"), "{connected}");

    let call = run(
        &alice,
        &[
            "call", "create", "--title", "Pump 7", "--type", "mesh", "--invite", "bob",
        ],
        None,
    )
    .await;
    assert_eq!(call["callTitle"], "Pump 7");
    let call_id = call["callId"].as_str().unwrap().to_owned();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let popup: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(popup["type"], "incomingCall");
    assert_eq!(popup["call"]["callId"], call_id.as_str());

    run(&bob, &["call", "join", &call_id], None).await;
    let log = run(&alice, &["call", "get", &call_id], None).await;
    let kinds: Vec<&str> = log["callEvents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Created", "Join", "Join"]);
    let list = run(&bob, &["call", "list"], None).await;
    assert_eq!(list["totalElements"], 1);
    // The directory: Bob is in the call (and his watch holds a socket).
    let found = run(&alice, &["contacts", "--q", "BO"], None).await;
    assert_eq!(found["contacts"][0]["userId"], "bob");
    assert_eq!(found["contacts"][0]["presence"], "busy");
    assert_eq!(found["contacts"].as_array().unwrap().len(), 1);
    server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
