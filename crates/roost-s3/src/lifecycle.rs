//! Lifecycle configuration as S3's XML speaks it: the rules themselves, and their
//! application, are the object service's (`roost_control::objects::lifecycle`).

use roost_control::objects::lifecycle::Rule;
use s3s::dto::*;
use s3s::{S3Result, s3_error};

pub fn from_dto(r: LifecycleRule) -> S3Result<Rule> {
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_expiration.is_some()
        || r.noncurrent_version_transitions.as_ref().is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "only Expiration (Days) and AbortIncompleteMultipartUpload are supported"
        ));
    }
    let filter = r.filter.as_ref();
    if filter
        .is_some_and(|f| f.tag.is_some() || f.object_size_greater_than.is_some() || f.object_size_less_than.is_some())
    {
        return Err(s3_error!(NotImplemented, "lifecycle filters by prefix only"));
    }
    let prefix = filter
        .and_then(|f| f.prefix.clone().or_else(|| f.and.as_ref().and_then(|a| a.prefix.clone())))
        .or(r.prefix.clone())
        .unwrap_or_default();
    let expiration_days = match &r.expiration {
        Some(e) if e.date.is_some() => {
            return Err(s3_error!(NotImplemented, "expiration by date is not supported; use Days"));
        }
        Some(e) => e.days,
        None => None,
    };
    let abort_incomplete_days = r.abort_incomplete_multipart_upload.as_ref().and_then(|a| a.days_after_initiation);
    if expiration_days.is_some_and(|d| d < 1) || abort_incomplete_days.is_some_and(|d| d < 1) {
        return Err(s3_error!(InvalidArgument, "days must be positive"));
    }
    Ok(Rule {
        id: r.id,
        enabled: r.status.as_str() == ExpirationStatus::ENABLED,
        prefix,
        expiration_days,
        abort_incomplete_days,
    })
}

pub fn to_dto(rule: &Rule) -> LifecycleRule {
    LifecycleRule {
        id: rule.id.clone(),
        status: ExpirationStatus::from(
            if rule.enabled { ExpirationStatus::ENABLED } else { ExpirationStatus::DISABLED }.to_string(),
        ),
        filter: Some(LifecycleRuleFilter { prefix: Some(rule.prefix.clone()), ..Default::default() }),
        expiration: rule.expiration_days.map(|d| LifecycleExpiration { days: Some(d), ..Default::default() }),
        abort_incomplete_multipart_upload: rule
            .abort_incomplete_days
            .map(|d| AbortIncompleteMultipartUpload { days_after_initiation: Some(d) }),
        noncurrent_version_expiration: None,
        noncurrent_version_transitions: None,
        prefix: None,
        transitions: None,
    }
}
