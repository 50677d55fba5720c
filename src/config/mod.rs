//! Configuration: one TOML file, every field overridable by `STATUSLIST_*`
//! environment variables, read with figment and parsed once into
//! [`Settings`], with errors that name the offending field.
//!
//! Environment variables nest with `__`: `STATUSLIST_PUBLIC_BASE_URL`,
//! `STATUSLIST_JWKS__TIMEOUT_MS`. Values are parsed the figment way, so even
//! the client list can be given as `STATUSLIST_CLIENTS='[{id="a", ...}]'`.
//!
//! ```toml
//! public_base_url = "https://status.example.com"
//! listen = "127.0.0.1:8080"
//! idempotency_window_secs = 3600
//!
//! [jwks]                      # how client JWKS are fetched and cached
//! timeout_ms = 2000
//! max_bytes = 65536
//! default_ttl_secs = 300
//!
//! [[clients]]
//! id = "clientId-abcdef"      # the `iss` of its request JWTs
//! format = "token"            # lists under /t/; "bitstring" → /b/
//! jwks_uri = "https://issuer.example/.well-known/jwks.json"
//! # or: jwks = { keys = [...] }   or: jwks_file = "examples/client.jwks.json"
//! algorithms = ["ES256"]      # ES256 (default), ES384, EdDSA, PS256
//! allow_insecure_jwks = false # allow an http:// jwks_uri (localhost dev)
//! # status-change events, signed with the file's content (one line):
//! webhook = { url = "https://issuer.example/hooks/status", secret_file = "/etc/statuslist/hook.secret" }
//! allow_insecure_webhook = false # allow an http:// webhook url (localhost dev)
//!
//! [webhooks]                  # delivery, for every client with a webhook
//! timeout_ms = 10000          # one attempt, connecting included
//! retry_initial_ms = 1000     # first retry delay, doubled per attempt...
//! retry_max_secs = 3600       # ...up to this (with jitter)
//! max_age_secs = 86400        # then dead-lettered
//! concurrency = 16            # deliveries in flight per replica
//! poll_interval_ms = 250
//! lease_secs = 60             # must exceed timeout_ms
//! recheck_ms = 500
//! ```
//!
//! Parse, don't validate: the file is read into private "raw" structs that
//! are the file format (`raw`), then converted once into typed settings —
//! `Duration`s for every `*_secs`/`*_ms`, [`Bits`], `NonZero*` where zero is
//! refused, parsed URLs, [`ClientId`]s — so no user of [`Settings`] converts
//! or checks again. An absent field takes the typed section's `Default`.
//!
//! Every key is checked: a key no struct here knows (a misspelling, a
//! setting of another version) is refused at start-up with the key and the
//! file or variable it came from, rather than silently ignored in favour of
//! its default. Outside development mode, a client registered with the
//! public demo key of `examples/` is refused too.
//!
//! This module uses [`crate::domain`] and [`crate::jwk`] (client key sets),
//! never `auth`, which reads it.

mod raw;
mod urls;

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use url::Url;

pub use crate::jwk::DEMO_CLIENT_KEY_PEM;
pub use urls::{PublicBaseUrl, RedisUrl, cluster_nodes, redact_url};

use crate::domain::{Bits, ClientId, ListFormat, SigAlg};
use crate::jwk::KeySet;
use raw::RawSettings;

/// The id of the development-mode demo client (token lists).
pub const DEMO_CLIENT: &str = "demo";
/// The id of the development-mode demo client with bitstring lists.
pub const DEMO_BITSTRING_CLIENT: &str = "demo-bitstring";

/// The prefix of environment variables that override the file.
pub const ENV_PREFIX: &str = "STATUSLIST_";

/// `STATUSLIST_*` variables that are not settings: the configuration path
/// (`STATUSLIST_CONFIG`) and the CLI's service URL (`STATUSLIST_URL`).
/// Every other `STATUSLIST_*` variable must name a setting.
const ENV_NOT_SETTINGS: &[&str] = &["config", "url"];

/// The environment provider: `STATUSLIST_*`, nested with `__`.
fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX)
        .split("__")
        .ignore(ENV_NOT_SETTINGS)
}

/// Why the configuration could not be used. Every message names the field.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is missing or unreadable.
    #[error("config file '{path}': {reason}")]
    File {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A key nothing reads (a misspelling), or a value of the wrong type or
    /// shape. Never holds a string value as given: it could be a password.
    #[error("{key}: {reason} (in {origin})")]
    Load {
        /// The key, e.g. `store.lease_sec` or `clients[0].jwks_url`.
        key: String,
        /// What is wrong with it.
        reason: String,
        /// Where it was given: `file PATH`, `environment variable NAME`.
        origin: String,
    },
    /// A value is well typed but not acceptable.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field, e.g. `clients[1].id`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// How client JWKS documents are fetched and cached (`[jwks]`). The TTLs,
/// the cooldown, the staleness bound and the backoff are whole seconds (the
/// unit of the request clock they are compared with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSettings {
    /// Total time allowed for one fetch (`timeout_ms`; above zero).
    pub timeout: Duration,
    /// Time allowed to connect (`connect_timeout_ms`; above zero).
    pub connect_timeout: Duration,
    /// Largest JWKS document accepted, in bytes.
    pub max_bytes: NonZeroUsize,
    /// Cache lifetime when the response has no `Cache-Control: max-age`
    /// (`default_ttl_secs`; between `min_ttl` and `max_ttl`).
    pub default_ttl: Duration,
    /// Lower bound applied to a response's `max-age` (`min_ttl_secs`; at
    /// least 1 s, at most `max_ttl`).
    pub min_ttl: Duration,
    /// Upper bound applied to a response's `max-age` (`max_ttl_secs`).
    pub max_ttl: Duration,
    /// An unknown `kid` triggers at most one refresh per client per this
    /// long; a failed refresh of an expired set is retried no sooner
    /// (`refresh_cooldown_secs`).
    pub refresh_cooldown: Duration,
    /// How long past its expiry the last good set keeps serving while
    /// refreshes fail (`max_stale_secs`).
    pub max_stale: Duration,
    /// With nothing cached, how long after a failed fetch the next one may
    /// start; concurrent requests share one fetch regardless
    /// (`failure_backoff_secs`).
    pub failure_backoff: Duration,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings {
            timeout: Duration::from_millis(2000),
            connect_timeout: Duration::from_millis(2000),
            max_bytes: NonZeroUsize::new(64 * 1024).unwrap_or(NonZeroUsize::MIN),
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(86_400),
            refresh_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(86_400),
            failure_backoff: Duration::from_secs(1),
        }
    }
}

/// Where a client's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Fetched from this URL and cached (https, or http when the client
    /// allows insecure JWKS; always with a host).
    Remote(Url),
    /// Given in the configuration (`jwks` inline or `jwks_file`), parsed at
    /// load time.
    Static(Arc<KeySet>),
}

