//! The system's root certificates, read once per process, and the one TLS configuration built
//! from them.
//!
//! They are looked for where the SDK's own client looks (through `rustls-native-certs`):
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` when either is set, else the bundle and directories
//! `openssl-probe` finds (on Lambda's provided.al2023, `/etc/pki/tls/certs/ca-bundle.crt`).
//! Each file is read once, however many links lead to it. What differs is the decoding: root
//! certificates are public, so their PEM is decoded with a SIMD base64 decoder (`base64-simd`,
//! which the SDK already links) rather than `rustls-pki-types`' constant-time one, which spends
//! about 26 instructions per byte of a 220 KB bundle and was most of the query function's init
//! (BENCHMARKS.md, issue #19).

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The TLS client configuration every HTTPS connection of the process uses: the system's roots,
/// rustls' safe defaults (TLS 1.2 and 1.3) with aws-lc. Built on first use; `None` if it cannot
/// be (no usable root at all), and the caller falls back to the SDK's own client.
pub(crate) fn tls_config() -> Option<Arc<ClientConfig>> {
    static CONFIG: OnceLock<Option<Arc<ClientConfig>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let (file, dirs) = locations();
            let found = read(file.as_deref(), &dirs);
            for problem in &found.problems {
                tracing::warn!(problem = %problem, "reading the system's root certificates");
            }
            client_config(&found.certs)
        })
        .clone()
}

/// A client configuration trusting `certs` (those rustls can use), or `None` if none can be.
pub(crate) fn client_config(certs: &[CertificateDer<'static>]) -> Option<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    let (valid, invalid) = roots.add_parsable_certificates(certs.iter().cloned());
    if invalid > 0 {
        tracing::debug!(
            valid,
            invalid,
            "root certificates rustls cannot use were left out"
        );
    }
    if valid == 0 {
        tracing::warn!("no usable root certificate found: using the SDK's own HTTPS client");
        return None;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(Arc::new(config))
}

/// Where to look: `SSL_CERT_FILE` / `SSL_CERT_DIR` if either is set, else what `openssl-probe`
/// finds on this system.
fn locations() -> (Option<PathBuf>, Vec<PathBuf>) {
    let file = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    let dirs: Vec<PathBuf> = std::env::var_os("SSL_CERT_DIR")
        .map(|dirs| {
            std::env::split_paths(&dirs)
                .filter(|dir| !dir.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if file.is_some() || !dirs.is_empty() {
        return (file, dirs);
    }
    let probed = openssl_probe::probe();
    (probed.cert_file, probed.cert_dir)
}

/// What was found: the certificates (sorted, without duplicates) and what could not be read.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub(crate) certs: Vec<CertificateDer<'static>>,
    pub(crate) problems: Vec<String>,
}

/// Reads the certificates of `file` and of every file in `dirs` (links followed, each file
/// read once).
pub(crate) fn read(file: Option<&Path>, dirs: &[PathBuf]) -> Found {
    let mut found = Found::default();
    let mut seen = HashSet::new();
    let mut visit = |path: &Path, found: &mut Found| match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            if first_visit(&mut seen, &meta) {
                match std::fs::read(path) {
                    Ok(pem) => found.certs.extend(certificates(&pem)),
                    Err(e) => found.problems.push(format!("{}: {e}", path.display())),
                }
            }
        }
        Ok(_) => {}
        // A dangling link in a certificate directory is not an error (OpenSSL skips it too).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => found.problems.push(format!("{}: {e}", path.display())),
    };
    if let Some(file) = file {
        visit(file, &mut found);
    }
    for dir in dirs {
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    match entry {
                        Ok(entry) => visit(&entry.path(), &mut found),
                        Err(e) => found.problems.push(format!("{}: {e}", dir.display())),
                    }
                }
            }
            Err(e) => found.problems.push(format!("{}: {e}", dir.display())),
        }
    }
    found
        .certs
        .sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    found.certs.dedup();
    found
}

#[cfg(unix)]
fn first_visit(seen: &mut HashSet<(u64, u64)>, meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    seen.insert((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn first_visit(_seen: &mut HashSet<(u64, u64)>, _meta: &std::fs::Metadata) -> bool {
    true
}

/// The `CERTIFICATE` blocks of a PEM file, decoded; anything else (comments, other block
/// types such as `TRUSTED CERTIFICATE`, a block that is not valid base64) is skipped, as the
/// SDK's loader skips it.
pub(crate) fn certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let (begin, finish) = (
        memchr::memmem::Finder::new(BEGIN),
        memchr::memmem::Finder::new(END),
    );
    let mut certs = Vec::new();
    let mut body = Vec::with_capacity(4096);
    let mut rest = pem;
    while let Some(start) = begin.find(rest) {
        let after = &rest[start + BEGIN.len()..];
        let Some(end) = finish.find(after) else {
            break;
        };
        // The base64 text without its line breaks (and any blanks around a line).
        body.clear();
        let text = &after[..end];
        let mut line_start = 0;
        for line_end in memchr::memchr_iter(b'\n', text).chain([text.len()]) {
            body.extend_from_slice(text[line_start..line_end].trim_ascii());
            line_start = (line_end + 1).min(text.len());
        }
        if let Ok(der) = base64_simd::STANDARD.decode_to_vec(&body) {
            certs.push(CertificateDer::from(der));
        }
        rest = &after[end + END.len()..];
    }
    certs
}

#[cfg(test)]
mod tests;
