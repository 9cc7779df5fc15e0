//! The control socket's stream, written with `MSG_NOSIGNAL`: clawctl lets
//! SIGPIPE end it when its own output is closed (`clawctl … | head`), and
//! a write to a socket that clawd has just closed (it is stopping) must be
//! an error to report, not a silent death by that signal.

use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use nix::sys::socket::{MsgFlags, send};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::UnixStream;

pub struct ControlStream(UnixStream);

impl ControlStream {
    pub fn new(stream: UnixStream) -> Self {
        Self(stream)
    }
}

impl AsyncRead for ControlStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ControlStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = &self.get_mut().0;
        loop {
            ready!(stream.poll_write_ready(cx))?;
            let sent = stream.try_io(Interest::WRITABLE, || {
                send(stream.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)
            });
            match sent {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;

    /// With SIGPIPE at its default, as in clawctl, writing to a socket whose
    /// peer is gone gives an error instead of ending the process.
    #[tokio::test]
    async fn a_write_to_a_closed_peer_is_an_error_not_a_signal() {
        use nix::sys::signal::{SigHandler, Signal, signal};
        // SAFETY: installs the default disposition, as clawctl's main does.
        unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) }.expect("SIGPIPE default");
        let (ours, theirs) = UnixStream::pair().expect("pair");
        drop(theirs);
        let mut stream = ControlStream::new(ours);
        let mut failed = None;
        for _ in 0..4 {
            if let Err(e) = stream.write_all(b"GET /v1/health HTTP/1.1\r\n\r\n").await {
                failed = Some(e.kind());
                break;
            }
        }
        assert_eq!(failed, Some(io::ErrorKind::BrokenPipe));
    }
}
