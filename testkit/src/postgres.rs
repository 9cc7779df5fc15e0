//! A temporary PostgreSQL cluster for tests: `initdb` and `pg_ctl` of the
//! installed server (Debian's `postgresql` package) on a free port and a
//! private socket directory under a temporary directory, stopped and
//! removed on drop. No mocks: the store's PostgreSQL tests talk to it.
//!
//! `initdb` refuses to run as root, and the tests run as root here and in
//! CI, so a root caller runs the server's binaries as `nobody` (setpriv),
//! with the temporary directory given to that user. Another caller runs
//! them as itself.
//!
//! The superuser is `claw` with a random password: connections over TCP
//! use SCRAM (as a real installation would), those over the socket are
//! trusted. `fsync` is off: a test cluster is thrown away, never recovered.
//! A benchmark starts one with [`TempCluster::builder`]`().durable()`
//! instead: commits reach the disk as on a real server.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// The cluster's superuser.
pub const PG_USER: &str = "claw";

/// The database [`TempCluster::start`] creates.
pub const PG_DATABASE: &str = "claw";

pub struct TempCluster {
    /// Removed on drop, after the server stopped.
    dir: Option<tempfile::TempDir>,
    bindir: PathBuf,
    port: u16,
    password: String,
    /// Who runs the binaries: `nobody` when the caller is root.
    unprivileged: bool,
    durable: bool,
}

/// How to start a [`TempCluster`]: `TempCluster::builder().durable().try_start()`.
#[derive(Debug, Clone, Default)]
pub struct ClusterBuilder {
    durable: bool,
}

impl ClusterBuilder {
    /// The server's own durability settings (`fsync`, `synchronous_commit`
    /// and `full_page_writes` on) and its default `shared_buffers`
    /// (128MB), for measurements: a commit waits for its log to be on
    /// disk. The tests' default turns all three off.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// Starts the cluster with the database [`PG_DATABASE`].
    pub fn try_start(self) -> Result<TempCluster> {
        TempCluster::start_with(self)
    }
}

impl TempCluster {
    /// Starts a cluster with the database [`PG_DATABASE`]; panics with what
    /// failed (and which package to install when there is no server).
    pub fn start() -> Self {
        match Self::try_start() {
            Ok(cluster) => cluster,
            Err(e) => panic!("cannot start a temporary PostgreSQL cluster: {e:#}"),
        }
    }

    pub fn try_start() -> Result<Self> {
        Self::builder().try_start()
    }

