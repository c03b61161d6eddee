use callhub_client::{Client, ClientError};
use callhub_core::Role;

use crate::helpers::*;

backend_tests! {
    async fn login_answers_tokens_and_the_user(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let u = app.user("tester", &[Role::User]).await;
        let a = app.raw("POST", "/login", None, Some(&format!(r#"{{"username":"tester","password":"{PASSWORD}","domain":"ubimax"}}"#))).await;
        assert_eq!(a.status, 200);
        assert_eq!(a.json["tokenType"], "Bearer");
        assert_eq!(a.json["expiresIn"], 900);
        assert_eq!(a.json["refreshExpiresIn"], 2592000);
        assert_eq!(a.json["user"]["userDbId"], u.id());
        assert_eq!(a.json["user"]["roles"][0], "user");
        assert!(a.json["accessToken"].as_str().unwrap().split('.').count() == 3);
    }

    async fn domain_may_be_omitted_only_when_the_username_is_unique(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        app.user_in("ubimax", "unique", &[Role::User]).await;
        app.user_in("ubimax", "twice", &[Role::User]).await;
        app.user_in("other", "twice", &[Role::User]).await;
        let c = Client::new(&app.url);
        c.login("unique", PASSWORD, None).await.unwrap();
        let err = c.login("twice", PASSWORD, None).await.unwrap_err();
        assert_eq!(err.status(), Some(401));
        c.login("twice", PASSWORD, Some("other")).await.unwrap();
    }

    async fn wrong_user_and_wrong_password_get_the_same_401(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        app.user("tester", &[Role::User]).await;
        let wrong_pw = app.raw("POST", "/login", None, Some(r#"{"username":"tester","password":"nope-nope","domain":"ubimax"}"#)).await;
        let no_user = app.raw("POST", "/login", None, Some(r#"{"username":"nobody","password":"nope-nope","domain":"ubimax"}"#)).await;
        wrong_pw.assert_problem(401, "wrong username or password");
        // The same answer but for each request's own id.
        let without_id = |mut v: serde_json::Value| {
            v.as_object_mut().unwrap().remove("requestId");
            v
        };
        assert_eq!(without_id(wrong_pw.json), without_id(no_user.json));
    }

    async fn refresh_rotates_and_a_reused_token_revokes_the_family(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let u = app.user("tester", &[Role::User]).await;
        let first = u.client.refresh_token().unwrap();
        u.client.refresh().await.unwrap();
        let second = u.client.refresh_token().unwrap();
        assert_ne!(first, second);
        u.rtc().get_call_logs(&Default::default()).await.unwrap();
        // A thief presents the spent token: 401, and the whole family is revoked.
        let reuse = app.raw("POST", "/refresh", None, Some(&format!(r#"{{"refreshToken":"{first}"}}"#))).await;
        reuse.assert_problem(401, "already used");
        let again = app.raw("POST", "/refresh", None, Some(&format!(r#"{{"refreshToken":"{second}"}}"#))).await;
        again.assert_problem(401, "revoked");
        let err = u.rtc().get_call_logs(&Default::default()).await.unwrap_err();
        assert_eq!(err.status(), Some(401), "access tokens of a revoked family stop working");
    }

    async fn logout_ends_the_session(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let u = app.user("tester", &[Role::User]).await;
        let token = u.token().await;
        let refresh = u.client.refresh_token().unwrap();
        u.client.logout().await.unwrap();
        let a = app.raw("GET", "/rtc/getCallLogs", Some(&token), None).await;
        a.assert_problem(401, "session has ended");
        let r = app.raw("POST", "/refresh", None, Some(&format!(r#"{{"refreshToken":"{refresh}"}}"#))).await;
        r.assert_problem(401, "revoked");
    }

    async fn failed_logins_are_rate_limited_per_account(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.login_failures_per_account = 3).await;
        app.user("tester", &[Role::User]).await;
        let bad = r#"{"username":"tester","password":"wrong-wrong","domain":"ubimax"}"#;
        for _ in 0..3 {
            app.raw("POST", "/login", None, Some(bad)).await.assert_problem(401, "wrong");
        }
        let limited = app.raw("POST", "/login", None, Some(bad)).await;
        limited.assert_problem(429, "too many");
        let retry: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry >= 1);
        // Even the right password waits: the limit is on the account.
        let good = format!(r#"{{"username":"tester","password":"{PASSWORD}","domain":"ubimax"}}"#);
        app.raw("POST", "/login", None, Some(&good)).await.assert_problem(429, "too many");
    }

    async fn logins_are_rate_limited_per_client_address(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.login_rate_per_ip = 4).await;
        for i in 0..4 {
            let body = format!(r#"{{"username":"u{i}","password":"whatever1"}}"#);
            app.raw("POST", "/login", None, Some(&body)).await.assert_problem(401, "wrong");
        }
        let a = app.raw("POST", "/login", None, Some(r#"{"username":"u9","password":"whatever1"}"#)).await;
        a.assert_problem(429, "too many");
        assert!(a.headers.contains_key("retry-after"));
    }

    async fn routes_need_a_valid_bearer_token(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        app.raw("GET", "/rtc/getCallLogs", None, None).await.assert_problem(401, "Authorization");
        app.raw("GET", "/rtc/getCallLogs", Some("not.a.jwt"), None).await.assert_problem(401, "invalid or expired");
        // alg: none with a plausible body.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIxIiwiZmFtIjoieCIsImlhdCI6MCwiZXhwIjo0MTAyNDQ0ODAwfQ.";
        app.raw("GET", "/rtc/getCallLogs", Some(none), None).await.assert_problem(401, "invalid or expired");
        let basic = reqwest::Client::new()
            .get(format!("{}/rtc/getCallLogs", app.url))
            .header("authorization", "Basic dGVzdDp0ZXN0")
            .send()
            .await
            .unwrap();
        Answer::of(basic).await.assert_problem(401, "Bearer");
    }

    async fn the_sdk_refreshes_before_the_access_token_expires(backend: Backend) {
        let app = TestApp::spawn_with(backend, |c| c.access_token_ttl = std::time::Duration::from_secs(1)).await;
        let u = app.user("tester", &[Role::User]).await;
        let before = u.client.refresh_token().unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        u.rtc().get_call_logs(&Default::default()).await.unwrap();
        assert_ne!(u.client.refresh_token().unwrap(), before, "the SDK refreshed by itself");
        let err = Client::new(&app.url).rtc().get_call_logs(&Default::default()).await.unwrap_err();
        assert!(matches!(err, ClientError::NotLoggedIn));
    }
}
