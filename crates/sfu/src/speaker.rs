//! Who is heard, from the audio-level header extension (RFC 6464; str0m gives it
//! as negative dBov: 0 is loudest, -127 silence): the active speaker, whose audio
//! has been loudest lately, and the few loudest microphones of a call, the only
//! ones forwarded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Quieter than this (dBov) is silence.
const SPEECH_BELOW_DBOV: f32 = 60.0;
/// How long a new speaker must lead before the room hears of it.
const HOLD: Duration = Duration::from_millis(800);
/// A participant silent (no audio at all) this long is not speaking.
const STALE: Duration = Duration::from_secs(1);

/// How many microphones a call carries at once: its loudest. Every other open
/// microphone is not forwarded, as a conferencing service does past a handful of
/// talkers (Google Meet forwards three): a room hears the few who talk over the
/// rest anyway, and 32 open microphones are 32 × 31 audio streams, 49,600
/// datagrams a second, which left no room for video (bench/README.md). With four,
/// each participant hears at least the three loudest others. The default of
/// `CALLHUB_SFU_AUDIBLE`.
pub const AUDIBLE: usize = 4;
/// A microphone louder than the quietest audible one by this much (dB) takes
/// its place: equal rooms' murmur does not swap places on every packet.
const TAKEOVER_DB: f32 = 6.0;
/// An audible microphone keeps its place at least this long.
const KEEP: Duration = Duration::from_millis(500);
/// An audible microphone with no audio this long (DTX, a lost connection) is
/// silent: anyone takes its place.
const GONE: Duration = Duration::from_millis(300);

#[derive(Debug)]
pub struct Speakers {
    voices: HashMap<i64, Voice>,
    current: Option<i64>,
    leader_since: Option<(i64, Instant)>,
    /// The audible microphones and since when, at most `limit`.
    audible: Vec<(i64, Instant)>,
    limit: usize,
}

/// One participant's loudness (127 - dBov).
#[derive(Debug)]
struct Voice {
    /// Smoothed over about 0.3 s: who has been loudest lately.
    smooth: f32,
    /// Rises within a packet or two, falls over about a second: speech that
    /// starts is audible at once, a pause between words keeps its place.
    envelope: f32,
    seen: Instant,
}

impl Speakers {
    /// A call carrying at most `limit` open microphones (0: every one).
    pub fn new(limit: usize) -> Self {
        Self {
            voices: HashMap::new(),
            current: None,
            leader_since: None,
            audible: vec![],
            limit: if limit == 0 { usize::MAX } else { limit },
        }
    }

    /// One audio packet's level from `who`, in dBov (0 loudest, -127 silence).
    pub fn level(&mut self, who: i64, dbov: i8, now: Instant) {
        let loud = (127 - dbov.unsigned_abs().min(127)) as f32;
        let v = self.voices.entry(who).or_insert(Voice {
            smooth: 0.0,
            envelope: 0.0,
            seen: now,
        });
        // About 0.3 s of 20 ms packets.
        v.smooth += (loud - v.smooth) * 0.07;
        let k = if loud > v.envelope { 0.6 } else { 0.05 };
        v.envelope += (loud - v.envelope) * k;
        v.seen = now;
    }

