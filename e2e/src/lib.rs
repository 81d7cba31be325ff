//! Real stand-ins for the tests: a throwaway PostgreSQL cluster and moto (started as the local
//! runner starts it), each on a free loopback port, stopped when dropped; and the AWS resources
//! the system needs, created from `template.yaml` by the runner's provisioning.

pub mod aws;
pub mod event_contract;
pub mod fault_proxy;
pub mod logs;
pub mod postgres;
mod process;
pub mod sns_limits;
pub mod system;

use std::path::PathBuf;

/// The workspace root (where `template.yaml`, `events/` and `.venv` live).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A free TCP port on 127.0.0.1 (free when asked; bind soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free loopback port")
}
