#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// Names the outbound resolver answers itself in these tests (see `lookup`).
pub(super) fn fake_dns(host: &str) -> Option<Vec<IpAddr>> {
    match host {
        "metadata-alias.portolan.test" => Some(vec![IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254))]),
        "mixed.portolan.test" => {
            Some(vec![IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)), IpAddr::V4(Ipv4Addr::LOCALHOST)])
        }
        _ => None,
    }
}

/// What a stand-in server does with a connection.
#[derive(Clone)]
enum Behaviour {
    /// Answer 200 with this many bytes of body.
    Ok(usize),
    /// Never answer.
    Hang,
    /// Redirect (302) to this URL.
    Redirect(String),
    /// `/hop/N` redirects (307) to `/hop/N-1`; `/hop/0` answers 200.
    Countdown,
}

/// A one-request-per-connection HTTP server on 127.0.0.1:0; the request heads it saw.
async fn server(b: Behaviour) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let rec = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let rec = rec.clone();
            let b = b.clone();
            tokio::spawn(async move {
                let head = read_head(&mut sock).await;
                rec.lock().unwrap().push(head.clone());
                let redirect = |status: &str, to: &str| {
                    format!("HTTP/1.1 {status}\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                };
                let res = match b {
                    Behaviour::Hang => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    Behaviour::Ok(n) => format!(
                        "HTTP/1.1 200 OK\r\nx-test: yes\r\ncontent-length: {n}\r\nconnection: close\r\n\r\n{}",
                        "x".repeat(n)
                    ),
                    Behaviour::Redirect(to) => redirect("302 Found", &to),
                    Behaviour::Countdown => {
                        let path = head.split_whitespace().nth(1).unwrap_or_default();
                        match path.strip_prefix("/hop/").and_then(|n| n.parse::<u32>().ok()) {
                            Some(n) if n > 0 => redirect("307 Temporary Redirect", &format!("/hop/{}", n - 1)),
                            _ => "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\ndone".to_string(),
                        }
                    }
                };
                let _ = sock.write_all(res.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

async fn read_head(sock: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match sock.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn get(url: &str) -> OutboundRequest {
    OutboundRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![("x-a".into(), "1".into())],
        body: Some(b"{}".to_vec()),
    }
}

fn client(cfg: OutboundConfig) -> Outbound {
    Outbound::new(&OutboundConfig { proxy: cfg.proxy.clone(), ..cfg }).unwrap()
}

#[tokio::test]
async fn an_answer_is_traced_with_status_headers_body_and_duration() {
    let (url, seen) = server(Behaviour::Ok(5)).await;
    let ex = client(OutboundConfig::default()).send(get(&format!("{url}/hook"))).await;
    assert_eq!(ex.error, None);
    let r = ex.response.unwrap();
    assert_eq!((r.status, r.body.as_str(), r.body_truncated), (200, "xxxxx", false));
    assert!(r.headers.iter().any(|(k, v)| k == "x-test" && v == "yes"));
    assert_eq!(ex.request.body, "{}");
    assert!(seen.lock().unwrap()[0].starts_with("POST /hook HTTP/1.1"));
}

#[tokio::test]
async fn the_total_timeout_ends_a_call_and_says_so() {
    let (url, _) = server(Behaviour::Hang).await;
    let cfg = OutboundConfig { timeout: Duration::from_millis(300), ..OutboundConfig::default() };
    let started = std::time::Instant::now();
    let ex = client(cfg).send(get(&url)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = ex.error.unwrap();
    assert!(err.contains("timed out: no complete answer within outbound.timeout (0.3 s)"), "{err}");
    assert!(ex.response.is_none());
}

#[tokio::test]
async fn an_answer_over_the_cap_is_cut_and_counts_as_failed() {
    let (url, _) = server(Behaviour::Ok(5000)).await;
    let cfg = OutboundConfig { max_response_bytes: 1000, ..OutboundConfig::default() };
    let ex = client(cfg).send(get(&url)).await;
    let r = ex.response.unwrap();
    assert_eq!((r.body.len(), r.body_truncated), (1000, true));
    assert!(ex.error.unwrap().contains("outbound.max_response_bytes"));
}

#[tokio::test]
async fn metadata_and_link_local_targets_are_refused_unless_allowed() {
    let c = client(OutboundConfig { connect_timeout: Duration::from_millis(200), ..OutboundConfig::default() });
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/",
        "http://169.254.1.2:8080/",
        "http://metadata.google.internal/",
        "http://METADATA./",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        // Other spellings of 169.254.169.254: decimal, hexadecimal, IPv4-mapped, NAT64.
        "http://2852039166/",
        "http://0xa9.0xfe.0xa9.0xfe/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
    ] {
        let ex = c.send(get(url)).await;
        let err = ex.error.unwrap();
        assert!(
            err.contains("refused by the address policy") && err.contains("allow_metadata_addresses"),
            "{url}: {err}"
        );
        assert!(ex.duration_ms < 100, "refused before any connection: {url}");
    }
    // Allowed by the setting: the call is made (whether something answers there depends on the
    // machine; what matters is that the policy did not refuse it).
    let open = client(OutboundConfig {
        allow_metadata_addresses: true,
        connect_timeout: Duration::from_millis(200),
        timeout: Duration::from_millis(500),
        ..OutboundConfig::default()
    });
    let err = open.send(get("http://169.254.169.254/")).await.error.unwrap_or_default();
    assert!(!err.contains("address policy"), "{err}");
    // Loopback and private addresses are allowed (a self-hosted backend).
    let (url, _) = server(Behaviour::Ok(1)).await;
    assert_eq!(c.send(get(&url.replace("127.0.0.1", "localhost"))).await.error, None);
}

#[tokio::test]
async fn a_redirect_to_a_metadata_address_is_refused() {
    let (url, _) = server(Behaviour::Redirect("http://169.254.169.254/latest/meta-data/".into())).await;
    let ex = client(OutboundConfig::default()).send(get(&url)).await;
    let err = ex.error.unwrap();
    assert!(err.contains("redirect to http://169.254.169.254") && err.contains("address policy"), "{err}");
}

#[tokio::test]
async fn a_proxy_is_used_for_the_call() {
    // The "proxy" answers itself: what matters is that it got an absolute-form request.
    let (proxy, seen) = server(Behaviour::Ok(2)).await;
    let cfg = OutboundConfig { proxy: Some(proxy), ..OutboundConfig::default() };
    let ex = client(cfg).send(get("http://backend.example.test:9999/hook")).await;
    assert_eq!(ex.error, None, "{ex:?}");
    let head = seen.lock().unwrap()[0].clone();
    assert!(head.starts_with("POST http://backend.example.test:9999/hook HTTP/1.1"), "{head}");
}

#[tokio::test]
async fn an_extra_ca_bundle_is_trusted_and_without_it_the_error_names_the_setting() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let certs = vec![leaf_cert.der().clone()];
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else { return };
                read_head(&mut tls).await;
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let url = format!("https://localhost:{port}/");
    let err = client(OutboundConfig::default()).send(get(&url)).await.error.unwrap();
    assert!(err.contains("certificate") && err.contains("outbound.ca_bundle"), "{err}");

    let dir = std::env::temp_dir().join(format!("portolan-ca-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = dir.join("ca.pem");
    std::fs::write(&bundle, &ca_pem).unwrap();
    let ex =
        client(OutboundConfig { ca_bundle: Some(bundle.clone()), ..OutboundConfig::default() }).send(get(&url)).await;
    assert_eq!(ex.error, None, "{ex:?}");
    assert_eq!(ex.response.unwrap().body, "ok");

    let missing = Outbound::new(&OutboundConfig { ca_bundle: Some(dir.join("nope.pem")), ..OutboundConfig::default() });
    assert!(missing.unwrap_err().contains("outbound.ca_bundle"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn unsupported_schemes_and_bad_urls_are_explained() {
    let c = client(OutboundConfig::default());
    assert!(c.send(get("ftp://x/")).await.error.unwrap().contains("only http and https"));
    assert!(c.send(get("not a url")).await.error.unwrap().contains("not a valid URL"));
    let mut bad = get("http://127.0.0.1:1/");
    bad.headers.push(("bad header".into(), "x".into()));
    let err = c.send(bad).await.error.unwrap();
    assert!(err.contains("the request cannot be built"), "{err}");
    let err = c.send(get("http://127.0.0.1:1/")).await.error.unwrap();
    assert!(err.contains("connection refused") || err.contains("could not connect"), "{err}");
}

#[test]
fn censoring_masks_secrets_everywhere_and_sensitive_headers_always() {
    assert_eq!(censor("a tok-123 b tok-1234", &["tok-123", "tok-1234", ""]), "a ******** b ********");
    let ex = Exchange {
        request: TraceRequest {
            method: "POST".into(),
            url: "http://h/?t=sekret".into(),
            headers: vec![("Authorization".into(), "Bearer abc".into()), ("x-k".into(), "sekret".into())],
            body: "{\"k\":\"sekret\"}".into(),
        },
        response: Some(TraceResponse {
            status: 200,
            headers: vec![("set-cookie".into(), "s=1".into())],
            body: "echo sekret".into(),
            body_truncated: false,
        }),
        redirects: vec!["http://h/next?t=sekret".into()],
        duration_ms: 1,
        error: Some("sekret failed".into()),
    };
    let text = serde_json::to_string(&ex.censored(&["sekret"])).unwrap();
    assert!(!text.contains("sekret") && !text.contains("Bearer abc") && !text.contains("s=1"), "{text}");
}

#[test]
fn the_signature_matches_an_independent_implementation_and_verifies_as_a_receiver_would() {
    // python3 -c 'import hmac,hashlib,base64; print("v1,"+base64.b64encode(hmac.new(b"my-client-secret",
    //   b"1700000000."+b"{\"a\":1}", hashlib.sha256).digest()).decode())'
    let sig = port_signature("my-client-secret", 1_700_000_000, br#"{"a":1}"#);
    assert_eq!(sig, "v1,rVb85dTrZOZfA33fhNVz0TGWcKAHktiHgOlBZ4opjFw=");
    let tol = Duration::from_secs(300);
    assert!(verify_port_signature("my-client-secret", "1700000000", &sig, br#"{"a":1}"#, 1_700_000_010, tol));
    assert!(!verify_port_signature("my-client-secret", "1700000000", &sig, br#"{"a":2}"#, 1_700_000_010, tol));
    assert!(!verify_port_signature("other", "1700000000", &sig, br#"{"a":1}"#, 1_700_000_010, tol));
    assert!(!verify_port_signature("my-client-secret", "1700000000", &sig, br#"{"a":1}"#, 1_700_009_999, tol));
    assert!(!verify_port_signature("my-client-secret", "1700000000", "v2,xx", br#"{"a":1}"#, 1_700_000_000, tol));
}

#[tokio::test]
async fn a_name_resolving_to_a_metadata_address_is_refused_and_only_allowed_addresses_are_dialled() {
    use reqwest::dns::Resolve;
    let (url, seen) = server(Behaviour::Ok(3)).await;
    let port = url.rsplit(':').next().unwrap();
    let c = client(OutboundConfig::default());

    let ex = c.send(get(&format!("http://metadata-alias.portolan.test:{port}/"))).await;
    let err = ex.error.unwrap();
    assert!(
        err.contains("metadata-alias.portolan.test (resolves to 169.254.169.254)")
            && err.contains("allow_metadata_addresses"),
        "{err}"
    );

    // A name with a refused and an allowed address: the resolver hands over only the allowed one,
    // so whatever DNS answers later, the connection cannot go to the refused one.
    let addrs: Vec<SocketAddr> =
        PolicyResolver.resolve("mixed.portolan.test".parse().unwrap()).await.unwrap().collect();
    assert_eq!(addrs, vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    let ex = c.send(get(&format!("http://mixed.portolan.test:{port}/"))).await;
    assert_eq!(ex.error, None, "{ex:?}");
    assert_eq!(ex.response.unwrap().body, "xxx");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn through_a_proxy_targets_and_redirect_targets_are_checked_before_anything_is_sent() {
    // The "proxy" answers every request with a redirect to a name that resolves to the
    // metadata service; a proxy resolves names itself, so only the client's own check stops it.
    let (proxy, seen) = server(Behaviour::Redirect("http://metadata-alias.portolan.test/latest/".into())).await;
    let c = client(OutboundConfig { proxy: Some(proxy), ..OutboundConfig::default() });
    let ex = c.send(get("http://backend.example.test/hook")).await;
    let err = ex.error.unwrap();
    assert!(
        err.starts_with("redirect to http://metadata-alias.portolan.test/latest/: refused by the address policy")
            && err.contains("resolves to 169.254.169.254"),
        "{err}"
    );
    assert_eq!(ex.response.map(|r| r.status), Some(302), "the redirect's answer is kept");
    assert_eq!(seen.lock().unwrap().len(), 1, "the redirect target never reached the proxy");

    for url in ["http://169.254.169.254/", "http://metadata-alias.portolan.test/", "http://metadata/"] {
        let err = c.send(get(url)).await.error.unwrap();
        assert!(err.contains("refused by the address policy"), "{url}: {err}");
    }
    assert_eq!(seen.lock().unwrap().len(), 1, "refused targets never reached the proxy");
}

#[tokio::test]
async fn redirects_are_followed_at_most_three_times() {
    let (url, seen) = server(Behaviour::Countdown).await;
    let c = client(OutboundConfig::default());
    let ex = c.send(get(&format!("{url}/hop/3"))).await;
    assert_eq!(ex.error, None, "{ex:?}");
    assert_eq!(ex.response.unwrap().body, "done");
    assert_eq!(ex.redirects, vec![format!("{url}/hop/2"), format!("{url}/hop/1"), format!("{url}/hop/0")]);
    // 307 keeps the method.
    assert!(seen.lock().unwrap()[3].starts_with("POST /hop/0 "), "{:?}", seen.lock().unwrap());
    let json = serde_json::to_value(&ex.redirects).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 3);

    let ex = c.send(get(&format!("{url}/hop/4"))).await;
    let err = ex.error.unwrap();
    assert!(err.contains("more than 3 redirects"), "{err}");
    assert_eq!(ex.response.unwrap().status, 307);
    assert_eq!(seen.lock().unwrap().len(), 4 + 4, "the fourth redirect is not followed");
}

#[tokio::test]
async fn a_302_after_a_post_continues_as_a_get_without_credentials_on_another_origin() {
    let (target, seen) = server(Behaviour::Ok(2)).await;
    let (url, _) = server(Behaviour::Redirect(format!("{target}/landed"))).await;
    let mut req = get(&url);
    req.headers.push(("Authorization".into(), "Bearer t0ken".into()));
    req.headers.push(("content-type".into(), "application/json".into()));
    let ex = client(OutboundConfig::default()).send(req).await;
    assert_eq!(ex.error, None, "{ex:?}");
    let head = seen.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.starts_with("get /landed "), "{head}");
    assert!(!head.contains("authorization") && !head.contains("content-type"), "{head}");
    assert!(head.contains("x-a: 1"), "other headers go on: {head}");
    // Without a redirect the Authorization header is sent (so the check above can fail).
    let mut req = get(&target);
    req.headers.push(("Authorization".into(), "Bearer t0ken".into()));
    client(OutboundConfig::default()).send(req).await;
    assert!(seen.lock().unwrap()[1].to_ascii_lowercase().contains("authorization: bearer t0ken"));
}

#[tokio::test]
async fn the_connect_timeout_is_told_apart_from_the_total_timeout() {
    // A listener that never accepts, its queue filled: the kernel drops further SYNs, so
    // connecting hangs.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = sock.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..4 {
        if let Ok(Ok(s)) = tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(addr)).await
        {
            fillers.push(s);
        }
    }
    let cfg = OutboundConfig {
        connect_timeout: Duration::from_millis(300),
        timeout: Duration::from_secs(10),
        ..OutboundConfig::default()
    };
    let started = std::time::Instant::now();
    let err = client(cfg).send(get(&format!("http://{addr}/"))).await.error.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.contains("timed out connecting") && err.contains("outbound.connect_timeout (0.3 s)"), "{err}");
    drop((listener, fillers));
}

#[tokio::test]
async fn an_unknown_host_name_is_explained_as_a_dns_failure() {
    let err = client(OutboundConfig::default()).send(get("http://nothing-here.invalid/")).await.error.unwrap();
    assert!(err.contains("the host name does not resolve"), "{err}");
}
