//! Object storage end to end: the real server driven by real S3 clients. boto3 (pinned,
//! in `target/pyenv`, installed by `scripts/install-deps.sh --test`) runs
//! `tests/s3/boto3_suite.py`; Debian's AWS CLI and curl run here; the REST API and the
//! `roost` CLI manage buckets and keys.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{ADMIN_PASSWORD, ServerOptions, TestServer, stderr, stdout};
use roost_api::auth::Role;
use roost_api::buckets::{CreateBucketRequest, CreateS3KeyRequest, CreatedS3Key, PresignMethod, PresignRequest};
use roost_api::projects::{CreateProjectRequest, Quota};
use roost_api::users::CreateUserRequest;
use roost_client::Client;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A prerequisite the suite cannot run without: fails naming what installs it.
fn require(path: &Path, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{} is missing: {what} (run `scripts/install-deps.sh --test`, which `make test` does)",
        path.display()
    );
    path.to_path_buf()
}

fn python() -> PathBuf {
    let py = require(
        &workspace_root().join("target/pyenv/bin/python"),
        "a virtualenv with boto3 (Debian package 'python3-venv', boto3 from PyPI)",
    );
    let ok = Command::new(&py).args(["-c", "import boto3"]).status().map(|s| s.success()).unwrap_or(false);
    assert!(ok, "boto3 is not importable in target/pyenv: run `scripts/install-deps.sh --test`");
    py
}

fn aws() -> PathBuf {
    require(Path::new("/usr/bin/aws"), "the AWS CLI (Debian package 'awscli')")
}

fn curl() -> PathBuf {
    require(Path::new("/usr/bin/curl"), "curl (Debian package 'curl')")
}

fn s3_url(server: &TestServer) -> String {
    server.s3_url.clone().expect("the test server prints its S3 endpoint in the banner")
}

async fn key(client: &Client, read_only: bool) -> CreatedS3Key {
    client.create_s3_key(&CreateS3KeyRequest { read_only, ..Default::default() }).await.unwrap()
}

/// A user with an operator session in their own project only.
async fn outsider(server: &TestServer, admin: &Client) -> Client {
    admin.create_project(&CreateProjectRequest { name: "elsewhere".into(), description: None }).await.unwrap();
    let req = CreateUserRequest {
        name: "bob".into(),
        role: Some(Role::Operator),
        password: Some("bob-password-1".into()),
        projects: Some(vec!["elsewhere".into()]),
        ..Default::default()
    };
    admin.create_user(&req).await.unwrap();
    let session = server.anonymous().login("bob", "bob-password-1").await.unwrap();
    Client::new(&server.url, Some(session.token)).unwrap()
}

#[tokio::test]
async fn boto3_drives_every_operation() {
    let py = python();
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into(), "--s3-housekeeping-interval".into(), "1s".into()]);
    // Lifecycle "days" last 2 seconds on this server, so rules can be seen applied.
    opts.env.push(("ROOST_S3_DAY_SECONDS".into(), "2".into()));
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    let full = key(&admin, false).await;
    let ro = key(&admin, true).await;
    let bob = outsider(&server, &admin).await;
    let other = key(&bob, false).await;
    let script = workspace_root().join("crates/roost/tests/s3/boto3_suite.py");
    let started = Instant::now();
    let out = Command::new(py)
        .arg(&script)
        .env("S3_ENDPOINT", s3_url(&server))
        .env("KEY_ID", &full.key.id)
        .env("SECRET", &full.secret)
        .env("RO_KEY_ID", &ro.key.id)
        .env("RO_SECRET", &ro.secret)
        .env("OTHER_KEY_ID", &other.key.id)
        .env("OTHER_SECRET", &other.secret)
        .env("LIFECYCLE_DAY_SECONDS", "2")
        .env("OBJECTS_DIR", server.data_path().join("objects"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap();
    println!("{}", stdout(&out));
    assert!(
        out.status.success(),
        "the boto3 suite failed after {:?}:\n{}\n{}\nserver output:\n{}",
        started.elapsed(),
        stdout(&out),
        stderr(&out),
        server.output()
    );
    assert!(stdout(&out).contains("all checks passed"));
    // Nothing the suite left behind stays on disk: its bucket was deleted.
    let objects = server.data_path().join("objects");
    let leftovers: Vec<_> =
        std::fs::read_dir(&objects).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(leftovers.is_empty(), "bucket directories left: {leftovers:?}");
}

/// Runs the AWS CLI against the server with only the given key (no profile, no config).
fn aws_cli(server: &TestServer, key: &CreatedS3Key, args: &[&str], dir: &Path) -> Output {
    Command::new(aws())
        .arg("--endpoint-url")
        .arg(s3_url(server))
        .args(args)
        .current_dir(dir)
        .env("AWS_ACCESS_KEY_ID", &key.key.id)
        .env("AWS_SECRET_ACCESS_KEY", &key.secret)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_PAGER", "")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed:\n{}\n{}", stdout(&out), stderr(&out));
    stdout(&out)
}

/// `curl -s -o <out> -w %{http_code}`: the status and the body.
fn curl_status(args: &[&str]) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let out =
        Command::new(curl()).args(["-s", "-o"]).arg(&body).args(["-w", "%{http_code}"]).args(args).output().unwrap();
    (stdout(&out).trim().parse().unwrap_or(0), std::fs::read(&body).unwrap_or_default())
}

fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    stdout(&out).split_whitespace().next().unwrap().to_string()
}

