//! The same load as `sfu` through Janus VideoRoom, the anchor callhub is measured
//! against: each participant has a Janus session over the HTTP API, a publisher
//! handle (its str0m peer offers audio and video) and a subscriber handle (a
//! receive-only str0m peer answering Janus's offer of every other feed).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::sfu::{Leg, Load, Member, measure, read_clip, rss_kib, spawn_leg};
use callhub_sfu::client::Participant;

#[derive(clap::Args)]
pub struct Args {
    /// Janus's HTTP API.
    #[arg(long, default_value = "http://127.0.0.1:8088/janus")]
    url: String,
    #[command(flatten)]
    load: Load,
}

struct Janus {
    client: reqwest::Client,
    url: String,
}

fn transaction() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl Janus {
    async fn post(&self, path: &str, mut body: Value) -> anyhow::Result<Value> {
        body["transaction"] = json!(transaction());
        let v: Value = self
            .client
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if v["janus"] == "error" {
            anyhow::bail!("Janus answered {v} to {body}");
        }
        Ok(v)
    }

    async fn session(&self) -> anyhow::Result<u64> {
        let v = self.post("", json!({"janus": "create"})).await?;
        v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no session id in {v}"))
    }

    async fn attach(&self, session: u64) -> anyhow::Result<u64> {
        let v = self
            .post(
                &format!("/{session}"),
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
            )
            .await?;
        v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no handle id in {v}"))
    }

    /// A plugin message; `jsep` rides along when given. Answers Janus's reply (an
    /// `ack` for asynchronous requests, whose results come as events).
    async fn message(
        &self,
        session: u64,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut m = json!({"janus": "message", "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let v = self.post(&format!("/{session}/{handle}"), m).await?;
        if let Some(e) = v["plugindata"]["data"].get("error") {
            anyhow::bail!("VideoRoom refused: {e}");
        }
        Ok(v)
    }

    /// The peer's candidates were all in its SDP.
    async fn candidates_done(&self, session: u64, handle: u64) -> anyhow::Result<()> {
        self.post(
            &format!("/{session}/{handle}"),
            json!({"janus": "trickle", "candidate": {"completed": true}}),
        )
        .await
        .map(|_| ())
    }
}

/// What a participant's long poll hands on.
enum Event {
    /// The publisher's answer.
    Answer(usize, Value),
    /// The subscriber's offer with its streams.
    Offer(usize, Value, Vec<Value>),
    /// The publisher's PeerConnection is up (its feed can be subscribed to).
    Up(usize),
}

/// Long-polls one session's events until `stop`.
fn poll_events(
    janus: &Janus,
    who: usize,
    session: u64,
    publisher: u64,
    events: mpsc::UnboundedSender<Event>,
    mut stop: watch::Receiver<bool>,
) {
    let (client, url) = (
        janus.client.clone(),
        format!("{}/{session}?maxev=10", janus.url),
    );
    tokio::spawn(async move {
        loop {
            let got = tokio::select! {
                r = client.get(&url).send() => r,
                _ = stop.changed() => break,
            };
            let Ok(r) = got else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(v) = r.json::<Value>().await else {
                continue;
            };
            let list = match v {
                Value::Array(l) => l,
                one => vec![one],
            };
            for e in list {
                if e["janus"] == "webrtcup" && e["sender"].as_u64() == Some(publisher) {
                    let _ = events.send(Event::Up(who));
                    continue;
                }
                let Some(jsep) = e.get("jsep").cloned() else {
                    if e["janus"] == "event"
                        && let Some(err) = e["plugindata"]["data"].get("error")
                    {
                        eprintln!("participant {who}: VideoRoom error {err}");
                    }
                    continue;
                };
                if std::env::var_os("SFU_DEBUG").is_some() {
                    eprintln!("participant {who} event: {e}");
                }
                let sender = e["sender"].as_u64();
                let ev = if sender == Some(publisher) {
                    Event::Answer(who, jsep)
                } else {
                    let streams = e["plugindata"]["data"]["streams"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    Event::Offer(who, jsep, streams)
                };
                let _ = events.send(ev);
            }
        }
    });
}

pub async fn run(a: Args) -> anyhow::Result<()> {
    let load = &a.load;
    let n = load.participants;
    anyhow::ensure!(n >= 2, "a room needs two participants");
    let clip = read_clip(&load.clip)?;
    let janus = Janus {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(4 * n)
            .build()?,
        url: a.url.clone(),
    };
    let rss_before = load.server_pid.and_then(rss_kib);
    let begun = Instant::now();

    // A room with no bitrate cap: Janus forwards what is sent, as callhub does.
    let admin = janus.session().await?;
    let admin_handle = janus.attach(admin).await?;
    let room = 1000 + u64::from(std::process::id() % 100_000);
    let created = janus
        .message(
            admin,
            admin_handle,
            json!({"request": "create", "room": room, "publishers": n + 1, "bitrate": 0,
                   "audiocodec": "opus", "videocodec": "vp8", "fir_freq": 0,
                   "notify_joining": false, "audiolevel_event": false}),
            None,
        )
        .await?;
    anyhow::ensure!(
        created["plugindata"]["data"]["videoroom"] == "created",
        "room not created: {created}"
    );

    let (stop, stopped) = watch::channel(false);
    let (events, mut event_rx) = mpsc::unbounded_channel::<Event>();
    // Answers of the str0m peers, tagged (participant, is_subscriber).
    let (answers, mut answer_rx) = mpsc::unbounded_channel::<((usize, bool), Value)>();
    let mut legs: Vec<Leg> = vec![];
    let mut members = vec![];
    let mut handles = vec![];
    for i in 0..n {
        let session = janus.session().await?;
        let publisher = janus.attach(session).await?;
        let subscriber = janus.attach(session).await?;
        poll_events(
            &janus,
            i,
            session,
            publisher,
            events.clone(),
            stopped.clone(),
        );
        let clip = clip.clone();
        let mut offer = Value::Null;
        let send_leg = spawn_leg(
            load.local_ip,
            |local| {
                let (p, o) = load.sender(i, local, clip);
                offer = o;
                p
            },
            (i, false),
            answers.clone(),
            stopped.clone(),
        )
        .await?;
        let recv_leg = spawn_leg(
            load.local_ip,
            |local| Participant::receiver(local, Instant::now()),
            (i, true),
            answers.clone(),
            stopped.clone(),
        )
        .await?;
        let feed = i as u64 + 1;
        if std::env::var_os("SFU_DEBUG").is_some() {
            eprintln!("participant {i} offers: {offer}");
        }
        janus
            .message(
                session,
                publisher,
                json!({"request": "joinandconfigure", "ptype": "publisher", "room": room,
                       "id": feed, "display": format!("p{i}"), "audio": true, "video": true}),
                Some(offer["sdp"].clone()),
            )
            .await?;
        janus.candidates_done(session, publisher).await?;
        members.push(Member {
            contact: feed as i64,
            sender: legs.len(),
            receivers: vec![legs.len() + 1],
        });
        legs.push(send_leg);
        legs.push(recv_leg);
        handles.push((session, publisher, subscriber));
    }

    // Every publisher answered: subscribe everyone to everyone else at once.
    // (Janus refuses a subscription to a feed whose PeerConnection is not up.)
    let (mut published, mut up) = (vec![false; n], vec![false; n]);
    let limit = begun + Duration::from_secs(load.connect_secs);
    while up.iter().any(|p| !p) && Instant::now() < limit {
        let wait = tokio::time::timeout(Duration::from_millis(200), event_rx.recv()).await;
        match wait {
            Ok(Some(Event::Answer(i, jsep))) => {
                let _ = legs[members[i].sender].signals.send(json!({"sdp": jsep}));
                published[i] = true;
            }
            Ok(Some(Event::Up(i))) => up[i] = true,
            _ => {}
        }
    }
    if std::env::var_os("SFU_DEBUG").is_some() {
        for (i, l) in legs.iter().enumerate() {
            let p = l.peer.lock().expect("not poisoned");
            eprintln!(
                "leg {i}: {} datagrams in, {} out, connected {}, alive {}",
                l.datagrams_in.load(std::sync::atomic::Ordering::Relaxed),
                l.datagrams_out.load(std::sync::atomic::Ordering::Relaxed),
                p.rtc.is_connected(),
                p.rtc.is_alive()
            );
        }
    }
    anyhow::ensure!(
        up.iter().all(|p| *p),
        "not every publisher's PeerConnection came up ({} of {n} answered, {} up)",
        published.iter().filter(|p| **p).count(),
        up.iter().filter(|p| **p).count()
    );
    for (i, &(session, _, subscriber)) in handles.iter().enumerate() {
        let streams: Vec<Value> = (0..n)
            .filter(|&j| j != i)
            .map(|j| json!({"feed": j as u64 + 1}))
            .collect();
        janus
            .message(
                session,
                subscriber,
                json!({"request": "join", "ptype": "subscriber", "room": room,
                       "streams": streams, "use_msid": false}),
                None,
            )
            .await?;
    }

    // Janus's offers go to the receive-only peers (with their streams as `tracks`),
    // their answers back with `start`.
    let signaling = {
        let legs_signals: Vec<_> = legs.iter().map(|l| l.signals.clone()).collect();
        let janus = Janus {
            client: janus.client.clone(),
            url: janus.url.clone(),
        };
        let handles = handles.clone();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    e = event_rx.recv() => match e {
                        Some(Event::Offer(i, jsep, streams)) => {
                            let tracks: Vec<Value> = streams
                                .iter()
                                .filter_map(|s| Some(json!({
                                    "mid": s.get("mid")?.as_str()?,
                                    "contactId": s.get("feed_id")?.as_i64()?,
                                    "kind": s.get("type")?.as_str()?,
                                    "source": "camera",
                                })))
                                .collect();
                            let _ = legs_signals[2 * i + 1].send(json!({"tracks": tracks}));
                            let _ = legs_signals[2 * i + 1].send(json!({"sdp": jsep}));
                        }
                        Some(Event::Answer(i, jsep)) => {
                            let _ = legs_signals[2 * i].send(json!({"sdp": jsep}));
                        }
                        Some(Event::Up(_)) => {}
                        None => break,
                    },
                    a = answer_rx.recv() => match a {
                        Some(((i, true), answer)) => {
                            let (session, _, subscriber) = handles[i];
                            if let Err(e) = janus
                                .message(session, subscriber, json!({"request": "start"}), Some(answer["sdp"].clone()))
                                .await
                            {
                                eprintln!("participant {i}: start refused: {e}");
                            }
                            let _ = janus.candidates_done(session, subscriber).await;
                        }
                        Some(((i, false), _)) => eprintln!("participant {i}: the publisher was offered to"),
                        None => break,
                    },
                    _ = stopped.changed() => break,
                }
            }
        })
    };

    let figures = measure(load, &legs, &members, begun, rss_before, async || None).await;
    let mut out = json!({"bench": "sfu", "server": "janus"});
    if let (Some(o), Value::Object(f)) = (out.as_object_mut(), figures) {
        o.extend(f);
    }
    println!("{out}");
    let _ = stop.send(true);
    signaling.abort();
    for &(session, _, _) in &handles {
        let _ = janus
            .post(&format!("/{session}"), json!({"janus": "destroy"}))
            .await;
    }
    let _ = janus
        .message(
            admin,
            admin_handle,
            json!({"request": "destroy", "room": room}),
            None,
        )
        .await;
    let _ = janus
        .post(&format!("/{admin}"), json!({"janus": "destroy"}))
        .await;
    Ok(())
}
