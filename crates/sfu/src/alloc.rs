//! How many videos a receiver gets: as many as its bandwidth estimate carries,
//! in the order it prefers them. What does not fit is paused rather than handed
//! to str0m, whose pacer holds each receiver to its estimate: forwarding more
//! than that only grows its send queues until every video arrives late and
//! broken (the SFU benchmark at 16 participants, bench/README.md).

use std::time::{Duration, Instant};

/// A receiver gets more videos only after the estimate has had room for them
/// this long: each resumed video starts with a keyframe, which is costly to
/// throw away again.
pub const RESUME_AFTER: Duration = Duration::from_secs(1);
/// What a video is assumed to cost before its sender's rate is known.
pub const UNMEASURED_VIDEO_BPS: u64 = 300_000;
/// RTP, SRTP and UDP headers on top of the payload rate a sender is measured at.
const OVERHEAD: f64 = 1.08;

/// A payload rate, measured over the SFU's ticks (first over a whole
/// `FIRST_SPAN`, then smoothed over about 2.5 s), without keyframes. Keyframes
/// come when the SFU asks for them, and it asks every sender at once whenever
/// someone joins: a new call's first second held two or three per video (ten
/// times a delta frame and more), which made every video look three times as
/// costly as it is, and receivers paused most of them at once (bench/README.md).
/// A browser sends keyframes only when asked, so what a video costs for long is
/// its delta frames.
#[derive(Debug, Default, Clone)]
pub struct Rate {
    bytes: u64,
    span: Duration,
    bps: Option<f64>,
    /// Within a keyframe: from its first packet to the one with the marker.
    in_keyframe: bool,
}

/// How long a rate is measured before it is known.
const FIRST_SPAN: Duration = Duration::from_secs(1);

impl Rate {
    /// One packet: its payload's size, whether it starts a keyframe, and
    /// whether it ends its frame.
    pub fn add(&mut self, bytes: usize, starts_keyframe: bool, marker: bool) {
        self.in_keyframe |= starts_keyframe;
        if !self.in_keyframe {
            self.bytes += bytes as u64;
        }
        if marker {
            self.in_keyframe = false;
        }
    }

    /// Closes a tick of `elapsed`.
    pub fn tick(&mut self, elapsed: Duration) {
        self.span += elapsed;
        if self.span.is_zero() || (self.bps.is_none() && self.span < FIRST_SPAN) {
            return;
        }
        let now = std::mem::take(&mut self.bytes) as f64 * 8.0 / self.span.as_secs_f64();
        self.span = Duration::ZERO;
        self.bps = Some(match self.bps {
            Some(old) => old + (now - old) * 0.1,
            None => now,
        });
    }

    /// The rate with headers, once measured.
    pub fn bps(&self) -> Option<u64> {
        self.bps.map(|b| (b * OVERHEAD) as u64)
    }
}

/// More videos are taken only when they leave this share of the estimate
/// free: a resumed video's keyframe, and the probing, need room.
const UP_MARGIN: f64 = 0.85;
/// A pause this soon after more videos were taken means they did not fit: the
/// next try waits twice as long, up to `MAX_HOLD`.
const FLAP: Duration = Duration::from_secs(5);
const MAX_HOLD: Duration = Duration::from_secs(8);
/// Quiet this long, the wait falls back to `RESUME_AFTER`.
const CALM: Duration = Duration::from_secs(20);
/// Fewer videos only once the estimate has been short of them this long: a
/// delay-based estimate dips for a moment whenever a receiver's feedback comes
/// late (a busy core on either end), and each pause costs a keyframe to undo.
/// str0m's pacer holds what does not fit meanwhile, at most this long.
const DOWN_AFTER: Duration = Duration::from_millis(500);
/// ... unless the estimate carries less than this share of what is forwarded:
/// then at once.
const SEVERE: f64 = 0.7;

