//! Artifact bytes in a bucket of an S3-compatible object store, with the
//! keys the file backend uses (`RUN/ID_NAME`), through `object_store`.
//!
//! Uploads go up in parts of [`PART`] bytes, one at a time, so an upload
//! holds at most one part in memory; a file smaller than a part is one PUT.
//! Files left in `DATA_DIR/artifacts` (a restored backup, or the file
//! backend before the switch) are moved into the bucket by [`S3Blobs::check`]
//! and served from the folder until then.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use claw_proto::control::ArtifactStoreHealth;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    BackoffConfig, ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};

use super::{BlobError, BlobInfo, BlobStore, ByteStream, FileBlobs, key_of, safe_key};
use crate::config::ArtifactsConfig;
use crate::secrets::Secret;

/// S3's smallest part but the last.
pub const PART: usize = 5 * 1024 * 1024;
/// A prefix no run folder has: listed to learn whether the store answers
/// and the bucket is there.
const PROBE_KEY: &str = ".clawd-probe";
/// The longest one request (but a download's body) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a download may wait for its next bytes from the store.
const DOWNLOAD_IDLE: Duration = Duration::from_secs(60);
/// After a pass that could not move every file into the bucket, the wait
/// before the next (one warning a minute, not one every check).
const IMPORT_RETRY: Duration = Duration::from_secs(60);

/// Where the access key comes from; the first that has one wins.
pub struct Key {
    pub id: String,
    pub secret: String,
    pub token: Option<String>,
    /// Named in the log, never the key itself.
    pub source: &'static str,
}

impl Key {
    /// Systemd credentials, then the configuration file, then the
    /// environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`).
    pub fn find(
        credentials: Option<(Secret, Secret)>,
        config: &ArtifactsConfig,
    ) -> Result<Option<Key>, String> {
        if let Some((id, secret)) = credentials {
            let text = |s: &Secret, name: &str| {
                String::from_utf8(s.expose().to_vec())
                    .map_err(|_| format!("the credential {name} is not UTF-8"))
            };
            return Ok(Some(Key {
                id: text(&id, "claw_s3-access-key-id")?,
                secret: text(&secret, "claw_s3-secret-access-key")?,
                token: None,
                source: "systemd credentials",
            }));
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            return Ok(Some(Key {
                id: id.clone(),
                secret: secret.expose().to_owned(),
                token: None,
                source: "the configuration file",
            }));
        }
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Ok(Some(Key {
                id,
                secret,
                token: var("AWS_SESSION_TOKEN"),
                source: "the environment",
            })),
            (None, None) => Ok(None),
            _ => Err("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together".to_owned()),
        }
    }
}

/// How the store last answered.
#[derive(Debug, Clone, Default)]
struct State {
    /// Why the last request failed; `None` when it answered.
    error: Option<String>,
    /// The bucket is known to exist (or is not ours to create).
    bucket_ready: bool,
    /// No pass moving files into the bucket before this.
    next_import: Option<std::time::Instant>,
}

pub struct S3Blobs {
    /// Every request but downloads, each bounded by [`REQUEST_TIMEOUT`].
    store: AmazonS3,
    /// Downloads: a slow reader may take long over a large object, so only
    /// a stall ([`DOWNLOAD_IDLE`]) ends one.
    reader: AmazonS3,
    location: String,
    bucket: String,
    region: String,
    create_bucket: bool,
    http: reqwest::Client,
    state: Mutex<State>,
    /// Files waiting to be moved into the bucket.
    local: FileBlobs,
}

fn object_path(key: &str) -> Result<ObjectPath, BlobError> {
    if !safe_key(key) {
        return Err(BlobError::NotFound(key.to_owned()));
    }
    ObjectPath::parse(key).map_err(|e| BlobError::NotFound(format!("{key}: {e}")))
}

fn run_prefix(run_id: &str) -> Option<ObjectPath> {
    super::valid_run_id(run_id).then(|| ObjectPath::from(run_id))
}

/// A multipart upload not completed: aborted when dropped, also when the
/// upload's future is (the client went away), for the store keeps the
/// parts of one never aborted.
struct PendingUpload(Option<Box<dyn MultipartUpload>>);

