//! `orders-local`: see `orders-local --help` and docs/LOCAL.md. Started by `scripts/run-local`.

use orders_local::cli::{self, Parsed};
use std::path::PathBuf;

/// The repository this binary was built from (where template.yaml, .venv and target/ are).
fn repository_root() -> PathBuf {
    std::env::var_os("LOCAL_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

fn main() -> std::process::ExitCode {
    let parsed = cli::parse(
        std::env::args().skip(1),
        |name| std::env::var(name).ok(),
        repository_root(),
    );
    let options = match parsed {
        Ok(Parsed::Run(options)) => options,
        Ok(Parsed::Help) => {
            print!("{}", cli::HELP);
            return std::process::ExitCode::SUCCESS;
        }
        Ok(Parsed::MintHelp) => {
            print!("{}", cli::MINT_HELP);
            return std::process::ExitCode::SUCCESS;
        }
        Ok(Parsed::MintToken(mint)) => {
            return match orders_local::auth::mint(&mint.state_dir, &mint.subject, mint.ttl_secs) {
                Ok(token) => {
                    println!("{token}");
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("orders-local mint-token: {e}");
                    std::process::ExitCode::FAILURE
                }
            };
        }
        Err(e) => {
            eprintln!("orders-local: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("orders-local: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(orders_local::runner::run(*options)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(orders_local::runner::Failed) => std::process::ExitCode::FAILURE,
    }
}
