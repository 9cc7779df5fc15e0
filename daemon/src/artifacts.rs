//! Artifact names: what is kept of an uploaded name, which extensions are
//! accepted, and the content type each is served with. The bytes are kept
//! by a [`crate::blobs::BlobStore`].

use std::collections::HashSet;

const MAX_NAME_LEN: usize = 120;

/// The part of an uploaded name that is kept: the last path component, with
/// anything but letters, digits, `.`, `_` and `-` replaced by `_`, and no
/// leading dots.
pub fn safe_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while name.starts_with('.') {
        name.remove(0);
    }
    if name.len() > MAX_NAME_LEN {
        // Keep the extension when shortening.
        let ext = name.rsplit_once('.').map(|(_, e)| e.to_owned());
        name.truncate(MAX_NAME_LEN);
        if let Some(ext) = ext.filter(|e| e.len() < 16) {
            name.truncate(MAX_NAME_LEN - ext.len() - 1);
            name = format!("{name}.{ext}");
        }
    }
    if name.is_empty() || name.chars().all(|c| c == '_') {
        "artifact".to_owned()
    } else {
        name
    }
}

pub fn extension(name: &str) -> Option<String> {
    name.rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .filter(|e| !e.is_empty())
}

pub fn content_type(name: &str) -> &'static str {
    match extension(name).as_deref() {
        Some("log" | "txt" | "diff" | "patch" | "md" | "csv" | "toml" | "yaml" | "yml") => {
            "text/plain; charset=utf-8"
        }
        Some("json") => "application/json",
        Some("html") => "text/html; charset=utf-8",
        Some("xml") => "application/xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        _ => "application/octet-stream",
    }
}

/// Which file name extensions may be uploaded (`artifact_extensions`).
#[derive(Debug, Clone)]
pub struct Extensions(HashSet<String>);

impl Extensions {
    pub fn new(extensions: &[String]) -> Self {
        Self(
            extensions
                .iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect(),
        )
    }

    pub fn allowed(&self, name: &str) -> Result<(), String> {
        match extension(name) {
            Some(ext) if self.0.contains(&ext) => Ok(()),
            Some(ext) => Err(format!("artifact type .{ext} is not allowed")),
            None => Err("artifact name needs an extension".to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(safe_name("...hidden.txt"), "hidden.txt");
        assert_eq!(safe_name("a b;c$(rm).log"), "a_b_c__rm_.log");
        assert_eq!(safe_name(".."), "artifact");
        assert_eq!(safe_name(""), "artifact");
        assert_eq!(safe_name("/"), "artifact");
        let long = format!("{}.diff", "x".repeat(300));
        let s = safe_name(&long);
        assert!(s.len() <= MAX_NAME_LEN && s.ends_with(".diff"), "{s}");
    }

    #[test]
    fn extensions_are_checked_without_case() {
        let allowed = Extensions::new(&["txt".into(), ".LOG".into()]);
        assert!(allowed.allowed("a.TXT").is_ok());
        assert!(allowed.allowed("a.log").is_ok());
        assert!(allowed.allowed("a.exe").is_err());
        assert!(allowed.allowed("noext").is_err());
    }
}
