//! Users, roles, projects, quotas, project-restricted tokens, rate limits and the audit
//! log, end to end against a real server.

mod common;

use std::time::Duration;

use common::{ServerOptions, TestServer};
use roost_api::audit::AuditQuery;
use roost_api::auth::Role;
use roost_api::projects::{CreateProjectRequest, Quota};
use roost_api::tokens::{CreateTokenRequest, Scope};
use roost_api::users::{CreateUserRequest, UpdateUserRequest};
use roost_api::{ErrorCode, ListParams};
use roost_client::{Client, ClientError};

fn code(err: &ClientError) -> ErrorCode {
    err.body().map(|b| b.code).unwrap_or(ErrorCode::Unknown)
}

fn status(err: &ClientError) -> u16 {
    err.status().map(|s| s.as_u16()).unwrap_or(0)
}

/// Creates a user with a known password and returns a logged-in client.
async fn user(server: &TestServer, admin: &Client, name: &str, role: Role, projects: Option<Vec<&str>>) -> Client {
    let req = CreateUserRequest {
        name: name.into(),
        role: Some(role),
        password: Some(format!("{name}-password")),
        projects: projects.map(|p| p.into_iter().map(String::from).collect()),
        ..Default::default()
    };
    admin.create_user(&req).await.unwrap();
    let session = server.anonymous().login(name, &format!("{name}-password")).await.unwrap();
    Client::new(&server.url, Some(session.token)).unwrap()
}

