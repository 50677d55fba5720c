//! The configuration as written: the structs figment deserialises the file
//! and the `STATUSLIST_*` variables into, and their one conversion into the
//! typed [`Settings`]. The names and types of these fields are the file
//! format (unknown keys are refused); every check happens here, with errors
//! naming the field as the file spells it. A section field left out takes
//! the typed section's `Default`, so each default is written once.

use std::collections::HashSet;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::urls::{PublicBaseUrl, RedisUrl, shown};
use super::{
    ClientSettings, ConfigError, HttpSettings, JwksSettings, KeySource, ListSettings,
    MAX_HTTP_TIMEOUT, Settings, SigningSettings, StoreConfig, StoreKind, WebhookSecret,
    WebhookSettings, WebhookTarget, invalid,
};
use crate::domain::{Bits, ClientId, ListFormat, MAX_LIST_BYTES, SigAlg, max_list_capacity};
use crate::jwk::{KeySet, KeySetError, jwks_has_demo_key};

/// Why the demo key is refused, for configuration errors.
const DEMO_KEY_REFUSED: &str = "this is the public demo key shipped in examples/ (anyone has its private key), \
     refused outside development mode; create a key of your own with \
     `statuslist keygen --client NAME --out DIR`";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSettings {
    #[serde(default = "default_base_url")]
    public_base_url: String,
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_window")]
    idempotency_window_secs: u64,
    #[serde(default)]
    jwks: RawJwks,
    #[serde(default)]
    clients: Vec<RawClient>,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    lists: RawLists,
    #[serde(default)]
    signing: RawSigning,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    webhooks: RawWebhooks,
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

impl RawSettings {
    /// The typed settings, checked field by field in file order; the first
    /// field that is not acceptable is the error.
    pub(super) fn parse(self, development: bool) -> Result<Settings, ConfigError> {
        let public_base_url = PublicBaseUrl::parse(&self.public_base_url)?;
        let listen = self.listen.parse().map_err(|_| {
            invalid(
                "listen",
                format!("'{}' is not an IP address and port", self.listen),
            )
        })?;
        if self.idempotency_window_secs == 0 {
            return Err(invalid("idempotency_window_secs", "must be at least 1"));
        }
        let jwks = self.jwks.parse()?;
        let mut seen = HashSet::new();
        let mut clients = Vec::with_capacity(self.clients.len());
        for (i, c) in self.clients.into_iter().enumerate() {
            let client = c.parse(i, development)?;
            if !seen.insert(client.id.clone()) {
                return Err(invalid(
                    format!("clients[{i}].id"),
                    format!("duplicate client id '{}'", client.id),
                ));
            }
            clients.push(client);
        }
        let store = self.store.parse()?;
        let lists = self.lists.parse(&clients)?;
        let signing = self.signing.parse()?;
        let http = self.http.parse()?;
        let webhooks = self.webhooks.parse()?;
        Ok(Settings {
            public_base_url,
            listen,
            idempotency_window: Duration::from_secs(self.idempotency_window_secs),
            jwks,
            clients,
            store,
            lists,
            signing,
            http,
            webhooks,
            development,
        })
    }
}

/// `given` milliseconds, or the default.
fn millis(given: Option<u64>, default: Duration) -> Duration {
    given.map_or(default, Duration::from_millis)
}

/// `given` seconds, or the default.
fn secs(given: Option<u64>, default: Duration) -> Duration {
    given.map_or(default, Duration::from_secs)
}

/// `d` unless it is zero.
fn positive(field: &str, d: Duration) -> Result<Duration, ConfigError> {
    if d.is_zero() {
        Err(invalid(field, "must be at least 1"))
    } else {
        Ok(d)
    }
}

/// `given` unless it is zero, or the default.
fn at_least_one(
    field: &str,
    given: Option<usize>,
    default: NonZeroUsize,
) -> Result<NonZeroUsize, ConfigError> {
    given.map_or(Ok(default), |v| {
        NonZeroUsize::new(v).ok_or_else(|| invalid(field, "must be at least 1"))
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawJwks {
    timeout_ms: Option<u64>,
    connect_timeout_ms: Option<u64>,
    max_bytes: Option<usize>,
    default_ttl_secs: Option<u64>,
    min_ttl_secs: Option<u64>,
    max_ttl_secs: Option<u64>,
    refresh_cooldown_secs: Option<u64>,
    max_stale_secs: Option<u64>,
    failure_backoff_secs: Option<u64>,
}

impl RawJwks {
    fn parse(self) -> Result<JwksSettings, ConfigError> {
        let d = JwksSettings::default();
        let j = JwksSettings {
            timeout: positive("jwks.timeout_ms", millis(self.timeout_ms, d.timeout))?,
            connect_timeout: positive(
                "jwks.connect_timeout_ms",
                millis(self.connect_timeout_ms, d.connect_timeout),
            )?,
            max_bytes: at_least_one("jwks.max_bytes", self.max_bytes, d.max_bytes)?,
            default_ttl: secs(self.default_ttl_secs, d.default_ttl),
            min_ttl: positive("jwks.min_ttl_secs", secs(self.min_ttl_secs, d.min_ttl))?,
            max_ttl: secs(self.max_ttl_secs, d.max_ttl),
            refresh_cooldown: secs(self.refresh_cooldown_secs, d.refresh_cooldown),
            max_stale: secs(self.max_stale_secs, d.max_stale),
            failure_backoff: secs(self.failure_backoff_secs, d.failure_backoff),
        };
        if j.min_ttl > j.max_ttl {
            return Err(invalid(
                "jwks.min_ttl_secs",
                "must not exceed jwks.max_ttl_secs",
            ));
        }
        if !(j.min_ttl..=j.max_ttl).contains(&j.default_ttl) {
            return Err(invalid(
                "jwks.default_ttl_secs",
                "must lie between jwks.min_ttl_secs and jwks.max_ttl_secs",
            ));
        }
        Ok(j)
    }
}

/// The most hash tags one client's Redis keys may be spread over.
const MAX_SHARDS_PER_CLIENT: u16 = 1024;

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    redis_prefix: Option<String>,
    command_timeout_ms: Option<u64>,
    notify_changes: Option<bool>,
    shards_per_client: Option<u16>,
    wait_replicas: Option<u16>,
    tls_ca_file: Option<PathBuf>,
    /// No longer used (an allocation and its idempotency record are one
    /// atomic step, so there is no in-flight lease); still accepted so that
    /// existing files keep loading, with a warning.
    lease_secs: Option<u64>,
}

impl RawStore {
    fn parse(self) -> Result<StoreConfig, ConfigError> {
        let d = StoreConfig::default();
        let kind = match self.url {
            None => d.kind,
            Some(url) => {
                if let Some(path) = url.strip_prefix("embedded:") {
                    if path.is_empty() {
                        return Err(invalid("store.url", "embedded: needs a file path"));
                    }
                    StoreKind::Embedded {
                        path: PathBuf::from(path),
                    }
                } else if RedisUrl::is_redis(&url) {
                    StoreKind::Redis {
                        url: RedisUrl::parse(url)?,
                    }
                } else {
                    return Err(invalid(
                        "store.url",
                        "must be 'embedded:PATH', 'redis://…', 'rediss://…', 'redis+unix://…', \
                         'redis+cluster://host:port,…' or 'rediss+cluster://…'",
                    ));
                }
            }
        };
        let command_timeout = positive(
            "store.command_timeout_ms",
            millis(self.command_timeout_ms, d.command_timeout),
        )?;
        if self.lease_secs.is_some() {
            tracing::warn!(
                "store.lease_secs is no longer used and can be removed: an allocation and its \
                 idempotency record are written in one atomic step"
            );
        }
        let redis_prefix = self.redis_prefix.unwrap_or(d.redis_prefix);
        if redis_prefix.is_empty()
            || redis_prefix
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
            redis_prefix,
            command_timeout,
            notify_changes: self.notify_changes.unwrap_or(d.notify_changes),
            wait_replicas: self.wait_replicas,
            tls_ca_file: self.tls_ca_file,
            shards_per_client: match self.shards_per_client {
                None => d.shards_per_client,
                Some(n) if (1..=MAX_SHARDS_PER_CLIENT).contains(&n) => n,
                Some(_) => {
                    return Err(invalid(
                        "store.shards_per_client",
                        format!("must be 1 to {MAX_SHARDS_PER_CLIENT}"),
                    ));
                }
            },
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawLists {
    capacity: Option<u64>,
    bits: Option<u8>,
    max_batch: Option<u64>,
}

impl RawLists {
    fn parse(self, clients: &[ClientSettings]) -> Result<ListSettings, ConfigError> {
        let d = ListSettings::default();
        let bits = match self.bits {
            None => d.bits,
            Some(b) => Bits::try_from(b).map_err(|e| invalid("lists.bits", e.to_string()))?,
        };
        let max = max_list_capacity(bits);
        let capacity = NonZeroU64::new(self.capacity.unwrap_or(d.capacity.get()))
            .filter(|c| c.get() <= max)
            .ok_or_else(|| {
                invalid(
                    "lists.capacity",
                    format!(
                        "must be between 1 and {max} for {}-bit entries (a list is at most {} MiB, \
                         the most one Redis string holds)",
                        bits.get(),
                        MAX_LIST_BYTES >> 20
                    ),
                )
            })?;
        if bits != Bits::Two
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
        // A request spans at most two lists (the rest of the current one and
        // a new one), so it can never ask for more than one list holds.
        let most = capacity.get().min(u64::from(u32::MAX));
        let max_batch = self
            .max_batch
            .unwrap_or_else(|| u64::from(d.max_batch.get()).min(most));
        let max_batch = u32::try_from(max_batch)
            .ok()
            .and_then(NonZeroU32::new)
            .filter(|b| u64::from(b.get()) <= most)
            .ok_or_else(|| {
                invalid(
                    "lists.max_batch",
                    format!(
                        "must be between 1 and {most} (lists.capacity: one /issue takes at most one \
                         list's worth of entries)"
                    ),
                )
            })?;
        Ok(ListSettings {
            capacity,
            bits,
            max_batch,
        })
    }
}

/// `[signing]` as written. Key files are read (and their absence reported,
/// naming `signing.key_file`) when the application starts, so that the
/// authentication layer can be configured without them.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSigning {
    key_file: Option<PathBuf>,
    generate_if_missing: Option<bool>,
    publish_key_files: Option<Vec<PathBuf>>,
    state_file: Option<PathBuf>,
    certificate_chain_file: Option<PathBuf>,
    token_lifetime_secs: Option<u64>,
    ttl_secs: Option<u64>,
    freshness_ms: Option<u64>,
    cache_max_lists: Option<usize>,
    cache_max_bytes: Option<usize>,
    optimize_after_secs: Option<u64>,
}

impl RawSigning {
    fn parse(self) -> Result<SigningSettings, ConfigError> {
        let d = SigningSettings::default();
        let token_lifetime = secs(self.token_lifetime_secs, d.token_lifetime);
        if token_lifetime < Duration::from_secs(2) {
            return Err(invalid("signing.token_lifetime_secs", "must be at least 2"));
        }
        let key_file = self.key_file.unwrap_or(d.key_file);
        // Beside the key by default: where the operator already keeps what
        // belongs to the service's keys.
        let state_file = self.state_file.unwrap_or_else(|| {
            key_file
                .parent()
                .unwrap_or_else(|| Path::new(""))
                .join("signing-state.json")
        });
        Ok(SigningSettings {
            key_file,
            certificate_chain_file: self.certificate_chain_file,
            state_file,
            generate_if_missing: self.generate_if_missing.unwrap_or(d.generate_if_missing),
            publish_key_files: self.publish_key_files.unwrap_or(d.publish_key_files),
            token_lifetime,
            ttl: positive("signing.ttl_secs", secs(self.ttl_secs, d.ttl))?,
            freshness: millis(self.freshness_ms, d.freshness),
            optimize_after: secs(self.optimize_after_secs, d.optimize_after),
            cache_max_lists: at_least_one(
                "signing.cache_max_lists",
                self.cache_max_lists,
                d.cache_max_lists,
            )?,
            cache_max_bytes: at_least_one(
                "signing.cache_max_bytes",
                self.cache_max_bytes,
                d.cache_max_bytes,
            )?,
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawHttp {
    body_timeout_ms: Option<u64>,
    header_timeout_ms: Option<u64>,
    keep_alive_secs: Option<u64>,
    max_connections: Option<usize>,
}

impl RawHttp {
    fn parse(self) -> Result<HttpSettings, ConfigError> {
        let d = HttpSettings::default();
        let timeout = |field: &str, given: Option<u64>, default: Duration| {
            let t = millis(given, default);
            if t.is_zero() || t > MAX_HTTP_TIMEOUT {
                Err(invalid(
                    field,
                    format!("must be between 1 and {}", MAX_HTTP_TIMEOUT.as_millis()),
                ))
            } else {
                Ok(t)
            }
        };
        Ok(HttpSettings {
            body_timeout: timeout("http.body_timeout_ms", self.body_timeout_ms, d.body_timeout)?,
            header_timeout: timeout(
                "http.header_timeout_ms",
                self.header_timeout_ms,
                d.header_timeout,
            )?,
            keep_alive: self
                .keep_alive_secs
                .map_or(d.keep_alive, |s| (s > 0).then(|| Duration::from_secs(s))),
            max_connections: at_least_one(
                "http.max_connections",
                self.max_connections,
                d.max_connections,
            )?,
        })
    }
}

/// `[webhooks]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawWebhooks {
    timeout_ms: Option<u64>,
    retry_initial_ms: Option<u64>,
    retry_max_secs: Option<u64>,
    max_age_secs: Option<u64>,
    concurrency: Option<usize>,
    poll_interval_ms: Option<u64>,
    lease_secs: Option<u64>,
    recheck_ms: Option<u64>,
}

impl RawWebhooks {
    fn parse(self) -> Result<WebhookSettings, ConfigError> {
        let d = WebhookSettings::default();
        let w = WebhookSettings {
            timeout: positive("webhooks.timeout_ms", millis(self.timeout_ms, d.timeout))?,
            retry_initial: positive(
                "webhooks.retry_initial_ms",
                millis(self.retry_initial_ms, d.retry_initial),
            )?,
            retry_max: positive(
                "webhooks.retry_max_secs",
                secs(self.retry_max_secs, d.retry_max),
            )?,
            max_age: positive("webhooks.max_age_secs", secs(self.max_age_secs, d.max_age))?,
            concurrency: at_least_one("webhooks.concurrency", self.concurrency, d.concurrency)?,
            poll_interval: positive(
                "webhooks.poll_interval_ms",
                millis(self.poll_interval_ms, d.poll_interval),
            )?,
            lease: positive("webhooks.lease_secs", secs(self.lease_secs, d.lease))?,
            recheck: positive("webhooks.recheck_ms", millis(self.recheck_ms, d.recheck))?,
        };
        if w.retry_max < w.retry_initial {
            return Err(invalid(
                "webhooks.retry_max_secs",
                "must not be less than webhooks.retry_initial_ms",
            ));
        }
        // A lease that ends while its delivery may still be under way would
        // hand the event to another replica: a double delivery of a healthy
        // but slow receiver on every attempt.
        if w.lease <= w.timeout {
            return Err(invalid(
                "webhooks.lease_secs",
                format!(
                    "must exceed webhooks.timeout_ms ({} ms), or a slow delivery is doubled by \
                     another replica",
                    w.timeout.as_millis()
                ),
            ));
        }
        Ok(w)
    }
}

/// A client's `webhook` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Option<String>,
    secret_file: Option<PathBuf>,
}

impl RawWebhook {
    /// The webhook of the client at `clients[i]`: its URL checked, its
    /// secret read. `field` is `clients[i].webhook`.
    fn parse(self, field: &str, allow_insecure: bool) -> Result<WebhookTarget, ConfigError> {
        let url_field = format!("{field}.url");
        let url = self
            .url
            .ok_or_else(|| invalid(&url_field, "missing"))
            .and_then(|u| webhook_url(&url_field, &u, allow_insecure))?;
        let secret_field = format!("{field}.secret_file");
        let path = self
            .secret_file
            .ok_or_else(|| invalid(&secret_field, "missing"))?;
        // The error names the file, never its content.
        let mut bytes = std::fs::read(&path).map_err(|e| {
            invalid(
                &secret_field,
                format!("cannot read '{}': {e}", path.display()),
            )
        })?;
        // Files written by `echo` or an editor end with a newline that is no
        // part of the secret the receiver was given.
        while bytes.last().is_some_and(|b| matches!(b, b'\n' | b'\r')) {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(invalid(
                &secret_field,
                format!("'{}' is empty (the signing secret)", path.display()),
            ));
        }
        Ok(WebhookTarget {
            url,
            secret: WebhookSecret::new(bytes),
        })
    }
}

/// A client's webhook `url`: https with a host and without credentials, or
/// http when the client allows an insecure webhook (local development).
/// Credentials are refused rather than sent: the receiver authenticates the
/// service by the signature, and a URL with a password would print it.
fn webhook_url(field: &str, text: &str, allow_insecure: bool) -> Result<Url, ConfigError> {
    let text_shown = shown(text);
    let url = Url::parse(text)
        .map_err(|e| invalid(field, format!("'{text_shown}' is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(invalid(
                field,
                format!(
                    "'{text_shown}' is not https (set allow_insecure_webhook for local development)"
                ),
            ));
        }
        other => return Err(invalid(field, format!("unsupported scheme '{other}'"))),
    }
    if url.host().is_none() {
        return Err(invalid(field, format!("'{text_shown}' has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            field,
            format!("'{text_shown}' must not carry credentials"),
        ));
    }
    Ok(url)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    id: Option<String>,
    format: Option<String>,
    jwks_uri: Option<String>,
    jwks: Option<serde_json::Value>,
    jwks_file: Option<PathBuf>,
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    allow_insecure_jwks: bool,
    webhook: Option<RawWebhook>,
    #[serde(default)]
    allow_insecure_webhook: bool,
}

impl RawClient {
    /// The client at `clients[i]`.
    fn parse(self, i: usize, development: bool) -> Result<ClientSettings, ConfigError> {
        let f = |name: &str| format!("clients[{i}].{name}");
        let id_text = self.id.ok_or_else(|| invalid(f("id"), "missing"))?;
        let id =
            ClientId::parse(&id_text).map_err(|e| invalid(f("id"), format!("'{id_text}': {e}")))?;
        let format_text = self
            .format
            .ok_or_else(|| invalid(f("format"), "missing (expected 'token' or 'bitstring')"))?;
        let format: ListFormat = format_text.parse().map_err(|_| {
            invalid(
                f("format"),
                format!("unknown list format '{format_text}' (expected 'token' or 'bitstring')"),
            )
        })?;
        let algorithms = match self.algorithms {
            None => vec![SigAlg::Es256],
            Some(list) if list.is_empty() => {
                return Err(invalid(f("algorithms"), "must not be empty"));
            }
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
        let keys = match (self.jwks_uri, self.jwks, self.jwks_file) {
            (Some(uri), None, None) => {
                KeySource::Remote(jwks_uri(&f("jwks_uri"), &uri, self.allow_insecure_jwks)?)
            }
            (None, Some(doc), None) => static_keys(&doc, development, &f("jwks"), "")?,
            (None, None, Some(path)) => {
                let field = f("jwks_file");
                let bytes = std::fs::read(&path).map_err(|e| {
                    invalid(&field, format!("cannot read '{}': {e}", path.display()))
                })?;
                let context = format!("'{}': ", path.display());
                let doc: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|_| invalid(&field, format!("{context}{}", KeySetError::NotJwks)))?;
                static_keys(&doc, development, &field, &context)?
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
        let webhook = self
            .webhook
            .map(|w| w.parse(&f("webhook"), self.allow_insecure_webhook))
            .transpose()?;
        Ok(ClientSettings {
            id,
            format,
            keys,
            algorithms,
            webhook,
        })
    }
}

/// A client's `jwks_uri`: https with a host, or http when the client allows
/// insecure JWKS (local development).
fn jwks_uri(field: &str, uri: &str, allow_insecure: bool) -> Result<Url, ConfigError> {
    let uri_shown = shown(uri);
    let url =
        Url::parse(uri).map_err(|e| invalid(field, format!("'{uri_shown}' is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        "http" => {
            return Err(invalid(
                field,
                format!(
                    "'{uri_shown}' is not https (set allow_insecure_jwks for local development)"
                ),
            ));
        }
        other => {
            return Err(invalid(field, format!("unsupported scheme '{other}'")));
        }
    }
    if url.host().is_none() {
        return Err(invalid(field, format!("'{uri_shown}' has no host")));
    }
    Ok(url)
}

/// A key set given in the configuration (`jwks` inline, or the document of
/// `jwks_file`): refused when it has no usable key or, outside development
/// mode, holds the shipped demo key. Errors name `field`, their reason after
/// `context` (the file, or nothing).
fn static_keys(
    doc: &serde_json::Value,
    development: bool,
    field: &str,
    context: &str,
) -> Result<KeySource, ConfigError> {
    let set = KeySet::from_value(doc).map_err(|e| invalid(field, format!("{context}{e}")))?;
    if !development && jwks_has_demo_key(doc) {
        return Err(invalid(field, format!("{context}{DEMO_KEY_REFUSED}")));
    }
    Ok(KeySource::Static(Arc::new(set)))
}
