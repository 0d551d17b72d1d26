//! Roost's public API: the request and response types shared by the server, the typed
//! client, the CLI and the generated OpenAPI document. Modules are named by resource.

pub mod audit;
pub mod auth;
pub mod buckets;
pub mod error;
pub mod events;
pub mod ids;
pub mod images;
pub mod instances;
pub mod list;
pub mod networks;
pub mod operations;
pub mod patch;
pub mod projects;
pub mod sandbox_templates;
pub mod sandboxes;
pub mod ssh_keys;
pub mod system;
pub mod tokens;
pub mod users;
pub mod volumes;

pub use error::{ErrorBody, ErrorCode, ErrorResponse, FieldError};
pub use list::{ListParams, Page, ProjectListParams};

/// Timestamps on the wire are RFC 3339 in UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// The entity tag of a resource's JSON representation: `"<32 hex>"`. A GET returns it
/// as `ETag`; an update sent with `If-Match` applies only while it is still current.
pub fn etag_of<T: serde::Serialize>(value: &T) -> String {
    etag_of_json(&serde_json::to_vec(value).unwrap_or_default())
}

/// The entity tag of serialized JSON (what `etag_of` hashes; the HTTP layer tags response
/// bodies with it, so a GET's `ETag` and the services' `If-Match` checks agree).
pub fn etag_of_json(json: &[u8]) -> String {
    use std::fmt::Write;
    // FNV-1a over the JSON twice (two seeds) gives 128 bits without a hash dependency here.
    let mut out = String::from("\"");
    for seed in [0xcbf2_9ce4_8422_2325u64, 0x8422_2325_cbf2_9ce4] {
        let mut h = seed;
        for b in json {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let _ = write!(out, "{h:016x}");
    }
    out.push('"');
    out
}

/// Whether an `If-Match` header value admits the current entity tag.
pub fn if_match_admits(if_match: &str, current: &str) -> bool {
    if_match.split(',').map(str::trim).any(|t| t == "*" || t == current || t.strip_prefix("W/") == Some(current))
}

/// Whether an `If-None-Match` header value names the current entity tag (weak comparison,
/// as RFC 9110 asks for GET).
pub fn if_none_match_names(if_none_match: &str, current: &str) -> bool {
    if_match_admits(if_none_match, current)
}

/// Parses a size such as `512m`, `16g`, `1.5GiB` or `1048576` (bytes) into bytes.
/// Suffixes are binary (k = 1024).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix("ib").or_else(|| t.strip_suffix('b')).unwrap_or(&t);
    let (number, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        't' => (&t[..t.len() - 1], 1 << 40),
        c if c.is_ascii_digit() => (t, 1),
        _ => return None,
    };
    let value: f64 = number.trim().parse().ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value * mult as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    #[test]
    fn etags_follow_the_representation() {
        let a = super::etag_of(&serde_json::json!({"name": "a"}));
        assert_eq!(a, super::etag_of(&serde_json::json!({"name": "a"})));
        assert_ne!(a, super::etag_of(&serde_json::json!({"name": "b"})));
        assert!(a.starts_with('"') && a.len() == 34);
        assert!(super::if_match_admits(&a, &a) && super::if_match_admits("*", &a));
        assert!(super::if_match_admits(&format!("\"x\", {a}"), &a));
        assert!(!super::if_match_admits("\"stale\"", &a));
    }

    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("512m"), Some(512 << 20));
        assert_eq!(super::parse_size("16G"), Some(16 << 30));
        assert_eq!(super::parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(super::parse_size("4096"), Some(4096));
        assert_eq!(super::parse_size("10x"), None);
        assert_eq!(super::parse_size("-1g"), None);
    }
}
