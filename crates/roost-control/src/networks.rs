//! Networks, security groups, port forwards and instance NICs, and the loop that keeps
//! the host (bridges, nftables, instance DNS) equal to what the store says.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use roost_api::ids::IdKind;
use roost_api::networks::{
    CreateNetworkRequest, CreatePortForwardRequest, CreateRuleRequest, CreateSecurityGroupRequest, Direction,
    InstanceNic, Network, NetworkListParams, NicRequest, PortForward, PortForwardListParams, Protocol, SecurityGroup,
    SecurityGroupRule, UpdateNetworkRequest, UpdateSecurityGroupRequest, parse_port_list,
};
use roost_api::projects::DEFAULT_PROJECT;
use roost_api::{FieldError, ListParams, Page};
use roost_node::api::{BridgeSpec, NetworkState};
use roost_node::network::firewall::{FirewallSpec, ForwardSpec, NetSpec, NicSpec, Proto, Remote, RuleSpec};
use roost_node::network::host::HostFacts;
use roost_node::network::{self as hostnet, dns};
use roost_node::{DnsConfig, MacAddr, NetAttachment};
use roost_store::list::CREATED_OR_NAME;
use roost_store::networks::{
    self as repo, NetworkRow, NicRow, PortForwardRow, PortForwardView, RuleRow, SecurityGroupRow,
};
use roost_store::sqlx::AnyConnection;
use roost_store::{StoreError, now_ms, to_time};

use crate::error::{Validator, check_name};
use crate::events::Audience;
use crate::images::node_error;
use crate::list::list_query;
use crate::tasks::{BackgroundTask, TaskSpec};
use crate::{Control, Error, Principal, RequestContext, Result};

pub const DEFAULT_NETWORK: &str = "default";
pub const DEFAULT_GROUP: &str = "default";
/// How often the host is compared with the store even without a change.
const DRIFT_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

fn field(name: &str, message: impl Into<String>) -> Error {
    Error::validation(vec![FieldError { field: name.into(), message: message.into() }])
}

/// The bridge of a network: `rn` and the id's 12 random characters (15 bytes at most).
fn bridge_name(network_id: &str) -> String {
    format!("rn{}", network_id.trim_start_matches("net-"))
}

fn parse_cidr(s: &str) -> Option<Ipv4Net> {
    s.parse::<Ipv4Net>().ok()
}

/// Bridges, firewall and DNS of this node: at start, whenever asked, and every few
/// seconds against drift (a bridge deleted by hand, a table flushed).
pub(crate) const NETWORK_SYNC: TaskSpec = TaskSpec {
    name: "network_sync",
    description: "Brings the node's bridges, policy routes, nftables tables and DNS zones in line with the store \
                  (after each change, and against drift)",
    period: DRIFT_CHECK,
};

pub(crate) struct NetworkSync {
    control: Control,
    /// Whether every project's defaults were made (once, before the first sync).
    defaults: bool,
}

impl NetworkSync {
    pub(crate) fn new(control: Control) -> NetworkSync {
        NetworkSync { control, defaults: false }
    }
}

impl BackgroundTask for NetworkSync {
    async fn activate(&mut self) -> Result<serde_json::Value> {
        let control = &self.control;
        if !self.defaults {
            // Every project has its default network and group (projects made while
            // compute was off, or before networks existed, get them now).
            for id in control.store().all_project_ids().await? {
                if let Err(e) = control.ensure_project_defaults(&id).await {
                    tracing::warn!(project = %id, error = %e.message, "cannot create the default network");
                }
            }
            self.defaults = true;
        }
        // Let a burst of changes settle into one apply.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        control.sync_firewall_now().await?;
        Ok(serde_json::json!({}))
    }
}

impl Control {
    // ---- lookups ----

    /// The project a lookup or list is narrowed to (checked), if any.
    async fn narrowed_to(&self, p: &Principal, project: Option<&str>) -> Result<Option<String>> {
        Ok(match project {
            Some(k) => Some(self.project_access(p, k).await?.project.id),
            None => None,
        })
    }

    pub(crate) async fn network_row(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<NetworkRow> {
        let project_id = self.narrowed_to(p, project).await?;
        let rows = self.store().networks_in(&self.project_scope(p), project_id.as_deref()).await?;
        one_by_key(rows, key, "network", |r| (&r.id, &r.name))
    }

    async fn group_row(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<SecurityGroupRow> {
        let project_id = self.narrowed_to(p, project).await?;
        let rows = self.store().groups_in(&self.project_scope(p), project_id.as_deref()).await?;
        one_by_key(rows, key, "security group", |r| (&r.id, &r.name))
    }

    /// The project a list is narrowed to; its defaults are made first, so a new
    /// project's list shows them.
    async fn listed_project(&self, p: &Principal, project: Option<&str>) -> Result<Option<String>> {
        let project_id = self.narrowed_to(p, project).await?;
        if let Some(id) = &project_id {
            let _ = self.ensure_project_defaults(id).await;
        }
        Ok(project_id)
    }

    async fn network_api(&self, row: &NetworkRow) -> Result<Network> {
        Ok(self.network_apis(std::slice::from_ref(row)).await?.remove(0))
    }

    /// The API view of networks, with their peers and NICs read in two queries for all.
    async fn network_apis(&self, rows: &[NetworkRow]) -> Result<Vec<Network>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let details = self.store().network_details(&ids).await?;
        Ok(rows.iter().map(|row| network_from(row, &details)).collect())
    }

    async fn group_api(&self, row: &SecurityGroupRow) -> Result<SecurityGroup> {
        Ok(self.group_apis(std::slice::from_ref(row)).await?.remove(0))
    }

    /// The API view of security groups, with rules and members read in three queries for all.
    async fn group_apis(&self, rows: &[SecurityGroupRow]) -> Result<Vec<SecurityGroup>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let details = self.store().group_details(&ids).await?;
        Ok(group_from(rows, details))
    }

    /// The NICs and group names of instances (two queries whatever their number), by
    /// instance id.
    pub(crate) async fn instance_network_views(
        &self,
        ids: &[String],
    ) -> HashMap<String, (Vec<InstanceNic>, Vec<String>)> {
        let mut out: HashMap<String, (Vec<InstanceNic>, Vec<String>)> = HashMap::new();
        let Ok((nics, groups)) = self.store().network_views(ids).await else { return out };
        for n in nics {
            out.entry(n.instance_id.clone()).or_default().0.push(nic_view(n));
        }
        for (instance, group) in groups {
            out.entry(instance).or_default().1.push(group);
        }
        out
    }

    // ---- project defaults ----

