//! Per-kind placement: only the nodes that host a bird kind own its birds.
//!
//! Each member announces the kinds it hosts, or nothing (a node of a
//! release that does not announce kinds, which is taken to host them all,
//! as every node did before). A kind's hosts are the members that host it;
//! kinds with the same host set share one [`Placement`] table, so a cluster
//! whose nodes all host the same kinds keeps exactly one table. A kind that
//! no member announces is placed over every member (its owner answers
//! "unknown kind", a clear error, as before).
//!
//! Because each table is weighted rendezvous over its host set, the
//! movement guarantees carry over per kind: adding a node that hosts only
//! kind K changes only the tables whose host set gains it, so only birds of
//! kinds it hosts move, and only to it.

use super::{Member, Placement, ShardSet};
use crate::core::crdt::NodeName;
use crate::error::Result;
use std::collections::{BTreeSet, HashMap};

/// A member and the kinds it hosts (`None`: it did not say, so all of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostedMember {
    /// Its name and weight.
    pub member: Member,
    /// The kind tags it hosts; `None` for a node that does not announce them.
    pub kinds: Option<BTreeSet<String>>,
}

impl HostedMember {
    /// A member hosting every kind (it does not announce any).
    pub fn all_kinds(member: Member) -> Self {
        HostedMember {
            member,
            kinds: None,
        }
    }

    /// A member hosting exactly `kinds`.
    pub fn hosting<S: Into<String>>(member: Member, kinds: impl IntoIterator<Item = S>) -> Self {
        HostedMember {
            member,
            kinds: Some(kinds.into_iter().map(Into::into).collect()),
        }
    }

    fn hosts(&self, kind: &str) -> bool {
        self.kinds.as_ref().is_none_or(|k| k.contains(kind))
    }
}

/// One placement table per distinct host set, and which kind uses which.
#[derive(Debug, Clone)]
pub struct KindPlacement {
    /// Every member: for kinds nobody announces, and for [`Self::owner`].
    all: Placement,
    /// The distinct tables of announced kinds.
    tables: Vec<Placement>,
    /// Announced kind → index into `tables`.
    by_kind: HashMap<String, usize>,
    /// Whether a member that hosts birds announces no kinds (a v1 node).
    hosts_everything: bool,
}

impl KindPlacement {
    /// Builds the tables for `members` over `shards` shards.
    ///
    /// # Errors
    /// As [`Placement::new`].
    pub fn new(shards: u32, members: impl IntoIterator<Item = HostedMember>) -> Result<Self> {
        Self::build(shards, members.into_iter().collect(), None)
    }

    /// The tables for `members`, computed from these: identical to what
    /// [`KindPlacement::new`] builds, but each table is updated from the
    /// previous one of its kind with [`Placement::next`], so a view change
    /// costs `O(shards)` per distinct host set, not `O(shards × members)`.
    ///
    /// # Errors
    /// As [`Placement::new`].
    pub fn next(&self, members: impl IntoIterator<Item = HostedMember>) -> Result<Self> {
        Self::build(self.all.shards(), members.into_iter().collect(), Some(self))
    }

    fn build(shards: u32, members: Vec<HostedMember>, previous: Option<&Self>) -> Result<Self> {
        // From the previous table of the same kind when there is one (any
        // previous table gives the same result; a close one is cheaper).
        let table = |from: Option<&Placement>, hosts: Vec<Member>| match from {
            Some(p) => p.next(hosts),
            None => Placement::new(shards, hosts),
        };
        let all = table(
            previous.map(|p| &p.all),
            members.iter().map(|m| m.member.clone()).collect(),
        )?;
        let announced: BTreeSet<&str> = members
            .iter()
            .filter_map(|m| m.kinds.as_ref())
            .flatten()
            .map(String::as_str)
            .collect();
        let mut by_set: HashMap<BTreeSet<NodeName>, usize> = HashMap::new();
        let mut tables = Vec::new();
        let mut by_kind = HashMap::new();
        // The hosts of `all`: a kind every one of them hosts (the common
        // case) has `all`'s table, which a second `next` would only compute
        // again. Placement rebuilds were half of all CPU while 100 nodes
        // formed (a rebuild per link-up, two tables each).
        let all_hosts: BTreeSet<NodeName> = all.hosts().iter().map(|m| m.name.clone()).collect();
        for kind in announced {
            let hosts: Vec<Member> = members
                .iter()
                .filter(|m| m.hosts(kind) && m.member.weight > 0)
                .map(|m| m.member.clone())
                .collect();
            let set: BTreeSet<NodeName> = hosts.iter().map(|m| m.name.clone()).collect();
            let index = match by_set.get(&set) {
                Some(&i) => i,
                None if set == all_hosts => {
                    tables.push(all.clone());
                    by_set.insert(set, tables.len() - 1);
                    tables.len() - 1
                }
                None => {
                    tables.push(table(previous.map(|p| p.for_kind(kind)), hosts)?);
                    by_set.insert(set, tables.len() - 1);
                    tables.len() - 1
                }
            };
            by_kind.insert(kind.to_owned(), index);
        }
        let hosts_everything = members
            .iter()
            .any(|m| m.kinds.is_none() && m.member.weight > 0);
        Ok(KindPlacement {
            all,
            tables,
            by_kind,
            hosts_everything,
        })
    }

