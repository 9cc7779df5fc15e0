//! Artifact bytes, behind a trait: files under
//! `DATA_DIR/artifacts/<run>/<id>_<name>` ([`FileBlobs`]), or objects with
//! the same keys in an S3 bucket ([`s3::S3Blobs`]). Bytes stream in and
//! out: no artifact is ever held whole in memory.

pub mod s3;

use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use claw_proto::control::ArtifactStoreHealth;
use futures_util::{Stream, StreamExt};

/// A stored artifact's bytes, as a stream of chunks.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// Bytes read per chunk when streaming a file.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("no such artifact data: {0}")]
    NotFound(String),
    #[error("the artifact store is full: {0}")]
    Full(String),
    #[error("the artifact store failed: {0}")]
    Failed(String),
    /// The object store could not be reached (or refused the request).
    #[error("the artifact store is unreachable: {0}")]
    Unavailable(String),
    /// The bytes to store could not be read (the upload broke off).
    #[error("the artifact's bytes could not be read: {0}")]
    Input(String),
}

impl From<std::io::Error> for BlobError {
    fn from(e: std::io::Error) -> Self {
        match e.raw_os_error() {
            Some(28) => Self::Full(e.to_string()),
            _ if e.kind() == std::io::ErrorKind::NotFound => Self::NotFound(e.to_string()),
            _ => Self::Failed(e.to_string()),
        }
    }
}

/// One stored object: its key and age, for reconciliation.
#[derive(Debug, Clone)]
pub struct BlobInfo {
    pub key: String,
    pub modified: SystemTime,
    pub size: u64,
}

/// The key an artifact's bytes are kept under.
pub fn key_of(run_id: &str, artifact_id: &str, name: &str) -> Result<String, BlobError> {
    if !valid_run_id(run_id) {
        return Err(BlobError::Failed(format!("{run_id:?} is not a run id")));
    }
    let key = format!("{run_id}/{artifact_id}_{name}");
    if !safe_key(&key) {
        return Err(BlobError::Failed(format!("{key:?} is not a safe key")));
    }
    Ok(key)
}

/// `RUN/NAME` with no way out of the run's folder.
pub fn safe_key(key: &str) -> bool {
    let rel = Path::new(key);
    rel.components().count() == 2 && rel.components().all(|c| matches!(c, Component::Normal(_)))
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores an artifact's bytes durably as they stream in; returns its
    /// key and size. A failed put leaves nothing behind.
    async fn put(
        &self,
        run_id: &str,
        artifact_id: &str,
        name: &str,
        data: ByteStream,
    ) -> Result<(String, u64), BlobError>;
    /// The bytes of `key` and their length.
    async fn open(&self, key: &str) -> Result<(u64, ByteStream), BlobError>;
    async fn remove(&self, key: &str);
    /// Everything of one run.
    async fn remove_run(&self, run_id: &str);
    /// Runs that have stored bytes.
    async fn runs(&self) -> Result<Vec<String>, BlobError>;
    /// The objects of one run.
    async fn list(&self, run_id: &str) -> Result<Vec<BlobInfo>, BlobError>;
    /// Bytes stored for one run.
    async fn run_size(&self, run_id: &str) -> u64;
    /// Whether `key` is stored; an error when the store cannot tell.
    async fn exists(&self, key: &str) -> Result<bool, BlobError>;
    /// What `/api/health` says of the store, as last found (no I/O).
    fn health(&self) -> ArtifactStoreHealth;
    /// Asks the store whether it answers, for [`BlobStore::health`]; and
    /// catches up on what waited for it (a bucket to create, files to move
    /// into it).
    async fn check(&self) {}
    /// The folder the bytes are in, when they are files.
    fn local_root(&self) -> Option<&Path>;
}

/// Run ids are used as folder names: only what the daemon itself generates.
pub fn valid_run_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub struct FileBlobs {
    root: PathBuf,
}

impl FileBlobs {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// The absolute path of a key, refusing anything that could leave the
    /// root.
    fn path(&self, key: &str) -> Option<PathBuf> {
        let rel = Path::new(key);
        rel.components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| self.root.join(rel))
    }

    fn run_dir(&self, run_id: &str) -> Option<PathBuf> {
        valid_run_id(run_id).then(|| self.root.join(run_id))
    }
}

fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BlobError> + Send + 'static,
) -> Result<T, BlobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BlobError::Failed(e.to_string()))?
}

/// A half-written file, removed when dropped; once renamed into place
/// there is nothing left to remove.
struct PartFile(PathBuf);

impl Drop for PartFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.0.display(), error = %e, "cannot remove a half-written artifact")
            }
        }
    }
}

