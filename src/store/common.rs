//! Rules every adapter applies the same way, kept out of the adapters so that
//! Redis and redb cannot drift apart: checking settings and requests, the
//! idempotency decision, the status-change decision, turning allocation
//! numbers into indexes, and the per-process cache of list allocators.
//!
//! Everything here is pure or in-memory; an adapter that runs a rule inside
//! its backend (a Redis Lua script) must follow the same table, and the
//! contract suite checks that it does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::{Allocator, AllocatorKey, Bits, ListId, Status, Transition};

use super::{AllocateRequest, SetStatusOutcome, StoreError, StoreSettings, UnixSeconds};

/// The longest `jti` the store accepts. `auth` only lets lowercase UUIDs
/// (36 characters) through; the bound keeps a bug upstream from writing
/// arbitrarily large keys.
pub const MAX_JTI_LEN: usize = 256;

/// Checks settings once, when an adapter is built.
///
/// # Errors
/// [`StoreError::Invalid`] for a capacity of 0 or above
/// [`crate::domain::max_list_capacity`] for the list width, or a lease longer than the idempotency window
/// (a record would vanish while its request is still in flight).
pub fn check_settings(settings: &StoreSettings) -> Result<(), StoreError> {
    let max = crate::domain::max_list_capacity(settings.bits);
    if settings.capacity == 0 || settings.capacity > max {
        return Err(StoreError::Invalid(format!(
            "list capacity must be between 1 and {max}, not {}",
            settings.capacity
        )));
    }
    if settings.lease > settings.idempotency_window {
        return Err(StoreError::Invalid(format!(
            "the in-flight lease ({} s) must not exceed the idempotency window ({} s)",
            settings.lease.as_secs(),
            settings.idempotency_window.as_secs()
        )));
    }
    Ok(())
}

/// Checks an allocation request against the settings new lists are built
/// with.
///
/// # Errors
/// [`StoreError::Invalid`] for a count of 0 or above the capacity of a new
/// list (all indexes of one request come from one list), or an empty or
/// over-long jti.
pub fn check_request(req: &AllocateRequest, settings: &StoreSettings) -> Result<(), StoreError> {
    if req.count == 0 {
        return Err(StoreError::Invalid("count must be at least 1".into()));
    }
    if u64::from(req.count) > settings.capacity {
        return Err(StoreError::Invalid(format!(
            "count {} exceeds the list capacity {}",
            req.count, settings.capacity
        )));
    }
    if req.jti.is_empty() || req.jti.len() > MAX_JTI_LEN {
        return Err(StoreError::Invalid(format!(
            "a jti is 1 to {MAX_JTI_LEN} bytes, not {}",
            req.jti.len()
        )));
    }
    Ok(())
}

/// What an existing idempotency record says about a new request with the
/// same (client, jti). The adapter reads the record and acts on this in the
/// same atomic step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayDecision {
    /// The record has outlived the idempotency window: treat the request as
    /// new (and replace the record).
    Expired,
    /// Another digest: [`super::AllocateOutcome::Changed`], whatever the state.
    Changed,
    /// Same digest, finished: answer with the recorded allocation.
    Replay,
    /// Same digest, in flight under a live lease:
    /// [`super::AllocateOutcome::InFlight`].
    InFlight,
    /// Same digest, in flight, lease over: the first request died after
    /// allocating. Answer with the recorded allocation and mark the record
    /// done; never allocate again.
    TakeOver,
}

/// The fields of an idempotency record the decision needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordState {
    /// The digest of the first request.
    pub digest: [u8; 32],
    /// Whether [`super::Store::complete`] (or a take-over) marked it done.
    pub done: bool,
    /// Until when (exclusive) the first request holds its lease.
    pub lease_until: UnixSeconds,
    /// When (inclusive) the record stops counting.
    pub expires_at: UnixSeconds,
}

/// The idempotency decision for a request with `digest` at `now`, given the
/// record already stored under its (client, jti).
pub fn replay_decision(
    record: &RecordState,
    digest: &[u8; 32],
    now: UnixSeconds,
) -> ReplayDecision {
    if now >= record.expires_at {
        ReplayDecision::Expired
    } else if &record.digest != digest {
        ReplayDecision::Changed
    } else if record.done {
        ReplayDecision::Replay
    } else if now < record.lease_until {
        ReplayDecision::InFlight
    } else {
        ReplayDecision::TakeOver
    }
}

