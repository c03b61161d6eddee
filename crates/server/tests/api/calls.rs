use callhub_client::api::{CallLogsQuery, InviteRequest, TeamInput};
use callhub_core::EventType::*;
use callhub_core::text::{Domain, TeamName, UserId};
use callhub_core::{CallStatus, CallType, Role};

use crate::helpers::*;

backend_tests! {
    async fn seed_node_example_creates_a_call_and_join_reads_created_join_join(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let caller = app.user("callertest1", &[Role::User]).await;
        let tester = app.user("tester", &[Role::User]).await;
        // The seed's fetch body, byte for byte but the userDbId, sent as fetch sends a string: text/plain.
        let body = format!(
            "{{\"callType\":\"SFU\",\"invitedContacts\":[{{\"userId\":\"tester\",\"userDbId\":{},\"email\":\"test@test.de\",\"domain\":\"ubimax\",\"displayName\":\"Tester\",\"phoneNumber\":null}}],\"invitedTeams\":[],\"joinAnonymousAllowed\":false,\"callTitle\":\"New Call\",\"plannedDateTime\":null,\"callReason\":\"STANDARD\"}}",
            tester.id()
        );
        let res = reqwest::Client::new()
            .post(format!("{}/rtc/createCall", app.url))
            .header("authorization", format!("Bearer {}", caller.token().await))
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body)
            .send()
            .await
            .unwrap();
        let created = Answer::of(res).await;
        assert_eq!(created.status, 200, "{}", created.text);
        let log = &created.json;
        assert_eq!(log["callTitle"], "New Call");
        assert_eq!(log["callStatus"], "Started");
        assert_eq!(log["anonymousJoinAllow"], false);
        assert!(log["id"].as_i64().unwrap() > 0);
        assert_eq!(log["creatorContact"]["userId"], "callertest1");
        assert_eq!(log["invitedContacts"][0]["email"], "test@test.de");
        assert_eq!(log["invitedContacts"][0]["phoneNumber"], "");
        let call_id: uuid::Uuid = log["callId"].as_str().unwrap().parse().unwrap();

        tester.rtc().join_call(call_id).await.unwrap();
        let log = caller.rtc().get_call_log_by_id(call_id).await.unwrap();
        assert_eq!(events(&log), vec![ev(Created, "callertest1"), ev(Join, "callertest1"), ev(Join, "tester")]);
        let ids: Vec<i64> = log.call_events.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "event ids grow: {ids:?}");
        assert_eq!((log.call_events[1].contact.id, log.call_events[2].contact.id), (1, 2));
    }

    async fn create_answers_the_seed_call_log_shape(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let body = format!(
            r#"{{"callTitle":"Test Call","callReason":"SERVICE_REQUEST","callType":"SFU","invitedContacts":[{{"displayName":"Bob","domain":"ubimax","email":"b@test.de","phoneNumber":"","userDbId":{},"userId":"bob"}}],"invitedTeams":[],"joinAnonymousAllowed":true,"informOthersDirectly":true}}"#,
            b.id()
        );
        let r = app.raw("POST", "/rtc/createCall", Some(&a.token().await), Some(&body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = &r.json;
        for key in ["id", "callId", "callTitle", "callReason", "callType", "callStatus", "anonymousJoinAllow", "creatorContact", "invitedContacts", "invitedTeams", "callEvents", "createdAt"] {
            assert!(v.get(key).is_some(), "CallLog has {key}");
        }
        assert_eq!(v["anonymousJoinAllow"], true);
        assert!(v.get("joinAnonymousAllowed").is_none());
        assert_eq!(v["callReason"], "SERVICE_REQUEST");
        assert_eq!(v["invitedContacts"][0]["displayName"], "Bob");
        assert_eq!(v["invitedContacts"][0]["id"], 2);
        assert_eq!(v["callEvents"][0]["type"], "Created");
        assert_eq!(v["callEvents"][0]["contact"]["id"], 1);
        assert!(v["createdAt"].as_str().unwrap().ends_with('Z'));
    }

    async fn invitees_by_user_id_by_user_db_id_and_by_address_resolve_in_their_order(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let c = app.user("carol", &[Role::User]).await;
        app.user_in("elsewhere", "dave", &[Role::User]).await;
        let dave = app.user("dave", &[Role::User]).await;
        let eve = app.user("eve", &[Role::User]).await;
        let body = format!(
            r#"{{"callTitle":"T","callType":"SFU","invitedContacts":[{{"userId":"carol"}},{{"email":"guest@example.com"}},{{"userDbId":{}}},{{"userId":"dave","domain":"ubimax"}},{{"userId":"nobody-here","userDbId":{}}}]}}"#,
            b.id(),
            eve.id()
        );
        let r = app.raw("POST", "/rtc/createCall", Some(&a.token().await), Some(&body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let invited: Vec<(serde_json::Value, serde_json::Value)> = r.json["invitedContacts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["userDbId"].clone(), c["userId"].clone()))
            .collect();
        // dave of this domain, not of "elsewhere"; a userDbId wins over a userId beside it.
        assert_eq!(
            invited,
            vec![
                (c.id().into(), "carol".into()),
                (serde_json::Value::Null, "".into()),
                (b.id().into(), "bob".into()),
                (dave.id().into(), "dave".into()),
                (eve.id().into(), "eve".into()),
            ]
        );
    }

    async fn decline_by_the_only_invitee_ends_the_call(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&b])).await.unwrap();
        let log = b.rtc().decline_call(call.call_id).await.unwrap();
        assert_eq!(events(&log)[2..], [ev(Declined, "bob"), ev(Leave, "alice"), ev(Ended, "alice")]);
        assert_eq!(log.call_status, CallStatus::Ended);
        assert!(log.ended_at.is_some());
    }

    async fn leaving_a_mesh_call_ends_it(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&b])).await.unwrap();
        b.rtc().join_call(call.call_id).await.unwrap();
        let log = a.rtc().leave_call(call.call_id).await.unwrap();
        assert_eq!(events(&log)[3..], [ev(Leave, "alice"), ev(Leave, "bob"), ev(Ended, "alice")]);
        let err = b.rtc().join_call(call.call_id).await.unwrap_err();
        assert_eq!(err.status(), Some(409), "an ended call takes no join");
    }

    async fn sfu_call_ends_with_its_last_participant(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let c = app.user("carol", &[Role::User]).await;
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&b, &c])).await.unwrap();
        b.rtc().join_call(call.call_id).await.unwrap();
        c.rtc().join_call(call.call_id).await.unwrap();
        assert_eq!(a.rtc().leave_call(call.call_id).await.unwrap().call_status, CallStatus::Started);
        assert_eq!(b.rtc().leave_call(call.call_id).await.unwrap().call_status, CallStatus::Started);
        let log = c.rtc().leave_call(call.call_id).await.unwrap();
        assert_eq!(log.call_status, CallStatus::Ended);
        assert_eq!(events(&log).last(), Some(&ev(Ended, "carol")));
        let again = c.rtc().leave_call(call.call_id).await.unwrap_err();
        assert_eq!(again.status(), Some(409));
    }

    async fn end_call_is_for_the_creator_and_writes_leaves_then_ended(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&b])).await.unwrap();
        b.rtc().join_call(call.call_id).await.unwrap();
        let err = b.rtc().end_call(call.call_id).await.unwrap_err();
        assert_eq!(err.status(), Some(403));
        let log = a.rtc().end_call(call.call_id).await.unwrap();
        assert_eq!(events(&log)[3..], [ev(Leave, "alice"), ev(Leave, "bob"), ev(Ended, "alice")]);
    }

    async fn joining_twice_writes_one_join(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&b])).await.unwrap();
        b.rtc().join_call(call.call_id).await.unwrap();
        let again = b.rtc().join_call(call.call_id).await.unwrap();
        assert_eq!(again.call_log.call_events.len(), 3);
        assert_eq!(again.media.call_type, CallType::Sfu);
        assert!(again.media.signaling_url.ends_with("/ws"));
    }

    async fn invite_contacts_writes_invited_for_new_people_and_teams(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let c = app.user("carol", &[Role::User]).await;
        let d = app.user("dave", &[Role::User]).await;
        let (team, _) = app.server.app.store.create_team(&Domain::parse("d", "ubimax").unwrap(), &TeamName::parse("n", "Experts").unwrap(), &[UserId::parse("u", "dave").unwrap(), UserId::parse("u", "carol").unwrap()]).await.unwrap();
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&b])).await.unwrap();
        let body = InviteRequest {
            invited_contacts: vec![c.contact(), b.contact()],
            invited_teams: vec![TeamInput { id: Some(team.id), ..Default::default() }],
        };
        let log = a.rtc().invite_contacts(call.call_id, &body).await.unwrap();
        assert_eq!(events(&log)[2..], [ev(Invited, "carol"), ev(Invited, "dave")]);
        assert_eq!(log.invited_contacts.len(), 3);
        assert_eq!(log.invited_teams, vec![team]);
        // The invitee sees the call now.
        d.rtc().get_call_log_by_id(call.call_id).await.unwrap();
    }

    async fn teams_are_invited_as_their_members(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let c = app.user("carol", &[Role::User]).await;
        app.server.app.store.create_team(&Domain::parse("d", "ubimax").unwrap(), &TeamName::parse("n", "Experts").unwrap(), &[UserId::parse("u", "bob").unwrap(), UserId::parse("u", "carol").unwrap()]).await.unwrap();
        let mut req = call_request(CallType::Sfu, &[&b]);
        req.invited_teams = vec![TeamInput { name: Some("Experts".into()), ..Default::default() }];
        let log = a.rtc().create_call_for_contacts(&req).await.unwrap();
        let invited: Vec<_> = log.invited_contacts.iter().map(|c| c.user_id.clone().unwrap()).collect();
        assert_eq!(invited, ["bob", "carol"]);
        assert_eq!(log.invited_teams[0].name, "Experts");
        c.rtc().join_call(log.call_id).await.unwrap();
    }

    async fn external_contacts_are_listed_without_an_account(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let body = r#"{"callTitle":"Visit","callType":"SFU","callReason":"STANDARD","invitedContacts":[{"displayName":"Guest","email":"guest@example.com","phoneNumber":"+49 176 1234567","userId":"","userDbId":null}]}"#;
        let r = app.raw("POST", "/rtc/createCall", Some(&a.token().await), Some(body)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["invitedContacts"][0]["userDbId"], serde_json::Value::Null);
        assert_eq!(r.json["invitedContacts"][0]["userId"], "");
        assert_eq!(r.json["invitedContacts"][0]["phoneNumber"], "+491761234567");
    }

    async fn call_logs_page_newest_first_and_filter_by_status(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let c = app.user("carol", &[Role::User]).await;
        let mut ids = Vec::new();
        for i in 0..5 {
            let mut req = call_request(CallType::Sfu, &[&b]);
            req.call_title = format!("call {i}");
            ids.push(a.rtc().create_call_for_contacts(&req).await.unwrap().call_id);
        }
        a.rtc().end_call(ids[0]).await.unwrap();
        let page = b.rtc().get_call_logs(&CallLogsQuery { page: Some(0), size: Some(2), status: None }).await.unwrap();
        assert_eq!(page.total_elements, 5);
        assert_eq!((page.page, page.size), (0, 2));
        assert_eq!(page.content.iter().map(|c| c.call_id).collect::<Vec<_>>(), vec![ids[4], ids[3]]);
        let last = b.rtc().get_call_logs(&CallLogsQuery { page: Some(2), size: Some(2), status: None }).await.unwrap();
        assert_eq!(last.content.len(), 1);
        assert_eq!(last.content[0].call_id, ids[0]);
        let ended = b.rtc().get_call_logs(&CallLogsQuery { status: Some(CallStatus::Ended), ..Default::default() }).await.unwrap();
        assert_eq!(ended.total_elements, 1);
        let none = c.rtc().get_call_logs(&Default::default()).await.unwrap();
        assert_eq!(none.total_elements, 0, "carol takes part in none");
    }

    async fn call_ids_are_uuids_that_grow_in_the_order_calls_are_created(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let mut ids = Vec::new();
        for _ in 0..5 {
            let call = a.rtc().create_call_for_contacts(&call_request(CallType::Mesh, &[&b])).await.unwrap();
            ids.push(call.call_id);
            // Ids made within one millisecond are ordered by their random part.
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        assert!(ids.iter().all(|id| id.get_version_num() == 7), "{ids:?}");
        let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]), "ids as stored (text) grow: {texts:?}");
        let created = a.rtc().get_call_log_by_id(ids[0]).await.unwrap().created_at;
        let (secs, nanos) = ids[0].get_timestamp().expect("a v7 id carries its time").to_unix();
        let at = chrono::DateTime::from_timestamp(secs as i64, nanos).unwrap();
        assert!((created - at).num_milliseconds().abs() < 5_000, "id time {at}, created {created}");
    }

    async fn calls_are_visible_to_participants_and_domain_admins_only(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let c = app.user("carol", &[Role::User]).await;
        let admin = app.user("admin", &[Role::Admin]).await;
        let foreign_admin = app.user_in("elsewhere", "boss", &[Role::Admin]).await;
        let call = a.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&b])).await.unwrap();
        b.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        admin.rtc().get_call_log_by_id(call.call_id).await.unwrap();
        for outsider in [&c, &foreign_admin] {
            let r = app.raw("GET", &format!("/rtc/getCallLogById?callId={}", call.call_id), Some(&outsider.token().await), None).await;
            r.assert_problem(404, &call.call_id.to_string());
            let err = outsider.rtc().join_call(call.call_id).await.unwrap_err();
            assert_eq!(err.status(), Some(404));
        }
        // An unknown call reads the same as a hidden one.
        let unknown = uuid::Uuid::new_v4();
        let r = app.raw("GET", &format!("/rtc/getCallLogById?callId={unknown}"), Some(&c.token().await), None).await;
        r.assert_problem(404, "visible to you");
    }

    async fn a_call_log_read_again_is_the_same_json_until_the_call_changes(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.gauge_refresh = std::time::Duration::from_millis(100)).await;
        let a = app.user("alice", &[Role::User]).await;
        let b = app.user("bob", &[Role::User]).await;
        let create = serde_json::to_string(&call_request(CallType::Mesh, &[&b])).unwrap();
        let created = app.raw("POST", "/rtc/createCall", Some(&a.token().await), Some(&create)).await;
        assert_eq!(created.status, 200, "{}", created.text);
        let call_id = created.json["callId"].as_str().unwrap().to_owned();
        let path = format!("/rtc/getCallLogById?callId={call_id}");
        let first = app.raw("GET", &path, Some(&a.token().await), None).await;
        let again = app.raw("GET", &path, Some(&b.token().await), None).await;
        for read in [&first, &again] {
            assert_eq!(read.status, 200, "{}", read.text);
            assert_eq!(read.headers["content-type"], "application/json");
            assert_eq!(read.json, created.json, "a read differs from createCall's answer");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let kept = metric(&app.url, "callhub_call_logs_kept_bytes").await;
        assert_eq!(kept, first.text.len() as f64, "the node keeps the one log read");
        // Each change shows in the next read, the one after the rendering was kept.
        b.rtc().join_call(call_id.parse().unwrap()).await.unwrap();
        let joined = app.raw("GET", &path, Some(&a.token().await), None).await;
        assert_eq!(joined.json["callEvents"].as_array().unwrap().len(), created.json["callEvents"].as_array().unwrap().len() + 1);
        b.rtc().leave_call(call_id.parse().unwrap()).await.unwrap();
        let ended = a.rtc().get_call_log_by_id(call_id.parse().unwrap()).await.unwrap();
        assert_eq!(ended.call_status, CallStatus::Ended);
        assert_eq!(events(&ended).last().map(|e| e.0), Some(Ended), "{:?}", events(&ended));
    }

    async fn ice_servers_carry_turn_rest_credentials(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| {
            c.turn_urls = vec!["turn:turn.example.org:3478?transport=udp".into()];
            c.turn_secret = Some("s3cret".into());
        })
        .await;
        let a = app.user("alice", &[Role::User]).await;
        let ice = a.rtc().ice_servers().await.unwrap();
        assert_eq!(ice.ttl, 86400);
        let server = &ice.ice_servers[0];
        let username = server.username.clone().unwrap();
        assert!(username.ends_with(&format!(":{}", a.id())));
        use base64::Engine;
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"s3cret").unwrap();
        mac.update(username.as_bytes());
        let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(server.credential.as_deref(), Some(expected.as_str()));
    }

    async fn cors_preflight_names_authorization_for_configured_origins(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.cors_origins = vec!["https://app.example.org".into()]).await;
        let res = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}/rtc/createCall", app.url))
            .header("origin", "https://app.example.org")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type")
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], "https://app.example.org");
        assert!(h["access-control-allow-headers"].to_str().unwrap().contains("authorization"));
        let other = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{}/rtc/createCall", app.url))
            .header("origin", "https://evil.example.com")
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert!(other.headers().get("access-control-allow-origin").is_none());
    }
}
