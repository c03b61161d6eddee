//! Signed webhooks: each call event as JSON, with `X-Callhub-Signature:
//! sha256=<hex HMAC-SHA256 of the raw body under the webhook's secret>`.

use callhub_core::{Call, format_time};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "x-callhub-signature";
pub const EVENT_ID_HEADER: &str = "x-callhub-event-id";

/// The body of one event's POST.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventBody<'a> {
    /// The event's id: unique across calls, the same on every retry (receivers
    /// dedupe on it).
    pub event_id: i64,
    /// When the event happened.
    pub timestamp: String,
    pub call_id: uuid::Uuid,
    pub call_title: &'a str,
    pub domain: &'a str,
    pub event: callhub_core::CallEventView,
}

/// The raw body for event `event_id` of `call`, if the call has it.
pub fn body(call: &Call, event_id: i64) -> Option<Vec<u8>> {
    let e = call.events.iter().find(|e| e.id == event_id)?;
    let body = EventBody {
        event_id,
        timestamp: format_time(&e.at),
        call_id: call.call_id,
        call_title: &call.title,
        domain: &call.domain,
        event: call.event_view(e),
    };
    serde_json::to_vec(&body).ok()
}

/// `sha256=<hex>` of the body under the secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// POSTs the signed body; any 2xx is success.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    event_id: i64,
    body: Vec<u8>,
) -> Result<String, String> {
    let res = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature(secret, &body))
        .header(EVENT_ID_HEADER, event_id.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| format!("webhook: {e}"))?;
    let status = res.status();
    if status.is_success() {
        Ok(format!("webhook {}", status.as_u16()))
    } else {
        Err(format!("webhook answered {}", status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_hex_of_the_raw_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