    /// Every project has a `default` network (the next free /24 of the server's pool)
    /// and a `default` security group (all egress; ingress from its own members).
    pub(crate) async fn ensure_project_defaults(&self, project_id: &str) -> Result<()> {
        let pool = self.node()?.network_pool;
        let mut tx = self.system_change().await?;
        let now = now_ms();
        if repo::network_by_name(tx.conn(), project_id, DEFAULT_NETWORK).await?.is_none() {
            let taken: Vec<Ipv4Net> = repo::all_cidrs(tx.conn()).await?.iter().filter_map(|c| parse_cidr(c)).collect();
            let host = self.node()?.host_network().await.map_err(node_error)?;
            let cidr = pick_free_subnet(pool, &taken, &host).ok_or_else(|| no_free_subnet(pool))?;
            let id = IdKind::Network.generate();
            let row = NetworkRow {
                bridge: bridge_name(&id),
                gateway: first_host(cidr).to_string(),
                id,
                project_id: project_id.to_string(),
                name: DEFAULT_NETWORK.into(),
                cidr: cidr.to_string(),
                nat: 1,
                dns: 1,
                is_default: 1,
                created_by: None,
                created_at: now,
                updated_at: now,
            };
            repo::insert_network(tx.conn(), &row).await?;
            let api = network_view(tx.conn(), &row).await?;
            tx.event("network.created", "network", &row.id, &api, Audience::Project(row.project_id.clone()));
        }
        if repo::group_by_name(tx.conn(), project_id, DEFAULT_GROUP).await?.is_none() {
            let id = IdKind::SecurityGroup.generate();
            let row = SecurityGroupRow {
                id: id.clone(),
                project_id: project_id.to_string(),
                name: DEFAULT_GROUP.into(),
                description: Some("all egress; ingress from members of this group".into()),
                is_default: 1,
                created_by: None,
                created_at: now,
                updated_at: now,
            };
            repo::insert_group(tx.conn(), &row).await?;
            for (direction, remote) in [("egress", None), ("ingress", Some(id.clone()))] {
                let rule = RuleRow {
                    id: IdKind::SecurityGroupRule.generate(),
                    group_id: id.clone(),
                    direction: direction.into(),
                    protocol: "all".into(),
                    ports: None,
                    cidr: remote.is_none().then(|| "0.0.0.0/0".to_string()),
                    remote_group_id: remote,
                    description: None,
                    created_at: now,
                };
                repo::insert_rule(tx.conn(), &rule).await?;
            }
            let api = group_view(tx.conn(), &row).await?;
            tx.event(
                "security_group.created",
                "security_group",
                &row.id,
                &api,
                Audience::Project(row.project_id.clone()),
            );
        }
        tx.commit().await
    }

    // ---- networks ----

    pub async fn create_network(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: CreateNetworkRequest,
    ) -> Result<Network> {
        let access = self.project_access(p, req.project.as_deref().unwrap_or(DEFAULT_PROJECT)).await?;
        let proof = access.require_write()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        v.check(!req.name.contains('.'), "name", "must not contain '.' (it is a DNS label)");
        let cidr = match &req.cidr {
            Some(c) => match parse_cidr(c) {
                Some(net) if net != net.trunc() => {
                    v.add("cidr", format!("'{c}' has host bits set; did you mean {}?", net.trunc()));
                    None
                }
                Some(net) if !(16..=29).contains(&net.prefix_len()) => {
                    v.add("cidr", "the prefix must be between /16 and /29");
                    None
                }
                Some(net) if hostnet::host::reserved_space(net).is_some() => {
                    let (what, space) = hostnet::host::reserved_space(net).expect("checked");
                    v.add(
                        "cidr",
                        format!("'{c}' is {what} address space ({space}); use a private range like 10.10.0.0/24"),
                    );
                    None
                }
                Some(net) => Some(net),
                None => {
                    v.add("cidr", format!("'{c}' is not an IPv4 CIDR like 10.10.0.0/24"));
                    None
                }
            },
            None => None,
        };
        v.finish()?;
        self.ensure_project_defaults(&access.project.id).await?;
        // Nothing of the host's: a range over its routes, addresses, gateways or name
        // servers would take the host's own traffic.
        let host = self.node()?.host_network().await.map_err(node_error)?;
        if let Some(why) = cidr.and_then(|c| host.conflict(c)) {
            return Err(Error::conflict(format!("{why}; pick a range the host does not use")));
        }
        let now = now_ms();
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        let cidr = match cidr {
            Some(c) => c,
            None => {
                let taken: Vec<Ipv4Net> =
                    repo::all_cidrs(tx.conn()).await?.iter().filter_map(|c| parse_cidr(c)).collect();
                let pool = self.node()?.network_pool;
                pick_free_subnet(pool, &taken, &host).ok_or_else(|| no_free_subnet(pool))?
            }
        };
        // Within a project, ranges must not overlap: peering would be ambiguous.
        for other in repo::networks_of_project(tx.conn(), &access.project.id).await? {
            if let Some(o) = parse_cidr(&other.cidr)
                && (o.contains(&cidr.network()) || cidr.contains(&o.network()))
            {
                return Err(Error::conflict(format!(
                    "{cidr} overlaps network '{}' ({}) of project '{}'",
                    other.name, other.cidr, access.project.name
                )));
            }
        }
        let id = IdKind::Network.generate();
        let row = NetworkRow {
            bridge: bridge_name(&id),
            gateway: first_host(cidr).to_string(),
            id,
            project_id: access.project.id.clone(),
            name: req.name.clone(),
            cidr: cidr.to_string(),
            nat: req.nat.unwrap_or(true) as i64,
            dns: req.dns.unwrap_or(false) as i64,
            is_default: 0,
            created_by: Some(p.user_id.clone()),
            created_at: now,
            updated_at: now,
        };
        repo::insert_network(tx.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::conflict(format!(
                "a network named '{}' already exists in project '{}'",
                req.name, access.project.name
            )),
            e => e.into(),
        })?;
        tx.audit("network.create", Some(("network", &row.id)), body.as_ref()).await?;
        let api = network_view(tx.conn(), &row).await?;
        tx.event("network.created", "network", &row.id, &api, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.sync_firewall_now().await?;
        Ok(api)
    }

    pub async fn list_networks(&self, p: &Principal, params: &NetworkListParams) -> Result<Page<Network>> {
        let query = list_query(&params.paging(), CREATED_OR_NAME)?;
        let project_id = self.listed_project(p, params.project.as_deref()).await?;
        let (rows, next_cursor) =
            self.store().networks_page(&self.project_scope(p), project_id.as_deref(), &query).await?;
        Ok(Page { items: self.network_apis(&rows).await?, next_cursor })
    }

