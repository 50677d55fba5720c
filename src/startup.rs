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

use crate::auth::{Authenticator, Registry, SetupError};
use crate::config::{ConfigError, Settings, SigningSettings, StoreKind};
use crate::domain::ClientId;
use crate::http::{self, AppState, handlers};
use crate::metrics::Metrics;
use crate::ports::{StoreError, StoreSettings};
use crate::publish::keys::{ServiceKey, load_public_pem};
use crate::publish::{KeyRing, KeySet, PublishError, RingOptions};
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
    /// Re-reads the configuration file on `SIGHUP`, when there is one.
    reloader: Option<Arc<Reloader>>,
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
        let keys = Arc::new(open_key_ring(&settings.signing)?);
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
        // A verifier should hold a JWKS that lacks a new key no longer than
        // it holds a list: at most 5 minutes, less when lists say less.
        let jwks_max_age = publish.ttl.as_secs().min(300);
        let jwks_cache_control = HeaderValue::from_str(&format!("public, max-age={jwks_max_age}"))
            .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=300"));
        let list_cache_control =
            HeaderValue::from_str(&format!("public, max-age={}", publish.ttl.as_secs()))
                .unwrap_or_else(|_| HeaderValue::from_static("public"));
        // The key ring is the adapter of the signer and JWKS ports: wired
        // here only.
        let mut service = Service::new(store.clone(), keys.clone(), publish);
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
            keys: keys.clone(),
            jwks_cache_control,
            metrics: metrics.clone(),
            body_timeout: settings.http.body_timeout,
        });
        // Other replicas' changes drop this process's cached tokens at once
        // (Redis pub/sub); the version check every `freshness` stays the
        // safety net for a missed notice.
        let reloader = config_path.map(|path| {
            Arc::new(Reloader {
                path,
                auth: auth.clone(),
                keys: keys.clone(),
                state: state.clone(),
            })
        });
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
            reloader,
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

    /// What reloads the configuration file (the one `SIGHUP` runs), when
    /// the application was built with one: for embedding and tests.
    pub fn reloader(&self) -> Option<Arc<Reloader>> {
        self.reloader.clone()
    }

    /// Serves until SIGTERM or SIGINT (graceful: in-flight requests finish)
    /// or until stopped through [`Application::handle`]. Reloads the
    /// configuration file on SIGHUP ([`Reloader::reload`]).
    ///
    /// # Errors
    /// The server's I/O error, if it fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let reloader = match self.reloader {
            Some(reloader) => Some(spawn_reload_on_sighup(reloader, async move {
                let _ = stop_rx.await;
            })?),
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
            redis.tls_ca_file = settings.store.tls_ca_file.clone();
            AnyStore::Redis(Box::new(RedisStore::connect(redis, store_settings).await?))
        }
    })
}

/// Why a reload was refused. Nothing of the new configuration is then in
/// force: the clients and the signing key stay as they were.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The configuration file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A key file cannot be used, or the rotation cannot be recorded in
    /// `signing.state_file`.
    #[error("{field}: {source}")]
    Keys {
        /// The configuration field of the file that failed.
        field: String,
        /// What went wrong (a path and a cause, never key material).
        source: PublishError,
    },
    /// The client registry could not be built.
    #[error("clients: {0}")]
    Clients(#[from] SetupError),
}

/// What a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// How many clients are registered now.
    pub clients: usize,
    /// What happened to the signing key.
    pub keys: crate::publish::Rotation,
}

/// Re-reads the configuration file: the client registry and `[signing]`'s
/// key files. Other settings (listen address, store, token lifetime, the
/// state file, …) take effect at the next start.
pub struct Reloader {
    path: PathBuf,
    auth: Arc<Authenticator>,
    keys: Arc<KeyRing>,
    state: web::Data<AppState<AppStore>>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Reloads at `now` (unix seconds). The file, the key files and the
    /// new client registry are all made before anything changes; then the
    /// signing key is swapped (a replaced key retires at `now` plus the
    /// token lifetime and `ttl`, recorded in the state file first: if that
    /// write fails, nothing changes), the token cache told, and the client
    /// registry put in force. Blocking: it reads files.
    ///
    /// # Errors
    /// [`ReloadError`] naming what was refused; the previous clients and key
    /// then stay in force.
    pub fn reload(&self, now: u64) -> Result<Reloaded, ReloadError> {
        let settings = Settings::load(&self.path)?;
        // Never generate a key on reload: a missing file is a mistake to
        // report, not a rotation to make.
        let keys = load_keys(&settings.signing, false)
            .map_err(|(field, source)| ReloadError::Keys { field, source })?;
        let registry = Registry::build(&settings, Some(&self.auth.registry()))?;
        let rotation = self
            .keys
            .rotate(keys, now)
            .map_err(|source| ReloadError::Keys {
                field: "signing.state_file".into(),
                source,
            })?;
        if rotation.resign {
            self.state.service.signing_key_changed();
        }
        self.auth.install(registry);
        Ok(Reloaded {
            clients: settings.clients.len(),
            keys: rotation,
        })
    }

