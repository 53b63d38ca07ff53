//! Journaled tables and the incremental state root.
//!
//! Every table of the contract is a [`Table`]: an ordered map whose only mutators record the
//! previous value, so a rejected transaction or an invalid block is rolled back exactly, and
//! so the state root can be updated from the entries a block touched alone.
//!
//! The state root is a homomorphic multiset hash (LtHash, Bellare–Micciancio; the parameters of
//! Facebook's LtHash16: 1024 lanes of 16 bits): each entry `(table, key, value)` is hashed to
//! 32 bytes, expanded with blake3's XOF to 2048 bytes and added lane-wise to an accumulator.
//! Changing an entry subtracts its old expansion and adds the new one, so a block costs
//! O(entries touched), whatever the size of the state, and the result is still a function of
//! the whole state (not of its history): two states with equal entries have equal roots. The
//! root is blake3 of the accumulator and the scalar globals.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Lanes of the LtHash accumulator.
const LANES: usize = 1024;

/// The homomorphic multiset hash accumulator.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct LtHash(Box<[u16; LANES]>);

impl Default for LtHash {
    fn default() -> Self {
        Self(Box::new([0u16; LANES]))
    }
}

impl std::fmt::Debug for LtHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LtHash({:04x}{:04x}..)", self.0[0], self.0[1])
    }
}

fn expand(digest: &[u8; 32]) -> [u8; LANES * 2] {
    let mut out = [0u8; LANES * 2];
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let key = KEY.get_or_init(|| blake3::derive_key("memo 2026 lthash lanes v1", b""));
    blake3::Hasher::new_keyed(key)
        .update(digest)
        .finalize_xof()
        .fill(&mut out);
    out
}

impl LtHash {
    pub(crate) fn add(&mut self, digest: &[u8; 32]) {
        let e = expand(digest);
        for (lane, b) in self.0.iter_mut().zip(e.chunks_exact(2)) {
            *lane = lane.wrapping_add(u16::from_le_bytes([b[0], b[1]]));
        }
    }

    pub(crate) fn sub(&mut self, digest: &[u8; 32]) {
        let e = expand(digest);
        for (lane, b) in self.0.iter_mut().zip(e.chunks_exact(2)) {
            *lane = lane.wrapping_sub(u16::from_le_bytes([b[0], b[1]]));
        }
    }

    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|l| l.to_le_bytes()).collect()
    }
}

/// The digest of one table entry.
fn entry_digest<K: Serialize, V: Serialize>(tag: u8, key: &K, value: &V) -> [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    let hash_key = KEY.get_or_init(|| blake3::derive_key("memo 2026 state entry v1", b""));
    let mut h = blake3::Hasher::new_keyed(hash_key);
    h.update(&[tag]);
    let k = crate::wire::encode(key);
    h.update(&(k.len() as u32).to_le_bytes());
    h.update(&k);
    h.update(&crate::wire::encode(value));
    *h.finalize().as_bytes()
}

/// An ordered map with an undo journal and a record of what the open block touched.
#[derive(Clone, Debug)]
pub(crate) struct Table<K, V> {
    tag: u8,
    map: BTreeMap<K, V>,
    /// Previous values, newest last; rolled back in reverse.
    undo: Vec<(K, Option<V>)>,
    /// For each key touched since the last fold: its value before (for the root update).
    dirty: BTreeMap<K, Option<V>>,
}

impl<K: Ord + Clone + Serialize, V: Clone + Serialize> Table<K, V> {
    pub(crate) fn new(tag: u8) -> Self {
        Self {
            tag,
            map: BTreeMap::new(),
            undo: Vec::new(),
            dirty: BTreeMap::new(),
        }
    }

    pub(crate) fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    pub(crate) fn contains(&self, k: &K) -> bool {
        self.map.contains_key(k)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter()
    }

