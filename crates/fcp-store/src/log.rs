//! The symbol log: segment files that hold symbol-run bytes, while redb holds
//! a small index entry per run (decision 63 in `docs/spec-decisions.md`).
//!
//! A write transaction appends its runs to the head segment (in 1 MiB
//! writes), syncs the segment, and only then commits the redb transaction
//! whose index entries point at those bytes, so a committed entry never
//! points at bytes a crash can lose. Appends start at the segment's
//! committed end as the `segments` table records it. Bytes past that end (an
//! append whose commit failed or was cut) are never referenced, are written
//! over by the next append and are cut off when the store opens. The table
//! also counts each segment's live bytes; a segment whose count reaches 0 is
//! deleted after the commit that freed it, unless it is the head.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use redb::StorageBackend;

use crate::error::{Result, StoreError};

/// The head segment rolls over once it holds this many bytes (a batch may
/// take it past this).
pub const SEGMENT_BYTES: u64 = 64 << 20;

/// One segment's storage. The store uses redb's backend trait for it: the
/// same five calls (length, read, write, set length, sync), and tests reuse
/// their fault-injecting backend.
pub type Segment = Arc<dyn StorageBackend>;

/// Where segments live: a directory of files, or memory, or a test's
/// fault-injecting disk.
pub trait SegmentDir: fmt::Debug + Send + Sync + 'static {
    /// Open segment `n`; with `create`, create it if absent, durably (its
    /// directory entry is synced before this returns).
    fn open(&self, n: u32, create: bool) -> io::Result<Segment>;
    /// Delete segment `n` (absent is not an error).
    fn remove(&self, n: u32) -> io::Result<()>;
    /// The segments present, in any order.
    fn list(&self) -> io::Result<Vec<u32>>;
}

/// Segments as files `NNNNNNNN.seg` in a directory.
#[derive(Debug)]
pub struct FileSegments {
    dir: PathBuf,
}

impl FileSegments {
    /// Use (and create, durably, if absent) the directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        if !dir.is_dir() {
            fs::create_dir_all(&dir)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(Self { dir })
    }

    fn file(&self, n: u32) -> PathBuf {
        self.dir.join(format!("{n:08}.seg"))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

impl SegmentDir for FileSegments {
    fn open(&self, n: u32, create: bool) -> io::Result<Segment> {
        let path = self.file(n);
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(create)
            .open(&path)
        {
            Ok(f) => {
                if create {
                    sync_dir(&self.dir)?;
                }
                f
            }
            Err(e) if create && e.kind() == io::ErrorKind::AlreadyExists => {
                OpenOptions::new().read(true).write(true).open(&path)?
            }
            Err(e) => return Err(e),
        };
        Ok(Arc::new(FileSegment(file)))
    }

    fn remove(&self, n: u32) -> io::Result<()> {
        match fs::remove_file(self.file(n)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self) -> io::Result<Vec<u32>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|s| s.strip_suffix(".seg"))
                .filter(|s| s.len() == 8)
                .and_then(|s| s.parse().ok())
            {
                out.push(n);
            }
        }
        Ok(out)
    }
}

/// One segment file, written through the page cache. (Writing large
/// appends' whole pages with `O_DIRECT` was measured on the 3-node 64 MiB
/// mesh bench: put +3%, but a get right after the put read from the disk,
/// −5 to −7%; it was not kept.)
#[derive(Debug)]
struct FileSegment(File);

impl StorageBackend for FileSegment {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; len];
        self.0.read_exact_at(&mut out, offset)?;
        Ok(out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_all_at(data, offset)
    }
}

/// Segments in memory, for a store over an in-memory redb backend.
#[derive(Debug, Default)]
pub struct MemSegments(Mutex<HashMap<u32, Segment>>);

impl SegmentDir for MemSegments {
    fn open(&self, n: u32, create: bool) -> io::Result<Segment> {
        let mut map = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        if let Some(s) = map.get(&n) {
            return Ok(s.clone());
        }
        if !create {
            return Err(io::ErrorKind::NotFound.into());
        }
        let s: Segment = Arc::new(MemSegment::default());
        map.insert(n, s.clone());
        Ok(s)
    }

    fn remove(&self, n: u32) -> io::Result<()> {
        let mut map = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        map.remove(&n);
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<u32>> {
        let map = self.0.lock().map_err(|_| io::Error::other("poisoned"))?;
        Ok(map.keys().copied().collect())
    }
}

/// One segment in memory. Unlike redb's in-memory backend, a write past
/// the end extends it, as a file's does.
#[derive(Debug, Default)]
struct MemSegment(RwLock<Vec<u8>>);

impl StorageBackend for MemSegment {
    fn len(&self) -> io::Result<u64> {
        Ok(self
            .0
            .read()
            .map_err(|_| io::Error::other("poisoned"))?
            .len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let bytes = self.0.read().map_err(|_| io::Error::other("poisoned"))?;
        usize::try_from(offset)
            .ok()
            .and_then(|o| bytes.get(o..o.checked_add(len)?))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| io::ErrorKind::UnexpectedEof.into())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        self.0
            .write()
            .map_err(|_| io::Error::other("poisoned"))?
            .resize(len, 0);
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut bytes = self.0.write().map_err(|_| io::Error::other("poisoned"))?;
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        let end = start
            .checked_add(data.len())
            .ok_or(io::ErrorKind::InvalidInput)?;
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes
            .get_mut(start..end)
            .ok_or(io::ErrorKind::InvalidInput)?
            .copy_from_slice(data);
        Ok(())
    }
}

pub(crate) fn io_err(what: &str, e: io::Error) -> StoreError {
    StoreError::Io(format!("symbol log: {what}: {e}"))
}

pub(crate) fn poisoned<T>(_: T) -> StoreError {
    StoreError::Io("symbol log lock poisoned".into())
}

/// The open log: its directory, readable segments and head.
pub(crate) struct Log {
    dir: Box<dyn SegmentDir>,
    open: RwLock<HashMap<u32, Segment>>,
    /// Segments deleted since open: a reader holding an older snapshot that
    /// still points into one finds its symbols gone, not corrupt.
    deleted: Mutex<HashSet<u32>>,
    /// The head segment, where appends go (its committed end is in the
    /// `segments` table).
    pub(crate) head: Mutex<u32>,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log").field("dir", &self.dir).finish()
    }
}

