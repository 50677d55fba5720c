//! The URLs of the configuration, parsed once: the service's public base
//! URL and the Redis connection URL. Both keep the validated text, not a
//! `url::Url`: the parser would add a trailing `/` to the base URL (and
//! every URI the service emits starts with it, byte for byte), and the redis
//! crate reads its URL itself. Also the redaction of passwords, so that no
//! URL from the configuration prints a secret.

use std::fmt;

use url::Url;

use super::{ConfigError, invalid};

/// The service's public base URL: an http(s) URL with a host and no query,
/// fragment or credentials, normalised by the URL parser (lower-case host,
/// default port dropped) and without a trailing slash. List URIs are
/// `<base>/t/<id>` and `<base>/b/<id>`; a request's `aud` must equal it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicBaseUrl(String);

impl PublicBaseUrl {
    /// Checks `text` as the `public_base_url` setting.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `public_base_url`, echoing the value
    /// only with any credentials redacted.
    pub(super) fn parse(text: &str) -> Result<Self, ConfigError> {
        let field = "public_base_url";
        let shown_s = shown(text);
        let url = Url::parse(text)
            .map_err(|e| invalid(field, format!("'{shown_s}' is not a URL: {e}")))?;
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
                    "'{shown_s}' must be an http(s) URL with a host and no query, fragment or credentials"
                ),
            ));
        }
        Ok(PublicBaseUrl(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The URL as every emitted URI starts, e.g. `https://status.example.com`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PublicBaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Redis connection URL (`redis://`, `rediss://`, `redis+unix://` or
/// `unix://`; or a Redis Cluster's seed nodes, `redis+cluster://h:p,h:p,…`
/// or `rediss+cluster://…`, see [`cluster_nodes`]) that parses as a URL
/// (each node's, for a cluster), kept as given for the redis crate. It may
/// hold a password: `Debug` and `Display` show it redacted ([`redact_url`]);
/// only [`RedisUrl::as_str`] gives it whole, for the Redis client.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The schemes of the Redis store.
    const SCHEMES: [&str; 6] = [
        "redis://",
        "rediss://",
        "redis+unix://",
        "unix://",
        "redis+cluster://",
        "rediss+cluster://",
    ];

    /// Whether `text` names the Redis store (by its scheme); whether it is a
    /// usable URL is [`RedisUrl::parse`]'s question.
    pub(super) fn is_redis(text: &str) -> bool {
        Self::SCHEMES.iter().any(|p| text.starts_with(p))
    }

    /// Checks `text` as the `store.url` setting of a Redis store.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `store.url`, never echoing the value
    /// (it may carry a password).
    pub(super) fn parse(text: String) -> Result<Self, ConfigError> {
        match cluster_nodes(&text) {
            Some(nodes) => {
                for node in nodes.map_err(|e| invalid("store.url", e))? {
                    Url::parse(&node).map_err(|e| {
                        invalid("store.url", format!("not a valid Redis Cluster URL: {e}"))
                    })?;
                }
            }
            None => {
                Url::parse(&text)
                    .map_err(|e| invalid("store.url", format!("not a valid Redis URL: {e}")))?;
            }
        }
        Ok(RedisUrl(text))
    }

    /// Whether this is a Redis Cluster's URL (its seed nodes).
    pub fn is_cluster(&self) -> bool {
        cluster_nodes(&self.0).is_some()
    }

    /// The URL as given, password included: for the Redis client only,
    /// never for a log.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&redact_url(&self.0), f)
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

/// The schemes of a Redis Cluster URL and the scheme of each node's.
const CLUSTER_SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis://"),
    ("rediss+cluster://", "rediss://"),
];

/// The seed nodes of a Redis Cluster URL, each as a single-node URL:
/// `redis+cluster://[user:pass@]h1:p1,h2:p2[/path][?query]` gives
/// `redis://[user:pass@]h1:p1[/path][?query]`, … (`rediss+cluster://`
/// gives `rediss://` nodes): the credentials and options apply to every
/// node. `None` when `url` is not a cluster URL; an error (never echoing
/// the URL, which may hold a password) when it names no node.
pub fn cluster_nodes(url: &str) -> Option<Result<Vec<String>, String>> {
    let (rest, node_scheme) = CLUSTER_SCHEMES
        .iter()
        .find_map(|(scheme, node)| url.strip_prefix(scheme).map(|rest| (rest, *node)))?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|host| format!("{node_scheme}{user}{host}{tail}"))
        .collect();
    Some(if nodes.is_empty() {
        Err("a Redis Cluster URL needs at least one node (host:port,host:port,…)".to_owned())
    } else {
        Ok(nodes)
    })
}

/// `url` fit to print: a password in the user info, or in a `pass` or
/// `password` query parameter (where the redis crate reads it for unix
/// sockets), is replaced by `***`. A cluster URL is redacted node by node
/// and printed as one again.
pub fn redact_url(url: &str) -> String {
    if let Some(nodes) = cluster_nodes(url) {
        let Ok(nodes) = nodes else {
            return "<unparsable url>".to_owned();
        };
        let scheme = if url.starts_with("rediss") {
            "rediss+cluster://"
        } else {
            "redis+cluster://"
        };
        // Every node's URL shares the user info, path and query; only the
        // host differs.
        let redacted: Vec<String> = nodes.iter().map(|n| redact_url(n)).collect();
        let mut hosts = Vec::new();
        let mut head = String::new();
        let mut tail = String::new();
        for r in &redacted {
            let Ok(parsed) = Url::parse(r) else {
                return "<unparsable url>".to_owned();
            };
            let host = match (parsed.host_str(), parsed.port()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_owned(),
                _ => return "<unparsable url>".to_owned(),
            };
            let after_scheme = r.split_once("://").map_or("", |(_, a)| a);
            if let Some(at) = after_scheme.find(&host) {
                head = after_scheme[..at].to_owned();
                tail = after_scheme[at + host.len()..].to_owned();
            }
            hosts.push(host);
        }
        return format!("{scheme}{head}{}{tail}", hosts.join(","));
    }
    let Ok(mut parsed) = Url::parse(url) else {
        return "<unparsable url>".to_owned();
    };
    if parsed.password().is_some() {
        // Cannot fail for a URL that already carries a password.
        let _ = parsed.set_password(Some("***"));
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret = k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password");
                let v = if secret {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

/// A URL from the configuration as an error may echo it: as given, unless
/// it may carry credentials (`@`), then redacted ([`redact_url`]).
pub(super) fn shown(url: &str) -> String {
    if url.contains('@') {
        redact_url(url)
    } else {
        url.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_is_kept_as_emitted_uris_start() {
        // `url::Url` would add a `/` after a bare host; list URIs, `iss`
        // and the `aud` comparison need the text without it.
        for (given, kept) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
            (
                "https://Status.Example.com:443/",
                "https://status.example.com",
            ),
            ("https://example.com/status/", "https://example.com/status"),
        ] {
            let url = PublicBaseUrl::parse(given).unwrap();
            assert_eq!(url.as_str(), kept, "{given}");
            assert_eq!(url.to_string(), kept, "{given}");
        }
    }

    #[test]
    fn a_redis_url_is_kept_whole_and_printed_redacted() {
        let url = RedisUrl::parse("redis://:s3cret@h:6379/0".to_owned()).unwrap();
        assert_eq!(url.as_str(), "redis://:s3cret@h:6379/0");
        assert_eq!(url.to_string(), "redis://:***@h:6379/0");
        assert_eq!(format!("{url:?}"), "\"redis://:***@h:6379/0\"");
    }

    #[test]
    fn a_cluster_url_names_its_nodes() {
        let nodes = cluster_nodes("redis+cluster://u:s3cret@a:7000,b:7001/0?protocol=resp3")
            .unwrap()
            .unwrap();
        assert_eq!(
            nodes,
            [
                "redis://u:s3cret@a:7000/0?protocol=resp3",
                "redis://u:s3cret@b:7001/0?protocol=resp3"
            ]
        );
        let nodes = cluster_nodes("rediss+cluster://a:7000, b:7001")
            .unwrap()
            .unwrap();
        assert_eq!(nodes, ["rediss://a:7000", "rediss://b:7001"]);
        assert!(cluster_nodes("redis://a:7000").is_none());
        assert!(cluster_nodes("redis+cluster://").unwrap().is_err());
        assert!(cluster_nodes("redis+cluster://u:p@,").unwrap().is_err());
    }

    #[test]
    fn a_cluster_url_is_checked_and_printed_redacted() {
        let url = RedisUrl::parse("redis+cluster://:s3cret@a:7000,b:7001/0".to_owned()).unwrap();
        assert!(url.is_cluster());
        assert_eq!(url.as_str(), "redis+cluster://:s3cret@a:7000,b:7001/0");
        assert_eq!(url.to_string(), "redis+cluster://:***@a:7000,b:7001/0");
        let url = RedisUrl::parse("rediss+cluster://a:7000?pass=s3cret".to_owned()).unwrap();
        assert_eq!(url.to_string(), "rediss+cluster://a:7000?pass=***");
        assert!(
            !RedisUrl::parse("redis://a".to_owned())
                .unwrap()
                .is_cluster()
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://a:7000,b:x",
            "redis+cluster://[a",
        ] {
            let err = RedisUrl::parse(bad.to_owned()).unwrap_err().to_string();
            assert!(err.contains("store.url"), "{bad}: {err}");
        }
    }
}
