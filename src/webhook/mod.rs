//! The webhook adapter: [`HttpSender`] POSTs signed events to the clients'
//! receivers over reqwest (the [`WebhookSender`] port), and
//! [`MeteredDeliveries`] counts how deliveries went in the Prometheus
//! registry (the [`DeliveryObserver`] port). Built only by `crate::startup`.
//!
//! A delivery is one POST of the event's JSON with `Content-Type:
//! application/json`, `Statuslist-Event-Id: <id>`, `Statuslist-Signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` (signed when
//! sent, so the receiver's time tolerance applies to this attempt, not to
//! the change) and `User-Agent: statuslist/<version>`. Only a 2xx answer
//! is a delivery; redirects are not followed (a receiver that moved is a
//! configuration change, and following one could leave https or the
//! receiver's host with a signed body).
//!
//! Nothing here logs: the dispatcher logs outcomes by client and event id.
//! The secret, the signature and the body are never printed anywhere.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderValue};

use crate::config::{WebhookSettings, WebhookTarget};
use crate::domain::ClientId;
use crate::domain::events::{EventId, signature};
use crate::metrics::Metrics;
use crate::ports::{DeliveryObserver, DeliveryOutcome, SendError, WebhookSender};

/// The header naming the event, so that a receiver can dedupe before
/// parsing.
pub const EVENT_ID_HEADER: &str = "statuslist-event-id";

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "statuslist-signature";

/// The most of a receiver's answer read: only its status matters, but a
/// body read to its end lets the connection be reused.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Why the sender could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct SenderSetupError(String);

/// Sends events to the webhooks of the configured clients.
pub struct HttpSender {
    http: reqwest::Client,
    targets: HashMap<ClientId, WebhookTarget>,
}

