//! A VFS over SQLite's own "unix" one that writes a commit's log frames
//! with one `pwrite` instead of two per page.
//!
//! SQLite writes each frame of the write-ahead log as two calls, the
//! 24-byte frame header and then the page, so a commit of six pages is
//! twelve system calls, each through the filesystem's write path for every
//! 4 KiB block it touches (a frame is 24 bytes longer than a block, so a
//! page spans two). Here, frames appended to a log are gathered in memory
//! and written with one call once the commit frame (the one whose header
//! carries the database size) is complete, or earlier when they would pass
//! [`MOST_GATHERED`]. Gathering starts only with a frame header past
//! everything appended so far; every other write (the log's own header, a
//! page or checksum SQLite rewrites in place) goes straight to the file,
//! after what is gathered. Every other operation on the file (a read, a
//! sync, a truncate, its size, a file control, a close) writes what is
//! gathered first, so SQLite never reads around it.
//!
//! The commit frame's write returns the result of writing everything, so
//! a full disk fails the commit before SQLite makes it visible to readers
//! (it updates the shared index only after the frames are written), as a
//! failed write of its own would. A crash loses only what was gathered of
//! a transaction that had not committed yet.
//!
//! Only the writer's connection uses it; files other than logs pass
//! straight through to the unix VFS.

use std::ffi::{CStr, c_int, c_void};
use std::ptr;
use std::sync::OnceLock;

use rusqlite::ffi;

/// The name connections open the database with.
pub const NAME: &CStr = c"claw-unix";

/// Most bytes gathered before they are written, commit frame or not: the
/// unix VFS writes at most 128 KiB in one call (it masks larger sizes).
const MOST_GATHERED: usize = 120 * 1024;

/// A frame header: page number, database size after a commit (zero in
/// other frames), two salts and two checksums, four bytes each.
const FRAME_HEADER: usize = 24;

/// The file object SQLite allocates (`szOsFile` bytes): ours first, the
/// unix VFS's own file right after it.
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    log: bool,
    /// Where `gathered` starts in the file.
    gathered_at: i64,
    gathered: Vec<u8>,
    /// The last write was the header of a commit frame: its page ends the
    /// commit.
    commit_frame: bool,
    /// End of the frames appended since the log last started over: a
    /// write below it rewrites something already there.
    appended_end: i64,
}

struct Registered {
    real: *mut ffi::sqlite3_vfs,
}

// SAFETY: the pointer names SQLite's built-in VFS, which lives as long as
// the process and is only read.
unsafe impl Send for Registered {}
unsafe impl Sync for Registered {}

static REGISTERED: OnceLock<Option<Registered>> = OnceLock::new();

/// Registers the VFS (once); false if SQLite has no "unix" VFS to wrap.
pub fn register() -> bool {
    REGISTERED
        .get_or_init(|| {
            // SAFETY: sqlite3_vfs_find only reads the registry; the copy is
            // leaked because SQLite keeps the pointer for good.
            unsafe {
                let real = ffi::sqlite3_vfs_find(c"unix".as_ptr());
                if real.is_null() {
                    return None;
                }
                let mut ours = *real;
                ours.szOsFile =
                    c_int::try_from(std::mem::size_of::<File>()).ok()? + (*real).szOsFile;
                ours.pNext = ptr::null_mut();
                ours.zName = NAME.as_ptr();
                ours.xOpen = Some(open);
                let ours = Box::leak(Box::new(ours));
                if ffi::sqlite3_vfs_register(ours, 0) != ffi::SQLITE_OK {
                    return None;
                }
                Some(Registered { real })
            }
        })
        .is_some()
}

fn real_vfs() -> *mut ffi::sqlite3_vfs {
    REGISTERED
        .get()
        .and_then(Option::as_ref)
        .map_or(ptr::null_mut(), |r| r.real)
}

