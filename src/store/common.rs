//! Rules every adapter applies the same way, kept out of the adapters so that
//! Redis and redb cannot drift apart: checking settings and requests, the
//! idempotency decision, the status-change decision, turning allocation
//! numbers into indexes, the per-process cache of list allocators, and the
//! record of damaged lists.
//!
//! Everything here is pure or in-memory; an adapter that runs a rule inside
//! its backend (a Redis Lua script) must follow the same table, and the
//! contract suite checks that it does.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use crate::domain::{Allocator, AllocatorKey, Bits, ListId, Status, Transition};

use crate::ports::{
    AllocateRequest, JtiClaim, RefChange, SetStatusOutcome, StatusChange, StoreError,
    StoreSettings, UnixSeconds,
};

/// Checks settings once, when an adapter is built.
///
/// # Errors
/// [`StoreError::Invalid`] for a capacity of 0 or above
/// [`crate::domain::max_list_capacity`] for the list width, or an
/// idempotency window of zero.
pub fn check_settings(settings: &StoreSettings) -> Result<(), StoreError> {
    let max = crate::domain::max_list_capacity(settings.bits);
    if settings.capacity == 0 || settings.capacity > max {
        return Err(StoreError::Invalid(format!(
            "list capacity must be between 1 and {max}, not {}",
            settings.capacity
        )));
    }
    if settings.idempotency_window.is_zero() {
        return Err(StoreError::Invalid(
            "the idempotency window must be above zero".to_owned(),
        ));
    }
    Ok(())
}

/// Checks a status change before it reaches the backend.
///
/// # Errors
/// [`StoreError::Invalid`] for a record that would end before the request's
/// own time.
pub fn check_change(change: &StatusChange) -> Result<(), StoreError> {
    check_keep(change.now, change.keep_until)
}

/// Checks a change by ref before it reaches the backend.
///
/// # Errors
/// [`StoreError::Invalid`] for a record that would end before the request's
/// own time.
pub fn check_ref_change(change: &RefChange) -> Result<(), StoreError> {
    check_keep(change.now, change.keep_until)
}

/// Checks a single-use jti claim before it reaches the backend.
///
/// # Errors
/// [`StoreError::Invalid`] for a record that would end before the request's
/// own time.
pub fn check_claim(claim: &JtiClaim) -> Result<(), StoreError> {
    check_keep(claim.now, claim.keep_until)
}

fn check_keep(now: UnixSeconds, keep_until: UnixSeconds) -> Result<(), StoreError> {
    if keep_until <= now {
        return Err(StoreError::Invalid(format!(
            "an idempotency record must outlive its request (keep until {keep_until}, now {now})"
        )));
    }
    Ok(())
}

/// Checks an allocation request against the settings new lists are built
/// with.
///
/// # Errors
/// [`StoreError::Invalid`] for a count of 0 or above the capacity of a new
/// list (a request spans at most two lists: the room left in the current
/// one, then a new one), or a record that would end before the request's
/// time.
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
    check_keep(req.now, req.keep_until)
}

/// What an existing idempotency record says about a new request with the
/// same (client, jti). The adapter reads the record and acts on this in the
/// same atomic step as the write it guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayDecision {
    /// The record has outlived its request's `keep_until`: treat the request
    /// as new (and replace the record). Such a request can only arrive if
    /// the `iat` check let it through, which it no longer does by then.
    Expired,
    /// Another digest (another request, operation or target, or an issue
    /// record met by a change or the reverse): refuse, apply nothing.
    Changed,
    /// Same digest: answer with the recorded outcome, apply nothing.
    Replay,
}

