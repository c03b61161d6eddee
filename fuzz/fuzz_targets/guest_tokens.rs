//! Any text as a guest link's token or as a bearer token: only the call's own
//! link token matches, and no forged access token verifies.
#![no_main]

use std::time::Duration;

use callhub_tokens::{Tokens, token_hash, token_matches_hash};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-xx";

fuzz_target!(|text: &str| {
    let tokens = Tokens::new(SECRET, Duration::from_secs(60), Duration::from_secs(60));
    let call = uuid::Uuid::from_u128(13);
    assert!(tokens.verify(text).is_none(), "forged user token {text:?} verified");
    assert!(tokens.verify_guest(text).is_none(), "forged guest token {text:?} verified");
    let link = tokens.guest_link_token(call);
    let matches = token_matches_hash(&token_hash(&link), text);
    assert_eq!(matches, text == link, "{text:?}");
});
