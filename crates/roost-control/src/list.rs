//! Turning the API's list parameters into a validated store query.

use roost_api::ListParams;
use roost_api::list::{DEFAULT_LIMIT, MAX_LIMIT};
use roost_store::list::glob_to_like;
use roost_store::{Cursor, ListQuery, SortKey};

use crate::error::Validator;
use crate::{Error, Result};

/// Validates `params` against the resource's sortable fields (the first is the default,
/// descending).
pub fn list_query(params: &ListParams, sort_keys: &[SortKey]) -> Result<ListQuery> {
    let mut v = Validator::default();
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    v.check((1..=MAX_LIMIT).contains(&limit), "limit", format!("must be between 1 and {MAX_LIMIT}"));
    let (descending, field) = match params.sort.as_deref() {
        None => (true, sort_keys[0].field),
        Some(s) => match s.strip_prefix('-') {
            Some(f) => (true, f),
            None => (false, s),
        },
    };
    let sort = sort_keys.iter().find(|k| k.field == field).copied();
    if sort.is_none() {
        let allowed: Vec<_> = sort_keys.iter().map(|k| k.field).collect();
        v.add(
            "sort",
            format!("unknown field '{field}'; sort by one of: {} (prefix '-' for descending)", allowed.join(", ")),
        );
    }
    let after = match params.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => match Cursor::decode(c) {
            Ok(cursor) => Some(cursor),
            Err(_) => {
                v.add("cursor", "is not a cursor this server issued");
                None
            }
        },
        None => None,
    };
    if let Some(name) = &params.name {
        v.check(name.len() <= 255, "name", "filter is longer than 255 characters");
    }
    v.finish()?;
    let query = ListQuery {
        limit,
        sort: sort.ok_or_else(|| Error::internal("sort key"))?,
        descending,
        after,
        name_like: params.name.as_deref().filter(|n| !n.is_empty()).map(glob_to_like),
    };
    Ok(query)
}

/// `params` sorted by name when they name no order: for the collections listed by name
/// before they paged (images, buckets, members), whose order is kept.
pub fn by_name_unless_sorted(params: &ListParams) -> ListParams {
    ListParams { sort: params.sort.clone().or_else(|| Some("name".into())), ..params.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[SortKey] = &[SortKey { field: "created_at", text: false }, SortKey { field: "name", text: true }];

    #[test]
    fn defaults_and_errors() {
        let q = list_query(&ListParams::default(), KEYS).unwrap();
        assert_eq!((q.limit, q.sort.field, q.descending), (100, "created_at", true));
        let q = list_query(&ListParams { sort: Some("name".into()), ..Default::default() }, KEYS).unwrap();
        assert!(!q.descending);
        let err = list_query(&ListParams { limit: Some(0), sort: Some("size".into()), ..Default::default() }, KEYS)
            .unwrap_err();
        assert_eq!(err.details.len(), 2);
        assert!(err.details[1].message.contains("created_at, name"));
    }
}
