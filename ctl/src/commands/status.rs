//! `clawctl status` and `clawctl health`.

use claw_proto::control::{HealthReply, JobRecord, Status};

use super::show;
use crate::client::Client;
use crate::error::CtlError;
use crate::output::{Text, bytes, duration, opt};

pub async fn status(client: &Client, json: bool) -> Result<(), CtlError> {
    let status: Status = client.get("/v1/status").await?;
    show(json, &status, render)
}

pub async fn health(client: &Client, json: bool) -> Result<(), CtlError> {
    let health: HealthReply = client.get("/v1/health").await?;
    show(json, &health, |_| "clawd is healthy\n".to_owned())
}

fn render(s: &Status) -> String {
    let r = &s.runs;
    let runs = format!(
        "{} pending, {} running, {} waiting, {} done, {} failed, {} stopped",
        r.pending, r.running, r.waiting, r.done, r.failed, r.stopped
    );
    let tls = if s.tls.enabled {
        format!(
            "{}, expires {} (in {} days)\n             fingerprint {}",
            opt(s.tls.subject.as_deref()),
            opt(s.tls.not_after.as_deref()),
            opt(s.tls.expires_in_days),
            opt(s.tls.fingerprint_sha256.as_deref())
        )
    } else {
        "off (plain HTTP)".to_owned()
    };
    let last = |job: &Option<JobRecord>| match job {
        Some(job) => format!("{} ({})", job.at, job.summary),
        None => "never".to_owned(),
    };
    let mut out = Text::new();
    out.line(format_args!(
        "clawd {}, up {}",
        s.version,
        duration(s.uptime_secs)
    ));
    out.line(format_args!(
        "Listening:   {}{}",
        s.listeners.https,
        if s.listeners.socket_activated {
            " (socket-activated)"
        } else {
            ""
        }
    ));
    out.line(format_args!("Control:     {}", s.listeners.control));
    out.line(format_args!("TLS:         {tls}"));
    if s.tls.expires_soon {
        out.line(format_args!(
            "WARNING:     the certificate expires in {} days: renew it (clawctl certs install)",
            opt(s.tls.expires_in_days)
        ));
    }
    out.line(format_args!(
        "Database:    {} ({}, schema {})",
        s.database.path,
        bytes(s.database.size_bytes),
        s.database.schema_version
    ));
    let store = &s.artifact_store;
    if !store.backend.is_empty() {
        out.line(format_args!(
            "Artifacts:   {} {} ({}){}",
            store.backend,
            store.location,
            store.status,
            store
                .error
                .as_deref()
                .map(|e| format!("\n             {e}"))
                .unwrap_or_default()
        ));
    }
    out.line(format_args!("Runs:        {runs}"));
    out.line(format_args!("Last prune:  {}", last(&s.last_prune)));
    out.line(format_args!("Last backup: {}", last(&s.last_backup)));
    out.line(format_args!(
        "Connected:   {} runners, {} browsers, {} subscriptions",
        s.connections.runners, s.connections.clients, s.connections.subscriptions
    ));
    // One gateway alone on its database says nothing more.
    if s.instances.iter().any(|i| !i.this) {
        let alive = s.instances.iter().filter(|i| i.alive).count();
        out.line(format_args!(
            "Instances:   {alive} alive of {}",
            s.instances.len()
        ));
        for i in &s.instances {
            let state = match (i.this, i.alive) {
                (true, _) => "this one".to_owned(),
                (false, true) => format!("alive, seen {}", i.last_seen),
                (false, false) => format!("gone, last seen {}", i.last_seen),
            };
            out.line(format_args!(
                "             {} {} (clawd {}, started {}): {state}",
                i.hostname, i.address, i.version, i.started
            ));
        }
    }
    out.into_string()
}

#[cfg(test)]
mod tests {
    use claw_proto::api::RunCounts;
    use claw_proto::control::{
        ArtifactStoreHealth, Connections, DatabaseSummary, InstanceView, Listeners, TlsStatus,
    };

