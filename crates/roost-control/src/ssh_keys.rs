//! SSH keys: generate (the private key is returned once, never stored) or import a
//! public key; list, show, delete. A key is its owner's: every query is limited to the
//! caller's user id. Instances get the keys named at create in `/root/.ssh/authorized_keys`
//! at first boot (see [`Control::deliver_first_boot`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use roost_api::ids::IdKind;
use roost_api::ssh_keys::{CreateSshKeyRequest, CreatedSshKey, SshKey, UpdateSshKeyRequest};
use roost_api::{ListParams, Page};
use roost_store::ssh_keys::{SORT_KEYS, SshKeyRow};
use roost_store::{StoreError, now_ms};
use sha2::{Digest, Sha256};

use crate::error::{Validator, check_name};
use crate::events::Audience;
use crate::list::list_query;
use crate::{Control, Error, Principal, RequestContext, Result};

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

fn put_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// `SHA256:<base64 without padding>` of the key blob, as `ssh-keygen -l` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// Checks an OpenSSH public key line; returns it normalised (type, key, comment) and its
/// blob.
pub fn parse_public_key(line: &str) -> std::result::Result<(String, Vec<u8>), String> {
    let mut words = line.split_whitespace();
    let (Some(kind), Some(b64)) = (words.next(), words.next()) else {
        return Err("expected an OpenSSH public key line: '<type> <base64> [comment]'".into());
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(format!("unsupported key type '{kind}' (one of {})", KEY_TYPES.join(", ")));
    }
    let blob = STANDARD.decode(b64).map_err(|_| "the key is not valid base64".to_string())?;
    // The blob starts with its own type name.
    let inner = blob
        .get(..4)
        .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n))
        .ok_or("the key data is truncated")?;
    if inner != kind.as_bytes() {
        return Err("the key data does not match its type".into());
    }
    let comment: Vec<&str> = words.collect();
    let mut normal = format!("{kind} {b64}");
    if !comment.is_empty() {
        normal.push(' ');
        normal.push_str(&comment.join(" "));
    }
    Ok((normal, blob))
}

/// A new Ed25519 pair: the public key line and the private key in OpenSSH's format.
pub fn generate_ed25519(comment: &str) -> Result<(String, Vec<u8>, String)> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|_| Error::internal("cannot make an Ed25519 key"))?;
    let public: &[u8] = ring::signature::KeyPair::public_key(&pair).as_ref();
    let mut blob = Vec::new();
    put_string(&mut blob, b"ssh-ed25519");
    put_string(&mut blob, public);
    let public_line = format!("ssh-ed25519 {} {comment}", STANDARD.encode(&blob));

    let mut check = [0u8; 4];
    getrandom::fill(&mut check).map_err(|e| Error::internal(format!("no randomness: {e}")))?;
    let mut private = Vec::new();
    private.extend_from_slice(&check);
    private.extend_from_slice(&check);
    put_string(&mut private, b"ssh-ed25519");
    put_string(&mut private, public);
    let mut secret = seed.to_vec();
    secret.extend_from_slice(public);
    put_string(&mut private, &secret);
    put_string(&mut private, comment.as_bytes());
    let mut pad = 1u8;
    while !private.len().is_multiple_of(8) {
        private.push(pad);
        pad += 1;
    }
    let mut body = b"openssh-key-v1\0".to_vec();
    put_string(&mut body, b"none");
    put_string(&mut body, b"none");
    put_string(&mut body, b"");
    body.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut body, &blob);
    put_string(&mut body, &private);
    let encoded = STANDARD.encode(&body);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in encoded.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    Ok((public_line, blob, pem))
}

