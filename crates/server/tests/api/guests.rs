//! Guest links: `joinUrl` for those who may share it, the guest page, and
//! `joinAnonymous` — a guest gets into that one call and nowhere else.

use std::time::Duration;

use callhub_client::Client;
use callhub_client::api::{GuestJoinRequest, GuestJoinResponse};
use callhub_core::EventType::*;
use callhub_core::{CallType, Role};
use serde_json::json;

use crate::deliveries::{app_with_mail, external};
use crate::helpers::*;
use crate::sockets::{next_text, raw_socket};
use futures::SinkExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

pub(crate) fn open_call(invited: &[&TestUser]) -> callhub_client::api::CreateCallRequest {
    let mut req = call_request(CallType::Sfu, invited);
    req.join_anonymous_allowed = true;
    req
}

/// Joins `call` by its guest link as `name`.
pub(crate) async fn join_as_guest(
    app: &TestApp,
    call: &callhub_core::CallLog,
    name: &str,
) -> GuestJoinResponse {
    let (call_id, token) =
        callhub_client::parse_guest_link(call.join_url.as_deref().expect("a guest link")).unwrap();
    Client::new(&app.url)
        .join_anonymous(&GuestJoinRequest {
            call_id,
            token,
            display_name: name.into(),
        })
        .await
        .unwrap()
}

fn join_body(call_id: uuid::Uuid, token: &str, name: &str) -> String {
    json!({"callId": call_id, "token": token, "displayName": name}).to_string()
}

