//! The embedded crash-safe state store (redb) under `--storage.path`: rule+series state
//! (windows, frozen references, EMA, state machine, cooldown clocks) flushed on an interval,
//! and the webhook outbox, written before a delivery is first attempted.
//!
//! Why redb: a pure-Rust, single-file, ACID store with copy-on-write B-trees and fsync on
//! commit; a `kill -9` leaves the last committed transaction intact. No C toolchain, no SQL
//! layer we do not need: two tables of bytes.
//!
//! The store never wipes anything on its own: a file it cannot read, or one written by another
//! format version, is an error that names the file and the way out (move the directory aside).
//!
//! A failing disk is survived: redb refuses every later write after one I/O error ("Previous
//! I/O error occurred. Please close and re-open the database"), so a failed operation drops
//! the database handle and the next operation opens the file again (redb repairs it from its
//! last commit). Callers keep what failed and retry it (the flush keeps series dirty, the
//! webhook sender keeps unpersisted deliveries); [`Store::is_healthy`] is false from a failed
//! write until a write succeeds again, and the episode is logged once when it starts and once
//! when it ends.

pub mod codec;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use redb::{Database, ReadableTable, TableDefinition};

/// Bumped when the encoding of a table changes incompatibly. Version 2 added the
/// `references` table; a version 1 store is read as it is and marked version 2.
pub const FORMAT_VERSION: u64 = 2;
const FILE_NAME: &str = "driftgauge.redb";

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// key: `group \0 rule \0 name=value \0 ...` → codec-encoded series state.
const SERIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("series");
/// key: the series key → a frozen `first: N` reference (codec-encoded floats), written once
/// when it freezes instead of with every flush of the series.
const REFERENCES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("references");
/// key: idempotency key → codec-encoded delivery.
const OUTBOX: TableDefinition<&str, &[u8]> = TableDefinition::new("outbox");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the storage directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot open the state store {path}: {message}. Nothing was changed; to start with empty \
         state, stop driftgauge and move {dir} aside (or point --storage.path elsewhere)"
    )]
    Open {
        path: PathBuf,
        dir: PathBuf,
        message: String,
    },
    #[error(
        "the state store {path} was written by format version {found}; this driftgauge reads \
         version {FORMAT_VERSION}. Nothing was changed; move {dir} aside to start fresh, or run \
         the driftgauge version that wrote it"
    )]
    Version {
        path: PathBuf,
        dir: PathBuf,
        found: u64,
    },
    #[error("state store {path}: a record in table {table} cannot be decoded ({message}); move {dir} aside to start fresh")]
    Corrupt {
        path: PathBuf,
        dir: PathBuf,
        table: &'static str,
        message: String,
    },
    #[error("state store {path}: {message}")]
    Io { path: PathBuf, message: String },
}

/// A stored (key, value) pair.
pub type Record = (Vec<u8>, Vec<u8>);

/// redb's page cache.
const CACHE_BYTES: usize = 16 << 20;

/// A handle on the store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    path: PathBuf,
    dir: PathBuf,
}

/// What [`Store::on_health_change`] registers.
type HealthHook = Box<dyn Fn(bool) + Send + Sync>;

struct Inner {
    /// `None` after a failed operation: the next one opens the file again.
    db: Mutex<Option<Arc<Database>>>,
    healthy: AtomicBool,
    /// Called with the new health whenever it changes (the `driftgauge_storage_healthy`
    /// gauge).
    on_health: Mutex<Option<HealthHook>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("healthy", &self.is_healthy())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_database(path: &Path) -> Result<Database, redb::DatabaseError> {
    // redb's page cache defaults to 1 GiB, and it keeps what a flush wrote: the windows
    // already live in memory, so a small cache is enough and keeps RSS near the windows.
    redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)
}

