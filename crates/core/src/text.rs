//! Text from outside (request bodies, the command line) parsed once into the call
//! domain's small types, so no path can store a control character, an empty name
//! or an over-long one: the routes, the CLI and the store all take these types.

use std::fmt;

use chrono::{DateTime, NaiveDateTime, Utc};

/// Text that is not what its field must hold; `field` names it as the request does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidText {
    pub field: String,
    pub reason: String,
}

fn invalid(field: &str, reason: impl Into<String>) -> InvalidText {
    InvalidText {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Trimmed text of 1 to `max` characters with no control character (PostgreSQL
/// refuses NUL outright; the others break logs, mails and SMS).
fn plain(field: &str, raw: &str, max: usize) -> Result<String, InvalidText> {
    if let Some(c) = raw.chars().find(|c| c.is_control()) {
        return Err(invalid(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            ),
        ));
    }
    let text = raw.trim();
    if text.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if text.chars().count() > max {
        return Err(invalid(field, format!("at most {max} characters")));
    }
    Ok(text.to_owned())
}

/// 1 to 64 letters, digits or `._@-`: the names accounts and domains are known by.
fn identifier(field: &str, raw: &str) -> Result<String, InvalidText> {
    let text = plain(field, raw, 64)?;
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
    {
        return Err(invalid(
            field,
            format!("{text:?} must be 1 to 64 letters, digits or ._@-"),
        ));
    }
    Ok(text)
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
}

text_type!(
    /// A call's title: 1 to 200 characters after trimming.
    CallTitle
);
text_type!(
    /// The name others see for a contact or a guest: 1 to 100 characters.
    DisplayName
);
text_type!(
    /// `local@host.tld`, at most 254 characters.
    Email
);
text_type!(
    /// E.164 (`+4917612345678`), so that SMS can reach it.
    PhoneNumber
);
text_type!(
    /// An account's name within its domain: 1 to 64 letters, digits or `._@-`.
    UserId
);
text_type!(
    /// An organisation hosted by the server: 1 to 64 letters, digits or `._@-`.
    Domain
);
text_type!(
    /// A team's name: 1 to 100 characters.
    TeamName
);

pub const MAX_TITLE: usize = 200;
pub const MAX_NAME: usize = 100;

impl CallTitle {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidText> {
        plain(field, raw, MAX_TITLE).map(Self)
    }
}

impl DisplayName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidText> {
        plain(field, raw, MAX_NAME).map(Self)
    }
}

impl TeamName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidText> {
        plain(field, raw, MAX_NAME).map(Self)
    }
}

impl UserId {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidText> {
        identifier(field, raw).map(Self)
    }
}

impl Domain {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidText> {
        identifier(field, raw).map(Self)
    }
}

impl Email {
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidText> {
        let email = plain(field, raw, 254)?;
        let ok = !email.chars().any(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, host)| {
                !local.is_empty() && host.contains('.') && !host.contains('@')
            });
        if ok {
            Ok(Self(email))
        } else {
            Err(invalid(field, format!("{email:?} is not an email address")))
        }
    }
}

