//! `roost network …`, `roost sg …` and `roost port …`.

use anyhow::Context;
use roost_api::networks::{
    CreateNetworkRequest, CreateRuleRequest, CreateSecurityGroupRequest, Direction, Network, Protocol, SecurityGroup,
    parse_port_mapping,
};

use super::output::{ago, print_block, print_list, print_structured, when};
use super::{GlobalArgs, PageArgs};

#[derive(Debug, clap::Subcommand)]
pub enum NetworkCommand {
    /// Create a network: a bridge, an address range, NAT to the outside
    Create {
        name: String,
        /// IPv4 range, /16 to /29 (default: the next free /24 of the server's pool)
        #[arg(long)]
        cidr: Option<String>,
        /// No NAT: an internal network that reaches nothing outside the host
        #[arg(long)]
        no_nat: bool,
        /// Instances resolve each other as <name>.<network>.internal and <name>
        #[arg(long)]
        dns: bool,
    },
    /// List networks
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show a network
    Show { name: String },
    /// Remove a network (refused while instances are attached)
    #[command(visible_alias = "delete")]
    Rm { name: String },
    /// Change a network: NAT and DNS on or off (`update web --dns on`)
    #[command(visible_alias = "set")]
    Update {
        name: String,
        /// NAT to the outside: on or off
        #[arg(long, value_parser = super::parse_switch)]
        nat: Option<bool>,
        /// Names for instances (<name>.<network>.internal): on or off
        #[arg(long, value_parser = super::parse_switch)]
        dns: Option<bool>,
    },
    /// Let two networks of the project reach each other (VPC peering)
    Peer { network: String, other: String },
    /// End a peering
    Unpeer { network: String, other: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum SgCommand {
    /// Create a security group (all egress allowed unless --no-egress; no ingress)
    Create {
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Start without the allow-all egress rule
        #[arg(long)]
        no_egress: bool,
    },
    /// List security groups
    #[command(visible_alias = "list")]
    Ls(PageArgs),
    /// Show a group and its rules
    Show { name: String },
    /// Remove a group (refused while instances use it)
    #[command(visible_alias = "delete")]
    Rm { name: String },
    /// Change a group's description (`--description ''` clears it)
    #[command(visible_alias = "set")]
    Update {
        name: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Rules of a group
    #[command(subcommand)]
    Rule(RuleCommand),
}

#[derive(Debug, clap::Subcommand)]
pub enum RuleCommand {
    /// Allow traffic: --ingress or --egress, a protocol, ports, and a source/destination
    Add {
        group: String,
        #[arg(long, conflicts_with = "egress")]
        ingress: bool,
        #[arg(long)]
        egress: bool,
        /// tcp, udp, icmp or all
        #[arg(long, default_value = "tcp")]
        proto: String,
        /// Ports and ranges for tcp/udp: 80,443,8000-8100 (default: all)
        #[arg(long)]
        port: Option<String>,
        /// From (ingress) or to (egress) this CIDR (default 0.0.0.0/0)
        #[arg(long = "from", visible_alias = "to", value_name = "CIDR", conflicts_with = "from_sg")]
        cidr: Option<String>,
        /// From (ingress) or to (egress) members of this group
        #[arg(long = "from-sg", visible_alias = "to-sg", value_name = "GROUP")]
        from_sg: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Remove a rule by id (see `sg show`)
    #[command(visible_alias = "delete")]
    Rm { group: String, rule: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum PortCommand {
    /// Forward a host port to an instance: `roost port add web 8080:80/tcp`
    Add {
        instance: String,
        /// HOST_PORT:INSTANCE_PORT[/tcp|udp]
        mapping: String,
    },
    /// List port forwards (of one instance, or all)
    #[command(visible_alias = "list")]
    Ls {
        instance: Option<String>,
        #[command(flatten)]
        page: PageArgs,
    },
    /// Remove a forward: `roost port rm web 8080/tcp`
    #[command(visible_alias = "delete")]
    Rm {
        instance: String,
        /// HOST_PORT[/tcp|udp] or the forward's id
        port: String,
    },
}

pub async fn run_network(global: &GlobalArgs, cmd: NetworkCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = global.project_name()?;
    match cmd {
        NetworkCommand::Create { name, cidr, no_nat, dns } => {
            let req = CreateNetworkRequest { name, cidr, nat: Some(!no_nat), dns: Some(dns), project };
            let n = client.create_network(&req).await?;
            if !print_structured(global.output, &n)? {
                eprintln!("Created network '{}' ({}) {} on bridge {}.", n.name, n.id, n.cidr, n.bridge);
            }
            Ok(())
        }
        NetworkCommand::Ls(page) => {
            let params = roost_api::ProjectListParams { project, ..Default::default() };
            let items: Vec<Network> = page.fetch(&client, "/v1/networks", params).await?;
            // Every project has a `default` network: say whose each one is.
            let projects = super::projects::names_by_id(&client).await;
            print_list(
                global.output,
                &items,
                &["name", "project", "id", "cidr", "gateway", "nat", "dns", "instances", "peers", "age"],
                |n| {
                    vec![
                        n.name.clone(),
                        projects.get(&n.project_id).cloned().unwrap_or_else(|| n.project_id.clone()),
                        n.id.clone(),
                        n.cidr.clone(),
                        n.gateway.clone(),
                        yes(n.nat),
                        yes(n.dns),
                        n.instance_count.to_string(),
                        if n.peers.is_empty() { "-".into() } else { n.peers.join(",") },
                        ago(Some(n.created_at)),
                    ]
                },
            )
        }
        NetworkCommand::Show { name } => {
            let n = client.get_network(&name, project.as_deref()).await?;
            print_block(global.output, &n, &network_fields(&n))
        }
        NetworkCommand::Rm { name } => {
            let n = client.get_network(&name, project.as_deref()).await?;
            client.delete_network(&n.id, None).await?;
            eprintln!("Removed network '{}' ({}).", n.name, n.id);
            Ok(())
        }
        NetworkCommand::Update { name, nat, dns } => {
            let req = roost_api::networks::UpdateNetworkRequest { nat, dns };
            let n = client.update_network(&name, project.as_deref(), &req).await?;
            print_block(global.output, &n, &network_fields(&n))
        }
        NetworkCommand::Peer { network, other } => {
            let n = client.peer_networks(&network, &other, project.as_deref()).await?;
            if !print_structured(global.output, &n)? {
                eprintln!("Peered '{}' with '{other}': instances on the two networks can reach each other.", n.name);
            }
            Ok(())
        }
        NetworkCommand::Unpeer { network, other } => {
            let n = client.unpeer_networks(&network, &other, project.as_deref()).await?;
            if !print_structured(global.output, &n)? {
                eprintln!("'{}' and '{other}' are no longer peered.", n.name);
            }
            Ok(())
        }
    }
}

pub async fn run_sg(global: &GlobalArgs, cmd: SgCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = global.project_name()?;
    match cmd {
        SgCommand::Create { name, description, no_egress } => {
            let req = CreateSecurityGroupRequest { name, description, project, no_default_egress: Some(no_egress) };
            let g = client.create_security_group(&req).await?;
            if !print_structured(global.output, &g)? {
                eprintln!("Created security group '{}' ({}).", g.name, g.id);
            }
            Ok(())
        }
        SgCommand::Ls(page) => {
            let params = roost_api::ProjectListParams { project, ..Default::default() };
            let items: Vec<SecurityGroup> = page.fetch(&client, "/v1/security-groups", params).await?;
            let projects = super::projects::names_by_id(&client).await;
            let columns = ["name", "project", "id", "rules", "instances", "description", "age"];
            print_list(global.output, &items, &columns, |g| {
                vec![
                    g.name.clone(),
                    projects.get(&g.project_id).cloned().unwrap_or_else(|| g.project_id.clone()),
                    g.id.clone(),
                    g.rules.len().to_string(),
                    g.instance_count.to_string(),
                    g.description.clone().unwrap_or_default(),
                    ago(Some(g.created_at)),
                ]
            })
        }
        SgCommand::Show { name } => {
            let g = client.get_security_group(&name, project.as_deref()).await?;
            print_group(global, &g)
        }
        SgCommand::Update { name, description } => {
            let req = roost_api::networks::UpdateSecurityGroupRequest { description: super::patch_text(description) };
            let g = client.update_security_group(&name, project.as_deref(), &req).await?;
            if !print_structured(global.output, &g)? {
                eprintln!("Updated security group '{}' ({}).", g.name, g.id);
            }
            Ok(())
        }
        SgCommand::Rm { name } => {
            let g = client.get_security_group(&name, project.as_deref()).await?;
            client.delete_security_group(&g.id, None).await?;
            eprintln!("Removed security group '{}' ({}).", g.name, g.id);
            Ok(())
        }
        SgCommand::Rule(RuleCommand::Add { group, ingress, egress, proto, port, cidr, from_sg, description }) => {
            if !ingress && !egress {
                anyhow::bail!("say --ingress or --egress");
            }
            let protocol = Protocol::parse(&proto)
                .with_context(|| format!("--proto '{proto}': expected tcp, udp, icmp or all"))?;
            let req = CreateRuleRequest {
                direction: if ingress { Direction::Ingress } else { Direction::Egress },
                protocol,
                ports: port,
                cidr,
                security_group: from_sg,
                description,
            };
            let g = client.add_security_group_rule(&group, project.as_deref(), &req).await?;
            if !print_structured(global.output, &g)? {
                let r = g.rules.last().map(|r| r.id.clone()).unwrap_or_default();
                eprintln!("Added rule {r} to '{}'; it applies now.", g.name);
            }
            Ok(())
        }
        SgCommand::Rule(RuleCommand::Rm { group, rule }) => {
            let g = client.delete_security_group_rule(&group, &rule, project.as_deref()).await?;
            if !print_structured(global.output, &g)? {
                eprintln!("Removed rule {rule} from '{}'.", g.name);
            }
            Ok(())
        }
    }
}

pub async fn run_port(global: &GlobalArgs, cmd: PortCommand) -> anyhow::Result<()> {
    let client = global.client()?;
    let project = global.project_name()?;
    match cmd {
        PortCommand::Add { instance, mapping } => {
            let req = parse_port_mapping(&mapping).map_err(|e| anyhow::anyhow!("{e}"))?;
            let f = client.add_port_forward(&instance, project.as_deref(), &req).await?;
            if !print_structured(global.output, &f)? {
                eprintln!(
                    "Forwarding host port {}/{} to {}:{} ({}).",
                    f.host_port,
                    f.protocol.as_str(),
                    f.instance,
                    f.instance_port,
                    f.target_ip.as_deref().unwrap_or("no address yet")
                );
            }
            Ok(())
        }
        PortCommand::Ls { instance, page } => {
            let params = roost_api::networks::PortForwardListParams { project, instance, ..Default::default() };
            let items: Vec<roost_api::networks::PortForward> = page.fetch(&client, "/v1/port-forwards", params).await?;
            print_list(global.output, &items, &["host port", "instance", "instance port", "target", "id", "age"], |f| {
                vec![
                    format!("{}/{}", f.host_port, f.protocol.as_str()),
                    f.instance.clone(),
                    f.instance_port.to_string(),
                    f.target_ip.clone().unwrap_or_else(|| "-".into()),
                    f.id.clone(),
                    ago(Some(f.created_at)),
                ]
            })
        }
        PortCommand::Rm { instance, port } => {
            client.delete_port_forward(&instance, &port, project.as_deref()).await?;
            eprintln!("Removed the forward of host port {port}.");
            Ok(())
        }
    }
}

fn yes(b: bool) -> String {
    if b { "yes".into() } else { "no".into() }
}

fn network_fields(n: &Network) -> Vec<(&'static str, String)> {
    vec![
        ("name", n.name.clone()),
        ("id", n.id.clone()),
        ("project", n.project_id.clone()),
        ("cidr", n.cidr.clone()),
        ("gateway", n.gateway.clone()),
        ("bridge", n.bridge.clone()),
        ("nat", yes(n.nat)),
        ("dns", if n.dns { format!("yes (<name>.{}.internal)", n.name) } else { "no".into() }),
        ("default", yes(n.default)),
        ("peers", if n.peers.is_empty() { "-".into() } else { n.peers.join(", ") }),
        ("addresses", format!("{} of {} used", n.addresses_used, n.addresses_total)),
        ("created", when(Some(n.created_at), "-")),
    ]
}

fn print_group(global: &GlobalArgs, g: &SecurityGroup) -> anyhow::Result<()> {
    if print_structured(global.output, g)? {
        return Ok(());
    }
    let fields = vec![
        ("name", g.name.clone()),
        ("id", g.id.clone()),
        ("description", g.description.clone().unwrap_or_else(|| "-".into())),
        ("instances", g.instance_count.to_string()),
    ];
    print_block(global.output, g, &fields)?;
    println!();
    print_list(global.output, &g.rules, &["rule", "direction", "proto", "ports", "remote"], |r| {
        vec![
            r.id.clone(),
            r.direction.as_str().into(),
            r.protocol.as_str().into(),
            r.ports.clone().unwrap_or_else(|| "all".into()),
            r.security_group.as_ref().map(|s| format!("sg:{s}")).or_else(|| r.cidr.clone()).unwrap_or_default(),
        ]
    })
}
