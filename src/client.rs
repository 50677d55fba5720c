//! The other side of the API, for the CLI and for scripts: an issuer that
//! signs request JWTs and calls `/issue`, the status changes (by entry or by
//! `ref`), `GET /entries` and the webhook endpoints (`GET /webhooks/failed`,
//! `POST /webhooks/redeliver`), and a verifier
//! that fetches a published list from any CRS-compatible service, checks its
//! signature against the service's JWKS and reads one entry.
//!
//! The verifier trusts nothing it fetched until the signature checks out: the
//! key comes from the JWKS (by the token's `kid`), the `typ` must match the
//! response's media type, `sub`/`id` must be the URI that was asked for, and
//! `exp` must be in the future.

use std::time::Duration;

use serde::Serialize;
use url::Url;

use crate::domain::codec::DEFAULT_DECODE_LIMIT;
use crate::domain::{ListFormat, Status};
use crate::publish::keys::{PublicJwk, ServiceKey};
use crate::publish::{PublishError, decode_bitstring_credential, decode_token_list, jws};

/// What went wrong on the client side. Messages say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service could not be reached.
    #[error("cannot reach {url}: {reason} (is the service running at that address?)")]
    Connect {
        /// The URL called.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The service answered with an error status.
    #[error("{url} answered {status}: {body}")]
    Status {
        /// The URL called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The response body (an error document).
        body: String,
    },
    /// A URL argument is not usable.
    #[error("'{0}' is not an http(s) URL")]
    BadUrl(String),
    /// The response is not what a status service sends.
    #[error("unexpected response from {url}: {reason}")]
    BadResponse {
        /// The URL called.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The list failed verification: do not trust it.
    #[error("the status list failed verification: {0}")]
    Verification(String),
    /// Signing or decoding failed.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Timeouts for every call the CLI makes.
const TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP client with the CLI's timeouts.
///
/// # Errors
/// [`ClientError::Connect`] when the TLS backend cannot start.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent(concat!("statuslist-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Connect {
            url: String::new(),
            reason: e.to_string(),
        })
}

/// A client of the service: its id (`iss`) and its ES256 key (whose `kid` is
/// the RFC 7638 thumbprint, as in the JWKS snippets `keygen --client` writes).
pub struct Issuer {
    client: String,
    key: ServiceKey,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("client", &self.client)
            .field("kid", &self.key.kid())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct IssueClaims<'a> {
    iss: &'a str,
    iat: u64,
    jti: &'a str,
    #[serde(rename = "statusExpiry")]
    status_expiry: u64,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    issuance_ref: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    count: Option<u32>,
}

#[derive(Serialize)]
struct ChangeClaims<'a> {
    iss: &'a str,
    iat: u64,
    jti: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    idx: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<&'a str>,
    #[serde(rename = "ref", skip_serializing_if = "Option::is_none")]
    issuance_ref: Option<&'a str>,
}

#[derive(Serialize)]
struct ListingClaims<'a> {
    iss: &'a str,
    iat: u64,
    jti: &'a str,
    aud: &'a str,
}

/// Which entries a status change is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeTarget<'a> {
    /// One entry: its list URI and index (the CRS request).
    Entry {
        /// The list URI.
        uri: &'a str,
        /// The index.
        idx: u64,
    },
    /// Every entry the issuer bound to this `ref`.
    Ref(&'a str),
}

/// What `/issue` is asked beyond CRS: a `ref` to bind the entries to, and
/// how many entries (`count`). With neither the request is plain CRS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The issuer's reference for this issuance.
    pub issuance_ref: Option<&'a str>,
    /// How many entries.
    pub count: Option<u32>,
}

impl Issuer {
    /// The issuer `client` signing with `key`.
    pub fn new(client: impl Into<String>, key: ServiceKey) -> Self {
        Issuer {
            client: client.into(),
            key,
        }
    }

