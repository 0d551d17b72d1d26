//! Bucket CORS rules: stored as JSON on the bucket, answered for preflight `OPTIONS`
//! requests and added to responses of requests that carry an `Origin`.

use http::{HeaderMap, HeaderValue, Method};
use roost_store::buckets::BucketRow;
use s3s::dto::CORSRule;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<String>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<i32>,
}

impl CorsRule {
    pub fn from_dto(r: CORSRule) -> CorsRule {
        CorsRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: r.allowed_headers.unwrap_or_default(),
            expose_headers: r.expose_headers.unwrap_or_default(),
            max_age_seconds: r.max_age_seconds,
        }
    }

    pub fn to_dto(self) -> CORSRule {
        CORSRule {
            id: self.id,
            allowed_origins: self.allowed_origins,
            allowed_methods: self.allowed_methods,
            allowed_headers: (!self.allowed_headers.is_empty()).then_some(self.allowed_headers),
            expose_headers: (!self.expose_headers.is_empty()).then_some(self.expose_headers),
            max_age_seconds: self.max_age_seconds,
        }
    }

    fn allows(&self, origin: &str, method: &str, headers: &[String]) -> bool {
        self.allowed_origins.iter().any(|o| wildcard(o, origin))
            && self.allowed_methods.iter().any(|m| m.eq_ignore_ascii_case(method))
            && headers.iter().all(|h| {
                self.allowed_headers.iter().any(|a| wildcard(&a.to_ascii_lowercase(), &h.to_ascii_lowercase()))
            })
    }
}

/// `*` matches any run of characters (S3 allows one per pattern).
fn wildcard(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((pre, post)) => value.len() >= pre.len() + post.len() && value.starts_with(pre) && value.ends_with(post),
    }
}

pub fn rules_of(bucket: &BucketRow) -> Vec<CorsRule> {
    bucket.cors.as_deref().and_then(|c| serde_json::from_str(c).ok()).unwrap_or_default()
}

/// The first rule allowing this origin, method and request headers.
pub fn matching(bucket: &BucketRow, origin: &str, method: &str, headers: &[String]) -> Option<CorsRule> {
    rules_of(bucket).into_iter().find(|r| r.allows(origin, method, headers))
}

/// The response headers a matching rule adds.
pub fn apply(rule: &CorsRule, origin: &str, preflight: Option<(&str, &[String])>, out: &mut HeaderMap) {
    let any = rule.allowed_origins.iter().any(|o| o == "*");
    let set = |out: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    set(out, "access-control-allow-origin", if any { "*" } else { origin });
    if !any {
        out.append(http::header::VARY, HeaderValue::from_static("Origin"));
    }
    if !rule.expose_headers.is_empty() {
        set(out, "access-control-expose-headers", &rule.expose_headers.join(", "));
    }
    if let Some((method, headers)) = preflight {
        set(out, "access-control-allow-methods", method);
        if !headers.is_empty() {
            set(out, "access-control-allow-headers", &headers.join(", "));
        }
        if let Some(age) = rule.max_age_seconds {
            set(out, "access-control-max-age", &age.to_string());
        }
    }
}

/// The bucket a request addresses: the host's first label under the S3 domain
/// (virtual-host style), else the path's first segment.
pub fn bucket_of(method: &Method, uri: &http::Uri, headers: &HeaderMap, domain: Option<&str>) -> Option<String> {
    let _ = method;
    if let Some(domain) = domain
        && let Some(host) = headers.get(http::header::HOST).and_then(|h| h.to_str().ok())
    {
        let host = host.split(':').next().unwrap_or(host);
        if let Some(bucket) = host.strip_suffix(domain).and_then(|b| b.strip_suffix('.'))
            && !bucket.is_empty()
        {
            return Some(bucket.to_string());
        }
    }
    uri.path().trim_start_matches('/').split('/').next().filter(|b| !b.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_with_one_wildcard() {
        assert!(wildcard("*", "https://a.example"));
        assert!(wildcard("https://*.example", "https://a.example"));
        assert!(!wildcard("https://*.example", "http://a.example"));
        assert!(wildcard("https://a.example", "https://a.example"));
    }

    #[test]
    fn a_rule_allows_its_methods_and_headers() {
        let rule = CorsRule {
            allowed_origins: vec!["https://site.example".into()],
            allowed_methods: vec!["GET".into(), "PUT".into()],
            allowed_headers: vec!["*".into()],
            ..Default::default()
        };
        assert!(rule.allows("https://site.example", "PUT", &["content-type".into()]));
        assert!(!rule.allows("https://site.example", "DELETE", &[]));
        assert!(!rule.allows("https://evil.example", "GET", &[]));
    }
}