impl Drop for PendingUpload {
    fn drop(&mut self) {
        let Some(mut upload) = self.0.take() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = upload.abort().await {
                    tracing::warn!(error = %e, "could not abort a dropped multipart upload");
                }
            });
        }
    }
}

/// Ends a download whose store sends nothing for [`DOWNLOAD_IDLE`]; the
/// time counts only while the reader waits for bytes.
fn idle_limited(stream: ByteStream) -> ByteStream {
    Box::pin(futures_util::stream::unfold(
        Some(stream),
        |state| async move {
            let mut stream = state?;
            match tokio::time::timeout(DOWNLOAD_IDLE, stream.next()).await {
                Ok(Some(item)) => Some((item, Some(stream))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the artifact store sent nothing for 60 s",
                    )),
                    None,
                )),
            }
        },
    ))
}

impl S3Blobs {
    /// Builds the client; nothing is asked of the store yet, so clawd
    /// starts (and takes events) while it is down.
    pub fn new(
        config: &ArtifactsConfig,
        key: Option<Key>,
        local_root: &Path,
    ) -> Result<Self, BlobError> {
        let bucket = config
            .bucket
            .clone()
            .ok_or_else(|| BlobError::Failed("artifacts.bucket is not set".to_owned()))?;
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(config.max_backoff_secs.max(1)),
                base: 2.0,
            },
            max_retries: config.retries as usize,
            // Longer than any backoff series the settings allow.
            retry_timeout: Duration::from_secs(
                config
                    .max_backoff_secs
                    .max(1)
                    .saturating_mul(4)
                    .saturating_add(60),
            ),
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(retry);
        let endpoint = config.endpoint.clone();
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint.trim_end_matches('/'));
        }
        if let Some(key) = key {
            tracing::info!(source = key.source, "object store key");
            builder = builder
                .with_access_key_id(key.id)
                .with_secret_access_key(key.secret);
            if let Some(token) = key.token {
                builder = builder.with_token(token);
            }
        }
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_allow_http(true);
        let build = |options: ClientOptions| {
            builder
                .clone()
                .with_client_options(options)
                .build()
                .map_err(|e| BlobError::Failed(format!("the [artifacts] settings: {e}")))
        };
        let store = build(options.clone().with_timeout(REQUEST_TIMEOUT))?;
        let reader = build(options.with_timeout_disabled())?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| BlobError::Failed(e.to_string()))?;
        Ok(Self {
            store,
            reader,
            location: format!(
                "s3://{bucket} at {}",
                endpoint.as_deref().unwrap_or("AWS S3")
            ),
            bucket,
            region: config.region.clone(),
            create_bucket: config.create_bucket,
            http,
            state: Mutex::new(State {
                error: Some("not checked yet".to_owned()),
                bucket_ready: !config.create_bucket,
                next_import: None,
            }),
            local: FileBlobs::new(local_root.to_owned()),
        })
    }

    fn set_state(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut state);
    }

    /// Records how a request went and turns its error into ours.
    fn outcome<T>(&self, result: object_store::Result<T>) -> Result<T, BlobError> {
        match result {
            Ok(value) => {
                self.set_state(|s| s.error = None);
                Ok(value)
            }
            Err(object_store::Error::NotFound { path, .. }) => {
                self.set_state(|s| s.error = None);
                Err(BlobError::NotFound(path))
            }
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(error = %message, store = %self.location, "object store request failed");
                self.set_state(|s| s.error = Some(message.clone()));
                Err(BlobError::Unavailable(message))
            }
        }
    }

    /// Creates the bucket (a presigned PUT on it, signed by `object_store`);
    /// one that exists already is fine.
    async fn ensure_bucket(&self) -> Result<(), BlobError> {
        let url = self
            .store
            .signed_url(
                reqwest::Method::PUT,
                &ObjectPath::default(),
                Duration::from_secs(300),
            )
            .await
            .map_err(|e| BlobError::Failed(e.to_string()))?;
        // us-east-1 is the one region S3 refuses to be told. An empty body
        // still says its length: some stores want one (411 without).
        let body = if self.region == "us-east-1" {
            String::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            )
        };
        let response = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await
            // The presigned URL carries a signature: never in a message.
            .map_err(|e| BlobError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        // BucketAlreadyExists: the name is another account's.
        if status.is_success() || body.contains("BucketAlreadyOwnedByYou") {
            if status.is_success() {
                tracing::info!(bucket = %self.bucket, "created the artifacts bucket");
            }
            Ok(())
        } else {
            Err(BlobError::Unavailable(format!(
                "creating bucket {}: {status}: {}",
                self.bucket,
                body.chars().take(300).collect::<String>()
            )))
        }
    }

    /// Makes the bucket when it is ours to make and not made yet.
    async fn bucket_ready(&self) -> Result<(), BlobError> {
        let ready = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bucket_ready;
        if ready {
            return Ok(());
        }
        match self.ensure_bucket().await {
            Ok(()) => {
                self.set_state(|s| s.bucket_ready = true);
                Ok(())
            }
            Err(e) => {
                self.set_state(|s| s.error = Some(e.to_string()));
                Err(e)
            }
        }
    }

    async fn put_key(&self, key: &str, data: ByteStream) -> Result<u64, BlobError> {
        self.bucket_ready().await?;
        match self.upload(key, data).await {
            // A 404 on a write: no bucket, or the store lost the upload.
            Err(BlobError::NotFound(what)) => {
                self.probe().await?;
                let message = format!("the store lost the upload ({what})");
                self.set_state(|s| s.error = Some(message.clone()));
                Err(BlobError::Unavailable(message))
            }
            other => other,
        }
    }

    /// Lists a prefix no run has: the store answers and the bucket is
    /// there, or the error says which is not.
    async fn probe(&self) -> Result<(), BlobError> {
        let listed = self
            .store
            .list_with_delimiter(Some(&ObjectPath::from(PROBE_KEY)))
            .await;
        match listed {
            // object_store reports a listing's 404 as a generic error.
            Err(e)
                if matches!(e, object_store::Error::NotFound { .. })
                    || e.to_string().contains("NoSuchBucket") =>
            {
                let message = format!("bucket {} not found", self.bucket);
                // Ours to make: made again at the next try.
                let create = self.create_bucket;
                self.set_state(|s| {
                    s.error = Some(message.clone());
                    s.bucket_ready = !create;
                });
                Err(BlobError::Unavailable(message))
            }
            other => self.outcome(other).map(drop),
        }
    }

    async fn upload(&self, key: &str, mut data: ByteStream) -> Result<u64, BlobError> {
        let path = object_path(key)?;
        let mut upload = PendingUpload(None);
        let mut buffer = Vec::with_capacity(PART);
        let mut size = 0u64;
        let result: Result<(), BlobError> = async {
            while let Some(chunk) = data.next().await {
                let mut chunk = chunk.map_err(|e| BlobError::Input(e.to_string()))?;
                size += chunk.len() as u64;
                while !chunk.is_empty() {
                    let take = chunk.len().min(PART - buffer.len());
                    buffer.extend_from_slice(&chunk.split_to(take));
                    if buffer.len() < PART {
                        continue;
                    }
                    let part = Bytes::from(std::mem::take(&mut buffer));
                    if upload.0.is_none() {
                        upload.0 = Some(self.outcome(self.store.put_multipart(&path).await)?);
                    }
                    if let Some(upload) = upload.0.as_mut() {
                        // One part in flight, and its buffer used again for
                        // the next once the request let go of it.
                        self.outcome(upload.put_part(PutPayload::from(part.clone())).await)?;
                    }
                    buffer = match part.try_into_mut() {
                        Ok(mut reused) => {
                            reused.clear();
                            reused.into()
                        }
                        Err(_) => Vec::with_capacity(PART),
                    };
                }
            }
            match upload.0.as_mut() {
                None => {
                    self.outcome(self.store.put(&path, PutPayload::from(buffer)).await)?;
                }
                Some(multipart) => {
                    if !buffer.is_empty() {
                        self.outcome(multipart.put_part(PutPayload::from(buffer)).await)?;
                    }
                    self.outcome(multipart.complete().await)?;
                    upload.0 = None;
                }
            }
            Ok(())
        }
        .await;
        if result.is_err()
            && let Some(mut multipart) = upload.0.take()
            && let Err(abort) = multipart.abort().await
        {
            tracing::warn!(key, error = %abort, "could not abort a multipart upload");
        }
        result.map(|()| size)
    }

    async fn list_prefix(&self, prefix: &ObjectPath) -> Result<Vec<BlobInfo>, BlobError> {
        let listed: object_store::Result<Vec<_>> =
            self.store.list(Some(prefix)).try_collect().await;
        if listed.is_err() {
            // Say "no bucket" when that is why.
            self.probe().await?;
        }
        Ok(self
            .outcome(listed)?
            .into_iter()
            .map(|meta| BlobInfo {
                key: meta.location.to_string(),
                modified: SystemTime::from(meta.last_modified),
                size: meta.size,
            })
            .collect())
    }

    /// Moves the files in the folder into the bucket, each removed once
    /// its object is stored; one that fails is left for the next pass.
    /// Returns how many moved and how many failed.
    async fn import_local(&self) -> Result<(usize, usize), BlobError> {
        let (mut moved, mut failed) = (0, 0);
        for run_id in self.local.runs().await? {
            for blob in self.local.list(&run_id).await? {
                let name = blob.key.rsplit('/').next().unwrap_or_default();
                // Half-written uploads of the file backend are no data.
                if name.starts_with('.') {
                    continue;
                }
                let stored = match self.local.open(&blob.key).await {
                    Ok((_, bytes)) => self.put_key(&blob.key, bytes).await,
                    Err(e) => Err(e),
                };
                match stored {
                    Ok(_) => {
                        self.local.remove(&blob.key).await;
                        moved += 1;
                    }
                    Err(BlobError::Unavailable(e)) => return Err(BlobError::Unavailable(e)),
                    Err(e) => {
                        tracing::warn!(key = %blob.key, error = %e, "cannot move an artifact file into the bucket");
                        failed += 1;
                    }
                }
            }
        }
        Ok((moved, failed))
    }
}