#[tokio::test]
async fn aws_cli_roost_cli_and_curl() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into()]);
    let server = TestServer::start_with(opts);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(
        server.cli(&["login", "--username", "admin", "--password-stdin"], Some(&format!("{ADMIN_PASSWORD}\n")), &[]),
        "login",
    );

    // Buckets and keys through the roost CLI.
    ok(server.cli(&["bucket", "create", "photos"], None, &[]), "roost bucket create");
    let created = ok(server.cli(&["s3-key", "create", "-o", "json"], None, &[]), "roost s3-key create");
    let key: CreatedS3Key = serde_json::from_str(&created).unwrap();
    assert!(key.key.id.starts_with("RK") && key.key.id.len() == 20 && key.secret.len() == 40, "{created}");
    let text = ok(server.cli(&["s3-key", "create", "--bucket", "photos", "--read-only"], None, &[]), "s3-key create");
    assert!(text.contains("Access key id:") && text.contains("Secret access key:"), "{text}");
    let listed = ok(server.cli(&["s3-key", "ls"], None, &[]), "s3-key ls");
    assert!(listed.contains(&key.key.id) && !listed.contains(&key.secret), "{listed}");

    // The AWS CLI: buckets, simple and multipart uploads, listing, ranges, sync.
    ok(aws_cli(&server, &key, &["s3", "mb", "s3://cli-bucket"], d), "aws s3 mb");
    let ls = ok(aws_cli(&server, &key, &["s3", "ls"], d), "aws s3 ls");
    assert!(ls.contains("photos") && ls.contains("cli-bucket"), "{ls}");
    std::fs::write(d.join("hello.txt"), "hello from the aws cli\n").unwrap();
    ok(
        aws_cli(&server, &key, &["s3", "cp", "--no-progress", "hello.txt", "s3://photos/dir/hello.txt"], d),
        "aws s3 cp up",
    );
    let big = d.join("big.bin");
    ok(
        Command::new("dd")
            .args(["if=/dev/urandom", "bs=1M", "count=24", "status=none"])
            .arg(format!("of={}", big.display()))
            .output()
            .unwrap(),
        "dd",
    );
    ok(
        aws_cli(&server, &key, &["s3", "cp", "--no-progress", "big.bin", "s3://photos/big.bin"], d),
        "aws multipart upload",
    );
    let head =
        ok(aws_cli(&server, &key, &["s3api", "head-object", "--bucket", "photos", "--key", "big.bin"], d), "head");
    assert!(head.contains("\"ContentLength\": 25165824") && head.contains("-3\\\""), "multipart ETag: {head}");
    ok(aws_cli(&server, &key, &["s3", "cp", "--no-progress", "s3://photos/big.bin", "big.down"], d), "aws s3 cp down");
    assert_eq!(sha256_file(&big), sha256_file(&d.join("big.down")), "the downloaded object differs");
    let md5 = Command::new("sh")
        .arg("-c")
        .arg("openssl dgst -md5 -binary hello.txt | base64")
        .current_dir(d)
        .output()
        .unwrap();
    let md5 = stdout(&md5).trim().to_string();
    ok(
        aws_cli(
            &server,
            &key,
            &[
                "s3api",
                "put-object",
                "--bucket",
                "photos",
                "--key",
                "md5.txt",
                "--body",
                "hello.txt",
                "--content-md5",
                &md5,
                "--content-type",
                "text/plain",
                "--metadata",
                "k=v",
            ],
            d,
        ),
        "put-object --content-md5",
    );
    let bad = aws_cli(
        &server,
        &key,
        &["s3api", "put-object", "--bucket", "photos", "--key", "bad.txt", "--body", "big.bin", "--content-md5", &md5],
        d,
    );
    assert!(!bad.status.success() && stderr(&bad).contains("BadDigest"), "{}", stderr(&bad));
    ok(
        aws_cli(
            &server,
            &key,
            &[
                "s3api",
                "get-object",
                "--bucket",
                "photos",
                "--key",
                "dir/hello.txt",
                "--range",
                "bytes=0-4",
                "part.txt",
            ],
            d,
        ),
        "ranged get",
    );
    assert_eq!(std::fs::read_to_string(d.join("part.txt")).unwrap(), "hello");
    std::fs::create_dir_all(d.join("site/css")).unwrap();
    std::fs::write(d.join("site/index.html"), "<h1>site</h1>").unwrap();
    std::fs::write(d.join("site/css/a.css"), "h1{}").unwrap();
    ok(aws_cli(&server, &key, &["s3", "sync", "--no-progress", "site", "s3://photos/site/"], d), "aws s3 sync");
    let v2 = ok(
        aws_cli(
            &server,
            &key,
            &["s3api", "list-objects-v2", "--bucket", "photos", "--prefix", "site/", "--delimiter", "/"],
            d,
        ),
        "list v2",
    );
    assert!(v2.contains("site/index.html") && v2.contains("\"Prefix\": \"site/css/\""), "{v2}");
    let v1 =
        ok(aws_cli(&server, &key, &["s3api", "list-objects", "--bucket", "photos", "--max-items", "2"], d), "list v1");
    assert!(v1.contains("NextToken"), "{v1}");
    let loc = ok(aws_cli(&server, &key, &["s3api", "get-bucket-location", "--bucket", "photos"], d), "location");
    assert!(loc.contains("LocationConstraint"), "{loc}");
    let copied = aws_cli(
        &server,
        &key,
        &["s3", "cp", "--no-progress", "s3://photos/dir/hello.txt", "s3://cli-bucket/copy.txt"],
        d,
    );
    ok(copied, "aws s3 cp (CopyObject)");

    // Presigned URLs with plain curl: the AWS CLI's and `roost bucket presign`'s.
    let url = ok(
        aws_cli(&server, &key, &["s3", "presign", "s3://photos/dir/hello.txt", "--expires-in", "300"], d),
        "presign",
    );
    let (status, body) = curl_status(&[url.trim()]);
    assert_eq!((status, body.as_slice()), (200, &b"hello from the aws cli\n"[..]));
    let url = ok(
        server.cli(&["bucket", "presign", "photos", "dir/hello.txt", "--expires", "1h"], None, &[]),
        "roost presign",
    );
    let (status, body) = curl_status(&[url.trim()]);
    assert_eq!((status, body.as_slice()), (200, &b"hello from the aws cli\n"[..]), "{url}");
    let tampered = url.trim().replace("dir/hello.txt", "dir/other.txt");
    assert_eq!(curl_status(&[&tampered]).0, 403, "a URL for another key is refused");
    let mut bad_sig = url.trim().to_string();
    let last = bad_sig.pop().unwrap();
    bad_sig.push(if last == '0' { '1' } else { '0' });
    assert_eq!(curl_status(&[&bad_sig]).0, 403, "a wrong signature is refused");
    let put = ok(
        server.cli(&["bucket", "presign", "photos", "uploaded.txt", "--method", "PUT", "--expires", "10m"], None, &[]),
        "presign PUT",
    );
    std::fs::write(d.join("up.txt"), "sent with curl").unwrap();
    let up = d.join("up.txt");
    assert_eq!(curl_status(&["-T", up.to_str().unwrap(), put.trim()]).0, 200);
    ok(
        aws_cli(&server, &key, &["s3", "cp", "--no-progress", "s3://photos/uploaded.txt", "uploaded.txt"], d),
        "get uploaded",
    );
    assert_eq!(std::fs::read_to_string(d.join("uploaded.txt")).unwrap(), "sent with curl");
    let short =
        ok(server.cli(&["bucket", "presign", "photos", "dir/hello.txt", "--expires", "1s"], None, &[]), "presign 1s");
    std::thread::sleep(Duration::from_millis(2500));
    let (status, body) = curl_status(&[short.trim()]);
    assert_eq!(status, 403, "an expired URL is refused: {}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("AccessDenied") || String::from_utf8_lossy(&body).contains("Expired")
    );
    let anonymous = curl_status(&[&format!("{}/photos/dir/hello.txt", s3_url(&server))]);
    assert_eq!(anonymous.0, 403, "no signature, private bucket");

    // `roost bucket ls` shows objects and size; rm is refused unless empty or --force.
    let ls = ok(server.cli(&["bucket", "ls"], None, &[]), "bucket ls");
    let line = ls.lines().find(|l| l.starts_with("photos")).unwrap_or_else(|| panic!("{ls}"));
    assert!(line.contains(" 6 ") && line.contains("MiB"), "objects and size: {line}");
    assert!(ls.lines().next().unwrap().contains("OBJECTS") && ls.contains("SIZE") && ls.contains("CREATED"), "{ls}");
    let refused = server.cli(&["bucket", "rm", "photos"], None, &[]);
    assert!(!refused.status.success() && stderr(&refused).contains("holds 6 object"), "{}", stderr(&refused));
    ok(server.cli(&["bucket", "rm", "photos", "--force"], None, &[]), "bucket rm --force");
    let ls = ok(aws_cli(&server, &key, &["s3", "ls"], d), "aws s3 ls");
    assert!(!ls.contains("photos") && ls.contains("cli-bucket"), "{ls}");
    ok(aws_cli(&server, &key, &["s3", "rm", "--recursive", "s3://cli-bucket/"], d), "aws s3 rm --recursive");
    ok(aws_cli(&server, &key, &["s3", "rb", "s3://cli-bucket"], d), "aws s3 rb");

    // A revoked key stops working at once.
    ok(server.cli(&["s3-key", "rm", &key.key.id], None, &[]), "s3-key rm");
    let denied = aws_cli(&server, &key, &["s3", "ls"], d);
    assert!(!denied.status.success() && stderr(&denied).contains("InvalidAccessKeyId"), "{}", stderr(&denied));
}