/// The idempotency decision for a request with `digest` at `now`, given the
/// digest and end of life of the record already stored under its
/// (client, jti). Issue and change digests are domain-separated
/// ([`crate::domain::claims`]), so they never match each other.
pub fn replay_decision(
    recorded: &[u8; 32],
    expires_at: UnixSeconds,
    digest: &[u8; 32],
    now: UnixSeconds,
) -> ReplayDecision {
    if now >= expires_at {
        ReplayDecision::Expired
    } else if recorded != digest {
        ReplayDecision::Changed
    } else {
        ReplayDecision::Replay
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
/// status set there and when. A target that does not fit the list's width
/// (SUSPENDED in a 1-bit list) is answered with
/// [`SetStatusOutcome::Unsupported`].
///
/// # Errors
/// [`StoreError::Corrupt`] for a stored value with no known meaning (the
/// service never writes one).
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
        Ok(Transition::Changed) if !bits.fits(target.value()) => {
            Ok(StatusDecision::Answer(SetStatusOutcome::Unsupported {
                bits,
            }))
        }
        Ok(Transition::Changed) => Ok(StatusDecision::Write {
            value: target.value(),
        }),
    }
}

/// What a status change to one target does to an entry, decided by the
/// entry's current raw value alone: [`status_decision`] without the recorded
/// time, for a backend that applies the rule itself (the Redis script cannot
/// call Rust, so it is handed these rules, encoded by the adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryRule {
    /// The entry already holds the target: nothing is written, the answer
    /// is [`SetStatusOutcome::Already`].
    Unchanged,
    /// Write the target, record the time, bump the version.
    Change,
    /// The transition is forbidden, or the current value has no meaning:
    /// [`SetStatusOutcome::NotAllowed`] (or corrupt data, for a value the
    /// service never writes).
    NotAllowed,
    /// A change to a value the list's width cannot hold:
    /// [`SetStatusOutcome::Unsupported`].
    TooWide,
}

impl EntryRule {
    /// The rule for an entry holding `current` when `target` is asked for
    /// in a list `bits` wide. Derived from [`status_decision`], so the rule
    /// lives in one place.
    pub fn of(current: u8, target: Status, bits: Bits) -> EntryRule {
        match status_decision(current, target, bits, None) {
            Ok(StatusDecision::Write { .. }) => EntryRule::Change,
            Ok(StatusDecision::Answer(SetStatusOutcome::Already { .. })) => EntryRule::Unchanged,
            Ok(StatusDecision::Answer(SetStatusOutcome::Unsupported { .. })) => EntryRule::TooWide,
            _ => EntryRule::NotAllowed,
        }
    }
}

/// How many raw values have a meaning ([`Status::from_value`]); every other
/// value is answered [`EntryRule::NotAllowed`] and then found corrupt.
pub const KNOWN_VALUES: usize = 4;

/// The rules of a status change to one target in a list of one width, for
/// every current value with a meaning: what a backend that decides inside
/// itself needs to follow [`status_decision`] exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionRules {
    /// Indexed by the entry's current raw value.
    by_current: [EntryRule; KNOWN_VALUES],
}

impl TransitionRules {
    /// The rules for setting `target` in a list `bits` wide.
    pub fn new(target: Status, bits: Bits) -> Self {
        let mut by_current = [EntryRule::NotAllowed; KNOWN_VALUES];
        for (current, rule) in (0u8..).zip(by_current.iter_mut()) {
            *rule = EntryRule::of(current, target, bits);
        }
        TransitionRules { by_current }
    }

    /// The rule for an entry holding `current`; values without a meaning
    /// are never changed.
    pub fn get(&self, current: u8) -> EntryRule {
        self.by_current
            .get(usize::from(current))
            .copied()
            .unwrap_or(EntryRule::NotAllowed)
    }

