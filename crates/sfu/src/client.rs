//! A scripted participant of an SFU call, sans-IO like the SFU: a str0m peer that
//! offers a microphone and a camera, answers the SFU's offers, sends Opus-sized
//! audio and VP8 video (a recorded IVF clip, or synthetic frames) on the clip's
//! clock, and counts what it sends and what it receives from whom. Tests and the
//! load generator (`bench/`) drive it; `receiver` is a receive-only peer for
//! servers that put a subscription on a connection of its own (Janus).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output as RtcOutput, Rtc};

/// A VP8 clip read from an IVF file: its frames, looped.
#[derive(Debug)]
pub struct Clip {
    pub frames: Vec<Arc<[u8]>>,
    pub fps: u32,
}

impl Clip {
    /// Reads an IVF file's bytes (a 32-byte header, then per frame a 12-byte header
    /// and the frame).
    pub fn from_ivf(bytes: &[u8]) -> Result<Clip, String> {
        if bytes.len() < 32 || &bytes[..4] != b"DKIF" || &bytes[8..12] != b"VP80" {
            return Err("not an IVF file of VP8".into());
        }
        let rate = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
        let scale = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes")).max(1);
        let mut frames = vec![];
        let mut at = u16::from_le_bytes(bytes[6..8].try_into().expect("2 bytes")) as usize;
        while at + 12 <= bytes.len() {
            let size = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
            let start = at + 12;
            let Some(frame) = bytes.get(start..start + size) else {
                break;
            };
            frames.push(Arc::from(frame));
            at = start + size;
        }
        if frames.is_empty() || !is_vp8_keyframe(&frames[0]) {
            return Err("the clip must start with a keyframe".into());
        }
        Ok(Clip {
            frames,
            fps: (rate / scale).clamp(1, 120),
        })
    }
}

/// The next due time a period after the last one, so late polls do not slow the
/// rate; more than a second behind (a stall), it starts again from now.
fn on_clock(due: Instant, period: Duration, now: Instant) -> Instant {
    let next = due + period;
    if next + Duration::from_secs(1) < now {
        now + period
    } else {
        next
    }
}

/// A str0m peer that speaks only Opus and VP8, as the SFU does: str0m's default
/// lists about 24 video payload types per m-line, which makes a large call's
/// answers several times larger for nothing.
fn opus_and_vp8(now: Instant) -> Rtc {
    Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .clear_codecs()
        .enable_opus(true, false)
        .enable_vp8(true)
        .build(now)
}

fn is_vp8_keyframe(frame: &[u8]) -> bool {
    frame.first().is_some_and(|b| b & 1 == 0)
}

/// What a participant has received from another.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub video_frames: u64,
    pub keyframes: u64,
    pub audio_frames: u64,
    pub bytes: u64,
    /// Whether the first video frame was a keyframe (a decoder could start there).
    pub started_at_keyframe: Option<bool>,
    pub first_video: Option<Instant>,
    pub last_video: Option<Instant>,
}

/// What the SFU listed for a mid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub contact: i64,
    pub kind: String,
    pub source: String,
}

/// A frame as it arrived, before it is counted.
struct Arrived {
    at: Instant,
    bytes: usize,
    keyframe: bool,
}

/// Frames held per unlisted mid, at most (about 10 s of video).
const UNLISTED_HELD: usize = 300;

pub struct Participant {
    pub rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    audio: Mid,
    video: Mid,
    clip: Option<Arc<Clip>>,
    position: usize,
    frame: u64,
    audio_frame: u64,
    next_video: Instant,
    next_audio: Instant,
    keyframe_asked: bool,
    /// Whether it sends media (a receive-only participant when false).
    pub sending: bool,
    /// Loud audio (it becomes the active speaker), or an open microphone in a
    /// quiet room (-70 dBov: not speech).
    pub loud: bool,
    /// A muted microphone: digital silence (-127 dBov), as a browser sends it.
    pub muted: bool,
    pub tracks: HashMap<String, Track>,
    pub received: HashMap<i64, Received>,
    /// Frames of mids the SFU has not listed yet (media can overtake the
    /// `tracks` frame, which comes over the WebSocket, and with several nodes
    /// over NATS), counted once the listing names their sender.
    unlisted: HashMap<String, Vec<Arrived>>,
    pub speakers: Vec<i64>,
    /// The mids of the videos the SFU holds back for this participant's bandwidth.
    pub paused: Vec<String>,
    pub keyframes_asked: u64,
    /// Video and audio frames handed to str0m to send.
    pub video_sent: u64,
    pub audio_sent: u64,
    /// The SFU asked for a new connection (`{"restart": true}`: its node stops).
    pub restart_asked: bool,
    /// Datagrams str0m made while handling received ones, sent at the next poll.
    queued: Vec<(SocketAddr, Vec<u8>)>,
}