unsafe extern "C" fn open(
    _vfs: *mut ffi::sqlite3_vfs,
    name: ffi::sqlite3_filename,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real_vfs = real_vfs();
    // SAFETY: SQLite hands us `szOsFile` bytes; the real file follows ours.
    unsafe {
        (*file).pMethods = ptr::null();
        let Some(real_open) = real_vfs.as_ref().and_then(|v| v.xOpen) else {
            return ffi::SQLITE_ERROR;
        };
        let real = file
            .cast::<u8>()
            .add(std::mem::size_of::<File>())
            .cast::<ffi::sqlite3_file>();
        let rc = real_open(real_vfs, name, real, flags, out_flags);
        if rc != ffi::SQLITE_OK || (*real).pMethods.is_null() {
            return rc;
        }
        // Without power-safe overwrite, SQLite pads and syncs a commit in
        // pieces of sectors; such a log is written as SQLite writes it.
        let characteristics = (*(*real).pMethods)
            .xDeviceCharacteristics
            .map_or(0, |c| c(real));
        let log = flags & ffi::SQLITE_OPEN_WAL != 0
            && characteristics & ffi::SQLITE_IOCAP_POWERSAFE_OVERWRITE != 0;
        ptr::write(
            file.cast::<File>(),
            File {
                base: ffi::sqlite3_file { pMethods: &METHODS },
                real,
                log,
                gathered_at: 0,
                gathered: Vec::new(),
                commit_frame: false,
                appended_end: 0,
            },
        );
        rc
    }
}

/// The real file's methods.
unsafe fn real(
    file: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    // SAFETY: only called on files `open` initialised.
    unsafe {
        let real = (*file.cast::<File>()).real;
        (real, &*(*real).pMethods)
    }
}

/// Writes what is gathered; the result of the write.
unsafe fn flush(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: only called on files `open` initialised.
    unsafe {
        let ours = &mut *file.cast::<File>();
        if ours.gathered.is_empty() {
            return ffi::SQLITE_OK;
        }
        let (real, methods) = real(file);
        let Some(write) = methods.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let rc = match c_int::try_from(ours.gathered.len()) {
            Ok(len) => write(real, ours.gathered.as_ptr().cast(), len, ours.gathered_at),
            Err(_) => ffi::SQLITE_IOERR_WRITE,
        };
        ours.gathered.clear();
        ours.commit_frame = false;
        rc
    }
}

unsafe extern "C" fn write(
    file: *mut ffi::sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: i64,
) -> c_int {
    // SAFETY: SQLite passes a file `open` initialised and `amount` bytes.
    unsafe {
        let ours = &mut *file.cast::<File>();
        let (real, methods) = real(file);
        let Some(write_through) = methods.xWrite else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        if !ours.log {
            return write_through(real, data, amount, offset);
        }
        let Ok(len) = usize::try_from(amount) else {
            return ffi::SQLITE_IOERR_WRITE;
        };
        let bytes = std::slice::from_raw_parts(data.cast::<u8>(), len);
        let end = offset + i64::from(amount);
        let follows = !ours.gathered.is_empty()
            && offset == ours.gathered_at + ours.gathered.len() as i64
            && ours.gathered.len() + len <= MOST_GATHERED;
        if follows {
            // The page after its header, or the next frame's header.
            ours.gathered.extend_from_slice(bytes);
            ours.appended_end = ours.appended_end.max(end);
            if len == FRAME_HEADER {
                ours.commit_frame = is_commit_frame(bytes);
                return ffi::SQLITE_OK;
            }
            return if ours.commit_frame {
                flush(file)
            } else {
                ffi::SQLITE_OK
            };
        }
        // Anything else comes after what is gathered.
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        if len == FRAME_HEADER && offset > 0 && offset >= ours.appended_end {
            // A new frame at the end of the log: its page follows.
            ours.gathered_at = offset;
            ours.gathered.extend_from_slice(bytes);
            ours.commit_frame = is_commit_frame(bytes);
            ours.appended_end = end;
            return ffi::SQLITE_OK;
        }
        // The log's header when it starts over, or a page or checksum
        // rewritten in place: SQLite may publish the commit right after
        // such a write, so it reaches the file now.
        let rc = write_through(real, data, amount, offset);
        if rc == ffi::SQLITE_OK {
            ours.appended_end = if offset == 0 {
                end
            } else {
                ours.appended_end.max(end)
            };
        }
        rc
    }
}

/// A frame header's second word is the database size after a commit, and
/// zero in every other frame.
fn is_commit_frame(header: &[u8]) -> bool {
    header.get(4..8).is_some_and(|size| size != [0; 4])
}

unsafe extern "C" fn close(file: *mut ffi::sqlite3_file) -> c_int {
    // SAFETY: SQLite closes each file `open` initialised once.
    unsafe {
        let flushed = flush(file);
        let (real, methods) = real(file);
        let rc = methods.xClose.map_or(ffi::SQLITE_OK, |c| c(real));
        ptr::drop_in_place(file.cast::<File>());
        (*file).pMethods = ptr::null();
        if flushed != ffi::SQLITE_OK {
            flushed
        } else {
            rc
        }
    }
}

