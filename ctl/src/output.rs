//! Text output for people: aligned tables and key/value summaries.

use std::fmt::{Display, Write as _};
use std::time::{Duration, SystemTime};

/// A table with a header row; columns are as wide as their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(&cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push('\n');
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect(), &mut out);
    for row in rows {
        line(row.clone(), &mut out);
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

/// An optional value as a table cell or field: "-" when absent.
pub fn opt<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// Text for people, built a line at a time.
#[derive(Debug, Default)]
pub struct Text(String);

impl Text {
    pub fn new() -> Self {
        Self::default()
    }

    /// One line; a newline ends it.
    pub fn line(&mut self, line: impl Display) -> &mut Self {
        // Writing into a String cannot fail.
        let _ = writeln!(self.0, "{line}");
        self
    }

    /// Text that ends its own lines, such as a [`table`].
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.0.push_str(text);
        self
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// Human-readable byte counts.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds as "3d 4h", "5h 2m", "7m 3s" or "12s".
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// How long ago `at` (RFC 3339) was: "3m 2s", or "-".
pub fn age(at: &str, now: SystemTime) -> String {
    let Ok(then) = humantime::parse_rfc3339_weak(at) else {
        return "-".to_owned();
    };
    duration(now.duration_since(then).unwrap_or(Duration::ZERO).as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(
            &["ID", "STATE"],
            &[
                vec!["a".into(), "running".into()],
                vec!["bbbb".into(), "done".into()],
            ],
        );
        assert_eq!(t, "ID    STATE\na     running\nbbbb  done\n");
        assert_eq!(table(&["X"], &[]), "X\n(none)\n");
    }

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(duration(59), "59s");
        assert_eq!(duration(3661), "1h 1m");
        assert_eq!(duration(90_000), "1d 1h");
        assert_eq!(opt(None::<u8>), "-");
        assert_eq!(opt(Some("x")), "x");
        assert_eq!(opt(Some(-1)), "-1");
    }
}
