//! Idle sockets one node holds, and notifications delivered to many connected
//! users. Sockets are opened from several loopback source addresses (127.0.0.x)
//! to pass the ephemeral-port limit of one.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::stats::{Server, create_call, paced, read_tokens};

pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Opens an authenticated socket from `source` and reads its `hello`.
pub async fn open_socket(url: &str, token: &str, source: IpAddr) -> anyhow::Result<Ws> {
    open_socket_with(url, token, source, "").await
}

/// `open_socket` with more of `/ws`'s query (`&presence=false`).
async fn open_socket_with(
    url: &str,
    token: &str,
    source: IpAddr,
    query: &str,
) -> anyhow::Result<Ws> {
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let addr: SocketAddr = tokio::net::lookup_host(host)
        .await?
        .next()
        .ok_or_else(|| anyhow::anyhow!("no address for {host}"))?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?;
    let ws_url = format!("ws://{host}/ws?access_token={token}{query}");
    let (mut ws, _) = tokio_tungstenite::client_async(ws_url, stream).await?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if t.as_str().contains("\"hello\"") => Ok(ws),
        other => anyhow::bail!("expected hello, got {other:?}"),
    }
}

fn sources(list: &str) -> anyhow::Result<Vec<IpAddr>> {
    list.split(',').map(|s| Ok(s.trim().parse()?)).collect()
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: Server,
    #[arg(long)]
    count: usize,
    /// Comma-separated loopback source addresses.
    #[arg(long, default_value = "127.0.0.1")]
    source_ips: String,
    /// Keep the sockets this long after they are all open.
    #[arg(long, default_value_t = 10)]
    hold_secs: u64,
    #[arg(long, default_value_t = 200)]
    open_concurrency: usize,
}

/// Frames the sockets got: sequenced messages, and `presence` frames (not
/// stored, sent to every socket of the domain, so counted apart).
#[derive(Default)]
struct Delivered {
    messages: AtomicU64,
    presence: AtomicU64,
}

