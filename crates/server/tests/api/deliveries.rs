//! Invitations by mail and SMS and signed webhooks go through the outbox: a real
//! SMTP server process and real HTTP receivers on loopback get each delivery once,
//! after outages and a kill -9 too.

use std::time::{Duration, Instant};

use callhub_client::api::{ContactInput, CreateCallRequest};
use callhub_client::{Client, RtcControllerApi};
use callhub_core::{CallType, Role};
use hmac::{Hmac, Mac};
use icalendar::Component;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;
use crate::outbox_support::*;

pub fn external(name: &str, email: Option<&str>, phone: Option<&str>) -> ContactInput {
    ContactInput {
        display_name: Some(name.into()),
        email: email.map(Into::into),
        phone_number: phone.map(Into::into),
        ..Default::default()
    }
}

pub fn quick_retries(cfg: &mut callhub_server::Config) {
    cfg.delivery.backoff = Duration::from_millis(100);
    cfg.delivery.max_backoff = Duration::from_millis(500);
    cfg.delivery.poll_interval = Duration::from_millis(100);
}

/// A server that mails a fresh SMTP sink and retries quickly.
pub async fn app_with_mail(backend: Backend) -> (SmtpSink, TestApp) {
    let sink = SmtpSink::start(free_port()).await;
    let smtp = sink.url();
    let app = TestApp::spawn_with(backend, |c| {
        c.delivery.smtp_url = Some(smtp);
        quick_retries(c);
    })
    .await;
    (sink, app)
}

/// The outbox of a call, as its domain's admin reads it.
pub async fn outbox(app: &TestApp, admin: &TestUser, call_id: uuid::Uuid) -> Vec<Value> {
    let a = app
        .raw(
            "GET",
            &format!("/admin/deliveries?callId={call_id}"),
            Some(&admin.token().await),
            None,
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json["deliveries"].as_array().unwrap().clone()
}

fn request(title: &str, invited: Vec<ContactInput>) -> CreateCallRequest {
    CreateCallRequest {
        call_title: title.into(),
        call_reason: callhub_core::CallReason::ServiceRequest,
        call_type: CallType::Sfu,
        invited_contacts: invited,
        invited_teams: vec![],
        join_anonymous_allowed: true,
        inform_others_directly: Some(false),
        creator_user: None,
        planned_date_time: None,
    }
}

fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    header == format!("sha256={hex}")
}

