//! Backups: one compressed archive with a consistent copy of the database
//! (SQLite: `VACUUM INTO` on a read transaction, never a copy of the live
//! file, as `db.sqlite`; PostgreSQL: `pg_dump --format=custom` of one
//! snapshot, as `db.pgdump`), the artifacts, certificates, secrets and
//! configuration, and a manifest of SHA-256 checksums. Written under a temporary name and renamed when
//! complete; archives beyond the newest N are removed.
//!
//! Artifacts in an object store are copied down beside the archive first
//! (streamed, after the database's copy: an object uploaded meanwhile is
//! an orphan that reconcile removes) and archived as `artifacts/RUN/KEY`,
//! exactly as files are, so a restore does not care where they came from.
//!
//! What a backup stages in the output directory (`.NAME.db`,
//! `.NAME.artifacts`, `.NAME.part`) is owner-only and removed however the
//! backup ends, a dropped request included; what a crash left is removed
//! by a later backup once a day old.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::blobs::{BlobError, BlobStore};
use crate::store::{CopyError, DbCopy, Store, StoreError};

pub const ARCHIVE_PREFIX: &str = "claw-backup-";
pub const ARCHIVE_SUFFIX: &str = ".tar.gz";
pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The artifacts could not be read from their store.
    #[error("{0}")]
    Blobs(#[from] BlobError),
    /// The database's copy could not be written (pg_dump missing or failing).
    #[error("{0}")]
    Copy(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ManifestEntry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub created: String,
    pub clawd_version: String,
    /// The backend the database copy is from: `sqlite` or `postgres`.
    pub store: String,
    pub schema_version: u32,
    /// Rows per table in the copy (PostgreSQL), for checking a restore.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<(String, u64)>,
    pub files: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupResult {
    pub path: PathBuf,
    pub size: u64,
    pub files: usize,
    pub removed: Vec<PathBuf>,
}

/// What goes into the archive: (name in the archive, file on disk).
fn collect(
    data_dir: &Path,
    artifacts: &Path,
    config: Option<&Path>,
    db_name: &str,
    db_copy: &Path,
) -> Vec<(String, PathBuf)> {
    let mut files = vec![(db_name.to_owned(), db_copy.to_owned())];
    walk(artifacts, "artifacts", &mut files);
    for dir in ["certs", "secrets"] {
        walk(&data_dir.join(dir), dir, &mut files);
    }
    if let Some(config) = config.filter(|c| c.is_file()) {
        files.push(("config/clawd.toml".to_owned(), config.to_owned()));
    }
    files
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, &format!("{prefix}/{name}"), out),
            // Half-written uploads and staged certificates are not data.
            Ok(t) if t.is_file() && !name.ends_with(".part") && !name.ends_with(".new") => {
                out.push((format!("{prefix}/{name}"), path));
            }
            _ => {}
        }
    }
}

