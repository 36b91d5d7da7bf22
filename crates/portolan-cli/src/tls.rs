//! `serve --tls-cert FULLCHAIN.pem --tls-key KEY.pem`: load the certificate chain and key, and
//! explain in words what is wrong with them before serving — which certificate, what fault —
//! rather than letting clients fail later with "unable to get local issuer certificate".

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// What one certificate of the chain says, for the messages.
struct Info {
    subject: String,
    issuer: String,
    not_before: i64,
    not_after: i64,
    is_ca: bool,
}

fn info(der: &CertificateDer<'_>, n: usize, file: &Path) -> Result<Info, String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref())
        .map_err(|e| format!("certificate {n} in {} is not a valid X.509 certificate: {e}", file.display()))?;
    Ok(Info {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: cert.basic_constraints().ok().flatten().is_some_and(|b| b.value.ca),
    })
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

/// The server configuration for `cert_file` and `key_file`, checked at `now` (Unix seconds).
/// `Err` explains the first fault found, naming the certificate by its position in the file
/// (1 = the first, which must be the server's own) and its subject.
pub fn load(cert_file: &Path, key_file: &Path, now: i64) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cannot read the certificate file {}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the certificate file {} is not valid PEM: {e}", cert_file.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no certificate (no -----BEGIN CERTIFICATE----- block); give the full chain: your server's \
             certificate first, then the intermediate certificate(s)",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        format!(
            "{} holds no usable private key ({e}); expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" block",
            key_file.display()
        )
    })?;
    let infos: Vec<Info> =
        certs.iter().enumerate().map(|(i, c)| info(c, i + 1, cert_file)).collect::<Result<_, _>>()?;
    for (i, c) in infos.iter().enumerate() {
        let n = i + 1;
        if now < c.not_before {
            return Err(format!(
                "certificate {n} in {} ({}) is not valid yet: it is valid from {} (now {})",
                cert_file.display(),
                c.subject,
                date(c.not_before),
                date(now)
            ));
        }
        if now > c.not_after {
            return Err(format!(
                "certificate {n} in {} ({}) expired on {}; renew it",
                cert_file.display(),
                c.subject,
                date(c.not_after)
            ));
        }
    }
    if infos[0].is_ca
        && let Some(j) = infos.iter().position(|c| !c.is_ca)
    {
        return Err(format!(
            "the chain in {} is out of order: certificate 1 ({}) is a CA certificate, and the server's own \
             certificate (certificate {}, {}) must come first; order the file leaf first, then each issuer in turn",
            cert_file.display(),
            infos[0].subject,
            j + 1,
            infos[j].subject
        ));
    }
    for i in 0..infos.len().saturating_sub(1) {
        let (child, parent) = (&infos[i], &infos[i + 1]);
        if child.issuer != parent.subject {
            let elsewhere = infos.iter().position(|c| c.subject == child.issuer);
            return Err(match elsewhere {
                Some(j) => format!(
                    "the chain in {} is out of order: certificate {} ({}) was issued by certificate {} ({}), which must \
                     come right after it; order the file leaf first, then each issuer in turn",
                    cert_file.display(),
                    i + 1,
                    child.subject,
                    j + 1,
                    child.issuer
                ),
                None => format!(
                    "certificate {} in {} ({}) did not issue certificate {} ({}), which was issued by {}: the file holds \
                     an unrelated certificate or misses an intermediate; order it leaf first, then each issuer in turn",
                    i + 2,
                    cert_file.display(),
                    parent.subject,
                    i + 1,
                    child.subject,
                    child.issuer
                ),
            });
        }
    }
    let leaf = &infos[0];
    if infos.len() == 1 && leaf.issuer != leaf.subject && !leaf.is_ca {
        return Err(format!(
            "the chain in {} is incomplete: it holds only the server certificate ({}), issued by {}, but not that \
             issuer's intermediate certificate; many clients (curl, Python, Ocean) then fail with \"unable to get local \
             issuer certificate\". Append the intermediate certificate(s) after it (your CA's fullchain.pem)",
            cert_file.display(),
            leaf.subject,
            leaf.issuer
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the private key in {} does not belong to certificate 1 in {} ({}): give the key the certificate was \
                 issued for",
                key_file.display(),
                cert_file.display(),
                leaf.subject
            ),
            e => format!("the key in {} cannot be used with {}: {e}", key_file.display(), cert_file.display()),
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair};

    struct Ca {
        issuer: Issuer<'static, KeyPair>,
        pem: String,
    }

    fn name(cn: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn
    }

    fn ca(cn: &str, parent: Option<&Ca>) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = name(cn);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = match parent {
            Some(parent) => p.signed_by(&key, &parent.issuer).unwrap(),
            None => p.self_signed(&key).unwrap(),
        };
        Ca { pem: cert.pem(), issuer: Issuer::new(p, key) }
    }

    fn leaf(cn: &str, by: &Ca, not_after: Option<(i32, u8, u8)>) -> (String, String) {
        let mut p = CertificateParams::new(vec![cn.to_string()]).unwrap();
        p.distinguished_name = name(cn);
        if let Some((y, m, d)) = not_after {
            p.not_before = rcgen::date_time_ymd(y - 1, m, d);
            p.not_after = rcgen::date_time_ymd(y, m, d);
        }
        let key = KeyPair::generate().unwrap();
        (p.signed_by(&key, &by.issuer).unwrap().pem(), key.serialize_pem())
    }

    fn files(tag: &str, chain: &[&str], key: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("portolan-tls-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("chain.pem"), dir.join("key.pem"));
        std::fs::write(&c, chain.concat()).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[test]
    fn a_full_chain_loads() {
        let root = ca("Test Root", None);
        let inter = ca("Test Intermediate", Some(&root));
        let (cert, key) = leaf("portal.example", &inter, None);
        let (c, k) = files("ok", &[&cert, &inter.pem], &key);
        load(&c, &k, now()).unwrap();
    }

    #[test]
    fn each_fault_is_explained_naming_the_certificate() {
        let root = ca("Test Root", None);
        let inter = ca("Test Intermediate", Some(&root));
        let (cert, key) = leaf("portal.example", &inter, None);
        let (_, other_key) = leaf("other.example", &inter, None);

        let (c, k) = files("incomplete", &[&cert], &key);
        let e = load(&c, &k, now()).unwrap_err();
        assert!(e.contains("incomplete") && e.contains("CN=Test Intermediate") && e.contains("portal.example"), "{e}");

        let (c, k) = files("order", &[&inter.pem, &cert], &key);
        let e = load(&c, &k, now()).unwrap_err();
        assert!(
            e.contains("out of order")
                && e.contains("certificate 2, CN=portal.example")
                && e.contains("must come first"),
            "{e}"
        );

        let (c, k) = files("unrelated", &[&cert, &root.pem], &key);
        let e = load(&c, &k, now()).unwrap_err();
        assert!(e.contains("did not issue certificate 1") && e.contains("CN=Test Root"), "{e}");

        let (c, k) = files("mismatch", &[&cert, &inter.pem], &other_key);
        let e = load(&c, &k, now()).unwrap_err();
        assert!(e.contains("does not belong to certificate 1") && e.contains("portal.example"), "{e}");

        let (old, old_key) = leaf("old.example", &inter, Some((2020, 1, 1)));
        let (c, k) = files("expired", &[&old, &inter.pem], &old_key);
        let e = load(&c, &k, now()).unwrap_err();
        assert!(e.contains("certificate 1") && e.contains("expired on 2020-01-01"), "{e}");

        let (c, k) = files("future", &[&cert, &inter.pem], &key);
        let e = load(&c, &k, 0).unwrap_err();
        assert!(e.contains("not valid yet"), "{e}");

        let (c, k) = files("empty", &[""], &key);
        assert!(load(&c, &k, now()).unwrap_err().contains("no certificate"));
        let (c, k) = files("nokey", &[&cert, &inter.pem], "not a key");
        assert!(load(&c, &k, now()).unwrap_err().contains("no usable private key"));
    }
}
