//! The OpenAPI document, generated from the handlers' annotations. Routes are registered
//! through `OpenApiRouter`, so a route cannot exist without its documentation.

use axum::extract::State;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::auth::Auth;
use crate::routes::{
    audit, auth, buckets, events, health, images, instances, networks, objects, operations, projects, s3_keys,
    ssh_keys, system, tokens, users, volumes,
};
use crate::routes::{sandbox_api, sandbox_processes, sandbox_templates, sandboxes};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Roost API",
        description = "The REST API of Roost, a self-hosted cloud. All endpoints but health and login \
                       require `Authorization: Bearer <token>` (or the console's session cookie plus \
                       `X-CSRF-Token` on mutations). Errors are `{\"error\": {\"code\", \"message\", \"request_id\"}}`; \
                       lists take `limit`, `cursor`, `sort` and return `{\"items\", \"next_cursor\"}`.",
        license(name = "Apache-2.0")
    ),
    // Documented here, mounted in `app()` with a catch-all key (keys contain slashes).
    paths(objects::get, objects::put, objects::delete),
    modifiers(&Security),
    security(("bearer" = []), ("session_cookie" = [])),
    tags(
        (name = "auth", description = "Login sessions"),
        (name = "tokens", description = "API tokens"),
        (name = "ssh-keys", description = "SSH keys installed into instances"),
        (name = "users", description = "User accounts"),
        (name = "projects", description = "Tenancy: projects, members, quotas"),
        (name = "audit", description = "The audit log"),
        (name = "images", description = "Root filesystems instances start from"),
        (name = "instances", description = "Containers (and microVMs) with a desired state"),
        (name = "networks", description = "VPC networks, peering and port forwards"),
        (name = "security-groups", description = "Stateful firewall rules attached to instances"),
        (name = "buckets", description = "Object storage buckets (objects are served over S3)"),
        (name = "s3-keys", description = "S3 access keys"),
        (name = "operations", description = "Long-running work"),
        (name = "events", description = "The change stream"),
        (name = "system", description = "Server administration"),
        (name = "health", description = "Liveness, readiness and metrics"),
        (name = "meta", description = "This document"),
        (name = "volumes", description = "Block volumes, snapshots and backup policies"),
        (name = "sandboxes", description = "Ephemeral instances with a TTL, and keys of the E2B-compatible API"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (`rst_…`) or a login session token (`rss_…`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(crate::auth::SESSION_COOKIE))),
        );
    }
}

/// Every route of the API (`/v1`, health, metrics) with its documentation.
pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::whoami))
        .routes(routes!(auth::change_password))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::update, users::delete))
        .routes(routes!(users::disable))
        .routes(routes!(users::enable))
        .routes(routes!(users::reset_password))
        .routes(routes!(projects::list, projects::create))
        .routes(routes!(projects::get, projects::update, projects::delete))
        .routes(routes!(projects::members))
        .routes(routes!(projects::set_member, projects::remove_member))
        .routes(routes!(projects::quota, projects::set_quota))
        .routes(routes!(projects::usage))
        .routes(routes!(images::list, images::build))
        .routes(routes!(images::import))
        .routes(routes!(images::get, images::delete))
        .routes(routes!(instances::list, instances::create))
        .routes(routes!(instances::get, instances::delete))
        .routes(routes!(instances::start))
        .routes(routes!(instances::stop))
        .routes(routes!(instances::restart))
        .routes(routes!(instances::wait))
        .routes(routes!(instances::stats))
        .routes(routes!(instances::metrics))
        .routes(routes!(instances::logs))
        .routes(routes!(instances::files_get, instances::files_put))
        .routes(routes!(instances::exec))
        .routes(routes!(networks::list, networks::create))
        .routes(routes!(networks::get, networks::delete))
        .routes(routes!(networks::peer))
        .routes(routes!(networks::unpeer))
        .routes(routes!(networks::list_groups, networks::create_group))
        .routes(routes!(networks::get_group, networks::delete_group))
        .routes(routes!(networks::add_rule))
        .routes(routes!(networks::delete_rule))
        .routes(routes!(networks::attach))
        .routes(routes!(networks::detach))
        .routes(routes!(networks::set_groups))
        .routes(routes!(networks::list_ports))
        .routes(routes!(networks::add_port))
        .routes(routes!(networks::delete_port))
        .routes(routes!(audit::list))
        .routes(routes!(audit::export))
        .routes(routes!(audit::verify))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::get, tokens::delete))
        .routes(routes!(buckets::list, buckets::create))
        .routes(routes!(buckets::get, buckets::delete))
        .routes(routes!(buckets::presign))
        .routes(routes!(objects::list))
        .routes(routes!(s3_keys::list, s3_keys::create))
        .routes(routes!(s3_keys::get, s3_keys::delete))
        .routes(routes!(operations::list))
        .routes(routes!(operations::get))
        .routes(routes!(events::stream))
        .routes(routes!(system::create_backup))
        .routes(routes!(system::node_info))
        .routes(routes!(system::list_tasks))
        .routes(routes!(system::get_task))
        .routes(routes!(system::run_task))
        .routes(routes!(ssh_keys::list, ssh_keys::create))
        .routes(routes!(ssh_keys::get, ssh_keys::delete))
        .routes(routes!(document_route))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(volumes::list, volumes::create))
        .routes(routes!(volumes::get, volumes::delete))
        .routes(routes!(volumes::resize))
        .routes(routes!(volumes::attach))
        .routes(routes!(volumes::detach))
        .routes(routes!(volumes::restore))
        .routes(routes!(volumes::list_snapshots, volumes::create_snapshot))
        .routes(routes!(volumes::get_snapshot, volumes::delete_snapshot))
        .routes(routes!(volumes::list_policies, volumes::create_policy))
        .routes(routes!(volumes::get_policy, volumes::delete_policy))
        .routes(routes!(volumes::run_policy))
        .routes(routes!(volumes::snapshot_instance))
        .routes(routes!(volumes::clone_instance))
        .routes(routes!(sandboxes::list_keys, sandboxes::create_key))
        .routes(routes!(sandboxes::revoke_key))
        .routes(routes!(sandbox_api::list, sandbox_api::create))
        .routes(routes!(sandbox_api::get, sandbox_api::kill))
        .routes(routes!(sandbox_api::pause))
        .routes(routes!(sandbox_api::resume))
        .routes(routes!(sandbox_api::timeout))
        .routes(routes!(sandbox_api::usage))
        .routes(routes!(sandboxes::pool_stats))
        .routes(routes!(sandbox_api::url))
        .routes(routes!(sandbox_processes::list, sandbox_processes::start))
        .routes(routes!(sandbox_processes::signal))
        .routes(routes!(sandbox_processes::attach))
        .routes(routes!(sandbox_processes::list_dir, sandbox_processes::mkdir))
        .routes(routes!(sandbox_processes::download, sandbox_processes::upload, sandbox_processes::remove))
        .routes(routes!(sandbox_processes::rename))
        .routes(routes!(sandbox_templates::list, sandbox_templates::build))
        .routes(routes!(sandbox_templates::get, sandbox_templates::delete))
}

/// The document, as served and as checked in at the repository root.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_router().split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn document_route(State(_): State<AppState>, _auth: Auth) -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document())
}
