//! callhub's selective forwarding unit, sans-IO in the style of str0m: time is
//! passed in, packets are handed in and taken out, nothing here owns a socket, a
//! thread or a clock. The server drives it from one tokio task over one UDP
//! socket per node (`crates/server/src/sfu.rs`); tests drive it in simulated time.
//!
//! Each participant of an SFU call is one str0m [`Rtc`] (ICE-lite: the SFU only
//! answers the client's checks). The client offers its microphone, camera and
//! screen; the SFU answers, and offers the client one send-only m-line per track
//! of every other participant, renegotiating as tracks come and go (API.md,
//! "Media", SFU). Media is forwarded packet by packet (str0m's RTP mode: no
//! frame is reassembled or cut up again), each leg with its own sequence
//! numbers, SRTP, NACK/RTX, RTCP and congestion feedback.
//!
//! Rules that are the SFU's own:
//! - A participant's first video m-line is its camera, any later one its screen.
//! - An offer with a new DTLS fingerprint is a new `RTCPeerConnection` (a client
//!   that recovers): it replaces the participant's session.
//! - A video forwarded to a receiver starts at a keyframe; a simulcast sender's
//!   layer is chosen per receiver from the receiver's bandwidth estimate, shared
//!   over the videos it gets, and switched only at a keyframe of the new layer.

mod alloc;
pub mod client;
mod layer;
mod speaker;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::crypto::CryptoProvider;
use str0m::format::PayloadParams;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind, Mid, Pt, Rid};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, SeqNo, Vp8Descriptor};
use str0m::{Candidate, Event, IceConnectionState, Input, Output as RtcOutput, Rtc};
use uuid::Uuid;

pub use speaker::AUDIBLE;
pub use str0m;

/// How often layers and the active speaker are reconsidered.
const TICK: Duration = Duration::from_millis(250);
/// A participant whose ICE stays disconnected this long loses its session (its
/// tracks end for the others); a client that comes back offers a new one.
const ICE_GRACE: Duration = Duration::from_secs(15);
/// At most one keyframe request per sender's track and layer in this time.
const KEYFRAME_EVERY: Duration = Duration::from_millis(300);
/// The bitrate a receiver's estimate starts from, and what it is assumed to
/// carry until its first estimate: a late joiner of a small call sees everyone
/// at once; a link that carries less brings the estimate down within a second.
const START_BPS: u64 = 2_500_000;
/// How long media written to a receiver may wait before its session is
/// drained: the frames of every sender that arrive meanwhile leave in one pass
/// over the receiver's streams. str0m's `poll_output` walks all of a session's
/// streams on every call, so draining a receiver once per arriving datagram made
/// the cost of a call grow with the cube of its participants (bench/README.md,
/// "On a quiet machine").
const COALESCE: Duration = Duration::from_millis(2);
/// How long a receiver's forwarded packets are kept to answer its NACKs, and at
/// most how many per stream. A retransmission asked for later than a second
/// comes after the receiver's jitter buffer has given up on its frame (libwebrtc
/// keeps its own sent packets for the same second at least). str0m's 3 s kept
/// three times the packets of every forwarded video for each receiver: 0.6–1.5
/// MiB more per participant of a call of 16 (bench/README.md).
const NACK_HISTORY: Duration = Duration::from_secs(1);
const NACK_HISTORY_PACKETS: usize = 1000;
/// str0m's own: queued retransmissions are dropped while they are more than
/// this share of what a stream sends.
const RTX_RATIO_CAP: f32 = 0.15;
/// The audio level (RFC 6464, dBov) of digital silence: what a browser sends
/// for a muted microphone (`track.enabled = false`). The SFU does not forward
/// it: in a large call most are muted, and their silence was most of the
/// datagrams (at 32 participants, 31 × 50 a second to each receiver).
const SILENCE_DBOV: i8 = -127;
/// The estimate the SFU probes for, above what all of a receiver's videos (at
/// their best layers) and audio need: room to see that a paused video fits.
const PROBE_HEADROOM: f64 = 1.25;

/// One participant of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerId {
    pub call: Uuid,
    pub contact: i64,
}

/// What the SFU asks its driver to do.
#[derive(Debug)]
pub enum Output {
    /// Send a datagram.
    Transmit {
        source: SocketAddr,
        destination: SocketAddr,
        contents: Vec<u8>,
    },
    /// Send an `sfu` frame's payload to a participant.
    Signal { to: PeerId, payload: Value },
}

/// Counters since the SFU started, and what it holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub calls: usize,
    pub participants: usize,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    /// Datagrams the driver could not send (its socket's buffer was full).
    pub datagrams_dropped: u64,
    pub frames_forwarded: u64,
    /// Audio frames of digital silence (a muted microphone) not forwarded.
    pub silent_audio_dropped: u64,
    /// Audio frames of open microphones not among their call's loudest
    /// (`speaker::AUDIBLE`), not forwarded.
    pub quiet_audio_dropped: u64,
    pub keyframe_requests: u64,
    pub layer_switches: u64,
}

/// Why a signaling payload was refused (sent back as an `error` frame).
#[derive(Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The camera, or for audio the microphone.
    Camera,
    Screen,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Camera => "camera",
            Source::Screen => "screen",
        }
    }
}

pub struct Sfu {
    /// The socket's own address: the destination of what arrives.
    local: SocketAddr,
    /// The address in the SFU's ICE candidate.
    candidate: SocketAddr,
    crypto: Arc<CryptoProvider>,
    peers: HashMap<PeerId, Peer>,
    rooms: HashMap<Uuid, Room>,
    by_addr: HashMap<SocketAddr, PeerId>,
    out: VecDeque<Output>,
    stats: Stats,
    next_tick: Instant,
    last_tick: Instant,
    /// No session's timeout is earlier (it may be earlier than any: that only
    /// costs a wake-up), so that `poll_timeout` needs no walk over all sessions.
    earliest: Instant,
    /// Receivers with media written and not yet drained, and since when.
    dirty: Vec<PeerId>,
    dirty_since: Option<Instant>,
    /// How many open microphones a new call carries (`with_audible`).
    audible: usize,
}

