//! Small file helpers: private files written atomically, the private data
//! directory, random bytes.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// `n` random bytes from the operating system.
pub fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(std::io::Error::other)?;
    Ok(buf)
}

/// Lowercase hex of `n` random bytes.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    Ok(hex::encode(random_bytes(n)?))
}

/// Writes `contents` to `path` with mode 0600, via a temporary file and a
/// rename so that a crash never leaves a half-written secret behind.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("secret")
    ));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    // The mode above applies only when the file is new.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    Ok(())
}

/// Creates a directory (and parents) readable only by its owner.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    fs::create_dir_all(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot create data directory {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("data directory {path} is not a directory")]
    NotADirectory { path: PathBuf },
    #[error("cannot tighten data directory {path} from mode {mode:04o} to 0700: {source}")]
    Tighten {
        path: PathBuf,
        mode: u32,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "data directory {path} has mode {mode:04o} (open to group or others) and belongs to \
         {owner}, not to {me} that clawd runs as, and clawd does not change someone else's \
         directory: run `chmod 700 {path}`, or `chown {me_name} {path}` to let clawd tighten it"
    )]
    Loose {
        path: PathBuf,
        mode: u32,
        owner: String,
        me: String,
        me_name: String,
    },
}

/// What [`prepare_data_dir`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataDir {
    /// Private already (or just created so).
    Private,
    /// Was open to group or others, with this mode; now 0700.
    Tightened { from: u32 },
}

/// Creates clawd's data directory (mode 0700) if it is missing, and makes
/// sure that no one but its owner can reach it: it holds the secrets, the
/// database and the setup token. A directory of clawd's own user that is
/// open to group or others is tightened to 0700 with a warning; someone
/// else's is refused, since changing it could lock that user out.
pub fn prepare_data_dir(path: &Path) -> Result<DataDir, DataDirError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|source| DataDirError::Create {
            path: path.to_owned(),
            source,
        })?;
    }
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(DataDirError::Create {
                path: path.to_owned(),
                source,
            });
        }
    }
    let meta = fs::metadata(path).map_err(|source| DataDirError::Create {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(DataDirError::NotADirectory {
            path: path.to_owned(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(DataDir::Private);
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(DataDirError::Loose {
            path: path.to_owned(),
            mode,
            owner: describe_user(meta.uid()),
            me: describe_user(me),
            me_name: user_name(me).unwrap_or_else(|| me.to_string()),
        });
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|source| {
        DataDirError::Tighten {
            path: path.to_owned(),
            mode,
            source,
        }
    })?;
    tracing::warn!(
        "data directory {} was mode {mode:04o}, open to group or others: tightened to 0700",
        path.display()
    );
    Ok(DataDir::Tightened { from: mode })
}

fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name)
}

/// `claw (uid 998)`, or `uid 998` for a user without a name.
fn describe_user(uid: u32) -> String {
    match user_name(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// This machine's name, when the kernel gives one.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").mode() & 0o7777
    }

    #[test]
    fn data_dir_created_private() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("a/b/data");
        assert_eq!(prepare_data_dir(&dir).expect("prepare"), DataDir::Private);
        assert_eq!(mode(&dir), 0o700);
        // Parents are left to the umask: only the data directory is clawd's.
        assert_eq!(prepare_data_dir(&dir).expect("again"), DataDir::Private);
    }

    #[test]
    fn own_loose_data_dir_is_tightened() {
        let tmp = tempfile::tempdir().expect("temp dir");
        for loose in [0o755, 0o750, 0o701, 0o2770, 0o1777] {
            fs::set_permissions(tmp.path(), fs::Permissions::from_mode(loose)).expect("chmod");
            assert_eq!(
                prepare_data_dir(tmp.path()).expect("prepare"),
                DataDir::Tightened { from: loose }
            );
            assert_eq!(mode(tmp.path()), 0o700);
        }
        // 0500 grants nothing to others: left alone.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o500)).expect("chmod");
        assert_eq!(
            prepare_data_dir(tmp.path()).expect("prepare"),
            DataDir::Private
        );
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    }

    #[test]
    fn a_file_is_no_data_dir() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let file = tmp.path().join("f");
        fs::write(&file, b"x").expect("write");
        let err = prepare_data_dir(&file).expect_err("a file");
        assert!(err.to_string().contains("not a directory"), "{err}");
    }

    /// Needs root to give the directory away; skipped otherwise.
    #[test]
    fn someone_elses_loose_data_dir_is_refused() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("data");
        fs::create_dir(&dir).expect("mkdir");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod");
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
        let err = prepare_data_dir(&dir).expect_err("refused");
        let text = err.to_string();
        for part in [
            dir.display().to_string(),
            "mode 0755".to_owned(),
            "uid 65534".to_owned(),
            format!("chmod 700 {}", dir.display()),
            "chown root".to_owned(),
        ] {
            assert!(text.contains(&part), "{part:?} not in {text}");
        }
        assert_eq!(mode(&dir), 0o755);
        // Private already: someone else's is fine (clawd may still lack access,
        // which the next step reports).
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).expect("chmod");
        assert_eq!(prepare_data_dir(&dir).expect("private"), DataDir::Private);
    }
}
