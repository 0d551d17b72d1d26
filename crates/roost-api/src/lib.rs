//! Roost's public API: the request and response types shared by the server, the typed
//! client, the CLI and the generated OpenAPI document. Modules are named by resource.

pub mod audit;
pub mod auth;
pub mod error;
pub mod events;
pub mod ids;
pub mod images;
pub mod instances;
pub mod list;
pub mod operations;
pub mod projects;
pub mod system;
pub mod tokens;
pub mod users;

pub use error::{ErrorBody, ErrorCode, ErrorResponse, FieldError};
pub use list::{ListParams, Page};

/// Timestamps on the wire are RFC 3339 in UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

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
    fn sizes() {
        assert_eq!(super::parse_size("512m"), Some(512 << 20));
        assert_eq!(super::parse_size("16G"), Some(16 << 30));
        assert_eq!(super::parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(super::parse_size("4096"), Some(4096));
        assert_eq!(super::parse_size("10x"), None);
        assert_eq!(super::parse_size("-1g"), None);
    }
}
