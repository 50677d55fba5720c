//! The store's hold on its redb file: the open [`Database`], whether the file
//! currently works, and re-opening it after a failure, without a restart.
//!
//! redb stops all work on a `Database` after one I/O error: every later
//! transaction fails with `PreviousIo`, because its memory may no longer
//! match the file. A panic inside a transaction can leave redb's internal
//! locks poisoned or its memory half updated. In both cases the only safe way
//! on is to drop the `Database` and open the file again, which runs redb's
//! crash recovery from the last durable commit: everything acknowledged is
//! still there, the failed operation is not.
//!
//! So a failure marks the handle *broken*: `ping` fails (not ready, 503) and
//! writes answer [`StoreError::Unavailable`] (503) at once. Recovery runs on
//! the writer thread, the one place that writes, at the first failure and
//! then at most once per [`RETRY_EVERY`] when a write or a `ping` asks: drop
//! the old `Database`, open the file again, and commit a tiny durable write
//! (the probe) to prove that writing works. Only a successful probe clears
//! the mark. Healthy `ping`s stay reads, with no fsync.
//!
//! Readers hold an `Arc` of the `Database` only while they begin their
//! transaction, and redb's read transactions keep the file (and its lock)
//! open until they end. Re-opening therefore waits briefly for both to let
//! go; readers that still run on the old `Database` get a "closed" error,
//! reported as unavailable.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, ReadableTable};

use super::faults::FaultInjector;
use super::{META, db_err, open_error};
use crate::ports::StoreError;

/// The shortest time between two recovery attempts after the first one:
/// re-opening runs redb's repair, which reads the whole file.
pub(super) const RETRY_EVERY: Duration = Duration::from_secs(1);

/// How long re-opening waits for readers of the old `Database` to let go of
/// the file.
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// How the file is opened: plainly (production) or behind a fault injector
/// (tests).
pub(super) enum Opener {
    /// `redb::Database::create`: redb's own file backend.
    File,
    /// The file backend behind this injector.
    Faulty(FaultInjector),
}

impl Opener {
    fn open(&self, path: &Path) -> Result<Database, DatabaseError> {
        match self {
            Opener::File => Database::create(path),
            Opener::Faulty(faults) => faults.open(path),
        }
    }
}

/// Why an open attempt failed.
enum OpenFailed {
    Db(DatabaseError),
    /// redb asserts on some malformed files, and an injected fault panics.
    Panicked,
}

/// The open database and its health, shared by every clone of the store.
pub(super) struct Handle {
    path: PathBuf,
    opener: Opener,
    /// `None` only while (or after a failed attempt at) re-opening.
    current: RwLock<Option<Arc<Database>>>,
    /// Bumped whenever `current` changes, so that a reader whose read failed
    /// can tell a broken file from a database swapped under it.
    generation: AtomicU64,
    /// Set by a failure, cleared only by a successful probe.
    broken: AtomicBool,
    /// Why the handle is broken and when recovery may next be tried. Only
    /// locked on failures and while broken.
    trouble: Mutex<Trouble>,
}

struct Trouble {
    reason: String,
    next_attempt: Instant,
}

impl Handle {
    /// Opens the file for the first time. Unlike re-opening, a file held by
    /// someone else is an immediate error: it is another store.
    pub(super) fn open(path: PathBuf, opener: Opener) -> Result<Self, StoreError> {
        let db = match try_open(&opener, &path) {
            Ok(db) => db,
            Err(OpenFailed::Db(e)) => return Err(open_error(&path, e)),
            Err(OpenFailed::Panicked) => return Err(panicked_open(&path)),
        };
        Ok(Handle {
            path,
            opener,
            current: RwLock::new(Some(Arc::new(db))),
            generation: AtomicU64::new(0),
            broken: AtomicBool::new(false),
            trouble: Mutex::new(Trouble {
                reason: String::new(),
                next_attempt: Instant::now(),
            }),
        })
    }

