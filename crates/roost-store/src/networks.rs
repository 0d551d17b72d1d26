//! Networks, peerings, instance NICs (the IPAM), security groups and port forwards.
//!
//! Address uniqueness is the database's job: `UNIQUE (network_id, ip)` on
//! `instance_nics` means two concurrent creates can never hold one address, whatever
//! the allocator thought; the loser's insert fails and it picks again.

use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use crate::list::{
    Bind, CursorValue, ListQuery, ProjectScope, SortKey, bind_all, key_by_created_or_name, placeholders,
};
use crate::{Result, Store, StoreError};

#[derive(Debug, Clone, FromRow)]
pub struct NetworkRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub cidr: String,
    pub gateway: String,
    pub bridge: String,
    pub nat: i64,
    pub dns: i64,
    pub is_default: i64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const NETWORK_COLUMNS: &str =
    "id, project_id, name, cidr, gateway, bridge, nat, dns, is_default, created_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow, PartialEq, Eq)]
pub struct NicRow {
    pub instance_id: String,
    pub network_id: String,
    pub idx: i64,
    pub ip: String,
    pub mac: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct SecurityGroupRow {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: Option<String>,
    pub is_default: i64,
    pub created_by: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const SG_COLUMNS: &str = "id, project_id, name, description, is_default, created_by, created_at, updated_at";

#[derive(Debug, Clone, FromRow)]
pub struct RuleRow {
    pub id: String,
    pub group_id: String,
    pub direction: String,
    pub protocol: String,
    pub ports: Option<String>,
    pub cidr: Option<String>,
    pub remote_group_id: Option<String>,
    pub description: Option<String>,
    pub created_at: i64,
}

const RULE_COLUMNS: &str = "id, group_id, direction, protocol, ports, cidr, remote_group_id, description, created_at";

#[derive(Debug, Clone, FromRow)]
pub struct PortForwardRow {
    pub id: String,
    pub project_id: String,
    pub instance_id: String,
    pub host_port: i64,
    pub instance_port: i64,
    pub protocol: String,
    pub created_by: Option<String>,
    pub created_at: i64,
}

const PF_COLUMNS: &str = "id, project_id, instance_id, host_port, instance_port, protocol, created_by, created_at";

/// A port forward with its instance's name and address, for the API.
#[derive(Debug, Clone, FromRow)]
pub struct PortForwardView {
    pub id: String,
    pub project_id: String,
    pub instance_id: String,
    pub host_port: i64,
    pub instance_port: i64,
    pub protocol: String,
    pub created_at: i64,
    pub instance_name: Option<String>,
    pub instance_ip: Option<String>,
}

const PF_VIEW: &str = "SELECT f.id, f.project_id, f.instance_id, f.host_port, f.instance_port, f.protocol, \
                       f.created_at, i.name AS instance_name, i.ip AS instance_ip \
                       FROM port_forwards f LEFT JOIN instances i ON i.id = f.instance_id WHERE 1 = 1";

/// Port forwards sort by creation (default) or host port.
pub const PORT_FORWARD_SORT_KEYS: &[SortKey] =
    &[SortKey { field: "created_at", text: false }, SortKey { field: "host_port", text: false }];

/// What a network shows besides its row: peer names and the NICs on it.
#[derive(Debug, Default)]
pub struct NetworkDetails {
    /// (network id, peer name), sorted by name.
    pub peers: Vec<(String, String)>,
    /// (network id, NICs).
    pub nics: Vec<(String, i64)>,
}

/// What a security group shows besides its row: rules, members and group names.
#[derive(Debug, Default)]
pub struct GroupDetails {
    pub rules: Vec<RuleRow>,
    /// (group id, member instances).
    pub members: Vec<(String, i64)>,
    /// (group id, name) of the groups rules refer to.
    pub remote_names: Vec<(String, String)>,
}

// ---- networks ----

pub async fn insert_network(conn: &mut AnyConnection, n: &NetworkRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO networks ({NETWORK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    )))
    .bind(&n.id)
    .bind(&n.project_id)
    .bind(&n.name)
    .bind(&n.cidr)
    .bind(&n.gateway)
    .bind(&n.bridge)
    .bind(n.nat)
    .bind(n.dns)
    .bind(n.is_default)
    .bind(&n.created_by)
    .bind(n.created_at)
    .bind(n.updated_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_network(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    sqlx::query("DELETE FROM network_peers WHERE network_a = $1 OR network_b = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("DELETE FROM networks WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

/// Turns NAT and the network's DNS on or off.
pub async fn set_network_flags(conn: &mut AnyConnection, id: &str, nat: bool, dns: bool, now: i64) -> Result<()> {
    sqlx::query("UPDATE networks SET nat = $2, dns = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(nat as i64)
        .bind(dns as i64)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn set_group_description(
    conn: &mut AnyConnection,
    id: &str,
    description: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE security_groups SET description = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(description)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn networks_of_project(conn: &mut AnyConnection, project_id: &str) -> Result<Vec<NetworkRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {NETWORK_COLUMNS} FROM networks WHERE project_id = $1 ORDER BY created_at, id"
    )))
    .bind(project_id)
    .fetch_all(conn)
    .await?)
}

/// Every network's CIDR (for picking a free default range).
pub async fn all_cidrs(conn: &mut AnyConnection) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT cidr FROM networks").fetch_all(conn).await?)
}

pub async fn network_by_name(conn: &mut AnyConnection, project_id: &str, name: &str) -> Result<Option<NetworkRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {NETWORK_COLUMNS} FROM networks WHERE project_id = $1 AND (name = $2 OR id = $2)"
    )))
    .bind(project_id)
    .bind(name)
    .fetch_optional(conn)
    .await?)
}

