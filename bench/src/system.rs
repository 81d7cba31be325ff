//! The system under test: the real local runner (`orders-local`, as `scripts/run-local`
//! starts it) on free ports with a throwaway state directory, and what the benchmarks add
//! beside it: TLS on its PostgreSQL and a TLS front for its moto server, so that cold starts
//! pay for the handshakes and the one-time crypto initialisation that a deployed function pays.

use crate::error::{BenchError, Result};
use crate::tls::{TlsFiles, TlsProxy};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (free when asked; bound soon after).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A running `orders-local` with PostgreSQL and moto, plus the TLS additions.
pub struct System {
    pub root: PathBuf,
    pub bin_dir: PathBuf,
    pub workdir: PathBuf,
    pub api_port: u16,
    pub pg_port: u16,
    pub moto_port: u16,
    /// The variables the runner gives its functions (its `cargo-lambda.env`).
    pub function_env: HashMap<String, String>,
    /// The password of the PostgreSQL user `orders`.
    pub pg_password: String,
    pub tls: TlsFiles,
    /// HTTPS in front of moto.
    pub tls_proxy: TlsProxy,
    runner: Option<tokio::process::Child>,
}

impl System {
    /// Starts the runner from `bin_dir` (which holds the function binaries too) and waits
    /// until it serves.
    pub async fn start(root: &Path, bin_dir: &Path) -> Result<Self> {
        Self::start_with(root, bin_dir, None).await
    }