    pub async fn get_network(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<Network> {
        let row = self.network_row(p, key, project).await?;
        self.network_api(&row).await
    }

    /// Turns NAT or DNS on or off; the host follows before this returns.
    pub async fn update_network(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: UpdateNetworkRequest,
        if_match: Option<&str>,
    ) -> Result<Network> {
        let row = self.network_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("networks", &row.id, if_match, self.get_network(p, &row.id, None)).await?;
        let nat = req.nat.unwrap_or(row.nat != 0);
        let dns = req.dns.unwrap_or(row.dns != 0);
        let now = now_ms();
        repo::set_network_flags(tx.conn(), &row.id, nat, dns, now).await?;
        tx.audit("network.update", Some(("network", &row.id)), body.as_ref()).await?;
        let fresh = NetworkRow { nat: nat as i64, dns: dns as i64, updated_at: now, ..row.clone() };
        let api = network_view(tx.conn(), &fresh).await?;
        tx.event("network.updated", "network", &row.id, &api, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.sync_firewall_now().await?;
        Ok(api)
    }

    pub async fn delete_network(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<()> {
        let row = self.network_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        if row.is_default != 0 {
            return Err(Error::conflict("the project's default network cannot be removed"));
        }
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("networks", &row.id, if_match, self.get_network(p, &row.id, None)).await?;
        let attached = repo::nic_count(tx.conn(), &row.id).await?;
        if attached > 0 {
            return Err(Error::conflict(format!(
                "network '{}' has {attached} instance(s) attached; detach or delete them first",
                row.name
            )));
        }
        repo::delete_network(tx.conn(), &row.id).await?;
        tx.audit("network.delete", Some(("network", &row.id)), None).await?;
        tx.bare_event("network.deleted", "network", &row.id, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.sync_firewall_now().await?;
        Ok(())
    }

    pub async fn peer_network(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        other: &str,
        project: Option<&str>,
        peer: bool,
    ) -> Result<Network> {
        let row = self.network_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let other_row = self
            .network_row(p, other, Some(&row.project_id))
            .await
            .map_err(|_| field("network", format!("no network '{other}' in the same project as '{}'", row.name)))?;
        if other_row.id == row.id {
            return Err(field("network", "a network cannot be peered with itself"));
        }
        let mut tx = self.change(ctx, &proof).await?;
        let action = if peer { "network.peer" } else { "network.unpeer" };
        if peer {
            repo::insert_peer(tx.conn(), &row.id, &other_row.id, now_ms()).await?;
        } else if !repo::delete_peer(tx.conn(), &row.id, &other_row.id).await? {
            return Err(Error::not_found("peering", &format!("{} and {}", row.name, other_row.name)));
        }
        let body = serde_json::json!({ "network": other_row.id });
        tx.audit(action, Some(("network", &row.id)), Some(&body)).await?;
        let api = network_view(tx.conn(), &row).await?;
        tx.event("network.updated", "network", &row.id, &api, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.sync_firewall_now().await?;
        Ok(api)
    }

    // ---- security groups ----

    pub async fn create_security_group(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        req: CreateSecurityGroupRequest,
    ) -> Result<SecurityGroup> {
        let access = self.project_access(p, req.project.as_deref().unwrap_or(DEFAULT_PROJECT)).await?;
        let proof = access.require_write()?;
        let mut v = Validator::default();
        check_name(&mut v, "name", &req.name);
        if let Some(d) = &req.description {
            v.check(d.len() <= 255, "description", "at most 255 characters");
        }
        v.finish()?;
        self.ensure_project_defaults(&access.project.id).await?;
        let now = now_ms();
        let row = SecurityGroupRow {
            id: IdKind::SecurityGroup.generate(),
            project_id: access.project.id.clone(),
            name: req.name.clone(),
            description: req.description.clone(),
            is_default: 0,
            created_by: Some(p.user_id.clone()),
            created_at: now,
            updated_at: now,
        };
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        repo::insert_group(tx.conn(), &row).await.map_err(|e| match e {
            StoreError::Conflict(_) => Error::conflict(format!(
                "a security group named '{}' already exists in project '{}'",
                req.name, access.project.name
            )),
            e => e.into(),
        })?;
        if !req.no_default_egress.unwrap_or(false) {
            let rule = RuleRow {
                id: IdKind::SecurityGroupRule.generate(),
                group_id: row.id.clone(),
                direction: "egress".into(),
                protocol: "all".into(),
                ports: None,
                cidr: Some("0.0.0.0/0".into()),
                remote_group_id: None,
                description: None,
                created_at: now,
            };
            repo::insert_rule(tx.conn(), &rule).await?;
        }
        tx.audit("security_group.create", Some(("security_group", &row.id)), body.as_ref()).await?;
        let api = group_view(tx.conn(), &row).await?;
        tx.event("security_group.created", "security_group", &row.id, &api, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        Ok(api)
    }

    pub async fn list_security_groups(&self, p: &Principal, params: &NetworkListParams) -> Result<Page<SecurityGroup>> {
        let query = list_query(&params.paging(), CREATED_OR_NAME)?;
        let project_id = self.listed_project(p, params.project.as_deref()).await?;
        let (rows, next_cursor) =
            self.store().groups_page(&self.project_scope(p), project_id.as_deref(), &query).await?;
        Ok(Page { items: self.group_apis(&rows).await?, next_cursor })
    }

    pub async fn get_security_group(&self, p: &Principal, key: &str, project: Option<&str>) -> Result<SecurityGroup> {
        let row = self.group_row(p, key, project).await?;
        self.group_api(&row).await
    }

    pub async fn delete_security_group(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<()> {
        let row = self.group_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        if row.is_default != 0 {
            return Err(Error::conflict("the project's default security group cannot be removed"));
        }
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("security_groups", &row.id, if_match, self.get_security_group(p, &row.id, None)).await?;
        let members = repo::member_count(tx.conn(), &row.id).await?;
        if members > 0 {
            return Err(Error::conflict(format!("security group '{}' is used by {members} instance(s)", row.name)));
        }
        if repo::rules_referencing(tx.conn(), &row.id).await? > 0 {
            return Err(Error::conflict(format!(
                "rules of other groups refer to security group '{}'; remove them first",
                row.name
            )));
        }
        repo::delete_group(tx.conn(), &row.id).await?;
        tx.audit("security_group.delete", Some(("security_group", &row.id)), None).await?;
        tx.bare_event("security_group.deleted", "security_group", &row.id, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.request_firewall_sync();
        Ok(())
    }

    pub async fn update_security_group(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: UpdateSecurityGroupRequest,
        if_match: Option<&str>,
    ) -> Result<SecurityGroup> {
        let row = self.group_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut v = Validator::default();
        if let Some(Some(d)) = &req.description {
            v.check(d.len() <= 255, "description", "at most 255 characters");
        }
        v.finish()?;
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        tx.check_if_match("security_groups", &row.id, if_match, self.get_security_group(p, &row.id, None)).await?;
        let mut fresh = row.clone();
        if let Some(description) = &req.description {
            let now = now_ms();
            repo::set_group_description(tx.conn(), &row.id, description.as_deref(), now).await?;
            fresh.description = description.clone();
            fresh.updated_at = now;
        }
        tx.audit("security_group.update", Some(("security_group", &row.id)), body.as_ref()).await?;
        let api = group_view(tx.conn(), &fresh).await?;
        tx.event("security_group.updated", "security_group", &row.id, &api, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        Ok(api)
    }

    pub async fn add_security_group_rule(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: CreateRuleRequest,
    ) -> Result<SecurityGroup> {
        let row = self.group_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut v = Validator::default();
        let ports = match (&req.ports, req.protocol) {
            (Some(ports), Protocol::Tcp | Protocol::Udp) => match parse_port_list(ports) {
                Ok(_) => Some(ports.replace(' ', "")),
                Err(e) => {
                    v.add("ports", e);
                    None
                }
            },
            (Some(_), _) => {
                v.add("ports", "ports apply only to tcp and udp");
                None
            }
            (None, _) => None,
        };
        if req.cidr.is_some() && req.security_group.is_some() {
            v.add("cidr", "give either a CIDR or a security group, not both");
        }
        let cidr = match &req.cidr {
            Some(c) => match parse_cidr(c) {
                Some(net) => Some(net.trunc().to_string()),
                None => {
                    v.add("cidr", format!("'{c}' is not an IPv4 CIDR like 0.0.0.0/0"));
                    None
                }
            },
            None if req.security_group.is_none() => Some("0.0.0.0/0".to_string()),
            None => None,
        };
        if let Some(d) = &req.description {
            v.check(d.len() <= 255, "description", "at most 255 characters");
        }
        v.finish()?;
        let remote = match &req.security_group {
            Some(g) => Some(
                self.group_row(p, g, Some(&row.project_id))
                    .await
                    .map_err(|_| field("security_group", format!("no security group '{g}' in this project")))?
                    .id,
            ),
            None => None,
        };
        let rule = RuleRow {
            id: IdKind::SecurityGroupRule.generate(),
            group_id: row.id.clone(),
            direction: req.direction.as_str().into(),
            protocol: req.protocol.as_str().into(),
            ports,
            cidr,
            remote_group_id: remote,
            description: req.description.clone(),
            created_at: now_ms(),
        };
        let body = serde_json::to_value(&req).ok();
        let mut tx = self.change(ctx, &proof).await?;
        let count: i64 =
            roost_store::sqlx::query_scalar("SELECT COUNT(*) FROM security_group_rules WHERE group_id = $1")
                .bind(&row.id)
                .fetch_one(&mut *tx.conn())
                .await
                .map_err(StoreError::from)?;
        if count >= 1000 {
            return Err(Error::conflict("a security group has at most 1000 rules"));
        }
        repo::insert_rule(tx.conn(), &rule).await?;
        tx.audit("security_group.rule_add", Some(("security_group", &row.id)), body.as_ref()).await?;
        let api = group_view(tx.conn(), &row).await?;
        tx.event("security_group.updated", "security_group", &row.id, &api, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.sync_firewall_now().await?;
        Ok(api)
    }

    pub async fn delete_security_group_rule(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        rule_id: &str,
        project: Option<&str>,
    ) -> Result<SecurityGroup> {
        let row = self.group_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut tx = self.change(ctx, &proof).await?;
        if !repo::delete_rule(tx.conn(), &row.id, rule_id).await? {
            return Err(Error::not_found("rule", rule_id));
        }
        let body = serde_json::json!({ "rule": rule_id });
        tx.audit("security_group.rule_delete", Some(("security_group", &row.id)), Some(&body)).await?;
        let api = group_view(tx.conn(), &row).await?;
        tx.event("security_group.updated", "security_group", &row.id, &api, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.sync_firewall_now().await?;
        Ok(api)
    }

    /// Group ids for names (default: the project's `default` group).
    pub(crate) async fn resolve_groups(
        &self,
        p: &Principal,
        project_id: &str,
        names: &[String],
    ) -> Result<Vec<String>> {
        let names: Vec<String> = if names.is_empty() { vec![DEFAULT_GROUP.to_string()] } else { names.to_vec() };
        let mut ids = Vec::new();
        for n in &names {
            let g = self
                .group_row(p, n, Some(project_id))
                .await
                .map_err(|_| field("security_groups", format!("no security group '{n}' in this project")))?;
            if !ids.contains(&g.id) {
                ids.push(g.id);
            }
        }
        Ok(ids)
    }

    /// Networks for NIC requests (default: the project's `default` network).
    pub(crate) async fn resolve_networks(
        &self,
        p: &Principal,
        project_id: &str,
        nics: &[NicRequest],
    ) -> Result<Vec<(NetworkRow, Option<Ipv4Addr>)>> {
        let nics: Vec<NicRequest> = if nics.is_empty() {
            vec![NicRequest { network: DEFAULT_NETWORK.into(), ip: None }]
        } else {
            nics.to_vec()
        };
        if nics.len() > hostnet::MAX_NICS {
            return Err(field("networks", format!("at most {} networks per instance", hostnet::MAX_NICS)));
        }
        let mut out: Vec<(NetworkRow, Option<Ipv4Addr>)> = Vec::new();
        for nic in &nics {
            let net = self
                .network_row(p, &nic.network, Some(project_id))
                .await
                .map_err(|_| field("networks", format!("no network '{}' in this project", nic.network)))?;
            if out.iter().any(|(n, _)| n.id == net.id) {
                return Err(field("networks", format!("network '{}' is listed twice", net.name)));
            }
            let ip = match &nic.ip {
                Some(s) => {
                    let ip: Ipv4Addr = s.parse().map_err(|_| field("ip", format!("'{s}' is not an IPv4 address")))?;
                    check_static_ip(&net, ip)?;
                    Some(ip)
                }
                None => None,
            };
            out.push((net, ip));
        }
        Ok(out)
    }

    /// Leases an address on `net` for the instance's NIC `idx` inside the caller's
    /// transaction. The unique index on (network, ip) is the last word.
    pub(crate) async fn allocate_nic(
        conn: &mut AnyConnection,
        net: &NetworkRow,
        instance_id: &str,
        idx: i64,
        ip: Option<Ipv4Addr>,
    ) -> Result<NicRow> {
        let cidr = parse_cidr(&net.cidr).ok_or_else(|| Error::internal(format!("bad CIDR {}", net.cidr)))?;
        let gateway: Ipv4Addr = net.gateway.parse().map_err(|_| Error::internal("bad gateway"))?;
        let ip = match ip {
            Some(ip) => ip,
            None => {
                let taken: Vec<Ipv4Addr> =
                    repo::ips_on(conn, &net.id).await?.iter().filter_map(|s| s.parse().ok()).collect();
                hostnet::ipam::allocate(cidr, gateway, &taken).ok_or_else(|| {
                    Error::conflict(format!("network '{}' ({}) has no free address", net.name, net.cidr))
                })?
            }
        };
        let nic = NicRow {
            instance_id: instance_id.to_string(),
            network_id: net.id.clone(),
            idx,
            ip: ip.to_string(),
            mac: MacAddr::for_ip(ip).to_string(),
            created_at: now_ms(),
        };
        repo::insert_nic(conn, &nic).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::conflict(format!("address {ip} is already in use on network '{}'", net.name))
            }
            e => e.into(),
        })?;
        if idx == 0 {
            roost_store::instances::set_ip(conn, instance_id, Some(&ip.to_string())).await?;
        }
        Ok(nic)
    }

    /// What the driver needs to plug the instance in, `eth0` first, and its DNS.
    pub(crate) async fn attachments_of(&self, instance_id: &str) -> Result<(Vec<NetAttachment>, Option<DnsConfig>)> {
        let mut conn = self.store().pool().acquire().await.map_err(StoreError::from)?;
        let nics = repo::nics_of(&mut conn, instance_id).await?;
        let mut out = Vec::new();
        let mut dns = None;
        for nic in nics {
            let Some(net) = self.store().network_by_id(&nic.network_id).await? else { continue };
            out.push(attachment(&net, &nic)?);
            if nic.idx == 0 && net.dns != 0 {
                dns = Some(DnsConfig {
                    nameserver: net.gateway.parse().map_err(|_| Error::internal("bad gateway"))?,
                    search: format!("{}.{}", net.name, dns::DOMAIN),
                });
            }
        }
        Ok((out, dns))
    }

    /// Gives an instance without NICs (made before networks existed) one on its
    /// project's default network.
    pub(crate) async fn ensure_nics(&self, instance_id: &str, project_id: &str) -> Result<()> {
        let mut conn = self.store().pool().acquire().await.map_err(StoreError::from)?;
        if !repo::nics_of(&mut conn, instance_id).await?.is_empty() {
            return Ok(());
        }
        drop(conn);
        self.ensure_project_defaults(project_id).await?;
        let mut tx = self.system_change().await?;
        let net = repo::network_by_name(tx.conn(), project_id, DEFAULT_NETWORK)
            .await?
            .ok_or_else(|| Error::internal("the default network is missing"))?;
        Self::allocate_nic(tx.conn(), &net, instance_id, 0, None).await?;
        if repo::groups_of_instance(tx.conn(), instance_id).await?.is_empty()
            && let Some(g) = repo::group_by_name(tx.conn(), project_id, DEFAULT_GROUP).await?
        {
            repo::set_instance_groups(tx.conn(), instance_id, &[g.id]).await?;
        }
        tx.instance_event("instance.updated", instance_id).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- instance NICs and groups ----

    pub async fn attach_instance_network(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: NicRequest,
    ) -> Result<roost_api::instances::Instance> {
        let row = self.instance_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let resolved = self.resolve_networks(p, &row.project_id, std::slice::from_ref(&req)).await?;
        let (net, ip) = resolved.into_iter().next().expect("one network");
        let mut tx = self.change(ctx, &proof).await?;
        let existing = repo::nics_of(tx.conn(), &row.id).await?;
        if existing.iter().any(|n| n.network_id == net.id) {
            return Err(Error::conflict(format!("instance '{}' is already on network '{}'", row.name, net.name)));
        }
        if existing.len() >= hostnet::MAX_NICS {
            return Err(Error::conflict(format!("an instance has at most {} networks", hostnet::MAX_NICS)));
        }
        let idx = (0..).find(|i| !existing.iter().any(|n| n.idx == *i)).expect("a free index");
        let nic = Self::allocate_nic(tx.conn(), &net, &row.id, idx, ip).await?;
        let body = serde_json::to_value(&req).ok();
        tx.audit("instance.network_attach", Some(("instance", &row.id)), body.as_ref()).await?;
        tx.instance_event("instance.updated", &row.id).await?;
        tx.commit().await?;
        self.sync_firewall_now().await?;
        // Hot: plug it into the running instance now; a stopped one gets it at start.
        let driver = self.node()?.driver_for(&row.kind)?;
        if driver.inspect(&row.id).await.map_err(node_error)?.status == roost_node::InstanceStatus::Running {
            driver.attach_network(&row.id, &attachment(&net, &nic)?).await.map_err(node_error)?;
        }
        let fresh = self.store().instance(&row.id).await?.unwrap_or(row);
        Ok(self.instance_api(&fresh).await)
    }

    pub async fn detach_instance_network(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        network: &str,
    ) -> Result<roost_api::instances::Instance> {
        let row = self.instance_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let net = self.network_row(p, network, Some(&row.project_id)).await?;
        let mut tx = self.change(ctx, &proof).await?;
        let nics = repo::nics_of(tx.conn(), &row.id).await?;
        let Some(nic) = nics.iter().find(|n| n.network_id == net.id).cloned() else {
            return Err(Error::not_found("attachment", &format!("{} on {}", row.name, net.name)));
        };
        if nic.idx == 0 && nics.len() > 1 {
            return Err(Error::conflict(
                "eth0 carries the default route; detach the other networks first or delete the instance",
            ));
        }
        repo::delete_nic(tx.conn(), &row.id, &net.id).await?;
        if nic.idx == 0 {
            roost_store::instances::set_ip(tx.conn(), &row.id, None).await?;
        }
        let body = serde_json::json!({ "network": net.id });
        tx.audit("instance.network_detach", Some(("instance", &row.id)), Some(&body)).await?;
        tx.instance_event("instance.updated", &row.id).await?;
        tx.commit().await?;
        if let Ok(node) = self.node() {
            node.driver_for(&row.kind)?.detach_network(&row.id, &attachment(&net, &nic)?).await.map_err(node_error)?;
        }
        self.sync_firewall_now().await?;
        let fresh = self.store().instance(&row.id).await?.unwrap_or(row);
        Ok(self.instance_api(&fresh).await)
    }

    pub async fn set_instance_security_groups(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        groups: &[String],
    ) -> Result<roost_api::instances::Instance> {
        let row = self.instance_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let ids = if groups.is_empty() { Vec::new() } else { self.resolve_groups(p, &row.project_id, groups).await? };
        let mut tx = self.change(ctx, &proof).await?;
        repo::set_instance_groups(tx.conn(), &row.id, &ids).await?;
        let body = serde_json::json!({ "security_groups": groups });
        tx.audit("instance.security_groups", Some(("instance", &row.id)), Some(&body)).await?;
        tx.instance_event("instance.updated", &row.id).await?;
        tx.commit().await?;
        self.sync_firewall_now().await?;
        Ok(self.instance_api(&row).await)
    }

    // ---- port forwards ----

    pub async fn create_port_forward(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        project: Option<&str>,
        req: CreatePortForwardRequest,
    ) -> Result<PortForward> {
        let row = self.instance_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let protocol = req.protocol.unwrap_or(Protocol::Tcp);
        let mut v = Validator::default();
        v.check(matches!(protocol, Protocol::Tcp | Protocol::Udp), "protocol", "must be tcp or udp");
        v.check(req.host_port > 0, "host_port", "must be 1-65535");
        v.check(req.instance_port > 0, "instance_port", "must be 1-65535");
        v.finish()?;
        self.check_host_port(req.host_port, protocol)?;
        let mut tx = self.change(ctx, &proof).await?;
        if let Some(existing) = repo::port_forward_on(tx.conn(), req.host_port as i64, protocol.as_str()).await? {
            let owner = if self
                .store()
                .instance(&existing.instance_id)
                .await?
                .is_some_and(|i| i.project_id == row.project_id)
            {
                format!(" (to instance {})", existing.instance_id)
            } else {
                String::new()
            };
            return Err(Error::conflict(format!(
                "host port {}/{} is already forwarded{owner}",
                req.host_port,
                protocol.as_str()
            )));
        }
        let f = PortForwardRow {
            id: IdKind::PortForward.generate(),
            project_id: row.project_id.clone(),
            instance_id: row.id.clone(),
            host_port: req.host_port as i64,
            instance_port: req.instance_port as i64,
            protocol: protocol.as_str().into(),
            created_by: Some(p.user_id.clone()),
            created_at: now_ms(),
        };
        repo::insert_port_forward(tx.conn(), &f).await.map_err(|e| match e {
            StoreError::Conflict(_) => {
                Error::conflict(format!("host port {}/{} is already forwarded", req.host_port, protocol.as_str()))
            }
            e => e.into(),
        })?;
        let body = serde_json::to_value(&req).ok();
        tx.audit("port_forward.create", Some(("port_forward", &f.id)), body.as_ref()).await?;
        let api = port_forward_view(&f, Some(&row));
        tx.event("port_forward.created", "port_forward", &f.id, &api, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.sync_firewall_now().await?;
        Ok(api)
    }

    /// A forward takes a host port from outside traffic for good, so only one of the
    /// configured range, never one of Roost's listeners, and never one anything on the
    /// host listens on, whichever protocol either uses (a forward of the other protocol
    /// would still shadow a service that answers both, like DNS).
    fn check_host_port(&self, port: u16, protocol: Protocol) -> Result<()> {
        let node = self.node()?;
        let range = &node.port_forward_range;
        if !range.contains(&port) {
            return Err(field(
                "host_port",
                format!(
                    "host port {port} is outside the range port forwards may use ({}-{}, the server's port_forward_range)",
                    range.start(),
                    range.end()
                ),
            ));
        }
        let proto = protocol.as_str();
        if let Some((_, name)) = node.reserved_ports.iter().find(|(p, _)| *p == port) {
            return Err(Error::conflict(format!("host port {port}/{proto} is Roost's own {name} listener")));
        }
        if let Some(user) = node.port_in_use(port) {
            return Err(Error::conflict(format!(
                "host port {port}/{proto} is in use on the host ({user}); pick a free port"
            )));
        }
        Ok(())
    }

    pub async fn list_port_forwards(&self, p: &Principal, params: &PortForwardListParams) -> Result<Page<PortForward>> {
        let paging =
            ListParams { limit: params.limit, cursor: params.cursor.clone(), sort: params.sort.clone(), name: None };
        let query = list_query(&paging, repo::PORT_FORWARD_SORT_KEYS)?;
        let project = params.project.as_deref();
        let project_id = self.narrowed_to(p, project).await?;
        let instance_id = match params.instance.as_deref() {
            Some(k) => Some(self.instance_row(p, k, project).await?.id),
            None => None,
        };
        let (rows, next_cursor) = self
            .store()
            .port_forwards_page(&self.project_scope(p), project_id.as_deref(), instance_id.as_deref(), &query)
            .await?;
        Ok(Page { items: rows.iter().map(port_forward_api).collect(), next_cursor })
    }

    /// Removes a forward by id, or by `HOST_PORT[/proto]` of the given instance.
    pub async fn delete_port_forward(
        &self,
        ctx: &RequestContext,
        p: &Principal,
        key: &str,
        spec: &str,
        project: Option<&str>,
    ) -> Result<()> {
        let row = self.instance_row(p, key, project).await?;
        let proof = self.project_access(p, &row.project_id).await?.require_write()?;
        let mut tx = self.change(ctx, &proof).await?;
        let forwards = repo::port_forwards_of(tx.conn(), &row.id).await?;
        let (port, proto) = match spec.split_once('/') {
            Some((port, proto)) => (port, proto),
            None => (spec, "tcp"),
        };
        let found = forwards
            .iter()
            .find(|f| f.id == spec || (f.host_port.to_string() == port && f.protocol == proto))
            .ok_or_else(|| Error::not_found("port forward", &format!("{spec} of instance {}", row.name)))?;
        repo::delete_port_forward(tx.conn(), &found.id).await?;
        tx.audit("port_forward.delete", Some(("port_forward", &found.id)), None).await?;
        tx.bare_event("port_forward.deleted", "port_forward", &found.id, Audience::Project(row.project_id.clone()));
        tx.commit().await?;
        self.sync_firewall_now().await
    }

    // ---- the host side ----

    /// Asks the network sync task to bring the host up to date soon.
    pub(crate) fn request_firewall_sync(&self) {
        if self.node().is_ok() {
            self.tasks().activator(NETWORK_SYNC.name).activate();
        }
    }

    /// Brings the node's bridges, routes, firewall and DNS in line with the store, now:
    /// the store's view as one desired-state document, applied by the node.
    pub(crate) async fn sync_firewall_now(&self) -> Result<()> {
        let node = self.node()?;
        let _serialized = self.compute().network_sync.lock().await;
        let state = self.store().firewall_state().await?;
        let owner = node.route_owner();

        // A range no network may have (rows of earlier versions) is skipped, not fatal:
        // one bad row must not keep every other network from being made.
        let mut usable: Vec<(&NetworkRow, Ipv4Net)> = Vec::new();
        let mut bridges = Vec::new();
        for net in &state.networks {
            let Some(cidr) = parse_cidr(&net.cidr) else { continue };
            if let Some((what, _)) = hostnet::host::reserved_space(cidr) {
                tracing::warn!(network = %net.id, cidr = %cidr, "skipping a network on {what} address space");
                continue;
            }
            let gateway: Ipv4Addr = net.gateway.parse().map_err(|_| Error::internal("bad gateway"))?;
            bridges.push(BridgeSpec {
                network_id: net.id.clone(),
                bridge: net.bridge.clone(),
                gateway,
                prefix_len: cidr.prefix_len(),
            });
            usable.push((net, cidr));
        }
        let routes = policy_routes(&usable, &state.peers, owner);
        // Forwards only where one may be made now (rows of earlier versions may hold a
        // port below the range, or one of Roost's listeners).
        let forwardable =
            |port: u16| node.port_forward_range.contains(&port) && !node.reserved_ports.iter().any(|(p, _)| *p == port);
        let firewall = firewall_spec(&state, owner, forwardable);

        // DNS for networks with DNS on, one zone per network (two projects may share a
        // range, and so a gateway address).
        let names: HashMap<&str, &str> = state.instance_names.iter().map(|(i, n)| (i.as_str(), n.as_str())).collect();
        let mut zones = HashMap::new();
        for (net, _) in usable.iter().filter(|(n, _)| n.dns != 0) {
            let Ok(gateway) = net.gateway.parse::<Ipv4Addr>() else { continue };
            let mut zone = dns::Zone { network: net.name.clone(), names: HashMap::new() };
            for nic in state.nics.iter().filter(|n| n.network_id == net.id) {
                if let (Some(name), Ok(ip)) = (names.get(nic.instance_id.as_str()), nic.ip.parse()) {
                    zone.names.insert(name.to_string(), ip);
                }
            }
            zones.insert(net.id.clone(), dns::NetworkDns { bridge: net.bridge.clone(), gateway, zone });
        }

        let desired = NetworkState { bridges, routes, firewall, dns: zones };
        let applied = node.apply_network(&desired).await.map_err(node_error)?;
        // A bridge deleted by hand took its ports with it: plug running instances in again.
        for nic in state.nics.iter().filter(|n| applied.remade.contains(&n.network_id)) {
            let Some(net) = state.networks.iter().find(|n| n.id == nic.network_id) else { continue };
            let Ok(driver) = self.driver_of(&nic.instance_id).await else { continue };
            let running =
                driver.inspect(&nic.instance_id).await.is_ok_and(|s| s.status == roost_node::InstanceStatus::Running);
            if running
                && let Ok(a) = attachment(net, nic)
                && let Err(e) = driver.attach_network(&nic.instance_id, &a).await
            {
                tracing::warn!(instance = %nic.instance_id, error = %e, "re-plugging into a remade bridge failed");
            }
        }
        Ok(())
    }
}

/// The one row named `key` (an id, or a name unique among the rows).
fn one_by_key<T>(rows: Vec<T>, key: &str, what: &str, id_name: impl Fn(&T) -> (&String, &String)) -> Result<T> {
    let hits: Vec<T> = rows
        .into_iter()
        .filter(|r| {
            let (id, name) = id_name(r);
            id == key || name == key
        })
        .collect();
    if hits.len() > 1 && id_name(&hits[0]).0 != key {
        return Err(Error::conflict(format!(
            "more than one of your projects has a {what} named '{key}': pass the project or the id"
        )));
    }
    hits.into_iter().next().ok_or_else(|| Error::not_found(what, key))
}

fn port_forward_api(f: &PortForwardView) -> PortForward {
    PortForward {
        id: f.id.clone(),
        project_id: f.project_id.clone(),
        instance_id: f.instance_id.clone(),
        instance: f.instance_name.clone().unwrap_or_default(),
        host_port: f.host_port as u16,
        instance_port: f.instance_port as u16,
        protocol: Protocol::parse(&f.protocol).unwrap_or(Protocol::Tcp),
        target_ip: f.instance_ip.clone(),
        created_at: to_time(f.created_at),
    }
}

fn rule_api(r: &RuleRow, names: &HashMap<String, String>) -> SecurityGroupRule {
    SecurityGroupRule {
        id: r.id.clone(),
        direction: Direction::parse(&r.direction).unwrap_or(Direction::Ingress),
        protocol: Protocol::parse(&r.protocol).unwrap_or(Protocol::All),
        ports: r.ports.clone(),
        cidr: r.cidr.clone(),
        security_group: r.remote_group_id.as_ref().map(|g| names.get(g).cloned().unwrap_or_else(|| g.clone())),
        description: r.description.clone(),
    }
}

fn attachment(net: &NetworkRow, nic: &NicRow) -> Result<NetAttachment> {
    let cidr = parse_cidr(&net.cidr).ok_or_else(|| Error::internal(format!("bad CIDR {}", net.cidr)))?;
    Ok(NetAttachment {
        bridge: net.bridge.clone(),
        ip: nic.ip.parse().map_err(|_| Error::internal(format!("bad address {}", nic.ip)))?,
        prefix_len: cidr.prefix_len(),
        gateway: net.gateway.parse().map_err(|_| Error::internal("bad gateway"))?,
        mac: nic.mac.parse().map_err(|_| Error::internal(format!("bad MAC {}", nic.mac)))?,
        index: nic.idx as u8,
    })
}

fn first_host(cidr: Ipv4Net) -> Ipv4Addr {
    cidr.hosts().next().unwrap_or(cidr.network())
}

fn check_static_ip(net: &NetworkRow, ip: Ipv4Addr) -> Result<()> {
    let cidr = parse_cidr(&net.cidr).ok_or_else(|| Error::internal("bad CIDR"))?;
    if !cidr.contains(&ip) || ip == cidr.network() || ip == cidr.broadcast() {
        return Err(field("ip", format!("{ip} is not a host address of network '{}' ({})", net.name, net.cidr)));
    }
    if ip.to_string() == net.gateway {
        return Err(field("ip", format!("{ip} is the gateway of network '{}'", net.name)));
    }
    Ok(())
}

/// The first /24 of `pool` that overlaps none of `taken` and nothing of the host's.
pub(crate) fn pick_free_subnet(pool: Ipv4Net, taken: &[Ipv4Net], host: &HostFacts) -> Option<Ipv4Net> {
    let len = pool.prefix_len().max(24);
    pool.subnets(len).ok()?.find(|s| {
        !taken.iter().any(|t| t.contains(&s.network()) || s.contains(&t.network())) && host.conflict(*s).is_none()
    })
}

fn no_free_subnet(pool: Ipv4Net) -> Error {
    Error::conflict(format!(
        "the network pool {pool} has no free /24 left (taken by networks, or used by the host's own routes)"
    ))
}

/// Each network's routing table: its range and its peers' ranges. The host's own
/// traffic to a range goes to one network only; where ranges overlap (across projects)
/// the oldest network keeps it, so a newer one never takes an older one's traffic.
fn policy_routes(
    nets: &[(&NetworkRow, Ipv4Net)],
    peers: &[(String, String)],
    owner: hostnet::RouteOwner,
) -> Vec<hostnet::NetRoutes> {
    let mut by_age: Vec<&(&NetworkRow, Ipv4Net)> = nets.iter().collect();
    by_age.sort_by(|(a, _), (b, _)| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut host_routed: Vec<Ipv4Net> = Vec::new();
    let mut out = Vec::new();
    for (net, cidr) in by_age {
        let host_route = !host_routed.iter().any(|o| o.contains(&cidr.network()) || cidr.contains(&o.network()));
        if host_route {
            host_routed.push(*cidr);
        }
        let peer_routes = peers
            .iter()
            .filter_map(|(a, b)| match (a == &net.id, b == &net.id) {
                (true, _) => Some(b),
                (_, true) => Some(a),
                _ => None,
            })
            .filter_map(|other| nets.iter().find(|(n, _)| &n.id == other))
            .map(|(n, c)| (n.bridge.clone(), *c))
            .collect();
        out.push(hostnet::NetRoutes {
            bridge: net.bridge.clone(),
            cidr: *cidr,
            mark: owner.mark(&net.id),
            host_route,
            peers: peer_routes,
        });
    }
    out
}

/// The store's view as the firewall compiler's input.
fn firewall_spec(
    state: &roost_store::networks::FirewallState,
    owner: hostnet::RouteOwner,
    forwardable: impl Fn(u16) -> bool,
) -> FirewallSpec {
    let bridge_of: HashMap<&str, &NetworkRow> = state.networks.iter().map(|n| (n.id.as_str(), n)).collect();
    let mut groups_of: HashMap<&str, Vec<String>> = HashMap::new();
    for (instance, group) in &state.memberships {
        groups_of.entry(instance.as_str()).or_default().push(group.clone());
    }
    let mut groups: BTreeMap<String, Vec<RuleSpec>> = state.groups.iter().map(|g| (g.id.clone(), Vec::new())).collect();
    for r in &state.rules {
        let remote = match (&r.remote_group_id, &r.cidr) {
            (Some(g), _) => Remote::Group(g.clone()),
            (None, Some(c)) => match parse_cidr(c) {
                Some(net) => Remote::Cidr(net),
                None => continue,
            },
            (None, None) => Remote::Cidr(Ipv4Net::default()),
        };
        let proto = match r.protocol.as_str() {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" => Proto::Icmp,
            _ => Proto::All,
        };
        let ports = r.ports.as_deref().map(|p| parse_port_list(p).unwrap_or_default()).unwrap_or_default();
        groups.entry(r.group_id.clone()).or_default().push(RuleSpec {
            ingress: r.direction == "ingress",
            proto,
            ports,
            remote,
        });
    }
    let nics: Vec<NicSpec> = state
        .nics
        .iter()
        .filter_map(|nic| {
            let net = bridge_of.get(nic.network_id.as_str())?;
            Some(NicSpec {
                host_if: hostnet::nic_ifname(&nic.instance_id, nic.idx as u8),
                bridge: net.bridge.clone(),
                ip: nic.ip.parse().ok()?,
                mac: nic.mac.parse().ok()?,
                groups: groups_of.get(nic.instance_id.as_str()).cloned().unwrap_or_default(),
            })
        })
        .collect();
    let first_nic: HashMap<&str, (Ipv4Addr, u32)> = state
        .nics
        .iter()
        .filter(|n| n.idx == 0)
        .filter_map(|n| Some((n.instance_id.as_str(), (n.ip.parse().ok()?, owner.mark(&n.network_id)))))
        .collect();
    FirewallSpec {
        networks: state
            .networks
            .iter()
            .filter_map(|n| {
                let cidr = parse_cidr(&n.cidr).filter(|c| hostnet::host::reserved_space(*c).is_none())?;
                Some(NetSpec {
                    bridge: n.bridge.clone(),
                    cidr,
                    gateway: n.gateway.parse().ok()?,
                    nat: n.nat != 0,
                    dns: n.dns != 0,
                    mark: owner.mark(&n.id),
                })
            })
            .collect(),
        peers: state
            .peers
            .iter()
            .filter_map(|(a, b)| {
                Some((bridge_of.get(a.as_str())?.bridge.clone(), bridge_of.get(b.as_str())?.bridge.clone()))
            })
            .collect(),
        nics,
        groups,
        forwards: state
            .port_forwards
            .iter()
            .filter(|f| forwardable(f.host_port as u16))
            .filter_map(|f| {
                let (target, mark) = *first_nic.get(f.instance_id.as_str())?;
                Some(ForwardSpec {
                    host_port: f.host_port as u16,
                    udp: f.protocol == "udp",
                    target,
                    target_port: f.instance_port as u16,
                    mark,
                })
            })
            .collect(),
    }
}

/// A NIC as the instance API shows it.
pub(crate) fn nic_view(n: roost_store::networks::NicView) -> InstanceNic {
    InstanceNic { name: format!("eth{}", n.idx), network_id: n.network_id, network: n.network, ip: n.ip, mac: n.mac }
}

/// A network as the API shows it, read on `conn` (a change's event shows it as the
/// change leaves it).
pub(crate) async fn network_view(conn: &mut AnyConnection, row: &NetworkRow) -> Result<Network> {
    let details = roost_store::networks::network_details_in(conn, std::slice::from_ref(&row.id)).await?;
    Ok(network_from(row, &details))
}

/// A security group with its rules as the API shows it, read on `conn`.
pub(crate) async fn group_view(conn: &mut AnyConnection, row: &SecurityGroupRow) -> Result<SecurityGroup> {
    let details = roost_store::networks::group_details_in(conn, std::slice::from_ref(&row.id)).await?;
    Ok(group_from(std::slice::from_ref(row), details).remove(0))
}

/// The API view of a network from its row and the details read for it (listings read
/// them for a page at once).
fn network_from(row: &NetworkRow, details: &roost_store::networks::NetworkDetails) -> Network {
    let used = details.nics.iter().find(|(id, _)| *id == row.id).map(|(_, n)| *n).unwrap_or(0);
    let cidr = parse_cidr(&row.cidr).unwrap_or_default();
    let total = cidr.hosts().count().saturating_sub(1) as u32;
    Network {
        id: row.id.clone(),
        name: row.name.clone(),
        project_id: row.project_id.clone(),
        cidr: row.cidr.clone(),
        gateway: row.gateway.clone(),
        bridge: row.bridge.clone(),
        nat: row.nat != 0,
        dns: row.dns != 0,
        default: row.is_default != 0,
        peers: details.peers.iter().filter(|(n, _)| *n == row.id).map(|(_, name)| name.clone()).collect(),
        instance_count: used as u32,
        addresses_used: used as u32,
        addresses_total: total,
        created_at: to_time(row.created_at),
    }
}

/// The API view of security groups from their rows and the details read for them.
fn group_from(rows: &[SecurityGroupRow], details: roost_store::networks::GroupDetails) -> Vec<SecurityGroup> {
    let names: HashMap<String, String> = details.remote_names.into_iter().collect();
    let members: HashMap<&str, i64> = details.members.iter().map(|(id, n)| (id.as_str(), *n)).collect();
    rows.iter()
        .map(|row| SecurityGroup {
            id: row.id.clone(),
            name: row.name.clone(),
            project_id: row.project_id.clone(),
            description: row.description.clone(),
            default: row.is_default != 0,
            rules: details.rules.iter().filter(|r| r.group_id == row.id).map(|r| rule_api(r, &names)).collect(),
            instance_count: members.get(row.id.as_str()).copied().unwrap_or(0) as u32,
            created_at: to_time(row.created_at),
        })
        .collect()
}

fn port_forward_view(f: &PortForwardRow, inst: Option<&roost_store::instances::InstanceRow>) -> PortForward {
    PortForward {
        id: f.id.clone(),
        project_id: f.project_id.clone(),
        instance_id: f.instance_id.clone(),
        instance: inst.map(|i| i.name.clone()).unwrap_or_default(),
        host_port: f.host_port as u16,
        instance_port: f.instance_port as u16,
        protocol: Protocol::parse(&f.protocol).unwrap_or(Protocol::Tcp),
        target_ip: inst.and_then(|i| i.ip.clone()),
        created_at: to_time(f.created_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_subnets_skip_taken_ranges() {
        let pool: Ipv4Net = "10.88.0.0/16".parse().unwrap();
        let none = HostFacts::default();
        assert_eq!(pick_free_subnet(pool, &[], &none).unwrap().to_string(), "10.88.0.0/24");
        let taken = vec!["10.88.0.0/24".parse().unwrap(), "10.88.1.0/25".parse().unwrap()];
        assert_eq!(pick_free_subnet(pool, &taken, &none).unwrap().to_string(), "10.88.2.0/24");
        let all: Vec<Ipv4Net> = vec!["10.88.0.0/16".parse().unwrap()];
        assert!(pick_free_subnet(pool, &all, &none).is_none());
        // A small pool is used whole.
        let small: Ipv4Net = "10.99.0.0/26".parse().unwrap();
        assert_eq!(pick_free_subnet(small, &[], &none).unwrap().to_string(), "10.99.0.0/26");
        // The host's routes are skipped too.
        let host = HostFacts {
            routes: vec![hostnet::host::HostRoute {
                cidr: "10.88.2.0/23".parse().unwrap(),
                dev: "wg0".into(),
                gateway: None,
                local: false,
                table: 254,
            }],
            nameservers: vec!["10.88.4.53".parse().unwrap()],
        };
        assert_eq!(pick_free_subnet(pool, &taken, &host).unwrap().to_string(), "10.88.5.0/24");
    }

    #[test]
    fn bridge_names_fit() {
        let id = IdKind::Network.generate();
        let b = bridge_name(&id);
        assert_eq!(b.len(), 14);
        assert!(b.starts_with("rn"));
    }
}
