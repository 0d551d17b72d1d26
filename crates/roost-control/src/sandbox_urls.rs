//! URLs for a port of a sandbox, served by the E2B listener's proxy and routed by host
//! (`<port>-<sandbox id>.localhost:<port>`, the shape of E2B's `get_host`). `*.localhost`
//! resolves to loopback in browsers and curl, so it works on a laptop without DNS. Each
//! URL carries a token for that sandbox and port only, derived from a server secret
//! (`data_dir/secrets/sandbox-urls.key`), so a URL grants nothing else.

use roost_api::sandboxes::SandboxUrl;

use roost_store::sandboxes::SandboxRow;

use crate::sandboxes::SandboxView;
use crate::{Control, Error, Principal, Result};

/// The domain sandbox hosts are under when the listener is on loopback.
pub const SANDBOX_DOMAIN: &str = "localhost";

/// HMAC-SHA256 of `label:` and the parts (`:`-separated) under `secret`: the one way
/// sandbox tokens are derived, so none can be computed from the database.
fn keyed(secret: &[u8; 32], label: &str, parts: &[&str]) -> [u8; 32] {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2_11::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(label.as_bytes());
    for part in parts {
        mac.update(b":");
        mac.update(part.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

/// The envd access token of `sandbox_id` created with the key whose hash is `key_hash`.
pub fn envd_token(secret: &[u8; 32], key_hash: &str, sandbox_id: &str) -> String {
    hex::encode(keyed(secret, "roost-envd", &[key_hash, sandbox_id]))
}

/// The URL token of one port of a sandbox (128 bits: it travels in URLs).
pub fn url_token(secret: &[u8; 32], sandbox_id: &str, port: u16) -> String {
    hex::encode(&keyed(secret, "roost-sandbox-url", &[sandbox_id, &port.to_string()])[..16])
}

/// Whether a presented token is the expected one, in constant time.
pub fn tokens_match(expected: &str, given: &str) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// `<port>-<sandbox id>` from a host header (`8000-sbx-abc.localhost:7702`).
pub fn parse_sandbox_host(host: &str) -> Option<(u16, String)> {
    let label = host.split('.').next()?;
    let (port, id) = label.split_once('-')?;
    if !id.starts_with("sbx-") || host.len() == label.len() {
        return None;
    }
    Some((port.parse().ok().filter(|p| *p > 0)?, id.to_string()))
}

impl Control {
    /// Where the E2B listener listens, once the server bound it.
    pub fn set_e2b_address(&self, addr: std::net::SocketAddr) {
        let _ = self.inner.e2b_address.set(addr);
    }

    fn sandbox_url_secret(&self) -> Result<&[u8; 32]> {
        self.server_secret(&self.inner.sandbox_url_secret, "sandbox-urls.key")
    }

    /// A 32-byte server secret in `data_dir/secrets/<file>` (0600), created on first use
    /// and kept in `cell`. Tokens derived from it cannot be computed from the database.
    pub(crate) fn server_secret<'a>(
        &self,
        cell: &'a std::sync::OnceLock<[u8; 32]>,
        file: &str,
    ) -> Result<&'a [u8; 32]> {
        if let Some(s) = cell.get() {
            return Ok(s);
        }
        let dir = self.settings().data_dir.join("secrets");
        let key = crate::secrets::load_or_create_key(&dir, file)
            .map_err(|e| Error::internal(format!("cannot load the server secret {file}: {e}")))?;
        Ok(cell.get_or_init(|| key))
    }

    /// The envd access token of a sandbox (the SDK's `X-Access-Token`): an HMAC of the
    /// creating key's hash and the sandbox id under a server secret
    /// (`data_dir/secrets/envd-tokens.key`), so reading the database is not enough to
    /// forge one.
    pub fn sandbox_envd_token(&self, key_hash: &str, sandbox_id: &str) -> Result<String> {
        Ok(envd_token(self.server_secret(&self.inner.envd_token_secret, "envd-tokens.key")?, key_hash, sandbox_id))
    }

    /// Whether `given` is the sandbox's envd access token (compared in constant time).
    pub fn check_sandbox_envd_token(&self, key_hash: &str, sandbox_id: &str, given: &str) -> Result<bool> {
        Ok(tokens_match(&self.sandbox_envd_token(key_hash, sandbox_id)?, given))
    }

    /// The token of a sandbox URL: for that sandbox and port only.
    pub fn sandbox_url_token(&self, sandbox_id: &str, port: u16) -> Result<String> {
        Ok(url_token(self.sandbox_url_secret()?, sandbox_id, port))
    }

    /// Whether `given` is the token of the sandbox's URL for `port` (constant time).
    pub fn check_sandbox_url_token(&self, sandbox_id: &str, port: u16, given: &str) -> Result<bool> {
        Ok(tokens_match(&self.sandbox_url_token(sandbox_id, port)?, given))
    }

    /// The live sandbox a URL token opens one port of (401 for a wrong token). The view
    /// reaches that port and nothing else: it carries no right to change the sandbox.
    pub fn sandbox_by_url_token(&self, row: SandboxRow, port: u16, given: &str) -> Result<SandboxView> {
        if !self.check_sandbox_url_token(&row.id, port, given)? {
            return Err(Error::unauthorized("invalid sandbox URL token (get one with `roost sandbox url`)"));
        }
        Ok(SandboxView { row, paused: false, kind: String::new(), write: None })
    }

    /// A URL reaching `port` of the sandbox through the E2B listener.
    pub async fn sandbox_url(&self, p: &Principal, id: &str, port: u16) -> Result<SandboxUrl> {
        let view = self.sandbox(p, id).await?;
        if port == 0 {
            return Err(Error::validation(vec![roost_api::FieldError {
                field: "port".into(),
                message: "must be between 1 and 65535".into(),
            }]));
        }
        let addr = self.inner.e2b_address.get().ok_or_else(|| {
            Error::new(
                roost_api::ErrorCode::Unavailable,
                "the E2B listener is off (--e2b-listen), which serves sandbox URLs",
            )
        })?;
        let host = format!("{port}-{}.{SANDBOX_DOMAIN}:{}", view.row.id, addr.port());
        let token = self.sandbox_url_token(&view.row.id, port)?;
        Ok(SandboxUrl {
            sandbox_id: view.row.id.clone(),
            port,
            url: format!("http://{host}/?roost_token={token}"),
            host,
            token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envd_tokens_depend_on_the_secret_the_key_and_the_sandbox() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let t = envd_token(&a, "k1", "sbx-a");
        assert_eq!(t.len(), 64);
        assert_eq!(t, envd_token(&a, "k1", "sbx-a"));
        assert_ne!(t, envd_token(&b, "k1", "sbx-a"), "another server secret gives another token");
        assert_ne!(t, envd_token(&a, "k2", "sbx-a"));
        assert_ne!(t, envd_token(&a, "k1", "sbx-b"));
    }

    #[test]
    fn url_tokens_are_per_sandbox_and_port() {
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let t = url_token(&a, "sbx-a", 8000);
        assert_eq!(t.len(), 32);
        assert_ne!(t, url_token(&b, "sbx-a", 8000));
        assert_ne!(t, url_token(&a, "sbx-a", 8001));
        assert_ne!(t, url_token(&a, "sbx-b", 8000));
    }

    #[test]
    fn tokens_match_compares_whole_strings() {
        assert!(tokens_match("abc", "abc") && !tokens_match("abc", "abd") && !tokens_match("ab", "abc"));
    }
}
