//! The SFU core driven in simulated time, with str0m peers as the clients: no
//! sockets, no threads, a clock that moves only when the test moves it. Each
//! client sends a VP8-like video (keyframes only when asked, and the first frame)
//! and Opus-like audio with audio levels; the network delivers after 5 ms, and a
//! client's downlink can be capped (a queue drained at a rate, dropping past 400 ms).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callhub_sfu::str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use callhub_sfu::str0m::crypto::CryptoProvider;
use callhub_sfu::str0m::media::{Direction, MediaKind, MediaTime, Mid, Simulcast, SimulcastLayer};
use callhub_sfu::str0m::net::{Protocol, Receive};
use callhub_sfu::str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};
use callhub_sfu::{Output, PeerId, Sfu};
use serde_json::{Value, json};
use uuid::Uuid;

const SFU: &str = "10.0.0.1:50000";
const LATENCY: Duration = Duration::from_millis(5);
const QUEUE_LIMIT: Duration = Duration::from_millis(400);

struct Client {
    contact: i64,
    addr: SocketAddr,
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    video: Mid,
    audio: Mid,
    /// Simulcast layers negotiated (empty: one video).
    rids: Vec<&'static str>,
    /// The layers actually sent after the first frame (a browser with a small
    /// camera sends only some of them).
    live: Option<Vec<&'static str>>,
    frame: u64,
    next_video: Instant,
    next_audio: Instant,
    keyframe_asked: bool,
    /// The last `tracks` list, by mid.
    tracks: HashMap<String, (i64, String, String)>,
    /// Per sender contact: video frames received, and whether one was a keyframe
    /// before any other (a decoder could start).
    video_from: HashMap<i64, Frames>,
    audio_from: HashMap<i64, u64>,
    speakers: Vec<i64>,
    /// Downlink cap in bit/s, and when the link is next free.
    cap: Option<u64>,
    link_free: Instant,
    loud: bool,
    /// Sends digital silence, as a browser's muted microphone does.
    muted: bool,
    sending: bool,
    /// Datagrams its capped downlink dropped (its queue was full).
    dropped: u64,
    /// How many more of the SFU's video datagrams to it the wire loses.
    lose_video: u32,
    /// The world's start: frames carry their send time from it.
    epoch: Instant,
    /// The last `paused` list the SFU sent.
    paused: Vec<String>,
    /// Per media SSRC the SFU sends: the last sequence number, and how many
    /// packets came with another than the next (the SFU's legs must run on
    /// without gaps where it leaves packets out; this wire loses nothing).
    last_seq: HashMap<u32, u16>,
    seq_breaks: u64,
}

#[derive(Default, Debug, Clone)]
struct Frames {
    count: u64,
    first_was_key: Option<bool>,
    first_at: Option<Instant>,
    /// The layer tag of the frames received lately (the sender writes its rid into byte 1).
    last_layer: u8,
    layers: Vec<(Instant, u8, bool)>,
    /// When each frame arrived, and how long after it was sent.
    delays: Vec<(Instant, Duration)>,
}

struct World {
    now: Instant,
    epoch: Instant,
    call: Uuid,
    sfu: Sfu,
    clients: Vec<Client>,
    /// Datagrams in flight: when they arrive, from, to, bytes.
    wire: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    crypto: Arc<CryptoProvider>,
}

impl World {
    fn new() -> Self {
        let now = Instant::now();
        let sfu_addr: SocketAddr = SFU.parse().unwrap();
        Self {
            now,
            epoch: now,
            call: Uuid::new_v4(),
            sfu: Sfu::new(sfu_addr, sfu_addr, now),
            clients: vec![],
            wire: VecDeque::new(),
            crypto: Arc::new(callhub_sfu::str0m::crypto::from_feature_flags()),
        }
    }

    fn client(&mut self, contact: i64) -> &mut Client {
        self.clients
            .iter_mut()
            .find(|c| c.contact == contact)
            .expect("a client of the test")
    }

    fn peer(&self, contact: i64) -> PeerId {
        PeerId {
            call: self.call,
            contact,
        }
    }

