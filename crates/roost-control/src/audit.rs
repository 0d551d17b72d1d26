//! The audit log: entries for every change (written in the change's transaction), for
//! every login, and for mutating requests that failed; listing, CSV export, chain
//! verification, and retention that archives old entries to a file.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::Ordering;

use roost_api::FieldError;
use roost_api::audit::{AuditEntry as ApiEntry, AuditQuery, AuditVerification};
use roost_api::ids::IdKind;
use roost_store::audit::{self, ArchiveRow, AuditEntry, AuditFilter, AuditRow};
use roost_store::{now_ms, to_time};
use sha2::{Digest, Sha256};

use crate::{Control, Error, Principal, RequestContext, Result};

/// Field names whose values never enter a digest (they are replaced first).
const SECRET_FIELDS: &[&str] = &["password", "secret", "token", "key", "csrf"];
/// The actor of what the server does on its own (bootstrap, a sandbox's TTL).
pub const SYSTEM_ACTOR: &str = "system";
const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An entry for a successful action.
pub fn entry(
    ctx: &RequestContext,
    (actor, actor_token): (String, Option<String>),
    action: &str,
    resource: Option<(&str, &str)>,
    body: Option<&serde_json::Value>,
) -> AuditEntry {
    AuditEntry {
        time: now_ms(),
        actor,
        actor_token,
        source: ctx.source.clone(),
        action: action.to_string(),
        resource_type: resource.map(|(t, _)| t.to_string()),
        resource_id: resource.map(|(_, id)| id.to_string()),
        result: "success".to_string(),
        request_id: ctx.request_id.clone(),
        body_digest: body.map(body_digest),
    }
}

/// Appends the entry of a successful action inside its transaction, and marks the
/// request as audited (through [`crate::kernel::Change::audit`], which knows the actor).
pub(crate) async fn record_as(
    conn: &mut roost_store::sqlx::AnyConnection,
    ctx: &RequestContext,
    actor: (String, Option<String>),
    action: &str,
    resource: Option<(&str, &str)>,
    body: Option<&serde_json::Value>,
) -> Result<()> {
    audit::append(conn, &entry(ctx, actor, action, resource, body)).await?;
    ctx.audited.store(true, Ordering::Relaxed);
    Ok(())
}

/// SHA-256 of the body's JSON after every secret-looking field is redacted.
pub fn body_digest(body: &serde_json::Value) -> String {
    let mut clean = body.clone();
    redact(&mut clean);
    hex::encode(Sha256::digest(clean.to_string().as_bytes()))
}

/// The digest of a raw request body: redacted JSON when it parses, else the bytes.
pub fn raw_body_digest(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    Some(match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(json) => body_digest(&json),
        Err(_) => hex::encode(Sha256::digest(bytes)),
    })
}

fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                let lower = k.to_ascii_lowercase();
                if SECRET_FIELDS.iter().any(|s| lower.contains(s)) {
                    *v = serde_json::Value::String("[redacted]".into());
                } else {
                    redact(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn to_api(row: &AuditRow) -> ApiEntry {
    ApiEntry {
        seq: row.seq,
        time: to_time(row.time),
        actor: row.actor.clone(),
        actor_name: None,
        actor_token: row.actor_token.clone(),
        source: row.source.clone(),
        action: row.action.clone(),
        resource_type: row.resource_type.clone(),
        resource_id: row.resource_id.clone(),
        result: row.result.clone(),
        request_id: row.request_id.clone(),
        body_digest: row.body_digest.clone(),
        prev_hash: row.prev_hash.clone(),
        hash: row.hash.clone(),
    }
}

/// `2026-11-22T10:00:00Z`, or a duration ago (`24h`, `7d`).
fn parse_time(field: &str, text: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.timestamp_millis());
    }
    match humantime::parse_duration(text) {
        Ok(d) => Ok(now_ms() - d.as_millis() as i64),
        Err(_) => Err(Error::validation(vec![FieldError {
            field: field.into(),
            message: format!("'{text}' is neither an RFC 3339 time nor a duration like 24h"),
        }])),
    }
}

/// Parsed filters, page size and cursor of an audit listing.
fn parse_query(q: &AuditQuery) -> Result<(AuditFilter, u32, Option<i64>)> {
    let filter = AuditFilter {
        actor: q.actor.clone().filter(|s| !s.is_empty()),
        action: q.action.clone().filter(|s| !s.is_empty()),
        resource: q.resource.clone().filter(|s| !s.is_empty()),
        since: q.since.as_deref().map(|s| parse_time("since", s)).transpose()?,
        until: q.until.as_deref().map(|s| parse_time("until", s)).transpose()?,
    };
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Error::validation(vec![FieldError {
            field: "limit".into(),
            message: "must be between 1 and 1000".into(),
        }]));
    }
    let before = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            Error::validation(vec![FieldError {
                field: "cursor".into(),
                message: "is not a cursor this server issued".into(),
            }])
        })?),
        None => None,
    };
    Ok((filter, limit, before))
}

