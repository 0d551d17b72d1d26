//! URLs for a port of a sandbox, served by the E2B listener's proxy and routed by host
//! (`<port>-<sandbox id>.localhost:<port>`, the shape of E2B's `get_host`). `*.localhost`
//! resolves to loopback in browsers and curl, so it works on a laptop without DNS. Each
//! URL carries a token for that sandbox and port only, derived from a server secret
//! (`data_dir/secrets/sandbox-urls.key`), so a URL grants nothing else.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use roost_api::sandboxes::SandboxUrl;
use sha2::{Digest, Sha256};

use crate::{Control, Error, Principal, Result};

/// The domain sandbox hosts are under when the listener is on loopback.
pub const SANDBOX_DOMAIN: &str = "localhost";

/// HMAC-SHA256 of `key_hash:sandbox_id` under `secret`, hex.
pub fn envd_token(secret: &[u8; 32], key_hash: &str, sandbox_id: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2_11::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"roost-envd:");
    mac.update(key_hash.as_bytes());
    mac.update(b":");
    mac.update(sandbox_id.as_bytes());
    hex::encode(mac.finalize().into_bytes())
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
        let load = || -> std::io::Result<[u8; 32]> {
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            let path = dir.join(file);
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let mut key = [0u8; 32];
                    getrandom::fill(&mut key).map_err(std::io::Error::other)?;
                    match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                        Ok(mut f) => {
                            f.write_all(&key)?;
                            f.sync_all()?;
                            key.to_vec()
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(&path)?,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            bytes.try_into().map_err(|_| std::io::Error::other(format!("{} is not 32 bytes", path.display())))
        };
        let key = load().map_err(|e| Error::internal(format!("cannot load the server secret {file}: {e}")))?;
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
        use subtle::ConstantTimeEq;
        let expected = self.sandbox_envd_token(key_hash, sandbox_id)?;
        Ok(expected.len() == given.len() && bool::from(expected.as_bytes().ct_eq(given.as_bytes())))
    }

    /// The token of one port of one sandbox.
    pub fn sandbox_url_token(&self, sandbox_id: &str, port: u16) -> Result<String> {
        let mut h = Sha256::new();
        h.update(b"roost-sandbox-url:");
        h.update(self.sandbox_url_secret()?);
        h.update(format!(":{sandbox_id}:{port}").as_bytes());
        Ok(hex::encode(&h.finalize()[..16]))
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
}
