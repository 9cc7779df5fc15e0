//! Artifacts in an S3 bucket: the real clawd (and clawctl) against a real,
//! temporary Garage (testkit/src/garage.rs), through the HTTPS API, the
//! control socket and the bucket itself. Garage's binary comes from
//! `CLAW_TEST_GARAGE`, which scripts/test sets.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use claw_testkit::garage::{GARAGE_BUCKET, GARAGE_REGION};
use claw_testkit::{
    ADMIN, ADMIN_PASSWORD, Gateway, StatusCode, TEST_CONFIG, TempCluster, TempGarage,
    binary_or_build,
};
use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::Value;

use common::{ctl, ctl_json as json, finding_kinds as kinds};

fn clawd_binary() -> PathBuf {
    binary_or_build("clawd", "clawd", env!("CARGO"))
}

fn start(extra: &str) -> Gateway {
    Gateway::launch(clawd_binary())
        .config(&format!("{TEST_CONFIG}{extra}"))
        .quiet()
        .start()
}

/// The bucket as the tests see it, beside clawd.
fn bucket(garage: &TempGarage, name: &str) -> AmazonS3 {
    AmazonS3Builder::new()
        .with_endpoint(garage.endpoint())
        .with_allow_http(true)
        .with_bucket_name(name)
        .with_region(GARAGE_REGION)
        .with_access_key_id(garage.key_id())
        .with_secret_access_key(garage.secret_key())
        .build()
        .expect("S3 client")
}

async fn keys(store: &AmazonS3) -> Vec<String> {
    let listed: Vec<_> = store.list(None).try_collect().await.expect("list");
    let mut keys: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
    keys.sort();
    keys
}

async fn upload(gw: &Gateway, run: &str, token: &str, name: &str, data: &[u8]) -> String {
    let (status, body) = gw.runner(run, token).upload(name, data).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["artifactId"].as_str().expect("id").to_owned()
}

/// (status, the headers a browser cares about, body) of a download.
async fn download(
    gw: &Gateway,
    admin: &str,
    id: &str,
) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let response = gw
        .client
        .get(gw.url(&format!("/api/artifacts/{id}")))
        .bearer_auth(admin)
        .send()
        .await
        .expect("download");
    let status = response.status();
    let headers = [
        "content-type",
        "content-length",
        "content-disposition",
        "content-security-policy",
        "x-content-type-options",
        "cache-control",
    ]
    .iter()
    .map(|h| {
        let value = response
            .headers()
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(none)");
        ((*h).to_owned(), value.to_owned())
    })
    .collect();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