impl std::fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The targets' secrets print redacted anyway; the clients suffice.
        f.debug_struct("HttpSender")
            .field("clients", &self.targets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl HttpSender {
    /// A sender to each client's `target`, one attempt bounded by
    /// `settings.timeout`: reqwest's total timeout runs from connecting
    /// until the answer's body is read, so no attempt outlives its lease.
    ///
    /// # Errors
    /// [`SenderSetupError`] when the TLS backend cannot be initialised.
    pub fn new(
        settings: &WebhookSettings,
        targets: impl IntoIterator<Item = (ClientId, WebhookTarget)>,
    ) -> Result<Self, SenderSetupError> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("statuslist/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SenderSetupError(e.without_url().to_string()))?;
        Ok(HttpSender {
            http,
            targets: targets.into_iter().collect(),
        })
    }

    /// One POST.
    async fn post(
        &self,
        target: &WebhookTarget,
        id: EventId,
        body: Vec<u8>,
    ) -> Result<(), SendError> {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut signed = HeaderValue::from_str(&signature(target.secret.expose(), t, &body))
            .map_err(|_| SendError::Request("unusable signature header".into()))?;
        // Keeps it out of any debug output of the HTTP stack.
        signed.set_sensitive(true);
        let mut answer = self
            .http
            .post(target.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(EVENT_ID_HEADER, id.to_string())
            .header(SIGNATURE_HEADER, signed)
            .body(body)
            .send()
            .await
            .map_err(send_error)?;
        let code = answer.status();
        if !code.is_success() {
            return Err(SendError::Status(code.as_u16()));
        }
        // Delivered; reading the rest only keeps the connection reusable,
        // so its failure changes nothing.
        let mut read = 0;
        while read < MAX_ANSWER_BYTES {
            match answer.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        Ok(())
    }
}

/// The typed failure of a reqwest error, without its URL (it could carry a
/// token in its query).
fn send_error(e: reqwest::Error) -> SendError {
    if e.is_timeout() {
        return SendError::Timeout;
    }
    if e.is_connect() {
        return SendError::Connect;
    }
    // The innermost cause (hyper's "connection closed before message
    // completed", an I/O error) says more than reqwest's "error sending
    // request", and only reqwest's own error carries the URL.
    let mut cause: &dyn std::error::Error = &e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = if std::ptr::addr_eq(cause, &e) {
        e.without_url().to_string()
    } else {
        cause.to_string()
    };
    SendError::Request(text.chars().take(200).collect())
}

impl WebhookSender for HttpSender {
    async fn send(&self, client: &ClientId, id: EventId, body: Vec<u8>) -> Result<(), SendError> {
        let target = self.targets.get(client).ok_or(SendError::NoWebhook)?;
        self.post(target, id, body).await
    }
}

/// The dispatcher's reports, as Prometheus metrics.
#[derive(Debug, Clone)]
pub struct MeteredDeliveries(pub Arc<Metrics>);

impl DeliveryObserver for MeteredDeliveries {
    fn attempt(&self, outcome: DeliveryOutcome, latency: Option<Duration>) {
        self.0.webhook_attempt(outcome.label(), latency);
    }

    fn pending(&self, client: &ClientId, count: u64) {
        self.0.webhook_pending(client.as_str(), count);
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::time::Instant;

    use hmac::{Hmac, Mac};
    use sha2::Sha256;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::config::WebhookSecret;
    use crate::domain::events::EventSeed;

    const SECRET: &[u8] = b"whsec-test-0123456789";

    /// What a test receiver does with a request.
    #[derive(Clone)]
    enum Answer {
        /// Answers this status with these extra header lines.
        Status(u16, String),
        /// Reads the request and never answers.
        Silent,
        /// Reads the request and closes the connection.
        Hang,
    }

    /// One request as the receiver read it.
    #[derive(Debug, Clone)]
    struct Captured {
        request_line: String,
        headers: HashMap<String, String>,
        body: Vec<u8>,
    }

    /// A tiny HTTP/1.1 receiver on 127.0.0.1 (one request per connection).
    struct Receiver {
        addr: SocketAddr,
        got: Arc<Mutex<Vec<Captured>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Receiver {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Receiver {
        async fn start(answer: Answer) -> Receiver {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let got = Arc::new(Mutex::new(Vec::new()));
            let seen = got.clone();
            let task = tokio::spawn(async move {
                loop {
                    let Ok((conn, _)) = listener.accept().await else {
                        return;
                    };
                    let (seen, answer) = (seen.clone(), answer.clone());
                    tokio::spawn(async move { serve(conn, seen, answer).await });
                }
            });
            Receiver { addr, got, task }
        }

        fn url(&self, path: &str) -> url::Url {
            url::Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
        }

        fn got(&self) -> Vec<Captured> {
            self.got.lock().unwrap().clone()
        }
    }

    async fn serve(mut conn: TcpStream, seen: Arc<Mutex<Vec<Captured>>>, answer: Answer) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        seen.lock().unwrap().push(Captured {
            request_line,
            headers,
            body: buf[head_end..head_end + length].to_vec(),
        });
        match answer {
            Answer::Status(code, extra) => {
                let reply = format!(
                    "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n{extra}\r\nok"
                );
                let _ = conn.write_all(reply.as_bytes()).await;
                let _ = conn.shutdown().await;
            }
            Answer::Silent => tokio::time::sleep(Duration::from_secs(60)).await,
            Answer::Hang => drop(conn),
        }
    }

    fn client(name: &str) -> ClientId {
        ClientId::parse(name).unwrap()
    }

    fn sender_to(url: url::Url, timeout: Duration) -> HttpSender {
        let settings = WebhookSettings {
            timeout,
            ..WebhookSettings::default()
        };
        let target = WebhookTarget {
            url,
            secret: WebhookSecret::new(SECRET),
        };
        HttpSender::new(&settings, [(client("issuer"), target)]).unwrap()
    }

    async fn send(sender: &HttpSender, body: &[u8]) -> Result<(), SendError> {
        let id = EventSeed { ms: 1, nonce: 2 }.id(3);
        sender.send(&client("issuer"), id, body.to_vec()).await
    }

    #[tokio::test]
    async fn a_delivery_is_a_signed_post_with_the_documented_headers() {
        let rx = Receiver::start(Answer::Status(200, String::new())).await;
        let sender = sender_to(rx.url("/hooks/status?k=1"), Duration::from_secs(5));
        let id = EventSeed {
            ms: 1_700_000_000_000,
            nonce: 9,
        }
        .id(0);
        let body = br#"{"id":"x","type":"entry.revoked"}"#.to_vec();
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        sender
            .send(&client("issuer"), id, body.clone())
            .await
            .unwrap();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let got = rx.got();
        assert_eq!(got.len(), 1);
        let req = &got[0];
        assert_eq!(req.request_line, "POST /hooks/status?k=1 HTTP/1.1");
        assert_eq!(req.headers["content-type"], "application/json");
        assert_eq!(req.headers["statuslist-event-id"], id.to_string());
        assert_eq!(
            req.headers["user-agent"],
            format!("statuslist/{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(req.body, body);
        // The signature, checked as a receiver would, with its own HMAC.
        let header = &req.headers["statuslist-signature"];
        let (t, v1) = header
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
            .unwrap_or_else(|| panic!("{header}"));
        let t: u64 = t.parse().unwrap();
        assert!((before..=after).contains(&t), "signed at send time: {t}");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(&body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(v1, expected);
        // Any 2xx is a delivery.
        let rx = Receiver::start(Answer::Status(204, String::new())).await;
        let sender = sender_to(rx.url("/"), Duration::from_secs(5));
        assert_eq!(send(&sender, b"{}").await, Ok(()));
    }

    #[tokio::test]
    async fn other_answers_are_typed_failures() {
        for code in [500, 503, 404, 400, 401] {
            let rx = Receiver::start(Answer::Status(code, String::new())).await;
            let sender = sender_to(rx.url("/"), Duration::from_secs(5));
            assert_eq!(send(&sender, b"{}").await, Err(SendError::Status(code)));
            assert_eq!(rx.got().len(), 1);
        }
        let e = SendError::Status(500).to_string();
        assert_eq!(e, "the receiver answered HTTP 500");
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let elsewhere = Receiver::start(Answer::Status(200, String::new())).await;
        for code in [301, 302, 307, 308] {
            let location = format!("location: {}\r\n", elsewhere.url("/moved"));
            let rx = Receiver::start(Answer::Status(code, location)).await;
            let sender = sender_to(rx.url("/"), Duration::from_secs(5));
            assert_eq!(send(&sender, b"{}").await, Err(SendError::Status(code)));
        }
        assert!(
            elsewhere.got().is_empty(),
            "the signed body went nowhere else"
        );
    }

    #[tokio::test]
    async fn a_silent_receiver_times_out() {
        let rx = Receiver::start(Answer::Silent).await;
        let sender = sender_to(rx.url("/"), Duration::from_millis(300));
        let started = Instant::now();
        assert_eq!(send(&sender, b"{}").await, Err(SendError::Timeout));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_refused_or_dropped_connection_is_a_failure() {
        // A port nobody listens on any more.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let sender = sender_to(url, Duration::from_secs(5));
        assert_eq!(send(&sender, b"{}").await, Err(SendError::Connect));
        // Read, then closed without an answer.
        let rx = Receiver::start(Answer::Hang).await;
        let sender = sender_to(rx.url("/secret-path?token=t0k"), Duration::from_secs(5));
        let err = send(&sender, b"{}").await.unwrap_err();
        assert!(
            matches!(err, SendError::Request(_) | SendError::Connect),
            "{err:?}"
        );
        // The error text (kept in the dead letter) names no URL.
        let text = err.to_string();
        eprintln!("dropped connection: {text}");
        assert!(
            !text.contains("t0k") && !text.contains("127.0.0.1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_client_without_a_webhook_is_no_delivery_and_no_secret_prints() {
        let sender = sender_to(
            url::Url::parse("https://issuer.example/hooks").unwrap(),
            Duration::from_secs(1),
        );
        let id = EventSeed { ms: 1, nonce: 2 }.id(0);
        assert_eq!(
            sender.send(&client("other"), id, b"{}".to_vec()).await,
            Err(SendError::NoWebhook)
        );
        let shown = format!("{sender:?} {:?}", sender.targets);
        assert!(!shown.contains("whsec"), "{shown}");
        assert!(shown.contains("[redacted]"), "{shown}");
    }
}
