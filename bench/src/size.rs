//! Binary sizes as deployed: the release binary (stripped by the profile) and its zip as
//! Lambda receives it (`bootstrap` at the root, deflated by the `zip` command), with what
//! explains the size: the SDK and TLS crates in each function's dependency tree
//! (`cargo tree -p <package>`), and whether their code is in the binary (their source paths
//! appear in panic locations, which survive stripping).

use crate::error::{BenchError, Result};
use std::path::Path;

/// One binary.
#[derive(Debug, Clone)]
pub struct BinarySize {
    pub name: String,
    pub bytes: u64,
    pub zipped: u64,
    /// SDK, database and TLS crates in the package's normal dependency tree.
    pub tree: Vec<String>,
    /// Of the markers below, those whose source paths are in the binary.
    pub linked: Vec<&'static str>,
}

/// Crates worth naming: the SDKs, the database client, the TLS stacks, the HTTP stacks.
pub const MARKERS: &[(&str, &str)] = &[
    ("aws-sdk-dynamodb", "/aws-sdk-dynamodb-"),
    ("aws-sdk-s3", "/aws-sdk-s3-"),
    ("aws-sdk-sns", "/aws-sdk-sns-"),
    ("aws-sdk-sqs", "/aws-sdk-sqs-"),
    ("aws-sdk-secretsmanager", "/aws-sdk-secretsmanager-"),
    ("aws-sdk-sts", "/aws-sdk-sts-"),
    ("aws-sdk-sso", "/aws-sdk-sso-"),
    ("tokio-postgres", "/tokio-postgres-"),
    ("rustls 0.23", "/rustls-0.23"),
    ("rustls 0.21 (legacy)", "/rustls-0.21"),
    ("ring", "/ring-0.17"),
    ("aws-lc-rs", "/aws-lc-rs-"),
    ("hyper 1", "/hyper-1."),
    ("hyper 0.14 (legacy)", "/hyper-0.14"),
    ("lambda_http", "/lambda_http-"),
];

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Which markers occur in `binary`.
pub fn linked_markers(binary: &[u8]) -> Vec<&'static str> {
    MARKERS
        .iter()
        .filter(|(_, path)| contains(binary, path.as_bytes()))
        .map(|(name, _)| *name)
        .collect()
}

/// The zip Lambda gets: the binary as `bootstrap`, deflated with `zip`'s default level.
fn zipped_size(binary: &Path, workdir: &Path) -> Result<u64> {
    let dir = workdir.join("zip");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(binary, dir.join("bootstrap"))?;
    let status = std::process::Command::new("zip")
        .args(["-q", "-X", "function.zip", "bootstrap"])
        .current_dir(&dir)
        .status()
        .map_err(|e| BenchError::msg(format!("cannot run zip: {e}")))?;
    if !status.success() {
        return Err(BenchError::msg("zip failed"));
    }
    let size = std::fs::metadata(dir.join("function.zip"))?.len();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(size)
}

/// The interesting crates in `package`'s normal dependency tree.
fn tree(root: &Path, package: &str) -> Vec<String> {
    let output = std::process::Command::new("cargo")
        .args(["tree", "--locked", "--offline", "-p", package])
        .args(["-e", "normal", "--prefix", "none", "--format", "{p}"])
        .current_dir(root)
        .output();
    let Ok(output) = output else {
        return Vec::new();
    };
    let mut found: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?;
            let version = parts.next()?.trim_start_matches('v');
            let interesting = name.starts_with("aws-sdk-")
                || matches!(
                    name,
                    "tokio-postgres" | "rustls" | "ring" | "aws-lc-rs" | "hyper" | "lambda_http"
                );
            interesting.then(|| format!("{name} {version}"))
        })
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Measures `(name, package)` binaries in `bin_dir`.
pub fn measure(
    root: &Path,
    bin_dir: &Path,
    workdir: &Path,
    binaries: &[(&str, &str)],
) -> Result<Vec<BinarySize>> {
    let mut sizes = Vec::new();
    for (name, package) in binaries {
        let path = bin_dir.join(name);
        let bytes = std::fs::read(&path)
            .map_err(|e| BenchError::msg(format!("{}: {e}", path.display())))?;
        sizes.push(BinarySize {
            name: name.to_string(),
            bytes: bytes.len() as u64,
            zipped: zipped_size(&path, workdir)?,
            tree: tree(root, package),
            linked: linked_markers(&bytes),
        });
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_source_paths_of_linked_crates() {
        let binary = b"src/index.crates.io-1/aws-sdk-s3-1.2.3/src/lib.rs\0/rustls-0.23.1/x";
        let linked = super::linked_markers(binary);
        assert_eq!(linked, vec!["aws-sdk-s3", "rustls 0.23"]);
        assert!(super::linked_markers(b"aws-sdk-s3-1.0").is_empty());
    }
}