#[tokio::test]
async fn admins_manage_users_and_everyone_manages_themselves() {
    let server = TestServer::start();
    let admin = server.admin().await;

    let created = admin
        .create_user(&CreateUserRequest { name: "alice".into(), role: Some(Role::Operator), ..Default::default() })
        .await
        .unwrap();
    let generated = created.password.expect("a one-time password");
    assert!(generated.len() >= 16);
    let session = server.anonymous().login("alice", &generated).await.unwrap();
    let alice = Client::new(&server.url, Some(session.token)).unwrap();
    assert_eq!(alice.whoami().await.unwrap().user.role, Role::Operator);

    let err = admin.create_user(&CreateUserRequest { name: "alice".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(status(&err), 409);
    let bad = CreateUserRequest {
        name: "Bob!".into(),
        email: Some("nope".into()),
        password: Some("short".into()),
        ..Default::default()
    };
    let err = admin.create_user(&bad).await.unwrap_err();
    let fields: Vec<_> = err.body().unwrap().details.iter().map(|d| d.field.clone()).collect();
    assert_eq!(fields, ["name", "email", "password"]);

    // Non-admins see only themselves, and nobody else exists for them.
    let page = alice.list_users(&ListParams::default()).await.unwrap();
    assert_eq!(page.items.iter().map(|u| u.user.name.as_str()).collect::<Vec<_>>(), ["alice"]);
    assert_eq!(status(&alice.get_user("admin").await.unwrap_err()), 404);
    assert_eq!(alice.get_user("me").await.unwrap().user.name, "alice");
    let err = alice.create_user(&CreateUserRequest { name: "mallory".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!((status(&err), code(&err)), (403, ErrorCode::Forbidden));

    // Own profile yes, own role no.
    let profile = UpdateUserRequest {
        display_name: Some(Some("Alice A.".into())),
        email: Some(Some("alice@example.com".into())),
        role: None,
    };
    let me = alice.update_user("me", &profile).await.unwrap();
    assert_eq!(
        (me.user.display_name.as_deref(), me.user.email.as_deref()),
        (Some("Alice A."), Some("alice@example.com"))
    );
    let promote = UpdateUserRequest { role: Some(Role::Admin), ..Default::default() };
    assert_eq!(status(&alice.update_user("me", &promote).await.unwrap_err()), 403);
    let clear = UpdateUserRequest { email: Some(None), ..Default::default() };
    assert_eq!(alice.update_user("me", &clear).await.unwrap().user.email, None);
    assert_eq!(
        admin
            .update_user("alice", &UpdateUserRequest { role: Some(Role::Viewer), ..Default::default() })
            .await
            .unwrap()
            .user
            .role,
        Role::Viewer
    );

    // The last admin stays.
    let err = admin
        .update_user("admin", &UpdateUserRequest { role: Some(Role::Operator), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(status(&err), 409);
    assert_eq!(status(&admin.set_user_disabled("admin", true).await.unwrap_err()), 409);
    assert_eq!(status(&admin.delete_user("admin").await.unwrap_err()), 409);

    admin.delete_user("alice").await.unwrap();
    assert_eq!(status(&alice.whoami().await.unwrap_err()), 401, "a deleted user's session ends");
    assert_eq!(status(&admin.get_user("alice").await.unwrap_err()), 404);
}

#[tokio::test]
async fn disabling_a_user_stops_sessions_and_tokens_at_once() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let bob = user(&server, &admin, "bob", Role::Operator, None).await;
    let secret =
        bob.create_token(&CreateTokenRequest { name: "ci".into(), ..Default::default() }).await.unwrap().secret;
    let bob_token = Client::new(&server.url, Some(secret)).unwrap();
    bob_token.whoami().await.unwrap();

    admin.set_user_disabled("bob", true).await.unwrap();
    assert_eq!(status(&bob.whoami().await.unwrap_err()), 401);
    assert_eq!(status(&bob_token.whoami().await.unwrap_err()), 401);
    let err = server.anonymous().login("bob", "bob-password").await.unwrap_err();
    assert_eq!(status(&err), 403);
    assert!(admin.get_user("bob").await.unwrap().disabled);

    admin.set_user_disabled("bob", false).await.unwrap();
    bob_token.whoami().await.expect("tokens work again once enabled");
    assert_eq!(status(&bob.whoami().await.unwrap_err()), 401, "ended sessions stay ended");
}

#[tokio::test]
async fn passwords_change_and_reset() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let carol = user(&server, &admin, "carol", Role::Viewer, None).await;
    let other =
        Client::new(&server.url, Some(server.anonymous().login("carol", "carol-password").await.unwrap().token))
            .unwrap();

    let err = carol.change_password("wrong", "new-password-1").await.unwrap_err();
    assert_eq!(err.body().unwrap().details[0].field, "current_password");
    let err = carol.change_password("carol-password", "short").await.unwrap_err();
    assert_eq!(err.body().unwrap().details[0].field, "new_password");
    carol.change_password("carol-password", "new-password-1").await.unwrap();
    carol.whoami().await.expect("the changing session continues");
    assert_eq!(status(&other.whoami().await.unwrap_err()), 401, "other sessions end");
    server.anonymous().login("carol", "new-password-1").await.unwrap();

    let reset = admin.reset_password("carol", None).await.unwrap();
    let generated = reset.password.unwrap();
    assert_eq!(status(&carol.whoami().await.unwrap_err()), 401);
    assert_eq!(status(&server.anonymous().login("carol", "new-password-1").await.unwrap_err()), 401);
    server.anonymous().login("carol", &generated).await.unwrap();
    assert_eq!(status(&other.reset_password("admin", None).await.unwrap_err()), 401);
}

#[tokio::test]
async fn projects_are_the_unit_of_tenancy() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let projects = admin.list_projects(&ListParams::default()).await.unwrap();
    assert_eq!(
        projects.items.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["default"],
        "exists from the first start"
    );

    for name in ["team-a", "team-b"] {
        admin.create_project(&CreateProjectRequest { name: name.into(), description: None }).await.unwrap();
    }
    let err =
        admin.create_project(&CreateProjectRequest { name: "team-a".into(), description: None }).await.unwrap_err();
    assert_eq!(status(&err), 409);
    let alice = user(&server, &admin, "alice", Role::Operator, Some(vec![])).await;
    let bob = user(&server, &admin, "bob", Role::Operator, Some(vec![])).await;
    let carol = user(&server, &admin, "carol", Role::Operator, Some(vec!["team-b"])).await;
    admin.set_member("team-a", "alice", Role::Operator).await.unwrap();
    admin.set_member("team-a", "bob", Role::Viewer).await.unwrap();
    assert_eq!(status(&admin.set_member("team-a", "bob", Role::Admin).await.unwrap_err()), 400);
    assert_eq!(status(&admin.set_member("team-a", "nobody", Role::Viewer).await.unwrap_err()), 404);

    let names = |page: roost_api::Page<roost_api::projects::Project>| {
        page.items.into_iter().map(|p| p.name).collect::<Vec<_>>()
    };
    assert_eq!(names(alice.list_projects(&ListParams::default()).await.unwrap()), ["team-a"]);
    assert_eq!(names(carol.list_projects(&ListParams::default()).await.unwrap()), ["team-b"]);
    assert_eq!(
        names(admin.list_projects(&ListParams { sort: Some("name".into()), ..Default::default() }).await.unwrap()),
        ["default", "team-a", "team-b"]
    );

    // An outsider gets 404 (no existence leak); a viewer sees but may not change.
    let err = carol.get_project("team-a").await.unwrap_err();
    assert_eq!((status(&err), err.body().unwrap().message.as_str()), (404, "project 'team-a' not found"));
    assert_eq!(status(&carol.members("team-a").await.unwrap_err()), 404);
    assert_eq!(status(&carol.usage("team-a").await.unwrap_err()), 404);
    bob.get_project("team-a").await.unwrap();
    let members = bob.members("team-a").await.unwrap();
    assert_eq!(
        members.iter().map(|m| (m.user_name.as_str(), m.role)).collect::<Vec<_>>(),
        [("alice", Role::Operator), ("bob", Role::Viewer)]
    );
    let quota = Quota { limits: [("instances".to_string(), Some(10))].into() };
    assert_eq!(status(&bob.set_quota("team-a", &quota).await.unwrap_err()), 403);
    assert_eq!(status(&alice.set_quota("team-a", &quota).await.unwrap_err()), 403, "quotas are set by admins");

    // Quotas and usage.
    let set =
        Quota { limits: [("instances".to_string(), Some(10)), ("memory_bytes".to_string(), Some(16 << 30))].into() };
    let q = admin.set_quota("team-a", &set).await.unwrap();
    assert_eq!(q.limits.get("instances"), Some(&Some(10)));
    let usage = alice.usage("team-a").await.unwrap();
    assert_eq!((usage.resources["instances"].used, usage.resources["instances"].limit), (0, Some(10)));
    assert_eq!(usage.resources["buckets"].limit, None);
    let unset = Quota { limits: [("instances".to_string(), None)].into() };
    let q = admin.set_quota("team-a", &unset).await.unwrap();
    assert_eq!((q.limits.get("instances"), q.limits.get("memory_bytes")), (None, Some(&Some(16 << 30))));
    let bad = Quota { limits: [("gpus".to_string(), Some(1)), ("vcpus".to_string(), Some(-1))].into() };
    let err = admin.set_quota("team-a", &bad).await.unwrap_err();
    assert_eq!(err.body().unwrap().details.len(), 2);

    admin.remove_member("team-a", "alice").await.unwrap();
    assert_eq!(status(&alice.get_project("team-a").await.unwrap_err()), 404, "membership ends at once");
    assert_eq!(status(&admin.delete_project("default").await.unwrap_err()), 409);
    admin.delete_project("team-b").await.unwrap();
    assert_eq!(status(&carol.get_project("team-b").await.unwrap_err()), 404);
}

#[tokio::test]
async fn tokens_can_be_restricted_to_one_project() {
    let server = TestServer::start();
    let admin = server.admin().await;
    admin.create_project(&CreateProjectRequest { name: "team-a".into(), description: None }).await.unwrap();
    let alice = user(&server, &admin, "alice", Role::Operator, Some(vec!["default", "team-a"])).await;

    let req = CreateTokenRequest {
        name: "deploy".into(),
        scope: Some(Scope::Write),
        project: Some("team-a".into()),
        ..Default::default()
    };
    let created = alice.create_token(&req).await.unwrap();
    let team_a = alice.get_project("team-a").await.unwrap();
    assert_eq!(created.token.project_id.as_deref(), Some(team_a.id.as_str()));
    let deploy = Client::new(&server.url, Some(created.secret)).unwrap();
    assert_eq!(deploy.whoami().await.unwrap().project_id.as_deref(), Some(team_a.id.as_str()));
    let listed = deploy.list_projects(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["team-a"]);
    assert_eq!(status(&deploy.get_project("default").await.unwrap_err()), 404);
    // Tokens it makes stay in its project.
    let child = deploy.create_token(&CreateTokenRequest { name: "child".into(), ..Default::default() }).await.unwrap();
    assert_eq!(child.token.project_id.as_deref(), Some(team_a.id.as_str()));
    let err = deploy
        .create_token(&CreateTokenRequest {
            name: "escape".into(),
            project: Some("default".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);

    // Not a member: no token for that project.
    admin.create_project(&CreateProjectRequest { name: "secret".into(), description: None }).await.unwrap();
    let err = alice
        .create_token(&CreateTokenRequest {
            name: "sneak".into(),
            project: Some("secret".into()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status(&err), 404);

    // An admin's project-restricted token cannot administer the server.
    let req = CreateTokenRequest {
        name: "scoped".into(),
        scope: Some(Scope::Admin),
        project: Some("team-a".into()),
        ..Default::default()
    };
    let scoped = Client::new(&server.url, Some(admin.create_token(&req).await.unwrap().secret)).unwrap();
    let err = scoped.create_user(&CreateUserRequest { name: "x".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(status(&err), 403);
    assert_eq!(status(&scoped.list_audit(&AuditQuery::default()).await.unwrap_err()), 403);
}

#[tokio::test]
async fn mutations_are_rate_limited_per_user() {
    let server = TestServer::start_with(ServerOptions {
        args: vec!["--mutation-rate-per-minute".into(), "3".into()],
        ..Default::default()
    });
    let admin = server.admin().await;
    for i in 0..2 {
        admin.create_token(&CreateTokenRequest { name: format!("t{i}"), ..Default::default() }).await.unwrap();
    }
    // The login was not a mutation by a principal; the third write is still allowed.
    admin.create_token(&CreateTokenRequest { name: "t2".into(), ..Default::default() }).await.unwrap();
    let http = common::http();
    let r = http
        .post(format!("{}/v1/tokens", server.url))
        .bearer_auth(admin.token().unwrap())
        .json(&serde_json::json!({"name": "t3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    admin.list_tokens(&ListParams::default()).await.expect("reads are not limited");
}

#[tokio::test]
async fn every_change_and_every_failure_is_audited_without_secrets() {
    let server = TestServer::start();
    let admin = server.admin().await;
    let alice = user(&server, &admin, "alice", Role::Operator, None).await;
    let alice_id = alice.whoami().await.unwrap().user.id;
    alice.create_token(&CreateTokenRequest { name: "mine".into(), ..Default::default() }).await.unwrap();
    let _ = alice
        .create_user(&CreateUserRequest {
            name: "mallory".into(),
            password: Some("hunter2-secret".into()),
            ..Default::default()
        })
        .await;
    let _ = server.anonymous().login("alice", "not-her-password").await;
    let _ = alice.create_token(&CreateTokenRequest { name: "Bad Name".into(), ..Default::default() }).await;

    let q = |action: &str| AuditQuery { action: Some(action.into()), ..Default::default() };
    let created = admin.list_audit(&q("token.create")).await.unwrap().items;
    let ok = created.iter().find(|e| e.result == "success").expect("the token creation");
    assert_eq!((ok.actor.as_str(), ok.resource_type.as_deref()), (alice_id.as_str(), Some("token")));
    assert!(ok.body_digest.as_ref().is_some_and(|d| d.len() == 64));
    assert!(ok.request_id.as_ref().is_some_and(|r| r.starts_with("req-")));
    assert_eq!(ok.source.as_deref(), Some("127.0.0.1"));
    let invalid = created.iter().find(|e| e.result != "success").expect("the invalid one");
    assert_eq!((invalid.actor.as_str(), invalid.result.as_str()), (alice_id.as_str(), "failure: invalid_request"));

    let denied = admin.list_audit(&q("user.create")).await.unwrap().items;
    let denied = denied.iter().find(|e| e.actor == alice_id).expect("the refused user creation");
    assert_eq!(denied.result, "failure: forbidden");

    let logins = admin.list_audit(&q("auth.login")).await.unwrap().items;
    assert!(logins.iter().any(|e| e.result == "failure: invalid_credentials" && e.actor == alice_id));
    assert!(logins.iter().filter(|e| e.result == "success").count() >= 2);

    // Filters: actor, prefix, time window.
    let by_alice =
        admin.list_audit(&AuditQuery { actor: Some(alice_id.clone()), ..Default::default() }).await.unwrap().items;
    assert!(by_alice.iter().all(|e| e.actor == alice_id) && by_alice.len() >= 4);
    let prefix = admin.list_audit(&q("token.")).await.unwrap().items;
    assert!(prefix.iter().all(|e| e.action.starts_with("token.")));
    let future = admin
        .list_audit(&AuditQuery { since: Some("2999-01-01T00:00:00Z".into()), ..Default::default() })
        .await
        .unwrap();
    assert!(future.items.is_empty());
    let paged = admin.list_audit(&AuditQuery { limit: Some(2), ..Default::default() }).await.unwrap();
    let next = admin
        .list_audit(&AuditQuery { limit: Some(2), cursor: paged.next_cursor.clone(), ..Default::default() })
        .await
        .unwrap();
    assert!(next.items[0].seq < paged.items[1].seq, "pages continue to older entries");

    let csv = admin.export_audit_csv(&AuditQuery::default()).await.unwrap();
    assert!(csv.starts_with("seq,time,actor,actor_token,source,action,"));
    assert!(csv.lines().count() > 8);
    for secret in ["hunter2-secret", "not-her-password", "alice-password", common::ADMIN_PASSWORD] {
        assert!(!csv.contains(secret), "a secret reached the audit log");
    }
    assert_eq!(status(&alice.list_audit(&AuditQuery::default()).await.unwrap_err()), 403);
    let v = admin.verify_audit().await.unwrap();
    assert!(v.ok && v.checked > 8, "{v:?}");
}

/// Edits the server's SQLite store directly, as an attacker with file access would.
async fn tamper(server: &TestServer, sql: &str) {
    let url = format!("sqlite://{}", server.data_path().join("roost.db").display());
    let pool = roost_store::raw_pool(&url).await.unwrap();
    roost_store::sqlx::raw_sql(roost_store::sqlx::AssertSqlSafe(sql)).execute(&pool).await.unwrap();
    pool.close().await;
}

async fn chain_with_entries() -> (TestServer, Client) {
    let server = TestServer::start();
    let admin = server.admin().await;
    for i in 0..4 {
        admin.create_token(&CreateTokenRequest { name: format!("t{i}"), ..Default::default() }).await.unwrap();
    }
    assert!(admin.verify_audit().await.unwrap().ok);
    (server, admin)
}

#[tokio::test]
async fn tampering_with_the_audit_chain_is_detected() {
    // An edited row.
    let (server, admin) = chain_with_entries().await;
    tamper(&server, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 4").await;
    let v = admin.verify_audit().await.unwrap();
    assert_eq!((v.ok, v.first_broken_seq, v.reason.as_deref()), (false, Some(4), Some("entry 4 was altered")));
    let out = server.cli(&["audit", "verify"], None, &[("ROOST_TOKEN", admin.token().unwrap())]);
    assert!(!out.status.success());
    assert!(common::stderr(&out).contains("broken at entry 4"), "{}", common::stderr(&out));

    // A removed row.
    let (server, admin) = chain_with_entries().await;
    tamper(&server, "DELETE FROM audit_log WHERE seq = 3").await;
    let v = admin.verify_audit().await.unwrap();
    assert_eq!((v.first_broken_seq, v.reason.as_deref()), (Some(3), Some("entry 3 is missing")));

    // Two rows swapped (contents moved between sequence numbers).
    let (server, admin) = chain_with_entries().await;
    tamper(
        &server,
        "CREATE TEMP TABLE a AS SELECT * FROM audit_log WHERE seq IN (3, 4); \
         UPDATE audit_log SET action = (SELECT action FROM a WHERE seq = 4), hash = (SELECT hash FROM a WHERE seq = 4), \
             resource_id = (SELECT resource_id FROM a WHERE seq = 4), time = (SELECT time FROM a WHERE seq = 4) WHERE seq = 3; \
         UPDATE audit_log SET action = (SELECT action FROM a WHERE seq = 3), hash = (SELECT hash FROM a WHERE seq = 3), \
             resource_id = (SELECT resource_id FROM a WHERE seq = 3), time = (SELECT time FROM a WHERE seq = 3) WHERE seq = 4;",
    )
    .await;
    let v = admin.verify_audit().await.unwrap();
    assert_eq!(v.first_broken_seq, Some(3), "{v:?}");

    // The newest rows cut off.
    let (server, admin) = chain_with_entries().await;
    let head: i64 = {
        let url = format!("sqlite://{}", server.data_path().join("roost.db").display());
        let pool = roost_store::raw_pool(&url).await.unwrap();
        let n = roost_store::sqlx::query_scalar("SELECT MAX(seq) FROM audit_log").fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    };
    tamper(&server, &format!("DELETE FROM audit_log WHERE seq >= {}", head - 1)).await;
    let v = admin.verify_audit().await.unwrap();
    assert_eq!(v.first_broken_seq, Some(head - 1), "{v:?}");
    assert!(v.reason.unwrap().contains("were removed"));
}

#[tokio::test]
async fn retention_archives_old_entries_and_the_chain_still_verifies() {
    let opts = || ServerOptions { args: vec!["--audit-retention".into(), "1s".into()], ..Default::default() };
    let mut server = TestServer::start_with(opts());
    let admin = server.admin().await;
    admin.create_token(&CreateTokenRequest { name: "old".into(), ..Default::default() }).await.unwrap();
    let before = admin.list_audit(&AuditQuery::default()).await.unwrap().items;
    let oldest_kept_before = before.last().unwrap().seq;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(server.terminate().success());

    // Retention runs at start.
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    let again = TestServer::start_in(data_dir, opts());
    let admin = again.admin().await;
    let archive_dir = again.data_path().join("audit-archive");
    let files: Vec<_> = std::fs::read_dir(&archive_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let archived = std::fs::read_to_string(&files[0]).unwrap();
    assert!(archived.lines().any(|l| l.contains("\"token.create\"")));
    let now = admin.list_audit(&AuditQuery::default()).await.unwrap().items;
    assert!(now.iter().all(|e| e.seq > oldest_kept_before), "old entries left the store");
    let v = admin.verify_audit().await.unwrap();
    assert!(v.ok && v.starts_after >= oldest_kept_before, "{v:?}");
}

#[tokio::test]
async fn updates_with_if_match_never_overwrite_a_newer_version() {
    let server = TestServer::start();
    let admin = server.admin().await;
    admin
        .create_project(&CreateProjectRequest { name: "team-a".into(), description: Some("v1".into()) })
        .await
        .unwrap();
    let http = common::http();
    let url = format!("{}/v1/projects/team-a", server.url);
    let token = admin.token().unwrap().to_string();
    let read = http.get(&url).bearer_auth(&token).send().await.unwrap();
    let etag = read.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"'), "{etag}");
    let unchanged = http.get(&url).bearer_auth(&token).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(unchanged.status(), 304);

    // Someone else changes it.
    let other =
        http.patch(&url).bearer_auth(&token).json(&serde_json::json!({"description": "v2"})).send().await.unwrap();
    assert_eq!(other.status(), 200);
    let stale = http
        .patch(&url)
        .bearer_auth(&token)
        .header("if-match", &etag)
        .json(&serde_json::json!({"description": "v3 on top of v1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let body: serde_json::Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["code"], "precondition_failed");
    assert_eq!(admin.get_project("team-a").await.unwrap().description.as_deref(), Some("v2"), "nothing was lost");

    let fresh =
        http.get(&url).bearer_auth(&token).send().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let ok = http
        .patch(&url)
        .bearer_auth(&token)
        .header("if-match", &fresh)
        .json(&serde_json::json!({"description": "v3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_ne!(ok.headers()["etag"].to_str().unwrap(), fresh, "a new version, a new tag");

    // Users too.
    let me = format!("{}/v1/users/me", server.url);
    let tag = http.get(&me).bearer_auth(&token).send().await.unwrap().headers()["etag"].to_str().unwrap().to_string();
    let r = http
        .patch(&me)
        .bearer_auth(&token)
        .header("if-match", "\"0000\"")
        .json(&serde_json::json!({"display_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = http
        .patch(&me)
        .bearer_auth(&token)
        .header("if-match", &tag)
        .json(&serde_json::json!({"display_name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