/// Holds a socket: reading answers the server's pings.
fn hold(ws: Ws, delivered: Option<Arc<Delivered>>) {
    tokio::spawn(async move {
        let (_write, mut read) = ws.split();
        while let Some(Ok(m)) = read.next().await {
            if let (Some(d), Message::Text(t)) = (&delivered, &m) {
                if t.as_str().contains("\"seq\"") {
                    d.messages.fetch_add(1, Ordering::Relaxed);
                } else if t.as_str().contains("\"type\":\"presence\"") {
                    d.presence.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
}

async fn open_many(
    url: &str,
    tokens: &[(i64, String, String)],
    count: usize,
    src: &[IpAddr],
    par: usize,
    delivered: Option<Arc<Delivered>>,
    query: &'static str,
) -> (usize, usize) {
    let (mut open, mut failed) = (0, 0);
    let mut i = 0;
    while i < count {
        let batch: Vec<_> = (i..(i + par).min(count))
            .map(|k| {
                let (url, token, ip) = (
                    url.to_owned(),
                    tokens[k % tokens.len()].2.clone(),
                    src[k % src.len()],
                );
                tokio::spawn(async move { open_socket_with(&url, &token, ip, query).await })
            })
            .collect();
        for b in batch {
            match b.await {
                Ok(Ok(ws)) => {
                    open += 1;
                    hold(ws, delivered.clone());
                }
                _ => failed += 1,
            }
        }
        i += par;
    }
    (open, failed)
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let tokens = read_tokens(&a.server.tokens)?;
    let src = sources(&a.source_ips)?;
    let started = Instant::now();
    let (open, failed) = open_many(
        &a.server.url,
        &tokens,
        a.count,
        &src,
        a.open_concurrency,
        None,
        "",
    )
    .await;
    println!(
        "{}",
        json!({"bench": "sockets", "open": open, "failed": failed, "open_secs": started.elapsed().as_secs_f64().round()})
    );
    tokio::time::sleep(Duration::from_secs(a.hold_secs)).await;
    Ok(())
}

#[derive(clap::Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    server: Server,
    /// Connected users, one socket each (the first of the tokens file).
    #[arg(long)]
    users: usize,
    /// Invitees of each call.
    #[arg(long, default_value_t = 10)]
    invitees_per_call: usize,
    /// Calls per second.
    #[arg(long)]
    rate: u64,
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    #[arg(long, default_value = "127.0.0.1")]
    source_ips: String,
    /// The server's pid, to count its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Several nodes: their URLs, comma-separated. The users' sockets and the
    /// createCall requests are spread over them in turn (`--url` is then unused).
    #[arg(long)]
    node_urls: Option<String>,
    /// Several nodes: their pids, comma-separated; the CPU time is their sum.
    #[arg(long)]
    node_pids: Option<String>,
    /// Open the sockets with `?presence=false` (devices that show no directory).
    #[arg(long)]
    no_presence: bool,
}

/// CPU seconds a process has used (user + system).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds of several processes together.
fn cpu_secs_of(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|&p| cpu_secs(p)).sum()
}

pub async fn fanout(a: FanoutArgs) -> anyhow::Result<()> {
    let tokens = read_tokens(&a.server.tokens)?;
    anyhow::ensure!(tokens.len() >= a.users, "fanout needs {} users", a.users);
    let users = &tokens[..a.users];
    let urls: Vec<String> = match &a.node_urls {
        Some(list) => list.split(',').map(|u| u.trim().to_owned()).collect(),
        None => vec![a.server.url.clone()],
    };
    let mut pids: Vec<u32> = a.server_pid.into_iter().collect();
    if let Some(list) = &a.node_pids {
        for p in list.split(',') {
            pids.push(p.trim().parse()?);
        }
    }
    let delivered = Arc::new(Delivered::default());
    let (mut open, mut failed) = (0, 0);
    // User i's socket is on node i % nodes.
    for (n, url) in urls.iter().enumerate() {
        let mine: Vec<(i64, String, String)> = users
            .iter()
            .enumerate()
            .filter(|(i, _)| i % urls.len() == n)
            .map(|(_, u)| u.clone())
            .collect();
        let (o, f) = open_many(
            url,
            &mine,
            mine.len(),
            &sources(&a.source_ips)?,
            200,
            Some(delivered.clone()),
            if a.no_presence { "&presence=false" } else { "" },
        )
        .await;
        open += o;
        failed += f;
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .build()?;
    let base_cpu = cpu_secs_of(&pids);
    let base_delivered = delivered.messages.load(Ordering::Relaxed);
    let base_presence = delivered.presence.load(Ordering::Relaxed);
    let start = Instant::now();
    let ok = Arc::new(AtomicU64::new(0));
    paced(a.rate, Duration::from_secs(a.duration_secs), |n| {
        let n = n as usize;
        let caller = &users[n % users.len()];
        let invited: Vec<String> = (1..=a.invitees_per_call)
            .map(|k| format!(r#"{{"userDbId":{}}}"#, users[(n + k * 7) % users.len()].0))
            .collect();
        let body = format!(
            r#"{{"callTitle":"fan {n}","callType":"SFU","invitedContacts":[{}]}}"#,
            invited.join(",")
        );
        let req = create_call(&client, &urls[n % urls.len()], &caller.2, body);
        let ok = ok.clone();
        tokio::spawn(async move {
            if req.send().await.is_ok_and(|r| r.status().is_success()) {
                ok.fetch_add(1, Ordering::Relaxed);
            }
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let secs = start.elapsed().as_secs_f64();
    let got = delivered.messages.load(Ordering::Relaxed) - base_delivered;
    let presence = delivered.presence.load(Ordering::Relaxed) - base_presence;
    let cpu = match (base_cpu, cpu_secs_of(&pids)) {
        (Some(b), Some(e)) => Some(e - b),
        _ => None,
    };
    let per_cpu_sec = cpu.map(|c| (got as f64 / c).round());
    let calls = ok.load(Ordering::Relaxed);
    // What the server holds with every socket still open, each having been sent
    // its messages (write buffers keep their capacity).
    let rss_kib: Option<u64> = pids.iter().map(|&p| crate::sfu::rss_kib(p)).sum();
    println!(
        "{}",
        json!({
            "bench": "fanout", "nodes": urls.len(), "presence": !a.no_presence, "connected": open, "failed_sockets": failed, "calls": calls,
            "expected_messages": calls * (3 * a.invitees_per_call as u64 + 2),
            "delivered": got, "delivered_per_s": (got as f64 / secs).round(),
            "server_cpu_secs": cpu, "delivered_per_server_cpu_sec": per_cpu_sec,
            "presence_frames": presence, "server_rss_kib": rss_kib,
            "frames_per_server_cpu_sec": cpu.map(|c| ((got + presence) as f64 / c).round()),
        })
    );
    Ok(())
}
