//! Invitation mails: plain text and HTML with the call's title, who invites, why,
//! and the link; an `.ics` invitation for planned calls; sent over SMTP with lettre.

use std::time::Duration;

use callhub_core::{CREATOR, Call, CallReason, Contact};
use chrono::{DateTime, Utc};
use lettre::message::header::{ContentType, MessageId};
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// A rendered invitation.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The iCalendar invitation (METHOD:REQUEST) of a planned call.
    pub ics: Option<String>,
}

fn reason_text(reason: CallReason) -> &'static str {
    match reason {
        CallReason::Standard => "a call",
        CallReason::ServiceRequest => "a service request",
    }
}

/// Who invites to `call`: its creator's name.
pub fn inviter(call: &Call) -> String {
    call.contact(CREATOR)
        .spec
        .display_name
        .clone()
        .unwrap_or_else(|| "Someone".into())
}

/// The invitation of `to` to `call`, with `link` to join it.
pub fn invitation(
    call: &Call,
    to: &Contact,
    link: &str,
    from: &str,
    now: DateTime<Utc>,
) -> Invitation {
    let who = inviter(call);
    let why = reason_text(call.reason);
    // A call planned ahead when it was made; the same answer on every retry.
    let when = call.planned_at.filter(|&t| t > call.created_at);
    let greeting = to
        .spec
        .display_name
        .as_deref()
        .map_or("Hello,".to_owned(), |n| format!("Hello {n},"));
    let when_line = when.map(|t| format!("When: {} (UTC)\n", t.format("%A, %d %B %Y, %H:%M")));
    let text = format!(
        "{greeting}\n\n{who} invites you to {why}: \"{title}\".\n{when}\nJoin: {link}\n\n-- \ncallhub\n",
        title = call.title,
        when = when_line.clone().unwrap_or_default(),
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>{greeting}</p>\
         <p><strong>{who}</strong> invites you to {why}: <strong>{title}</strong>.</p>{when}\
         <p><a href=\"{href}\">Join the call</a></p><p style=\"color:#666\">{href_text}</p></body></html>",
        greeting = esc(&greeting),
        who = esc(&who),
        title = esc(&call.title),
        when = when_line
            .map(|w| format!("<p>{}</p>", esc(w.trim())))
            .unwrap_or_default(),
        href = esc(link),
        href_text = esc(link),
    );
    Invitation {
        subject: format!("{who} invites you: {}", call.title),
        text,
        html,
        ics: when.map(|at| ics(call, to, link, from, at, now)),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ics_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// RFC 5545 TEXT: backslash, semicolon, comma and newline are escaped.
fn ics_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
        .replace('\r', "")
}

/// A parameter value, quoted where it holds characters a bare one may not.
fn ics_param(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    format!("\"{clean}\"")
}

/// Folds a content line at 75 octets, as RFC 5545 asks, never inside a character.
fn fold(line: &str) -> String {
    let mut out = String::new();
    let mut len = 0;
    for c in line.chars() {
        if len + c.len_utf8() > 75 {
            out.push_str("\r\n ");
            len = 1;
        }
        out.push(c);
        len += c.len_utf8();
    }
    out.push_str("\r\n");
    out
}

/// The iCalendar request of a planned call, for one attendee.
pub fn ics(
    call: &Call,
    to: &Contact,
    link: &str,
    from: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> String {
    let organizer = call.contact(CREATOR);
    let organizer_mail = organizer.spec.email.as_deref().unwrap_or(from);
    let mut attendee =
        String::from("ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE");
    if let Some(n) = &to.spec.display_name {
        attendee.push_str(&format!(";CN={}", ics_param(n)));
    }
    attendee.push_str(&format!(
        ":mailto:{}",
        to.spec.email.as_deref().unwrap_or_default()
    ));
    let lines = [
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//callhub//callhub invitations//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:REQUEST".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}@callhub", call.call_id),
        format!("DTSTAMP:{}", ics_time(now)),
        format!("DTSTART:{}", ics_time(at)),
        "DURATION:PT1H".to_owned(),
        format!("SUMMARY:{}", ics_text(&call.title)),
        format!(
            "DESCRIPTION:{}",
            ics_text(&format!(
                "{} invites you to {}.\nJoin: {link}",
                inviter(call),
                reason_text(call.reason)
            ))
        ),
        format!("URL:{link}"),
        format!(
            "ORGANIZER;CN={}:mailto:{organizer_mail}",
            ics_param(&inviter(call))
        ),
        attendee,
        "SEQUENCE:0".to_owned(),
        "STATUS:CONFIRMED".to_owned(),
        "END:VEVENT".to_owned(),
        "END:VCALENDAR".to_owned(),
    ];
    lines.iter().map(|l| fold(l)).collect()
}

/// SMTP, or (unset) the log.
pub struct Mailer {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
    host: String,
}

impl Mailer {
    pub fn new(smtp_url: Option<&str>, from: &str) -> anyhow::Result<Mailer> {
        let transport = smtp_url
            .map(|url| {
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map(|b| b.timeout(Some(Duration::from_secs(20))).build())
                    .map_err(|e| anyhow::anyhow!("CALLHUB_SMTP_URL: {e}"))
            })
            .transpose()?;
        let from: Mailbox = from
            .parse()
            .or_else(|_| format!("callhub <{from}>").parse())
            .or_else(|_| "callhub <callhub@localhost>".parse())
            .map_err(|e| anyhow::anyhow!("CALLHUB_MAIL_FROM {from:?}: {e}"))?;
        let host = from.email.domain().to_owned();
        Ok(Mailer {
            transport,
            from,
            host,
        })
    }

    pub fn from_address(&self) -> String {
        self.from.email.to_string()
    }

    pub fn configured(&self) -> bool {
        self.transport.is_some()
    }

    /// Sends (or, without SMTP, logs) the invitation of delivery `id`. Its
    /// Message-ID is the delivery's, so a repeat after a crash can be told apart.
    pub async fn send(
        &self,
        id: i64,
        to: &str,
        inv: &Invitation,
    ) -> Result<Option<String>, String> {
        let to_box: Mailbox = to.parse().map_err(|e| format!("recipient {to:?}: {e}"))?;
        let alternative = MultiPart::alternative_plain_html(inv.text.clone(), inv.html.clone());
        let body = match &inv.ics {
            None => alternative,
            Some(ics) => MultiPart::mixed().multipart(alternative).singlepart(
                Attachment::new("invite.ics".into()).body(
                    ics.clone(),
                    ContentType::parse("text/calendar; charset=utf-8; method=REQUEST")
                        .map_err(|e| e.to_string())?,
                ),
            ),
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to_box)
            .subject(inv.subject.clone())
            .header(MessageId::from(format!("<delivery-{id}@{}>", self.host)))
            .multipart(body)
            .map_err(|e| e.to_string())?;
        let Some(transport) = &self.transport else {
            tracing::info!(delivery = id, %to, subject = %inv.subject, text = %inv.text, "mail logged, not sent: CALLHUB_SMTP_URL is unset");
            return Ok(None);
        };
        let answer = transport
            .send(message)
            .await
            .map_err(|e| format!("SMTP: {e}"))?;
        Ok(Some(format!("SMTP {}", answer.code())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ics_lines_are_folded_at_75_octets_with_crlf() {
        let long = "SUMMARY:".to_owned() + &"ä".repeat(60);
        let folded = fold(&long);
        assert!(folded.ends_with("\r\n"));
        for line in folded.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(line.len() <= 75, "{} octets", line.len());
        }
        assert_eq!(folded.replace("\r\n ", "").trim_end(), long);
    }

    #[test]
    fn ics_text_escapes_separators() {
        assert_eq!(ics_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
    }
}
