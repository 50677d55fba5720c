//! Requests that arrive while a call for the same key is in flight wait and
//! go together in the next call (natural batching, as the embedded store's
//! group commit): under load one script call serves many requests, idle it
//! adds no delay.
//!
//! There is no background task. The request that finds no call in flight
//! leads: it makes the call for itself and whoever queued meanwhile, hands
//! each its answer, and passes the lead, with everything queued since, to
//! the first of those still waiting. Queues are per key, and the adapter
//! puts the calling thread in the key, so that on an actix worker a batch is
//! formed, sent and answered on one thread (see `connection`: each worker
//! has its own connection).
//!
//! A leader whose future is dropped mid-call (its client went away) passes
//! the lead on as it drops; the requests of the batch it was making see
//! their answer channel closed and queue again. Repeating a request is safe:
//! allocations are idempotent per jti, so one the dropped call did apply is
//! answered from its record.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// What a waiting request gets: its answer, or the lead of the next batch
/// (itself first).
enum Turn<T, R> {
    Done(R),
    Lead(Vec<Waiter<T, R>>),
}

struct Waiter<T, R> {
    item: T,
    answer: oneshot::Sender<Turn<T, R>>,
}

struct Queue<T, R> {
    /// A leader is making a call for this key.
    running: bool,
    waiting: Vec<Waiter<T, R>>,
}

impl<T, R> Default for Queue<T, R> {
    fn default() -> Self {
        Queue {
            running: false,
            waiting: Vec::new(),
        }
    }
}

/// Batches of `T` per key `K`, each answered by one call giving an `R` per
/// item.
pub(super) struct Batcher<K, T, R> {
    queues: Mutex<HashMap<K, Queue<T, R>>>,
    /// At most this many items per call.
    max: usize,
}

impl<K: Hash + Eq + Clone, T: Clone, R> Batcher<K, T, R> {
    /// A batcher of at most `max` items per call.
    pub(super) fn new(max: usize) -> Self {
        Batcher {
            queues: Mutex::new(HashMap::new()),
            max: max.max(1),
        }
    }

    /// `item`'s answer from `call`, made for a batch of items queued under
    /// `key` with it. `call` gets the items in order and gives one answer
    /// per item, in the same order; an item it gives none gets `missing()`.
    pub(super) async fn run<F, Fut>(&self, key: K, item: T, call: F, missing: fn() -> R) -> R
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<R>>,
    {
        loop {
            let (tx, rx) = oneshot::channel();
            let mine = Waiter {
                item: item.clone(),
                answer: tx,
            };
            let batch = {
                let mut queues = self.lock();
                let queue = queues.entry(key.clone()).or_default();
                if queue.running {
                    queue.waiting.push(mine);
                    None
                } else {
                    queue.running = true;
                    Some(vec![mine])
                }
            };
            let batch = match batch {
                Some(batch) => batch,
                None => match rx.await {
                    Ok(Turn::Done(answer)) => return answer,
                    Ok(Turn::Lead(batch)) => batch,
                    // The leader of the batch this item was in went away.
                    Err(_) => continue,
                },
            };
            return self.lead(&key, batch, &call, missing).await;
        }
    }

    /// Makes the call for `batch` (whose first item is the leader's own),
    /// answers the others, passes the lead on and returns the own answer.
    async fn lead<F, Fut>(
        &self,
        key: &K,
        batch: Vec<Waiter<T, R>>,
        call: &F,
        missing: fn() -> R,
    ) -> R
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = Vec<R>>,
    {
        let mut guard = Handoff {
            batcher: self,
            key,
            armed: true,
        };
        let (items, answers): (Vec<T>, Vec<_>) =
            batch.into_iter().map(|w| (w.item, w.answer)).unzip();
        let mut results = call(items).await.into_iter();
        guard.armed = false;
        self.pass_lead(key);
        let mut answers = answers.into_iter();
        // The first answer channel is the leader's own, unused: it returns.
        drop(answers.next());
        let own = results.next().unwrap_or_else(missing);
        for answer in answers {
            let result = results.next().unwrap_or_else(missing);
            // A waiter that went away drops its answer.
            let _ = answer.send(Turn::Done(result));
        }
        own
    }

