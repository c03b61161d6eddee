//! Ring latency: from a createCall request (and from its answer) to the invitee's
//! `incomingCall` on its socket, at a fixed call rate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::sockets::open_socket;
use crate::stats::{Latencies, Server, create_call, paced, read_tokens, with};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: Server,
    /// Calls per second.
    #[arg(long)]
    rate: u64,
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    /// Invitees with a socket each; as many other users call them.
    #[arg(long, default_value_t = 100)]
    invitees: usize,
    /// Where the invitees' sockets connect: another node of the same cluster, for
    /// the cross-node pop-up over NATS. Default: `--url`.
    #[arg(long)]
    socket_url: Option<String>,
}

#[derive(Default)]
struct Times {
    sent: Option<Instant>,
    answered: Option<Instant>,
    popped: Option<Instant>,
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let tokens = read_tokens(&a.server.tokens)?;
    anyhow::ensure!(
        tokens.len() >= 2 * a.invitees,
        "ring needs {} users",
        2 * a.invitees
    );
    let (invitees, callers) = tokens.split_at(a.invitees);
    let times: Arc<Mutex<HashMap<u64, Times>>> = Arc::default();
    let socket_url = a.socket_url.as_deref().unwrap_or(&a.server.url);
    for (_, _, token) in invitees {
        let ws = open_socket(socket_url, token, "127.0.0.1".parse()?).await?;
        let times = times.clone();
        tokio::spawn(async move {
            let (_, mut read) = ws.split();
            while let Some(Ok(m)) = read.next().await {
                let Message::Text(t) = m else { continue };
                let now = Instant::now();
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                if v["type"] != "incomingCall" {
                    continue;
                }
                let n = v["call"]["callTitle"]
                    .as_str()
                    .and_then(|s| s.strip_prefix("ring "))
                    .and_then(|s| s.parse().ok());
                if let Some(n) = n {
                    times.lock().await.entry(n).or_default().popped = Some(now);
                }
            }
        });
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .build()?;
    let sent = paced(a.rate, Duration::from_secs(a.duration_secs), |n| {
        let (caller, invitee) = (
            &callers[n as usize % callers.len()],
            &invitees[n as usize % invitees.len()],
        );
        let body = format!(
            r#"{{"callTitle":"ring {n}","callReason":"STANDARD","callType":"MESH","invitedContacts":[{{"userDbId":{}}}],"invitedTeams":[],"joinAnonymousAllowed":false}}"#,
            invitee.0
        );
        let req = create_call(&client, &a.server.url, &caller.2, body);
        let times = times.clone();
        tokio::spawn(async move {
            times.lock().await.entry(n).or_default().sent = Some(Instant::now());
            let ok = req.send().await.is_ok_and(|r| r.status().is_success());
            if ok {
                times.lock().await.entry(n).or_default().answered = Some(Instant::now());
            }
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let times = times.lock().await;
    let (mut from_request, mut from_answer, mut before_answer, mut lost, mut failed) =
        (Latencies::default(), Latencies::default(), 0u64, 0u64, 0u64);
    for t in times.values() {
        let (Some(sent), Some(answered)) = (t.sent, t.answered) else {
            failed += 1;
            continue;
        };
        let Some(popped) = t.popped else {
            lost += 1;
            continue;
        };
        from_request.record(popped.saturating_duration_since(sent));
        if popped >= answered {
            from_answer.record(popped - answered);
        } else {
            before_answer += 1;
        }
    }
    let report = json!({
        "bench": "ring", "calls_per_s": a.rate,
        "sockets": if socket_url == a.server.url { "same node" } else { "other node" }, "calls": sent, "failed": failed, "no_pop_up": lost,
        "pop_up_before_answer": before_answer,
        "from_answer": from_answer.summary(),
    });
    println!("{}", with(report, from_request.summary()));
    Ok(())
}
