//! The local append-only spool: every event is written here (with its
//! sequence) before it is sent, and stays until the gateway acknowledged it.
//! `events.jsonl` is the run's full record; `acked` holds the highest
//! acknowledged sequence; `claude.log` is the plain transcript.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use claw_proto::wire::{EventType, IngestEvent};

/// Whether the file's last byte is not a newline (a write cut short).
fn ends_torn(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

#[derive(Debug, thiserror::Error)]
#[error("spool {path}: {source}")]
pub struct SpoolError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

pub struct Spool {
    dir: PathBuf,
    events: File,
    log: File,
    next: u64,
    acked: u64,
    pending: VecDeque<IngestEvent>,
}

impl Spool {
    pub fn create(dir: &Path) -> Result<Self, SpoolError> {
        let err = |path: &Path| {
            let path = path.to_owned();
            move |source| SpoolError { path, source }
        };
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let open = |name: &str| {
            let path = dir.join(name);
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(err(&path))
        };
        let mut spool = Self {
            dir: dir.to_owned(),
            events: open("events.jsonl")?,
            log: open("claude.log")?,
            next: 1,
            acked: 0,
            pending: VecDeque::new(),
        };
        spool.continue_earlier()?;
        Ok(spool)
    }

    /// A spool a runner of this run wrote before (a restart, a resumed
    /// session): sequences go on after its last event, and what it had not
    /// had acknowledged is sent again.
    fn continue_earlier(&mut self) -> Result<(), SpoolError> {
        let path = self.dir.join("events.jsonl");
        if ends_torn(&path).map_err(|source| SpoolError {
            path: path.clone(),
            source,
        })? {
            // The next line must not run on from a torn one.
            self.events
                .write_all(b"\n")
                .map_err(|source| SpoolError { path, source })?;
        }
        self.acked = std::fs::read_to_string(self.dir.join("acked"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let (mut next, acked) = (self.next, self.acked);
        let mut pending = VecDeque::new();
        self.each_spooled(|sequence, event| {
            next = next.max(sequence + 1);
            if sequence > acked {
                pending.push_back(event);
            }
        })?;
        self.next = next;
        self.pending = pending;
        Ok(())
    }

    /// Every sequenced event in `events.jsonl`, in order; a torn line (a
    /// crash mid-write) is skipped.
    fn each_spooled(&self, mut each: impl FnMut(u64, IngestEvent)) -> Result<(), SpoolError> {
        let path = self.dir.join("events.jsonl");
        let err = |source| SpoolError {
            path: path.clone(),
            source,
        };
        let file = File::open(&path).map_err(err)?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(err)?;
            if let Ok(event) = serde_json::from_str::<IngestEvent>(&line)
                && let Some(sequence) = event.sequence
            {
                each(sequence, event);
            }
        }
        Ok(())
    }

    /// Sequences go on from `next` at least: the gateway holds events
    /// this spool does not (a session resumed on a fresh spool).
    pub fn continue_from(&mut self, next: u64) {
        if next > self.next && self.pending.is_empty() {
            self.next = next;
            self.acked = self.acked.max(next - 1);
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("claude.log")
    }

    /// Records an event and queues it for sending; returns its sequence.
    pub fn append(&mut self, kind: EventType, data: String) -> Result<u64, SpoolError> {
        let sequence = self.next;
        let event = IngestEvent {
            kind,
            data,
            sequence: Some(sequence),
        };
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        let path = self.dir.join("events.jsonl");
        self.events
            .write_all(&line)
            .map_err(|source| SpoolError { path, source })?;
        if matches!(kind, EventType::Stdout | EventType::Stderr) {
            let path = self.dir.join("claude.log");
            self.log
                .write_all(event.data.as_bytes())
                .map_err(|source| SpoolError { path, source })?;
        }
        self.next += 1;
        self.pending.push_back(event);
        Ok(sequence)
    }

    /// Up to `max` of the oldest unacknowledged events.
    pub fn batch(&self, max: usize) -> Vec<IngestEvent> {
        self.pending.iter().take(max).cloned().collect()
    }

    pub fn is_drained(&self) -> bool {
        self.pending.is_empty()
    }

    /// Queues the events from `from` on again, read back from
    /// `events.jsonl`: the gateway lost them after acknowledging them.
    /// False when there was nothing to queue again.
    pub fn rewind(&mut self, from: u64) -> Result<bool, SpoolError> {
        let first_pending = self
            .pending
            .front()
            .and_then(|e| e.sequence)
            .unwrap_or(self.next);
        if from >= first_pending || from == 0 {
            return Ok(false);
        }
        let mut again = Vec::new();
        self.each_spooled(|sequence, event| {
            if (from..first_pending).contains(&sequence) {
                again.push(event);
            }
        })?;
        let requeued = !again.is_empty();
        for event in again.into_iter().rev() {
            self.pending.push_front(event);
        }
        self.acked = self.acked.min(from - 1);
        let acked = self.dir.join("acked");
        std::fs::write(&acked, format!("{}\n", self.acked)).map_err(|source| SpoolError {
            path: acked,
            source,
        })?;
        Ok(requeued)
    }

    /// Drops everything up to `sequence` from the queue and records it.
    pub fn acknowledge(&mut self, sequence: u64) -> Result<(), SpoolError> {
        while self
            .pending
            .front()
            .is_some_and(|e| e.sequence.is_some_and(|s| s <= sequence))
        {
            self.pending.pop_front();
        }
        self.acked = self.acked.max(sequence);
        let path = self.dir.join("acked");
        std::fs::write(&path, format!("{}\n", self.acked))
            .map_err(|source| SpoolError { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_written_before_goes_on_after_its_last_event_and_a_torn_line() {
        let dir = tempfile::tempdir().expect("dir");
        {
            let mut spool = Spool::create(dir.path()).expect("spool");
            for text in ["one", "two", "three"] {
                spool
                    .append(EventType::Stdout, format!("{text}\n"))
                    .expect("append");
            }
            spool.acknowledge(2).expect("ack");
        }
        // A crash mid-write leaves half a line.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("events.jsonl"))
            .and_then(|mut f| f.write_all(b"{\"type\":\"stdout\",\"da"))
            .expect("torn");
        let mut spool = Spool::create(dir.path()).expect("again");
        let unsent: Vec<Option<u64>> = spool.batch(10).iter().map(|e| e.sequence).collect();
        assert_eq!(unsent, [Some(3)], "what was not acknowledged is sent again");
        assert_eq!(
            spool
                .append(EventType::Stdout, "four\n".into())
                .expect("append"),
            4
        );
        let mut sequences = Vec::new();
        spool
            .each_spooled(|sequence, _| sequences.push(sequence))
            .expect("read");
        assert_eq!(
            sequences,
            [1, 2, 3, 4],
            "the torn line is skipped, not joined"
        );
        // The gateway holds more than a fresh spool: sequences follow it.
        let fresh = tempfile::tempdir().expect("fresh");
        let mut spool = Spool::create(fresh.path()).expect("fresh spool");
        spool.continue_from(42);
        assert_eq!(
            spool
                .append(EventType::Stdout, "x\n".into())
                .expect("append"),
            42
        );
    }
}