    /// Whether `who`'s microphone is among the call's audible ones now, taking a
    /// place when it is free or `who` is louder than the quietest holder by
    /// `TAKEOVER_DB`. Asked for each audio packet after its level.
    pub fn admit(&mut self, who: i64, now: Instant) -> bool {
        if self.audible.iter().any(|(w, _)| *w == who) {
            return true;
        }
        if self.audible.len() < self.limit {
            self.audible.push((who, now));
            return true;
        }
        let envelope = |w: i64| {
            self.voices
                .get(&w)
                .filter(|v| now.saturating_duration_since(v.seen) < GONE)
                .map_or(0.0, |v| v.envelope)
        };
        let mine = envelope(who);
        let quietest = self
            .audible
            .iter()
            .enumerate()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= KEEP)
            .map(|(i, (w, _))| (i, envelope(*w)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match quietest {
            Some((i, theirs)) if mine > theirs + TAKEOVER_DB => {
                self.audible[i] = (who, now);
                true
            }
            _ => false,
        }
    }

    pub fn forget(&mut self, who: i64) {
        self.voices.remove(&who);
        self.audible.retain(|(w, _)| *w != who);
        if self.current == Some(who) {
            self.current = None;
        }
    }

    pub fn current(&self) -> Option<i64> {
        self.current
    }

    /// Answers the new active speaker when it changes.
    pub fn tick(&mut self, now: Instant) -> Option<i64> {
        let leader = self
            .voices
            .iter()
            .filter(|(_, v)| {
                now.saturating_duration_since(v.seen) < STALE
                    && v.smooth > 127.0 - SPEECH_BELOW_DBOV
            })
            .max_by(|a, b| a.1.smooth.total_cmp(&b.1.smooth))
            .map(|(&who, _)| who)?;
        if Some(leader) == self.current {
            self.leader_since = None;
            return None;
        }
        match self.leader_since {
            Some((who, since)) if who == leader => {
                if now.saturating_duration_since(since) >= HOLD {
                    self.current = Some(leader);
                    self.leader_since = None;
                    return Some(leader);
                }
            }
            _ => self.leader_since = Some((leader, now)),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loudest_leads_after_a_hold_and_silence_never_does() {
        let t0 = Instant::now();
        let mut s = Speakers::new(AUDIBLE);
        let mut changes = vec![];
        for i in 0..100u64 {
            let now = t0 + Duration::from_millis(20 * i);
            s.level(1, -30, now); // speaking
            s.level(2, -127, now); // silent
            s.level(3, -50, now); // softer
            changes.extend(s.tick(now));
        }
        assert_eq!(changes, vec![1]);
        // 3 becomes the loudest.
        for i in 100..200u64 {
            let now = t0 + Duration::from_millis(20 * i);
            s.level(1, -127, now);
            s.level(3, -20, now);
            changes.extend(s.tick(now));
        }
        assert_eq!(changes, vec![1, 3]);
        s.forget(3);
        assert_eq!(s.current(), None);
    }

    #[test]
    fn the_loudest_microphones_are_audible_and_keep_their_place_against_murmur() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = Speakers::new(AUDIBLE);
        let packet = |s: &mut Speakers, who: i64, dbov: i8, now: Instant| {
            s.level(who, dbov, now);
            s.admit(who, now)
        };
        // The first four take the free places; the fifth, as loud, does not.
        for who in 1..=4 {
            assert!(packet(&mut s, who, -70, at(0)));
        }
        assert!(!packet(&mut s, 5, -70, at(0)));
        // A little louder is not enough, nor is much louder within `KEEP`.
        for ms in (20..=400).step_by(20) {
            for who in 1..=4 {
                packet(&mut s, who, -70, at(ms));
            }
            assert!(!packet(&mut s, 5, -66, at(ms)), "at {ms} ms");
        }
        assert!(
            !packet(&mut s, 6, -20, at(420)),
            "the holders keep their places for KEEP"
        );
        // Past it, a talker takes the quietest place at its first packet.
        for who in 1..=4 {
            packet(&mut s, who, if who == 3 { -80 } else { -70 }, at(520));
        }
        assert!(packet(&mut s, 6, -20, at(520)));
        assert!(
            !packet(&mut s, 3, -80, at(540)),
            "3 was the quietest and made room"
        );
        assert!(packet(&mut s, 1, -70, at(540)));
        // A holder gone quiet (no packets: DTX, a dropped connection) is
        // replaced by anyone.
        for ms in (540..=1200).step_by(20) {
            for who in [1, 2, 6] {
                packet(&mut s, who, -70, at(ms));
            }
        }
        assert!(
            packet(&mut s, 5, -90, at(1200)),
            "4 has sent nothing for 680 ms"
        );
        // Who leaves frees a place.
        s.forget(6);
        assert!(packet(&mut s, 3, -90, at(1220)));
    }

    #[test]
    fn without_a_limit_every_microphone_is_audible() {
        let now = Instant::now();
        let mut s = Speakers::new(0);
        for who in 1..=40 {
            s.level(who, -70, now);
            assert!(s.admit(who, now), "{who}");
        }
        let mut four = Speakers::new(4);
        let admitted = (1..=40)
            .filter(|&who| {
                four.level(who, -70, now);
                four.admit(who, now)
            })
            .count();
        assert_eq!(admitted, 4);
    }
}
