//! The system's root certificates, read once per process, and the one TLS configuration built
//! from them.
//!
//! They are looked for where the SDK's own client looks (through `rustls-native-certs`):
//! `SSL_CERT_FILE` and `SSL_CERT_DIR` when either is set, else the bundle and directories
//! `openssl-probe` finds (on Lambda's provided.al2023, `/etc/pki/tls/certs/ca-bundle.crt`).
//! Each file is read once, however many links lead to it. What differs is the reading: root
//! certificates are public, so their PEM is decoded with a SIMD base64 decoder (`base64-simd`,
//! which the SDK already links) rather than `rustls-pki-types`' constant-time one, which spends
//! about 26 instructions per byte of a 220 KB bundle and was most of the query function's init
//! (BENCHMARKS.md, issue #19); and a file is read in small pieces and each certificate decoded
//! into one reused buffer and handed to the root store, so that the whole bundle and every
//! certificate never sit in fresh memory at once (each new page is a page fault at start-up).
//! A certificate found twice (in the bundle and in a hashed directory) is kept twice, which
//! changes nothing but the store's length.

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// How much of a file is read at a time.
const CHUNK: u64 = 16 * 1024;

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
            if found.unusable > 0 {
                tracing::debug!(
                    unusable = found.unusable,
                    "root certificates rustls cannot use were left out"
                );
            }
            client_config(found.roots)
        })
        .clone()
}

/// A client configuration trusting `roots`, or `None` if there are none.
pub(crate) fn client_config(roots: RootCertStore) -> Option<Arc<ClientConfig>> {
    if roots.is_empty() {
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

/// What was found: the usable roots, how many certificates rustls could not use, and what
/// could not be read.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) roots: RootCertStore,
    pub(crate) unusable: usize,
    pub(crate) problems: Vec<String>,
}

/// Reads the certificates of `file` and of every file in `dirs` (links followed, each file
/// read once).
pub(crate) fn read(file: Option<&Path>, dirs: &[PathBuf]) -> Found {
    let mut found = Found {
        roots: RootCertStore::empty(),
        unusable: 0,
        problems: Vec::new(),
    };
    let mut reader = PemReader::default();
    let mut seen = HashSet::new();
    let mut visit = |path: &Path, found: &mut Found| match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {
            if first_visit(&mut seen, &meta) {
                if let Err(e) = reader.read(path, found) {
                    found.problems.push(format!("{}: {e}", path.display()));
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

/// Buffers reused across files: the text read and not yet scanned, and one certificate's body.
#[derive(Default)]
struct PemReader {
    text: Vec<u8>,
    body: Vec<u8>,
}

impl PemReader {
    /// Adds the certificates of the PEM file at `path` to `found`, a piece at a time.
    fn read(&mut self, path: &Path, found: &mut Found) -> std::io::Result<()> {
        let mut file = std::fs::File::open(path)?;
        self.text.clear();
        loop {
            let read = (&mut file).take(CHUNK).read_to_end(&mut self.text)?;
            let scanned = scan(&self.text, &mut self.body, |der| {
                if found.roots.add(CertificateDer::from(der)).is_err() {
                    found.unusable += 1;
                }
            });
            self.text.drain(..scanned);
            if read == 0 {
                return Ok(());
            }
        }
    }
}

/// Hands each complete `CERTIFICATE` block of `text`, decoded, to `each`, and returns how much
/// of `text` is done with: everything but an unfinished block (or what may be the start of a
/// marker) at its end. Anything else (comments, other block types such as `TRUSTED
/// CERTIFICATE`, a block that is not valid base64) is skipped, as the SDK's loader skips it.
pub(crate) fn scan(text: &[u8], body: &mut Vec<u8>, mut each: impl FnMut(&[u8])) -> usize {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let begin = memchr::memmem::Finder::new(BEGIN);
    let finish = memchr::memmem::Finder::new(END);
    let mut done = 0;
    loop {
        let rest = &text[done..];
        let Some(start) = begin.find(rest) else {
            // Keep what could be the beginning of a marker cut by the piece's end.
            return text.len().saturating_sub(BEGIN.len() - 1).max(done);
        };
        let inside = &rest[start + BEGIN.len()..];
        let Some(end) = finish.find(inside) else {
            return done + start;
        };
        // The base64 text without its line breaks (and any blanks around a line).
        body.clear();
        let encoded = &inside[..end];
        let mut line_start = 0;
        for line_end in memchr::memchr_iter(b'\n', encoded).chain([encoded.len()]) {
            body.extend_from_slice(encoded[line_start..line_end].trim_ascii());
            line_start = (line_end + 1).min(encoded.len());
        }
        if let Ok(der) = base64_simd::STANDARD.decode_inplace(body) {
            each(der);
        }
        done += start + BEGIN.len() + end + END.len();
    }
}

#[cfg(test)]
mod tests;
