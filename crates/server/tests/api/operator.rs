//! What an operator meets running the real `callhub` binary: the database each
//! command uses, one `serve` per SQLite database, a missing settings file, an
//! unreachable database, and `--help`.

use std::process::{Output, Stdio};
use std::time::Duration;

use callhub_client::Client;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::durability::{callhub, serve_with};
use crate::helpers::*;

/// The binary with no database settings of the test's environment, run in `dir`.
fn callhub_in(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhub"));
    cmd.current_dir(dir)
        .env_remove("CALLHUB_DATABASE_URL")
        .env_remove("CALLHUB_DATA_DIR")
        .env_remove("CALLHUB_CONFIG")
        // Nodes of the suite run side by side: each SFU on a port of its own.
        .env("CALLHUB_SFU_UDP", "127.0.0.1:0")
        .env("CALLHUB_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

/// Runs `cmd` to its end (30 s at most) with `stdin` piped in.
async fn run(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the command ends by itself")
        .unwrap()
}

/// A new empty folder to run in.
fn empty_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("callhub-op-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const USER_ADD: [&str; 7] = [
    "user",
    "add",
    "--domain",
    "ubimax",
    "--user-id",
    "carol",
    "--password-stdin",
];

#[tokio::test]
async fn user_and_team_add_in_a_folder_without_a_database_refuse_and_name_where_they_looked() {
    let dir = empty_dir();
    let db = dir.join("data").join("callhub.db");

    let team_add = ["team", "add", "--domain", "ubimax", "--name", "Field"];
    for args in [&USER_ADD[..], &team_add[..]] {
        let mut cmd = callhub_in(&dir);
        cmd.args(args);
        let out = run(cmd, &format!("{PASSWORD}\n")).await;
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(
            err.contains(&format!("callhub: database SQLite {}", db.display())),
            "{err}"
        );
        assert!(
            err.contains(&format!("no database at {}", db.display())),
            "{err}"
        );
        assert!(err.contains("callhub migrate"), "{err}");
        assert!(!db.exists(), "a refused {args:?} made a database");
    }

    // `migrate` makes it and says so; then `user add` works and names it too.
    let mut cmd = callhub_in(&dir);
    cmd.arg("migrate");
    let out = run(cmd, "").await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("creating it"), "{err}");
    assert!(db.exists());
    let mut cmd = callhub_in(&dir);
    cmd.args(USER_ADD);
    let out = run(cmd, &format!("{PASSWORD}\n")).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("callhub: database SQLite {}", db.display())),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_callhub_config_naming_a_missing_file_stops_the_command() {
    let dir = empty_dir();
    let missing = dir.join("nowhere.toml");
    for args in [&["migrate"][..], &USER_ADD[..]] {
        let mut cmd = callhub_in(&dir);
        cmd.env("CALLHUB_CONFIG", &missing).args(args);
        let out = run(cmd, &format!("{PASSWORD}\n")).await;
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(err.contains("CALLHUB_CONFIG"), "{err}");
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }
    assert!(!dir.join("data").exists(), "nothing was made");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_unreachable_database_is_named_with_its_cause_once_and_the_command_exits() {
    let dir = empty_dir();
    // A port nobody listens on: bound, then let go.
    let port = free_port();
    let url = format!("postgres://postgres:hidden@127.0.0.1:{port}/callhub");
    for args in [&["serve"][..], &["migrate"][..], &USER_ADD[..]] {
        let mut cmd = callhub_in(&dir);
        cmd.env("CALLHUB_DATABASE_URL", &url)
            .env("CALLHUB_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("CALLHUB_LOG", "info")
            .args(args);
        let out = run(cmd, &format!("{PASSWORD}\n")).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let cause = format!("connection refused at 127.0.0.1:{port}");
        assert_eq!(err.matches(&cause).count(), 1, "{args:?}: {err}");
        assert!(err.contains("callhub: error: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(!err.contains("hidden"), "the password is not shown: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_one_sqlite_database_is_refused_while_operator_commands_work() {
    let db = TestDb::new(Backend::Sqlite).await;
    let first_port = free_port();
    let mut first = serve_with(&db, first_port, &[]).await;
    let pid = first.id().unwrap();

    let out = run(
        {
            let mut cmd = callhub(&db, free_port());
            cmd.arg("serve");
            cmd
        },
        "",
    )
    .await;
    let err = stderr(&out);
    assert!(!out.status.success(), "a second serve started: {err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(err.contains("PostgreSQL") && err.contains("NATS"), "{err}");

    // Operator commands do not take the serve lock: a user added now logs in at once.
    let out = run(
        {
            let mut cmd = callhub(&db, 0);
            cmd.args(USER_ADD);
            cmd
        },
        &format!("{PASSWORD}\n"),
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let client = Client::new(&format!("http://127.0.0.1:{first_port}"));
    client
        .login("carol", PASSWORD, Some("ubimax"))
        .await
        .expect("the running node sees the user");

    // Once the first node is gone (even by kill -9) the database is free again.
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    let mut second = serve_with(&db, free_port(), &[]).await;
    second.start_kill().unwrap();
}

#[tokio::test]
async fn help_lists_every_setting() {
    for args in [&["--help"][..], &["serve", "--help"][..], &["-h"][..]] {
        let out = run(
            {
                let mut cmd = Command::new(env!("CARGO_BIN_EXE_callhub"));
                cmd.args(args);
                cmd
            },
            "",
        )
        .await;
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        for (key, ..) in callhub_server::settings::SETTINGS {
            assert!(help.contains(key), "{args:?} does not list {key}");
        }
    }
}
