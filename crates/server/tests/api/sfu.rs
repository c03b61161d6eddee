//! SFU calls through a real node: `sfu` frames on the WebSocket, media over the
//! node's UDP socket, scripted str0m participants (callhub_sfu::client) at both
//! ends, and the call rules deciding who may send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use callhub_core::{CallType, Role};
use callhub_sfu::client::Participant;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use uuid::Uuid;

use crate::helpers::*;
use crate::sockets::{RawWs, next_text, raw_socket, raw_socket_at};

/// A participant with its socket to a node and its UDP socket.
pub(crate) struct Peer {
    pub contact: i64,
    call: Uuid,
    // Used by the multi-node tests (PostgreSQL only).
    #[cfg_attr(not(postgres_tests), allow(dead_code))]
    token: String,
    ws: RawWs,
    /// The node closed the socket.
    pub closed: bool,
    udp: UdpSocket,
    local: SocketAddr,
    pub p: Participant,
    pub errors: Vec<String>,
}

impl Peer {
    /// Opens a socket to the node at `url` and offers.
    pub async fn open(url: &str, token: String, call: Uuid, contact: i64) -> Peer {
        let ws = raw_socket_at(url, &token).await;
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let local = udp.local_addr().unwrap();
        let (p, offer) = Participant::new(local, Instant::now(), None);
        let mut peer = Peer {
            contact,
            call,
            token,
            ws,
            closed: false,
            udp,
            local,
            p,
            errors: vec![],
        };
        peer.send_sfu(offer).await;
        peer
    }

    /// What a client does when its node goes or the SFU asks: a new connection
    /// (a socket to `url` if given), offered again.
    #[cfg_attr(not(postgres_tests), allow(dead_code))]
    pub async fn renew(&mut self, url: Option<&str>) {
        if let Some(url) = url {
            self.ws = raw_socket_at(url, &self.token).await;
            self.closed = false;
        }
        let (p, offer) = Participant::new(self.local, Instant::now(), None);
        self.p = p;
        self.send_sfu(offer).await;
    }

    /// What this participant sent, received and was told: for a failure's message.
    pub fn report(&self) -> String {
        let p = &self.p;
        format!(
            "contact {}: connected {}, sent {} video / {} audio frames, {} keyframes asked of it, \
             paused {:?}, {} tracks listed, received {:?}, errors {:?}",
            self.contact,
            p.rtc.is_connected(),
            p.video_sent,
            p.audio_sent,
            p.keyframes_asked,
            p.paused,
            p.tracks.len(),
            p.received,
            self.errors
        )
    }

