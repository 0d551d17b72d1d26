//! The authorization matrix: every route of the OpenAPI document × every kind of caller,
//! with the status each must get. A route without an entry here fails the test.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::sim::SimServer;
use roost_api::auth::Role;
use roost_api::projects::CreateProjectRequest;
use roost_api::tokens::{CreateTokenRequest, Scope};
use roost_api::users::CreateUserRequest;
use roost_client::Client;
use serde_json::{Value, json};

/// The callers, in the order of every expectation row.
const CELLS: [&str; 7] = ["anonymous", "viewer", "operator", "admin", "outsider", "expired", "read_token"];

struct World {
    server: SimServer,
    admin: Client,
    /// Credential per cell (`None`: anonymous).
    creds: BTreeMap<&'static str, Option<String>>,
    /// The operation id of a backup the admin started.
    admin_operation: String,
    /// An S3 key id of each session owner (by cell).
    s3_keys: BTreeMap<&'static str, String>,
    counter: std::sync::atomic::AtomicUsize,
}

impl World {
    fn fresh(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    fn port(&self) -> u16 {
        20000 + self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as u16
    }

    /// A fresh network in team-a.
    async fn network(&self) -> String {
        let name = self.fresh("net");
        let req = roost_api::networks::CreateNetworkRequest {
            name: name.clone(),
            project: Some("team-a".into()),
            ..Default::default()
        };
        self.admin.create_network(&req).await.unwrap();
        name
    }

    /// A fresh stopped instance in team-a.
    async fn stopped_instance(&self) -> String {
        let name = self.fresh("idle");
        let req = roost_api::instances::CreateInstanceRequest {
            name: name.clone(),
            image: "busybox".into(),
            project: Some("team-a".into()),
            start: Some(false),
            memory_bytes: Some(32 << 20),
            ..Default::default()
        };
        self.admin.create_instance(&req).await.unwrap();
        name
    }

    /// A fresh 16 MiB volume in team-a.
    async fn volume(&self) -> String {
        let name = self.fresh("vol");
        let req = roost_api::volumes::CreateVolumeRequest {
            name: name.clone(),
            size_bytes: Some(16 << 20),
            project: Some("team-a".into()),
            ..Default::default()
        };
        self.admin.create_volume(&req).await.unwrap();
        name
    }

    /// A fresh volume with a snapshot; returns both names.
    async fn snapshot(&self) -> (String, String) {
        let volume = self.volume().await;
        let name = self.fresh("snap");
        let req = roost_api::volumes::CreateSnapshotRequest {
            volume: volume.clone(),
            name: name.clone(),
            project: Some("team-a".into()),
            ..Default::default()
        };
        self.admin.create_snapshot(&req).await.unwrap();
        (volume, name)
    }

    /// A fresh backup policy on a fresh volume.
    async fn policy(&self) -> String {
        let volume = self.volume().await;
        let name = self.fresh("bkp");
        let req = roost_api::volumes::CreateBackupPolicyRequest {
            name: name.clone(),
            volume,
            cron: "0 2 * * *".into(),
            keep: 2,
            project: Some("team-a".into()),
        };
        self.admin.create_backup_policy(&req).await.unwrap();
        name
    }

    fn client_of(&self, cell: &str) -> Option<Client> {
        self.creds[cell].as_ref().map(|t| Client::new(&self.server.url, Some(t.clone())).unwrap())
    }

    /// The session owner behind a cell, for self-service fixtures.
    fn owner_client(&self, cell: &str) -> Client {
        match cell {
            "read_token" | "anonymous" => self.admin.clone(),
            "expired" => self.client_of("operator").unwrap(),
            other => self.client_of(other).unwrap(),
        }
    }
}

struct Case {
    path: String,
    body: Option<Value>,
    /// A non-JSON body (uploads).
    raw: Option<Vec<u8>>,
    /// Overrides the cell's credential (a fresh session for logout).
    credential: Option<Option<String>>,
}

impl Case {
    fn with_raw(self, raw: Vec<u8>) -> Case {
        Case { raw: Some(raw), ..self }
    }
}

/// A one-file root filesystem tarball.
fn tiny_tarball() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello");
    std::fs::write(&file, "hi").unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    tar.append_path_with_name(&file, "hello").unwrap();
    tar.into_inner().unwrap()
}

fn case(path: impl Into<String>, body: Option<Value>) -> Case {
    Case { path: path.into(), body, raw: None, credential: None }
}

/// Expected statuses in `CELLS` order.
type Row = [u16; 7];