async fn wait_for(what: &str, within: Duration, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The same artifacts uploaded to a clawd on files and one on S3 come back
/// byte-identical with the same headers; the S3 one is in the bucket (made
/// by clawd: create_bucket), and deleting it takes the object.
#[tokio::test]
async fn artifacts_round_trip_through_the_bucket_like_files() {
    let garage = TempGarage::start();
    let on_files = start("");
    let on_s3 = start(&format!(
        "{}create_bucket = true\n",
        garage.artifacts_config("made-by-clawd")
    ));
    let store = bucket(&garage, "made-by-clawd");
    let mut ids = Vec::new();
    for gw in [&on_files, &on_s3] {
        let admin = gw.admin().await;
        let (run, token) = gw.create_run(&admin).await;
        let html = upload(gw, &run, &token, "page.html", b"<script>alert(1)</script>").await;
        let binary: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
        let zip = upload(gw, &run, &token, "../odd name.zip", &binary).await;
        ids.push((admin, run, html, zip, binary));
    }
    let (files_admin, _, files_html, files_zip, _) = &ids[0];
    let (s3_admin, s3_run, s3_html, s3_zip, binary) = &ids[1];
    for ((files_id, s3_id), expected) in [
        ((files_html, s3_html), b"<script>alert(1)</script>".to_vec()),
        ((files_zip, s3_zip), binary.clone()),
    ] {
        let from_files = download(&on_files, files_admin, files_id).await;
        let from_s3 = download(&on_s3, s3_admin, s3_id).await;
        assert_eq!(from_s3.0, StatusCode::OK);
        assert_eq!(from_s3.1, from_files.1, "the same headers");
        assert!(from_s3.2 == expected, "byte-identical");
        assert!(from_files.2 == expected);
    }
    let in_bucket = keys(&store).await;
    assert_eq!(
        in_bucket,
        [
            format!("{s3_run}/{s3_html}_page.html"),
            format!("{s3_run}/{s3_zip}_odd_name.zip"),
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
    assert!(
        !on_s3.data().join("artifacts").join(s3_run).exists(),
        "nothing on the gateway's disk"
    );
    let health = on_s3.health().await;
    assert_eq!(health.status, "ok");
    assert_eq!(
        health.checks.get("artifactStore").map(String::as_str),
        Some("ok")
    );
    assert!(
        !on_files.health().await.checks.contains_key("artifactStore"),
        "files: no object store to check"
    );

    let response = on_s3
        .client
        .delete(on_s3.url(&format!("/api/artifacts/{s3_html}")))
        .bearer_auth(s3_admin)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(keys(&store).await.len(), 1, "the object went with the row");
}

/// 50 MiB go up in parts: clawd's peak memory grows by one part and a
/// little, not by the file; the download streams too.
#[tokio::test]
async fn a_50_mib_upload_streams_to_the_bucket() {
    let garage = TempGarage::start();
    let gw = start(&garage.artifacts_config(GARAGE_BUCKET));
    let admin = gw.admin().await;
    let (run, token) = gw.create_run(&admin).await;
    // The usual peak: a small upload and download done.
    let small = upload(&gw, &run, &token, "small.log", &vec![b'x'; 1 << 20]).await;
    let (status, _, _) = download(&gw, &admin, &small).await;
    assert_eq!(status, StatusCode::OK);
    // The peak so far is the password hashing's (64 MiB): start the peak
    // over from what clawd holds now.
    let reset_peak = || {
        std::fs::write(format!("/proc/{}/clear_refs", gw.pid()), "5").expect("reset VmHWM");
        gw.memory_kib("VmHWM")
    };
    let data: Vec<u8> = (0..50u32 << 20).map(|i| (i % 251) as u8).collect();
    let before_kib = reset_peak();
    let big = upload(&gw, &run, &token, "big.log", &data).await;
    let upload_kib = gw.memory_kib("VmHWM").saturating_sub(before_kib);
    let before_kib = reset_peak();
    let (status, headers, body) = download(&gw, &admin, &big).await;
    let download_kib = gw.memory_kib("VmHWM").saturating_sub(before_kib);
    eprintln!("peak growth: upload {upload_kib} KiB, download {download_kib} KiB");
    // Measured (debug build): the upload 5.9 to 6.7 MiB, the 5 MiB part
    // and the spool's buffers; the download under 1 MiB. One holding the
    // upload grows by more than 100.
    assert!(
        upload_kib <= 9 << 10,
        "a 50 MiB upload grew clawd's peak by {upload_kib} KiB"
    );
    assert!(
        download_kib <= 2 << 10,
        "a 50 MiB download grew clawd's peak by {download_kib} KiB"
    );
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains(&("content-length".to_owned(), (50u64 << 20).to_string())));
    assert!(body == data, "the download differs from the upload");
}

/// Garage stopped: uploads are refused with 503 and a message that says
/// nothing was stored, events still go in, health says degraded. Garage
/// back: uploads work again, without restarting clawd.
#[tokio::test]
async fn an_object_store_outage_refuses_uploads_only_until_it_is_back() {
    let mut garage = TempGarage::start();
    let gw = start(&garage.artifacts_config(GARAGE_BUCKET));
    let admin = gw.admin().await;
    let (run, token) = gw.create_run(&admin).await;
    let runner = gw.runner(&run, &token);
    wait_for("health ok", Duration::from_secs(20), async || {
        gw.health().await.status == "ok"
    })
    .await;
    let before = upload(&gw, &run, &token, "before.log", b"kept before").await;

    garage.stop();
    // Reconcile cannot tell a lost object from a store away: it stops.
    let out = ctl(&gw, &["reconcile", "--fix"]);
    assert!(
        !out.status.success(),
        "reconcile --fix went on without the store"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("unreachable"), "{said}");
    let (status, body) = runner.upload("during.log", b"not kept").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"].as_str().expect("error");
    assert!(
        message.contains("artifact store is unreachable") && message.contains("nothing was stored"),
        "{message}"
    );
    let (status, body) = runner.event("stdout", "still flowing\n", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_for("health degraded", Duration::from_secs(20), async || {
        gw.health().await.status == "degraded"
    })
    .await;
    // Still 200: the instance takes events, so the balancer keeps it.
    let health = gw.health().await;
    let check = health
        .checks
        .get("artifactStore")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        check, "unreachable",
        "no detail for anyone to read: {health:?}"
    );
    assert_eq!(
        health.checks.get("database").map(String::as_str),
        Some("ok")
    );
    let text = String::from_utf8_lossy(&ctl(&gw, &["status"]).stdout).into_owned();
    assert!(
        text.contains("Artifacts:   s3 ") && text.contains("(unreachable)"),
        "{text}"
    );
    let (_, list) = gw.get(&format!("/api/runs/{run}/artifacts"), &admin).await;
    let names: Vec<&str> = list
        .as_array()
        .expect("artifacts")
        .iter()
        .filter_map(|a| a["filename"].as_str())
        .collect();
    assert_eq!(
        names,
        ["before.log"],
        "no row for the refused upload, none lost"
    );

    garage.restart();
    let mut stored = None;
    wait_for(
        "an upload after the outage",
        Duration::from_secs(30),
        async || {
            let (status, body) = runner.upload("after.log", b"kept").await;
            if status == StatusCode::OK {
                stored = body["artifactId"].as_str().map(str::to_owned);
            }
            status == StatusCode::OK
        },
    )
    .await;
    let id = stored.expect("id");
    let (status, _, body) = download(&gw, &admin, &id).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"kept".as_slice())
    );
    let (status, _, body) = download(&gw, &admin, &before).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"kept before".as_slice())
    );
    wait_for("health ok again", Duration::from_secs(20), async || {
        gw.health().await.status == "ok"
    })
    .await;
    let status = json(&gw, &["status"]);
    assert_eq!(status["artifactStore"]["status"], "ok", "{status}");
}

