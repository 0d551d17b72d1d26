//! The REST API end to end: a real server process driven through the typed client and
//! raw HTTP.

mod common;

use std::time::Duration;

use common::{ADMIN_PASSWORD, ServerOptions, TestServer};
use futures_util::StreamExt;
use roost_api::auth::AuthMethod;
use roost_api::events::EventFilter;
use roost_api::operations::OperationStatus;
use roost_api::tokens::{CreateTokenRequest, Scope};
use roost_api::{ErrorCode, ListParams};
use roost_client::Client;

fn code(err: &roost_client::ClientError) -> ErrorCode {
    err.body().map(|b| b.code).unwrap_or(ErrorCode::Unknown)
}

fn token_req(name: &str, scope: Scope) -> CreateTokenRequest {
    CreateTokenRequest { name: name.into(), scope: Some(scope), ..Default::default() }
}

#[tokio::test]
async fn only_health_login_and_the_console_are_anonymous() {
    let server = TestServer::start();
    let http = common::http();
    for path in ["/health/live", "/health/ready"] {
        let r = http.get(format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let ready: serde_json::Value =
        http.get(format!("{}/health/ready", server.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["checks"]["store"], "ok");
    assert_eq!(ready["checks"]["migrations"], "ok");

    for (method, path) in [
        ("GET", "/v1/tokens"),
        ("POST", "/v1/tokens"),
        ("GET", "/v1/tokens/ci"),
        ("DELETE", "/v1/tokens/ci"),
        ("GET", "/v1/auth/whoami"),
        ("POST", "/v1/auth/logout"),
        ("GET", "/v1/operations"),
        ("GET", "/v1/operations/op-aaaaaaaaaaaa"),
        ("GET", "/v1/events"),
        ("POST", "/v1/system/backups"),
        ("GET", "/v1/openapi.json"),
        ("GET", "/metrics"),
    ] {
        let r = http.request(method.parse().unwrap(), format!("{}{path}", server.url)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{method} {path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"roost\"");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
    }
    let console = http.get(format!("{}/instances/web", server.url)).send().await.unwrap();
    assert_eq!(console.status(), 200);
    assert!(console.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(console.headers().contains_key("content-security-policy"));
}

#[tokio::test]
async fn login_whoami_logout() {
    let server = TestServer::start();
    let anon = server.anonymous();
    let err = anon.login("admin", "wrong password").await.unwrap_err();
    assert_eq!((err.status().unwrap().as_u16(), code(&err)), (401, ErrorCode::Unauthorized));
    assert_eq!(err.body().unwrap().message, "invalid username or password");
    let err = anon.login("nobody", ADMIN_PASSWORD).await.unwrap_err();
    assert_eq!(err.body().unwrap().message, "invalid username or password", "no hint that the user does not exist");

    let session = anon.login("admin", ADMIN_PASSWORD).await.unwrap();
    assert!(session.token.starts_with("rss_"));
    assert_eq!(session.user.name, "admin");
    let client = Client::new(&server.url, Some(session.token.clone())).unwrap();
    let me = client.whoami().await.unwrap();
    assert_eq!((me.user.name.as_str(), me.auth, me.scope), ("admin", AuthMethod::Session, Scope::Admin));
    assert!(me.expires_at.unwrap() > chrono::Utc::now() + chrono::Duration::hours(11));

    client.logout().await.unwrap();
    let err = client.whoami().await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::Unauthorized, "the session ends at once");
    let err = Client::new(&server.url, Some("garbage".into())).unwrap().whoami().await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::Unauthorized);
}

#[tokio::test]
async fn login_is_rate_limited_per_client_address() {
    let server = TestServer::start_with(ServerOptions {
        args: vec!["--login-rate-per-minute".into(), "3".into()],
        ..Default::default()
    });
    let http = common::http();
    let attempt = || {
        http.post(format!("{}/v1/auth/login", server.url))
            .json(&serde_json::json!({"username": "admin", "password": "nope"}))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(attempt().await.unwrap().status(), 401);
    }
    let limited = attempt().await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Even the right password waits: the limit is on attempts.
    let err = server.anonymous().login("admin", ADMIN_PASSWORD).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::RateLimited);
}

#[tokio::test]
async fn tokens_work_as_bearer_credentials_and_are_revocable() {
    let server = TestServer::start();
    let admin = server.admin().await;

    let created = admin.create_token(&token_req("ci", Scope::Write)).await.unwrap();
    assert!(created.secret.starts_with("rst_") && created.secret.len() == 36);
    assert!(created.secret.starts_with(&created.token.prefix));
    assert!(created.token.id.starts_with("tok-"));
    assert_eq!(created.token.expires_at, None);

    let ci = Client::new(&server.url, Some(created.secret.clone())).unwrap();
    let me = ci.whoami().await.unwrap();
    assert_eq!((me.auth, me.scope, me.token_name.as_deref()), (AuthMethod::Token, Scope::Write, Some("ci")));

    let by_name = admin.get_token("ci").await.unwrap();
    let by_id = admin.get_token(&created.token.id).await.unwrap();
    assert_eq!(by_name.id, by_id.id);
    assert!(by_name.last_used_at.is_some(), "use is recorded");

    let err = admin.create_token(&token_req("ci", Scope::Read)).await.unwrap_err();
    assert_eq!((err.status().unwrap().as_u16(), code(&err)), (409, ErrorCode::Conflict));
    assert_eq!(err.body().unwrap().message, "a token named 'ci' already exists");

    // A write token cannot mint an admin token.
    let err = ci.create_token(&token_req("escalate", Scope::Admin)).await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::ValidationFailed);
    assert_eq!(err.body().unwrap().details[0].field, "scope");

    // A read token reads but never writes.
    let read = admin.create_token(&token_req("reader", Scope::Read)).await.unwrap();
    let reader = Client::new(&server.url, Some(read.secret)).unwrap();
    assert_eq!(reader.list_tokens(&ListParams::default()).await.unwrap().items.len(), 2);
    let err = reader.create_token(&token_req("more", Scope::Read)).await.unwrap_err();
    assert_eq!((err.status().unwrap().as_u16(), code(&err)), (403, ErrorCode::Forbidden));
    let err = reader.delete_token("ci").await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::Forbidden);
    let err = reader.create_backup().await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::Forbidden);

    // Validation lists every bad field.
    let bad = CreateTokenRequest { name: "Bad Name".into(), expires_in: Some("soon".into()), ..Default::default() };
    let err = admin.create_token(&bad).await.unwrap_err();
    let fields: Vec<_> = err.body().unwrap().details.iter().map(|d| d.field.as_str()).collect();
    assert_eq!((err.status().unwrap().as_u16(), fields), (400, vec!["name", "expires_in"]));

    admin.delete_token("ci").await.unwrap();
    let err = ci.whoami().await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::Unauthorized, "a deleted token stops working at once");
    let err = admin.get_token("ci").await.unwrap_err();
    assert_eq!((code(&err), err.body().unwrap().message.as_str()), (ErrorCode::NotFound, "token 'ci' not found"));
    let err = admin.delete_token("ci").await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::NotFound);
}

