//! The one thread that runs the embedded store's write transactions.
//!
//! redb admits one writer at a time; with a blocking-pool thread per request,
//! every waiting request parks on redb's lock and they are all woken when it
//! frees, which on a busy node costs more than the transactions. A single
//! thread fed by a queue runs the same transactions, one per operation, in
//! arrival order, without that contention.
//!
//! Callers wait for their answer under the store's command timeout (see
//! `EmbeddedStore::write`), so a stalled disk gives them
//! [`StoreError::Unavailable`] instead of a hang; their job stays queued and
//! is skipped if its caller has gone by the time it starts.
//!
//! A job that panics does not take the thread down: the panic is caught, the
//! store is marked broken ([`Reply`] does it before the caller hears of the
//! failure), the caller gets [`StoreError::Unavailable`], an `error!` line
//! names the operation, and the file is re-opened at once, since the panic
//! may have left redb's memory half updated (see `handle.rs`).
//!
//! Dropping the [`Writer`] closes the queue and waits for the thread, so the
//! file is unlocked once the last store clone is gone.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Inner;
use super::handle::Handle;
use crate::ports::StoreError;

/// How much of a panic message goes into the log.
const PANIC_TEXT_MAX: usize = 200;

/// One operation for the writer thread.
pub(super) struct Job {
    /// The operation, for the log line when it panics.
    name: &'static str,
    /// The caller's span, so the job's logs (and a panic's) sit under it.
    span: tracing::Span,
    run: Box<dyn FnOnce(&Inner) + Send>,
}

impl Job {
    /// Wraps `run`, which answers its caller itself, as the operation `name`
    /// of the current span.
    pub(super) fn new(name: &'static str, run: impl FnOnce(&Inner) + Send + 'static) -> Self {
        Job {
            name,
            span: tracing::Span::current(),
            run: Box::new(run),
        }
    }
}

/// A job's way to answer its caller. If the job panics, dropping it marks
/// the store broken *before* the reply channel closes, so a caller that saw
/// its operation fail never finds the store still ready.
pub(super) struct Reply<'a, T> {
    /// `None` once sent.
    tx: Option<tokio::sync::oneshot::Sender<T>>,
    handle: &'a Handle,
    name: &'static str,
}

impl<'a, T> Reply<'a, T> {
    /// Wraps the reply channel of the operation `name`.
    pub(super) fn new(
        tx: tokio::sync::oneshot::Sender<T>,
        handle: &'a Handle,
        name: &'static str,
    ) -> Self {
        Reply {
            tx: Some(tx),
            handle,
            name,
        }
    }

    /// Whether the caller has stopped waiting (timed out or cancelled).
    pub(super) fn is_closed(&self) -> bool {
        self.tx.as_ref().is_none_or(|tx| tx.is_closed())
    }

    /// Answers the caller; an answer nobody waits for any more is dropped.
    pub(super) fn send(mut self, value: T) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(value);
        }
    }
}

impl<T> Drop for Reply<'_, T> {
    fn drop(&mut self) {
        if self.tx.is_some() && std::thread::panicking() {
            self.handle.mark_broken(&format!("{} panicked", self.name));
        }
        // `tx` is dropped after this, closing the caller's channel.
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

/// When the running job started, as milliseconds since `epoch` plus one
/// (zero: idle). Lets `ping` notice a writer stuck on one job.
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
    /// Starts the thread; it runs jobs against `inner` until the queue
    /// closes.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the OS refuses a thread.
    pub(super) fn start(inner: Arc<Inner>) -> Result<Self, StoreError> {
        let (queue, jobs) = std::sync::mpsc::channel::<Job>();
        let busy = Arc::new(Busy {
            epoch: Instant::now(),
            since: AtomicU64::new(0),
        });
        let thread_busy = Arc::clone(&busy);
        let thread = std::thread::Builder::new()
            .name("statuslist-redb-writer".into())
            .spawn(move || run(&inner, &jobs, &thread_busy))
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

    /// How long the running job has been running; `None` when idle.
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

/// The thread's loop: one job at a time, each under `catch_unwind`.
fn run(inner: &Inner, jobs: &Receiver<Job>, busy: &Busy) {
    for Job { name, span, run } in jobs {
        busy.since
            .store(busy.now().saturating_add(1), Ordering::Release);
        span.in_scope(|| {
            // Unwind safety: after a panic nothing the job touched is used
            // again as is. Its reply channel is dropped, and the database is
            // replaced (`recover`) before the next job runs.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| run(inner))) {
                let text = panic_text(panic.as_ref());
                tracing::error!(
                    operation = name,
                    panic = %text,
                    "a store write panicked; the store is marked not ready and its file re-opened"
                );
                inner.handle.mark_broken(&format!("{name} panicked"));
                // On failure it stays broken and is retried by later calls.
                let _ = inner.handle.recover();
            }
        });
        busy.since.store(0, Ordering::Release);
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