struct Room {
    members: Vec<i64>,
    speakers: speaker::Speakers,
}

impl Sfu {
    /// An SFU receiving on `local` and announcing `candidate` (the same address,
    /// or a public one in front of it).
    pub fn new(local: SocketAddr, candidate: SocketAddr, now: Instant) -> Self {
        Self {
            local,
            candidate,
            crypto: Arc::new(str0m::crypto::from_feature_flags()),
            peers: HashMap::new(),
            rooms: HashMap::new(),
            by_addr: HashMap::new(),
            out: VecDeque::new(),
            stats: Stats::default(),
            next_tick: now + TICK,
            last_tick: now,
            earliest: now,
            dirty: vec![],
            dirty_since: None,
            audible: speaker::AUDIBLE,
        }
    }

    /// How many open microphones a call carries at once, its loudest (0: every
    /// one); `speaker::AUDIBLE` unless set.
    pub fn with_audible(mut self, limit: usize) -> Self {
        self.audible = limit;
        self
    }

    pub fn stats(&self) -> Stats {
        Stats {
            calls: self.rooms.len(),
            participants: self.peers.len(),
            ..self.stats
        }
    }

    /// The driver dropped `n` datagrams it was handed (counted in [`Stats`]).
    pub fn dropped(&mut self, n: u64) {
        self.stats.datagrams_dropped += n;
    }

    /// Whether `call` has a session here.
    pub fn has_call(&self, call: Uuid) -> bool {
        self.rooms.contains_key(&call)
    }

    /// The next thing the driver must send, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Sfu::handle_timeout`] must be called next at the latest.
    pub fn poll_timeout(&self) -> Instant {
        let t = self.earliest.min(self.next_tick);
        match self.dirty_since {
            Some(since) => t.min(since + COALESCE),
            None => t,
        }
    }

    /// An `sfu` frame's payload from a participant the call rules let in (the
    /// caller checks that `from` has joined the call and the call is an SFU call).
    pub fn handle_signal(
        &mut self,
        now: Instant,
        from: PeerId,
        payload: &Value,
    ) -> Result<(), Refused> {
        if let Some(sdp) = payload.get("sdp") {
            let kind = sdp.get("type").and_then(Value::as_str);
            let text = sdp
                .get("sdp")
                .and_then(Value::as_str)
                .ok_or_else(|| Refused("sdp.sdp: a string is required".into()))?;
            match kind {
                Some("offer") => self.offer(now, from, text)?,
                Some("answer") => self.answer(now, from, text)?,
                _ => return Err(Refused("sdp.type: \"offer\" or \"answer\"".into())),
            }
        } else if payload.get("candidate").is_some() {
            // ICE-lite: the SFU learns the client's address from its checks.
        } else {
            return Err(Refused(
                "payload: {\"sdp\": …} or {\"candidate\": …} is expected".into(),
            ));
        }
        self.settle(now, vec![from]);
        Ok(())
    }

    /// A participant left the call (or its last socket went): its session and
    /// tracks end.
    pub fn leave(&mut self, now: Instant, who: PeerId) {
        let touched = self.remove_peer(who);
        self.settle(now, touched);
    }

    /// The call ended: every session of it goes, and its memory with it.
    pub fn end_call(&mut self, call: Uuid) {
        if let Some(room) = self.rooms.remove(&call) {
            for contact in room.members {
                let id = PeerId { call, contact };
                self.peers.remove(&id);
                self.by_addr.retain(|_, p| *p != id);
            }
        }
    }

