//! The app factory: [`Application::build`] turns validated settings into a
//! bound, ready server. Tests build it on port 0 and read [`Application::port`].
//!
//! Order matters: keys and store are opened before the socket is bound, so a
//! misconfigured instance fails at start with an error naming the field
//! instead of answering 503s.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::http::KeepAlive;
use actix_web::http::header::HeaderValue;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};

use crate::auth::{Authenticator, SetupError};
use crate::config::{Settings, SigningSettings, StoreKind};
use crate::domain::ClientId;
use crate::http::{self, AppState, handlers};
use crate::metrics::Metrics;
use crate::ports::{StoreError, StoreSettings};
use crate::publish::keys::{ServiceKey, load_public_pem};
use crate::publish::{KeySet, PublishError};
use crate::service::dispatch::{DispatchSettings, Dispatcher, consumer_name};
use crate::service::{PublishSettings, Service};
use crate::store::any::AnyStore;
use crate::store::embedded::{EmbeddedOptions, EmbeddedStore};
use crate::store::metered::Metered;
use crate::store::redis::{RedisSettings, RedisStore};
use crate::webhook::{HttpSender, MeteredDeliveries, SenderSetupError};

/// The store type the application runs on.
pub type AppStore = Metered<AnyStore>;

/// Why the application could not start. Every message names what to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A key file could not be read, written or parsed.
    #[error("{field}: {source}")]
    Keys {
        /// The configuration field, e.g. `signing.key_file`.
        field: String,
        /// What went wrong.
        source: PublishError,
    },
    /// The store could not be opened or reached.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The client registry could not be built.
    #[error("clients: {0}")]
    Auth(#[from] SetupError),
    /// The listen address could not be bound.
    #[error("listen: cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The metrics registry could not be built.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The webhook sender could not be built.
    #[error("webhooks: {0}")]
    Webhooks(#[from] SenderSetupError),
}

/// A built, bound application.
pub struct Application {
    port: u16,
    server: Server,
    auth: Arc<Authenticator>,
    config_path: Option<PathBuf>,
    /// Follows the store's change feed; stopped with the application.
    _follower: Option<AbortOnDrop>,
    /// Delivers webhook events (when a client has a webhook); stopped with
    /// the application.
    _dispatcher: Option<AbortOnDrop>,
}

/// A background task that ends when its owner is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens keys and store, builds the state and binds `settings.listen`.
    /// `config_path` is reloaded on `SIGHUP` when given.
    ///
    /// # Errors
    /// [`StartupError`] naming the part that failed.
    pub async fn build(
        settings: Settings,
        config_path: Option<PathBuf>,
    ) -> Result<Self, StartupError> {
        let metrics = Arc::new(Metrics::new()?);
        let keys = Arc::new(load_keys(&settings.signing)?);
        let store = Arc::new(Metered::new(open_store(&settings).await?, metrics.clone()));
        let feed = store.inner().change_feed();
        let auth = Arc::new(Authenticator::new(&settings)?);
        let publish = PublishSettings {
            base_url: settings.public_base_url.as_str().to_owned(),
            token_lifetime: settings.signing.token_lifetime,
            ttl: settings.signing.ttl,
            freshness: settings.signing.freshness,
            max_lists: settings.signing.cache_max_lists.get(),
            max_bytes: settings.signing.cache_max_bytes.get(),
            optimize_after: settings.signing.optimize_after,
        };
        let jwks_json = keys.jwks_json().map_err(|source| StartupError::Keys {
            field: "signing.key_file".into(),
            source,
        })?;
        let list_cache_control =
            HeaderValue::from_str(&format!("public, max-age={}", publish.ttl.as_secs()))
                .unwrap_or_else(|_| HeaderValue::from_static("public"));
        // The key set is the signer port's adapter: wired here only.
        let mut service = Service::new(store.clone(), keys, publish);
        let dispatcher = match webhook_dispatcher(&settings, store, metrics.clone())? {
            Some((dispatcher, clients)) => {
                service = service.with_webhooks(clients, dispatcher.notifier());
                Some(dispatcher)
            }
            None => None,
        };
        let state = web::Data::new(AppState {
            list_cache_control,
            auth: auth.clone(),
            service,
            jwks_json,
            metrics: metrics.clone(),
            body_timeout: settings.http.body_timeout,
        });
        // Other replicas' changes drop this process's cached tokens at once
        // (Redis pub/sub); the version check every `freshness` stays the
        // safety net for a missed notice.
        let follower = feed.map(|feed| {
            let state = state.clone();
            AbortOnDrop(tokio::spawn(async move {
                state.service.follow_changes(feed).await;
            }))
        });
        let dispatcher = dispatcher.map(|d| AbortOnDrop(tokio::spawn(d.run())));
        let addr = settings.listen.to_string();
        let listener = TcpListener::bind(settings.listen).map_err(|source| StartupError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: addr.clone(),
                source,
            })?
            .port();
        let metrics_data = web::Data::new(metrics);
        let limits = settings.http.clone();
        let keep_alive = match limits.keep_alive {
            None => KeepAlive::Disabled,
            Some(idle) => KeepAlive::Timeout(idle),
        };
        let server = HttpServer::new(move || {
            App::new()
                // Metrics, request ids and request logging in one
                // middleware, each at no cost unless used (see its module).
                .wrap(from_fn(http::metrics_mw::track))
                .app_data(state.clone())
                .app_data(metrics_data.clone())
                .configure(http::configure::<AppStore>)
                .default_service(web::to(handlers::no_route))
        })
        // Connection limits (README, "Limits"). The request head must
        // arrive within header_timeout_ms (then 408); the body within
        // body_timeout_ms (`handlers::read_body`, 408). An idle connection
        // is closed after keep_alive_secs; a closing one gets 1 s to flush.
        // Each worker (one per CPU, actix's default) serves at most
        // max_connections at once; further clients wait in the backlog.
        .client_request_timeout(limits.header_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .keep_alive(keep_alive)
        .max_connections(limits.max_connections.get())
        // In-flight requests get this long to finish on SIGTERM/SIGINT.
        .shutdown_timeout(30)
        .listen(listener)
        .map_err(|source| StartupError::Bind { addr, source })?
        .run();
        Ok(Application {
            port,
            server,
            auth,
            config_path,
            _follower: follower,
            _dispatcher: dispatcher,
        })
    }

    /// The port the server listens on (the real one when built on port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server gracefully (tests, embedding).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT (graceful: in-flight requests finish)
    /// or until stopped through [`Application::handle`]. Reloads the client
    /// registry from the config file on SIGHUP.
    ///
    /// # Errors
    /// The server's I/O error, if it fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let reloader = match self.config_path {
            Some(path) => Some(crate::auth::spawn_reload_on_sighup(
                self.auth.clone(),
                path,
                async move {
                    let _ = stop_rx.await;
                },
            )?),
            None => None,
        };
        let result = self.server.await;
        let _ = stop_tx.send(());
        if let Some(task) = reloader {
            match task.await {
                Ok(()) => tracing::debug!("config reloader stopped"),
                Err(e) => tracing::warn!(error = %e, "config reloader ended abnormally"),
            }
        }
        result
    }
}

