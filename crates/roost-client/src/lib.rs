//! A typed client of the Roost REST API. Every method maps to one endpoint and returns
//! the API's own types; failures carry the server's error body.

pub mod exec;
mod sandbox_processes;
mod sse;
mod volumes;

use std::sync::Once;
use std::time::Duration;

use futures_util::Stream;
use reqwest::{Method, RequestBuilder, StatusCode};
use roost_api::audit::{AuditEntry, AuditQuery, AuditVerification};
use roost_api::auth::{LoginRequest, LoginResponse, Role, WhoAmI};
use roost_api::buckets::{
    Bucket, CreateBucketRequest, CreateS3KeyRequest, CreatedS3Key, PresignRequest, PresignedUrl, S3Key,
};
use roost_api::events::{Event, EventFilter};
use roost_api::images::{BuildImageRequest, Image};
use roost_api::instances::{
    CreateInstanceRequest, Instance, InstanceListParams, InstanceStats, InstanceStatus, MetricSeries, StopRequest,
};
pub use roost_api::instances::{CreatedInstance, ExecControl, ExecStart, LogEntry};
use roost_api::networks::{
    CreateNetworkRequest, CreatePortForwardRequest, CreateRuleRequest, CreateSecurityGroupRequest, Network, NicRequest,
    PeerRequest, PortForward, PortForwardListParams, SecurityGroup, SetSecurityGroupsRequest,
};
use roost_api::operations::Operation;
use roost_api::projects::{
    CreateProjectRequest, Member, Project, Quota, SetMemberRequest, UpdateProjectRequest, Usage,
};
use roost_api::system::{BackgroundTask, Health};
use roost_api::tokens::{CreateTokenRequest, CreatedToken, Token};
use roost_api::users::{
    ChangePasswordRequest, CreateUserRequest, CreatedUser, ResetPasswordRequest, ResetPasswordResponse,
    UpdateUserRequest, UserDetails,
};
use roost_api::volumes::VolumeListParams;
use roost_api::{ErrorBody, ErrorResponse, ListParams, Page, ProjectListParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{}", api_message(.body))]
    Api { status: StatusCode, body: ErrorBody },
    #[error("cannot reach the server at {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("unexpected response ({status}): {detail}")]
    Unexpected { status: StatusCode, detail: String },
    #[error("invalid server URL '{0}': use e.g. http://127.0.0.1:7700")]
    InvalidUrl(String),
}

