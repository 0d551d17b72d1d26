//! Server settings: each has a flag, a `ROOST_*` environment variable, a key in the
//! `--config` TOML file and a default; precedence is flag > env > file > default. A bad
//! value stops startup with a message naming the setting, where it came from and what
//! is allowed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};

/// The `roost server` flags; every one is optional so the other sources can fill in.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerArgs {
    /// TOML file with settings (keys as below, e.g. `listen = "0.0.0.0:7700"`) [env: ROOST_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the API and console [env: ROOST_LISTEN] [default: 127.0.0.1:7700]
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Where Roost keeps its data [env: ROOST_DATA_DIR] [default: /var/lib/roost as root, else ~/.local/share/roost]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Store: postgres://user:pass@host/db, or sqlite:///path [env: ROOST_DATABASE] [default: SQLite in the data dir]
    #[arg(long, value_name = "URL")]
    pub database: Option<String>,
    /// Log line format: text or json [env: ROOST_LOG_FORMAT] [default: text]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. info or roost=debug,info [env: ROOST_LOG_LEVEL] [default: info]
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// How long a login session lasts, e.g. 12h [env: ROOST_SESSION_TTL] [default: 12h]
    #[arg(long, value_name = "DURATION")]
    pub session_ttl: Option<String>,
    /// Login attempts allowed per client address per minute [env: ROOST_LOGIN_RATE_PER_MINUTE] [default: 10]
    #[arg(long, value_name = "N")]
    pub login_rate_per_minute: Option<String>,
    /// Failed logins per account per 15 minutes before it waits (0: no limit) [env: ROOST_LOGIN_FAILURES_PER_ACCOUNT] [default: 10]
    #[arg(long, value_name = "N")]
    pub login_failures_per_account: Option<String>,
    /// The URL people reach the API and console at, e.g. https://roost.example.com; https makes cookies Secure [env: ROOST_PUBLIC_URL] [default: none]
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// Trust X-Forwarded-Proto and X-Forwarded-For from the peer (only behind a reverse proxy that sets them): on or off [env: ROOST_TRUST_PROXY] [default: off]
    #[arg(long, value_name = "ON|OFF")]
    pub trust_proxy: Option<String>,
    /// Largest image upload (POST /v1/images/import), e.g. 10GiB [env: ROOST_IMAGE_IMPORT_MAX_SIZE] [default: 10GiB]
    #[arg(long, value_name = "SIZE")]
    pub image_import_max_size: Option<String>,
    /// Most an imported image may unpack to, e.g. 40GiB [env: ROOST_IMAGE_IMPORT_MAX_UNPACKED] [default: 40GiB]
    #[arg(long, value_name = "SIZE")]
    pub image_import_max_unpacked: Option<String>,
    /// Mutating requests allowed per user per minute [env: ROOST_MUTATION_RATE_PER_MINUTE] [default: 600]
    #[arg(long, value_name = "N")]
    pub mutation_rate_per_minute: Option<String>,
    /// Archive audit entries older than this to <data-dir>/audit-archive/, e.g. 365d, or off [env: ROOST_AUDIT_RETENTION] [default: off]
    #[arg(long, value_name = "DURATION")]
    pub audit_retention: Option<String>,
    /// Run instances on this machine: auto (when root and runc are there), on, off, or simulated (instances are records in memory and nothing runs: for trying the API and testing the control plane) [env: ROOST_COMPUTE] [default: auto]
    #[arg(long, value_name = "MODE")]
    pub compute: Option<String>,
    /// Pool that projects' default networks (and networks made without --cidr) take a /24 from [env: ROOST_NETWORK_CIDR] [default: 10.88.0.0/16]
    #[arg(long, value_name = "CIDR")]
    pub network_cidr: Option<String>,
    /// Name of the nftables tables Roost owns; also labels its bridges (two installations on one host need two names) [env: ROOST_FIREWALL_TABLE] [default: roost]
    #[arg(long, value_name = "NAME")]
    pub firewall_table: Option<String>,
    /// Host ports port forwards may take, e.g. 20000-29999 [env: ROOST_PORT_FORWARD_RANGE] [default: 1024-65535]
    #[arg(long, value_name = "FIRST-LAST")]
    pub port_forward_range: Option<String>,
    /// The runc program [env: ROOST_RUNC] [default: runc]
    #[arg(long, value_name = "PATH")]
    pub runc: Option<String>,
    /// Address of the S3 endpoint, or off [env: ROOST_S3_LISTEN] [default: 127.0.0.1:7701]
    #[arg(long, value_name = "ADDR")]
    pub s3_listen: Option<String>,
    /// Base domain for virtual-host-style S3 requests (bucket.<domain>) [env: ROOST_S3_DOMAIN] [default: none, path-style only]
    #[arg(long, value_name = "DOMAIN")]
    pub s3_domain: Option<String>,
    /// The region S3 clients sign for [env: ROOST_S3_REGION] [default: us-east-1]
    #[arg(long, value_name = "REGION")]
    pub s3_region: Option<String>,
    /// The S3 endpoint's URL as clients reach it, for presigned URLs [env: ROOST_S3_PUBLIC_URL] [default: http://<s3-listen>]
    #[arg(long, value_name = "URL")]
    pub s3_public_url: Option<String>,
    /// Address of the E2B-compatible sandbox API (control plane and sandbox traffic), or off [env: ROOST_E2B_LISTEN] [default: 127.0.0.1:7702]
    #[arg(long, value_name = "ADDR")]
    pub e2b_listen: Option<String>,
    /// How often lifecycle rules and object garbage collection run [env: ROOST_S3_HOUSEKEEPING_INTERVAL] [default: 1h]
    #[arg(long, value_name = "DURATION")]
    pub s3_housekeeping_interval: Option<String>,
    /// MicroVM accelerator: auto (KVM when a probe proves it works, else TCG), kvm, tcg [env: ROOST_ACCEL] [default: auto]
    #[arg(long, value_name = "MODE")]
    pub accel: Option<String>,
    /// Containers in user namespaces: auto (where the host supports them), on (refuse to start without), off [env: ROOST_USERNS] [default: auto]
    #[arg(long, value_name = "MODE")]
    pub userns: Option<String>,
    /// Frozen sandboxes kept ready per template and project (0: off, every create starts cold) [env: ROOST_SANDBOX_POOL] [default: 0]
    #[arg(long, value_name = "N")]
    pub sandbox_pool: Option<String>,
    /// How long a background task's lease lasts unrenewed: servers sharing a PostgreSQL store take over a dead server's tasks after this [env: ROOST_TASK_LEASE] [default: 30s]
    #[arg(long, value_name = "DURATION")]
    pub task_lease: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeMode {
    Auto,
    On,
    Off,
    /// The simulated node: the control plane whole, nothing on the host.
    Simulated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: SQLite in the data dir.
    pub database: Option<String>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub session_ttl: Duration,
    pub login_rate_per_minute: u32,
    /// Failed logins per account per 15 minutes before it waits; 0: no limit.
    pub login_failures_per_account: u32,
    /// The URL people reach the API at (`https://…` makes cookies `Secure`).
    pub public_url: Option<String>,
    /// Whether X-Forwarded-Proto/-For from the peer are believed.
    pub trust_proxy: bool,
    pub image_import_max_size: u64,
    pub image_import_max_unpacked: u64,
    pub mutation_rate_per_minute: u32,
    /// `None`: audit entries are kept forever.
    pub audit_retention: Option<Duration>,
    pub compute: ComputeMode,
    /// The default network's range; the gateway is its first address.
    pub network_cidr: ipnet::Ipv4Net,
    pub firewall_table: String,
    /// Host ports port forwards may take.
    pub port_forward_range: std::ops::RangeInclusive<u16>,
    pub runc: String,
    /// `None`: the S3 endpoint is off.
    pub s3_listen: Option<SocketAddr>,
    pub s3_domain: Option<String>,
    pub s3_region: String,
    pub s3_public_url: Option<String>,
    pub s3_housekeeping_interval: Duration,
    pub accel: roost_node::drivers::vm::AccelChoice,
    pub userns: roost_node::drivers::container::userns::UsernsMode,
    /// `None`: the E2B API is off.
    pub e2b_listen: Option<SocketAddr>,
    /// Warm pool size per (project, template); 0: off.
    pub sandbox_pool: u32,
    /// Background-task lease length.
    pub task_lease: Duration,
}

