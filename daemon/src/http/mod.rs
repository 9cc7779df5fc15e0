//! What the HTTP transports share: errors as responses, bounded bodies,
//! JSON and query parsing. Nothing here knows a route.

mod body;
mod error;

pub use body::{SPOOL_DIR, parse_json, parse_json_or_default, query, read_body, spool_body};