    /// Passes the lead to the first waiting request still there, with what
    /// is queued (up to `max`), or marks the key idle.
    fn pass_lead(&self, key: &K) {
        let mut queues = self.lock();
        let Some(queue) = queues.get_mut(key) else {
            return;
        };
        loop {
            if queue.waiting.is_empty() {
                queues.remove(key);
                return;
            }
            let take = queue.waiting.len().min(self.max);
            let mut next: Vec<Waiter<T, R>> = queue.waiting.drain(..take).collect();
            let first = next.remove(0);
            let answer = first.answer;
            next.insert(
                0,
                Waiter {
                    item: first.item,
                    answer: oneshot::channel().0,
                },
            );
            match answer.send(Turn::Lead(next)) {
                Ok(()) => return,
                // That one went away: give its batch back and try the next.
                Err(Turn::Lead(mut back)) => {
                    back.remove(0);
                    back.append(&mut queue.waiting);
                    queue.waiting = back;
                }
                Err(Turn::Done(_)) => return,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Queue<T, R>>> {
        // The map is consistent after every critical section (no await,
        // no panic inside), so a poisoned lock is used as is.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Passes the lead on if a leader's future is dropped before its call
/// returns.
struct Handoff<'a, K: Hash + Eq + Clone, T: Clone, R> {
    batcher: &'a Batcher<K, T, R>,
    key: &'a K,
    armed: bool,
}

impl<K: Hash + Eq + Clone, T: Clone, R> Drop for Handoff<'_, K, T, R> {
    fn drop(&mut self) {
        if self.armed {
            self.batcher.pass_lead(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Requests made while a call is in flight go together in the next
    /// one; every request gets its own answer.
    #[tokio::test]
    async fn requests_queued_during_a_call_share_the_next() {
        let batcher = Arc::new(Batcher::<u8, u32, u32>::new(100));
        let calls = Arc::new(AtomicUsize::new(0));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let (c, z) = (calls.clone(), sizes.clone());
        let call = move |items: Vec<u32>| {
            let (calls, sizes) = (c.clone(), z.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                sizes.lock().unwrap().push(items.len());
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                items.into_iter().map(|i| i * 10).collect()
            }
        };
        let tasks: Vec<_> = (0..20u32)
            .map(|i| {
                let (batcher, call) = (batcher.clone(), call.clone());
                tokio::spawn(async move { batcher.run(1, i, call, || u32::MAX).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), i as u32 * 10);
        }
        let calls = calls.load(Ordering::SeqCst);
        assert!(calls < 20, "{calls} calls for 20 requests");
        assert_eq!(sizes.lock().unwrap().iter().sum::<usize>(), 20);
        assert!(batcher.lock().is_empty(), "idle keys leave nothing");
    }

    /// A leader dropped mid-call passes the lead on, and the requests of its
    /// batch queue again: nobody waits forever.
    #[tokio::test]
    async fn a_leader_dropped_mid_call_leaves_nobody_waiting() {
        let batcher = Arc::new(Batcher::<u8, u32, u32>::new(100));
        let slow = |items: Vec<u32>| async move {
            if items.contains(&0) {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            items
        };
        let leader = {
            let batcher = batcher.clone();
            tokio::spawn(async move { batcher.run(1, 0, slow, || u32::MAX).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let others: Vec<_> = (1..5u32)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.run(1, i, slow, || u32::MAX).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        leader.abort();
        for (i, t) in others.into_iter().enumerate() {
            let got = tokio::time::timeout(std::time::Duration::from_secs(2), t)
                .await
                .expect("answered")
                .unwrap();
            assert_eq!(got, i as u32 + 1);
        }
    }

    /// Different keys never share a call.
    #[tokio::test]
    async fn keys_are_batched_apart() {
        let batcher = Arc::new(Batcher::<u8, u8, u8>::new(100));
        let call = |items: Vec<u8>| async move {
            assert!(items.iter().all(|i| *i == items[0]), "{items:?}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            items
        };
        let tasks: Vec<_> = (0..20u8)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.run(i % 2, i % 2, call, || u8::MAX).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            assert_eq!(t.await.unwrap(), i as u8 % 2);
        }
    }
}
