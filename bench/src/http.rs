//! HTTP load on one route: open loop at a fixed offered rate (latency counted from
//! when each request was due, so a slow server cannot hide queueing), or closed
//! loop at saturation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Mutex;

use crate::stats::{Latencies, Server, create_call, read_tokens, with};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Route {
    /// POST /rtc/createCall, caller i inviting user i+1.
    Create,
    /// GET /rtc/getCallLogById on a call with 50 events.
    Get,
    /// GET /rtc/contacts, the directory of `setup`'s named accounts: by turns a user
    /// id (`u<n>`), a last name (about 250 matches), a first name with the start of
    /// a last one, two characters, and the whole domain by name.
    Contacts,
    /// GET /health: the server's floor (routing, a database round trip, JSON).
    Health,
    /// POST /rtc/joinCall and /rtc/leaveCall in turn: a call's change, not a new
    /// call. Each of `--concurrency` SFU calls (user 2p calling user 2p+1, made
    /// before the run) has its invitee join and leave; with the closed loop each
    /// worker drives its own call. (At a fixed rate two requests of one call can
    /// overlap, and a leave before its join is a 409.)
    JoinLeave,
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: Server,
    #[arg(long, value_enum)]
    route: Route,
    /// Offered requests per second (open loop).
    #[arg(long)]
    rate: Option<u64>,
    /// Requests in flight at once (closed loop, saturation).
    #[arg(long)]
    concurrency: Option<usize>,
    #[arg(long, default_value_t = 5)]
    duration_secs: u64,
    #[arg(long, default_value_t = 1)]
    warmup_secs: u64,
    /// Open loop: requests beyond this many in flight are counted as dropped.
    #[arg(long, default_value_t = 4096)]
    max_in_flight: u64,
}

/// One request of the load, ready to send.
#[derive(Clone)]
struct Target {
    client: reqwest::Client,
    url: String,
    route: Route,
    tokens: Arc<Vec<(i64, String, String)>>,
    call_id: Option<uuid::Uuid>,
    /// JoinLeave: the calls, the invitee of call p being user 2p+1.
    calls: Arc<Vec<uuid::Uuid>>,
}

impl Target {
    /// Sends request `n`; a failure is named by what went wrong (`status 503`,
    /// `timeout`, `connect`, …), to be counted by kind.
    async fn send(&self, n: usize) -> Result<(), String> {
        let t = &self.tokens;
        let req = match self.route {
            Route::Create => {
                let (caller, invitee) = (&t[n % t.len()], &t[(n + 1) % t.len()]);
                let body = format!(
                    r#"{{"callTitle":"bench {n}","callReason":"STANDARD","callType":"SFU","invitedContacts":[{{"userDbId":{},"phoneNumber":""}}],"invitedTeams":[],"joinAnonymousAllowed":false}}"#,
                    invitee.0
                );
                create_call(&self.client, &self.url, &caller.2, body)
            }
            Route::Get => self
                .client
                .get(format!(
                    "{}/rtc/getCallLogById?callId={}",
                    self.url,
                    self.call_id.expect("a call")
                ))
                .bearer_auth(&t[0].2),
            Route::Contacts => {
                let person = crate::setup::person(n.wrapping_mul(7919) % t.len());
                let (first, last) = person.split_once(' ').unwrap_or((&person, ""));
                let q = match n % 5 {
                    0 => format!("u{}", n.wrapping_mul(7919) % t.len()),
                    1 => last.split(' ').next().unwrap_or(last).to_owned(),
                    2 => format!("{first} {}", last.chars().take(2).collect::<String>()),
                    3 => first.chars().take(2).collect(),
                    _ => String::new(),
                };
                self.client
                    .get(format!("{}/rtc/contacts", self.url))
                    .query(&[("q", q.as_str()), ("size", "20")])
                    .bearer_auth(&t[n % t.len()].2)
            }
            Route::Health => self.client.get(format!("{}/health", self.url)),
            Route::JoinLeave => {
                let (p, turn) = (n % self.calls.len(), n / self.calls.len());
                let action = if turn % 2 == 0 {
                    "joinCall"
                } else {
                    "leaveCall"
                };
                self.client
                    .post(format!(
                        "{}/rtc/{action}?callId={}",
                        self.url, self.calls[p]
                    ))
                    .bearer_auth(&t[2 * p + 1].2)
            }
        };
        match req.send().await {
            Ok(res) => {
                let status = res.status();
                let _ = res.bytes().await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("status {}", status.as_u16()))
                }
            }
            Err(e) if e.is_timeout() => Err("timeout".into()),
            Err(e) if e.is_connect() => Err("connect".into()),
            Err(_) => Err("request".into()),
        }
    }
}