#[tokio::test]
async fn rest_api_quotas_audit_and_secrets_at_rest() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into()]);
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    let bucket = admin
        .create_bucket(&CreateBucketRequest { name: "rest-bucket".into(), project: None, public_read: None })
        .await
        .unwrap();
    assert!(bucket.id.starts_with("bkt-") && bucket.objects == 0 && !bucket.public_read);
    assert_eq!(admin.get_bucket("rest-bucket").await.unwrap().id, bucket.id);
    assert_eq!(admin.get_bucket(&bucket.id).await.unwrap().name, "rest-bucket");
    let dup = admin.create_bucket(&CreateBucketRequest { name: "rest-bucket".into(), ..Default::default() }).await;
    assert_eq!(dup.unwrap_err().status().map(|s| s.as_u16()), Some(409));
    let bad = admin.create_bucket(&CreateBucketRequest { name: "Bad_Name".into(), ..Default::default() }).await;
    assert_eq!(bad.unwrap_err().status().map(|s| s.as_u16()), Some(400));

    // An object through a presigned PUT; the listing counts it.
    let put = admin
        .presign(
            "rest-bucket",
            &PresignRequest { key: "a/b.txt".into(), method: Some(PresignMethod::Put), expires: Some("5m".into()) },
        )
        .await
        .unwrap();
    let resp = common::http().put(&put.url).body("twelve bytes").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap_or_default());
    let listed = admin.list_buckets(None).await.unwrap();
    let b = listed.iter().find(|b| b.name == "rest-bucket").unwrap();
    assert_eq!((b.objects, b.size_bytes), (1, 12));
    let get = admin
        .presign("rest-bucket", &PresignRequest { key: "a/b.txt".into(), method: None, expires: None })
        .await
        .unwrap();
    assert_eq!(common::http().get(&get.url).send().await.unwrap().text().await.unwrap(), "twelve bytes");

    // Deleting a bucket with objects needs force, and takes its files.
    let err = admin.delete_bucket("rest-bucket", false).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(409));
    let dir = server.data_path().join("objects").join(&bucket.id);
    assert!(dir.is_dir());
    admin.delete_bucket("rest-bucket", true).await.unwrap();
    assert!(!dir.exists(), "the bucket's files are removed");
    assert_eq!(admin.get_bucket("rest-bucket").await.unwrap_err().status().map(|s| s.as_u16()), Some(404));

    // Quotas count buckets.
    admin.create_project(&CreateProjectRequest { name: "small".into(), description: None }).await.unwrap();
    let mut limits = BTreeMap::new();
    limits.insert("buckets".to_string(), Some(1));
    admin.set_quota("small", &Quota { limits }).await.unwrap();
    let one = CreateBucketRequest { name: "small-one".into(), project: Some("small".into()), public_read: Some(true) };
    assert!(admin.create_bucket(&one).await.unwrap().public_read);
    let two = CreateBucketRequest { name: "small-two".into(), project: Some("small".into()), public_read: None };
    let err = admin.create_bucket(&two).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403));
    assert!(err.to_string().contains("buckets limit is 1"), "{err}");
    let usage = admin.usage("small").await.unwrap();
    assert_eq!(usage.resources["buckets"].used, 1);
    assert_eq!(usage.resources["bucket_gib"].used, 0);
    // bucket_gib counts on PUT: with a limit of 0, no byte fits.
    let mut limits = BTreeMap::new();
    limits.insert("bucket_gib".to_string(), Some(0));
    admin.set_quota("small", &Quota { limits }).await.unwrap();
    let put = admin
        .presign("small-one", &PresignRequest { key: "x".into(), method: Some(PresignMethod::Put), expires: None })
        .await
        .unwrap();
    let resp = common::http().put(&put.url).body("does not fit").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let body = resp.text().await.unwrap();
    assert!(body.contains("AccessDenied") && body.contains("bucket_gib"), "{body}");

    // Another user sees neither the bucket nor may presign it.
    let bob = outsider(&server, &admin).await;
    assert!(bob.list_buckets(None).await.unwrap().iter().all(|b| b.name != "small-one"));
    assert_eq!(bob.get_bucket("small-one").await.unwrap_err().status().map(|s| s.as_u16()), Some(404));
    let p = PresignRequest { key: "x".into(), method: None, expires: None };
    assert_eq!(bob.presign("small-one", &p).await.unwrap_err().status().map(|s| s.as_u16()), Some(404));

    // Keys: secret shown once, listed without it, stored encrypted under the master key.
    let created = key(&admin, false).await;
    let keys = admin.list_s3_keys().await.unwrap();
    assert!(keys.iter().any(|k| k.id == created.key.id));
    assert!(!serde_json::to_string(&keys).unwrap().contains(&created.secret));
    assert_eq!(bob.get_s3_key(&created.key.id).await.unwrap_err().status().map(|s| s.as_u16()), Some(404));
    let master = server.data_path().join("secrets/master.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&master).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&master).unwrap().len(), 32);
    for file in ["roost.db", "roost.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.data_path().join(file)) {
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(&created.secret), "the secret is stored in plain text in {file}");
        }
    }
    assert!(!server.output().contains(&created.secret), "the secret reached the log");

    // Every mutation is audited.
    let audit = admin.list_audit(&Default::default()).await.unwrap();
    let actions: Vec<&str> = audit.items.iter().map(|e| e.action.as_str()).collect();
    for action in ["bucket.create", "bucket.delete", "bucket.presign", "s3_key.create"] {
        assert!(actions.contains(&action), "no {action} in {actions:?}");
    }
    admin.delete_s3_key(&created.key.id).await.unwrap();
    let audit = admin.list_audit(&Default::default()).await.unwrap();
    assert!(audit.items.iter().any(|e| e.action == "s3_key.delete"));
}

