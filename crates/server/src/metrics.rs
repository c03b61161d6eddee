//! What `/metrics` shows: counters, histograms and gauges of the `metrics` crate,
//! rendered in the Prometheus text format by `metrics-exporter-prometheus`.
//!
//! Each node has its own recorder rather than the process-wide one: tests run
//! several nodes in one process, and each must see only its own traffic.

use std::sync::atomic::Ordering;
use std::time::Duration;

use callhub_core::{CallStatus, Channel};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::app::App;

pub const HTTP_RESPONSES: &str = "callhub_http_responses_total";
pub const HTTP_DURATION: &str = "callhub_http_request_duration_seconds";
pub const CALLS_CREATED: &str = "callhub_calls_created_total";
pub const CALL_COMMANDS: &str = "callhub_call_commands_total";
pub const LOGINS_FAILED: &str = "callhub_logins_failed_total";
pub const DEADLINES_FIRED: &str = "callhub_deadlines_fired_total";
pub const DELIVERIES_SENT: &str = "callhub_deliveries_sent_total";
pub const DELIVERIES_FAILED: &str = "callhub_deliveries_failed_total";
pub const DELIVERY_RETRIES: &str = "callhub_delivery_retries_total";
pub const DELIVERY_DELAY: &str = "callhub_delivery_delay_seconds";
pub const POPUP_DELAY: &str = "callhub_call_popup_seconds";
pub const SOCKETS_OPEN: &str = "callhub_sockets_open";
pub const CALLS: &str = "callhub_calls";
pub const CONTACTS_RINGING: &str = "callhub_contacts_ringing";
pub const OUTBOX_BACKLOG: &str = "callhub_outbox_backlog";
pub const BUS_PUBLISHED: &str = "callhub_bus_published_total";
pub const BUS_RECEIVED: &str = "callhub_bus_received_total";
pub const BUS_DROPPED: &str = "callhub_bus_dropped_total";
pub const BUS_FORWARDED: &str = "callhub_bus_forwarded_frames_total";
pub const BUS_CONNECTED: &str = "callhub_bus_connected";
pub const GAPS_FILLED: &str = "callhub_gaps_filled_total";
pub const SFU_CALLS: &str = "callhub_sfu_calls";
pub const CALL_LOGS_KEPT: &str = "callhub_call_logs_kept_bytes";
pub const SFU_PARTICIPANTS: &str = "callhub_sfu_participants";
pub const SFU_FRAMES: &str = "callhub_sfu_frames_forwarded_total";
pub const SFU_DATAGRAMS: &str = "callhub_sfu_datagrams_sent_total";
pub const SFU_BYTES: &str = "callhub_sfu_bytes_sent_total";
pub const SFU_DROPPED: &str = "callhub_sfu_datagrams_dropped_total";
pub const SFU_SILENCE: &str = "callhub_sfu_silent_audio_dropped_total";
pub const SFU_QUIET: &str = "callhub_sfu_quiet_audio_dropped_total";
pub const SFU_KEYFRAMES: &str = "callhub_sfu_keyframe_requests_total";
pub const SFU_SWITCHES: &str = "callhub_sfu_layer_switches_total";

/// Request and pop-up latencies: a tenth of a millisecond (a pop-up after its
/// commit takes about that on loopback) to ten seconds.
const FAST_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Deliveries wait for retries with backoff: a tenth of a second to a day.
const DELIVERY_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0,
];

pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl Default for Metrics {
    fn default() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DELIVERY_DELAY.into()), DELIVERY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), FAST_BUCKETS)
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics { recorder, handle };
        metrics.record(describe);
        metrics
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(HTTP_RESPONSES, "HTTP responses by status class");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request duration by method, route template and status"
    );
    describe_counter!(CALLS_CREATED, "Calls created");
    describe_counter!(
        CALL_COMMANDS,
        "Join, decline, leave, end and invite commands applied"
    );
    describe_counter!(LOGINS_FAILED, "Logins refused for a wrong name or password");
    describe_counter!(
        DEADLINES_FIRED,
        "Ring timeouts and planned starts applied by the worker"
    );
    describe_counter!(DELIVERIES_SENT, "Mails, SMS and webhooks sent");
    describe_counter!(
        DELIVERIES_FAILED,
        "Deliveries given up after the retry window"
    );
    describe_counter!(
        DELIVERY_RETRIES,
        "Delivery attempts that failed and will be retried"
    );
    describe_histogram!(
        DELIVERY_DELAY,
        Unit::Seconds,
        "From a delivery's creation to its sending (or logging), by channel"
    );
    describe_histogram!(
        POPUP_DELAY,
        Unit::Seconds,
        "From the commit that rings a user to the incomingCall frame written to their socket"
    );
    describe_gauge!(SOCKETS_OPEN, "WebSockets open on this node");
    describe_gauge!(CALLS, "Calls by status, read from the store");
    describe_gauge!(
        CONTACTS_RINGING,
        "Invited contacts ringing now, read from the store"
    );
    describe_gauge!(OUTBOX_BACKLOG, "Deliveries waiting to be sent, by channel");
    describe_counter!(
        BUS_PUBLISHED,
        "Messages this node published to the other nodes on NATS, by kind"
    );
    describe_counter!(
        BUS_RECEIVED,
        "Messages of other nodes this node received on NATS, by kind"
    );
    describe_counter!(
        BUS_DROPPED,
        "Messages for the other nodes not published (NATS away too long); the store fills what they miss"
    );
    describe_counter!(
        BUS_FORWARDED,
        "Frames from other nodes handed to this node's sockets, by kind"
    );
    describe_gauge!(
        BUS_CONNECTED,
        "1 while the node is connected to NATS, 0 while not (absent on one node)"
    );
    describe_counter!(
        GAPS_FILLED,
        "Times a socket read messages it had missed from the store (a seq gap, a full queue, the bus away)"
    );
    describe_gauge!(SFU_CALLS, "SFU calls with a session on this node");
    describe_gauge!(
        CALL_LOGS_KEPT,
        "Bytes of call logs (JSON) kept for getCallLogById on this node"
    );
    describe_gauge!(
        SFU_PARTICIPANTS,
        "Participants connected to this node's SFU"
    );
    describe_counter!(SFU_FRAMES, "Media frames the SFU forwarded to receivers");
    describe_counter!(
        SFU_DATAGRAMS,
        "Datagrams the SFU sent (media, RTCP, ICE, DTLS)"
    );
    describe_counter!(SFU_BYTES, "Bytes the SFU sent");
    describe_counter!(
        SFU_SILENCE,
        "Audio frames of digital silence (muted microphones) the SFU did not forward"
    );
    describe_counter!(
        SFU_QUIET,
        "Audio frames of open microphones not among their call's loudest, not forwarded"
    );
    describe_counter!(
        SFU_DROPPED,
        "Datagrams the SFU dropped because its socket's send buffer was full"
    );
    describe_counter!(
        SFU_KEYFRAMES,
        "Keyframe requests the SFU sent to senders (joins, layer switches, loss)"
    );
    describe_counter!(SFU_SWITCHES, "Simulcast layer switches of receivers");
    // Shown at zero from the start, as the hand-made counters were: a rate over a
    // counter that appears only at its first event misses that event.
    for name in [
        CALLS_CREATED,
        CALL_COMMANDS,
        LOGINS_FAILED,
        DEADLINES_FIRED,
        DELIVERIES_SENT,
        DELIVERIES_FAILED,
        DELIVERY_RETRIES,
        GAPS_FILLED,
        SFU_FRAMES,
        SFU_DATAGRAMS,
        SFU_BYTES,
        SFU_DROPPED,
        SFU_SILENCE,
        SFU_QUIET,
        SFU_KEYFRAMES,
        SFU_SWITCHES,
    ] {
        counter!(name).increment(0);
    }
}