/// A receiver's video budget with hysteresis: fewer videos when the estimate
/// stays short of them (at once when it falls far short), more when it has had
/// room for them (with a margin) for a while, and longer waits after a try that
/// did not fit.
#[derive(Debug, Clone)]
pub struct Budget {
    allowed: Option<usize>,
    more_since: Option<Instant>,
    fewer_since: Option<Instant>,
    hold: Duration,
    last_up: Option<Instant>,
    last_down: Option<Instant>,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            allowed: None,
            more_since: None,
            fewer_since: None,
            hold: RESUME_AFTER,
            last_up: None,
            last_down: None,
        }
    }
}

/// How many of `costs`, in order, add up to no more than `bps`.
fn fitting(costs: &[u64], bps: u64) -> usize {
    costs
        .iter()
        .scan(0u64, |sum, &c| {
            *sum += c;
            Some(*sum)
        })
        .take_while(|&sum| sum <= bps)
        .count()
}

impl Budget {
    /// How many of the videos (their costs in the receiver's order of
    /// preference) are forwarded, given `bps` for video.
    pub fn update(&mut self, bps: u64, costs: &[u64], now: Instant) -> usize {
        let fits = fitting(costs, bps);
        let roomy = fitting(costs, (bps as f64 * UP_MARGIN) as u64);
        if self
            .last_down
            .or(self.last_up)
            .is_some_and(|t| now.saturating_duration_since(t) >= CALM)
        {
            self.hold = RESUME_AFTER;
        }
        let current = self.allowed;
        let allowed = match current {
            None => fits,
            Some(a) if fits < a && !self.short_long_enough(bps, costs, a, now) => a,
            Some(a) if fits < a => {
                self.more_since = None;
                self.fewer_since = None;
                if self
                    .last_up
                    .is_some_and(|t| now.saturating_duration_since(t) < FLAP)
                {
                    self.hold = (self.hold * 2).min(MAX_HOLD);
                }
                self.last_down = Some(now);
                fits
            }
            // Never short yet (a receiver that just joined, videos that just
            // started): whatever fits, at once.
            Some(a) if self.last_down.is_none() && fits > a => {
                self.more_since = None;
                self.last_up = Some(now);
                fits
            }
            Some(a) if roomy > a => {
                self.fewer_since = None;
                let since = *self.more_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= self.hold {
                    self.more_since = None;
                    self.last_up = Some(now);
                    roomy
                } else {
                    a
                }
            }
            Some(a) => {
                self.more_since = None;
                self.fewer_since = None;
                a
            }
        };
        let allowed = allowed.min(costs.len());
        self.allowed = Some(allowed);
        allowed
    }

