//! The moto server standing in for DynamoDB, S3, SNS, SQS, Secrets Manager, IAM and STS. Its state is in
//! memory: it starts empty on every run (the runner re-creates the resources and re-projects
//! the read model from PostgreSQL). Clients reach it through [`LimitsProxy`], which refuses what
//! AWS would refuse: moto listens on a private port, the proxy on the public one.

use crate::aws_limits::LimitsProxy;
use crate::process::{self, Supervised};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Where moto lives: `MOTO_SERVER`, else the project's venv.
pub fn program(root: &Path) -> PathBuf {
    std::env::var_os("MOTO_SERVER")
        .map(Into::into)
        .unwrap_or_else(|| root.join(".venv/bin/moto_server"))
}

/// Starts moto's server with its access control made to accept what AWS accepts: see the
/// file's docstring.
const LAUNCHER: &str = include_str!("moto_launcher.py");

pub struct LocalMoto {
    /// The public port: the limits proxy's.
    pub port: u16,
    process: Supervised,
    _limits: LimitsProxy,
}

impl LocalMoto {
    pub async fn start(root: &Path, port: u16, log: &Path) -> Result<Self, String> {
        let program = program(root);
        if !program.exists() {
            return Err(format!(
                "{} not found: run scripts/bootstrap (scripts/run-local does)",
                program.display()
            ));
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            return Err(format!(
                "port {port} is in use; choose another with --moto-port (or LOCAL_MOTO_PORT), \
                 or point AWS_ENDPOINT_URL at a running moto"
            ));
        }
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let moto_port = std::net::TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for moto: {e}"))?
            .port();
        let mut command = match std::env::var_os("MOTO_SERVER") {
            Some(_) => tokio::process::Command::new(&program),
            None => {
                let mut command = tokio::process::Command::new(root.join(".venv/bin/python"));
                command.args(["-c", LAUNCHER]);
                command
            }
        };
        command
            .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            // AWS managed policies (AWSLambdaBasicExecutionRole, ...) exist, so that roles can
            // attach them by ARN as the template does (see crate::iam).
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        process::own(&mut command, libc::SIGKILL);
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let process = Supervised::new(child);
        let limits = match LimitsProxy::start(port, format!("http://127.0.0.1:{moto_port}"), true) {
            Ok(limits) => limits,
            Err(e) => {
                process.stop(libc::SIGKILL, Duration::ZERO).await;
                return Err(format!("port {port}: {e}"));
            }
        };
        let moto = Self {
            port,
            process,
            _limits: limits,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", moto_port))
                .await
                .is_ok()
            {
                return Ok(moto);
            }
            if let Some(status) = moto.process.exit_status() {
                return Err(format!(
                    "moto_server exited ({status}); see {}",
                    log.display()
                ));
            }
            if Instant::now() > deadline {
                moto.stop().await;
                return Err(format!("moto_server did not start; see {}", log.display()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.process.pid
    }

    pub fn exit_watch(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.process.exit_watch()
    }

    pub async fn stop(&self) -> String {
        self.process
            .stop(libc::SIGTERM, Duration::from_secs(5))
            .await
    }
}
