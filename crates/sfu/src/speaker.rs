//! The active speaker: the participant whose audio has been loudest lately, from
//! the audio-level header extension (RFC 6464; str0m gives it as negative dBov:
//! 0 is loudest, -127 silence).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Quieter than this (dBov) is silence.
const SPEECH_BELOW_DBOV: f32 = 60.0;
/// How long a new speaker must lead before the room hears of it.
const HOLD: Duration = Duration::from_millis(800);
/// A participant silent (no audio at all) this long is not speaking.
const STALE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Speakers {
    /// Per participant: smoothed loudness (127 - dBov) and when audio was last seen.
    loudness: HashMap<i64, (f32, Instant)>,
    current: Option<i64>,
    leader_since: Option<(i64, Instant)>,
}

impl Speakers {
    /// One audio packet's level from `who`, in dBov (0 loudest, -127 silence).
    pub fn level(&mut self, who: i64, dbov: i8, now: Instant) {
        let loud = (127 - dbov.unsigned_abs().min(127)) as f32;
        let entry = self.loudness.entry(who).or_insert((0.0, now));
        // About 0.3 s of 20 ms packets.
        entry.0 += (loud - entry.0) * 0.07;
        entry.1 = now;
    }

    pub fn forget(&mut self, who: i64) {
        self.loudness.remove(&who);
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
            .loudness
            .iter()
            .filter(|(_, (loud, seen))| {
                now.saturating_duration_since(*seen) < STALE && *loud > 127.0 - SPEECH_BELOW_DBOV
            })
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
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
        let mut s = Speakers::default();
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
}