/// The dispatcher the application runs, over its store and the reqwest
/// sender.
type AppDispatcher = Dispatcher<AppStore, HttpSender>;

/// The webhook dispatcher of this replica and the clients it serves, when
/// at least one client has a webhook; `None` otherwise (then nothing runs
/// and no write records events).
///
/// # Errors
/// [`StartupError::Webhooks`] when the HTTP client cannot be built.
fn webhook_dispatcher(
    settings: &Settings,
    store: Arc<AppStore>,
    metrics: Arc<Metrics>,
) -> Result<Option<(AppDispatcher, Vec<ClientId>)>, StartupError> {
    let targets: Vec<_> = settings
        .clients
        .iter()
        .filter_map(|c| c.webhook.clone().map(|w| (c.id.clone(), w)))
        .collect();
    if targets.is_empty() {
        return Ok(None);
    }
    let clients: Vec<ClientId> = targets.iter().map(|(id, _)| id.clone()).collect();
    let idle = settings
        .clients
        .iter()
        .filter(|c| c.webhook.is_none())
        .map(|c| c.id.clone())
        .collect();
    let w = &settings.webhooks;
    let sender = HttpSender::new(w, targets)?;
    let dispatch = DispatchSettings {
        base_url: settings.public_base_url.as_str().to_owned(),
        consumer: consumer_name(),
        retry_initial: w.retry_initial,
        retry_max: w.retry_max,
        max_age: w.max_age,
        concurrency: w.concurrency,
        poll_interval: w.poll_interval,
        lease: w.lease,
        recheck: w.recheck,
    };
    tracing::info!(
        clients = clients.len(),
        consumer = %dispatch.consumer,
        "webhooks: delivering status-change events"
    );
    let dispatcher = Dispatcher::new(store, Arc::new(sender), clients.clone(), dispatch)
        .with_observer(Arc::new(MeteredDeliveries(metrics)))
        .with_idle_clients(idle);
    Ok(Some((dispatcher, clients)))
}