fn api_message(body: &ErrorBody) -> String {
    let mut msg = body.message.clone();
    for d in &body.details {
        if !msg.contains(&d.message) {
            msg.push_str(&format!("; {}: {}", d.field, d.message));
        }
    }
    msg
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } | ClientError::Unexpected { status, .. } => Some(*status),
            ClientError::Http(e) => e.status(),
            _ => None,
        }
    }

    pub fn body(&self) -> Option<&ErrorBody> {
        match self {
            ClientError::Api { body, .. } => Some(body),
            _ => None,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Client {
    /// Built on first use: setting up TLS costs milliseconds that commands which only
    /// open an exec WebSocket never need.
    http: std::sync::Arc<std::sync::OnceLock<reqwest::Client>>,
    base: url::Url,
    token: Option<String>,
}

static CRYPTO: Once = Once::new();

/// Installs rustls's ring provider for the process (once); the client does this itself,
/// other reqwest users in the same process may call it first.
pub fn install_crypto_provider() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    /// A client of the server at `base` (`http://127.0.0.1:7700`), authenticating with
    /// `token` (an API token or a session token) when given.
    pub fn new(base: &str, token: Option<String>) -> Result<Client> {
        install_crypto_provider();
        let base =
            url::Url::parse(base.trim_end_matches('/')).map_err(|_| ClientError::InvalidUrl(base.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(ClientError::InvalidUrl(base.to_string()));
        }
        Ok(Client { http: Default::default(), base, token })
    }

    fn http(&self) -> &reqwest::Client {
        self.http.get_or_init(|| {
            reqwest::Client::builder()
                .user_agent(concat!("roost-client/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .build()
                .expect("the HTTP client builds (TLS provider installed)")
        })
    }

    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    pub fn with_token(&self, token: Option<String>) -> Client {
        Client { token, ..self.clone() }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// A request to `path` (starting with `/`), authenticated when a token is set.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let url = format!("{}{}", self.base_url(), path);
        let mut req = self.http().request(method, url);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req
    }

    async fn send(&self, req: RequestBuilder) -> Result<reqwest::Response> {
        let response = req.send().await.map_err(|e| {
            if e.is_connect() || e.is_timeout() {
                ClientError::Connect { url: self.base_url().to_string(), source: e }
            } else {
                ClientError::Http(e)
            }
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorResponse>(&text) {
            Ok(err) => Err(ClientError::Api { status, body: err.error }),
            Err(_) => Err(ClientError::Unexpected { status, detail: text.chars().take(200).collect() }),
        }
    }

    async fn json<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let response = self.send(req).await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ClientError::Unexpected { status, detail: format!("cannot decode the response: {e}") })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.json(self.request(Method::GET, path)).await
    }

    /// One page of the collection at `path`.
    pub async fn page<T: DeserializeOwned, P: Serialize>(&self, path: &str, params: &P) -> Result<Page<T>> {
        self.json(self.request(Method::GET, path).query(params)).await
    }

    /// Every item of the collection at `path`, following `next_cursor` (pages of 1000
    /// unless `params` sets a limit).
    pub async fn all<T: DeserializeOwned, P: Paged + Serialize>(&self, path: &str, mut params: P) -> Result<Vec<T>> {
        params.default_limit(roost_api::list::MAX_LIMIT);
        all_pages(params, |p| async move { self.page(path, &p).await }).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.send(self.request(Method::DELETE, path)).await?;
        Ok(())
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.json(self.request(Method::POST, path).json(body)).await
    }

    /// A JSON merge patch of the resource at `path`.
    pub async fn patch<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        self.json(self.request(Method::PATCH, path).json(body)).await
    }

    // --- health -------------------------------------------------------------------

    pub async fn live(&self) -> Result<Health> {
        self.get("/health/live").await
    }

    pub async fn ready(&self) -> Result<Health> {
        self.get("/health/ready").await
    }

    /// The Prometheus metrics text (admins).
    pub async fn metrics(&self) -> Result<String> {
        Ok(self.send(self.request(Method::GET, "/metrics")).await?.text().await?)
    }

    pub async fn openapi(&self) -> Result<serde_json::Value> {
        self.get("/v1/openapi.json").await
    }

    // --- auth ---------------------------------------------------------------------

    pub async fn login(&self, username: &str, password: &str) -> Result<LoginResponse> {
        let body = LoginRequest { username: username.to_string(), password: password.to_string() };
        self.post("/v1/auth/login", &body).await
    }

    pub async fn logout(&self) -> Result<()> {
        self.send(self.request(Method::POST, "/v1/auth/logout")).await?;
        Ok(())
    }

    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.get("/v1/auth/whoami").await
    }

    // --- tokens -------------------------------------------------------------------

    pub async fn create_token(&self, req: &CreateTokenRequest) -> Result<CreatedToken> {
        self.post("/v1/tokens", req).await
    }

    pub async fn list_tokens(&self, params: &ListParams) -> Result<Page<Token>> {
        self.json(self.request(Method::GET, "/v1/tokens").query(params)).await
    }

    /// Every page of the token list.
    pub async fn all_tokens(&self) -> Result<Vec<Token>> {
        let params = ListParams { limit: Some(1000), ..Default::default() };
        all_pages(params, |p| async move { self.list_tokens(&p).await }).await
    }

    pub async fn get_token(&self, id_or_name: &str) -> Result<Token> {
        self.get(&format!("/v1/tokens/{}", encode(id_or_name))).await
    }

    pub async fn delete_token(&self, id_or_name: &str) -> Result<()> {
        self.delete(&format!("/v1/tokens/{}", encode(id_or_name))).await
    }

    // --- SSH keys -----------------------------------------------------------------

    pub async fn create_ssh_key(
        &self,
        req: &roost_api::ssh_keys::CreateSshKeyRequest,
    ) -> Result<roost_api::ssh_keys::CreatedSshKey> {
        self.post("/v1/ssh-keys", req).await
    }

    pub async fn list_ssh_keys(&self, params: &ListParams) -> Result<Page<roost_api::ssh_keys::SshKey>> {
        self.json(self.request(Method::GET, "/v1/ssh-keys").query(params)).await
    }

    pub async fn get_ssh_key(&self, id_or_name: &str) -> Result<roost_api::ssh_keys::SshKey> {
        self.get(&format!("/v1/ssh-keys/{}", encode(id_or_name))).await
    }

    pub async fn delete_ssh_key(&self, id_or_name: &str) -> Result<()> {
        self.delete(&format!("/v1/ssh-keys/{}", encode(id_or_name))).await
    }

    // --- operations ---------------------------------------------------------------

    pub async fn get_operation(&self, id: &str, wait: Option<Duration>) -> Result<Operation> {
        let mut req = self.request(Method::GET, &format!("/v1/operations/{}", encode(id)));
        if let Some(wait) = wait {
            req = req.query(&[("wait", format!("{}s", wait.as_secs()))]);
        }
        self.json(req).await
    }

    pub async fn list_operations(&self, params: &ListParams) -> Result<Page<Operation>> {
        self.json(self.request(Method::GET, "/v1/operations").query(params)).await
    }

    /// Blocks until the operation is final; `on_update` sees every state it passes
    /// through. Follows the event stream (no polling), and falls back to server-side
    /// long polls if the stream is unavailable or ends.
    pub async fn wait_operation(&self, id: &str, mut on_update: impl FnMut(&Operation)) -> Result<Operation> {
        use futures_util::StreamExt;
        let filter = EventFilter { kind: Some("operation".into()), resource_id: Some(id.to_string()) };
        // Subscribe first, then read, so no update falls between the two.
        if let Ok(events) = self.events(&filter, None).await {
            let mut events = Box::pin(events);
            let op = self.get_operation(id, None).await?;
            on_update(&op);
            if op.status.is_final() {
                return Ok(op);
            }
            while let Some(Ok(event)) = events.next().await {
                if let Some(op) = event.data.and_then(|d| serde_json::from_value::<Operation>(d).ok()) {
                    on_update(&op);
                    if op.status.is_final() {
                        return Ok(op);
                    }
                }
            }
        }
        loop {
            let op = self.get_operation(id, Some(Duration::from_secs(30))).await?;
            on_update(&op);
            if op.status.is_final() {
                return Ok(op);
            }
        }
    }

    pub async fn change_password(&self, current: &str, new: &str) -> Result<()> {
        let body = ChangePasswordRequest { current_password: current.into(), new_password: new.into() };
        self.send(self.request(Method::POST, "/v1/auth/password").json(&body)).await?;
        Ok(())
    }

    // --- users --------------------------------------------------------------------

    pub async fn create_user(&self, req: &CreateUserRequest) -> Result<CreatedUser> {
        self.post("/v1/users", req).await
    }

    pub async fn list_users(&self, params: &ListParams) -> Result<Page<UserDetails>> {
        self.json(self.request(Method::GET, "/v1/users").query(params)).await
    }

    pub async fn get_user(&self, key: &str) -> Result<UserDetails> {
        self.get(&format!("/v1/users/{}", encode(key))).await
    }

    pub async fn update_user(&self, key: &str, req: &UpdateUserRequest) -> Result<UserDetails> {
        self.json(self.request(Method::PATCH, &format!("/v1/users/{}", encode(key))).json(req)).await
    }

    pub async fn delete_user(&self, key: &str) -> Result<()> {
        self.delete(&format!("/v1/users/{}", encode(key))).await
    }

    pub async fn set_user_disabled(&self, key: &str, disabled: bool) -> Result<UserDetails> {
        let verb = if disabled { "disable" } else { "enable" };
        self.json(self.request(Method::POST, &format!("/v1/users/{}/{verb}", encode(key)))).await
    }

    pub async fn reset_password(&self, key: &str, password: Option<String>) -> Result<ResetPasswordResponse> {
        self.post(&format!("/v1/users/{}/password", encode(key)), &ResetPasswordRequest { password }).await
    }

    // --- projects -----------------------------------------------------------------

    pub async fn create_project(&self, req: &CreateProjectRequest) -> Result<Project> {
        self.post("/v1/projects", req).await
    }

    pub async fn list_projects(&self, params: &ListParams) -> Result<Page<Project>> {
        self.json(self.request(Method::GET, "/v1/projects").query(params)).await
    }

    pub async fn get_project(&self, key: &str) -> Result<Project> {
        self.get(&format!("/v1/projects/{}", encode(key))).await
    }

    pub async fn update_project(&self, key: &str, req: &UpdateProjectRequest) -> Result<Project> {
        self.json(self.request(Method::PATCH, &format!("/v1/projects/{}", encode(key))).json(req)).await
    }

    pub async fn delete_project(&self, key: &str) -> Result<()> {
        self.delete(&format!("/v1/projects/{}", encode(key))).await
    }

    /// Every member of a project.
    pub async fn members(&self, project: &str) -> Result<Vec<Member>> {
        self.all(&format!("/v1/projects/{}/members", encode(project)), ListParams::default()).await
    }

    pub async fn set_member(&self, project: &str, user: &str, role: Role) -> Result<Member> {
        let path = format!("/v1/projects/{}/members/{}", encode(project), encode(user));
        self.json(self.request(Method::PUT, &path).json(&SetMemberRequest { role })).await
    }

    pub async fn remove_member(&self, project: &str, user: &str) -> Result<()> {
        let path = format!("/v1/projects/{}/members/{}", encode(project), encode(user));
        self.send(self.request(Method::DELETE, &path)).await?;
        Ok(())
    }

    pub async fn quota(&self, project: &str) -> Result<Quota> {
        self.get(&format!("/v1/projects/{}/quota", encode(project))).await
    }

    pub async fn set_quota(&self, project: &str, quota: &Quota) -> Result<Quota> {
        self.json(self.request(Method::PUT, &format!("/v1/projects/{}/quota", encode(project))).json(quota)).await
    }

    pub async fn usage(&self, project: &str) -> Result<Usage> {
        self.get(&format!("/v1/projects/{}/usage", encode(project))).await
    }

    // --- audit --------------------------------------------------------------------

    pub async fn list_audit(&self, query: &AuditQuery) -> Result<Page<AuditEntry>> {
        self.json(self.request(Method::GET, "/v1/audit").query(query)).await
    }

    pub async fn export_audit_csv(&self, query: &AuditQuery) -> Result<String> {
        Ok(self.send(self.request(Method::GET, "/v1/audit/export").query(query)).await?.text().await?)
    }

    pub async fn verify_audit(&self) -> Result<AuditVerification> {
        self.get("/v1/audit/verify").await
    }

    // --- buckets and S3 keys ---------------------------------------------------------

    /// Every bucket of your projects (or of one).
    pub async fn list_buckets(&self, project: Option<&str>) -> Result<Vec<Bucket>> {
        self.all("/v1/buckets", in_project(project)).await
    }

    pub async fn create_bucket(&self, req: &CreateBucketRequest) -> Result<Bucket> {
        self.post("/v1/buckets", req).await
    }

    pub async fn get_bucket(&self, key: &str) -> Result<Bucket> {
        self.get(&format!("/v1/buckets/{}", encode(key))).await
    }

    /// Deletes a bucket; `force` deletes its objects too.
    pub async fn delete_bucket(&self, key: &str, force: bool) -> Result<()> {
        let req = self.request(Method::DELETE, &format!("/v1/buckets/{}", encode(key))).query(&[("force", force)]);
        self.send(req).await?;
        Ok(())
    }

    pub async fn presign(&self, bucket: &str, req: &PresignRequest) -> Result<PresignedUrl> {
        self.post(&format!("/v1/buckets/{}/presign", encode(bucket)), req).await
    }

    /// Every S3 key of yours.
    pub async fn list_s3_keys(&self) -> Result<Vec<S3Key>> {
        self.all("/v1/s3-keys", ListParams::default()).await
    }

    pub async fn create_sandbox_key(
        &self,
        req: &roost_api::sandboxes::CreateSandboxKeyRequest,
    ) -> Result<roost_api::sandboxes::CreatedSandboxKey> {
        self.post("/v1/sandbox-keys", req).await
    }

    pub async fn create_sandbox(
        &self,
        req: &roost_api::sandboxes::CreateSandboxRequest,
    ) -> Result<roost_api::sandboxes::Sandbox> {
        self.post("/v1/sandboxes", req).await
    }

    /// Every live sandbox you can see.
    pub async fn list_sandboxes(&self) -> Result<Vec<roost_api::sandboxes::Sandbox>> {
        self.all("/v1/sandboxes", ProjectListParams::default()).await
    }

    pub async fn get_sandbox(&self, id: &str) -> Result<roost_api::sandboxes::Sandbox> {
        self.get(&format!("/v1/sandboxes/{}", encode(id))).await
    }

    pub async fn kill_sandbox(&self, id: &str) -> Result<()> {
        self.delete(&format!("/v1/sandboxes/{}", encode(id))).await
    }

    /// `pause` or `resume`.
    pub async fn sandbox_action(&self, id: &str, action: &str) -> Result<()> {
        self.send(self.request(Method::POST, &format!("/v1/sandboxes/{}/{action}", encode(id)))).await?;
        Ok(())
    }

    pub async fn sandbox_timeout(&self, id: &str, req: &roost_api::sandboxes::SandboxTimeoutRequest) -> Result<()> {
        self.send(self.request(Method::POST, &format!("/v1/sandboxes/{}/timeout", encode(id))).json(req)).await?;
        Ok(())
    }

    pub async fn sandbox_url(&self, id: &str, port: u16) -> Result<roost_api::sandboxes::SandboxUrl> {
        self.get(&format!("/v1/sandboxes/{}/urls/{port}", encode(id))).await
    }

    pub async fn sandbox_usage(
        &self,
        key: Option<&str>,
        since_secs: u64,
    ) -> Result<Vec<roost_api::sandboxes::SandboxUsage>> {
        let mut path = format!("/v1/sandbox-usage?since_secs={since_secs}");
        if let Some(k) = key {
            path.push_str(&format!("&key={}", encode(k)));
        }
        self.get(&path).await
    }

    /// Every live sandbox key you can see.
    pub async fn list_sandbox_keys(&self) -> Result<Vec<roost_api::sandboxes::SandboxKey>> {
        self.all("/v1/sandbox-keys", ProjectListParams::default()).await
    }

    /// Revokes a sandbox key (by id): E2B requests with it are refused from now on.
    pub async fn revoke_sandbox_key(&self, id: &str) -> Result<()> {
        self.delete(&format!("/v1/sandbox-keys/{}", encode(id))).await
    }

    pub async fn sandbox_pool(&self) -> Result<Vec<roost_api::sandboxes::SandboxPoolStats>> {
        self.get("/v1/sandbox-pool").await
    }

    pub async fn create_s3_key(&self, req: &CreateS3KeyRequest) -> Result<CreatedS3Key> {
        self.post("/v1/s3-keys", req).await
    }

    pub async fn get_s3_key(&self, id: &str) -> Result<S3Key> {
        self.get(&format!("/v1/s3-keys/{}", encode(id))).await
    }

    pub async fn delete_s3_key(&self, id: &str) -> Result<()> {
        self.delete(&format!("/v1/s3-keys/{}", encode(id))).await
    }

    // --- images -------------------------------------------------------------------

    /// Every image you can see (or the builtin ones and one project's).
    pub async fn list_images(&self, project: Option<&str>) -> Result<Vec<Image>> {
        self.all("/v1/images", in_project(project)).await
    }

    pub async fn get_image(&self, key: &str) -> Result<Image> {
        self.get(&format!("/v1/images/{}", encode(key))).await
    }

    pub async fn build_image(&self, req: &BuildImageRequest) -> Result<Operation> {
        self.post("/v1/images", req).await
    }

    /// Uploads a root filesystem tarball.
    pub async fn import_image(&self, name: &str, project: Option<&str>, body: reqwest::Body) -> Result<Image> {
        let mut query = vec![("name", name.to_string())];
        if let Some(p) = project {
            query.push(("project", p.to_string()));
        }
        let req = self
            .request(Method::POST, "/v1/images/import")
            .query(&query)
            .header("content-type", "application/octet-stream")
            .body(body);
        self.json(req).await
    }

    pub async fn delete_image(&self, key: &str) -> Result<()> {
        self.delete(&format!("/v1/images/{}", encode(key))).await
    }

    // --- networks -----------------------------------------------------------------

    fn scoped_path(base: &str, key: &str, suffix: &str, project: Option<&str>) -> String {
        let mut path = format!("{base}/{}{suffix}", encode(key));
        if let Some(p) = project {
            path.push_str(&format!("?project={}", encode(p)));
        }
        path
    }

    pub async fn create_network(&self, req: &CreateNetworkRequest) -> Result<Network> {
        self.post("/v1/networks", req).await
    }

    /// Every network you can see (or of one project).
    pub async fn list_networks(&self, project: Option<&str>) -> Result<Vec<Network>> {
        self.all("/v1/networks", in_project(project)).await
    }

    pub async fn get_network(&self, key: &str, project: Option<&str>) -> Result<Network> {
        self.get(&Self::scoped_path("/v1/networks", key, "", project)).await
    }

    pub async fn delete_network(&self, key: &str, project: Option<&str>) -> Result<()> {
        self.delete(&Self::scoped_path("/v1/networks", key, "", project)).await
    }

    pub async fn peer_networks(&self, key: &str, other: &str, project: Option<&str>) -> Result<Network> {
        let body = PeerRequest { network: other.to_string() };
        self.post(&Self::scoped_path("/v1/networks", key, "/peers", project), &body).await
    }

    pub async fn unpeer_networks(&self, key: &str, other: &str, project: Option<&str>) -> Result<Network> {
        let path = Self::scoped_path("/v1/networks", key, &format!("/peers/{}", encode(other)), project);
        self.json(self.request(Method::DELETE, &path)).await
    }

    pub async fn create_security_group(&self, req: &CreateSecurityGroupRequest) -> Result<SecurityGroup> {
        self.post("/v1/security-groups", req).await
    }

    /// Every security group you can see (or of one project).
    pub async fn list_security_groups(&self, project: Option<&str>) -> Result<Vec<SecurityGroup>> {
        self.all("/v1/security-groups", in_project(project)).await
    }

    pub async fn get_security_group(&self, key: &str, project: Option<&str>) -> Result<SecurityGroup> {
        self.get(&Self::scoped_path("/v1/security-groups", key, "", project)).await
    }

    pub async fn delete_security_group(&self, key: &str, project: Option<&str>) -> Result<()> {
        self.delete(&Self::scoped_path("/v1/security-groups", key, "", project)).await
    }

    pub async fn add_security_group_rule(
        &self,
        key: &str,
        project: Option<&str>,
        rule: &CreateRuleRequest,
    ) -> Result<SecurityGroup> {
        self.post(&Self::scoped_path("/v1/security-groups", key, "/rules", project), rule).await
    }

    pub async fn delete_security_group_rule(
        &self,
        key: &str,
        rule: &str,
        project: Option<&str>,
    ) -> Result<SecurityGroup> {
        let path = Self::scoped_path("/v1/security-groups", key, &format!("/rules/{}", encode(rule)), project);
        self.json(self.request(Method::DELETE, &path)).await
    }

    pub async fn attach_network(&self, instance: &str, project: Option<&str>, nic: &NicRequest) -> Result<Instance> {
        self.post(&Self::instance_path(instance, "/networks", project), nic).await
    }

    pub async fn detach_network(&self, instance: &str, network: &str, project: Option<&str>) -> Result<Instance> {
        let path = Self::instance_path(instance, &format!("/networks/{}", encode(network)), project);
        self.json(self.request(Method::DELETE, &path)).await
    }

    pub async fn set_security_groups(
        &self,
        instance: &str,
        project: Option<&str>,
        groups: &[String],
    ) -> Result<Instance> {
        let body = SetSecurityGroupsRequest { security_groups: groups.to_vec() };
        self.json(self.request(Method::PUT, &Self::instance_path(instance, "/security-groups", project)).json(&body))
            .await
    }

    pub async fn add_port_forward(
        &self,
        instance: &str,
        project: Option<&str>,
        req: &CreatePortForwardRequest,
    ) -> Result<PortForward> {
        self.post(&Self::instance_path(instance, "/ports", project), req).await
    }

    /// Every port forward you can see (or of one project, or one instance).
    pub async fn list_port_forwards(&self, project: Option<&str>, instance: Option<&str>) -> Result<Vec<PortForward>> {
        let params = PortForwardListParams {
            project: project.map(str::to_string),
            instance: instance.map(str::to_string),
            ..Default::default()
        };
        self.all("/v1/port-forwards", params).await
    }

    pub async fn delete_port_forward(&self, instance: &str, port: &str, project: Option<&str>) -> Result<()> {
        self.delete(&Self::instance_path(instance, &format!("/ports/{}", encode(port)), project)).await
    }

    // --- instances ----------------------------------------------------------------

    pub async fn create_instance(&self, req: &CreateInstanceRequest) -> Result<CreatedInstance> {
        self.post("/v1/instances", req).await
    }

    pub async fn list_instances(&self, params: &InstanceListParams) -> Result<Page<Instance>> {
        self.json(self.request(Method::GET, "/v1/instances").query(params)).await
    }

    /// Every page of a filtered instance list.
    pub async fn all_instances(&self, params: &InstanceListParams) -> Result<Vec<Instance>> {
        let params = InstanceListParams { limit: Some(1000), ..params.clone() };
        all_pages(params, |p| async move { self.list_instances(&p).await }).await
    }

    fn instance_path(key: &str, suffix: &str, project: Option<&str>) -> String {
        let mut path = format!("/v1/instances/{}{suffix}", encode(key));
        if let Some(p) = project {
            path.push_str(&format!("?project={}", encode(p)));
        }
        path
    }

    pub async fn get_instance(&self, key: &str, project: Option<&str>) -> Result<Instance> {
        self.get(&Self::instance_path(key, "", project)).await
    }

    pub async fn start_instance(&self, key: &str, project: Option<&str>) -> Result<Operation> {
        self.json(self.request(Method::POST, &Self::instance_path(key, "/start", project))).await
    }

    pub async fn stop_instance(
        &self,
        key: &str,
        project: Option<&str>,
        timeout_secs: Option<u64>,
    ) -> Result<Operation> {
        let body = StopRequest { timeout_secs };
        self.json(self.request(Method::POST, &Self::instance_path(key, "/stop", project)).json(&body)).await
    }

    pub async fn restart_instance(
        &self,
        key: &str,
        project: Option<&str>,
        timeout_secs: Option<u64>,
    ) -> Result<Operation> {
        let body = StopRequest { timeout_secs };
        self.json(self.request(Method::POST, &Self::instance_path(key, "/restart", project)).json(&body)).await
    }

    pub async fn delete_instance(&self, key: &str, project: Option<&str>, force: bool) -> Result<Operation> {
        let mut req = self.request(Method::DELETE, &format!("/v1/instances/{}", encode(key)));
        let mut query = vec![("force", force.to_string())];
        if let Some(p) = project {
            query.push(("project", p.to_string()));
        }
        req = req.query(&query);
        self.json(req).await
    }

    /// Waits server-side (up to `timeout`) for the instance to reach `status`.
    pub async fn wait_instance(&self, key: &str, status: InstanceStatus, timeout: Duration) -> Result<Instance> {
        let req = self
            .request(Method::GET, &format!("/v1/instances/{}/wait", encode(key)))
            .query(&[("status", status.as_str().to_string()), ("timeout", format!("{}s", timeout.as_secs().max(1)))]);
        self.json(req).await
    }

    pub async fn instance_stats(&self, key: &str) -> Result<InstanceStats> {
        self.get(&format!("/v1/instances/{}/stats", encode(key))).await
    }

    pub async fn instance_metrics(&self, key: &str, period: &str) -> Result<MetricSeries> {
        self.json(
            self.request(Method::GET, &format!("/v1/instances/{}/metrics", encode(key))).query(&[("period", period)]),
        )
        .await
    }

    /// The log stream: one JSON object per line (`time`, `stream`, `line`).
    pub async fn instance_logs(
        &self,
        key: &str,
        since: Option<&str>,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<impl Stream<Item = Result<LogEntry>> + use<>> {
        let mut query = vec![("follow", follow.to_string())];
        if let Some(s) = since {
            query.push(("since", s.to_string()));
        }
        if let Some(t) = tail {
            query.push(("tail", t.to_string()));
        }
        let response =
            self.send(self.request(Method::GET, &format!("/v1/instances/{}/logs", encode(key))).query(&query)).await?;
        Ok(sse::json_lines(response))
    }

    /// A tar archive of a path in the instance.
    pub async fn download_files(&self, key: &str, path: &str) -> Result<reqwest::Response> {
        self.send(self.request(Method::GET, &format!("/v1/instances/{}/files", encode(key))).query(&[("path", path)]))
            .await
    }

    /// Unpacks a tar archive into a directory of the instance.
    pub async fn upload_files(&self, key: &str, dir: &str, tar: Vec<u8>) -> Result<()> {
        let req = self
            .request(Method::PUT, &format!("/v1/instances/{}/files", encode(key)))
            .query(&[("path", dir)])
            .header("content-type", "application/x-tar")
            .body(tar);
        self.send(req).await?;
        Ok(())
    }

    /// Opens an exec WebSocket and starts the command.
    pub async fn exec(&self, key: &str, start: &ExecStart) -> Result<exec::ExecConnection> {
        exec::connect(self, key, start).await
    }

    // --- system -------------------------------------------------------------------

    /// `GET /v1/node`.
    pub async fn node_info(&self) -> Result<roost_api::system::NodeInfo> {
        self.get("/v1/node").await
    }

    pub async fn create_backup(&self) -> Result<Operation> {
        self.json(self.request(Method::POST, "/v1/system/backups")).await
    }

    /// Every background task and its last activation (admins).
    pub async fn list_tasks(&self) -> Result<Vec<BackgroundTask>> {
        let page: Page<BackgroundTask> = self.get("/v1/system/tasks").await?;
        Ok(page.items)
    }

    pub async fn get_task(&self, name: &str) -> Result<BackgroundTask> {
        self.get(&format!("/v1/system/tasks/{}", encode(name))).await
    }

    /// Asks for a run of a background task now; the answer has `run_requested_at` set
    /// until the run starts.
    pub async fn run_task(&self, name: &str) -> Result<BackgroundTask> {
        self.json(self.request(Method::POST, &format!("/v1/system/tasks/{}/run", encode(name)))).await
    }

    // --- events -------------------------------------------------------------------

    /// The event stream, from now (or after `last_event_id`), until the server closes it.
    pub async fn events(
        &self,
        filter: &EventFilter,
        last_event_id: Option<u64>,
    ) -> Result<impl Stream<Item = Result<Event>> + use<>> {
        let mut req = self.request(Method::GET, "/v1/events").query(filter).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id.to_string());
        }
        let response = self.send(req).await?;
        Ok(sse::events(response))
    }
}

/// List parameters that carry a cursor.
pub trait Paged: Clone {
    fn set_cursor(&mut self, cursor: String);
    /// Sets the page size unless the caller chose one.
    fn default_limit(&mut self, limit: u32);
}

/// Implements [`Paged`] for parameter types with `cursor` and `limit` fields.
macro_rules! paged {
    ($($t:ty),*) => {$(
        impl Paged for $t {
            fn set_cursor(&mut self, cursor: String) {
                self.cursor = Some(cursor);
            }
            fn default_limit(&mut self, limit: u32) {
                self.limit.get_or_insert(limit);
            }
        }
    )*};
}

paged!(ListParams, InstanceListParams, ProjectListParams, VolumeListParams, PortForwardListParams);

/// `?project=` alone.
fn in_project(project: Option<&str>) -> ProjectListParams {
    ProjectListParams { project: project.map(str::to_string), ..Default::default() }
}

/// Follows `next_cursor` through every page of a list.
pub async fn all_pages<P: Paged, T, F, Fut>(mut params: P, mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(P) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>>>,
{
    let mut items = Vec::new();
    loop {
        let page = fetch(params.clone()).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(c) => params.set_cursor(c),
            None => return Ok(items),
        }
    }
}

/// Percent-encodes a path segment (names are plain, but never trust that).
pub fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect::<String>().replace('+', "%20")
}

