//! The outbox worker: takes due deliveries from the store, sends them by mail, SMS
//! or webhook, records each attempt, and retries with backoff and jitter.

pub mod mail;
pub mod sms;
pub mod target;
pub mod webhook;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use callhub_core::{Call, Channel};
use callhub_store::{Attempt, AttemptResult, DeliveryStatus, OutboxEntry};
use futures::StreamExt;
use rand::Rng;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::{App, now};
use crate::config::DeliveryConfig;
use crate::metrics;

/// Everything that sends: SMTP (or the log), an SMS provider (or the log), HTTP.
pub struct Senders {
    pub mailer: mail::Mailer,
    pub sms: Option<Box<dyn sms::SmsProvider>>,
    pub http: reqwest::Client,
    /// For webhooks, whose URLs admins choose: connects to public addresses only,
    /// unless the operator allows private ones.
    pub webhooks: reqwest::Client,
    /// `CALLHUB_WEBHOOK_ALLOW_PRIVATE`.
    pub webhook_allow_private: bool,
    /// Woken when a commit wrote deliveries, so they leave at once.
    pub wake: Notify,
}

impl Senders {
    pub fn new(cfg: &DeliveryConfig) -> anyhow::Result<Senders> {
        // Providers that hang must not hold a delivery past its lease.
        let client = || {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(20))
                .user_agent(concat!("callhub/", env!("CARGO_PKG_VERSION")))
        };
        let http = client().build()?;
        let webhooks = if cfg.webhook_allow_private {
            http.clone()
        } else {
            // No redirects either: a public receiver could otherwise bounce us inside.
            client()
                .dns_resolver(Arc::new(target::PublicOnly))
                .redirect(reqwest::redirect::Policy::none())
                .build()?
        };
        Ok(Senders {
            mailer: mail::Mailer::new(cfg.smtp_url.as_deref(), &cfg.mail_from)?,
            sms: sms::provider(cfg, &http),
            http,
            webhooks,
            webhook_allow_private: cfg.webhook_allow_private,
            wake: Notify::new(),
        })
    }
}

/// The delay before retry number `attempt` (1 for the first retry): `base`
/// doubled per attempt up to `max`, of which a random half (`jitter` in [0, 1))
/// is taken off, so retries from many deliveries do not come in waves.
pub fn backoff(attempt: i64, base: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = attempt.clamp(1, 40) as u32 - 1;
    let full = base
        .checked_mul(1u32 << doublings.min(31))
        .unwrap_or(max)
        .min(max);
    full.mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 2.0)
}

/// Sends due deliveries until shutdown.
pub async fn run(app: Arc<App>, shutdown: CancellationToken) {
    let cfg = app.config.delivery.clone();
    loop {
        let claimed = claim(&app, &cfg).await;
        if claimed.is_empty() {
            tokio::select! {
                _ = app.senders.wake.notified() => {}
                _ = tokio::time::sleep(cfg.poll_interval) => {}
                _ = shutdown.cancelled() => return,
            }
            continue;
        }
        let app = &app;
        let calls = &calls_of(app, &claimed).await;
        futures::stream::iter(claimed)
            .for_each_concurrent(cfg.concurrency as usize, |entry| {
                let call = calls
                    .get(&entry.call_id)
                    .cloned()
                    .unwrap_or_else(|| Err("the call was not read".into()));
                deliver(app, entry, call)
            })
            .await;
        if shutdown.is_cancelled() {
            return;
        }
    }
}

async fn claim(app: &App, cfg: &DeliveryConfig) -> Vec<OutboxEntry> {
    let at = now();
    let lease = chrono::Duration::from_std(cfg.lease).unwrap_or(chrono::Duration::minutes(2));
    match app
        .background
        .claim_deliveries(at, at + lease, cfg.concurrency * 4)
        .await
    {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, "claiming deliveries failed");
            Vec::new()
        }
    }
}

/// The call of each claimed delivery, read once for all of its deliveries (a call
/// with ten invitees has ten mails, often claimed together); an error says why it
/// could not be read, and its deliveries are tried again.
async fn calls_of(app: &App, claimed: &[OutboxEntry]) -> HashMap<Uuid, Result<Arc<Call>, String>> {
    let mut calls = HashMap::new();
    for entry in claimed {
        if calls.contains_key(&entry.call_id) {
            continue;
        }
        let call = match app.background.call(entry.call_id).await {
            Ok(Some(call)) => Ok(Arc::new(call)),
            Ok(None) => Err("the call is gone".to_owned()),
            Err(e) => Err(format!("reading the call: {e}")),
        };
        calls.insert(entry.call_id, call);
    }
    calls
}

/// What one attempt came to.
enum Outcome {
    Sent(String),
    Logged,
    /// The delivery's target is gone (its webhook was deleted meanwhile).
    Cancelled,
}