async fn setup() -> World {
    let server = SimServer::start();
    let admin = server.admin().await;
    for name in ["team-a", "team-b"] {
        admin.create_project(&CreateProjectRequest { name: name.into(), description: None }).await.unwrap();
    }
    let mut creds = BTreeMap::new();
    creds.insert("anonymous", None);
    creds.insert("admin", Some(admin.token().unwrap().to_string()));
    for (cell, name, role, project, member_role) in [
        ("viewer", "vera", Role::Viewer, "team-a", Role::Viewer),
        ("operator", "otto", Role::Operator, "team-a", Role::Operator),
        ("outsider", "olga", Role::Operator, "team-b", Role::Operator),
    ] {
        let password = format!("{name}-password");
        let req = CreateUserRequest {
            name: name.into(),
            role: Some(role),
            password: Some(password.clone()),
            projects: Some(vec![]),
            ..Default::default()
        };
        admin.create_user(&req).await.unwrap();
        admin.set_member(project, name, member_role).await.unwrap();
        let session = server.anonymous().login(name, &password).await.unwrap();
        creds.insert(cell, Some(session.token));
    }
    // Everyone owns a token named "own".
    for cell in ["viewer", "operator", "outsider", "admin"] {
        let c = Client::new(&server.url, creds[cell].clone()).unwrap();
        c.create_token(&CreateTokenRequest { name: "own".into(), ..Default::default() }).await.unwrap();
    }
    let read = admin
        .create_token(&CreateTokenRequest { name: "reader".into(), scope: Some(Scope::Read), ..Default::default() })
        .await
        .unwrap();
    creds.insert("read_token", Some(read.secret));
    let otto = Client::new(&server.url, creds["operator"].clone()).unwrap();
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1200);
    let expired = otto
        .create_token(&CreateTokenRequest {
            name: "brief".into(),
            scope: Some(Scope::Write),
            expires_at: Some(soon),
            ..Default::default()
        })
        .await
        .unwrap();
    creds.insert("expired", Some(expired.secret));
    // A running instance in team-a for the instance routes.
    let app = roost_api::instances::CreateInstanceRequest {
        name: "app".into(),
        image: "busybox".into(),
        project: Some("team-a".into()),
        memory_bytes: Some(32 << 20),
        ..Default::default()
    };
    let created = admin.create_instance(&app).await.unwrap();
    admin
        .wait_instance(&created.instance.id, roost_api::instances::InstanceStatus::Running, Duration::from_secs(60))
        .await
        .unwrap();
    let op = admin.create_backup().await.unwrap();
    admin.get_operation(&op.id, Some(Duration::from_secs(30))).await.unwrap();
    // A bucket in team-a, an S3 key per session owner, and the admin's presign key.
    let bucket = roost_api::buckets::CreateBucketRequest {
        name: "photos-a".into(),
        project: Some("team-a".into()),
        public_read: None,
    };
    admin.create_bucket(&bucket).await.unwrap();
    let mut s3_keys = BTreeMap::new();
    for cell in ["viewer", "operator", "outsider", "admin"] {
        let c = Client::new(&server.url, creds[cell].clone()).unwrap();
        let key = c.create_s3_key(&Default::default()).await.unwrap();
        s3_keys.insert(cell, key.key.id);
    }
    let presign = roost_api::buckets::PresignRequest { key: "x".into(), method: None, expires: None };
    admin.presign("photos-a", &presign).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    World { server, admin, creds, admin_operation: op.id, s3_keys, counter: Default::default() }
}

