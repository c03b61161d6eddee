//! What a hostile or careless client found (issue 13), each kept found: control
//! characters, trailing garbage, unbounded calls, invitation floods, lock-outs.

use callhub_core::{CallType, Role};
use serde_json::json;

use crate::helpers::*;

fn external(i: usize) -> serde_json::Value {
    json!({"displayName": format!("Guest {i}"), "email": format!("g{i}@example.org")})
}

backend_tests! {
    async fn a_nul_byte_in_a_login_is_a_400_naming_the_field(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        app.user("alice", &[Role::User]).await;
        for (body, field) in [
            (json!({"username": "alice\u{0}", "password": PASSWORD, "domain": "ubimax"}), "username"),
            (json!({"username": "alice", "password": PASSWORD, "domain": "ubimax\u{0}"}), "domain"),
            (json!({"username": "alice", "password": "pw\u{0}", "domain": "ubimax"}), "password"),
        ] {
            let a = app.raw("POST", "/login", None, Some(&body.to_string())).await;
            a.assert_problem(400, field);
            assert!(a.json["detail"].as_str().unwrap().contains("control characters"), "{}", a.text);
        }
    }

    async fn control_characters_in_call_text_are_refused_and_write_nothing(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let t = alice.token().await;
        let cases = [
            (json!({"callTitle": "Stand\u{0}up", "callType": "SFU"}), "callTitle"),
            (json!({"callTitle": "Bell\u{7}", "callType": "SFU"}), "callTitle"),
            (json!({"callTitle": "T", "callType": "SFU", "invitedContacts": [{"email": "x@example.org", "displayName": "E\u{0}ve"}]}), "invitedContacts[0].displayName"),
            (json!({"callTitle": "T", "callType": "SFU", "invitedContacts": [{"email": "x\u{0}@example.org"}]}), "invitedContacts[0].email"),
            (json!({"callTitle": "T", "callType": "SFU", "invitedContacts": [{"phoneNumber": "+49176\u{0}1234567"}]}), "invitedContacts[0].phoneNumber"),
            (json!({"callTitle": "T", "callType": "SFU", "invitedContacts": [{"userId": "bob\u{0}"}]}), "invitedContacts[0].userId"),
            (json!({"callTitle": "T", "callType": "SFU", "invitedContacts": [{"userId": "bob", "domain": "ubi\u{0}max"}]}), "invitedContacts[0].domain"),
            (json!({"callTitle": "T", "callType": "SFU", "invitedTeams": [{"name": "Ex\u{0}perts"}]}), "invitedTeams[0].name"),
            (json!({"callTitle": "T", "callType": "SFU", "plannedDateTime": "2030-01-01T10:00:00\u{0}"}), "plannedDateTime"),
        ];
        for (body, field) in cases {
            let a = app.raw("POST", "/rtc/createCall", Some(&t), Some(&body.to_string())).await;
            a.assert_problem(400, field);
        }
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        let guestless = app.raw("POST", &format!("/rtc/inviteContacts?callId={}", call.call_id), Some(&t),
            Some(&json!({"invitedContacts": [{"email": "a@example.org", "displayName": "\u{0}"}]}).to_string())).await;
        guestless.assert_problem(400, "invitedContacts[0].displayName");
        let page = alice.rtc().get_call_logs(&Default::default()).await.unwrap();
        assert_eq!(page.total_elements, 1, "only the valid call was written");
        let log = alice.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        assert_eq!(log.invited_contacts.len(), 1, "the refused invitation wrote nothing");
    }

    async fn a_body_followed_by_garbage_is_refused(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let t = alice.token().await;
        for tail in ["garbage", "{}", " 1", "]"] {
            let body = format!(r#"{{"callTitle":"T","callType":"SFU"}}{tail}"#);
            app.raw("POST", "/rtc/createCall", Some(&t), Some(&body)).await.assert_problem(400, "follows the object");
        }
        let login = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}x"#);
        app.raw("POST", "/login", None, Some(&login)).await.assert_problem(400, "follows the object");
        let page = alice.rtc().get_call_logs(&Default::default()).await.unwrap();
        assert_eq!(page.total_elements, 0);
    }

    async fn a_call_holds_at_most_the_configured_contacts_guests_included(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.max_call_contacts = 4).await;
        let alice = app.user("alice", &[Role::User]).await;
        let t = alice.token().await;
        // The creator and four invitees are five: one too many.
        let five = json!({"callTitle": "T", "callType": "SFU", "joinAnonymousAllowed": true,
            "invitedContacts": (0..4).map(external).collect::<Vec<_>>()});
        app.raw("POST", "/rtc/createCall", Some(&t), Some(&five.to_string())).await.assert_problem(400, "CALLHUB_MAX_CALL_CONTACTS");
        let three = json!({"callTitle": "T", "callType": "SFU", "joinAnonymousAllowed": true,
            "invitedContacts": (0..2).map(external).collect::<Vec<_>>()});
        let call = app.raw("POST", "/rtc/createCall", Some(&t), Some(&three.to_string())).await;
        assert_eq!(call.status, 200, "{}", call.text);
        let call_id = call.json["callId"].as_str().unwrap().to_owned();
        let invite = |from: usize, n: usize| json!({"invitedContacts": (from..from + n).map(external).collect::<Vec<_>>()}).to_string();
        let path = format!("/rtc/inviteContacts?callId={call_id}");
        app.raw("POST", &path, Some(&t), Some(&invite(10, 2))).await.assert_problem(409, "CALLHUB_MAX_CALL_CONTACTS");
        let fourth = app.raw("POST", &path, Some(&t), Some(&invite(10, 1))).await;
        assert_eq!(fourth.status, 200, "{}", fourth.text);
        // Full: a guest cannot squeeze in either.
        let (_, token) = callhub_client::parse_guest_link(fourth.json["joinUrl"].as_str().unwrap()).unwrap();
        let guest = json!({"callId": call_id, "token": token, "displayName": "Visitor"}).to_string();
        app.raw("POST", "/rtc/joinAnonymous", None, Some(&guest)).await.assert_problem(409, "CALLHUB_MAX_CALL_CONTACTS");
        let log = alice.rtc().get_call_log_by_id(call_id.parse().unwrap()).await.unwrap();
        assert_eq!(log.invited_contacts.len() + 1, 4);
    }

    async fn external_invitations_are_budgeted_per_account_and_hour(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.invites_per_hour = 3).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let t = alice.token().await;
        let two = json!({"callTitle": "T", "callType": "SFU", "invitedContacts": (0..2).map(external).collect::<Vec<_>>()});
        let call = app.raw("POST", "/rtc/createCall", Some(&t), Some(&two.to_string())).await;
        assert_eq!(call.status, 200, "{}", call.text);
        let call_id = call.json["callId"].as_str().unwrap().to_owned();
        let path = format!("/rtc/inviteContacts?callId={call_id}");
        // A mail and an SMS are two invitations; one is left this hour.
        let both = json!({"invitedContacts": [{"email": "x@example.org", "phoneNumber": "+4917612345678"}]}).to_string();
        let refused = app.raw("POST", &path, Some(&t), Some(&both)).await;
        refused.assert_problem(429, "CALLHUB_INVITES_PER_HOUR");
        let retry: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "{retry}");
        app.raw("POST", "/rtc/createCall", Some(&t), Some(&two.to_string())).await.assert_problem(429, "invitations");
        let log = alice.rtc().get_call_log_by_id(call_id.parse().unwrap()).await.unwrap();
        assert_eq!(log.invited_contacts.len(), 2, "the refused invitation wrote nothing");
        assert_eq!(alice.rtc().get_call_logs(&Default::default()).await.unwrap().total_elements, 1);
        let one = json!({"invitedContacts": [external(7)]}).to_string();
        assert_eq!(app.raw("POST", &path, Some(&t), Some(&one)).await.status, 200);
        // The budget is the account's: another account still has its own.
        let b = bob.token().await;
        assert_eq!(app.raw("POST", "/rtc/createCall", Some(&b), Some(&two.to_string())).await.status, 200);
    }

    async fn failed_logins_from_one_address_do_not_lock_out_another(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.login_failures_per_account = 3).await;
        app.user("alice", &[Role::User]).await;
        let wrong = json!({"username": "alice", "password": "wrong-wrong", "domain": "ubimax"}).to_string();
        let right = json!({"username": "alice", "password": PASSWORD, "domain": "ubimax"}).to_string();
        let stranger = [127, 0, 0, 2];
        for _ in 0..3 {
            app.raw_from(stranger, "POST", "/login", None, Some(&wrong)).await.assert_problem(401, "wrong");
        }
        app.raw_from(stranger, "POST", "/login", None, Some(&right)).await.assert_problem(429, "too many");
        let owner = app.raw_from([127, 0, 0, 3], "POST", "/login", None, Some(&right)).await;
        assert_eq!(owner.status, 200, "the owner's address has not failed: {}", owner.text);
    }

    async fn leaving_out_the_domain_spends_the_same_login_budget(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.login_failures_per_account = 2).await;
        app.user("alice", &[Role::User]).await;
        let with = json!({"username": "alice", "password": "wrong-wrong", "domain": "ubimax"}).to_string();
        let without = json!({"username": "alice", "password": "wrong-wrong"}).to_string();
        app.raw("POST", "/login", None, Some(&with)).await.assert_problem(401, "wrong");
        app.raw("POST", "/login", None, Some(&with)).await.assert_problem(401, "wrong");
        app.raw("POST", "/login", None, Some(&without)).await.assert_problem(429, "too many");
    }

    async fn ten_wrong_guest_tokens_do_not_refuse_the_right_one(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let mut req = call_request(CallType::Sfu, &[]);
        req.join_anonymous_allowed = true;
        let call = alice.rtc().create_call_for_contacts(&req).await.unwrap();
        let (_, token) = callhub_client::parse_guest_link(call.join_url.as_deref().unwrap()).unwrap();
        let body = |t: &str| json!({"callId": call.call_id, "token": t, "displayName": "Visitor"}).to_string();
        for _ in 0..10 {
            app.raw("POST", "/rtc/joinAnonymous", None, Some(&body("guessed"))).await.assert_problem(404, "token");
        }
        app.raw("POST", "/rtc/joinAnonymous", None, Some(&body("guessed"))).await.assert_problem(429, "wrong guest links");
        let joined = app.raw("POST", "/rtc/joinAnonymous", None, Some(&body(&token))).await;
        assert_eq!(joined.status, 200, "{}", joined.text);
    }

    async fn served_pages_carry_a_strict_policy_and_nosniff(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        for path in ["/docs", "/health", "/openapi.json", "/no/such/route", "/join/not-a-call?t=x"] {
            let a = app.raw("GET", path, None, None).await;
            assert_eq!(a.headers["x-content-type-options"], "nosniff", "{path}");
        }
        let docs = app.raw("GET", "/docs", None, None).await;
        let csp = docs.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
        // The guest page and its refusals are the web client's: its own strict policy
        // (scripts from this origin only, never inline), one policy only.
        let strict = |csp: &str| csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval");
        let missing = app.raw("GET", "/join/not-a-call?t=x", None, None).await;
        let csp = missing.headers["content-security-policy"].to_str().unwrap();
        assert!(strict(csp), "{csp}");
        let mut req = call_request(CallType::Sfu, &[]);
        req.join_anonymous_allowed = true;
        let call = alice.rtc().create_call_for_contacts(&req).await.unwrap();
        let link = call.join_url.unwrap();
        let page = app.raw("GET", &link[link.find("/join/").unwrap()..], None, None).await;
        assert_eq!(page.status, 200);
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(strict(csp), "{csp}");
        assert!(!page.text.contains("<script>") && !page.text.contains("<script nonce"), "no inline script: {}", page.text);
        assert_eq!(page.headers.get_all("content-security-policy").iter().count(), 1, "one policy only");
    }

    async fn webhooks_to_inside_addresses_are_refused_unless_allowed(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.delivery.webhook_allow_private = false).await;
        let admin = app.user("root", &[Role::Admin]).await;
        let t = admin.token().await;
        for url in ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://169.254.169.254/latest/meta-data",
                    "http://[::1]/x", "http://10.0.0.1/x", "https://192.168.1.10/x", "http://[::ffff:127.0.0.1]/x"] {
            let a = app.raw("POST", "/admin/webhooks", Some(&t), Some(&json!({"url": url}).to_string())).await;
            a.assert_problem(400, "CALLHUB_WEBHOOK_ALLOW_PRIVATE");
        }
        let list = app.raw("GET", "/admin/webhooks", Some(&t), None).await;
        assert_eq!(list.json["webhooks"], json!([]), "nothing was registered");
        let open = TestApp::spawn_with(backend, |c| c.delivery.webhook_allow_private = true).await;
        let root = open.user("root", &[Role::Admin]).await;
        let a = open.raw("POST", "/admin/webhooks", Some(&root.token().await), Some(r#"{"url":"http://127.0.0.1:9/x"}"#)).await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
}

/// Slow and greedy clients, over raw TCP: the database behind does not matter.
mod connections {
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpSocket, TcpStream};

    use crate::helpers::*;

    async fn read_all_within(tcp: &mut TcpStream, secs: u64) -> Vec<u8> {
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(secs), tcp.read_to_end(&mut got))
            .await
            .expect("the server did not close the connection in time")
            .ok();
        got
    }

    #[tokio::test]
    async fn a_client_sending_its_headers_too_slowly_is_cut_off() {
        let app = TestApp::spawn_with(Backend::Sqlite, |c| {
            c.request_read_timeout = Duration::from_secs(1)
        })
        .await;
        let mut tcp = TcpStream::connect(app.server.addr).await.unwrap();
        tcp.write_all(b"POST /login HTTP/1.1\r\nHost: callhub\r\nContent-Le")
            .await
            .unwrap();
        let started = Instant::now();
        read_all_within(&mut tcp, 5).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(4),
            "{took:?}"
        );
        // An idle kept-alive connection is closed after the same deadline.
        let mut idle = TcpStream::connect(app.server.addr).await.unwrap();
        let started = Instant::now();
        read_all_within(&mut idle, 5).await;
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[tokio::test]
    async fn a_body_trickling_in_is_answered_408_and_cut_off() {
        let app = TestApp::spawn_with(Backend::Sqlite, |c| {
            c.request_read_timeout = Duration::from_secs(1)
        })
        .await;
        let mut tcp = TcpStream::connect(app.server.addr).await.unwrap();
        tcp.write_all(b"POST /login HTTP/1.1\r\nHost: callhub\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user").await.unwrap();
        let answer = String::from_utf8_lossy(&read_all_within(&mut tcp, 5).await).into_owned();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(
            answer.contains("application/problem+json") && answer.contains("did not arrive"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn connections_per_client_address_are_bounded() {
        let app = TestApp::spawn_with(Backend::Sqlite, |c| c.connections_per_ip = 2).await;
        let held = [
            TcpStream::connect(app.server.addr).await.unwrap(),
            TcpStream::connect(app.server.addr).await.unwrap(),
        ];
        // Give the server a moment to count both before the third arrives.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut third = TcpStream::connect(app.server.addr).await.unwrap();
        let _ = third
            .write_all(b"GET /health HTTP/1.1\r\nHost: callhub\r\n\r\n")
            .await;
        let refused = read_all_within(&mut third, 3).await;
        assert!(
            refused.is_empty(),
            "the third connection was served: {}",
            String::from_utf8_lossy(&refused)
        );
        // Another address is not affected.
        assert_eq!(
            app.raw_from([127, 0, 0, 2], "GET", "/health", None, None)
                .await
                .status,
            200
        );
        // A slot freed is a slot again.
        drop(held);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let socket = TcpSocket::new_v4().unwrap();
        let mut again = socket.connect(app.server.addr).await.unwrap();
        again
            .write_all(b"GET /health HTTP/1.1\r\nHost: callhub\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&read_all_within(&mut again, 3).await).into_owned();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
