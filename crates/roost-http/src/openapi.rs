//! The OpenAPI document, generated from the handlers' annotations. Routes are registered
//! through `OpenApiRouter`, so a route cannot exist without its documentation.

use axum::extract::State;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Required, Response, ResponseBuilder, Type};
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

/// What every operation can answer besides its own results, added once here from what
/// the operation is (authenticated or not, mutating, with parameters, a body, `If-Match`)
/// rather than on each route, so the document lists every status the server really
/// sends: the JSON error (`ErrorResponse`) for each error status, and on reads the `ETag`,
/// `If-None-Match` and 304 that the `etag` layer adds to every JSON answer.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let ops = [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, op) in ops {
                if let Some(op) = op {
                    add_conventions(method, op);
                }
            }
        }
    }
}

fn add_conventions(method: &str, op: &mut Operation) {
    use utoipa::openapi::security::SecurityRequirement;
    let anonymous = op.security.as_ref().is_some_and(|s| s.iter().all(|r| *r == SecurityRequirement::default()));
    let params = op.parameters.as_deref().unwrap_or_default();
    let has_params = params.iter().any(|p| p.parameter_in != ParameterIn::Header);
    let if_match = params.iter().any(|p| p.parameter_in == ParameterIn::Header && p.name == "If-Match");
    let body = op.request_body.as_ref();
    let json_body = body.is_some_and(|b| b.content.contains_key("application/json"));
    let mutating = method != "get";
    let authenticated = !anonymous;
    // Without path or query parameters, what is not found is something the body names
    // (a project, an image, a network).
    let not_found = if has_params {
        "No such resource, or one you may not see"
    } else {
        "A resource the body names does not exist, or you may not see it"
    };
    let errors: [(u16, bool, &str); 11] = [
        (
            400,
            has_params || body.is_some(),
            "The request is malformed (JSON, query, path) or its fields are invalid (`details`)",
        ),
        (401, authenticated, "No credential, or an unknown, revoked or expired one"),
        (403, authenticated, "The role, the token's scope or the CSRF check refuses it"),
        (404, authenticated && (has_params || body.is_some()), not_found),
        (409, authenticated && mutating, "A name is taken, or the resource's state forbids it"),
        (412, if_match, "`If-Match` names a version that is no longer current"),
        (413, body.is_some(), "The body is too large"),
        (415, json_body, "The body is not `application/json`"),
        (422, authenticated && mutating, "Well-formed, but not possible here"),
        (429, mutating, "Too many requests; see `Retry-After`"),
        (503, authenticated, "The store is unavailable, the server is stopping, or a part it needs is off"),
    ];
    for (status, applies, description) in errors {
        if applies {
            op.responses.responses.entry(status.to_string()).or_insert_with(|| error_response(description));
        }
    }
    let json_ok = op
        .responses
        .responses
        .get("200")
        .is_some_and(|r| matches!(r, RefOr::T(r) if r.content.contains_key("application/json")));
    if json_ok
        && matches!(method, "get" | "patch" | "put")
        && let Some(RefOr::T(ok)) = op.responses.responses.get_mut("200")
    {
        ok.headers.insert("ETag".into(), etag_header());
    }
    if json_ok && method == "get" {
        let not_modified = ResponseBuilder::new()
            .description("Not modified: the `ETag` named in `If-None-Match` is current")
            .header("ETag", etag_header())
            .build();
        op.responses.responses.entry("304".into()).or_insert(RefOr::T(not_modified));
        let if_none_match = ParameterBuilder::new()
            .name("If-None-Match")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some("Answer 304 without a body while the `ETag` is one of these"))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build();
        op.parameters.get_or_insert_with(Vec::new).push(if_none_match);
    }
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorResponse"))).build(),
            )
            .build(),
    )
}

fn etag_header() -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String))
        .description(Some("The version of the resource (the same for equal representations)"))
        .build()
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
        .routes(routes!(images::get, images::update, images::delete))
        .routes(routes!(instances::list, instances::create))
        .routes(routes!(instances::get, instances::update, instances::delete))
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
        .routes(routes!(networks::get, networks::update, networks::delete))
        .routes(routes!(networks::peer))
        .routes(routes!(networks::unpeer))
        .routes(routes!(networks::list_groups, networks::create_group))
        .routes(routes!(networks::get_group, networks::update_group, networks::delete_group))
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
        .routes(routes!(tokens::get, tokens::update, tokens::delete))
        .routes(routes!(buckets::list, buckets::create))
        .routes(routes!(buckets::get, buckets::update, buckets::delete))
        .routes(routes!(buckets::presign))
        .routes(routes!(objects::list))
        .routes(routes!(s3_keys::list, s3_keys::create))
        .routes(routes!(s3_keys::get, s3_keys::update, s3_keys::delete))
        .routes(routes!(operations::list))
        .routes(routes!(operations::get))
        .routes(routes!(events::stream))
        .routes(routes!(system::create_backup))
        .routes(routes!(system::node_info))
        .routes(routes!(system::list_tasks))
        .routes(routes!(system::get_task))
        .routes(routes!(system::run_task))
        .routes(routes!(ssh_keys::list, ssh_keys::create))
        .routes(routes!(ssh_keys::get, ssh_keys::update, ssh_keys::delete))
        .routes(routes!(document_route))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .routes(routes!(volumes::list, volumes::create))
        .routes(routes!(volumes::get, volumes::update, volumes::delete))
        .routes(routes!(volumes::resize))
        .routes(routes!(volumes::attach))
        .routes(routes!(volumes::detach))
        .routes(routes!(volumes::restore))
        .routes(routes!(volumes::list_snapshots, volumes::create_snapshot))
        .routes(routes!(volumes::get_snapshot, volumes::update_snapshot, volumes::delete_snapshot))
        .routes(routes!(volumes::list_policies, volumes::create_policy))
        .routes(routes!(volumes::get_policy, volumes::update_policy, volumes::delete_policy))
        .routes(routes!(volumes::run_policy))
        .routes(routes!(volumes::snapshot_instance))
        .routes(routes!(volumes::clone_instance))
        .routes(routes!(sandboxes::list_keys, sandboxes::create_key))
        .routes(routes!(sandboxes::get_key, sandboxes::update_key, sandboxes::revoke_key))
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
    // After the routes are in: they bring their operations with them.
    Conventions.modify(&mut doc);
    doc
}

/// This OpenAPI document.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
async fn document_route(State(_): State<AppState>, _auth: Auth) -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(document())
}