/// Forwards a method to the real file after writing what is gathered.
macro_rules! forward {
    ($name:ident, $method:ident, $missing:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> c_int {
            // SAFETY: SQLite passes a file `open` initialised.
            unsafe {
                let rc = flush(file);
                if rc != ffi::SQLITE_OK {
                    return rc;
                }
                let (real, methods) = real(file);
                methods.$method.map_or($missing, |m| m(real $(, $arg)*))
            }
        }
    };
}

/// Forwards a method that cannot fail or writes nothing.
macro_rules! pass {
    ($name:ident, $method:ident, $ret:ty, $missing:expr, ($($arg:ident: $ty:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut ffi::sqlite3_file $(, $arg: $ty)*) -> $ret {
            // SAFETY: SQLite passes a file `open` initialised.
            unsafe {
                let (real, methods) = real(file);
                methods.$method.map_or($missing, |m| m(real $(, $arg)*))
            }
        }
    };
}

forward!(read, xRead, ffi::SQLITE_IOERR_READ, (buf: *mut c_void, amount: c_int, offset: i64));
unsafe extern "C" fn truncate(file: *mut ffi::sqlite3_file, size: i64) -> c_int {
    // SAFETY: SQLite passes a file `open` initialised.
    unsafe {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
        let ours = &mut *file.cast::<File>();
        ours.appended_end = ours.appended_end.min(size);
        let (real, methods) = real(file);
        methods
            .xTruncate
            .map_or(ffi::SQLITE_IOERR_TRUNCATE, |t| t(real, size))
    }
}
forward!(sync, xSync, ffi::SQLITE_IOERR_FSYNC, (flags: c_int));
forward!(file_size, xFileSize, ffi::SQLITE_IOERR_FSTAT, (size: *mut i64));
forward!(file_control, xFileControl, ffi::SQLITE_NOTFOUND, (op: c_int, arg: *mut c_void));
pass!(lock, xLock, c_int, ffi::SQLITE_OK, (level: c_int));
pass!(unlock, xUnlock, c_int, ffi::SQLITE_OK, (level: c_int));
pass!(check_reserved_lock, xCheckReservedLock, c_int, ffi::SQLITE_OK, (out: *mut c_int));
pass!(sector_size, xSectorSize, c_int, 4096, ());
pass!(device_characteristics, xDeviceCharacteristics, c_int, 0, ());
pass!(shm_map, xShmMap, c_int, ffi::SQLITE_IOERR_SHMMAP, (page: c_int, size: c_int, extend: c_int, out: *mut *mut c_void));
pass!(shm_lock, xShmLock, c_int, ffi::SQLITE_IOERR_SHMLOCK, (offset: c_int, n: c_int, flags: c_int));
pass!(shm_unmap, xShmUnmap, c_int, ffi::SQLITE_OK, (delete: c_int));
pass!(unfetch, xUnfetch, c_int, ffi::SQLITE_OK, (offset: i64, page: *mut c_void));

unsafe extern "C" fn fetch(
    file: *mut ffi::sqlite3_file,
    offset: i64,
    amount: c_int,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: SQLite passes a file `open` initialised and a place for the
    // mapping, which stays empty when the real file maps nothing.
    unsafe {
        let (real, methods) = real(file);
        match methods.xFetch {
            Some(fetch) if methods.iVersion >= 3 => fetch(real, offset, amount, out),
            _ => {
                *out = ptr::null_mut();
                ffi::SQLITE_OK
            }
        }
    }
}

unsafe extern "C" fn shm_barrier(file: *mut ffi::sqlite3_file) {
    // SAFETY: SQLite passes a file `open` initialised.
    unsafe {
        let (real, methods) = real(file);
        if let Some(barrier) = methods.xShmBarrier {
            barrier(real);
        }
    }
}

static METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use rusqlite::{Connection, OpenFlags, params};

    use super::*;

    /// A connection through this VFS with the store's log settings, and a
    /// checkpoint at `autocheckpoint` pages so the log starts over often.
    fn open(path: &std::path::Path, autocheckpoint: u32) -> Connection {
        assert!(register(), "the unix VFS is there to wrap");
        let conn = Connection::open_with_flags_and_vfs(path, OpenFlags::default(), NAME).unwrap();
        conn.execute_batch(&format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; \
             PRAGMA wal_autocheckpoint={autocheckpoint}; PRAGMA journal_size_limit=65536; \
             CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k INTEGER, v BLOB); \
             CREATE INDEX IF NOT EXISTS t_k ON t (k);"
        ))
        .unwrap();
        conn
    }

    fn integrity(path: &std::path::Path) -> String {
        Connection::open(path)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn commits_are_seen_by_other_connections_while_the_log_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = open(&path, 300);
        // A checkpointer on SQLite's own VFS, as the store has.
        let stop = Arc::new(AtomicBool::new(false));
        let checkpointer = {
            let (path, stop) = (path.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let conn = Connection::open(&path).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let reader = Connection::open(&path).unwrap();
        for i in 0..6000i64 {
            writer
                .execute(
                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                    params![i % 7, vec![7u8; 100]],
                )
                .unwrap_or_else(|e| panic!("insert {i}: {e}"));
            if i % 250 == 0 {
                let n: i64 = reader
                    .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
                    .unwrap();
                assert_eq!(n, i + 1, "a committed row is not visible");
            }
        }
        stop.store(true, Ordering::Relaxed);
        checkpointer.join().unwrap();
        drop(writer);
        assert_eq!(integrity(&path), "ok");
    }

    #[test]
    fn transactions_larger_than_one_write_are_written_in_pieces() {
        // The unix VFS writes at most 128 KiB per call: a transaction of
        // 4 MiB must still arrive whole, spilled pages and all.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = open(&path, 100_000);
        writer.execute_batch("PRAGMA cache_size=50").unwrap();
        writer.execute_batch("BEGIN").unwrap();
        for i in 0..2000i64 {
            writer
                .execute(
                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                    params![i, vec![(i % 251) as u8; 2000]],
                )
                .unwrap();
        }
        // Pages changed again after they spilled to the log are rewritten
        // in place there: a write that does not follow the last one.
        writer.execute("UPDATE t SET k = k + 1", []).unwrap();
        writer.execute_batch("COMMIT").unwrap();
        let reader = Connection::open(&path).unwrap();
        let (n, sum): (i64, i64) = reader
            .query_row("SELECT COUNT(*), SUM(k) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, sum), (2000, (1..=2000).sum()));
        drop(writer);
        assert_eq!(integrity(&path), "ok");
    }

    /// What a new process would find: the database and its log copied
    /// while the writer is still open (no clean close), opened without the
    /// shared index, so SQLite recovers the log and checks every checksum.
    fn recovered_copy(dir: &std::path::Path) -> Connection {
        let copy = dir.join("copy.sqlite");
        std::fs::copy(dir.join("db.sqlite"), &copy).unwrap();
        std::fs::copy(dir.join("db.sqlite-wal"), dir.join("copy.sqlite-wal")).unwrap();
        Connection::open(&copy).unwrap()
    }

    #[test]
    fn a_spilled_transaction_is_recovered_whole_after_a_crash() {
        // Pages that spilled to the log and changed again are rewritten in
        // place at the commit, and SQLite then rewrites the frame headers'
        // checksums, the commit frame's last, with no page after it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = open(&path, 100_000);
        writer.execute_batch("PRAGMA cache_size=20; BEGIN").unwrap();
        for i in 0..500i64 {
            writer
                .execute(
                    "INSERT INTO t (k, v) VALUES (?1, ?2)",
                    params![i, vec![1u8; 1500]],
                )
                .unwrap();
        }
        writer.execute("UPDATE t SET k = k + 1", []).unwrap();
        writer.execute_batch("COMMIT").unwrap();
        let copy = recovered_copy(dir.path());
        let (n, sum): (i64, Option<i64>) = copy
            .query_row("SELECT COUNT(*), SUM(k) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, sum), (500, Some((1..=500).sum())));
        let check: String = copy
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        drop(writer);
    }

    #[test]
    fn a_committed_transaction_is_in_the_log_without_a_clean_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = open(&path, 100_000);
        for i in 0..50i64 {
            writer
                .execute("INSERT INTO t (k, v) VALUES (?1, x'00')", [i])
                .unwrap();
        }
        // As after a crash: the connection is not closed.
        let copy = recovered_copy(dir.path());
        let n: i64 = copy
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 50);
        drop(writer);
    }
}
