//! The control plane in this test's process, over the simulated node: the same router,
//! services, store (SQLite in a temporary directory) and background tasks as
//! `roost server`, with a [`SimNode`] where the machine would be. No root, no runc, no
//! host networking: what these servers test is the control plane's own logic
//! (authorization, validation, quotas, idempotency, collections, events, jobs), which
//! is the same whatever node runs the instances.
//!
//! The server runs on its own thread and runtime, so sync tests and async tests alike
//! can use it, and it outlives whatever runtime the test makes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use roost_client::Client;
use roost_control::{Control, ControlSettings};
use roost_node::sim::SimNode;
use tokio_util::sync::CancellationToken;

use super::ADMIN_PASSWORD;

pub struct SimServer {
    pub url: String,
    pub control: Control,
    /// The node: inspect what reached it, or make its next calls fail.
    pub node: SimNode,
    pub data_dir: tempfile::TempDir,
    pub cli_home: tempfile::TempDir,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SimServer {
    pub fn start() -> SimServer {
        let data_dir = tempfile::tempdir().unwrap();
        let path = data_dir.path().to_path_buf();
        let node = SimNode::new();
        let shutdown = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let (sim, stop) = (node.clone(), shutdown.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let (control, addr) = serve(path, sim, stop.clone()).await;
                tx.send((control, addr)).unwrap();
                stop.cancelled().await;
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        });
        let (control, addr) = rx.recv_timeout(Duration::from_secs(60)).expect("the in-process server starts");
        SimServer {
            url: format!("http://{addr}"),
            control,
            node,
            data_dir,
            cli_home: tempfile::tempdir().unwrap(),
            shutdown,
            thread: Some(thread),
        }
    }

    pub fn anonymous(&self) -> Client {
        Client::new(&self.url, None).unwrap()
    }

    pub async fn admin(&self) -> Client {
        let session = self.anonymous().login("admin", ADMIN_PASSWORD).await.expect("admin login");
        Client::new(&self.url, Some(session.token)).unwrap()
    }

    /// Runs the CLI (the real binary) against this server, with its own config file.
    pub fn cli(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        super::run_cli(&self.url, &self.cli_config_path(), args, stdin, env)
    }

    pub fn cli_config_path(&self) -> PathBuf {
        self.cli_home.path().join("roost").join("config.toml")
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What `roost server` does at start, with the simulated node attached.
async fn serve(data_dir: PathBuf, node: SimNode, shutdown: CancellationToken) -> (Control, SocketAddr) {
    let store = roost_store::Store::open_sqlite(&data_dir.join("roost.db")).await.expect("the store opens");
    let settings = ControlSettings {
        data_dir,
        session_ttl: Duration::from_secs(12 * 3600),
        login_per_minute: 10_000,
        login_failures_per_account: 0,
        public_url: None,
        trust_proxy: false,
        image_import_max_size: 64 << 20,
        image_import_max_unpacked: 256 << 20,
        mutations_per_minute: 100_000,
        audit_retention: None,
        s3_endpoint: None,
        s3_region: "us-east-1".into(),
        task_lease: Duration::from_secs(30),
    };
    // The S3 listener is bound first: presigned URLs need its address.
    let s3_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s3_url = format!("http://{}", s3_listener.local_addr().unwrap());
    let settings = ControlSettings { s3_endpoint: Some(s3_url), ..settings };
    let control = Control::new(store, settings, shutdown.clone());
    control.recover().await.expect("recover");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pool: ipnet::Ipv4Net = "10.77.0.0/16".parse().unwrap();
    let node = roost_control::node::Node::new(Arc::new(node), pool, vec![(addr.port(), "API".into())]);
    control.attach_node(node);
    control.bootstrap_admin(Some(ADMIN_PASSWORD.into())).await.expect("the admin");
    control.start_tasks();
    control.register_object_housekeeping(Duration::from_secs(60));
    let s3_settings = roost_s3::S3Settings { domain: None, region: "us-east-1".into() };
    let endpoint = roost_s3::Endpoint::new(control.clone(), &s3_settings).expect("the S3 endpoint");
    tokio::spawn(endpoint.serve(s3_listener, shutdown.clone()));
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder().handle();
    let app = roost_http::app(roost_http::AppState { control: control.clone(), metrics });
    tokio::spawn(async move {
        let serve = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        let _ = serve.await;
    });
    (control, addr)
}