    /// The signed body of an `/issue` request.
    ///
    /// # Errors
    /// [`PublishError`] if signing fails.
    pub fn issue_request(
        &self,
        jti: &str,
        iat: u64,
        status_expiry: u64,
    ) -> Result<String, PublishError> {
        self.batch_request(jti, iat, status_expiry, Batch::default())
    }

    /// The signed body of an `/issue` request with `ref` and `count` when
    /// `batch` gives them.
    ///
    /// # Errors
    /// [`PublishError`] if signing fails.
    pub fn batch_request(
        &self,
        jti: &str,
        iat: u64,
        status_expiry: u64,
        batch: Batch<'_>,
    ) -> Result<String, PublishError> {
        let claims = IssueClaims {
            iss: &self.client,
            iat,
            jti,
            status_expiry,
            issuance_ref: batch.issuance_ref,
            count: batch.count,
        };
        jws::sign("JWT", &claims, &self.key)
    }

    /// The signed body of a `/revoke` request.
    ///
    /// # Errors
    /// [`PublishError`] if signing fails.
    pub fn revoke_request(
        &self,
        jti: &str,
        iat: u64,
        uri: &str,
        idx: u64,
    ) -> Result<String, PublishError> {
        self.change_request(jti, iat, &ChangeTarget::Entry { uri, idx })
    }

    /// The signed body of a `/revoke`, `/suspend` or `/unsuspend` request
    /// (the endpoint decides the operation; the body is the same).
    ///
    /// # Errors
    /// [`PublishError`] if signing fails.
    pub fn change_request(
        &self,
        jti: &str,
        iat: u64,
        target: &ChangeTarget<'_>,
    ) -> Result<String, PublishError> {
        let (idx, uri, issuance_ref) = match target {
            ChangeTarget::Entry { uri, idx } => (Some(*idx), Some(*uri), None),
            ChangeTarget::Ref(r) => (None, None, Some(*r)),
        };
        let claims = ChangeClaims {
            iss: &self.client,
            iat,
            jti,
            idx,
            uri,
            issuance_ref,
        };
        jws::sign("JWT", &claims, &self.key)
    }

    /// The bearer token of one `GET /entries`, `GET /webhooks/failed` or
    /// `POST /webhooks/redeliver` call: single use, addressed (`aud`) to the
    /// service at `public_base_url`.
    ///
    /// # Errors
    /// [`PublishError`] if signing fails.
    pub fn listing_token(
        &self,
        jti: &str,
        iat: u64,
        public_base_url: &str,
    ) -> Result<String, PublishError> {
        let claims = ListingClaims {
            iss: &self.client,
            iat,
            jti,
            aud: public_base_url,
        };
        jws::sign("JWT", &claims, &self.key)
    }
}

/// Calls `GET /entries` at `base` with the bearer `token` and the query
/// `params` (name, value; percent-encoded here) and returns the JSON
/// answer.
///
/// # Errors
/// As [`post_jwt`].
pub async fn get_entries(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    params: &[(&str, String)],
) -> Result<serde_json::Value, ClientError> {
    get_bearer(http, base, "/entries", token, params).await
}

/// Calls `GET /webhooks/failed` at `base` with the bearer `token` and the
/// query `params` (`after`, `limit`) and returns the JSON answer: one page
/// of the client's dead-lettered webhook events.
///
/// # Errors
/// As [`post_jwt`].
pub async fn get_failed_webhooks(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    params: &[(&str, String)],
) -> Result<serde_json::Value, ClientError> {
    get_bearer(http, base, "/webhooks/failed", token, params).await
}

/// Calls `POST /webhooks/redeliver` at `base` with the bearer `token` for
/// the event `ids` (at most 1,000) and returns the JSON answer
/// (`redelivered`, `unknown`).
///
/// # Errors
/// As [`post_jwt`].
pub async fn redeliver_webhooks(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    ids: &[String],
) -> Result<serde_json::Value, ClientError> {
    let url = format!("{}/webhooks/redeliver", base.trim_end_matches('/'));
    let response = http
        .post(&url)
        .bearer_auth(token)
        .json(&serde_json::json!({ "ids": ids }))
        .send()
        .await
        .map_err(|e| connect_error(&url, e))?;
    json_answer(&url, response).await
}