/// What to do with a status change once the list, its owner and the index
/// have been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusDecision {
    /// Write `value` at the index, record the time, bump the version once.
    Write {
        /// The raw value to store.
        value: u8,
    },
    /// Nothing to write: the answer is this outcome (Already or NotAllowed).
    Answer(SetStatusOutcome),
}

/// Decides a status change from the entry's current raw value.
///
/// `recorded` is the sparse per-list record for the index, if any: the last
/// status set there and when.
///
/// # Errors
/// [`StoreError::Corrupt`] for a stored value with no known meaning (the
/// service never writes one), [`StoreError::Invalid`] when `target` does not
/// fit the list's width (SUSPENDED in a 1-bit list).
pub fn status_decision(
    current_raw: u8,
    target: Status,
    bits: Bits,
    recorded: Option<(Status, UnixSeconds)>,
) -> Result<StatusDecision, StoreError> {
    let current = Status::from_value(current_raw).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "entry holds the unknown status value {current_raw}"
        ))
    })?;
    match current.transition_to(target) {
        Ok(Transition::Unchanged) => Ok(StatusDecision::Answer(SetStatusOutcome::Already {
            at: recorded.and_then(|(s, at)| (s == current).then_some(at)),
        })),
        Err(_) => Ok(StatusDecision::Answer(SetStatusOutcome::NotAllowed {
            current,
        })),
        Ok(Transition::Changed) => {
            if !bits.fits(target.value()) {
                return Err(StoreError::Invalid(format!(
                    "status {target} does not fit a list of {bits}-bit entries"
                )));
            }
            Ok(StatusDecision::Write {
                value: target.value(),
            })
        }
    }
}

/// The indexes of allocation numbers `first .. first + count`.
///
/// # Errors
/// [`StoreError::Corrupt`] when a number is not below the allocator's
/// capacity (a stored record that disagrees with its list).
pub fn indexes(allocator: &Allocator, first: u64, count: u32) -> Result<Vec<u64>, StoreError> {
    (first..first.saturating_add(u64::from(count)))
        .map(|n| {
            allocator
                .permute(n)
                .map_err(|e| StoreError::Corrupt(format!("allocation record: {e}")))
        })
        .collect()
}

/// Whether index `idx` of a list with `capacity` entries and `allocated`
/// handed out was ever issued: computed with the allocator's inverse, since
/// nothing is stored per entry.
pub fn was_issued(allocator: &Allocator, capacity: u64, allocated: u64, idx: u64) -> bool {
    idx < capacity && allocator.invert(idx).is_ok_and(|n| n < allocated)
}

/// How many entries the per-list caches ([`AllocatorCache`], the Redis
/// adapter's list facts) keep before they start over. Each
/// is about a hundred bytes; the bound only matters for a process that lives
/// through thousands of lists.
pub const CACHE_LIMIT: usize = 4096;

/// A per-process cache of list allocators. Allocators are immutable (a list's
/// key and capacity never change), so a cached one is never stale, and the
/// BLAKE3 key expansion runs once per list instead of on every call.
#[derive(Debug, Default)]
pub struct AllocatorCache {
    /// Guarded by a std mutex: held only for a map lookup or insert, never
    /// across an await or I/O.
    map: Mutex<HashMap<ListId, Arc<Allocator>>>,
}

