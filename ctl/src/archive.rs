//! Checks a backup archive without clawd: every file against the manifest's
//! size and SHA-256, nothing missing or extra, and the database inside:
//! SQLite's integrity check on `db.sqlite`, or `pg_restore --list` on a
//! PostgreSQL `db.pgdump` (and, given a scratch server, a restore of it
//! there, compared with the manifest: [`crate::pg::check_on_scratch`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    /// Absent in archives from before PostgreSQL: SQLite's.
    #[serde(default = "sqlite")]
    store: String,
    schema_version: u32,
    #[serde(default)]
    tables: Vec<(String, u64)>,
    files: Vec<ManifestEntry>,
}

fn sqlite() -> String {
    "sqlite".to_owned()
}

/// Where each backend's database is in an archive.
const SQLITE_DB: &str = "db.sqlite";
const POSTGRES_DB: &str = "db.pgdump";
const CONFIG: &str = "config/clawd.toml";

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
    /// `sqlite` or `postgres`, as the manifest says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    pub schema_version: Option<u32>,
    /// The dump restored on a scratch server (`--scratch-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scratch: Option<crate::pg::ScratchReport>,
    pub problems: Vec<String>,
}

/// A checked archive, with its database extracted for a further check.
pub struct Checked {
    pub report: Report,
    database: tempfile::NamedTempFile,
    tables: Vec<(String, u64)>,
    /// The archive's `config/clawd.toml`.
    config: Option<String>,
}

impl Checked {
    pub fn is_postgres(&self) -> bool {
        self.report.store.as_deref() == Some("postgres")
    }

    /// Restores the PostgreSQL dump on `scratch` and adds what that found.
    pub async fn check_on_scratch(&mut self, scratch: &crate::pg::Server) {
        let expected = crate::pg::Expected {
            schema_version: self.report.schema_version.unwrap_or(0),
            tables: &self.tables,
        };
        match crate::pg::check_on_scratch(scratch, self.database.path(), &expected).await {
            Ok(found) => {
                self.report.problems.extend(found.problems.iter().cloned());
                self.report.scratch = Some(found);
            }
            Err(e) => self.report.problems.push(e.to_string()),
        }
        self.report.ok = self.report.problems.is_empty();
    }

    /// The extracted dump, for a restore.
    pub fn database(&self) -> &Path {
        self.database.path()
    }

    /// The archive's configuration (clawd.toml), when it has one.
    pub fn config(&self) -> Option<&str> {
        self.config.as_deref()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
}

pub fn verify(path: &Path) -> Result<Report, ArchiveError> {
    Ok(inspect(path)?.report)
}

/// As [`verify`], keeping the extracted database.
pub fn inspect(path: &Path) -> Result<Checked, ArchiveError> {
    let file =
        std::fs::File::open(path).map_err(|e| ArchiveError::Read(path.display().to_string(), e))?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut problems = Vec::new();
    let mut manifest: Option<Manifest> = None;
    let mut seen: HashMap<String, (u64, String)> = HashMap::new();
    let mut config = None;
    let db = tempfile::NamedTempFile::new()
        .map_err(|e| ArchiveError::Read("temporary file".into(), e))?;
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(e) => {
            return Ok(Checked {
                report: broken(format!("not a backup archive: {e}")),
                database: db,
                tables: Vec::new(),
                config: None,
            });
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
        let mut out = (name == SQLITE_DB || name == POSTGRES_DB).then(|| db.as_file());
        let mut text = (name == CONFIG).then(Vec::new);
        loop {
            match entry.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    size += n as u64;
                    hasher.update(&buf[..n]);
                    if let Some(text) = text.as_mut() {
                        text.extend_from_slice(&buf[..n]);
                    }
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
        if let Some(text) = text {
            config = String::from_utf8(text).ok();
        }
        seen.insert(name, (size, hex::encode(hasher.finalize())));
    }
    let Some(manifest) = manifest else {
        problems.push("no manifest.json in the archive".to_owned());
        return Ok(Checked {
            report: Report {
                ok: false,
                files: seen.len(),
                store: None,
                schema_version: None,
                scratch: None,
                problems,
            },
            database: db,
            tables: Vec::new(),
            config: None,
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
    let expected = match manifest.store.as_str() {
        "postgres" => POSTGRES_DB,
        _ => SQLITE_DB,
    };
    if !manifest.files.iter().any(|f| f.path == expected) {
        problems.push(format!("{expected}: missing"));
    } else {
        let checked = if expected == SQLITE_DB {
            check_database(db.path(), manifest.schema_version)
        } else {
            crate::pg::list_dump(db.path()).map_err(|e| e.to_string())
        };
        if let Err(problem) = checked {
            problems.push(problem);
        }
    }
    Ok(Checked {
        report: Report {
            ok: problems.is_empty(),
            files: manifest.files.len(),
            store: Some(manifest.store),
            schema_version: Some(manifest.schema_version),
            scratch: None,
            problems,
        },
        database: db,
        tables: manifest.tables,
        config,
    })
}

fn broken(problem: String) -> Report {
    Report {
        ok: false,
        files: 0,
        store: None,
        schema_version: None,
        scratch: None,
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