/// Failed requests, counted by kind.
#[derive(Default)]
struct Errors(BTreeMap<String, u64>);

impl Errors {
    fn add(&mut self, kind: String) {
        *self.0.entry(kind).or_default() += 1;
    }

    fn merge(&mut self, other: Errors) {
        for (kind, n) in other.0 {
            *self.0.entry(kind).or_default() += n;
        }
    }

    fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// A call with 50 events: Created, Join, and 24 invitees joining and leaving.
async fn call_with_50_events(
    client: &reqwest::Client,
    url: &str,
    t: &[(i64, String, String)],
) -> anyhow::Result<uuid::Uuid> {
    anyhow::ensure!(t.len() >= 25, "the get route needs 25 users");
    let invited: Vec<String> = t[1..25]
        .iter()
        .map(|u| format!(r#"{{"userDbId":{}}}"#, u.0))
        .collect();
    let body = format!(
        r#"{{"callTitle":"fifty","callType":"SFU","informOthersDirectly":false,"invitedContacts":[{}]}}"#,
        invited.join(",")
    );
    let log: serde_json::Value = create_call(client, url, &t[0].2, body)
        .send()
        .await?
        .json()
        .await?;
    let call_id: uuid::Uuid = log["callId"].as_str().unwrap_or_default().parse()?;
    for u in &t[1..25] {
        for action in ["joinCall", "leaveCall"] {
            let res = client
                .post(format!("{url}/rtc/{action}?callId={call_id}"))
                .bearer_auth(&u.2)
                .send()
                .await?;
            anyhow::ensure!(
                res.status().is_success(),
                "{action} failed: {}",
                res.status()
            );
        }
    }
    Ok(call_id)
}

/// `pairs` SFU calls, user 2p calling user 2p+1, for the join-leave route.
async fn calls_of_pairs(
    client: &reqwest::Client,
    url: &str,
    t: &[(i64, String, String)],
    pairs: usize,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    anyhow::ensure!(t.len() >= 2 * pairs, "join-leave needs {} users", 2 * pairs);
    let mut calls = Vec::with_capacity(pairs);
    for p in 0..pairs {
        let body = format!(
            r#"{{"callTitle":"pair {p}","callType":"SFU","invitedContacts":[{{"userDbId":{}}}]}}"#,
            t[2 * p + 1].0
        );
        let log: serde_json::Value = create_call(client, url, &t[2 * p].2, body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        calls.push(log["callId"].as_str().unwrap_or_default().parse()?);
    }
    Ok(calls)
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let tokens = Arc::new(read_tokens(&a.server.tokens)?);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(30))
        .build()?;
    let call_id = if a.route == Route::Get {
        Some(call_with_50_events(&client, &a.server.url, &tokens).await?)
    } else {
        None
    };
    let calls = if a.route == Route::JoinLeave {
        calls_of_pairs(&client, &a.server.url, &tokens, a.concurrency.unwrap_or(64)).await?
    } else {
        Vec::new()
    };
    let target = Target {
        client,
        url: a.server.url.clone(),
        route: a.route,
        tokens,
        call_id,
        calls: Arc::new(calls),
    };
    let (lat, ok, errors, dropped, mode) = match (a.rate, a.concurrency) {
        (Some(rate), _) => open_loop(&target, rate, &a).await,
        (None, Some(c)) => closed_loop(&target, c, &a).await,
        (None, None) => anyhow::bail!("give --rate or --concurrency"),
    };
    let route = match a.route {
        Route::Create => "createCall",
        Route::Get => "getCallLogById (50 events)",
        Route::Contacts => "contacts (directory)",
        Route::Health => "health",
        Route::JoinLeave => "joinCall/leaveCall",
    };
    let report = json!({
        "bench": "http", "route": route, "mode": mode, "offered_per_s": a.rate, "concurrency": a.concurrency,
        "ok": ok, "errors": errors.total(), "error_kinds": errors.0, "dropped": dropped,
        "achieved_per_s": (ok as f64 / a.duration_secs as f64).round(),
    });
    println!("{}", with(report, lat.summary()));
    Ok(())
}

async fn open_loop(t: &Target, rate: u64, a: &Args) -> (Latencies, u64, Errors, u64, &'static str) {
    let lat = Arc::new(Mutex::new(Latencies::default()));
    let (ok, errors, dropped, in_flight) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(std::sync::Mutex::new(Errors::default())),
        AtomicU64::new(0),
        Arc::new(AtomicU64::new(0)),
    );
    let start = Instant::now();
    let warm = Duration::from_secs(a.warmup_secs);
    let end = warm + Duration::from_secs(a.duration_secs);
    let mut sent: u64 = 0;
    loop {
        let elapsed = start.elapsed();
        if elapsed >= end {
            break;
        }
        // Request n is due at n/rate: the first at once.
        let due = (elapsed.as_secs_f64() * rate as f64) as u64 + 1;
        while sent < due {
            let scheduled = start + Duration::from_secs_f64(sent as f64 / rate as f64);
            let n = sent as usize;
            sent += 1;
            let measured = scheduled >= start + warm;
            if in_flight.load(Ordering::Relaxed) >= a.max_in_flight {
                if measured {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (t, lat, ok, errors, in_flight) = (
                t.clone(),
                lat.clone(),
                ok.clone(),
                errors.clone(),
                in_flight.clone(),
            );
            tokio::spawn(async move {
                let sent = t.send(n).await;
                let took = scheduled.elapsed();
                in_flight.fetch_sub(1, Ordering::Relaxed);
                if measured {
                    match sent {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            lat.lock().await.record(took);
                        }
                        Err(kind) => errors.lock().expect("not poisoned").add(kind),
                    }
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while in_flight.load(Ordering::Relaxed) > 0 && start.elapsed() < end + Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lat = std::mem::take(&mut *lat.lock().await);
    (
        lat,
        ok.load(Ordering::Relaxed),
        std::mem::take(&mut *errors.lock().expect("not poisoned")),
        dropped.load(Ordering::Relaxed),
        "open loop",
    )
}

async fn closed_loop(
    t: &Target,
    concurrency: usize,
    a: &Args,
) -> (Latencies, u64, Errors, u64, &'static str) {
    let start = Instant::now();
    let warm = start + Duration::from_secs(a.warmup_secs);
    let end = warm + Duration::from_secs(a.duration_secs);
    let mut tasks = Vec::new();
    for w in 0..concurrency {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut ok, mut errors, mut n) =
                (Latencies::default(), 0u64, Errors::default(), w);
            loop {
                let begun = Instant::now();
                if begun >= end {
                    break;
                }
                let sent = t.send(n).await;
                n += concurrency;
                if begun >= warm && Instant::now() <= end {
                    match sent {
                        Ok(()) => {
                            ok += 1;
                            lat.record(begun.elapsed());
                        }
                        Err(kind) => errors.add(kind),
                    }
                }
            }
            (lat, ok, errors)
        }));
    }
    let (mut lat, mut ok, mut errors) = (Latencies::default(), 0, Errors::default());
    for task in tasks {
        if let Ok((l, o, e)) = task.await {
            lat.merge(&l);
            ok += o;
            errors.merge(e);
        }
    }
    (lat, ok, errors, 0, "saturation")
}
