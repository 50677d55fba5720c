//! Fault injection for the embedded store's file: a switch that tests flip
//! to make the file's writes fail as on a full disk, panic, or hang, so the
//! store's failure handling (503s, readiness, recovery without a restart,
//! timeouts) can be tested end to end.
//!
//! It plugs in through redb's [`StorageBackend`]: a store opened with
//! [`EmbeddedStore::open_with_faults`](super::EmbeddedStore::open_with_faults)
//! runs on redb's ordinary file backend wrapped in a backend that asks the
//! injector before every write, resize and fsync. Stores opened with
//! [`EmbeddedStore::open`](super::EmbeddedStore::open) (production) use redb's
//! file backend directly: the wrapper costs nothing unless asked for.
//!
//! Reads and the file lock are never faulted: the injector models a disk
//! that refuses or stalls writes, which is the failure a status service meets
//! in practice (a full volume, a hung network disk).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redb::backends::FileBackend;
use redb::{Database, DatabaseError, StorageBackend};

/// What the next writes to the file do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Writes go through. The default.
    #[default]
    None,
    /// Every write, resize and fsync fails with [`io::ErrorKind::StorageFull`]
    /// ("no space left on device"), until the fault is cleared.
    DiskFull,
    /// Every write, resize and fsync panics, until the fault is cleared.
    Panic,
    /// Every fsync blocks until the fault is changed (or for at most
    /// [`FaultInjector::MAX_STALL`], so a forgotten stall cannot hang a test
    /// run forever); writes and resizes go through.
    Stall,
}

/// The switch shared by a test and the store it opened. Cheap to clone;
/// every clone flips the same switch.
#[derive(Debug, Clone, Default)]
pub struct FaultInjector {
    shared: Arc<Shared>,
}

/// The current fault and the number of calls it hit. The condition variable
/// wakes stalled fsyncs when the fault changes.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    fault: Fault,
    hits: u64,
}

impl FaultInjector {
    /// The longest a [`Fault::Stall`] holds one fsync.
    pub const MAX_STALL: Duration = Duration::from_secs(60);

    /// A switch set to [`Fault::None`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the fault the next writes meet; wakes fsyncs stalled by the
    /// previous one.
    pub fn set(&self, fault: Fault) {
        self.lock().fault = fault;
        self.shared.changed.notify_all();
    }

    /// Back to [`Fault::None`]: "space freed", "disk responsive again".
    pub fn clear(&self) {
        self.set(Fault::None);
    }

    /// The current fault.
    pub fn fault(&self) -> Fault {
        self.lock().fault
    }

    /// How many file calls a fault has hit so far (failed, panicked or
    /// stalled), so a test can check that its fault was really exercised.
    pub fn hits(&self) -> u64 {
        self.lock().hits
    }

    /// Opens (or creates) the redb file at `path` on the faulty backend,
    /// exactly as `redb::Database::create` opens it on the plain one
    /// (same flags, same exclusive file lock).
    pub(super) fn open(&self, path: &Path) -> Result<Database, DatabaseError> {
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let backend = FaultyBackend {
            file: FileBackend::new(file)?,
            faults: self.clone(),
        };
        Database::builder().create_with_backend(backend)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two plain values, consistent after any panic.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies the current fault to one mutating call (`what` names it in
    /// the error and panic texts).
    fn check(&self, what: &str, fsync: bool) -> io::Result<()> {
        let mut state = self.lock();
        match state.fault {
            Fault::None => Ok(()),
            Fault::DiskFull => {
                state.hits += 1;
                Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!("no space left on device (injected fault in {what})"),
                ))
            }
            Fault::Panic => {
                state.hits += 1;
                drop(state);
                panic!("injected fault: {what} panicked");
            }
            Fault::Stall if fsync => {
                state.hits += 1;
                let until = Instant::now() + Self::MAX_STALL;
                while state.fault == Fault::Stall {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    state = self
                        .shared
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Ok(())
            }
            Fault::Stall => Ok(()),
        }
    }
}

/// redb's file backend behind a [`FaultInjector`]. Only stores opened with
/// faults use it.
#[derive(Debug)]
struct FaultyBackend {
    file: FileBackend,
    faults: FaultInjector,
}

impl StorageBackend for FaultyBackend {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.file.read(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.faults.check("set_len", false)?;
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.faults.check("sync_data", true)?;
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.faults.check("write", false)?;
        self.file.write(offset, data)
    }

    fn close(&self) -> io::Result<()> {
        self.file.close()
    }
}
