//! Starts the real `roost server` binary on 127.0.0.1:0 with a temporary data dir and
//! drives it through the typed client and the CLI.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use roost_client::Client;

pub mod sim;

pub const ADMIN_PASSWORD: &str = "correct-horse-battery";

/// A raw HTTP client (TLS provider installed, as the typed client does).
pub fn http() -> reqwest::Client {
    roost_client::install_crypto_provider();
    reqwest::Client::new()
}

pub fn roost_bin() -> &'static str {
    env!("CARGO_BIN_EXE_roost")
}

pub struct TestServer {
    pub child: Child,
    pub url: String,
    /// The S3 endpoint (`http://127.0.0.1:<port>`), unless started with `--s3-listen off`.
    pub s3_url: Option<String>,
    /// The E2B-compatible API (`http://127.0.0.1:<port>`), unless started with `--e2b-listen off`.
    pub e2b_url: Option<String>,
    pub data_dir: tempfile::TempDir,
    /// Everything the server printed on stdout and stderr so far.
    pub output: Arc<Mutex<String>>,
    pub cli_home: tempfile::TempDir,
    /// `--firewall-table` of this server: its networks are removed on drop.
    pub firewall_table: Option<String>,
}

pub struct ServerOptions {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub admin_password: Option<String>,
}

impl ServerOptions {
    /// A server whose networks (firewall tables, bridges and address pool) are its own,
    /// so tests that run instances side by side share nothing. `n` must be unique per
    /// test (below 100).
    pub fn compute(n: u8) -> ServerOptions {
        ServerOptions {
            args: vec![
                "--compute".into(),
                "on".into(),
                "--firewall-table".into(),
                format!("rtest{n}"),
                "--network-cidr".into(),
                format!("10.{}.0.0/16", 100 + n),
            ],
            ..Default::default()
        }
    }
}

