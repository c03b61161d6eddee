//! SMS behind one trait: a generic webhook provider (POST `{"to", "body"}`) and a
//! Twilio-compatible one (the Messages API's form POST with basic auth).

use async_trait::async_trait;
use callhub_core::{CREATOR, Call};

use crate::config::{DeliveryConfig, TwilioConfig};

/// A way to send a text message.
#[async_trait]
pub trait SmsProvider: Send + Sync {
    /// Sends `body` to `to` (E.164); answers what the provider said.
    async fn send(&self, to: &str, body: &str) -> Result<String, String>;
}

/// POSTs `{"to": "+49…", "body": "…"}` as JSON to a URL; any 2xx is success.
pub struct WebhookSms {
    pub http: reqwest::Client,
    pub url: String,
}

#[async_trait]
impl SmsProvider for WebhookSms {
    async fn send(&self, to: &str, body: &str) -> Result<String, String> {
        let res = self
            .http
            .post(&self.url)
            .json(&serde_json::json!({"to": to, "body": body}))
            .send()
            .await
            .map_err(|e| format!("SMS webhook: {e}"))?;
        status_of("SMS webhook", res).await
    }
}

/// Twilio's `POST {base}/2010-04-01/Accounts/{sid}/Messages.json` with `To`,
/// `From` and `Body`, authenticated by the account SID and auth token.
pub struct TwilioSms {
    pub http: reqwest::Client,
    pub config: TwilioConfig,
}

#[async_trait]
impl SmsProvider for TwilioSms {
    async fn send(&self, to: &str, body: &str) -> Result<String, String> {
        let c = &self.config;
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            c.base_url, c.account_sid
        );
        let res = self
            .http
            .post(url)
            .basic_auth(&c.account_sid, Some(&c.auth_token))
            .form(&[("To", to), ("From", c.from.as_str()), ("Body", body)])
            .send()
            .await
            .map_err(|e| format!("Twilio: {e}"))?;
        status_of("Twilio", res).await
    }
}

async fn status_of(who: &str, res: reqwest::Response) -> Result<String, String> {
    let status = res.status();
    if status.is_success() {
        return Ok(format!("{who} {}", status.as_u16()));
    }
    let body = res.text().await.unwrap_or_default();
    let body: String = body.chars().take(300).collect();
    Err(format!("{who} answered {}: {body}", status.as_u16()))
}

/// The configured provider: Twilio when its account is set, else the webhook,
/// else none (SMS are logged).
pub fn provider(cfg: &DeliveryConfig, http: &reqwest::Client) -> Option<Box<dyn SmsProvider>> {
    if let Some(config) = &cfg.twilio {
        return Some(Box::new(TwilioSms {
            http: http.clone(),
            config: config.clone(),
        }));
    }
    cfg.sms_webhook_url.as_ref().map(|url| {
        Box::new(WebhookSms {
            http: http.clone(),
            url: url.clone(),
        }) as Box<dyn SmsProvider>
    })
}

/// The invitation text: who, the title (shortened), when for planned calls, the link.
pub fn invitation_text(call: &Call, link: &str) -> String {
    let who = call
        .contact(CREATOR)
        .spec
        .display_name
        .clone()
        .unwrap_or_else(|| "Someone".into());
    let mut title: String = call.title.chars().take(60).collect();
    if title.len() < call.title.len() {
        title.push('…');
    }
    let when = call
        .planned_at
        .filter(|&t| t > call.created_at)
        .map(|t| format!(" on {} UTC", t.format("%Y-%m-%d %H:%M")))
        .unwrap_or_default();
    format!("{who} invites you to \"{title}\"{when}. Join: {link}")
}
