//! Any text as a WebSocket client frame: refused or read, never a panic.
#![no_main]

use callhub_core::wire::parse_client_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = parse_client_frame(text);
});