impl Store {
    /// Opens (or creates) `dir/driftgauge.redb`, checking its format version.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let open_err = |message: String| StoreError::Open {
            path: path.clone(),
            dir: dir.to_path_buf(),
            message,
        };
        let db = Arc::new(open_database(&path).map_err(|e| open_err(e.to_string()))?);
        let store = Store {
            inner: Arc::new(Inner {
                db: Mutex::new(Some(Arc::clone(&db))),
                healthy: AtomicBool::new(true),
                on_health: Mutex::new(None),
            }),
            path: path.clone(),
            dir: dir.to_path_buf(),
        };
        let txn = db.begin_write().map_err(|e| open_err(e.to_string()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| open_err(e.to_string()))?;
            let found = meta
                .get("format_version")
                .map_err(|e| open_err(e.to_string()))?
                .map(|v| v.value());
            match found {
                Some(FORMAT_VERSION) => {}
                // Version 1 is version 2 without references: nothing to convert.
                Some(1) => {
                    meta.insert("format_version", FORMAT_VERSION)
                        .map_err(|e| open_err(e.to_string()))?;
                }
                Some(found) => {
                    return Err(StoreError::Version {
                        path,
                        dir: dir.to_path_buf(),
                        found,
                    })
                }
                None => {
                    meta.insert("format_version", FORMAT_VERSION)
                        .map_err(|e| open_err(e.to_string()))?;
                }
            }
            txn.open_table(SERIES)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(REFERENCES)
                .map_err(|e| open_err(e.to_string()))?;
            txn.open_table(OUTBOX)
                .map_err(|e| open_err(e.to_string()))?;
        }
        txn.commit().map_err(|e| open_err(e.to_string()))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// False from a failed operation until one succeeds again: state cannot be persisted.
    pub fn is_healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Acquire)
    }

    /// Calls `f` with the current health now and whenever it changes.
    pub fn on_health_change(&self, f: impl Fn(bool) + Send + Sync + 'static) {
        f(self.is_healthy());
        *lock(&self.inner.on_health) = Some(Box::new(f));
    }

    fn set_healthy(&self, healthy: bool, error: Option<&StoreError>) {
        if self.inner.healthy.swap(healthy, Ordering::AcqRel) == healthy {
            return;
        }
        match error {
            Some(error) => tracing::error!(
                store = %self.path.display(),
                %error,
                "state store failing: state is kept in memory and written again once the store works; not ready until then"
            ),
            None => tracing::info!(store = %self.path.display(), "state store works again"),
        }
        if let Some(f) = &*lock(&self.inner.on_health) {
            f(healthy);
        }
    }

    /// The open database, opening the file again after a failure.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        let mut slot = lock(&self.inner.db);
        if let Some(db) = &*slot {
            return Ok(Arc::clone(db));
        }
        let db = Arc::new(open_database(&self.path).map_err(|e| self.io(e))?);
        *slot = Some(Arc::clone(&db));
        Ok(db)
    }

    /// Runs one operation on the database: on an error the handle is dropped (redb refuses
    /// everything after an I/O error until reopened) and the store turns unhealthy; a write
    /// that succeeds turns it healthy again.
    fn run<T>(
        &self,
        write: bool,
        op: impl FnOnce(&Database) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = self.db().and_then(|db| op(&db));
        match &result {
            Ok(_) if write => self.set_healthy(true, None),
            Ok(_) => {}
            Err(e) => {
                lock(&self.inner.db).take();
                self.set_healthy(false, Some(e));
            }
        }
        result
    }

    fn io(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    pub(crate) fn corrupt(&self, table: &'static str, message: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            dir: self.dir.clone(),
            table,
            message,
        }
    }

    /// Writes series records and references, and removes series (records and references), in
    /// one transaction (durable on return). With nothing to write, an unhealthy store is
    /// tried with a small write, so it turns healthy as soon as it works again.
    pub fn write_series(
        &self,
        upserts: &[(Vec<u8>, Vec<u8>)],
        references: &[(Vec<u8>, Vec<u8>)],
        deletes: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        let empty = upserts.is_empty() && references.is_empty() && deletes.is_empty();
        if empty && self.is_healthy() {
            return Ok(());
        }
        self.run(true, |db| {
            let txn = db.begin_write().map_err(|e| self.io(e))?;
            if empty {
                // Nothing to write while unhealthy: a small write tells whether the store
                // works again.
                let mut meta = txn.open_table(META).map_err(|e| self.io(e))?;
                meta.insert("format_version", FORMAT_VERSION)
                    .map_err(|e| self.io(e))?;
            }
            {
                let mut t = txn.open_table(SERIES).map_err(|e| self.io(e))?;
                let mut r = txn.open_table(REFERENCES).map_err(|e| self.io(e))?;
                for k in deletes {
                    t.remove(k.as_slice()).map_err(|e| self.io(e))?;
                    r.remove(k.as_slice()).map_err(|e| self.io(e))?;
                }
                for (k, v) in upserts {
                    t.insert(k.as_slice(), v.as_slice())
                        .map_err(|e| self.io(e))?;
                }
                for (k, v) in references {
                    r.insert(k.as_slice(), v.as_slice())
                        .map_err(|e| self.io(e))?;
                }
            }
            txn.commit().map_err(|e| self.io(e))
        })
    }

    /// The stored reference of the series `key`, if any.
    pub fn reference(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(false, |db| {
            let txn = db.begin_read().map_err(|e| self.io(e))?;
            let t = txn.open_table(REFERENCES).map_err(|e| self.io(e))?;
            let v = t.get(key).map_err(|e| self.io(e))?;
            Ok(v.map(|v| v.value().to_vec()))
        })
    }

    /// Every series record.
    pub fn series(&self) -> Result<Vec<Record>, StoreError> {
        self.run(false, |db| {
            let txn = db.begin_read().map_err(|e| self.io(e))?;
            let t = txn.open_table(SERIES).map_err(|e| self.io(e))?;
            let mut out = Vec::new();
            for item in t.iter().map_err(|e| self.io(e))? {
                let (k, v) = item.map_err(|e| self.io(e))?;
                out.push((k.value().to_vec(), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// Persists one outbox entry (durable on return).
    pub fn put_delivery(&self, key: &str, record: &[u8]) -> Result<(), StoreError> {
        self.run(true, |db| {
            let txn = db.begin_write().map_err(|e| self.io(e))?;
            {
                let mut t = txn.open_table(OUTBOX).map_err(|e| self.io(e))?;
                t.insert(key, record).map_err(|e| self.io(e))?;
            }
            txn.commit().map_err(|e| self.io(e))
        })
    }

    /// Writes several outbox records in one transaction (one fsync): all of them, or none.
    pub fn put_deliveries(&self, records: &[(&str, Vec<u8>)]) -> Result<(), StoreError> {
        self.run(true, |db| {
            let txn = db.begin_write().map_err(|e| self.io(e))?;
            {
                let mut t = txn.open_table(OUTBOX).map_err(|e| self.io(e))?;
                for (key, record) in records {
                    t.insert(*key, record.as_slice()).map_err(|e| self.io(e))?;
                }
            }
            txn.commit().map_err(|e| self.io(e))
        })
    }

    pub fn delete_delivery(&self, key: &str) -> Result<(), StoreError> {
        self.run(true, |db| {
            let txn = db.begin_write().map_err(|e| self.io(e))?;
            {
                let mut t = txn.open_table(OUTBOX).map_err(|e| self.io(e))?;
                t.remove(key).map_err(|e| self.io(e))?;
            }
            txn.commit().map_err(|e| self.io(e))
        })
    }

    /// Every outbox entry, as (idempotency key, record).
    pub fn deliveries(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.run(false, |db| {
            let txn = db.begin_read().map_err(|e| self.io(e))?;
            let t = txn.open_table(OUTBOX).map_err(|e| self.io(e))?;
            let mut out = Vec::new();
            for item in t.iter().map_err(|e| self.io(e))? {
                let (k, v) = item.map_err(|e| self.io(e))?;
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.write_series(
                &[
                    (b"a".to_vec(), b"1".to_vec()),
                    (b"b".to_vec(), b"2".to_vec()),
                ],
                &[
                    (b"a".to_vec(), b"ra".to_vec()),
                    (b"b".to_vec(), b"rb".to_vec()),
                ],
                &[],
            )
            .unwrap();
            s.write_series(&[], &[], &[b"a".to_vec()]).unwrap();
            s.put_delivery("k1", b"d1").unwrap();
            s.put_delivery("k2", b"d2").unwrap();
            s.delete_delivery("k1").unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.series().unwrap(), vec![(b"b".to_vec(), b"2".to_vec())]);
        assert_eq!(s.reference(b"b").unwrap(), Some(b"rb".to_vec()));
        assert_eq!(s.reference(b"a").unwrap(), None, "deleted with its series");
        assert_eq!(
            s.deliveries().unwrap(),
            vec![("k2".to_string(), b"d2".to_vec())]
        );
    }

    #[test]
    fn another_format_version_is_refused_with_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            let txn = s.db().unwrap().begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("format_version", 99)
                .unwrap();
            txn.commit().unwrap();
        }
        let e = Store::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("format version 99"), "{e}");
        assert!(e.contains("move"), "{e}");
    }

    #[test]
    fn a_version_1_store_is_read_and_marked_version_2() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.write_series(&[(b"k".to_vec(), b"v".to_vec())], &[], &[])
                .unwrap();
            let txn = s.db().unwrap().begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert("format_version", 1)
                .unwrap();
            txn.commit().unwrap();
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.series().unwrap(), vec![(b"k".to_vec(), b"v".to_vec())]);
        let txn = s.db().unwrap().begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let version = meta.get("format_version").unwrap().map(|v| v.value());
        assert_eq!(version, Some(FORMAT_VERSION));
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_a_wipe() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            b"this is not a redb file at all, but it is long enough to look like one maybe",
        )
        .unwrap();
        let e = Store::open(dir.path()).unwrap_err().to_string();
        assert!(e.contains("cannot open the state store"), "{e}");
        assert!(e.contains("move"), "{e}");
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert!(
            bytes.starts_with(b"this is not a redb file"),
            "the file was left as it was"
        );
    }
}
