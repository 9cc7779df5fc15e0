//! Actions shared by the human API and the control API, so both do exactly
//! the same thing (and notify browsers the same way).

use std::path::Path;

use claw_proto::wire::ServerMessage;

use crate::artifacts;
use crate::fsutil;
use crate::hub::Hub;
use crate::store::{CommandRow, RunRow, Store, StoreError};

/// Creates a run; returns it with its capability token (shown only once).
pub async fn create_run(
    store: &Store,
    command: Option<String>,
    metadata: Option<String>,
    created_by: Option<String>,
) -> Result<(RunRow, String), StoreError> {
    let token = fsutil::random_hex(32)?;
    let id = uuid::Uuid::new_v4().to_string();
    let run = store
        .create_run(id, &token, command, metadata, created_by)
        .await?;
    Ok((run, token))
}

/// Queues `__STOP__` and tells the run's subscribers.
pub async fn stop_run(
    store: &Store,
    hub: &Hub,
    run_id: &str,
    by: Option<String>,
) -> Result<CommandRow, StoreError> {
    let (row, change) = store
        .request_stop(run_id.to_owned(), uuid::Uuid::new_v4().to_string(), by)
        .await?;
    hub.publish(
        run_id,
        &ServerMessage::StopRequested {
            run_id: run_id.to_owned(),
            command_id: row.id.clone(),
        },
    );
    if let Some(change) = change {
        hub.publish(
            run_id,
            &ServerMessage::RunStatus {
                run_id: run_id.to_owned(),
                status: change.status,
                exit_code: None,
            },
        );
        hub.publish_status(&change);
    }
    Ok(row)
}

/// Deletes a run with its events, commands and artifact files.
pub async fn delete_run(
    store: &Store,
    artifacts_root: &Path,
    run_id: &str,
) -> Result<(), StoreError> {
    store.delete_run(run_id.to_owned()).await?;
    // Everything under the run's folder goes, rows or not.
    if artifacts::valid_run_id(run_id) {
        let _ = std::fs::remove_dir_all(artifacts_root.join(run_id));
    }
    Ok(())
}