/// What a crash leaves (a temp file, a file no row names, parts of an unknown upload, the
/// directory of a deleted bucket) is collected; committed objects are not touched.
#[tokio::test]
async fn crash_leftovers_are_collected() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into(), "--s3-housekeeping-interval".into(), "1s".into()]);
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    let bucket =
        admin.create_bucket(&CreateBucketRequest { name: "gc-bucket".into(), ..Default::default() }).await.unwrap();
    let put = admin
        .presign("gc-bucket", &PresignRequest { key: "kept".into(), method: Some(PresignMethod::Put), expires: None })
        .await
        .unwrap();
    assert!(common::http().put(&put.url).body("kept").send().await.unwrap().status().is_success());
    let dir = server.data_path().join("objects").join(&bucket.id);
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    let plant = |path: PathBuf| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "partial").unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        path
    };
    let tmp = plant(dir.join("tmp/0123456789abcdef"));
    let orphan = plant(dir.join("feedfacefeedfacefeedfacefeedface"));
    let fresh_tmp = dir.join("tmp/fresh");
    std::fs::write(&fresh_tmp, "a write in progress").unwrap();
    let part = plant(dir.join("uploads/deadbeef/1"));
    std::fs::File::open(part.parent().unwrap()).unwrap().set_modified(old).unwrap();
    // A multipart object's directory whose store commit never happened, and one half built.
    let orphan_parts = plant(dir.join("abcdefabcdefabcdefabcdefabcdefab/1"));
    std::fs::File::open(orphan_parts.parent().unwrap()).unwrap().set_modified(old).unwrap();
    let tmp_parts = plant(dir.join("tmp/0123456789abcdee/1"));
    std::fs::File::open(tmp_parts.parent().unwrap()).unwrap().set_modified(old).unwrap();
    let gone_bucket = plant(server.data_path().join("objects/bkt-gonegonegone/x"));
    std::fs::File::open(gone_bucket.parent().unwrap()).unwrap().set_modified(old).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let orphan_dirs = [orphan_parts.parent().unwrap().to_path_buf(), tmp_parts.parent().unwrap().to_path_buf()];
    while [&tmp, &orphan, &part, &gone_bucket, &orphan_dirs[0], &orphan_dirs[1]].iter().any(|p| p.exists()) {
        assert!(Instant::now() < deadline, "leftovers were not collected:\n{}", server.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(fresh_tmp.exists(), "a recent temp file (a write in progress) is left alone");
    let get =
        admin.presign("gc-bucket", &PresignRequest { key: "kept".into(), method: None, expires: None }).await.unwrap();
    assert_eq!(common::http().get(&get.url).send().await.unwrap().text().await.unwrap(), "kept");
}

/// A multipart object (the AWS CLI uploads 8 MiB parts, several at a time) is kept as
/// its part files and stays readable, whole and by ranges, after a restart.
#[tokio::test]
async fn multipart_objects_survive_a_restart() {
    let opts = || ServerOptions { args: vec!["--compute".into(), "off".into()], ..Default::default() };
    let mut server = TestServer::start_with(opts());
    let admin = server.admin().await;
    admin.create_bucket(&CreateBucketRequest { name: "mp-restart".into(), ..Default::default() }).await.unwrap();
    let k = key(&admin, false).await;
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    let data: Vec<u8> =
        (0..(20 * 1024 * 1024 + 12345u32)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&src, &data).unwrap();
    ok(
        aws_cli(&server, &k, &["s3", "cp", "--no-progress", "big.bin", "s3://mp-restart/big.bin"], dir.path()),
        "upload",
    );
    let head = ok(
        aws_cli(&server, &k, &["s3api", "head-object", "--bucket", "mp-restart", "--key", "big.bin"], dir.path()),
        "head",
    );
    assert!(head.contains("-3\\\""), "a three-part ETag: {head}");
    assert!(server.terminate().success());

    // Age the object's part directory past the collector's grace: it is named by a row,
    // so the collector (every second on the restarted server) must leave it alone.
    let old = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    let mut part_dirs = Vec::new();
    for bucket in std::fs::read_dir(server.data_path().join("objects")).unwrap().flatten() {
        for e in std::fs::read_dir(bucket.path()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if e.path().is_dir() && name != "tmp" && name != "uploads" {
                for f in std::fs::read_dir(e.path()).unwrap().flatten() {
                    std::fs::File::options().write(true).open(f.path()).unwrap().set_modified(old).unwrap();
                }
                std::fs::File::open(e.path()).unwrap().set_modified(old).unwrap();
                part_dirs.push(e.path());
            }
        }
    }
    assert_eq!(part_dirs.len(), 1, "one multipart object directory: {part_dirs:?}");
    assert_eq!(std::fs::read_dir(&part_dirs[0]).unwrap().count(), 3, "three part files");
    let data_dir = std::mem::replace(&mut server.data_dir, tempfile::tempdir().unwrap());
    let mut again_opts = opts();
    again_opts.args.extend(["--s3-housekeeping-interval".into(), "1s".into()]);
    let again = TestServer::start_in(data_dir, again_opts);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(part_dirs[0].is_dir(), "the collector left a committed object alone:\n{}", again.output());
    ok(
        aws_cli(&again, &k, &["s3", "cp", "--no-progress", "s3://mp-restart/big.bin", "back.bin"], dir.path()),
        "download",
    );
    assert_eq!(sha256_file(&dir.path().join("back.bin")), sha256_file(&src));
    let (a, b) = (8 * 1024 * 1024 - 5, 16 * 1024 * 1024 + 5);
    let range = format!("bytes={a}-{b}");
    ok(
        aws_cli(
            &again,
            &k,
            &["s3api", "get-object", "--bucket", "mp-restart", "--key", "big.bin", "--range", &range, "range.bin"],
            dir.path(),
        ),
        "ranged get",
    );
    assert!(std::fs::read(dir.path().join("range.bin")).unwrap() == data[a..=b], "the range across two parts");
}

/// Virtual-host-style requests (`<bucket>.<domain>`) with `--s3-domain`, here for a
/// public-read bucket used as a static site.
#[tokio::test]
async fn virtual_host_style_static_site() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into(), "--s3-domain".into(), "s3.roost.test".into()]);
    let server = TestServer::start_with(opts);
    assert!(server.output().contains("<bucket>.s3.roost.test"), "{}", server.output());
    let admin = server.admin().await;
    let req = CreateBucketRequest { name: "site".into(), project: None, public_read: Some(true) };
    admin.create_bucket(&req).await.unwrap();
    let put = admin
        .presign("site", &PresignRequest { key: "index.html".into(), method: Some(PresignMethod::Put), expires: None })
        .await
        .unwrap();
    assert!(common::http().put(&put.url).body("<h1>virtual</h1>").send().await.unwrap().status().is_success());
    let port = s3_url(&server).rsplit(':').next().unwrap().to_string();
    let resolve = format!("site.s3.roost.test:{port}:127.0.0.1");
    let url = format!("http://site.s3.roost.test:{port}/index.html");
    let (status, body) = curl_status(&["--resolve", &resolve, &url]);
    assert_eq!((status, String::from_utf8_lossy(&body).to_string()), (200, "<h1>virtual</h1>".to_string()));
    // Path style keeps working beside it.
    let (status, _) = curl_status(&[&format!("{}/site/index.html", s3_url(&server))]);
    assert_eq!(status, 200);
}