impl PhoneNumber {
    /// Spaces, dashes, dots and brackets are dropped.
    pub fn parse(field: &str, raw: &str) -> Result<Self, InvalidText> {
        let phone = plain(field, raw, 64)?;
        let n: String = phone
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let digits = n.strip_prefix('+').unwrap_or("");
        let ok = (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if ok {
            Ok(Self(n))
        } else {
            Err(invalid(
                field,
                format!("{phone:?} is not an E.164 number such as +4917612345678"),
            ))
        }
    }
}

/// `""`, blanks and `null` mean absent, as in the seed's example; anything else
/// must parse.
pub fn optional<T>(
    raw: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, InvalidText>,
) -> Result<Option<T>, InvalidText> {
    match raw {
        Some(s) if !s.trim().is_empty() || s.chars().any(char::is_control) => parse(s).map(Some),
        _ => Ok(None),
    }
}

/// Text that only travels through (passwords, tokens) still may not carry a
/// control character into a query or a log line.
pub fn check_no_control(field: &str, raw: &str) -> Result<(), InvalidText> {
    match raw.chars().find(|c| c.is_control()) {
        Some(c) => Err(invalid(
            field,
            format!(
                "must not contain control characters (found U+{:04X})",
                c as u32
            ),
        )),
        None => Ok(()),
    }
}

/// A planned time: ISO-8601 with an offset, or without one meaning UTC (as Java's
/// `LocalDateTime` writes it), kept to the store's milliseconds.
pub fn planned_time(field: &str, text: &str) -> Result<DateTime<Utc>, InvalidText> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .or_else(|_| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
        })
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").map(|t| t.and_utc()))
        .ok()
        .and_then(|t| DateTime::from_timestamp_millis(t.timestamp_millis()))
        .ok_or_else(|| {
            invalid(
                field,
                format!("{text:?} is not an ISO-8601 date-time such as 2026-11-24T10:00:00Z"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_in_every_type_naming_the_field() {
        for bad in ["alice\u{0}", "a\u{7}b", "tab\there", "line\nbreak", "\u{0}"] {
            for err in [
                CallTitle::parse("callTitle", bad).err(),
                DisplayName::parse("displayName", bad).err(),
                TeamName::parse("name", bad).err(),
                UserId::parse("username", bad).err(),
                Domain::parse("domain", bad).err(),
                Email::parse("email", bad).err(),
                PhoneNumber::parse("phoneNumber", bad).err(),
            ] {
                let err = err.unwrap_or_else(|| panic!("{bad:?} was accepted"));
                assert!(
                    err.reason.contains("control") || err.reason.contains("letters"),
                    "{err}"
                );
            }
        }
        assert_eq!(
            UserId::parse("username", "alice\u{0}")
                .unwrap_err()
                .to_string(),
            "username: must not contain control characters (found U+0000)"
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            CallTitle::parse("callTitle", "  Standup ")
                .unwrap()
                .as_str(),
            "Standup"
        );
        assert!(CallTitle::parse("callTitle", "   ").is_err());
        assert!(CallTitle::parse("callTitle", &"x".repeat(200)).is_ok());
        assert!(CallTitle::parse("callTitle", &"x".repeat(201)).is_err());
        assert!(DisplayName::parse("displayName", &"ü".repeat(100)).is_ok());
        assert!(UserId::parse("userId", "tester.2@x-y").is_ok());
        assert!(UserId::parse("userId", "white space").is_err());
        assert!(Domain::parse("domain", &"d".repeat(65)).is_err());
    }

    #[test]
    fn absent_text_is_none_but_a_lone_control_character_is_an_error() {
        assert_eq!(optional(None, |s| Email::parse("email", s)), Ok(None));
        assert_eq!(optional(Some(" "), |s| Email::parse("email", s)), Ok(None));
        assert!(optional(Some("\u{0}"), |s| Email::parse("email", s)).is_err());
    }

    #[test]
    fn phone_numbers_must_be_e164() {
        assert_eq!(
            PhoneNumber::parse("p", "+49 176 1234-5678")
                .unwrap()
                .as_str(),
            "+4917612345678"
        );
        for bad in [
            "017612345678",
            "+0176123456",
            "+49abc1234567",
            "+12",
            "+1234567890123456",
        ] {
            assert!(PhoneNumber::parse("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_need_a_local_part_and_a_host() {
        assert!(Email::parse("e", "test@test.de").is_ok());
        for bad in ["test", "@test.de", "a b@test.de", "a@localhost"] {
            assert!(Email::parse("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn planned_times_with_and_without_offset() {
        let p = |s| planned_time("plannedDateTime", s);
        assert_eq!(
            p("2026-11-24T10:00:00Z").unwrap().to_rfc3339(),
            "2026-11-24T10:00:00+00:00"
        );
        assert_eq!(
            p("2026-11-24T12:00:00+02:00").unwrap().to_rfc3339(),
            "2026-11-24T10:00:00+00:00"
        );
        assert_eq!(
            p("2026-11-24T10:00:00.5").unwrap().timestamp_millis() % 1000,
            500
        );
        assert!(p("tomorrow").is_err());
        assert!(p("2026-13-01T00:00:00Z").is_err());
    }
}