/// The request to make for `route` as `cell`, and the expected statuses.
async fn entry(w: &World, method: &str, route: &str, cell: &str) -> Option<(Case, Row)> {
    const PUBLIC: Row = [200, 200, 200, 200, 200, 200, 200];
    const ANY_USER: Row = [401, 200, 200, 200, 200, 401, 200];
    const ADMIN_READ: Row = [401, 403, 403, 200, 403, 401, 200];
    const ADMIN_WRITE: Row = [401, 403, 403, 200, 403, 401, 403];
    const MEMBER_READ: Row = [401, 200, 200, 200, 404, 401, 200];
    const MEMBER_ADMIN_WRITE: Row = [401, 403, 403, 200, 404, 401, 403];
    const SELF_ADMIN_READ: Row = [401, 404, 200, 200, 404, 401, 200];
    const OTHER_USER_ADMIN_WRITE: Row = [401, 404, 404, 200, 404, 401, 403];
    let with = |row: Row, ok: u16| row.map(|s| if s == 200 { ok } else { s });
    Some(match (method, route) {
        ("GET", "/health/live") | ("GET", "/health/ready") => (case(route, None), PUBLIC),
        ("GET", "/metrics") => (case(route, None), ADMIN_READ),
        ("GET", "/v1/openapi.json") => (case(route, None), ANY_USER),
        ("POST", "/v1/auth/login") => {
            (case(route, Some(json!({"username": "otto", "password": "otto-password"}))), PUBLIC)
        }
        ("POST", "/v1/auth/logout") => {
            // A fresh session per caller, so logging out does not end the shared one.
            let credential = match cell {
                "viewer" | "operator" | "outsider" | "admin" => {
                    let name = match cell {
                        "viewer" => "vera",
                        "operator" => "otto",
                        "outsider" => "olga",
                        _ => "admin",
                    };
                    let password =
                        if cell == "admin" { common::ADMIN_PASSWORD.to_string() } else { format!("{name}-password") };
                    Some(Some(w.server.anonymous().login(name, &password).await.unwrap().token))
                }
                _ => None,
            };
            (Case { credential, ..case(route, None) }, [401, 204, 204, 204, 204, 401, 403])
        }
        ("GET", "/v1/auth/whoami") => (case(route, None), ANY_USER),
        ("POST", "/v1/auth/password") => {
            // A wrong current password: proves the caller got through to validation.
            let body = json!({"current_password": "wrong-wrong", "new_password": "whatever-123"});
            (case(route, Some(body)), [401, 400, 400, 400, 400, 401, 403])
        }
        ("GET", "/v1/tokens") => (case(route, None), ANY_USER),
        // Anyone may make a token for themselves; a read-scoped token may not.
        ("POST", "/v1/tokens") => {
            (case(route, Some(json!({"name": w.fresh("tok")}))), [401, 201, 201, 201, 201, 401, 403])
        }
        ("GET", "/v1/tokens/{id}") => (case("/v1/tokens/own", None), ANY_USER),
        ("DELETE", "/v1/tokens/{id}") => {
            let name = w.fresh("gone");
            w.owner_client(cell)
                .create_token(&CreateTokenRequest { name: name.clone(), ..Default::default() })
                .await
                .unwrap();
            (case(format!("/v1/tokens/{name}"), None), [401, 204, 204, 204, 204, 401, 403])
        }
        ("GET", "/v1/operations") => (case(route, None), ANY_USER),
        ("GET", "/v1/operations/{id}") => {
            (case(format!("/v1/operations/{}", w.admin_operation), None), [401, 404, 404, 200, 404, 401, 200])
        }
        ("GET", "/v1/events") => (case(route, None), ANY_USER),
        ("POST", "/v1/system/backups") => (case(route, None), with(ADMIN_WRITE, 202)),
        ("GET", "/v1/system/tasks") => (case(route, None), ADMIN_READ),
        ("GET", "/v1/system/tasks/{name}") => (case("/v1/system/tasks/housekeeping", None), ADMIN_READ),
        ("POST", "/v1/system/tasks/{name}/run") => {
            (case("/v1/system/tasks/housekeeping/run", None), with(ADMIN_WRITE, 202))
        }
        ("GET", "/v1/users") => (case(route, None), ANY_USER),
        ("POST", "/v1/users") => {
            (case(route, Some(json!({"name": w.fresh("user"), "projects": []}))), with(ADMIN_WRITE, 201))
        }
        ("GET", "/v1/users/{id}") => (case("/v1/users/otto", None), SELF_ADMIN_READ),
        ("PATCH", "/v1/users/{id}") => {
            (case("/v1/users/otto", Some(json!({"display_name": "Otto"}))), [401, 404, 200, 200, 404, 401, 403])
        }
        ("DELETE", "/v1/users/{id}")
        | ("POST", "/v1/users/{id}/disable")
        | ("POST", "/v1/users/{id}/enable")
        | ("POST", "/v1/users/{id}/password") => {
            let name = w.fresh("victim");
            let req = CreateUserRequest { name: name.clone(), projects: Some(vec![]), ..Default::default() };
            w.admin.create_user(&req).await.unwrap();
            let suffix = route.trim_start_matches("/v1/users/{id}");
            let body = (suffix == "/password").then(|| json!({}));
            let ok = if method == "DELETE" { 204 } else { 200 };
            (case(format!("/v1/users/{name}{suffix}"), body), with(OTHER_USER_ADMIN_WRITE, ok))
        }
        ("GET", "/v1/projects") => (case(route, None), ANY_USER),
        ("POST", "/v1/projects") => (case(route, Some(json!({"name": w.fresh("proj")}))), with(ADMIN_WRITE, 201)),
        ("GET", "/v1/projects/{id}")
        | ("GET", "/v1/projects/{id}/members")
        | ("GET", "/v1/projects/{id}/quota")
        | ("GET", "/v1/projects/{id}/usage") => (case(route.replace("{id}", "team-a"), None), MEMBER_READ),
        ("PATCH", "/v1/projects/{id}") => {
            (case("/v1/projects/team-a", Some(json!({"description": "x"}))), MEMBER_ADMIN_WRITE)
        }
        ("PUT", "/v1/projects/{id}/quota") => {
            (case("/v1/projects/team-a/quota", Some(json!({"buckets": 5}))), MEMBER_ADMIN_WRITE)
        }
        ("DELETE", "/v1/projects/{id}") => {
            let name = w.fresh("doomed");
            w.admin.create_project(&CreateProjectRequest { name: name.clone(), description: None }).await.unwrap();
            w.admin.set_member(&name, "vera", Role::Viewer).await.unwrap();
            w.admin.set_member(&name, "otto", Role::Operator).await.unwrap();
            (case(format!("/v1/projects/{name}"), None), with(MEMBER_ADMIN_WRITE, 204))
        }
        ("PUT", "/v1/projects/{id}/members/{user}") => {
            let name = w.fresh("member");
            w.admin
                .create_user(&CreateUserRequest { name: name.clone(), projects: Some(vec![]), ..Default::default() })
                .await
                .unwrap();
            (case(format!("/v1/projects/team-a/members/{name}"), Some(json!({"role": "viewer"}))), MEMBER_ADMIN_WRITE)
        }
        ("DELETE", "/v1/projects/{id}/members/{user}") => {
            let name = w.fresh("leaver");
            w.admin
                .create_user(&CreateUserRequest { name: name.clone(), projects: Some(vec![]), ..Default::default() })
                .await
                .unwrap();
            w.admin.set_member("team-a", &name, Role::Viewer).await.unwrap();
            (case(format!("/v1/projects/team-a/members/{name}"), None), with(MEMBER_ADMIN_WRITE, 204))
        }
        ("GET", "/v1/audit") | ("GET", "/v1/audit/export") | ("GET", "/v1/audit/verify") => {
            (case(route, None), ADMIN_READ)
        }
        ("GET", "/v1/images") | ("GET", "/v1/images/{id}") => (case(route.replace("{id}", "busybox"), None), ANY_USER),
        // Authorized callers reach validation (an invalid suite), so nothing is built.
        ("POST", "/v1/images") => {
            let body = json!({"name": w.fresh("img"), "from": "debian:", "project": "team-a"});
            (case(route, Some(body)), [401, 403, 400, 400, 404, 401, 403])
        }
        ("POST", "/v1/images/import") => {
            let path = format!("/v1/images/import?name={}&project=team-a", w.fresh("imp"));
            (case(path, None).with_raw(b"not a tarball".to_vec()), [401, 403, 422, 422, 404, 401, 403])
        }
        ("DELETE", "/v1/images/{id}") => {
            let name = w.fresh("gone-img");
            w.admin.import_image(&name, Some("team-a"), reqwest::Body::from(tiny_tarball())).await.unwrap();
            (case(format!("/v1/images/{name}"), None), [401, 403, 204, 204, 404, 401, 403])
        }
        ("GET", "/v1/instances") => (case(route, None), ANY_USER),
        ("POST", "/v1/instances") => {
            let body = json!({"name": w.fresh("inst"), "image": "busybox", "project": "team-a", "start": false, "memory_bytes": 33554432});
            (case(route, Some(body)), [401, 403, 202, 202, 404, 401, 403])
        }
        ("GET", "/v1/instances/{id}")
        | ("GET", "/v1/instances/{id}/stats")
        | ("GET", "/v1/instances/{id}/metrics")
        | ("GET", "/v1/instances/{id}/logs") => (case(route.replace("{id}", "app"), None), MEMBER_READ),
        ("GET", "/v1/instances/{id}/wait") => {
            (case("/v1/instances/app/wait?status=running&timeout=1s", None), MEMBER_READ)
        }
        ("GET", "/v1/instances/{id}/files") => {
            (case("/v1/instances/app/files?path=/etc/hostname", None), [401, 403, 200, 200, 404, 401, 403])
        }
        ("PUT", "/v1/instances/{id}/files") => (
            case("/v1/instances/app/files?path=/tmp", None).with_raw(tiny_tarball()),
            [401, 403, 204, 204, 404, 401, 403],
        ),
        // A plain GET is not an upgrade: authorized callers get 400.
        ("GET", "/v1/instances/{id}/exec") => {
            (case("/v1/instances/app/exec", None), [401, 403, 400, 400, 404, 401, 403])
        }
        ("DELETE", "/v1/instances/{id}")
        | ("POST", "/v1/instances/{id}/start")
        | ("POST", "/v1/instances/{id}/stop")
        | ("POST", "/v1/instances/{id}/restart") => {
            let name = w.fresh("target");
            let req = roost_api::instances::CreateInstanceRequest {
                name: name.clone(),
                image: "busybox".into(),
                project: Some("team-a".into()),
                start: Some(false),
                memory_bytes: Some(32 << 20),
                ..Default::default()
            };
            w.admin.create_instance(&req).await.unwrap();
            let suffix = route.trim_start_matches("/v1/instances/{id}");
            (case(format!("/v1/instances/{name}{suffix}"), None), [401, 403, 202, 202, 404, 401, 403])
        }
        ("GET", "/v1/networks") | ("GET", "/v1/security-groups") | ("GET", "/v1/port-forwards") => {
            (case(route, None), ANY_USER)
        }
        ("POST", "/v1/networks") => (
            case(route, Some(json!({"name": w.fresh("net"), "project": "team-a"}))),
            [401, 403, 201, 201, 404, 401, 403],
        ),
        ("GET", "/v1/networks/{id}") => (case("/v1/networks/default?project=team-a", None), MEMBER_READ),
        ("DELETE", "/v1/networks/{id}") => {
            let name = w.network().await;
            (case(format!("/v1/networks/{name}?project=team-a"), None), [401, 403, 204, 204, 404, 401, 403])
        }
        ("POST", "/v1/networks/{id}/peers") => {
            let name = w.network().await;
            let path = format!("/v1/networks/{name}/peers?project=team-a");
            (case(path, Some(json!({"network": "default"}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("DELETE", "/v1/networks/{id}/peers/{peer}") => {
            let name = w.network().await;
            w.admin.peer_networks(&name, "default", Some("team-a")).await.unwrap();
            (
                case(format!("/v1/networks/{name}/peers/default?project=team-a"), None),
                [401, 403, 200, 200, 404, 401, 403],
            )
        }
        ("POST", "/v1/security-groups") => {
            let body = json!({"name": w.fresh("sg"), "project": "team-a"});
            (case(route, Some(body)), [401, 403, 201, 201, 404, 401, 403])
        }
        ("GET", "/v1/security-groups/{id}") => (case("/v1/security-groups/default?project=team-a", None), MEMBER_READ),
        ("DELETE", "/v1/security-groups/{id}") => {
            let name = w.fresh("sg");
            let req = roost_api::networks::CreateSecurityGroupRequest {
                name: name.clone(),
                project: Some("team-a".into()),
                ..Default::default()
            };
            w.admin.create_security_group(&req).await.unwrap();
            (case(format!("/v1/security-groups/{name}?project=team-a"), None), [401, 403, 204, 204, 404, 401, 403])
        }
        ("POST", "/v1/security-groups/{id}/rules") => {
            let body = json!({"direction": "ingress", "protocol": "tcp", "ports": "80"});
            (case("/v1/security-groups/default/rules?project=team-a", Some(body)), [401, 403, 201, 201, 404, 401, 403])
        }
        ("DELETE", "/v1/security-groups/{id}/rules/{rule}") => {
            let name = w.fresh("sg");
            let req = roost_api::networks::CreateSecurityGroupRequest {
                name: name.clone(),
                project: Some("team-a".into()),
                ..Default::default()
            };
            let g = w.admin.create_security_group(&req).await.unwrap();
            let rule = &g.rules[0].id;
            (
                case(format!("/v1/security-groups/{name}/rules/{rule}?project=team-a"), None),
                [401, 403, 200, 200, 404, 401, 403],
            )
        }
        ("POST", "/v1/instances/{id}/networks") => {
            let (net, inst) = (w.network().await, w.stopped_instance().await);
            let path = format!("/v1/instances/{inst}/networks?project=team-a");
            (case(path, Some(json!({"network": net}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("DELETE", "/v1/instances/{id}/networks/{network}") => {
            let inst = w.stopped_instance().await;
            (
                case(format!("/v1/instances/{inst}/networks/default?project=team-a"), None),
                [401, 403, 200, 200, 404, 401, 403],
            )
        }
        ("PUT", "/v1/instances/{id}/security-groups") => {
            let body = json!({"security_groups": ["default"]});
            (case("/v1/instances/app/security-groups", Some(body)), [401, 403, 200, 200, 404, 401, 403])
        }
        ("POST", "/v1/instances/{id}/ports") => {
            let body = json!({"host_port": w.port(), "instance_port": 80});
            (case("/v1/instances/app/ports", Some(body)), [401, 403, 201, 201, 404, 401, 403])
        }
        ("DELETE", "/v1/instances/{id}/ports/{port}") => {
            let req = roost_api::networks::CreatePortForwardRequest {
                host_port: w.port(),
                instance_port: 80,
                protocol: None,
            };
            let f = w.admin.add_port_forward("app", Some("team-a"), &req).await.unwrap();
            (case(format!("/v1/instances/app/ports/{}", f.id), None), [401, 403, 204, 204, 404, 401, 403])
        }
        ("GET", "/v1/buckets") => (case(route, None), ANY_USER),
        ("POST", "/v1/buckets") => {
            let body = json!({"name": w.fresh("bkt"), "project": "team-a"});
            (case(route, Some(body)), [401, 403, 201, 201, 404, 401, 403])
        }
        ("GET", "/v1/buckets/{id}") => (case("/v1/buckets/photos-a", None), MEMBER_READ),
        ("DELETE", "/v1/buckets/{id}") => {
            let name = w.fresh("gone-bkt");
            let req = roost_api::buckets::CreateBucketRequest {
                name: name.clone(),
                project: Some("team-a".into()),
                public_read: None,
            };
            w.admin.create_bucket(&req).await.unwrap();
            (case(format!("/v1/buckets/{name}"), None), [401, 403, 204, 204, 404, 401, 403])
        }
        // Reading members may presign GETs (with a presign key made for them); a read-scoped
        // token may not POST at all.
        ("POST", "/v1/buckets/{id}/presign") => {
            (case("/v1/buckets/photos-a/presign", Some(json!({"key": "a/b.txt"}))), [401, 200, 200, 200, 404, 401, 403])
        }
        ("GET", "/v1/buckets/{id}/objects") => (case("/v1/buckets/photos-a/objects?delimiter=/", None), MEMBER_READ),
        ("GET", "/v1/buckets/{id}/objects/{key}") => {
            let http = common::http();
            let url = format!("{}/v1/buckets/photos-a/objects/dir/readme.txt", w.server.url);
            let put = http.put(url).bearer_auth(w.admin.token().unwrap()).body("hi").send().await.unwrap();
            assert_eq!(put.status().as_u16(), 201);
            (case("/v1/buckets/photos-a/objects/dir/readme.txt", None), MEMBER_READ)
        }
        ("PUT", "/v1/buckets/{id}/objects/{key}") => (
            case(format!("/v1/buckets/photos-a/objects/up/{}.txt", w.fresh("obj")), None).with_raw(b"data".to_vec()),
            [401, 403, 201, 201, 404, 401, 403],
        ),
        ("DELETE", "/v1/buckets/{id}/objects/{key}") => {
            let key = format!("gone/{}.txt", w.fresh("obj"));
            let http = common::http();
            let url = format!("{}/v1/buckets/photos-a/objects/{key}", w.server.url);
            let put = http.put(url).bearer_auth(w.admin.token().unwrap()).body("x").send().await.unwrap();
            assert_eq!(put.status().as_u16(), 201);
            (case(format!("/v1/buckets/photos-a/objects/{key}"), None), [401, 403, 204, 204, 404, 401, 403])
        }
        ("GET", "/v1/s3-keys") => (case(route, None), ANY_USER),
        ("POST", "/v1/s3-keys") => (case(route, Some(json!({}))), [401, 201, 201, 201, 201, 401, 403]),
        ("GET", "/v1/s3-keys/{id}") => {
            let owner = match cell {
                "read_token" | "anonymous" => "admin",
                "expired" => "operator",
                other => other,
            };
            (case(format!("/v1/s3-keys/{}", w.s3_keys[owner]), None), ANY_USER)
        }
        ("DELETE", "/v1/s3-keys/{id}") => {
            let key = w.owner_client(cell).create_s3_key(&Default::default()).await.unwrap();
            (case(format!("/v1/s3-keys/{}", key.key.id), None), [401, 204, 204, 204, 204, 401, 403])
        }
        ("GET", "/v1/volumes") | ("GET", "/v1/snapshots") | ("GET", "/v1/backup-policies") => {
            (case(route, None), ANY_USER)
        }
        ("POST", "/v1/volumes") => {
            let body = json!({"name": w.fresh("vol"), "size_bytes": 16 << 20, "project": "team-a"});
            (case(route, Some(body)), [401, 403, 201, 201, 404, 401, 403])
        }
        ("GET", "/v1/volumes/{id}") => {
            (case(format!("/v1/volumes/{}?project=team-a", w.volume().await), None), MEMBER_READ)
        }
        ("DELETE", "/v1/volumes/{id}") => (
            case(format!("/v1/volumes/{}?project=team-a", w.volume().await), None),
            [401, 403, 204, 204, 404, 401, 403],
        ),
        ("POST", "/v1/volumes/{id}/resize") => {
            let path = format!("/v1/volumes/{}/resize?project=team-a", w.volume().await);
            (case(path, Some(json!({"size_bytes": 32 << 20}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("POST", "/v1/volumes/{id}/attach") => {
            let (volume, inst) = (w.volume().await, w.stopped_instance().await);
            let path = format!("/v1/volumes/{volume}/attach?project=team-a");
            (case(path, Some(json!({"instance": inst, "path": "/data"}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("POST", "/v1/volumes/{id}/detach") => {
            let (volume, inst) = (w.volume().await, w.stopped_instance().await);
            let req = roost_api::volumes::AttachVolumeRequest { instance: inst, path: "/data".into(), read_only: None };
            w.admin.attach_volume(&volume, &req, Some("team-a")).await.unwrap();
            let path = format!("/v1/volumes/{volume}/detach?project=team-a");
            (case(path, Some(json!({}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("POST", "/v1/volumes/{id}/restore") => {
            let (volume, snap) = w.snapshot().await;
            let path = format!("/v1/volumes/{volume}/restore?project=team-a");
            (case(path, Some(json!({"snapshot": snap}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("POST", "/v1/snapshots") => {
            let body = json!({"volume": w.volume().await, "name": w.fresh("snap"), "project": "team-a"});
            (case(route, Some(body)), [401, 403, 201, 201, 404, 401, 403])
        }
        ("GET", "/v1/snapshots/{id}") => {
            (case(format!("/v1/snapshots/{}?project=team-a", w.snapshot().await.1), None), MEMBER_READ)
        }
        ("DELETE", "/v1/snapshots/{id}") => (
            case(format!("/v1/snapshots/{}?project=team-a", w.snapshot().await.1), None),
            [401, 403, 204, 204, 404, 401, 403],
        ),
        ("POST", "/v1/backup-policies") => {
            let body = json!({"name": w.fresh("bkp"), "volume": w.volume().await, "cron": "0 2 * * *", "keep": 3, "project": "team-a"});
            (case(route, Some(body)), [401, 403, 201, 201, 404, 401, 403])
        }
        ("GET", "/v1/backup-policies/{id}") => {
            (case(format!("/v1/backup-policies/{}?project=team-a", w.policy().await), None), MEMBER_READ)
        }
        ("DELETE", "/v1/backup-policies/{id}") => (
            case(format!("/v1/backup-policies/{}?project=team-a", w.policy().await), None),
            [401, 403, 204, 204, 404, 401, 403],
        ),
        ("POST", "/v1/backup-policies/{id}/run") => (
            case(format!("/v1/backup-policies/{}/run?project=team-a", w.policy().await), None),
            [401, 403, 200, 200, 404, 401, 403],
        ),
        ("POST", "/v1/instances/{id}/snapshot") => {
            let path = format!("/v1/instances/{}/snapshot?project=team-a", w.stopped_instance().await);
            (case(path, Some(json!({"name": w.fresh("isnap")}))), [401, 403, 201, 201, 404, 401, 403])
        }
        ("POST", "/v1/instances/{id}/clone") => {
            let path = format!("/v1/instances/{}/clone?project=team-a", w.stopped_instance().await);
            (case(path, Some(json!({"name": w.fresh("clone"), "start": false}))), [401, 403, 202, 202, 404, 401, 403])
        }
        ("GET", "/v1/node") => (case(route, None), ANY_USER),
        ("GET", "/v1/ssh-keys") => (case(route, None), ANY_USER),
        ("POST", "/v1/ssh-keys") => {
            (case(route, Some(json!({"name": w.fresh("key")}))), [401, 201, 201, 201, 201, 401, 403])
        }
        ("GET", "/v1/ssh-keys/{id}") | ("DELETE", "/v1/ssh-keys/{id}") => {
            let name = w.fresh("sshk");
            let req = roost_api::ssh_keys::CreateSshKeyRequest { name: name.clone(), public_key: None };
            w.owner_client(cell).create_ssh_key(&req).await.unwrap();
            let row = if method == "GET" { ANY_USER } else { [401, 204, 204, 204, 204, 401, 403] };
            (case(format!("/v1/ssh-keys/{name}"), None), row)
        }
        ("GET", "/v1/sandbox-keys") => (case(route, None), ANY_USER),
        ("POST", "/v1/sandbox-keys") => {
            let body = json!({"name": w.fresh("sbk"), "project": "team-a"});
            (case(route, Some(body)), [401, 403, 201, 201, 404, 401, 403])
        }
        // A key otto (operator in team-a) made: he or an admin may revoke it; others who
        // see it may not.
        ("DELETE", "/v1/sandbox-keys/{id}") => {
            let req = roost_api::sandboxes::CreateSandboxKeyRequest {
                name: w.fresh("sbk"),
                project: Some("team-a".into()),
                ..Default::default()
            };
            let key = w.client_of("operator").unwrap().create_sandbox_key(&req).await.unwrap();
            (case(format!("/v1/sandbox-keys/{}", key.key.id), None), [401, 403, 204, 204, 404, 401, 403])
        }
        ("GET", "/v1/sandboxes") | ("GET", "/v1/sandbox-usage") => (case(route, None), ANY_USER),
        ("GET", "/v1/sandbox-pool") => (case(route, None), ANY_USER),
        // A create that passes the checks finds no such template (`base` is builtin and
        // would build and start a real sandbox).
        ("POST", "/v1/sandboxes") => {
            let body = json!({"project": "team-a", "template": "no-such-template"});
            (case(route, Some(body)), [401, 403, 404, 404, 404, 401, 403])
        }
        ("GET", "/v1/sandboxes/{id}") => {
            (case("/v1/sandboxes/sbx-aaaaaaaaaaaa", None), [401, 404, 404, 404, 404, 401, 404])
        }
        ("DELETE", "/v1/sandboxes/{id}")
        | ("POST", "/v1/sandboxes/{id}/pause")
        | ("POST", "/v1/sandboxes/{id}/resume") => {
            let path = route.replace("{id}", "sbx-aaaaaaaaaaaa");
            (case(path, None), [401, 404, 404, 404, 404, 401, 403])
        }
        ("POST", "/v1/sandboxes/{id}/timeout") => (
            case("/v1/sandboxes/sbx-aaaaaaaaaaaa/timeout", Some(json!({"ttl_secs": 60}))),
            [401, 404, 404, 404, 404, 401, 403],
        ),
        ("GET", "/v1/sandboxes/{id}/urls/{port}") => {
            (case("/v1/sandboxes/sbx-aaaaaaaaaaaa/urls/8000", None), [401, 404, 404, 404, 404, 401, 403])
        }
        // Processes and files of a sandbox: the list is a read; the rest runs commands in
        // it (so needs write scope before the lookup, like the instance exec).
        ("GET", "/v1/sandboxes/{id}/processes") => {
            (case("/v1/sandboxes/sbx-aaaaaaaaaaaa/processes", None), [401, 404, 404, 404, 404, 401, 404])
        }
        ("POST", "/v1/sandboxes/{id}/processes") => (
            case("/v1/sandboxes/sbx-aaaaaaaaaaaa/processes", Some(json!({"cmd": "true"}))),
            [401, 404, 404, 404, 404, 401, 403],
        ),
        ("POST", "/v1/sandboxes/{id}/processes/{pid}/signal") => (
            case("/v1/sandboxes/sbx-aaaaaaaaaaaa/processes/1000/signal", Some(json!({"signal": "TERM"}))),
            [401, 404, 404, 404, 404, 401, 403],
        ),
        ("GET", "/v1/sandboxes/{id}/processes/{pid}/attach") => {
            (case("/v1/sandboxes/sbx-aaaaaaaaaaaa/processes/1000/attach", None), [401, 404, 404, 404, 404, 401, 403])
        }
        ("GET", "/v1/sandboxes/{id}/dirs")
        | ("GET", "/v1/sandboxes/{id}/files")
        | ("DELETE", "/v1/sandboxes/{id}/files") => {
            let path = format!("{}?path=/tmp/x", route.replace("{id}", "sbx-aaaaaaaaaaaa"));
            (case(path, None), [401, 404, 404, 404, 404, 401, 403])
        }
        ("POST", "/v1/sandboxes/{id}/dirs") => (
            case("/v1/sandboxes/sbx-aaaaaaaaaaaa/dirs", Some(json!({"path": "/tmp/x"}))),
            [401, 404, 404, 404, 404, 401, 403],
        ),
        ("PUT", "/v1/sandboxes/{id}/files") => (
            case("/v1/sandboxes/sbx-aaaaaaaaaaaa/files?path=/tmp/x", None).with_raw(b"data".to_vec()),
            [401, 404, 404, 404, 404, 401, 403],
        ),
        ("POST", "/v1/sandboxes/{id}/files/move") => (
            case("/v1/sandboxes/sbx-aaaaaaaaaaaa/files/move", Some(json!({"from": "/tmp/a", "to": "/tmp/b"}))),
            [401, 404, 404, 404, 404, 401, 403],
        ),
        ("GET", "/v1/sandbox-templates") => (case(route, None), ANY_USER),
        // A build that passes the checks finds no such base (a real one would build).
        ("POST", "/v1/sandbox-templates") => {
            let body =
                json!({"name": w.fresh("tpl"), "from": "no-such-template", "run": ["true"], "project": "team-a"});
            (case(route, Some(body)), [401, 403, 404, 404, 404, 401, 403])
        }
        ("GET", "/v1/sandbox-templates/{id}") => (case("/v1/sandbox-templates/base", None), ANY_USER),
        ("DELETE", "/v1/sandbox-templates/{id}") => {
            (case("/v1/sandbox-templates/no-such-template?project=team-a", None), [401, 404, 404, 404, 404, 401, 403])
        }
        // Updates: what writes the resource may change it; a read-scoped token may not.
        ("PATCH", "/v1/instances/{id}") => {
            (case("/v1/instances/app", Some(json!({"labels": {"seen": "yes"}}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("PATCH", "/v1/networks/{id}") => {
            let name = w.network().await;
            (
                case(format!("/v1/networks/{name}?project=team-a"), Some(json!({"dns": true}))),
                [401, 403, 200, 200, 404, 401, 403],
            )
        }
        ("PATCH", "/v1/security-groups/{id}") => (
            case("/v1/security-groups/default?project=team-a", Some(json!({"description": "d"}))),
            [401, 403, 200, 200, 404, 401, 403],
        ),
        ("PATCH", "/v1/volumes/{id}") => {
            let path = format!("/v1/volumes/{}?project=team-a", w.volume().await);
            (case(path, Some(json!({"name": w.fresh("renamed")}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("PATCH", "/v1/snapshots/{id}") => {
            let path = format!("/v1/snapshots/{}?project=team-a", w.snapshot().await.1);
            (case(path, Some(json!({"description": "d"}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("PATCH", "/v1/backup-policies/{id}") => {
            let path = format!("/v1/backup-policies/{}?project=team-a", w.policy().await);
            (case(path, Some(json!({"keep": 4}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("PATCH", "/v1/buckets/{id}") => {
            (case("/v1/buckets/photos-a", Some(json!({"versioning": "Enabled"}))), [401, 403, 200, 200, 404, 401, 403])
        }
        ("PATCH", "/v1/images/{id}") => {
            let name = w.fresh("desc-img");
            w.admin.import_image(&name, Some("team-a"), reqwest::Body::from(tiny_tarball())).await.unwrap();
            (case(format!("/v1/images/{name}"), Some(json!({"description": "d"}))), [401, 403, 200, 200, 404, 401, 403])
        }
        // Your own keys and tokens: anyone signed in, with a writing credential.
        ("PATCH", "/v1/s3-keys/{id}") => {
            let key = w.owner_client(cell).create_s3_key(&Default::default()).await.unwrap();
            let path = format!("/v1/s3-keys/{}", key.key.id);
            (case(path, Some(json!({"description": "d"}))), [401, 200, 200, 200, 200, 401, 403])
        }
        ("PATCH", "/v1/ssh-keys/{id}") => {
            let name = w.fresh("sshk");
            let req = roost_api::ssh_keys::CreateSshKeyRequest { name: name.clone(), public_key: None };
            w.owner_client(cell).create_ssh_key(&req).await.unwrap();
            let body = json!({"name": w.fresh("sshk")});
            (case(format!("/v1/ssh-keys/{name}"), Some(body)), [401, 200, 200, 200, 200, 401, 403])
        }
        ("PATCH", "/v1/tokens/{id}") => {
            let name = w.fresh("tok");
            w.owner_client(cell)
                .create_token(&CreateTokenRequest { name: name.clone(), ..Default::default() })
                .await
                .unwrap();
            let body = json!({"name": w.fresh("tok")});
            (case(format!("/v1/tokens/{name}"), Some(body)), [401, 200, 200, 200, 200, 401, 403])
        }
        ("GET", "/v1/sandbox-keys/{id}") | ("PATCH", "/v1/sandbox-keys/{id}") => {
            let req = roost_api::sandboxes::CreateSandboxKeyRequest {
                name: w.fresh("sbk"),
                project: Some("team-a".into()),
                ..Default::default()
            };
            let key = w.admin.create_sandbox_key(&req).await.unwrap().key.id;
            if method == "GET" {
                (case(format!("/v1/sandbox-keys/{key}"), None), MEMBER_READ)
            } else {
                let body = json!({"max_sandboxes": 5});
                (case(format!("/v1/sandbox-keys/{key}"), Some(body)), [401, 403, 200, 200, 404, 401, 403])
            }
        }
        _ => return None,
    })
}

#[tokio::test]
async fn every_route_answers_every_caller_as_the_matrix_says() {
    let world = setup().await;
    let doc = serde_json::to_value(roost_http::openapi::document()).unwrap();
    let http = common::http();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (route, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            for (i, cell) in CELLS.iter().enumerate() {
                let Some((case, expected)) = entry(&world, &method, route, cell).await else {
                    failures.push(format!("{method} {route}: no entry in the authorization matrix"));
                    break;
                };
                let credential = case.credential.clone().unwrap_or_else(|| world.creds[cell].clone());
                let mut req = http.request(method.parse().unwrap(), format!("{}{}", world.server.url, case.path));
                if let Some(token) = credential {
                    req = req.bearer_auth(token);
                }
                if let Some(body) = &case.body {
                    req = req.json(body);
                }
                if let Some(raw) = &case.raw {
                    req = req.body(raw.clone());
                }
                let response = req.send().await.unwrap();
                let got = response.status().as_u16();
                checked += 1;
                if got != expected[i] {
                    let body =
                        if route == "/v1/events" { String::new() } else { response.text().await.unwrap_or_default() };
                    failures
                        .push(format!("{method} {} as {cell}: expected {}, got {got} {body}", case.path, expected[i]));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cells failed:\n{}", failures.len(), failures.join("\n"));
    let operations: usize =
        doc["paths"].as_object().unwrap().values().map(|item| item.as_object().unwrap().len()).sum();
    assert_eq!(checked, operations * CELLS.len(), "every operation ran for every caller");
}

/// A user, logged in: `role` server-wide, with these project memberships.
async fn member(server: &SimServer, admin: &Client, name: &str, role: Role, memberships: &[(&str, Role)]) -> Client {
    let password = format!("{name}-password");
    let req = CreateUserRequest {
        name: name.into(),
        role: Some(role),
        password: Some(password.clone()),
        projects: Some(vec![]),
        ..Default::default()
    };
    admin.create_user(&req).await.unwrap();
    for (project, role) in memberships {
        admin.set_member(project, name, *role).await.unwrap();
    }
    let session = server.anonymous().login(name, &password).await.unwrap();
    Client::new(&server.url, Some(session.token)).unwrap()
}

fn status_of(e: &roost_client::ClientError) -> u16 {
    e.status().map(|s| s.as_u16()).unwrap_or(0)
}

/// An operator of team-a who only views team-b cannot put team-a's volume into team-b's
/// running instance, whichever way the instance is named: the volume and the instance
/// must be in one project, and the caller must be able to change that project.
#[tokio::test]
async fn a_volume_is_attached_only_within_its_project() {
    let server = SimServer::start();
    let admin = server.admin().await;
    for name in ["team-a", "team-b"] {
        admin.create_project(&CreateProjectRequest { name: name.into(), description: None }).await.unwrap();
    }
    let otto =
        member(&server, &admin, "otto", Role::Operator, &[("team-a", Role::Operator), ("team-b", Role::Viewer)]).await;
    let victim = roost_api::instances::CreateInstanceRequest {
        name: "victim".into(),
        image: "busybox".into(),
        project: Some("team-b".into()),
        memory_bytes: Some(32 << 20),
        ..Default::default()
    };
    let victim = admin.create_instance(&victim).await.unwrap().instance;
    admin
        .wait_instance(&victim.id, roost_api::instances::InstanceStatus::Running, Duration::from_secs(60))
        .await
        .unwrap();
    let volume = roost_api::volumes::CreateVolumeRequest {
        name: "keys".into(),
        size_bytes: Some(16 << 20),
        project: Some("team-a".into()),
        ..Default::default()
    };
    otto.create_volume(&volume).await.unwrap();
    // By the instance's id (the name does not resolve in team-a), with and without the project.
    for project in [Some("team-a"), None] {
        let req = roost_api::volumes::AttachVolumeRequest {
            instance: victim.id.clone(),
            path: "/root/.ssh".into(),
            read_only: None,
        };
        let err = otto.attach_volume("keys", &req, project).await.expect_err("attached into team-b");
        assert!(matches!(status_of(&err), 400 | 403 | 404), "{err}");
    }
    let shown = admin.get_volume("keys", Some("team-a")).await.unwrap();
    assert!(shown.instance_id.is_none(), "the volume is attached: {shown:?}");
    // Nor at create: an instance in team-b with team-a's volume (otto may not create in
    // team-b at all; the admin may, but not with another project's volume).
    let mut with_volume = roost_api::instances::CreateInstanceRequest {
        name: "borrower".into(),
        image: "busybox".into(),
        project: Some("team-b".into()),
        start: Some(false),
        memory_bytes: Some(32 << 20),
        ..Default::default()
    };
    with_volume.volumes = vec![roost_api::volumes::VolumeMountRequest {
        volume: shown.id.clone(),
        path: "/data".into(),
        read_only: None,
    }];
    let err = admin.create_instance(&with_volume).await.expect_err("another project's volume at create");
    assert_eq!(status_of(&err), 400, "{err}");
    // Within team-a it works as before.
    let own = roost_api::instances::CreateInstanceRequest {
        name: "own".into(),
        image: "busybox".into(),
        project: Some("team-a".into()),
        start: Some(false),
        memory_bytes: Some(32 << 20),
        ..Default::default()
    };
    let own = otto.create_instance(&own).await.unwrap().instance;
    let req =
        roost_api::volumes::AttachVolumeRequest { instance: own.id.clone(), path: "/data".into(), read_only: None };
    otto.attach_volume("keys", &req, Some("team-a")).await.unwrap();
}