/// The REST object routes the console's bucket browser uses: they go through the S3
/// endpoint with the caller's rights.
#[tokio::test]
async fn rest_object_routes_list_upload_download_delete() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into()]);
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    admin
        .create_bucket(&roost_api::buckets::CreateBucketRequest {
            name: "browse".into(),
            project: None,
            public_read: None,
        })
        .await
        .unwrap();
    let http = common::http();
    let token = admin.token().unwrap().to_string();
    let base = format!("{}/v1/buckets/browse/objects", server.url);
    for (key, body) in [("a.txt", "first"), ("dir/b c.txt", "second"), ("dir/sub/ü.txt", "third")] {
        let url = format!("{base}/{}", key.split('/').map(urlencode).collect::<Vec<_>>().join("/"));
        let resp = http
            .put(url)
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .header("x-amz-meta-owner", "tests")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{key}");
        let put: roost_api::buckets::PutObjectResult = resp.json().await.unwrap();
        assert_eq!(put.key, key);
        assert_eq!(put.etag, format!("\"{:x}\"", md5_of(body.as_bytes())));
    }
    // One level at a time, folders as prefixes.
    let list: roost_api::buckets::ObjectList =
        http.get(format!("{base}?delimiter=/")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.prefixes, vec!["dir/".to_string()]);
    assert_eq!(list.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), vec!["a.txt"]);
    let list: roost_api::buckets::ObjectList = http
        .get(format!("{base}?delimiter=/&prefix=dir/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.prefixes, vec!["dir/sub/".to_string()]);
    assert_eq!(list.objects[0].key, "dir/b c.txt");
    assert_eq!(list.objects[0].size, 6);
    // Paging.
    let page: roost_api::buckets::ObjectList =
        http.get(format!("{base}?limit=1")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(page.objects.len(), 1);
    let cursor = page.next_cursor.expect("a cursor");
    let next: roost_api::buckets::ObjectList = http
        .get(format!("{base}?limit=5&cursor={}", urlencode(&cursor)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next.objects.len(), 2);
    // Download (as an attachment on request) and metadata.
    let url = format!("{base}/dir/sub/{}", urlencode("ü.txt"));
    let resp = http.get(format!("{url}?download=1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert_eq!(resp.text().await.unwrap(), "third");
    let head = http.head(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(head.headers()["content-type"], "text/plain");
    assert_eq!(head.headers()["x-amz-meta-owner"], "tests");
    assert_eq!(head.headers()["content-length"], "5");
    let ranged = http.get(&url).bearer_auth(&token).header("range", "bytes=1-2").send().await.unwrap();
    assert_eq!(ranged.status().as_u16(), 206);
    assert_eq!(ranged.text().await.unwrap(), "hi");
    // Errors in the API's shape.
    let missing = http.get(format!("{base}/nope.txt")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    // Another project's user sees nothing; a viewer may read but not write.
    let bob = outsider(&server, &admin).await;
    let resp = http.get(&base).bearer_auth(bob.token().unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    admin.set_member("default", "bob", Role::Viewer).await.unwrap();
    let resp = http.get(&url).bearer_auth(bob.token().unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let resp = http.put(format!("{base}/x.txt")).bearer_auth(bob.token().unwrap()).body("x").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // Delete, audited.
    let resp = http.delete(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(http.get(&url).bearer_auth(&token).send().await.unwrap().status().as_u16(), 404);
    let audit = admin.list_audit(&Default::default()).await.unwrap();
    assert!(audit.items.iter().any(|e| e.action == "bucket.object.delete"), "audited");
    assert!(audit.items.iter().any(|e| e.action == "bucket.object.put"), "audited");
}

/// The REST object routes are the object service's own door: with the S3 listener off
/// they put, list, read (ranges, conditions, metadata), version and delete objects, each
/// change audited exactly once as the caller, and the object store's housekeeping task
/// still runs.
#[tokio::test]
async fn rest_object_routes_work_with_the_s3_listener_off() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into(), "--s3-listen".into(), "off".into()]);
    let server = TestServer::start_with(opts);
    assert_eq!(server.s3_url, None, "no S3 listener");
    let admin = server.admin().await;
    let bucket = admin.create_bucket(&CreateBucketRequest { name: "nos3".into(), ..Default::default() }).await.unwrap();
    let http = common::http();
    let token = admin.token().unwrap().to_string();
    let base = format!("{}/v1/buckets/nos3/objects", server.url);
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let uploads: [(&str, &[u8]); 3] = [("a.txt", b"alpha"), ("dir/b.bin", &big), ("dir/sub/c.txt", b"gamma")];
    for (key, body) in uploads {
        let resp = http
            .put(format!("{base}/{key}"))
            .bearer_auth(&token)
            .header("content-type", "application/x-test")
            .header("x-amz-meta-origin", "rest")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{key}");
        let put: roost_api::buckets::PutObjectResult = resp.json().await.unwrap();
        assert_eq!((put.key.as_str(), put.size), (key, body.len() as u64));
        assert_eq!(put.etag, format!("\"{:032x}\"", md5_of(body)));
    }
    // Listing: one level, then a page at a time.
    let list: roost_api::buckets::ObjectList =
        http.get(format!("{base}?delimiter=/")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.prefixes, vec!["dir/".to_string()]);
    assert_eq!(list.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a.txt"]);
    assert_eq!(list.objects[0].etag, format!("\"{:032x}\"", md5_of(b"alpha")));
    assert!(list.objects[0].last_modified.ends_with('Z'), "{}", list.objects[0].last_modified);
    let mut keys = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}?limit=2");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", urlencode(c)));
        }
        let page: roost_api::buckets::ObjectList =
            http.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        keys.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(keys, ["a.txt", "dir/b.bin", "dir/sub/c.txt"]);
    let bad = http.get(format!("{base}?cursor=zz")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(bad.status().as_u16(), 400, "a cursor that is not ours");
    // Reading: the bytes, a range, the stored headers, conditions.
    let got = http.get(format!("{base}/dir/b.bin")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(got.status().as_u16(), 200);
    let etag = got.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(got.headers()["content-type"], "application/x-test");
    assert_eq!(got.headers()["x-amz-meta-origin"], "rest");
    assert!(got.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    assert_eq!(got.bytes().await.unwrap().as_ref(), &big[..]);
    let ranged =
        http.get(format!("{base}/dir/b.bin")).bearer_auth(&token).header("range", "bytes=-4").send().await.unwrap();
    assert_eq!(ranged.status().as_u16(), 206);
    assert_eq!(ranged.headers()["content-range"], format!("bytes {}-{}/{}", big.len() - 4, big.len() - 1, big.len()));
    assert_eq!(ranged.bytes().await.unwrap().as_ref(), &big[big.len() - 4..]);
    let unchanged =
        http.get(format!("{base}/dir/b.bin")).bearer_auth(&token).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(unchanged.status().as_u16(), 304);
    let stale = http.get(format!("{base}/a.txt")).bearer_auth(&token).header("if-match", "\"0\"").send().await.unwrap();
    assert_eq!(stale.status().as_u16(), 412);
    let head = http.head(format!("{base}/a.txt")).bearer_auth(&token).send().await.unwrap();
    assert_eq!((head.status().as_u16(), head.headers()["content-length"].to_str().unwrap()), (200, "5"));
    // A versioned bucket keeps what a delete hides.
    let versioning =
        roost_api::buckets::UpdateBucketRequest { versioning: Some("Enabled".into()), ..Default::default() };
    admin.update_bucket("nos3", &versioning).await.unwrap();
    let again = http.put(format!("{base}/a.txt")).bearer_auth(&token).body("alpha 2").send().await.unwrap();
    assert_eq!(again.status().as_u16(), 201);
    let head = http.head(format!("{base}/a.txt")).bearer_auth(&token).send().await.unwrap();
    assert!(head.headers().contains_key("x-amz-version-id"), "a versioned bucket names the version");
    for key in ["a.txt", "dir/sub/c.txt", "never-was.txt"] {
        let resp = http.delete(format!("{base}/{key}")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 204, "{key}");
    }
    assert_eq!(http.get(format!("{base}/a.txt")).bearer_auth(&token).send().await.unwrap().status().as_u16(), 404);
    let rest: roost_api::buckets::ObjectList =
        http.get(&base).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert_eq!(rest.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["dir/b.bin"]);
    let stats = admin.get_bucket("nos3").await.unwrap();
    assert_eq!(stats.objects, 1, "{stats:?}");
    // Each change audited once, as the caller, in the bucket.
    let admin_id = admin.get_user("admin").await.unwrap().user.id;
    let audit = admin.list_audit(&Default::default()).await.unwrap();
    let count = |action: &str| {
        audit
            .items
            .iter()
            .filter(|e| e.action == action && e.resource_id.as_deref() == Some(bucket.id.as_str()))
            .count()
    };
    assert_eq!((count("bucket.object.put"), count("bucket.object.delete")), (4, 3));
    for e in audit.items.iter().filter(|e| e.action.starts_with("bucket.object.")) {
        assert_eq!((e.actor.as_str(), e.result.as_str()), (admin_id.as_str(), "success"), "{e:?}");
    }
    // Objects written without S3 are still looked after.
    admin.get_task("s3_housekeeping").await.expect("the object store's housekeeping is registered");
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn md5_of(data: &[u8]) -> u128 {
    let out = Command::new("sh")
        .arg("-c")
        .arg("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    u128::from_str_radix(stdout(&out).split_whitespace().next().unwrap(), 16).unwrap()
}

/// The access key id a presigned URL was signed with (`X-Amz-Credential=<id>/...`).
fn signing_key_of(url: &str) -> String {
    let credential = url.split(['?', '&']).find_map(|p| p.strip_prefix("X-Amz-Credential=")).expect("a SigV4 URL");
    credential.split("%2F").next().unwrap().to_string()
}

#[tokio::test]
async fn presigned_urls_grant_one_operation_on_one_bucket() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into()]);
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["photos", "private"] {
        let req = CreateBucketRequest { name: name.into(), project: None, public_read: None };
        admin.create_bucket(&req).await.unwrap();
    }
    let full = key(&admin, false).await;
    std::fs::write(d.join("a.txt"), "in photos\n").unwrap();
    ok(aws_cli(&server, &full, &["s3", "cp", "--no-progress", "a.txt", "s3://photos/a.txt"], d), "put photos");
    ok(aws_cli(&server, &full, &["s3", "cp", "--no-progress", "a.txt", "s3://private/a.txt"], d), "put private");
    // An installation from before: a `presign` key for every bucket, read and write.
    let old = admin
        .create_s3_key(&CreateS3KeyRequest { description: Some("presign".into()), ..Default::default() })
        .await
        .unwrap();

    let get = |method| PresignRequest { key: "a.txt".into(), method, expires: Some("10m".into()) };
    let read_url = admin.presign("photos", &get(None)).await.unwrap().url;
    let write_url = admin.presign("photos", &get(Some(PresignMethod::Put))).await.unwrap().url;
    let (read_key, write_key) = (signing_key_of(&read_url), signing_key_of(&write_url));
    assert_ne!(read_key, old.key.id, "the old all-bucket key signs no new URL");
    assert_ne!(write_key, old.key.id);
    let keys = admin.list_s3_keys().await.unwrap();
    let by_id = |id: &str| keys.iter().find(|k| k.id == id).unwrap().clone();
    let (read, write) = (by_id(&read_key), by_id(&write_key));
    assert_eq!((read.buckets.clone(), read.read_only), (vec!["photos".to_string()], true), "{read:?}");
    assert_eq!((write.buckets.clone(), write.read_only), (vec!["photos".to_string()], false), "{write:?}");
    assert_eq!(read.description.as_deref(), Some("presign:photos:read"));
    assert_eq!(write.description.as_deref(), Some("presign:photos:write"));
    // Reused, not made per URL.
    assert_eq!(signing_key_of(&admin.presign("photos", &get(None)).await.unwrap().url), read_key);

    // The URL does its one thing; edited, it is refused.
    assert_eq!(curl_status(&[&read_url]), (200, b"in photos\n".to_vec()));
    std::fs::write(d.join("b.txt"), "replaced").unwrap();
    let body = d.join("b.txt");
    assert_eq!(curl_status(&["-T", body.to_str().unwrap(), &read_url]).0, 403, "a GET URL cannot PUT");
    assert_eq!(curl_status(&[&read_url.replace("/photos/", "/private/")]).0, 403, "nor read another bucket");
    assert_eq!(curl_status(&[&write_url]).0, 403, "a PUT URL cannot GET");

    // And the key behind the GET URL, even with its secret, reads only this bucket.
    let store = roost_store::Store::open_sqlite(&server.data_path().join("roost.db")).await.unwrap();
    let row = store.s3_key(&read_key).await.unwrap().unwrap();
    let master = roost_control::secrets::MasterKey::load_or_create(&server.data_path().join("secrets")).unwrap();
    let secret = master.open(&row.id, &row.secret_enc).unwrap();
    let behind = CreatedS3Key { key: read.clone(), secret };
    let got = aws_cli(&server, &behind, &["s3", "cp", "--no-progress", "s3://photos/a.txt", "got.txt"], d);
    ok(got, "the read key reads its bucket");
    let put = aws_cli(&server, &behind, &["s3", "cp", "--no-progress", "b.txt", "s3://photos/a.txt"], d);
    assert!(!put.status.success() && stderr(&put).contains("AccessDenied"), "{}", stderr(&put));
    let other = aws_cli(&server, &behind, &["s3", "cp", "--no-progress", "s3://private/a.txt", "x.txt"], d);
    assert!(!other.status.success() && stderr(&other).contains("403"), "{}", stderr(&other));
    assert_eq!(curl_status(&[&read_url]), (200, b"in photos\n".to_vec()), "nothing changed");
    // The old key still serves the URLs it signed (it was not revoked behind the user's back).
    let old_url = ok(
        aws_cli(&server, &old, &["s3", "presign", "s3://private/a.txt", "--expires-in", "300"], d),
        "presign with the old key",
    );
    assert_eq!(curl_status(&[old_url.trim()]).0, 200);

    // The bucket's presign keys go with it; a new bucket of the same name is not theirs.
    admin.delete_bucket("photos", true).await.unwrap();
    let left: Vec<_> = admin.list_s3_keys().await.unwrap().into_iter().map(|k| k.id).collect();
    assert!(!left.contains(&read_key) && !left.contains(&write_key), "{left:?}");
    assert!(left.contains(&old.key.id) && left.contains(&full.key.id), "other keys stay: {left:?}");
    admin
        .create_bucket(&CreateBucketRequest { name: "photos".into(), project: None, public_read: None })
        .await
        .unwrap();
    assert_eq!(curl_status(&[&read_url]).0, 403, "the old URL's key is gone");
}

/// Object bodies come from the console's origin, so they are served as downloads that
/// cannot run: `attachment` (with the exact name in RFC 5987 form), `nosniff` and a
/// sandboxing policy, whatever type the uploader gave them.
#[tokio::test]
async fn objects_are_served_as_attachments_that_cannot_run() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into()]);
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    let req = CreateBucketRequest { name: "pages".into(), project: None, public_read: None };
    admin.create_bucket(&req).await.unwrap();
    let http = common::http();
    let token = admin.token().unwrap().to_string();
    let base = format!("{}/v1/buckets/pages/objects", server.url);
    let page = "<html><script>fetch('/v1/tokens',{method:'POST'})</script></html>";
    let key = "site/é \"x\";.html";
    let url = format!("{base}/{}", key.split('/').map(urlencode).collect::<Vec<_>>().join("/"));
    let put = http
        .put(&url)
        .bearer_auth(&token)
        .header("content-type", "text/html")
        .header("content-disposition", "inline")
        .body(page)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 201);
    for download in [false, true] {
        let got = http
            .get(if download { format!("{url}?download=1") } else { url.clone() })
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status().as_u16(), 200);
        let h = got.headers().clone();
        let disposition = h["content-disposition"].to_str().unwrap().to_string();
        assert!(disposition.starts_with("attachment;"), "{disposition}");
        assert!(disposition.contains("filename*=UTF-8''%C3%A9%20%22x%22%3B.html"), "{disposition}");
        assert!(disposition.contains("filename=\"_ _x_;.html\""), "an ASCII fallback without quotes: {disposition}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.split(';').any(|d| d.trim() == "sandbox"), "{csp}");
        assert_eq!(got.text().await.unwrap(), page, "the bytes are unchanged");
    }
    let head = http.head(&url).bearer_auth(&token).send().await.unwrap();
    assert!(head.headers()["content-disposition"].to_str().unwrap().starts_with("attachment;"));
    assert_eq!(head.headers()["content-type"], "text/html", "the stored type is reported");
}

/// A key limited to a bucket reaches that bucket, not a later one that took its name
/// after it was deleted: limits are by bucket id. Nor may such a key create buckets.
#[tokio::test]
async fn a_bucket_limit_is_by_id_not_by_name() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into()]);
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bucket = |name: &str| CreateBucketRequest { name: name.into(), project: None, public_read: None };
    let first = admin.create_bucket(&bucket("reports")).await.unwrap();
    let limited = admin
        .create_s3_key(&CreateS3KeyRequest { buckets: vec!["reports".into()], ..Default::default() })
        .await
        .unwrap();
    std::fs::write(d.join("a.txt"), "old\n").unwrap();
    ok(aws_cli(&server, &limited, &["s3", "cp", "--no-progress", "a.txt", "s3://reports/a.txt"], d), "put");
    let out = aws_cli(&server, &limited, &["s3api", "create-bucket", "--bucket", "made-by-limited"], d);
    assert!(!out.status.success() && stderr(&out).contains("AccessDenied"), "{}", stderr(&out));

    admin.delete_bucket("reports", true).await.unwrap();
    let again = admin.create_bucket(&bucket("reports")).await.unwrap();
    assert_ne!(again.id, first.id);
    let full = key(&admin, false).await;
    ok(aws_cli(&server, &full, &["s3", "cp", "--no-progress", "a.txt", "s3://reports/new.txt"], d), "put new");
    for args in [
        vec!["s3", "ls", "s3://reports/"],
        vec!["s3", "cp", "--no-progress", "s3://reports/new.txt", "got.txt"],
        vec!["s3", "cp", "--no-progress", "a.txt", "s3://reports/b.txt"],
    ] {
        let out = aws_cli(&server, &limited, &args, d);
        assert!(!out.status.success(), "{args:?} reached the new bucket: {}", stdout(&out));
        assert!(stderr(&out).contains("AccessDenied") || stderr(&out).contains("403"), "{}", stderr(&out));
    }
    let buckets = ok(aws_cli(&server, &limited, &["s3", "ls"], d), "list buckets");
    assert!(!buckets.contains("reports"), "{buckets}");
    // The key shows the bucket it was made for: its id, and the name it had.
    let listed: serde_json::Value = common::http()
        .get(format!("{}/v1/s3-keys/{}", server.url, limited.key.id))
        .bearer_auth(admin.token().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["bucket_ids"], serde_json::json!([first.id]), "{listed}");
    assert_eq!(listed["buckets"], serde_json::json!(["reports"]), "{listed}");

    // Presign keys follow the bucket by id as well: the new bucket gets a key of its own.
    let get = PresignRequest { key: "new.txt".into(), method: None, expires: Some("10m".into()) };
    let url = admin.presign("reports", &get).await.unwrap().url;
    let signer = signing_key_of(&url);
    let keys: serde_json::Value = common::http()
        .get(format!("{}/v1/s3-keys", server.url))
        .bearer_auth(admin.token().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = keys["items"].as_array().unwrap().iter().find(|k| k["id"] == signer.as_str()).unwrap();
    assert_eq!(row["bucket_ids"], serde_json::json!([again.id]), "{row}");
    assert_eq!(curl_status(&[&url]), (200, b"old\n".to_vec()));
}