    /// The tables as they would be without `node` (every kind): where a
    /// bird comes from while `node` joins. Incremental like [`Self::next`].
    ///
    /// # Errors
    /// As [`Placement::next`].
    pub fn without(&self, node: &str) -> Result<Self> {
        let drop = |p: &Placement| {
            p.next(
                p.hosts()
                    .iter()
                    .filter(|m| *m.name != *node)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        };
        Ok(KindPlacement {
            all: drop(&self.all)?,
            tables: self.tables.iter().map(drop).collect::<Result<_>>()?,
            by_kind: self.by_kind.clone(),
            hosts_everything: self.hosts_everything,
        })
    }

    /// The shards `me` owns for some kind in this view and did not own for
    /// that kind in `before`: after a view change, the only shards whose
    /// names can be newly owned here. Empty when `me` gains nothing (a node
    /// that only loses shards to a joiner, or a client).
    pub fn gained(&self, before: &KindPlacement, me: &str) -> ShardSet {
        let mut set = ShardSet::new(self.all.shards());
        // Every kind is placed by one table in each view: an announced kind
        // by its own, any other by `all`. Each distinct pair once.
        let mut pairs: Vec<(&Placement, &Placement)> = vec![(&before.all, &self.all)];
        for kind in before.by_kind.keys().chain(self.by_kind.keys()) {
            let pair = (before.for_kind(kind), self.for_kind(kind));
            if !pairs
                .iter()
                .any(|(b, n)| std::ptr::eq(*b, pair.0) && std::ptr::eq(*n, pair.1))
            {
                pairs.push(pair);
            }
        }
        for (b, n) in pairs {
            n.gained_into(b, me, &mut set);
        }
        set
    }

    /// The table that places birds of `kind`.
    pub fn for_kind(&self, kind: &str) -> &Placement {
        self.by_kind
            .get(kind)
            .map_or(&self.all, |&i| &self.tables[i])
    }

    /// The node that owns bird `name` of kind `kind`.
    ///
    /// # Errors
    /// [`crate::Error::NoNodes`] if no member hosts `kind`.
    pub fn owner(&self, kind: &str, name: &str) -> Result<&NodeName> {
        self.for_kind(kind).owner(name)
    }

    /// The table over every member, whatever they host: the one table of a
    /// cluster whose nodes all host the same kinds.
    pub fn all(&self) -> &Placement {
        &self.all
    }

    /// Every member that hosts birds, whatever kinds.
    pub fn hosts(&self) -> &[Member] {
        self.all.hosts()
    }

    /// The shard of `name` (the same in every table).
    pub fn shard_of(&self, name: &str) -> u32 {
        self.all.shard_of(name)
    }

    /// Whether some member hosts `kind`: one that announced it, or one that
    /// announces nothing (a v1 node, hosting every kind).
    pub fn is_hosted(&self, kind: &str) -> bool {
        self.by_kind
            .get(kind)
            .is_some_and(|&i| !self.tables[i].hosts().is_empty())
            || self.hosts_everything
    }

    /// How many distinct tables announced kinds use (memory is one table
    /// per distinct host set, not per kind).
    pub fn distinct_tables(&self) -> usize {
        self.tables.len()
    }
}

#[cfg(test)]
mod tests;
