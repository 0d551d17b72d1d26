//! Keyset pagination: a page ends with a cursor naming the sort value and id of its last
//! row, so the next page starts strictly after it whatever was inserted meanwhile.

use data_encoding::BASE64URL_NOPAD;
use serde::{Deserialize, Serialize};

use crate::{Result, StoreError};

/// A sortable column of a resource's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// The API name of the field (also the column name).
    pub field: &'static str,
    pub text: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum CursorValue {
    Int(i64),
    Text(String),
}

/// What a cursor carries: the sort it belongs to, and the last row's key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: String,
    #[serde(rename = "v")]
    pub value: CursorValue,
    #[serde(rename = "i")]
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        BASE64URL_NOPAD.encode(&serde_json::to_vec(self).expect("cursor serializes"))
    }

    pub fn decode(s: &str) -> Result<Cursor> {
        let bytes = BASE64URL_NOPAD.decode(s.as_bytes()).map_err(|_| StoreError::InvalidCursor)?;
        serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)
    }
}

/// A validated list request, ready for SQL.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: u32,
    pub sort: SortKey,
    pub descending: bool,
    pub after: Option<Cursor>,
    /// A SQL LIKE pattern (already escaped with `\`).
    pub name_like: Option<String>,
}

/// A value bound to a query, in order.
#[derive(Debug, Clone)]
pub enum Bind {
    Int(i64),
    Text(String),
}

impl ListQuery {
    /// The sort as the API spells it (`-created_at`).
    pub fn sort_spec(&self) -> String {
        format!("{}{}", if self.descending { "-" } else { "" }, self.sort.field)
    }

    /// Appends the name filter, the keyset condition, ORDER BY and LIMIT to `sql`, whose
    /// WHERE clause already has `binds.len()` parameters. Fetches one row more than the
    /// limit, to know whether a next page exists.
    pub fn apply(&self, sql: &mut String, binds: &mut Vec<Bind>) -> Result<()> {
        if let Some(pattern) = &self.name_like {
            binds.push(Bind::Text(pattern.clone()));
            sql.push_str(&format!(" AND name LIKE ${} ESCAPE '\\'", binds.len()));
        }
        if let Some(cursor) = &self.after {
            if cursor.sort != self.sort_spec() {
                return Err(StoreError::InvalidCursor);
            }
            let value = match (&cursor.value, self.sort.text) {
                (CursorValue::Int(v), false) => Bind::Int(*v),
                (CursorValue::Text(v), true) => Bind::Text(v.clone()),
                _ => return Err(StoreError::InvalidCursor),
            };
            binds.push(value);
            let v = binds.len();
            binds.push(Bind::Text(cursor.id.clone()));
            let i = binds.len();
            let op = if self.descending { "<" } else { ">" };
            let col = self.sort.field;
            sql.push_str(&format!(" AND ({col} {op} ${v} OR ({col} = ${v} AND id {op} ${i}))"));
        }
        let dir = if self.descending { "DESC" } else { "ASC" };
        sql.push_str(&format!(" ORDER BY {} {dir}, id {dir} LIMIT {}", self.sort.field, self.limit as u64 + 1));
        Ok(())
    }

    /// Trims the extra row and makes the next cursor from the last row kept.
    pub fn finish<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> (CursorValue, String)) -> (Vec<T>, Option<String>) {
        if rows.len() <= self.limit as usize {
            return (rows, None);
        }
        rows.truncate(self.limit as usize);
        let next = rows.last().map(|last| {
            let (value, id) = key(last);
            Cursor { sort: self.sort_spec(), value, id }.encode()
        });
        (rows, next)
    }
}