/// A GET of `path` at `base` with the bearer `token` and the query
/// `params` (percent-encoded here); the JSON answer.
async fn get_bearer(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    token: &str,
    params: &[(&str, String)],
) -> Result<serde_json::Value, ClientError> {
    let mut url = Url::parse(&format!("{}{path}", base.trim_end_matches('/')))
        .map_err(|_| ClientError::BadUrl(base.to_owned()))?;
    if !params.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
    }
    let shown = url.to_string();
    let response = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| connect_error(&shown, e))?;
    json_answer(&shown, response).await
}

/// Posts a request JWT and returns the JSON answer of a 2xx response.
///
/// # Errors
/// [`ClientError::Connect`] when the service is unreachable,
/// [`ClientError::Status`] with the error document for a non-2xx answer,
/// [`ClientError::BadResponse`] for a body that is not JSON.
pub async fn post_jwt(
    http: &reqwest::Client,
    url: &str,
    jwt: String,
) -> Result<serde_json::Value, ClientError> {
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/jwt")
        .body(jwt)
        .send()
        .await
        .map_err(|e| connect_error(url, e))?;
    json_answer(url, response).await
}

/// The JSON body of a 2xx answer; any other status is
/// [`ClientError::Status`] with the error document.
async fn json_answer(
    url: &str,
    response: reqwest::Response,
) -> Result<serde_json::Value, ClientError> {
    let status = response.status();
    let body = response.text().await.map_err(|e| connect_error(url, e))?;
    if !status.is_success() {
        return Err(ClientError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
            body,
        });
    }
    serde_json::from_str(&body).map_err(|e| ClientError::BadResponse {
        url: url.to_owned(),
        reason: format!("not JSON: {e}"),
    })
}

fn connect_error(url: &str, e: reqwest::Error) -> ClientError {
    // reqwest's own text is generic ("error sending request"); the cause
    // (connection refused, timed out) is in the source chain.
    let e = e.without_url();
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    ClientError::Connect {
        url: url.to_owned(),
        reason,
    }
}

/// One entry of a published list, verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The list URI.
    pub uri: String,
    /// The index read.
    pub idx: u64,
    /// `token` or `bitstring`, from the response's media type.
    pub format: ListFormat,
    /// The raw value at `idx`.
    pub value: u8,
    /// Its name (VALID, INVALID, SUSPENDED, APPLICATION_SPECIFIC), or
    /// `UNKNOWN(n)` for a value without a registered meaning.
    pub status: String,
    /// The list token's `iat`.
    pub iat: Option<u64>,
    /// The list token's `exp`.
    pub exp: Option<u64>,
    /// The key that signed it.
    pub kid: String,
    /// The media type the list came as (`application/statuslist+jwt`,
    /// `application/statuslist+cwt` or `application/vc+jwt`).
    pub media_type: &'static str,
}

impl CheckReport {
    /// Whether the credential is valid (value 0).
    pub fn is_valid(&self) -> bool {
        self.value == 0
    }
}

/// The default JWKS of a list URI: its origin + `/.well-known/jwks.json`.
///
/// # Errors
/// [`ClientError::BadUrl`] for a URI that is not http(s).
pub fn default_jwks_url(uri: &str) -> Result<String, ClientError> {
    let url = Url::parse(uri).map_err(|_| ClientError::BadUrl(uri.to_owned()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ClientError::BadUrl(uri.to_owned()));
    }
    Ok(format!(
        "{}/.well-known/jwks.json",
        url.origin().ascii_serialization()
    ))
}