async fn write_stream(file: &mut tokio::fs::File, mut data: ByteStream) -> Result<u64, BlobError> {
    use tokio::io::AsyncWriteExt;
    let mut size = 0u64;
    while let Some(chunk) = data.next().await {
        let chunk = chunk.map_err(|e| BlobError::Input(e.to_string()))?;
        size += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    Ok(size)
}

#[async_trait]
impl BlobStore for FileBlobs {
    /// Written to a temporary file, flushed, then renamed into place.
    async fn put(
        &self,
        run_id: &str,
        artifact_id: &str,
        name: &str,
        data: ByteStream,
    ) -> Result<(String, u64), BlobError> {
        let key = key_of(run_id, artifact_id, name)?;
        let (Some(dir), Some(path)) = (self.run_dir(run_id), self.path(&key)) else {
            return Err(BlobError::Failed(format!("{key:?} is not a safe key")));
        };
        tokio::fs::create_dir_all(&dir).await?;
        // Removed however the put ends, also when its future is dropped
        // (the client went away): the rename is what keeps it.
        let tmp = PartFile(dir.join(format!(".{artifact_id}.part")));
        let mut file = tokio::fs::File::create(&tmp.0).await?;
        let size = write_stream(&mut file, data).await?;
        tokio::fs::rename(&tmp.0, &path).await?;
        // The new name is durable only with its folder's entry.
        blocking(move || Ok(std::fs::File::open(&dir)?.sync_all()?)).await?;
        Ok((key, size))
    }

    async fn open(&self, key: &str) -> Result<(u64, ByteStream), BlobError> {
        let path = self
            .path(key)
            .ok_or_else(|| BlobError::NotFound(key.to_owned()))?;
        let file = tokio::fs::File::open(&path).await?;
        let length = file.metadata().await?.len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, CHUNK);
        Ok((length, Box::pin(stream)))
    }

    async fn remove(&self, key: &str) {
        if let Some(path) = self.path(key) {
            let _ = tokio::fs::remove_file(&path).await;
            if let Some(dir) = path.parent() {
                // Only succeeds when the run's folder is empty.
                let _ = tokio::fs::remove_dir(dir).await;
            }
        }
    }

    async fn remove_run(&self, run_id: &str) {
        if let Some(dir) = self.run_dir(run_id) {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
    }

    async fn runs(&self) -> Result<Vec<String>, BlobError> {
        let root = self.root.clone();
        blocking(move || {
            let entries = match std::fs::read_dir(&root) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            Ok(entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect())
        })
        .await
    }

    async fn list(&self, run_id: &str) -> Result<Vec<BlobInfo>, BlobError> {
        let Some(dir) = self.run_dir(run_id) else {
            return Ok(Vec::new());
        };
        let run_id = run_id.to_owned();
        blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            Ok(entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .filter_map(|e| {
                    let metadata = e.metadata().ok()?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    Some(BlobInfo {
                        key: format!("{run_id}/{name}"),
                        modified: metadata.modified().ok()?,
                        size: metadata.len(),
                    })
                })
                .collect())
        })
        .await
    }

    async fn run_size(&self, run_id: &str) -> u64 {
        let Some(dir) = self.run_dir(run_id) else {
            return 0;
        };
        blocking(move || Ok(tree_size(&dir))).await.unwrap_or(0)
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        let Some(path) = self.path(key) else {
            return Ok(false);
        };
        match tokio::fs::metadata(path).await {
            Ok(metadata) => Ok(metadata.is_file()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn health(&self) -> ArtifactStoreHealth {
        ArtifactStoreHealth {
            backend: "file".to_owned(),
            status: "ok".to_owned(),
            location: self.root.display().to_string(),
            error: None,
        }
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }
}

/// A stream of one chunk.
#[cfg(test)]
pub fn once(data: Bytes) -> ByteStream {
    Box::pin(futures_util::stream::once(async move { Ok(data) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_leave_the_root() {
        let blobs = FileBlobs::new(PathBuf::from("/data/artifacts"));
        assert!(blobs.path("run/x_a.txt").is_some());
        assert!(blobs.path("../x").is_none());
        assert!(blobs.path("/etc/passwd").is_none());
        assert!(blobs.run_dir("../x").is_none());
    }

    #[test]
    fn run_ids() {
        assert!(valid_run_id("0b8e2c1e-8a31-4c53-9d1c-0e6f1f6f0a11"));
        assert!(!valid_run_id("../x"));
        assert!(!valid_run_id(""));
    }

    #[tokio::test]
    async fn a_put_dropped_midway_leaves_no_half_written_file() {
        let dir = tempfile::tempdir().expect("dir");
        let blobs = FileBlobs::new(dir.path().to_owned());
        let stalled: ByteStream = Box::pin(
            futures_util::stream::once(async { Ok(Bytes::from_static(b"half")) })
                .chain(futures_util::stream::pending()),
        );
        let put = blobs.put("run-1", "a1", "out.log", stalled);
        let waited = tokio::time::timeout(std::time::Duration::from_millis(200), put).await;
        assert!(waited.is_err(), "the put still waited for bytes");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("run-1"))
            .expect("run folder")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn bytes_go_in_and_come_out() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().expect("dir");
        let blobs = FileBlobs::new(dir.path().to_owned());
        let (key, size) = blobs
            .put("run-1", "a1", "out.log", once(Bytes::from_static(b"hello")))
            .await
            .expect("put");
        assert_eq!(key, "run-1/a1_out.log");
        assert_eq!(size, 5);
        assert!(blobs.exists(&key).await.expect("exists"));
        let (length, mut stream) = blobs.open(&key).await.expect("open");
        assert_eq!(length, 5);
        assert_eq!(stream.next().await.expect("chunk").expect("read"), "hello");
        assert_eq!(blobs.runs().await.expect("runs"), ["run-1"]);
        blobs.remove(&key).await;
        assert!(!blobs.exists(&key).await.expect("exists"));
        assert!(
            blobs.runs().await.expect("runs").is_empty(),
            "empty folder removed"
        );
    }
}
