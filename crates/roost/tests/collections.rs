//! Every collection pages with a cursor, filters by project and lists in a bounded number
//! of store statements; every single resource is versioned (`ETag`, `If-None-Match`,
//! `If-Match`) and the mutable ones take PATCH. Over the simulated node: what is tested
//! is the control plane's collections, the same whatever node runs the instances.
//!
//! What a listing costs comes from the server's own count of the statements each request
//! ran (`roost_http_request_queries_total`, per route): one row and three rows must cost
//! the same.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::sim::SimServer;
use common::{ServerOptions, TestServer};
use reqwest::StatusCode;
use roost_api::audit::AuditQuery;
use roost_api::buckets::{CreateBucketRequest, CreateS3KeyRequest};
use roost_api::instances::CreateInstanceRequest;
use roost_api::networks::{CreateNetworkRequest, CreatePortForwardRequest, CreateSecurityGroupRequest};
use roost_api::projects::CreateProjectRequest;
use roost_api::sandboxes::CreateSandboxKeyRequest;
use roost_api::ssh_keys::CreateSshKeyRequest;
use roost_api::tokens::{CreateTokenRequest, Scope};
use roost_api::users::CreateUserRequest;
use roost_api::volumes::{CreateBackupPolicyRequest, CreateSnapshotRequest, CreateVolumeRequest};
use roost_client::Client;
use serde_json::{Value, json};

const TEAM: &str = "team";

/// Raw HTTP with the admin's session, for what the typed client hides (headers, pages).
struct Http {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Http {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap()
    }

    async fn json(&self, path: &str) -> Value {
        let r = self.get(path).await;
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.json().await.unwrap()
    }

