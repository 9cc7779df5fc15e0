//! Following runs live: stored events after a sequence, then live ones, in
//! order, without gaps or duplicates; and whether a socket's session still
//! stands.

use axum::extract::ws::Utf8Bytes;
use claw_proto::wire::{BatchedEvent, Role, ServerMessage};
use tokio::sync::mpsc;

use super::{Caller, ServiceError, ServiceResult, SessionUser};
use crate::app::App;
use crate::clock::iso;
use crate::hub::{Live, RecvError, encode, event_message};
use crate::store::{EventRow, StoreError};

/// Where a follower's messages go (a socket's or a stream's queue).
pub type Outbox = mpsc::Sender<Utf8Bytes>;

/// Events read from the store per page while catching up.
const REPLAY_PAGE: u32 = 1000;
/// An `events` message is closed once its data passes this size.
const BATCH_BYTES: usize = 256 * 1024;

/// Whether the session a socket was opened with still stands.
#[derive(Debug, PartialEq, Eq)]
pub enum SessionCheck {
    Valid,
    /// Logged out, expired, revoked, the user deleted, the secret rotated.
    Ended,
    /// The user's role changed: connect again.
    Changed,
}

fn error(message: &str) -> Utf8Bytes {
    encode(&ServerMessage::Error {
        message: message.to_owned(),
    })
}

impl App {
    /// Checks a socket's session again, as it was when the socket opened.
    pub async fn check_session(&self, session: &SessionUser) -> ServiceResult<SessionCheck> {
        Ok(
            match self
                .store
                .session_user(session.session_hash.clone())
                .await?
            {
                Some((user, _)) if user.role == session.user.role => SessionCheck::Valid,
                Some(_) => SessionCheck::Changed,
                None => SessionCheck::Ended,
            },
        )
    }

    /// Checks that a caller may follow a run and that it exists.
    pub async fn may_follow(&self, caller: &Caller, run_id: &str) -> ServiceResult<()> {
        caller.require(Role::Viewer)?;
        self.store.run(run_id.to_owned()).await?;
        Ok(())
    }

    /// Streams one run to `outbox`: what is stored after `after`, the run's
    /// current status, then live events and notices, until the outbox
    /// closes.
    pub async fn follow(&self, run_id: String, after: u64, batch: bool, outbox: Outbox) {
        self.follow_from(run_id, after, batch, outbox, false).await;
    }

    /// As [`follow`](Self::follow), for a stream that ends with the run
    /// (its final `run_status`), also when the run ended before the
    /// subscription began.
    pub async fn follow_to_end(&self, run_id: String, after: u64, outbox: Outbox) {
        self.follow_from(run_id, after, false, outbox, true).await;
    }

    async fn follow_from(
        &self,
        run_id: String,
        after: u64,
        batch: bool,
        outbox: Outbox,
        to_end: bool,
    ) {
        // Subscribe before reading the store, so nothing committed in between
        // is missed; duplicates are dropped by sequence.
        let mut live = self.hub.subscribe(&run_id);
        let mut last = after;
        if self
            .catch_up(&run_id, &mut last, batch, &outbox)
            .await
            .is_err()
        {
            return;
        }
        // The run's status as it is now: a change made before the
        // subscription began is never seen live (a page that loaded the run
        // as pending while its runner started). Later changes follow live.
        let Ok(finished) = self.send_status(&run_id, &outbox).await else {
            return;
        };
        if to_end && finished {
            return;
        }
        loop {
            match live.recv().await {
                Ok(Live::Event { sequence, json }) => {
                    if sequence <= last {
                        continue;
                    }
                    if sequence == last + 1 {
                        if outbox.send(json).await.is_err() {
                            return;
                        }
                        last = sequence;
                    } else if self
                        .catch_up(&run_id, &mut last, batch, &outbox)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Live::Notice(json)) => {
                    if outbox.send(json).await.is_err() {
                        return;
                    }
                }
                // Changes committed elsewhere may have been missed: the
                // events and the status as stored.
                Ok(Live::Resync) => {
                    if self
                        .catch_up(&run_id, &mut last, batch, &outbox)
                        .await
                        .is_err()
                        || self.send_status(&run_id, &outbox).await.is_err()
                    {
                        return;
                    }
                }
                Err(RecvError::Lagged(skipped)) => {
                    let notice = encode(&ServerMessage::Notice {
                        message: format!(
                            "fell behind by {skipped} messages; catching up from the store"
                        ),
                    });
                    if outbox.send(notice).await.is_err()
                        || self
                            .catch_up(&run_id, &mut last, batch, &outbox)
                            .await
                            .is_err()
                    {
                        return;
                    }
                }
            }
        }
    }

    /// Sends the run's status as stored; whether the run has finished.
    async fn send_status(&self, run_id: &str, outbox: &Outbox) -> Result<bool, ()> {
        match self.store.run(run_id.to_owned()).await {
            Ok(run) => {
                let status = encode(&ServerMessage::RunStatus {
                    run_id: run_id.to_owned(),
                    status: run.status,
                    exit_code: run.exit_code,
                });
                outbox.send(status).await.map_err(|_| ())?;
                Ok(run.status.is_finished())
            }
            Err(e) => {
                let _ = outbox.send(error(&failed_read(e))).await;
                Err(())
            }
        }
    }

    /// Sends the stored events after `after`, then returns.
    pub async fn replay(&self, run_id: &str, after: u64, outbox: &Outbox) {
        let mut last = after;
        let _ = self.catch_up(run_id, &mut last, false, outbox).await;
    }

    /// Sends every stored event after `last`, advancing it.
    async fn catch_up(
        &self,
        run_id: &str,
        last: &mut u64,
        batch: bool,
        outbox: &Outbox,
    ) -> Result<(), ()> {
        loop {
            let page = match self
                .store
                .events_after(run_id.to_owned(), *last, REPLAY_PAGE)
                .await
            {
                Ok(page) => page,
                Err(e) => {
                    let _ = outbox.send(error(&failed_read(e))).await;
                    return Err(());
                }
            };
            let full = page.len() == REPLAY_PAGE as usize;
            if batch {
                send_batched(run_id, &page, outbox).await?;
                if let Some(event) = page.last() {
                    *last = event.sequence;
                }
            } else {
                for event in &page {
                    outbox
                        .send(encode(&event_message(event)))
                        .await
                        .map_err(|_| ())?;
                    *last = event.sequence;
                }
            }
            if !full {
                return Ok(());
            }
        }
    }
}

fn failed_read(e: StoreError) -> String {
    ServiceError::from(e).message
}

/// Sends a page of stored events as `events` messages of bounded size.
async fn send_batched(run_id: &str, page: &[EventRow], outbox: &Outbox) -> Result<(), ()> {
    let mut events = Vec::new();
    let mut bytes = 0;
    for (i, event) in page.iter().enumerate() {
        bytes += event.data.len();
        events.push(BatchedEvent {
            event_id: event.id,
            sequence: event.sequence,
            event_type: event.kind,
            data: event.data.clone(),
            timestamp: iso(event.timestamp),
        });
        if bytes >= BATCH_BYTES || i + 1 == page.len() {
            let message = ServerMessage::Events {
                run_id: run_id.to_owned(),
                events: std::mem::take(&mut events),
            };
            outbox.send(encode(&message)).await.map_err(|_| ())?;
            bytes = 0;
        }
    }
    Ok(())
}