impl AllocatorCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached allocator of `list`, if any.
    pub fn get(&self, list: &ListId) -> Option<Arc<Allocator>> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(list).cloned()
    }

    /// The allocator of `list`, built from its stored key and capacity on
    /// first use.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the stored capacity is not one the
    /// allocator accepts.
    pub fn get_or_build(
        &self,
        list: &ListId,
        key: &AllocatorKey,
        capacity: u64,
    ) -> Result<Arc<Allocator>, StoreError> {
        if let Some(found) = self.get(list).filter(|a| a.capacity() == capacity) {
            return Ok(found);
        }
        let built = Arc::new(
            Allocator::new(key, capacity)
                .map_err(|e| StoreError::Corrupt(format!("list {list}: {e}")))?,
        );
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= CACHE_LIMIT {
            map.clear();
        }
        map.insert(*list, Arc::clone(&built));
        Ok(built)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::{ClientId, ListFormat};

    fn record(done: bool) -> RecordState {
        RecordState {
            digest: [1; 32],
            done,
            lease_until: 130,
            expires_at: 3700,
        }
    }

    #[test]
    fn the_replay_table() {
        let same = [1u8; 32];
        let other = [2u8; 32];
        for (rec, digest, now, expected) in [
            (record(false), &same, 100, ReplayDecision::InFlight),
            (record(false), &same, 129, ReplayDecision::InFlight),
            (record(false), &same, 130, ReplayDecision::TakeOver),
            (record(true), &same, 100, ReplayDecision::Replay),
            (record(true), &other, 100, ReplayDecision::Changed),
            (record(false), &other, 100, ReplayDecision::Changed),
            (record(false), &other, 200, ReplayDecision::Changed),
            (record(true), &same, 3700, ReplayDecision::Expired),
            (record(false), &other, 5000, ReplayDecision::Expired),
        ] {
            assert_eq!(
                replay_decision(&rec, digest, now),
                expected,
                "{rec:?} at {now}"
            );
        }
    }

    #[test]
    fn the_status_table() {
        use Status::*;
        let w = |v: Status| Ok(StatusDecision::Write { value: v.value() });
        assert_eq!(status_decision(0, Invalid, Bits::Two, None), w(Invalid));
        assert_eq!(status_decision(0, Suspended, Bits::Two, None), w(Suspended));
        assert_eq!(status_decision(2, Valid, Bits::Two, None), w(Valid));
        assert_eq!(
            status_decision(1, Invalid, Bits::Two, Some((Invalid, 7))),
            Ok(StatusDecision::Answer(SetStatusOutcome::Already {
                at: Some(7)
            }))
        );
        assert_eq!(
            status_decision(0, Valid, Bits::Two, None),
            Ok(StatusDecision::Answer(SetStatusOutcome::Already {
                at: None
            }))
        );
        assert_eq!(
            status_decision(1, Valid, Bits::Two, Some((Invalid, 7))),
            Ok(StatusDecision::Answer(SetStatusOutcome::NotAllowed {
                current: Invalid
            }))
        );
        assert!(matches!(
            status_decision(0, Suspended, Bits::One, None),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            status_decision(9, Valid, Bits::Eight, None),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn requests_and_settings_are_checked() {
        let settings = StoreSettings {
            capacity: 10,
            ..StoreSettings::default()
        };
        let ok = AllocateRequest {
            client: ClientId::parse("c").unwrap(),
            format: ListFormat::Token,
            jti: "j".into(),
            digest: [0; 32],
            status_expiry: 0,
            count: 10,
            now: 0,
        };
        assert!(check_request(&ok, &settings).is_ok());
        for bad in [
            AllocateRequest {
                count: 0,
                ..ok.clone()
            },
            AllocateRequest {
                count: 11,
                ..ok.clone()
            },
            AllocateRequest {
                jti: String::new(),
                ..ok.clone()
            },
            AllocateRequest {
                jti: "x".repeat(MAX_JTI_LEN + 1),
                ..ok.clone()
            },
        ] {
            assert!(matches!(
                check_request(&bad, &settings),
                Err(StoreError::Invalid(_))
            ));
        }
        assert!(check_settings(&StoreSettings::default()).is_ok());
        for bad in [
            StoreSettings {
                capacity: 0,
                ..StoreSettings::default()
            },
            StoreSettings {
                capacity: u64::MAX,
                ..StoreSettings::default()
            },
            // 2^32 two-bit entries are 1 GiB: more than one Redis string.
            StoreSettings {
                capacity: 1 << 32,
                ..StoreSettings::default()
            },
            StoreSettings {
                lease: Duration::from_secs(7200),
                ..StoreSettings::default()
            },
        ] {
            assert!(check_settings(&bad).is_err(), "{bad:?}");
        }
        assert!(
            check_settings(&StoreSettings {
                capacity: 1 << 32,
                bits: Bits::One,
                ..StoreSettings::default()
            })
            .is_ok()
        );
    }

    #[test]
    fn issued_is_computed_from_the_counter() {
        let key = AllocatorKey::from_bytes([3; 32]);
        let a = Allocator::new(&key, 100).unwrap();
        let issued = indexes(&a, 0, 5).unwrap();
        for idx in 0..100 {
            assert_eq!(was_issued(&a, 100, 5, idx), issued.contains(&idx));
        }
        assert!(!was_issued(&a, 100, 100, 100));
        assert!(!was_issued(&a, 100, 100, u64::MAX));
        assert!(indexes(&a, 99, 2).is_err());
        let cache = AllocatorCache::new();
        let id = ListId::from_random_bytes([1; 6]);
        let cached = cache.get_or_build(&id, &key, 100).unwrap();
        assert_eq!(cached.permute(3).unwrap(), a.permute(3).unwrap());
        assert!(Arc::ptr_eq(&cached, &cache.get(&id).unwrap()));
        assert!(cache.get_or_build(&id, &key, 0).is_err());
    }
}