/// One registered client, validated.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// The client's id, the `iss` of its requests.
    pub id: ClientId,
    /// The format of its lists.
    pub format: ListFormat,
    /// Its keys.
    pub keys: KeySource,
    /// The algorithms it may sign with (never empty, no duplicates).
    pub algorithms: Vec<SigAlg>,
    /// Where its status-change events are sent (`webhook`), if anywhere.
    /// Taken at start-up: a `SIGHUP` reload re-reads and checks it, but the
    /// running dispatcher keeps the webhooks it started with until the
    /// process restarts.
    pub webhook: Option<WebhookTarget>,
}

/// A client's webhook: where its events are POSTed and the secret they are
/// signed with (`webhook = { url = "https://…", secret_file = "…" }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookTarget {
    /// https with a host and no credentials (http only with the client's
    /// `allow_insecure_webhook`, for local development).
    pub url: Url,
    /// The HMAC key of `Statuslist-Signature`, read from `secret_file` at
    /// start-up.
    pub secret: WebhookSecret,
}

/// A webhook signing secret. Its `Debug` prints `[redacted]`, so that no
/// settings dump, error or log line can show it; only
/// [`WebhookSecret::expose`] gives the bytes, for the signer.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(Arc<[u8]>);

impl WebhookSecret {
    /// A secret of these bytes (the file's content without its trailing
    /// newline).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        WebhookSecret(Arc::from(bytes.into()))
    }

    /// The key bytes: for computing signatures, never for printing.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `[webhooks]`: how events are delivered, for every client with a
/// `webhook`. Each replica runs one dispatcher with these settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// One delivery attempt, connecting included; past it the attempt has
    /// failed (`timeout_ms`; 10 s by default).
    pub timeout: Duration,
    /// The delay before the first retry; each further one doubles it
    /// (`retry_initial_ms`; 1 s by default).
    pub retry_initial: Duration,
    /// The longest delay between two attempts (`retry_max_secs`; 1 h by
    /// default; at least `retry_initial`).
    pub retry_max: Duration,
    /// How long after its change an event is still retried; a failure past
    /// it dead-letters the event (`max_age_secs`; 24 h by default).
    pub max_age: Duration,
    /// Deliveries in flight per replica (`concurrency`; 16 by default).
    pub concurrency: NonZeroUsize,
    /// How often the outbox is looked at when nothing nudges the
    /// dispatcher: events of other replicas, retries coming due
    /// (`poll_interval_ms`; 250 ms by default).
    pub poll_interval: Duration,
    /// How long a taken event is held against other replicas; a replica
    /// that dies mid-delivery has its events taken over after it
    /// (`lease_secs`; 60 s by default; must exceed `timeout`, so that a live
    /// delivery is never doubled).
    pub lease: Duration,
    /// How long an event held back by an earlier undelivered event of its
    /// entry waits before it is looked at again (`recheck_ms`; 500 ms by
    /// default).
    pub recheck: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(3600),
            max_age: Duration::from_secs(86_400),
            concurrency: NonZeroUsize::new(16).unwrap_or(NonZeroUsize::MIN),
            poll_interval: Duration::from_millis(250),
            lease: Duration::from_secs(60),
            recheck: Duration::from_millis(500),
        }
    }
}

/// The whole parsed configuration, built once at start-up (and on each
/// reload) and passed by reference.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The service's public base URL; list URIs are `<base>/t/<id>` and
    /// `<base>/b/<id>`.
    pub public_base_url: PublicBaseUrl,
    /// The address the HTTP server binds.
    pub listen: SocketAddr,
    /// How long idempotency records live; also the age of the oldest `iat`
    /// accepted (`idempotency_window_secs`; whole seconds, at least 1).
    pub idempotency_window: Duration,
    /// JWKS fetching and caching.
    pub jwks: JwksSettings,
    /// Registered clients, unique by id.
    pub clients: Vec<ClientSettings>,
    /// Which store, and how to reach it (`[store]`).
    pub store: StoreConfig,
    /// Shape of new lists (`[lists]`).
    pub lists: ListSettings,
    /// Service signing keys and published tokens (`[signing]`).
    pub signing: SigningSettings,
    /// HTTP server limits (`[http]`).
    pub http: HttpSettings,
    /// Webhook delivery (`[webhooks]`).
    pub webhooks: WebhookSettings,
    /// Set only by [`Settings::development`]: the shipped demo key is
    /// accepted only then.
    development: bool,
}

/// `[http]`: the HTTP server's limits, so that slow or idle clients cannot
/// hold connections and workers for long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// How long a request body may take to arrive once its headers are in;
    /// then 408 and the connection is closed (`body_timeout_ms`; 1 ms to
    /// [`MAX_HTTP_TIMEOUT`]).
    pub body_timeout: Duration,
    /// How long the request line and headers may take; then 408 (actix-web's
    /// `client_request_timeout`; `header_timeout_ms`, 1 ms to
    /// [`MAX_HTTP_TIMEOUT`]).
    pub header_timeout: Duration,
    /// How long an idle connection is kept open for a next request; `None`
    /// closes it after every response (`keep_alive_secs = 0`).
    pub keep_alive: Option<Duration>,
    /// Open connections per worker thread; further clients wait in the
    /// listen backlog until one closes.
    pub max_connections: NonZeroUsize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            body_timeout: Duration::from_millis(5000),
            header_timeout: Duration::from_millis(5000),
            keep_alive: Some(Duration::from_secs(5)),
            max_connections: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// The longest `http.body_timeout_ms` and `http.header_timeout_ms` accepted:
/// a request JWT is a few KiB, and a longer wait only serves slow-loris
/// clients.
pub const MAX_HTTP_TIMEOUT: Duration = Duration::from_millis(60_000);

/// The store the service runs on: chosen at run time, never by Cargo
/// features. `Debug` and `Display` hide a Redis password (`***`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// redb in one file: one process, zero setup.
    Embedded {
        /// The database file (its directory is created when missing).
        path: PathBuf,
    },
    /// Redis (`redis://`, `rediss://`, `redis+unix://`), or a Redis Cluster
    /// (`redis+cluster://h:p,h:p,…`, `rediss+cluster://…`): many replicas.
    Redis {
        /// The connection URL (may hold a password: never logged).
        url: RedisUrl,
    },
}

impl std::fmt::Display for StoreKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreKind::Embedded { path } => write!(f, "embedded:{}", path.display()),
            StoreKind::Redis { url } => url.fmt(f),
        }
    }
}

