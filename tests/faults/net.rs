//! HTTP to the replicas as a careful client does it: a request that fails
//! to connect, or is answered 503 or 409, is sent again, with the same JWT
//! bytes, to the next replica, after the `Retry-After` the service asked
//! for; a bounded number of times. A 408 (the server gave up reading the
//! request) is retried like a connection error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::header::RETRY_AFTER;
use serde_json::Value;

/// A final HTTP answer: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

/// How hard a request is retried.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// No new attempt starts after this long.
    pub deadline: Duration,
}

impl Policy {
    /// Enough for a replica to die or for Redis to restart: a request that
    /// still has no answer after this is a finding, not bad luck.
    pub const PATIENT: Policy = Policy {
        attempts: 60,
        deadline: Duration::from_secs(120),
    };
}

/// What the clients ran into, for the test's summary line.
#[derive(Debug, Default)]
pub struct Stats {
    pub sent: AtomicU64,
    pub connection_errors: AtomicU64,
    pub unavailable: AtomicU64,
    pub conflicts: AtomicU64,
    pub request_timeouts: AtomicU64,
    /// The first few connection errors, word for word.
    pub connection_examples: std::sync::Mutex<Vec<String>>,
    /// When each 503 arrived and what for (`POST /path: body`), for the
    /// length of an outage as clients saw it.
    pub unavailable_at: std::sync::Mutex<Vec<(Instant, String)>>,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn connection_error(&self, e: &str) {
        Self::bump(&self.connection_errors);
        let mut examples = self
            .connection_examples
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if examples.len() < 3 {
            examples.push(e.to_owned());
        }
    }

    pub fn summary(&self) -> String {
        let examples = self
            .connection_examples
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        format!(
            "{} HTTP requests, {} connection errors{}, {} answered 503, {} answered 409, \
             {} answered 408",
            self.sent.load(Ordering::Relaxed),
            self.connection_errors.load(Ordering::Relaxed),
            if examples.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {})", examples.join("; "))
            },
            self.unavailable.load(Ordering::Relaxed),
            self.conflicts.load(Ordering::Relaxed),
            self.request_timeouts.load(Ordering::Relaxed),
        )
    }
}

/// A client of every replica.
pub struct Net {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT` of each replica, in cluster order.
    pub bases: Vec<String>,
    pub stats: Stats,
}

impl Net {
    pub fn new(bases: Vec<String>) -> Net {
        Net {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(5))
                // Below the server's keep-alive (5 s), so that a pooled
                // connection is rarely reused just as the server closes it.
                .pool_idle_timeout(Duration::from_secs(2))
                .build()
                .unwrap(),
            bases,
            stats: Stats::default(),
        }
    }

    /// One POST of `jwt` to replica `replica`; `Err` when no HTTP answer
    /// came back (refused, reset, cut off mid-response, timed out).
    async fn post_once(
        &self,
        replica: usize,
        path: &str,
        jwt: &str,
    ) -> Result<(Answer, Option<u64>), String> {
        Stats::bump(&self.stats.sent);
        let res = self
            .http
            .post(format!("{}{path}", self.bases[replica]))
            .header("content-type", "application/jwt")
            .body(jwt.to_owned())
            .send()
            .await
            .map_err(|e| format!("replica {replica}: {}", chain(&e)))?;
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = res
            .text()
            .await
            .map_err(|e| format!("replica {replica}: body: {}", chain(&e)))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((Answer { status, body }, retry_after))
    }

    /// POSTs `jwt` to `path`, starting at replica `first` and moving on to
    /// the next one after a connection error, a 503 or a 409. Returns the
    /// first other answer, or `Err` saying why it gave up.
    pub async fn post(
        &self,
        first: usize,
        path: &str,
        jwt: &str,
        policy: Policy,
    ) -> Result<Answer, String> {
        let start = Instant::now();
        let mut last = String::from("no attempt");
        for attempt in 0..policy.attempts {
            if start.elapsed() > policy.deadline {
                break;
            }
            let replica = (first + attempt as usize) % self.bases.len();
            match self.post_once(replica, path, jwt).await {
                Ok((answer, retry_after)) if matches!(answer.status, 409 | 503) => {
                    if answer.status == 409 {
                        Stats::bump(&self.stats.conflicts);
                    } else {
                        Stats::bump(&self.stats.unavailable);
                        self.stats
                            .unavailable_at
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((Instant::now(), format!("POST {path}: {}", answer.body)));
                    }
                    // Honour Retry-After (seconds), within reason.
                    let wait = Duration::from_secs(retry_after.unwrap_or(1).min(5));
                    last = format!("replica {replica}: {} {}", answer.status, answer.body);
                    tokio::time::sleep(wait).await;
                }
                Ok((answer, _)) if answer.status == 408 => {
                    Stats::bump(&self.stats.request_timeouts);
                    last = format!("replica {replica}: 408");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok((answer, _)) => return Ok(answer),
                Err(e) => {
                    self.stats.connection_error(&e);
                    last = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        Err(format!(
            "no answer after {:?}; last: {last}",
            start.elapsed()
        ))
    }

    /// GETs `path` from replica `replica`: status and body text.
    pub async fn get(&self, replica: usize, path: &str) -> Result<(u16, String), String> {
        let res = self
            .http
            .get(format!("{}{path}", self.bases[replica]))
            .send()
            .await
            .map_err(|e| format!("replica {replica}: GET {path}: {e}"))?;
        let status = res.status().as_u16();
        let text = res
            .text()
            .await
            .map_err(|e| format!("replica {replica}: GET {path}: {e}"))?;
        Ok((status, text))
    }

    /// Waits until replica `replica` answers `/health/ready` with 200.
    pub async fn wait_ready(&self, replica: usize, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok((200, _)) = self.get(replica, "/health/ready").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("replica {replica} not ready after {within:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An error with its sources, `a: b: c` (reqwest's own text leaves out the
/// part that says what happened to the connection).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
