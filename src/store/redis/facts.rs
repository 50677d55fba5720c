//! The per-process cache of lists' immutable facts.
//!
//! The owner of a list never changes, and neither do its format, width,
//! capacity and allocator key, so the adapter keeps them in memory after the
//! first lookup and the hot paths are one round trip. It also remembers the
//! list it last allocated from per (client, format), so the allocation
//! script need not send that list's facts back.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::replies::StoredFacts;
use crate::domain::{Allocator, Bits, ClientId, ListFormat, ListId};
use crate::ports::StoreError;
use crate::store::common;

/// The immutable facts of a list, cached per process after the first lookup.
#[derive(Debug)]
pub(super) struct ListFacts {
    /// The owning client.
    pub client: ClientId,
    /// The shard of the client the list's keys are in (0 unless the client
    /// is spread over several, see [`super::RedisSettings`]).
    pub shard: u16,
    /// The list's format.
    pub format: ListFormat,
    /// Bits per entry.
    pub bits: Bits,
    /// Entries in the list.
    pub capacity: u64,
    /// The length its bytes must have (from `bits` and `capacity`).
    pub byte_len: usize,
    /// Bytes per chunk of its bytes (all chunks this long but the last).
    pub chunk_bytes: usize,
    /// The list's index permutation, expanded from its key once.
    pub allocator: Allocator,
    /// The seq of its first entry in its entry space; `None` for a list
    /// opened before entry spaces (its changes update no listing index).
    pub base: Option<u64>,
}

impl ListFacts {
    /// Expands the stored facts of `list`, owned by `client`.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a capacity the allocator or the width
    /// does not accept.
    pub(super) fn new(
        list: &ListId,
        client: ClientId,
        stored: StoredFacts,
    ) -> Result<Self, StoreError> {
        let allocator = Allocator::new(&stored.key, stored.capacity)
            .map_err(|e| StoreError::Corrupt(format!("list {list}: {e}")))?;
        let byte_len = crate::domain::packed::byte_len(stored.bits, stored.capacity)
            .map_err(|e| StoreError::Corrupt(format!("list {list}: {e}")))?;
        Ok(ListFacts {
            client,
            shard: 0,
            format: stored.format,
            bits: stored.bits,
            capacity: stored.capacity,
            byte_len,
            // A list made before chunking is one chunk.
            chunk_bytes: stored
                .chunk_bytes
                .unwrap_or(byte_len)
                .clamp(1, byte_len.max(1)),
            allocator,
            base: stored.base,
        })
    }

    /// The same facts for a list in shard `shard` of its client.
    pub(super) fn in_shard(self, shard: u16) -> Self {
        ListFacts { shard, ..self }
    }

    /// The lengths of the list's chunks, in order.
    pub(super) fn chunk_lens(&self) -> impl Iterator<Item = usize> {
        super::layout::chunk_lens(self.byte_len, self.chunk_bytes)
    }

    /// How many chunks the list's bytes are.
    pub(super) fn chunks(&self) -> usize {
        self.byte_len.div_ceil(self.chunk_bytes)
    }
}

/// List id → facts, and current-list key → the list last allocated from.
/// A std `RwLock` is right here: the critical sections are a hash lookup or
/// insert and never await. A poisoned lock only means another thread
/// panicked while holding it; the maps are always consistent (single
/// inserts), so it is used anyway.
#[derive(Debug, Default)]
pub(super) struct FactsCache {
    lists: RwLock<HashMap<ListId, Arc<ListFacts>>>,
    /// Always names a list whose facts are in `lists` when it was set (they
    /// may have been forgotten since; the caller looks them up again).
    last: RwLock<HashMap<String, ListId>>,
}

impl FactsCache {
    /// An empty cache.
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// The cached facts of `list`.
    pub(super) fn get(&self, list: &ListId) -> Option<Arc<ListFacts>> {
        let map = self.lists.read().unwrap_or_else(|e| e.into_inner());
        map.get(list).cloned()
    }

    /// Caches the facts of `list` (keeping facts already cached: they are
    /// the same) and returns what is cached.
    pub(super) fn remember(&self, list: ListId, facts: ListFacts) -> Arc<ListFacts> {
        let mut map = self.lists.write().unwrap_or_else(|e| e.into_inner());
        // Bounded like `common::AllocatorCache`: a process that reads many
        // lists forgets them all at once rather than growing; facts missing
        // from memory are looked up in Redis again.
        if map.len() >= common::CACHE_LIMIT && !map.contains_key(&list) {
            map.clear();
        }
        map.entry(list).or_insert_with(|| Arc::new(facts)).clone()
    }

    /// The list this process last allocated from under `current_key`.
    pub(super) fn last_list(&self, current_key: &str) -> Option<ListId> {
        let map = self.last.read().unwrap_or_else(|e| e.into_inner());
        map.get(current_key).copied()
    }

    /// Remembers that this process allocated from `list` under
    /// `current_key`.
    pub(super) fn set_last_list(&self, current_key: String, list: ListId) {
        let mut map = self.last.write().unwrap_or_else(|e| e.into_inner());
        map.insert(current_key, list);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AllocatorKey;

    fn stored(capacity: u64) -> StoredFacts {
        StoredFacts {
            format: ListFormat::Token,
            bits: Bits::Two,
            capacity,
            key: AllocatorKey::from_bytes([2; 32]),
            chunk_bytes: None,
            base: None,
        }
    }

    #[test]
    fn facts_are_expanded_once_and_kept() {
        let cache = FactsCache::new();
        let list = ListId::from_random_bytes([1; 6]);
        let client = ClientId::parse("acme").unwrap();
        assert!(cache.get(&list).is_none());
        let facts = ListFacts::new(&list, client.clone(), stored(100)).unwrap();
        assert_eq!(facts.byte_len, 25);
        assert_eq!(
            (facts.chunk_bytes, facts.chunks()),
            (25, 1),
            "unchunked: one chunk"
        );
        let chunked = StoredFacts {
            chunk_bytes: Some(10),
            ..stored(100)
        };
        let chunked = ListFacts::new(&list, client.clone(), chunked).unwrap();
        assert_eq!(chunked.chunks(), 3);
        assert_eq!(chunked.chunk_lens().collect::<Vec<_>>(), vec![10, 10, 5]);
        let first = cache.remember(list, facts);
        let again = cache.remember(list, ListFacts::new(&list, client, stored(100)).unwrap());
        assert!(Arc::ptr_eq(&first, &again));
        assert!(Arc::ptr_eq(&first, &cache.get(&list).unwrap()));
        assert!(ListFacts::new(&list, ClientId::parse("acme").unwrap(), stored(0)).is_err());

        assert_eq!(cache.last_list("cur"), None);
        cache.set_last_list("cur".to_owned(), list);
        assert_eq!(cache.last_list("cur"), Some(list));
    }
}
