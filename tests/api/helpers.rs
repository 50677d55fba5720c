//! `spawn_app`: the whole application on 127.0.0.1:0 with its own store (a
//! temporary redb file, or a private redis-server with its own key prefix),
//! its own generated signing key, and three test issuers with inline JWKS;
//! plus the request builders and list readers the scenarios share.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

#[path = "../common/json_toml.rs"]
mod json_toml;
pub use json_toml::json_to_toml;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use statuslist::config::Settings;
use statuslist::domain::codec::DEFAULT_DECODE_LIMIT;
use statuslist::publish::{decode_bitstring_credential, decode_token_list};
use statuslist::startup::Application;

use crate::support::RedisServer;

/// The base URL the apps are configured with: the `uri`s they answer start
/// with it; tests fetch lists from the real address by the uri's path.
pub const BASE: &str = "http://127.0.0.1";

/// Which store a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChoice {
    /// A redb file in the app's temporary directory.
    Embedded,
    /// A private redis-server started for the app.
    Redis,
}

/// A store address, for apps that share one store.
#[derive(Debug, Clone)]
pub enum StoreSpec {
    /// redb at this path.
    Embedded(PathBuf),
    /// Redis at `url` with key prefix `prefix`.
    Redis { url: String, prefix: String },
}

/// Settings a scenario may change.
#[derive(Debug, Clone)]
pub struct Knobs {
    pub capacity: u64,
    pub command_timeout_ms: u64,
    pub freshness_ms: u64,
    /// Bits per entry; other than 2, the bitstring client is left out (its
    /// lists need 2).
    pub bits: u8,
    /// `idempotency_window_secs`.
    pub window_secs: u64,
    /// `signing.optimize_after_secs`.
    pub optimize_after_secs: u64,
    /// `lists.max_batch` (the service's default when `None`).
    pub max_batch: Option<u64>,
    /// More lines of `client-t`'s `[[clients]]` table (a webhook, say).
    pub token_client_toml: String,
    /// More top-level tables (`[webhooks]`, say), placed before the
    /// clients.
    pub extra_toml: String,
}

impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            capacity: 64,
            command_timeout_ms: 300,
            freshness_ms: 250,
            bits: 2,
            window_secs: 3600,
            optimize_after_secs: 1,
            max_batch: None,
            token_client_toml: String::new(),
            extra_toml: String::new(),
        }
    }
}

/// A test issuer: a registered client id and its P-256 key.
pub struct Issuer {
    pub id: &'static str,
    pub format: &'static str,
    pub kid: &'static str,
    pub key: SigningKey,
}

/// The token-format client.
pub static TOKEN: LazyLock<Issuer> = LazyLock::new(|| Issuer::new("client-t", "token", "kt"));
/// A second token-format client (ownership tests).
pub static TOKEN2: LazyLock<Issuer> = LazyLock::new(|| Issuer::new("client-t2", "token", "kt2"));
/// The bitstring-format client.
pub static BITS: LazyLock<Issuer> = LazyLock::new(|| Issuer::new("client-b", "bitstring", "kb"));

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn jti() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The `error_description` of a jti used again with other claims (400).
pub const CHANGED: &str = "Detected invalid changes between idempotent requests, unable to proceed. Please generate a new request.";