    /// The rule for each current value `0..KNOWN_VALUES`, in order.
    pub fn by_current(&self) -> [EntryRule; KNOWN_VALUES] {
        self.by_current
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

/// A duration in whole milliseconds, saturated: how both outboxes put a
/// take's lease and recheck on the takers' clock.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The most damaged lists one process remembers for readiness; past it, a
/// damaged list is still refused and logged, just not listed.
pub const DAMAGED_LIMIT: usize = 256;

/// The lists this process found damaged, for readiness and for logging each
/// once rather than on every request that meets it.
#[derive(Debug, Default)]
pub struct DamagedLists {
    set: Mutex<BTreeSet<ListId>>,
}

impl DamagedLists {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `list` is damaged, logs an error naming it the first
    /// time, and returns the error to answer with.
    pub fn report(&self, list: ListId, reason: String) -> StoreError {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        let first = !set.contains(&list);
        if first && set.len() < DAMAGED_LIMIT {
            set.insert(list);
        }
        drop(set);
        if first {
            tracing::error!(
                list = %list,
                reason = %reason,
                "status list data is damaged: the list is neither published nor changed until \
                 an operator restores it"
            );
        }
        StoreError::Damaged { list, reason }
    }

    /// Checks that a list's stored bytes have the length its width and
    /// capacity give (`len` is `None` when they are missing): otherwise
    /// reports the list damaged and returns the error to answer with. Every
    /// path that publishes or changes a list goes through this one check.
    ///
    /// # Errors
    /// [`StoreError::Damaged`] for missing bytes or another length.
    pub fn check_len(
        &self,
        list: ListId,
        len: Option<usize>,
        want: usize,
    ) -> Result<(), StoreError> {
        match len {
            Some(len) if len == want => Ok(()),
            Some(len) => Err(self.report(list, format!("its bytes are {len} long, not {want}"))),
            None => Err(self.report(list, "its bytes are missing".to_owned())),
        }
    }

    /// Forgets `list`: it was found whole again (restored by an operator).
    pub fn clear(&self, list: &ListId) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if set.remove(list) {
            tracing::warn!(list = %list, "status list data is whole again");
        }
    }

    /// The damaged lists, in id order.
    pub fn list(&self) -> Vec<ListId> {
        let set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        set.iter().copied().collect()
    }
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
    use crate::domain::{ClientId, Jti, ListFormat};

    #[test]
    fn the_replay_table() {
        let same = [1u8; 32];
        let other = [2u8; 32];
        for (digest, now, expected) in [
            (&same, 100, ReplayDecision::Replay),
            (&same, 3699, ReplayDecision::Replay),
            (&other, 100, ReplayDecision::Changed),
            (&other, 3699, ReplayDecision::Changed),
            (&same, 3700, ReplayDecision::Expired),
            (&other, 5000, ReplayDecision::Expired),
        ] {
            assert_eq!(
                replay_decision(&same, 3700, digest, now),
                expected,
                "{digest:?} at {now}"
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
        assert_eq!(
            status_decision(0, Suspended, Bits::One, None),
            Ok(StatusDecision::Answer(SetStatusOutcome::Unsupported {
                bits: Bits::One
            }))
        );
        use EntryRule::{Change as C, NotAllowed as N, TooWide as W, Unchanged as U};
        let rules = |target, bits| TransitionRules::new(target, bits).by_current();
        assert_eq!(rules(Invalid, Bits::Two), [C, U, C, N]);
        assert_eq!(rules(Suspended, Bits::Two), [C, N, U, N]);
        assert_eq!(rules(Suspended, Bits::One), [W, N, U, N]);
        assert_eq!(rules(Valid, Bits::Two), [U, N, C, N]);
        // The rules agree with the full decision for every value, target
        // and width; values without a meaning are never changed.
        for bits in Bits::ALL {
            for target in [Valid, Invalid, Suspended, ApplicationSpecific] {
                let r = TransitionRules::new(target, bits);
                for current in 0..=u8::MAX {
                    assert_eq!(r.get(current), EntryRule::of(current, target, bits));
                }
                assert_eq!(r.get(4), N);
                assert_eq!(r.get(u8::MAX), N);
            }
        }
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
            jti: Jti::parse("00000000-0000-4000-8000-000000000000").unwrap(),
            digest: [0; 32],
            status_expiry: 0,
            count: 10,
            issuance_ref: None,
            now: 0,
            keep_until: 1,
            events: None,
        };
        assert!(check_request(&ok, &settings).is_ok());
        for bad in [
            AllocateRequest {
                count: 0,
                issuance_ref: None,
                ..ok.clone()
            },
            AllocateRequest {
                count: 11,
                issuance_ref: None,
                ..ok.clone()
            },
            AllocateRequest {
                keep_until: 0,
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
                idempotency_window: Duration::ZERO,
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