impl Control {
    /// Appends an entry outside any other transaction (failed logins, failed mutations).
    /// Failure to audit is logged, never shown to the client.
    pub async fn audit_standalone(
        &self,
        ctx: &RequestContext,
        actor: &str,
        actor_token: Option<String>,
        action: &str,
        resource: Option<(&str, &str)>,
        result: &str,
    ) {
        self.audit_failure(ctx, actor, actor_token, action, resource, result, None).await
    }

    /// Records a mutating request that no service audited (it failed before the change).
    #[allow(clippy::too_many_arguments)]
    pub async fn audit_failure(
        &self,
        ctx: &RequestContext,
        actor: &str,
        actor_token: Option<String>,
        action: &str,
        resource: Option<(&str, &str)>,
        result: &str,
        body_digest: Option<String>,
    ) {
        let mut e = entry(ctx, (actor.to_string(), actor_token), action, resource, None);
        e.result = result.to_string();
        e.body_digest = body_digest;
        let write = async {
            let mut tx = self.store().write().await?;
            audit::append(tx.conn(), &e).await?;
            tx.commit().await
        };
        match write.await {
            Ok(()) => ctx.audited.store(true, Ordering::Relaxed),
            Err(err) => tracing::error!(error = %err, action, "could not append to the audit log"),
        }
    }