    /// A datagram arrived. Answers whether a session took it.
    pub fn handle_receive(&mut self, now: Instant, source: SocketAddr, contents: &[u8]) -> bool {
        let Ok(contents) = contents.try_into() else {
            return false;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: self.local,
                contents,
            },
        );
        let known = self
            .by_addr
            .get(&source)
            .copied()
            .filter(|id| self.peers.get(id).is_some_and(|p| p.rtc.accepts(&input)));
        let id = match known {
            Some(id) => id,
            None => {
                let Some(id) = self
                    .peers
                    .iter()
                    .find(|(_, p)| p.rtc.accepts(&input))
                    .map(|(id, _)| *id)
                else {
                    return false;
                };
                self.by_addr.insert(source, id);
                id
            }
        };
        let peer = self.peers.get_mut(&id).expect("found above");
        if let Err(e) = peer.rtc.handle_input(input) {
            tracing::debug!(?id, error = %e, "a session failed on input");
            peer.rtc.disconnect();
        }
        self.settle(now, vec![id]);
        true
    }

    /// Time passed: drives every session due, and the layer and speaker choices.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        if self
            .dirty_since
            .is_some_and(|since| now >= since + COALESCE)
        {
            self.dirty_since = None;
            // Their packets are timed by a timeout as well: handling it now, not
            // on a wake-up of its own after the drain, saves a pass over their
            // streams.
            for id in std::mem::take(&mut self.dirty) {
                if let Some(p) = self.peers.get_mut(&id)
                    && std::mem::take(&mut p.dirty)
                    && p.timeout > now
                {
                    due.push(id);
                }
            }
        }
        for id in &due {
            if let Some(p) = self.peers.get_mut(id)
                && let Err(e) = p.rtc.handle_input(Input::Timeout(now))
            {
                tracing::debug!(?id, error = %e, "a session failed on timeout");
                p.rtc.disconnect();
            }
        }
        let mut touched = due;
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            touched.extend(self.tick(now));
        }
        // Sessions not due keep their timeouts; those settled below lower it again.
        self.earliest = self
            .peers
            .values()
            .filter(|p| p.timeout > now)
            .map(|p| p.timeout)
            .fold(self.next_tick, Instant::min);
        self.settle(now, touched);
    }

    // ---- sessions ----

    fn offer(&mut self, now: Instant, from: PeerId, sdp: &str) -> Result<(), Refused> {
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| Refused(format!("sdp: not an SDP offer: {e}")))?;
        let fingerprint = fingerprint(sdp);
        let same = self
            .peers
            .get(&from)
            .is_some_and(|p| p.fingerprint == fingerprint && p.rtc.is_alive());
        if same {
            let peer = self.peers.get_mut(&from).expect("checked");
            if peer.pending.is_some() {
                // Glare: the SFU's offer wins; the client rolls back, answers it
                // and offers again afterwards (API.md).
                return Ok(());
            }
            let answer = peer
                .rtc
                .sdp_api()
                .accept_offer(offer)
                .map_err(|e| Refused(format!("sdp: the offer was refused: {e}")))?;
            self.signal(from, sdp_payload("answer", &answer.to_sdp_string()));
            return Ok(());
        }
        let touched = self.remove_peer(from);
        // One audio and one video codec for everyone: a frame is forwarded in the
        // sender's codec, so every receiver must take it; and the SDP of a large
        // call stays small (about 1 KB per m-line).
        let mut rtc = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_ice_lite(true)
            .set_crypto_provider(self.crypto.clone())
            .enable_bwe(Some(Bitrate::bps(START_BPS)))
            .set_rtp_mode(true)
            .build(now);
        let candidate = Candidate::host(self.candidate, "udp")
            .map_err(|e| Refused(format!("the SFU's address is unusable: {e}")))?;
        rtc.add_local_candidate(candidate);
        let answer: SdpAnswer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| Refused(format!("sdp: the offer was refused: {e}")))?;
        let mut peer = Peer::new(from, rtc, fingerprint, now);
        // Everyone already in sends this participant their tracks.
        let audible = self.audible;
        let room = self.rooms.entry(from.call).or_insert_with(|| Room {
            members: vec![],
            speakers: speaker::Speakers::new(audible),
        });
        for &other in &room.members {
            if let Some(o) = self.peers.get(&PeerId {
                call: from.call,
                contact: other,
            }) {
                for t in o.ins.iter().filter(|t| t.active) {
                    peer.outs.push(TrackOut::new(other, t));
                }
            }
        }
        room.members.push(from.contact);
        self.peers.insert(from, peer);
        self.signal(from, sdp_payload("answer", &answer.to_sdp_string()));
        self.settle(now, touched);
        Ok(())
    }

    fn answer(&mut self, now: Instant, from: PeerId, sdp: &str) -> Result<(), Refused> {
        let answer = SdpAnswer::from_sdp_string(sdp)
            .map_err(|e| Refused(format!("sdp: not an SDP answer: {e}")))?;
        let peer = self
            .peers
            .get_mut(&from)
            .ok_or_else(|| Refused("no SFU session: offer first".into()))?;
        let pending = peer
            .pending
            .take()
            .ok_or_else(|| Refused("no offer of the SFU is waiting for an answer".into()))?;
        peer.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| Refused(format!("sdp: the answer was refused: {e}")))?;
        let mut opened = Vec::new();
        for t in &mut peer.outs {
            match t.state {
                OutState::Negotiating(m) => {
                    t.state = if t.gone {
                        OutState::ToStop(m)
                    } else {
                        opened.push(m);
                        OutState::Open(m)
                    };
                }
                OutState::NegotiatingStop(_) => t.state = OutState::Closed,
                _ => {}
            }
        }
        peer.outs.retain(|t| t.state != OutState::Closed);
        peer.keep_history(&opened);
        // A late joiner sees everyone at once: what fits starts now, each video
        // with a keyframe its sender is asked for.
        for (sender, mid, rid) in self.allocate(now, from) {
            self.request_keyframe(now, sender, mid, rid);
        }
        Ok(())
    }

    /// Removes a participant's session; answers whom that touched.
    fn remove_peer(&mut self, id: PeerId) -> Vec<PeerId> {
        if self.peers.remove(&id).is_none() {
            return vec![];
        }
        self.by_addr.retain(|_, p| *p != id);
        let Some(room) = self.rooms.get_mut(&id.call) else {
            return vec![];
        };
        room.members.retain(|&c| c != id.contact);
        room.speakers.forget(id.contact);
        let others: Vec<PeerId> = room
            .members
            .iter()
            .map(|&contact| PeerId {
                call: id.call,
                contact,
            })
            .collect();
        if room.members.is_empty() {
            self.rooms.remove(&id.call);
        }
        for other in &others {
            if let Some(p) = self.peers.get_mut(other) {
                p.stop_tracks_from(id.contact, None);
            }
        }
        others
    }

    /// Drains the sessions in `work` (and those their events touch) until each is
    /// waiting for time or input again.
    fn settle(&mut self, now: Instant, mut work: Vec<PeerId>) {
        while let Some(id) = work.pop() {
            let Some(peer) = self.peers.get_mut(&id) else {
                continue;
            };
            if let Some((offer, tracks)) = peer.negotiate() {
                self.signal(id, json!({ "tracks": tracks }));
                self.signal(id, sdp_payload("offer", &offer));
            }
            let peer = self.peers.get_mut(&id).expect("present");
            let events = peer.drain(&mut self.out, &mut self.stats, now);
            self.earliest = self.earliest.min(peer.timeout);
            if !peer.rtc.is_alive()
                || peer
                    .disconnected_since
                    .is_some_and(|t| now.saturating_duration_since(t) > ICE_GRACE)
            {
                tracing::debug!(?id, "an SFU session ended (ICE gone)");
                work.extend(self.remove_peer(id));
                continue;
            }
            for event in events {
                self.apply(now, id, event, &mut work);
            }
        }
    }

    /// Carries one participant's event to the others of its call.
    fn apply(&mut self, now: Instant, from: PeerId, event: Prop, work: &mut Vec<PeerId>) {
        let Some(room) = self.rooms.get_mut(&from.call) else {
            return;
        };
        // Audio not forwarded: a muted microphone's silence, and every open
        // microphone but the call's loudest few.
        let unheard = match &event {
            Prop::Media(data) => match data.ext.audio_level {
                Some(SILENCE_DBOV) => {
                    self.stats.silent_audio_dropped += 1;
                    true
                }
                Some(_) if !room.speakers.admit(from.contact, now) => {
                    self.stats.quiet_audio_dropped += 1;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        let others = room
            .members
            .iter()
            .filter(|&&c| c != from.contact)
            .map(|&contact| PeerId {
                call: from.call,
                contact,
            });
        match event {
            Prop::TrackOpen(mid) => {
                let Some(track) = self.peers.get(&from).and_then(|p| p.track_in(mid)).cloned()
                else {
                    return;
                };
                let others: Vec<PeerId> = others.collect();
                for o in others {
                    if let Some(p) = self.peers.get_mut(&o) {
                        p.outs.push(TrackOut::new(from.contact, &track));
                        push_once(work, o);
                    }
                }
            }
            Prop::TrackClose(mid) => {
                let others: Vec<PeerId> = others.collect();
                for o in others {
                    if let Some(p) = self.peers.get_mut(&o) {
                        p.stop_tracks_from(from.contact, Some(mid));
                        push_once(work, o);
                    }
                }
            }
            Prop::Level(dbov) => room.speakers.level(from.contact, dbov, now),
            Prop::Media(data) if unheard => {
                // The receivers' sequence numbers run on without a gap when the
                // microphone is heard again, as after DTX.
                for o in others {
                    if let Some(p) = self.peers.get_mut(&o) {
                        p.skipped(from.contact, data.mid);
                    }
                }
            }
            Prop::Media(data) => {
                let others: Vec<PeerId> = others.collect();
                let mut keyframes = vec![];
                for o in others {
                    if let Some(p) = self.peers.get_mut(&o) {
                        match p.forward(from.contact, &data, &mut self.stats) {
                            Forwarded::Written => {
                                if !std::mem::replace(&mut p.dirty, true) {
                                    self.dirty.push(o);
                                }
                                self.dirty_since.get_or_insert(now);
                            }
                            Forwarded::NeedKeyframe(rid) => keyframes.push(rid),
                            Forwarded::Not => {}
                        }
                    }
                }
                for rid in keyframes {
                    self.request_keyframe(now, from, data.mid, rid);
                }
            }
            Prop::KeyframeWanted { sender, mid, rid } => {
                let sender = PeerId {
                    call: from.call,
                    contact: sender,
                };
                self.request_keyframe(now, sender, mid, rid);
                push_once(work, sender);
            }
        }
    }

    /// Asks a sender for a keyframe of one track's layer, at most every
    /// `KEYFRAME_EVERY`.
    fn request_keyframe(&mut self, now: Instant, sender: PeerId, mid: Mid, rid: Option<Rid>) {
        let Some(p) = self.peers.get_mut(&sender) else {
            return;
        };
        let Some(t) = p.ins.iter_mut().find(|t| t.mid == mid) else {
            return;
        };
        if t.kind != MediaKind::Video {
            return;
        }
        let last = t.keyframe_asked.entry(rid).or_insert(None);
        if last.is_some_and(|at| now.saturating_duration_since(at) < KEYFRAME_EVERY) {
            return;
        }
        *last = Some(now);
        tracing::debug!(?sender, %mid, ?rid, "keyframe requested");
        if let Some(rx) = p.rtc.direct_api().stream_rx_by_mid(mid, rid) {
            rx.request_keyframe(KeyframeRequestKind::Pli);
            self.stats.keyframe_requests += 1;
        }
    }

    /// Rates, what each receiver gets, and the active speaker per call; answers
    /// whom that touched.
    fn tick(&mut self, now: Instant) -> Vec<PeerId> {
        let elapsed = now.saturating_duration_since(self.last_tick);
        self.last_tick = now;
        for p in self.peers.values_mut() {
            for r in p.ins.iter_mut().flat_map(|t| t.rates.values_mut()) {
                r.tick(elapsed);
            }
        }
        let mut touched = vec![];
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            for (sender, mid, rid) in self.allocate(now, id) {
                self.request_keyframe(now, sender, mid, rid);
                push_once(&mut touched, sender);
            }
        }
        // The active speaker.
        let mut changes = vec![];
        for (call, room) in &mut self.rooms {
            if let Some(who) = room.speakers.tick(now) {
                changes.push((*call, who, room.members.clone()));
            }
        }
        for (call, who, members) in changes {
            for contact in members {
                self.signal(PeerId { call, contact }, json!({ "activeSpeaker": who }));
            }
        }
        touched
    }

    /// Decides what one receiver gets: the videos its estimate carries, in its
    /// order of preference (screens, the active speaker, what it gets already),
    /// the others paused; and per simulcast video the layer its share pays for.
    /// Answers the keyframes that takes (a resumed video, a layer switch).
    fn allocate(&mut self, now: Instant, id: PeerId) -> Vec<(PeerId, Mid, Option<Rid>)> {
        let Some(p) = self.peers.get(&id) else {
            return vec![];
        };
        let speaker = self.rooms.get(&id.call).and_then(|r| r.speakers.current());
        let mut audio_bps = 0;
        let mut videos = vec![];
        for (i, t) in p.outs.iter().enumerate() {
            if !matches!(t.state, OutState::Open(_)) {
                continue;
            }
            let sender = PeerId {
                call: id.call,
                contact: t.from,
            };
            let Some(src) = self.peers.get(&sender).and_then(|s| s.track_in(t.mid_in)) else {
                continue;
            };
            if t.kind == MediaKind::Audio {
                audio_bps += src.rates.values().filter_map(alloc::Rate::bps).sum::<u64>();
                continue;
            }
            let names: Vec<String> = src.layers.iter().map(|(r, _)| r.to_string()).collect();
            let ranked: Vec<(String, usize, Option<Instant>)> = src
                .layers
                .iter()
                .map(|(r, seen)| (r.to_string(), layer::rank(r, &names), *seen))
                .collect();
            // Per live layer: what it costs, and what the SFU's layer choice
            // wants the receiver to afford before it picks it.
            let costs: Vec<(u64, u64)> = if src.layers.is_empty() {
                let c = src.cost(None);
                vec![(c, c)]
            } else {
                ranked
                    .iter()
                    .zip(&src.layers)
                    .filter(|(_, (_, seen))| layer::is_live(*seen, now))
                    .map(|((_, rank, _), (r, _))| {
                        let c = src.cost(Some(*r));
                        (c, c.max(layer::need(*rank)))
                    })
                    .collect()
            };
            let (Some(least), Some(most)) = (
                costs.iter().map(|c| c.0).min(),
                costs.iter().map(|c| c.1).max(),
            ) else {
                continue; // a simulcast sender sending nothing now
            };
            let order = (
                t.source != Source::Screen,
                Some(t.from) != speaker,
                t.paused,
                t.from,
            );
            videos.push((order, i, sender, t.mid_in, least, most, ranked));
        }
        videos.sort_by_key(|v| v.0);
        let for_video = p
            .estimate_bps
            .unwrap_or(START_BPS)
            .saturating_sub(audio_bps);
        let least: Vec<u64> = videos.iter().map(|v| v.4).collect();
        let all = audio_bps + videos.iter().map(|v| v.5).sum::<u64>();
        let desired = Bitrate::bps(((all as f64 * PROBE_HEADROOM) as u64).max(START_BPS));

        let p = self.peers.get_mut(&id).expect("present");
        let n = p.budget.update(for_video, &least, now);
        if p.desired
            .is_none_or(|d| d.as_u64().abs_diff(desired.as_u64()) > d.as_u64() / 10)
        {
            p.desired = Some(desired);
            p.rtc.bwe().set_bitrate(Bitrate::ZERO, desired);
        }
        let share = for_video / n.max(1) as u64;
        let mut asks = vec![];
        let mut paused_changed = false;
        for (k, (_, i, sender, mid, _, _, ranked)) in videos.into_iter().enumerate() {
            let t = &mut p.outs[i];
            if k >= n {
                if !t.paused {
                    tracing::debug!(receiver = ?id, from = t.from, estimate = ?p.estimate_bps, "video paused: the estimate does not carry it");
                    t.paused = true;
                    t.switch_to = None;
                    paused_changed = true;
                }
                continue;
            }
            let resumed = std::mem::take(&mut t.paused);
            if resumed {
                tracing::debug!(receiver = ?id, from = t.from, estimate = ?p.estimate_bps, "video resumed");
                // Like a layer switch: from a keyframe, its timeline rebased.
                t.need_keyframe = true;
                t.rid = None;
                t.switch_to = None;
                paused_changed = true;
            }
            if ranked.is_empty() {
                if resumed {
                    asks.push((sender, mid, None));
                }
                continue;
            }
            let wanted = t.wanted.update(layer::affordable(share), now);
            let pick = layer::pick(
                wanted,
                ranked.iter().map(|(r, k, s)| (r.as_str(), *k, *s)),
                now,
            )
            .map(Rid::from);
            if pick.is_some() && pick != t.rid && pick != t.switch_to {
                tracing::debug!(receiver = ?id, from = t.from, now = ?t.rid, to = ?pick, wanted, estimate = ?p.estimate_bps, "layer switch wanted");
                t.switch_to = pick;
                asks.push((sender, mid, pick));
            } else if pick == t.rid {
                t.switch_to = None;
            }
        }
        if paused_changed {
            let paused: Vec<String> = p
                .outs
                .iter()
                .filter(|t| t.paused)
                .filter_map(|t| match t.state {
                    OutState::Open(m) => Some(m.to_string()),
                    _ => None,
                })
                .collect();
            self.signal(id, json!({ "paused": paused }));
        }
        asks
    }

    fn signal(&mut self, to: PeerId, payload: Value) {
        self.out.push_back(Output::Signal { to, payload });
    }
}

fn push_once(work: &mut Vec<PeerId>, id: PeerId) {
    if !work.contains(&id) {
        work.push(id);
    }
}

fn sdp_payload(kind: &str, sdp: &str) -> Value {
    json!({"sdp": {"type": kind, "sdp": sdp}})
}

/// The `a=fingerprint` of an SDP: one per `RTCPeerConnection`.
fn fingerprint(sdp: &str) -> String {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=fingerprint:"))
        .unwrap_or_default()
        .to_owned()
}

/// What a participant's session tells the SFU.
enum Prop {
    TrackOpen(Mid),
    TrackClose(Mid),
    Media(Box<Packet>),
    Level(i8),
    /// A receiver wants a keyframe of what it gets from `sender`'s track `mid`.
    KeyframeWanted {
        sender: i64,
        mid: Mid,
        rid: Option<Rid>,
    },
}

/// One RTP packet of a sender's track, as every receiver's leg needs it.
struct Packet {
    mid: Mid,
    rid: Option<Rid>,
    params: PayloadParams,
    seq: u64,
    time: u32,
    marker: bool,
    /// Starts a VP8 keyframe.
    keyframe: bool,
    ext: ExtensionValues,
    payload: Arc<[u8]>,
    arrival: Instant,
}

impl Packet {
    fn new(p: RtpPacket, mid: Mid, rid: Option<Rid>, params: PayloadParams) -> Self {
        let keyframe = params.spec().codec == str0m::format::Codec::Vp8
            && Vp8Descriptor::parse(&p.payload).is_ok_and(|d| d.starts_keyframe(&p.payload));
        // Only what describes the media goes on; each leg adds its own transport
        // extensions (transport-wide sequence numbers, mid).
        let ext = ExtensionValues {
            audio_level: p.header.ext_vals.audio_level,
            voice_activity: p.header.ext_vals.voice_activity,
            video_orientation: p.header.ext_vals.video_orientation,
            ..ExtensionValues::default()
        };
        Self {
            mid,
            rid,
            params,
            seq: *p.seq_no,
            time: p.header.timestamp,
            marker: p.header.marker,
            keyframe,
            ext,
            payload: p.payload,
            arrival: p.timestamp,
        }
    }
}

enum Forwarded {
    Written,
    NeedKeyframe(Option<Rid>),
    Not,
}

/// A track a participant sends to the SFU.
#[derive(Debug, Clone)]
struct TrackIn {
    mid: Mid,
    kind: MediaKind,
    source: Source,
    active: bool,
    /// Simulcast layers and when each was last received (empty: no simulcast).
    layers: Vec<(Rid, Option<Instant>)>,
    keyframe_asked: HashMap<Option<Rid>, Option<Instant>>,
    /// What arrives per layer (`None`: the one stream of a track).
    rates: HashMap<Option<Rid>, alloc::Rate>,
}

impl TrackIn {
    /// What forwarding a layer costs a receiver, in bit/s.
    fn cost(&self, rid: Option<Rid>) -> u64 {
        self.rates
            .get(&rid)
            .and_then(alloc::Rate::bps)
            .unwrap_or(alloc::UNMEASURED_VIDEO_BPS)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// To be offered to the receiver.
    ToOpen,
    Negotiating(Mid),
    Open(Mid),
    ToStop(Mid),
    NegotiatingStop(Mid),
    Closed,
}

/// A track of another participant the SFU sends a receiver.
#[derive(Debug)]
struct TrackOut {
    from: i64,
    mid_in: Mid,
    kind: MediaKind,
    source: Source,
    state: OutState,
    /// Its sender left while it was being negotiated.
    gone: bool,
    /// The layer forwarded now (simulcast), and the one waited for.
    rid: Option<Rid>,
    switch_to: Option<Rid>,
    wanted: layer::Wanted,
    /// A video the receiver's estimate does not carry now: not forwarded.
    paused: bool,
    /// Nothing forwarded yet, or the layer switched: wait for a keyframe.
    need_keyframe: bool,
    /// The receiver's payload type for the sender's (looked up once).
    pt: Option<(Pt, Pt)>,
    /// Added to the sender's RTP time so the receiver's timeline runs on across
    /// layer switches.
    ts_offset: u32,
    last_ts: Option<u32>,
    /// Added to the sender's sequence numbers: the receiver's run on without a
    /// gap where the SFU left packets out (a pause, another layer, silence); a
    /// gap the sender's loss leaves stays, for the receiver to NACK.
    seq_offset: i64,
    /// The next packet forwarded starts a new run of the receiver's numbers.
    rebase: bool,
    /// The sender's first sequence number of this run: older ones are dropped.
    run_from: u64,
    last_seq: u64,
}

impl TrackOut {
    fn new(from: i64, t: &TrackIn) -> Self {
        Self {
            from,
            mid_in: t.mid,
            kind: t.kind,
            source: t.source,
            state: OutState::ToOpen,
            gone: false,
            rid: None,
            switch_to: None,
            wanted: layer::Wanted::default(),
            // Until the receiver's budget takes it.
            paused: t.kind == MediaKind::Video,
            need_keyframe: t.kind == MediaKind::Video,
            pt: None,
            ts_offset: 0,
            last_ts: None,
            seq_offset: 0,
            rebase: true,
            run_from: 0,
            last_seq: 0,
        }
    }

    fn mid(&self) -> Option<Mid> {
        match self.state {
            OutState::Negotiating(m) | OutState::Open(m) => Some(m),
            _ => None,
        }
    }

    /// A keyframe of what this receiver gets (or switches to) from its sender.
    fn keyframe_wanted(&self) -> Prop {
        Prop::KeyframeWanted {
            sender: self.from,
            mid: self.mid_in,
            rid: self.switch_to.or(self.rid),
        }
    }
}

struct Peer {
    id: PeerId,
    rtc: Rtc,
    fingerprint: String,
    timeout: Instant,
    /// The SFU's own offer, waiting for the client's answer.
    pending: Option<SdpPendingOffer>,
    ins: Vec<TrackIn>,
    outs: Vec<TrackOut>,
    videos_in: usize,
    estimate_bps: Option<u64>,
    disconnected_since: Option<Instant>,
    desired: Option<Bitrate>,
    budget: alloc::Budget,
    /// Media written and not yet drained (listed in `Sfu::dirty`).
    dirty: bool,
    /// ICE and DTLS are up: media may be written. What str0m is handed before
    /// that can leave partly or late, and a video whose keyframe went missing
    /// that way starts with frames no decoder can use.
    connected: bool,
}

impl Peer {
    fn new(id: PeerId, rtc: Rtc, fingerprint: String, now: Instant) -> Self {
        Self {
            id,
            rtc,
            fingerprint,
            timeout: now,
            pending: None,
            ins: vec![],
            outs: vec![],
            videos_in: 0,
            estimate_bps: None,
            disconnected_since: None,
            desired: None,
            budget: alloc::Budget::default(),
            dirty: false,
            connected: false,
        }
    }

    fn track_in(&self, mid: Mid) -> Option<&TrackIn> {
        self.ins.iter().find(|t| t.mid == mid)
    }

    /// Ends what this receiver gets from `from` (one track, or all).
    fn stop_tracks_from(&mut self, from: i64, mid: Option<Mid>) {
        for t in self
            .outs
            .iter_mut()
            .filter(|t| t.from == from && mid.is_none_or(|m| m == t.mid_in))
        {
            match t.state {
                OutState::ToOpen => t.state = OutState::Closed,
                OutState::Open(m) => t.state = OutState::ToStop(m),
                OutState::Negotiating(_) => t.gone = true,
                _ => {}
            }
        }
        self.outs.retain(|t| t.state != OutState::Closed);
    }

    /// Keeps the packets of its newly opened send streams for a NACK for
    /// `NACK_HISTORY` (str0m keeps them 3 s).
    fn keep_history(&mut self, mids: &[Mid]) {
        let mut api = self.rtc.direct_api();
        for &mid in mids {
            if let Some(tx) = api.stream_tx_by_mid(mid, None) {
                tx.set_rtx_cache(NACK_HISTORY_PACKETS, NACK_HISTORY, Some(RTX_RATIO_CAP));
            }
        }
    }

    /// An offer for what changed, with the tracks list that goes with it.
    fn negotiate(&mut self) -> Option<(String, Value)> {
        if self.pending.is_some() || !self.rtc.is_alive() {
            return None;
        }
        if !self
            .outs
            .iter()
            .any(|t| matches!(t.state, OutState::ToOpen | OutState::ToStop(_)))
        {
            return None;
        }
        let mut change = self.rtc.sdp_api();
        for t in &mut self.outs {
            match t.state {
                OutState::ToOpen => {
                    let mid = change.add_media(
                        t.kind,
                        Direction::SendOnly,
                        Some(format!("contact-{}", t.from)),
                        Some(format!("{}-{}", t.from, t.mid_in)),
                        None,
                    );
                    t.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    change.stop_media(mid);
                    t.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = change.apply()?;
        self.pending = Some(pending);
        let tracks: Vec<Value> = self
            .outs
            .iter()
            .filter_map(|t| {
                t.mid().map(|mid| {
                    json!({
                        "mid": mid.to_string(),
                        "contactId": t.from,
                        "kind": if t.kind == MediaKind::Audio { "audio" } else { "video" },
                        "source": t.source.as_str(),
                    })
                })
            })
            .collect();
        Some((offer.to_sdp_string(), Value::Array(tracks)))
    }

    /// Polls the session until it waits; answers the events for the others.
    fn drain(&mut self, out: &mut VecDeque<Output>, stats: &mut Stats, now: Instant) -> Vec<Prop> {
        let mut props = vec![];
        while self.rtc.is_alive() {
            match self.rtc.poll_output() {
                Ok(RtcOutput::Transmit(t)) => {
                    stats.datagrams_out += 1;
                    stats.bytes_out += t.contents.len() as u64;
                    out.push_back(Output::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.into(),
                    });
                }
                Ok(RtcOutput::Timeout(t)) => {
                    self.timeout = t;
                    break;
                }
                Ok(RtcOutput::Event(e)) => self.event(e, now, &mut props),
                Err(e) => {
                    tracing::debug!(id = ?self.id, error = %e, "a session failed");
                    self.rtc.disconnect();
                }
            }
        }
        props
    }

    fn event(&mut self, e: Event, now: Instant, props: &mut Vec<Prop>) {
        match e {
            Event::Connected => {
                self.connected = true;
                // Each video starts at a keyframe: ask for one now rather than at
                // the next packet of each sender.
                for t in self.outs.iter().filter(|t| {
                    t.kind == MediaKind::Video && !t.paused && matches!(t.state, OutState::Open(_))
                }) {
                    props.push(t.keyframe_wanted());
                }
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.disconnected_since.get_or_insert(now);
            }
            Event::IceConnectionStateChange(_) => self.disconnected_since = None,
            Event::MediaAdded(m)
                if matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) =>
            {
                let source = match m.kind {
                    MediaKind::Audio => Source::Camera,
                    MediaKind::Video => {
                        self.videos_in += 1;
                        if self.videos_in == 1 {
                            Source::Camera
                        } else {
                            Source::Screen
                        }
                    }
                };
                let layers = m
                    .simulcast
                    .map(|s| s.recv.into_iter().map(|l| (l.rid, None)).collect())
                    .unwrap_or_default();
                tracing::debug!(id = ?self.id, mid = %m.mid, kind = ?m.kind, ?source, ?layers, "a track comes in");
                self.ins.push(TrackIn {
                    mid: m.mid,
                    kind: m.kind,
                    source,
                    active: true,
                    layers,
                    keyframe_asked: HashMap::new(),
                    rates: HashMap::new(),
                });
                props.push(Prop::TrackOpen(m.mid));
            }
            Event::MediaChanged(m) => {
                let receiving = matches!(m.direction, Direction::RecvOnly | Direction::SendRecv);
                if let Some(t) = self.ins.iter_mut().find(|t| t.mid == m.mid)
                    && t.active != receiving
                {
                    t.active = receiving;
                    props.push(if receiving {
                        Prop::TrackOpen(m.mid)
                    } else {
                        Prop::TrackClose(m.mid)
                    });
                }
            }
            Event::RtpPacket(p) => {
                let Some((mid, rid)) = self
                    .rtc
                    .direct_api()
                    .stream_rx(&p.header.ssrc)
                    .map(|rx| (rx.mid(), rx.rid()))
                else {
                    return;
                };
                let Some(params) = self
                    .rtc
                    .codec_config()
                    .params()
                    .iter()
                    .find(|c| c.pt() == p.header.payload_type)
                    .copied()
                else {
                    return;
                };
                let Some(t) = self.ins.iter_mut().find(|t| t.mid == mid) else {
                    return;
                };
                if !t.active {
                    return;
                }
                if let Some(rid) = rid
                    && let Some(l) = t.layers.iter_mut().find(|(r, _)| *r == rid)
                {
                    l.1 = Some(now);
                }
                if let Some(level) = p.header.ext_vals.audio_level {
                    props.push(Prop::Level(level));
                }
                let packet = Packet::new(p, mid, rid, params);
                t.rates.entry(rid).or_default().add(
                    packet.payload.len(),
                    packet.keyframe,
                    packet.marker,
                );
                props.push(Prop::Media(Box::new(packet)));
            }
            Event::KeyframeRequest(req) => {
                if let Some(t) = self
                    .outs
                    .iter()
                    .find(|t| t.mid() == Some(req.mid) && !t.paused)
                {
                    props.push(t.keyframe_wanted());
                }
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. })
            | Event::EgressBitrateEstimate(BweKind::Remb { estimate, .. }) => {
                self.estimate_bps = Some(estimate.as_u64());
            }
            _ => {}
        }
    }

    /// The SFU left out a packet of `from`'s track `mid` (silence): the next one
    /// forwarded continues this receiver's sequence numbers without a gap.
    fn skipped(&mut self, from: i64, mid: Mid) {
        if let Some(t) = self
            .outs
            .iter_mut()
            .find(|t| t.from == from && t.mid_in == mid)
        {
            t.rebase = true;
        }
    }

    /// Forwards a packet of `from`'s track to this receiver, if it gets it.
    fn forward(&mut self, from: i64, data: &Packet, stats: &mut Stats) -> Forwarded {
        if !self.connected {
            return Forwarded::Not;
        }
        let Some(t) = self
            .outs
            .iter_mut()
            .find(|t| t.from == from && t.mid_in == data.mid)
        else {
            return Forwarded::Not;
        };
        let OutState::Open(mid) = t.state else {
            return Forwarded::Not;
        };
        let keyframe = data.keyframe;
        if t.kind == MediaKind::Video {
            if t.paused {
                return Forwarded::Not;
            }
            if data.rid.is_some() {
                if t.switch_to.is_some() && data.rid == t.switch_to {
                    if !keyframe {
                        // Ask again (throttled) until the keyframe comes: one
                        // request can be lost, or come before the sender's
                        // layer was mapped.
                        return Forwarded::NeedKeyframe(data.rid);
                    }
                    // Switch here: the receiver's timeline runs on from the last
                    // packet, a frame (3000 at 90 kHz) later.
                    t.ts_offset = match t.last_ts {
                        Some(last) => last.wrapping_add(3000).wrapping_sub(data.time),
                        None => 0,
                    };
                    if t.rid.is_some() {
                        stats.layer_switches += 1;
                    }
                    tracing::debug!(receiver = ?self.id, from, from_rid = ?t.rid, to_rid = ?t.switch_to, "layer switched at a keyframe");
                    t.rid = t.switch_to.take();
                    t.need_keyframe = false;
                    t.rebase = true;
                } else if t.rid.is_none() && t.switch_to.is_none() {
                    // No choice made yet: take what comes first, from a keyframe.
                    if !keyframe {
                        return Forwarded::NeedKeyframe(data.rid);
                    }
                    t.rid = data.rid;
                    t.need_keyframe = false;
                    t.rebase = true;
                    tracing::debug!(receiver = ?self.id, from, rid = ?t.rid, "first frame forwarded");
                } else if data.rid != t.rid {
                    return Forwarded::Not;
                }
            }
            if t.need_keyframe {
                if !keyframe {
                    return Forwarded::NeedKeyframe(data.rid);
                }
                t.need_keyframe = false;
                t.rebase = true;
            }
        }
        if t.rebase {
            t.rebase = false;
            t.run_from = data.seq;
            t.seq_offset = t.last_seq as i64 + 1 - data.seq as i64;
        } else if data.seq < t.run_from {
            return Forwarded::Not; // late, from before this run
        }
        let seq = data.seq as i64 + t.seq_offset;
        let Ok(seq) = u64::try_from(seq) else {
            return Forwarded::Not;
        };
        let time = data.time.wrapping_add(t.ts_offset);
        let pt = match t.pt {
            Some((theirs, ours)) if theirs == data.params.pt() => ours,
            _ => {
                let Some(ours) = self
                    .rtc
                    .codec_config()
                    .match_params(data.params)
                    .map(|p| p.pt())
                else {
                    return Forwarded::Not;
                };
                t.pt = Some((data.params.pt(), ours));
                ours
            }
        };
        let video = t.kind == MediaKind::Video;
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, None) else {
            return Forwarded::Not;
        };
        tx.write_rtp(
            RtpWrite::new(
                pt,
                SeqNo::from(seq),
                time,
                data.arrival,
                data.payload.clone(),
            )
            .marker(data.marker)
            .ext_vals(data.ext.clone())
            .nackable(video),
        );
        t.last_seq = t.last_seq.max(seq);
        t.last_ts = Some(time);
        if !video || data.marker {
            stats.frames_forwarded += 1;
        }
        Forwarded::Written
    }
}