backend_tests! {
    async fn the_guest_link_from_the_mail_joins_that_call_and_nowhere_else(backend: Backend) {
        let (sink, app) = app_with_mail(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let mut req = open_call(&[&bob]);
        req.invited_contacts.push(external("Visitor", Some("visitor@example.com"), None));
        let call = alice.rtc().create_call_for_contacts(&req).await.unwrap();
        let other = alice.rtc().create_call_for_contacts(&open_call(&[&bob])).await.unwrap();
        eventually(20, || async { !sink.mails_to("visitor@example.com").is_empty() }).await;

        // A new user: nothing but the mail.
        let link = sink.mails_to("visitor@example.com")[0].guest_link().expect("a guest link");
        let page = reqwest::get(&link).await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"src="/assets/main.js""#), "the web client's guest page: {html}");
        let (call_id, token) = callhub_client::parse_guest_link(&link).unwrap();
        assert_eq!(call_id, call.call_id);
        let guest = Client::new(&app.url);
        let joined = guest
            .join_anonymous(&GuestJoinRequest { call_id, token: token.clone(), display_name: "Visitor".into() })
            .await
            .unwrap();
        assert_eq!(joined.call_log.call_id, call.call_id);
        assert!(joined.call_log.join_url.is_none(), "a guest is not given the link to share");
        let me = joined.contact_id;
        let log = alice.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        let last = log.call_events.last().unwrap();
        assert_eq!((last.kind, last.contact.id), (Join, me));
        assert!(last.contact.anonymous && last.contact.user_db_id.is_none());
        assert_eq!(last.contact.display_name.as_deref(), Some("Visitor"));
        let raw = app.raw("GET", &format!("/rtc/getCallLogById?callId={}", call.call_id), Some(&alice.token().await), None).await;
        assert_eq!(raw.json["callEvents"].as_array().unwrap().last().unwrap()["contact"]["anonymous"], true);

        // Nowhere else: its token opens no other route and no other call.
        let gt = joined.access_token.clone();
        for (method, path) in [
            ("GET", format!("/rtc/getCallLogById?callId={}", call.call_id)),
            ("GET", "/rtc/getCallLogs".to_owned()),
            ("POST", format!("/rtc/joinCall?callId={}", call.call_id)),
            ("POST", format!("/rtc/endCall?callId={}", call.call_id)),
            ("GET", "/rtc/iceServers".to_owned()),
            ("GET", "/admin/webhooks".to_owned()),
        ] {
            let a = app.raw(method, &path, Some(&gt), None).await;
            assert_eq!(a.status, 401, "{method} {path} with a guest token: {}", a.text);
        }
        app.raw("POST", "/rtc/createCall", Some(&gt), Some(r#"{"callTitle":"x","callType":"SFU"}"#)).await.assert_problem(401, "guest");
        app.raw("POST", &format!("/rtc/leaveCall?callId={}", other.call_id), Some(&gt), None).await.assert_problem(404, "no call");
        // The link's token is for its own call only.
        app.raw("POST", "/rtc/joinAnonymous", None, Some(&join_body(other.call_id, &token, "Visitor"))).await.assert_problem(404, "token");

        // Leaving with the guest token writes the guest's Leave.
        let left = app.raw("POST", &format!("/rtc/leaveCall?callId={}", call.call_id), Some(&gt), None).await;
        assert_eq!(left.status, 200, "{}", left.text);
        let last = &left.json["callEvents"].as_array().unwrap().last().unwrap().clone();
        assert_eq!((last["type"].as_str(), last["contact"]["id"].as_i64()), (Some("Leave"), Some(me)));
        app.raw("POST", &format!("/rtc/leaveCall?callId={}", call.call_id), Some(&gt), None).await.assert_problem(409, "not in the call");
    }

    async fn join_url_is_for_those_who_may_share_it_where_guests_are_allowed(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let admin = app.user("root", &[Role::Admin]).await;
        let stranger = app.user("mallory", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&open_call(&[&bob])).await.unwrap();
        let url = call.join_url.clone().expect("the creator gets joinUrl");
        assert!(url.starts_with(&format!("{}/join/{}?t=", app.url, call.call_id)), "{url}");
        let (_, token) = callhub_client::parse_guest_link(&url).unwrap();
        use base64::Engine;
        let bits = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap().len() * 8;
        assert!(bits >= 128, "{bits} bits");
        assert_eq!(bob.rtc().get_call_log_by_id(call.call_id).await.unwrap().join_url, Some(url.clone()));
        assert_eq!(admin.rtc().get_call_log_by_id(call.call_id).await.unwrap().join_url, Some(url.clone()));
        let listed = bob.rtc().get_call_logs(&Default::default()).await.unwrap();
        assert_eq!(listed.content[0].join_url, Some(url.clone()));
        assert_eq!(stranger.rtc().get_call_log_by_id(call.call_id).await.unwrap_err().status(), Some(404));
        // Stored hashed: the database never holds the token itself.
        let db_text = match backend {
            Backend::Sqlite => String::from_utf8_lossy(&std::fs::read(app.db.dir.join("callhub.db")).unwrap()).into_owned()
                + &String::from_utf8_lossy(&std::fs::read(app.db.dir.join("callhub.db-wal")).unwrap_or_default()),
            Backend::Postgres => String::new(),
        };
        assert!(!db_text.contains(&token));
        let closed = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        assert!(closed.join_url.is_none(), "no link where guests are not allowed");
        let raw = app.raw("GET", &format!("/rtc/getCallLogById?callId={}", closed.call_id), Some(&alice.token().await), None).await;
        assert!(raw.json.get("joinUrl").is_none());
        let ended = alice.rtc().end_call(call.call_id).await.unwrap();
        assert!(ended.join_url.is_none(), "the link stops working when the call ends");
    }

    async fn guest_links_are_refused_for_ended_calls_and_calls_without_guests(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&open_call(&[&bob])).await.unwrap();
        let (_, token) = callhub_client::parse_guest_link(call.join_url.as_deref().unwrap()).unwrap();
        let closed = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        app.raw("POST", "/rtc/joinAnonymous", None, Some(&join_body(closed.call_id, &token, "V"))).await.assert_problem(403, "anonymous");
        app.raw("POST", "/rtc/joinAnonymous", None, Some(&join_body(call.call_id, &token, " "))).await.assert_problem(400, "displayName");
        app.raw("POST", "/rtc/joinAnonymous", None, Some(&json!({"callId": call.call_id, "displayName": "V"}).to_string())).await.assert_problem(400, "token");
        app.raw("POST", "/rtc/joinAnonymous", None, Some(r#"{"callId":"nope","token":"t","displayName":"V"}"#)).await.assert_problem(400, "callId");
        alice.rtc().end_call(call.call_id).await.unwrap();
        app.raw("POST", "/rtc/joinAnonymous", None, Some(&join_body(call.call_id, &token, "V"))).await.assert_problem(409, "ended");
        let page = app.raw("GET", &format!("/join/{}?t={token}", call.call_id), None, None).await;
        assert_eq!(page.status, 409);
        assert!(page.text.contains("ended"));
    }

    async fn wrong_guest_tokens_are_404_and_rate_limited(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.guest_failures_per_ip = 3).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&open_call(&[&bob])).await.unwrap();
        let (_, token) = callhub_client::parse_guest_link(call.join_url.as_deref().unwrap()).unwrap();
        for _ in 0..3 {
            app.raw("POST", "/rtc/joinAnonymous", None, Some(&join_body(call.call_id, "guessed", "V"))).await.assert_problem(404, "token");
        }
        let limited = app.raw("POST", "/rtc/joinAnonymous", None, Some(&join_body(call.call_id, "guessed", "V"))).await;
        limited.assert_problem(429, "wrong guest links");
        assert!(limited.headers.get("retry-after").is_some());
        let page = app.raw("GET", &format!("/join/{}?t=guessed", call.call_id), None, None).await;
        assert_eq!(page.status, 429);
        // The right token still opens the call from that address (issue 13): a
        // stranger's guesses behind the same address must not lock real guests out,
        // and 256 bits are out of reach of any count of guesses.
        let page = app.raw("GET", &format!("/join/{}?t={token}", call.call_id), None, None).await;
        assert_eq!(page.status, 200, "{}", page.text);
        let joined = app.raw("POST", "/rtc/joinAnonymous", None, Some(&join_body(call.call_id, &token, "V"))).await;
        assert_eq!(joined.status, 200, "{}", joined.text);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    async fn a_guest_socket_carries_the_signaling_and_events_of_its_own_call_only(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let mut req = open_call(&[]);
        req.call_type = CallType::Mesh;
        let call = alice.rtc().create_call_for_contacts(&req).await.unwrap();
        let other = alice.rtc().create_call_for_contacts(&open_call(&[])).await.unwrap();
        let guest = join_as_guest(&app, &call, "Visitor").await;
        assert_eq!(guest.media.contact_id, guest.contact_id, "media names the guest's own contact");
        let mut g = raw_socket(&app, &guest.access_token).await;
        let mut a = raw_socket(&app, &alice.token().await).await;
        let signal = |call_id: uuid::Uuid, to: i64| {
            WsMessage::Text(json!({"type": "signal", "callId": call_id, "to": to, "payload": {"sdp": {"type": "offer", "sdp": "v=0"}}}).to_string().into())
        };
        let next_of = |kind: &'static str| move |f: &serde_json::Value| f["type"] == kind;
        async fn wait(ws: &mut crate::sockets::RawWs, pick: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
            loop {
                let f = next_text(ws).await;
                if pick(&f) { return f; }
            }
        }
        // The guest offers to the creator (contact 1) and hears the answer.
        g.send(signal(call.call_id, 1)).await.unwrap();
        let got = wait(&mut a, next_of("signal")).await;
        assert_eq!((got["from"].as_i64(), got["callId"].as_str()), (Some(guest.contact_id), Some(call.call_id.to_string().as_str())));
        a.send(signal(call.call_id, guest.contact_id)).await.unwrap();
        let got = wait(&mut g, next_of("signal")).await;
        assert_eq!(got["from"], 1);
        // Nothing else: no other call, no resume.
        g.send(signal(other.call_id, 1)).await.unwrap();
        assert!(wait(&mut g, next_of("error")).await["detail"].as_str().unwrap().contains("own call"));
        g.send(WsMessage::Text(r#"{"type":"resume","since":0}"#.into())).await.unwrap();
        assert!(wait(&mut g, next_of("error")).await["detail"].as_str().unwrap().contains("signaling only"));
        // The call's events reach the guest (unsequenced): the creator hangs up, the call ends.
        alice.rtc().leave_call(call.call_id).await.unwrap();
        let ended = wait(&mut g, |f| f["type"] == "callEvent" && f["event"]["type"] == "Ended").await;
        assert!(ended.get("seq").is_none());
        assert_eq!(ended["callStatus"], "Ended");
        // Out of the call, the token opens no socket.
        let url = format!("{}/ws?access_token={}", app.url.replacen("http", "ws", 1), guest.access_token);
        let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
        assert!(err.to_string().contains("403"), "{err}");
    }

    async fn a_guest_without_a_socket_leaves_after_the_grace(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.rejoin_grace = Duration::from_secs(1)).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let call = alice.rtc().create_call_for_contacts(&open_call(&[&bob])).await.unwrap();
        // One guest never connects (a page closed at once): gone after the grace.
        let ghost = join_as_guest(&app, &call, "Ghost").await;
        // Another stays connected past the grace, then drops: gone a grace later.
        let guest = join_as_guest(&app, &call, "Visitor").await;
        let socket = raw_socket(&app, &guest.access_token).await;
        let left = |contact: i64| {
            let alice = &alice;
            let call_id = call.call_id;
            async move {
                let log = alice.rtc().get_call_log_by_id(call_id).await.unwrap();
                log.call_events.iter().any(|e| e.kind == Leave && e.contact.id == contact)
            }
        };
        eventually(10, || left(ghost.contact_id)).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!left(guest.contact_id).await, "a connected guest stays");
        drop(socket);
        eventually(10, || left(guest.contact_id)).await;
        let log = alice.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        assert_eq!(log.call_status, callhub_core::CallStatus::Started, "the others are still in");
    }
}