impl Participant {
    /// A participant at `local` (its host candidate); answers it with the `sfu`
    /// payload of its offer.
    pub fn new(local: SocketAddr, now: Instant, clip: Option<Arc<Clip>>) -> (Participant, Value) {
        let mut rtc = opus_and_vp8(now);
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("a host candidate"));
        let mut change = rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = change.apply().expect("media were added");
        let p = Participant {
            rtc,
            pending: Some(pending),
            audio,
            video,
            clip,
            position: 0,
            frame: 0,
            audio_frame: 0,
            next_video: now,
            next_audio: now,
            keyframe_asked: true,
            sending: true,
            loud: false,
            muted: false,
            tracks: HashMap::new(),
            received: HashMap::new(),
            unlisted: HashMap::new(),
            speakers: vec![],
            paused: vec![],
            keyframes_asked: 0,
            video_sent: 0,
            audio_sent: 0,
            restart_asked: false,
            queued: vec![],
        };
        (
            p,
            json!({"sdp": {"type": "offer", "sdp": offer.to_sdp_string()}}),
        )
    }

    /// A receive-only peer at `local` that answers offers (a Janus subscription).
    pub fn receiver(local: SocketAddr, now: Instant) -> Participant {
        let (mut p, _) = Participant::new(local, now, None);
        // The send-only m-lines of `new` were never offered: start without them.
        let mut rtc = opus_and_vp8(now);
        rtc.add_local_candidate(Candidate::host(local, "udp").expect("a host candidate"));
        p.rtc = rtc;
        p.pending = None;
        p.sending = false;
        p
    }

    /// An `sfu` payload from the SFU; answers the payload to send back, if any.
    pub fn signal(&mut self, payload: &Value) -> Result<Option<Value>, String> {
        if let Some(tracks) = payload.get("tracks").and_then(Value::as_array) {
            self.tracks = tracks
                .iter()
                .filter_map(|t| {
                    Some((
                        t.get("mid")?.as_str()?.to_owned(),
                        Track {
                            contact: t.get("contactId")?.as_i64()?,
                            kind: t.get("kind")?.as_str()?.to_owned(),
                            source: t.get("source")?.as_str()?.to_owned(),
                        },
                    ))
                })
                .collect();
            let listed: Vec<String> = self
                .unlisted
                .keys()
                .filter(|m| self.tracks.contains_key(*m))
                .cloned()
                .collect();
            for mid in listed {
                for a in self.unlisted.remove(&mid).unwrap_or_default() {
                    self.count(&mid, a);
                }
            }
            return Ok(None);
        }
        if payload.get("restart").and_then(Value::as_bool) == Some(true) {
            self.restart_asked = true;
            return Ok(None);
        }
        if let Some(who) = payload.get("activeSpeaker").and_then(Value::as_i64) {
            self.speakers.push(who);
            return Ok(None);
        }
        if let Some(paused) = payload.get("paused").and_then(Value::as_array) {
            self.paused = paused
                .iter()
                .filter_map(|m| Some(m.as_str()?.to_owned()))
                .collect();
            return Ok(None);
        }
        let sdp = payload.get("sdp").ok_or("an sfu payload without sdp")?;
        let text = sdp.get("sdp").and_then(Value::as_str).ok_or("sdp.sdp")?;
        match sdp.get("type").and_then(Value::as_str) {
            Some("answer") => {
                let pending = self.pending.take().ok_or("an answer without an offer")?;
                let answer = SdpAnswer::from_sdp_string(text).map_err(|e| e.to_string())?;
                self.rtc
                    .sdp_api()
                    .accept_answer(pending, answer)
                    .map_err(|e| e.to_string())?;
                Ok(None)
            }
            Some("offer") => {
                // Polite: the SFU's offer wins over one of ours.
                self.pending = None;
                let offer = SdpOffer::from_sdp_string(text).map_err(|e| e.to_string())?;
                let answer = self
                    .rtc
                    .sdp_api()
                    .accept_offer(offer)
                    .map_err(|e| e.to_string())?;
                Ok(Some(
                    json!({"sdp": {"type": "answer", "sdp": answer.to_sdp_string()}}),
                ))
            }
            other => Err(format!("unexpected sdp type {other:?}")),
        }
    }

    /// A datagram arrived for this participant.
    pub fn receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        bytes: &[u8],
    ) {
        let Ok(contents) = bytes.try_into() else {
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination,
                contents,
            },
        );
        if self.rtc.handle_input(input).is_err() {
            self.rtc.disconnect();
            return;
        }
        // str0m acts on an input only as its output is polled: the datagram
        // that completes DTLS sets the SRTP keys then, and media right behind it
        // in the same batch would be refused without them (a video's first
        // keyframe lost that way leaves the receiver only frames it cannot use).
        self.drain(now);
    }

    /// Drives time and media; answers the datagrams to send (destination, bytes)
    /// and when to be polled again at the latest.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) -> Instant {
        if self.rtc.handle_input(Input::Timeout(now)).is_err() {
            self.rtc.disconnect();
        }
        if self.sending && self.rtc.is_connected() {
            self.send_media(now);
        }
        let mut next = now + Duration::from_millis(100);
        if let Some(t) = self.drain(now) {
            next = next.min(t);
        }
        out.append(&mut self.queued);
        // Media is due only once connected (no busy loop before).
        if self.sending && self.rtc.is_connected() {
            next = next.min(self.next_audio).min(self.next_video);
        }
        next
    }

    /// Polls str0m until it waits: events handled, datagrams queued. Answers
    /// when it wants to be polled again.
    fn drain(&mut self, now: Instant) -> Option<Instant> {
        while self.rtc.is_alive() {
            match self.rtc.poll_output() {
                Ok(RtcOutput::Timeout(t)) => return Some(t),
                Ok(RtcOutput::Transmit(t)) => self.queued.push((t.destination, t.contents.into())),
                Ok(RtcOutput::Event(e)) => self.event(e, now),
                Err(_) => self.rtc.disconnect(),
            }
        }
        None
    }

    fn send_media(&mut self, now: Instant) {
        if now >= self.next_audio {
            self.next_audio = on_clock(self.next_audio, Duration::from_millis(20), now);
            let level = match (self.muted, self.loud) {
                (true, _) => -127,
                (false, true) => -20,
                (false, false) => -70,
            };
            self.audio_frame += 1;
            let t = MediaTime::new(self.audio_frame * 960, Frequency::FORTY_EIGHT_KHZ);
            let pt = self
                .rtc
                .writer(self.audio)
                .and_then(|w| w.payload_params().next().map(|p| p.pt()));
            if let Some(pt) = pt
                && let Some(w) = self.rtc.writer(self.audio)
            {
                let sent = w
                    .audio_level(level, self.loud)
                    .write(pt, now, t, vec![0xfc; 80]);
                self.audio_sent += u64::from(sent.is_ok());
            }
        }
        if now >= self.next_video {
            let fps = self.clip.as_ref().map_or(30, |c| c.fps);
            self.next_video = on_clock(
                self.next_video,
                Duration::from_micros(1_000_000 / fps as u64),
                now,
            );
            self.frame += 1;
            let asked = std::mem::take(&mut self.keyframe_asked);
            let data: Arc<[u8]> = match &self.clip {
                Some(clip) => {
                    if asked {
                        // The clip's keyframes only: start over at its first.
                        self.position = 0;
                    }
                    let f = clip.frames[self.position].clone();
                    self.position = (self.position + 1) % clip.frames.len();
                    f
                }
                None => {
                    let mut d = vec![0x55u8; 1200];
                    d[0] = if asked { 0x10 } else { 0x11 };
                    Arc::from(d)
                }
            };
            let t = MediaTime::new(self.frame * 90_000 / fps as u64, Frequency::NINETY_KHZ);
            let pt = self.rtc.writer(self.video).and_then(|w| {
                w.payload_params()
                    .find(|p| p.spec().codec == Codec::Vp8)
                    .map(|p| p.pt())
            });
            if let Some(pt) = pt
                && let Some(w) = self.rtc.writer(self.video)
            {
                let sent = w.write(pt, now, t, data);
                self.video_sent += u64::from(sent.is_ok());
            }
        }
    }

    fn event(&mut self, e: Event, now: Instant) {
        match e {
            Event::KeyframeRequest(_) => {
                self.keyframe_asked = true;
                self.keyframes_asked += 1;
            }
            Event::MediaData(d) => {
                let mid = d.mid.to_string();
                let arrived = Arrived {
                    at: now,
                    bytes: d.data.len(),
                    keyframe: d.is_keyframe(),
                };
                if self.tracks.contains_key(&mid) {
                    self.count(&mid, arrived);
                } else {
                    let held = self.unlisted.entry(mid).or_default();
                    if held.len() < UNLISTED_HELD {
                        held.push(arrived);
                    }
                }
            }
            _ => {}
        }
    }

    /// Counts a frame of a listed mid for its sender.
    fn count(&mut self, mid: &str, a: Arrived) {
        let Some(track) = self.tracks.get(mid) else {
            return;
        };
        let r = self.received.entry(track.contact).or_default();
        r.bytes += a.bytes as u64;
        if track.kind == "audio" {
            r.audio_frames += 1;
            return;
        }
        r.video_frames += 1;
        r.keyframes += u64::from(a.keyframe);
        r.started_at_keyframe.get_or_insert(a.keyframe);
        r.first_video.get_or_insert(a.at);
        r.last_video = Some(a.at);
    }

    /// Whether video from `contact` arrived, starting at a keyframe.
    pub fn sees(&self, contact: i64) -> bool {
        self.received
            .get(&contact)
            .is_some_and(|r| r.video_frames > 0 && r.started_at_keyframe == Some(true))
    }
}