impl Metrics {
    /// Runs `f` with this node's recorder as the one the `metrics` macros use.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Adds one to a counter without labels.
    pub fn count(&self, name: &'static str) {
        self.record(|| counter!(name).increment(1));
    }

    /// Adds one to a counter labelled with a kind.
    pub fn count_kind(&self, name: &'static str, kind: &'static str) {
        self.record(|| counter!(name, "kind" => kind).increment(1));
    }

    pub fn observe(&self, name: &'static str, elapsed: Duration) {
        self.record(|| histogram!(name).record(elapsed.as_secs_f64()));
    }

    /// A delivery sent (or logged) `delay` after it was written.
    pub fn delivery_sent(&self, channel: Channel, delay: Duration) {
        self.record(|| {
            histogram!(DELIVERY_DELAY, "channel" => channel.as_str()).record(delay.as_secs_f64())
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Refreshes the store's gauges and the socket count until shutdown, and trims
/// the histograms' buffers (the exporter leaves that to its owner).
pub async fn refresh(
    app: std::sync::Arc<App>,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        refresh_once(&app).await;
    }
}

async fn refresh_once(app: &App) {
    let m = &app.metrics;
    m.handle.run_upkeep();
    let sockets = app.hub.connected.load(Ordering::Relaxed);
    m.record(|| gauge!(SOCKETS_OPEN).set(sockets as f64));
    let (_, kept) = app.call_logs.held();
    m.record(|| gauge!(CALL_LOGS_KEPT).set(kept as f64));
    let sfu = app.sfu.stats();
    m.record(|| {
        gauge!(SFU_CALLS).set(sfu.calls as f64);
        gauge!(SFU_PARTICIPANTS).set(sfu.participants as f64);
        counter!(SFU_FRAMES).absolute(sfu.frames_forwarded);
        counter!(SFU_DATAGRAMS).absolute(sfu.datagrams_out);
        counter!(SFU_BYTES).absolute(sfu.bytes_out);
        counter!(SFU_DROPPED).absolute(sfu.datagrams_dropped);
        counter!(SFU_SILENCE).absolute(sfu.silent_audio_dropped);
        counter!(SFU_QUIET).absolute(sfu.quiet_audio_dropped);
        counter!(SFU_KEYFRAMES).absolute(sfu.keyframe_requests);
        counter!(SFU_SWITCHES).absolute(sfu.layer_switches);
    });
    if let Some(bus) = &app.bus {
        let up = f64::from(u8::from(bus.is_connected()));
        m.record(|| gauge!(BUS_CONNECTED).set(up));
    }
    let gauges = match app.store.gauges().await {
        Ok(g) => g,
        Err(e) => {
            tracing::warn!(error = %e, "reading the gauges failed");
            return;
        }
    };
    m.record(|| {
        // Every status and channel is shown, at zero when the store has none.
        for status in [CallStatus::Planned, CallStatus::Started, CallStatus::Ended] {
            let n = count_of(&gauges.calls_by_status, status.as_str());
            gauge!(CALLS, "status" => status.as_str()).set(n as f64);
        }
        for channel in [Channel::Mail, Channel::Sms, Channel::Webhook] {
            let n = count_of(&gauges.backlog_by_channel, channel.as_str());
            gauge!(OUTBOX_BACKLOG, "channel" => channel.as_str()).set(n as f64);
        }
        gauge!(CONTACTS_RINGING).set(gauges.ringing as f64);
    });
}

fn count_of(counts: &[(String, i64)], name: &str) -> i64 {
    counts
        .iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, n)| *n)
}
