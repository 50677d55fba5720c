//! Configuration: one TOML file, every field overridable by `STATUSLIST_*`
//! environment variables, read with figment into [`Settings`] and validated
//! once, with errors that name the offending field.
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
//! ```

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;
use url::Url;

use crate::auth::keys::KeySet;
use crate::domain::{ClientId, ListFormat, SigAlg};

/// The id of the development-mode demo client (token lists).
pub const DEMO_CLIENT: &str = "demo";
/// The id of the development-mode demo client with bitstring lists.
pub const DEMO_BITSTRING_CLIENT: &str = "demo-bitstring";
/// The demo clients' private key (PKCS#8 PEM), shipped for trying the
/// service; never use it outside development.
pub const DEMO_CLIENT_KEY_PEM: &str = include_str!("../examples/demo-client.key.pem");

/// The prefix of environment variables that override the file.
pub const ENV_PREFIX: &str = "STATUSLIST_";

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
    /// A value has the wrong type or shape (figment names the key).
    #[error("{0}")]
    Load(Box<figment::Error>),
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

/// How client JWKS documents are fetched and cached (`[jwks]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct JwksSettings {
    /// Total time allowed for one fetch, in milliseconds.
    pub timeout_ms: u64,
    /// Time allowed to connect, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Largest JWKS document accepted, in bytes.
    pub max_bytes: usize,
    /// Cache lifetime when the response has no `Cache-Control: max-age`.
    pub default_ttl_secs: u64,
    /// Lower bound applied to a response's `max-age`.
    pub min_ttl_secs: u64,
    /// Upper bound applied to a response's `max-age`.
    pub max_ttl_secs: u64,
    /// An unknown `kid` triggers at most one refresh per client per this
    /// many seconds; a failed refresh of an expired set is retried no sooner.
    pub refresh_cooldown_secs: u64,
    /// How long past its expiry the last good set keeps serving while
    /// refreshes fail.
    pub max_stale_secs: u64,
    /// With nothing cached, how long after a failed fetch the next one may
    /// start (concurrent requests share one fetch regardless).
    pub failure_backoff_secs: u64,
}

impl Default for JwksSettings {
    fn default() -> Self {
        JwksSettings {
            timeout_ms: 2000,
            connect_timeout_ms: 2000,
            max_bytes: 64 * 1024,
            default_ttl_secs: 300,
            min_ttl_secs: 60,
            max_ttl_secs: 86_400,
            refresh_cooldown_secs: 30,
            max_stale_secs: 86_400,
            failure_backoff_secs: 1,
        }
    }
}

/// Where a client's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Fetched from this URL and cached.
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
    /// The algorithms it may sign with (never empty).
    pub algorithms: Vec<SigAlg>,
}

/// The whole validated configuration, built once at start-up (and on each
/// reload) and passed by reference.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The service's public base URL, without a trailing slash; list URIs
    /// are `<base>/t/<id>` and `<base>/b/<id>`.
    pub public_base_url: String,
    /// The address the HTTP server binds.
    pub listen: SocketAddr,
    /// How long idempotency records live; also the oldest `iat` accepted.
    pub idempotency_window_secs: u64,
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
}

/// The store the service runs on: chosen at run time, never by Cargo
/// features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// redb in one file: one process, zero setup.
    Embedded {
        /// The database file.
        path: PathBuf,
    },
    /// Redis (`redis://`, `rediss://`, `redis+unix://`): many replicas.
    Redis {
        /// The connection URL (may hold a password: never logged).
        url: String,
    },
}

/// `[store]`: where lists and idempotency records live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The adapter and its address, from `url`.
    pub kind: StoreKind,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// Upper bound for every store command, in milliseconds.
    pub command_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
struct RawStore {
    url: String,
    redis_prefix: String,
    command_timeout_ms: u64,
    /// No longer used (an allocation and its idempotency record are one
    /// atomic step, so there is no in-flight lease); still accepted so that
    /// existing files keep loading, with a warning.
    lease_secs: Option<u64>,
}

impl Default for RawStore {
    fn default() -> Self {
        RawStore {
            url: "embedded:./data/statuslist.redb".into(),
            redis_prefix: "statuslist:".into(),
            command_timeout_ms: 500,
            lease_secs: None,
        }
    }
}

/// `[lists]`: the shape of every new list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ListSettings {
    /// Entries per list (131,072 by default; any number from 1 up).
    pub capacity: u64,
    /// Bits per entry: 1, 2, 4 or 8 (2 by default; bitstring lists need 2).
    pub bits: u8,
}

impl Default for ListSettings {
    fn default() -> Self {
        ListSettings {
            capacity: 131_072,
            bits: 2,
        }
    }
}