/// `[store]`: where lists and idempotency records live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The adapter and its address, from `url`.
    pub kind: StoreKind,
    /// Prefix of every Redis key: printable ASCII without spaces or braces.
    pub redis_prefix: String,
    /// Upper bound for every store command (`command_timeout_ms`; above
    /// zero).
    pub command_timeout: Duration,
    /// Redis: announce every change to the other replicas and listen for
    /// theirs (pub/sub), so that they drop cached tokens at once instead of
    /// after `signing.freshness_ms` (default true). Unused by the embedded
    /// store.
    pub notify_changes: bool,
    /// Redis: how many hash tags (`{client}`, `{client/1}`, …) each
    /// client's lists, records and entries are spread over, so that one big
    /// client's allocations reach every master of a cluster (1 to 1024;
    /// default 1, the layout of single-node deployments). Unused by the
    /// embedded store.
    pub shards_per_client: u16,
    /// Redis: how many replicas every write must reach (`WAIT`) before it
    /// is acknowledged; unset, 1 on a Redis Cluster (a failover promotes a
    /// replica, which must have every acknowledged write) and 0 on one
    /// node. Unused by the embedded store.
    pub wait_replicas: Option<u16>,
    /// Redis over TLS (`rediss://`, `rediss+cluster://`): a PEM file of the
    /// certificate authorities to trust for the server's certificate, for a
    /// Redis whose certificate a private CA signed; unset, the system's
    /// trusted roots. Read when the store connects.
    pub tls_ca_file: Option<PathBuf>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Embedded {
                path: PathBuf::from("./data/statuslist.redb"),
            },
            redis_prefix: "statuslist:".into(),
            command_timeout: Duration::from_millis(500),
            notify_changes: true,
            shards_per_client: 1,
            wait_replicas: None,
            tls_ca_file: None,
        }
    }
}

/// `[lists]`: the shape of every new list, and how many entries one request
/// may take from them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSettings {
    /// Entries per list (131,072 by default; at most
    /// [`crate::domain::max_list_capacity`] of `bits`).
    pub capacity: NonZeroU64,
    /// Bits per entry (2 by default; always 2 when a client has bitstring
    /// lists).
    pub bits: Bits,
    /// The largest `count` one `/issue` may ask for (`max_batch`; by default
    /// [`DEFAULT_MAX_BATCH`] or `capacity` if smaller; never above
    /// `capacity`, since a request spans at most two lists).
    pub max_batch: NonZeroU32,
}

/// The default of `lists.max_batch` (when `lists.capacity` is not smaller).
pub const DEFAULT_MAX_BATCH: u32 = 100;

impl Default for ListSettings {
    fn default() -> Self {
        ListSettings {
            capacity: NonZeroU64::new(131_072).unwrap_or(NonZeroU64::MIN),
            bits: Bits::Two,
            max_batch: NonZeroU32::new(DEFAULT_MAX_BATCH).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// `[signing]`: the service's keys and the tokens signed with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningSettings {
    /// The PKCS#8 PEM file of the key that signs (ES256).
    pub key_file: PathBuf,
    /// Create `key_file` with a new key when it does not exist (development
    /// mode does; production should mount a key shared by all replicas).
    pub generate_if_missing: bool,
    /// More PEM files (private or public) whose public keys are published
    /// in the JWKS too, until removed: a key published before it signs, or
    /// any key kept by hand.
    pub publish_key_files: Vec<PathBuf>,
    /// A PEM file of X.509 certificates, leaf first, whose leaf certifies
    /// the signing key: sent as the `x5c` header of every signed list
    /// (`certificate_chain_file`; HAIP profiles require it). Replace it
    /// together with `key_file` on a rotation.
    pub certificate_chain_file: Option<PathBuf>,
    /// Where replaced signing keys (public halves) and their retire times
    /// are recorded, so that a restart keeps them published
    /// (`state_file`; by default `signing-state.json` beside `key_file`).
    /// Must be writable for a rotation to be accepted.
    pub state_file: PathBuf,
    /// Lifetime of a signed list token, `exp - iat` (`token_lifetime_secs`;
    /// whole seconds, at least 2).
    pub token_lifetime: Duration,
    /// How long verifiers may cache a list, `ttl` (`ttl_secs`; whole
    /// seconds, at least 1).
    pub ttl: Duration,
    /// How long a confirmed list version is trusted before the store is
    /// asked again; a failed check is remembered as long (`freshness_ms`).
    pub freshness: Duration,
    /// How many signed list tokens are kept in memory at most (10,000 by
    /// default); the least recently used is evicted first.
    pub cache_max_lists: NonZeroUsize,
    /// How many bytes of signed list tokens and their compressed segments
    /// are kept in memory at most (256 MiB by default).
    pub cache_max_bytes: NonZeroUsize,
    /// How long a published token is served before its list is compressed
    /// again at zlib level 9 and re-signed, smaller, in the background
    /// (`optimize_after_secs`; 1 s by default, 0: at the next GET).
    pub optimize_after: Duration,
}

impl Default for SigningSettings {
    fn default() -> Self {
        SigningSettings {
            key_file: PathBuf::from("./data/service-key.pem"),
            generate_if_missing: false,
            publish_key_files: Vec::new(),
            certificate_chain_file: None,
            state_file: PathBuf::from("./data/signing-state.json"),
            token_lifetime: Duration::from_secs(86_400),
            ttl: Duration::from_secs(300),
            freshness: Duration::from_millis(250),
            cache_max_lists: NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN),
            cache_max_bytes: NonZeroUsize::new(256 * 1024 * 1024).unwrap_or(NonZeroUsize::MIN),
            optimize_after: Duration::from_secs(1),
        }
    }
}

impl Settings {
    /// The figment the settings are read from: defaults, then the TOML file
    /// at `path` (if any), then `STATUSLIST_*` variables.
    pub fn figment(path: Option<&Path>) -> Figment {
        let mut f = Figment::new();
        if let Some(p) = path {
            f = f.merge(Toml::file_exact(p));
        }
        f.merge(env_provider())
    }

    /// Loads and parses the file at `path` with environment overrides.
    ///
    /// # Errors
    /// [`ConfigError::File`] when the file cannot be read, otherwise as
    /// [`Settings::from_figment`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        std::fs::metadata(path).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::from_figment(&Self::figment(Some(path)))
    }

    /// The development-mode settings used when no configuration file is
    /// given: embedded store and a signing key generated once under
    /// `./data`, listening on 127.0.0.1:8080, and two demo clients (`demo`
    /// with token lists, `demo-bitstring` with bitstring lists) whose key
    /// pair ships in `examples/demo-client.key.pem`. `STATUSLIST_*`
    /// variables still override every field.
    ///
    /// # Errors
    /// As [`Settings::from_figment`] (only an override can make it fail).
    pub fn development() -> Result<Self, ConfigError> {
        const TOML: &str = r#"
public_base_url = "http://127.0.0.1:8080"
listen = "127.0.0.1:8080"

[store]
url = "embedded:./data/statuslist.redb"

[signing]
key_file = "./data/service-key.pem"
generate_if_missing = true
"#;
        let jwks: serde_json::Value =
            serde_json::from_str(include_str!("../../examples/demo-client.jwks.json"))
                .map_err(|e| invalid("clients[0].jwks", e.to_string()))?;
        let clients = serde_json::json!([
            { "id": DEMO_CLIENT, "format": "token", "jwks": jwks },
            { "id": DEMO_BITSTRING_CLIENT, "format": "bitstring", "jwks": jwks },
        ]);
        Self::build(
            &Figment::new()
                .merge(Toml::string(TOML))
                .merge(Serialized::default("clients", clients))
                .merge(env_provider()),
            true,
        )
    }

