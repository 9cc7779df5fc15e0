//! Artifact bytes, behind a trait so that another backend (an object store)
//! is an added module. Today: files under `DATA_DIR/artifacts/<run>/<id>_<name>`.

use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;

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
}

#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores an artifact's bytes durably; returns its key.
    async fn put(
        &self,
        run_id: &str,
        artifact_id: &str,
        name: &str,
        data: Bytes,
    ) -> Result<String, BlobError>;
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
    async fn exists(&self, key: &str) -> bool;
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

#[async_trait]
impl BlobStore for FileBlobs {
    /// Written to a temporary file, flushed, then renamed into place.
    async fn put(
        &self,
        run_id: &str,
        artifact_id: &str,
        name: &str,
        data: Bytes,
    ) -> Result<String, BlobError> {
        let dir = self
            .run_dir(run_id)
            .ok_or_else(|| BlobError::Failed(format!("{run_id:?} is not a run id")))?;
        let key = format!("{run_id}/{artifact_id}_{name}");
        let path = self
            .path(&key)
            .ok_or_else(|| BlobError::Failed(format!("{key:?} is not a safe key")))?;
        let tmp = dir.join(format!(".{artifact_id}.part"));
        blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let result = (|| {
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(&data)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            Ok(result?)
        })
        .await?;
        Ok(key)
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
                    let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    Some(BlobInfo {
                        key: format!("{run_id}/{name}"),
                        modified,
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

    async fn exists(&self, key: &str) -> bool {
        match self.path(key) {
            Some(path) => tokio::fs::metadata(path).await.is_ok_and(|m| m.is_file()),
            None => false,
        }
    }
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
    async fn bytes_go_in_and_come_out() {
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().expect("dir");
        let blobs = FileBlobs::new(dir.path().to_owned());
        let key = blobs
            .put("run-1", "a1", "out.log", Bytes::from_static(b"hello"))
            .await
            .expect("put");
        assert_eq!(key, "run-1/a1_out.log");
        assert!(blobs.exists(&key).await);
        let (length, mut stream) = blobs.open(&key).await.expect("open");
        assert_eq!(length, 5);
        assert_eq!(stream.next().await.expect("chunk").expect("read"), "hello");
        assert_eq!(blobs.runs().await.expect("runs"), ["run-1"]);
        blobs.remove(&key).await;
        assert!(!blobs.exists(&key).await);
        assert!(
            blobs.runs().await.expect("runs").is_empty(),
            "empty folder removed"
        );
    }
}
