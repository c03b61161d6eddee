//! Latency histograms and the one-line JSON reports.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// Latencies in microseconds, up to a minute.
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"))
    }
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        let _ = self.0.record((d.as_micros() as u64).clamp(1, 60_000_000));
    }

    pub fn merge(&mut self, other: &Latencies) {
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    fn ms(&self, q: f64) -> f64 {
        (self.0.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0
    }

    /// `p50_ms`, `p99_ms`, `p999_ms`, `max_ms`.
    pub fn summary(&self) -> Value {
        json!({
            "p50_ms": self.ms(0.50),
            "p99_ms": self.ms(0.99),
            "p999_ms": self.ms(0.999),
            "max_ms": (self.0.max() as f64 / 10.0).round() / 100.0,
        })
    }
}

/// Merges two JSON objects, `extra` winning.
pub fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

/// Tokens written by `setup`: `(userDbId, userId, accessToken)`.
pub fn read_tokens(path: &std::path::Path) -> anyhow::Result<Vec<(i64, String, String)>> {
    let text = std::fs::read_to_string(path)?;
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)?;
            Ok((
                v["user"].as_i64().unwrap_or_default(),
                v["userId"].as_str().unwrap_or_default().to_owned(),
                v["token"].as_str().unwrap_or_default().to_owned(),
            ))
        })
        .collect()
}

/// The server under load and the users of `setup`.
#[derive(clap::Args)]
pub struct Server {
    #[arg(long)]
    pub url: String,
    /// The tokens file `setup` wrote.
    #[arg(long)]
    pub tokens: std::path::PathBuf,
}

/// Starts `start(n)` for n = 0, 1, … at `rate` per second for `duration` (request
/// n is due at n/rate, the first at once), then waits for all of them. Returns how
/// many were started.
pub async fn paced(
    rate: u64,
    duration: Duration,
    mut start: impl FnMut(u64) -> tokio::task::JoinHandle<()>,
) -> u64 {
    let begun = Instant::now();
    let (mut sent, mut tasks) = (0u64, Vec::new());
    while begun.elapsed() < duration {
        let due = (begun.elapsed().as_secs_f64() * rate as f64) as u64 + 1;
        while sent < due {
            tasks.push(start(sent));
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for t in tasks {
        let _ = t.await;
    }
    sent
}

/// A createCall request of `token`'s user with a JSON `body`.
pub fn create_call(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: String,
) -> reqwest::RequestBuilder {
    client
        .post(format!("{url}/rtc/createCall"))
        .bearer_auth(token)
        .body(body)
}