fn ordered<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a <= b { (a, b) } else { (b, a) }
}

/// Peers two networks; false when they already were.
pub async fn insert_peer(conn: &mut AnyConnection, a: &str, b: &str, now: i64) -> Result<bool> {
    let (a, b) = ordered(a, b);
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM network_peers WHERE network_a = $1 AND network_b = $2")
        .bind(a)
        .bind(b)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_some() {
        return Ok(false);
    }
    sqlx::query("INSERT INTO network_peers (network_a, network_b, created_at) VALUES ($1, $2, $3)")
        .bind(a)
        .bind(b)
        .bind(now)
        .execute(conn)
        .await
        .map_err(StoreError::from_write)?;
    Ok(true)
}

pub async fn delete_peer(conn: &mut AnyConnection, a: &str, b: &str) -> Result<bool> {
    let (a, b) = ordered(a, b);
    let done = sqlx::query("DELETE FROM network_peers WHERE network_a = $1 AND network_b = $2")
        .bind(a)
        .bind(b)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

// ---- NICs ----

pub async fn insert_nic(conn: &mut AnyConnection, nic: &NicRow) -> Result<()> {
    sqlx::query(
        "INSERT INTO instance_nics (instance_id, network_id, idx, ip, mac, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&nic.instance_id)
    .bind(&nic.network_id)
    .bind(nic.idx)
    .bind(&nic.ip)
    .bind(&nic.mac)
    .bind(nic.created_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_nic(conn: &mut AnyConnection, instance_id: &str, network_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM instance_nics WHERE instance_id = $1 AND network_id = $2")
        .bind(instance_id)
        .bind(network_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn nics_of(conn: &mut AnyConnection, instance_id: &str) -> Result<Vec<NicRow>> {
    Ok(sqlx::query_as(
        "SELECT instance_id, network_id, idx, ip, mac, created_at FROM instance_nics WHERE instance_id = $1 ORDER BY idx",
    )
    .bind(instance_id)
    .fetch_all(conn)
    .await?)
}

/// The addresses taken on a network.
pub async fn ips_on(conn: &mut AnyConnection, network_id: &str) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar("SELECT ip FROM instance_nics WHERE network_id = $1")
        .bind(network_id)
        .fetch_all(conn)
        .await?)
}

pub async fn nic_count(conn: &mut AnyConnection, network_id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM instance_nics WHERE network_id = $1")
        .bind(network_id)
        .fetch_one(conn)
        .await?)
}

// ---- security groups ----

pub async fn insert_group(conn: &mut AnyConnection, g: &SecurityGroupRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO security_groups ({SG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )))
    .bind(&g.id)
    .bind(&g.project_id)
    .bind(&g.name)
    .bind(&g.description)
    .bind(g.is_default)
    .bind(&g.created_by)
    .bind(g.created_at)
    .bind(g.updated_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_group(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    sqlx::query("DELETE FROM security_group_rules WHERE group_id = $1").bind(id).execute(&mut *conn).await?;
    let done = sqlx::query("DELETE FROM security_groups WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

pub async fn group_by_name(conn: &mut AnyConnection, project_id: &str, key: &str) -> Result<Option<SecurityGroupRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SG_COLUMNS} FROM security_groups WHERE project_id = $1 AND (name = $2 OR id = $2)"
    )))
    .bind(project_id)
    .bind(key)
    .fetch_optional(conn)
    .await?)
}