impl crate::Store {
    /// One page of `inner`, a SELECT (with its `binds`, tenancy and filters already in
    /// it) whose rows carry `id` and the columns the query may sort by. It runs as a
    /// derived table, so joins inside it cannot make the keyset's columns ambiguous;
    /// `key` gives a row's sort value and id for the next cursor.
    pub async fn page<T>(
        &self,
        inner: &str,
        mut binds: Vec<Bind>,
        query: &ListQuery,
        key: impl Fn(&T) -> (CursorValue, String),
    ) -> Result<(Vec<T>, Option<String>)>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let mut sql = format!("SELECT * FROM ({inner}) AS page WHERE 1 = 1");
        query.apply(&mut sql, &mut binds)?;
        let rows: Vec<T> =
            bind_all(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?;
        Ok(query.finish(rows, key))
    }
}

impl crate::Store {
    /// The rows of `sql`, whose `{ids}` becomes the placeholders of `ids` (none: no query).
    /// How a listing reads what its page's rows refer to in one query for the page.
    pub async fn by_ids<T>(&self, sql: &str, ids: &[String]) -> Result<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = sql.replace("{ids}", &placeholders(1, ids.len()));
        let binds: Vec<Bind> = ids.iter().map(|i| Bind::Text(i.clone())).collect();
        Ok(bind_all(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }
}

/// The cursor key of a row sorted by `created_at` (default) or `name`.
pub fn key_by_created_or_name(field: &str, created_at: i64, name: &str, id: &str) -> (CursorValue, String) {
    match field {
        "name" => (CursorValue::Text(name.to_string()), id.to_string()),
        _ => (CursorValue::Int(created_at), id.to_string()),
    }
}

/// `$first, $first+1, …` for an `IN (…)` of `n` values.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The sort keys most collections offer: newest first by default, or by name.
pub const CREATED_OR_NAME: &[SortKey] =
    &[SortKey { field: "created_at", text: false }, SortKey { field: "name", text: true }];

/// Turns an API glob (`web*`) into a LIKE pattern, escaping LIKE's own wildcards.
pub fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 2);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Binds `binds` to a query in order.
pub fn bind_all<'q, O>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    binds: &'q [Bind],
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    for bind in binds {
        query = match bind {
            Bind::Int(v) => query.bind(*v),
            Bind::Text(v) => query.bind(v.as_str()),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor { sort: "-created_at".into(), value: CursorValue::Int(42), id: "tok-x".into() };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not a cursor").is_err());
    }

    #[test]
    fn globs_escape_like_wildcards() {
        assert_eq!(glob_to_like("web*"), "web%");
        assert_eq!(glob_to_like("a_b%c"), "a\\_b\\%c");
    }

    #[test]
    fn keyset_clause_matches_direction() {
        let q = ListQuery {
            limit: 2,
            sort: SortKey { field: "created_at", text: false },
            descending: true,
            after: Some(Cursor { sort: "-created_at".into(), value: CursorValue::Int(5), id: "a".into() }),
            name_like: None,
        };
        let mut sql = String::from("SELECT * FROM t WHERE user_id = $1");
        let mut binds = vec![Bind::Text("u".into())];
        q.apply(&mut sql, &mut binds).unwrap();
        assert!(sql.contains("(created_at < $2 OR (created_at = $2 AND id < $3))"), "{sql}");
        assert!(sql.ends_with("ORDER BY created_at DESC, id DESC LIMIT 3"), "{sql}");
        let wrong = ListQuery { descending: false, ..q };
        assert!(wrong.apply(&mut String::new(), &mut Vec::new()).is_err());
    }
}

/// Which projects a query may return rows from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    /// Every project (admins).
    All,
    /// Projects the user is a member of.
    MemberOf(String),
    /// One project (tokens restricted to it).
    One(String),
}

impl ProjectScope {
    /// Appends ` AND <column> IN (...)` for the scope to a WHERE clause.
    pub fn apply(&self, sql: &mut String, binds: &mut Vec<Bind>, column: &str) {
        match self {
            ProjectScope::All => {}
            ProjectScope::MemberOf(user) => {
                binds.push(Bind::Text(user.clone()));
                sql.push_str(&format!(
                    " AND {column} IN (SELECT project_id FROM project_members WHERE user_id = ${})",
                    binds.len()
                ));
            }
            ProjectScope::One(project) => {
                binds.push(Bind::Text(project.clone()));
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
    }
}