    /// As [`System::start`], from another template (`--template`) when given.
    pub async fn start_with(root: &Path, bin_dir: &Path, template: Option<&Path>) -> Result<Self> {
        let workdir = std::env::temp_dir().join(format!("orders-bench-{}", std::process::id()));
        if workdir.exists() {
            std::fs::remove_dir_all(&workdir)?;
        }
        std::fs::create_dir_all(&workdir)?;
        // PostgreSQL runs as `nobody` under root: it must reach the state and TLS directories.
        std::fs::set_permissions(&workdir, std::fs::Permissions::from_mode(0o755))?;
        let state_dir = workdir.join("state");
        let (api_port, pg_port, moto_port) = (free_port()?, free_port()?, free_port()?);
        let program = bin_dir.join("orders-local");
        if !program.exists() {
            return Err(BenchError::msg(format!(
                "{} not found: build it with cargo build --release -p orders-local",
                program.display()
            )));
        }
        let log = std::fs::File::create(workdir.join("runner.log"))?;
        let mut command = tokio::process::Command::new(&program);
        if let Some(template) = template {
            command.args(["--template", &template.display().to_string()]);
        }
        let child = command
            .args(["--bin-dir", &bin_dir.display().to_string()])
            .args(["--port", &api_port.to_string()])
            .args(["--pg-port", &pg_port.to_string()])
            .args(["--moto-port", &moto_port.to_string()])
            .args(["--state-dir", &state_dir.display().to_string()])
            .arg("--fresh")
            .env("LOCAL_ROOT", root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| BenchError::msg(format!("cannot start {}: {e}", program.display())))?;
        let mut system = Self {
            root: root.to_path_buf(),
            bin_dir: bin_dir.to_path_buf(),
            workdir: workdir.clone(),
            api_port,
            pg_port,
            moto_port,
            function_env: HashMap::new(),
            pg_password: String::new(),
            tls: TlsFiles::default(),
            tls_proxy: TlsProxy::default(),
            runner: Some(child),
        };
        system.wait_ready(Duration::from_secs(180)).await?;
        system.function_env = read_env_file(&state_dir.join("cargo-lambda.env"))?;
        let password_file = [
            state_dir.join("postgres/password"),
            orders_local::postgres::fallback_root(&state_dir).join("password"),
        ]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| BenchError::msg("the runner's PostgreSQL password file is missing"))?;
        system.pg_password = std::fs::read_to_string(&password_file)?.trim().to_string();
        system.tls = crate::tls::generate(&workdir.join("tls")).await?;
        system.enable_postgres_tls().await?;
        system.tls_proxy = crate::tls::TlsProxy::start(&system.tls, moto_port).await?;
        Ok(system)
    }

    /// A staff token the runner accepts (minted with its development key), valid for 4 hours.
    pub fn staff_token(&self) -> Result<String> {
        let state_dir = self.workdir.join("state");
        orders_local::auth::mint(&state_dir, &orders_local::auth::Subject::Staff, 4 * 3600)
            .map_err(BenchError::msg)
    }

    /// The runner's log file.
    pub fn log_path(&self) -> PathBuf {
        self.workdir.join("runner.log")
    }

    /// The runner's log (for error messages).
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.workdir.join("runner.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let client = crate::http::Api::new(self.api_port);
        loop {
            if let Some(child) = self.runner.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(BenchError::msg(format!(
                        "orders-local exited ({status}):\n{}",
                        self.log_tail()
                    )));
                }
            }
            if let Ok(response) = client.get("/health").await {
                if response.status == 200 {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(BenchError::msg(format!(
                    "orders-local did not become ready within {}s:\n{}",
                    limit.as_secs(),
                    self.log_tail()
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The runner's own functions connect without TLS; this turns TLS on beside that (for the
    /// cold-start functions, which connect with `verify-full` and `DB_AUTH=iam`), as a reload,
    /// no restart. A local PostgreSQL cannot check IAM tokens as RDS Proxy does, so it trusts
    /// the `orders` user over TLS from loopback; the functions still sign and send their token.
    async fn enable_postgres_tls(&self) -> Result<()> {
        let data_dir = self.pg_data_dir()?;
        let data_owner =
            std::fs::metadata(&data_dir).map(|m| std::os::unix::fs::MetadataExt::uid(&m))?;
        let hba = data_dir.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba)?;
        let trust_tls = "hostssl orders orders 127.0.0.1/32 trust";
        if !rules.contains(trust_tls) {
            std::fs::write(&hba, format!("{trust_tls}\n{rules}"))?;
        }
        // PostgreSQL refuses a key readable by others or owned by someone else.
        std::os::unix::fs::chown(&self.tls.server_key, Some(data_owner), None)?;
        std::fs::set_permissions(&self.tls.server_key, std::fs::Permissions::from_mode(0o600))?;
        let client = self.pg_client().await?;
        for statement in [
            format!(
                "ALTER SYSTEM SET ssl_cert_file = '{}'",
                self.tls.server_cert.display()
            ),
            format!(
                "ALTER SYSTEM SET ssl_key_file = '{}'",
                self.tls.server_key.display()
            ),
            "ALTER SYSTEM SET ssl = on".to_string(),
            "SELECT pg_reload_conf()".to_string(),
        ] {
            client.simple_query(&statement).await?;
        }
        // The reload is asynchronous: wait until the server says TLS is on.
        for _ in 0..50 {
            let rows = client.query("SHOW ssl", &[]).await?;
            if rows.first().map(|r| r.get::<_, String>(0)).as_deref() == Some("on") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BenchError::msg("PostgreSQL did not turn TLS on"))
    }

    fn pg_data_dir(&self) -> Result<PathBuf> {
        let state_dir = self.workdir.join("state");
        [
            state_dir.join("postgres/data"),
            orders_local::postgres::fallback_root(&state_dir).join("data"),
        ]
        .into_iter()
        .find(|p| p.exists())
        .ok_or_else(|| BenchError::msg("the runner's PostgreSQL data directory is missing"))
    }

    /// A plain-TCP connection to the `orders` database, as the runner's functions connect.
    pub async fn pg_client(&self) -> Result<tokio_postgres::Client> {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.pg_port)
            .dbname("orders")
            .user("orders")
            .password(&self.pg_password)
            .application_name("orders-bench");
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// moto's plain-HTTP endpoint (what the runner's functions use).
    pub fn moto_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.moto_port)
    }

    /// SDK configuration for the raw baselines: moto over plain HTTP with the runner's
    /// credentials, as the runner's functions are configured.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        let key = self.var("AWS_ACCESS_KEY_ID").unwrap_or("test").to_string();
        let secret = self
            .var("AWS_SECRET_ACCESS_KEY")
            .unwrap_or("test")
            .to_string();
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.moto_endpoint())
            .region(aws_config::Region::new(self.region()))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                key, secret, None, None, "bench",
            ))
            .load()
            .await
    }

    pub fn region(&self) -> String {
        self.var("AWS_REGION").unwrap_or("us-east-1").to_string()
    }

    /// One of the runner's function variables.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.function_env.get(name).map(String::as_str)
    }

    /// A required function variable.
    pub fn required(&self, name: &str) -> Result<String> {
        self.var(name)
            .map(str::to_string)
            .ok_or_else(|| BenchError::msg(format!("the runner sets no {name}")))
    }

    /// Stops the runner (SIGTERM: it stops its functions, moto and PostgreSQL).
    pub async fn stop(&mut self) {
        self.tls_proxy.stop();
        if let Some(mut child) = self.runner.take() {
            if let Some(pid) = child.id() {
                // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(Duration::from_secs(30), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}

impl Drop for System {
    fn drop(&mut self) {
        if let Some(child) = self.runner.as_ref().and_then(|c| c.id()) {
            // SAFETY: as in `stop`; the runner stops its own children on SIGTERM.
            unsafe {
                libc::kill(child as i32, libc::SIGTERM);
            }
        }
    }
}

/// Reads `KEY=VALUE` lines.
pub fn read_env_file(path: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| BenchError::msg(format!("{}: {e}", path.display())))?;
    Ok(parse_env(&text))
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn env_files_are_key_value_lines() {
        let env = super::parse_env("A=1\n# no\nB=x=y\n\nC=\n");
        assert_eq!(env.len(), 3);
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "x=y");
        assert_eq!(env["C"], "");
    }
}
