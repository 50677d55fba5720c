//! The event outbox of the Redis store (the contract is
//! `crate::ports::outbox`; keys and fields are described in `events.lua`).
//!
//! Events are recorded by the scripts that make the changes they report
//! (`allocate.lua`, `set_status.lua`, `ref_change.lua`), so an event and its
//! change are one atomic step. Each client's outbox is a stream (the
//! journal, read through one consumer group by every replica) with a zset
//! of due times, a hash of attempts, a hash of each entry's latest event
//! (for the order per entry) and a hash of dead letters; every operation
//! that moves an event is one script over one client's keys, so concurrent
//! replicas never hand the same event to two holders while a lease runs,
//! and no script mixes two clients' keys (they may live in different
//! cluster slots). A lease's handle is the event's stream id.

use ::redis::Value;

use super::RedisStore;
use super::replies::{self, StoredDeadLetter, StoredEvent, TakenEvent};
use super::scripts::{DeadLetterArgs, DeliveredArgs, RedeliverArgs, RetryArgs, TakeArgs};
use crate::domain::ClientId;
use crate::domain::events::{Event, EventId};
use crate::ports::{DeadLetter, Failure, Lease, Outbox, StoreError, TakeRequest, UnixMillis};
use crate::store::common::{indexes, millis};

impl RedisStore {
    /// The event `stored` of `client`, its entries' allocation numbers
    /// turned into indexes through their lists' (cached) facts, as the
    /// listing does.
    async fn event(&self, client: &ClientId, stored: StoredEvent) -> Result<Event, StoreError> {
        let mut entries = Vec::new();
        for run in &stored.runs {
            let facts = self.list_facts(&run.list).await?.ok_or_else(|| {
                StoreError::Corrupt(format!("an event names list {}, which is gone", run.list))
            })?;
            // Events pack a run's count in 32 bits (events.lua).
            let count = u32::try_from(run.count).map_err(|_| {
                StoreError::Corrupt(format!("an event's run of list {} is too long", run.list))
            })?;
            let idx = indexes(&facts.allocator, run.first, count)?;
            entries.extend(idx.into_iter().map(|i| (run.list, i)));
        }
        Ok(Event {
            id: stored.id,
            kind: stored.kind,
            client: client.clone(),
            format: stored.format,
            at: stored.at,
            entries,
            issuance_ref: stored.issuance_ref,
        })
    }
}

/// The handle of a lease on the event `sid` (a stream id) of shard `shard`
/// of its client: the stream id, after `<shard>/` when the shard is not 0.
fn handle_of(shard: u16, sid: String) -> String {
    if shard == 0 {
        sid
    } else {
        format!("{shard}/{sid}")
    }
}

/// The shard and stream id (`<ms>-<seq>`) of a lease handle of this store
/// (see [`handle_of`]), with the shard below `shards`: anything else would
/// reach Redis as an invalid id.
fn parse_handle(handle: &str, shards: u16) -> Result<(u16, &str), StoreError> {
    let bad = || {
        StoreError::Invalid(format!(
            "{handle:?} is not a lease handle of the Redis store"
        ))
    };
    let (shard, sid) = match handle.split_once('/') {
        Some((shard, sid)) => {
            let shard: u16 = shard.parse().map_err(|_| bad())?;
            if shard == 0 || shard >= shards {
                return Err(bad());
            }
            (shard, sid)
        }
        None => (0, handle),
    };
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match sid.split_once('-') {
        Some((ms, seq)) if digits(ms) && digits(seq) => Ok((shard, sid)),
        _ => Err(bad()),
    }
}