/// Keys made with an expiring, project-restricted token carry the token's limits: they
/// end when it does and reach only its project. (SSH keys: see tests/instances.rs.)
#[tokio::test]
async fn keys_made_with_a_token_inherit_its_expiry_and_project() {
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into()]);
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    let e2b = server.e2b_url.clone().expect("the E2B listener");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    admin.create_project(&CreateProjectRequest { name: "team-a".into(), description: None }).await.unwrap();
    admin.create_project(&CreateProjectRequest { name: "team-b".into(), description: None }).await.unwrap();
    for (name, project) in [("in-a", "team-a"), ("in-b", "team-b")] {
        let req = CreateBucketRequest { name: name.into(), project: Some(project.into()), public_read: None };
        admin.create_bucket(&req).await.unwrap();
    }
    let full = key(&admin, false).await;
    std::fs::write(d.join("a.txt"), "a\n").unwrap();
    for b in ["in-a", "in-b"] {
        ok(aws_cli(&server, &full, &["s3", "cp", "--no-progress", "a.txt", &format!("s3://{b}/a.txt")], d), "put");
    }
    // A token of team-a that expires in an hour, for what keys are allowed; one that
    // expires in seconds, for what happens when a token ends.
    let restricted = |name: &str, lasts: chrono::Duration| roost_api::tokens::CreateTokenRequest {
        name: name.into(),
        scope: Some(roost_api::tokens::Scope::Write),
        expires_at: Some(chrono::Utc::now() + lasts),
        project: Some("team-a".into()),
        ..Default::default()
    };
    let token = admin.create_token(&restricted("hour", chrono::Duration::hours(1))).await.unwrap();
    let team_a = admin.get_project("team-a").await.unwrap().id;
    let http = common::http();
    let post_as = |secret: &str, path: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", server.url)).bearer_auth(secret).json(&body).send()
    };
    let post = |path: &str, body: serde_json::Value| post_as(&token.secret, path, body);
    let token_expiry = serde_json::to_value(token.token.expires_at.unwrap()).unwrap();

    // An S3 key: no bucket named, yet limited to team-a, and ending with the token.
    let r = post("/v1/s3-keys", serde_json::json!({})).await.unwrap();
    assert_eq!(r.status().as_u16(), 201, "{}", r.text().await.unwrap());
    let made: serde_json::Value = r.json().await.unwrap();
    assert_eq!(made["expires_at"], token_expiry, "{made}");
    assert_eq!(made["project_id"], team_a.as_str(), "{made}");
    let s3 = CreatedS3Key {
        key: serde_json::from_value(made.clone()).unwrap(),
        secret: made["secret"].as_str().unwrap().to_string(),
    };
    ok(aws_cli(&server, &s3, &["s3", "cp", "--no-progress", "s3://in-a/a.txt", "got.txt"], d), "read in team-a");
    let out = aws_cli(&server, &s3, &["s3", "cp", "--no-progress", "s3://in-b/a.txt", "got.txt"], d);
    assert!(!out.status.success(), "a team-a key read team-b's bucket");
    let listed = ok(aws_cli(&server, &s3, &["s3", "ls"], d), "list");
    assert!(listed.contains("in-a") && !listed.contains("in-b"), "{listed}");

    // A sandbox key: in team-a, ending with the token.
    let r = post("/v1/sandbox-keys", serde_json::json!({"name": "brief", "project": "team-a"})).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let sandbox_key: serde_json::Value = r.json().await.unwrap();
    assert_eq!(sandbox_key["key"]["expires_at"], token_expiry, "{sandbox_key}");
    let e2b_key = sandbox_key["secret"].as_str().unwrap().to_string();
    let list = |key: &str| http.get(format!("{e2b}/sandboxes")).header("x-api-key", key).send();
    assert_eq!(list(&e2b_key).await.unwrap().status().as_u16(), 200);

    // An SSH key: for team-a's instances, until the token ends.
    let r = post("/v1/ssh-keys", serde_json::json!({"name": "brief"})).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let ssh: serde_json::Value = r.json().await.unwrap();
    assert_eq!(ssh["key"]["expires_at"], token_expiry, "{ssh}");
    assert_eq!(ssh["key"]["project_id"], team_a.as_str(), "{ssh}");

    // A session's keys are as before: permanent, every project.
    let own: serde_json::Value = serde_json::to_value(key(&admin, false).await).unwrap();
    assert!(own["expires_at"].is_null() && own["project_id"].is_null(), "{own}");

    // Once a token has ended, so have its keys.
    let brief = admin.create_token(&restricted("brief", chrono::Duration::seconds(10))).await.unwrap();
    let r = post_as(&brief.secret, "/v1/s3-keys", serde_json::json!({})).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let made: serde_json::Value = r.json().await.unwrap();
    let s3 = CreatedS3Key {
        key: serde_json::from_value(made.clone()).unwrap(),
        secret: made["secret"].as_str().unwrap().to_string(),
    };
    let r = post_as(&brief.secret, "/v1/sandbox-keys", serde_json::json!({"name": "brief", "project": "team-a"}));
    let sandbox_key: serde_json::Value = r.await.unwrap().json().await.unwrap();
    let e2b_key = sandbox_key["secret"].as_str().unwrap().to_string();
    let ended = brief.token.expires_at.unwrap() + chrono::Duration::milliseconds(500);
    tokio::time::sleep((ended - chrono::Utc::now()).to_std().unwrap_or_default()).await;
    // A listing (a GET: a HEAD's 403 has no body to name the reason).
    let out = aws_cli(&server, &s3, &["s3", "ls", "s3://in-a"], d);
    assert!(!out.status.success(), "an S3 key outlived its token");
    assert!(stderr(&out).contains("InvalidAccessKeyId"), "{}", stderr(&out));
    assert_eq!(list(&e2b_key).await.unwrap().status().as_u16(), 401, "a sandbox key outlived its token");
}