async fn register_webhook(app: &TestApp, admin: &TestUser, url: &str) -> (i64, String) {
    let a = app
        .raw(
            "POST",
            "/admin/webhooks",
            Some(&admin.token().await),
            Some(&json!({"url": url}).to_string()),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    (
        a.json["id"].as_i64().unwrap(),
        a.json["secret"].as_str().unwrap().to_owned(),
    )
}

backend_tests! {
    async fn mail_and_sms_reach_an_external_contact_with_a_working_guest_link(backend: Backend) {
        let sink = SmtpSink::start(free_port()).await;
        let sms = Recorder::start().await;
        let smtp = sink.url();
        let sms_url = format!("{}/sms", sms.url);
        let app = TestApp::spawn_with(backend, |c| {
            c.delivery.smtp_url = Some(smtp);
            c.delivery.sms_webhook_url = Some(sms_url);
            quick_retries(c);
        })
        .await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let admin = app.user("root", &[Role::Admin]).await;
        // informOthersDirectly false: nobody rings, but mail and SMS go out.
        let call = alice
            .rtc()
            .create_call_for_contacts(&request(
                "Pump 7 leaks",
                vec![bob.contact(), external("Visitor", Some("visitor@example.com"), Some("+49 176 1234 5678"))],
            ))
            .await
            .unwrap();
        eventually(20, || async { sink.mails().len() == 2 && sms.seen().len() == 1 }).await;

        let mail = sink.mails_to("visitor@example.com").pop().expect("the visitor's mail");
        assert!(mail.subject.contains("Pump 7 leaks") && mail.subject.contains("ALICE"), "{}", mail.subject);
        assert!(mail.text.contains("ALICE invites you to a service request"), "{}", mail.text);
        let link = mail.guest_link().expect("a guest link in the mail");
        assert_eq!(Some(link.clone()), call.join_url, "the mail's link is the call's joinUrl");
        assert!(mail.html.contains(&format!("href=\"{}\"", link.replace('&', "&amp;"))), "{}", mail.html);
        assert!(mail.ics.is_none(), "an unplanned call has no .ics");
        assert!(mail.from.starts_with("callhub@"), "{}", mail.from);
        assert_eq!(sink.mails_to("bob@example.org").len(), 1, "accounts get the mail as well");

        let text = &sms.seen()[0];
        assert_eq!(text.path, "/sms");
        let body = text.json();
        assert_eq!(body["to"], "+4917612345678", "E.164 as validated");
        let sms_text = body["body"].as_str().unwrap();
        assert!(sms_text.contains("Pump 7 leaks") && sms_text.len() < 320, "{sms_text}");
        assert_eq!(guest_link(sms_text), Some(link.clone()));

        // The link works: the guest page, then joining by it.
        let page = reqwest::get(&link).await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("Pump 7 leaks"));
        let (call_id, token) = callhub_client::parse_guest_link(&link).unwrap();
        let joined = Client::new(&app.url)
            .join_anonymous(&callhub_client::api::GuestJoinRequest { call_id, token, display_name: "Visitor".into() })
            .await
            .unwrap();
        let last = joined.call_log.call_events.last().unwrap();
        assert!(last.contact.anonymous && last.contact.user_db_id.is_none());

        let rows = outbox(&app, &admin, call.call_id).await;
        let mut channels: Vec<(&str, &str)> =
            rows.iter().map(|d| (d["channel"].as_str().unwrap(), d["status"].as_str().unwrap())).collect();
        channels.sort();
        assert_eq!(channels, [("mail", "sent"), ("mail", "sent"), ("sms", "sent")]);
        for d in &rows {
            assert_eq!(d["attempts"], 1);
            assert_eq!(d["attemptLog"][0]["outcome"], "sent");
        }
    }

    async fn mail_sent_while_the_smtp_server_is_down_arrives_once_it_is_up(backend: Backend) {
        let port = free_port();
        let app = TestApp::spawn_with(backend, |c| {
            c.delivery.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
            quick_retries(c);
        })
        .await;
        let alice = app.user("alice", &[Role::User]).await;
        let admin = app.user("root", &[Role::Admin]).await;
        let started = Instant::now();
        let call = alice
            .rtc()
            .create_call_for_contacts(&request("Outage", vec![external("Visitor", Some("visitor@example.com"), None)]))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "the call does not wait for the mail");
        eventually(20, || async {
            let rows = outbox(&app, &admin, call.call_id).await;
            rows[0]["attempts"].as_i64().unwrap() >= 2 && rows[0]["status"] == "pending"
        })
        .await;
        let rows = outbox(&app, &admin, call.call_id).await;
        assert!(rows[0]["lastError"].as_str().unwrap().contains("SMTP"), "{}", rows[0]);
        assert_eq!(rows[0]["attemptLog"][0]["outcome"], "error");

        let sink = SmtpSink::start(port).await;
        eventually(20, || async { sink.mails().len() == 1 }).await;
        eventually(10, || async { outbox(&app, &admin, call.call_id).await[0]["status"] == "sent" }).await;
        let row = &outbox(&app, &admin, call.call_id).await[0];
        let log = row["attemptLog"].as_array().unwrap();
        assert_eq!(log.last().unwrap()["outcome"], "sent");
        assert!(log[..log.len() - 1].iter().all(|a| a["outcome"] == "error"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(sink.mails().len(), 1, "sent once");
    }

    async fn a_delivery_that_never_succeeds_is_marked_failed_after_the_retry_window(backend: Backend) {
        let port = free_port();
        let app = TestApp::spawn_with(backend, |c| {
            c.delivery.smtp_url = Some(format!("smtp://127.0.0.1:{port}"));
            c.delivery.retry_for = Duration::from_secs(1);
            quick_retries(c);
        })
        .await;
        let alice = app.user("alice", &[Role::User]).await;
        let admin = app.user("root", &[Role::Admin]).await;
        let call = alice
            .rtc()
            .create_call_for_contacts(&request("Nobody home", vec![external("V", Some("v@example.com"), None)]))
            .await
            .unwrap();
        eventually(20, || async { outbox(&app, &admin, call.call_id).await[0]["status"] == "failed" }).await;
        let row = &outbox(&app, &admin, call.call_id).await[0];
        let log = row["attemptLog"].as_array().unwrap();
        assert!(log.len() >= 2 && log.iter().all(|a| a["outcome"] == "error"), "{row}");
        assert!(row["doneAt"].is_string() && row.get("nextAttemptAt").is_none());
    }

    async fn a_hanging_smtp_server_does_not_slow_the_call_api(backend: Backend) {
        // Accepts connections and never says a word.
        let tarpit = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = tarpit.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = tarpit.accept().await {
                open.push(s);
            }
        });
        let app = TestApp::spawn_with(backend, |c| c.delivery.smtp_url = Some(format!("smtp://127.0.0.1:{port}"))).await;
        let alice = app.user("alice", &[Role::User]).await;
        let started = Instant::now();
        for i in 0..5 {
            let call = alice
                .rtc()
                .create_call_for_contacts(&request(&format!("Call {i}"), vec![external("V", Some("v@example.com"), None)]))
                .await
                .unwrap();
            alice.rtc().end_call(call.call_id).await.unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        held.abort();
    }

    async fn without_smtp_or_sms_provider_invitations_are_logged_and_the_outbox_says_so(backend: Backend) {
        let app = TestApp::spawn_with(backend, quick_retries).await;
        let alice = app.user("alice", &[Role::User]).await;
        let admin = app.user("root", &[Role::Admin]).await;
        let call = alice
            .rtc()
            .create_call_for_contacts(&request("Quiet", vec![external("V", Some("v@example.com"), Some("+4917612345678"))]))
            .await
            .unwrap();
        eventually(10, || async {
            outbox(&app, &admin, call.call_id).await.iter().all(|d| d["status"] == "logged")
        })
        .await;
        let rows = outbox(&app, &admin, call.call_id).await;
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|d| d["attemptLog"][0]["outcome"] == "logged"));
    }

    async fn deliveries_come_a_page_at_a_time_with_their_attempts(backend: Backend) {
        let app = TestApp::spawn_with(backend, quick_retries).await;
        let alice = app.user("alice", &[Role::User]).await;
        let admin = app.user("root", &[Role::Admin]).await;
        let invited: Vec<_> = (0..5).map(|i| external(&format!("V{i}"), Some(&format!("v{i}@example.com")), None)).collect();
        let call = alice.rtc().create_call_for_contacts(&request("Paged", invited)).await.unwrap();
        eventually(10, || async {
            outbox(&app, &admin, call.call_id).await.iter().all(|d| d["status"] == "logged")
        })
        .await;
        let token = admin.token().await;
        let all = outbox(&app, &admin, call.call_id).await;
        assert_eq!(all.len(), 5, "one mail each: {all:?}");
        let mut paged = Vec::new();
        for page in 0..3 {
            let r = app.raw("GET", &format!("/admin/deliveries?callId={}&page={page}&size=2", call.call_id), Some(&token), None).await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!((r.json["page"].as_u64(), r.json["size"].as_u64(), r.json["totalElements"].as_i64()), (Some(page), Some(2), Some(5)));
            let rows = r.json["deliveries"].as_array().unwrap();
            assert_eq!(rows.len(), if page < 2 { 2 } else { 1 }, "page {page}");
            assert!(rows.iter().all(|d| d["attemptLog"][0]["outcome"] == "logged"), "each row keeps its attempts: {rows:?}");
            paged.extend(rows.iter().cloned());
        }
        assert_eq!(paged, all, "the pages, in order, are the whole outbox");
        let past = app.raw("GET", &format!("/admin/deliveries?callId={}&page=9&size=2", call.call_id), Some(&token), None).await;
        assert_eq!((past.json["deliveries"].clone(), past.json["totalElements"].as_i64()), (json!([]), Some(5)));
        for (query, needle) in [("size=0", "size"), ("size=501", "size"), ("page=-1", "page"), ("page=1000001", "page")] {
            app.raw("GET", &format!("/admin/deliveries?callId={}&{query}", call.call_id), Some(&token), None).await.assert_problem(400, needle);
        }
    }

    async fn a_domain_holds_at_most_twenty_webhooks(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.user("root", &[Role::Admin]).await;
        for i in 0..20 {
            register_webhook(&app, &admin, &format!("http://127.0.0.1:9/{i}")).await;
        }
        let body = json!({"url": "http://127.0.0.1:9/21"}).to_string();
        app.raw("POST", "/admin/webhooks", Some(&admin.token().await), Some(&body)).await.assert_problem(409, "20 webhooks");
        let list = app.raw("GET", "/admin/webhooks", Some(&admin.token().await), None).await;
        assert_eq!(list.json["webhooks"].as_array().map(Vec::len), Some(20), "the refused one was not stored");
    }

    async fn twilio_compatible_provider_gets_a_form_post_with_basic_auth(backend: Backend) {
        let twilio = Recorder::start().await;
        let base = twilio.url.clone();
        let app = TestApp::spawn_with(backend, |c| {
            c.delivery.twilio = Some(callhub_server::config::TwilioConfig {
                account_sid: "AC123".into(),
                auth_token: "tok".into(),
                from: "+15005550006".into(),
                base_url: base,
            });
            quick_retries(c);
        })
        .await;
        let alice = app.user("alice", &[Role::User]).await;
        alice
            .rtc()
            .create_call_for_contacts(&request("Texted", vec![external("V", None, Some("+4917612345678"))]))
            .await
            .unwrap();
        eventually(10, || async { twilio.seen().len() == 1 }).await;
        let r = &twilio.seen()[0];
        assert_eq!(r.path, "/2010-04-01/Accounts/AC123/Messages.json");
        use base64::Engine;
        let basic = base64::engine::general_purpose::STANDARD.encode("AC123:tok");
        assert_eq!(r.header("authorization"), format!("Basic {basic}"));
        assert!(r.header("content-type").starts_with("application/x-www-form-urlencoded"));
        let form: Vec<(String, String)> = url_decode(&r.body);
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
        assert_eq!((get("To").as_str(), get("From").as_str()), ("+4917612345678", "+15005550006"));
        assert!(get("Body").contains("Texted") && guest_link(&get("Body")).is_some(), "{}", get("Body"));
    }

    async fn planned_call_mails_carry_a_valid_ics_invitation(backend: Backend) {
        let (sink, app) = app_with_mail(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let mut req = request("Quarterly review; budget, plans", vec![external("Visitor", Some("visitor@example.com"), None)]);
        req.planned_date_time = Some("2030-01-02T10:30:00Z".into());
        req.join_anonymous_allowed = false;
        let call = alice.rtc().create_call_for_contacts(&req).await.unwrap();
        eventually(20, || async { sink.mails().len() == 1 }).await;
        let mail = sink.mails().pop().unwrap();
        assert!(mail.text.contains("When: Wednesday, 02 January 2030, 10:30 (UTC)"), "{}", mail.text);
        assert!(mail.guest_link().is_none(), "no guest link where guests are not allowed");
        let link = format!("{}/call/{}", app.url, call.call_id);
        assert!(mail.text.contains(&link) && mail.html.contains(&format!("href=\"{link}\"")), "the web client's call page: {}", mail.text);
        let page = reqwest::get(&link).await.unwrap();
        assert_eq!(page.status(), 200, "the link opens the web client");
        assert!(page.text().await.unwrap().contains(r#"src="/assets/main.js""#));
        let (content_type, ics) = mail.ics.expect("an .ics attachment");
        assert!(content_type.contains("method=REQUEST"), "{content_type}");
        // RFC 5545's shape: CRLF lines of at most 75 octets.
        assert!(ics.ends_with("\r\n") && !ics.replace("\r\n", "").contains('\n'));
        assert!(ics.split("\r\n").all(|l| l.len() <= 75));
        let unfolded = icalendar::parser::unfold(&ics);
        let cal: icalendar::Calendar = icalendar::parser::read_calendar(&unfolded).expect("a parsable calendar").into();
        assert_eq!(cal.property_value("METHOD"), Some("REQUEST"));
        assert_eq!(cal.property_value("VERSION"), Some("2.0"));
        assert!(cal.property_value("PRODID").is_some());
        let events: Vec<&icalendar::Event> = cal.events().collect();
        assert_eq!(events.len(), 1);
        let e = events[0];
        assert!(e.get_summary().unwrap().contains("Quarterly review"));
        assert_eq!(e.get_uid(), Some(format!("{}@callhub", call.call_id).as_str()));
        assert!(e.property_value("DTSTAMP").is_some());
        let start = e.get_start().expect("DTSTART");
        assert_eq!(
            start,
            icalendar::DatePerhapsTime::DateTime(icalendar::CalendarDateTime::Utc(
                "2030-01-02T10:30:00Z".parse().unwrap()
            ))
        );
        let attendees: Vec<&str> = e.multi_properties().get("ATTENDEE").into_iter().flatten().map(|p| p.value()).collect();
        assert_eq!(attendees, ["mailto:visitor@example.com"]);
        assert!(e.property_value("ORGANIZER").unwrap().contains("mailto:alice@example.org"));
    }

    async fn webhook_receiver_verifies_every_signature_and_gets_events_in_order(backend: Backend) {
        let receiver = Recorder::start().await;
        let app = TestApp::spawn_with(backend, quick_retries).await;
        let admin = app.user("root", &[Role::Admin]).await;
        let (_, secret) = register_webhook(&app, &admin, &format!("{}/hook", receiver.url)).await;
        // The receiver fails at first: the sender retries without reordering.
        receiver.fail_next(2);
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        bob.rtc().join_call(call.call_id).await.unwrap();
        bob.rtc().leave_call(call.call_id).await.unwrap();
        let log = alice.rtc().end_call(call.call_id).await.unwrap();
        let ids: Vec<i64> = log.call_events.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), 6, "Created Join Join Leave Leave Ended");
        eventually(20, || async {
            receiver.seen().iter().filter(|r| r.header("x-callhub-signature").starts_with("sha256=")).count() >= ids.len() + 2
        })
        .await;
        let seen = receiver.seen();
        let mut delivered = Vec::new();
        for r in &seen {
            assert!(verify(&secret, &r.body, &r.header("x-callhub-signature")), "signature of {}", String::from_utf8_lossy(&r.body));
            let body = r.json();
            assert_eq!(body["callId"], call.call_id.to_string());
            assert_eq!(body["eventId"], body["event"]["id"]);
            assert_eq!(r.header("x-callhub-event-id"), body["eventId"].to_string());
            assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
            let id = body["eventId"].as_i64().unwrap();
            if delivered.last() != Some(&id) {
                delivered.push(id); // a retry repeats the one before
            }
        }
        assert_eq!(delivered, ids, "every event, once, in order");
        assert_eq!(seen[0].json()["event"]["type"], "Created");
        assert!(!verify("wrong secret", &seen[0].body, &seen[0].header("x-callhub-signature")));
    }

    async fn webhooks_and_deliveries_are_for_admins_of_their_domain(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let admin = app.user("root", &[Role::Admin]).await;
        let user = app.user("alice", &[Role::User]).await;
        let other = app.user_in("elsewhere", "boss", &[Role::Admin]).await;
        let r = app.raw("POST", "/admin/webhooks", Some(&user.token().await), Some(r#"{"url":"http://127.0.0.1:9/x"}"#)).await;
        r.assert_problem(403, "admin");
        let r = app.raw("POST", "/admin/webhooks", Some(&admin.token().await), Some(r#"{"url":"ftp://x"}"#)).await;
        r.assert_problem(400, "url");
        let r = app.raw("POST", "/admin/webhooks", Some(&admin.token().await), Some(r#"{}"#)).await;
        r.assert_problem(400, "url");
        let r = app.raw("POST", "/admin/webhooks", None, Some(r#"{"url":"http://127.0.0.1:9/x"}"#)).await;
        assert_eq!(r.status, 401);
        let (id, _) = register_webhook(&app, &admin, "http://127.0.0.1:9/x").await;
        let list = app.raw("GET", "/admin/webhooks", Some(&admin.token().await), None).await;
        assert_eq!(list.json["webhooks"][0]["id"], id);
        assert!(list.json["webhooks"][0].get("secret").is_none(), "the secret is shown once");
        let theirs = app.raw("GET", "/admin/webhooks", Some(&other.token().await), None).await;
        assert_eq!(theirs.json["webhooks"], json!([]));
        app.raw("DELETE", &format!("/admin/webhooks/{id}"), Some(&other.token().await), None).await.assert_problem(404, "id");
        let call = user.rtc().create_call_for_contacts(&request("Mine", vec![external("V", Some("v@example.com"), None)])).await.unwrap();
        let path = format!("/admin/deliveries?callId={}", call.call_id);
        app.raw("GET", &path, Some(&user.token().await), None).await.assert_problem(403, "admin");
        app.raw("GET", &path, Some(&other.token().await), None).await.assert_problem(404, "callId");
        app.raw("GET", "/admin/deliveries?callId=nope", Some(&admin.token().await), None).await.assert_problem(400, "callId");
        let del = app.raw("DELETE", &format!("/admin/webhooks/{id}"), Some(&admin.token().await), None).await;
        assert_eq!(del.status, 204);
        let rows = outbox(&app, &admin, call.call_id).await;
        assert!(rows.iter().filter(|d| d["channel"] == "webhook").all(|d| d["status"] != "pending"), "deleting cancels: {rows:?}");
        let list = app.raw("GET", "/admin/webhooks", Some(&admin.token().await), None).await;
        assert_eq!(list.json["webhooks"], json!([]));
    }

    async fn kill_9_with_deliveries_pending_then_restart_delivers_each_exactly_once(backend: Backend) {
        use crate::durability::{add_user_with_role, serve_with};
        let db = TestDb::new(backend).await;
        add_user_with_role(&db, "alice", "user").await;
        add_user_with_role(&db, "root", "admin").await;
        let (smtp_port, http_port, port) = (free_port(), free_port(), free_port());
        let env = [
            ("CALLHUB_SMTP_URL", format!("smtp://127.0.0.1:{smtp_port}")),
            ("CALLHUB_SMS_WEBHOOK_URL", format!("http://127.0.0.1:{http_port}/sms")),
            ("CALLHUB_DELIVERY_BACKOFF_MILLIS", "200".into()),
            ("CALLHUB_DELIVERY_MAX_BACKOFF_SECS", "1".into()),
            ("CALLHUB_DELIVERY_LEASE_SECS", "5".into()),
            ("CALLHUB_DELIVERY_POLL_MILLIS", "100".into()),
            ("CALLHUB_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ];
        let mut server = serve_with(&db, port, &env).await;
        let url = format!("http://127.0.0.1:{port}");
        let (alice, root) = (Client::new(&url), Client::new(&url));
        alice.login("alice", PASSWORD, Some("ubimax")).await.unwrap();
        root.login("root", PASSWORD, Some("ubimax")).await.unwrap();
        let hook = root
            .request(reqwest::Method::POST, "/admin/webhooks")
            .await
            .unwrap()
            .json(&json!({"url": format!("http://127.0.0.1:{http_port}/hook")}))
            .send()
            .await
            .unwrap();
        assert_eq!(hook.status(), 201);
        let secret = hook.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
        // Every provider is down: the deliveries fail and wait for their next try.
        let mut calls = Vec::new();
        for i in 0..4 {
            let to = format!("guest{i}@example.com");
            let call = alice
                .rtc()
                .create_call_for_contacts(&request(&format!("Call {i}"), vec![external("G", Some(&to), Some(&format!("+4917600000{i:02}")))]))
                .await
                .unwrap();
            alice.rtc().end_call(call.call_id).await.unwrap();
            calls.push(call.call_id);
        }
        let pending = || async {
            let mut all = Vec::new();
            for c in &calls {
                let rows: Value = root
                    .request(reqwest::Method::GET, &format!("/admin/deliveries?callId={c}"))
                    .await
                    .unwrap()
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                all.extend(rows["deliveries"].as_array().unwrap().clone());
            }
            all
        };
        eventually(20, || async {
            let rows = pending().await;
            rows.iter().any(|d| d["attempts"].as_i64() >= Some(2))
        })
        .await;
        let rows = pending().await;
        // Per call: a mail, an SMS, and Created, Join, Leave, Ended to the webhook.
        assert_eq!(rows.len(), 4 * 6);
        assert!(rows.iter().all(|d| d["status"] == "pending"), "{rows:?}");
        server.start_kill().unwrap(); // SIGKILL
        server.wait().await.unwrap();

        let sink = SmtpSink::start(smtp_port).await;
        let receiver = Recorder::start_on(http_port).await;
        let mut server = serve_with(&db, port, &env).await;
        let hooks = || receiver.seen().into_iter().filter(|r| r.path == "/hook").collect::<Vec<_>>();
        let texts = || receiver.seen().into_iter().filter(|r| r.path == "/sms").collect::<Vec<_>>();
        eventually(30, || async { sink.mails().len() >= 4 && texts().len() >= 4 && hooks().len() >= 16 }).await;
        tokio::time::sleep(Duration::from_millis(1500)).await; // time for any duplicate to show up
        let mut to: Vec<String> = sink.mails().into_iter().map(|m| m.to).collect();
        to.sort();
        assert_eq!(to, (0..4).map(|i| format!("guest{i}@example.com")).collect::<Vec<_>>(), "each mail once");
        let mut numbers: Vec<String> = texts().iter().map(|r| r.json()["to"].as_str().unwrap().to_owned()).collect();
        numbers.sort();
        assert_eq!(numbers, (0..4).map(|i| format!("+4917600000{i:02}")).collect::<Vec<_>>(), "each SMS once");
        let mut events: Vec<i64> = hooks().iter().map(|r| {
            assert!(verify(&secret, &r.body, &r.header("x-callhub-signature")));
            r.json()["eventId"].as_i64().unwrap()
        }).collect();
        let n = events.len();
        events.sort();
        events.dedup();
        assert_eq!((n, events.len()), (16, 16), "each event once");
        eventually(10, || async { pending().await.iter().all(|d| d["status"] == "sent") }).await;
        server.start_kill().unwrap();
    }

    async fn two_nodes_on_one_database_send_each_delivery_once(backend: Backend) {
        let (sink, app) = app_with_mail(backend).await;
        let mut cfg = app.server.app.config.clone();
        cfg.listen = "127.0.0.1:0".parse().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let second = callhub_server::Server::start(cfg, listener).await.unwrap();
        let alice = app.user("alice", &[Role::User]).await;
        let on_second = Client::new(&second.url());
        on_second.login("alice", PASSWORD, Some("ubimax")).await.unwrap();
        let rtcs: [RtcControllerApi; 2] = [alice.rtc(), on_second.rtc()];
        let mut expected = Vec::new();
        for i in 0..12 {
            let to = format!("guest{i}@example.com");
            rtcs[i % 2]
                .create_call_for_contacts(&request(&format!("Call {i}"), vec![external("G", Some(&to), None)]))
                .await
                .unwrap();
            expected.push(to);
        }
        eventually(30, || async { sink.mails().len() >= expected.len() }).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut got: Vec<String> = sink.mails().into_iter().map(|m| m.to).collect();
        got.sort();
        expected.sort();
        assert_eq!(got, expected, "each mail once, whichever node sent it");
        second.stop().await;
    }
}

fn url_decode(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
