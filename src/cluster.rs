//! High availability and sharding as data: which rule groups this process evaluates
//! (`--shard.index`/`--shard.total`), when a group evaluates (slots aligned to its interval,
//! with a per-group offset from a hash of its name, as Prometheus's `Group.EvalTimestamp`),
//! and the replica name (`--cluster.replica`). Pure functions over names and times: replicas
//! with the same config compute the same answers, which is what makes their webhook events
//! identical.

use md5::{Digest, Md5};

/// Where this process stands in a cluster: its replica name and its shard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// `--cluster.replica`: added to webhook payloads as `replica`, never to their identity.
    pub replica: Option<String>,
    pub shard: Shard,
}

/// One shard of `total`: it evaluates the groups whose name hashes onto `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    total: u32,
}

impl Default for Shard {
    /// The whole: shard 0 of 1, every group.
    fn default() -> Self {
        Shard { index: 0, total: 1 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    #[error("--shard.total={0}: must be at least 1")]
    NoShards(u32),
    #[error("--shard.index={index}: must be below --shard.total={total}")]
    IndexOutOfRange { index: u32, total: u32 },
    #[error("{0:?} does not end in -N (a StatefulSet pod name such as driftgauge-2)")]
    NoOrdinal(String),
    #[error("--cluster.replica={0:?}: must be 1 to {MAX_REPLICA_LEN} printable characters")]
    BadReplica(String),
}

/// The longest `--cluster.replica` accepted (it goes into every payload).
pub const MAX_REPLICA_LEN: usize = 128;

impl Shard {
    pub fn new(index: u32, total: u32) -> Result<Shard, ClusterError> {
        if total == 0 {
            return Err(ClusterError::NoShards(total));
        }
        if index >= total {
            return Err(ClusterError::IndexOutOfRange { index, total });
        }
        Ok(Shard { index, total })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// Does this shard evaluate the group named `group`?
    pub fn owns(&self, group: &str) -> bool {
        shard_of(group, self.total) == self.index
    }
}

/// A stable 64-bit hash of a group name, the one Prometheus's `hashmod` relabel action
/// computes: the last 8 bytes of its MD5, big-endian. The same on every machine, build and
/// version (std's hashers promise none of that), and the same as Prometheus's, so a
/// `hashmod` over a label whose values name the groups (one group per model, say) routes
/// each series to the shard that evaluates it.
pub fn group_hash(group: &str) -> u64 {
    let digest = Md5::digest(group.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&digest[8..]);
    u64::from_be_bytes(last)
}

/// The shard of `total` that evaluates `group`: `hashmod(group, total)` as Prometheus's
/// relabelling computes it.
pub fn shard_of(group: &str, total: u32) -> u32 {
    (group_hash(group) % u64::from(total.max(1))) as u32
}

/// The evaluation slot of `group` at or before `now_ms`, as Prometheus's
/// `Group.EvalTimestamp`: slots are `interval` apart, shifted from the multiples of the
/// interval by `hash(group) % interval`, so groups spread over the interval while every
/// replica puts a given group on the same instants.
pub fn eval_timestamp(group: &str, interval_ms: i64, now_ms: i64) -> i64 {
    let interval = interval_ms.max(1);
    let offset = (group_hash(group) % interval as u64) as i64;
    let adjusted = now_ms - offset;
    adjusted - adjusted.rem_euclid(interval) + offset
}

/// The first slot of `group` strictly after `now_ms`.
pub fn next_eval_timestamp(group: &str, interval_ms: i64, now_ms: i64) -> i64 {
    eval_timestamp(group, interval_ms, now_ms) + interval_ms.max(1)
}

/// The shard index in a StatefulSet pod name (or any name) ending in `-N`: `driftgauge-2`
/// gives 2.
pub fn ordinal_of(name: &str) -> Result<u32, ClusterError> {
    let name = name.trim();
    name.rsplit_once('-')
        .and_then(|(_, n)| {
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse().ok())
                .flatten()
        })
        .ok_or_else(|| ClusterError::NoOrdinal(name.to_string()))
}

/// Checks a `--cluster.replica` name.
pub fn check_replica(name: &str) -> Result<String, ClusterError> {
    let ok =
        !name.is_empty() && name.len() <= MAX_REPLICA_LEN && name.chars().all(|c| !c.is_control());
    if ok {
        Ok(name.to_string())
    } else {
        Err(ClusterError::BadReplica(name.chars().take(64).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_and_shifted_by_the_group_hash() {
        let interval = 15_000;
        let offset = (group_hash("fraud-model") % interval as u64) as i64;
        for now in [0, 1, 14_999, 15_000, 1_700_000_000_123, 1_700_000_007_777] {
            let slot = eval_timestamp("fraud-model", interval, now);
            assert!(slot <= now && now - slot < interval, "{now} -> {slot}");
            assert_eq!((slot - offset).rem_euclid(interval), 0, "{now} -> {slot}");
            assert_eq!(
                next_eval_timestamp("fraud-model", interval, now),
                slot + interval
            );
        }
        // A slot is its own slot; the instant before it belongs to the previous one.
        let slot = eval_timestamp("fraud-model", interval, 1_700_000_000_000);
        assert_eq!(eval_timestamp("fraud-model", interval, slot), slot);
        assert_eq!(
            eval_timestamp("fraud-model", interval, slot - 1),
            slot - interval
        );
    }

    const PINNED_FRAUD: u64 = 0x8001_7dda_345f_8570;

    #[test]
    fn the_hash_is_prometheus_hashmod_and_fixed_across_builds() {
        // Changing the hash reshards every deployment and moves every group's slots, so it
        // is pinned here: MD5("fraud") = 4f2b2ec0df16270a 80017dda345f8570, taken as
        // Prometheus takes it (the last 8 bytes, big-endian), computed with Python's hashlib.
        let digest = Md5::digest(b"fraud");
        let want = u64::from_be_bytes(digest[8..].try_into().expect("8 bytes"));
        assert_eq!(group_hash("fraud"), want);
        assert_eq!(group_hash("fraud"), PINNED_FRAUD);
        assert_eq!(shard_of("fraud-model", 1), 0);
    }

    #[test]
    fn every_group_has_exactly_one_shard_and_they_spread() {
        let total = 4;
        let shards: Vec<Shard> = (0..total)
            .map(|i| Shard::new(i, total).expect("shard"))
            .collect();
        let mut owned = [0usize; 4];
        for g in 0..1000 {
            let name = format!("group-{g}");
            let owners: Vec<u32> = shards
                .iter()
                .filter(|s| s.owns(&name))
                .map(|s| s.index())
                .collect();
            assert_eq!(owners.len(), 1, "{name}: {owners:?}");
            owned[owners[0] as usize] += 1;
        }
        for n in owned {
            assert!((213..=287).contains(&n), "{owned:?}");
        }
    }

    #[test]
    fn shard_and_ordinal_errors() {
        assert_eq!(Shard::new(0, 0), Err(ClusterError::NoShards(0)));
        assert_eq!(
            Shard::new(3, 3),
            Err(ClusterError::IndexOutOfRange { index: 3, total: 3 })
        );
        assert!(Shard::default().owns("anything"));
        assert_eq!(ordinal_of("driftgauge-2"), Ok(2));
        assert_eq!(ordinal_of("dg-shard-10\n"), Ok(10));
        for bad in [
            "driftgauge",
            "driftgauge-",
            "driftgauge-x1",
            "-",
            "",
            "a-99999999999",
        ] {
            assert!(ordinal_of(bad).is_err(), "{bad}");
        }
        assert_eq!(check_replica("a"), Ok("a".to_string()));
        assert!(check_replica("").is_err());
        assert!(check_replica("a\nb").is_err());
        assert!(check_replica(&"x".repeat(129)).is_err());
    }
}
