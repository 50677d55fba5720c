//! The one thread that runs the embedded store's write transactions, with
//! group commit.
//!
//! redb admits one writer at a time; with a blocking-pool thread per request,
//! every waiting request parks on redb's lock and they are all woken when it
//! frees, which on a busy node costs more than the transactions. A single
//! thread fed by a queue runs them without that contention.
//!
//! Group commit: a durable commit costs an fsync, which is far longer than
//! the B-tree work of an operation. So the thread takes everything queued
//! (up to [`EmbeddedOptions::max_batch`](super::EmbeddedOptions) operations),
//! applies the operations one after the other, in queue order, inside ONE
//! write transaction, commits it (one fsync) and only then answers each
//! caller. While it waits on the disk, the next requests queue up and form
//! the next batch, so the batch grows with the load by itself and a lone
//! request is not delayed. Nothing is acknowledged before the commit that
//! holds it.
//!
//! Every operation gets the answer it would have had alone, in queue order:
//! it sees what the operations before it in the batch wrote (the same jti
//! twice is a replay the second time; allocations fill lists in order). An
//! operation that fails on its own (stored data that does not parse, a
//! damaged list) may already have written part of its work, and redb has no
//! savepoint inside a dirty transaction. So the transaction is dropped
//! (aborted) and the batch runs again without that operation, which keeps
//! its error: the others re-apply to the same state and give the same
//! answers. Such failures are rare (requests are checked before they are
//! queued), and each pass removes one, so a batch runs at most once more per
//! failed operation.
//!
//! A failure of the batch itself (I/O trouble, now or at the commit) fails
//! every operation of the batch: none of it is on disk, none is
//! acknowledged, and the store re-opens its file (`handle.rs`).
//!
//! Callers wait for their answer under the store's command timeout (see
//! `EmbeddedStore::write`), so a stalled disk gives them
//! [`StoreError::Unavailable`] instead of a hang; their job stays queued and
//! is skipped if its caller has gone by the time its batch starts.
//!
//! A batch that panics does not take the thread down: the panic is caught,
//! the store is marked broken before any caller hears of the failure, every
//! caller of the batch gets [`StoreError::Unavailable`], an `error!` line
//! names the operation, and the file is re-opened at once, since the panic
//! may have left redb's memory half updated (see `handle.rs`).
//!
//! Dropping the [`Writer`] closes the queue and waits for the thread, so the
//! file is unlocked once the last store clone is gone.

use std::any::Any;
use std::cell::Cell;
use std::num::NonZeroUsize;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::WriteTransaction;

use super::Inner;
use crate::ports::StoreError;

/// How much of a panic message goes into the log.
const PANIC_TEXT_MAX: usize = 200;

/// One write operation for the writer thread.
pub(super) struct Job {
    /// The operation, for logs and for the error of a panic.
    name: &'static str,
    /// The caller's span, so the operation's logs (and a panic's) sit
    /// under it.
    span: tracing::Span,
    op: Box<dyn Op>,
}

impl Job {
    /// The operation `name` of the current span: `apply` runs inside the
    /// batch's transaction (possibly more than once, see the module doc:
    /// it must depend only on the transaction's state), and its result goes
    /// to `reply` once the batch is committed.
    pub(super) fn new<T, F>(
        name: &'static str,
        apply: F,
        reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
    ) -> Self
    where
        T: Send + 'static,
        F: Fn(&Inner, &WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        Job {
            name,
            span: tracing::Span::current(),
            op: Box::new(Pending {
                apply,
                reply: Some(reply),
                done: None,
            }),
        }
    }
}

/// An operation and its caller's channel, with the result type erased so
/// that one batch holds operations of every kind.
trait Op: Send {
    /// Whether the caller has stopped waiting (timed out or cancelled).
    fn is_closed(&self) -> bool;
    /// Applies the operation inside `txn`, keeping its result for
    /// [`Op::answer`].
    fn apply(&mut self, inner: &Inner, txn: &WriteTransaction) -> Result<(), StoreError>;
    /// Sends the kept result, or `error` instead; a caller that has gone
    /// is not told.
    fn answer(&mut self, error: Option<StoreError>);
}