// --- updates (JSON merge patches) ---------------------------------------------------
impl Client {
    pub async fn update_instance(
        &self,
        key: &str,
        project: Option<&str>,
        req: &roost_api::instances::UpdateInstanceRequest,
    ) -> Result<Instance> {
        self.patch(&Self::instance_path(key, "", project), req).await
    }

    pub async fn update_network(
        &self,
        key: &str,
        project: Option<&str>,
        req: &roost_api::networks::UpdateNetworkRequest,
    ) -> Result<Network> {
        self.patch(&Self::scoped_path("/v1/networks", key, "", project), req).await
    }

    pub async fn update_security_group(
        &self,
        key: &str,
        project: Option<&str>,
        req: &roost_api::networks::UpdateSecurityGroupRequest,
    ) -> Result<SecurityGroup> {
        self.patch(&Self::scoped_path("/v1/security-groups", key, "", project), req).await
    }

    pub async fn update_volume(
        &self,
        key: &str,
        project: Option<&str>,
        req: &roost_api::volumes::UpdateVolumeRequest,
    ) -> Result<roost_api::volumes::Volume> {
        self.patch(&Self::scoped_path("/v1/volumes", key, "", project), req).await
    }

    pub async fn update_snapshot(
        &self,
        key: &str,
        project: Option<&str>,
        req: &roost_api::volumes::UpdateSnapshotRequest,
    ) -> Result<roost_api::volumes::Snapshot> {
        self.patch(&Self::scoped_path("/v1/snapshots", key, "", project), req).await
    }