fn digest(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Copies every object of a remote artifact store into `dir` as
/// `RUN/NAME` files, streamed.
async fn download_artifacts(blobs: &dyn BlobStore, dir: &Path) -> Result<(), BackupError> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    for run_id in blobs.runs().await? {
        for blob in blobs.list(&run_id).await? {
            let name = blob.key.rsplit('/').next().unwrap_or_default();
            // Half-written uploads are not data.
            if name.starts_with('.') || !crate::blobs::safe_key(&blob.key) {
                continue;
            }
            let target = dir.join(&blob.key);
            if let Some(parent) = target.parent() {
                tokio::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .await
                    .map_err(io(parent))?;
            }
            let (_, mut bytes) = match blobs.open(&blob.key).await {
                Ok(found) => found,
                // Deleted since it was listed.
                Err(BlobError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut file = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&target)
                .await
                .map_err(io(&target))?;
            while let Some(chunk) = bytes.next().await {
                let chunk = chunk.map_err(|e| BlobError::Unavailable(e.to_string()))?;
                file.write_all(&chunk).await.map_err(io(&target))?;
            }
            file.flush().await.map_err(io(&target))?;
        }
    }
    Ok(())
}

/// Leftovers of backups that never ended (clawd killed, the disk full)
/// older than this are removed when a backup starts: no backup runs a day,
/// and a younger one may belong to a backup running now (of this clawd, or
/// of another writing to the same directory).
const STALE_STAGING: Duration = Duration::from_secs(24 * 60 * 60);

/// What a backup stages beside its archive: the database's copy, the
/// artifacts copied down from an object store, the archive being written.
/// Dropped, it removes them: a backup that fails, or whose request is
/// dropped (clawctl interrupted), leaves nothing behind.
struct Staging {
    db: PathBuf,
    artifacts: PathBuf,
    partial: PathBuf,
    /// False once removed.
    armed: bool,
}

impl Staging {
    /// Names the staging of archive `name` in `output` and creates the
    /// database's copy, empty and owner-only: `VACUUM INTO` and `pg_dump`
    /// both write into an empty file and keep its mode, so the copy is
    /// never readable by others, whatever the umask.
    fn new(output: &Path, name: &str) -> Result<Self, BackupError> {
        let staging = Self {
            db: output.join(format!(".{name}.db")),
            artifacts: output.join(format!(".{name}.artifacts")),
            partial: output.join(format!(".{name}.part")),
            armed: true,
        };
        let _ = std::fs::remove_file(&staging.db);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staging.db)
            .map_err(io(&staging.db))?;
        Ok(staging)
    }

    /// An empty owner-only folder for artifacts copied down.
    fn artifacts_dir(&self) -> Result<PathBuf, BackupError> {
        let dir = &self.artifacts;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(io(dir))?;
        Ok(dir.clone())
    }

    /// Removes the staging now (blocking; the archive, once renamed into
    /// place, is no longer `partial`).
    fn remove(mut self) {
        self.armed = false;
        remove_staged(&self.db, &self.artifacts, &self.partial);
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let paths = (
            std::mem::take(&mut self.db),
            std::mem::take(&mut self.artifacts),
            std::mem::take(&mut self.partial),
        );
        let remove = move || remove_staged(&paths.0, &paths.1, &paths.2);
        // Dropped on the runtime (a request gone), a large tree of
        // artifacts is removed off it.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

fn remove_staged(db: &Path, artifacts: &Path, partial: &Path) {
    // Each may never have been made.
    let _ = std::fs::remove_file(db);
    let _ = std::fs::remove_dir_all(artifacts);
    let _ = std::fs::remove_file(partial);
}

/// Removes from `output` what backups staged (see [`Staging`]) that is
/// older than `age`: rotation only sees archives, so nothing else would.
/// At the start of a backup rather than after it: leftovers that filled
/// the disk would otherwise fail every backup before it got there.
fn remove_stale_staging(output: &Path, age: Duration) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(output) else {
        return Vec::new();
    };
    let staged = |name: &str| {
        name.strip_prefix('.')
            .filter(|n| n.starts_with(ARCHIVE_PREFIX))
            .and_then(|n| {
                [".db", ".artifacts", ".part"]
                    .iter()
                    .find_map(|end| n.strip_suffix(end))
            })
            .is_some_and(|archive| archive.ends_with(ARCHIVE_SUFFIX))
    };
    let mut removed = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        if !entry.file_name().to_str().is_some_and(staged) {
            continue;
        }
        // Not followed: a link is removed, not what it points to.
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|elapsed| elapsed > age);
        if !old {
            continue;
        }
        let path = entry.path();
        let gone = if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match gone {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed what an unfinished backup left");
                removed.push(path);
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove what an unfinished backup left: remove it by hand");
            }
        }
    }
    removed
}