impl ServerOptions {
    /// A server process over the simulated node (`--compute simulated`): the control
    /// plane whole, nothing on the host. For tests that need the server's own process
    /// (its metrics, its output, a restart); the others use [`sim::SimServer`].
    pub fn simulated() -> ServerOptions {
        ServerOptions { args: vec!["--compute".into(), "simulated".into()], ..Default::default() }
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { args: Vec::new(), env: Vec::new(), admin_password: Some(ADMIN_PASSWORD.to_string()) }
    }
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(ServerOptions::default())
    }

    pub fn start_with(opts: ServerOptions) -> TestServer {
        let data_dir = tempfile::tempdir().unwrap();
        Self::start_in(data_dir, opts)
    }

    /// Starts a server on an existing data dir (to test restarts).
    pub fn start_in(data_dir: tempfile::TempDir, opts: ServerOptions) -> TestServer {
        let mut cmd = Command::new(roost_bin());
        cmd.arg("server").arg("--data-dir").arg(data_dir.path());
        if !opts.args.iter().any(|a| a == "--listen") {
            cmd.arg("--listen").arg("127.0.0.1:0");
        }
        if !opts.args.iter().any(|a| a == "--s3-listen") {
            cmd.arg("--s3-listen").arg("127.0.0.1:0");
        }
        if !opts.args.iter().any(|a| a == "--e2b-listen") {
            cmd.arg("--e2b-listen").arg("127.0.0.1:0");
        }
        cmd.args(&opts.args);
        // Servers run instances only when a test asks (`ServerOptions::compute`): one that
        // did on its own would share the default firewall table with every other.
        if !opts.args.iter().any(|a| a == "--compute") {
            cmd.args(["--compute", "off"]);
        }
        cmd.env_remove("ROOST_ADMIN_PASSWORD").env_remove("ROOST_DATABASE").env_remove("ROOST_LISTEN");
        cmd.env_remove("ROOST_S3_LISTEN").env_remove("ROOST_S3_DOMAIN").env_remove("ROOST_S3_PUBLIC_URL");
        cmd.env("ROOST_LOG_LEVEL", "info");
        if let Some(p) = &opts.admin_password {
            cmd.env("ROOST_ADMIN_PASSWORD", p);
        }
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("start roost server");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let out = output.clone();
        std::thread::spawn(move || {
            // The banner's last line is the CLI hint: report the URL once it is all in.
            let mut url = None;
            let mut s3_url = None;
            let mut e2b_url = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("is listening on ").nth(1) {
                    url = Some(rest.trim().to_string());
                }
                // "  s3        http://127.0.0.1:41234   (region ...)"
                if let Some(rest) = line.trim_start().strip_prefix("s3 ")
                    && let Some(first) = rest.split_whitespace().next()
                    && first.starts_with("http")
                {
                    s3_url = Some(first.to_string());
                }
                if let Some(rest) = line.trim_start().strip_prefix("e2b ")
                    && let Some(first) = rest.split_whitespace().next()
                    && first.starts_with("http")
                {
                    e2b_url = Some(first.to_string());
                }
                out.lock().unwrap().push_str(&format!("{line}\n"));
                if line.trim_start().starts_with("cli ")
                    && let Some(url) = url.take()
                {
                    let _ = tx.send((url, s3_url.take(), e2b_url.take()));
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let err = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                err.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let (url, s3_url, e2b_url) = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(urls) => urls,
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not start:\n{}", output.lock().unwrap());
            }
        };
        let firewall_table =
            opts.args.iter().position(|a| a == "--firewall-table").and_then(|i| opts.args.get(i + 1)).cloned();
        TestServer {
            child,
            url,
            s3_url,
            e2b_url,
            data_dir,
            output,
            cli_home: tempfile::tempdir().unwrap(),
            firewall_table,
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// An unauthenticated client.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.url, None).unwrap()
    }

    /// A client logged in as the admin.
    pub async fn admin(&self) -> Client {
        let session = self.anonymous().login("admin", ADMIN_PASSWORD).await.expect("admin login");
        Client::new(&self.url, Some(session.token)).unwrap()
    }

    /// Runs the CLI against this server, with its own config file, feeding `stdin`.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        run_cli(&self.url, &self.cli_config_path(), args, stdin, env)
    }

    /// [`TestServer::cli`] for commands that must end on their own: fails the test (and
    /// kills the CLI) if it still runs after `limit`, instead of hanging the suite.
    pub fn cli_ending_within(&self, args: &[&str], stdin: Option<&str>, limit: Duration) -> Output {
        let mut cmd = self.cli_command(args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().expect("run the roost CLI");
        if let Some(input) = stdin {
            use std::io::Write;
            // A command that refuses its input may have ended before reading it.
            let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
        }
        collect_within(child, args, limit)
    }

    /// Runs the CLI with a terminal as its stdin (a pseudo-terminal the test types
    /// `input` into, as a person at a keyboard would); stdout and stderr are pipes.
    /// Fails the test if the CLI still runs after `limit`.
    pub fn cli_on_terminal(&self, args: &[&str], input: &[u8], limit: Duration) -> Output {
        use std::os::fd::{FromRawFd, OwnedFd};
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two new descriptors into the integers we pass.
        let rc =
            unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are ours alone from here on.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        let mut cmd = self.cli_command(args);
        cmd.stdin(Stdio::from(slave));
        let child = cmd.spawn().expect("run the roost CLI");
        drop(cmd); // our copy of the terminal's slave side
        let mut keyboard = std::fs::File::from(master);
        {
            use std::io::Write;
            // Typed ahead: the terminal holds it until the CLI reads (or has ended).
            let _ = keyboard.write_all(input);
        }
        // What the terminal echoes before the CLI makes it raw: read so it never fills.
        let mut screen = keyboard.try_clone().unwrap();
        std::thread::spawn(move || std::io::copy(&mut screen, &mut std::io::sink()));
        let out = collect_within(child, args, limit);
        drop(keyboard);
        out
    }

    fn cli_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(roost_bin());
        cmd.args(args)
            .env("ROOST_CONFIG_FILE", self.cli_config_path())
            .env("ROOST_SERVER", &self.url)
            .env_remove("ROOST_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn cli_config_path(&self) -> PathBuf {
        self.cli_home.path().join("roost").join("config.toml")
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        wait_exit(&mut self.child, Duration::from_secs(40)).expect("the server exits after SIGTERM")
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Instances outlive their server by design; a test's must not outlive the test.
        let data_dir = self.data_dir.path().to_path_buf();
        if data_dir.join("vms").join("instances").is_dir() {
            let vms = data_dir.join("vms");
            let _ = std::thread::spawn(move || delete_vms_of(&vms)).join();
        }
        if data_dir.join("instances").is_dir() {
            let _ = std::thread::spawn(move || delete_instances_of(&data_dir)).join();
        }
        // So do networks: the firewall tables and bridges of this server's table name.
        if let Some(table) = self.firewall_table.clone() {
            let _ = std::thread::spawn(move || remove_networks_of(&table)).join();
        }
    }
}

/// Deletes every container a (stopped) server with this data dir left running.
pub fn delete_instances_of(data_dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use roost_node::Driver;
        let config = roost_node::drivers::container::ContainerConfig::for_data_dir(data_dir);
        let Ok(driver) = roost_node::drivers::container::ContainerDriver::new(config) else { return };
        for id in driver.list().await.unwrap_or_default() {
            let _ = driver.delete(&id).await;
        }
    });
}