    pub async fn update_backup_policy(
        &self,
        key: &str,
        project: Option<&str>,
        req: &roost_api::volumes::UpdateBackupPolicyRequest,
    ) -> Result<roost_api::volumes::BackupPolicy> {
        self.patch(&Self::scoped_path("/v1/backup-policies", key, "", project), req).await
    }

    pub async fn update_bucket(&self, key: &str, req: &roost_api::buckets::UpdateBucketRequest) -> Result<Bucket> {
        self.patch(&format!("/v1/buckets/{}", encode(key)), req).await
    }

    pub async fn update_s3_key(&self, id: &str, req: &roost_api::buckets::UpdateS3KeyRequest) -> Result<S3Key> {
        self.patch(&format!("/v1/s3-keys/{}", encode(id)), req).await
    }

    pub async fn get_sandbox_key(&self, id: &str) -> Result<roost_api::sandboxes::SandboxKey> {
        self.get(&format!("/v1/sandbox-keys/{}", encode(id))).await
    }

    pub async fn update_sandbox_key(
        &self,
        id: &str,
        req: &roost_api::sandboxes::UpdateSandboxKeyRequest,
    ) -> Result<roost_api::sandboxes::SandboxKey> {
        self.patch(&format!("/v1/sandbox-keys/{}", encode(id)), req).await
    }

