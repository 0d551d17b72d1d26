//! Egress NAT in one nftables table owned by Roost, `table ip roost`.
//!
//! Each network gets its own base chain in that table (`nat-<bridge>`, hooked at
//! postrouting), so networks are added and removed independently, each change is one
//! atomic `nft` transaction, and nothing outside our chains is ever flushed: not other
//! tables (Docker's, firewalld's, the admin's), and not another network's chain. The
//! transactions are written so they cannot fail on what is or is not there already:
//! `add` is idempotent for tables and chains, and a removal adds the chain before it
//! deletes it.
//!
//! Built with the `nftables` crate (typed JSON, run through `nft -j -f -`): the rules
//! are few and static, and typed values keep the JSON schema right.

use std::borrow::Cow;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, Rule, Table};
use nftables::stmt::{AnonymousCounter, Counter, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::{Error, Result};

pub const TABLE: &str = "roost";
/// The `srcnat` priority.
const SRCNAT: i32 = 100;

fn table() -> Table<'static> {
    Table { family: NfFamily::IP, name: TABLE.into(), handle: None }
}

pub fn chain_name(bridge: &str) -> String {
    format!("nat-{bridge}")
}

fn chain(bridge: &str) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: TABLE.into(),
        name: chain_name(bridge).into(),
        _type: Some(NfChainType::NAT),
        hook: Some(NfHook::Postrouting),
        prio: Some(SRCNAT),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

/// The transaction that (re)writes a network's NAT: traffic from `cidr` leaving by
/// another interface than the bridge is masqueraded.
pub fn ensure_batch(bridge: &str, cidr: Ipv4Net) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.add(NfListObject::Chain(chain(bridge)));
    batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain(bridge))));
    let saddr = Statement::Match(Match {
        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(PayloadField {
            protocol: "ip".into(),
            field: "saddr".into(),
        }))),
        right: Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(Expression::String(cidr.network().to_string().into())),
            len: cidr.prefix_len() as u32,
        })),
        op: Operator::EQ,
    });
    let not_bridge = Statement::Match(Match {
        left: Expression::Named(NamedExpression::Meta(Meta { key: MetaKey::Oifname })),
        right: Expression::String(bridge.to_string().into()),
        op: Operator::NEQ,
    });
    batch.add(NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: TABLE.into(),
        chain: chain_name(bridge).into(),
        // The counter shows operators (and the tests) that egress goes through here.
        expr: Cow::Owned(vec![
            saddr,
            not_bridge,
            Statement::Counter(Counter::Anonymous(Some(AnonymousCounter::default()))),
            Statement::Masquerade(None),
        ]),
        handle: None,
        index: None,
        comment: Some(format!("roost network {bridge}").into()),
    }));
    batch.to_nftables()
}

/// The transaction that removes a network's chain, whether or not it exists.
pub fn remove_batch(bridge: &str) -> nftables::schema::Nftables<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.add(NfListObject::Chain(chain(bridge)));
    batch.delete(NfListObject::Chain(chain(bridge)));
    batch.to_nftables()
}

/// Runs a transaction through `nft` (blocking: call from a blocking thread).
pub fn apply(nft: &str, rules: &nftables::schema::Nftables<'_>) -> Result<()> {
    nftables::helper::apply_ruleset_with_args(rules, Some(nft), nftables::helper::DEFAULT_ARGS).map_err(|e| match e {
        nftables::helper::NftablesError::NftExecution { inner, .. } if inner.kind() == std::io::ErrorKind::NotFound => {
            Error::missing(format!("the nft command ({nft})"), "nftables")
        }
        nftables::helper::NftablesError::NftFailed { stderr, .. } => Error::tool("nft", stderr.trim().to_string()),
        other => Error::tool("nft", other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_touches_only_its_own_chain() {
        let json = serde_json::to_value(ensure_batch("roost0", "10.88.0.0/16".parse().unwrap())).unwrap();
        let cmds = json["nftables"].as_array().unwrap();
        let flushes: Vec<&serde_json::Value> = cmds.iter().filter_map(|c| c.get("flush")).collect();
        assert_eq!(flushes.len(), 1);
        assert_eq!(flushes[0]["chain"]["name"], "nat-roost0");
        assert_eq!(flushes[0]["chain"]["table"], "roost");
        let text = json.to_string();
        assert!(text.contains("\"masquerade\""), "{text}");
        assert!(text.contains("\"10.88.0.0\""), "{text}");
        assert!(!text.contains("\"ruleset\""), "never flushes the ruleset: {text}");
    }

    #[test]
    fn remove_cannot_fail_on_a_missing_chain() {
        let json = serde_json::to_value(remove_batch("roost0")).unwrap();
        let cmds = json["nftables"].as_array().unwrap();
        assert!(cmds.iter().any(|c| c.get("add").and_then(|a| a.get("chain")).is_some()));
        assert_eq!(cmds.last().unwrap()["delete"]["chain"]["name"], "nat-roost0");
    }
}
