//! The tokens callhub signs and checks: HS256 access tokens for users and
//! guests, guest-link tokens derived from the signing secret, and the hashes the
//! store keeps instead of secrets. Pure computation, no I/O, so the fuzz targets
//! build it without the server.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use callhub_core::UserDbId;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user's database id, as a string (JWT's `sub` is one).
    pub sub: String,
    /// The refresh-token family the token was issued in (logout revokes it).
    pub fam: String,
    pub iat: i64,
    pub exp: i64,
    /// Set only in guest tokens; a user token never has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
}

/// The claims of a guest's access token: one contact of one call, nothing else.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuestClaims {
    /// `guest:<callId>:<contact id>`.
    pub sub: String,
    pub call: Uuid,
    /// The guest's contact id within the call.
    pub cid: i64,
    pub iat: i64,
    pub exp: i64,
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Derives guest-link tokens; itself derived from the signing secret.
    guest_key: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl Tokens {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Tokens {
        // Only HS256: `alg: none` and every other algorithm are refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(b"callhub guest links v1");
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            guest_key: mac.finalize().into_bytes().to_vec(),
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn issue(&self, user: UserDbId, family: &str) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            fam: family.to_owned(),
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
            call: None,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The user and refresh-token family of a valid token. Guest tokens are refused.
    pub fn verify(&self, token: &str) -> Option<(UserDbId, String)> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        if claims.call.is_some() {
            return None;
        }
        Some((claims.sub.parse().ok()?, claims.fam))
    }

    /// An access token for guest `contact` of one call.
    pub fn issue_guest(&self, call: Uuid, contact: i64) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = GuestClaims {
            sub: format!("guest:{call}:{contact}"),
            call,
            cid: contact,
            iat: now,
            exp: now + self.access_ttl.as_secs() as i64,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The call and contact of a valid guest token. User tokens are refused.
    pub fn verify_guest(&self, token: &str) -> Option<GuestClaims> {
        let claims = jsonwebtoken::decode::<GuestClaims>(token, &self.decoding, &self.validation)
            .ok()?
            .claims;
        claims.sub.starts_with("guest:").then_some(claims)
    }

    /// The guest-link token of a call: HMAC-SHA256 of its id under a key derived
    /// from the signing secret (256 bits), so mails and `joinUrl` can rebuild it
    /// while the store keeps only its hash.
    pub fn guest_link_token(&self, call: Uuid) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.guest_key).expect("HMAC takes any key");
        mac.update(call.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Refresh tokens are stored as their SHA-256: a leaked table grants nothing.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `token` is the one whose hash a call keeps (compared in constant time).
pub fn token_matches_hash(hash: &str, token: &str) -> bool {
    constant_time_eq(hash.as_bytes(), token_hash(token).as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// Token keys on `secret`, a minute's life each.
    fn keys(secret: &[u8]) -> Tokens {
        Tokens::new(secret, Duration::from_secs(60), Duration::from_secs(60))
    }

    #[test]
    fn tokens_of_another_algorithm_or_secret_are_refused() {
        let t = keys(SECRET);
        let good = t.issue(7, "fam").unwrap();
        assert_eq!(t.verify(&good).unwrap().0, 7);
        let other = keys(b"another-secret-another-secret-xx");
        assert!(t.verify(&other.issue(7, "fam").unwrap()).is_none());
        // alg: none, with the same claims.
        let claims = good.split('.').nth(1).unwrap();
        let none = format!(
            "{}.{claims}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(t.verify(&none).is_none());
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims {
                sub: "7".into(),
                fam: "fam".into(),
                iat: 0,
                exp: i64::MAX / 2,
                call: None,
            },
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(t.verify(&hs512).is_none());
    }

    #[test]
    fn guest_and_user_tokens_are_not_interchangeable() {
        let t = keys(SECRET);
        let call = Uuid::new_v4();
        let guest = t.issue_guest(call, 3).unwrap();
        assert!(t.verify(&guest).is_none(), "a guest token is no user token");
        let claims = t.verify_guest(&guest).unwrap();
        assert_eq!((claims.call, claims.cid), (call, 3));
        assert!(t.verify_guest(&t.issue(7, "fam").unwrap()).is_none());
    }

    #[test]
    fn guest_link_tokens_are_256_bits_per_call_and_secret() {
        let t = keys(SECRET);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let token = t.guest_link_token(a);
        assert_eq!(URL_SAFE_NO_PAD.decode(&token).unwrap().len(), 32);
        assert_eq!(token, t.guest_link_token(a), "rebuilt, not stored");
        assert_ne!(token, t.guest_link_token(b));
        let other = keys(b"another-secret-another-secret-xx");
        assert_ne!(token, other.guest_link_token(a));
    }

    #[test]
    fn expired_tokens_are_refused() {
        let t = keys(SECRET);
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "7".into(),
                fam: "fam".into(),
                iat: 0,
                exp: 1000,
                call: None,
            },
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(t.verify(&old).is_none());
    }

    #[test]
    fn only_the_token_itself_matches_its_hash() {
        let hash = token_hash("abc");
        assert!(token_matches_hash(&hash, "abc"));
        assert!(!token_matches_hash(&hash, "abd"));
        assert!(!token_matches_hash(&hash, ""));
    }
}