/// Every setting: the file key (the flag is `--` + key with `-`, the env var `ROOST_` +
/// upper-case key).
const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database",
    "log_format",
    "log_level",
    "session_ttl",
    "login_rate_per_minute",
    "login_failures_per_account",
    "public_url",
    "trust_proxy",
    "image_import_max_size",
    "image_import_max_unpacked",
    "mutation_rate_per_minute",
    "audit_retention",
    "compute",
    "network_cidr",
    "firewall_table",
    "port_forward_range",
    "runc",
    "s3_listen",
    "s3_domain",
    "s3_region",
    "s3_public_url",
    "s3_housekeeping_interval",
    "accel",
    "userns",
    "e2b_listen",
    "sandbox_pool",
    "task_lease",
];

struct Sources<'a> {
    env: &'a dyn Fn(&str) -> Option<String>,
    file: BTreeMap<String, String>,
    file_name: String,
}

impl Sources<'_> {
    /// The value and a description of where it came from, by precedence.
    fn get(&self, key: &str, flag: &Option<String>) -> Option<(String, String)> {
        let env_name = format!("ROOST_{}", key.to_uppercase());
        if let Some(v) = flag {
            return Some((v.clone(), format!("flag --{}", key.replace('_', "-"))));
        }
        if let Some(v) = (self.env)(&env_name) {
            return Some((v, format!("environment variable {env_name}")));
        }
        self.file.get(key).map(|v| (v.clone(), format!("'{key}' in {}", self.file_name)))
    }
}

