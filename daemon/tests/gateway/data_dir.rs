//! The data directory is kept private to clawd's user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use reqwest::StatusCode;

use crate::common::{Gateway, TEST_CONFIG};

#[tokio::test]
async fn a_loose_data_dir_is_tightened_with_a_warning() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let gw = Gateway::start_in(dir, TEST_CONFIG).await;
    let mode = std::fs::metadata(gw.data()).expect("stat").mode() & 0o7777;
    assert_eq!(mode, 0o700);
    let log = gw.log();
    assert!(
        log.contains(&format!(
            "data directory {} was mode 0755, open to group or others: tightened to 0700",
            gw.data().display()
        )),
        "{log}"
    );
    // And it serves.
    let (status, _) = gw
        .call(reqwest::Method::GET, "/api/health", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
}
