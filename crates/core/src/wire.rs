//! Bytes from outside read into the API's types: request bodies and WebSocket
//! client frames. Pure functions, so the fuzz targets reach them without a server.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

/// A body or frame that is not what its route or socket takes; the text names
/// the field where it can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// One JSON object and nothing after it but whitespace; errors name the field.
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Malformed> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(Malformed(
            "the body is empty; a JSON object is expected".into(),
        ));
    }
    // Every body of this API is an object; serde would read a struct from an array too.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Malformed(
            "the body is not valid JSON for this request: a JSON object is expected".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            Malformed(format!("the body is not valid JSON: {inner}"))
        } else if path == "." || path.is_empty() {
            Malformed(format!(
                "the body is not valid JSON for this request: {inner}"
            ))
        } else {
            Malformed(format!("{path}: {inner}"))
        }
    })?;
    // serde stops after the object; whatever follows would be silently dropped.
    de.end().map_err(|e| {
        Malformed(format!(
            "the body is not valid JSON: something follows the object ({e})"
        ))
    })?;
    Ok(value)
}

/// What a client may send on `/ws`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientFrame {
    Resume {
        since: i64,
    },
    #[serde(rename_all = "camelCase")]
    Signal {
        call_id: Uuid,
        to: i64,
        payload: serde_json::Value,
    },
    /// Signaling with the SFU of an SFU call (API.md, "Media", SFU).
    #[serde(rename_all = "camelCase")]
    Sfu {
        call_id: Uuid,
        payload: serde_json::Value,
    },
    Ping,
}

/// Reads one text frame of a socket.
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, Malformed> {
    serde_json::from_str(text).map_err(|e| Malformed(format!("bad frame: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::LoginRequest;

    #[test]
    fn a_body_with_anything_after_its_object_is_refused() {
        let ok = br#" {"username":"a","password":"b"} "#;
        assert!(parse_body::<LoginRequest>(ok).is_ok());
        for bad in [
            &br#"{"username":"a","password":"b"}garbage"#[..],
            br#"{"username":"a","password":"b"}{}"#,
            br#"{"username":"a","password":"b"} 1"#,
        ] {
            let err = parse_body::<LoginRequest>(bad).unwrap_err();
            assert!(err.0.contains("follows the object"), "{err}");
        }
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_body::<LoginRequest>(br#"{"username":1,"password":"b"}"#).unwrap_err();
        assert!(err.0.starts_with("username:"), "{err}");
        assert!(parse_body::<LoginRequest>(b"[]").is_err());
        assert!(parse_body::<LoginRequest>(b"  ").is_err());
    }

    #[test]
    fn client_frames_by_type() {
        assert_eq!(
            parse_client_frame(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping)
        );
        assert_eq!(
            parse_client_frame(r#"{"type":"resume","since":4}"#),
            Ok(ClientFrame::Resume { since: 4 })
        );
        assert!(parse_client_frame(r#"{"type":"nope"}"#).is_err());
    }
}