impl Log {
    /// Open the log given the committed segment rows `(n, end, live)`:
    /// delete files no row names and rows with nothing live, cut every file
    /// back to its committed end, and start appending to a new segment.
    /// Returns the log and the rows to delete from the table.
    pub(crate) fn open(
        dir: Box<dyn SegmentDir>,
        rows: &[(u32, u64, u64)],
    ) -> Result<(Self, Vec<u32>)> {
        let files = dir.list().map_err(|e| io_err("list", e))?;
        let known: HashMap<u32, (u64, u64)> = rows
            .iter()
            .map(|&(n, end, live)| (n, (end, live)))
            .collect();
        let mut open = HashMap::new();
        let mut dead = Vec::new();
        for &n in &files {
            match known.get(&n) {
                Some(&(end, live)) if live > 0 => {
                    let seg = dir.open(n, false).map_err(|e| io_err("open", e))?;
                    if seg.len().map_err(|e| io_err("length", e))? > end {
                        seg.set_len(end).map_err(|e| io_err("truncate", e))?;
                        seg.sync_data(false).map_err(|e| io_err("sync", e))?;
                    }
                    open.insert(n, seg);
                }
                _ => dir.remove(n).map_err(|e| io_err("remove", e))?,
            }
        }
        for &(n, _, live) in rows {
            if live == 0 {
                dead.push(n);
            }
        }
        let next = files
            .iter()
            .chain(rows.iter().map(|r| &r.0))
            .max()
            .map_or(Ok(0), |m| {
                m.checked_add(1)
                    .ok_or_else(|| StoreError::Corrupt("symbol segment numbers exhausted".into()))
            })?;
        Ok((
            Self {
                dir,
                open: RwLock::new(open),
                deleted: Mutex::new(HashSet::new()),
                head: Mutex::new(next),
            },
            dead,
        ))
    }

    /// Write `bytes` at `offset` of segment `n` (created if new), unsynced.
    pub(crate) fn write(&self, n: u32, offset: u64, bytes: &[u8]) -> Result<()> {
        let seg = match self.segment(n)? {
            Some(s) => s,
            None => {
                let s = self.dir.open(n, true).map_err(|e| io_err("create", e))?;
                self.open.write().map_err(poisoned)?.insert(n, s.clone());
                s
            }
        };
        seg.write(offset, bytes).map_err(|e| io_err("write", e))
    }

    /// Make what was written to segment `n` durable.
    pub(crate) fn sync(&self, n: u32) -> Result<()> {
        let seg = self
            .segment(n)?
            .ok_or_else(|| StoreError::Io(format!("symbol log: segment {n} is not open")))?;
        seg.sync_data(false).map_err(|e| io_err("sync", e))
    }

    fn segment(&self, n: u32) -> Result<Option<Segment>> {
        Ok(self.open.read().map_err(poisoned)?.get(&n).cloned())
    }

    /// The bytes of a run, or `None` if its segment was deleted after the
    /// caller's snapshot was taken.
    pub(crate) fn read(&self, n: u32, offset: u64, len: u32) -> Result<Option<Vec<u8>>> {
        let Some(seg) = self.segment(n)? else {
            let deleted = self.deleted.lock().map_err(poisoned)?.contains(&n);
            return if deleted {
                Ok(None)
            } else {
                Err(StoreError::Corrupt(format!(
                    "symbol segment {n} is missing"
                )))
            };
        };
        let end = offset.checked_add(u64::from(len));
        let size = seg.len().map_err(|e| io_err("length", e))?;
        if end.is_none_or(|e| e > size) {
            return Err(StoreError::Corrupt(format!(
                "symbol segment {n} ends at {size}, a run reaches {offset} + {len}"
            )));
        }
        seg.read(offset, len as usize)
            .map(Some)
            .map_err(|e| io_err("read", e))
    }

    /// Delete segments whose last live run a committed transaction removed.
    /// A failure leaves a file that the next open deletes.
    pub(crate) fn delete(&self, segments: &[u32]) {
        for &n in segments {
            if let Ok(mut d) = self.deleted.lock() {
                d.insert(n);
            }
            if let Ok(mut open) = self.open.write() {
                open.remove(&n);
            }
            // Best effort: the row is gone, so the next open removes the file.
            let _ = self.dir.remove(n);
        }
    }
}
