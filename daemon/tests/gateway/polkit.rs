//! Callers outside claw-admin are asked of polkit: a private D-Bus daemon
//! with a stand-in polkit authority answers, so the real question clawd asks
//! (subject, action, flags) is checked.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use zbus::zvariant::OwnedValue;

use crate::common::{Gateway, TEST_CONFIG, raw_control_get};

#[derive(Debug, Clone)]
struct Asked {
    kind: String,
    uid: Option<i32>,
    pid: Option<u32>,
    start_time: Option<u64>,
    action: String,
    flags: u32,
}

/// Says yes to uid 65534 for org.claw.manage, no to anything else.
struct Authority {
    asked: Arc<Mutex<Vec<Asked>>>,
}

#[zbus::interface(name = "org.freedesktop.PolicyKit1.Authority")]
impl Authority {
    async fn check_authorization(
        &self,
        subject: (String, HashMap<String, OwnedValue>),
        action_id: String,
        _details: HashMap<String, String>,
        flags: u32,
        _cancellation_id: String,
    ) -> (bool, bool, HashMap<String, String>) {
        let (kind, fields) = subject;
        let asked = Asked {
            kind,
            uid: fields.get("uid").and_then(|v| i32::try_from(v).ok()),
            pid: fields.get("pid").and_then(|v| u32::try_from(v).ok()),
            start_time: fields.get("start-time").and_then(|v| u64::try_from(v).ok()),
            action: action_id,
            flags,
        };
        let yes = asked.uid == Some(65534) && asked.action == "org.claw.manage";
        self.asked.lock().expect("asked").push(asked);
        (yes, false, HashMap::new())
    }
}

// The stand-in authority is served by this runtime while the test thread
// waits for a client process: it needs threads of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polkit_decides_for_callers_outside_claw_admin() {
    let bus_dir = tempfile::tempdir().expect("dir");
    let socket = bus_dir.path().join("system_bus_socket");
    let config = bus_dir.path().join("bus.conf");
    std::fs::write(
        &config,
        format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
            socket.display()
        ),
    )
    .expect("bus config");
    let mut bus = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--print-address"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("dbus-daemon (package dbus)");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(bus.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("bus address");
    let address = line.trim().to_owned();

    let asked = Arc::new(Mutex::new(Vec::new()));
    let _authority = zbus::connection::Builder::address(address.as_str())
        .expect("address")
        .serve_at(
            "/org/freedesktop/PolicyKit1/Authority",
            Authority {
                asked: Arc::clone(&asked),
            },
        )
        .expect("serve")
        .name("org.freedesktop.PolicyKit1")
        .expect("name")
        .build()
        .await
        .expect("connect the stand-in authority");

    let dir = tempfile::tempdir().expect("dir");
    let gw = Gateway::start_in_with_env(dir, TEST_CONFIG, &[("DBUS_SYSTEM_BUS_ADDRESS", &address)])
        .await;
    let socket_path = gw.data().join("control.sock");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(gw.data(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o666)).expect("chmod");

    let allowed = raw_control_get(&socket_path, "/v1/status", Some(65534));
    assert!(allowed.starts_with("HTTP/1.1 200"), "{allowed}");
    let refused = raw_control_get(&socket_path, "/v1/status", Some(65533));
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    assert!(refused.contains("org.claw.manage"), "{refused}");
    // Root is let in without asking.
    let root = raw_control_get(&socket_path, "/v1/health", None);
    assert!(root.starts_with("HTTP/1.1 200"), "{root}");

    let asked = asked.lock().expect("asked").clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    for (question, uid) in asked.iter().zip([65534, 65533]) {
        assert_eq!(question.kind, "unix-process");
        assert_eq!(question.uid, Some(uid));
        assert!(question.pid.is_some_and(|p| p > 1), "{question:?}");
        assert!(question.start_time.is_some_and(|t| t > 0), "{question:?}");
        assert_eq!(question.action, "org.claw.manage");
        assert_eq!(question.flags, 1, "user interaction allowed");
    }
    let _ = bus.kill();
    let _ = bus.wait();
}