pub async fn groups_of_project(conn: &mut AnyConnection, project_id: &str) -> Result<Vec<SecurityGroupRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {SG_COLUMNS} FROM security_groups WHERE project_id = $1 ORDER BY created_at, id"
    )))
    .bind(project_id)
    .fetch_all(conn)
    .await?)
}

pub async fn insert_rule(conn: &mut AnyConnection, r: &RuleRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO security_group_rules ({RULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    )))
    .bind(&r.id)
    .bind(&r.group_id)
    .bind(&r.direction)
    .bind(&r.protocol)
    .bind(&r.ports)
    .bind(&r.cidr)
    .bind(&r.remote_group_id)
    .bind(&r.description)
    .bind(r.created_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_rule(conn: &mut AnyConnection, group_id: &str, rule_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM security_group_rules WHERE group_id = $1 AND id = $2")
        .bind(group_id)
        .bind(rule_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

pub async fn rules_of(conn: &mut AnyConnection, group_id: &str) -> Result<Vec<RuleRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {RULE_COLUMNS} FROM security_group_rules WHERE group_id = $1 ORDER BY created_at, id"
    )))
    .bind(group_id)
    .fetch_all(conn)
    .await?)
}

/// Rules in other groups that name `group_id` as their source or destination.
pub async fn rules_referencing(conn: &mut AnyConnection, group_id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM security_group_rules WHERE remote_group_id = $1 AND group_id <> $1")
        .bind(group_id)
        .fetch_one(conn)
        .await?)
}

pub async fn member_count(conn: &mut AnyConnection, group_id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM instance_security_groups WHERE group_id = $1")
        .bind(group_id)
        .fetch_one(conn)
        .await?)
}

pub async fn set_instance_groups(conn: &mut AnyConnection, instance_id: &str, group_ids: &[String]) -> Result<()> {
    sqlx::query("DELETE FROM instance_security_groups WHERE instance_id = $1")
        .bind(instance_id)
        .execute(&mut *conn)
        .await?;
    for g in group_ids {
        sqlx::query("INSERT INTO instance_security_groups (instance_id, group_id) VALUES ($1, $2)")
            .bind(instance_id)
            .bind(g)
            .execute(&mut *conn)
            .await
            .map_err(StoreError::from_write)?;
    }
    Ok(())
}

pub async fn groups_of_instance(conn: &mut AnyConnection, instance_id: &str) -> Result<Vec<SecurityGroupRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {} FROM security_groups g JOIN instance_security_groups m ON m.group_id = g.id \
         WHERE m.instance_id = $1 ORDER BY g.name",
        SG_COLUMNS.split(", ").map(|c| format!("g.{c}")).collect::<Vec<_>>().join(", ")
    )))
    .bind(instance_id)
    .fetch_all(conn)
    .await?)
}

// ---- port forwards ----

pub async fn insert_port_forward(conn: &mut AnyConnection, f: &PortForwardRow) -> Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO port_forwards ({PF_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )))
    .bind(&f.id)
    .bind(&f.project_id)
    .bind(&f.instance_id)
    .bind(f.host_port)
    .bind(f.instance_port)
    .bind(&f.protocol)
    .bind(&f.created_by)
    .bind(f.created_at)
    .execute(conn)
    .await
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn delete_port_forward(conn: &mut AnyConnection, id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM port_forwards WHERE id = $1").bind(id).execute(conn).await?;
    Ok(done.rows_affected() > 0)
}

