//! Artifacts as browsers and administrators see them.

use claw_proto::api::ArtifactView;
use claw_proto::wire::Role;
use futures_util::StreamExt;

use super::{Caller, Record, ServiceError, ServiceResult, views};
use crate::app::App;
use crate::blobs::ByteStream;

/// An artifact being downloaded: its bytes hold a download slot until the
/// last one is sent, however slowly the client reads.
pub struct Download {
    pub filename: String,
    pub content_type: String,
    pub length: u64,
    pub bytes: ByteStream,
}

impl App {
    pub async fn list_artifacts(
        &self,
        caller: &Caller,
        run_id: String,
    ) -> ServiceResult<Vec<ArtifactView>> {
        caller.require(Role::Viewer)?;
        let rows = self.store.list_artifacts(run_id).await?;
        Ok(rows.into_iter().map(views::artifact).collect())
    }

    /// Streams an artifact; past `artifact_downloads_max` at once, refused.
    pub async fn download_artifact(&self, caller: &Caller, id: String) -> ServiceResult<Download> {
        caller.require(Role::Viewer)?;
        let artifact = self.store.artifact(id).await?;
        let slot = self
            .settings()
            .downloads
            .clone()
            .try_acquire_owned()
            .map_err(|_| {
                ServiceError::busy(
                    "too many artifact downloads at once: try again in a few seconds",
                    5,
                )
            })?;
        let (length, bytes) = self.blobs.open(&artifact.path).await?;
        let bytes = bytes.map(move |chunk| {
            let _slot = &slot;
            chunk
        });
        Ok(Download {
            filename: artifact.filename,
            content_type: artifact.content_type,
            length,
            bytes: Box::pin(bytes),
        })
    }

    pub async fn delete_artifact(&self, caller: &Caller, id: String) -> ServiceResult<()> {
        caller.require(Role::Operator)?;
        let artifact = self.store.delete_artifact(id).await?;
        self.blobs.remove(&artifact.path).await;
        self.record(
            caller,
            Record {
                action: "artifact.delete",
                target: Some(&artifact.id),
                run_id: Some(&artifact.run_id),
                details: Some(artifact.filename.clone()),
            },
        )
        .await
    }
}