/// The S3 door is a door like the others: every change through it (objects, uploads,
/// bucket settings) is a change of the kernel, audited as the key's owner in the same
/// transaction, and a policy that makes a bucket public is announced (`bucket.updated`).
/// An upload through the REST routes, which go through S3, is audited once; a refused
/// change is audited as a failure.
#[tokio::test]
async fn every_change_through_s3_is_audited_and_a_public_policy_announced() {
    use futures_util::StreamExt;
    let mut opts = ServerOptions::default();
    opts.args.extend(["--compute".into(), "off".into()]);
    let server = TestServer::start_with(opts);
    let admin = server.admin().await;
    let bucket = admin.create_bucket(&CreateBucketRequest { name: "audited".into(), ..Default::default() }).await;
    let bucket = bucket.unwrap();
    let writer = key(&admin, false).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.txt"), "a\n").unwrap();
    let admin_id = admin.get_user("admin").await.unwrap().user.id;
    let filter = roost_api::events::EventFilter { kind: Some("bucket".into()), resource_id: None };
    let mut events = Box::pin(admin.events(&filter, None).await.unwrap());

    ok(aws_cli(&server, &writer, &["s3", "cp", "--no-progress", "a.txt", "s3://audited/a.txt"], d), "put");
    ok(
        aws_cli(&server, &writer, &["s3", "cp", "--no-progress", "s3://audited/a.txt", "s3://audited/b.txt"], d),
        "copy",
    );
    ok(aws_cli(&server, &writer, &["s3", "rm", "s3://audited/b.txt"], d), "delete");
    let started = ok(
        aws_cli(&server, &writer, &["s3api", "create-multipart-upload", "--bucket", "audited", "--key", "big"], d),
        "create-multipart-upload",
    );
    let upload_id =
        serde_json::from_str::<serde_json::Value>(&started).unwrap()["UploadId"].as_str().unwrap().to_string();
    let args = ["s3api", "abort-multipart-upload", "--bucket", "audited", "--key", "big", "--upload-id", &upload_id];
    ok(aws_cli(&server, &writer, &args, d), "abort-multipart-upload");
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::audited/*"}]}"#;
    let args = ["s3api", "put-bucket-policy", "--bucket", "audited", "--policy", policy];
    ok(aws_cli(&server, &writer, &args, d), "put-bucket-policy");
    let announced = tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("an event").unwrap();
    let announced = announced.unwrap();
    assert_eq!((announced.kind.as_str(), announced.resource_id.as_str()), ("bucket.updated", bucket.id.as_str()));
    ok(aws_cli(&server, &writer, &["s3api", "delete-bucket-policy", "--bucket", "audited"], d), "delete-bucket-policy");
    // A refused change is no change (counted below: two puts, not three).
    let reader = key(&admin, true).await;
    let out = aws_cli(&server, &reader, &["s3", "cp", "--no-progress", "a.txt", "s3://audited/c.txt"], d);
    assert!(!out.status.success(), "a read-only key wrote");

    let http = common::http();
    let url = format!("{}/v1/buckets/audited/objects/rest.txt", server.url);
    let resp = http.put(&url).bearer_auth(admin.token().unwrap()).body("rest").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);

    let audit = admin.list_audit(&Default::default()).await.unwrap();
    let by_s3: Vec<(&str, Option<&str>)> = audit
        .items
        .iter()
        .filter(|e| e.source.as_deref() == Some("s3"))
        .map(|e| (e.action.as_str(), e.resource_id.as_deref()))
        .collect();
    for action in [
        "bucket.object.put",
        "bucket.object.copy",
        "bucket.object.delete",
        "bucket.upload.create",
        "bucket.upload.abort",
        "bucket.policy.set",
        "bucket.policy.delete",
    ] {
        assert!(by_s3.contains(&(action, Some(bucket.id.as_str()))), "{action} missing: {by_s3:?}");
    }
    for e in audit.items.iter().filter(|e| e.source.as_deref() == Some("s3") && e.result == "success") {
        assert_eq!((e.actor.as_str(), e.result.as_str()), (admin_id.as_str(), "success"), "{e:?}");
    }
    let puts = audit.items.iter().filter(|e| e.action == "bucket.object.put" && e.result == "success").count();
    assert_eq!(puts, 2, "one entry per upload (S3, then REST through S3), no success for the refused one");
    // The refusal itself is audited, as the REST door audits its refusals.
    let refused = audit.items.iter().find(|e| e.source.as_deref() == Some("s3") && e.result.starts_with("failure"));
    let refused = refused.expect("the read-only key's refused put is audited");
    assert_eq!(
        (refused.action.as_str(), refused.result.as_str(), refused.actor.as_str()),
        ("bucket.object.put", "failure: forbidden", admin_id.as_str())
    );
    assert_eq!(refused.actor_token.as_deref(), Some(reader.key.id.as_str()));
}
