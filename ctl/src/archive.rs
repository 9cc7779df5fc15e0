//! Checks a backup archive without clawd: every file against the manifest's
//! size and SHA-256, nothing missing or extra, and SQLite's integrity check
//! on the database inside.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    files: Vec<ManifestEntry>,
}

#[derive(Debug, Deserialize)]
struct ManifestEntry {
    path: String,
    size: u64,
    sha256: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub ok: bool,
    pub files: usize,
    pub schema_version: Option<u32>,
    pub problems: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
}

pub fn verify(path: &Path) -> Result<Report, ArchiveError> {
    let file =
        std::fs::File::open(path).map_err(|e| ArchiveError::Read(path.display().to_string(), e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut problems = Vec::new();
    let mut manifest: Option<Manifest> = None;
    let mut seen: HashMap<String, (u64, String)> = HashMap::new();
    let db = tempfile::NamedTempFile::new()
        .map_err(|e| ArchiveError::Read("temporary file".into(), e))?;
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => {
            return Ok(broken(format!("not a backup archive: {e}")));
        }
    };
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(format!("archive is damaged: {e}"));
                break;
            }
        };
        let name = entry
            .path()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == MANIFEST {
            let mut text = Vec::new();
            match entry
                .read_to_end(&mut text)
                .map_err(|e| e.to_string())
                .and_then(|_| serde_json::from_slice::<Manifest>(&text).map_err(|e| e.to_string()))
            {
                Ok(m) => manifest = Some(m),
                Err(e) => problems.push(format!("manifest unreadable: {e}")),
            }
            continue;
        }
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = (name == "db.sqlite").then(|| db.as_file());
        loop {
            match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    size += n as u64;
                    hasher.update(&buf[..n]);
                    if let Some(file) = out.as_mut()
                        && file.write_all(&buf[..n]).is_err()
                    {
                        problems.push("cannot extract the database for checking".to_owned());
                    }
                }
                Err(e) => {
                    problems.push(format!("{name}: damaged: {e}"));
                    break;
                }
            }
        }
        seen.insert(name, (size, hex::encode(hasher.finalize())));
    }
    let Some(manifest) = manifest else {
        problems.push("no manifest.json in the archive".to_owned());
        return Ok(Report {
            ok: false,
            files: seen.len(),
            schema_version: None,
            problems,
        });
    };
    for file in &manifest.files {
        match seen.remove(&file.path) {
            None => problems.push(format!("{}: missing", file.path)),
            Some((size, sha)) if size != file.size || sha != file.sha256 => problems.push(format!(
                "{}: checksum does not match the manifest",
                file.path
            )),
            Some(_) => {}
        }
    }
    for extra in seen.keys() {
        problems.push(format!("{extra}: not in the manifest"));
    }
    if manifest.files.iter().any(|f| f.path == "db.sqlite") {
        match check_database(db.path(), manifest.schema_version) {
            Ok(()) => {}
            Err(problem) => problems.push(problem),
        }
    } else {
        problems.push("db.sqlite: missing".to_owned());
    }
    Ok(Report {
        ok: problems.is_empty(),
        files: manifest.files.len(),
        schema_version: Some(manifest.schema_version),
        problems,
    })
}

fn broken(problem: String) -> Report {
    Report {
        ok: false,
        files: 0,
        schema_version: None,
        problems: vec![problem],
    }
}

fn check_database(path: &Path, schema: u32) -> Result<(), String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("db.sqlite: cannot open: {e}"))?;
    let result: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("db.sqlite: integrity check failed: {e}"))?;
    if result != "ok" {
        return Err(format!("db.sqlite: integrity check: {result}"));
    }
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(|e| format!("db.sqlite: {e}"))?;
    if version != schema {
        return Err(format!(
            "db.sqlite: schema {version}, manifest says {schema}"
        ));
    }
    Ok(())
}