fn invalid(key: &str, value: &str, source: &str, allowed: &str) -> anyhow::Error {
    anyhow::anyhow!("invalid setting {key} = '{value}' (from {source}): {allowed}")
}

impl ServerSettings {
    /// Resolves the settings from the process environment.
    pub fn resolve(args: &ServerArgs) -> anyhow::Result<ServerSettings> {
        Self::resolve_with(args, &|name| std::env::var(name).ok())
    }

    pub fn resolve_with(args: &ServerArgs, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<ServerSettings> {
        let config_path = args.config.clone().or_else(|| env("ROOST_CONFIG").map(PathBuf::from));
        let (file, file_name) = match &config_path {
            Some(path) => (read_file(path)?, path.display().to_string()),
            None => (BTreeMap::new(), String::new()),
        };
        let s = Sources { env, file, file_name };

        let listen = match s.get("listen", &args.listen) {
            Some((v, src)) => v.parse::<SocketAddr>().map_err(|_| {
                invalid("listen", &v, &src, "expected an address and port like 127.0.0.1:7700 or 0.0.0.0:7700")
            })?,
            None => "127.0.0.1:7700".parse().expect("default address"),
        };
        let data_dir = match s.get("data_dir", &args.data_dir) {
            Some((v, src)) if v.trim().is_empty() => {
                return Err(invalid("data_dir", &v, &src, "expected a directory path"));
            }
            Some((v, _)) => PathBuf::from(v),
            None => default_data_dir(),
        };
        let database = match s.get("database", &args.database) {
            Some((v, src)) => {
                let ok = v.starts_with("postgres://") || v.starts_with("postgresql://") || v.starts_with("sqlite:");
                if !ok {
                    let shown = roost_store::redact_url(&v);
                    return Err(invalid(
                        "database",
                        &shown,
                        &src,
                        "expected postgres://user:password@host:port/db or sqlite:///path/roost.db",
                    ));
                }
                Some(v)
            }
            None => None,
        };
        let log_format = match s.get("log_format", &args.log_format) {
            Some((v, src)) => match v.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(invalid("log_format", &v, &src, "expected text or json")),
            },
            None => LogFormat::Text,
        };
        let log_level = match s.get("log_level", &args.log_level) {
            Some((v, src)) => {
                tracing_subscriber::EnvFilter::try_new(&v).map_err(|e| {
                    invalid(
                        "log_level",
                        &v,
                        &src,
                        &format!(
                            "expected a level (error, warn, info, debug, trace) or a filter like roost=debug,info ({e})"
                        ),
                    )
                })?;
                v
            }
            None => "info".to_string(),
        };
        let session_ttl = match s.get("session_ttl", &args.session_ttl) {
            Some((v, src)) => match humantime::parse_duration(&v) {
                Ok(d) if d >= Duration::from_secs(60) && d <= Duration::from_secs(90 * 86400) => d,
                _ => {
                    return Err(invalid("session_ttl", &v, &src, "expected a duration from 1m to 90d, like 12h"));
                }
            },
            None => Duration::from_secs(12 * 3600),
        };
        let login_rate_per_minute = match s.get("login_rate_per_minute", &args.login_rate_per_minute) {
            Some((v, src)) => match v.parse::<u32>() {
                Ok(n) if (1..=10_000).contains(&n) => n,
                _ => {
                    return Err(invalid("login_rate_per_minute", &v, &src, "expected a whole number from 1 to 10000"));
                }
            },
            None => 10,
        };
        let login_failures_per_account = match s.get("login_failures_per_account", &args.login_failures_per_account) {
            Some((v, src)) => match v.parse::<u32>() {
                Ok(n) if n <= 10_000 => n,
                _ => {
                    return Err(invalid(
                        "login_failures_per_account",
                        &v,
                        &src,
                        "expected a whole number from 0 (no limit) to 10000",
                    ));
                }
            },
            None => 10,
        };
        let public_url = match s.get("public_url", &args.public_url) {
            Some((v, _)) if v.is_empty() => None,
            Some((v, src)) => {
                let ok =
                    url::Url::parse(&v).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                if !ok {
                    return Err(invalid("public_url", &v, &src, "expected a URL like https://roost.example.com"));
                }
                Some(v.trim_end_matches('/').to_string())
            }
            None => None,
        };
        let trust_proxy = match s.get("trust_proxy", &args.trust_proxy) {
            Some((v, src)) => match v.as_str() {
                "on" | "true" | "yes" => true,
                "off" | "false" | "no" => false,
                _ => return Err(invalid("trust_proxy", &v, &src, "expected on or off")),
            },
            None => false,
        };
        let size = |key: &str, flag: &Option<String>, default: u64| -> anyhow::Result<u64> {
            match s.get(key, flag) {
                Some((v, src)) => match roost_api::parse_size(&v) {
                    Some(n) if n >= 1 << 20 => Ok(n),
                    _ => Err(invalid(key, &v, &src, "expected a size of at least 1MiB, like 10GiB or 512MiB")),
                },
                None => Ok(default),
            }
        };
        let image_import_max_size = size("image_import_max_size", &args.image_import_max_size, 10 << 30)?;
        let image_import_max_unpacked = size("image_import_max_unpacked", &args.image_import_max_unpacked, 40 << 30)?;
        let mutation_rate_per_minute = match s.get("mutation_rate_per_minute", &args.mutation_rate_per_minute) {
            Some((v, src)) => match v.parse::<u32>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    return Err(invalid(
                        "mutation_rate_per_minute",
                        &v,
                        &src,
                        "expected a whole number from 1 to 1000000",
                    ));
                }
            },
            None => 600,
        };
        let audit_retention = match s.get("audit_retention", &args.audit_retention) {
            Some((v, _)) if matches!(v.as_str(), "off" | "never" | "0") => None,
            Some((v, src)) => match humantime::parse_duration(&v) {
                Ok(d) if d >= Duration::from_secs(1) => Some(d),
                _ => return Err(invalid("audit_retention", &v, &src, "expected a duration like 365d, or off")),
            },
            None => None,
        };
        let compute = match s.get("compute", &args.compute) {
            Some((v, src)) => match v.as_str() {
                "auto" => ComputeMode::Auto,
                "on" => ComputeMode::On,
                "off" => ComputeMode::Off,
                "simulated" => ComputeMode::Simulated,
                _ => return Err(invalid("compute", &v, &src, "expected auto, on, off or simulated")),
            },
            None => ComputeMode::Auto,
        };
        let network_cidr = match s.get("network_cidr", &args.network_cidr) {
            Some((v, src)) => match v.parse::<ipnet::Ipv4Net>() {
                Ok(net) if net.prefix_len() <= 30 && net == net.trunc() => net,
                _ => {
                    return Err(invalid(
                        "network_cidr",
                        &v,
                        &src,
                        "expected an IPv4 network like 10.88.0.0/16 (prefix at most /30)",
                    ));
                }
            },
            None => "10.88.0.0/16".parse().expect("default CIDR"),
        };
        let firewall_table = match s.get("firewall_table", &args.firewall_table) {
            Some((v, src)) => {
                let ok = !v.is_empty() && v.len() <= 15 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    return Err(invalid("firewall_table", &v, &src, "expected 1-15 letters, digits or '_'"));
                }
                v
            }
            None => "roost".to_string(),
        };
        let port_forward_range = match s.get("port_forward_range", &args.port_forward_range) {
            Some((v, src)) => {
                let parsed = v
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
                match parsed {
                    Some((first, last)) if first >= 1 && first <= last => first..=last,
                    _ => {
                        return Err(invalid(
                            "port_forward_range",
                            &v,
                            &src,
                            "expected a range of ports like 1024-65535 (first at least 1, last at most 65535)",
                        ));
                    }
                }
            }
            None => roost_control::node::DEFAULT_PORT_FORWARD_RANGE,
        };
        let runc = s.get("runc", &args.runc).map(|(v, _)| v).unwrap_or_else(|| "runc".to_string());
        let s3_listen = match s.get("s3_listen", &args.s3_listen) {
            Some((v, _)) if v == "off" => None,
            Some((v, src)) => Some(v.parse::<SocketAddr>().map_err(|_| {
                invalid("s3_listen", &v, &src, "expected an address and port like 127.0.0.1:7701, or off")
            })?),
            None => Some("127.0.0.1:7701".parse().expect("default address")),
        };
        let s3_domain = match s.get("s3_domain", &args.s3_domain) {
            Some((v, _)) if v.is_empty() => None,
            Some((v, src)) => {
                let ok = v.split('.').all(|l| {
                    !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
                if !ok {
                    return Err(invalid("s3_domain", &v, &src, "expected a DNS name like s3.example.com"));
                }
                Some(v.to_ascii_lowercase())
            }
            None => None,
        };
        let s3_region = match s.get("s3_region", &args.s3_region) {
            Some((v, src)) => {
                let ok = !v.is_empty()
                    && v.len() <= 32
                    && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    return Err(invalid(
                        "s3_region",
                        &v,
                        &src,
                        "expected a region name like us-east-1 (a-z, 0-9, '-')",
                    ));
                }
                v
            }
            None => "us-east-1".to_string(),
        };
        let s3_public_url = match s.get("s3_public_url", &args.s3_public_url) {
            Some((v, src)) => {
                let ok = url::Url::parse(&v)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/");
                if !ok {
                    return Err(invalid("s3_public_url", &v, &src, "expected a URL like https://s3.example.com"));
                }
                Some(v.trim_end_matches('/').to_string())
            }
            None => None,
        };
        let s3_housekeeping_interval = match s.get("s3_housekeeping_interval", &args.s3_housekeeping_interval) {
            Some((v, src)) => match humantime::parse_duration(&v) {
                Ok(d) if d >= Duration::from_secs(1) => d,
                _ => return Err(invalid("s3_housekeeping_interval", &v, &src, "expected a duration like 1h or 30s")),
            },
            None => Duration::from_secs(3600),
        };
        let accel = match s.get("accel", &args.accel) {
            Some((v, src)) => roost_node::drivers::vm::AccelChoice::parse(&v)
                .ok_or_else(|| invalid("accel", &v, &src, "expected auto, kvm or tcg"))?,
            None => roost_node::drivers::vm::AccelChoice::Auto,
        };
        let userns = match s.get("userns", &args.userns) {
            Some((v, src)) => v.parse().map_err(|_| invalid("userns", &v, &src, "expected auto, on or off"))?,
            None => roost_node::drivers::container::userns::UsernsMode::Auto,
        };
        let e2b_listen = match s.get("e2b_listen", &args.e2b_listen) {
            Some((v, _)) if v == "off" => None,
            Some((v, src)) => Some(v.parse::<SocketAddr>().map_err(|_| {
                invalid("e2b_listen", &v, &src, "expected an address and port like 127.0.0.1:7702, or off")
            })?),
            None => Some("127.0.0.1:7702".parse().expect("default address")),
        };
        let sandbox_pool = match s.get("sandbox_pool", &args.sandbox_pool) {
            Some((v, src)) => match v.parse::<u32>() {
                Ok(n) if n <= 100 => n,
                _ => return Err(invalid("sandbox_pool", &v, &src, "expected a number of sandboxes from 0 to 100")),
            },
            None => 0,
        };
        let task_lease = match s.get("task_lease", &args.task_lease) {
            Some((v, src)) => match humantime::parse_duration(&v) {
                Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(3600) => d,
                _ => return Err(invalid("task_lease", &v, &src, "expected a duration from 1s to 1h, like 30s")),
            },
            None => Duration::from_secs(30),
        };
        Ok(ServerSettings {
            task_lease,
            sandbox_pool,
            accel,
            userns,
            e2b_listen,
            s3_listen,
            s3_domain,
            s3_region,
            s3_public_url,
            s3_housekeeping_interval,
            compute,
            network_cidr,
            firewall_table,
            port_forward_range,
            runc,
            listen,
            data_dir,
            database,
            log_format,
            log_level,
            session_ttl,
            login_rate_per_minute,
            login_failures_per_account,
            public_url,
            trust_proxy,
            image_import_max_size,
            image_import_max_unpacked,
            mutation_rate_per_minute,
            audit_retention,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("config file {} is not valid TOML: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            bail!("unknown setting '{key}' in {}; known settings: {}", path.display(), KEYS.join(", "));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                bail!("setting '{key}' in {} must be a string or a number, not {}", path.display(), other.type_str())
            }
        };
        out.insert(key, text);
    }
    Ok(out)
}