#[async_trait]
impl BlobStore for S3Blobs {
    async fn put(
        &self,
        run_id: &str,
        artifact_id: &str,
        name: &str,
        data: ByteStream,
    ) -> Result<(String, u64), BlobError> {
        let key = key_of(run_id, artifact_id, name)?;
        let size = self.put_key(&key, data).await?;
        Ok((key, size))
    }

    async fn open(&self, key: &str) -> Result<(u64, ByteStream), BlobError> {
        let path = object_path(key)?;
        // Not moved into the bucket yet: served while the store is away too.
        if self.local.exists(key).await? {
            return self.local.open(key).await;
        }
        let found = self.outcome(self.reader.get(&path).await)?;
        let size = found.meta.size;
        let bytes = found.into_stream().map_err(std::io::Error::other);
        Ok((size, idle_limited(Box::pin(bytes))))
    }

    async fn remove(&self, key: &str) {
        self.local.remove(key).await;
        if let Ok(path) = object_path(key) {
            let _ = self.outcome(self.store.delete(&path).await);
        }
    }

    async fn remove_run(&self, run_id: &str) {
        self.local.remove_run(run_id).await;
        let Some(prefix) = run_prefix(run_id) else {
            return;
        };
        let Ok(objects) = self.list_prefix(&prefix).await else {
            return;
        };
        let paths = futures_util::stream::iter(
            objects
                .into_iter()
                .map(|o| Ok(ObjectPath::from(o.key.as_str()))),
        )
        .boxed();
        let deleted: object_store::Result<Vec<_>> =
            self.store.delete_stream(paths).try_collect().await;
        let _ = self.outcome(deleted);
    }