    /// Whether these are the development-mode settings
    /// ([`Settings::development`]), the only ones that accept the shipped
    /// demo key.
    pub fn is_development(&self) -> bool {
        self.development
    }

    /// Parses TOML text alone, without environment overrides (tests,
    /// tools).
    ///
    /// # Errors
    /// As [`Settings::from_figment`].
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        Self::from_figment(&Figment::new().merge(Toml::string(toml)))
    }

    /// Extracts and parses settings from any figment (not development
    /// settings: the demo key is refused).
    ///
    /// # Errors
    /// [`ConfigError::Load`] for an unknown key or a value of the wrong
    /// type, [`ConfigError::Invalid`] naming the first field that is not
    /// acceptable: a bad URL or address, duplicate client ids, an unknown
    /// list format, a forbidden algorithm, a missing key file, an unusable
    /// JWKS or the shipped demo key, inconsistent JWKS limits, a list
    /// capacity the stores cannot hold.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        Self::build(figment, false)
    }

    fn build(figment: &Figment, development: bool) -> Result<Self, ConfigError> {
        let raw: RawSettings = figment.extract().map_err(|e| load_error(figment, &e))?;
        raw.parse(development)
    }
}

/// A figment error as a [`ConfigError::Load`]: the key in the notation of
/// the other errors (`clients[0].jwks_url`), where it was given, and what is
/// wrong, without echoing a string value (a misplaced URL could carry a
/// password).
fn load_error(figment: &Figment, e: &figment::Error) -> ConfigError {
    use figment::error::{Actual, Kind};
    let mut path = e.path.clone();
    let reason = match &e.kind {
        Kind::UnknownField(field, expected) => {
            // figment's path ends with the unknown key already; serde's
            // alone would end at the enclosing table.
            if path.last() != Some(field) {
                path.push(field.clone());
            }
            format!("unknown key; expected one of {}", expected.join(", "))
        }
        Kind::InvalidType(Actual::Str(_), expected) => {
            format!("invalid type: found a string, expected {expected}")
        }
        Kind::InvalidValue(Actual::Str(_), expected) => {
            format!("invalid value: a string, expected {expected}")
        }
        other => other.to_string(),
    };
    let key = key_name(&path);
    ConfigError::Load {
        key: if key.is_empty() {
            "(top level)".to_owned()
        } else {
            key
        },
        reason,
        origin: origin(figment, &path, e.metadata.as_ref()),
    }
}

/// `["clients", "0", "id"]` → `clients[0].id`.
fn key_name(path: &[String]) -> String {
    let mut out = String::new();
    for segment in path {
        if segment.parse::<usize>().is_ok() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(segment);
        }
    }
    out
}

