//! `roost server`: the control plane with its API, console and housekeeping.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use roost_control::{Control, ControlSettings};
use roost_store::Store;
use tokio_util::sync::CancellationToken;

use crate::config::{ComputeMode, LogFormat, ServerArgs, ServerSettings};

/// In-flight requests get this long to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Running background-task activations get this long to finish after that.
const TASKS_GRACE: Duration = Duration::from_secs(10);

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let settings = ServerSettings::resolve(&args)?;
    init_logging(&settings);

    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create the data directory {}", settings.data_dir.display()))?;
    restrict_permissions(&settings.data_dir);
    let (store, store_desc) = match &settings.database {
        Some(url) => {
            let store = Store::open(url)
                .await
                .with_context(|| format!("cannot open the store at {}", roost_store::redact_url(url)))?;
            (store, roost_store::redact_url(url))
        }
        None => {
            let path = settings.data_dir.join("roost.db");
            let store = Store::open_sqlite(&path)
                .await
                .with_context(|| format!("cannot open the store at {}", path.display()))?;
            (store, format!("sqlite {}", path.display()))
        }
    };
    tracing::info!(store = %store_desc, "store open, migrations applied");

    // The S3 listener is bound first: presigned URLs need its address.
    let s3_listener = match settings.s3_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen for S3 on {addr} (is another server running there? --s3-listen off disables it)")
        })?),
        None => None,
    };
    let s3_addr = match &s3_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let s3_endpoint = settings.s3_public_url.clone().or_else(|| s3_addr.map(|a| format!("http://{a}")));
    let shutdown = CancellationToken::new();
    let control = Control::new(
        store.clone(),
        ControlSettings {
            data_dir: settings.data_dir.clone(),
            session_ttl: settings.session_ttl,
            login_per_minute: settings.login_rate_per_minute,
            login_failures_per_account: settings.login_failures_per_account,
            public_url: settings.public_url.clone(),
            trust_proxy: settings.trust_proxy,
            image_import_max_size: settings.image_import_max_size,
            image_import_max_unpacked: settings.image_import_max_unpacked,
            mutations_per_minute: settings.mutation_rate_per_minute,
            audit_retention: settings.audit_retention,
            s3_endpoint: s3_endpoint.clone(),
            s3_region: settings.s3_region.clone(),
            task_lease: settings.task_lease,
        },
        shutdown.clone(),
    );
    tracing::info!(server_id = %control.tasks().server_id(), "this server's id (background task leases name it)");
    control.recover().await?;
    // Every listener is bound before the node is attached: port forwards must know the
    // ports Roost really listens on (also when a setting says port 0).
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} (is another server running there?)", settings.listen))?;
    let addr = listener.local_addr()?;
    let e2b_listener = match settings.e2b_listen {
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("cannot listen for the E2B API on {addr} (is another server running there? --e2b-listen off disables it)")
        })?),
        None => None,
    };
    let e2b_addr = match &e2b_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let listeners: Vec<(u16, String)> = [(Some(addr), "API"), (s3_addr, "S3"), (e2b_addr, "E2B")]
        .into_iter()
        .filter_map(|(a, name)| Some((a?.port(), name.to_string())))
        .collect();
    match attach_compute(&control, &settings, listeners) {
        Ok(()) => {
            tracing::info!(firewall_table = %settings.firewall_table, network_pool = %settings.network_cidr, "compute node attached (runc containers)")
        }
        Err(e) if settings.compute == ComputeMode::On => {
            return Err(e.context("--compute on, but the node cannot run instances"));
        }
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "instances are unavailable on this server"),
    }
    // Jobs a stopped server left unfinished are resumed or undone (undoing needs the node).
    control.resume_jobs();
    let admin_password = std::env::var("ROOST_ADMIN_PASSWORD").ok().filter(|p| !p.is_empty());
    let from_env = admin_password.is_some();
    let created = control.bootstrap_admin(admin_password).await.map_err(|e| anyhow::anyhow!(e.message))?;

    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("duration_seconds".into()),
            &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
        )
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    metrics::gauge!("roost_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);

    print_banner(addr, s3_endpoint.as_deref(), e2b_addr, &settings, &store_desc, created.as_deref(), from_env);
    control.set_sandbox_pool(settings.sandbox_pool);
    control.start_tasks();
    {
        // The warm pool of an earlier run is not ours any more (it lived in memory).
        let control = control.clone();
        let started = roost_store::now_ms();
        tokio::spawn(async move {
            if let Err(e) = control.remove_pool_leftovers(started).await {
                tracing::warn!(error = %e.message, "cannot remove the warm pool of an earlier run");
            }
        });
    }
    if let Some(addr) = e2b_addr {
        control.set_e2b_address(addr);
    }
    if let Some(listener) = e2b_listener {
        let router = roost_http::e2b::router(control.clone());
        let s = shutdown.clone();
        tokio::spawn(async move {
            let serve = axum::serve(nodelay(listener), router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move { s.cancelled().await });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "the E2B listener failed");
            }
        });
    }

    // Objects are written through the REST routes too, so their housekeeping runs
    // whether or not the S3 listener does.
    control.register_object_housekeeping(settings.s3_housekeeping_interval);
    if let Some(listener) = s3_listener {
        let s3_settings =
            roost_s3::S3Settings { domain: settings.s3_domain.clone(), region: settings.s3_region.clone() };
        let endpoint = roost_s3::Endpoint::new(control.clone(), &s3_settings).map_err(|e| anyhow::anyhow!(e))?;
        tokio::spawn(endpoint.serve(listener, shutdown.clone()));
    }
    let app = roost_http::app(roost_http::AppState { control: control.clone(), metrics });
    let signal = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        signal.cancel();
    });
    let serve = axum::serve(nodelay(listener), app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown({
            let s = shutdown.clone();
            async move { s.cancelled().await }
        })
        .into_future();
    tokio::select! {
        result = serve => result.context("server error")?,
        _ = async { shutdown.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
            tracing::warn!("requests still running after {}s; stopping anyway", SHUTDOWN_GRACE.as_secs());
        }
    }
    // Running activations finish and leases are given up, so another server sharing
    // the store takes the tasks over at once.
    control.tasks().stop(TASKS_GRACE).await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The listener with TCP_NODELAY on every connection: a streamed response (an exec's
/// events, a Connect stream's end) is written in small pieces, and with Nagle on, a
/// piece waits for the ACK of the previous one, which the client delays by up to 40 ms.
fn nodelay(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set(stream: &mut tokio::net::TcpStream) {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    }
    listener.tap_io(set as fn(&mut tokio::net::TcpStream))
}

/// Runs instances here: the runc driver, the image store and the default network.
fn attach_compute(control: &Control, s: &ServerSettings, listeners: Vec<(u16, String)>) -> anyhow::Result<()> {
    if s.compute == ComputeMode::Off {
        anyhow::bail!("compute is off (--compute off)");
    }
    if s.compute == ComputeMode::Simulated {
        tracing::warn!(
            "the compute node is simulated (--compute simulated): instances are records in memory, nothing runs"
        );
        let mut node = roost_control::node::Node::new(
            std::sync::Arc::new(roost_node::sim::SimNode::new()),
            s.network_cidr,
            listeners,
        );
        node.port_forward_range = s.port_forward_range.clone();
        control.attach_node(node);
        return Ok(());
    }
    let mut config = roost_node::drivers::container::ContainerConfig::for_data_dir(&s.data_dir);
    config.runc = s.runc.clone().into();
    // ROOST_EXEC_AGENT=off: containers keep the shell init and every exec is a `runc
    // exec` (for A/B measurements and as an escape hatch; see docs/performance.md).
    config.exec_agent = std::env::var("ROOST_EXEC_AGENT").map_or(true, |v| v != "off");
    config.userns = s.userns;
    let driver = roost_node::drivers::container::ContainerDriver::new(config).map_err(|e| anyhow::anyhow!("{e}"))?;
    match driver.idmap() {
        Some(map) => {
            tracing::info!(uid = map.uid, gid = map.gid, count = map.count, "containers run in user namespaces")
        }
        None => tracing::info!("containers run without user namespaces"),
    }
    let mut local = roost_node::local::LocalNode::new(&s.data_dir, driver, s.firewall_table.clone());
    // MicroVMs when QEMU is there; containers work without.
    let mut vm_config = roost_node::drivers::vm::VmConfig::new(s.data_dir.join("vms"));
    vm_config.accel = s.accel;
    match roost_node::drivers::vm::VmDriver::new(vm_config) {
        Ok(vm) => {
            let accel = vm.accel();
            tracing::info!(accelerator = %accel.accelerator, reason = %accel.reason, "microVMs available");
            local = local.with_vms(vm);
        }
        Err(e) => {
            tracing::warn!(error = %e, "microVMs unavailable");
            local = local.without_vms(e.to_string());
        }
    }
    // Port forwards may not take Roost's own listeners.
    let mut node = roost_control::node::Node::new(std::sync::Arc::new(local), s.network_cidr, listeners);
    node.port_forward_range = s.port_forward_range.clone();
    control.attach_node(node);
    Ok(())
}

fn print_banner(
    addr: SocketAddr,
    s3: Option<&str>,
    e2b: Option<SocketAddr>,
    s: &ServerSettings,
    store: &str,
    generated: Option<&str>,
    from_env: bool,
) {
    let url = format!("http://{addr}");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Roost {} is listening on {url}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "  console   {url}/");
    let _ = writeln!(out, "  api       {url}/v1   (OpenAPI: {url}/v1/openapi.json)");
    match s3 {
        Some(s3) => {
            let style = match &s.s3_domain {
                Some(d) => format!("path-style and <bucket>.{d}"),
                None => "path-style".to_string(),
            };
            let _ = writeln!(out, "  s3        {s3}   (region {}, {style})", s.s3_region);
        }
        None => {
            let _ = writeln!(out, "  s3        off");
        }
    }
    match e2b {
        Some(a) => {
            let _ = writeln!(out, "  e2b       http://{a}   (E2B_API_URL and E2B_SANDBOX_URL)");
        }
        None => {
            let _ = writeln!(out, "  e2b       off");
        }
    }
    let _ = writeln!(out, "  data      {}   (store: {store})", s.data_dir.display());
    match generated {
        Some(password) => {
            let _ = writeln!(out, "  admin     user 'admin', password: {password}");
            let _ = writeln!(
                out,
                "            (shown this once: store it now; set ROOST_ADMIN_PASSWORD on a first start to choose it)"
            );
        }
        None if from_env => {
            let _ = writeln!(out, "  admin     user 'admin' (password from ROOST_ADMIN_PASSWORD on the first start)");
        }
        None => {
            let _ = writeln!(out, "  admin     user 'admin' (its password was printed on the first start)");
        }
    }
    let _ = writeln!(out, "  cli       roost login --server {url} --username admin");
    let _ = out.flush();
}

fn init_logging(s: &ServerSettings) {
    // sqlx logs every statement at debug and slow ones at warn; keep its noise down
    // unless the filter names it.
    let mut filter =
        if s.log_level.contains("sqlx") { s.log_level.clone() } else { format!("{},sqlx=warn", s.log_level) };
    // s3s logs every refused S3 request (a bad signature, a missing key) at error level;
    // those are the client's mistakes, answered in the response. Roost logs its own
    // failures. `--log-level s3s=debug,info` shows them again.
    if !filter.contains("s3s") {
        filter.push_str(",s3s=off");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match s.log_format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).init(),
        LogFormat::Text => {
            builder.with_target(false).with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init()
        }
    }
}

/// The data directory holds the store and (later) secrets: owner only.
fn restrict_permissions(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Err(err) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
        tracing::warn!(dir = %dir.display(), error = %err, "cannot restrict the data directory to its owner");
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
