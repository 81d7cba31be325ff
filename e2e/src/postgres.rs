//! A throwaway PostgreSQL cluster. `initdb` refuses to run as root, so under root the cluster
//! belongs to, and the server runs as, the unprivileged `nobody` user.

use crate::process::Guarded;
use orders::config::{DbConfig, DbPassword, SslMode};
pub use orders_local::postgres::{pg_bin, server_identity};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const USER: &str = "orders";
pub const PASSWORD: &str = "orders-test-password";
pub const DATABASE: &str = "orders";

/// A running cluster with a database `orders` owned by user `orders` (password auth).
pub struct TestPostgres {
    pub port: u16,
    dir: PathBuf,
    server: Option<Guarded>,
}

fn as_server_user(command: &mut Command, identity: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = identity {
        command.uid(uid).gid(gid);
    }
    command
}

fn chown(path: &Path, identity: Option<(u32, u32)>) {
    if let Some((uid, gid)) = identity {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown test cluster dir");
    }
}

impl TestPostgres {
    /// initdb + start on a free port; waits until it accepts connections.
    pub fn start() -> Self {
        let identity = server_identity();
        let dir = std::env::temp_dir().join(format!(
            "orders-cqrs-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("create cluster dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        chown(&dir, identity);
        let data = dir.join("data");
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, PASSWORD).expect("write pwfile");
        chown(&pwfile, identity);

        let out = as_server_user(&mut Command::new(pg_bin("initdb")), identity)
            .args(["--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C"])
            .args(["--auth=scram-sha-256", "-U", USER])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(&data)
            .output()
            .expect("run initdb (is PostgreSQL installed? set PG_BIN)");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let port = crate::free_port();
        let mut pg = Self {
            port,
            dir,
            server: None,
        };
        pg.start_server(identity);
        pg.wait_ready();
        pg.psql("postgres", &format!("CREATE DATABASE {DATABASE}"));
        pg
    }

    fn start_server(&mut self, identity: Option<(u32, u32)>) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("server log");
        chown(&self.dir.join("server.log"), identity);
        let child = as_server_user(&mut Command::new(pg_bin("postgres")), identity)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1"])
            .args(["-c", "unix_socket_directories=", "-c", "fsync=off"])
            .args(["-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.server = Some(Guarded {
            child,
            stop_signal: libc::SIGQUIT,
        });
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = Command::new(pg_bin("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs SQL through psql and returns its unaligned output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .env("PGPASSWORD", PASSWORD)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
            .args(["-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Stops the server at once (as a crash would), keeping its data.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Starts the server again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.start_server(server_identity());
        self.wait_ready();
    }

    /// Connection settings for the `orders` database.
    pub fn db_config(&self) -> DbConfig {
        DbConfig {
            host: "127.0.0.1".into(),
            port: self.port,
            dbname: DATABASE.into(),
            user: USER.into(),
            password: DbPassword::Plain(PASSWORD.into()),
            sslmode: SslMode::Disable,
            ca_file: None,
            pool_size: 4,
            connect_timeout: Duration::from_secs(2),
            statement_timeout: Duration::from_secs(5),
        }
    }

    /// The same settings as environment variables, for a function run as a process.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("DB_HOST", "127.0.0.1".to_string()),
            ("DB_PORT", self.port.to_string()),
            ("DB_NAME", DATABASE.into()),
            ("DB_USER", USER.into()),
            ("DB_PASSWORD", PASSWORD.into()),
            ("DB_SSLMODE", "disable".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
