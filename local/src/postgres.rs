//! The local PostgreSQL cluster: created once in the state directory (`.local/postgres`),
//! kept across runs, served on a fixed loopback port with password (scram-sha-256) auth.
//!
//! `initdb` refuses to run as root, so under root the cluster belongs to, and the server runs
//! as, the unprivileged `nobody` user. That user must be able to reach the cluster directory:
//! when the state directory sits below a directory it cannot traverse (a 0700 home, say), the
//! cluster goes to `/tmp/orders-cqrs-local-<hash of the state dir>/postgres` instead, and the
//! runner says so.

use crate::output;
use crate::process::{self, Supervised};
use orders::config::{DbConfig, DbPassword, SslMode};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Where the PostgreSQL server programs are: `PG_BIN`, else `PATH`, else Debian's layout.
pub fn pg_bin(program: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Path::new(&dir).join(program);
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(program))
            .find(|p| p.is_file())
    }) {
        return found;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .last()
        .map(|v| v.join("bin").join(program))
        .unwrap_or_else(|| PathBuf::from(program))
}

/// The uid and gid to run PostgreSQL as: ours, unless we are root (then `nobody`).
pub fn server_identity() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let nobody = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .and_then(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?))
        });
    Some(nobody.unwrap_or((65534, 65534)))
}

