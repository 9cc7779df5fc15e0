//! The daemon's stop: one flag that every long-lived task watches.

use tokio::sync::watch;

/// Turns true once when the daemon begins to stop.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Sets the flag.
pub struct Trigger(watch::Sender<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once the daemon stops (or whoever could stop it is gone).
    pub async fn stopped(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
