//! Every bad input gets a 4xx problem that names it, and changes nothing.

use callhub_core::{CallType, Role};

use crate::helpers::*;

/// name, path, token, body, expected status, what the detail names.
type Case<'a> = (
    &'a str,
    String,
    Option<&'a str>,
    Option<String>,
    u16,
    &'a str,
);

backend_tests! {
    async fn bad_inputs_get_problems_naming_them_and_write_nothing(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let alice = app.user("alice", &[Role::User]).await;
        let bob = app.user("bob", &[Role::User]).await;
        let carol = app.user("carol", &[Role::User]).await;
        let broker = app.user("connector", &[Role::Broker]).await;
        let stranger = app.user_in("elsewhere", "stranger", &[Role::User]).await;
        let ended = alice.rtc().create_call_for_contacts(&call_request(CallType::Sfu, &[&bob])).await.unwrap();
        alice.rtc().end_call(ended.call_id).await.unwrap();
        let t = alice.token().await;
        let tb = broker.token().await;
        let b = bob.id();
        let valid = |extra: &str| format!(r#"{{"callTitle":"T","callType":"SFU","callReason":"STANDARD"{extra}}}"#);
        let big = format!(r#"{{"callTitle":"{}","callType":"SFU"}}"#, "x".repeat(1024 * 1024 + 10));
        let long_title = format!(r#"{{"callTitle":"{}","callType":"SFU"}}"#, "x".repeat(201));
        let cases: Vec<Case> = vec![
            ("malformed JSON", "/rtc/createCall".into(), Some(&t), Some(r#"{"callTitle": "#.into()), 400, "JSON"),
            ("JSON array for object", "/rtc/createCall".into(), Some(&t), Some("[1,2]".into()), 400, "JSON"),
            ("empty body", "/rtc/createCall".into(), Some(&t), Some(String::new()), 400, "empty"),
            ("unknown callType", "/rtc/createCall".into(), Some(&t), Some(r#"{"callTitle":"T","callType":"P2P"}"#.into()), 400, "callType"),
            ("unknown callReason", "/rtc/createCall".into(), Some(&t), Some(valid(r#","callReason":"URGENT""#).replace(r#""callReason":"STANDARD","#, "")), 400, "callReason"),
            ("missing callType", "/rtc/createCall".into(), Some(&t), Some(r#"{"callTitle":"T"}"#.into()), 400, "callType"),
            ("missing callTitle", "/rtc/createCall".into(), Some(&t), Some(r#"{"callType":"SFU"}"#.into()), 400, "callTitle"),
            ("blank callTitle", "/rtc/createCall".into(), Some(&t), Some(r#"{"callTitle":"  ","callType":"SFU"}"#.into()), 400, "callTitle"),
            ("long callTitle", "/rtc/createCall".into(), Some(&t), Some(long_title), 400, "callTitle"),
            ("userDbId of wrong type", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":[{"userDbId":"eight"}]"#)), 400, "invitedContacts[0].userDbId"),
            ("invitedContacts not a list", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":{"userDbId":1}"#)), 400, "invitedContacts"),
            ("joinAnonymousAllowed not a boolean", "/rtc/createCall".into(), Some(&t), Some(valid(r#","joinAnonymousAllowed":"yes""#)), 400, "joinAnonymousAllowed"),
            ("unknown userDbId", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":[{"userDbId":424242}]"#)), 400, "invitedContacts[0].userDbId"),
            ("userId of another domain", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":[{"userId":"stranger","domain":"elsewhere"}]"#)), 400, "invitedContacts[0].userId"),
            // The invitees are read together; the first in order that is bad is named.
            ("unknown userDbId after a known userId", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":[{"userId":"bob"},{"userDbId":424242},{"email":"x"}]"#)), 400, "invitedContacts[1].userDbId"),
            ("unknown userId before a bad email", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":[{"userId":"nobody"},{"email":"not-an-email"}]"#)), 400, "invitedContacts[0].userId"),
            ("userDbId of another domain", "/rtc/createCall".into(), Some(&t), Some(valid(&format!(r#","invitedContacts":[{{"userDbId":{b}}},{{"userDbId":{}}}]"#, stranger.id()))), 400, "invitedContacts[1].userDbId"),
            ("our userId asked in another domain", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":[{"userId":"bob"},{"userId":"bob","domain":"elsewhere"}]"#)), 400, "invitedContacts[1].userId"),
            ("contact with nothing", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":[{"displayName":"Who","phoneNumber":""}]"#)), 400, "invitedContacts[0]"),
            ("bad email", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":[{"email":"not-an-email"}]"#)), 400, "invitedContacts[0].email"),
            ("bad phone", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedContacts":[{"phoneNumber":"0176 123"}]"#)), 400, "invitedContacts[0].phoneNumber"),
            ("unknown team", "/rtc/createCall".into(), Some(&t), Some(valid(r#","invitedTeams":[{"name":"Nobody"}]"#)), 400, "invitedTeams[0]"),
            ("bad plannedDateTime", "/rtc/createCall".into(), Some(&t), Some(valid(r#","plannedDateTime":"next tuesday""#)), 400, "plannedDateTime"),
            ("MESH with two invitees", "/rtc/createCall".into(), Some(&t),
                Some(format!(r#"{{"callTitle":"T","callType":"MESH","invitedContacts":[{{"userDbId":{b}}},{{"userDbId":{}}}]}}"#, carol.id())), 400, "MESH"),
            ("creatorUser by a non-broker", "/rtc/createCall".into(), Some(&t), Some(valid(&format!(r#","creatorUser":{b}"#))), 403, "creatorUser"),
            ("unknown creatorUser", "/rtc/createCall".into(), Some(&tb), Some(valid(r#","creatorUser":999999"#)), 400, "creatorUser"),
            ("body over 1 MiB", "/rtc/createCall".into(), Some(&t), Some(big), 413, "1 MiB"),
            ("no token", "/rtc/createCall".into(), None, Some(valid("")), 401, "Authorization"),
            ("login without password", "/login".into(), None, Some(r#"{"username":"alice"}"#.into()), 400, "password"),
            ("refresh with a made-up token", "/refresh".into(), None, Some(r#"{"refreshToken":"made-up"}"#.into()), 401, "refresh token"),
            ("refresh with a number", "/refresh".into(), None, Some(r#"{"refreshToken":42}"#.into()), 400, "refreshToken"),
            ("join without callId", "/rtc/joinCall".into(), Some(&t), None, 400, "callId"),
            ("join with a bad UUID", "/rtc/joinCall?callId=842".into(), Some(&t), None, 400, "callId"),
            ("join an unknown call", format!("/rtc/joinCall?callId={}", uuid::Uuid::new_v4()), Some(&t), None, 404, "visible to you"),
            ("join an ended call", format!("/rtc/joinCall?callId={}", ended.call_id), Some(&t), None, 409, "ended"),
            ("leave without being in", format!("/rtc/leaveCall?callId={}", ended.call_id), Some(&t), None, 409, "ended"),
            ("invite with nobody", format!("/rtc/inviteContacts?callId={}", ended.call_id), Some(&t), Some("{}".into()), 400, "invitedContacts"),
            ("invite to an ended call", format!("/rtc/inviteContacts?callId={}", ended.call_id), Some(&t), Some(format!(r#"{{"invitedContacts":[{{"userDbId":{}}}]}}"#, carol.id())), 409, "ended"),
        ];
        assert!(cases.len() >= 20);
        for (name, path, token, body, status, needle) in &cases {
            let method = if path.starts_with("/rtc/get") { "GET" } else { "POST" };
            let a = app.raw(method, path, *token, body.as_deref()).await;
            assert_eq!(a.status, *status, "{name}: {}", a.text);
            a.assert_problem(*status, needle);
        }
        let gets: Vec<(&str, &str, u16, &str)> = vec![
            ("getCallLogById with a bad UUID", "/rtc/getCallLogById?callId=abc", 400, "callId"),
            ("getCallLogById without callId", "/rtc/getCallLogById", 400, "callId"),
            ("getCallLogs with an unknown status", "/rtc/getCallLogs?status=Ringing", 400, "status"),
            ("getCallLogs with size 0", "/rtc/getCallLogs?size=0", 400, "size"),
            ("getCallLogs with size 1000", "/rtc/getCallLogs?size=1000", 400, "size"),
            ("getCallLogs with a negative page", "/rtc/getCallLogs?page=-1", 400, "page"),
            ("an unknown route", "/rtc/makeCoffee", 404, "no such route"),
        ];
        for (name, path, status, needle) in gets {
            let a = app.raw("GET", path, Some(&t), None).await;
            assert_eq!(a.status, status, "{name}: {}", a.text);
            a.assert_problem(status, needle);
        }
        app.raw("DELETE", "/rtc/createCall", Some(&t), None).await.assert_problem(405, "method");
        // Nothing of the above wrote a call: only the one made for the test exists.
        for u in [&alice, &bob, &carol, &broker] {
            let page = u.rtc().get_call_logs(&Default::default()).await.unwrap();
            assert_eq!(page.total_elements, if u.id() == carol.id() || u.id() == broker.id() { 0 } else { 1 });
        }
        let log = alice.rtc().get_call_log_by_id(ended.call_id).await.unwrap();
        assert_eq!(events(&log).len(), 4, "Created, Join, Leave, Ended: the refused commands wrote no event");
    }
}
