//! Where the sockets come from: systemd socket activation (`LISTEN_FDS` with
//! `LISTEN_FDNAMES` `https` and `control`), or bound by clawd itself.

use std::net::SocketAddr;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::socket::{self, AddressFamily, SockType, SockaddrLike, sockopt};

/// The name `clawd.socket` gives the public TCP listener.
pub const HTTPS_NAME: &str = "https";
/// The name `clawd.socket` gives the Unix control socket.
pub const CONTROL_NAME: &str = "control";

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("socket activation: {0}")]
    Activation(String),
    #[error(
        "socket activation passed a socket named {0:?}; clawd knows only \"https\" and \"control\" \
         (set FileDescriptorName= in clawd.socket)"
    )]
    UnknownName(String),
    #[error("socket activation passed {name:?} but it is not {expected}")]
    WrongKind {
        name: String,
        expected: &'static str,
    },
    #[error(
        "socket activation passed no \"https\" socket; clawd.socket needs FileDescriptorName=https"
    )]
    NoHttps,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} exists and is not a socket: move it away")]
    NotASocket { path: PathBuf },
    #[error("another clawd is serving {path}: stop it first")]
    InUse { path: PathBuf },
}

pub struct Listeners {
    pub https: std::net::TcpListener,
    pub control: Option<std::os::unix::net::UnixListener>,
    /// True when systemd passed the sockets.
    pub activated: bool,
    /// The control socket's path when clawd created it (removed on exit).
    pub control_path: Option<PathBuf>,
}

/// Sockets from systemd, if it passed any.
pub fn from_systemd() -> Result<Option<Listeners>, ListenError> {
    let fds =
        sd_notify::listen_fds_with_names().map_err(|e| ListenError::Activation(e.to_string()))?;
    if fds.len() == 0 {
        return Ok(None);
    }
    let mut https = None;
    let mut control = None;
    for (fd, name) in fds {
        let owned = take_fd(fd);
        match name.as_str() {
            HTTPS_NAME => {
                check_kind(
                    &owned,
                    &name,
                    &[AddressFamily::Inet, AddressFamily::Inet6],
                    "a TCP socket",
                )?;
                https = Some(std::net::TcpListener::from(owned));
            }
            CONTROL_NAME => {
                check_kind(
                    &owned,
                    &name,
                    &[AddressFamily::Unix],
                    "a Unix stream socket",
                )?;
                control = Some(std::os::unix::net::UnixListener::from(owned));
            }
            other => return Err(ListenError::UnknownName(other.to_owned())),
        }
    }
    let https = https.ok_or(ListenError::NoHttps)?;
    for listener in [https.as_fd()]
        .into_iter()
        .chain(control.as_ref().map(AsFd::as_fd))
    {
        set_nonblocking(listener)?;
    }
    Ok(Some(Listeners {
        https,
        control,
        activated: true,
        control_path: None,
    }))
}

fn take_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the service manager hands these descriptors to this process
    // (LISTEN_PID matched), nothing else in the process owns them, and each
    // is taken exactly once here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn check_kind(
    fd: &OwnedFd,
    name: &str,
    families: &[AddressFamily],
    expected: &'static str,
) -> Result<(), ListenError> {
    let wrong = || ListenError::WrongKind {
        name: name.to_owned(),
        expected,
    };
    let kind = socket::getsockopt(fd, sockopt::SockType).map_err(|_| wrong())?;
    let listening = socket::getsockopt(fd, sockopt::AcceptConn).map_err(|_| wrong())?;
    let address: socket::SockaddrStorage =
        socket::getsockname(std::os::fd::AsRawFd::as_raw_fd(fd)).map_err(|_| wrong())?;
    let family_ok = address.family().is_some_and(|f| families.contains(&f));
    if kind != SockType::Stream || !listening || !family_ok {
        return Err(wrong());
    }
    Ok(())
}

fn set_nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> Result<(), ListenError> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(|e| ListenError::Activation(e.to_string()))?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(|e| ListenError::Activation(e.to_string()))?;
    Ok(())
}

/// Binds the sockets clawd serves when started by hand.
pub fn bind(addr: SocketAddr, control_path: &Path) -> Result<Listeners, ListenError> {
    let https = std::net::TcpListener::bind(addr).map_err(|source| ListenError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    https
        .set_nonblocking(true)
        .map_err(|source| ListenError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let control = bind_control(control_path)?;
    Ok(Listeners {
        https,
        control: Some(control),
        activated: false,
        control_path: Some(control_path.to_owned()),
    })
}

/// The control socket, mode 0660. A stale socket file from a crashed clawd
/// is replaced; a live one is not.
fn bind_control(path: &Path) -> Result<std::os::unix::net::UnixListener, ListenError> {
    let bind_err = |source| ListenError::Bind {
        addr: path.display().to_string(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ListenError::NotASocket {
                path: path.to_owned(),
            });
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ListenError::InUse {
                path: path.to_owned(),
            });
        }
        std::fs::remove_file(path).map_err(bind_err)?;
    }
    let listener = std::os::unix::net::UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    listener.set_nonblocking(true).map_err(bind_err)?;
    Ok(listener)
}