impl Control {
    pub async fn create_ssh_key(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        req: CreateSshKeyRequest,
    ) -> Result<CreatedSshKey> {
        let proof = principal.require_owner()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        let parsed = req.public_key.as_deref().map(parse_public_key);
        if let Some(Err(e)) = &parsed {
            v.add("public_key", e.clone());
        }
        v.finish()?;
        let (public_key, blob, private_key) = match parsed {
            Some(Ok((line, blob))) => (line, blob, None),
            _ => {
                let (line, blob, pem) = generate_ed25519(&req.name)?;
                (line, blob, Some(pem))
            }
        };
        // A key registered with an API token is for that token's project, until it ends:
        // someone holding a restricted, expiring token cannot leave a key of theirs that
        // the user's other credentials would later put into other projects' instances.
        let (expires_at, project_id) = principal.credential_limits();
        let row = SshKeyRow {
            id: IdKind::SshKey.generate(),
            user_id: principal.user_id.clone(),
            name: req.name.clone(),
            public_key,
            fingerprint: fingerprint(&blob),
            created_at: now_ms(),
            project_id,
            expires_at,
        };
        // The public half only: the audit never holds a private key.
        let body = serde_json::json!({
            "name": req.name,
            "imported": private_key.is_none(),
            "project_id": row.project_id,
            "expires_at": row.expires_at.map(roost_store::to_time),
        });
        let mut tx = self.change(ctx, &proof).await?;
        roost_store::ssh_keys::insert(tx.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::conflict(format!("an SSH key named '{}' already exists", req.name)),
            e => e.into(),
        })?;
        tx.audit("ssh_key.create", Some(("ssh_key", &row.id)), Some(&body)).await?;
        tx.commit().await?;
        Ok(CreatedSshKey { key: row.to_api(), private_key })
    }

    pub async fn list_ssh_keys(&self, principal: &Principal, params: &ListParams) -> Result<Page<SshKey>> {
        let query = list_query(params, SORT_KEYS)?;
        let (rows, next_cursor) = self.store().list_ssh_keys(&principal.user_id, &query).await?;
        Ok(Page { items: rows.iter().map(SshKeyRow::to_api).collect(), next_cursor })
    }

    /// A key of the caller's, by id or name.
    pub async fn get_ssh_key(&self, principal: &Principal, key: &str) -> Result<SshKey> {
        match self.store().ssh_key_by_key(&principal.user_id, key).await? {
            Some(row) => Ok(row.to_api()),
            None => Err(Error::not_found("ssh_key", key)),
        }
    }

    /// Renames a key of the caller's.
    pub async fn update_ssh_key(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        key: &str,
        req: UpdateSshKeyRequest,
        if_match: Option<&str>,
    ) -> Result<SshKey> {
        let proof = principal.require_owner()?;
        let found = self.get_ssh_key(principal, key).await?;
        let mut v = Validator::default();
        if let Some(name) = &req.name {
            check_name(&mut v, "name", name);
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("ssh_keys", &found.id, if_match, self.get_ssh_key(principal, &found.id)).await?;
        let mut updated = found.clone();
        if let Some(name) = &req.name {
            roost_store::ssh_keys::rename(tx.conn(), &principal.user_id, &found.id, name).await.map_err(
                |e| match e {
                    StoreError::Conflict(_) => Error::conflict(format!("an SSH key named '{name}' already exists")),
                    e => e.into(),
                },
            )?;
            updated.name = name.clone();
        }
        tx.audit("ssh_key.update", Some(("ssh_key", &found.id)), body.as_ref()).await?;
        tx.event("ssh_key.updated", "ssh_key", &found.id, &updated, Audience::User(found.user_id.clone()));
        tx.commit().await?;
        self.get_ssh_key(principal, &found.id).await
    }

    pub async fn delete_ssh_key(
        &self,
        ctx: &RequestContext,
        principal: &Principal,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        let proof = principal.require_owner()?;
        let found = self.get_ssh_key(principal, key).await?;
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("ssh_keys", &found.id, if_match, self.get_ssh_key(principal, &found.id)).await?;
        if !roost_store::ssh_keys::delete(tx.conn(), &principal.user_id, &found.id).await? {
            return Err(Error::not_found("ssh_key", key));
        }
        tx.audit("ssh_key.delete", Some(("ssh_key", &found.id)), None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Installs an instance's SSH keys for root and runs its user data, once, after its
    /// first start (through the driver's exec and file copy, so the same for containers
    /// and VMs). The script's output goes where the instance's own output goes (PID 1's
    /// stdout: the container's log, the VM's serial console log).
    pub(crate) async fn deliver_first_boot(&self, id: &str) -> Result<()> {
        let Some(boot) = self.store().pending_first_boot(id).await? else { return Ok(()) };
        let driver = self.driver_of(id).await?;
        let keys: Vec<String> = serde_json::from_str(&boot.ssh_keys).unwrap_or_default();
        let run = |script: String| {
            let driver = driver.clone();
            async move {
                let request =
                    roost_node::ExecRequest { cmd: vec!["/bin/sh".into(), "-c".into(), script], ..Default::default() };
                let mut session = driver.exec(id, request).await.map_err(crate::images::node_error)?;
                drop(session.stdin.take());
                // Nothing is kept: the script's output is the instance's (and unbounded).
                let (out, err) = (session.stdout.take(), session.stderr.take());
                let drain = |stream: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| async move {
                    if let Some(mut stream) = stream {
                        let _ = tokio::io::copy(&mut stream, &mut tokio::io::sink()).await;
                    }
                };
                tokio::join!(drain(out), drain(err));
                session.wait().await.map_err(crate::images::node_error)
            }
        };
        // One flat archive per directory: the container driver unpacks below a
        // directory it resolves itself, entries with parents would need it to follow
        // directories the instance made.
        let pack = |name: &str, content: &str, mode: u32| -> Result<Vec<u8>> {
            let mut tar = tar::Builder::new(Vec::new());
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(mode);
            // Every numeric field set: an unset one reads as "not a number" on unpack.
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, name, content.as_bytes())
                .map_err(|e| Error::internal(format!("packing first-boot files: {e}")))?;
            tar.into_inner().map_err(|e| Error::internal(format!("packing first-boot files: {e}")))
        };
        if !keys.is_empty() {
            run("mkdir -p /root/.ssh && chmod 700 /root/.ssh".into()).await?;
            let bytes = pack("authorized_keys", &format!("{}\n", keys.join("\n")), 0o600)?;
            driver
                .copy_in(id, "/root/.ssh", Box::new(std::io::Cursor::new(bytes)))
                .await
                .map_err(crate::images::node_error)?;
        }
        if let Some(script) = &boot.user_data {
            run("mkdir -p /root".into()).await?;
            let bytes = pack(".roost-user-data", script, 0o700)?;
            driver
                .copy_in(id, "/root", Box::new(std::io::Cursor::new(bytes)))
                .await
                .map_err(crate::images::node_error)?;
        }
        if boot.user_data.is_some() {
            run("sh /root/.roost-user-data >>/proc/1/fd/1 2>>/proc/1/fd/2; echo \"user-data exited with $?\" >>/proc/1/fd/1"
                .into())
            .await?;
        }
        self.store().first_boot_done(id, now_ms()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_have_stable_fingerprints() {
        let (line, blob, pem) = generate_ed25519("k").unwrap();
        let (normal, parsed) = parse_public_key(&line).unwrap();
        assert_eq!(normal, line);
        assert_eq!(parsed, blob);
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(fingerprint(&blob).starts_with("SHA256:"));
        assert!(parse_public_key("ssh-dss AAAA").is_err());
        assert!(parse_public_key("ssh-ed25519 !!!").is_err());
        // A blob of another type under this one's name.
        let (rsa_like, _) = ("ssh-rsa", ());
        let wrong = line.replacen("ssh-ed25519", rsa_like, 1);
        assert!(parse_public_key(&wrong).is_err());
    }
}
