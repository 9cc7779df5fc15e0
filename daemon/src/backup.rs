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

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

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
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(io(parent))?;
            }
            let (_, mut bytes) = match blobs.open(&blob.key).await {
                Ok(found) => found,
                // Deleted since it was listed.
                Err(BlobError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut file = tokio::fs::File::create(&target)
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
    // Milliseconds: two backups in one second must not share a name.
    let stamp = humantime::format_rfc3339_millis(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let name = format!("{ARCHIVE_PREFIX}{stamp}{ARCHIVE_SUFFIX}");
    let final_path = output.join(&name);
    let partial = output.join(format!(".{name}.part"));
    let db_copy = output.join(format!(".{name}.db"));
    let _ = std::fs::remove_file(&db_copy);
    let copied = store
        .copy_for_backup(db_copy.clone())
        .await
        .map_err(|e| match e {
            CopyError::Store(e) => BackupError::Store(e),
            CopyError::Tool(message) => BackupError::Copy(message),
        });
    let copied = match copied {
        Ok(copied) => copied,
        Err(e) => {
            let _ = std::fs::remove_file(&db_copy);
            return Err(e);
        }
    };
    // Remote artifacts are copied down next to the archive for the while.
    let staged = output.join(format!(".{name}.artifacts"));
    let artifacts = match blobs.local_root() {
        Some(root) => root.to_owned(),
        None => {
            let _ = std::fs::remove_dir_all(&staged);
            std::fs::create_dir_all(&staged).map_err(io(&staged))?;
            if let Err(e) = download_artifacts(blobs, &staged).await {
                let _ = std::fs::remove_dir_all(&staged);
                let _ = std::fs::remove_file(&db_copy);
                return Err(e);
            }
            staged.clone()
        }
    };
    let (data_dir, config, output_dir) = (
        data_dir.to_owned(),
        config.map(Path::to_owned),
        output.to_owned(),
    );
    let (db, part, fin) = (db_copy.clone(), partial.clone(), final_path.clone());
    let written = tokio::task::spawn_blocking(move || {
        write_archive(
            &data_dir,
            &artifacts,
            config.as_deref(),
            &copied,
            &db,
            &part,
            &fin,
        )
    })
    .await
    .map_err(|e| BackupError::Io {
        path: partial.clone(),
        source: std::io::Error::other(e),
    });
    let _ = std::fs::remove_file(&db_copy);
    let _ = std::fs::remove_dir_all(&staged);
    let written = written?;
    let files = match written {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
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