    /// A client opens its peer connection: microphone, camera (simulcast with `rids`), offer.
    fn join(&mut self, contact: i64, rids: &[&'static str]) {
        let addr: SocketAddr = format!("10.0.1.{contact}:4000").parse().unwrap();
        let mut rtc = Rtc::builder()
            .set_crypto_provider(self.crypto.clone())
            .enable_raw_packets(true)
            .build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut change = rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let simulcast = (!rids.is_empty()).then(|| {
            let mut s = Simulcast::new();
            for rid in rids {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        let (offer, pending) = change.apply().unwrap();
        self.clients.push(Client {
            contact,
            addr,
            rtc,
            pending: Some(pending),
            video,
            audio,
            rids: rids.to_vec(),
            live: None,
            frame: 0,
            next_video: self.now,
            next_audio: self.now,
            keyframe_asked: true,
            tracks: HashMap::new(),
            video_from: HashMap::new(),
            audio_from: HashMap::new(),
            speakers: vec![],
            cap: None,
            link_free: self.now,
            loud: false,
            muted: false,
            sending: true,
            dropped: 0,
            lose_video: 0,
            epoch: self.epoch,
            paused: vec![],
            last_seq: HashMap::new(),
            seq_breaks: 0,
        });
        let payload = json!({"sdp": {"type": "offer", "sdp": offer.to_sdp_string()}});
        self.sfu
            .handle_signal(self.now, self.peer(contact), &payload)
            .unwrap();
        self.pump_sfu();
    }

    /// Takes the SFU's output: datagrams onto the wire, frames to the clients.
    fn pump_sfu(&mut self) {
        let sfu_addr: SocketAddr = SFU.parse().unwrap();
        while let Some(out) = self.sfu.poll_output() {
            match out {
                Output::Transmit {
                    destination,
                    contents,
                    ..
                } => {
                    self.send(sfu_addr, destination, contents);
                }
                Output::Signal { to, payload } => self.deliver_signal(to.contact, payload),
            }
        }
    }

    fn deliver_signal(&mut self, contact: i64, payload: Value) {
        let now = self.now;
        let call = self.call;
        let c = self.client(contact);
        if let Some(tracks) = payload.get("tracks") {
            c.tracks = tracks
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["mid"].as_str().unwrap().to_owned(),
                        (
                            t["contactId"].as_i64().unwrap(),
                            t["kind"].as_str().unwrap().to_owned(),
                            t["source"].as_str().unwrap().to_owned(),
                        ),
                    )
                })
                .collect();
            return;
        }
        if let Some(paused) = payload.get("paused") {
            c.paused = paused
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_owned())
                .collect();
            return;
        }
        if let Some(who) = payload.get("activeSpeaker") {
            c.speakers.push(who.as_i64().unwrap());
            return;
        }
        let sdp = &payload["sdp"];
        let text = sdp["sdp"].as_str().unwrap();
        match sdp["type"].as_str().unwrap() {
            "answer" => {
                let pending = c.pending.take().expect("an offer of the client waits");
                c.rtc
                    .sdp_api()
                    .accept_answer(pending, SdpAnswer::from_sdp_string(text).unwrap())
                    .unwrap();
            }
            "offer" => {
                assert!(
                    c.pending.is_none(),
                    "the test's clients never offer during an SFU offer"
                );
                let answer = c
                    .rtc
                    .sdp_api()
                    .accept_offer(SdpOffer::from_sdp_string(text).unwrap())
                    .unwrap();
                let payload = json!({"sdp": {"type": "answer", "sdp": answer.to_sdp_string()}});
                let peer = PeerId { call, contact };
                self.sfu.handle_signal(now, peer, &payload).unwrap();
                self.pump_sfu();
            }
            other => panic!("unexpected sdp type {other}"),
        }
    }

