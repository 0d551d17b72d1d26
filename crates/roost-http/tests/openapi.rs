//! `openapi.json` at the repository root is the document the code generates. Run
//! `make openapi` (UPDATE_OPENAPI=1) to rewrite it after changing the API.

#[test]
fn checked_in_openapi_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.json");
    let generated = roost_http::openapi::document().to_pretty_json().expect("document serializes") + "\n";
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(on_disk == generated, "openapi.json is stale: run `make openapi` and commit it");
}

#[test]
fn every_operation_is_documented_with_errors_and_tags() {
    let doc = serde_json::to_value(roost_http::openapi::document()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(op["tags"].as_array().is_some_and(|t| !t.is_empty()), "{method} {path} has no tag");
            assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path} has no summary");
            let anonymous = path.starts_with("/v1/auth/login") || path.starts_with("/health/");
            if !anonymous && path != "/v1/openapi.json" {
                assert!(op["responses"]["401"].is_object(), "{method} {path} does not document 401");
            }
        }
    }
}

#[test]
fn single_resources_are_versioned() {
    let doc = serde_json::to_value(roost_http::openapi::document()).unwrap();
    let takes = |op: &serde_json::Value, name: &str| {
        op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "header"))
    };
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.ends_with("/{id}") {
            continue;
        }
        if let Some(get) = item.get("get") {
            assert!(get["responses"]["200"]["headers"]["ETag"].is_object(), "GET {path} does not document its ETag");
            assert!(get["responses"]["304"].is_object(), "GET {path} does not document 304");
            assert!(takes(get, "If-None-Match"), "GET {path} does not take If-None-Match");
        }
        for method in ["patch", "delete"] {
            if let Some(op) = item.get(method) {
                assert!(takes(op, "If-Match"), "{method} {path} does not take If-Match");
                assert!(op["responses"]["412"].is_object(), "{method} {path} does not document 412");
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} updates and deletes found");
}

#[test]
fn query_parameters_are_documented_where_the_server_reads_them() {
    let doc = serde_json::to_value(roost_http::openapi::document()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().unwrap();
                    assert!(path.contains(&format!("{{{name}}}")), "{method} {path}: '{name}' is not in the path");
                }
            }
        }
    }
}