    /// Options for the cluster (the tests' defaults unless changed).
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    fn start_with(options: ClusterBuilder) -> Result<Self> {
        let bindir = server_bindir()?;
        let unprivileged = nix::unistd::geteuid().is_root();
        let dir = tempfile::Builder::new()
            .prefix("claw-pg-")
            .tempdir()
            .context("temporary directory")?;
        let mut password = [0u8; 16];
        getrandom::fill(&mut password).context("random password")?;
        let mut cluster = Self {
            dir: Some(dir),
            bindir,
            port: 0,
            password: hex::encode(password),
            unprivileged,
            durable: options.durable,
        };
        cluster.init()?;
        // The free port may be taken by someone else before the server
        // binds it: try another.
        let mut last = None;
        for _ in 0..5 {
            cluster.port = crate::free_port();
            match cluster.start_server() {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(e) = last {
            return Err(e);
        }
        cluster.create_database(PG_DATABASE)?;
        Ok(cluster)
    }

    fn root(&self) -> &Path {
        self.dir.as_ref().expect("cluster directory").path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.root().join("socket")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// The URL of [`PG_DATABASE`] over TCP, with the password.
    pub fn url(&self) -> String {
        self.url_of(PG_DATABASE)
    }

    /// The URL of another database of this cluster, with the password.
    pub fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{PG_USER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The URL of [`PG_DATABASE`] without a password (which then comes
    /// from elsewhere, such as a credential).
    pub fn url_without_password(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{PG_DATABASE}", self.port)
    }

    /// A fresh empty database; returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        let port = self.port.to_string();
        let socket = self.socket_dir();
        let socket = socket.to_str().context("socket directory")?;
        self.run(
            "createdb",
            &["-h", socket, "-p", &port, "-U", PG_USER, name],
        )?;
        Ok(self.url_of(name))
    }

    /// Runs SQL with `psql` over the socket; its output, unaligned
    /// without headers (`SELECT 1, 2` gives `1|2`).
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let port = self.port.to_string();
        let socket = self.socket_dir();
        let socket = socket.to_str().context("socket directory")?;
        let out = self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                socket,
                "-p",
                &port,
                "-U",
                PG_USER,
                "-d",
                database,
                "-c",
                sql,
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    }

    /// The postmaster's process id, from its pid file.
    pub fn server_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.data_dir().join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// CPU seconds (user + system) the server has used so far: the
    /// postmaster and every process it runs now (backends, writers), for
    /// a benchmark's CPU figures. Backends that have exited are counted
    /// only once reaped, so it is meant for the span of steady connections.
    pub fn server_cpu_secs(&self) -> Option<f64> {
        let postmaster = self.server_pid()?;
        let mut total = crate::process_cpu_secs(&postmaster.to_string())?;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // The parent is the second field after the command's parentheses.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if parent == Some(postmaster) {
                total += crate::process_cpu_secs(pid).unwrap_or(0.0);
            }
        }
        Some(total)
    }

    fn init(&self) -> Result<()> {
        let root = self.root();
        let socket = self.socket_dir();
        std::fs::create_dir(&socket).context("socket directory")?;
        let pwfile = root.join("pwfile");
        std::fs::write(&pwfile, format!("{}\n", self.password)).context("password file")?;
        if self.unprivileged {
            let nobody = nix::unistd::User::from_name("nobody")
                .context("look up the user nobody")?
                .context("there is no user nobody to run PostgreSQL as")?;
            for path in [root, socket.as_path(), pwfile.as_path()] {
                nix::unistd::chown(path, Some(nobody.uid), Some(nobody.gid))
                    .with_context(|| format!("give {} to nobody", path.display()))?;
            }
        }
        let data = self.data_dir();
        self.run(
            "initdb",
            &[
                "-D",
                data.to_str().context("data directory")?,
                "-U",
                PG_USER,
                "--pwfile",
                pwfile.to_str().context("password file")?,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        std::fs::remove_file(&pwfile).ok();
        let durability = if self.durable {
            "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\nshared_buffers = 128MB\n"
        } else {
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 32MB\n"
        };
        // Appended to the file initdb wrote: its owner stays the server's.
        let settings = format!(
            "\n# claw-testkit\nlisten_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n{durability}max_connections = 100\n",
            socket.display()
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).context("read postgresql.conf")?;
        text.push_str(&settings);
        std::fs::write(&conf, text).context("write postgresql.conf")?;
        Ok(())
    }

    /// Starts the server (again, after [`stop_server`](Self::stop_server)).
    pub fn start_server(&self) -> Result<()> {
        let data = self.data_dir();
        let log = self.root().join("server.log");
        let port = format!("-p {}", self.port);
        let started = self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                data.to_str().context("data directory")?,
                "-l",
                log.to_str().context("log file")?,
                "-o",
                &port,
            ],
        );
        if let Err(e) = started {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("{e:#}\nserver log:\n{tail}");
        }
        Ok(())
    }

    /// Stops the server (fast: connections are cut), keeping its data.
    pub fn stop_server(&self) -> Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-w",
                "-t",
                "60",
                "-m",
                "fast",
                "-D",
                data.to_str().context("data directory")?,
            ],
        )?;
        Ok(())
    }

    /// Runs one of the server's binaries, as `nobody` for a root caller.
    fn run(&self, program: &str, args: &[&str]) -> Result<Output> {
        let binary = self.bindir.join(program);
        let mut command = if self.unprivileged {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
                .arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        command
            .args(args)
            .current_dir(self.root())
            .env_remove("PGDATA")
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null());
        let out = command
            .output()
            .with_context(|| format!("run {}", binary.display()))?;
        if !out.status.success() {
            bail!(
                "{program} {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(out)
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        if self.port != 0
            && self.data_dir().join("postmaster.pid").exists()
            && let Err(e) = self.stop_server()
        {
            eprintln!("temporary PostgreSQL cluster: {e:#}");
            // Leave no server behind, whatever pg_ctl said.
            if let Some(pid) = self.server_pid() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGQUIT,
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            eprintln!("temporary PostgreSQL cluster: cannot remove it: {e}");
        }
    }
}

/// Where the server's binaries are: `pg_config --bindir` when it has
/// `initdb` (Debian's pg_config may come from libpq-dev without a server),
/// else the newest `/usr/lib/postgresql/*/bin`.
pub fn server_bindir() -> Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    match found.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "no PostgreSQL server found (initdb and pg_ctl, via pg_config --bindir or in \
             /usr/lib/postgresql/*/bin): install Debian's `postgresql` package \
             (apt-get install postgresql)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_starts_answers_and_is_gone_after() {
        let cluster = TempCluster::start();
        assert_eq!(
            cluster.psql(PG_DATABASE, "SELECT 1 + 1").expect("query"),
            "2"
        );
        assert_eq!(
            cluster.psql(PG_DATABASE, "SHOW fsync").expect("query"),
            "off"
        );
        let other = cluster.create_database("second").expect("createdb");
        assert!(other.ends_with("/second"), "{other}");
        assert_eq!(
            cluster
                .psql("second", "SELECT current_database()")
                .expect("query"),
            "second"
        );
        let root = cluster.root().to_owned();
        let pid = cluster.server_pid().expect("server pid");
        assert!(alive(pid));
        drop(cluster);
        assert!(!root.exists(), "{} is left behind", root.display());
        assert!(!alive(pid), "the server {pid} still runs");
    }

    #[test]
    fn a_durable_cluster_flushes_its_commits() {
        let cluster = TempCluster::builder()
            .durable()
            .try_start()
            .expect("a durable cluster");
        let shown = cluster
            .psql(
                PG_DATABASE,
                "SELECT current_setting('fsync') || ' ' || current_setting('synchronous_commit') \
                 || ' ' || current_setting('full_page_writes')",
            )
            .expect("query");
        assert_eq!(shown, "on on on");
        // The server has worked: its processes count some CPU time.
        assert!(cluster.server_cpu_secs().is_some_and(|s| s >= 0.0));
    }

    /// Runs, and is not a zombie left for a parent that does not reap.
    fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }
}