/// Reconcile finds (and fixes) an object without a row and a row without
/// an object; prune removes the objects of runs that are gone; deleting a
/// run takes its objects.
#[tokio::test]
async fn prune_reconcile_and_delete_on_the_bucket() {
    let garage = TempGarage::start();
    let gw = start(&format!(
        "artifact_orphan_grace_secs = 1\n{}",
        garage.artifacts_config(GARAGE_BUCKET)
    ));
    let store = bucket(&garage, GARAGE_BUCKET);
    let admin = gw.admin().await;
    let (run, token) = gw.create_run(&admin).await;
    let kept = upload(&gw, &run, &token, "kept.log", b"kept").await;
    let lost = upload(&gw, &run, &token, "lost.log", b"lost").await;
    // A row without its object, an object without its row, and objects of
    // a run that does not exist.
    store
        .delete(&ObjectPath::from(format!("{run}/{lost}_lost.log")))
        .await
        .expect("delete");
    let stray = format!("{run}/stray_extra.log");
    store
        .put(
            &ObjectPath::from(stray.as_str()),
            PutPayload::from_static(b"stray"),
        )
        .await
        .expect("put");
    store
        .put(
            &ObjectPath::from("0b8e2c1e-8a31-4c53-9d1c-0e6f1f6f0a11/b_log.txt"),
            PutPayload::from_static(b"orphan"),
        )
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_secs(2)).await;

    let found = json(&gw, &["reconcile"]);
    assert_eq!(
        kinds(&found),
        [
            ("missing_artifact_file".to_owned(), false),
            ("orphan_artifact_file".to_owned(), false),
        ],
        "{found}"
    );
    let fixed = json(&gw, &["reconcile", "--fix"]);
    assert_eq!(
        kinds(&fixed),
        [
            ("missing_artifact_file".to_owned(), true),
            ("orphan_artifact_file".to_owned(), true),
        ],
        "{fixed}"
    );
    assert!(
        json(&gw, &["reconcile"])["findings"]
            .as_array()
            .expect("findings")
            .is_empty()
    );
    let (_, list) = gw.get(&format!("/api/runs/{run}/artifacts"), &admin).await;
    let ids: Vec<&str> = list
        .as_array()
        .expect("artifacts")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, [kept.as_str()]);

    let dry = json(&gw, &["prune", "--dry-run"]);
    assert_eq!(dry["counts"]["orphanFolders"], 1, "{dry}");
    assert!(
        keys(&store)
            .await
            .contains(&"0b8e2c1e-8a31-4c53-9d1c-0e6f1f6f0a11/b_log.txt".to_owned())
    );
    let pruned = json(&gw, &["prune"]);
    assert_eq!(pruned["counts"]["orphanFolders"], 1, "{pruned}");
    assert!(pruned["counts"]["bytesFreed"].as_u64().expect("bytes") >= 6);
    assert_eq!(keys(&store).await, [format!("{run}/{kept}_kept.log")]);

    json(&gw, &["runs", "stop", &run]);
    json(&gw, &["runs", "delete", &run]);
    assert!(
        keys(&store).await.is_empty(),
        "the run's objects went with it"
    );
}

fn manifest_paths(archive: &Path) -> Vec<String> {
    let file = std::fs::File::open(archive).expect("archive");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut entries = tar.entries().expect("entries");
    let mut first = entries.next().expect("manifest").expect("entry");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut first, &mut text).expect("read");
    let manifest: Value = serde_json::from_str(&text).expect("manifest");
    manifest["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_owned))
        .collect()
}