    async fn runs(&self) -> Result<Vec<String>, BlobError> {
        let listed = self.outcome(self.store.list_with_delimiter(None).await)?;
        let mut runs: Vec<String> = listed
            .common_prefixes
            .iter()
            .map(|p| p.to_string())
            // Only what clawd names a run's folder: a run's id, a UUID.
            .filter(|p| uuid::Uuid::try_parse(p).is_ok())
            .collect();
        for run in self.local.runs().await? {
            if !runs.contains(&run) {
                runs.push(run);
            }
        }
        Ok(runs)
    }

    async fn list(&self, run_id: &str) -> Result<Vec<BlobInfo>, BlobError> {
        let Some(prefix) = run_prefix(run_id) else {
            return Ok(Vec::new());
        };
        let mut found = self.list_prefix(&prefix).await?;
        found.extend(self.local.list(run_id).await?);
        Ok(found)
    }

    async fn run_size(&self, run_id: &str) -> u64 {
        let local = self.local.run_size(run_id).await;
        let Some(prefix) = run_prefix(run_id) else {
            return local;
        };
        let remote = self
            .list_prefix(&prefix)
            .await
            .map(|objects| objects.iter().map(|o| o.size).sum())
            .unwrap_or(0);
        local + remote
    }

    async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        let Ok(path) = object_path(key) else {
            return Ok(false);
        };
        if self.local.exists(key).await? {
            return Ok(true);
        }
        match self.outcome(self.store.head(&path).await) {
            Ok(_) => Ok(true),
            // A HEAD's 404 cannot tell a missing object from a missing
            // bucket: the listing can.
            Err(BlobError::NotFound(_)) => self.probe().await.map(|()| false),
            Err(e) => Err(e),
        }
    }

    fn health(&self) -> ArtifactStoreHealth {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner()).clone();
        ArtifactStoreHealth {
            backend: "s3".to_owned(),
            status: if state.error.is_none() {
                "ok"
            } else {
                "unreachable"
            }
            .to_owned(),
            location: self.location.clone(),
            error: state.error,
        }
    }

    async fn check(&self) {
        let bucket_ready = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bucket_ready;
        if !bucket_ready && let Err(e) = self.bucket_ready().await {
            tracing::warn!(error = %e, "the artifacts bucket could not be created yet");
            return;
        }
        if self.probe().await.is_err() {
            return;
        }
        let now = std::time::Instant::now();
        let due = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_import
            .is_none_or(|at| at <= now);
        if !due {
            return;
        }
        let next = match self.import_local().await {
            Ok((moved, 0)) => {
                if moved > 0 {
                    tracing::info!(moved, "moved artifact files into the bucket");
                }
                None
            }
            Ok((moved, failed)) => {
                tracing::warn!(
                    moved,
                    failed,
                    "some artifact files could not be moved into the bucket: trying again in a minute"
                );
                Some(now + IMPORT_RETRY)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not move artifact files into the bucket yet");
                None
            }
        };
        self.set_state(|s| s.next_import = next);
    }

    fn local_root(&self) -> Option<&Path> {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use claw_testkit::TempGarage;
    use claw_testkit::garage::{GARAGE_BUCKET, GARAGE_REGION};

    use super::*;
    use crate::config::ArtifactBackend;

    fn unfinished_uploads(garage: &TempGarage) -> bool {
        garage
            .cli(&["bucket", "info", GARAGE_BUCKET])
            .expect("bucket info")
            .contains("Unfinished uploads")
    }

    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !check() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// An upload whose future is dropped after its first part (the client
    /// went away) leaves no multipart upload in the bucket: the store
    /// would keep its parts forever.
    #[tokio::test]
    async fn a_multipart_upload_dropped_midway_is_aborted() {
        let garage = TempGarage::start();
        let local = tempfile::tempdir().expect("dir");
        let config = ArtifactsConfig {
            backend: ArtifactBackend::S3,
            endpoint: Some(garage.endpoint()),
            bucket: Some(GARAGE_BUCKET.to_owned()),
            region: GARAGE_REGION.to_owned(),
            ..ArtifactsConfig::default()
        };
        let key = Key {
            id: garage.key_id().to_owned(),
            secret: garage.secret_key().to_owned(),
            token: None,
            source: "the test",
        };
        let blobs = Arc::new(S3Blobs::new(&config, Some(key), local.path()).expect("client"));
        let first_part = Bytes::from(vec![7u8; PART + 1]);
        let stalled: ByteStream = Box::pin(
            futures_util::stream::once(async move { Ok(first_part) })
                .chain(futures_util::stream::pending()),
        );
        let put = tokio::spawn({
            let blobs = Arc::clone(&blobs);
            async move {
                let run = "0b8e2c1e-8a31-4c53-9d1c-0e6f1f6f0a11";
                blobs.put(run, "a1", "big.log", stalled).await
            }
        });
        until("the first part in the bucket", || {
            unfinished_uploads(&garage)
        })
        .await;
        put.abort();
        until("the upload aborted", || !unfinished_uploads(&garage)).await;
    }
}
