//! The directory and presence: finding people of one's own domain, and seeing who
//! is offline, online or busy, live.

use std::time::Duration;

use callhub_client::api::ContactsQuery;
use callhub_core::text::{DisplayName, Domain, Email, TeamName, UserId};
use callhub_core::{CallType, EventType, Notification, Presence, Role};
use callhub_server::auth::hash_password;
use callhub_store::NewUser;
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::guests::{join_as_guest, open_call};
use crate::helpers::*;
use crate::sockets::{RawWs, device, expect, raw_socket};

/// Makes an account that is never logged in here (the directory only lists it).
async fn account(
    app: &TestApp,
    domain: &str,
    user_id: &str,
    name: &str,
    email: Option<&str>,
) -> i64 {
    app.server
        .app
        .store
        .create_user(NewUser {
            domain: Domain::parse("domain", domain).unwrap(),
            user_id: UserId::parse("userId", user_id).unwrap(),
            display_name: DisplayName::parse("displayName", name).unwrap(),
            email: email.map(|e| Email::parse("email", e).unwrap()),
            phone_number: None,
            roles: vec![Role::User],
            password_hash: hash_password("unused password".into()).await.unwrap(),
        })
        .await
        .unwrap()
        .user_db_id
}

async fn search(user: &TestUser, q: &str, size: u32) -> callhub_client::api::Contacts {
    user.rtc()
        .get_contacts(&ContactsQuery {
            q: Some(q.into()),
            size: Some(size),
        })
        .await
        .unwrap()
}

fn ids(found: &callhub_client::api::Contacts) -> Vec<String> {
    found.contacts.iter().map(|c| c.user_id.clone()).collect()
}

/// The presence of `user` as the directory shows it to `me`.
async fn presence_of(me: &TestUser, user: &TestUser) -> Presence {
    let found = search(me, &user.info.user_id, 100).await;
    found
        .contacts
        .iter()
        .find(|c| c.user_db_id == user.id())
        .map(|c| c.presence)
        .expect("the user is in the directory")
}

/// The next `presence` frame on a raw socket, skipping everything else.
async fn next_presence(ws: &mut RawWs, secs: u64) -> Option<(i64, String)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "presence" {
                    assert!(v.get("seq").is_none(), "presence is not sequenced: {v}");
                    return Some((
                        v["userDbId"].as_i64().unwrap(),
                        v["presence"].as_str().unwrap().to_owned(),
                    ));
                }
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// Waits for `user`'s presence frame with `presence` on `ws` (others are skipped).
async fn expect_presence(ws: &mut RawWs, user: i64, presence: &str) {
    loop {
        match next_presence(ws, 5).await {
            Some((u, p)) if u == user && p == presence => return,
            Some(_) => continue,
            None => panic!("no presence {presence} of user {user} within 5 s"),
        }
    }
}

