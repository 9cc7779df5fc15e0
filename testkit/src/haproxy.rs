//! HAProxy (Debian's `haproxy`) in front of several gateways, as
//! docs/OPERATIONS.md "Several gateways" configures it: TLS ends at the
//! proxy (a certificate for `localhost` the test trusts), each request goes
//! to a live instance over HTTPS, `/api/health` decides which are live, and
//! WebSockets pass through. Stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub struct Haproxy {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    /// The certificate clients are to trust (PEM).
    pub certificate: Vec<u8>,
}

/// The configuration for `backends` (their HTTPS ports on loopback) behind
/// `port`, with the certificate and key in `pem`: the one
/// docs/OPERATIONS.md shows, on loopback.
pub fn config(port: u16, pem: &Path, backends: &[u16]) -> String {
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server clawd{i} 127.0.0.1:{p} ssl verify none check\n"))
        .collect();
    format!(
        "global\n\
         \x20   maxconn 4096\n\
         defaults\n\
         \x20   mode http\n\
         \x20   timeout connect 2s\n\
         \x20   timeout client 60s\n\
         \x20   timeout server 60s\n\
         \x20   timeout tunnel 1h\n\
         \x20   option redispatch\n\
         \x20   retries 3\n\
         frontend claw\n\
         \x20   bind 127.0.0.1:{port} ssl crt {pem}\n\
         \x20   option forwardfor\n\
         \x20   default_backend clawd\n\
         backend clawd\n\
         \x20   balance roundrobin\n\
         \x20   option httpchk GET /api/health\n\
         \x20   http-check expect status 200\n\
         \x20   default-server inter 500ms fall 2 rise 2\n\
         {servers}",
        pem = pem.display()
    )
}

impl Haproxy {
    pub fn start(backends: &[u16]) -> Self {
        match Self::try_start(backends) {
            Ok(proxy) => proxy,
            Err(e) => panic!("cannot start HAProxy: {e:#}"),
        }
    }

    pub fn try_start(backends: &[u16]) -> Result<Self> {
        let binary = find()?;
        let dir = tempfile::tempdir().context("temporary directory")?;
        let key = rcgen::KeyPair::generate()?;
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
        let cert = params.self_signed(&key)?;
        let pem = dir.path().join("proxy.pem");
        std::fs::write(&pem, format!("{}{}", cert.pem(), key.serialize_pem()))?;
        let port = crate::free_port();
        let config_path = dir.path().join("haproxy.cfg");
        std::fs::write(&config_path, config(port, &pem, backends))?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let child = Command::new(&binary)
            .arg("-db")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut proxy = Self {
            dir,
            child: Some(child),
            port,
            certificate: cert.pem().into_bytes(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(child) = proxy.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!("haproxy exited ({status}): {}", proxy.log());
            }
            if Instant::now() > deadline {
                bail!("haproxy does not listen on {port}: {}", proxy.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(proxy)
    }

    /// `https://localhost:PORT`.
    pub fn base(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The certificate clients trust, as a file.
    pub fn certificate_path(&self) -> PathBuf {
        let path = self.dir.path().join("proxy.crt");
        if !path.exists() {
            let _ = std::fs::write(&path, &self.certificate);
        }
        path
    }

    /// The proxy's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Debian's haproxy (in /usr/sbin, which a test's PATH may lack).
fn find() -> Result<PathBuf> {
    for dir in ["/usr/sbin", "/usr/local/sbin", "/usr/bin"] {
        let path = Path::new(dir).join("haproxy");
        if path.exists() {
            return Ok(path);
        }
    }
    bail!("haproxy is not installed: apt-get install haproxy (scripts/test does)")
}