/// The (idx, uri) of every object of `body[member]` (an answer's
/// `entries`, a listing's `items`), in order.
pub fn idx_uris(body: &Value, member: &str) -> Vec<(u64, String)> {
    body[member]
        .as_array()
        .unwrap_or_else(|| panic!("no {member}: {body}"))
        .iter()
        .map(|e| {
            (
                e["idx"].as_u64().unwrap(),
                e["uri"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The (idx, uri) of every entry of an `/issue` answer with entries.
pub fn entries_of(body: &Value) -> Vec<(u64, String)> {
    idx_uris(body, "entries")
}

/// Removes a member from a JSON object.
pub fn without(v: &Value, key: &str) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove(key);
    v
}

/// Sets a member of a JSON object.
pub fn with(v: &Value, key: &str, val: Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().insert(key.into(), val);
    v
}

impl Issuer {
    fn new(id: &'static str, format: &'static str, kid: &'static str) -> Self {
        Issuer {
            id,
            format,
            kid,
            key: SigningKey::random(&mut rand::rngs::OsRng),
        }
    }

    pub fn jwks(&self) -> Value {
        let p = self.key.verifying_key().to_encoded_point(false);
        let p = p.as_bytes();
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
                         "x": b64(&p[1..33]), "y": b64(&p[33..65])}]})
    }

    pub fn header(&self) -> Value {
        json!({"alg": "ES256", "typ": "JWT", "kid": self.kid})
    }

    /// A compact JWS of `header` and `payload` signed with this key.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let sig: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    pub fn token(&self, payload: &Value) -> String {
        self.sign(&self.header(), payload)
    }

    pub fn issue_payload(&self) -> Value {
        json!({"iss": self.id, "iat": now(), "jti": jti(), "statusExpiry": now() + 86_400})
    }

    pub fn change_payload(&self, idx: u64, uri: &str) -> Value {
        json!({"iss": self.id, "iat": now(), "jti": jti(), "idx": idx, "uri": uri})
    }

    /// The payload of a change of every entry bound to `issuance_ref`.
    pub fn ref_change_payload(&self, issuance_ref: &str) -> Value {
        json!({"iss": self.id, "iat": now(), "jti": jti(), "ref": issuance_ref})
    }

    /// The payload of a listing JWT (`GET /entries`), addressed to the app.
    pub fn listing_payload(&self) -> Value {
        json!({"iss": self.id, "iat": now(), "jti": jti(), "aud": BASE})
    }

    pub fn toml(&self) -> String {
        format!(
            "[[clients]]\nid = \"{}\"\nformat = \"{}\"\njwks = {}\n",
            self.id,
            self.format,
            json_to_toml(&self.jwks())
        )
    }
}

/// The validated settings of an app on `store`, keeping its key in `dir`.
pub fn settings(store: &StoreSpec, knobs: &Knobs, dir: &Path) -> Settings {
    let (url, prefix) = match store {
        StoreSpec::Embedded(path) => (format!("embedded:{}", path.display()), "unused:".into()),
        StoreSpec::Redis { url, prefix } => (url.clone(), prefix.clone()),
    };
    // The short timeout is for the Redis fault scenarios; an fsync'ed redb
    // commit on a busy CI disk may take longer, and no scenario needs the
    // embedded store to time out.
    let command_timeout_ms = match store {
        StoreSpec::Embedded(_) => knobs.command_timeout_ms.max(10_000),
        StoreSpec::Redis { .. } => knobs.command_timeout_ms,
    };
    let toml = format!(
        "public_base_url = \"{BASE}\"\nlisten = \"127.0.0.1:0\"\nidempotency_window_secs = {}\n\
         [store]\nurl = \"{url}\"\nredis_prefix = \"{prefix}\"\ncommand_timeout_ms = {}\n\
         [lists]\ncapacity = {}\nbits = {}\n{}\
         [signing]\nkey_file = \"{}\"\ngenerate_if_missing = true\nfreshness_ms = {}\n\
         optimize_after_secs = {}\n{}{}{}{}{}",
        knobs.window_secs,
        command_timeout_ms,
        knobs.capacity,
        knobs.bits,
        knobs
            .max_batch
            .map(|b| format!("max_batch = {b}\n"))
            .unwrap_or_default(),
        dir.join("service-key.pem").display(),
        knobs.freshness_ms,
        knobs.optimize_after_secs,
        knobs.extra_toml,
        TOKEN.toml(),
        knobs.token_client_toml,
        TOKEN2.toml(),
        if knobs.bits == 2 {
            BITS.toml()
        } else {
            String::new()
        },
    );
    Settings::from_toml_str(&toml).unwrap()
}

/// A running application and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    pub http: reqwest::Client,
    pub handle: actix_web::dev::ServerHandle,
    /// The app's private Redis, when it has one.
    pub redis: Option<RedisServer>,
    _dir: Option<tempfile::TempDir>,
}

/// Spawns an app on a fresh store of the chosen kind.
pub async fn spawn_app(choice: StoreChoice) -> TestApp {
    spawn_app_with(choice, Knobs::default()).await
}

/// Spawns an app on a fresh store of the chosen kind with `knobs`.
pub async fn spawn_app_with(choice: StoreChoice, knobs: Knobs) -> TestApp {
    let (dir, spec, redis) = fresh_store(choice);
    let mut app = start(settings(&spec, &knobs, dir.path())).await;
    app.redis = redis;
    app._dir = Some(dir);
    app
}

