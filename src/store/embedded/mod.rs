//! The embedded adapter: the whole store in one redb file, for a single
//! process (the default for `cargo run` and for one node).
//!
//! Writes (`allocate`, `set_status`, `set_status_by_ref`, `claim_jti`) run
//! on one dedicated writer thread fed by a queue (`writer.rs`), which
//! applies everything queued, in order, in one redb write transaction and commits it once (group commit: one fsync
//! for the batch) before it answers anyone. Each operation is still atomic
//! and serialised, with the answer it would have had alone: it sees the
//! operations queued before it, and one that fails leaves nothing behind.
//! Reads (`read_list`, `list_version`, `list_entries`, `health`) run in a
//! read transaction each on tokio's blocking pool (readers never wait for
//! the writer). Both run inside the caller's tracing span.
//!
//! Tables (all keys carry the client where a lookup starts from it; a
//! *space* is a client's entries of one format, numbered by `seq` in
//! allocation order, see `entries.rs`):
//!
//! | table | key | value |
//! | --- | --- | --- |
//! | `meta` | `"schema"` | file layout version (and `"recoveries"`, see below) |
//! | `lists` | list id | `ListRecord` (owner, format, bits, capacity, counter, version, key, first seq `base` or none, …) |
//! | `list_bytes` | list id | the packed entries, exactly `StatusList`'s raw bytes |
//! | `status_times` | (list id, idx) | (status, unix time) of the last change of that entry |
//! | `current_list` | (client, format) | the list new allocations go to |
//! | `idempotency` | (client, jti) | `IdemRecord`: digest, expiry, and the answer (an allocation, a change outcome, a change by ref's report, or a claim) |
//! | `entry_spaces` | (client, format) | (next seq, last `createdAt`) |
//! | `entry_log` | (client, format, first seq) | `LogRecord` of one allocation: count, `createdAt`, `statusExpiry`, ref |
//! | `entry_lists` | (client, format, base seq) | the tracked list whose entries start there |
//! | `entry_refs` | (client, format, ref, first seq) | `()`: the allocations bound to the ref |
//! | `entry_changed` | (client, format, seq) | (status, `updatedAt`) of an entry that changed |
//! | `entry_changed_by_time` | (client, format, `updatedAt`, seq) | status: the same, in listing order |
//! | `events`, `event_*` | | the event outbox (webhooks): see `outbox.rs` |
//!
//! The list bytes live apart from the list record so that an allocation,
//! the hot path, rewrites a hundred bytes and not the whole list. An
//! allocation writes the list record, its idempotency record, one
//! `entry_log` record and its space (and one `entry_refs` key with a ref);
//! nothing per entry. A change writes the change index of its entry (lists
//! opened before entries were tracked, "untracked", have none: their
//! entries are not listed, and they are never allocated from again).
//! A write whose request carries an event seed (a client with a webhook)
//! also records its events, in the same transaction (`outbox.rs`); one
//! without opens none of the outbox tables.
//!
//! The `entry_*` tables (and the outbox's) are created when missing, so a
//! file written before them opens as it is (its lists untracked, its
//! records still read): the layout version stays 1. The way back is not open: a build from before
//! finds the records of lists opened since in a format it does not know,
//! and refuses them as corrupt.
//!
//! Idempotency records older than the window are ignored when found (and
//! replaced), and removed by a sweep that every 16th write adding a record
//! (of any kind) runs over the next 64 records, round robin. No expiry index
//! is kept: it would add another B-tree write to every allocation, the hot
//! path, to save a walk that is bounded anyway.
//!
//! Durability: by default every commit is fsynced before the operations in
//! it are answered ([`EmbeddedDurability::Immediate`]), so "acknowledged"
//! means "on disk". Under load one fsync carries many operations (up to
//! [`EmbeddedOptions::max_batch`]): throughput grows with concurrency
//! instead of being one operation per fsync. [`EmbeddedDurability::None`]
//! skips the fsync (a crash may lose recent commits, never corrupt the
//! file); it exists for tests and for deployments that accept that trade.
//!
//! Timeouts: every call waits at most the command timeout
//! ([`EmbeddedOptions::command_timeout`], `[store] command_timeout_ms` in the
//! service) and then answers [`StoreError::Unavailable`] (503), never hangs,
//! also when the disk stalls. As with Redis, a write that timed out may still
//! be applied afterwards if the writer had already started it (one whose
//! caller has gone before its batch starts is skipped). That is safe: the
//! (client, jti) idempotency record makes the client's retry return the
//! same allocation, and a status change is idempotent.
//!
//! Failures: after an I/O error (a full disk, say) redb refuses all further
//! work on the open file, and a panic in a write may leave its memory half
//! updated. Either fails every operation of the batch it hit (none of them
//! is acknowledged or on disk). The store then marks itself broken: `ping` fails (not ready),
//! writes answer [`StoreError::Unavailable`], and the file is re-opened, and
//! proved writable by a tiny durable write, at once and then at most once a
//! second while calls keep coming, until it works again. No restart is
//! needed, and redb's crash recovery keeps every acknowledged write
//! (`handle.rs`). Reads may fail too while the file is being re-opened; the
//! token cache serves published lists meanwhile. A panic is logged as an
//! `error!` naming the operation, and the writer thread keeps going.
//! [`faults`] lets tests inject such failures.
//!
//! redb locks the file: a second process (or a second store in this one)
//! opening the same file gets [`StoreError::Unavailable`] naming the path.

mod entries;
pub mod faults;
mod handle;
mod outbox;
mod records;
mod writer;

use std::num::NonZeroUsize;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redb::{
    DatabaseError, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};

use crate::domain::events::{Event, EventKind};
use crate::domain::{Allocator, AllocatorKey, ClientId, ListFormat, ListId, Status, StatusList};

use self::faults::FaultInjector;
use self::handle::{Handle, Opener};
use self::records::{IdemRecord, ListRecord, Recorded, format_byte};
use self::writer::{Job, Writer};
use super::common::{self, AllocatorCache, DamagedLists, ReplayDecision, StatusDecision};
use crate::ports::{
    AllocateOutcome, AllocateRequest, Allocation, EntryPage, EntryQuery, JtiClaim, JtiClaimOutcome,
    ListRun, ListSnapshot, RefChange, RefChangeOutcome, SetStatusOutcome, StatusChange, Store,
    StoreError, StoreHealth, StoreSettings, UnixSeconds,
};

/// Where the embedded store lives when the configuration says nothing.
pub const DEFAULT_PATH: &str = "./data/statuslist.redb";

/// The layout version of the file; a file with another one is refused.
const SCHEMA: u64 = 1;