    use super::*;

    #[test]
    fn status_reads_as_before() {
        let status = Status {
            version: "0.1.0".into(),
            uptime_secs: 3661,
            listeners: Listeners {
                https: "https://0.0.0.0:8443".into(),
                control: "/run/claw/control.sock".into(),
                socket_activated: true,
            },
            tls: TlsStatus {
                enabled: true,
                fingerprint_sha256: Some("AA:BB".into()),
                subject: Some("CN=gw".into()),
                not_after: Some("2027-01-01T00:00:00.000Z".into()),
                expires_in_days: Some(3),
                expires_soon: true,
            },
            database: DatabaseSummary {
                path: "/var/lib/claw/db.sqlite".into(),
                size_bytes: 1536,
                schema_version: 3,
            },
            runs: RunCounts {
                pending: 1,
                running: 2,
                waiting: 6,
                done: 3,
                failed: 4,
                stopped: 5,
            },
            last_prune: Some(JobRecord {
                at: "2026-11-30T03:00:00.000Z".into(),
                summary: "1 runs".into(),
            }),
            last_backup: None,
            connections: Connections {
                runners: 1,
                clients: 2,
                subscriptions: 3,
                followed_runs: 0,
            },
            instances: vec![InstanceView {
                id: "i-1".into(),
                hostname: "gw".into(),
                address: "https://0.0.0.0:8443".into(),
                version: "0.1.0".into(),
                started: "2026-11-30T02:00:00.000Z".into(),
                last_seen: "2026-11-30T03:00:00.000Z".into(),
                alive: true,
                this: true,
            }],
            artifact_store: ArtifactStoreHealth {
                backend: "s3".into(),
                status: "unreachable".into(),
                location: "s3://claw at http://127.0.0.1:3900".into(),
                error: Some("connection refused".into()),
            },
        };
        assert_eq!(
            render(&status),
            "clawd 0.1.0, up 1h 1m\n\
             Listening:   https://0.0.0.0:8443 (socket-activated)\n\
             Control:     /run/claw/control.sock\n\
             TLS:         CN=gw, expires 2027-01-01T00:00:00.000Z (in 3 days)\n\
             \x20            fingerprint AA:BB\n\
             WARNING:     the certificate expires in 3 days: renew it (clawctl certs install)\n\
             Database:    /var/lib/claw/db.sqlite (1.5 KiB, schema 3)\n\
             Artifacts:   s3 s3://claw at http://127.0.0.1:3900 (unreachable)\n\
             \x20            connection refused\n\
             Runs:        1 pending, 2 running, 6 waiting, 3 done, 4 failed, 5 stopped\n\
             Last prune:  2026-11-30T03:00:00.000Z (1 runs)\n\
             Last backup: never\n\
             Connected:   1 runners, 2 browsers, 3 subscriptions\n"
        );
        let plain = Status {
            tls: TlsStatus {
                enabled: false,
                fingerprint_sha256: None,
                subject: None,
                not_after: None,
                expires_in_days: None,
                expires_soon: false,
            },
            ..status
        };
        assert!(render(&plain).contains("TLS:         off (plain HTTP)\nDatabase:"));
        let mut two = plain.clone();
        two.instances.push(InstanceView {
            id: "i-2".into(),
            hostname: "gw2".into(),
            address: "https://10.0.0.2:8443".into(),
            version: "0.1.0".into(),
            started: "2026-11-30T01:00:00.000Z".into(),
            last_seen: "2026-11-30T02:59:00.000Z".into(),
            alive: false,
            this: false,
        });
        assert!(render(&two).ends_with(
            "Instances:   1 alive of 2\n\
             \x20            gw https://0.0.0.0:8443 (clawd 0.1.0, started 2026-11-30T02:00:00.000Z): this one\n\
             \x20            gw2 https://10.0.0.2:8443 (clawd 0.1.0, started 2026-11-30T01:00:00.000Z): gone, last seen 2026-11-30T02:59:00.000Z\n"
        ));
    }
}
