//! Optimistic concurrency for every resource, in one place. A resource's version is the
//! entity tag of its API representation (`roost_api::etag_of`, the tag the HTTP layer
//! puts on every GET), so it covers everything a reader saw: fields and state alike. An
//! update or delete sent with `If-Match` applies only while that tag is current, and the
//! check runs inside the [`Change`]'s write transaction after locking the row, so no
//! other change can slip in between the check and the write.

use std::future::Future;

use roost_api::ErrorCode;
use serde::Serialize;

use super::Change;
use crate::{Error, Result};

/// Fails with 412 unless `if_match` admits the entity tag of `current`.
pub fn check_precondition<T: Serialize>(if_match: &str, current: &T) -> Result<()> {
    let etag = roost_api::etag_of(current);
    if roost_api::if_match_admits(if_match, &etag) {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::PreconditionFailed,
        format!("it changed since you read it (If-Match {if_match}, current ETag {etag}); read it again"),
    ))
}

impl Change<'_> {
    /// Before the change's writes: when the request carried `If-Match`, locks the
    /// resource's row (`table`, `id`) and compares the tag with that of `current`, the
    /// representation a GET would answer now (the same function the GET uses). Without
    /// `If-Match` it does nothing (`current` is not even run).
    pub(crate) async fn check_if_match<T, F>(
        &mut self,
        table: &'static str,
        id: &str,
        if_match: Option<&str>,
        current: F,
    ) -> Result<()>
    where
        T: Serialize,
        F: Future<Output = Result<T>>,
    {
        let Some(if_match) = if_match else { return Ok(()) };
        // Locked first: from here on the row changes only through this change, so the
        // representation read next is the one the write applies to.
        self.tx.lock_row(table, id).await?;
        check_precondition(if_match, &current.await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions_compare_the_representation() {
        let v = serde_json::json!({"name": "web", "labels": {}});
        let tag = roost_api::etag_of(&v);
        assert!(check_precondition(&tag, &v).is_ok());
        assert!(check_precondition("*", &v).is_ok());
        let err = check_precondition("\"0000\"", &v).unwrap_err();
        assert_eq!(err.code, ErrorCode::PreconditionFailed);
        assert_eq!(err.code.status(), 412);
    }
}
