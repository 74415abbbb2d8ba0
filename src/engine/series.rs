//! The series of one rule: a map from labels to state whose entries also sit in a vector, so
//! an evaluation reaches them by position (no hashing of label maps), and whose `version`
//! changes whenever a series comes or goes (so an evaluation knows when its sorted order
//! of the series must be made again).

use std::collections::HashMap;

/// Label maps to values, reachable by key and by position. Removal swaps the last entry into
/// the hole, so positions hold only while `version` stays the same.
#[derive(Debug)]
pub(super) struct SeriesMap<K, V> {
    entries: Vec<(K, V)>,
    index: HashMap<K, usize>,
    version: u64,
}

impl<K, V> Default for SeriesMap<K, V> {
    fn default() -> Self {
        SeriesMap {
            entries: Vec::new(),
            index: HashMap::new(),
            version: 0,
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone, V> SeriesMap<K, V> {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Changes whenever an entry is added or removed.
    pub(super) fn version(&self) -> u64 {
        self.version
    }

    pub(super) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let &i = self.index.get(key)?;
        Some(&self.entries[i].1)
    }

    pub(super) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let &i = self.index.get(key)?;
        Some(&mut self.entries[i].1)
    }

    /// The entry at `position` (as [`iter`](Self::iter) lists them).
    pub(super) fn at_mut(&mut self, position: usize) -> Option<(&K, &mut V)> {
        self.entries.get_mut(position).map(|(k, v)| (&*k, v))
    }

    /// The value of `key`, made by `make` when there is none.
    pub(super) fn get_or_insert_with(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let i = self.entries.len();
                self.entries.push((key.clone(), make()));
                self.index.insert(key.clone(), i);
                self.version += 1;
                i
            }
        };
        &mut self.entries[i].1
    }

    /// Sets the value of `key`; returns the value it replaced.
    pub(super) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.index.get(&key) {
            Some(&i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.index.insert(key.clone(), self.entries.len());
                self.entries.push((key, value));
                self.version += 1;
                None
            }
        }
    }

    /// Keeps the entries `keep` says to keep.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(|(k, v)| keep(k, v));
        if self.entries.len() != before {
            self.version += 1;
            self.index.clear();
            for (i, (k, _)) in self.entries.iter().enumerate() {
                self.index.insert(k.clone(), i);
            }
        }
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_keys_agree_through_inserts_and_removals() {
        let mut m: SeriesMap<String, u32> = SeriesMap::default();
        for i in 0..10u32 {
            *m.get_or_insert_with(&format!("k{i}"), || 0) += i;
        }
        let v = m.version();
        *m.get_or_insert_with(&"k3".to_string(), || 100) += 1;
        assert_eq!(
            m.version(),
            v,
            "a lookup of an existing key is not a change"
        );
        assert_eq!(m.get_mut("k3"), Some(&mut 4));
        assert_eq!(m.insert("k3".into(), 30), Some(4));
        assert_eq!(m.version(), v);
        m.retain(|_, x| *x % 2 == 0);
        assert_ne!(m.version(), v);
        assert_eq!(m.len(), 6);
        for i in 0..m.len() {
            let (k, x) = m.at_mut(i).expect("in range");
            let (k, x) = (k.clone(), *x);
            assert_eq!(m.get_mut(k.as_str()), Some(&mut x.clone()), "{k}");
        }
        assert!(m.get_mut("k1").is_none());
        let v = m.version();
        m.retain(|_, _| true);
        assert_eq!(m.version(), v, "keeping all is not a change");
        assert_eq!(m.keys().count(), m.iter().count());
    }
}
