//! DNS discovery bookkeeping: what a resolution changed, and when to
//! resolve next.
//!
//! A discovery name (a Kubernetes headless service, say) resolves to every
//! node's address. The shell resolves it now and then and feeds the answer
//! here; this core keeps the last answer, reports which addresses appeared
//! and which went away, and says when to resolve again: every
//! [`DiscoveryConfig::interval_ms`] after an answer, and after a failure
//! (the DNS server down, a timeout) a delay doubling from the interval up to
//! [`DiscoveryConfig::max_backoff_ms`], so a failing server is not hammered.
//! An answer with no address is an answer, not a failure: a deployment
//! whose pods are not ready yet has none.
//!
//! Which addresses to dial is decided by membership (addresses of known
//! peers and pending seeds are skipped): the shell hands over every current
//! address, and the ones that went away so their pending dials stop.

use crate::error::{Error, Result};
use std::collections::BTreeSet;

/// When to resolve, and how much of an answer to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// The delay between resolutions that succeed.
    pub interval_ms: u64,
    /// The longest delay after failures in a row.
    pub max_backoff_ms: u64,
    /// The most addresses used from one answer (the lowest, in order): a
    /// huge answer must not make a node dial without bound.
    pub max_addrs: usize,
}

impl Default for DiscoveryConfig {
    /// Every 5 s; after failures up to every 60 s; at most 1024 addresses.
    fn default() -> Self {
        DiscoveryConfig {
            interval_ms: 5_000,
            max_backoff_ms: 60_000,
            max_addrs: 1024,
        }
    }
}

impl DiscoveryConfig {
    /// Checks the values, naming the first bad one.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        if self.interval_ms == 0 {
            return Err(Error::InvalidConfig(
                "discovery interval must be above zero".into(),
            ));
        }
        if self.max_backoff_ms < self.interval_ms {
            return Err(Error::InvalidConfig(format!(
                "discovery max_backoff_ms {} is below interval_ms {}",
                self.max_backoff_ms, self.interval_ms
            )));
        }
        if self.max_addrs == 0 {
            return Err(Error::InvalidConfig(
                "discovery max_addrs must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// What one answer changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    /// Every address in the answer (sorted, deduplicated, capped).
    pub current: Vec<String>,
    /// Addresses not in the previous answer.
    pub added: Vec<String>,
    /// Addresses of the previous answer missing from this one.
    pub removed: Vec<String>,
    /// How many addresses were dropped by [`DiscoveryConfig::max_addrs`].
    pub truncated: usize,
    /// When to resolve next (the caller's clock, ms).
    pub next_ms: u64,
}

/// The discovery state of one node.
#[derive(Debug, Clone)]
pub struct Discovery {
    config: DiscoveryConfig,
    last: BTreeSet<String>,
    failures: u32,
}

impl Discovery {
    /// Discovery that knows no address yet.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if `config` is inconsistent.
    pub fn new(config: DiscoveryConfig) -> Result<Self> {
        config.validate()?;
        Ok(Discovery {
            config,
            last: BTreeSet::new(),
            failures: 0,
        })
    }

    /// The addresses of the last answer.
    pub fn addresses(&self) -> impl Iterator<Item = &str> {
        self.last.iter().map(String::as_str)
    }

    /// A resolution at `now_ms` answered `addrs`.
    pub fn resolved(&mut self, addrs: impl IntoIterator<Item = String>, now_ms: u64) -> Resolved {
        let mut all: BTreeSet<String> = addrs.into_iter().collect();
        let truncated = all.len().saturating_sub(self.config.max_addrs);
        while all.len() > self.config.max_addrs {
            all.pop_last();
        }
        let added = all.difference(&self.last).cloned().collect();
        let removed = self.last.difference(&all).cloned().collect();
        self.failures = 0;
        self.last = all;
        Resolved {
            current: self.last.iter().cloned().collect(),
            added,
            removed,
            truncated,
            next_ms: now_ms.saturating_add(self.config.interval_ms),
        }
    }

    /// A resolution at `now_ms` failed: returns when to try again. The
    /// last answer is kept (a flaky server must not make nodes forget).
    pub fn failed(&mut self, now_ms: u64) -> u64 {
        self.failures = self.failures.saturating_add(1);
        // interval, 2×, 4×, … up to the cap (the shift is bounded so it
        // cannot overflow; saturating_mul caps the product).
        let doublings = (self.failures - 1).min(32);
        let delay = self
            .config
            .interval_ms
            .saturating_mul(1u64 << doublings)
            .min(self.config.max_backoff_ms);
        now_ms.saturating_add(delay)
    }
}

#[cfg(test)]
mod tests;