    /// Every page of `path` (which has a query string) with `limit` items a page: no item
    /// twice, every page but the last full, and more than one page.
    async fn walk(&self, path: &str, limit: u32) -> Vec<Value> {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut url = format!("{path}&limit={limit}");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = self.json(&url).await;
            pages += 1;
            let got = page["items"].as_array().unwrap_or_else(|| panic!("{path}: not a page: {page}")).clone();
            for item in &got {
                let key = item["id"].as_str().or(item["user_id"].as_str()).unwrap().to_string();
                assert!(seen.insert(key), "{path}: {item} twice");
            }
            match page["next_cursor"].as_str() {
                Some(next) => {
                    assert_eq!(got.len(), limit as usize, "{path}: a page before the last is full");
                    cursor = Some(next.to_string());
                }
                None => {
                    assert!(got.len() <= limit as usize);
                    items.extend(got);
                    break;
                }
            }
            items.extend(got);
        }
        assert!(pages > 1, "{path}: {} items fit one page of {limit}", items.len());
        items
    }

    /// The statements the server ran for successful GETs of `route` so far.
    async fn statements(&self, route: &str) -> u64 {
        let text = self.get("/metrics").await.text().await.unwrap();
        let labels = format!("route=\"{route}\"");
        text.lines()
            .filter(|l| l.starts_with("roost_http_request_queries_total{"))
            .filter(|l| l.contains(&labels) && l.contains("method=\"GET\"") && l.contains("status=\"200\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    /// What one listing of `path` (one page of everything) costs the store.
    async fn cost(&self, route: &str, path: &str) -> u64 {
        let before = self.statements(route).await;
        self.json(&format!("{path}&limit=1000")).await;
        self.statements(route).await - before
    }
}

fn names(items: &[Value]) -> HashSet<String> {
    items.iter().filter_map(|i| i["name"].as_str().or(i["user_name"].as_str()).map(str::to_string)).collect()
}

fn tiny_tarball() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello");
    std::fs::write(&file, "hi").unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_path_with_name(&file, "hello").unwrap();
    tar.into_inner().unwrap()
}

/// Makes the `n`th item (0-based) of each collection in `project`.
async fn make(admin: &Client, project: &str, n: usize) {
    let p = Some(project.to_string());
    let tag = format!("{project}{n}");
    let instance = CreateInstanceRequest {
        name: format!("i-{tag}"),
        image: "busybox".into(),
        project: p.clone(),
        start: Some(false),
        ..Default::default()
    };
    admin.create_instance(&instance).await.unwrap();
    admin
        .create_network(&CreateNetworkRequest { name: format!("n-{tag}"), project: p.clone(), ..Default::default() })
        .await
        .unwrap();
    let group = CreateSecurityGroupRequest { name: format!("g-{tag}"), project: p.clone(), ..Default::default() };
    admin.create_security_group(&group).await.unwrap();
    // Host ports of the default forward range, one per item and project.
    let port = 47100 + n as u16 + if project == TEAM { 0 } else { 50 };
    let forward = CreatePortForwardRequest { host_port: port, instance_port: 80, protocol: None };
    admin.add_port_forward(&format!("i-{tag}"), Some(project), &forward).await.unwrap();
    let volume = CreateVolumeRequest {
        name: format!("v-{tag}"),
        size_bytes: Some(16 << 20),
        project: p.clone(),
        ..Default::default()
    };
    admin.create_volume(&volume).await.unwrap();
    let snapshot = CreateSnapshotRequest {
        volume: format!("v-{tag}"),
        name: format!("s-{tag}"),
        description: None,
        project: p.clone(),
    };
    admin.create_snapshot(&snapshot).await.unwrap();
    let policy = CreateBackupPolicyRequest {
        name: format!("b-{tag}"),
        volume: format!("v-{tag}"),
        cron: "0 3 * * *".into(),
        keep: 3,
        project: p.clone(),
    };
    admin.create_backup_policy(&policy).await.unwrap();
    admin.import_image(&format!("img-{tag}"), Some(project), reqwest::Body::from(tiny_tarball())).await.unwrap();
    let bucket = CreateBucketRequest { name: format!("bkt-{tag}-coll"), project: p.clone(), ..Default::default() };
    admin.create_bucket(&bucket).await.unwrap();
    let key = CreateSandboxKeyRequest { name: format!("k-{tag}"), project: p.clone(), ..Default::default() };
    admin.create_sandbox_key(&key).await.unwrap();
    let user = CreateUserRequest {
        name: format!("u-{tag}"),
        password: Some("a-long-enough-password".into()),
        projects: Some(vec![project.to_string()]),
        ..Default::default()
    };
    admin.create_user(&user).await.unwrap();
    // The caller's own collections (no project).
    if project == TEAM {
        admin
            .create_s3_key(&CreateS3KeyRequest { description: Some(tag.clone()), ..Default::default() })
            .await
            .unwrap();
        let token = CreateTokenRequest { name: format!("t-{tag}"), scope: Some(Scope::Read), ..Default::default() };
        admin.create_token(&token).await.unwrap();
        let ssh = CreateSshKeyRequest { name: format!("ssh-{tag}"), ..Default::default() };
        admin.create_ssh_key(&ssh).await.unwrap();
    }
}

/// (route, path with its query) of every collection `make` adds to.
const COLLECTIONS: &[(&str, &str)] = &[
    ("/v1/instances", "/v1/instances?project=team"),
    ("/v1/networks", "/v1/networks?project=team"),
    ("/v1/security-groups", "/v1/security-groups?project=team"),
    ("/v1/port-forwards", "/v1/port-forwards?project=team"),
    ("/v1/volumes", "/v1/volumes?project=team"),
    ("/v1/snapshots", "/v1/snapshots?project=team"),
    ("/v1/backup-policies", "/v1/backup-policies?project=team"),
    ("/v1/images", "/v1/images?project=team"),
    ("/v1/buckets", "/v1/buckets?project=team"),
    ("/v1/sandbox-keys", "/v1/sandbox-keys?project=team"),
    ("/v1/projects/{id}/members", "/v1/projects/team/members?sort=name"),
    ("/v1/s3-keys", "/v1/s3-keys?sort=-created_at"),
    ("/v1/tokens", "/v1/tokens?sort=-created_at"),
    ("/v1/ssh-keys", "/v1/ssh-keys?sort=-created_at"),
    ("/v1/users", "/v1/users?sort=name"),
];

#[test]
fn every_collection_pages_filters_by_project_and_costs_the_same_whatever_its_length() {
    // Its own process: the statement counts are the server's metrics.
    let server = TestServer::start_with(ServerOptions::simulated());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin = server.admin().await;
        let http = Http { http: common::http(), base: server.url.clone(), token: admin.token().unwrap().into() };
        let project = CreateProjectRequest { name: TEAM.into(), ..Default::default() };
        admin.create_project(&project).await.unwrap();

        // One of each in the team, one in `default` (which the team's lists leave out).
        make(&admin, TEAM, 0).await;
        make(&admin, "default", 0).await;
        let mut one = BTreeMap::new();
        for (route, path) in COLLECTIONS {
            one.insert(*route, http.cost(route, path).await);
        }

        // Three of each: every page is walked, two items a page.
        for n in 1..3 {
            make(&admin, TEAM, n).await;
        }
        for (route, path) in COLLECTIONS {
            let items = http.walk(path, 2).await;
            let names = names(&items);
            let prefix = match *route {
                "/v1/instances" => Some("i-team"),
                "/v1/networks" => Some("n-team"),
                "/v1/security-groups" => Some("g-team"),
                "/v1/volumes" => Some("v-team"),
                "/v1/snapshots" => Some("s-team"),
                "/v1/backup-policies" => Some("b-team"),
                "/v1/images" => Some("img-team"),
                "/v1/buckets" => Some("bkt-team"),
                "/v1/sandbox-keys" => Some("k-team"),
                "/v1/projects/{id}/members" => Some("u-team"),
                "/v1/tokens" => Some("t-team"),
                "/v1/ssh-keys" => Some("ssh-team"),
                "/v1/users" => Some("u-team"),
                _ => None,
            };
            if let Some(prefix) = prefix {
                for n in 0..3 {
                    let wanted = format!("{prefix}{n}");
                    assert!(names.iter().any(|m| m.starts_with(&wanted)), "{path}: {wanted} missing from {names:?}");
                }
                if path.contains("project=team") {
                    assert!(!names.iter().any(|n| n.contains("default0")), "{path} shows another project's: {names:?}");
                }
            }
            let three = http.cost(route, path).await;
            assert_eq!(three, one[route], "{path}: three rows cost {three} statements, one row {}", one[route]);
            assert!(three > 0, "{path}: the count works");
        }

        // Port forwards and S3 keys have no names: filtered by project and walked by id.
        let forwards = http.walk("/v1/port-forwards?project=team&sort=host_port", 2).await;
        let ports: Vec<u64> = forwards.iter().map(|f| f["host_port"].as_u64().unwrap()).collect();
        assert_eq!(ports, [47100, 47101, 47102], "sorted by host port, the team's only");
        let keys = http.walk("/v1/s3-keys?sort=-created_at", 2).await;
        assert!(keys.iter().filter(|k| k["description"].as_str().is_some_and(|d| d.starts_with(TEAM))).count() == 3);

        // The builtin templates page too (a page of one).
        let templates = http.walk("/v1/sandbox-templates?project=team", 1).await;
        assert!(names(&templates).contains("base"), "{templates:?}");

        // A cursor of another sort, or garbage, is a 400 in the JSON shape.
        let page = http.json("/v1/networks?project=team&limit=1").await;
        let cursor = page["next_cursor"].as_str().unwrap();
        let r = http.get(&format!("/v1/networks?project=team&limit=1&sort=name&cursor={cursor}")).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = http.get("/v1/volumes?cursor=not-a-cursor").await;
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["details"][0]["field"], "cursor", "{body}");

        // The CLI reads every page, or one with --limit.
        let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        let out = server.cli(&["network", "ls", "-p", TEAM, "-o", "json"], None, &[]);
        let all: Vec<Value> = serde_json::from_str(&common::stdout(&out)).unwrap();
        assert_eq!(all.len(), 4, "three and the default network: {all:?}");
        let out = server.cli(&["network", "ls", "-p", TEAM, "-o", "json", "--limit", "2"], None, &[]);
        let first: Vec<Value> = serde_json::from_str(&common::stdout(&out)).unwrap();
        assert_eq!(first.len(), 2);
        assert!(common::stderr(&out).contains("--cursor"), "{}", common::stderr(&out));
    });
}

