//! Outbound e-mail: a small SMTP client (RFC 5321) for approval notifications.
//!
//! The server is the operator's (`PORTOLAN_SMTP_URL`), not a tenant's, so it does not pass the
//! outbound address policy. `smtp://[user:password@]host[:port]` (port 25) upgrades with
//! STARTTLS when the server offers it; `?tls=required` insists on it and `?tls=none` never
//! uses it; `smtps://` (port 465) speaks TLS from the start. Certificates are checked against
//! the platform's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` add others). Credentials go with
//! `AUTH PLAIN`, only over TLS unless `tls=none` was chosen. Every exchange has one deadline;
//! replies are read with bounded lines, and addresses and subjects that could inject
//! commands or headers are refused.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How a connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain text throughout (`tls=none`).
    None,
    /// STARTTLS when the server offers it (`smtp://`).
    Opportunistic,
    /// STARTTLS or nothing is sent (`tls=required`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// Where and as whom mail is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<(String, String)>,
    /// The sender address (`PORTOLAN_SMTP_FROM`).
    pub from: String,
    /// The deadline of one message, from connecting to the server's last reply.
    pub timeout: Duration,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// One message (plain text, UTF-8).
#[derive(Debug, Clone)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub text: String,
}

/// The longest reply line read, and most lines of one reply.
const MAX_LINE: usize = 4096;
const MAX_REPLY_LINES: usize = 100;

impl SmtpConfig {
    /// Parse `PORTOLAN_SMTP_URL` and the sender; the error says what to write instead.
    pub fn parse(url: &str, from: &str) -> Result<SmtpConfig, String> {
        let u = url::Url::parse(url).map_err(|e| format!("{e}: write smtp://[user:password@]host[:port]"))?;
        let mut security = match u.scheme() {
            "smtp" => Security::Opportunistic,
            "smtps" => Security::Implicit,
            s => return Err(format!("the scheme {s:?} is not smtp:// or smtps://")),
        };
        for (k, v) in u.query_pairs() {
            match (k.as_ref(), v.as_ref()) {
                ("tls", "none") if security != Security::Implicit => security = Security::None,
                ("tls", "required") if security != Security::Implicit => security = Security::StartTls,
                ("tls", "opportunistic") if security != Security::Implicit => security = Security::Opportunistic,
                _ => return Err(format!("unknown option {k}={v}: use tls=none, tls=opportunistic or tls=required")),
            }
        }
        let host = u.host_str().filter(|h| !h.is_empty()).ok_or("it names no host")?.to_string();
        let port = u.port().unwrap_or(if security == Security::Implicit { 465 } else { 25 });
        let decode =
            |s: &str| url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
        let credentials = match (u.username(), u.password()) {
            ("", _) => None,
            (user, pass) => Some((decode(user).unwrap_or_default(), pass.and_then(decode).unwrap_or_default())),
        };
        check_address(from).map_err(|e| format!("the sender (PORTOLAN_SMTP_FROM) {e}"))?;
        Ok(SmtpConfig { host, port, security, credentials, from: from.to_string(), timeout: Duration::from_secs(30) })
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// An address may go into `MAIL FROM` / `RCPT TO` and a header as it is.
fn check_address(a: &str) -> Result<(), String> {
    let ok = a.len() <= 254
        && a.split_once('@').is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
        && !a.chars().any(|c| c.is_control() || c.is_whitespace() || "<>,;\"()[]\\".contains(c));
    if ok { Ok(()) } else { Err(format!("{a:?} is not a plain e-mail address (name@domain)")) }
}

/// Send `mail`; `Ok` holds the server's answer to the message (its queue id, often).
pub async fn send(cfg: &SmtpConfig, mail: &Mail) -> Result<String, String> {
    if mail.to.is_empty() {
        return Err("the message has no recipient".into());
    }
    for a in &mail.to {
        check_address(a)?;
    }
    let message = render(cfg, mail);
    match tokio::time::timeout(cfg.timeout, session(cfg, &mail.to, &message)).await {
        Ok(r) => r.map_err(|e| format!("SMTP server {}: {e}", cfg.server())),
        Err(_) => Err(format!("SMTP server {} did not finish within {} s", cfg.server(), cfg.timeout.as_secs())),
    }
}

async fn session(cfg: &SmtpConfig, to: &[String], message: &[u8]) -> Result<String, String> {
    let tcp = TcpStream::connect((cfg.host.as_str(), cfg.port)).await.map_err(|e| format!("cannot connect: {e}"))?;
    if cfg.security == Security::Implicit {
        let mut s = BufReader::new(tls(cfg, tcp).await?);
        expect(&mut s, 220, "greeting").await?;
        ehlo(&mut s).await?;
        return deliver(&mut s, cfg, true, to, message).await;
    }
    let mut s = BufReader::new(tcp);
    expect(&mut s, 220, "greeting").await?;
    let offers_tls = ehlo(&mut s).await?.iter().any(|c| c.eq_ignore_ascii_case("STARTTLS"));
    match cfg.security {
        Security::StartTls | Security::Opportunistic if offers_tls => {
            command(&mut s, "STARTTLS", 220).await?;
            let mut s = BufReader::new(tls(cfg, s.into_inner()).await?);
            ehlo(&mut s).await?;
            deliver(&mut s, cfg, true, to, message).await
        }
        Security::StartTls => Err("tls=required, and the server does not offer STARTTLS".into()),
        _ => deliver(&mut s, cfg, false, to, message).await,
    }
}

async fn tls(cfg: &SmtpConfig, tcp: TcpStream) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_platform_verifier())
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(cfg.host.clone())
        .map_err(|e| format!("{:?} is not a TLS server name: {e}", cfg.host))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))
}