backend_tests! {
    async fn directory_finds_accounts_and_teams_by_id_name_or_email_ignoring_case(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        account(&app, "ubimax", "bob.builder", "Bob Builder", Some("bob@plant-7.example")).await;
        account(&app, "ubimax", "zoe", "Zoë Ämter", Some("zoe@example.org")).await;
        account(&app, "ubimax", "a_b", "Under Score", None).await;
        account(&app, "ubimax", "axb", "Ax Bee", None).await;
        account(&app, "ubimax", "carl", "carl lowercase", Some("c@example.org")).await;
        app.server.app.store.create_team(&Domain::parse("d", "ubimax").unwrap(), &TeamName::parse("n", "Pump Experts").unwrap(), &[]).await.unwrap();
        app.server.app.store.create_team(&Domain::parse("d", "ubimax").unwrap(), &TeamName::parse("n", "Crane crew").unwrap(), &[]).await.unwrap();

        assert_eq!(ids(&search(&alice, "BUILDER", 20).await), ["bob.builder"], "by name, any case");
        assert_eq!(ids(&search(&alice, "plant-7", 20).await), ["bob.builder"], "by email");
        assert_eq!(ids(&search(&alice, "bob.b", 20).await), ["bob.builder"], "by id");
        assert_eq!(ids(&search(&alice, "ZOË", 20).await), ["zoe"], "beyond ASCII");
        assert_eq!(ids(&search(&alice, "ob", 20).await), ["bob.builder"], "two characters");
        assert_eq!(ids(&search(&alice, "a_b", 20).await), ["a_b"], "wildcards are literal");
        assert_eq!(ids(&search(&alice, "%", 20).await), Vec::<String>::new());
        assert!(search(&alice, "nobody-like-this", 20).await.contacts.is_empty());

        // No text: everyone, by display name (case-insensitively), and `size` caps it.
        let all = search(&alice, "", 100).await;
        assert_eq!(ids(&all), ["alice", "axb", "bob.builder", "carl", "a_b", "zoe"]);
        assert_eq!(ids(&search(&alice, "", 2).await), ["alice", "axb"]);
        let bob = &all.contacts[2];
        assert_eq!((bob.display_name.as_str(), bob.email.as_str(), bob.phone_number.as_str(), bob.domain.as_str()),
                   ("Bob Builder", "bob@plant-7.example", "", "ubimax"));
        assert_eq!(bob.presence, Presence::Offline);

        let teams: Vec<String> = search(&alice, "EXPERT", 20).await.teams.iter().map(|t| t.name.clone()).collect();
        assert_eq!(teams, ["Pump Experts"]);
        assert_eq!(search(&alice, "", 20).await.teams.len(), 2);
        assert!(search(&alice, "builder", 20).await.teams.is_empty());

        // The JSON is the contract's.
        let raw = app.raw("GET", "/rtc/contacts?q=builder", Some(&alice.token().await), None).await;
        assert_eq!(raw.status, 200, "{}", raw.text);
        let c = &raw.json["contacts"][0];
        for key in ["userDbId", "userId", "displayName", "domain", "email", "phoneNumber", "presence"] {
            assert!(c.get(key).is_some(), "{key} in {c}");
        }
        assert_eq!(c["presence"], "offline");
        assert!(raw.json["teams"].is_array());

        // Someone added after those searches is found at once (each node's listing
        // follows the store's directory version), and so is a new team.
        account(&app, "ubimax", "newbie", "Nora Newbie", None).await;
        app.server.app.store.create_team(&Domain::parse("d", "ubimax").unwrap(), &TeamName::parse("n", "Night shift").unwrap(), &[]).await.unwrap();
        assert_eq!(ids(&search(&alice, "newbie", 20).await), ["newbie"]);
        assert_eq!(search(&alice, "night", 20).await.teams.len(), 1);
    }

    async fn directory_never_shows_another_domain(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let mallory = app.user_in("rival", "mallory", &[Role::Admin]).await;
        account(&app, "rival", "bob", "Bob of Rival", Some("bob@rival.example")).await;
        account(&app, "ubimax", "bob", "Bob", Some("bob@example.org")).await;
        app.server.app.store.create_team(&Domain::parse("d", "rival").unwrap(), &TeamName::parse("n", "Experts").unwrap(), &[]).await.unwrap();

        let found = search(&alice, "bob", 100).await;
        assert_eq!(ids(&found), ["bob"]);
        assert!(found.contacts.iter().all(|c| c.domain == "ubimax"));
        assert!(search(&alice, "rival", 100).await.contacts.is_empty(), "not even by the other domain's name");
        assert!(search(&alice, "experts", 100).await.teams.is_empty());
        let all = search(&alice, "", 100).await;
        assert!(all.contacts.iter().all(|c| c.domain == "ubimax"), "{:?}", ids(&all));
        // An admin of the other domain sees only theirs.
        let theirs = search(&mallory, "", 100).await;
        assert_eq!(ids(&theirs), ["bob", "mallory"]);
        assert!(theirs.contacts.iter().all(|c| c.domain == "rival"));
        assert_eq!(theirs.teams.len(), 1);
    }

    async fn directory_refuses_bad_input_guests_and_strangers(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let token = alice.token().await;
        for (query, needle) in [
            ("size=0", "size"),
            ("size=101", "size"),
            ("size=ten", "size"),
            (&format!("q={}", "x".repeat(101)) as &str, "q: at most 100"),
            ("q=bob%00", "q: control characters"),
            // A control character at either end is refused too, not trimmed away.
            ("q=bob%0D", "q: control characters"),
            ("q=%09bob", "q: control characters"),
        ] {
            app.raw("GET", &format!("/rtc/contacts?{query}"), Some(&token), None).await.assert_problem(400, needle);
        }
        let ok = app.raw("GET", &format!("/rtc/contacts?q={}&size=100", "x".repeat(100)), Some(&token), None).await;
        assert_eq!(ok.status, 200, "100 characters and 100 results are allowed: {}", ok.text);
        app.raw("GET", "/rtc/contacts", None, None).await.assert_problem(401, "Authorization");

        let call = alice.rtc().create_call_for_contacts(&open_call(&[])).await.unwrap();
        let guest = join_as_guest(&app, &call, "Visitor").await;
        app.raw("GET", "/rtc/contacts", Some(&guest.access_token), None).await.assert_problem(403, "guests");
    }

    async fn presence_follows_sockets_and_calls(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let mut watcher = raw_socket(&app, &alice.token().await).await;
        assert_eq!(presence_of(&alice, &bob).await, Presence::Offline);

        // A socket opens: online, and the domain hears it.
        let bobs_socket = raw_socket(&app, &bob.token().await).await;
        expect_presence(&mut watcher, bob.id(), "online").await;
        assert_eq!(presence_of(&alice, &bob).await, Presence::Online);
        // A second device changes nothing.
        let second = raw_socket(&app, &bob.token().await).await;
        drop(second);

        // Ringing is not a call; answering is.
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        assert_eq!(presence_of(&alice, &bob).await, Presence::Online);
        bob.rtc().join_call(call.call_id).await.unwrap();
        expect_presence(&mut watcher, bob.id(), "busy").await;
        assert_eq!(presence_of(&alice, &bob).await, Presence::Busy);
        assert_eq!(presence_of(&bob, &alice).await, Presence::Busy, "the creator joined at creation");

        // Leaving a MESH call ends it: both are free again.
        bob.rtc().leave_call(call.call_id).await.unwrap();
        expect_presence(&mut watcher, bob.id(), "online").await;
        assert_eq!(presence_of(&bob, &alice).await, Presence::Online);

        // The last socket closes: offline.
        drop(bobs_socket);
        expect_presence(&mut watcher, bob.id(), "offline").await;
        assert_eq!(presence_of(&alice, &bob).await, Presence::Offline);

        // Busy without any socket (a connector joins by REST), and Ended frees everyone.
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        bob.rtc().join_call(call.call_id).await.unwrap();
        expect_presence(&mut watcher, bob.id(), "busy").await;
        alice.rtc().end_call(call.call_id).await.unwrap();
        expect_presence(&mut watcher, bob.id(), "offline").await;
    }

    async fn a_dropped_participant_stays_busy_until_the_grace_ends(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.rejoin_grace = Duration::from_secs(1)).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let carol = app.user("carol", &[Role::User]).await;
        let mut watcher = raw_socket(&app, &carol.token().await).await;
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        let bobs_socket = raw_socket(&app, &bob.token().await).await;
        bob.rtc().join_call(call.call_id).await.unwrap();
        expect_presence(&mut watcher, bob.id(), "busy").await;

        drop(bobs_socket);
        // Within the grace nothing changes for the others.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(presence_of(&carol, &bob).await, Presence::Busy);
        // After it, Bob's Leave is written and he is offline.
        expect_presence(&mut watcher, bob.id(), "offline").await;
        let log = alice.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        assert_eq!(events(&log).last(), Some(&ev(EventType::Leave, "bob")));
        assert_eq!(presence_of(&carol, &bob).await, Presence::Offline);
    }

    async fn presence_frames_stay_in_their_domain(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let mallory = app.user_in("rival", "mallory", &[Role::User]).await;
        let mut ours = raw_socket(&app, &alice.token().await).await;
        let mut theirs = raw_socket(&app, &mallory.token().await).await;
        expect_presence(&mut ours, alice.id(), "online").await;
        let bobs_socket = raw_socket(&app, &bob.token().await).await;
        expect_presence(&mut ours, bob.id(), "online").await;
        drop(bobs_socket);
        expect_presence(&mut ours, bob.id(), "offline").await;
        // Mallory heard only of herself.
        while let Some((user, _)) = next_presence(&mut theirs, 1).await {
            assert_eq!(user, mallory.id(), "a presence frame of another domain reached rival");
        }
    }

    async fn a_socket_opened_with_presence_false_hears_no_presence_but_its_calls(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let ws_url = app.url.replacen("http", "ws", 1);
        let token = bob.token().await;
        app.raw("GET", &format!("/ws?presence=maybe&access_token={token}"), None, None)
            .await
            .assert_problem(400, "presence");
        let (mut glasses, _) = tokio_tungstenite::connect_async(format!("{ws_url}/ws?presence=false&access_token={token}"))
            .await
            .unwrap();
        let mut watcher = raw_socket(&app, &alice.token().await).await;
        // Bob's own device still makes him online for the others.
        expect_presence(&mut watcher, bob.id(), "online").await;
        // Alice calls Bob and joins (she turns busy): the glasses get the pop-up and no presence.
        let call = alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        expect_presence(&mut watcher, alice.id(), "busy").await;
        let mut popup = false;
        while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(1), glasses.next()).await {
            let WsMessage::Text(t) = m else { continue };
            let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(v["type"], "presence", "a socket that asked for no presence got {v}");
            popup |= v["type"] == "incomingCall" && v["call"]["callId"] == call.call_id.to_string();
        }
        assert!(popup, "the glasses got no incomingCall");
    }

    async fn calling_someone_busy_still_rings_and_says_the_call_waits(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let carol = app.user("carol", &[Role::User]).await;
        let mut bobs_phone = device(&app, &bob).await;
        let first = alice.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        let busy_first = expect(&mut bobs_phone, 5, |n| match n {
            Notification::IncomingCall { call, busy } if call.call_id == first.call_id => Some(*busy),
            _ => None,
        }).await;
        assert!(!busy_first, "a free callee's pop-up is an ordinary one");
        bob.rtc().join_call(first.call_id).await.unwrap();

        let second = carol.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&bob])).await.unwrap();
        let busy_second = expect(&mut bobs_phone, 5, |n| match n {
            Notification::IncomingCall { call, busy } if call.call_id == second.call_id => Some(*busy),
            _ => None,
        }).await;
        assert!(busy_second, "Bob is in a call: the second rings as call waiting");
        let raw = app.raw("GET", "/rtc/contacts?q=bob", Some(&carol.token().await), None).await;
        assert_eq!(raw.json["contacts"][0]["presence"], "busy");

        // He may take the waiting call once he has left the first.
        bob.rtc().leave_call(first.call_id).await.unwrap();
        let joined = bob.rtc().join_call(second.call_id).await.unwrap();
        assert_eq!(events(&joined.call_log).last(), Some(&ev(EventType::Join, "bob")));
    }
}