    async fn send_sfu(&mut self, payload: Value) {
        let frame = json!({"type": "sfu", "callId": self.call, "payload": payload});
        self.ws
            .send(WsMessage::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    /// One round: frames from the server, datagrams, time.
    async fn step(&mut self) {
        while let Some(next) = self.ws.next().now_or_never() {
            let m = match next {
                Some(Ok(m)) => m,
                _ => {
                    self.closed = true;
                    break;
                }
            };
            if let WsMessage::Close(_) = m {
                self.closed = true;
                break;
            }
            let WsMessage::Text(t) = m else { continue };
            let f: Value = serde_json::from_str(t.as_str()).unwrap();
            match f["type"].as_str() {
                Some("sfu") => {
                    assert_eq!(f["callId"], self.call.to_string());
                    if let Some(answer) = self.p.signal(&f["payload"]).unwrap() {
                        self.send_sfu(answer).await;
                    }
                }
                Some("error") => self
                    .errors
                    .push(f["detail"].as_str().unwrap_or_default().to_owned()),
                _ => {}
            }
        }
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = self.udp.try_recv_from(&mut buf) {
            self.p.receive(Instant::now(), from, self.local, &buf[..n]);
        }
        let mut out = vec![];
        self.p.poll(Instant::now(), &mut out);
        for (to, bytes) in out {
            let _ = self.udp.send_to(&bytes, to).await;
        }
    }
}

/// Runs the peers until `done` holds (answers the time it took) or `limit` passes.
pub(crate) async fn run(
    peers: &mut [&mut Peer],
    limit: Duration,
    done: impl Fn(&[&mut Peer]) -> bool,
) -> Option<Duration> {
    let began = Instant::now();
    while began.elapsed() < limit {
        for p in peers.iter_mut() {
            p.step().await;
        }
        if done(peers) {
            return Some(began.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// Sends a frame and answers the detail of the `error` frame that follows.
async fn error_after(ws: &mut RawWs, text: String) -> String {
    ws.send(WsMessage::Text(text.into())).await.unwrap();
    loop {
        let f = next_text(ws).await;
        if f["type"] == "error" {
            return f["detail"].as_str().unwrap().to_owned();
        }
        assert_ne!(
            f["type"], "sfu",
            "an sfu frame went to someone refused: {f}"
        );
    }
}

backend_tests! {
    async fn two_participants_see_and_hear_each_other_through_the_node(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.gauge_refresh = Duration::from_millis(100)).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        let a_id = alice.rtc().join_call(call.call_id).await.unwrap().media.contact_id;
        let joined = bob.rtc().join_call(call.call_id).await.unwrap();
        assert_eq!(joined.media.call_type, CallType::Sfu);
        let b_id = joined.media.contact_id;
        let mut a = Peer::open(&app.url, alice.token().await, call.call_id, a_id).await;
        let mut b = Peer::open(&app.url, bob.token().await, call.call_id, b_id).await;
        let took = run(&mut [&mut a, &mut b], Duration::from_secs(15), |p| p[0].p.sees(b_id) && p[1].p.sees(a_id)).await;
        assert!(took.is_some(), "no video both ways within 15 s:\n{}\n{}", a.report(), b.report());
        run(&mut [&mut a, &mut b], Duration::from_secs(1), |_| false).await;
        for (p, other) in [(&a, b_id), (&b, a_id)] {
            let r = &p.p.received[&other];
            assert!(r.video_frames >= 15 && r.audio_frames >= 25, "{} got {r:?} from {other}", p.contact);
            let listed: Vec<_> = p.p.tracks.values().map(|t| (t.contact, t.kind.as_str(), t.source.as_str())).collect();
            assert!(listed.contains(&(other, "video", "camera")) && listed.contains(&(other, "audio", "camera")), "{listed:?}");
        }
        assert!(a.errors.is_empty() && b.errors.is_empty(), "{:?} {:?}", a.errors, b.errors);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(metric(&app.url, "callhub_sfu_participants").await, 2.0);
        assert!(metric(&app.url, "callhub_sfu_frames_forwarded_total").await > 30.0);

        // Bob hangs up: his tracks end for Alice, and nothing of his arrives any more.
        bob.rtc().leave_call(call.call_id).await.unwrap();
        run(&mut [&mut a], Duration::from_secs(5), |p| p[0].p.tracks.values().all(|t| t.contact != b_id)).await
            .expect("Alice's track list still has Bob 5 s after he left");
        b.p.sending = false;
        run(&mut [&mut a], Duration::from_millis(300), |_| false).await;
        let before = a.p.received[&b_id].video_frames;
        run(&mut [&mut a, &mut b], Duration::from_secs(1), |_| false).await;
        assert_eq!(a.p.received[&b_id].video_frames, before, "Bob's video still arrives after he left");

        // The call ends: its session and memory go.
        alice.rtc().end_call(call.call_id).await.unwrap();
        let gone = async {
            loop {
                if metric(&app.url, "callhub_sfu_calls").await == 0.0 { break; }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), gone).await.expect("the SFU still holds the ended call");
        assert_eq!(app.server.app.sfu.stats().participants, 0);
    }

    async fn sfu_frames_reach_the_sfu_only_from_joined_participants_of_sfu_calls(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let carol = app.user("carol", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        let mesh = alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        alice.rtc().join_call(call.call_id).await.unwrap();
        alice.rtc().join_call(mesh.call_id).await.unwrap();
        let (_, offer) = Participant::new("127.0.0.1:9".parse().unwrap(), Instant::now(), None);
        let frame = |call: Uuid, payload: &Value| json!({"type": "sfu", "callId": call, "payload": payload}).to_string();
        let mut b = raw_socket(&app, &bob.token().await).await;
        let mut c = raw_socket(&app, &carol.token().await).await;
        let mut a = raw_socket(&app, &alice.token().await).await;
        // Bob is invited but has not joined.
        assert!(error_after(&mut b, frame(call.call_id, &offer)).await.contains("not joined"));
        // Carol is not in the call at all.
        assert!(error_after(&mut c, frame(call.call_id, &offer)).await.contains("no such call"));
        // A MESH call has no SFU.
        assert!(error_after(&mut a, frame(mesh.call_id, &offer)).await.contains("MESH"));
        // Payloads the SFU cannot use.
        for (bad, needle) in [
            (json!({"sdp": {"type": "offer", "sdp": "not sdp"}}), "not an SDP offer"),
            (json!({"sdp": {"type": "answer", "sdp": "v=0"}}), "answer"),
            (json!({"hello": 1}), "payload"),
            // Signaling may be larger than other frames: an SDP grows with the call.
            (json!({"sdp": {"type": "offer", "sdp": "x".repeat(200 * 1024)}}), "not an SDP offer"),
        ] {
            let detail = error_after(&mut a, frame(call.call_id, &bad)).await;
            assert!(detail.starts_with("sfu refused") && detail.contains(needle), "{bad}: {detail}");
        }
        assert_eq!(app.server.app.sfu.stats().participants, 0, "nothing refused made a session");
        // Alice, joined, gets the SFU's answer, with the node's UDP address as its candidate.
        a.send(WsMessage::Text(frame(call.call_id, &offer).into())).await.unwrap();
        let answer = loop {
            let f = next_text(&mut a).await;
            if f["type"] == "sfu" { break f; }
        };
        assert_eq!(answer["callId"], call.call_id.to_string());
        assert_eq!(answer["payload"]["sdp"]["type"], "answer");
        let sdp = answer["payload"]["sdp"]["sdp"].as_str().unwrap();
        let port = app.server.app.sfu.local.port().to_string();
        assert!(sdp.contains("a=ice-lite") && sdp.lines().any(|l| l.starts_with("a=candidate") && l.contains("127.0.0.1") && l.contains(&port)), "{sdp}");
        // The node publishes its SFU's figures twice a second.
        let one = async {
            while app.server.app.sfu.stats().participants != 1 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(3), one).await.expect("Alice's session is not counted");
    }

    async fn an_sfu_call_is_claimed_by_one_node_at_a_time(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[])).await.unwrap();
        let store = &app.server.app.store;
        assert_eq!(store.sfu_node(call.call_id).await.unwrap(), None);
        // The first claim wins; a second made from the same view finds the winner.
        assert_eq!(store.claim_sfu_node(call.call_id, "n1", None).await.unwrap(), "n1");
        assert_eq!(store.claim_sfu_node(call.call_id, "n2", None).await.unwrap(), "n1");
        // Taking over from a node known to be gone succeeds once.
        assert_eq!(store.claim_sfu_node(call.call_id, "n2", Some("n1")).await.unwrap(), "n2");
        assert_eq!(store.claim_sfu_node(call.call_id, "n3", Some("n1")).await.unwrap(), "n2");
        // A stopping node gives its calls up.
        assert_eq!(store.release_sfu_node("n2").await.unwrap(), 1);
        assert_eq!(store.sfu_node(call.call_id).await.unwrap(), None);
        assert!(matches!(store.sfu_node(Uuid::new_v4()).await, Err(callhub_store::StoreError::NotFound)));
    }
}
