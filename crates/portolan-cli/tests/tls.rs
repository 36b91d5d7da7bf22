//! `serve --tls-cert … --tls-key …`: the real binary serves HTTPS with a full chain (a client
//! that trusts only the root completes the handshake and gets 200), and refuses to start on a
//! chain that is incomplete, explaining which certificate is missing what.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// (root PEM, intermediate PEM, leaf PEM, leaf key PEM) for `localhost`.
fn chain() -> (String, String, String, String) {
    let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
    root.distinguished_name = name("Portolan Test Root");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let root_key = KeyPair::generate().unwrap();
    let root_pem = root.self_signed(&root_key).unwrap().pem();
    let root_issuer = Issuer::new(root, root_key);
    let mut inter = CertificateParams::new(Vec::<String>::new()).unwrap();
    inter.distinguished_name = name("Portolan Test Intermediate");
    inter.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let inter_key = KeyPair::generate().unwrap();
    let inter_pem = inter.signed_by(&inter_key, &root_issuer).unwrap().pem();
    let inter_issuer = Issuer::new(inter, inter_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name = name("localhost");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_pem = leaf.signed_by(&leaf_key, &inter_issuer).unwrap().pem();
    (root_pem, inter_pem, leaf_pem, leaf_key.serialize_pem())
}

#[tokio::test]
async fn serves_https_with_a_full_chain() {
    let dir = support::temp_dir("tls");
    let (root, inter, leaf, key) = chain();
    std::fs::write(dir.join("fullchain.pem"), format!("{leaf}{inter}")).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let (cert, keyf) = (dir.join("fullchain.pem"), dir.join("key.pem"));
    let server = support::start(
        &dir,
        &[("PORTOLAN_TLS_CERT", cert.to_str().unwrap()), ("PORTOLAN_TLS_KEY", keyf.to_str().unwrap())],
    );
    let addr = server.base.strip_prefix("https://").expect("announced as https").to_string();

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake with the full chain");
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("{\"ok\":true}"), "{answer}");
    // Plain HTTP on the TLS port gets no answer.
    let mut plain = tokio::net::TcpStream::connect(&addr).await.unwrap();
    plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), plain.read_to_end(&mut buf)).await;
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
}

#[test]
fn an_incomplete_chain_is_refused_with_an_explanation() {
    let dir = support::temp_dir("tls-bad");
    let (_, _, leaf, key) = chain();
    std::fs::write(dir.join("leaf.pem"), &leaf).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let out = support::portolan()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .arg("--tls-cert")
        .arg(dir.join("leaf.pem"))
        .arg("--tls-key")
        .arg(dir.join("key.pem"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("incomplete") && stderr.contains("Portolan Test Intermediate"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    let _ = BufReader::new(&out.stdout[..]).lines();
}
