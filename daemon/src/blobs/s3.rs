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
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

use super::{BlobError, BlobInfo, BlobStore, ByteStream, FileBlobs, key_of, safe_key};
use crate::config::ArtifactsConfig;
use crate::secrets::Secret;

/// S3's smallest part but the last.
pub const PART: usize = 5 * 1024 * 1024;
/// An object no run folder holds: asked for to learn whether the store
/// answers (a 404 is an answer).
const PROBE_KEY: &str = ".clawd-probe";

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
}

pub struct S3Blobs {
    store: AmazonS3,
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
            retry_timeout: Duration::from_secs(config.max_backoff_secs.max(1) * 4 + 60),
        };
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(retry)
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_allow_http(true),
            );
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
        let store = builder
            .build()
            .map_err(|e| BlobError::Failed(format!("the [artifacts] settings: {e}")))?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| BlobError::Failed(e.to_string()))?;
        Ok(Self {
            store,
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
            .map_err(|e| BlobError::Unavailable(e.to_string()))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if status.is_success()
            || body.contains("BucketAlreadyOwnedByYou")
            || body.contains("BucketAlreadyExists")
        {
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
            // A 404 on a write: no bucket.
            Err(BlobError::NotFound(what)) => {
                let message = format!("bucket {} not found ({what})", self.bucket);
                // Ours to make: made again at the next try.
                let create = self.create_bucket;
                self.set_state(|s| {
                    s.error = Some(message.clone());
                    s.bucket_ready = !create;
                });
                Err(BlobError::Unavailable(message))
            }
            other => other,
        }
    }

    async fn upload(&self, key: &str, mut data: ByteStream) -> Result<u64, BlobError> {
        let path = object_path(key)?;
        let mut upload = None;
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
                    if upload.is_none() {
                        upload = Some(self.outcome(self.store.put_multipart(&path).await)?);
                    }
                    if let Some(upload) = upload.as_mut() {
                        // One part in flight, and its buffer used again for
                        // the next once the request let go of it: a fresh
                        // 5 MiB each time grew clawd by 30 MiB over 50.
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
            match upload.as_mut() {
                None => {
                    self.outcome(self.store.put(&path, PutPayload::from(buffer)).await)?;
                }
                Some(upload) => {
                    if !buffer.is_empty() {
                        self.outcome(upload.put_part(PutPayload::from(buffer)).await)?;
                    }
                    self.outcome(upload.complete().await)?;
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok(size),
            Err(e) => {
                if let Some(mut upload) = upload
                    && let Err(abort) = upload.abort().await
                {
                    tracing::warn!(key, error = %abort, "could not abort a multipart upload");
                }
                Err(e)
            }
        }
    }

    async fn list_prefix(&self, prefix: &ObjectPath) -> Result<Vec<BlobInfo>, BlobError> {
        let listed: object_store::Result<Vec<_>> =
            self.store.list(Some(prefix)).try_collect().await;
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
    /// its object is stored; stops at the first failure (tried again at
    /// the next check).
    async fn import_local(&self) -> Result<usize, BlobError> {
        let mut moved = 0;
        for run_id in self.local.runs().await? {
            for blob in self.local.list(&run_id).await? {
                let name = blob.key.rsplit('/').next().unwrap_or_default();
                // Half-written uploads of the file backend are no data.
                if name.starts_with('.') {
                    continue;
                }
                let (_, bytes) = self.local.open(&blob.key).await?;
                self.put_key(&blob.key, bytes).await?;
                self.local.remove(&blob.key).await;
                moved += 1;
            }
        }
        Ok(moved)
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
        match self.outcome(self.store.get(&path).await) {
            Ok(found) => {
                let size = found.meta.size;
                let bytes = found.into_stream().map_err(std::io::Error::other);
                Ok((size, Box::pin(bytes)))
            }
            // Not moved into the bucket yet.
            Err(BlobError::NotFound(_)) if self.local.exists(key).await => {
                self.local.open(key).await
            }
            Err(e) => Err(e),
        }
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
            .filter(|p| super::valid_run_id(p))
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

    async fn exists(&self, key: &str) -> bool {
        let Ok(path) = object_path(key) else {
            return false;
        };
        self.outcome(self.store.head(&path).await).is_ok() || self.local.exists(key).await
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
        let probe = self.store.head(&ObjectPath::from(PROBE_KEY)).await;
        if self
            .outcome(probe)
            .is_err_and(|e| !matches!(e, BlobError::NotFound(_)))
        {
            return;
        }
        match self.import_local().await {
            Ok(0) => {}
            Ok(moved) => tracing::info!(moved, "moved artifact files into the bucket"),
            Err(e) => {
                tracing::warn!(error = %e, "could not move artifact files into the bucket yet")
            }
        }
    }

    fn local_root(&self) -> Option<&Path> {
        None
    }
}