impl Outbox for RedisStore {
    #[tracing::instrument(level = "debug", skip(self, req), fields(clients = req.clients.len(), max = req.max))]
    async fn take(&self, req: &TakeRequest) -> Result<Vec<Lease>, StoreError> {
        if req.consumer.is_empty() {
            return Err(StoreError::Invalid(
                "a taker needs a consumer name".to_owned(),
            ));
        }
        let mut leases = Vec::new();
        // One call per client: its keys are in its own slot. Events taken
        // for an earlier client before a later call fails stay held until
        // their leases end and are then handed out again (at least once).
        // A client spread over shards has an outbox in each (an entry's
        // events are all in its shard's, so they stay in order).
        let shards = req
            .clients
            .iter()
            .flat_map(|c| (0..self.shards).map(move |n| (c, n)));
        for (client, shard) in shards {
            let left = req.max.saturating_sub(leases.len());
            if left == 0 {
                break;
            }
            let keys = self.keys.shard(client, shard).outbox();
            let args = TakeArgs {
                keys: &keys,
                consumer: &req.consumer,
                now_ms: req.now_ms,
                lease_ms: millis(req.lease),
                recheck_ms: millis(req.recheck),
                max: left,
            };
            let raw: Vec<Value> = self.conn.invoke(&self.scripts.call(&args)).await?;
            for taken in TakenEvent::decode_all(&raw)? {
                leases.push(Lease {
                    event: self.event(client, taken.event).await?,
                    attempt: taken.attempt,
                    handle: handle_of(shard, taken.handle),
                });
            }
        }
        Ok(leases)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(client = %client))]
    async fn delivered(&self, client: &ClientId, handle: &str) -> Result<bool, StoreError> {
        let (shard, handle) = parse_handle(handle, self.shards)?;
        let keys = self.keys.shard(client, shard).outbox();
        let args = DeliveredArgs {
            keys: &keys,
            handle,
        };
        let (_, woken): (i64, i64) = self.conn.invoke(&self.scripts.call(&args)).await?;
        Ok(woken > 0)
    }

    #[tracing::instrument(level = "debug", skip(self, failure), fields(client = %failure.client))]
    async fn retry(&self, failure: &Failure, retry_at: UnixMillis) -> Result<(), StoreError> {
        let (shard, handle) = parse_handle(&failure.handle, self.shards)?;
        let keys = self.keys.shard(&failure.client, shard).outbox();
        let args = RetryArgs {
            keys: &keys,
            handle,
            attempt: failure.attempt,
            retry_at,
        };
        let _: Value = self.conn.invoke(&self.scripts.call(&args)).await?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, failure), fields(client = %failure.client))]
    async fn dead_letter(&self, failure: &Failure) -> Result<bool, StoreError> {
        let (shard, handle) = parse_handle(&failure.handle, self.shards)?;
        let keys = self.keys.shard(&failure.client, shard).outbox();
        let args = DeadLetterArgs {
            keys: &keys,
            handle,
            attempt: failure.attempt,
            dead_at: failure.now_ms,
            error: &failure.error,
        };
        let (_, woken): (i64, i64) = self.conn.invoke(&self.scripts.call(&args)).await?;
        Ok(woken > 0)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(client = %client))]
    async fn dead_letters(&self, client: &ClientId) -> Result<Vec<DeadLetter>, StoreError> {
        let mut stored: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for shard in 0..self.shards {
            let keys = self.keys.shard(client, shard).outbox();
            let some: Vec<(Vec<u8>, Vec<u8>)> = self
                .conn
                .query(::redis::cmd("HGETALL").arg(&keys.dead))
                .await?;
            stored.extend(some);
        }
        let mut letters = Vec::with_capacity(stored.len());
        for (id, blob) in stored {
            let letter = StoredDeadLetter::decode(&id, &blob)?;
            letters.push(DeadLetter {
                event: self.event(client, letter.event).await?,
                attempts: letter.attempts,
                dead_at: letter.dead_at,
                error: letter.error,
            });
        }
        letters.sort_by_key(|l| l.event.id);
        Ok(letters)
    }

    #[tracing::instrument(level = "debug", skip(self, ids), fields(client = %client, ids = ids.len()))]
    async fn redeliver(
        &self,
        client: &ClientId,
        ids: &[EventId],
    ) -> Result<Vec<EventId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // Each dead letter is in one shard's outbox: each shard redelivers
        // those it has.
        let mut redelivered = Vec::new();
        for shard in 0..self.shards {
            let keys = self.keys.shard(client, shard).outbox();
            let args = RedeliverArgs { keys: &keys, ids };
            let raw: Vec<Value> = self.conn.invoke(&self.scripts.call(&args)).await?;
            redelivered.extend(replies::event_ids(&raw)?);
        }
        Ok(redelivered)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(client = %client))]
    async fn pending(&self, client: &ClientId) -> Result<u64, StoreError> {
        // The journals hold exactly the events neither delivered nor dead.
        let mut pending = 0u64;
        for shard in 0..self.shards {
            let keys = self.keys.shard(client, shard).outbox();
            let n: u64 = self
                .conn
                .query(::redis::cmd("XLEN").arg(&keys.stream))
                .await?;
            pending += n;
        }
        Ok(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_stream_ids_after_their_shard() {
        for ok in ["0-0", "1700000000000-12"] {
            assert_eq!(parse_handle(ok, 1).unwrap(), (0, ok), "{ok}");
        }
        assert_eq!(handle_of(0, "1-2".to_owned()), "1-2");
        assert_eq!(handle_of(2, "1-2".to_owned()), "2/1-2");
        assert_eq!(parse_handle("2/1-2", 3).unwrap(), (2, "1-2"));
        for bad in [
            "", "-", "1-", "-1", "1", "a-1", "1-1-1", "1 -1", "+", "$", "0/1-2", "3/1-2", "x/1-2",
            "1/", "1/1",
        ] {
            assert!(
                matches!(parse_handle(bad, 3), Err(StoreError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