pub async fn port_forwards_of(conn: &mut AnyConnection, instance_id: &str) -> Result<Vec<PortForwardRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {PF_COLUMNS} FROM port_forwards WHERE instance_id = $1 ORDER BY host_port, protocol"
    )))
    .bind(instance_id)
    .fetch_all(conn)
    .await?)
}

pub async fn port_forward_on(
    conn: &mut AnyConnection,
    host_port: i64,
    protocol: &str,
) -> Result<Option<PortForwardRow>> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {PF_COLUMNS} FROM port_forwards WHERE host_port = $1 AND protocol = $2"
    )))
    .bind(host_port)
    .bind(protocol)
    .fetch_optional(conn)
    .await?)
}

/// Everything the firewall is compiled from, read in one go.
#[derive(Debug, Default)]
pub struct FirewallState {
    pub networks: Vec<NetworkRow>,
    pub peers: Vec<(String, String)>,
    pub nics: Vec<NicRow>,
    pub groups: Vec<SecurityGroupRow>,
    pub rules: Vec<RuleRow>,
    pub memberships: Vec<(String, String)>,
    pub port_forwards: Vec<PortForwardRow>,
    /// Instance id → name, for DNS.
    pub instance_names: Vec<(String, String)>,
}

/// A NIC with its network's name, for instance views.
#[derive(Debug, Clone, FromRow)]
pub struct NicView {
    pub instance_id: String,
    pub idx: i64,
    pub ip: String,
    pub mac: String,
    pub network_id: String,
    pub network: String,
}

impl Store {
    /// The NICs and group names of these instances, in two queries (for lists).
    pub async fn network_views(&self, instance_ids: &[String]) -> Result<(Vec<NicView>, Vec<(String, String)>)> {
        let mut conn = self.pool().acquire().await?;
        network_views_in(&mut conn, instance_ids).await
    }