/// Fetches the list at `uri`, verifies it against the JWKS at `jwks_url`
/// (default: [`default_jwks_url`]) and reads entry `idx`, at `now`. With
/// `cwt`, a Token Status List is asked for as its CWT
/// (`application/statuslist+cwt`) rather than its JWT.
///
/// # Errors
/// [`ClientError`] for an unreachable service, an error answer, an unknown
/// media type, a failed verification (signature, `typ`, `sub`/`id`, `exp`),
/// or an index outside the list.
pub async fn check(
    http: &reqwest::Client,
    uri: &str,
    idx: u64,
    jwks_url: Option<&str>,
    cwt: bool,
    now: u64,
) -> Result<CheckReport, ClientError> {
    let jwks_url = match jwks_url {
        Some(u) => u.to_owned(),
        None => default_jwks_url(uri)?,
    };
    let accept = if cwt {
        "application/statuslist+cwt, application/vc+jwt;q=0.5"
    } else {
        "application/statuslist+jwt, application/vc+jwt"
    };
    let response = http
        .get(uri)
        .header(reqwest::header::ACCEPT, accept)
        .send()
        .await
        .map_err(|e| connect_error(uri, e))?;
    let status = response.status();
    let media_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let body = response.bytes().await.map_err(|e| connect_error(uri, e))?;
    if !status.is_success() {
        return Err(ClientError::Status {
            url: uri.to_owned(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    if media_type == crate::publish::cwt::MEDIA_TYPE {
        return check_cwt(http, uri, idx, &jwks_url, &body, now).await;
    }
    let body = String::from_utf8_lossy(&body);
    let (format, typ) = match media_type.as_str() {
        "application/statuslist+jwt" => (ListFormat::Token, "statuslist+jwt"),
        "application/vc+jwt" => (ListFormat::Bitstring, "vc+jwt"),
        other => {
            return Err(ClientError::BadResponse {
                url: uri.to_owned(),
                reason: format!(
                    "media type '{other}' is none of application/statuslist+jwt, application/statuslist+cwt, application/vc+jwt"
                ),
            });
        }
    };
    let token = body.trim();
    let unverified = jws::decode_unverified(token)?;
    let kid = unverified
        .header
        .kid
        .clone()
        .ok_or_else(|| ClientError::Verification("the token has no kid".into()))?;
    let key = fetch_key(http, &jwks_url, &kid).await?;
    let parts = jws::verify(token, &key)
        .map_err(|e| ClientError::Verification(format!("signature: {e}")))?;
    if parts.header.typ.as_deref() != Some(typ) {
        return Err(ClientError::Verification(format!(
            "typ is {:?}, expected '{typ}' for this media type",
            parts.header.typ
        )));
    }
    let (sub, iat, exp, list) = match format {
        ListFormat::Token => {
            let decoded = decode_token_list(&parts.payload, DEFAULT_DECODE_LIMIT)?;
            let c = decoded.claims;
            (Some(c.sub), Some(c.iat), c.exp, decoded.list)
        }
        ListFormat::Bitstring => {
            let decoded = decode_bitstring_credential(&parts.payload, DEFAULT_DECODE_LIMIT)?;
            let c = decoded.credential;
            if c.id != uri {
                return Err(ClientError::Verification(format!(
                    "the credential's id '{}' is not the URI asked for",
                    c.id
                )));
            }
            (c.sub.or(Some(c.id)), c.iat, c.exp, decoded.list)
        }
    };
    let read = Read {
        media_type: match format {
            ListFormat::Token => "application/statuslist+jwt",
            ListFormat::Bitstring => "application/vc+jwt",
        },
        sub,
        iat,
        exp,
        list,
        kid,
    };
    read.report(uri, idx, format, now)
}

/// What a verified list says, whichever envelope it came in.
struct Read {
    media_type: &'static str,
    sub: Option<String>,
    iat: Option<u64>,
    exp: Option<u64>,
    list: crate::domain::StatusList,
    kid: String,
}

impl Read {
    /// Checks `sub` and `exp` and reads entry `idx`.
    fn report(
        self,
        uri: &str,
        idx: u64,
        format: ListFormat,
        now: u64,
    ) -> Result<CheckReport, ClientError> {
        let Read {
            media_type,
            sub,
            iat,
            exp,
            list,
            kid,
        } = self;
        if sub.as_deref() != Some(uri) {
            return Err(ClientError::Verification(format!(
                "sub {sub:?} is not the URI asked for"
            )));
        }
        match exp {
            Some(exp) if exp > now => {}
            Some(exp) => {
                return Err(ClientError::Verification(format!(
                    "the list expired at {exp}"
                )));
            }
            None => return Err(ClientError::Verification("the list has no exp".into())),
        }
        let value = list.get(idx).map_err(|_| {
            ClientError::Verification(format!(
                "index {idx} is outside the list ({} entries)",
                list.len()
            ))
        })?;
        let status = Status::from_value(value)
            .map(|s| s.name().to_owned())
            .unwrap_or_else(|| format!("UNKNOWN({value})"));
        Ok(CheckReport {
            uri: uri.to_owned(),
            idx,
            format,
            value,
            status,
            iat,
            exp,
            kid,
            media_type,
        })
    }
}

/// [`check`] of a Token Status List CWT: the key named by its `kid`, the
/// COSE signature, `typ`, then the same rules as for the JWT.
async fn check_cwt(
    http: &reqwest::Client,
    uri: &str,
    idx: u64,
    jwks_url: &str,
    body: &[u8],
    now: u64,
) -> Result<CheckReport, ClientError> {
    use crate::publish::cwt;
    let unverified = cwt::decode_unverified(body)?;
    let kid = unverified
        .kid
        .and_then(|k| String::from_utf8(k).ok())
        .ok_or_else(|| ClientError::Verification("the CWT has no text kid".into()))?;
    let key = fetch_key(http, jwks_url, &kid).await?;
    let parts = cwt::verify(body, &key)
        .map_err(|e| ClientError::Verification(format!("signature: {e}")))?;
    if parts.typ.as_deref() != Some(cwt::MEDIA_TYPE) {
        return Err(ClientError::Verification(format!(
            "typ is {:?}, expected '{}'",
            parts.typ,
            cwt::MEDIA_TYPE
        )));
    }
    let decoded = cwt::decode_cwt_list(&parts.payload, DEFAULT_DECODE_LIMIT)?;
    let c = decoded.claims;
    let read = Read {
        media_type: cwt::MEDIA_TYPE,
        sub: Some(c.sub),
        iat: Some(c.iat),
        exp: c.exp,
        list: decoded.list,
        kid,
    };
    read.report(uri, idx, ListFormat::Token, now)
}

/// Fetches a JWKS and returns the ES256 key with `kid`.
async fn fetch_key(
    http: &reqwest::Client,
    jwks_url: &str,
    kid: &str,
) -> Result<p256::ecdsa::VerifyingKey, ClientError> {
    #[derive(serde::Deserialize)]
    struct Jwks {
        keys: Vec<serde_json::Value>,
    }
    let response = http
        .get(jwks_url)
        .send()
        .await
        .map_err(|e| connect_error(jwks_url, e))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| connect_error(jwks_url, e))?;
    if !status.is_success() {
        return Err(ClientError::Status {
            url: jwks_url.to_owned(),
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
    }
    let jwks: Jwks = serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse {
        url: jwks_url.to_owned(),
        reason: format!("not a JWKS: {e}"),
    })?;
    let jwk = jwks
        .keys
        .into_iter()
        .filter(|k| k.get("kid").and_then(|v| v.as_str()) == Some(kid))
        .find_map(|k| serde_json::from_value::<PublicJwk>(k).ok())
        .ok_or_else(|| {
            ClientError::Verification(format!("no ES256 key with kid '{kid}' in {jwks_url}"))
        })?;
    jwk.to_verifying_key()
        .map_err(|e| ClientError::Verification(format!("key '{kid}': {e}")))
}