/// Where the value at `path` came from: the file, the environment variable,
/// or the provider's name. `fallback` is the metadata figment attached to
/// the error (the enclosing value's), used when the value itself is not
/// found.
fn origin(figment: &Figment, path: &[String], fallback: Option<&figment::Metadata>) -> String {
    use figment::value::Value;
    let root = figment.find_value("").ok();
    let mut value = root.as_ref();
    for segment in path {
        value = value.and_then(|v| match v {
            Value::Dict(_, dict) => dict.get(segment),
            Value::Array(_, items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        });
    }
    let Some(md) = value
        .and_then(|v| figment.get_metadata(v.tag()))
        .or(fallback)
    else {
        return "the configuration".to_owned();
    };
    match &md.source {
        Some(figment::Source::File(file)) => format!("file {}", file.display()),
        _ if md.name.contains("environment") => {
            // Env nests with `__`; a list (`clients`) is one variable.
            let name: Vec<String> = path
                .iter()
                .take_while(|s| s.parse::<usize>().is_err())
                .map(|s| s.to_ascii_uppercase())
                .collect();
            format!("environment variable {ENV_PREFIX}{}", name.join("__"))
        }
        _ => md.name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::{is_demo_key, jwks_has_demo_key, remove_demo_keys};

    const KEY: &str = r#"{ kty = "EC", crv = "P-256", kid = "k1", x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0" }"#;

    fn client_toml(id: &str, extra: &str) -> String {
        format!(
            "[[clients]]\nid = \"{id}\"\nformat = \"token\"\njwks = {{ keys = [{KEY}] }}\n{extra}\n"
        )
    }

    #[test]
    fn defaults_and_a_valid_file() {
        let s = Settings::from_toml_str(&format!(
            "public_base_url = \"https://Status.example.com/\"\n{}{}",
            client_toml("a", "algorithms = [\"ES256\", \"EdDSA\"]"),
            "[[clients]]\nid = \"b\"\nformat = \"bitstring\"\njwks_uri = \"https://issuer.example/jwks\"\n"
        ))
        .unwrap();
        assert_eq!(s.public_base_url.as_str(), "https://status.example.com");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.idempotency_window, Duration::from_secs(3600));
        assert_eq!(s.jwks, JwksSettings::default());
        assert_eq!(s.signing.cache_max_lists.get(), 10_000);
        assert_eq!(s.signing.cache_max_bytes.get(), 256 * 1024 * 1024);
        assert_eq!(s.clients.len(), 2);
        assert_eq!(s.clients[0].algorithms, vec![SigAlg::Es256, SigAlg::EdDsa]);
        assert_eq!(s.clients[1].algorithms, vec![SigAlg::Es256]);
        assert_eq!(s.clients[1].format, ListFormat::Bitstring);
        assert!(matches!(s.clients[1].keys, KeySource::Remote(_)));
    }

    #[test]
    fn the_signing_state_sits_beside_the_key_unless_placed() {
        let state = |toml: &str| Settings::from_toml_str(toml).unwrap().signing.state_file;
        assert_eq!(
            state("[signing]\nkey_file = \"/etc/statuslist/keys/k.pem\"\n"),
            PathBuf::from("/etc/statuslist/keys/signing-state.json")
        );
        assert_eq!(
            state("[signing]\nkey_file = \"k.pem\"\n"),
            PathBuf::from("signing-state.json")
        );
        assert_eq!(state(""), PathBuf::from("./data/signing-state.json"));
        assert_eq!(
            state("[signing]\nkey_file = \"/ro/k.pem\"\nstate_file = \"/var/lib/s.json\"\n"),
            PathBuf::from("/var/lib/s.json")
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(String, &str)> = vec![
            (format!("{}{}", client_toml("x", ""), client_toml("x", "")), "clients[1].id: duplicate client id 'x'"),
            (client_toml("a b", ""), "clients[0].id"),
            (client_toml("x", "").replace("\"token\"", "\"tokens\""), "clients[0].format: unknown list format 'tokens'"),
            (client_toml("x", "").replace("format = \"token\"\n", ""), "clients[0].format: missing"),
            (client_toml("x", "algorithms = [\"ES256\", \"none\"]"), "clients[0].algorithms[1]: 'none' is not allowed"),
            (client_toml("x", "algorithms = [\"HS256\"]"), "clients[0].algorithms[0]: 'HS256' is not allowed"),
            (client_toml("x", "algorithms = []"), "clients[0].algorithms: must not be empty"),
            (
                "[[clients]]\nid = \"x\"\nformat = \"token\"\njwks_uri = \"http://issuer.example/jwks\"\n".into(),
                "clients[0].jwks_uri: 'http://issuer.example/jwks' is not https",
            ),
            (
                "[[clients]]\nid = \"x\"\nformat = \"token\"\njwks_uri = \"not a url\"\n".into(),
                "clients[0].jwks_uri: 'not a url' is not a URL",
            ),
            (
                "[[clients]]\nid = \"x\"\nformat = \"token\"\njwks_file = \"/nonexistent/keys.json\"\n".into(),
                "clients[0].jwks_file: cannot read '/nonexistent/keys.json'",
            ),
            ("[[clients]]\nid = \"x\"\nformat = \"token\"\n".into(), "clients[0].jwks_uri: missing"),
            (
                "[[clients]]\nid = \"x\"\nformat = \"token\"\njwks = { keys = [] }\n".into(),
                "clients[0].jwks: no usable verification key",
            ),
            ("public_base_url = \"ftp://x\"\n".into(), "public_base_url: 'ftp://x' must be"),
            ("public_base_url = \"nope\"\n".into(), "public_base_url: 'nope' is not a URL"),
            ("listen = \"localhost\"\n".into(), "listen: 'localhost' is not"),
            ("[jwks]\ntimeout_ms = 0\n".into(), "jwks.timeout_ms: must be at least 1"),
            ("[jwks]\ndefault_ttl_secs = 10\n".into(), "jwks.default_ttl_secs"),
            ("idempotency_window_secs = 0\n".into(), "idempotency_window_secs"),
            ("[signing]\ncache_max_lists = 0\n".into(), "signing.cache_max_lists: must be at least 1"),
            ("[signing]\ncache_max_bytes = 0\n".into(), "signing.cache_max_bytes: must be at least 1"),
        ];
        for (toml, want) in cases {
            let err = Settings::from_toml_str(&toml).unwrap_err().to_string();
            assert!(err.starts_with(want), "got {err:?}, want {want:?}");
        }
        let err = Settings::from_toml_str("[jwks]\ntimeout_ms = \"fast\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("jwks.timeout_ms"), "{err}");
    }

    #[test]
    fn insecure_jwks_needs_the_flag() {
        let s = Settings::from_toml_str(
            "[[clients]]\nid = \"x\"\nformat = \"token\"\njwks_uri = \"http://127.0.0.1:9/jwks\"\nallow_insecure_jwks = true\n",
        )
        .unwrap();
        assert!(matches!(&s.clients[0].keys, KeySource::Remote(u) if u.scheme() == "http"));
    }

    /// Settings read from TOML written to a file, without the process
    /// environment (tests run in parallel and must not see each other's).
    fn from_file(dir: &Path, toml: &str) -> (PathBuf, Result<Settings, ConfigError>) {
        let path = dir.join("statuslist.toml");
        std::fs::write(&path, toml).unwrap();
        let result = Settings::from_figment(&Figment::new().merge(Toml::file_exact(&path)));
        (path, result)
    }

    #[test]
    fn unknown_keys_are_refused_naming_the_key_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(String, &str)> = vec![
            ("lisen = \"127.0.0.1:80\"\n".into(), "lisen: unknown key"),
            (
                "[store]\nlease_sec = 3\n".into(),
                "store.lease_sec: unknown key",
            ),
            (
                "[store]\nredis_url = \"redis://:s3cret@h\"\n".into(),
                "store.redis_url: unknown key",
            ),
            ("[jwks]\ntimeout = 5\n".into(), "jwks.timeout: unknown key"),
            (
                "[lists]\ncapacty = 5\n".into(),
                "lists.capacty: unknown key",
            ),
            (
                "[signing]\nkeyfile = \"k.pem\"\n".into(),
                "signing.keyfile: unknown key",
            ),
            (
                "[http]\nbody_timeout = 5\n".into(),
                "http.body_timeout: unknown key",
            ),
            ("[singing]\nttl_secs = 5\n".into(), "singing: unknown key"),
            (
                format!(
                    "{}{}",
                    client_toml("a", ""),
                    client_toml("b", "jwks_url = \"https://x/\"")
                ),
                "clients[1].jwks_url: unknown key",
            ),
        ];
        for (toml, want) in cases {
            let (path, result) = from_file(dir.path(), &toml);
            let err = result.unwrap_err().to_string();
            assert!(err.starts_with(want), "got {err:?}, want {want:?}");
            assert!(err.contains(&format!("file {}", path.display())), "{err}");
            assert!(err.contains("expected one of"), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
        // A value of the wrong type names key and file, but never echoes a
        // string (it could be a URL with a password).
        let (path, result) = from_file(dir.path(), "[store]\ncommand_timeout_ms = \"s3cret\"\n");
        let err = result.unwrap_err().to_string();
        assert!(
            err.starts_with("store.command_timeout_ms: invalid type"),
            "{err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        // lease_secs is still a key (deprecated and ignored, not unknown).
        let (_, result) = from_file(dir.path(), "[store]\nlease_secs = 30\n");
        assert!(result.is_ok());
    }

    #[test]
    fn unknown_keys_in_the_environment_name_the_variable() {
        // figment's Env reads the process environment; a provider of the
        // same shape and metadata stands in for it, so no variable is set
        // under tests running in parallel.
        let err = Settings::from_figment(
            &Figment::new().merge(
                Serialized::default("store", serde_json::json!({ "urll": "redis://h" }))
                    .profile(figment::Profile::Default),
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("store.urll: unknown key"), "{err}");
        assert_eq!(
            super::origin(
                &Figment::new(),
                &["store".to_owned(), "urll".to_owned()],
                Some(&figment::Metadata::named(
                    "`STATUSLIST_` environment variable(s)"
                )),
            ),
            "environment variable STATUSLIST_STORE__URLL"
        );
    }

    /// The demo JWKS as shipped, with its kid replaced by `kid`.
    fn demo_jwks(kid: &str) -> serde_json::Value {
        let mut doc: serde_json::Value =
            serde_json::from_str(include_str!("../../examples/demo-client.jwks.json")).unwrap();
        doc["keys"][0]["kid"] = kid.into();
        doc
    }

    #[test]
    fn the_demo_key_is_recognised_by_its_key_not_its_kid() {
        let shipped = demo_jwks("3mA8OeUBt7m8l83xs40FI3ZKt_DBEQpJ5FYJ4y2rqGg");
        assert!(jwks_has_demo_key(&shipped));
        assert!(jwks_has_demo_key(&demo_jwks("another-kid")));
        // The shipped JWKS is the public half of the shipped private key.
        let key = crate::publish::keys::ServiceKey::from_pkcs8_pem(DEMO_CLIENT_KEY_PEM).unwrap();
        let jwk = serde_json::to_value(key.public_jwk()).unwrap();
        assert!(is_demo_key(&jwk));
        assert_eq!(jwk["x"], shipped["keys"][0]["x"]);
        // Any other key is not.
        let other = crate::publish::keys::ServiceKey::generate();
        assert!(!is_demo_key(
            &serde_json::to_value(other.public_jwk()).unwrap()
        ));
        let mut doc = serde_json::json!({ "keys": [jwk, other.public_jwk()] });
        assert_eq!(remove_demo_keys(&mut doc), 1);
        assert_eq!(doc["keys"].as_array().unwrap().len(), 1);
        assert!(!jwks_has_demo_key(&doc));
    }

    #[test]
    fn the_demo_key_is_refused_outside_development() {
        let dir = tempfile::tempdir().unwrap();
        for kid in ["3mA8OeUBt7m8l83xs40FI3ZKt_DBEQpJ5FYJ4y2rqGg", "renamed"] {
            let inline = format!(
                "[[clients]]\nid = \"a\"\nformat = \"token\"\njwks = {}\n",
                json_to_toml(&demo_jwks(kid))
            );
            let err = Settings::from_toml_str(&inline).unwrap_err().to_string();
            assert!(
                err.starts_with(
                    "clients[0].jwks: this is the public demo key shipped in examples/"
                ),
                "{err}"
            );
            let file = dir.path().join("copy.jwks.json");
            std::fs::write(&file, demo_jwks(kid).to_string()).unwrap();
            let toml = format!(
                "{}[[clients]]\nid = \"b\"\nformat = \"token\"\njwks_file = \"{}\"\n",
                client_toml("a", ""),
                file.display()
            );
            let err = Settings::from_toml_str(&toml).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "clients[1].jwks_file: '{}': this is the public demo key",
                    file.display()
                )),
                "{err}"
            );
        }
        // Development mode is what the demo key is for.
        let dev = Settings::development().unwrap();
        assert!(dev.is_development());
        assert_eq!(dev.clients[0].id.as_str(), DEMO_CLIENT);
        assert!(!Settings::from_toml_str("").unwrap().is_development());
    }

    /// The inline-table TOML of a JSON value (strings, numbers, arrays,
    /// objects: what a JWKS holds).
    fn json_to_toml(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::Object(map) => {
                let members: Vec<String> = map
                    .iter()
                    .map(|(k, v)| format!("{k:?} = {}", json_to_toml(v)))
                    .collect();
                format!("{{ {} }}", members.join(", "))
            }
            serde_json::Value::Array(items) => {
                let items: Vec<String> = items.iter().map(json_to_toml).collect();
                format!("[{}]", items.join(", "))
            }
            other => other.to_string(),
        }
    }

    #[test]
    fn the_deploy_configuration_registers_no_demo_client() {
        // deploy/ as compose mounts it at /etc/statuslist, with the client
        // key files an operator creates with `statuslist keygen --client`.
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let etc = tempfile::tempdir().unwrap();
        for entry in std::fs::read_dir(repo.join("deploy")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), etc.path().join(entry.file_name())).unwrap();
            }
        }
        let text = std::fs::read_to_string(etc.path().join("statuslist.toml"))
            .unwrap()
            .replace("/etc/statuslist/", &format!("{}/", etc.path().display()));
        let clients: Vec<serde_json::Value> = Figment::new()
            .merge(Toml::string(&text))
            .extract_inner("clients")
            .unwrap();
        assert!(
            !clients.is_empty(),
            "deploy/statuslist.toml registers a client"
        );
        for file in clients.iter().filter_map(|c| c["jwks_file"].as_str()) {
            let file = Path::new(file);
            assert!(
                file.starts_with(etc.path().join("keys")),
                "{}: client keys live in deploy/keys, made by keygen",
                file.display()
            );
            if !file.exists() {
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                let key = crate::publish::keys::ServiceKey::generate();
                let jwks = serde_json::json!({ "keys": [key.public_jwk()] });
                std::fs::write(file, jwks.to_string()).unwrap();
            }
        }
        let settings = Settings::from_toml_str(&text).unwrap();
        assert!(!settings.is_development());
        assert!(!settings.clients.is_empty());
        for entry in std::fs::read_dir(etc.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let doc: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                assert!(
                    !jwks_has_demo_key(&doc),
                    "{} is the demo key",
                    path.display()
                );
            }
        }
    }

    #[test]
    fn capacity_is_bounded_by_what_the_stores_hold() {
        let ok = |toml: &str| Settings::from_toml_str(toml).map(|s| s.lists.capacity.get());
        assert_eq!(
            ok("[lists]\nbits = 1\ncapacity = 4294967296\n").unwrap(),
            1 << 32
        );
        assert_eq!(
            ok("[lists]\nbits = 2\ncapacity = 2147483648\n").unwrap(),
            1 << 31
        );
        for (toml, max) in [
            ("[lists]\nbits = 2\ncapacity = 2147483649\n", "2147483648"),
            ("[lists]\nbits = 8\ncapacity = 4294967296\n", "536870912"),
            ("[lists]\nbits = 1\ncapacity = 8589934592\n", "4294967296"),
            ("[lists]\ncapacity = 0\n", "2147483648"),
        ] {
            let err = ok(toml).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("lists.capacity: must be between 1 and {max}")),
                "{err}"
            );
        }
    }

    #[test]
    fn max_batch_defaults_to_100_and_stays_within_the_capacity() {
        let batch = |toml: &str| Settings::from_toml_str(toml).map(|s| s.lists.max_batch.get());
        assert_eq!(batch("").unwrap(), 100);
        assert_eq!(ListSettings::default().max_batch.get(), DEFAULT_MAX_BATCH);
        assert_eq!(batch("[lists]\ncapacity = 8\n").unwrap(), 8);
        assert_eq!(batch("[lists]\nmax_batch = 1\n").unwrap(), 1);
        assert_eq!(
            batch("[lists]\ncapacity = 500\nmax_batch = 500\n").unwrap(),
            500
        );
        for (toml, max) in [
            ("[lists]\nmax_batch = 0\n", "131072"),
            ("[lists]\ncapacity = 64\nmax_batch = 65\n", "64"),
            ("[lists]\nmax_batch = 4294967296\n", "131072"),
            (
                "[lists]\nbits = 1\ncapacity = 4294967296\nmax_batch = 4294967296\n",
                "4294967295",
            ),
        ] {
            let err = batch(toml).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("lists.max_batch: must be between 1 and {max}")),
                "{toml}: {err}"
            );
        }
    }

    #[test]
    fn http_limits_are_checked() {
        let s = Settings::from_toml_str("").unwrap();
        assert_eq!(s.http, HttpSettings::default());
        let s = Settings::from_toml_str("[http]\nbody_timeout_ms = 250\nkeep_alive_secs = 0\n")
            .unwrap();
        assert_eq!(s.http.body_timeout, Duration::from_millis(250));
        for (toml, want) in [
            (
                "[http]\nbody_timeout_ms = 0\n",
                "http.body_timeout_ms: must be between 1 and",
            ),
            (
                "[http]\nbody_timeout_ms = 600000\n",
                "http.body_timeout_ms: must be between 1 and",
            ),
            (
                "[http]\nheader_timeout_ms = 0\n",
                "http.header_timeout_ms: must be between 1 and",
            ),
            (
                "[http]\nmax_connections = 0\n",
                "http.max_connections: must be at least 1",
            ),
        ] {
            let err = Settings::from_toml_str(toml).unwrap_err().to_string();
            assert!(err.starts_with(want), "got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn cluster_settings_are_read_and_checked() {
        let s = Settings::from_toml_str(
            "[store]\nurl = \"redis+cluster://:s3cret@a:7000,b:7001\"\nshards_per_client = 3\nwait_replicas = 0\n",
        )
        .unwrap();
        assert_eq!(s.store.shards_per_client, 3);
        assert_eq!(s.store.wait_replicas, Some(0));
        assert_eq!(s.store.tls_ca_file, None);
        assert_eq!(
            s.store.kind.to_string(),
            "redis+cluster://:***@a:7000,b:7001"
        );
        let s = Settings::from_toml_str(
            "[store]\nurl = \"rediss+cluster://a:7000\"\ntls_ca_file = \"/etc/ca.pem\"\n",
        )
        .unwrap();
        assert_eq!(
            s.store.tls_ca_file.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        let d = Settings::from_toml_str("[store]\nurl = \"redis://h\"\n").unwrap();
        assert_eq!(d.store.shards_per_client, 1);
        assert_eq!(d.store.wait_replicas, None);
        for bad in ["shards_per_client = 0", "shards_per_client = 1025"] {
            let err = Settings::from_toml_str(&format!("[store]\n{bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("store.shards_per_client"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_redis_password_never_prints() {
        for url in [
            "redis://:s3cret@cache.internal:6379/0",
            "redis://app:s3cret@cache.internal:6379/0",
            "rediss://default:s3cret@cache.internal:6380",
            "redis+unix:///run/redis.sock?db=2&pass=s3cret",
            "redis+unix:///run/redis.sock?password=s3cret",
        ] {
            let s = Settings::from_toml_str(&format!("[store]\nurl = \"{url}\"\n")).unwrap();
            for text in [
                format!("{:?}", s.store.kind),
                format!("{}", s.store.kind),
                format!("{:?}", s.store),
                format!("{s:?}"),
                format!("{s:#?}"),
            ] {
                assert!(!text.contains("s3cret"), "{url}: {text}");
                assert!(text.contains("***"), "{url}: {text}");
            }
        }
        let s = Settings::from_toml_str("[store]\nurl = \"redis://:s3cret@h:6379/0\"\n").unwrap();
        assert_eq!(s.store.kind.to_string(), "redis://:***@h:6379/0");
        // Nothing to hide: shown as given.
        let s = Settings::from_toml_str("[store]\nurl = \"redis://h:6379/0?db=1\"\n").unwrap();
        assert_eq!(s.store.kind.to_string(), "redis://h:6379/0?db=1");
        assert_eq!(
            Settings::from_toml_str("").unwrap().store.kind.to_string(),
            "embedded:./data/statuslist.redb"
        );
        // Credentials in other URLs are not echoed either.
        for toml in [
            "public_base_url = \"https://app:s3cret@status.example\"\n",
            "public_base_url = \"https://app:s3cret@[bad\"\n",
            "[[clients]]\nid = \"x\"\nformat = \"token\"\njwks_uri = \"http://u:s3cret@issuer.example/jwks\"\n",
        ] {
            let err = Settings::from_toml_str(toml).unwrap_err().to_string();
            assert!(!err.contains("s3cret"), "{err}");
        }
        // A malformed URL is refused without echoing it.
        let err = Settings::from_toml_str("[store]\nurl = \"redis://:s3cret@[h\"\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn the_readme_configuration_is_accepted() {
        // Every key README.md documents is one the service reads.
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Configuration").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").unwrap()];
        let s = Settings::from_toml_str(block).unwrap();
        assert_eq!(s.http, HttpSettings::default());
        assert_eq!(s.clients.len(), 1);
    }

    #[test]
    fn webhook_settings_have_defaults_and_are_read() {
        let s = Settings::from_toml_str(&client_toml("a", "")).unwrap();
        assert_eq!(s.webhooks, WebhookSettings::default());
        assert!(s.clients[0].webhook.is_none());
        let d = WebhookSettings::default();
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(d.retry_initial, Duration::from_secs(1));
        assert_eq!(d.retry_max, Duration::from_secs(3600));
        assert_eq!(d.max_age, Duration::from_secs(86_400));
        assert_eq!(d.concurrency.get(), 16);
        assert_eq!(d.poll_interval, Duration::from_millis(250));
        assert_eq!(d.lease, Duration::from_secs(60));
        assert_eq!(d.recheck, Duration::from_millis(500));
        let s = Settings::from_toml_str(
            "[webhooks]\ntimeout_ms = 1500\nretry_initial_ms = 200\nretry_max_secs = 60\n\
             max_age_secs = 600\nconcurrency = 3\npoll_interval_ms = 50\nlease_secs = 2\n\
             recheck_ms = 75\n",
        )
        .unwrap();
        assert_eq!(
            s.webhooks,
            WebhookSettings {
                timeout: Duration::from_millis(1500),
                retry_initial: Duration::from_millis(200),
                retry_max: Duration::from_secs(60),
                max_age: Duration::from_secs(600),
                concurrency: NonZeroUsize::new(3).unwrap(),
                poll_interval: Duration::from_millis(50),
                lease: Duration::from_secs(2),
                recheck: Duration::from_millis(75),
            }
        );
    }

    #[test]
    fn webhook_settings_are_checked_naming_the_field() {
        for (toml, want) in [
            (
                "[webhooks]\nlease_secs = 10\n",
                "webhooks.lease_secs: must exceed webhooks.timeout_ms (10000 ms)",
            ),
            (
                "[webhooks]\ntimeout_ms = 3000\nlease_secs = 2\n",
                "webhooks.lease_secs: must exceed webhooks.timeout_ms (3000 ms)",
            ),
            (
                "[webhooks]\ntimeout_ms = 0\n",
                "webhooks.timeout_ms: must be at least 1",
            ),
            (
                "[webhooks]\nlease_secs = 0\n",
                "webhooks.lease_secs: must be at least 1",
            ),
            (
                "[webhooks]\nconcurrency = 0\n",
                "webhooks.concurrency: must be at least 1",
            ),
            (
                "[webhooks]\nmax_age_secs = 0\n",
                "webhooks.max_age_secs: must be at least 1",
            ),
            (
                "[webhooks]\npoll_interval_ms = 0\n",
                "webhooks.poll_interval_ms: must be at least 1",
            ),
            (
                "[webhooks]\nrecheck_ms = 0\n",
                "webhooks.recheck_ms: must be at least 1",
            ),
            (
                "[webhooks]\nretry_initial_ms = 0\n",
                "webhooks.retry_initial_ms: must be at least 1",
            ),
            (
                "[webhooks]\nretry_initial_ms = 5000\nretry_max_secs = 4\n",
                "webhooks.retry_max_secs: must not be less than webhooks.retry_initial_ms",
            ),
            ("[webhooks]\ntimeout = 5\n", "webhooks.timeout: unknown key"),
            (
                "[webhooks]\nconcurrency = \"many\"\n",
                "webhooks.concurrency: invalid type",
            ),
        ] {
            let err = Settings::from_toml_str(toml).unwrap_err().to_string();
            assert!(err.starts_with(want), "got {err:?}, want {want:?}");
        }
        // Just above the timeout is enough.
        let s = Settings::from_toml_str("[webhooks]\ntimeout_ms = 1999\nlease_secs = 2\n").unwrap();
        assert_eq!(s.webhooks.lease, Duration::from_secs(2));
    }

    /// A client `a` whose `webhook` is `webhook` (inline table text), with
    /// `extra` client lines.
    fn hook_client(webhook: &str, extra: &str) -> String {
        client_toml("a", &format!("webhook = {webhook}\n{extra}"))
    }

    #[test]
    fn a_webhook_is_https_unless_allowed_insecure() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("hook.secret");
        std::fs::write(&secret, "s3cret-hook-key\n").unwrap();
        let hook = |url: &str| {
            format!(
                "{{ url = \"{url}\", secret_file = \"{}\" }}",
                secret.display()
            )
        };
        let s = Settings::from_toml_str(&hook_client(
            &hook("https://issuer.example/hooks/status"),
            "",
        ))
        .unwrap();
        let w = s.clients[0].webhook.as_ref().unwrap();
        assert_eq!(w.url.as_str(), "https://issuer.example/hooks/status");
        assert_eq!(w.secret.expose(), b"s3cret-hook-key");
        let s = Settings::from_toml_str(&hook_client(
            &hook("http://127.0.0.1:9/hook"),
            "allow_insecure_webhook = true",
        ))
        .unwrap();
        assert_eq!(s.clients[0].webhook.as_ref().unwrap().url.scheme(), "http");
        for (toml, want) in [
            (
                hook_client(&hook("http://issuer.example/hook"), ""),
                "clients[0].webhook.url: 'http://issuer.example/hook' is not https (set allow_insecure_webhook",
            ),
            (
                // The JWKS flag is not the webhook's.
                hook_client(
                    &hook("http://issuer.example/hook"),
                    "allow_insecure_jwks = true",
                ),
                "clients[0].webhook.url: 'http://issuer.example/hook' is not https",
            ),
            (
                hook_client(&hook("ftp://issuer.example/hook"), ""),
                "clients[0].webhook.url: unsupported scheme 'ftp'",
            ),
            (
                hook_client(&hook("not a url"), ""),
                "clients[0].webhook.url: 'not a url' is not a URL",
            ),
            (
                hook_client(&hook("https://user:pw-s3cret@issuer.example/"), ""),
                "clients[0].webhook.url: 'https://user:***@issuer.example/' must not carry credentials",
            ),
            (
                hook_client(&format!("{{ secret_file = \"{}\" }}", secret.display()), ""),
                "clients[0].webhook.url: missing",
            ),
            (
                hook_client("{ url = \"https://issuer.example/\", secrt = \"x\" }", ""),
                "clients[0].webhook.secrt: unknown key",
            ),
            (
                format!(
                    "{}{}",
                    client_toml("z", ""),
                    hook_client("{ url = \"https://issuer.example/\" }", "")
                ),
                "clients[1].webhook.secret_file: missing",
            ),
        ] {
            let err = Settings::from_toml_str(&toml).unwrap_err().to_string();
            assert!(err.starts_with(want), "got {err:?}, want {want:?}");
            assert!(!err.contains("pw-s3cret"), "{err}");
        }
    }

    #[test]
    fn the_webhook_secret_is_read_once_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hook.secret");
        let toml = hook_client(
            &format!(
                "{{ url = \"https://issuer.example/h\", secret_file = \"{}\" }}",
                file.display()
            ),
            "",
        );
        // A missing file names the field and the file, nothing more.
        let err = Settings::from_toml_str(&toml).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "clients[0].webhook.secret_file: cannot read '{}'",
                file.display()
            )),
            "{err}"
        );
        for empty in ["", "\n", "\r\n\n"] {
            std::fs::write(&file, empty).unwrap();
            let err = Settings::from_toml_str(&toml).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "clients[0].webhook.secret_file: '{}' is empty",
                    file.display()
                )),
                "{err}"
            );
        }
        // Only the line ending goes: inner and leading bytes are the secret.
        std::fs::write(&file, " s3cret-hook key\r\n").unwrap();
        let s = Settings::from_toml_str(&toml).unwrap();
        let secret = &s.clients[0].webhook.as_ref().unwrap().secret;
        assert_eq!(secret.expose(), b" s3cret-hook key");
        for shown in [
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{:?}", s.clients[0]),
            format!("{secret:?}"),
        ] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
        // An error elsewhere in a file with a webhook does not echo it.
        let err = Settings::from_toml_str(&format!("{toml}[webhooks]\nlease_secs = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn missing_file_is_named() {
        let err = Settings::load(Path::new("/nonexistent/statuslist.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("config file '/nonexistent/statuslist.toml'"),
            "{err}"
        );
    }
}