struct Pending<T, F> {
    apply: F,
    /// `None` once answered.
    reply: Option<tokio::sync::oneshot::Sender<Result<T, StoreError>>>,
    /// The result of the last `apply`, until the commit.
    done: Option<T>,
}

impl<T, F> Op for Pending<T, F>
where
    T: Send,
    F: Fn(&Inner, &WriteTransaction) -> Result<T, StoreError> + Send,
{
    fn is_closed(&self) -> bool {
        self.reply.as_ref().is_none_or(|tx| tx.is_closed())
    }

    fn apply(&mut self, inner: &Inner, txn: &WriteTransaction) -> Result<(), StoreError> {
        self.done = None;
        self.done = Some((self.apply)(inner, txn)?);
        Ok(())
    }

    fn answer(&mut self, error: Option<StoreError>) {
        let result = match (error, self.done.take()) {
            (Some(e), _) => Err(e),
            (None, Some(done)) => Ok(done),
            // The batch answers only what it applied; never reached.
            (None, None) => Err(StoreError::Backend(
                "a write was answered before it ran".into(),
            )),
        };
        if let Some(tx) = self.reply.take() {
            let _ = tx.send(result);
        }
    }
}

/// The handle on the writer thread.
pub(super) struct Writer {
    /// `None` once dropping has begun.
    queue: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    /// Shared with the thread: see [`Busy`].
    busy: Arc<Busy>,
}

/// When the running batch started, as milliseconds since `epoch` plus one
/// (zero: idle). Lets `ping` notice a writer stuck on one batch.
struct Busy {
    epoch: Instant,
    since: AtomicU64,
}

impl Busy {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Writer {
    /// Starts the thread; it runs batches of at most `max_batch` jobs
    /// against `inner` until the queue closes.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the OS refuses a thread.
    pub(super) fn start(inner: Arc<Inner>, max_batch: NonZeroUsize) -> Result<Self, StoreError> {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let busy = Arc::new(Busy {
            epoch: Instant::now(),
            since: AtomicU64::new(0),
        });
        let thread_busy = Arc::clone(&busy);
        let thread = std::thread::Builder::new()
            .name("statuslist-redb-writer".into())
            .spawn(move || run(&inner, &jobs, &thread_busy, max_batch.get()))
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            busy,
        })
    }

    /// Queues a job.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the thread is gone (it only ends when
    /// the store is dropped, so this is a bug).
    pub(super) fn submit(&self, job: Job) -> Result<(), StoreError> {
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }

    /// How long the running batch has been running; `None` when idle.
    pub(super) fn busy_for(&self) -> Option<Duration> {
        match self.busy.since.load(Ordering::Acquire) {
            0 => None,
            since => Some(Duration::from_millis(
                self.busy.now().saturating_sub(since - 1),
            )),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Backend("the writer thread has stopped".into())
}

/// A queued job in a batch, with the error it met on its own, if any.
struct Entry {
    job: Job,
    failed: Option<StoreError>,
}

/// Why a whole batch failed.
enum BatchFailed {
    /// The store is broken and no recovery is due yet (or it failed).
    Refused(StoreError),
    /// I/O trouble while applying or committing: the file needs re-opening.
    Io(StoreError),
    /// Another commit failure (redb's own): nothing was committed.
    Commit(StoreError),
    /// A panic; the store is already marked broken.
    Panicked,
}

/// The thread's loop: a batch of whatever is queued, then the next.
fn run(inner: &Inner, jobs: &Receiver<Job>, busy: &Busy, max_batch: usize) {
    let mut batch: Vec<Entry> = Vec::new();
    while let Ok(first) = jobs.recv() {
        batch.push(Entry {
            job: first,
            failed: None,
        });
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(Entry { job, failed: None }),
                Err(_) => break,
            }
        }
        busy.since
            .store(busy.now().saturating_add(1), Ordering::Release);
        // A caller that gave up before its batch started: skip its job, so
        // that a stall does not leave a backlog of work nobody waits for.
        batch.retain(|e| !e.job.op.is_closed());
        if !batch.is_empty() {
            run_batch(inner, &mut batch);
        }
        batch.clear();
        busy.since.store(0, Ordering::Release);
    }
}