    /// The file this handle opens.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The open database, for one transaction.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] while it is being (or could not be)
    /// re-opened.
    pub(super) fn db(&self) -> Result<Arc<Database>, StoreError> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        current.clone().ok_or_else(|| self.unavailable())
    }

    /// The current generation of the database (see [`Handle::read_failed`]).
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether a failure is waiting for a successful probe.
    pub(super) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// The error operations get while the handle is broken.
    pub(super) fn unavailable(&self) -> StoreError {
        let trouble = self.trouble();
        StoreError::Unavailable(format!(
            "the store file {} does not work ({}); it is retried in the background",
            self.path.display(),
            trouble.reason
        ))
    }

    /// Marks the handle broken after a failure (`reason` is logged and
    /// repeated to callers, so it must hold no secrets). The first recovery
    /// attempt may run at once.
    pub(super) fn mark_broken(&self, reason: &str) {
        let mut trouble = self.trouble();
        trouble.reason = reason.to_owned();
        if !self.broken.swap(true, Ordering::AcqRel) {
            trouble.next_attempt = Instant::now();
            tracing::error!(
                path = %self.path.display(),
                reason,
                "the store file failed; the store is not ready until writing works again"
            );
        }
    }

    /// A read that began at `generation` failed as unavailable: a broken
    /// file, unless the database was swapped (re-opened) under it.
    pub(super) fn read_failed(&self, generation: u64, reason: &str) {
        if self.generation() == generation && !self.is_broken() {
            self.mark_broken(reason);
        }
    }

    /// Before a write, on the writer thread: `Ok` when the file works,
    /// after a recovery attempt if one is due.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] while the file does not work.
    pub(super) fn ensure_writable(&self) -> Result<(), StoreError> {
        if !self.is_broken() {
            return Ok(());
        }
        if Instant::now() < self.trouble().next_attempt {
            return Err(self.unavailable());
        }
        self.recover()
    }

    /// Drops the database, opens the file again and probes it with a durable
    /// write. Writer thread only: no write transaction may be open.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when the file still does not work; the
    /// next attempt is due [`RETRY_EVERY`] later.
    pub(super) fn recover(&self) -> Result<(), StoreError> {
        match self.reopen().and_then(|()| self.probe()) {
            Ok(()) => {
                self.broken.store(false, Ordering::Release);
                tracing::info!(path = %self.path.display(), "the store file works again");
                Ok(())
            }
            Err(e) => {
                let mut trouble = self.trouble();
                trouble.next_attempt = Instant::now() + RETRY_EVERY;
                trouble.reason = detail(&e).to_owned();
                drop(trouble);
                tracing::warn!(
                    path = %self.path.display(),
                    error = %e,
                    "the store file still does not work; retrying later"
                );
                Err(self.unavailable())
            }
        }
    }

    fn reopen(&self) -> Result<(), StoreError> {
        let old = self
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(old) = old {
            close(old);
        }
        // Read transactions begun on the old database keep the file, and so
        // its lock, open until they end: wait for them a little.
        let deadline = Instant::now() + RELEASE_WAIT;
        let db = loop {
            match try_open(&self.opener, &self.path) {
                Ok(db) => break db,
                Err(OpenFailed::Db(DatabaseError::DatabaseAlreadyOpen))
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(OpenFailed::Db(e)) => return Err(open_error(&self.path, e)),
                Err(OpenFailed::Panicked) => return Err(panicked_open(&self.path)),
            }
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(db));
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// One small durable commit: proves that the file takes writes again.
    /// It counts recoveries in `meta`, which nothing else reads.
    fn probe(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        catch_unwind(AssertUnwindSafe(|| {
            // A fresh transaction is durable (fsynced) whatever the store's
            // durability setting.
            let txn = db.begin_write().map_err(db_err)?;
            {
                let mut meta = txn.open_table(META).map_err(db_err)?;
                let done = meta.get("recoveries").map_err(db_err)?.map(|g| g.value());
                meta.insert("recoveries", done.unwrap_or(0).saturating_add(1))
                    .map_err(db_err)?;
            }
            txn.commit().map_err(db_err)
        }))
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the write probe panicked".to_owned(),
            ))
        })
    }

    fn trouble(&self) -> std::sync::MutexGuard<'_, Trouble> {
        // Two plain values, consistent after any panic.
        self.trouble.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Opens the file, turning a panic inside redb into an error.
fn try_open(opener: &Opener, path: &Path) -> Result<Database, OpenFailed> {
    match catch_unwind(AssertUnwindSafe(|| opener.open(path))) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(OpenFailed::Db(e)),
        Err(_) => Err(OpenFailed::Panicked),
    }
}

/// The text of an error without its "the store is unavailable" prefix.
fn detail(e: &StoreError) -> &str {
    match e {
        StoreError::Unavailable(m)
        | StoreError::Corrupt(m)
        | StoreError::Backend(m)
        | StoreError::Invalid(m)
        | StoreError::Damaged { reason: m, .. } => m,
    }
}

fn panicked_open(path: &Path) -> StoreError {
    StoreError::Unavailable(format!(
        "opening the store file {} failed (redb panicked)",
        path.display()
    ))
}

/// Closes a database that failed, here on the writer thread when no reader
/// holds it any more (waiting [`RELEASE_WAIT`] at most). redb's drop tries a
/// last commit, which may panic on state a panic left behind: caught, the
/// file is closed by the unwinding all the same, and the next open repairs
/// it.
fn close(mut db: Arc<Database>) {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => {
                if catch_unwind(AssertUnwindSafe(move || drop(db))).is_err() {
                    tracing::warn!("closing the failed store file panicked; re-opening it anyway");
                }
                return;
            }
            // The last reader drops it; re-opening waits for the file lock.
            Err(_) if Instant::now() >= deadline => return,
            Err(shared) => {
                db = shared;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}
