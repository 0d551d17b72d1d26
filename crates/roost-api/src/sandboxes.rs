//! Sandboxes: ephemeral instances with a TTL, used through the E2B-compatible API with
//! keys of their own (`e2b_` and 40 hex characters).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Default limits of a new key.
pub const DEFAULT_MAX_SANDBOXES: u32 = 20;
pub const DEFAULT_CREATES_PER_MINUTE: u32 = 60;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateSandboxKeyRequest {
    /// A label for the key.
    pub name: String,
    /// The project its sandboxes run in (default: `default`).
    #[serde(default)]
    pub project: Option<String>,
    /// Most sandboxes alive at once (default 20).
    #[serde(default)]
    pub max_sandboxes: Option<u32>,
    /// Most creations per minute (default 60); more get 429 with Retry-After.
    #[serde(default)]
    pub creates_per_minute: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxKey {
    pub id: String,
    pub name: String,
    /// The first characters of the secret, to recognise it.
    pub prefix: String,
    pub project_id: String,
    pub max_sandboxes: u32,
    pub creates_per_minute: u32,
    pub created_at: DateTime<Utc>,
    /// When the key stops working: set for a key made with an expiring API token (it ends
    /// with the token).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// `PATCH /v1/sandbox-keys/{id}`: rename, or change the limits (they apply to the next
/// create).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct UpdateSandboxKeyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sandboxes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creates_per_minute: Option<u32>,
}

/// The key with its secret, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreatedSandboxKey {
    pub key: SandboxKey,
    /// `e2b_` and 40 hex characters: set it as `E2B_API_KEY`.
    pub secret: String,
}

/// A sandbox: an ephemeral instance with a time to live.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Sandbox {
    /// `sbx-…`; also the name of its instance.
    pub id: String,
    /// The image it started from.
    pub template: String,
    /// `running` or `paused`.
    pub state: String,
    pub instance_id: String,
    /// Its instance's type: `container` or `vm`.
    #[serde(rename = "type")]
    pub kind: String,
    pub project_id: String,
    /// The key that created it (none when created through /v1).
    pub key_id: Option<String>,
    pub metadata: std::collections::BTreeMap<String, String>,
    pub started_at: DateTime<Utc>,
    /// When it is killed unless extended.
    pub expires_at: DateTime<Utc>,
    pub commands: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CreateSandboxRequest {
    /// The template (an image name); default `base`.
    #[serde(default)]
    pub template: Option<String>,
    /// Seconds to live (default 300, at most 86400).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// The project (default: `default`).
    #[serde(default)]
    pub project: Option<String>,
    /// `container` (default) or `vm` (a microVM; never from the warm pool).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SandboxTimeoutRequest {
    /// Seconds to live from now.
    pub ttl_secs: u64,
}

/// Usage of one key (or of sandboxes made without one) since a time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxUsage {
    pub key_id: Option<String>,
    pub sandboxes: u64,
    pub sandbox_seconds: f64,
    pub vcpu_seconds: f64,
    pub commands: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SandboxUsageParams {
    /// Only this key.
    #[serde(default)]
    pub key: Option<String>,
    /// Since this many seconds ago (default 86400).
    #[serde(default)]
    pub since_secs: Option<u64>,
}

/// The warm pool of one template in one project: pre-created, frozen sandboxes handed
/// out on create (`--sandbox-pool N`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxPoolStats {
    pub project_id: String,
    pub template: String,
    /// The template's image: pools are kept per image, so a name that comes to mean
    /// another image never hands out sandboxes of the old one.
    #[serde(default)]
    pub image_id: String,
    /// How many the pool keeps ready (the server's `--sandbox-pool`).
    pub size: u32,
    /// Frozen and ready now.
    pub ready: u32,
    /// Creates served from the pool.
    pub hits: u64,
    /// Creates that found the pool empty (or asked for env vars) and started cold.
    pub misses: u64,
}

/// A URL that reaches one port of a sandbox through Roost's proxy (the E2B listener).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxUrl {
    pub sandbox_id: String,
    pub port: u16,
    /// `http://<port>-<sandbox id>.localhost:<e2b port>/?roost_token=…`: `*.localhost`
    /// resolves to the loopback address in browsers and curl without any DNS set-up.
    pub url: String,
    /// The host the proxy routes by (`<port>-<sandbox id>.<domain>`, as E2B's `get_host`).
    pub host: String,
    /// The token the URL carries; a request may send it as the `roost_token` query
    /// parameter, the `roost_sandbox_token` cookie (set by the first visit) or the
    /// `X-Roost-Sandbox-Token` header.
    pub token: String,
}

