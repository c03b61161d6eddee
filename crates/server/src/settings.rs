//! Every `CALLHUB_*` setting in one list, for `callhub --help`; a test holds the
//! list to what the code reads and to the table in docs/api.md.

/// Every setting as `--help` lists it: variable, default, meaning. A test holds it
/// to what `Config` reads and to the table in docs/api.md.
pub const SETTINGS: &[(&str, &str, &str)] = &[
    (
        "CALLHUB_CONFIG",
        "callhub.toml",
        "settings file; the environment wins over it",
    ),
    ("CALLHUB_LISTEN", "127.0.0.1:8080", "HTTP address"),
    (
        "CALLHUB_PUBLIC_URL",
        "http://<listen>",
        "base of links in mails",
    ),
    (
        "CALLHUB_DATA_DIR",
        "data",
        "SQLite file and JWT secret (relative: to the current folder)",
    ),
    (
        "CALLHUB_DATABASE_URL",
        "sqlite://<data dir>/callhub.db",
        "or postgres://user@host/db",
    ),
    (
        "CALLHUB_JWT_SECRET",
        "kept in <data dir>/jwt-secret",
        "token signing secret",
    ),
    ("CALLHUB_RING_TIMEOUT_SECS", "60", "ringing before Missed"),
    (
        "CALLHUB_REJOIN_GRACE_SECS",
        "30",
        "a dropped participant's time to come back",
    ),
    (
        "CALLHUB_WS_PING_SECS",
        "15",
        "socket keep-alive ping interval",
    ),
    ("CALLHUB_TURN_URLS", "unset", "coturn URLs, comma-separated"),
    ("CALLHUB_TURN_SECRET", "unset", "coturn use-auth-secret"),
    (
        "CALLHUB_CORS_ORIGINS",
        "unset",
        "origins allowed cross-origin, comma-separated",
    ),
    ("CALLHUB_DB_MAX_CONNECTIONS", "16", "database pool size"),
    (
        "CALLHUB_DB_SYNCHRONOUS",
        "normal",
        "SQLite: normal, or full to sync every commit (power cuts)",
    ),
    (
        "CALLHUB_NATS_URL",
        "unset: one node",
        "nats://host:4222: fan-out between nodes on one PostgreSQL",
    ),
    (
        "CALLHUB_SHUTDOWN_SECS",
        "30",
        "a stopping node's time to finish requests under way",
    ),
    (
        "CALLHUB_SFU_UDP",
        "<listen IP>:50000",
        "the SFU's one UDP socket (port 0: any free port)",
    ),
    (
        "CALLHUB_SFU_PUBLIC_IP",
        "the bound IP",
        "the address in the SFU's ICE candidates (behind NAT)",
    ),
    (
        "CALLHUB_SFU_AUDIBLE",
        "4",
        "open microphones an SFU call carries at once, its loudest (0: all)",
    ),
    (
        "CALLHUB_NATS_PREFIX",
        "callhub",
        "first token of the cluster's NATS subjects",
    ),
    (
        "CALLHUB_GAUGE_REFRESH_MILLIS",
        "5000",
        "how often /metrics' gauges are read from the store",
    ),
    (
        "CALLHUB_LOG_FORMAT",
        "text",
        "text or json (one JSON object a line)",
    ),
    (
        "CALLHUB_MAX_CALL_CONTACTS",
        "500",
        "contacts one call may hold, guests included",
    ),
    (
        "CALLHUB_INVITES_PER_HOUR",
        "1000",
        "mails and SMS one account may cause per hour",
    ),
    (
        "CALLHUB_REQUEST_READ_TIMEOUT_SECS",
        "10",
        "time for a request's headers, and its body, to arrive",
    ),
    (
        "CALLHUB_CONNECTIONS_PER_IP",
        "1000",
        "open connections one client address may hold",
    ),
    (
        "CALLHUB_WEBHOOK_ALLOW_PRIVATE",
        "false",
        "allow webhooks to loopback, private and link-local addresses",
    ),
    (
        "CALLHUB_DB_ACQUIRE_TIMEOUT_SECS",
        "5",
        "wait for a connection before 503",
    ),
    (
        "CALLHUB_DB_STATEMENT_TIMEOUT_SECS",
        "10",
        "statement / SQLite busy timeout",
    ),
    ("CALLHUB_ACCESS_TOKEN_TTL_SECS", "900", "access token life"),
    (
        "CALLHUB_REFRESH_TOKEN_TTL_SECS",
        "2592000",
        "refresh token life",
    ),
    (
        "CALLHUB_TICK_MILLIS",
        "200",
        "how often timers are looked for",
    ),
    (
        "CALLHUB_LOGIN_RATE_PER_IP",
        "30",
        "login attempts per address per minute",
    ),
    (
        "CALLHUB_LOGIN_FAILURES_PER_ACCOUNT",
        "5",
        "failed logins per account per 5 minutes",
    ),
    (
        "CALLHUB_GUEST_FAILURES_PER_IP",
        "10",
        "wrong guest tokens per address per minute",
    ),
    ("CALLHUB_LOG", "info", "log filter (tracing syntax)"),
    (
        "CALLHUB_SMTP_URL",
        "unset: mails are logged",
        "smtp://host:port, smtps://user:pass@host",
    ),
    (
        "CALLHUB_MAIL_FROM",
        "callhub@<public host>",
        "sender of invitations",
    ),
    (
        "CALLHUB_SMS_WEBHOOK_URL",
        "unset: texts are logged",
        "generic SMS provider",
    ),
    (
        "CALLHUB_TWILIO_ACCOUNT_SID",
        "unset",
        "Twilio SMS (with _AUTH_TOKEN and _FROM)",
    ),
    ("CALLHUB_TWILIO_AUTH_TOKEN", "unset", "Twilio SMS"),
    ("CALLHUB_TWILIO_FROM", "unset", "Twilio SMS sender number"),
    (
        "CALLHUB_TWILIO_BASE_URL",
        "https://api.twilio.com",
        "Twilio-compatible API",
    ),
    (
        "CALLHUB_DELIVERY_BACKOFF_MILLIS",
        "10000",
        "first retry's delay, doubling",
    ),
    (
        "CALLHUB_DELIVERY_MAX_BACKOFF_SECS",
        "3600",
        "longest delay between retries",
    ),
    (
        "CALLHUB_DELIVERY_RETRY_SECS",
        "86400",
        "retried this long, then failed",
    ),
    (
        "CALLHUB_DELIVERY_LEASE_SECS",
        "120",
        "a claimed delivery's lease",
    ),
    (
        "CALLHUB_DELIVERY_CONCURRENCY",
        "8",
        "deliveries sent at once",
    ),
    (
        "CALLHUB_DELIVERY_POLL_MILLIS",
        "1000",
        "outbox poll interval",
    ),
];

