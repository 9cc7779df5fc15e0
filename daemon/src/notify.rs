//! systemd notifications: readiness, status lines, reload, stop, watchdog.
//! All are no-ops when `$NOTIFY_SOCKET` is unset (started by hand).

use std::time::Duration;

use sd_notify::NotifyState;

use crate::app::App;
use crate::shutdown::Shutdown;

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn reloading() {
    // Type=notify-reload wants the monotonic time with RELOADING=1.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading"),
        ]),
        Err(_) => send(&[NotifyState::Reloading, NotifyState::Status("reloading")]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// How often the status line is refreshed when no watchdog asks for more.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// Pings the watchdog at half its interval, but only after the store has
/// answered a round trip through the writer: a wedged database stops the
/// pings and lets systemd restart the daemon. Also refreshes `STATUS=`.
pub async fn watchdog(app: std::sync::Arc<App>, mut stopped: Shutdown) {
    let watchdog = sd_notify::watchdog_enabled();
    let every = watchdog.map_or(STATUS_EVERY, |d| (d / 2).max(Duration::from_millis(100)));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped.stopped() => return,
        }
        match tokio::time::timeout(every, app.store.ping()).await {
            Ok(Ok(())) => {
                let line = app.status_line().await;
                if watchdog.is_some() {
                    send(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
                } else {
                    status(&line);
                }
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "health check failed: the store does not answer")
            }
            Err(_) => tracing::error!("health check timed out: the store is wedged"),
        }
    }
}