    /// Puts a datagram on the wire; a capped downlink queues it (or drops it).
    fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
        let mut at = self.now + LATENCY;
        if let Some(c) = self.clients.iter_mut().find(|c| c.addr == to) {
            // Video, or the estimator's padding: audio is 80 bytes of payload.
            if c.lose_video > 0 && bytes.len() > 400 && from == SFU.parse().unwrap() {
                c.lose_video -= 1;
                return;
            }
            if let Some(cap) = c.cap {
                let start = c.link_free.max(self.now);
                if start.saturating_duration_since(self.now) > QUEUE_LIMIT {
                    c.dropped += 1; // the queue is full
                    return;
                }
                c.link_free =
                    start + Duration::from_nanos(bytes.len() as u64 * 8 * 1_000_000_000 / cap);
                at = c.link_free + LATENCY;
            }
        }
        let i = self.wire.partition_point(|(t, ..)| *t <= at);
        self.wire.insert(i, (at, from, to, bytes));
    }

    /// Runs the world for `d` in steps of a millisecond.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(1);
            self.tick();
        }
    }

    fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&World) -> bool,
    ) -> Option<Duration> {
        let began = self.now;
        while self.now < began + limit {
            self.now += Duration::from_millis(1);
            self.tick();
            if done(self) {
                return Some(self.now - began);
            }
        }
        None
    }

    fn tick(&mut self) {
        let now = self.now;
        let sfu_addr: SocketAddr = SFU.parse().unwrap();
        let mut outgoing = vec![];
        // Deliver what has arrived.
        while self.wire.front().is_some_and(|(t, ..)| *t <= now) {
            let (_, from, to, bytes) = self.wire.pop_front().unwrap();
            if to == sfu_addr {
                self.sfu.handle_receive(now, from, &bytes);
                self.pump_sfu();
            } else if let Some(c) = self.clients.iter_mut().find(|c| c.addr == to) {
                let input = Input::Receive(
                    now,
                    Receive {
                        proto: Protocol::Udp,
                        source: from,
                        destination: to,
                        contents: bytes.as_slice().try_into().unwrap(),
                    },
                );
                c.rtc.handle_input(input).unwrap();
                // As str0m wants it: polled after each input (DTLS's keys are
                // set as its output is polled).
                c.drain(now, &mut outgoing);
            }
        }
        if self.sfu.poll_timeout() <= now {
            self.sfu.handle_timeout(now);
            self.pump_sfu();
        }
        // Clients: send media, take their output.
        for c in &mut self.clients {
            c.rtc.handle_input(Input::Timeout(now)).unwrap();
            if c.sending && c.rtc.is_connected() {
                c.send_media(now);
            }
            c.drain(now, &mut outgoing);
        }
        for (from, to, bytes) in outgoing {
            self.send(from, to, bytes);
        }
    }

    /// A call of 1 to `n` (no simulcast), all joining at once, run until each
    /// sees every other: the world, and how long that took (None: not in 5 s).
    fn all_join(n: i64) -> (Self, Option<Duration>) {
        let mut w = World::new();
        for c in 1..=n {
            w.join(c, &[]);
        }
        let took = w.run_until(Duration::from_secs(5), |w| {
            (1..=n).all(|r| (1..=n).filter(|&s| s != r).all(|s| w.sees(r, s)))
        });
        (w, took)
    }

    /// A call of 1, 2 and 3 (no simulcast), run until each sees the other two.
    fn three_who_see_each_other() -> Self {
        let (w, took) = Self::all_join(3);
        assert!(took.is_some(), "not everyone saw everyone within 5 s");
        w
    }

    fn audio_frames(&self, receiver: i64, sender: i64) -> u64 {
        self.clients
            .iter()
            .find(|c| c.contact == receiver)
            .and_then(|c| c.audio_from.get(&sender).copied())
            .unwrap_or(0)
    }

    fn video_frames(&self, receiver: i64, sender: i64) -> u64 {
        self.clients
            .iter()
            .find(|c| c.contact == receiver)
            .and_then(|c| c.video_from.get(&sender))
            .map_or(0, |f| f.count)
    }

    fn sees(&self, receiver: i64, sender: i64) -> bool {
        self.clients
            .iter()
            .find(|c| c.contact == receiver)
            .and_then(|c| c.video_from.get(&sender))
            .is_some_and(|f| f.count > 0 && f.first_was_key == Some(true))
    }
}

impl Client {
    /// Polls its session until it waits: events handled, datagrams to `out`
    /// as (from, to, bytes).
    fn drain(&mut self, now: Instant, out: &mut Vec<(SocketAddr, SocketAddr, Vec<u8>)>) {
        loop {
            match self.rtc.poll_output().unwrap() {
                RtcOutput::Timeout(_) => break,
                RtcOutput::Transmit(t) => out.push((self.addr, t.destination, t.contents.to_vec())),
                RtcOutput::Event(e) => self.event(e, now),
            }
        }
    }