#[tokio::test]
async fn tokens_expire() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(3000);
    let req = CreateTokenRequest { name: "brief".into(), expires_at: Some(soon), ..Default::default() };
    let created = admin.create_token(&req).await.unwrap();
    let client = Client::new(&server.url, Some(created.secret)).unwrap();
    client.whoami().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let err = client.whoami().await.unwrap_err();
    assert_eq!(code(&err), ErrorCode::Unauthorized);
    assert!(err.body().unwrap().message.starts_with("token 'brief' expired at "), "{err}");

    let past = CreateTokenRequest { name: "past".into(), expires_at: Some(chrono::Utc::now()), ..Default::default() };
    assert_eq!(code(&admin.create_token(&past).await.unwrap_err()), ErrorCode::ValidationFailed);
    let d = CreateTokenRequest { name: "month".into(), expires_in: Some("30d".into()), ..Default::default() };
    let month = admin.create_token(&d).await.unwrap().token.expires_at.unwrap();
    let expected = chrono::Utc::now() + chrono::Duration::days(30);
    assert!((month - expected).num_seconds().abs() < 60);
}

#[tokio::test]
async fn lists_paginate_sort_and_filter() {
    let server = TestServer::start();
    let admin = server.admin().await;
    for name in ["b-3", "a-1", "c-7", "a-2", "b-4", "c-6", "x-9"] {
        admin.create_token(&token_req(name, Scope::Read)).await.unwrap();
    }
    let mut params = ListParams { limit: Some(3), ..Default::default() };
    let mut pages = Vec::new();
    loop {
        let page = admin.list_tokens(&params).await.unwrap();
        pages.push(page.items.iter().map(|t| t.name.clone()).collect::<Vec<_>>());
        match page.next_cursor {
            Some(c) => params.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(pages.concat(), ["x-9", "c-6", "b-4", "a-2", "c-7", "a-1", "b-3"], "newest first by default");

    let sorted = admin.list_tokens(&ListParams { sort: Some("name".into()), ..Default::default() }).await.unwrap();
    let names: Vec<_> = sorted.items.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a-1", "a-2", "b-3", "b-4", "c-6", "c-7", "x-9"]);
    let filtered = admin
        .list_tokens(&ListParams { name: Some("c-*".into()), sort: Some("-name".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(filtered.items.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["c-7", "c-6"]);

    let http = common::http();
    for (query, field) in [("limit=0", "limit"), ("sort=size", "sort"), ("cursor=zzz", "cursor")] {
        let r = http
            .get(format!("{}/v1/tokens?{query}", server.url))
            .bearer_auth(admin.token().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{query}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["details"][0]["field"], field, "{query}");
    }
    let r = http
        .get(format!("{}/v1/tokens?limit=abc", server.url))
        .bearer_auth(admin.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"), "{body}");
}

#[tokio::test]
async fn errors_are_json_with_request_ids_and_never_500_for_bad_input() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let token = admin.token().unwrap().to_string();
    let http = common::http();
    let url = |p: &str| format!("{}{p}", server.url);

    let r = http
        .get(url("/v1/nothing-here"))
        .bearer_auth(&token)
        .header("x-request-id", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], "my-trace-42");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert_eq!(body["error"]["request_id"], "my-trace-42");

    // A request id that is not plain is replaced, never echoed.
    let r = http.get(url("/health/live")).header("x-request-id", "bad id; with spaces").send().await.unwrap();
    assert!(r.headers()["x-request-id"].to_str().unwrap().starts_with("req-"));

    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            http.post(url("/v1/tokens"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"name\": "),
            400,
            "invalid_request",
        ),
        (
            http.post(url("/v1/tokens")).bearer_auth(&token).json(&serde_json::json!({"scope": "read"})),
            400,
            "validation_failed",
        ),
        (
            http.post(url("/v1/tokens")).bearer_auth(&token).json(&serde_json::json!({"name": "x", "scope": "root"})),
            400,
            "validation_failed",
        ),
        (http.post(url("/v1/tokens")).bearer_auth(&token).json(&serde_json::json!([1, 2])), 400, "validation_failed"),
        (http.post(url("/v1/tokens")).bearer_auth(&token).body("name=x"), 415, "unsupported_media_type"),
        (http.patch(url("/v1/tokens")).bearer_auth(&token), 405, "method_not_allowed"),
        (http.get(url("/v1/operations/op-doesnotexist")).bearer_auth(&token), 404, "not_found"),
        (http.get(url("/v1/operations/x?wait=forever")).bearer_auth(&token), 400, "invalid_request"),
        (http.get(url("/v1/tokens")).header("authorization", "Basic YWRtaW46eA=="), 401, "unauthorized"),
        (http.get(url("/v1/tokens")).bearer_auth("rst_not-a-real-token"), 401, "unauthorized"),
        (http.post(url("/v1/auth/login")).json(&serde_json::json!({"username": "admin"})), 400, "validation_failed"),
    ];
    for (i, (req, status, expected)) in cases.into_iter().enumerate() {
        let r = req.send().await.unwrap();
        let got = r.status().as_u16();
        let request_id = r.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
        let body: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("case {i}: not JSON: {e}"));
        assert_eq!((got, body["error"]["code"].as_str().unwrap()), (status, expected), "case {i}: {body}");
        assert_eq!(body["error"]["request_id"].as_str(), request_id.as_deref(), "case {i}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // Too large: refused from the Content-Length alone, before the body is read.
    let raw = oversized_request(&server.url, &token).await;
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(raw.contains("\"code\":\"payload_too_large\""), "{raw}");

    let missing = http
        .post(url("/v1/tokens"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"scope": "read"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("missing field `name`"), "{body}");
}

#[tokio::test]
async fn arrays_nul_bytes_and_bad_path_parameters_are_json_400s() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let token = admin.token().unwrap().to_string();
    let http = common::http();
    let url = |p: &str| format!("{}{p}", server.url);
    let me = admin
        .update_user(
            "me",
            &roost_api::users::UpdateUserRequest { display_name: Some(Some("Ada".into())), ..Default::default() },
        )
        .await
        .unwrap();
    assert_eq!(me.user.display_name.as_deref(), Some("Ada"));

    let cases: Vec<(reqwest::RequestBuilder, &str)> = vec![
        // serde would fill the struct from the array's elements in order: null, null.
        (
            http.patch(url("/v1/users/me")).bearer_auth(&token).json(&serde_json::json!([null, null])),
            "validation_failed",
        ),
        (
            http.patch(url("/v1/projects/default")).bearer_auth(&token).json(&serde_json::json!(["x"])),
            "validation_failed",
        ),
        // A pid or a port out of range in the path.
        (http.get(url("/v1/sandboxes/sbx-x/processes/99999999999/attach")).bearer_auth(&token), "invalid_request"),
        (http.post(url("/v1/sandboxes/sbx-x/processes/-1/signal")).bearer_auth(&token), "invalid_request"),
        (http.get(url("/v1/sandboxes/sbx-x/urls/70000")).bearer_auth(&token), "invalid_request"),
        // An instance's files need a path, without NUL bytes.
        (http.get(url("/v1/instances/web/files?path=")).bearer_auth(&token), "validation_failed"),
        (http.get(url("/v1/instances/web/files?path=/etc%00")).bearer_auth(&token), "validation_failed"),
        (http.put(url("/v1/instances/web/files?path=")).bearer_auth(&token).body("x"), "validation_failed"),
    ];
    for (i, (req, expected)) in cases.into_iter().enumerate() {
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let kind = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let body: serde_json::Value = r.json().await.unwrap_or_else(|e| panic!("case {i}: not JSON ({kind}): {e}"));
        assert!(kind.starts_with("application/json"), "case {i}: {kind}");
        assert_eq!((status, body["error"]["code"].as_str().unwrap()), (400, expected), "case {i}: {body}");
    }
    // Nothing was cleared by the array.
    assert_eq!(admin.get_user("me").await.unwrap().user.display_name.as_deref(), Some("Ada"));
}

#[tokio::test]
async fn internal_errors_keep_their_details_in_the_log() {
    let server = TestServer::start();
    let admin = server.admin().await;
    // The backups directory cannot be made: a file has its name.
    std::fs::write(server.data_path().join("backups"), b"in the way").unwrap();
    let op = admin.create_backup().await.unwrap();
    let op = admin.get_operation(&op.id, Some(Duration::from_secs(30))).await.unwrap();
    assert_eq!(op.status, OperationStatus::Failed, "{op:?}");
    let error = op.error.expect("the failure");
    let data_dir = server.data_path().display().to_string();
    assert_eq!(error.code, "internal");
    assert!(!error.message.contains(&data_dir) && !error.message.contains("backups"), "{}", error.message);
    assert!(error.message.contains("request id") || error.message.contains("server log"), "{}", error.message);
    // The log line has what happened, where.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.output().contains(&format!("{data_dir}/backups")) {
        assert!(std::time::Instant::now() < deadline, "the details are logged:\n{}", server.output());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn operations_long_poll_and_the_event_stream() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let mut events = Box::pin(admin.events(&EventFilter::default(), None).await.unwrap());

    let http = common::http();
    let r = http
        .post(format!("{}/v1/system/backups", server.url))
        .bearer_auth(admin.token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let op: roost_api::operations::Operation = r.json().await.unwrap();
    assert_eq!(location, format!("/v1/operations/{}", op.id));
    assert!(op.id.starts_with("op-"));

    let done = admin.get_operation(&op.id, Some(Duration::from_secs(30))).await.unwrap();
    assert_eq!(done.status, OperationStatus::Succeeded, "{done:?}");
    assert_eq!(done.progress, 100);
    let path = done.result.as_ref().unwrap()["path"].as_str().unwrap().to_string();
    assert!(path.starts_with(server.data_path().join("backups").to_str().unwrap()), "{path}");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), done.result.as_ref().unwrap()["bytes"].as_u64().unwrap());

    // The stream saw the operation move to its end.
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("succeeded") {
        let event =
            tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("an event").unwrap().unwrap();
        if event.resource_id == op.id {
            assert_eq!(event.kind, "operation.updated");
            statuses.push(event.data.unwrap()["status"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(statuses.first().map(String::as_str), Some("pending"));

    // Filters and resumption: only token events, and a reconnect replays what it missed.
    let mut tokens_only =
        Box::pin(admin.events(&EventFilter { kind: Some("token".into()), resource_id: None }, None).await.unwrap());
    let created = admin.create_token(&token_req("watched", Scope::Read)).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), tokens_only.next()).await.unwrap().unwrap().unwrap();
    assert_eq!((event.kind.as_str(), event.resource_id.as_str()), ("token.created", created.token.id.as_str()));
    assert!(event.data.unwrap().get("secret").is_none(), "events never carry secrets");
    admin.delete_token("watched").await.unwrap();
    let mut resumed = Box::pin(admin.events(&EventFilter::default(), Some(event.id)).await.unwrap());
    let replayed = tokio::time::timeout(Duration::from_secs(10), resumed.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(replayed.kind, "token.deleted");

    let listed = admin.list_operations(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items[0].id, op.id);
}

#[tokio::test]
async fn cookie_sessions_require_the_csrf_header_on_mutations() {
    let server = TestServer::start();
    let http = common::http();
    let r = http
        .post(format!("{}/v1/auth/login", server.url))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let session = cookies.iter().find(|c| c.starts_with("roost_session=")).expect("session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"), "{session}");
    let login: roost_api::auth::LoginResponse = r.json().await.unwrap();
    let cookie = format!("roost_session={}", login.token);

    let whoami = http.get(format!("{}/v1/auth/whoami", server.url)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(whoami.status(), 200);
    let body = serde_json::json!({"name": "from-console"});
    let forged =
        http.post(format!("{}/v1/tokens", server.url)).header("cookie", &cookie).json(&body).send().await.unwrap();
    assert_eq!(forged.status(), 403, "no CSRF header, no mutation");
    let wrong = http
        .post(format!("{}/v1/tokens", server.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", "csrf_wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let ok = http
        .post(format!("{}/v1/tokens", server.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &login.csrf_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
}

#[tokio::test]
async fn metrics_and_openapi_are_served_to_admins() {
    let server = TestServer::start();
    let admin = server.admin().await;
    admin.list_tokens(&ListParams::default()).await.unwrap();
    let text = admin.metrics().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("roost_http_requests_total{")
            && l.contains("method=\"GET\"")
            && l.contains("route=\"/v1/tokens\"")
            && l.contains("status=\"200\"")),
        "{text}"
    );
    assert!(text.contains("roost_http_request_duration_seconds_bucket{"), "latency histogram");

    let doc = admin.openapi().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/tokens"]["post"].is_object());
    let on_disk: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(doc, on_disk, "the served document is the checked-in one");
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let created = admin.create_token(&token_req("hidden", Scope::Write)).await.unwrap();
    let ci = Client::new(&server.url, Some(created.secret.clone())).unwrap();
    ci.whoami().await.unwrap();
    let _ = server.anonymous().login("admin", "a-wrong-password-123").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.output();
    for secret in [created.secret.as_str(), ADMIN_PASSWORD, admin.token().unwrap(), "a-wrong-password-123"] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
    assert!(log.contains("request_id"), "log lines carry request ids:\n{log}");
}

/// Sends headers announcing a 2 MiB JSON body, and no body; returns the raw response.
async fn oversized_request(base: &str, token: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/tokens HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        2 * 1024 * 1024
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response)).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn idempotency_keys_make_retries_safe() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let http = common::http();
    let post = |path: &str, key: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", server.url))
            .bearer_auth(admin.token().unwrap())
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = post("/v1/projects", "create-blue-1", serde_json::json!({"name": "blue"})).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    let retry = post("/v1/projects", "create-blue-1", serde_json::json!({"name": "blue"})).await.unwrap();
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    let retry: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(retry["id"], first["id"], "the retry gets the first response");
    let projects = admin.list_projects(&ListParams::default()).await.unwrap();
    assert_eq!(projects.items.iter().filter(|p| p.name == "blue").count(), 1, "created once");

    let other = post("/v1/projects", "create-blue-1", serde_json::json!({"name": "green"})).await.unwrap();
    assert_eq!(other.status(), 422, "the same key with another request is refused");
    // Failures are not remembered: the same key works once the cause is fixed.
    let taken = post("/v1/projects", "create-2", serde_json::json!({"name": "blue"})).await.unwrap();
    assert_eq!(taken.status(), 409);
    let fixed = post("/v1/projects", "create-2", serde_json::json!({"name": "blue"})).await.unwrap();
    assert_eq!(fixed.status(), 409, "still taken: run again, not replayed");
    assert!(fixed.headers().get("idempotent-replayed").is_none());
    // Never on responses that hold a secret.
    let token = post("/v1/tokens", "tok-1", serde_json::json!({"name": "ci"})).await.unwrap();
    assert_eq!(token.status(), 400);
    let body: serde_json::Value = token.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("Idempotency-Key is not accepted"), "{body}");
}

/// The next item of an event stream; a hang guard only (events arrive in milliseconds).
async fn next_event<S>(events: &mut S) -> Option<roost_client::Result<roost_api::events::Event>>
where
    S: futures_util::Stream<Item = roost_client::Result<roost_api::events::Event>> + Unpin,
{
    tokio::time::timeout(Duration::from_secs(30), events.next()).await.expect("the stream neither sent nor ended")
}

#[tokio::test]
async fn event_streams_end_with_their_credential_and_follow_membership() {
    let server = TestServer::start();
    let admin = server.admin().await;

    // A revoked token: its stream ends with the error a request would get, before
    // anything published after the revocation (here a new token of the same user).
    let watcher = admin.create_token(&token_req("watcher", Scope::Read)).await.unwrap();
    let client = Client::new(&server.url, Some(watcher.secret)).unwrap();
    let mut events = Box::pin(client.events(&EventFilter::default(), None).await.unwrap());
    admin.delete_token("watcher").await.unwrap();
    admin.create_token(&token_req("after", Scope::Read)).await.unwrap();
    let err = next_event(&mut events).await.expect("a last message").unwrap_err();
    assert_eq!(code(&err), ErrorCode::Unauthorized, "{err}");
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401));
    assert!(err.to_string().contains("revoked"), "{err}");
    assert!(next_event(&mut events).await.is_none(), "the stream ended");

    // A session that logs out (the CLI's `roost logout`).
    let session = server.anonymous().login("admin", ADMIN_PASSWORD).await.unwrap();
    let client = Client::new(&server.url, Some(session.token)).unwrap();
    let mut events = Box::pin(client.events(&EventFilter::default(), None).await.unwrap());
    client.logout().await.unwrap();
    admin.create_token(&token_req("after-logout", Scope::Read)).await.unwrap();
    let err = next_event(&mut events).await.expect("a last message").unwrap_err();
    assert_eq!(code(&err), ErrorCode::Unauthorized, "{err}");
    assert!(next_event(&mut events).await.is_none(), "the stream ended");

    // A member removed from a project stops receiving its events; the stream goes on.
    admin
        .create_project(&roost_api::projects::CreateProjectRequest { name: "team-a".into(), description: None })
        .await
        .unwrap();
    let alice = roost_api::users::CreateUserRequest {
        name: "alice".into(),
        role: Some(roost_api::auth::Role::Operator),
        password: Some("alice-password-1".into()),
        projects: Some(vec!["team-a".into()]),
        ..Default::default()
    };
    admin.create_user(&alice).await.unwrap();
    let session = server.anonymous().login("alice", "alice-password-1").await.unwrap();
    let alice = Client::new(&server.url, Some(session.token)).unwrap();
    let filter = EventFilter { kind: Some("bucket,token".into()), resource_id: None };
    let mut events = Box::pin(alice.events(&filter, None).await.unwrap());
    let bucket = |name: &str| roost_api::buckets::CreateBucketRequest {
        name: name.into(),
        project: Some("team-a".into()),
        public_read: None,
    };
    let one = admin.create_bucket(&bucket("team-a-one")).await.unwrap();
    let event = next_event(&mut events).await.unwrap().unwrap();
    assert_eq!((event.kind.as_str(), event.resource_id.as_str()), ("bucket.created", one.id.as_str()));
    admin.remove_member("team-a", "alice").await.unwrap();
    admin.create_bucket(&bucket("team-a-two")).await.unwrap();
    let mine = alice.create_token(&token_req("mine", Scope::Read)).await.unwrap();
    let event = next_event(&mut events).await.unwrap().unwrap();
    assert_eq!(
        (event.kind.as_str(), event.resource_id.as_str()),
        ("token.created", mine.token.id.as_str()),
        "the project's bucket was not sent to a former member"
    );
    // Added again, she sees the project's events again.
    admin.set_member("team-a", "alice", roost_api::auth::Role::Viewer).await.unwrap();
    let three = admin.create_bucket(&bucket("team-a-three")).await.unwrap();
    let event = next_event(&mut events).await.unwrap().unwrap();
    assert_eq!((event.kind.as_str(), event.resource_id.as_str()), ("bucket.created", three.id.as_str()));
}

/// The session cookie (and the CSRF one) a login sets, by name.
async fn login_cookies(server: &TestServer, forwarded_proto: Option<&str>) -> Vec<String> {
    let http = common::http();
    let mut req = http
        .post(format!("{}/v1/auth/login", server.url))
        .json(&serde_json::json!({"username": "admin", "password": ADMIN_PASSWORD}));
    if let Some(proto) = forwarded_proto {
        req = req.header("x-forwarded-proto", proto);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

fn secure(cookies: &[String]) -> Vec<bool> {
    cookies.iter().map(|c| c.split(';').any(|attr| attr.trim().eq_ignore_ascii_case("secure"))).collect()
}

/// Behind TLS the cookies are `Secure`: when `public_url` is https, or when a trusted
/// proxy (`trust_proxy`) says the request came over https. An untrusted
/// `X-Forwarded-Proto` changes nothing.
#[tokio::test]
async fn session_cookies_are_secure_behind_https() {
    let https = TestServer::start_with(ServerOptions {
        env: vec![("ROOST_PUBLIC_URL".into(), "https://roost.example.com".into())],
        ..Default::default()
    });
    let cookies = login_cookies(&https, None).await;
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert_eq!(secure(&cookies), [true, true], "{cookies:?}");

    let proxied = TestServer::start_with(ServerOptions {
        env: vec![("ROOST_TRUST_PROXY".into(), "on".into())],
        ..Default::default()
    });
    assert_eq!(secure(&login_cookies(&proxied, Some("https")).await), [true, true]);
    assert_eq!(secure(&login_cookies(&proxied, Some("http")).await), [false, false]);
    assert_eq!(secure(&login_cookies(&proxied, None).await), [false, false]);

    let plain = TestServer::start();
    assert_eq!(secure(&login_cookies(&plain, Some("https")).await), [false, false], "an untrusted header");
    assert_eq!(secure(&login_cookies(&plain, None).await), [false, false]);
}

/// Beside the per-address limit, each account takes 10 failed logins per 15 minutes;
/// then it answers 429 with Retry-After, the right password included, alike for names
/// that exist and names that do not. A successful login starts the count again.
#[tokio::test]
async fn login_failures_lock_the_account_for_a_while() {
    let server = TestServer::start_with(ServerOptions {
        args: vec!["--login-rate-per-minute".into(), "10000".into()],
        ..Default::default()
    });
    let admin = server.admin().await;
    for name in ["otto", "rita", "vera"] {
        let req = roost_api::users::CreateUserRequest {
            name: name.into(),
            password: Some(format!("{name}-password")),
            projects: Some(vec![]),
            ..Default::default()
        };
        admin.create_user(&req).await.unwrap();
    }
    let http = common::http();
    let attempt = |user: &str, password: &str| {
        http.post(format!("{}/v1/auth/login", server.url))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
    };
    let mut locked = Vec::new();
    for user in ["otto", "ghost"] {
        for i in 0..10 {
            assert_eq!(attempt(user, "wrong-password").await.unwrap().status(), 401, "{user} attempt {i}");
        }
        let refused = attempt(user, &format!("{user}-password")).await.unwrap();
        assert_eq!(refused.status(), 429, "{user}: the right password waits too");
        let retry: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=15 * 60).contains(&retry), "{retry}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "rate_limited");
        locked.push(body["error"]["message"].as_str().unwrap().to_string());
    }
    assert_eq!(locked[0], locked[1], "a locked account does not tell whether it exists");
    assert!(!locked[0].contains("otto"), "{}", locked[0]);
    // Other accounts are not affected.
    assert_eq!(attempt("vera", "vera-password").await.unwrap().status(), 200);
    // A success resets the count.
    for _ in 0..9 {
        assert_eq!(attempt("rita", "nope-nope").await.unwrap().status(), 401);
    }
    assert_eq!(attempt("rita", "rita-password").await.unwrap().status(), 200);
    for _ in 0..9 {
        assert_eq!(attempt("rita", "nope-nope").await.unwrap().status(), 401);
    }
    assert_eq!(attempt("rita", "rita-password").await.unwrap().status(), 200);
    // The lock is audited.
    let query =
        roost_api::audit::AuditQuery { action: Some("auth.login".into()), limit: Some(500), ..Default::default() };
    let audit = admin.list_audit(&query).await.unwrap();
    assert!(audit.items.iter().any(|e| e.result.contains("locked")), "no locked login in the audit log");
}

/// Every `/v1` response carries headers that keep a browser from sniffing, framing or
/// leaking it, whatever its status.
#[tokio::test]
async fn every_api_response_carries_security_headers() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let http = common::http();
    let token = admin.token().unwrap().to_string();
    for (path, auth) in
        [("/v1/auth/whoami", true), ("/v1/auth/whoami", false), ("/v1/nope", true), ("/v1/images", true)]
    {
        let mut req = http.get(format!("{}{path}", server.url));
        if auth {
            req = req.bearer_auth(&token);
        }
        let r = req.send().await.unwrap();
        let h = r.headers();
        assert_eq!(h.get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{path}");
        assert_eq!(h.get("referrer-policy").map(|v| v.to_str().unwrap()), Some("no-referrer"), "{path}");
        assert_eq!(h.get("x-frame-options").map(|v| v.to_str().unwrap()), Some("DENY"), "{path}");
        let csp = h.get("content-security-policy").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'") && csp.contains("sandbox"), "{path}: {csp}");
    }
    // The console keeps a policy that lets it run, and may not be framed either.
    let console = http.get(format!("{}/", server.url)).send().await.unwrap();
    let csp = console.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("sandbox"), "{csp}");
    assert_eq!(console.headers()["x-content-type-options"], "nosniff");
    assert_eq!(console.headers()["x-frame-options"], "DENY");
}