/// A temporary directory and a new empty store of the chosen kind (a redb
/// path in it, or a private redis-server with a unique prefix).
pub fn fresh_store(choice: StoreChoice) -> (tempfile::TempDir, StoreSpec, Option<RedisServer>) {
    let dir = tempfile::tempdir().unwrap();
    let (spec, redis) = match choice {
        StoreChoice::Embedded => (StoreSpec::Embedded(dir.path().join("store.redb")), None),
        StoreChoice::Redis => {
            let server = RedisServer::start();
            let spec = StoreSpec::Redis {
                url: server.url(),
                prefix: format!("t{}:", uuid::Uuid::new_v4().simple()),
            };
            (spec, Some(server))
        }
    };
    (dir, spec, redis)
}

/// Builds and starts an app from `settings` (the caller keeps the store and
/// key directory alive).
pub async fn start(settings: Settings) -> TestApp {
    attach(Application::build(settings, None).await.unwrap())
}

/// Runs a built application and gives a client for it.
pub fn attach(app: Application) -> TestApp {
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        http: reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        handle,
        redis: None,
        _dir: None,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command at once (the returned future only waits for
        // it), so the app's worker threads end with the test.
        drop(self.handle.stop(false));
    }
}

/// The status values of the published lists.
pub const VALID: u8 = 0;
pub const INVALID: u8 = 1;
pub const SUSPENDED: u8 = 2;

/// What a GET of a list returned, verified.
pub struct FetchedList {
    pub etag: String,
    pub body: String,
    pub list: statuslist::domain::StatusList,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    /// POSTs `body` with `content_type` (none when `None`).
    pub async fn post(&self, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Response {
        let mut req = self.http.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.unwrap()
    }

    /// POSTs a JWT as `application/jwt`.
    pub async fn post_jwt(&self, path: &str, jwt: &str) -> Response {
        self.post(path, Some("application/jwt"), jwt.as_bytes().to_vec())
            .await
    }

    /// `/issue` for `who`; asserts 200 and returns (idx, uri).
    pub async fn issue(&self, who: &Issuer) -> (u64, String) {
        let res = self
            .post_jwt("/issue", &who.token(&who.issue_payload()))
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        (
            body["idx"].as_u64().unwrap(),
            body["uri"].as_str().unwrap().to_owned(),
        )
    }

    /// `/issue` for `who` with `extra` claims (`ref`, `count`) added to a
    /// fresh payload; asserts 200 and `no-store` and returns the body.
    pub async fn issue_with(&self, who: &Issuer, extra: Value) -> Value {
        let mut p = who.issue_payload();
        for (k, v) in extra.as_object().unwrap() {
            p = with(&p, k, v.clone());
        }
        let res = self.post_jwt("/issue", &who.token(&p)).await;
        assert_eq!(res.status(), StatusCode::OK, "{p}");
        assert_eq!(res.headers()["cache-control"], "no-store");
        res.json().await.unwrap()
    }

    /// As [`TestApp::issue_with`]; the (idx, uri) of the entries.
    pub async fn issue_entries(&self, who: &Issuer, extra: Value) -> Vec<(u64, String)> {
        entries_of(&self.issue_with(who, extra).await)
    }

    /// `POST {path}` of every entry bound to `issuance_ref`, signed by `who`.
    pub async fn change_ref(&self, path: &str, who: &Issuer, issuance_ref: &str) -> Response {
        self.post_jwt(path, &who.token(&who.ref_change_payload(issuance_ref)))
            .await
    }

    /// `GET /entries?{query}` with `authorization` as the header (none when
    /// `None`).
    pub async fn get_entries(&self, query: &str, authorization: Option<&str>) -> Response {
        let mut req = self.http.get(self.url(&format!("/entries?{query}")));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        req.send().await.unwrap()
    }

    /// `GET /entries?{query}` with a fresh listing JWT of `who`.
    pub async fn entries(&self, who: &Issuer, query: &str) -> Response {
        let token = who.token(&who.listing_payload());
        self.get_entries(query, Some(&format!("Bearer {token}")))
            .await
    }

    /// As [`TestApp::entries`], asserting 200 and `no-store`; the body.
    pub async fn entries_ok(&self, who: &Issuer, query: &str) -> Value {
        let res = self.entries(who, query).await;
        assert_eq!(res.status(), StatusCode::OK, "GET /entries?{query}");
        assert_eq!(res.headers()["cache-control"], "no-store");
        res.json().await.unwrap()
    }

    /// `POST {path}` (`/revoke`, `/suspend`, `/unsuspend`) of `idx` in `uri`
    /// signed by `who`.
    pub async fn change(&self, path: &str, who: &Issuer, idx: u64, uri: &str) -> Response {
        self.post_jwt(path, &who.token(&who.change_payload(idx, uri)))
            .await
    }

    /// GETs the list at `uri` (by its path) and checks it: 200, the headers
    /// of a published list, a signature that verifies with a key of the
    /// app's JWKS, `typ` and `sub` as published, and a list that decodes.
    pub async fn fetch_list(&self, uri: &str) -> FetchedList {
        let path = list_path(uri);
        let res = self.get(&path).await;
        assert_eq!(res.status(), StatusCode::OK, "GET {path}");
        let token_format = path.starts_with("/t/");
        let h = res.headers();
        let (media, typ) = if token_format {
            ("application/statuslist+jwt", "statuslist+jwt")
        } else {
            ("application/vc+jwt", "vc+jwt")
        };
        assert_eq!(h["content-type"], media);
        assert_eq!(h["cache-control"], "public, max-age=300");
        assert_eq!(h["access-control-allow-origin"], "*");
        assert_eq!(h["vary"], "Accept, Accept-Encoding");
        assert!(
            h.get("content-encoding").is_none(),
            "no Accept-Encoding, no content coding"
        );
        let etag = h["etag"].to_str().unwrap().to_owned();
        let body = res.text().await.unwrap();
        let payload = self.verify(&body, typ, uri).await;
        let list = if token_format {
            decode_token_list(&payload, DEFAULT_DECODE_LIMIT)
                .unwrap()
                .list
        } else {
            decode_bitstring_credential(&payload, DEFAULT_DECODE_LIMIT)
                .unwrap()
                .list
        };
        FetchedList { etag, body, list }
    }

    /// The status at `idx` of the list at `uri`, as published.
    pub async fn status_at(&self, uri: &str, idx: u64) -> u8 {
        self.fetch_list(uri).await.list.get(idx).unwrap()
    }

    /// Verifies a published token with the keys of `/.well-known/jwks.json`
    /// (jsonwebtoken, ES256) and returns its payload as JSON bytes.
    pub async fn verify(&self, token: &str, typ: &str, uri: &str) -> Vec<u8> {
        use jsonwebtoken::jwk::JwkSet;
        use jsonwebtoken::{Algorithm, DecodingKey, Validation};
        let res = self.get("/.well-known/jwks.json").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "application/jwk-set+json");
        let jwks: JwkSet = res.json().await.unwrap();
        let header = jsonwebtoken::decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.typ.as_deref(), Some(typ));
        let kid = header.kid.unwrap();
        let jwk = jwks.find(&kid).expect("the token's kid is in the JWKS");
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        validation.sub = Some(uri.to_owned());
        validation.set_issuer(&[BASE]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .expect("the list token verifies with the published keys");
        serde_json::to_vec(&data.claims).unwrap()
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let res = self.get("/metrics").await;
        assert_eq!(res.status(), StatusCode::OK);
        res.text().await.unwrap()
    }
}