/// Removes the firewall tables and bridges of a server started with `compute(n)`.
pub async fn remove_test_network(n: u8) {
    let table = format!("rtest{n}");
    let _ = std::thread::spawn(move || remove_networks_of(&table)).join();
}

/// Removes the firewall tables and the bridges labelled with this table name.
pub fn remove_networks_of(table: &str) {
    let _ = roost_node::network::firewall::remove("nft", table);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for (bridge, _) in roost_node::network::owned_bridges(&format!("roost:{table}:")) {
            let _ = roost_node::network::remove_bridge(&bridge).await;
        }
        let owner = roost_node::network::RouteOwner::for_table(table);
        let _ = roost_node::network::sync_policy_routing(owner, &[]).await;
    });
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("run kill");
    assert!(status.success());
}

pub fn wait_exit(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Waits for a CLI run and its output; kills it and fails the test after `limit`.
fn collect_within(mut child: Child, args: &[&str], limit: Duration) -> Output {
    use std::io::Read;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let stderr = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let Some(status) = wait_exit(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        let (o, e) = (stdout.join().unwrap(), stderr.join().unwrap());
        panic!(
            "roost {} did not end within {limit:?}:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&o),
            String::from_utf8_lossy(&e)
        );
    };
    Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The PostgreSQL URL of a fresh database for one test.
pub async fn fresh_postgres_database() -> String {
    let base = std::env::var("ROOST_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!(
            "ROOST_TEST_POSTGRES is not set: this test needs a PostgreSQL server (Debian package 'postgresql'); \
             run the tests with `make test`, which installs it and starts one on 127.0.0.1:55432"
        )
    });
    let name = format!("roost_it_{}", roost_api::ids::IdKind::Operation.generate().replace('-', "_"));
    let pool = roost_store::raw_pool(&base).await.expect("connect to the test PostgreSQL server");
    roost_store::sqlx::query(roost_store::sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let i = base.rfind('/').expect("database in ROOST_TEST_POSTGRES");
    format!("{}/{name}", &base[..i])
}

/// Deletes every microVM a (stopped) server left running (`vms_dir`: `<data-dir>/vms`).
pub fn delete_vms_of(vms_dir: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        use roost_node::Driver;
        let config = roost_node::drivers::vm::VmConfig::new(vms_dir);
        let Ok(driver) = roost_node::drivers::vm::VmDriver::new(config) else { return };
        for id in driver.list().await.unwrap_or_default() {
            let _ = driver.delete(&id).await;
        }
    });
}

/// A user with `memberships` (project, role), signed in: a client of theirs.
pub async fn user_in(url: &str, admin: &Client, name: &str, memberships: &[(&str, roost_api::auth::Role)]) -> Client {
    let req = roost_api::users::CreateUserRequest {
        name: name.into(),
        role: Some(roost_api::auth::Role::Operator),
        password: Some(format!("{name}-password")),
        projects: Some(vec![]),
        ..Default::default()
    };
    admin.create_user(&req).await.unwrap();
    for (project, role) in memberships {
        admin.set_member(project, name, *role).await.unwrap();
    }
    let token = Client::new(url, None).unwrap().login(name, &format!("{name}-password")).await.unwrap().token;
    Client::new(url, Some(token)).unwrap()
}

/// A root filesystem tarball holding one file of `size` zero bytes.
pub fn tarball_with(name: &str, size: usize) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, vec![0u8; size]).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    tar.sparse(false);
    tar.append_path_with_name(&file, name).unwrap();
    tar.into_inner().unwrap()
}

/// Runs the CLI (the real binary) against the server at `url` with the config file
/// `config`, feeding `stdin`.
pub fn run_cli(url: &str, config: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(roost_bin());
    cmd.args(args)
        .env("ROOST_CONFIG_FILE", config)
        .env("ROOST_SERVER", url)
        .env_remove("ROOST_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run the roost CLI");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// The HTTP status of a client error (0 when none came back).
pub fn status(err: &roost_client::ClientError) -> u16 {
    err.status().map(|s| s.as_u16()).unwrap_or(0)
}

/// A small busybox instance.
pub fn busybox(name: &str) -> roost_api::instances::CreateInstanceRequest {
    roost_api::instances::CreateInstanceRequest {
        name: name.into(),
        image: "busybox".into(),
        memory_bytes: Some(64 << 20),
        ..Default::default()
    }
}