    pub(crate) fn range<R: std::ops::RangeBounds<K>>(
        &self,
        r: R,
    ) -> impl Iterator<Item = (&K, &V)> {
        self.map.range(r)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn touch(&mut self, k: &K) {
        let old = self.map.get(k).cloned();
        if !self.dirty.contains_key(k) {
            self.dirty.insert(k.clone(), old.clone());
        }
        self.undo.push((k.clone(), old));
    }

    pub(crate) fn insert(&mut self, k: K, v: V) {
        self.touch(&k);
        self.map.insert(k, v);
    }

    pub(crate) fn remove(&mut self, k: &K) -> Option<V> {
        if !self.map.contains_key(k) {
            return None;
        }
        self.touch(k);
        self.map.remove(k)
    }

    /// Mutates the entry at `k`, if present.
    pub(crate) fn update<R>(&mut self, k: &K, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        if !self.map.contains_key(k) {
            return None;
        }
        self.touch(k);
        self.map.get_mut(k).map(f)
    }

    /// Mutates the entry at `k`, inserting `V::default()` first if absent.
    pub(crate) fn upsert<R>(&mut self, k: &K, f: impl FnOnce(&mut V) -> R) -> R
    where
        V: Default,
    {
        self.touch(k);
        f(self.map.entry(k.clone()).or_default())
    }

    pub(crate) fn mark(&self) -> usize {
        self.undo.len()
    }

    pub(crate) fn rollback(&mut self, mark: usize) {
        while self.undo.len() > mark {
            let Some((k, old)) = self.undo.pop() else {
                break;
            };
            match old {
                Some(v) => {
                    self.map.insert(k, v);
                }
                None => {
                    self.map.remove(&k);
                }
            }
        }
    }

    /// Forgets the journal (the block is committed).
    pub(crate) fn commit(&mut self) {
        self.undo.clear();
    }

    /// Folds the entries touched since the last fold into `acc`.
    pub(crate) fn fold(&mut self, acc: &mut LtHash) {
        for (k, old) in std::mem::take(&mut self.dirty) {
            let before = old.map(|v| entry_digest(self.tag, &k, &v));
            let after = self.map.get(&k).map(|v| entry_digest(self.tag, &k, v));
            if before != after {
                if let Some(d) = before {
                    acc.sub(&d);
                }
                if let Some(d) = after {
                    acc.add(&d);
                }
            }
        }
    }

    /// Forgets the touched set without folding (the block was aborted and rolled back).
    pub(crate) fn clear_dirty(&mut self) {
        self.dirty.clear();
    }

    /// Adds every entry to `acc` (a from-scratch root, for checks).
    pub(crate) fn fold_all(&self, acc: &mut LtHash) {
        for (k, v) in &self.map {
            acc.add(&entry_digest(self.tag, k, v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_equals_from_scratch_and_rollback_restores() {
        let mut t: Table<u32, u64> = Table::new(1);
        let mut acc = LtHash::default();
        for i in 0..50u32 {
            t.insert(i, u64::from(i) * 3);
        }
        t.fold(&mut acc);
        t.commit();
        let mut scratch = LtHash::default();
        t.fold_all(&mut scratch);
        assert_eq!(acc, scratch);

        let m = t.mark();
        t.insert(7, 1);
        t.remove(&8);
        t.upsert(&100, |v| *v += 5);
        t.update(&9, |v| *v = 0);
        t.rollback(m);
        t.fold(&mut acc);
        assert_eq!(acc, scratch, "rolled-back writes leave the root unchanged");
        assert_eq!(t.get(&8), Some(&24));
        assert_eq!(t.get(&100), None);

        t.remove(&3);
        t.insert(3, 9);
        t.insert(77, 1);
        t.fold(&mut acc);
        let mut scratch = LtHash::default();
        t.fold_all(&mut scratch);
        assert_eq!(acc, scratch);
    }

    #[test]
    fn order_of_insertion_does_not_matter() {
        let mut a: Table<u32, u32> = Table::new(1);
        let mut b: Table<u32, u32> = Table::new(1);
        for i in 0..20 {
            a.insert(i, i);
            b.insert(19 - i, 19 - i);
        }
        let (mut x, mut y) = (LtHash::default(), LtHash::default());
        a.fold(&mut x);
        b.fold(&mut y);
        assert_eq!(x, y);
        b.insert(3, 4);
        b.fold(&mut y);
        assert_ne!(x, y);
        // The key matters, not only the value; and so does the table.
        let (mut p, mut q, mut r) = (Table::new(1), Table::new(1), Table::new(2));
        p.insert(1u32, 5u32);
        q.insert(2u32, 5u32);
        r.insert(1u32, 5u32);
        let (mut hp, mut hq, mut hr) = (LtHash::default(), LtHash::default(), LtHash::default());
        p.fold(&mut hp);
        q.fold(&mut hq);
        r.fold(&mut hr);
        assert_ne!(hp, hq);
        assert_ne!(hp, hr);
    }
}