/// Sends one claimed delivery (of `call`, as read for its batch) and records the attempt.
async fn deliver(app: &App, entry: OutboxEntry, call: Result<Arc<Call>, String>) {
    let started = now();
    let result = match call {
        Ok(call) => send(app, &entry, &call).await,
        Err(why) => Err(why),
    };
    let finished = now();
    let cfg = &app.config.delivery;
    let (outcome, detail, next) = match result {
        Ok(Outcome::Sent(detail)) => (
            "sent",
            Some(detail),
            AttemptResult::Done(DeliveryStatus::Sent),
        ),
        Ok(Outcome::Logged) => (
            "logged",
            Some("no provider configured: written to the log".into()),
            AttemptResult::Done(DeliveryStatus::Logged),
        ),
        Ok(Outcome::Cancelled) => (
            "cancelled",
            Some("the webhook was deleted".into()),
            AttemptResult::Done(DeliveryStatus::Cancelled),
        ),
        Err(why) => {
            let age = (finished - entry.created_at).to_std().unwrap_or_default();
            let next = if age >= cfg.retry_for {
                tracing::warn!(delivery = entry.id, channel = %entry.channel, error = %why, "delivery failed for good");
                AttemptResult::Done(DeliveryStatus::Failed)
            } else {
                let jitter = rand::rng().random::<f64>();
                let wait = backoff(entry.attempts, cfg.backoff, cfg.max_backoff, jitter);
                tracing::info!(delivery = entry.id, channel = %entry.channel, error = %why, retry_in = ?wait, "delivery failed; will retry");
                AttemptResult::Retry(
                    finished + chrono::Duration::from_std(wait).unwrap_or_default(),
                )
            };
            ("error", Some(why), next)
        }
    };
    match &next {
        AttemptResult::Done(DeliveryStatus::Sent) => app.metrics.count(metrics::DELIVERIES_SENT),
        AttemptResult::Done(DeliveryStatus::Failed) => {
            app.metrics.count(metrics::DELIVERIES_FAILED)
        }
        AttemptResult::Retry(_) => app.metrics.count(metrics::DELIVERY_RETRIES),
        _ => {}
    }
    if let AttemptResult::Done(DeliveryStatus::Sent | DeliveryStatus::Logged) = next {
        // Logged counts too: without a provider the log is where it went.
        let delay = (finished - entry.created_at).to_std().unwrap_or_default();
        app.metrics.delivery_sent(entry.channel, delay);
    }
    let attempt = Attempt {
        attempt: entry.attempts,
        started_at: started,
        finished_at: finished,
        outcome: outcome.into(),
        detail,
    };
    // Unrecorded, the lease runs out and the delivery is tried again: never lost.
    if let Err(e) = app
        .background
        .finish_delivery(entry.id, attempt, next)
        .await
    {
        tracing::warn!(delivery = entry.id, error = %e, "recording a delivery attempt failed");
    }
}

async fn send(app: &App, entry: &OutboxEntry, call: &Call) -> Result<Outcome, String> {
    let senders = &app.senders;
    match entry.channel {
        Channel::Mail => {
            let contact = contact_of(call, entry)?;
            let link = crate::guest::invitation_link(app, call);
            let inv = mail::invitation(call, contact, &link, &senders.mailer.from_address(), now());
            Ok(
                match senders
                    .mailer
                    .send(entry.id, &entry.recipient, &inv)
                    .await?
                {
                    Some(detail) => Outcome::Sent(detail),
                    None => Outcome::Logged,
                },
            )
        }
        Channel::Sms => {
            let link = crate::guest::invitation_link(app, call);
            let text = sms::invitation_text(call, &link);
            match &senders.sms {
                Some(provider) => provider
                    .send(&entry.recipient, &text)
                    .await
                    .map(Outcome::Sent),
                None => {
                    tracing::info!(delivery = entry.id, to = %entry.recipient, %text, "SMS logged, not sent: no SMS provider is configured");
                    Ok(Outcome::Logged)
                }
            }
        }
        Channel::Webhook => {
            let (Some(hook_id), Some(event_id)) = (entry.webhook_id, entry.event_id) else {
                return Err("a webhook delivery without its webhook or event".into());
            };
            let Some(hook) = app
                .background
                .webhook(hook_id)
                .await
                .map_err(|e| format!("reading the webhook: {e}"))?
            else {
                return Ok(Outcome::Cancelled);
            };
            let body = webhook::body(call, event_id).ok_or("the event is gone")?;
            // Checked again at each send: the name may resolve elsewhere by now (the
            // client's resolver refuses inside addresses; this covers IP literals).
            if !senders.webhook_allow_private {
                target::check_url(&hook.url).await?;
            }
            webhook::post(&senders.webhooks, &hook.url, &hook.secret, event_id, body)
                .await
                .map(Outcome::Sent)
        }
    }
}

fn contact_of<'a>(
    call: &'a Call,
    entry: &OutboxEntry,
) -> Result<&'a callhub_core::Contact, String> {
    entry
        .contact
        .filter(|&id| (1..=call.contacts.len() as i64).contains(&id))
        .map(|id| call.contact(id))
        .ok_or_else(|| "the contact is gone".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_takes_up_to_half() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(3600));
        assert_eq!(backoff(1, base, max, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(2, base, max, 0.0), Duration::from_secs(20));
        assert_eq!(backoff(5, base, max, 0.0), Duration::from_secs(160));
        assert_eq!(backoff(30, base, max, 0.0), max);
        assert_eq!(backoff(1000, base, max, 0.0), max);
        assert_eq!(backoff(2, base, max, 0.999_999).as_secs(), 10);
        assert!(backoff(3, base, max, 0.5) < backoff(3, base, max, 0.0));
    }

    #[test]
    fn retrying_for_a_day_takes_a_few_dozen_attempts() {
        let (base, max) = (Duration::from_secs(10), Duration::from_secs(3600));
        let mut waited = Duration::ZERO;
        let mut attempts = 0;
        while waited < Duration::from_secs(24 * 3600) {
            attempts += 1;
            waited += backoff(attempts, base, max, 1.0);
        }
        assert!((20..60).contains(&attempts), "{attempts} attempts");
    }
}