/// Takes a backup into `output`; keeps the newest `keep` archives there.
pub async fn create(
    store: &dyn Store,
    blobs: &dyn BlobStore,
    data_dir: &Path,
    config: Option<&Path>,
    output: &Path,
    keep: usize,
) -> Result<BackupResult, BackupError> {
    std::fs::create_dir_all(output).map_err(io(output))?;
    let swept = output.to_owned();
    let _ = tokio::task::spawn_blocking(move || remove_stale_staging(&swept, STALE_STAGING)).await;
    // Milliseconds: two backups in one second must not share a name.
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let name = format!("{ARCHIVE_PREFIX}{stamp}{ARCHIVE_SUFFIX}");
    let final_path = output.join(&name);
    let staging = Staging::new(output, &name)?;
    let copied = store
        .copy_for_backup(staging.db.clone())
        .await
        .map_err(|e| match e {
            CopyError::Store(e) => BackupError::Store(e),
            CopyError::Tool(message) => BackupError::Copy(message),
        })?;
    // Remote artifacts are copied down next to the archive for the while.
    let artifacts = match blobs.local_root() {
        Some(root) => root.to_owned(),
        None => {
            let dir = staging.artifacts_dir()?;
            download_artifacts(blobs, &dir).await?;
            dir
        }
    };
    let (data_dir, config, output_dir) = (
        data_dir.to_owned(),
        config.map(Path::to_owned),
        output.to_owned(),
    );
    let partial = staging.partial.clone();
    let fin = final_path.clone();
    // The staging goes with the writing, which runs on even if this
    // request is dropped: it is removed once no longer read.
    let written = tokio::task::spawn_blocking(move || {
        let written = write_archive(
            &data_dir,
            &artifacts,
            config.as_deref(),
            &copied,
            &staging.db,
            &staging.partial,
            &fin,
        );
        staging.remove();
        written
    })
    .await
    .map_err(|e| BackupError::Io {
        path: partial,
        source: std::io::Error::other(e),
    })?;
    let files = written?;
    let size = std::fs::metadata(&final_path).map(|m| m.len()).unwrap_or(0);
    let removed = rotate(&output_dir, keep.max(1));
    Ok(BackupResult {
        path: final_path,
        size,
        files,
        removed,
    })
}

fn write_archive(
    data_dir: &Path,
    artifacts: &Path,
    config: Option<&Path>,
    copied: &DbCopy,
    db_copy: &Path,
    partial: &Path,
    final_path: &Path,
) -> Result<usize, BackupError> {
    let files = collect(data_dir, artifacts, config, copied.name, db_copy);
    let mut entries = Vec::with_capacity(files.len());
    for (name, path) in &files {
        let (size, sha256) = digest(path)?;
        entries.push(ManifestEntry {
            path: name.clone(),
            size,
            sha256,
        });
    }
    let manifest = Manifest {
        format: 1,
        created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        clawd_version: env!("CARGO_PKG_VERSION").to_owned(),
        store: copied.store.to_owned(),
        schema_version: copied.schema_version,
        tables: copied.tables.clone(),
        files: entries,
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io {
        path: partial.to_owned(),
        source: std::io::Error::other(e),
    })?;
    // The archive holds secrets: owner only.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(io(partial))?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut header = tar::Header::new_gnu();
    header.set_size(manifest_json.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, MANIFEST, manifest_json.as_slice())
        .map_err(io(partial))?;
    for (name, path) in &files {
        let mut file = File::open(path).map_err(io(path))?;
        tar.append_file(name, &mut file).map_err(io(path))?;
    }
    let gz = tar.into_inner().map_err(io(partial))?;
    let mut file = gz.finish().map_err(io(partial))?;
    file.flush().map_err(io(partial))?;
    file.sync_all().map_err(io(partial))?;
    std::fs::rename(partial, final_path).map_err(io(final_path))?;
    Ok(files.len())
}

