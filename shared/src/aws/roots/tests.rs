use super::*;
use rustls::pki_types::pem::PemObject;

const CA: &str = include_str!("../../../tests/fixtures/tls/ca.pem");
const SERVER: &str = include_str!("../../../tests/fixtures/tls/server.pem");

/// What `rustls-pki-types` (the SDK's loader) reads from the same bytes.
fn reference(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// The root store rustls makes of `certs`.
fn store(certs: Vec<CertificateDer<'static>>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(certs);
    roots
}

fn scanned(text: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut certs = Vec::new();
    let done = scan(text, &mut Vec::new(), |der| certs.push(der.to_vec()));
    (certs, done)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("orders-roots-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn reads_the_certificate_blocks_and_skips_everything_else() {
    let trusted = SERVER.replace("CERTIFICATE-----", "TRUSTED CERTIFICATE-----");
    let pem = format!(
        "# a comment, as bundles carry\n{CA}\n{trusted}\n\
         -----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n\
         -----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{}",
        SERVER.replace('\n', "\r\n")
    );
    let (certs, done) = scanned(pem.as_bytes());
    assert_eq!(done, pem.trim_end().len(), "up to the last block's end");
    assert_eq!(certs.len(), 2, "the CA and the server certificate only");
    assert_eq!(certs[0], reference(CA.as_bytes())[0].to_vec());
    assert_eq!(certs[1], reference(SERVER.as_bytes())[0].to_vec());
}

#[test]
fn an_unfinished_block_or_marker_is_left_for_the_next_piece() {
    let pem = format!("{CA}-----BEGIN CERTIFICATE-----\nMIIB");
    let (certs, done) = scanned(pem.as_bytes());
    assert_eq!(certs.len(), 1);
    assert_eq!(done, CA.len(), "the unfinished block is kept");

    let pem = format!("{CA}-----BEGIN CERT");
    let (_, done) = scanned(pem.as_bytes());
    assert!(
        pem[done..].ends_with("-----BEGIN CERT"),
        "a marker cut short is kept"
    );
}

/// A file much larger than one piece, with blocks cut at every possible place, reads to the
/// same roots as the SDK's loader makes of it.
#[test]
fn a_large_file_read_in_pieces_gives_every_certificate() {
    let dir = temp_dir("large");
    let mut pem = String::new();
    while pem.len() < 3 * CHUNK as usize {
        pem.push_str("# padding of odd length: x\n");
        pem.push_str(CA);
        pem.push_str(SERVER);
    }
    let path = dir.join("bundle.pem");
    std::fs::write(&path, &pem).expect("bundle");
    let found = read(Some(&path), &[]);
    let expected = store(reference(pem.as_bytes()));
    assert!(expected.len() > 50, "{} roots", expected.len());
    assert_eq!(found.roots.len(), expected.len());
    assert_eq!(format!("{:?}", found.roots), format!("{expected:?}"));
    assert!(found.problems.is_empty());
    let _ = std::fs::remove_dir_all(dir);
}

/// The system's bundle, where there is one, gives exactly the roots the SDK's loader does.
#[test]
fn reads_the_system_bundle_as_the_sdk_does() {
    let (file, _) = locations();
    let Some(file) = file.filter(|file| file.is_file()) else {
        return;
    };
    let pem = std::fs::read(&file).expect("bundle");
    let found = read(Some(&file), &[]);
    let expected = store(reference(&pem));
    assert!(!expected.is_empty());
    assert_eq!(format!("{:?}", found.roots), format!("{expected:?}"));
}

#[cfg(unix)]
#[test]
fn reads_each_file_once_and_reports_what_it_cannot_read() {
    let dir = temp_dir("links");
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("certs dir");
    let bundle = dir.join("bundle.pem");
    std::fs::write(&bundle, format!("{CA}{SERVER}")).expect("bundle");
    std::fs::write(certs.join("server.pem"), SERVER).expect("one file");
    std::os::unix::fs::symlink(&bundle, certs.join("a1b2c3d4.0")).expect("link");
    std::os::unix::fs::symlink(dir.join("gone.pem"), certs.join("dangling.0")).expect("link");

    let found = read(Some(&bundle), &[certs, dir.join("missing")]);
    // The bundle once (its link skipped), then the server certificate's own file.
    assert_eq!(found.roots.len(), 3);
    assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
    assert!(found.problems[0].contains("missing"));
    assert!(client_config(found.roots).is_some());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_usable_root_means_no_configuration() {
    let dir = temp_dir("empty");
    let path = dir.join("junk.pem");
    std::fs::write(
        &path,
        "-----BEGIN CERTIFICATE-----\nAQID\n-----END CERTIFICATE-----\n",
    )
    .expect("junk");
    let found = read(Some(&path), &[]);
    assert_eq!(found.unusable, 1, "valid base64, not a certificate");
    assert!(client_config(found.roots).is_none());
    let _ = std::fs::remove_dir_all(dir);
}