    /// Whether an estimate of `bps` that does not carry the `allowed` videos
    /// now has been short long enough (or is short enough) to forward fewer.
    fn short_long_enough(&mut self, bps: u64, costs: &[u64], allowed: usize, now: Instant) -> bool {
        let forwarded: u64 = costs.iter().take(allowed).sum();
        let since = *self.fewer_since.get_or_insert(now);
        (bps as f64) < forwarded as f64 * SEVERE
            || now.saturating_duration_since(since) >= DOWN_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_follows_what_arrives() {
        let mut r = Rate::default();
        assert_eq!(r.bps(), None);
        // A keyframe of 30 kB in three packets, then 1 kB frames of one packet.
        r.add(10_000, true, false);
        r.add(10_000, false, false);
        r.add(10_000, false, true);
        r.tick(Duration::from_millis(250));
        assert_eq!(r.bps(), None, "not known before a second");
        for _ in 0..3 {
            for _ in 0..10 {
                r.add(1_000, false, true);
            }
            r.tick(Duration::from_millis(250));
        }
        assert_eq!(
            r.bps(),
            Some((240_000.0 * OVERHEAD) as u64),
            "30 kB of delta frames in a second"
        );
        // Another keyframe changes nothing; 1 kB more moves it a little.
        r.add(30_000, true, true);
        r.add(1_000, false, true);
        r.tick(Duration::from_millis(250));
        // 240 kbit/s, and 32 kbit/s in this tick, a tenth of the way.
        assert_eq!(r.bps(), Some((219_200.0 * OVERHEAD) as u64));
        for _ in 0..80 {
            r.tick(Duration::from_millis(250));
        }
        assert!(r.bps().unwrap() < 1_000, "silence brings it down");
    }

    #[test]
    fn fewer_videos_at_once_more_after_a_while() {
        let t0 = Instant::now();
        let costs = [300_000; 5];
        let mut b = Budget::default();
        assert_eq!(b.update(1_000_000, &costs, t0), 3, "what fits, at first");
        assert_eq!(
            b.update(600_000, &costs, t0 + Duration::from_millis(250)),
            2,
            "down at once when far short"
        );
        // Room for one more, but only for a moment, or without a margin:
        // nothing changes.
        let mut t = t0 + Duration::from_millis(500);
        assert_eq!(b.update(1_100_000, &costs, t), 2);
        t += Duration::from_millis(250);
        assert_eq!(b.update(650_000, &costs, t), 2);
        t += RESUME_AFTER;
        assert_eq!(b.update(920_000, &costs, t), 2);
        t += RESUME_AFTER;
        assert_eq!(
            b.update(920_000, &costs, t),
            2,
            "900 kbit/s leave no margin"
        );
        // Room for all five for a while: all five.
        assert_eq!(b.update(10_000_000, &costs, t), 2);
        t += RESUME_AFTER / 2;
        assert_eq!(b.update(10_000_000, &costs, t), 2);
        t += RESUME_AFTER / 2;
        assert_eq!(b.update(10_000_000, &costs, t), 5);
        t += RESUME_AFTER;
        assert_eq!(
            b.update(10_000_000, &costs, t),
            5,
            "never more than there are"
        );
        assert_eq!(b.update(0, &costs, t), 0, "audio only when nothing fits");
    }

    #[test]
    fn until_the_first_shortfall_more_videos_come_as_soon_as_they_fit() {
        let t0 = Instant::now();
        let costs = [300_000; 5];
        let mut b = Budget::default();
        assert_eq!(b.update(700_000, &costs[..2], t0), 2, "two senders so far");
        let t = t0 + Duration::from_millis(10);
        assert_eq!(
            b.update(1_000_000, &costs, t),
            3,
            "three more: what fits, at once"
        );
        assert_eq!(b.update(1_600_000, &costs, t), 5, "and more as it grows");
    }

    #[test]
    fn a_short_dip_pauses_nothing_a_lasting_one_does() {
        let t0 = Instant::now();
        let costs = [300_000; 4];
        let mut b = Budget::default();
        assert_eq!(b.update(1_300_000, &costs, t0), 4);
        // 1.1 Mbit/s carries three of the four: short of them, but not far.
        let mut t = t0 + Duration::from_millis(250);
        assert_eq!(b.update(1_100_000, &costs, t), 4, "a dip: nothing yet");
        t += Duration::from_millis(250);
        assert_eq!(b.update(1_300_000, &costs, t), 4, "it passed");
        t += Duration::from_millis(250);
        assert_eq!(
            b.update(1_100_000, &costs, t),
            4,
            "a new dip starts its own wait"
        );
        t += DOWN_AFTER / 2;
        assert_eq!(b.update(1_100_000, &costs, t), 4);
        t += DOWN_AFTER / 2;
        assert_eq!(b.update(1_100_000, &costs, t), 3, "it lasted: fewer");
    }

    #[test]
    fn a_try_that_does_not_fit_makes_the_next_wait_longer() {
        let t0 = Instant::now();
        let costs = [300_000; 3];
        let mut b = Budget::default();
        assert_eq!(b.update(400_000, &costs, t0), 1);
        let mut t = t0;
        // Never short yet: all three as soon as they fit; then they do not.
        assert_eq!(b.update(2_000_000, &costs, t), 3);
        t += Duration::from_secs(1);
        assert_eq!(b.update(400_000, &costs, t), 1, "far short: at once");
        // The next try waits twice as long.
        assert_eq!(b.update(2_000_000, &costs, t), 1);
        t += RESUME_AFTER;
        assert_eq!(b.update(2_000_000, &costs, t), 1);
        t += RESUME_AFTER;
        assert_eq!(b.update(2_000_000, &costs, t), 3);
    }
}