/// With [`EmbeddedDurability::None`], one write transaction in this many is
/// still committed durably.
const DURABLE_EVERY: u64 = 1024;

/// Every this many writes that add an idempotency record (allocations,
/// changes, changes by ref, claims), one sweep of old records runs.
const SWEEP_EVERY: u64 = 16;
/// How many records one sweep looks at. `SWEEP_BATCH / SWEEP_EVERY` = 4
/// records visited per write, against the one each write adds, so
/// a full pass over the table takes a quarter of the allocations it holds
/// and expired records are at most a third of it in steady state.
const SWEEP_BATCH: usize = 64;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const LISTS: TableDefinition<&str, &[u8]> = TableDefinition::new("lists");
const LIST_BYTES: TableDefinition<&str, &[u8]> = TableDefinition::new("list_bytes");
const STATUS_TIMES: TableDefinition<(&str, u64), (u8, u64)> = TableDefinition::new("status_times");
const CURRENT: TableDefinition<(&str, u8), &str> = TableDefinition::new("current_list");
const IDEM: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");

/// When a commit counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmbeddedDurability {
    /// fsync before the operation returns: an acknowledged write survives a
    /// crash or power loss. The default.
    #[default]
    Immediate,
    /// No fsync, except on one commit in 1,024: visible at once to every
    /// later operation, but a crash may lose up to the last 1,023 commits
    /// (the file stays consistent). For tests and benchmarks of the logic
    /// alone, or a node that accepts that loss.
    None,
}

/// The command timeout of stores opened without one ([`EmbeddedStore::open`],
/// [`EmbeddedStore::open_with`]): long enough that a healthy store under load
/// never meets it, short enough that a hung disk gets an answer. The service
/// passes its `[store] command_timeout_ms` instead.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// The most write operations one commit carries by default (see
/// [`EmbeddedOptions::max_batch`]). Far above what a node queues in the
/// time of one fsync at its usual load, and small enough that one batch's
/// work (about 10 µs an operation) stays well under a millisecond or two.
pub const DEFAULT_MAX_BATCH: NonZeroUsize = NonZeroUsize::new(256).expect("256 is not zero");

/// How an embedded store runs, beyond its file and list settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddedOptions {
    /// When a commit counts as done.
    pub durability: EmbeddedDurability,
    /// The longest any call waits for its answer (queueing for the writer
    /// included) before it answers [`StoreError::Unavailable`]. Above zero.
    pub command_timeout: Duration,
    /// Group commit: the most write operations applied in one transaction
    /// and made durable by one commit (one fsync). The writer takes what is
    /// queued, up to this many; 1 commits every operation alone (for
    /// comparison in benchmarks).
    pub max_batch: NonZeroUsize,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            durability: EmbeddedDurability::Immediate,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }
}

/// The redb-backed [`Store`]. Cheap to clone (one shared handle); every clone
/// is the same store. The file is closed when the last clone is dropped.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
    writer: Arc<Writer>,
}

/// The shared state behind every clone.
struct Inner {
    /// The open file, its health and its recovery.
    handle: Handle,
    settings: StoreSettings,
    durability: EmbeddedDurability,
    command_timeout: Duration,
    allocators: AllocatorCache,
    /// Where the round-robin sweep of idempotency records resumes. Only
    /// touched inside a write transaction, which redb runs one at a time, so
    /// the mutex is never contended; a position left by an aborted
    /// transaction is still a fine place to resume.
    sweep: std::sync::Mutex<SweepCursor>,
    /// Write transactions begun, for [`EmbeddedDurability::None`]'s periodic
    /// durable commit.
    writes: AtomicU64,
    /// Write transactions committed (batches, not operations): see
    /// [`EmbeddedStore::commits`].
    commits: AtomicU64,
    /// Lists found damaged, for readiness and one log line each.
    damaged: DamagedLists,
}

