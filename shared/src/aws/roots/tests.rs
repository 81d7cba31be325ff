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

#[test]
fn reads_the_certificate_blocks_and_skips_everything_else() {
    let trusted = SERVER.replace("CERTIFICATE-----", "TRUSTED CERTIFICATE-----");
    let pem = format!(
        "# a comment, as bundles carry\n{CA}\n{trusted}\n\
         -----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n\
         -----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{SERVER}"
    );
    let certs = certificates(pem.as_bytes());
    assert_eq!(certs.len(), 2, "the CA and the server certificate only");
    assert_eq!(certs[0], reference(CA.as_bytes())[0]);
    assert_eq!(certs[1], reference(SERVER.as_bytes())[0]);
}

#[test]
fn a_truncated_block_ends_the_file() {
    let pem = format!("{CA}-----BEGIN CERTIFICATE-----\nMIIB");
    assert_eq!(certificates(pem.as_bytes()), reference(CA.as_bytes()));
}

/// The system's bundle, where there is one, decodes to exactly what the SDK's loader reads.
#[test]
fn decodes_the_system_bundle_as_the_sdk_does() {
    let (file, _) = locations();
    let Some(pem) = file.and_then(|file| std::fs::read(file).ok()) else {
        return;
    };
    let ours = certificates(&pem);
    assert!(!ours.is_empty());
    assert_eq!(ours, reference(&pem));
}

#[cfg(unix)]
#[test]
fn reads_each_file_once_and_reports_what_it_cannot_read() {
    let dir = std::env::temp_dir().join(format!("orders-roots-{}", std::process::id()));
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).expect("temp dir");
    let bundle = dir.join("bundle.pem");
    std::fs::write(&bundle, format!("{CA}{SERVER}")).expect("bundle");
    std::fs::write(certs.join("server.pem"), SERVER).expect("one file");
    let link = |target: &Path, name: &str| {
        let _ = std::fs::remove_file(certs.join(name));
        std::os::unix::fs::symlink(target, certs.join(name)).expect("link");
    };
    link(&bundle, "a1b2c3d4.0");
    link(&dir.join("gone.pem"), "dangling.0");

    let found = read(Some(&bundle), &[certs.clone(), dir.join("missing")]);
    assert_eq!(found.certs.len(), 2, "two distinct certificates");
    assert_eq!(found.problems.len(), 1, "{:?}", found.problems);
    assert!(found.problems[0].contains("missing"));
    assert!(client_config(&found.certs).is_some());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn no_usable_root_means_no_configuration() {
    assert!(client_config(&[]).is_none());
    assert!(client_config(&[CertificateDer::from(vec![1, 2, 3])]).is_none());
}