async fn deliver<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    cfg: &SmtpConfig,
    encrypted: bool,
    to: &[String],
    message: &[u8],
) -> Result<String, String> {
    if let Some((user, pass)) = &cfg.credentials {
        if !encrypted && cfg.security != Security::None {
            return Err("the server offers no STARTTLS, and credentials are not sent in clear (add tls=none to \
                        allow it)"
                .into());
        }
        let token = STANDARD.encode(format!("\0{user}\0{pass}"));
        command(s, &format!("AUTH PLAIN {token}"), 235).await.map_err(|e| format!("sign-in as {user:?}: {e}"))?;
    }
    command(s, &format!("MAIL FROM:<{}>", cfg.from), 250).await?;
    for a in to {
        let (code, text) = send_line(s, &format!("RCPT TO:<{a}>")).await?;
        if code != 250 && code != 251 {
            return Err(format!("refused the recipient {a}: {code} {text}"));
        }
    }
    command(s, "DATA", 354).await?;
    s.get_mut().write_all(message).await.map_err(|e| format!("sending the message: {e}"))?;
    s.get_mut().write_all(b".\r\n").await.map_err(|e| format!("sending the message: {e}"))?;
    s.get_mut().flush().await.map_err(|e| e.to_string())?;
    let (code, text) = reply(s).await?;
    if code != 250 {
        return Err(format!("refused the message: {code} {text}"));
    }
    let _ = send_line(s, "QUIT").await;
    Ok(text)
}

/// `EHLO`: the extensions the server lists.
async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(s: &mut BufReader<S>) -> Result<Vec<String>, String> {
    let (code, text) = send_line(s, "EHLO portolan").await?;
    if code != 250 {
        return Err(format!("EHLO: {code} {text}"));
    }
    Ok(text.lines().skip(1).map(|l| l.split_whitespace().next().unwrap_or("").to_string()).collect())
}

async fn command<S: AsyncRead + AsyncWrite + Unpin>(s: &mut BufReader<S>, line: &str, want: u16) -> Result<(), String> {
    let (code, text) = send_line(s, line).await?;
    if code == want {
        Ok(())
    } else {
        let shown = if line.starts_with("AUTH") { "AUTH PLAIN ********" } else { line };
        Err(format!("{shown}: {code} {text}"))
    }
}

async fn send_line<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    line: &str,
) -> Result<(u16, String), String> {
    let w = s.get_mut();
    w.write_all(line.as_bytes()).await.map_err(|e| e.to_string())?;
    w.write_all(b"\r\n").await.map_err(|e| e.to_string())?;
    w.flush().await.map_err(|e| e.to_string())?;
    reply(s).await
}

async fn expect<S: AsyncRead + AsyncWrite + Unpin>(s: &mut BufReader<S>, want: u16, what: &str) -> Result<(), String> {
    let (code, text) = reply(s).await?;
    if code == want { Ok(()) } else { Err(format!("{what}: {code} {text}")) }
}

/// One reply: its code and its lines' text joined by newlines.
async fn reply<S: AsyncRead + Unpin>(s: &mut BufReader<S>) -> Result<(u16, String), String> {
    let mut texts = Vec::new();
    for _ in 0..MAX_REPLY_LINES {
        let mut buf = Vec::new();
        let n = AsyncReadExt::take(&mut *s, MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        let code =
            line.get(..3).and_then(|c| c.parse::<u16>().ok()).ok_or_else(|| format!("not an SMTP reply: {line:?}"))?;
        texts.push(line.get(4..).unwrap_or("").to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, texts.join("\n")));
        }
    }
    Err(format!("a reply longer than {MAX_REPLY_LINES} lines"))
}

/// The message as sent after `DATA`: headers, a base64 UTF-8 body, lines dot-stuffed.
fn render(cfg: &SmtpConfig, mail: &Mail) -> Vec<u8> {
    let subject: String = mail.subject.chars().filter(|c| !c.is_control()).collect();
    let subject = if subject.is_ascii() { subject } else { format!("=?utf-8?B?{}?=", STANDARD.encode(&subject)) };
    let id = crate::auth::hex(&crate::auth::random_bytes::<12>());
    let domain = cfg.from.rsplit('@').next().unwrap_or("portolan");
    let mut out = format!(
        "From: {}\r\nTo: {}\r\nSubject: {subject}\r\nDate: {}\r\nMessage-ID: <{id}@{domain}>\r\nMIME-Version: \
         1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        cfg.from,
        mail.to.join(", "),
        chrono::Utc::now().to_rfc2822(),
    );
    let body = STANDARD.encode(mail.text.replace("\r\n", "\n").replace('\n', "\r\n"));
    for chunk in body.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        out.push_str("\r\n");
    }
    // Dot-stuffing (RFC 5321 §4.5.2): no line of the message may read as its end.
    out.replace("\r\n.", "\r\n..").into_bytes()
}

pub mod sink;
#[cfg(test)]
mod tests;