/// The ETag of a GET, checked against `If-None-Match`.
async fn etag_of(http: &Http, path: &str) -> String {
    let r = http.get(path).await;
    assert_eq!(r.status(), StatusCode::OK, "GET {path}");
    let etag =
        r.headers().get("etag").unwrap_or_else(|| panic!("GET {path} has no ETag")).to_str().unwrap().to_string();
    let again = http.http.get(format!("{}{path}", http.base)).bearer_auth(&http.token).header("if-none-match", &etag);
    let r = again.send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "GET {path} with its ETag");
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    etag
}

async fn send(
    http: &Http,
    method: reqwest::Method,
    path: &str,
    if_match: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut req = http.http.request(method, format!("{}{path}", http.base)).bearer_auth(&http.token);
    req = req.header("if-match", if_match);
    if let Some(b) = body {
        req = req.json(b);
    }
    req.send().await.unwrap()
}

async fn precondition_failed(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED, "{what}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "precondition_failed", "{what}: {body}");
}

#[test]
fn every_resource_is_versioned_and_the_mutable_ones_take_patch() {
    let server = SimServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let admin = server.admin().await;
        let http = Http { http: common::http(), base: server.url.clone(), token: admin.token().unwrap().into() };
        admin.create_project(&CreateProjectRequest { name: TEAM.into(), ..Default::default() }).await.unwrap();
        make(&admin, TEAM, 0).await;
        let s3_key = admin.list_s3_keys().await.unwrap().remove(0).id;
        let sandbox_key =
            admin.list_sandbox_keys().await.unwrap().into_iter().find(|k| k.name == "k-team0").unwrap().id;

        // (path, a change, where it shows and what it is, the path afterwards, whether
        // there is a DELETE to refuse with the old version)
        let q = "?project=team";
        let cases: Vec<(String, Value, &str, Value, String, bool)> = vec![
            (
                format!("/v1/instances/i-team0{q}"),
                json!({"labels": {"tier": "web"}, "restart": "always"}),
                "/labels/tier",
                json!("web"),
                format!("/v1/instances/i-team0{q}"),
                true,
            ),
            (
                format!("/v1/networks/n-team0{q}"),
                json!({"dns": true}),
                "/dns",
                json!(true),
                format!("/v1/networks/n-team0{q}"),
                true,
            ),
            (
                format!("/v1/security-groups/g-team0{q}"),
                json!({"description": "front"}),
                "/description",
                json!("front"),
                format!("/v1/security-groups/g-team0{q}"),
                true,
            ),
            (
                format!("/v1/snapshots/s-team0{q}"),
                json!({"description": "before"}),
                "/description",
                json!("before"),
                format!("/v1/snapshots/s-team0{q}"),
                true,
            ),
            (
                format!("/v1/backup-policies/b-team0{q}"),
                json!({"keep": 5}),
                "/keep",
                json!(5),
                format!("/v1/backup-policies/b-team0{q}"),
                true,
            ),
            (
                "/v1/buckets/bkt-team0-coll".into(),
                json!({"public_read": true}),
                "/public_read",
                json!(true),
                "/v1/buckets/bkt-team0-coll".into(),
                true,
            ),
            (
                format!("/v1/s3-keys/{s3_key}"),
                json!({"description": "ci"}),
                "/description",
                json!("ci"),
                format!("/v1/s3-keys/{s3_key}"),
                true,
            ),
            (
                format!("/v1/sandbox-keys/{sandbox_key}"),
                json!({"max_sandboxes": 3}),
                "/max_sandboxes",
                json!(3),
                format!("/v1/sandbox-keys/{sandbox_key}"),
                false,
            ),
            (
                "/v1/ssh-keys/ssh-team0".into(),
                json!({"name": "laptop"}),
                "/name",
                json!("laptop"),
                "/v1/ssh-keys/laptop".into(),
                true,
            ),
            (
                "/v1/tokens/t-team0".into(),
                json!({"name": "ci-read"}),
                "/name",
                json!("ci-read"),
                "/v1/tokens/ci-read".into(),
                true,
            ),
            (
                "/v1/images/img-team0".into(),
                json!({"description": "tiny"}),
                "/description",
                json!("tiny"),
                "/v1/images/img-team0".into(),
                true,
            ),
            (
                format!("/v1/volumes/v-team0{q}"),
                json!({"name": "data"}),
                "/name",
                json!("data"),
                format!("/v1/volumes/data{q}"),
                true,
            ),
        ];
        let stale = "\"00000000000000000000000000000000\"";
        for (path, change, pointer, expected, after, deletable) in &cases {
            let etag = etag_of(&http, path).await;
            // Someone else's version: refused, and nothing changes.
            precondition_failed(send(&http, reqwest::Method::PATCH, path, stale, Some(change)).await, path).await;
            assert_eq!(etag_of(&http, path).await, etag, "{path}: a refused change changed it");
            // The current version: applied, answered with the new state and its tag.
            let r = send(&http, reqwest::Method::PATCH, path, &etag, Some(change)).await;
            assert_eq!(r.status(), StatusCode::OK, "PATCH {path}");
            let new_tag = r.headers()["etag"].to_str().unwrap().to_string();
            let body: Value = r.json().await.unwrap();
            assert_eq!(body.pointer(pointer), Some(expected), "PATCH {path}: {body}");
            assert_ne!(new_tag, etag, "{path}: the version moves");
            assert_eq!(etag_of(&http, after).await, new_tag, "{after}: the PATCH answered with the current version");
            // The old version is stale for a delete too.
            if *deletable {
                precondition_failed(send(&http, reqwest::Method::DELETE, after, &etag, None).await, after).await;
            }
        }
        // A merge patch: a label set to null goes, others stay.
        let patched = admin
            .update_instance(
                "i-team0",
                Some(TEAM),
                &serde_json::from_value(json!({"labels": {"tier": null, "zone": "a"}})).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(patched.labels, BTreeMap::from([("zone".to_string(), "a".to_string())]));
        // Validation as at create: a bad name is a 400 naming it.
        let bad = json!({"name": "Bad Name"});
        let r = send(&http, reqwest::Method::PATCH, "/v1/volumes/data?project=team", "*", Some(&bad)).await;
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["details"][0]["field"], "name", "{body}");

        // Each change was audited as <resource>.update.
        let audit = admin.list_audit(&AuditQuery { limit: Some(500), ..Default::default() }).await.unwrap();
        for action in [
            "instance.update",
            "network.update",
            "security_group.update",
            "snapshot.update",
            "backup_policy.update",
            "bucket.update",
            "s3_key.update",
            "sandbox_key.update",
            "ssh_key.update",
            "token.update",
            "image.update",
            "volume.update",
        ] {
            assert!(audit.items.iter().any(|e| e.action == action && e.result == "success"), "{action} not audited");
        }

        // The check runs in the write transaction: of concurrent changes sent with the
        // same version, exactly one applies.
        let path = "/v1/security-groups/g-team0?project=team";
        let etag = etag_of(&http, path).await;
        let racers = (0..8).map(|i| {
            let body = json!({"description": format!("racer {i}")});
            let (http, etag) = (&http, etag.clone());
            async move { send(http, reqwest::Method::PATCH, path, &etag, Some(&body)).await.status() }
        });
        let statuses = futures_util::future::join_all(racers).await;
        let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        let lost = statuses.iter().filter(|s| **s == StatusCode::PRECONDITION_FAILED).count();
        assert_eq!((won, lost), (1, 7), "{statuses:?}");

        // A delete with the current version applies.
        let bucket = "/v1/buckets/bkt-team0-coll";
        let etag = etag_of(&http, bucket).await;
        let r = send(&http, reqwest::Method::DELETE, bucket, &etag, None).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(http.get(bucket).await.status(), StatusCode::NOT_FOUND);

        // The CLI's update: labels on an instance.
        let out = server.cli(&["login", "-u", "admin", "--password-stdin"], Some(common::ADMIN_PASSWORD), &[]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        let out = server.cli(
            &["instance", "update", "i-team0", "-p", TEAM, "--label", "env=prod", "--unlabel", "zone"],
            None,
            &[],
        );
        assert!(out.status.success(), "{}", common::stderr(&out));
        let i = admin.get_instance("i-team0", Some(TEAM)).await.unwrap();
        assert_eq!(i.labels, BTreeMap::from([("env".to_string(), "prod".to_string())]));
        let out = server.cli(&["network", "set", "n-team0", "-p", TEAM, "--nat", "off"], None, &[]);
        assert!(out.status.success(), "{}", common::stderr(&out));
        assert!(!admin.get_network("n-team0", Some(TEAM)).await.unwrap().nat);
    });
}