/// `/var/lib/roost` for root (a system service); a per-user directory otherwise.
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/roost");
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("roost");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/roost"),
        None => PathBuf::from("roost-data"),
    }
}

fn is_root() -> bool {
    // /proc/self belongs to the effective user; this avoids a libc dependency.
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn defaults() {
        let s = ServerSettings::resolve_with(&ServerArgs::default(), &env_of(&[])).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:7700");
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.session_ttl, Duration::from_secs(43200));
        assert_eq!(s.login_rate_per_minute, 10);
        assert!(s.database.is_none());
        assert_eq!(s.s3_listen.unwrap().to_string(), "127.0.0.1:7701");
        assert_eq!(s.s3_region, "us-east-1");
        assert_eq!(s.port_forward_range, 1024..=65535);
    }

    #[test]
    fn port_forward_ranges() {
        let args = ServerArgs { port_forward_range: Some("20000-29999".into()), ..Default::default() };
        let s = ServerSettings::resolve_with(&args, &env_of(&[])).unwrap();
        assert_eq!(s.port_forward_range, 20000..=29999);
        for bad in ["0-100", "2000-1000", "1024", "1024-70000", "a-b"] {
            let args = ServerArgs { port_forward_range: Some(bad.into()), ..Default::default() };
            let err = ServerSettings::resolve_with(&args, &env_of(&[])).unwrap_err().to_string();
            assert!(err.contains("invalid setting port_forward_range"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_s3_endpoint_can_be_turned_off_and_configured() {
        let env = env_of(&[("ROOST_S3_LISTEN", "off"), ("ROOST_S3_DOMAIN", "S3.Example.com")]);
        let s = ServerSettings::resolve_with(&ServerArgs::default(), &env).unwrap();
        assert!(s.s3_listen.is_none());
        assert_eq!(s.s3_domain.as_deref(), Some("s3.example.com"));
        let args = ServerArgs { s3_region: Some("Bad Region".into()), ..Default::default() };
        let err = ServerSettings::resolve_with(&args, &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("invalid setting s3_region"), "{err}");
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:1001\"\nlog_format = \"json\"\nsession_ttl = \"1h\"\n").unwrap();
        let args = ServerArgs { config: Some(file), listen: Some("127.0.0.1:1003".into()), ..Default::default() };
        let env = env_of(&[("ROOST_LISTEN", "127.0.0.1:1002"), ("ROOST_LOG_FORMAT", "text")]);
        let s = ServerSettings::resolve_with(&args, &env).unwrap();
        assert_eq!(s.listen.port(), 1003, "flag beats env and file");
        assert_eq!(s.log_format, LogFormat::Text, "env beats file");
        assert_eq!(s.session_ttl, Duration::from_secs(3600), "file beats default");
        let s = ServerSettings::resolve_with(&ServerArgs { listen: None, ..args }, &env).unwrap();
        assert_eq!(s.listen.port(), 1002, "env beats file");
    }

    #[test]
    fn bad_values_name_the_setting_source_and_choices() {
        let env = env_of(&[("ROOST_LOG_FORMAT", "xml")]);
        let err = ServerSettings::resolve_with(&ServerArgs::default(), &env).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid setting log_format = 'xml' (from environment variable ROOST_LOG_FORMAT): expected text or json"
        );
        let args = ServerArgs { listen: Some("nowhere".into()), ..Default::default() };
        let err = ServerSettings::resolve_with(&args, &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("listen = 'nowhere' (from flag --listen)"), "{err}");
        let args = ServerArgs { database: Some("mysql://u:secret@h/db".into()), ..Default::default() };
        let err = ServerSettings::resolve_with(&args, &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("invalid setting database") && !err.contains("secret"), "{err}");
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roost.toml");
        std::fs::write(&file, "listne = \"127.0.0.1:1\"\n").unwrap();
        let args = ServerArgs { config: Some(file), ..Default::default() };
        let err = ServerSettings::resolve_with(&args, &env_of(&[])).unwrap_err().to_string();
        assert!(err.contains("unknown setting 'listne'") && err.contains("known settings: listen"), "{err}");
    }
}
