//! A local SMTP sink: accepts every message (or refuses as told) and keeps it in memory. Tests
//! send approval notifications to it; it speaks just enough SMTP for [`super::send`] and other
//! plain clients (no TLS).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// How the sink behaves.
#[derive(Debug, Clone, Default)]
pub struct SinkOptions {
    /// List `STARTTLS` among the extensions (the sink cannot speak it: a client that tries fails).
    pub offer_starttls: bool,
    /// Answer `550` to `RCPT TO` for this address.
    pub refuse: Option<String>,
}

/// One message as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// What followed `DATA`, dot-stuffing undone.
    pub data: String,
    /// The `AUTH PLAIN` token given, decoded (`\0user\0password`).
    pub auth: Option<String>,
}

impl Received {
    /// The value of header `name` (first one).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The body, base64 decoded.
    pub fn text(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let b64: String = body.split_whitespace().collect();
        STANDARD.decode(b64).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_else(|| body.to_string())
    }
}

/// A running sink.
#[derive(Debug, Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    /// Listen on 127.0.0.1 (a free port).
    pub async fn start(opts: SinkOptions) -> std::io::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let sink = Sink { addr: listener.local_addr()?, received: Arc::default() };
        let received = sink.received.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (received, opts) = (received.clone(), opts.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, &opts, &received).await;
                });
            }
        });
        Ok(sink)
    }

    /// `smtp://127.0.0.1:<port>` (add `?tls=none` to keep credentials flowing in clear).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Wait until `n` messages arrived (at most `within`); the messages then.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let end = tokio::time::Instant::now() + within;
        while self.messages().len() < n && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.messages()
    }
}

async fn serve(
    conn: tokio::net::TcpStream,
    opts: &SinkOptions,
    received: &Mutex<Vec<Received>>,
) -> std::io::Result<()> {
    let mut s = BufReader::new(conn);
    s.get_mut().write_all(b"220 sink ready\r\n").await?;
    let mut msg = Received { from: String::new(), to: vec![], data: String::new(), auth: None };
    let mut line = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let answer: String = if upper.starts_with("EHLO") {
            let tls = if opts.offer_starttls { "250-STARTTLS\r\n" } else { "" };
            format!("250-sink\r\n{tls}250-AUTH PLAIN\r\n250 8BITMIME\r\n")
        } else if let Some(t) = upper.strip_prefix("AUTH PLAIN ").map(|_| &cmd[11..]) {
            msg.auth = STANDARD.decode(t.trim()).ok().map(|b| String::from_utf8_lossy(&b).into_owned());
            "235 ok\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            msg.from = cmd[10..].trim_matches(|c| c == '<' || c == '>').to_string();
            "250 ok\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            let to = cmd[8..].trim_matches(|c| c == '<' || c == '>').to_string();
            if opts.refuse.as_deref() == Some(to.as_str()) {
                format!("550 no mailbox {to}\r\n")
            } else {
                msg.to.push(to);
                "250 ok\r\n".into()
            }
        } else if upper == "DATA" {
            s.get_mut().write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if s.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            msg.data = data;
            if let Ok(mut r) = received.lock() {
                r.push(msg.clone());
            }
            msg.to.clear();
            "250 queued as sink-1\r\n".into()
        } else if upper == "QUIT" {
            s.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else if upper == "STARTTLS" {
            "220 go ahead\r\n".into()
        } else {
            "502 not implemented\r\n".into()
        };
        s.get_mut().write_all(answer.as_bytes()).await?;
    }
}
