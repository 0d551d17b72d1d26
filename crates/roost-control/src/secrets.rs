//! Secrets at rest: AES-256-GCM under the server's master key, a random 32-byte file
//! `data_dir/secrets/master.key` (0600, created on the first start). Losing the file makes
//! every stored secret (S3 secret keys) unreadable; back it up with the store.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};

use crate::{Error, Result};

const NONCE_LEN: usize = 12;

/// A random 32-byte key in `dir/file` (0600; `dir` 0700), created on first use. Two
/// servers starting at once never overwrite each other's key (`create_new`).
pub fn load_or_create_key(dir: &Path, file: &str) -> std::io::Result<[u8; 32]> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let path = dir.join(file);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
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
    bytes.try_into().map_err(|_| std::io::Error::other(format!("{} is not a 32-byte key", path.display())))
}

/// The master key, loaded once.
pub struct MasterKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Loads `dir/master.key`, creating it (and `dir`, 0700) when missing.
    pub fn load_or_create(dir: &Path) -> std::io::Result<MasterKey> {
        let bytes = load_or_create_key(dir, "master.key")?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(std::io::Error::other)?;
        Ok(MasterKey { cipher })
    }

    /// hex(nonce || ciphertext); `context` is bound as associated data so a ciphertext
    /// cannot be moved to another row.
    pub fn seal(&self, context: &str, plaintext: &str) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::internal(e.to_string()))?;
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), aes_gcm::aead::Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() })
            .map_err(|_| Error::internal("encryption failed"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(hex::encode(out))
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<String> {
        let bytes = hex::decode(sealed).map_err(|_| Error::internal("a stored secret is corrupt"))?;
        if bytes.len() < NONCE_LEN {
            return Err(Error::internal("a stored secret is corrupt"));
        }
        let (nonce, body) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| Error::internal("a stored secret is corrupt"))?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), aes_gcm::aead::Payload { msg: body, aad: context.as_bytes() })
            .map_err(|_| Error::internal("a stored secret cannot be decrypted with this server's master key"))?;
        String::from_utf8(plain).map_err(|_| Error::internal("a stored secret is corrupt"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_binds_the_context() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(&dir.path().join("secrets")).unwrap();
        let sealed = key.seal("RKA", "secret").unwrap();
        assert_eq!(key.open("RKA", &sealed).unwrap(), "secret");
        assert!(key.open("RKB", &sealed).is_err());
        let mode = std::fs::metadata(dir.path().join("secrets/master.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // The same file gives the same key.
        let again = MasterKey::load_or_create(&dir.path().join("secrets")).unwrap();
        assert_eq!(again.open("RKA", &sealed).unwrap(), "secret");
    }
}
