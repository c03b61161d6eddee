//! Who is calling: argon2id passwords, short-lived JWT access tokens (HS256 only),
//! opaque refresh tokens rotated on every use, and login rate limits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

pub use callhub_tokens::{Claims, GuestClaims, Tokens, random_token, token_hash};

/// The signing secret: from the configuration, else made once and kept in the data dir.
pub fn load_or_make_secret(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(s) = configured {
        anyhow::ensure!(
            s.len() >= 32,
            "CALLHUB_JWT_SECRET must be at least 32 characters"
        );
        return Ok(s.as_bytes().to_vec());
    }
    let path = data_dir.join("jwt-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        return Ok(s.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = random_token();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, &secret).with_context(|| format!("writing {}", tmp.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    // Another process may have raced us; the first secret written wins.
    if std::fs::hard_link(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
        return Ok(std::fs::read_to_string(&path)?.trim().as_bytes().to_vec());
    }
    let _ = std::fs::remove_file(&tmp);
    Ok(secret.into_bytes())
}

/// argon2id with the crate's (OWASP) defaults; slow on purpose, so off the async threads.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
    })
    .await?
}

pub async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = argon2::PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .unwrap_or(false)
}

/// Token buckets keyed by client address or account: `capacity` attempts, refilled
/// evenly over `per`.
pub struct RateLimiter {
    capacity: f64,
    refill_per_sec: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(capacity: u32, per: Duration) -> RateLimiter {
        let capacity = f64::from(capacity.max(1));
        RateLimiter {
            capacity,
            refill_per_sec: capacity / per.as_secs_f64(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn level(&self, buckets: &mut HashMap<String, (f64, Instant)>, key: &str, now: Instant) -> f64 {
        if buckets.len() > 100_000 {
            let (cap, rate) = (self.capacity, self.refill_per_sec);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < cap
            });
        }
        let (tokens, at) = buckets.get(key).copied().unwrap_or((self.capacity, now));
        (tokens + now.duration_since(at).as_secs_f64() * self.refill_per_sec).min(self.capacity)
    }

    /// Seconds to wait before `key` may try again, or `None` if it may now.
    pub fn check(&self, key: &str) -> Option<u64> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let level = self.level(&mut buckets, key, now);
        (level < 1.0).then(|| ((1.0 - level) / self.refill_per_sec).ceil() as u64)
    }

    /// Spends `n` at once if `key` has them, else says how long until it will
    /// (a whole refill period when `n` is more than the bucket ever holds).
    pub fn take(&self, key: &str, n: u32) -> Result<(), u64> {
        let now = Instant::now();
        let n = f64::from(n);
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let level = self.level(&mut buckets, key, now);
        if n > self.capacity {
            return Err((self.capacity / self.refill_per_sec).ceil() as u64);
        }
        if level < n {
            return Err(((n - level) / self.refill_per_sec).ceil().max(1.0) as u64);
        }
        buckets.insert(key.to_owned(), (level - n, now));
        Ok(())
    }

    /// Gives back what `take` spent for work that was then refused.
    pub fn refund(&self, key: &str, n: u32) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let level = self.level(&mut buckets, key, now);
        buckets.insert(
            key.to_owned(),
            ((level + f64::from(n)).min(self.capacity), now),
        );
    }

    /// Spends one attempt of `key`.
    pub fn spend(&self, key: &str) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        let level = self.level(&mut buckets, key, now);
        buckets.insert(key.to_owned(), ((level - 1.0).max(0.0), now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_refuses_past_capacity_and_says_when_to_retry() {
        let l = RateLimiter::new(2, Duration::from_secs(60));
        assert_eq!(l.check("a"), None);
        l.spend("a");
        l.spend("a");
        assert_eq!(l.check("a"), Some(30));
        assert_eq!(l.check("b"), None, "keys are independent");
    }

    #[test]
    fn taking_several_at_once_is_all_or_nothing() {
        let l = RateLimiter::new(10, Duration::from_secs(3600));
        assert_eq!(l.take("a", 6), Ok(()));
        let wait = l.take("a", 6).unwrap_err();
        assert!((360..=720).contains(&wait), "{wait}");
        assert_eq!(l.take("a", 4), Ok(()), "the refused take spent nothing");
        l.refund("a", 4);
        assert_eq!(l.take("a", 4), Ok(()));
        assert_eq!(l.take("b", 11), Err(3600), "more than the bucket holds");
    }
}