/// The store settings every adapter applies.
fn store_settings(settings: &Settings) -> StoreSettings {
    StoreSettings {
        capacity: settings.lists.capacity.get(),
        bits: settings.lists.bits,
        idempotency_window: settings.idempotency_window,
    }
}

/// Opens the configured store (the embedded store creates the directory
/// of its file itself).
///
/// # Errors
/// [`StartupError::Store`] when it cannot be opened or reached.
pub async fn open_store(settings: &Settings) -> Result<AnyStore, StartupError> {
    let store_settings = store_settings(settings);
    Ok(match &settings.store.kind {
        StoreKind::Embedded { path } => {
            let path = path.clone();
            let options = EmbeddedOptions {
                command_timeout: settings.store.command_timeout,
                ..EmbeddedOptions::default()
            };
            let store = tokio::task::spawn_blocking(move || {
                EmbeddedStore::open_with_options(path, store_settings, options)
            })
            .await
            .map_err(|e| StoreError::Backend(format!("opening the store: {e}")))??;
            AnyStore::Embedded(store)
        }
        StoreKind::Redis { url } => {
            let mut redis = RedisSettings::new(url.as_str().to_owned());
            redis.prefix = settings.store.redis_prefix.clone();
            redis.command_timeout = settings.store.command_timeout;
            redis.notify_changes = settings.store.notify_changes;
            redis.shards_per_client = settings.store.shards_per_client;
            redis.wait_replicas = settings.store.wait_replicas;
            AnyStore::Redis(Box::new(RedisStore::connect(redis, store_settings).await?))
        }
    })
}

/// Loads the signing key (generating it first when allowed and missing) and
/// the extra published keys.
///
/// # Errors
/// [`StartupError::Keys`] naming the field of the file that failed.
pub fn load_keys(signing: &SigningSettings) -> Result<KeySet, StartupError> {
    let field = |name: &str| name.to_owned();
    let path = &signing.key_file;
    let key = if path.is_file() {
        ServiceKey::load_pem(path).map_err(|source| StartupError::Keys {
            field: field("signing.key_file"),
            source,
        })?
    } else if signing.generate_if_missing {
        let key = ServiceKey::generate();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StartupError::Keys {
                field: field("signing.key_file"),
                source: PublishError::Io {
                    action: "cannot create the key directory",
                    path: dir.to_path_buf(),
                    source: e,
                },
            })?;
        }
        key.save_pem(path).map_err(|source| StartupError::Keys {
            field: field("signing.key_file"),
            source,
        })?;
        tracing::info!(kid = key.kid(), path = %path.display(), "generated a new service signing key");
        key
    } else {
        return Err(StartupError::Keys {
            field: field("signing.key_file"),
            source: PublishError::Io {
                action: "cannot read the signing key (create one with `statuslist keygen --out DIR`)",
                path: path.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
        });
    };
    let mut set = KeySet::new(key);
    for (i, extra) in signing.publish_key_files.iter().enumerate() {
        let public = load_public_pem(extra).map_err(|source| StartupError::Keys {
            field: format!("signing.publish_key_files[{i}]"),
            source,
        })?;
        set.add_public(&public);
    }
    Ok(set)
}