/// A process running in a sandbox: started with `roost sandbox exec --background`,
/// `POST /v1/sandboxes/{id}/processes` or an E2B SDK's `commands.run(background=True)`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxProcess {
    /// The sandbox's own number for it (not the host's pid).
    pub pid: u32,
    pub tag: Option<String>,
    pub cmd: String,
    pub args: Vec<String>,
    pub cwd: Option<String>,
    pub started_at: DateTime<Utc>,
}

/// Starts a process in the background; its output is kept (the last 64 KiB of each
/// stream) for `GET /v1/sandboxes/{id}/processes/{pid}/attach` to replay.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StartSandboxProcessRequest {
    /// The program (looked up in `PATH`).
    pub cmd: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// A label to find it by.
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Working directory (default `/root`).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Keep its stdin open for an attach to write to (default: closed, so a command
    /// reading stdin sees its end at once).
    #[serde(default)]
    pub stdin: bool,
}

/// A signal by name (`TERM`, `SIGKILL`, `INT`, `HUP`, …) or number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ProcessSignal {
    Name(String),
    Number(i32),
}

impl Default for ProcessSignal {
    fn default() -> Self {
        ProcessSignal::Name("TERM".into())
    }
}

impl ProcessSignal {
    /// The signal's number, if it is one Roost sends.
    pub fn number(&self) -> Option<i32> {
        match self {
            ProcessSignal::Number(n) if (1..=64).contains(n) => Some(*n),
            ProcessSignal::Number(_) => None,
            ProcessSignal::Name(name) => {
                let upper = name.to_ascii_uppercase();
                let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
                if let Ok(n) = bare.parse::<i32>() {
                    return (1..=64).contains(&n).then_some(n);
                }
                Some(match bare {
                    "HUP" => 1,
                    "INT" => 2,
                    "QUIT" => 3,
                    "KILL" => 9,
                    "USR1" => 10,
                    "USR2" => 12,
                    "TERM" => 15,
                    "CONT" => 18,
                    "STOP" => 19,
                    _ => return None,
                })
            }
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SignalSandboxProcessRequest {
    /// Default `TERM`.
    #[serde(default)]
    pub signal: ProcessSignal,
}

/// One entry of a directory in a sandbox.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SandboxFileEntry {
    pub name: String,
    /// Absolute path in the sandbox.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    /// Permission bits, e.g. 420 (0o644).
    pub mode: u32,
    pub modified_at: DateTime<Utc>,
    /// Where a symlink points.
    #[serde(default)]
    pub symlink_target: Option<String>,
    /// As `ls -l` shows them, e.g. `-rw-r--r--`.
    #[serde(default)]
    pub permissions: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub group: String,
}

/// `?path=` of the sandbox file endpoints (relative paths are under `/root`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SandboxPathParams {
    /// The file or directory in the sandbox (relative: under `/root`).
    pub path: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SandboxMkdirRequest {
    /// The directory to make (with its parents).
    pub path: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct SandboxMoveRequest {
    pub from: String,
    pub to: String,
}

#[cfg(test)]
mod tests {
    use super::ProcessSignal;

    #[test]
    fn signals_by_name_with_or_without_sig_or_by_number() {
        let n = |s: &str| ProcessSignal::Name(s.into()).number();
        assert_eq!(
            (n("TERM"), n("sigkill"), n("SIGINT"), n("9"), n("NOPE")),
            (Some(15), Some(9), Some(2), Some(9), None)
        );
        assert_eq!(ProcessSignal::Number(15).number(), Some(15));
        assert_eq!(ProcessSignal::Number(0).number(), None);
        assert_eq!(ProcessSignal::default().number(), Some(15));
        let parsed: ProcessSignal = serde_json::from_str("\"KILL\"").unwrap();
        assert_eq!(parsed, ProcessSignal::Name("KILL".into()));
        assert_eq!(serde_json::from_str::<ProcessSignal>("10").unwrap(), ProcessSignal::Number(10));
    }
}
