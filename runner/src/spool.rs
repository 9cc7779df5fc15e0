//! The local append-only spool: every event is written here (with its
//! sequence) before it is sent, and stays until the gateway acknowledged it.
//! `events.jsonl` is the run's full record; `acked` holds the highest
//! acknowledged sequence; `claude.log` is the plain transcript.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use claw_proto::wire::{EventType, IngestEvent};

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
        Ok(Self {
            dir: dir.to_owned(),
            events: open("events.jsonl")?,
            log: open("claude.log")?,
            next: 1,
            acked: 0,
            pending: VecDeque::new(),
        })
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