    pub async fn all_project_ids(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar("SELECT id FROM projects ORDER BY created_at").fetch_all(self.pool()).await?)
    }

    pub async fn firewall_state(&self) -> Result<FirewallState> {
        let pool = self.pool();
        Ok(FirewallState {
            networks: sqlx::query_as(AssertSqlSafe(format!("SELECT {NETWORK_COLUMNS} FROM networks ORDER BY id")))
                .fetch_all(pool)
                .await?,
            peers: sqlx::query_as("SELECT network_a, network_b FROM network_peers").fetch_all(pool).await?,
            nics: sqlx::query_as("SELECT instance_id, network_id, idx, ip, mac, created_at FROM instance_nics")
                .fetch_all(pool)
                .await?,
            groups: sqlx::query_as(AssertSqlSafe(format!("SELECT {SG_COLUMNS} FROM security_groups ORDER BY id")))
                .fetch_all(pool)
                .await?,
            rules: sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {RULE_COLUMNS} FROM security_group_rules ORDER BY created_at, id"
            )))
            .fetch_all(pool)
            .await?,
            memberships: sqlx::query_as("SELECT instance_id, group_id FROM instance_security_groups")
                .fetch_all(pool)
                .await?,
            port_forwards: sqlx::query_as(AssertSqlSafe(format!("SELECT {PF_COLUMNS} FROM port_forwards")))
                .fetch_all(pool)
                .await?,
            instance_names: sqlx::query_as("SELECT id, name FROM instances").fetch_all(pool).await?,
        })
    }

    pub async fn network_by_id(&self, id: &str) -> Result<Option<NetworkRow>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("SELECT {NETWORK_COLUMNS} FROM networks WHERE id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// A page of networks in scope (optionally of one project).
    pub async fn networks_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<NetworkRow>, Option<String>)> {
        let (sql, binds) =
            scoped_sql(&format!("SELECT {NETWORK_COLUMNS} FROM networks WHERE 1 = 1"), scope, project, "project_id");
        self.page(&sql, binds, query, |r: &NetworkRow| {
            key_by_created_or_name(query.sort.field, r.created_at, &r.name, &r.id)
        })
        .await
    }

    /// Peers and NIC counts of these networks, in two queries whatever their number.
    pub async fn network_details(&self, ids: &[String]) -> Result<NetworkDetails> {
        let mut conn = self.pool().acquire().await?;
        network_details_in(&mut conn, ids).await
    }

    /// A page of security groups in scope (optionally of one project).
    pub async fn groups_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<SecurityGroupRow>, Option<String>)> {
        let (sql, binds) =
            scoped_sql(&format!("SELECT {SG_COLUMNS} FROM security_groups WHERE 1 = 1"), scope, project, "project_id");
        self.page(&sql, binds, query, |r: &SecurityGroupRow| {
            key_by_created_or_name(query.sort.field, r.created_at, &r.name, &r.id)
        })
        .await
    }

    /// Rules, member counts and referenced group names of these groups, in three queries.
    pub async fn group_details(&self, ids: &[String]) -> Result<GroupDetails> {
        let mut conn = self.pool().acquire().await?;
        group_details_in(&mut conn, ids).await
    }

    /// A page of port forwards in scope, optionally of one project and one instance.
    pub async fn port_forwards_page(
        &self,
        scope: &ProjectScope,
        project: Option<&str>,
        instance: Option<&str>,
        query: &ListQuery,
    ) -> Result<(Vec<PortForwardView>, Option<String>)> {
        let (mut sql, mut binds) = scoped_sql(PF_VIEW, scope, project, "f.project_id");
        if let Some(i) = instance {
            binds.push(Bind::Text(i.to_string()));
            sql.push_str(&format!(" AND f.instance_id = ${}", binds.len()));
        }
        self.page(&sql, binds, query, |r: &PortForwardView| match query.sort.field {
            "host_port" => (CursorValue::Int(r.host_port), r.id.clone()),
            _ => (CursorValue::Int(r.created_at), r.id.clone()),
        })
        .await
    }

    /// One port forward with its instance's name and address.
    pub async fn port_forward_view(&self, id: &str) -> Result<Option<PortForwardView>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!("{PF_VIEW} AND f.id = $1")))
            .bind(id)
            .fetch_optional(self.pool())
            .await?)
    }

    /// Networks in scope (optionally of one project), oldest first.
    pub async fn networks_in(&self, scope: &ProjectScope, project: Option<&str>) -> Result<Vec<NetworkRow>> {
        self.scoped(&format!("SELECT {NETWORK_COLUMNS} FROM networks WHERE 1 = 1"), scope, project, "created_at, id")
            .await
    }

    pub async fn groups_in(&self, scope: &ProjectScope, project: Option<&str>) -> Result<Vec<SecurityGroupRow>> {
        self.scoped(&format!("SELECT {SG_COLUMNS} FROM security_groups WHERE 1 = 1"), scope, project, "created_at, id")
            .await
    }

    pub async fn port_forwards_in(&self, scope: &ProjectScope, project: Option<&str>) -> Result<Vec<PortForwardRow>> {
        self.scoped(
            &format!("SELECT {PF_COLUMNS} FROM port_forwards WHERE 1 = 1"),
            scope,
            project,
            "host_port, protocol",
        )
        .await
    }

    /// Rows of `select` limited to the scope (tenant isolation in the query).
    async fn scoped<T>(&self, select: &str, scope: &ProjectScope, project: Option<&str>, order: &str) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        let mut sql = select.to_string();
        let mut binds = Vec::new();
        scope.apply(&mut sql, &mut binds, "project_id");
        if let Some(p) = project {
            binds.push(Bind::Text(p.to_string()));
            sql.push_str(&format!(" AND project_id = ${}", binds.len()));
        }
        sql.push_str(&format!(" ORDER BY {order}"));
        Ok(bind_all(sqlx::query_as(AssertSqlSafe(sql.as_str())), &binds).fetch_all(self.pool()).await?)
    }
}

/// `select` (ending in a WHERE clause) limited to the scope and optionally one project,
/// with its binds: tenant isolation in the query.
pub(crate) fn scoped_sql(
    select: &str,
    scope: &ProjectScope,
    project: Option<&str>,
    column: &str,
) -> (String, Vec<Bind>) {
    let mut sql = select.to_string();
    let mut binds = Vec::new();
    scope.apply(&mut sql, &mut binds, column);
    if let Some(p) = project {
        binds.push(Bind::Text(p.to_string()));
        sql.push_str(&format!(" AND {column} = ${}", binds.len()));
    }
    (sql, binds)
}