/// The sweep's position: record-adding writes since the last sweep and the
/// last key visited (`None`: start from the beginning).
#[derive(Default)]
struct SweepCursor {
    writes: u64,
    after: Option<(String, String)>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.handle.path())
            .field("settings", &self.inner.settings)
            .field("durability", &self.inner.durability)
            .field("command_timeout", &self.inner.command_timeout)
            .finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path` with fsync on every
    /// commit and the [`DEFAULT_COMMAND_TIMEOUT`]. Creates the parent
    /// directory. Blocks: call it at start-up or from a blocking context.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for bad settings; [`StoreError::Unavailable`]
    /// when the file is already open (by another process or another store in
    /// this one) or cannot be created; [`StoreError::Corrupt`] for a file that
    /// is not a store of this version.
    pub fn open(path: impl AsRef<Path>, settings: StoreSettings) -> Result<Self, StoreError> {
        Self::open_with_options(path, settings, EmbeddedOptions::default())
    }

    /// Like [`EmbeddedStore::open`], with the durability of commits chosen.
    ///
    /// # Errors
    /// As [`EmbeddedStore::open`].
    pub fn open_with(
        path: impl AsRef<Path>,
        settings: StoreSettings,
        durability: EmbeddedDurability,
    ) -> Result<Self, StoreError> {
        let options = EmbeddedOptions {
            durability,
            ..EmbeddedOptions::default()
        };
        Self::open_with_options(path, settings, options)
    }

    /// Like [`EmbeddedStore::open`], with every option chosen.
    ///
    /// # Errors
    /// As [`EmbeddedStore::open`]; [`StoreError::Invalid`] for a zero
    /// command timeout.
    pub fn open_with_options(
        path: impl AsRef<Path>,
        settings: StoreSettings,
        options: EmbeddedOptions,
    ) -> Result<Self, StoreError> {
        Self::open_on(path.as_ref(), settings, options, Opener::File)
    }

    /// Like [`EmbeddedStore::open_with_options`], on a file whose writes
    /// `faults` can make fail, panic or stall: for tests of the store's
    /// failure handling (see [`faults`]). Re-opening after a failure keeps
    /// the same injector.
    ///
    /// # Errors
    /// As [`EmbeddedStore::open_with_options`].
    pub fn open_with_faults(
        path: impl AsRef<Path>,
        settings: StoreSettings,
        options: EmbeddedOptions,
        faults: &FaultInjector,
    ) -> Result<Self, StoreError> {
        Self::open_on(
            path.as_ref(),
            settings,
            options,
            Opener::Faulty(faults.clone()),
        )
    }

    fn open_on(
        path: &Path,
        settings: StoreSettings,
        options: EmbeddedOptions,
        opener: Opener,
    ) -> Result<Self, StoreError> {
        common::check_settings(&settings)?;
        if options.command_timeout.is_zero() {
            return Err(StoreError::Invalid(
                "the embedded store's command timeout must be above zero".into(),
            ));
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot create the directory {}: {e}",
                    parent.display()
                ))
            })?;
        }
        let inner = Inner {
            handle: Handle::open(path.to_path_buf(), opener)?,
            settings,
            durability: options.durability,
            command_timeout: options.command_timeout,
            allocators: AllocatorCache::new(),
            sweep: std::sync::Mutex::new(SweepCursor::default()),
            writes: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            damaged: DamagedLists::new(),
        };
        inner.init_schema()?;
        let inner = Arc::new(inner);
        let writer = Arc::new(Writer::start(Arc::clone(&inner), options.max_batch)?);
        Ok(EmbeddedStore { inner, writer })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        self.inner.handle.path()
    }

    /// The settings new lists are built with.
    pub fn settings(&self) -> &StoreSettings {
        &self.inner.settings
    }

    /// The longest any call waits before it answers
    /// [`StoreError::Unavailable`].
    pub fn command_timeout(&self) -> Duration {
        self.inner.command_timeout
    }

    /// How many write transactions the writer has committed since the store
    /// was opened: one per batch of operations (group commit), so with
    /// [`EmbeddedDurability::Immediate`] the number of fsyncs. Recovery
    /// probes are not counted. For benchmarks and tests.
    pub fn commits(&self) -> u64 {
        self.inner.commits.load(Ordering::Relaxed)
    }

    /// Runs the write operation `f` (named `name` in logs) on the writer
    /// thread, inside the caller's span and inside the transaction of the
    /// batch it joins (see `writer.rs`), waiting at most the command timeout.
    /// The answer comes once that batch is committed. `f` may run more than
    /// once (when another operation of its batch fails on its own), always
    /// against the same state.
    async fn write<T, F>(&self, name: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Inner, &WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    {
        let (tx, answer) = tokio::sync::oneshot::channel();
        self.writer.submit(Job::new(name, f, tx))?;
        match tokio::time::timeout(self.inner.command_timeout, answer).await {
            Ok(Ok(result)) => result,
            // The writer thread dropped the job without an answer: only when
            // it is shutting down, which no caller with a store outlives.
            Ok(Err(_)) => Err(StoreError::Unavailable(format!(
                "{name} failed inside the store (see the error log); the store is recovering"
            ))),
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Runs the read operation `f` on the blocking pool, inside the caller's
    /// span, waiting at most the command timeout. Reads do not queue behind
    /// writes: redb readers never wait.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        let span = tracing::Span::current();
        let task = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let generation = inner.handle.generation();
                let result = f(&inner);
                if let Err(StoreError::Unavailable(why)) = &result {
                    inner.handle.read_failed(generation, why);
                }
                result
            })
        });
        match tokio::time::timeout(self.inner.command_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => {
                if e.is_panic() {
                    // redb's memory may be half updated: re-open before the
                    // next write, as after a failed write.
                    tracing::error!("a store read panicked; the store is marked not ready");
                    self.inner.handle.mark_broken("a read panicked");
                }
                Err(StoreError::Unavailable(
                    "a store read did not finish".into(),
                ))
            }
            Err(_) => Err(self.timed_out()),
        }
    }

    fn timed_out(&self) -> StoreError {
        StoreError::Unavailable(format!(
            "the embedded store did not answer within {} ms",
            self.inner.command_timeout.as_millis()
        ))
    }
}

/// The error for a file that cannot be opened, naming it.
fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
            "the store file {} is already in use by another statuslist process (or another \
             store in this one); the embedded store serves one process only: stop the other \
             process, choose another file, or use the Redis store for several replicas",
            path.display()
        )),
        DatabaseError::UpgradeRequired(v) => StoreError::Corrupt(format!(
            "the store file {} has redb file format {v}, which this build cannot open",
            path.display()
        )),
        other => StoreError::Unavailable(format!(
            "cannot open the store file {}: {other}",
            path.display()
        )),
    }
}

/// Maps a redb failure: I/O trouble (now or earlier), a database closed for
/// re-opening and locks poisoned by a panic are retryable, and only they
/// (the store re-opens the file after them, see `handle.rs`); the rest is
/// the backend's.
fn db_err<E: Into<redb::Error>>(e: E) -> StoreError {
    match e.into() {
        redb::Error::Io(io) => StoreError::Unavailable(format!("store file I/O: {io}")),
        e @ (redb::Error::PreviousIo
        | redb::Error::DatabaseClosed
        | redb::Error::LockPoisoned(_)) => StoreError::Unavailable(format!("store file: {e}")),
        redb::Error::Corrupted(why) => StoreError::Corrupt(why),
        other => StoreError::Backend(other.to_string()),
    }
}

/// The length a list's bytes must have.
fn full_len(list: &ListRecord) -> Result<usize, StoreError> {
    crate::domain::packed::byte_len(list.bits, list.capacity)
        .map_err(|e| StoreError::Corrupt(format!("list {}: {e}", list.id)))
}

fn corrupt_id(what: &str) -> StoreError {
    StoreError::Corrupt(format!("a stored {what} id does not parse"))
}

/// The idempotency record of `(client, jti)` in `idem`, if there is one.
fn idem_record(
    idem: &Table<(&str, &str), &[u8]>,
    key: (&str, &str),
) -> Result<Option<IdemRecord>, StoreError> {
    idem.get(key)
        .map_err(db_err)?
        .map(|guard| IdemRecord::decode(guard.value()))
        .transpose()
}

impl Inner {
    /// The open database, for one transaction.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] while the file is being re-opened.
    fn db(&self) -> Result<Arc<redb::Database>, StoreError> {
        self.handle.db()
    }

    /// Creates every table and checks the file's layout version, so that the
    /// read paths can open tables without "does not exist" cases.
    fn init_schema(&self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_write().map_err(db_err)?;
        {
            let mut meta = txn.open_table(META).map_err(db_err)?;
            let found = meta.get("schema").map_err(db_err)?.map(|g| g.value());
            match found {
                None => {
                    meta.insert("schema", SCHEMA).map_err(db_err)?;
                }
                Some(SCHEMA) => {}
                Some(other) => {
                    return Err(StoreError::Corrupt(format!(
                        "the store file {} has layout version {other}, this build knows {SCHEMA}",
                        self.handle.path().display()
                    )));
                }
            }
            txn.open_table(LISTS).map_err(db_err)?;
            txn.open_table(LIST_BYTES).map_err(db_err)?;
            txn.open_table(STATUS_TIMES).map_err(db_err)?;
            txn.open_table(CURRENT).map_err(db_err)?;
            txn.open_table(IDEM).map_err(db_err)?;
            // Missing in a file written before entries were tracked: created
            // empty, which is what such a file holds (its lists untracked).
            entries::create_tables(&txn)?;
            // Likewise for the outbox, whose leases this process is now the
            // only one to hold (see `outbox.rs`).
            outbox::create_tables(&txn)?;
            let released = outbox::release_leases(&txn)?;
            if released > 0 {
                tracing::info!(
                    events = released,
                    "events held when the store was last closed are due again"
                );
            }
        }
        txn.commit().map_err(db_err)
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db()?.begin_write().map_err(db_err)?;
        if self.durability == EmbeddedDurability::None {
            // redb reclaims the pages of non-durable commits only at the next
            // durable one, and only a durable commit reaches the disk: one in
            // every DURABLE_EVERY bounds both the file's growth and the loss.
            let n = self.writes.fetch_add(1, Ordering::Relaxed);
            if !n.is_multiple_of(DURABLE_EVERY) {
                txn.set_durability(redb::Durability::None).map_err(db_err)?;
            }
        }
        Ok(txn)
    }

    /// Commits a batch's transaction and counts it.
    fn commit(&self, txn: WriteTransaction) -> Result<(), StoreError> {
        txn.commit().map_err(db_err)?;
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn load_list<T>(&self, lists: &T, id: &ListId) -> Result<Option<ListRecord>, StoreError>
    where
        T: ReadableTable<&'static str, &'static [u8]>,
    {
        match lists.get(id.as_str()).map_err(db_err)? {
            Some(guard) => ListRecord::decode(*id, guard.value()).map(Some),
            None => Ok(None),
        }
    }

    /// The allocator of `list`, from the cache or built from its record.
    fn allocator_of<T>(&self, lists: &T, list: &ListId) -> Result<Arc<Allocator>, StoreError>
    where
        T: ReadableTable<&'static str, &'static [u8]>,
    {
        if let Some(found) = self.allocators.get(list) {
            return Ok(found);
        }
        let record = self.load_list(lists, list)?.ok_or_else(|| {
            StoreError::Corrupt(format!("a stored record points at the missing list {list}"))
        })?;
        self.allocators
            .get_or_build(&record.id, &record.key, record.capacity)
    }

    /// The allocation an issue record points at, recomputed with the lists'
    /// allocators: `count` numbers from `first` in `list`, and the spill
    /// into a new list (from its number 0) if there was one.
    fn allocation_of<T>(
        &self,
        lists: &T,
        list: ListId,
        format: crate::domain::ListFormat,
        (first, count): (u64, u32),
        next: Option<(ListId, u32)>,
    ) -> Result<Allocation, StoreError>
    where
        T: ReadableTable<&'static str, &'static [u8]>,
    {
        let next = match next {
            Some((list, count)) => Some(ListRun {
                list,
                indexes: common::indexes(&*self.allocator_of(lists, &list)?, 0, count)?,
            }),
            None => None,
        };
        Ok(Allocation {
            list,
            format,
            indexes: common::indexes(&*self.allocator_of(lists, &list)?, first, count)?,
            next,
        })
    }

    /// The list's bytes, checked: missing or of the wrong length means the
    /// list is damaged and must fail closed (never published as zeros, never
    /// changed).
    fn list_bytes<T>(&self, bytes: &T, list: &ListRecord) -> Result<Vec<u8>, StoreError>
    where
        T: ReadableTable<&'static str, &'static [u8]>,
    {
        let raw = bytes
            .get(list.id.as_str())
            .map_err(db_err)?
            .map(|g| g.value().to_vec());
        self.damaged
            .check_len(list.id, raw.as_ref().map(Vec::len), full_len(list)?)?;
        Ok(raw.unwrap_or_default())
    }

    /// The same check as [`Inner::list_bytes`] without copying the bytes
    /// (the allocation path and the version check only need their length).
    fn check_bytes<T>(&self, bytes: &T, list: &ListRecord) -> Result<(), StoreError>
    where
        T: ReadableTable<&'static str, &'static [u8]>,
    {
        let len = bytes
            .get(list.id.as_str())
            .map_err(db_err)?
            .map(|g| g.value().len());
        self.damaged.check_len(list.id, len, full_len(list)?)
    }

    /// One allocation inside the batch's transaction `txn` (checked by
    /// [`common::check_request`] before it was queued): the room left in the
    /// space's current list, the rest from a new list, the issuance record
    /// and the idempotency record, all in the one transaction.
    fn allocate(
        &self,
        txn: &WriteTransaction,
        req: &AllocateRequest,
    ) -> Result<AllocateOutcome, StoreError> {
        let client = req.client.as_str();
        let jti = req.jti.as_str();
        let mut idem = txn.open_table(IDEM).map_err(db_err)?;
        let mut lists = txn.open_table(LISTS).map_err(db_err)?;

        if let Some(rec) = idem_record(&idem, (client, jti))? {
            match common::replay_decision(&rec.digest, rec.expires_at, &req.digest, req.now) {
                // Nothing written: the batch commits without it.
                ReplayDecision::Changed => return Ok(AllocateOutcome::Changed),
                ReplayDecision::Replay => {
                    let Recorded::Issue {
                        list,
                        format,
                        first,
                        count,
                        next,
                    } = rec.answer
                    else {
                        // Another kind's record: the same digest cannot
                        // belong to an issue.
                        return Ok(AllocateOutcome::Changed);
                    };
                    return Ok(AllocateOutcome::Replayed(self.allocation_of(
                        &lists,
                        list,
                        format,
                        (first, count),
                        next,
                    )?));
                }
                // Replaced below by the new request's record.
                ReplayDecision::Expired => {}
            }
        }
        self.sweep(&mut idem, req.now)?;

        let mut current = txn.open_table(CURRENT).map_err(db_err)?;
        let mut bytes = txn.open_table(LIST_BYTES).map_err(db_err)?;
        let mut spaces = txn.open_table(entries::SPACES).map_err(db_err)?;
        let fmt = format_byte(req.format);
        let space = spaces
            .get((client, fmt))
            .map_err(db_err)?
            .map(|g| g.value());
        let (next_seq, last_created) = space.unwrap_or((0, 0));
        let current_id = match current.get((client, fmt)).map_err(db_err)? {
            Some(guard) => Some(ListId::parse(guard.value()).map_err(|_| corrupt_id("list"))?),
            None => None,
        };
        // Only a tracked list is allocated from: an untracked one (opened
        // before entries were tracked) keeps what it has, and the request
        // goes to a new list.
        let mut open = match current_id {
            Some(id) => {
                let list = self.load_list(&lists, &id)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("the current list {id} is missing"))
                })?;
                list.base.is_some().then_some(list)
            }
            None => None,
        };
        if let Some(list) = &open
            && list.base.map(|b| b.saturating_add(list.counter)) != Some(next_seq)
        {
            return Err(StoreError::Corrupt(format!(
                "the current list {} does not end where its client's entries do ({next_seq})",
                list.id
            )));
        }
        let count = u64::from(req.count);
        let room = open
            .as_ref()
            .map_or(0, |l| l.capacity.saturating_sub(l.counter));
        let here = count.min(room);
        let rest = count - here;
        // The runs of the allocation: (list, first allocation number, count).
        let mut runs: Vec<(ListId, u64, u32)> = Vec::with_capacity(2);
        if here > 0
            && let Some(mut list) = open.take()
        {
            // Issuing into a list that cannot be published would hand out
            // an index no verifier can check.
            self.check_bytes(&bytes, &list)?;
            let first = list.counter;
            list.counter = first.saturating_add(here);
            list.retire_after = list.retire_after.max(req.status_expiry);
            lists
                .insert(list.id.as_str(), list.encode().as_slice())
                .map_err(db_err)?;
            runs.push((list.id, first, u32::try_from(here).unwrap_or(u32::MAX)));
        }
        if rest > 0 {
            let base = next_seq.saturating_add(here);
            let mut fresh = self.new_list(&lists, &req.client, req, base)?;
            fresh.counter = rest;
            let zeros = StatusList::new(req.format.layout(), fresh.bits, fresh.capacity)
                .map_err(|e| StoreError::Invalid(e.to_string()))?
                .into_bytes();
            bytes
                .insert(fresh.id.as_str(), zeros.as_slice())
                .map_err(db_err)?;
            lists
                .insert(fresh.id.as_str(), fresh.encode().as_slice())
                .map_err(db_err)?;
            current
                .insert((client, fmt), fresh.id.as_str())
                .map_err(db_err)?;
            txn.open_table(entries::LISTS_BY_SEQ)
                .map_err(db_err)?
                .insert((client, fmt, base), fresh.id.as_str())
                .map_err(db_err)?;
            tracing::info!(list = %fresh.id, client, format = %req.format, "opened a new list");
            runs.push((fresh.id, 0, u32::try_from(rest).unwrap_or(u32::MAX)));
        }
        let Some(&(list, first, count_here)) = runs.first() else {
            return Err(StoreError::Backend("no list to allocate from".into()));
        };
        let next = runs.get(1).map(|&(list, _, count)| (list, count));

        let created = req.now.max(last_created);
        entries::record_issuance(txn, (client, fmt), next_seq, req, created)?;
        spaces
            .insert((client, fmt), (next_seq.saturating_add(count), created))
            .map_err(db_err)?;

        let rec = IdemRecord {
            digest: req.digest,
            expires_at: req.keep_until,
            answer: Recorded::Issue {
                list,
                format: req.format,
                first,
                count: count_here,
                next,
            },
        };
        idem.insert((client, jti), rec.encode().as_slice())
            .map_err(db_err)?;
        let allocation = self.allocation_of(&lists, list, req.format, (first, count_here), next)?;
        // In this transaction: the event exists exactly when the
        // allocation does. Only for an issue with a ref.
        if let (Some(seed), Some(r)) = (req.events, &req.issuance_ref) {
            let event = Event {
                id: seed.id(0),
                kind: EventKind::EntriesIssued,
                client: req.client.clone(),
                format: req.format,
                at: req.now,
                entries: allocation.entries().collect(),
                issuance_ref: Some(r.clone()),
            };
            let body = outbox::EventBody {
                event,
                entry_seq: Some(next_seq),
            };
            outbox::record(txn, &req.client, vec![body])?;
        }
        Ok(AllocateOutcome::Allocated(allocation))
    }

    /// A fresh, empty list record for the request's client and format, under
    /// an id no list has, whose first entry is the space's entry `base`.
    fn new_list<T>(
        &self,
        lists: &T,
        client: &ClientId,
        req: &AllocateRequest,
        base: u64,
    ) -> Result<ListRecord, StoreError>
    where
        T: ReadableTable<&'static str, &'static [u8]>,
    {
        // 48 random bits: a clash is astronomically rare, but checking is one
        // lookup and makes it impossible rather than unlikely.
        for _ in 0..16 {
            let id = ListId::random();
            if lists.get(id.as_str()).map_err(db_err)?.is_none() {
                return Ok(ListRecord {
                    id,
                    client: client.clone(),
                    format: req.format,
                    bits: self.settings.bits,
                    capacity: self.settings.capacity,
                    counter: 0,
                    created_at: req.now,
                    retire_after: req.status_expiry,
                    version: 0,
                    key: AllocatorKey::random(),
                    base: Some(base),
                });
            }
        }
        Err(StoreError::Backend("could not find a free list id".into()))
    }

    /// Every [`SWEEP_EVERY`]-th call, removes the expired records among the
    /// next [`SWEEP_BATCH`] of the idempotency table (round robin). Bounded,
    /// so a write never pays for a full scan. Called by every write that
    /// adds a record, before it adds it.
    fn sweep(
        &self,
        idem: &mut Table<(&str, &str), &[u8]>,
        now: UnixSeconds,
    ) -> Result<(), StoreError> {
        let mut cursor = self.sweep.lock().unwrap_or_else(|e| e.into_inner());
        cursor.writes = cursor.writes.wrapping_add(1);
        if !cursor.writes.is_multiple_of(SWEEP_EVERY) {
            return Ok(());
        }
        let mut visited = 0;
        let mut last = None;
        let mut due: Vec<(String, String)> = Vec::new();
        {
            let iter = match &cursor.after {
                Some((c, j)) => idem.range::<(&str, &str)>((
                    Bound::Excluded((c.as_str(), j.as_str())),
                    Bound::Unbounded,
                )),
                None => idem.range::<(&str, &str)>(..),
            }
            .map_err(db_err)?;
            for entry in iter {
                let (key, value) = entry.map_err(db_err)?;
                let (c, j) = key.value();
                let owned = (c.to_owned(), j.to_owned());
                if IdemRecord::decode(value.value())?.expires_at <= now {
                    due.push(owned.clone());
                }
                last = Some(owned);
                visited += 1;
                if visited >= SWEEP_BATCH {
                    break;
                }
            }
        }
        // A short batch reached the end: start over next time.
        cursor.after = if visited < SWEEP_BATCH { None } else { last };
        for (c, j) in &due {
            idem.remove((c.as_str(), j.as_str())).map_err(db_err)?;
        }
        Ok(())
    }

    /// One status change inside the batch's transaction `txn` (checked by
    /// [`common::check_change`] before it was queued). Refusals write
    /// nothing.
    fn set_status(
        &self,
        txn: &WriteTransaction,
        change: &StatusChange,
    ) -> Result<SetStatusOutcome, StoreError> {
        let (client, id, idx) = (&change.client, &change.list, change.idx);
        let record_key = (client.as_str(), change.jti.as_str());
        let outcome = {
            let mut idem = txn.open_table(IDEM).map_err(db_err)?;
            if let Some(rec) = idem_record(&idem, record_key)? {
                match common::replay_decision(
                    &rec.digest,
                    rec.expires_at,
                    &change.digest,
                    change.now,
                ) {
                    // Nothing written: the batch commits without it.
                    ReplayDecision::Changed => return Ok(SetStatusOutcome::Changed),
                    ReplayDecision::Replay => {
                        return Ok(match rec.answer {
                            Recorded::Change { done: true, at } => SetStatusOutcome::Done {
                                at: at.unwrap_or(change.now),
                            },
                            Recorded::Change { done: false, at } => {
                                SetStatusOutcome::Already { at }
                            }
                            // Another kind's record: the same digest
                            // cannot belong to a change.
                            Recorded::Issue { .. }
                            | Recorded::RefChange { .. }
                            | Recorded::Claim => SetStatusOutcome::Changed,
                        });
                    }
                    ReplayDecision::Expired => {}
                }
            }
            let mut lists = txn.open_table(LISTS).map_err(db_err)?;
            let Some(mut list) = self.load_list(&lists, id)? else {
                return Ok(SetStatusOutcome::ListNotFound);
            };
            if &list.client != client {
                return Ok(SetStatusOutcome::NotYourList);
            }
            if idx >= list.capacity {
                return Ok(SetStatusOutcome::NeverIssued);
            }
            let allocator = self
                .allocators
                .get_or_build(&list.id, &list.key, list.capacity)?;
            if !common::was_issued(&allocator, list.capacity, list.counter, idx) {
                return Ok(SetStatusOutcome::NeverIssued);
            }
            let mut bytes = txn.open_table(LIST_BYTES).map_err(db_err)?;
            let raw = self.list_bytes(&bytes, &list)?;
            let mut entries =
                StatusList::from_bytes(list.format.layout(), list.bits, list.capacity, raw)
                    .map_err(|e| StoreError::Corrupt(format!("list {id}: {e}")))?;
            let current = entries
                .get(idx)
                .map_err(|e| StoreError::Corrupt(format!("list {id}: {e}")))?;
            let mut times = txn.open_table(STATUS_TIMES).map_err(db_err)?;
            let recorded = match times.get((id.as_str(), idx)).map_err(db_err)? {
                Some(guard) => {
                    let (value, at) = guard.value();
                    let status = Status::from_value(value).ok_or_else(|| {
                        StoreError::Corrupt(format!("list {id}: bad recorded status {value}"))
                    })?;
                    Some((status, at))
                }
                None => None,
            };
            // The entry's seq in its space (tracked lists only), for its
            // event.
            let mut entry_seq = None;
            let outcome =
                match common::status_decision(current, change.status, list.bits, recorded)? {
                    StatusDecision::Answer(outcome) => outcome,
                    StatusDecision::Write { value } => {
                        entries
                            .set(idx, value)
                            .map_err(|e| StoreError::Invalid(e.to_string()))?;
                        bytes
                            .insert(id.as_str(), entries.as_bytes())
                            .map_err(db_err)?;
                        times
                            .insert((id.as_str(), idx), (value, change.now))
                            .map_err(db_err)?;
                        if let Some(base) = list.base {
                            let n = allocator
                                .invert(idx)
                                .map_err(|e| StoreError::Corrupt(format!("list {id}: {e}")))?;
                            let seq = base.saturating_add(n);
                            entries::ChangeIndex::open(txn)?.record(
                                (list.client.as_str(), format_byte(list.format)),
                                seq,
                                value,
                                change.now,
                            )?;
                            entry_seq = Some(seq);
                        }
                        list.version = list.version.saturating_add(1);
                        lists
                            .insert(id.as_str(), list.encode().as_slice())
                            .map_err(db_err)?;
                        SetStatusOutcome::Done { at: change.now }
                    }
                };
            let answer = match outcome {
                SetStatusOutcome::Done { at } => Recorded::Change {
                    done: true,
                    at: Some(at),
                },
                SetStatusOutcome::Already { at } => Recorded::Change { done: false, at },
                // Refusals are not recorded and change nothing.
                refused => return Ok(refused),
            };
            if let (SetStatusOutcome::Done { .. }, Some(seed), Some(kind)) = (
                &outcome,
                change.events,
                EventKind::for_status(change.status),
            ) {
                let space = (client.as_str(), format_byte(list.format));
                let issuance_ref = match entry_seq {
                    Some(seq) => entries::issuance_ref_at(txn, space, seq)?,
                    // An untracked list's entries have no ref.
                    None => None,
                };
                let event = Event {
                    id: seed.id(0),
                    kind,
                    client: client.clone(),
                    format: list.format,
                    at: change.now,
                    entries: vec![(*id, idx)],
                    issuance_ref,
                };
                let body = outbox::EventBody { event, entry_seq };
                outbox::record(txn, client, vec![body])?;
            }
            self.sweep(&mut idem, change.now)?;
            let rec = IdemRecord {
                digest: change.digest,
                expires_at: change.keep_until,
                answer,
            };
            idem.insert(record_key, rec.encode().as_slice())
                .map_err(db_err)?;
            outcome
        };
        Ok(outcome)
    }

    fn read_list(&self, id: &ListId) -> Result<Option<ListSnapshot>, StoreError> {
        let txn = self.db()?.begin_read().map_err(db_err)?;
        let lists = txn.open_table(LISTS).map_err(db_err)?;
        let Some(list) = self.load_list(&lists, id)? else {
            return Ok(None);
        };
        let bytes = txn.open_table(LIST_BYTES).map_err(db_err)?;
        let raw = self.list_bytes(&bytes, &list)?;
        self.damaged.clear(id);
        Ok(Some(ListSnapshot {
            meta: list.meta(),
            version: list.version,
            bytes: raw,
        }))
    }

    fn list_version(&self, id: &ListId) -> Result<Option<u64>, StoreError> {
        let txn = self.db()?.begin_read().map_err(db_err)?;
        let lists = txn.open_table(LISTS).map_err(db_err)?;
        let Some(list) = self.load_list(&lists, id)? else {
            return Ok(None);
        };
        // Checked here too, so that a cache that only asks for the version
        // stops serving a list whose bytes were lost.
        let bytes = txn.open_table(LIST_BYTES).map_err(db_err)?;
        self.check_bytes(&bytes, &list)?;
        Ok(Some(list.version))
    }

    fn list_ids(&self, format: ListFormat) -> Result<Vec<ListId>, StoreError> {
        let txn = self.db()?.begin_read().map_err(db_err)?;
        let lists = txn.open_table(LISTS).map_err(db_err)?;
        let mut ids = Vec::new();
        for row in lists.iter().map_err(db_err)? {
            let (key, value) = row.map_err(db_err)?;
            let id = ListId::parse(key.value())
                .map_err(|_| StoreError::Corrupt(format!("list key {:?}", key.value())))?;
            if ListRecord::decode(id, value.value())?.format == format {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    fn health(&self) -> Result<StoreHealth, StoreError> {
        let txn = self.db()?.begin_read().map_err(db_err)?;
        let meta = txn.open_table(META).map_err(db_err)?;
        meta.get("schema").map_err(db_err)?;
        Ok(StoreHealth {
            damaged: self.damaged.list(),
            warnings: Vec::new(),
        })
    }
}

impl Store for EmbeddedStore {
    #[tracing::instrument(level = "debug", name = "store.set_status_by_ref", skip_all, fields(client = %change.client, format = %change.format, status = %change.status))]
    async fn set_status_by_ref(&self, change: &RefChange) -> Result<RefChangeOutcome, StoreError> {
        common::check_ref_change(change)?;
        let change = change.clone();
        self.write("store.set_status_by_ref", move |inner, txn| {
            inner.set_status_by_ref(txn, &change)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "store.claim_jti", skip_all, fields(client = %claim.client))]
    async fn claim_jti(&self, claim: &JtiClaim) -> Result<JtiClaimOutcome, StoreError> {
        common::check_claim(claim)?;
        let claim = claim.clone();
        self.write("store.claim_jti", move |inner, txn| {
            inner.claim_jti(txn, &claim)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "store.list_entries", skip_all, fields(client = %query.client, format = %query.format, offset = query.offset))]
    async fn list_entries(&self, query: &EntryQuery) -> Result<EntryPage, StoreError> {
        let query = query.clone();
        self.blocking(move |inner| inner.list_entries(&query)).await
    }

    #[tracing::instrument(level = "debug", name = "store.allocate", skip_all, fields(client = %req.client, format = %req.format, count = req.count))]
    async fn allocate(&self, req: &AllocateRequest) -> Result<AllocateOutcome, StoreError> {
        // Checked here, before queueing: a request refused on its own never
        // costs its batch a second pass (see `writer.rs`).
        common::check_request(req, &self.inner.settings)?;
        let req = req.clone();
        self.write("store.allocate", move |inner, txn| {
            inner.allocate(txn, &req)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "store.set_status", skip_all, fields(client = %change.client, list = %change.list, idx = change.idx, status = %change.status))]
    async fn set_status(&self, change: &StatusChange) -> Result<SetStatusOutcome, StoreError> {
        common::check_change(change)?;
        let change = change.clone();
        self.write("store.set_status", move |inner, txn| {
            inner.set_status(txn, &change)
        })
        .await
    }

    #[tracing::instrument(level = "debug", name = "store.read_list", skip_all, fields(list = %list))]
    async fn read_list(&self, list: &ListId) -> Result<Option<ListSnapshot>, StoreError> {
        let list = *list;
        self.blocking(move |inner| inner.read_list(&list)).await
    }

    #[tracing::instrument(level = "debug", name = "store.list_version", skip_all, fields(list = %list))]
    async fn list_version(&self, list: &ListId) -> Result<Option<u64>, StoreError> {
        let list = *list;
        self.blocking(move |inner| inner.list_version(&list)).await
    }

    #[tracing::instrument(level = "debug", name = "store.list_ids", skip_all)]
    async fn list_ids(&self, format: ListFormat) -> Result<Vec<ListId>, StoreError> {
        self.blocking(move |inner| inner.list_ids(format)).await
    }

    #[tracing::instrument(level = "debug", name = "store.health", skip_all)]
    async fn health(&self) -> Result<StoreHealth, StoreError> {
        // A writer stuck on one commit means writes time out: not ready.
        if let Some(busy) = self.writer.busy_for()
            && busy > self.inner.command_timeout
        {
            return Err(StoreError::Unavailable(format!(
                "the embedded store's writer has been busy with one commit for {} ms",
                busy.as_millis()
            )));
        }
        if self.inner.handle.is_broken() {
            // Recovery runs on the writer thread, the one place that writes:
            // an empty write tries it when one is due.
            self.write("store.recover", |_, _| Ok(())).await?;
        }
        // Healthy: a read, with no fsync.
        self.blocking(|inner| inner.health()).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redb::ReadableTableMetadata;

    use super::*;
    use crate::domain::{Jti, ListFormat};
    use std::collections::HashSet;

    use crate::ports::{JtiClaim, RefChange, StatusChange};

    fn settings() -> StoreSettings {
        StoreSettings {
            capacity: 64,
            idempotency_window: Duration::from_secs(100),
            ..StoreSettings::default()
        }
    }

    fn req(jti: &str, now: UnixSeconds) -> AllocateRequest {
        AllocateRequest {
            client: ClientId::parse("c").unwrap(),
            format: ListFormat::Token,
            jti: Jti::from_name(jti),
            digest: [1; 32],
            status_expiry: now + 1000,
            count: 1,
            issuance_ref: None,
            now,
            keep_until: now + 100,
            events: None,
        }
    }

    fn count(store: &EmbeddedStore, table: TableDefinition<(&str, &str), &[u8]>) -> u64 {
        let txn = store.inner.db().unwrap().begin_read().unwrap();
        txn.open_table(table).unwrap().len().unwrap()
    }

    #[tokio::test]
    async fn expired_records_are_swept_round_robin() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open_with(
            dir.path().join("s.redb"),
            settings(),
            EmbeddedDurability::None,
        )
        .unwrap();
        // 20 records at t=0, which the window (100 s) ends at t=100.
        for i in 0..20 {
            store.allocate(&req(&format!("old-{i}"), 0)).await.unwrap();
        }
        assert_eq!(count(&store, IDEM), 20, "nothing expired yet");
        // Within SWEEP_EVERY allocations past the window, a sweep removes them.
        let mut after = 0;
        while count(&store, IDEM) > after {
            after += 1;
            assert!(after <= SWEEP_EVERY, "no sweep ran");
            store
                .allocate(&req(&format!("new-{after}"), 200))
                .await
                .unwrap();
        }
        assert!(after < 20, "old records were removed");
        // A swept jti is new again: a fresh allocation, not a replay.
        let again = store.allocate(&req("old-0", 201)).await.unwrap();
        assert!(matches!(again, AllocateOutcome::Allocated(_)));
    }

    /// The records of every kind that live past their request (changes,
    /// changes by ref, claims, not only issues) are swept, and every kind
    /// of write that adds a record drives the sweep: here, claims alone.
    #[tokio::test]
    async fn records_of_every_kind_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open_with(
            dir.path().join("k.redb"),
            settings(),
            EmbeddedDurability::None,
        )
        .unwrap();
        let c = ClientId::parse("c").unwrap();
        let r = crate::domain::IssuanceRef::parse("batch").unwrap();
        let issue = AllocateRequest {
            count: 2,
            issuance_ref: Some(r.clone()),
            ..req("issue", 0)
        };
        let AllocateOutcome::Allocated(a) = store.allocate(&issue).await.unwrap() else {
            panic!("not allocated");
        };
        let change = StatusChange {
            client: c.clone(),
            list: a.list,
            idx: a.indexes[0],
            status: Status::Suspended,
            jti: Jti::from_name("change"),
            digest: [2; 32],
            now: 0,
            keep_until: 100,
            events: None,
        };
        assert_eq!(
            store.set_status(&change).await.unwrap(),
            SetStatusOutcome::Done { at: 0 }
        );
        let by_ref = RefChange {
            client: c.clone(),
            format: ListFormat::Token,
            issuance_ref: r,
            status: Status::Invalid,
            jti: Jti::from_name("by-ref"),
            digest: [3; 32],
            now: 0,
            keep_until: 100,
            events: None,
        };
        assert!(matches!(
            store.set_status_by_ref(&by_ref).await.unwrap(),
            RefChangeOutcome::Done(_)
        ));
        let claim = |jti: &str, now| JtiClaim {
            client: c.clone(),
            jti: Jti::from_name(jti),
            digest: [4; 32],
            now,
            keep_until: now + 100,
        };
        assert_eq!(
            store.claim_jti(&claim("claim", 0)).await.unwrap(),
            JtiClaimOutcome::Fresh
        );
        let kinds = |now: UnixSeconds| {
            let txn = store.inner.db().unwrap().begin_read().unwrap();
            let idem = txn.open_table(IDEM).unwrap();
            let mut old = Vec::new();
            for entry in idem.iter().unwrap() {
                let rec = IdemRecord::decode(entry.unwrap().1.value()).unwrap();
                if rec.expires_at <= now {
                    old.push(std::mem::discriminant(&rec.answer));
                }
            }
            old
        };
        let d = std::mem::discriminant;
        let every_kind: HashSet<_> = [
            d(&Recorded::Claim),
            d(&Recorded::Change {
                done: true,
                at: None,
            }),
            d(&Recorded::RefChange {
                at: 0,
                changed: 0,
                skipped: 0,
                already: 0,
            }),
            d(&Recorded::Issue {
                list: a.list,
                format: ListFormat::Token,
                first: 0,
                count: 0,
                next: None,
            }),
        ]
        .into();
        let old = kinds(100);
        assert_eq!(old.len(), 4, "one record of each kind, all over at t=100");
        assert_eq!(old.into_iter().collect::<HashSet<_>>(), every_kind);
        let mut after = 0;
        while !kinds(200).is_empty() {
            after += 1;
            assert!(after <= SWEEP_EVERY, "no sweep ran");
            store
                .claim_jti(&claim(&format!("new-{after}"), 200))
                .await
                .unwrap();
        }
        assert_eq!(count(&store, IDEM), after, "only the new claims are left");
    }

    /// Group commit re-runs a batch without an operation that failed on its
    /// own after writing: what it wrote is gone, the operations before and
    /// after it are committed, in the one commit of their batch.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_failing_after_writing_leaves_nothing_and_spares_its_batch() {
        use faults::Fault;

        let dir = tempfile::tempdir().unwrap();
        let faults = FaultInjector::new();
        let options = EmbeddedOptions {
            command_timeout: Duration::from_secs(10),
            ..EmbeddedOptions::default()
        };
        let store = EmbeddedStore::open_with_faults(
            dir.path().join("f.redb"),
            settings(),
            options,
            &faults,
        )
        .unwrap();
        // Hold the writer in a stalled fsync, so that the three writes below
        // queue up as one batch.
        faults.set(Fault::Stall);
        let held = store.clone();
        let blocker = tokio::spawn(async move { held.allocate(&req("blocker", 0)).await });
        while faults.hits() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let before = store.commits();
        let put = |key: &'static str, fail: bool| {
            store.write("test.put", move |_, txn| {
                txn.open_table(META)
                    .map_err(db_err)?
                    .insert(key, 1)
                    .map_err(db_err)?;
                if fail {
                    return Err(StoreError::Backend("refused after writing".into()));
                }
                Ok(key)
            })
        };
        let release = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            faults.clear();
        };
        let (answers, ()) = futures::future::join(
            futures::future::join_all([put("a", false), put("b", true), put("c", false)]),
            release,
        )
        .await;
        blocker.await.unwrap().unwrap();
        assert_eq!(
            answers,
            [
                Ok("a"),
                Err(StoreError::Backend("refused after writing".into())),
                Ok("c")
            ]
        );
        assert_eq!(store.commits() - before, 2, "blocker, then one batch");
        let txn = store.inner.db().unwrap().begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let found = |key| meta.get(key).unwrap().is_some();
        assert!(found("a") && found("c"), "the others were committed");
        assert!(!found("b"), "the failed write left nothing behind");
    }

    #[test]
    fn a_zero_command_timeout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = EmbeddedOptions {
            command_timeout: Duration::ZERO,
            ..EmbeddedOptions::default()
        };
        let err = EmbeddedStore::open_with_options(dir.path().join("t.redb"), settings(), options)
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    }

    #[tokio::test]
    async fn a_bad_file_is_refused_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.redb");
        std::fs::write(&path, b"this is not a redb file at all").unwrap();
        let err = EmbeddedStore::open(&path, settings()).unwrap_err();
        assert!(
            err.to_string().contains("garbage.redb"),
            "names the file: {err}"
        );
        let bad = StoreSettings {
            capacity: 0,
            ..settings()
        };
        assert!(matches!(
            EmbeddedStore::open(dir.path().join("x.redb"), bad),
            Err(StoreError::Invalid(_))
        ));
    }
}
