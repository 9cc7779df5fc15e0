//! Puts a backup archive back into a data directory. The replaced state is
//! moved aside first and only removed once the restored state is complete;
//! any failure puts the old state back. A PostgreSQL database is restored
//! by the caller's step ([`Database::Elsewhere`]) once the files are in
//! place; if it fails, the files are put back too.

use std::path::{Path, PathBuf};

/// Where the archive's database goes.
pub enum Database<'a> {
    /// `db.sqlite` in the data directory.
    Sqlite,
    /// Not in the data directory (PostgreSQL): this puts it back, all or
    /// nothing, and says what it restored.
    Elsewhere(Box<dyn FnOnce() -> Result<String, String> + 'a>),
}

/// The SQLite database's files in a data directory.
const SQLITE_STATE: &[&str] = &["db.sqlite", "db.sqlite-wal", "db.sqlite-shm"];
/// What a data directory holds that a backup replaces.
const STATE: &[&str] = &[
    "db.sqlite",
    "db.sqlite-wal",
    "db.sqlite-shm",
    "artifacts",
    "certs",
    "secrets",
];
/// What an archive brings back.
const RESTORED: &[&str] = &["db.sqlite", "artifacts", "certs", "secrets"];

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0}")]
    Database(String),
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> RestoreError + 'a {
    move |source| RestoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Gives the restored files the owner of the data directory (the service
/// user), since restore runs as root.
fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Replaces the state in `data_dir` with the archive's. With `config`, the
/// archive's configuration is written there too (the old one kept as .bak).
pub fn replace(
    archive: &Path,
    data_dir: &Path,
    config: Option<&Path>,
    database: Database<'_>,
) -> Result<Vec<String>, RestoreError> {
    use std::os::unix::fs::MetadataExt;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    std::fs::create_dir_all(data_dir).map_err(io("cannot create", data_dir))?;
    let owner = std::fs::metadata(data_dir).map_err(io("cannot read", data_dir))?;
    let staging = data_dir.join(format!(".restore-{stamp}"));
    let aside = data_dir.join(format!(".replaced-{stamp}"));
    std::fs::create_dir(&staging).map_err(io("cannot create", &staging))?;
    let file = std::fs::File::open(archive).map_err(io("cannot open", archive))?;
    // unpack() refuses entries that would land outside the target.
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(&staging)
        .map_err(io("cannot unpack", archive))?;
    std::fs::create_dir(&aside).map_err(io("cannot create", &aside))?;

    let mut moved_aside = Vec::new();
    let mut restored = Vec::new();
    let result = (|| {
        for item in STATE {
            // A PostgreSQL backup leaves a SQLite database where it is.
            if matches!(database, Database::Elsewhere(_)) && SQLITE_STATE.contains(item) {
                continue;
            }
            let current = data_dir.join(item);
            if current.exists() {
                std::fs::rename(&current, aside.join(item))
                    .map_err(io("cannot move aside", &current))?;
                moved_aside.push(*item);
            }
        }
        for item in RESTORED {
            let from = staging.join(item);
            if from.exists() {
                let to = data_dir.join(item);
                std::fs::rename(&from, &to).map_err(io("cannot put back", &to))?;
                chown_tree(&to, owner.uid(), owner.gid()).map_err(io("cannot hand over", &to))?;
                restored.push((*item).to_owned());
            }
        }
        Ok(())
    })();
    // The files are in place: now the database, while they can still go back.
    let mut database_restored = None;
    let result = result.and_then(|()| match database {
        Database::Sqlite => Ok(()),
        Database::Elsewhere(step) => {
            database_restored = Some(step().map_err(RestoreError::Database)?);
            Ok(())
        }
    });
    if let Err(e) = result {
        // Undo: the restored pieces go, the old state comes back.
        for item in &restored {
            let _ = std::fs::remove_dir_all(data_dir.join(item))
                .or_else(|_| std::fs::remove_file(data_dir.join(item)));
        }
        for item in moved_aside {
            let _ = std::fs::rename(aside.join(item), data_dir.join(item));
        }
        let _ = std::fs::remove_dir_all(&staging);
        let _ = std::fs::remove_dir(&aside);
        return Err(e);
    }
    if let Some(target) = config {
        let from = staging.join("config/clawd.toml");
        if from.exists() {
            if target.exists() {
                let backup = target.with_extension("toml.bak");
                std::fs::copy(target, &backup).map_err(io("cannot keep", target))?;
            }
            std::fs::copy(&from, target).map_err(io("cannot write", target))?;
            restored.push(format!("config → {}", target.display()));
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    let _ = std::fs::remove_dir_all(&aside);
    restored.extend(database_restored);
    Ok(restored)
}
