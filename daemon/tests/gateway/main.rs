//! End-to-end tests: each starts the real `clawd` binary on a temporary data
//! directory and a free port and talks to it over HTTPS and WebSocket.

mod common;

mod allowlist;
mod approvals;
mod auth;
mod cluster;
mod control;
mod data_dir;
mod hardening;
mod idempotency;
mod notices;
mod notifications;
mod persistence;
mod polkit;
mod postgres;
mod redaction;
mod roles;
mod runner;
mod systemd;
mod uploads;
mod views;
mod web;
mod webpush;
mod websocket;