/// Removes all but the newest `keep` archives (names sort by time).
fn rotate(output: &Path, keep: usize) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(output) else {
        return Vec::new();
    };
    let mut archives: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(ARCHIVE_PREFIX) && n.ends_with(ARCHIVE_SUFFIX))
        })
        .collect();
    archives.sort();
    let excess = archives.len().saturating_sub(keep);
    archives
        .into_iter()
        .take(excess)
        .filter(|p| std::fs::remove_file(p).is_ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use async_trait::async_trait;
    use bytes::Bytes;
    use claw_proto::control::ArtifactStoreHealth;

    use super::*;
    use crate::blobs::{BlobInfo, ByteStream, FileBlobs};
    use crate::store::sqlite::{Durability, SqliteStore, StoreSettings};
    use crate::store::{Change, ChangeSink};

    const NAME: &str = "claw-backup-2026-01-01T000000.000Z.tar.gz";

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    /// The dot-entries of `dir`: what a backup staged and left.
    fn staged_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// Files shown as an object store shows them (no local root), so that
    /// a backup copies them down; with `stall`, listing them never ends.
    struct Remote {
        files: FileBlobs,
        stall: bool,
    }

    #[async_trait]
    impl BlobStore for Remote {
        async fn put(
            &self,
            run_id: &str,
            artifact_id: &str,
            name: &str,
            data: ByteStream,
        ) -> Result<(String, u64), BlobError> {
            self.files.put(run_id, artifact_id, name, data).await
        }
        async fn open(&self, key: &str) -> Result<(u64, ByteStream), BlobError> {
            self.files.open(key).await
        }
        async fn remove(&self, key: &str) {
            self.files.remove(key).await;
        }
        async fn remove_run(&self, run_id: &str) {
            self.files.remove_run(run_id).await;
        }
        async fn runs(&self) -> Result<Vec<String>, BlobError> {
            if self.stall {
                std::future::pending::<()>().await;
            }
            self.files.runs().await
        }
        async fn list(&self, run_id: &str) -> Result<Vec<BlobInfo>, BlobError> {
            self.files.list(run_id).await
        }
        async fn run_size(&self, run_id: &str) -> u64 {
            self.files.run_size(run_id).await
        }
        async fn exists(&self, key: &str) -> Result<bool, BlobError> {
            self.files.exists(key).await
        }
        fn health(&self) -> ArtifactStoreHealth {
            self.files.health()
        }
        fn local_root(&self) -> Option<&Path> {
            None
        }
    }

    struct Nowhere;
    impl ChangeSink for Nowhere {
        fn publish(&self, _: Change) {}
    }

    /// A data directory with a database and one artifact in a "remote"
    /// store; (data directory, store, artifacts).
    async fn installation(stall: bool) -> (tempfile::TempDir, SqliteStore, Remote) {
        let data = tempfile::tempdir().expect("data dir");
        let store = SqliteStore::open(
            &data.path().join("claw.db"),
            StoreSettings {
                durability: Durability::Commit,
                nonce_retention_secs: 600,
            },
            Arc::new(Nowhere),
        )
        .expect("database");
        let files = FileBlobs::new(data.path().join("artifacts"));
        let bytes = futures_util::stream::once(async {
            Ok::<_, std::io::Error>(Bytes::from_static(b"hello"))
        });
        files
            .put("run-1", "a1", "out.log", Box::pin(bytes))
            .await
            .expect("artifact");
        (data, store, Remote { files, stall })
    }

    #[test]
    fn staging_is_owner_only_and_removed_when_dropped() {
        let output = tempfile::tempdir().expect("output");
        let staging = Staging::new(output.path(), NAME).expect("staging");
        assert_eq!(mode(&staging.db), 0o600);
        let artifacts = staging.artifacts_dir().expect("artifacts dir");
        assert_eq!(mode(&artifacts), 0o700);
        std::fs::write(artifacts.join("x"), b"x").expect("staged artifact");
        std::fs::write(&staging.partial, b"x").expect("partial archive");
        assert_eq!(staged_in(output.path()).len(), 3);
        drop(staging);
        assert_eq!(staged_in(output.path()), Vec::<String>::new());
    }

    #[tokio::test]
    async fn artifacts_copied_down_are_owner_only() {
        let (_data, _store, remote) = installation(false).await;
        let output = tempfile::tempdir().expect("output");
        let staging = Staging::new(output.path(), NAME).expect("staging");
        let dir = staging.artifacts_dir().expect("artifacts dir");
        download_artifacts(&remote, &dir).await.expect("copied");
        assert_eq!(mode(&dir.join("run-1")), 0o700);
        assert_eq!(mode(&dir.join("run-1/a1_out.log")), 0o600);
        staging.remove();
        assert_eq!(staged_in(output.path()), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_backup_archives_owner_only_copies_and_leaves_no_staging() {
        let (data, store, remote) = installation(false).await;
        let output = tempfile::tempdir().expect("output");
        let made = create(&store, &remote, data.path(), None, output.path(), 3)
            .await
            .expect("backup");
        assert_eq!(staged_in(output.path()), Vec::<String>::new());
        let file = File::open(&made.path).expect("archive");
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
        let mut modes = std::collections::BTreeMap::new();
        for entry in tar.entries().expect("entries") {
            let entry = entry.expect("entry");
            let path = entry.path().expect("path").to_string_lossy().into_owned();
            modes.insert(path, entry.header().mode().expect("mode") & 0o777);
        }
        // Staged copies, as the archive recorded their modes.
        assert_eq!(modes.get("db.sqlite"), Some(&0o600), "{modes:?}");
        assert_eq!(
            modes.get("artifacts/run-1/a1_out.log"),
            Some(&0o600),
            "{modes:?}"
        );
    }

    #[tokio::test]
    async fn a_backup_dropped_midway_leaves_no_staging() {
        let (data, store, remote) = installation(true).await;
        let output = tempfile::tempdir().expect("output");
        let mut backup = Box::pin(create(&store, &remote, data.path(), None, output.path(), 3));
        let stalled = tokio::time::timeout(Duration::from_millis(500), &mut backup).await;
        assert!(stalled.is_err(), "the backup waits for the artifact store");
        let staged = staged_in(output.path());
        assert_eq!(
            staged.len(),
            2,
            "the copy of the database and the artifacts' folder: {staged:?}"
        );
        // As when clawctl is interrupted and its request dropped.
        drop(backup);
        for _ in 0..100 {
            if staged_in(output.path()).is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("left behind: {:?}", staged_in(output.path()));
    }

    #[test]
    fn stale_staging_is_removed_and_the_rest_kept() {
        let output = tempfile::tempdir().expect("output");
        let dir = output.path();
        let old = SystemTime::now() - Duration::from_secs(2 * 24 * 60 * 60);
        let age = |path: &Path| {
            File::open(path)
                .expect("open")
                .set_modified(old)
                .expect("mtime");
        };
        let stale = [
            format!(".{NAME}.db"),
            format!(".{NAME}.part"),
            format!(".{NAME}.artifacts"),
        ];
        std::fs::write(dir.join(&stale[0]), b"db").expect("db");
        std::fs::write(dir.join(&stale[1]), b"part").expect("part");
        let artifacts = dir.join(&stale[2]);
        std::fs::create_dir_all(artifacts.join("run-1")).expect("artifacts");
        std::fs::write(artifacts.join("run-1/x"), b"x").expect("artifact");
        // Young leftovers may be a running backup's; others are not ours.
        let fresh = ".claw-backup-2026-02-02T000000.000Z.tar.gz.db";
        std::fs::write(dir.join(fresh), b"db").expect("fresh");
        let kept = [".claw-backup-notes", ".db", NAME];
        for name in kept.iter().chain(&stale.each_ref().map(String::as_str)) {
            let path = dir.join(name);
            if !path.exists() {
                std::fs::write(&path, b"x").expect("file");
            }
            age(&path);
        }
        let removed = remove_stale_staging(dir, STALE_STAGING);
        assert_eq!(removed.len(), 3, "{removed:?}");
        let mut left: Vec<String> = std::fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut expected = vec![fresh.to_owned()];
        expected.extend(kept.iter().map(|n| (*n).to_owned()));
        expected.sort();
        assert_eq!(left, expected);
    }
}
