//! `/v1/networks`, `/v1/security-groups`, `/v1/port-forwards` and the instance
//! sub-resources that use them (NICs, groups, port forwards).

use axum::extract::State;
use axum::http::StatusCode;
use roost_api::ErrorResponse;
use roost_api::Page;
use roost_api::instances::Instance;
use roost_api::networks::{
    CreateNetworkRequest, CreatePortForwardRequest, CreateRuleRequest, CreateSecurityGroupRequest, Network,
    NetworkListParams, NicRequest, PeerRequest, PortForward, PortForwardListParams, SecurityGroup,
    SetSecurityGroupsRequest, UpdateNetworkRequest, UpdateSecurityGroupRequest,
};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::etag::IfMatch;
use crate::extract::{Ctx, Json, Path, Query};
use crate::routes::instances::ProjectParam;

/// List networks (a project's `default` network is made on first use).
#[utoipa::path(get, path = "/v1/networks", tag = "networks", params(NetworkListParams),
    responses((status = 200, body = Page<Network>), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<NetworkListParams>,
) -> Result<axum::Json<Page<Network>>, ApiError> {
    Ok(axum::Json(s.control.list_networks(&auth, &q).await?))
}

/// Create a network: a bridge, a CIDR with IPAM, NAT unless `nat` is false, DNS when `dns` is true.
#[utoipa::path(post, path = "/v1/networks", operation_id = "network.create", tag = "networks", request_body = CreateNetworkRequest,
    responses((status = 201, body = Network), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, description = "Name taken or CIDR overlaps", body = ErrorResponse)))]
pub async fn create(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateNetworkRequest>,
) -> Result<(StatusCode, axum::Json<Network>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(s.control.create_network(&ctx, &auth, req).await?)))
}

/// Show a network, by id or name.
#[utoipa::path(get, path = "/v1/networks/{id}", tag = "networks",
    params(("id" = String, Path, description = "Network id or name"), ProjectParam),
    responses((status = 200, body = Network), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
) -> Result<axum::Json<Network>, ApiError> {
    Ok(axum::Json(s.control.get_network(&auth, &id, q.project.as_deref()).await?))
}

/// Turn NAT or the network's DNS on or off (the host follows before this returns).
#[utoipa::path(patch, path = "/v1/networks/{id}", operation_id = "network.update", tag = "networks", request_body = UpdateNetworkRequest,
    params(("id" = String, Path, description = "Network id or name"), ProjectParam, IfMatch),
    responses((status = 200, body = Network)))]
pub async fn update(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
    Json(req): Json<UpdateNetworkRequest>,
) -> Result<axum::Json<Network>, ApiError> {
    Ok(axum::Json(s.control.update_network(&ctx, &auth, &id, q.project.as_deref(), req, if_match.as_deref()).await?))
}

/// Remove a network; refused while instances are attached.
#[utoipa::path(delete, path = "/v1/networks/{id}", operation_id = "network.delete", tag = "networks",
    params(IfMatch, ("id" = String, Path, description = "Network id or name"), ProjectParam),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, description = "Instances attached, or the default network", body = ErrorResponse)))]
