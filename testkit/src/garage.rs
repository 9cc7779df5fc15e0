//! A temporary single-node Garage (an S3-compatible object store) for
//! tests: a generated configuration with free ports, metadata and data in a
//! temporary directory, a layout of one node, a key and a bucket. It can be
//! stopped and started again to play an outage; stopped and removed on
//! drop. No mocks: clawd's S3 backend talks to it.
//!
//! The binary is the one `CLAW_TEST_GARAGE` names (scripts/test installs
//! it with cargo into a cache outside the clone).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The bucket [`TempGarage::start`] creates.
pub const GARAGE_BUCKET: &str = "claw-artifacts";
/// Garage's default region name.
pub const GARAGE_REGION: &str = "garage";

const INSTALL_HINT: &str = "set CLAW_TEST_GARAGE to a Garage 2.x binary; scripts/test installs one \
     (cargo install garage --locked --version 2.5.0 --debug --no-default-features \
     --features system-libs,sqlite --root DIR, with libsodium-dev and libzstd-dev)";

/// The Garage binary the tests use.
pub fn garage_binary() -> Result<PathBuf> {
    let path = std::env::var_os("CLAW_TEST_GARAGE")
        .map(PathBuf::from)
        .with_context(|| format!("CLAW_TEST_GARAGE is not set: {INSTALL_HINT}"))?;
    if !path.is_file() {
        bail!(
            "CLAW_TEST_GARAGE={} is not a file: {INSTALL_HINT}",
            path.display()
        );
    }
    Ok(path)
}

pub struct TempGarage {
    binary: PathBuf,
    dir: tempfile::TempDir,
    s3_port: u16,
    server: Option<Child>,
    key_id: String,
    secret_key: String,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).context("random bytes")?;
    Ok(hex::encode(buf))
}

impl TempGarage {
    /// A running Garage with [`GARAGE_BUCKET`] and a key that may read and
    /// write it (and create buckets); panics with what failed.
    pub fn start() -> Self {
        match Self::try_start() {
            Ok(garage) => garage,
            Err(e) => panic!("cannot start a temporary Garage: {e:#}"),
        }
    }

    pub fn try_start() -> Result<Self> {
        let binary = garage_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("claw-garage-")
            .tempdir()
            .context("temporary directory")?;
        let s3_port = free_port()?;
        let rpc_port = free_port()?;
        let admin_port = free_port()?;
        let root = dir.path();
        let config = format!(
            "metadata_dir = \"{meta}\"\n\
             data_dir = \"{data}\"\n\
             db_engine = \"sqlite\"\n\
             replication_factor = 1\n\
             metadata_fsync = false\n\
             data_fsync = false\n\
             rpc_bind_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_public_addr = \"127.0.0.1:{rpc_port}\"\n\
             rpc_secret = \"{secret}\"\n\
             [s3_api]\n\
             s3_region = \"{GARAGE_REGION}\"\n\
             api_bind_addr = \"127.0.0.1:{s3_port}\"\n\
             root_domain = \".s3.garage.localhost\"\n\
             [admin]\n\
             api_bind_addr = \"127.0.0.1:{admin_port}\"\n\
             admin_token = \"{token}\"\n",
            meta = root.join("meta").display(),
            data = root.join("data").display(),
            secret = random_hex(32)?,
            token = random_hex(32)?,
        );
        std::fs::write(root.join("garage.toml"), config).context("garage.toml")?;
        let mut garage = Self {
            binary,
            dir,
            s3_port,
            server: None,
            key_id: String::new(),
            secret_key: String::new(),
        };
        garage.start_server()?;
        garage.set_up()?;
        Ok(garage)
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("garage.toml")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("garage.log")
    }

    /// Runs `garage -c CONFIG ARGS…`; its output, or an error with it.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let out: Output = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .with_context(|| format!("running {}", self.binary.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "garage {}: {}\n{stdout}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(stdout)
    }

    /// Retries a CLI command while the server comes up.
    fn cli_retrying(&self, args: &[&str]) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.cli(args) {
                Ok(out) => return Ok(out),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    fn start_server(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .context("garage.log")?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.config())
            .arg("server")
            .env("RUST_LOG", "garage=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("garage.log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.server = Some(child);
        self.wait_listening()
    }

    /// Until the S3 port takes connections.
    fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.s3_port)).is_err() {
            if let Some(child) = self.server.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                bail!(
                    "garage server exited ({status}): {}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!("garage did not listen on port {} within 30 s", self.s3_port);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// One node holding everything, a key, a bucket.
    fn set_up(&mut self) -> Result<()> {
        let id = self.cli_retrying(&["node", "id", "-q"])?;
        let node = id
            .trim()
            .split('@')
            .next()
            .filter(|n| !n.is_empty())
            .with_context(|| format!("no node id in {id:?}"))?
            .to_owned();
        self.cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])?;
        self.cli(&["layout", "apply", "--version", "1"])?;
        let key = self.cli_retrying(&["key", "create", "claw-test"])?;
        let field = |label: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(label))
                .map(|v| v.trim().to_owned())
                .with_context(|| format!("no {label} in {key}"))
        };
        self.key_id = field("Key ID:")?;
        self.secret_key = field("Secret key:")?;
        self.cli(&["key", "allow", "--create-bucket", "claw-test"])?;
        self.cli(&["bucket", "create", GARAGE_BUCKET])?;
        self.cli(&[
            "bucket",
            "allow",
            "--read",
            "--write",
            "--owner",
            GARAGE_BUCKET,
            "--key",
            "claw-test",
        ])?;
        Ok(())
    }

    /// Stops the server (SIGTERM), keeping its data: an outage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same ports and data.
    pub fn restart(&mut self) {
        if let Err(e) = self.start_server() {
            panic!("cannot start Garage again: {e:#}");
        }
    }

    /// `http://127.0.0.1:PORT`: the S3 API.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The `[artifacts]` table for clawd.toml, the key in it.
    pub fn artifacts_config(&self, bucket: &str) -> String {
        format!(
            "{}access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            self.artifacts_config_without_key(bucket),
            self.key_id,
            self.secret_key
        )
    }

    /// The `[artifacts]` table for clawd.toml, the key to come from
    /// elsewhere (credentials, the environment).
    pub fn artifacts_config_without_key(&self, bucket: &str) -> String {
        format!(
            "[artifacts]\nbackend = \"s3\"\nendpoint = \"{}\"\nbucket = \"{bucket}\"\n\
             region = \"{GARAGE_REGION}\"\n",
            self.endpoint()
        )
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TempGarage {
    fn drop(&mut self) {
        self.stop();
    }
}