/// The settings as a block of `--help`.
pub fn settings_help() -> String {
    let width = SETTINGS.iter().map(|(k, ..)| k.len()).max().unwrap_or(0);
    let mut out = String::from(
        "Settings: CALLHUB_* environment variables, or the same keys in ./callhub.toml \
         (or the file CALLHUB_CONFIG names); the environment wins. Details: docs/api.md, section Configuration.\n",
    );
    for (key, default, meaning) in SETTINGS {
        out.push_str(&format!("\n  {key:width$}  {meaning} [default: {default}]"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::SETTINGS;
    use std::collections::BTreeSet;

    /// The `CALLHUB_*` names in a text (a bare `CALLHUB_` prefix is not one).
    fn names(text: &str) -> BTreeSet<&str> {
        text.match_indices("CALLHUB_")
            .map(|(i, _)| {
                let rest = &text[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .filter(|n| !n.ends_with('_'))
            .collect()
    }

    #[test]
    fn help_lists_every_setting_the_code_reads() {
        let listed: BTreeSet<&str> = SETTINGS.iter().map(|(k, ..)| *k).collect();
        let read = names(concat!(include_str!("config.rs"), include_str!("main.rs")));
        let missing: Vec<_> = read.difference(&listed).collect();
        assert!(missing.is_empty(), "read but not in --help: {missing:?}");
        let unread: Vec<_> = listed.difference(&read).collect();
        assert!(unread.is_empty(), "in --help but never read: {unread:?}");
    }

    #[test]
    fn help_and_the_configuration_docs_name_the_same_settings() {
        let docs = include_str!("../../../docs/api.md");
        let section = docs
            .split("\n## Configuration")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("docs/api.md has a Configuration section");
        // The first cell of each row of the table.
        let documented: BTreeSet<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| "))
            .flat_map(|l| names(l.split(" | ").next().unwrap_or("")))
            .collect();
        let listed: BTreeSet<&str> = SETTINGS.iter().map(|(k, ..)| *k).collect();
        assert_eq!(
            listed.difference(&documented).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "in --help, not in docs/api.md's table"
        );
        assert_eq!(
            documented.difference(&listed).collect::<Vec<_>>(),
            Vec::<&&str>::new(),
            "in docs/api.md's table, not in --help"
        );
    }
}