    fn send_media(&mut self, now: Instant) {
        if now >= self.next_audio {
            self.next_audio = now + Duration::from_millis(20);
            let level = match (self.muted, self.loud) {
                (true, _) => -127,
                (false, true) => -20,
                (false, false) => -70,
            };
            let t = MediaTime::from_secs(0)
                + MediaTime::new(
                    self.frame * 960 / 3 * 2,
                    callhub_sfu::str0m::media::Frequency::FORTY_EIGHT_KHZ,
                );
            let w = self.rtc.writer(self.audio).unwrap();
            let pt = w.payload_params().next().unwrap().pt();
            w.audio_level(level, level > -100)
                .write(pt, now, t, vec![0xfc; 80])
                .unwrap();
        }
        if now >= self.next_video {
            self.next_video = now + Duration::from_millis(33);
            self.frame += 1;
            let key = std::mem::take(&mut self.keyframe_asked);
            let t = MediaTime::new(
                self.frame * 3000,
                callhub_sfu::str0m::media::Frequency::NINETY_KHZ,
            );
            let rids = match &self.live {
                Some(live) if self.frame > 1 => live.clone(),
                _ => self.rids.clone(),
            };
            let layers: Vec<Option<&str>> = if rids.is_empty() {
                vec![None]
            } else {
                rids.iter().map(|r| Some(*r)).collect()
            };
            for rid in layers {
                // VP8: bit 0 of the first byte clear is a keyframe. Byte 1 tags the layer.
                let size = match rid {
                    Some("h") => 3000,
                    Some("m") => 1200,
                    Some("l") => 300,
                    _ => 1500,
                };
                let mut data = vec![0x55u8; size];
                data[0] = if key { 0x10 } else { 0x11 };
                data[1] = rid.map_or(b'-', |r| r.as_bytes()[0]);
                let sent = (now - self.epoch).as_millis() as u32;
                data[2..6].copy_from_slice(&sent.to_le_bytes());
                let mut w = self.rtc.writer(self.video).unwrap();
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == callhub_sfu::str0m::format::Codec::Vp8)
                    .unwrap()
                    .pt();
                if let Some(rid) = rid {
                    w = w.rid(rid.into());
                }
                w.write(pt, now, t, data).unwrap();
            }
        }
    }

    fn event(&mut self, e: Event, now: Instant) {
        match e {
            Event::RawPacket(raw) => {
                let callhub_sfu::str0m::rtp::RawPacket::RtpRx(h, _) = *raw else {
                    return;
                };
                let media = self
                    .rtc
                    .codec_config()
                    .params()
                    .iter()
                    .any(|p| p.pt() == h.payload_type);
                if !media {
                    return; // RTX and probing have numbers of their own
                }
                let ssrc = *h.ssrc;
                if let Some(last) = self.last_seq.insert(ssrc, h.sequence_number)
                    && h.sequence_number != last.wrapping_add(1)
                {
                    self.seq_breaks += 1;
                }
            }
            Event::KeyframeRequest(_) => self.keyframe_asked = true,
            Event::MediaData(d) => {
                let Some((sender, kind, _)) = self.tracks.get(&d.mid.to_string()).cloned() else {
                    return;
                };
                if kind == "audio" {
                    *self.audio_from.entry(sender).or_default() += 1;
                    return;
                }
                let f = self.video_from.entry(sender).or_default();
                f.count += 1;
                f.first_was_key.get_or_insert(d.is_keyframe());
                f.first_at.get_or_insert(now);
                f.last_layer = d.data.get(1).copied().unwrap_or(0);
                f.layers.push((now, f.last_layer, d.is_keyframe()));
                if let Some(sent) = d.data.get(2..6) {
                    let sent = u32::from_le_bytes(sent.try_into().unwrap());
                    let sent = self.epoch + Duration::from_millis(sent.into());
                    f.delays.push((now, now.saturating_duration_since(sent)));
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_participant_gets_everyone_else_s_audio_and_video() {
    let mut w = World::three_who_see_each_other();
    w.run(Duration::from_secs(2));
    for r in 1..=3 {
        let c = w.clients.iter().find(|c| c.contact == r).unwrap();
        for s in (1..=3).filter(|&s| s != r) {
            let frames = c.video_from[&s].count;
            assert!(
                frames >= 50,
                "{r} got only {frames} video frames from {s} in 2 s"
            );
            assert!(w.audio_frames(r, s) >= 80, "{r} got little audio from {s}");
            let sources: Vec<_> = c
                .tracks
                .values()
                .filter(|t| t.0 == s)
                .map(|t| (t.1.as_str(), t.2.as_str()))
                .collect();
            assert!(
                sources.contains(&("video", "camera")) && sources.contains(&("audio", "camera")),
                "{sources:?}"
            );
        }
        assert!(
            !c.video_from.contains_key(&r),
            "nobody gets their own video back"
        );
    }
    let stats = w.sfu.stats();
    assert_eq!((stats.calls, stats.participants), (1, 3));
    assert!(stats.frames_forwarded > 500, "{stats:?}");
    for c in &w.clients {
        // Each video starts paused and resumes at a keyframe: the receiver's
        // numbers run on from its first packet all the same.
        assert_eq!(c.seq_breaks, 0, "{} saw sequence numbers jump", c.contact);
        assert!(c.last_seq.len() >= 4, "{}: {:?}", c.contact, c.last_seq);
    }
}

#[test]
fn video_the_wire_loses_on_the_way_to_a_receiver_is_resent_from_the_sfu_s_history() {
    let mut w = World::three_who_see_each_other();
    w.run(Duration::from_millis(500));
    // Receiver 1 loses packets of 2's and 3's video; 3 and 2 get the same
    // videos whole, as the reference.
    let before = [
        w.video_frames(1, 2),
        w.video_frames(3, 2),
        w.video_frames(1, 3),
        w.video_frames(2, 3),
    ];
    w.client(1).lose_video = 6;
    w.run(Duration::from_secs(2));
    assert_eq!(
        w.client(1).lose_video,
        0,
        "the wire lost fewer than 6 of them"
    );
    let got = |r, s, i: usize| w.video_frames(r, s) - before[i];
    for (sender, lossy, whole) in [
        (2, got(1, 2, 0), got(3, 2, 1)),
        (3, got(1, 3, 2), got(2, 3, 3)),
    ] {
        // A frame missing a packet never reaches the decoder: without the
        // SFU's retransmission each loss would cost one.
        assert!(
            lossy + 1 >= whole,
            "receiver 1 got {lossy} frames of {sender}'s video in 2 s, the other receiver {whole}"
        );
    }
}

#[test]
fn a_late_joiner_sees_everyone_at_once_from_a_keyframe() {
    let mut w = World::new();
    for c in 1..=3 {
        w.join(c, &[]);
    }
    w.run(Duration::from_secs(4));
    // The senders send keyframes only when asked: without the SFU's request the
    // newcomer would wait forever.
    w.join(4, &[]);
    let joined = w.now;
    let took = w.run_until(Duration::from_secs(3), |w| (1..=3).all(|s| w.sees(4, s)));
    let took = took.expect("the late joiner did not see all three within 3 s");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let c4 = w.clients.iter().find(|c| c.contact == 4).unwrap();
    for s in 1..=3 {
        let f = &c4.video_from[&s];
        assert_eq!(
            f.first_was_key,
            Some(true),
            "the first frame from {s} is a keyframe"
        );
        assert!(f.first_at.unwrap() >= joined);
    }
    // And the three see the newcomer.
    w.run_until(Duration::from_secs(3), |w| (1..=3).all(|r| w.sees(r, 4)))
        .expect("the three did not see the newcomer");
}

#[test]
fn a_leaver_s_tracks_end_for_the_others() {
    let mut w = World::new();
    for c in 1..=3 {
        w.join(c, &[]);
    }
    w.run_until(Duration::from_secs(5), |w| w.sees(1, 3) && w.sees(2, 3))
        .unwrap();
    w.sfu.leave(w.now, w.peer(3));
    w.pump_sfu();
    w.client(3).sending = false;
    w.run(Duration::from_millis(500));
    for r in [1, 2] {
        let c = w.clients.iter().find(|c| c.contact == r).unwrap();
        assert!(
            c.tracks.values().all(|t| t.0 != 3),
            "{r} still lists 3's tracks: {:?}",
            c.tracks
        );
        let stopped = c
            .rtc
            .media(c.tracks.keys().next().map(|m| m.as_str().into()).unwrap())
            .is_some();
        assert!(stopped);
    }
    let before = (w.video_frames(1, 3), w.video_frames(2, 3));
    w.run(Duration::from_secs(1));
    assert_eq!(
        (w.video_frames(1, 3), w.video_frames(2, 3)),
        before,
        "no frame of 3 after it left"
    );
    assert!(w.video_frames(1, 2) > 0 && w.video_frames(2, 1) > 0);
    assert_eq!(w.sfu.stats().participants, 2);
    // The call ends: nothing is left of it.
    w.sfu.end_call(w.call);
    assert_eq!((w.sfu.stats().calls, w.sfu.stats().participants), (0, 0));
    assert!(!w.sfu.has_call(w.call));
}

#[test]
fn a_bandwidth_cut_moves_a_receiver_to_a_lower_layer_at_a_keyframe() {
    let mut w = World::new();
    w.join(1, &["h", "m", "l"]);
    w.join(2, &[]);
    w.run_until(Duration::from_secs(5), |w| w.sees(2, 1))
        .expect("2 sees 1");
    // Plenty of bandwidth: 2 climbs to h.
    let up = w.run_until(Duration::from_secs(20), |w| {
        w.clients[1]
            .video_from
            .get(&1)
            .is_some_and(|f| f.last_layer == b'h')
    });
    assert!(
        up.is_some(),
        "never reached h; layers seen: {:?}",
        layers_seen(&w, 2, 1)
    );
    // Cut 2's downlink to 300 kbit/s: h (about 720 kbit/s here) no longer fits.
    w.client(2).cap = Some(300_000);
    let cut = w.now;
    let down = w.run_until(Duration::from_secs(10), |w| {
        w.clients[1]
            .video_from
            .get(&1)
            .is_some_and(|f| f.last_layer != b'h')
    });
    assert!(
        down.is_some(),
        "still on h 10 s after the cut; estimate never fell?"
    );
    // Video goes on, on the lower layer, and every switch was at a keyframe.
    w.run(Duration::from_secs(3));
    let f = &w.clients[1].video_from[&1];
    let late = w.now - Duration::from_secs(2);
    let lower = f
        .layers
        .iter()
        .filter(|(t, l, _)| *t >= late && *l != b'h')
        .count();
    assert!(
        lower >= 40,
        "only {lower} frames of a lower layer in the last 2 s: {:?}",
        layers_seen(&w, 2, 1)
    );
    assert!(w.sfu.stats().layer_switches >= 1, "{:?}", w.sfu.stats());
    let _ = cut;
    // The cut ends: after the hold, 2 climbs back to h.
    w.client(2).cap = None;
    let back = w.run_until(Duration::from_secs(30), |w| {
        w.clients[1]
            .video_from
            .get(&1)
            .is_some_and(|f| f.last_layer == b'h')
    });
    assert!(
        back.is_some(),
        "never back on h: {:?}",
        layers_seen(&w, 2, 1)
    );
    assert!(w.sfu.stats().layer_switches >= 2, "{:?}", w.sfu.stats());
    // Each layer has sequence numbers of its own at the sender; 2's run on
    // across the switches: a break is only where the capped link dropped one.
    let c2 = &w.clients[1];
    assert!(
        c2.seq_breaks <= c2.dropped,
        "{} sequence breaks at 2, its link dropped {}",
        c2.seq_breaks,
        c2.dropped
    );
    let f = &w.clients[1].video_from[&1];
    for pair in f.layers.windows(2) {
        if pair[0].1 != pair[1].1 {
            assert!(
                pair[1].2,
                "a switch to {} began with a delta frame",
                pair[1].1 as char
            );
        }
    }
}

fn layers_seen(w: &World, receiver: i64, sender: i64) -> Vec<char> {
    let mut v: Vec<char> = w
        .clients
        .iter()
        .find(|c| c.contact == receiver)
        .unwrap()
        .video_from[&sender]
        .layers
        .iter()
        .map(|(_, l, _)| *l as char)
        .collect();
    v.dedup();
    v
}

#[test]
fn the_loudest_participant_is_announced_as_active_speaker() {
    let mut w = World::new();
    for c in 1..=3 {
        w.join(c, &[]);
    }
    w.run(Duration::from_secs(2));
    w.client(2).loud = true;
    w.run(Duration::from_secs(2));
    for c in &w.clients {
        assert_eq!(
            c.speakers.last(),
            Some(&2),
            "{} heard {:?}",
            c.contact,
            c.speakers
        );
    }
}

#[test]
fn a_new_peer_connection_replaces_the_old_session() {
    let mut w = World::new();
    w.join(1, &[]);
    w.join(2, &[]);
    w.run_until(Duration::from_secs(5), |w| w.sees(1, 2) && w.sees(2, 1))
        .unwrap();
    // 2 recovers with a new RTCPeerConnection (a new DTLS fingerprint).
    w.clients.retain(|c| c.contact != 2);
    w.join(2, &[]);
    w.run_until(Duration::from_secs(5), |w| w.sees(2, 1))
        .expect("the new session gets 1's video");
    assert_eq!(w.sfu.stats().participants, 2);
    let c1 = &w.clients[0];
    let from2 = c1.tracks.values().filter(|t| t.0 == 2).count();
    assert_eq!(
        from2, 2,
        "1 lists 2's new audio and video only: {:?}",
        c1.tracks
    );
}

#[test]
fn malformed_signaling_is_refused_and_changes_nothing() {
    let mut w = World::new();
    let p = w.peer(1);
    for bad in [
        json!({}),
        json!({"sdp": {"type": "offer"}}),
        json!({"sdp": {"type": "pranswer", "sdp": "v=0"}}),
        json!({"sdp": {"type": "offer", "sdp": "not sdp"}}),
        json!({"sdp": {"type": "answer", "sdp": "v=0\r\n"}}),
    ] {
        assert!(
            w.sfu.handle_signal(w.now, p, &bad).is_err(),
            "{bad} was accepted"
        );
    }
    assert_eq!(w.sfu.stats().participants, 0);
    assert!(
        w.sfu
            .handle_signal(w.now, p, &json!({"candidate": null}))
            .is_ok()
    );
    assert!(w.sfu.poll_output().is_none());
}

#[test]
fn a_sender_that_sends_only_its_top_layer_is_still_seen() {
    // Chromium with a 320x180 camera negotiates h, m and l but sends l once and
    // then only h.
    let mut w = World::new();
    w.join(1, &["h", "m", "l"]);
    w.client(1).live = Some(vec!["h"]);
    w.join(2, &[]);
    w.join(3, &[]);
    w.run_until(Duration::from_secs(5), |w| w.sees(2, 1) && w.sees(3, 1))
        .unwrap_or_else(|| panic!("not seen; 2 got {:?}", w.clients[1].video_from.get(&1)));
    let before = w.video_frames(2, 1);
    w.run(Duration::from_secs(3));
    assert!(
        w.video_frames(2, 1) - before >= 60,
        "video from 1 stalled: {:?}",
        layers_seen(&w, 2, 1)
    );
}

#[test]
fn a_receiver_whose_downlink_cannot_carry_every_video_gets_what_fits_without_delay() {
    let mut w = World::new();
    for c in 1..=5 {
        w.join(c, &[]);
    }
    // Four videos of about 390 kbit/s and four audio streams need about 1.8
    // Mbit/s; 1's downlink carries 1.1.
    w.client(1).cap = Some(1_100_000);
    // The estimate starts above what the link carries (2.5 Mbit/s): all four
    // come at first, and within two seconds the SFU has seen that they do not fit.
    w.run(Duration::from_secs(2));
    assert!(
        (2..=3).contains(&w.clients[0].paused.len()),
        "after 2 s the SFU has paused what does not fit: {:?}",
        w.clients[0].paused
    );
    w.run(Duration::from_secs(10));
    let from = w.now;
    let dropped = w.clients[0].dropped;
    let audio_before: Vec<u64> = (2..=5).map(|s| w.audio_frames(1, s)).collect();
    let video_before: Vec<u64> = (2..=5).map(|s| w.video_frames(1, s)).collect();
    w.run(Duration::from_secs(4));
    let c1 = &w.clients[0];
    let got: Vec<u64> = (2..=5)
        .map(|s| w.video_frames(1, s))
        .zip(&video_before)
        .map(|(n, b)| n - b)
        .collect();
    // At least one video flows at full rate the whole time; at least two never
    // fit and stay paused (between them one may come and go as the estimate
    // moves, each time from a keyframe: checked below).
    assert!(
        got.iter().max() >= Some(&100) && got.iter().filter(|&&n| n == 0).count() >= 2,
        "frames from 2..5 in 4 s: {got:?}: what fits should flow at full rate, the rest pause"
    );
    assert!(
        (2..=3).contains(&c1.paused.len()),
        "the SFU says which are paused: {:?}",
        c1.paused
    );
    let delays: Vec<Duration> = c1
        .video_from
        .values()
        .flat_map(|f| f.delays.iter())
        .filter(|(at, _)| *at >= from)
        .map(|(_, d)| *d)
        .collect();
    let worst = delays.iter().max().copied().unwrap_or_default();
    assert!(
        worst < Duration::from_millis(250),
        "video arrives late, queued behind what does not fit: worst {worst:?}"
    );
    assert!(
        c1.dropped - dropped < 20,
        "the link dropped {} datagrams in 4 s",
        c1.dropped - dropped
    );
    for (s, before) in (2..=5).zip(audio_before) {
        let n = w.audio_frames(1, s) - before;
        assert!(n >= 180, "audio from {s} suffered: {n} of 200 frames");
    }
    // The cap goes: every video comes, each from a keyframe.
    w.client(1).cap = None;
    let all = w.run_until(Duration::from_secs(20), |w| {
        let late = w.now - Duration::from_millis(500);
        (2..=5).all(|s| {
            w.clients[0]
                .video_from
                .get(&s)
                .is_some_and(|f| f.layers.iter().filter(|(t, ..)| *t >= late).count() >= 10)
        })
    });
    assert!(
        all.is_some(),
        "not every video resumed in 20 s: {:?}",
        (2..=5).map(|s| w.video_frames(1, s)).collect::<Vec<_>>()
    );
    assert!(w.clients[0].paused.is_empty(), "{:?}", w.clients[0].paused);
    for s in 2..=5 {
        let f = &w.clients[0].video_from[&s];
        assert_eq!(
            f.first_was_key,
            Some(true),
            "video from {s} began with a delta frame"
        );
        for pair in f.layers.windows(2) {
            if pair[1].0 - pair[0].0 > Duration::from_millis(300) {
                assert!(pair[1].2, "video from {s} resumed with a delta frame");
            }
        }
    }
}

#[test]
fn a_muted_microphone_s_digital_silence_is_not_forwarded_and_its_voice_is_again_after_unmute() {
    let mut w = World::three_who_see_each_other();
    w.run(Duration::from_secs(1));
    w.client(2).muted = true;
    // What was on its way when the microphone went off arrives first.
    w.run(Duration::from_millis(200));
    let before = (
        w.audio_frames(1, 2),
        w.audio_frames(1, 3),
        w.video_frames(1, 2),
    );
    let dropped = w.sfu.stats().silent_audio_dropped;
    w.run(Duration::from_secs(2));
    assert_eq!(
        w.audio_frames(1, 2),
        before.0,
        "2 is muted: none of its silence reaches 1"
    );
    assert!(
        w.audio_frames(1, 3) - before.1 >= 80,
        "3's open microphone still does"
    );
    assert!(
        w.video_frames(1, 2) - before.2 >= 50,
        "2's video still flows"
    );
    // About 100 frames of 20 ms from 2 in two seconds, each dropped once.
    assert!(
        w.sfu.stats().silent_audio_dropped - dropped >= 80,
        "{:?}",
        w.sfu.stats()
    );
    w.client(2).muted = false;
    let before = w.audio_frames(1, 2);
    w.run(Duration::from_secs(2));
    assert!(
        w.audio_frames(1, 2) - before >= 80,
        "2 unmuted is heard again"
    );
    assert_eq!(
        w.clients[0].seq_breaks, 0,
        "1's sequence numbers from 2 run on across the silence, as after DTX"
    );
}

#[test]
fn a_call_carries_only_its_four_loudest_microphones_and_a_new_talker_is_heard_at_once() {
    let (mut w, took) = World::all_join(6);
    assert!(took.is_some(), "not everyone saw everyone within 5 s");
    w.run(Duration::from_secs(1));
    // Six open microphones in a quiet room (-70 dBov): four are carried.
    let count = |w: &World| -> Vec<Vec<u64>> {
        (1..=6)
            .map(|r| (1..=6).map(|s| w.audio_frames(r, s)).collect())
            .collect()
    };
    let before = count(&w);
    let quiet = w.sfu.stats().quiet_audio_dropped;
    w.run(Duration::from_secs(2));
    let after = count(&w);
    let heard: Vec<Vec<i64>> = (0..6)
        .map(|r| {
            (0..6)
                .filter(|&s| s != r && after[r][s] - before[r][s] >= 80)
                .map(|s| s as i64 + 1)
                .collect()
        })
        .collect();
    let audible: Vec<i64> = (1..=6)
        .filter(|&s| heard.iter().any(|h| h.contains(&s)))
        .collect();
    assert_eq!(audible.len(), 4, "who each heard: {heard:?}");
    for (r, h) in heard.iter().enumerate() {
        let me = r as i64 + 1;
        let expected: Vec<i64> = audible.iter().copied().filter(|&s| s != me).collect();
        assert_eq!(
            h, &expected,
            "{me} heard {h:?}, the audible are {audible:?}"
        );
        for s in (1..=6).filter(|s| !audible.contains(s)) {
            let got = after[r][s as usize - 1] - before[r][s as usize - 1];
            assert_eq!(
                got, 0,
                "{me} got {got} frames of {s}, not among the loudest"
            );
        }
    }
    // Two quiet microphones, 100 frames each in 2 s, not forwarded.
    assert!(
        w.sfu.stats().quiet_audio_dropped - quiet >= 180,
        "{:?}",
        w.sfu.stats()
    );
    // One of the unheard starts talking: everyone else hears it within 100 ms,
    // and a quiet one makes room.
    let talker = (1..=6).find(|s| !audible.contains(s)).unwrap();
    w.client(talker).loud = true;
    let listener = if talker == 1 { 2 } else { 1 };
    let first = w.audio_frames(listener, talker);
    let took = w.run_until(Duration::from_millis(100), |w| {
        w.audio_frames(listener, talker) > first
    });
    assert!(
        took.is_some(),
        "{talker} talking was not heard within 100 ms"
    );
    let before = count(&w);
    w.run(Duration::from_secs(2));
    let after = count(&w);
    let carried = (1..=6)
        .filter(|&s| {
            (1..=6).filter(|&r| r != s).any(|r| {
                after[r as usize - 1][s as usize - 1] > before[r as usize - 1][s as usize - 1] + 80
            })
        })
        .count();
    assert_eq!(carried, 4, "still four carried: {after:?}");
    assert_eq!(
        w.clients.iter().map(|c| c.seq_breaks).sum::<u64>(),
        0,
        "sequence numbers run on where a microphone was left out"
    );
}

#[test]
fn a_call_of_ten_starts_with_everyone_s_video_within_half_a_second() {
    // Everyone joins at once, so each receiver learns of the others' videos
    // one by one; each is forwarded as soon as the estimate carries it, not a
    // second after the first (1.3 s before).
    let (_, took) = World::all_join(10);
    assert!(
        took.is_some_and(|t| t < Duration::from_millis(500)),
        "everyone saw everyone after {took:?}"
    );
}