pub async fn delete(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_network(&ctx, &auth, &id, q.project.as_deref(), if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Peer two networks of one project (VPC peering): traffic between them is routed.
#[utoipa::path(post, path = "/v1/networks/{id}/peers", operation_id = "network.peer", tag = "networks", request_body = PeerRequest,
    params(("id" = String, Path, description = "Network id or name"), ProjectParam),
    responses((status = 200, body = Network), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn peer(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<PeerRequest>,
) -> Result<axum::Json<Network>, ApiError> {
    Ok(axum::Json(s.control.peer_network(&ctx, &auth, &id, &req.network, q.project.as_deref(), true).await?))
}

/// End a peering.
#[utoipa::path(delete, path = "/v1/networks/{id}/peers/{peer}", operation_id = "network.unpeer", tag = "networks",
    params(("id" = String, Path, description = "Network id or name"), ("peer" = String, Path, description = "The other network"), ProjectParam),
    responses((status = 200, body = Network), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn unpeer(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path((id, peer)): Path<(String, String)>,
    Query(q): Query<ProjectParam>,
) -> Result<axum::Json<Network>, ApiError> {
    Ok(axum::Json(s.control.peer_network(&ctx, &auth, &id, &peer, q.project.as_deref(), false).await?))
}

/// List security groups (a project's `default` group is made on first use).
#[utoipa::path(get, path = "/v1/security-groups", tag = "security-groups", params(NetworkListParams),
    responses((status = 200, body = Page<SecurityGroup>), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list_groups(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<NetworkListParams>,
) -> Result<axum::Json<Page<SecurityGroup>>, ApiError> {
    Ok(axum::Json(s.control.list_security_groups(&auth, &q).await?))
}

/// Create a security group (with an allow-all egress rule unless `no_default_egress`).
#[utoipa::path(post, path = "/v1/security-groups", operation_id = "security_group.create", tag = "security-groups", request_body = CreateSecurityGroupRequest,
    responses((status = 201, body = SecurityGroup), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn create_group(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Json(req): Json<CreateSecurityGroupRequest>,
) -> Result<(StatusCode, axum::Json<SecurityGroup>), ApiError> {
    Ok((StatusCode::CREATED, axum::Json(s.control.create_security_group(&ctx, &auth, req).await?)))
}

/// Show a security group with its rules.
#[utoipa::path(get, path = "/v1/security-groups/{id}", tag = "security-groups",
    params(("id" = String, Path, description = "Group id or name"), ProjectParam),
    responses((status = 200, body = SecurityGroup), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn get_group(
    State(s): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
) -> Result<axum::Json<SecurityGroup>, ApiError> {
    Ok(axum::Json(s.control.get_security_group(&auth, &id, q.project.as_deref()).await?))
}

/// Change a security group's description (`null` clears it).
#[utoipa::path(patch, path = "/v1/security-groups/{id}", operation_id = "security_group.update", tag = "security-groups", request_body = UpdateSecurityGroupRequest,
    params(("id" = String, Path, description = "Group id or name"), ProjectParam, IfMatch),
    responses((status = 200, body = SecurityGroup)))]
pub async fn update_group(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
    Json(req): Json<UpdateSecurityGroupRequest>,
) -> Result<axum::Json<SecurityGroup>, ApiError> {
    let group =
        s.control.update_security_group(&ctx, &auth, &id, q.project.as_deref(), req, if_match.as_deref()).await?;
    Ok(axum::Json(group))
}

/// Remove a security group; refused while instances use it or rules refer to it.
#[utoipa::path(delete, path = "/v1/security-groups/{id}", operation_id = "security_group.delete", tag = "security-groups",
    params(IfMatch, ("id" = String, Path, description = "Group id or name"), ProjectParam),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn delete_group(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    s.control.delete_security_group(&ctx, &auth, &id, q.project.as_deref(), if_match.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a rule; it applies to running instances at once.
#[utoipa::path(post, path = "/v1/security-groups/{id}/rules", operation_id = "security_group.rule_add", tag = "security-groups", request_body = CreateRuleRequest,
    params(("id" = String, Path, description = "Group id or name"), ProjectParam),
    responses((status = 201, body = SecurityGroup), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn add_rule(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<CreateRuleRequest>,
) -> Result<(StatusCode, axum::Json<SecurityGroup>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.control.add_security_group_rule(&ctx, &auth, &id, q.project.as_deref(), req).await?),
    ))
}

/// Remove a rule.
#[utoipa::path(delete, path = "/v1/security-groups/{id}/rules/{rule}", operation_id = "security_group.rule_delete", tag = "security-groups",
    params(("id" = String, Path, description = "Group id or name"), ("rule" = String, Path, description = "Rule id"), ProjectParam),
    responses((status = 200, body = SecurityGroup), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn delete_rule(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path((id, rule)): Path<(String, String)>,
    Query(q): Query<ProjectParam>,
) -> Result<axum::Json<SecurityGroup>, ApiError> {
    Ok(axum::Json(s.control.delete_security_group_rule(&ctx, &auth, &id, &rule, q.project.as_deref()).await?))
}

/// Plug a (running or stopped) instance into one more network.
#[utoipa::path(post, path = "/v1/instances/{id}/networks", operation_id = "instance.network_attach", tag = "instances", request_body = NicRequest,
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam),
    responses((status = 200, body = Instance), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn attach(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<NicRequest>,
) -> Result<axum::Json<Instance>, ApiError> {
    Ok(axum::Json(s.control.attach_instance_network(&ctx, &auth, &id, q.project.as_deref(), req).await?))
}

/// Unplug an instance from a network.
#[utoipa::path(delete, path = "/v1/instances/{id}/networks/{network}", operation_id = "instance.network_detach", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), ("network" = String, Path, description = "Network id or name"), ProjectParam),
    responses((status = 200, body = Instance), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)))]
pub async fn detach(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path((id, network)): Path<(String, String)>,
    Query(q): Query<ProjectParam>,
) -> Result<axum::Json<Instance>, ApiError> {
    Ok(axum::Json(s.control.detach_instance_network(&ctx, &auth, &id, q.project.as_deref(), &network).await?))
}

/// Replace an instance's security groups; the rules apply at once.
#[utoipa::path(put, path = "/v1/instances/{id}/security-groups", operation_id = "instance.security_groups", tag = "instances", request_body = SetSecurityGroupsRequest,
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam),
    responses((status = 200, body = Instance), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn set_groups(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<SetSecurityGroupsRequest>,
) -> Result<axum::Json<Instance>, ApiError> {
    Ok(axum::Json(
        s.control.set_instance_security_groups(&ctx, &auth, &id, q.project.as_deref(), &req.security_groups).await?,
    ))
}

/// List port forwards.
#[utoipa::path(get, path = "/v1/port-forwards", tag = "networks", params(PortForwardListParams),
    responses((status = 200, body = Page<PortForward>), (status = 401, body = ErrorResponse), (status = 404, body = ErrorResponse)))]
pub async fn list_ports(
    State(s): State<AppState>,
    auth: Auth,
    Query(q): Query<PortForwardListParams>,
) -> Result<axum::Json<Page<PortForward>>, ApiError> {
    Ok(axum::Json(s.control.list_port_forwards(&auth, &q).await?))
}

/// Forward a host port to a port of the instance (DNAT on every host address).
#[utoipa::path(post, path = "/v1/instances/{id}/ports", operation_id = "port_forward.create", tag = "instances", request_body = CreatePortForwardRequest,
    params(("id" = String, Path, description = "Instance id or name"), ProjectParam),
    responses((status = 201, body = PortForward), (status = 400, body = ErrorResponse), (status = 401, body = ErrorResponse),
        (status = 403, body = ErrorResponse), (status = 404, body = ErrorResponse), (status = 409, description = "The host port is taken", body = ErrorResponse)))]
pub async fn add_port(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path(id): Path<String>,
    Query(q): Query<ProjectParam>,
    Json(req): Json<CreatePortForwardRequest>,
) -> Result<(StatusCode, axum::Json<PortForward>), ApiError> {
    Ok((
        StatusCode::CREATED,
        axum::Json(s.control.create_port_forward(&ctx, &auth, &id, q.project.as_deref(), req).await?),
    ))
}

/// Remove a port forward, by id or `HOST_PORT[/tcp|udp]`.
#[utoipa::path(delete, path = "/v1/instances/{id}/ports/{port}", operation_id = "port_forward.delete", tag = "instances",
    params(("id" = String, Path, description = "Instance id or name"), ("port" = String, Path, description = "Forward id or HOST_PORT[/tcp|udp]"), ProjectParam),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorResponse), (status = 403, body = ErrorResponse),
        (status = 404, body = ErrorResponse)))]
pub async fn delete_port(
    State(s): State<AppState>,
    Ctx(ctx): Ctx,
    auth: Auth,
    Path((id, port)): Path<(String, String)>,
    Query(q): Query<ProjectParam>,
) -> Result<StatusCode, ApiError> {
    s.control.delete_port_forward(&ctx, &auth, &id, &port, q.project.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