/// `[signing]`: the service's keys and the tokens signed with them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SigningSettings {
    /// The PKCS#8 PEM file of the key that signs (ES256).
    pub key_file: PathBuf,
    /// Create `key_file` with a new key when it does not exist (development
    /// mode does; production should mount a key shared by all replicas).
    pub generate_if_missing: bool,
    /// More PEM files (private or public) whose public keys are published
    /// in the JWKS too: the keys of a rotation.
    pub publish_key_files: Vec<PathBuf>,
    /// Lifetime of a signed list token (`exp - iat`), in seconds.
    pub token_lifetime_secs: u64,
    /// How long verifiers may cache a list (`ttl`), in seconds.
    pub ttl_secs: u64,
    /// How long a confirmed list version is trusted before the store is
    /// asked again, in milliseconds (a failed check is remembered as long).
    pub freshness_ms: u64,
    /// How many signed list tokens are kept in memory at most (10,000 by
    /// default); the least recently used is evicted first.
    pub cache_max_lists: usize,
    /// How many bytes of signed list tokens are kept in memory at most
    /// (256 MiB by default).
    pub cache_max_bytes: usize,
}

impl Default for SigningSettings {
    fn default() -> Self {
        SigningSettings {
            key_file: PathBuf::from("./data/service-key.pem"),
            generate_if_missing: false,
            publish_key_files: Vec::new(),
            token_lifetime_secs: 86_400,
            ttl_secs: 300,
            freshness_ms: 250,
            cache_max_lists: 10_000,
            cache_max_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawSettings {
    #[serde(default = "default_base_url")]
    public_base_url: String,
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_window")]
    idempotency_window_secs: u64,
    #[serde(default)]
    jwks: JwksSettings,
    #[serde(default)]
    clients: Vec<RawClient>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    lists: ListSettings,
    #[serde(default)]
    signing: SigningSettings,
}

fn default_base_url() -> String {
    "http://127.0.0.1:8080".into()
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_window() -> u64 {
    3600
}

#[derive(Debug, Deserialize)]
struct RawClient {
    id: Option<String>,
    format: Option<String>,
    jwks_uri: Option<String>,
    jwks: Option<serde_json::Value>,
    jwks_file: Option<PathBuf>,
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    allow_insecure_jwks: bool,
}

impl Settings {
    /// The figment the settings are read from: defaults, then the TOML file
    /// at `path` (if any), then `STATUSLIST_*` variables.
    pub fn figment(path: Option<&Path>) -> Figment {
        let mut f = Figment::new();
        if let Some(p) = path {
            f = f.merge(Toml::file_exact(p));
        }
        f.merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"]))
    }

    /// Loads and validates the file at `path` with environment overrides.
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
            serde_json::from_str(include_str!("../examples/demo-client.jwks.json"))
                .map_err(|e| invalid("clients[0].jwks", e.to_string()))?;
        let clients = serde_json::json!([
            { "id": DEMO_CLIENT, "format": "token", "jwks": jwks },
            { "id": DEMO_BITSTRING_CLIENT, "format": "bitstring", "jwks": jwks },
        ]);
        Self::from_figment(
            &Figment::new()
                .merge(Toml::string(TOML))
                .merge(Serialized::default("clients", clients))
                .merge(Env::prefixed(ENV_PREFIX).split("__").ignore(&["config"])),
        )
    }

    /// Validates TOML text alone, without environment overrides (tests,
    /// tools).
    ///
    /// # Errors
    /// As [`Settings::from_figment`].
    pub fn from_toml_str(toml: &str) -> Result<Self, ConfigError> {
        Self::from_figment(&Figment::new().merge(Toml::string(toml)))
    }

    /// Extracts and validates settings from any figment.
    ///
    /// # Errors
    /// [`ConfigError::Load`] for a value of the wrong type,
    /// [`ConfigError::Invalid`] naming the first field that is not
    /// acceptable: a bad URL or address, duplicate client ids, an unknown
    /// list format, a forbidden algorithm, a missing key file, an unusable
    /// JWKS, inconsistent JWKS limits.
    pub fn from_figment(figment: &Figment) -> Result<Self, ConfigError> {
        let raw: RawSettings = figment
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        let public_base_url = base_url(&raw.public_base_url)?;
        let listen = raw.listen.parse().map_err(|_| {
            invalid(
                "listen",
                format!("'{}' is not an IP address and port", raw.listen),
            )
        })?;
        if raw.idempotency_window_secs == 0 {
            return Err(invalid("idempotency_window_secs", "must be at least 1"));
        }
        check_jwks(&raw.jwks)?;
        let mut seen = HashSet::new();
        let mut clients = Vec::with_capacity(raw.clients.len());
        for (i, c) in raw.clients.into_iter().enumerate() {
            let client = client(i, c)?;
            if !seen.insert(client.id.clone()) {
                return Err(invalid(
                    format!("clients[{i}].id"),
                    format!("duplicate client id '{}'", client.id),
                ));
            }
            clients.push(client);
        }
        let store = store(raw.store)?;
        check_lists(&raw.lists, &clients)?;
        check_signing(&raw.signing)?;
        Ok(Settings {
            public_base_url,
            listen,
            idempotency_window_secs: raw.idempotency_window_secs,
            jwks: raw.jwks,
            clients,
            store,
            lists: raw.lists,
            signing: raw.signing,
        })
    }
}

fn store(raw: RawStore) -> Result<StoreConfig, ConfigError> {
    let kind = if let Some(path) = raw.url.strip_prefix("embedded:") {
        if path.is_empty() {
            return Err(invalid("store.url", "embedded: needs a file path"));
        }
        StoreKind::Embedded {
            path: PathBuf::from(path),
        }
    } else if ["redis://", "rediss://", "redis+unix://", "unix://"]
        .iter()
        .any(|p| raw.url.starts_with(p))
    {
        Url::parse(&raw.url).map_err(|e| {
            // The URL may carry a password: name the field, not the value.
            invalid("store.url", format!("not a valid Redis URL: {e}"))
        })?;
        StoreKind::Redis { url: raw.url }
    } else {
        return Err(invalid(
            "store.url",
            "must be 'embedded:PATH', 'redis://…', 'rediss://…' or 'redis+unix://…'",
        ));
    };
    if raw.command_timeout_ms == 0 {
        return Err(invalid("store.command_timeout_ms", "must be at least 1"));
    }
    if raw.lease_secs.is_some() {
        tracing::warn!(
            "store.lease_secs is no longer used and can be removed: an allocation and its \
             idempotency record are written in one atomic step"
        );
    }
    if raw.redis_prefix.is_empty()
        || raw
            .redis_prefix
            .bytes()
            .any(|b| !b.is_ascii_graphic() || b == b'{' || b == b'}')
    {
        return Err(invalid(
            "store.redis_prefix",
            "must be printable ASCII without spaces or braces",
        ));
    }
    Ok(StoreConfig {
        kind,
        redis_prefix: raw.redis_prefix,
        command_timeout_ms: raw.command_timeout_ms,
    })
}

fn check_lists(lists: &ListSettings, clients: &[ClientSettings]) -> Result<(), ConfigError> {
    let bits = crate::domain::Bits::try_from(lists.bits)
        .map_err(|e| invalid("lists.bits", e.to_string()))?;
    if lists.capacity == 0 || lists.capacity > crate::domain::allocator::MAX_CAPACITY {
        return Err(invalid(
            "lists.capacity",
            format!(
                "must be between 1 and {}",
                crate::domain::allocator::MAX_CAPACITY
            ),
        ));
    }
    if bits != crate::domain::Bits::Two
        && let Some(c) = clients.iter().find(|c| c.format == ListFormat::Bitstring)
    {
        return Err(invalid(
            "lists.bits",
            format!(
                "client '{}' uses bitstring lists, which are published with statusSize 2",
                c.id
            ),
        ));
    }
    Ok(())
}

/// Checks the signing numbers. Key files are read (and their absence
/// reported, naming `signing.key_file`) when the application starts, so that
/// the authentication layer can be configured without them.
fn check_signing(s: &SigningSettings) -> Result<(), ConfigError> {
    if s.token_lifetime_secs < 2 {
        return Err(invalid("signing.token_lifetime_secs", "must be at least 2"));
    }
    if s.ttl_secs == 0 {
        return Err(invalid("signing.ttl_secs", "must be at least 1"));
    }
    if s.cache_max_lists == 0 {
        return Err(invalid("signing.cache_max_lists", "must be at least 1"));
    }
    if s.cache_max_bytes == 0 {
        return Err(invalid("signing.cache_max_bytes", "must be at least 1"));
    }
    Ok(())
}

fn base_url(s: &str) -> Result<String, ConfigError> {
    let field = "public_base_url";
    let url = Url::parse(s).map_err(|e| invalid(field, format!("'{s}' is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https")
        || url.host().is_none()
        || url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(invalid(
            field,
            format!(
                "'{s}' must be an http(s) URL with a host and no query, fragment or credentials"
            ),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

fn check_jwks(j: &JwksSettings) -> Result<(), ConfigError> {
    let positive = [
        ("jwks.timeout_ms", j.timeout_ms),
        ("jwks.connect_timeout_ms", j.connect_timeout_ms),
        ("jwks.max_bytes", j.max_bytes as u64),
        ("jwks.min_ttl_secs", j.min_ttl_secs),
    ];
    for (field, v) in positive {
        if v == 0 {
            return Err(invalid(field, "must be at least 1"));
        }
    }
    if j.min_ttl_secs > j.max_ttl_secs {
        return Err(invalid(
            "jwks.min_ttl_secs",
            "must not exceed jwks.max_ttl_secs",
        ));
    }
    if !(j.min_ttl_secs..=j.max_ttl_secs).contains(&j.default_ttl_secs) {
        return Err(invalid(
            "jwks.default_ttl_secs",
            "must lie between jwks.min_ttl_secs and jwks.max_ttl_secs",
        ));
    }
    Ok(())
}

fn client(i: usize, c: RawClient) -> Result<ClientSettings, ConfigError> {
    let f = |name: &str| format!("clients[{i}].{name}");
    let id_text = c.id.ok_or_else(|| invalid(f("id"), "missing"))?;
    let id =
        ClientId::parse(&id_text).map_err(|e| invalid(f("id"), format!("'{id_text}': {e}")))?;
    let format_text = c
        .format
        .ok_or_else(|| invalid(f("format"), "missing (expected 'token' or 'bitstring')"))?;
    let format: ListFormat = format_text.parse().map_err(|_| {
        invalid(
            f("format"),
            format!("unknown list format '{format_text}' (expected 'token' or 'bitstring')"),
        )
    })?;
    let algorithms = match c.algorithms {
        None => vec![SigAlg::Es256],
        Some(list) if list.is_empty() => return Err(invalid(f("algorithms"), "must not be empty")),
        Some(list) => {
            let mut algs = Vec::with_capacity(list.len());
            for (j, name) in list.iter().enumerate() {
                let alg = SigAlg::parse(name).ok_or_else(|| {
                    invalid(
                        format!("clients[{i}].algorithms[{j}]"),
                        format!(
                            "'{name}' is not allowed (allowed: ES256, ES384, EdDSA, PS256; 'none' and HMAC never)"
                        ),
                    )
                })?;
                if !algs.contains(&alg) {
                    algs.push(alg);
                }
            }
            algs
        }
    };
    let keys = match (c.jwks_uri, c.jwks, c.jwks_file) {
        (Some(uri), None, None) => {
            let url = Url::parse(&uri)
                .map_err(|e| invalid(f("jwks_uri"), format!("'{uri}' is not a URL: {e}")))?;
            match url.scheme() {
                "https" => {}
                "http" if c.allow_insecure_jwks => {}
                "http" => {
                    return Err(invalid(
                        f("jwks_uri"),
                        format!(
                            "'{uri}' is not https (set allow_insecure_jwks for local development)"
                        ),
                    ));
                }
                other => {
                    return Err(invalid(
                        f("jwks_uri"),
                        format!("unsupported scheme '{other}'"),
                    ));
                }
            }
            if url.host().is_none() {
                return Err(invalid(f("jwks_uri"), format!("'{uri}' has no host")));
            }
            KeySource::Remote(url)
        }
        (None, Some(doc), None) => {
            let set = KeySet::from_value(&doc).map_err(|e| invalid(f("jwks"), e.to_string()))?;
            KeySource::Static(Arc::new(set))
        }
        (None, None, Some(path)) => {
            let bytes = std::fs::read(&path).map_err(|e| {
                invalid(
                    f("jwks_file"),
                    format!("cannot read '{}': {e}", path.display()),
                )
            })?;
            let set = KeySet::from_json(&bytes)
                .map_err(|e| invalid(f("jwks_file"), format!("'{}': {e}", path.display())))?;
            KeySource::Static(Arc::new(set))
        }
        (None, None, None) => {
            return Err(invalid(
                f("jwks_uri"),
                "missing (give one of jwks_uri, jwks, jwks_file)",
            ));
        }
        _ => {
            return Err(invalid(
                f("jwks_uri"),
                "give only one of jwks_uri, jwks, jwks_file",
            ));
        }
    };
    Ok(ClientSettings {
        id,
        format,
        keys,
        algorithms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(s.public_base_url, "https://status.example.com");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.idempotency_window_secs, 3600);
        assert_eq!(s.jwks, JwksSettings::default());
        assert_eq!(s.signing.cache_max_lists, 10_000);
        assert_eq!(s.signing.cache_max_bytes, 256 * 1024 * 1024);
        assert_eq!(s.clients.len(), 2);
        assert_eq!(s.clients[0].algorithms, vec![SigAlg::Es256, SigAlg::EdDsa]);
        assert_eq!(s.clients[1].algorithms, vec![SigAlg::Es256]);
        assert_eq!(s.clients[1].format, ListFormat::Bitstring);
        assert!(matches!(s.clients[1].keys, KeySource::Remote(_)));
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
