//! The remote write HA tracker, as Mimir's: of each `cluster` (an HA pair of Prometheus
//! servers, told apart by their replica label) one replica's samples are accepted, the
//! *elected* one; the others' are answered 202 and dropped. When the elected replica has sent
//! nothing for `ha_failover_timeout`, the next replica heard from is elected. State is in
//! memory, per process: after a restart the first replica heard from is elected.
//!
//! Time is an argument, so the tracker is a state machine the tests drive.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::config::model::HaTrackerConfig;

/// A cluster not heard from for this long is forgotten when room is needed for a new one
/// (Mimir cleans its HA tracker entries up after 30 minutes too).
pub const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);

/// Why a request of an HA pair is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HaError {
    /// Not the elected replica: answered 202 (Prometheus must not retry), samples dropped.
    #[error("replicas did not match, rejecting sample: replica={replica}, elected={elected}")]
    ReplicasDidNotMatch { replica: String, elected: String },
    /// A new cluster past `ha_max_clusters`: answered 400.
    #[error("too many HA clusters: remote_write_receiver.ha_max_clusters={limit} are tracked")]
    TooManyClusters { limit: usize },
}

/// What an accepted request changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// From the replica that was already elected.
    Elected,
    /// This replica was just elected: the cluster's first, or a failover.
    NewlyElected,
}

#[derive(Debug, Clone)]
struct Elected {
    replica: String,
    /// When a request of the elected replica last arrived (Unix ms).
    last_seen_ms: i64,
}

/// The elected replica of every cluster heard from.
#[derive(Debug, Default)]
pub struct HaTracker {
    clusters: Mutex<HashMap<String, Elected>>,
}

impl HaTracker {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Elected>> {
        // Poisoning only means another thread panicked mid-update; the map is still usable.
        self.clusters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// May a request of `replica` of `cluster`, arriving at `now_ms`, be taken?
    pub fn check(
        &self,
        config: &HaTrackerConfig,
        cluster: &str,
        replica: &str,
        now_ms: i64,
    ) -> Result<Accepted, HaError> {
        let timeout = i64::try_from(config.failover_timeout.as_millis()).unwrap_or(i64::MAX);
        let mut clusters = self.lock();
        if let Some(e) = clusters.get_mut(cluster) {
            if e.replica == replica {
                e.last_seen_ms = e.last_seen_ms.max(now_ms);
                return Ok(Accepted::Elected);
            }
            if now_ms.saturating_sub(e.last_seen_ms) < timeout {
                return Err(HaError::ReplicasDidNotMatch {
                    replica: replica.to_string(),
                    elected: e.replica.clone(),
                });
            }
            tracing::info!(
                cluster,
                from = %e.replica,
                to = replica,
                silent_ms = now_ms.saturating_sub(e.last_seen_ms),
                "HA tracker: failover to another replica"
            );
            *e = Elected {
                replica: replica.to_string(),
                last_seen_ms: now_ms,
            };
            return Ok(Accepted::NewlyElected);
        }
        if clusters.len() >= config.max_clusters {
            let forget = i64::try_from(FORGET_AFTER.as_millis()).unwrap_or(i64::MAX);
            clusters.retain(|_, e| now_ms.saturating_sub(e.last_seen_ms) < forget);
            if clusters.len() >= config.max_clusters {
                return Err(HaError::TooManyClusters {
                    limit: config.max_clusters,
                });
            }
        }
        tracing::info!(cluster, replica, "HA tracker: replica elected");
        clusters.insert(
            cluster.to_string(),
            Elected {
                replica: replica.to_string(),
                last_seen_ms: now_ms,
            },
        );
        Ok(Accepted::NewlyElected)
    }

    /// The elected replica of `cluster`, if any.
    pub fn elected(&self, cluster: &str) -> Option<String> {
        self.lock().get(cluster).map(|e| e.replica.clone())
    }

    /// Every cluster's elected replica, by cluster.
    pub fn snapshot(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .lock()
            .iter()
            .map(|(c, e)| (c.clone(), e.replica.clone()))
            .collect();
        all.sort();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(timeout_s: u64, max_clusters: usize) -> HaTrackerConfig {
        HaTrackerConfig {
            cluster_label: "cluster".into(),
            replica_label: "__replica__".into(),
            failover_timeout: Duration::from_secs(timeout_s),
            max_clusters,
        }
    }

    #[test]
    fn one_replica_per_cluster_until_it_falls_silent_for_the_timeout() {
        let c = config(30, 10);
        let t = HaTracker::default();
        assert_eq!(t.check(&c, "prom", "a", 0), Ok(Accepted::NewlyElected));
        assert_eq!(t.check(&c, "prom", "a", 10_000), Ok(Accepted::Elected));
        let refused = t.check(&c, "prom", "b", 39_999);
        assert_eq!(
            refused,
            Err(HaError::ReplicasDidNotMatch {
                replica: "b".into(),
                elected: "a".into()
            })
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "replicas did not match, rejecting sample: replica=b, elected=a"
        );
        // Another cluster has its own election.
        assert_eq!(
            t.check(&c, "other", "b", 20_000),
            Ok(Accepted::NewlyElected)
        );
        // a last seen at 10s: b takes over from 40s on, and a is refused from then.
        assert_eq!(t.check(&c, "prom", "b", 40_000), Ok(Accepted::NewlyElected));
        assert_eq!(t.elected("prom").as_deref(), Some("b"));
        assert!(t.check(&c, "prom", "a", 40_001).is_err());
        // A request that arrives late (older clock) does not move last_seen back.
        assert_eq!(t.check(&c, "prom", "b", 35_000), Ok(Accepted::Elected));
        assert!(t.check(&c, "prom", "a", 69_999).is_err());
    }

    #[test]
    fn clusters_are_bounded_and_silent_ones_make_room() {
        let c = config(30, 2);
        let t = HaTracker::default();
        assert!(t.check(&c, "one", "a", 0).is_ok());
        assert!(t.check(&c, "two", "a", 0).is_ok());
        assert_eq!(
            t.check(&c, "three", "a", 1_000),
            Err(HaError::TooManyClusters { limit: 2 })
        );
        // Known clusters go on.
        assert!(t.check(&c, "two", "a", 1_000).is_ok());
        // Once "one" has been silent for FORGET_AFTER, it makes room.
        let later = FORGET_AFTER.as_millis() as i64 + 1;
        assert!(t.check(&c, "two", "a", later).is_ok());
        assert_eq!(t.check(&c, "three", "a", later), Ok(Accepted::NewlyElected));
        assert_eq!(t.elected("one"), None);
    }
}