/// True when `identity` can traverse every directory down to `dir`.
fn can_reach(dir: &Path, (uid, gid): (u32, u32)) -> bool {
    std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg("test -x \"$0\"")
        .arg(dir)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

use std::os::unix::process::CommandExt as _;

/// FNV-1a: a stable short hash for the fallback directory name.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// The fallback location used when `nobody` cannot reach the state directory.
pub fn fallback_root(state_dir: &Path) -> PathBuf {
    std::env::temp_dir()
        .join(format!(
            "orders-cqrs-local-{:016x}",
            fnv1a(&state_dir.display().to_string())
        ))
        .join("postgres")
}

fn chown(path: &Path, identity: Option<(u32, u32)>) -> Result<(), String> {
    if let Some((uid, gid)) = identity {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

/// What to start.
pub struct ClusterOptions {
    pub state_dir: PathBuf,
    pub port: u16,
    pub user: String,
    pub database: String,
    /// Delete the cluster first.
    pub fresh: bool,
    /// The server's log file.
    pub log: PathBuf,
}

/// A running local cluster.
pub struct LocalPostgres {
    pub port: u16,
    /// The cluster directory (`data/` and `password` inside).
    pub root: PathBuf,
    pub user: String,
    pub database: String,
    pub password: String,
    pub created: bool,
    process: Supervised,
}

/// The pid in `postmaster.pid` when that process is a running postgres.
fn running_postmaster(data: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "postgres").then_some(pid)
}

/// Stops a server left running by a runner that was killed (it would hold the data directory).
async fn stop_leftover(data: &Path) {
    let Some(pid) = running_postmaster(data) else {
        return;
    };
    output::say(format!(
        "stopping a PostgreSQL server left running by an earlier run (pid {pid})"
    ));
    process::signal(pid, libc::SIGINT);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if Path::new(&format!("/proc/{pid}")).exists() {
        process::signal(pid, libc::SIGQUIT);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl LocalPostgres {
    pub async fn start(options: ClusterOptions) -> Result<Self, String> {
        let identity = server_identity();
        let mut root = options.state_dir.join("postgres");
        if let Some(identity) = identity {
            if !can_reach(&options.state_dir, identity) {
                let fallback = fallback_root(&options.state_dir);
                output::say(format!(
                    "note: user nobody (which runs PostgreSQL, as initdb refuses root) cannot \
                     reach {} (a parent directory is not world-searchable); the cluster lives in \
                     {} instead",
                    options.state_dir.display(),
                    fallback.display()
                ));
                root = fallback;
            }
        }
        let data = root.join("data");
        if options.fresh && root.exists() {
            stop_leftover(&data).await;
            std::fs::remove_dir_all(&root)
                .map_err(|e| format!("cannot delete {}: {e}", root.display()))?;
        }
        if let Some(parent) = root.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        if !root.exists() {
            std::fs::create_dir(&root).map_err(|e| format!("{}: {e}", root.display()))?;
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))
                .map_err(|e| format!("{}: {e}", root.display()))?;
            chown(&root, identity)?;
        }
        let password_file = root.join("password");
        let created = !data.join("PG_VERSION").exists();
        let password = if created {
            let password = uuid::Uuid::new_v4().simple().to_string();
            std::fs::write(&password_file, &password)
                .map_err(|e| format!("{}: {e}", password_file.display()))?;
            std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| e.to_string())?;
            chown(&password_file, identity)?;
            if data.exists() {
                // What an interrupted initdb left behind.
                std::fs::remove_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
            }
            initdb(&data, &password_file, &options.user, identity).await?;
            password
        } else {
            std::fs::read_to_string(&password_file)
                .map(|p| p.trim().to_string())
                .map_err(|e| {
                    format!(
                        "the cluster in {} has no password file ({e}); start with --fresh",
                        root.display()
                    )
                })?
        };
        stop_leftover(&data).await;
        if std::net::TcpListener::bind(("127.0.0.1", options.port)).is_err() {
            return Err(format!(
                "port {} is in use; choose another with --pg-port (or LOCAL_PG_PORT), or point \
                 DB_HOST at a running PostgreSQL",
                options.port
            ));
        }

        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.log)
            .map_err(|e| format!("{}: {e}", options.log.display()))?;
        let mut command = tokio::process::Command::new(pg_bin("postgres"));
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &options.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some((uid, gid)) = identity {
            command.uid(uid).gid(gid);
        }
        // SIGINT is PostgreSQL's fast shutdown: clean, and quick.
        process::own(&mut command, libc::SIGINT);
        let child = command.spawn().map_err(|e| {
            format!("cannot start postgres (is PostgreSQL installed? set PG_BIN): {e}")
        })?;
        let server = Self {
            port: options.port,
            root,
            user: options.user,
            database: options.database,
            password,
            created,
            process: Supervised::new(child),
        };
        if let Err(e) = server.wait_ready(&options.log).await {
            server.stop().await;
            return Err(e);
        }
        server.ensure_database().await?;
        Ok(server)
    }

    fn connect_config(&self, database: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(&self.user)
            .password(&self.password)
            .dbname(database)
            .connect_timeout(Duration::from_secs(2));
        config
    }

    async fn wait_ready(&self, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            match self
                .connect_config("postgres")
                .connect(tokio_postgres::NoTls)
                .await
            {
                Ok((_client, connection)) => {
                    drop(connection);
                    return Ok(());
                }
                Err(error) => {
                    let exited = self.process.exit_status();
                    if exited.is_some() || Instant::now() > deadline {
                        let tail = std::fs::read_to_string(log)
                            .unwrap_or_default()
                            .lines()
                            .rev()
                            .take(15)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect::<Vec<_>>()
                            .join("\n");
                        return Err(format!(
                            "PostgreSQL did not start ({}; last error: {error}); {}:\n{tail}",
                            exited.unwrap_or_else(|| "timed out".into()),
                            log.display()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn ensure_database(&self) -> Result<(), String> {
        let (client, connection) = self
            .connect_config("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| e.to_string())?;
        let task = tokio::spawn(connection);
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&self.database],
            )
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if !exists {
            let quoted = format!("\"{}\"", self.database.replace('"', "\"\""));
            client
                .batch_execute(&format!("CREATE DATABASE {quoted}"))
                .await
                .map_err(|e| format!("CREATE DATABASE {quoted}: {e}"))?;
        }
        drop(client);
        let _ = task.await;
        Ok(())
    }

    /// Settings for the runner's own pool.
    pub fn db_config(&self) -> DbConfig {
        DbConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            dbname: self.database.clone(),
            user: self.user.clone(),
            password: DbPassword::Plain(self.password.clone()),
            sslmode: SslMode::Disable,
            ca_file: None,
            pool_size: 2,
            connect_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(30),
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    /// `None` while running; how it exited otherwise.
    pub fn exit_watch(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.process.exit_watch()
    }

    /// Fast shutdown (SIGINT): disconnects clients, checkpoints, exits.
    pub async fn stop(&self) -> String {
        self.process
            .stop(libc::SIGINT, Duration::from_secs(30))
            .await
    }
}

async fn initdb(
    data: &Path,
    password_file: &Path,
    user: &str,
    identity: Option<(u32, u32)>,
) -> Result<(), String> {
    let mut command = tokio::process::Command::new(pg_bin("initdb"));
    command
        .args(["--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"])
        .args(["--auth=scram-sha-256", "-U", user])
        .arg(format!("--pwfile={}", password_file.display()))
        .arg("-D")
        .arg(data)
        .stdin(Stdio::null());
    if let Some((uid, gid)) = identity {
        command.uid(uid).gid(gid);
    }
    let out = command
        .output()
        .await
        .map_err(|e| format!("cannot run initdb (is PostgreSQL installed? set PG_BIN): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_is_stable_and_distinct() {
        let a = fallback_root(Path::new("/home/dev/orders/.local"));
        assert_eq!(a, fallback_root(Path::new("/home/dev/orders/.local")));
        assert_ne!(a, fallback_root(Path::new("/home/other/orders/.local")));
        assert!(a.starts_with(std::env::temp_dir()));
        assert!(a.ends_with("postgres"));
    }
}