/// The NICs (with their network's name) and security group names of instances, in the
/// caller's transaction or on any connection.
pub async fn network_views_in(
    conn: &mut AnyConnection,
    instance_ids: &[String],
) -> Result<(Vec<NicView>, Vec<(String, String)>)> {
    if instance_ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let placeholders: Vec<String> = (1..=instance_ids.len()).map(|i| format!("${i}")).collect();
    let binds: Vec<Bind> = instance_ids.iter().map(|i| Bind::Text(i.clone())).collect();
    let nics_sql = format!(
        "SELECT n.instance_id, n.idx, n.ip, n.mac, n.network_id, w.name AS network FROM instance_nics n \
         JOIN networks w ON w.id = n.network_id WHERE n.instance_id IN ({}) ORDER BY n.instance_id, n.idx",
        placeholders.join(", ")
    );
    let nics: Vec<NicView> =
        bind_all(sqlx::query_as(AssertSqlSafe(nics_sql.as_str())), &binds).fetch_all(&mut *conn).await?;
    let groups_sql = format!(
        "SELECT m.instance_id, g.name FROM instance_security_groups m JOIN security_groups g ON g.id = m.group_id \
         WHERE m.instance_id IN ({}) ORDER BY m.instance_id, g.name",
        placeholders.join(", ")
    );
    let groups: Vec<(String, String)> =
        bind_all(sqlx::query_as(AssertSqlSafe(groups_sql.as_str())), &binds).fetch_all(&mut *conn).await?;
    Ok((nics, groups))
}

/// Peers and NIC counts of these networks, in two queries whatever their number, in the
/// caller's transaction or on any connection.
pub async fn network_details_in(conn: &mut AnyConnection, ids: &[String]) -> Result<NetworkDetails> {
    if ids.is_empty() {
        return Ok(NetworkDetails::default());
    }
    let binds: Vec<Bind> = ids.iter().map(|i| Bind::Text(i.clone())).collect();
    let list = placeholders(1, ids.len());
    let peers_sql = format!(
        "SELECT p.network_a, w.name FROM network_peers p JOIN networks w ON w.id = p.network_b WHERE p.network_a IN ({list}) \
         UNION ALL \
         SELECT p.network_b, w.name FROM network_peers p JOIN networks w ON w.id = p.network_a WHERE p.network_b IN ({list}) \
         ORDER BY 2"
    );
    let peers = bind_all(sqlx::query_as(AssertSqlSafe(peers_sql.as_str())), &binds).fetch_all(&mut *conn).await?;
    let nics_sql =
        format!("SELECT network_id, COUNT(*) FROM instance_nics WHERE network_id IN ({list}) GROUP BY network_id");
    let nics = bind_all(sqlx::query_as(AssertSqlSafe(nics_sql.as_str())), &binds).fetch_all(&mut *conn).await?;
    Ok(NetworkDetails { peers, nics })
}

/// Rules, member counts and referenced group names of these groups, in three queries, in
/// the caller's transaction or on any connection.
pub async fn group_details_in(conn: &mut AnyConnection, ids: &[String]) -> Result<GroupDetails> {
    if ids.is_empty() {
        return Ok(GroupDetails::default());
    }
    let binds: Vec<Bind> = ids.iter().map(|i| Bind::Text(i.clone())).collect();
    let list = placeholders(1, ids.len());
    let rules_sql =
        format!("SELECT {RULE_COLUMNS} FROM security_group_rules WHERE group_id IN ({list}) ORDER BY created_at, id");
    let rules = bind_all(sqlx::query_as(AssertSqlSafe(rules_sql.as_str())), &binds).fetch_all(&mut *conn).await?;
    let members_sql =
        format!("SELECT group_id, COUNT(*) FROM instance_security_groups WHERE group_id IN ({list}) GROUP BY group_id");
    let members = bind_all(sqlx::query_as(AssertSqlSafe(members_sql.as_str())), &binds).fetch_all(&mut *conn).await?;
    let names_sql = format!(
        "SELECT id, name FROM security_groups WHERE id IN \
         (SELECT remote_group_id FROM security_group_rules WHERE group_id IN ({list}))"
    );
    let remote_names =
        bind_all(sqlx::query_as(AssertSqlSafe(names_sql.as_str())), &binds).fetch_all(&mut *conn).await?;
    Ok(GroupDetails { rules, members, remote_names })
}
