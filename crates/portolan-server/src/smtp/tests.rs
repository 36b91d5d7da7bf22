use std::time::Duration;

use super::sink::{Sink, SinkOptions};
use super::*;

fn config(url: &str) -> SmtpConfig {
    SmtpConfig::parse(url, "portal@example.com").unwrap()
}

fn mail(to: &[&str]) -> Mail {
    Mail {
        to: to.iter().map(|s| s.to_string()).collect(),
        subject: "Approve «deploy»".into(),
        text: "Line one\n.\n.leading dot\nÜnïcode".into(),
    }
}

#[test]
fn urls_parse_with_their_security_port_and_credentials() {
    let c = config("smtp://mail.example.com");
    assert_eq!((c.port, c.security, c.credentials.clone()), (25, Security::Opportunistic, None));
    let c = config("smtps://u%40x:p%2Fw@mail.example.com");
    assert_eq!((c.port, c.security), (465, Security::Implicit));
    assert_eq!(c.credentials, Some(("u@x".into(), "p/w".into())));
    assert!(!format!("{c:?}").contains("p/w"), "the password is never printed");
    assert_eq!(config("smtp://h:2525?tls=required").security, Security::StartTls);
    assert_eq!(config("smtp://h?tls=none").security, Security::None);
    for (bad, says) in [
        ("http://h", "not smtp"),
        ("smtp://h?tls=maybe", "tls=none"),
        ("smtp://h?x=1", "unknown option"),
        ("nonsense", "smtp://"),
    ] {
        let e = SmtpConfig::parse(bad, "a@b").unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
    let e = SmtpConfig::parse("smtp://h", "Portal <a@b>").unwrap_err();
    assert!(e.contains("PORTOLAN_SMTP_FROM"), "{e}");
}

#[tokio::test]
async fn a_message_reaches_the_sink_intact() {
    let sink = Sink::start(SinkOptions::default()).await.unwrap();
    let answer = send(&config(&sink.url()), &mail(&["a@example.com", "b@example.com"])).await.unwrap();
    assert!(answer.contains("queued"), "{answer}");
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, "portal@example.com");
    assert_eq!(got[0].to, ["a@example.com", "b@example.com"]);
    assert_eq!(got[0].header("To").as_deref(), Some("a@example.com, b@example.com"));
    assert!(got[0].header("Subject").unwrap().starts_with("=?utf-8?B?"), "non-ASCII subjects are encoded");
    assert_eq!(got[0].text(), "Line one\r\n.\r\n.leading dot\r\nÜnïcode");
}

#[tokio::test]
async fn refusals_and_unsafe_requests_are_errors_that_say_why() {
    let sink =
        Sink::start(SinkOptions { refuse: Some("gone@example.com".into()), ..SinkOptions::default() }).await.unwrap();
    let e = send(&config(&sink.url()), &mail(&["gone@example.com"])).await.unwrap_err();
    assert!(e.contains("refused the recipient gone@example.com: 550"), "{e}");
    let e = send(&config(&sink.url()), &mail(&["x@example.com>\r\nDATA"])).await.unwrap_err();
    assert!(e.contains("not a plain e-mail address"), "{e}");
    // Credentials are not sent in clear unless tls=none says so.
    let with_user = format!("smtp://user:secret@{}", sink.addr);
    let e = send(&config(&with_user), &mail(&["a@example.com"])).await.unwrap_err();
    assert!(e.contains("not sent in clear"), "{e}");
    send(&config(&format!("{with_user}?tls=none")), &mail(&["a@example.com"])).await.unwrap();
    assert_eq!(sink.messages().last().unwrap().auth.as_deref(), Some("\0user\0secret"));
    // tls=required against a server without STARTTLS sends nothing.
    let e = send(&config(&format!("{}?tls=required", sink.url())), &mail(&["a@example.com"])).await.unwrap_err();
    assert!(e.contains("does not offer STARTTLS"), "{e}");
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn a_failed_tls_upgrade_or_a_silent_server_ends_in_time() {
    // The sink offers STARTTLS but cannot speak TLS: the handshake fails and nothing is sent.
    let sink = Sink::start(SinkOptions { offer_starttls: true, ..SinkOptions::default() }).await.unwrap();
    let mut c = config(&sink.url());
    c.timeout = Duration::from_secs(3);
    let e = send(&c, &mail(&["a@example.com"])).await.unwrap_err();
    assert!(e.contains("TLS") || e.contains("did not finish"), "{e}");
    assert!(sink.messages().is_empty());
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut c = config(&format!("smtp://{}", silent.local_addr().unwrap()));
    c.timeout = Duration::from_millis(300);
    let e = send(&c, &mail(&["a@example.com"])).await.unwrap_err();
    assert!(e.contains("did not finish within"), "{e}");
}