/// A backup holds the bucket's artifacts; verify checks them; restore puts
/// them back, into the bucket, after they were lost there.
#[tokio::test]
async fn backup_verify_and_restore_carry_the_buckets_artifacts() {
    let garage = TempGarage::start();
    let mut gw = start(&garage.artifacts_config(GARAGE_BUCKET));
    let store = bucket(&garage, GARAGE_BUCKET);
    let admin = gw.admin().await;
    let (run, token) = gw.create_run(&admin).await;
    let data: Vec<u8> = (0..=255u8).cycle().take(6 << 20).collect();
    let id = upload(&gw, &run, &token, "big.diff", &data).await;
    let key = format!("{run}/{id}_big.diff");

    let backups = tempfile::tempdir().expect("backups");
    let made = json(
        &gw,
        &["backup", "--output", backups.path().to_str().expect("path")],
    );
    let archive = PathBuf::from(made["path"].as_str().expect("path"));
    assert!(
        manifest_paths(&archive).contains(&format!("artifacts/{key}")),
        "{:?}",
        manifest_paths(&archive)
    );
    let leftovers: Vec<_> = std::fs::read_dir(backups.path())
        .expect("list")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "staged objects removed: {leftovers:?}"
    );
    let verified = json(&gw, &["backup", "verify", archive.to_str().expect("path")]);
    assert_eq!(verified["ok"], true, "{verified}");

    // The bucket loses the object; the archive brings it back.
    store
        .delete(&ObjectPath::from(key.as_str()))
        .await
        .expect("delete");
    let data_dir = gw.data().to_owned();
    let out = ctl(
        &gw,
        &[
            "restore",
            archive.to_str().expect("path"),
            "--data-dir",
            data_dir.to_str().expect("path"),
            "--stop",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(gw.wait_stopped().success());
    gw.relaunch();
    wait_for(
        "the restored object in the bucket",
        Duration::from_secs(30),
        async || keys(&store).await.contains(&key),
    )
    .await;
    wait_for("the folder emptied", Duration::from_secs(10), async || {
        !data_dir
            .join("artifacts")
            .join(&run)
            .join(format!("{id}_big.diff"))
            .exists()
    })
    .await;
    // The session is in the restored database too.
    let (status, _, body) = download(&gw, &admin, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == data, "byte-identical after the restore");
}

/// Two instances on one database and one bucket, as behind a load
/// balancer: an artifact uploaded through A comes down through B
/// byte-identical and with the same headers, and deleted through B it is
/// gone from the bucket and from A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_uploaded_through_one_instance_downloads_through_another() {
    let garage = TempGarage::start();
    let cluster = TempCluster::start();
    let config = format!(
        "{}[store]\nbackend = \"postgres\"\ndatabase_url = \"{}\"\n",
        garage.artifacts_config(GARAGE_BUCKET),
        cluster.url()
    );
    let a = start(&config);
    let admin_a = a.admin().await;
    let b = Gateway::launch(clawd_binary())
        .dir(a.instance_dir())
        .config(&format!("{TEST_CONFIG}{config}"))
        .quiet()
        .start();
    let admin_b = b
        .login(ADMIN, ADMIN_PASSWORD, None)
        .await
        .expect("the administrator on B");
    let (run, token) = a.create_run(&admin_a).await;
    let data: Vec<u8> = (0..(3u32 << 20) + 17).map(|i| (i % 253) as u8).collect();
    let id = upload(&a, &run, &token, "report.html", &data).await;

    let (status, through_a, body_a) = download(&a, &admin_a, &id).await;
    assert_eq!(status, StatusCode::OK);
    let (status, through_b, body_b) = download(&b, &admin_b, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(through_b, through_a, "the same headers through both");
    assert!(body_a == data && body_b == data, "byte-identical");
    assert!(
        !b.data().join("artifacts").join(&run).exists()
            && !a.data().join("artifacts").join(&run).exists(),
        "on neither instance's disk"
    );

    let response = b
        .client
        .delete(b.url(&format!("/api/artifacts/{id}")))
        .bearer_auth(&admin_b)
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(keys(&bucket(&garage, GARAGE_BUCKET)).await.is_empty());
    let (status, _, _) = download(&a, &admin_a, &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// The key from systemd credentials, then from the environment, with no
/// key in clawd.toml: uploads work, the log names where the key came from
/// and never the secret; half a key in the credentials stops clawd at
/// start and names the missing half.
#[tokio::test]
async fn the_key_comes_from_credentials_or_the_environment_never_into_the_log() {
    let garage = TempGarage::start();
    let config = format!(
        "{TEST_CONFIG}{}",
        garage.artifacts_config_without_key(GARAGE_BUCKET)
    );
    let credentials = tempfile::tempdir().expect("credentials");
    let write = |name: &str, value: &str| {
        std::fs::write(credentials.path().join(name), format!("{value}\n")).expect("credential");
    };
    write("claw_s3-access-key-id", garage.key_id());

    // Half a key: refused at start, naming the missing half.
    let Err(e) = Gateway::launch(clawd_binary())
        .config(&config)
        .env("CREDENTIALS_DIRECTORY", credentials.path())
        .try_start()
    else {
        panic!("clawd started with half a key");
    };
    let e = format!("{e:#}");
    assert!(e.contains("claw_s3-secret-access-key"), "{e}");

    write("claw_s3-secret-access-key", garage.secret_key());
    let from_credentials = Gateway::launch(clawd_binary())
        .config(&config)
        .env("CREDENTIALS_DIRECTORY", credentials.path())
        .start();
    let from_environment = Gateway::launch(clawd_binary())
        .config(&config)
        .env("AWS_ACCESS_KEY_ID", garage.key_id())
        .env("AWS_SECRET_ACCESS_KEY", garage.secret_key())
        .start();
    for (gw, source) in [
        (&from_credentials, "systemd credentials"),
        (&from_environment, "the environment"),
    ] {
        let admin = gw.admin().await;
        let (run, token) = gw.create_run(&admin).await;
        let id = upload(gw, &run, &token, "notes.txt", b"kept in the bucket").await;
        let (status, _, body) = download(gw, &admin, &id).await;
        assert_eq!(
            (status, body.as_slice()),
            (StatusCode::OK, b"kept in the bucket".as_slice())
        );
        assert!(
            keys(&bucket(&garage, GARAGE_BUCKET))
                .await
                .contains(&format!("{run}/{id}_notes.txt")),
            "in the bucket"
        );
        let log = gw.log();
        assert!(log.contains(source), "the log names {source}: {log}");
        assert!(
            !log.contains(garage.secret_key()),
            "the secret key is never logged"
        );
    }
}

/// A bucket that is not there (and not clawd's to make) is reported as
/// such, not taken for an empty one: health says unreachable, uploads are
/// refused, `clawctl status` says why.
#[tokio::test]
async fn a_bucket_that_is_not_there_is_not_taken_for_an_empty_one() {
    let garage = TempGarage::start();
    let gw = start(&garage.artifacts_config("no-such-bucket"));
    wait_for("health degraded", Duration::from_secs(20), async || {
        gw.health().await.status == "degraded"
    })
    .await;
    let health = gw.health().await;
    assert_eq!(
        health.checks.get("artifactStore").map(String::as_str),
        Some("unreachable")
    );
    let status = json(&gw, &["status"]);
    let error = status["artifactStore"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(
        error.contains("bucket no-such-bucket not found"),
        "{status}"
    );
    let admin = gw.admin().await;
    let (run, token) = gw.create_run(&admin).await;
    let (status, body) = gw.runner(&run, &token).upload("a.log", b"x").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
}

/// claw-runner's upload refused while the store is away goes in once the
/// store is back: it tries again rather than losing the file.
#[tokio::test]
async fn a_runner_upload_waits_out_an_outage() {
    let mut garage = TempGarage::start();
    let gw = start(&garage.artifacts_config(GARAGE_BUCKET));
    let admin = gw.admin().await;
    let (run, token) = gw.create_run(&admin).await;
    wait_for("health ok", Duration::from_secs(20), async || {
        gw.health().await.status == "ok"
    })
    .await;
    let home = tempfile::tempdir().expect("home");
    let file = home.path().join("report.txt");
    std::fs::write(&file, "made during an outage\n").expect("file");

    garage.stop();
    let runner = gw
        .runner_command(
            binary_or_build("claw-runner", "claw-runner", env!("CARGO")),
            home.path(),
        )
        .args(["upload", "--run-id", &run, "--token", &token])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("claw-runner upload");
    // Refused at least once before the store comes back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    garage.restart();
    let out = tokio::task::spawn_blocking(move || runner.wait_with_output())
        .await
        .expect("join")
        .expect("claw-runner output");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("trying again"),
        "it was refused first: {said}"
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let (status, _, body) = download(&gw, &admin, &id).await;
    assert_eq!(
        (status, body.as_slice()),
        (StatusCode::OK, b"made during an outage\n".as_slice())
    );
}
