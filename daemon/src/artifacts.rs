//! Artifact files under `DATA_DIR/artifacts/<run-id>/<artifact-id>_<name>`.
//! Names are reduced to a safe form, so no uploaded name can leave the run's
//! folder.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

const MAX_NAME_LEN: usize = 120;

pub struct ArtifactStore {
    root: PathBuf,
    extensions: HashSet<String>,
}

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

/// Run ids are used as folder names: only what the daemon itself generates.
pub fn valid_run_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl ArtifactStore {
    pub fn new(root: PathBuf, extensions: &[String]) -> Self {
        Self {
            root,
            extensions: extensions
                .iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn allowed(&self, name: &str) -> Result<(), String> {
        match extension(name) {
            Some(ext) if self.extensions.contains(&ext) => Ok(()),
            Some(ext) => Err(format!("artifact type .{ext} is not allowed")),
            None => Err("artifact name needs an extension".to_owned()),
        }
    }

    /// Writes the file durably; returns its path relative to the root.
    pub fn save(
        &self,
        run_id: &str,
        artifact_id: &str,
        name: &str,
        data: &[u8],
    ) -> std::io::Result<String> {
        let relative = format!("{run_id}/{artifact_id}_{name}");
        let dir = self.root.join(run_id);
        std::fs::create_dir_all(&dir)?;
        let final_path = self.root.join(&relative);
        let tmp = dir.join(format!(".{artifact_id}.part"));
        let result = (|| {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(data)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &final_path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map(|()| relative)
    }

    /// The absolute path of a stored relative path, refusing anything that
    /// could leave the root.
    pub fn absolute(&self, relative: &str) -> Option<PathBuf> {
        let rel = Path::new(relative);
        rel.components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| self.root.join(rel))
    }

    pub fn remove(&self, relative: &str) {
        if let Some(path) = self.absolute(relative) {
            let _ = std::fs::remove_file(&path);
            if let Some(dir) = path.parent() {
                // Only succeeds when the run's folder is empty.
                let _ = std::fs::remove_dir(dir);
            }
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
    fn absolute_refuses_traversal() {
        let store = ArtifactStore::new(PathBuf::from("/data/artifacts"), &["txt".into()]);
        assert!(store.absolute("run/x_a.txt").is_some());
        assert!(store.absolute("../x").is_none());
        assert!(store.absolute("/etc/passwd").is_none());
        assert!(store.allowed("a.TXT").is_ok());
        assert!(store.allowed("a.exe").is_err());
        assert!(store.allowed("noext").is_err());
    }

    #[test]
    fn run_ids() {
        assert!(valid_run_id("0b8e2c1e-8a31-4c53-9d1c-0e6f1f6f0a11"));
        assert!(!valid_run_id("../x"));
        assert!(!valid_run_id(""));
    }
}