    /// [`Reloader::reload`] now, with the outcome logged (kids and retire
    /// times; never key material).
    fn reload_and_log(&self) {
        let now = crate::http::handlers::unix_now();
        match self.reload(now) {
            Ok(done) => {
                let keys = &done.keys;
                if keys.rotated {
                    tracing::info!(
                        previous = %keys.previous,
                        kid = %keys.signing,
                        generation = keys.generation,
                        "signing key rotated; the previous key stays in the JWKS until its tokens have expired"
                    );
                }
                for (kid, retire_at) in &keys.retiring {
                    tracing::info!(kid = %kid, retire_at, "replaced signing key still published");
                }
                tracing::info!(
                    clients = done.clients,
                    kid = %keys.signing,
                    "configuration reloaded"
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration reload refused; keeping the previous clients and signing key");
            }
        }
    }
}

/// Installs a `SIGHUP` handler and spawns a task that reloads on each
/// signal until `shutdown` completes. The handler is installed before this
/// returns, so a signal sent afterwards is never lost (nor fatal).
///
/// # Errors
/// The I/O error when the signal handler cannot be installed.
fn spawn_reload_on_sighup<F>(
    reloader: Arc<Reloader>,
    shutdown: F,
) -> std::io::Result<tokio::task::JoinHandle<()>>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                got = hup.recv() => {
                    if got.is_none() {
                        break;
                    }
                    tracing::info!(path = %reloader.path.display(), "SIGHUP: reloading configuration");
                    let reloader = Arc::clone(&reloader);
                    // Reading files is blocking work; the outcome is logged
                    // inside.
                    let _ = tokio::task::spawn_blocking(move || reloader.reload_and_log()).await;
                }
            }
        }
    }))
}

/// Opens the key ring: the configured keys, and the replaced keys still
/// retiring according to `signing.state_file`, which is then brought up to
/// date (a failure to write it is logged, not fatal: see the README).
///
/// # Errors
/// [`StartupError::Keys`] naming the field of the file that failed.
pub fn open_key_ring(signing: &SigningSettings) -> Result<KeyRing, StartupError> {
    let keys = load_keys(signing, signing.generate_if_missing)
        .map_err(|(field, source)| StartupError::Keys { field, source })?;
    let options = RingOptions {
        state_file: Some(signing.state_file.clone()),
        retire_after: signing.token_lifetime.saturating_add(signing.ttl),
    };
    let now = crate::http::handlers::unix_now();
    let ring = KeyRing::open(keys, options, now).map_err(|source| StartupError::Keys {
        field: "signing.state_file".into(),
        source,
    })?;
    for (kid, retire_at) in ring.retiring(now) {
        tracing::info!(kid = %kid, retire_at, "replaced signing key still published");
    }
    if let Err(e) = ring.persist() {
        // This process publishes what it read either way; only a later
        // restart could forget a key retiring now (README, "Key rotation").
        tracing::warn!(error = %e, field = "signing.state_file", "cannot record the signing keys");
    }
    Ok(ring)
}

/// Loads the signing key (generating it first when `generate` and missing)
/// and the extra published keys.
///
/// # Errors
/// The configuration field of the file that failed, and why.
fn load_keys(signing: &SigningSettings, generate: bool) -> Result<KeySet, (String, PublishError)> {
    let field = |name: &str| name.to_owned();
    let path = &signing.key_file;
    let key = if path.is_file() {
        ServiceKey::load_pem(path).map_err(|source| (field("signing.key_file"), source))?
    } else if generate {
        let key = ServiceKey::generate();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                (
                    field("signing.key_file"),
                    PublishError::Io {
                        action: "cannot create the key directory",
                        path: dir.to_path_buf(),
                        source: e,
                    },
                )
            })?;
        }
        key.save_pem(path)
            .map_err(|source| (field("signing.key_file"), source))?;
        tracing::info!(kid = key.kid(), path = %path.display(), "generated a new service signing key");
        key
    } else {
        return Err((
            field("signing.key_file"),
            PublishError::Io {
                action: "cannot read the signing key (create one with `statuslist keygen --out DIR`)",
                path: path.clone(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
        ));
    };
    let key = match &signing.certificate_chain_file {
        None => key,
        Some(chain) => {
            let field = || field("signing.certificate_chain_file");
            let pem = std::fs::read(chain).map_err(|e| {
                (
                    field(),
                    PublishError::Io {
                        action: "cannot read the certificate chain",
                        path: chain.clone(),
                        source: e,
                    },
                )
            })?;
            key.with_certificate_chain(&pem, chain)
                .map_err(|source| (field(), source))?
        }
    };
    let mut set = KeySet::new(key);
    for (i, extra) in signing.publish_key_files.iter().enumerate() {
        let public = load_public_pem(extra)
            .map_err(|source| (format!("signing.publish_key_files[{i}]"), source))?;
        set.add_public(&public);
    }
    Ok(set)
}