/// The path of a list URI (`/t/ID` or `/b/ID`).
pub fn list_path(uri: &str) -> String {
    let rest = uri
        .strip_prefix(BASE)
        .unwrap_or_else(|| panic!("{uri} does not start with {BASE}"));
    rest.to_owned()
}

/// Asserts an error response: status, `Cache-Control: no-store`, and the
/// exact body `{error, error_description}`.
pub async fn assert_error(res: Response, status: u16, error: &str, description: &str) {
    assert_eq!(res.status().as_u16(), status, "{error}: {description}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    if matches!(status, 409 | 503) {
        assert!(res.headers().contains_key("retry-after"));
    }
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": error, "error_description": description})
    );
}

/// Runs each named `async fn(StoreChoice)` scenario of the calling module
/// once per store, as `embedded::NAME` and `redis::NAME`.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::StoreChoice::Embedded).await
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name($crate::helpers::StoreChoice::Redis).await
                }
            )*
        }
    };
}

/// Spawns an app on a fresh store of the chosen kind after running `prepare`
/// on that store directly (opened as the app opens it, then closed, since
/// the embedded store allows one opener at a time).
pub async fn spawn_prepared(
    choice: StoreChoice,
    prepare: impl AsyncFnOnce(&statuslist::store::any::AnyStore),
) -> TestApp {
    let knobs = Knobs::default();
    let (dir, spec, redis) = fresh_store(choice);
    let settings = settings(&spec, &knobs, dir.path());
    {
        let store = statuslist::startup::open_store(&settings).await.unwrap();
        prepare(&store).await;
    }
    let mut app = start(settings).await;
    app.redis = redis;
    app._dir = Some(dir);
    app
}
