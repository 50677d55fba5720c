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
/// `unix://`) that parses as a URL, kept as given for the redis crate. It may
/// hold a password: `Debug` and `Display` show it redacted ([`redact_url`]);
/// only [`RedisUrl::as_str`] gives it whole, for the Redis client.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The schemes of the Redis store.
    const SCHEMES: [&str; 4] = ["redis://", "rediss://", "redis+unix://", "unix://"];

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
        Url::parse(&text)
            .map_err(|e| invalid("store.url", format!("not a valid Redis URL: {e}")))?;
        Ok(RedisUrl(text))
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

/// `url` fit to print: a password in the user info, or in a `pass` or
/// `password` query parameter (where the redis crate reads it for unix
/// sockets), is replaced by `***`.
pub fn redact_url(url: &str) -> String {
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
}