/// Applies and commits one batch, then answers every caller in it.
fn run_batch(inner: &Inner, batch: &mut [Entry]) {
    let running = Cell::new(None);
    let outcome = inner.handle.ensure_writable().map_err(BatchFailed::Refused).and_then(|()| {
        // Unwind safety: after a panic nothing the batch touched is used
        // again as is. Its results are replaced by errors, and the database
        // is replaced (`recover`) before the next batch runs.
        catch_unwind(AssertUnwindSafe(|| apply_and_commit(inner, batch, &running))).unwrap_or_else(
            |panic| {
                let text = panic_text(panic.as_ref());
                let (name, span) = match running.get().and_then(|i: usize| batch.get(i)) {
                    Some(e) => (e.job.name, e.job.span.clone()),
                    None => ("store.commit", tracing::Span::none()),
                };
                span.in_scope(|| {
                    tracing::error!(
                        operation = name,
                        batch = batch.len(),
                        panic = %text,
                        "a store write panicked; the store is marked not ready and its file re-opened"
                    );
                });
                // Before any caller hears of it, so that a caller that saw
                // its write fail never finds the store still ready.
                inner.handle.mark_broken(&format!("{name} panicked"));
                Err(BatchFailed::Panicked)
            },
        )
    });
    match outcome {
        Ok(()) => {
            for e in batch.iter_mut() {
                let failed = e.failed.take();
                e.job.op.answer(failed);
            }
        }
        Err(failure) => {
            let recover = match &failure {
                BatchFailed::Io(StoreError::Unavailable(why)) => {
                    inner.handle.mark_broken(why);
                    true
                }
                BatchFailed::Panicked => true,
                _ => false,
            };
            for e in batch.iter_mut() {
                let error = match &failure {
                    BatchFailed::Refused(error)
                    | BatchFailed::Io(error)
                    | BatchFailed::Commit(error) => error.clone(),
                    BatchFailed::Panicked => StoreError::Unavailable(format!(
                        "{} failed inside the store (see the error log); the store is recovering",
                        e.job.name
                    )),
                };
                e.job.op.answer(Some(error));
            }
            if recover {
                // Answer first, then try at once; on failure it stays broken
                // and later calls retry.
                let _ = inner.handle.recover();
            }
        }
    }
}

/// The batch in one write transaction: every job not yet failed, in order;
/// after a job's own failure the transaction is aborted and the rest run
/// again without it. `running` names the job being applied, for a panic.
fn apply_and_commit(
    inner: &Inner,
    batch: &mut [Entry],
    running: &Cell<Option<usize>>,
) -> Result<(), BatchFailed> {
    'attempt: loop {
        let txn = inner.begin_write().map_err(BatchFailed::Io)?;
        for (i, e) in batch.iter_mut().enumerate() {
            if e.failed.is_some() {
                continue;
            }
            running.set(Some(i));
            let result = e.job.span.in_scope(|| e.job.op.apply(inner, &txn));
            running.set(None);
            match result {
                Ok(()) => {}
                // Only I/O trouble is reported as unavailable by the
                // operations: redb now refuses this file until re-opened.
                Err(error @ StoreError::Unavailable(_)) => return Err(BatchFailed::Io(error)),
                Err(error) => {
                    e.failed = Some(error);
                    // Dropping the transaction aborts what the failed job
                    // (and those before it) wrote.
                    drop(txn);
                    continue 'attempt;
                }
            }
        }
        return inner.commit(txn).map_err(|error| match error {
            StoreError::Unavailable(_) => BatchFailed::Io(error),
            other => BatchFailed::Commit(other),
        });
    }
}

/// The panic's message, shortened. The store's panics carry no secrets (the
/// allocator keys' `Debug` hides them), but a message is still cut short.
fn panic_text(panic: &(dyn Any + Send)) -> String {
    let text = if let Some(s) = panic.downcast_ref::<&str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.as_str()
    } else {
        "(no message)"
    };
    text.chars().take(PANIC_TEXT_MAX).collect()
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once queued jobs are done.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            // The thread catches its jobs' panics, so it ends normally.
            let _ = thread.join();
        }
    }
}