    /// Entries, newest first (admins). `next_cursor` continues to older entries.
    pub async fn list_audit(&self, p: &Principal, q: &AuditQuery) -> Result<roost_api::Page<ApiEntry>> {
        p.require_admin_read()?;
        let (mut filter, limit, before) = parse_query(q)?;
        filter.actor = self.actor_id(filter.actor).await?;
        let mut rows = self.store().list_audit(&filter, before, limit + 1).await?;
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.seq.to_string())
        } else {
            None
        };
        // Entries record ids (names change and are reused); people read names.
        let mut names: HashMap<String, Option<String>> = HashMap::new();
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut entry = to_api(row);
            if !names.contains_key(&row.actor) {
                let name = self.store().user_by_id(&row.actor).await?.map(|u| u.name);
                names.insert(row.actor.clone(), name);
            }
            entry.actor_name = names[&row.actor].clone();
            items.push(entry);
        }
        Ok(roost_api::Page { items, next_cursor })
    }

    /// `--actor` may name a user: entries record the id.
    async fn actor_id(&self, actor: Option<String>) -> Result<Option<String>> {
        let Some(actor) = actor else { return Ok(None) };
        Ok(Some(self.store().user_by_key(&actor).await?.map(|u| u.id).unwrap_or(actor)))
    }

    /// Every entry matching the filters, oldest first, as CSV (admins).
    pub async fn export_audit_csv(&self, p: &Principal, q: &AuditQuery) -> Result<Vec<u8>> {
        p.require_admin_read()?;
        let (mut filter, _, _) = parse_query(q)?;
        filter.actor = self.actor_id(filter.actor).await?;
        let mut rows = Vec::new();
        let mut before = None;
        loop {
            let page = self.store().list_audit(&filter, before, 1000).await?;
            let done = page.len() < 1000;
            before = page.last().map(|r| r.seq);
            rows.extend(page);
            if done {
                break;
            }
        }
        rows.reverse();
        let mut out = Vec::new();
        let _ = writeln!(
            out,
            "seq,time,actor,actor_token,source,action,resource_type,resource_id,result,request_id,body_digest,prev_hash,hash"
        );
        for r in &rows {
            let fields = [
                r.seq.to_string(),
                to_time(r.time).to_rfc3339(),
                r.actor.clone(),
                r.actor_token.clone().unwrap_or_default(),
                r.source.clone().unwrap_or_default(),
                r.action.clone(),
                r.resource_type.clone().unwrap_or_default(),
                r.resource_id.clone().unwrap_or_default(),
                r.result.clone(),
                r.request_id.clone().unwrap_or_default(),
                r.body_digest.clone().unwrap_or_default(),
                r.prev_hash.clone(),
                r.hash.clone(),
            ];
            let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
            let _ = writeln!(out, "{}", line.join(","));
        }
        Ok(out)
    }

    /// Walks the chain from the last archive cut (or the start) and reports the first
    /// entry that was altered, removed or moved (admins).
    pub async fn verify_audit(&self, p: &Principal) -> Result<AuditVerification> {
        p.require_admin_read()?;
        let archive = self.store().latest_audit_archive().await?;
        let starts_after = archive.as_ref().map_or(0, |a| a.last_seq);
        let mut prev_hash = archive.as_ref().map_or(ZERO_HASH.to_string(), |a| a.head_hash.clone());
        let mut expected_seq = starts_after + 1;
        let mut checked = 0u64;
        let broken = |seq: i64, reason: String, checked: u64| AuditVerification {
            ok: false,
            checked,
            starts_after,
            first_broken_seq: Some(seq),
            reason: Some(reason),
        };
        loop {
            let rows = self.store().audit_entries(expected_seq - 1, 1000).await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                if row.seq != expected_seq {
                    return Ok(broken(expected_seq, format!("entry {expected_seq} is missing"), checked));
                }
                if row.prev_hash != prev_hash {
                    return Ok(broken(
                        row.seq,
                        format!("entry {} does not link to the entry before it", row.seq),
                        checked,
                    ));
                }
                if audit::entry_hash(&row.prev_hash, row.seq, &row.entry()) != row.hash {
                    return Ok(broken(row.seq, format!("entry {} was altered", row.seq), checked));
                }
                prev_hash = row.hash.clone();
                expected_seq += 1;
                checked += 1;
            }
        }
        let (head_seq, head_hash) = self.store().audit_head().await?;
        if head_seq >= expected_seq {
            return Ok(broken(expected_seq, format!("entries {expected_seq} to {head_seq} were removed"), checked));
        }
        if head_seq == expected_seq - 1 && head_seq > starts_after && head_hash != prev_hash {
            return Ok(broken(head_seq, format!("entry {head_seq} does not match the chain head"), checked));
        }
        Ok(AuditVerification { ok: true, checked, starts_after, first_broken_seq: None, reason: None })
    }

    /// Moves entries older than the retention to `<data-dir>/audit-archive/` (JSON lines,
    /// fsynced before removal) and records the cut, so verification continues from it.
    pub async fn apply_audit_retention(&self) -> Result<()> {
        let Some(retention) = self.settings().audit_retention else { return Ok(()) };
        let cutoff = now_ms() - retention.as_millis() as i64;
        let mut old = Vec::new();
        let mut after = self.store().latest_audit_archive().await?.map_or(0, |a| a.last_seq);
        loop {
            let rows = self.store().audit_entries(after, 1000).await?;
            let before = old.len();
            for row in rows.iter().take_while(|r| r.time < cutoff) {
                old.push(row.clone());
            }
            if old.len() - before < 1000 || rows.len() < 1000 {
                break;
            }
            after = old.last().map_or(after, |r| r.seq);
        }
        let (Some(first), Some(last)) = (old.first(), old.last()) else { return Ok(()) };
        let dir = self.settings().data_dir.join("audit-archive");
        let path = dir.join(format!("audit-{:012}-{:012}.jsonl", first.seq, last.seq));
        let lines: Vec<u8> = old
            .iter()
            .flat_map(|r| {
                let mut line = serde_json::to_vec(&to_api(r)).unwrap_or_default();
                line.push(b'\n');
                line
            })
            .collect();
        let write = {
            let (dir, path) = (dir.clone(), path.clone());
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                std::fs::create_dir_all(&dir)?;
                let tmp = path.with_extension("jsonl.tmp");
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(&lines)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(&dir)?.sync_all()
            })
        };
        write
            .await
            .map_err(|e| Error::internal(e.to_string()))?
            .map_err(|e| Error::internal(format!("cannot write the audit archive {}: {e}", path.display())))?;
        let row = ArchiveRow {
            id: IdKind::Operation.generate().replacen("op-", "arc-", 1),
            created_at: now_ms(),
            path: path.display().to_string(),
            first_seq: first.seq,
            last_seq: last.seq,
            head_hash: last.hash.clone(),
        };
        let mut tx = self.store().write().await?;
        let removed = audit::archive(tx.conn(), &row).await?;
        tx.commit().await?;
        tracing::info!(path = %path.display(), entries = removed, "archived old audit entries");
        Ok(())
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_ignore_secret_values() {
        let a = serde_json::json!({"username": "admin", "password": "one"});
        let b = serde_json::json!({"username": "admin", "password": "two"});
        let c = serde_json::json!({"username": "other", "password": "one"});
        assert_eq!(body_digest(&a), body_digest(&b));
        assert_ne!(body_digest(&a), body_digest(&c));
        let nested = serde_json::json!({"items": [{"api_key": "x"}]});
        let mut n = nested.clone();
        redact(&mut n);
        assert_eq!(n["items"][0]["api_key"], "[redacted]");
        assert_eq!(raw_body_digest(b""), None);
        assert_eq!(raw_body_digest(br#"{"password":"x"}"#), raw_body_digest(br#"{"password":"y"}"#));
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }

    #[test]
    fn times_parse_as_rfc3339_or_durations_ago() {
        assert_eq!(parse_time("since", "2026-01-01T00:00:00Z").unwrap(), 1_767_225_600_000);
        let ago = parse_time("since", "1h").unwrap();
        assert!((now_ms() - ago - 3_600_000).abs() < 5_000);
        assert_eq!(parse_time("since", "yesterday").unwrap_err().details[0].field, "since");
    }
}
