//! Any text as a planned time: refused or a time at millisecond precision.
#![no_main]

use callhub_core::text::planned_time;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(t) = planned_time("plannedDateTime", text) {
        assert_eq!(t.timestamp_subsec_nanos() % 1_000_000, 0, "{text:?} -> {t}");
    }
});