    pub async fn update_ssh_key(
        &self,
        key: &str,
        req: &roost_api::ssh_keys::UpdateSshKeyRequest,
    ) -> Result<roost_api::ssh_keys::SshKey> {
        self.patch(&format!("/v1/ssh-keys/{}", encode(key)), req).await
    }

    pub async fn update_token(&self, key: &str, req: &roost_api::tokens::UpdateTokenRequest) -> Result<Token> {
        self.patch(&format!("/v1/tokens/{}", encode(key)), req).await
    }

    pub async fn update_image(&self, key: &str, req: &roost_api::images::UpdateImageRequest) -> Result<Image> {
        self.patch(&format!("/v1/images/{}", encode(key)), req).await
    }
}

// --- sandbox templates ------------------------------------------------------------
impl Client {
    /// Starts a template build; the operation's result is a `SandboxTemplateBuild`.
    pub async fn build_sandbox_template(
        &self,
        req: &roost_api::sandbox_templates::BuildSandboxTemplateRequest,
    ) -> Result<Operation> {
        self.post("/v1/sandbox-templates", req).await
    }

    /// Every sandbox template you can see (or the builtin ones and one project's).
    pub async fn list_sandbox_templates(
        &self,
        project: Option<&str>,
    ) -> Result<Vec<roost_api::sandbox_templates::SandboxTemplate>> {
        self.all("/v1/sandbox-templates", in_project(project)).await
    }

    pub async fn get_sandbox_template(
        &self,
        key: &str,
        project: Option<&str>,
    ) -> Result<roost_api::sandbox_templates::SandboxTemplateDetail> {
        let mut path = format!("/v1/sandbox-templates/{}", encode(key));
        if let Some(p) = project {
            path.push_str(&format!("?project={}", encode(p)));
        }
        self.get(&path).await
    }

    pub async fn delete_sandbox_template(&self, key: &str, project: Option<&str>) -> Result<()> {
        let mut path = format!("/v1/sandbox-templates/{}", encode(key));
        if let Some(p) = project {
            path.push_str(&format!("?project={}", encode(p)));
        }
        self.delete(&path).await
    }
}
