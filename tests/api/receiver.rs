//! A webhook receiver for the scenarios: an actix server on 127.0.0.1 that
//! answers 204 to any request and keeps every delivery it got, in
//! arrival order. Shared by the delivery and the dead-letter scenarios.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// One delivery as the receiver got it.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `Statuslist-Event-Id`.
    pub event_id: String,
    /// `Statuslist-Signature`.
    pub signature: String,
    /// `Content-Type`.
    pub content_type: String,
    /// `User-Agent`.
    pub user_agent: String,
    /// The body, as sent.
    pub body: Vec<u8>,
}

/// A running receiver; stopped when dropped.
pub struct Receiver {
    /// A URL it answers (`/hooks/status`; any other path answers the same).
    pub url: String,
    got: Arc<Mutex<Vec<Delivery>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn receive(
    req: HttpRequest,
    body: web::Bytes,
    got: web::Data<Mutex<Vec<Delivery>>>,
) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    got.lock().unwrap().push(Delivery {
        event_id: header("statuslist-event-id"),
        signature: header("statuslist-signature"),
        content_type: header("content-type"),
        user_agent: header("user-agent"),
        body: body.to_vec(),
    });
    HttpResponse::NoContent().finish()
}

impl Receiver {
    /// A receiver on a free port.
    pub fn start() -> Receiver {
        Receiver::on(std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap())
    }

    /// A receiver on `listener` (a port a webhook already points at).
    pub fn on(listener: std::net::TcpListener) -> Receiver {
        let port = listener.local_addr().unwrap().port();
        let got = web::Data::new(Mutex::new(Vec::new()));
        let shared = got.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            url: format!("http://127.0.0.1:{port}/hooks/status"),
            got: got.into_inner(),
            handle,
        }
    }

    /// The deliveries so far.
    pub fn got(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) for `n` deliveries; all of them so far.
    pub async fn wait_for(&self, n: usize) -> Vec<Delivery> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} events delivered",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
