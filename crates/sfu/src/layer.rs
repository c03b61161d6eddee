//! Which simulcast layer a receiver gets: from its bandwidth estimate, shared over
//! the videos it receives, and from what the sender actually sends.

use std::time::{Duration, Instant};

/// A layer the sender has not sent for this long is taken as off (a browser
/// stops its top layers when the camera's resolution or its uplink is too low).
pub const LAYER_IDLE: Duration = Duration::from_secs(1);
/// A receiver moves up a layer only after its estimate has allowed it this long;
/// it moves down at once.
pub const UP_AFTER: Duration = Duration::from_secs(3);

/// The bitrate a receiver needs for each layer, high to low (`h`, `m`, `l`): a
/// camera at 640×480 and its halves, with headroom.
const NEEDS_BPS: [u64; 3] = [900_000, 350_000, 0];

/// The rank of a rid, 0 the best. `h`, `m`, `l` as API.md names them; any other
/// rid ranks by its place in the sender's list.
pub fn rank(rid: &str, listed: &[String]) -> usize {
    match rid {
        "h" => 0,
        "m" => 1,
        "l" => 2,
        other => 3 + listed.iter().position(|r| r == other).unwrap_or(0),
    }
}

/// What a receiver's share must be for the layer of `rank`.
pub fn need(rank: usize) -> u64 {
    NEEDS_BPS.get(rank).copied().unwrap_or(0)
}

/// The best layer `share_bps` (the receiver's estimate divided among its videos)
/// pays for, as a rank.
pub fn affordable(share_bps: u64) -> usize {
    NEEDS_BPS
        .iter()
        .position(|&need| share_bps >= need)
        .unwrap_or(2)
}

/// Whether a layer last received at `seen` is being sent.
pub fn is_live(seen: Option<Instant>, now: Instant) -> bool {
    seen.is_some_and(|t| now.saturating_duration_since(t) < LAYER_IDLE)
}

/// Picks the layer to forward: the best one not above `wanted` among those sent
/// lately; if none, the best one sent lately at all.
pub fn pick<'a>(
    wanted: usize,
    layers: impl Iterator<Item = (&'a str, usize, Option<Instant>)>,
    now: Instant,
) -> Option<&'a str> {
    let mut live: Vec<(&str, usize)> = layers
        .filter(|(_, _, seen)| is_live(*seen, now))
        .map(|(rid, rank, _)| (rid, rank))
        .collect();
    live.sort_by_key(|&(_, rank)| rank);
    live.iter()
        .find(|&&(_, rank)| rank >= wanted)
        .or_else(|| live.last())
        .map(|&(rid, _)| rid)
}

/// A receiver's wanted rank with hysteresis: down at once, up after `UP_AFTER`.
#[derive(Debug, Clone)]
pub struct Wanted {
    rank: usize,
    up_since: Option<Instant>,
}

impl Default for Wanted {
    fn default() -> Self {
        // Start in the middle: a fresh estimate says little yet.
        Self {
            rank: 1,
            up_since: None,
        }
    }
}

impl Wanted {
    /// Feeds an estimate's affordable rank; answers the wanted rank.
    pub fn update(&mut self, affordable: usize, now: Instant) -> usize {
        if affordable > self.rank {
            self.rank = affordable;
            self.up_since = None;
        } else if affordable < self.rank {
            let since = *self.up_since.get_or_insert(now);
            if now.saturating_duration_since(since) >= UP_AFTER {
                self.rank -= 1;
                self.up_since = None;
            }
        } else {
            self.up_since = None;
        }
        self.rank
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_pay_for_layers() {
        assert_eq!(affordable(2_000_000), 0);
        assert_eq!(affordable(500_000), 1);
        assert_eq!(affordable(100_000), 2);
    }

    #[test]
    fn pick_takes_the_best_live_layer_not_above_the_wanted_one() {
        let now = Instant::now();
        let old = now - Duration::from_secs(5);
        let all = || {
            [
                ("h", 0, Some(now)),
                ("m", 1, Some(now)),
                ("l", 2, Some(now)),
            ]
            .into_iter()
        };
        assert_eq!(pick(0, all(), now), Some("h"));
        assert_eq!(pick(1, all(), now), Some("m"));
        assert_eq!(pick(2, all(), now), Some("l"));
        // h is not sent (a small camera): the wish for h gets m.
        let no_h = [
            ("h", 0, Some(old)),
            ("m", 1, Some(now)),
            ("l", 2, Some(now)),
        ];
        assert_eq!(pick(0, no_h.into_iter(), now), Some("m"));
        // Only h is sent: a receiver who wants l still gets video.
        let only_h = [("h", 0, Some(now)), ("m", 1, None), ("l", 2, Some(old))];
        assert_eq!(pick(2, only_h.into_iter(), now), Some("h"));
        assert_eq!(pick(2, [("h", 0, None)].into_iter(), now), None);
    }

    #[test]
    fn down_at_once_up_only_after_a_while() {
        let t0 = Instant::now();
        let mut w = Wanted::default();
        assert_eq!(w.update(2, t0), 2, "a cut takes effect at once");
        assert_eq!(w.update(0, t0 + Duration::from_secs(1)), 2);
        assert_eq!(w.update(0, t0 + Duration::from_secs(3)), 2);
        assert_eq!(
            w.update(0, t0 + Duration::from_secs(4)),
            1,
            "up one step after 3 s"
        );
        assert_eq!(w.update(0, t0 + Duration::from_secs(8)), 1);
        assert_eq!(w.update(0, t0 + Duration::from_secs(11)), 0);
    }
}
