//! Issuer authentication, black-box: request JWTs through
//! `Authenticator::check_issue` / `check_revoke`, against inline JWKS and a
//! local JWKS server on 127.0.0.1.

#[path = "common/crs_examples.rs"]
mod crs_spec;
#[path = "common/json_toml.rs"]
mod json_toml;

mod support {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};
    use serde_json::{Value, json};
    use statuslist::auth::Authenticator;
    use statuslist::config::Settings;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::Notify;

    pub const NOW: u64 = 1_758_038_912;
    pub const BASE: &str = "https://status.example.com";
    pub const LIST_URI: &str = "https://status.example.com/t/A671FED3E9AD";

    pub fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// A P-256 key pair of a test issuer.
    pub struct TestKey {
        pub kid: String,
        pub sk: SigningKey,
    }

    impl TestKey {
        pub fn new(kid: &str) -> Self {
            TestKey {
                kid: kid.to_owned(),
                sk: SigningKey::random(&mut rand::rngs::OsRng),
            }
        }

        pub fn public_point(&self) -> Vec<u8> {
            self.sk
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes()
                .to_vec()
        }

        pub fn jwk(&self) -> Value {
            let p = self.public_point();
            json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig",
                   "x": b64(&p[1..33]), "y": b64(&p[33..65])})
        }

        pub fn jwks(keys: &[&TestKey]) -> Value {
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
        }

        /// A compact JWS of `header` and `payload` signed with this key.
        pub fn sign(&self, header: &Value, payload: &Value) -> String {
            let input = format!(
                "{}.{}",
                b64(header.to_string().as_bytes()),
                b64(payload.to_string().as_bytes())
            );
            let sig: Signature = self.sk.sign(input.as_bytes());
            format!("{input}.{}", b64(&sig.to_bytes()))
        }

        pub fn header(&self) -> Value {
            json!({"alg": "ES256", "typ": "JWT", "kid": self.kid})
        }

        /// A valid token with `payload`.
        pub fn token(&self, payload: &Value) -> String {
            self.sign(&self.header(), payload)
        }
    }

    pub fn jti() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    pub fn issue_payload(iss: &str) -> Value {
        json!({"iss": iss, "iat": NOW, "jti": jti(), "statusExpiry": NOW + 86_400})
    }

    pub fn revoke_payload(iss: &str) -> Value {
        json!({"iss": iss, "iat": NOW, "jti": jti(), "idx": 3, "uri": LIST_URI})
    }

    /// A `[[clients]]` entry with an inline JWKS.
    pub fn inline_client(id: &str, keys: &[&TestKey]) -> String {
        let jwks = TestKey::jwks(keys).to_string();
        format!("[[clients]]\nid = \"{id}\"\nformat = \"token\"\njwks = '''{jwks}'''\n")
    }

    /// A `[[clients]]` entry fetching its JWKS from `url` (plain http).
    pub fn remote_client(id: &str, url: &str) -> String {
        format!(
            "[[clients]]\nid = \"{id}\"\nformat = \"token\"\njwks_uri = \"{url}\"\nallow_insecure_jwks = true\n"
        )
    }

    /// Settings over `clients` (`jwks = '''{json}'''` lines allowed) with
    /// extra `[jwks]` lines.
    pub fn settings(clients: &str, jwks: &str) -> Settings {
        let toml = format!("public_base_url = \"{BASE}\"\n[jwks]\n{jwks}\n{clients}");
        Settings::from_toml_str(&inline_json_to_toml(&toml)).unwrap()
    }

    use crate::json_toml::json_to_toml;

    /// Rewrites `jwks = '''{json}'''` lines into TOML inline tables.
    fn inline_json_to_toml(toml: &str) -> String {
        toml.lines()
            .map(|line| {
                if let Some(json) = line
                    .strip_prefix("jwks = '''")
                    .and_then(|l| l.strip_suffix("'''"))
                {
                    let v: Value = serde_json::from_str(json).unwrap();
                    format!("jwks = {}", json_to_toml(&v))
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn auth(clients: &str) -> Authenticator {
        Authenticator::new(&settings(clients, "")).unwrap()
    }

    /// What the local JWKS server answers.
    pub struct Reply {
        pub status: u16,
        pub body: String,
        pub cache_control: Option<String>,
        pub delay: Option<Duration>,
        /// Never answer (until the connection is dropped).
        pub hang: bool,
    }

    /// A minimal HTTP/1.1 server on 127.0.0.1:0 serving one JWKS document.
    pub struct JwksServer {
        pub url: String,
        pub reply: Arc<Mutex<Reply>>,
        pub hits: Arc<AtomicUsize>,
        pub received: Arc<Notify>,
        task: tokio::task::JoinHandle<()>,
    }

    impl JwksServer {
        pub async fn start(jwks: &Value) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
            let reply = Arc::new(Mutex::new(Reply {
                status: 200,
                body: jwks.to_string(),
                cache_control: None,
                delay: None,
                hang: false,
            }));
            let hits = Arc::new(AtomicUsize::new(0));
            let received = Arc::new(Notify::new());
            let (r, h, n) = (reply.clone(), hits.clone(), received.clone());
            let task = tokio::spawn(async move {
                loop {
                    let Ok((mut sock, _)) = listener.accept().await else {
                        return;
                    };
                    let (r, h, n) = (r.clone(), h.clone(), n.clone());
                    tokio::spawn(async move {
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => buf.extend_from_slice(&chunk[..k]),
                            }
                        }
                        h.fetch_add(1, Ordering::SeqCst);
                        n.notify_waiters();
                        let (status, body, cc, delay, hang) = {
                            let r = r.lock().unwrap();
                            (
                                r.status,
                                r.body.clone(),
                                r.cache_control.clone(),
                                r.delay,
                                r.hang,
                            )
                        };
                        if hang {
                            std::future::pending::<()>().await;
                        }
                        if let Some(d) = delay {
                            tokio::time::sleep(d).await;
                        }
                        let cc = cc
                            .map(|c| format!("Cache-Control: {c}\r\n"))
                            .unwrap_or_default();
                        let head = format!(
                            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{cc}Connection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = sock.write_all(head.as_bytes()).await;
                        let _ = sock.write_all(body.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    });
                }
            });
            JwksServer {
                url,
                reply,
                hits,
                received,
                task,
            }
        }

        pub fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }

        pub fn set_body(&self, jwks: &Value) {
            self.reply.lock().unwrap().body = jwks.to_string();
        }

        /// Stops accepting: later connections are refused.
        pub async fn stop(&self) {
            self.task.abort();
            // Wait until the listener is really dropped.
            while !self.task.is_finished() {
                tokio::task::yield_now().await;
            }
        }
    }
}

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use statuslist::auth::{AuthError, Authenticator, ChangeRequest};
use statuslist::domain::claims::{ChangeOp, change_digest, issue_digest};
use statuslist::domain::{ClaimError, ClientId, ListFormat, ListRef};
use support::*;

const JWT: Option<&str> = Some("application/jwt");

async fn issue(a: &Authenticator, token: &str) -> Result<statuslist::auth::IssueClaims, AuthError> {
    a.check_issue(JWT, token.as_bytes(), NOW).await
}

async fn revoke(
    a: &Authenticator,
    token: &str,
) -> Result<statuslist::auth::RevokeClaims, AuthError> {
    a.check_revoke(JWT, token.as_bytes(), NOW)
        .await
        .map(|r| match r {
            ChangeRequest::Entry(c) => c,
            ChangeRequest::Ref(c) => panic!("a change by ref: {c:?}"),
        })
}

/// Runs the `/issue` checks on `token` (at `NOW`) and asserts they fail with
/// exactly `want`; `why` names the case in the failure message.
async fn assert_issue_err(a: &Authenticator, token: &str, want: AuthError, why: &str) {
    match issue(a, token).await {
        Ok(claims) => panic!("{why}: accepted ({claims:?}), expected {want:?}"),
        Err(got) => assert_eq!(got, want, "{why}"),
    }
}

/// The response row of an authentication failure from the HTTP layer's one
/// table, the status as a number (as the CRS spec writes it).
fn crs_row(e: AuthError) -> (u16, &'static str, String) {
    let (status, code, text) = statuslist::http::error::auth_row(e);
    (status.as_u16(), code, text.into_owned())
}

/// Removes a member from a JSON object.
fn without(v: &Value, key: &str) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove(key);
    v
}

/// Sets a member of a JSON object.
fn with(v: &Value, key: &str, val: Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().insert(key.into(), val);
    v
}

mod valid {
    use super::*;

    #[tokio::test]
    async fn issue_and_revoke_requests_yield_typed_claims() {
        let k = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let p = issue_payload("client-a");
        let c = issue(&a, &k.token(&p)).await.unwrap();
        let id = ClientId::parse("client-a").unwrap();
        assert_eq!(c.client(), &id);
        assert_eq!(c.format(), ListFormat::Token);
        assert_eq!(c.iat(), NOW);
        assert_eq!(c.jti().as_str(), p["jti"].as_str().unwrap());
        assert_eq!(c.status_expiry(), NOW + 86_400);
        assert_eq!(c.digest(), issue_digest(&id, c.jti(), NOW + 86_400));

        // A retry re-signed with a fresh iat is the same request.
        let retry = with(&p, "iat", json!(NOW - 5));
        assert_eq!(
            issue(&a, &k.token(&retry)).await.unwrap().digest(),
            c.digest()
        );
        // A different statusExpiry is not.
        let changed = with(&p, "statusExpiry", json!(NOW + 90_000));
        assert_ne!(
            issue(&a, &k.token(&changed)).await.unwrap().digest(),
            c.digest()
        );

        let p = revoke_payload("client-a");
        let c = revoke(&a, &k.token(&p)).await.unwrap();
        let list = ListRef::parse_uri(BASE, LIST_URI).unwrap();
        assert_eq!((c.idx(), c.list(), c.op()), (3, list, ChangeOp::Revoke));
        assert_eq!(
            c.digest(),
            change_digest(ChangeOp::Revoke, &id, c.jti(), 3, &list)
        );
    }

    #[tokio::test]
    async fn content_type_parameters_and_trailing_newline_are_accepted() {
        let k = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let t = format!("{}\n", k.token(&issue_payload("client-a")));
        for ct in ["application/jwt; charset=utf-8", "Application/JWT"] {
            assert!(
                a.check_issue(Some(ct), t.as_bytes(), NOW).await.is_ok(),
                "{ct}"
            );
        }
    }
}

/// The service's extensions of the CRS requests: `ref` and `count` on
/// `/issue`, changes by `ref`. Each new fault has its cause, its row in the
/// HTTP table and a text that names the claim.
mod extensions {
    use super::*;
    use statuslist::domain::IssuanceRef;
    use statuslist::domain::claims::{issue_digest_v2, ref_change_digest};

    fn client_a(k: &TestKey) -> Authenticator {
        auth(&inline_client("client-a", &[k]))
    }

    #[tokio::test]
    async fn ref_and_count_are_read_and_change_the_digest() {
        let k = TestKey::new("k1");
        let a = client_a(&k);
        let id = ClientId::parse("client-a").unwrap();
        let p = issue_payload("client-a");
        let crs = issue(&a, &k.token(&p)).await.unwrap();
        assert!(!crs.answers_entries());
        assert_eq!((crs.count(), crs.issuance_ref()), (1, None));
        assert_eq!(crs.digest(), issue_digest(&id, crs.jti(), NOW + 86_400));
        // `null` is "not given": still the CRS request, byte for byte.
        let nulls = with(&with(&p, "ref", Value::Null), "count", Value::Null);
        let c = issue(&a, &k.token(&nulls)).await.unwrap();
        assert!(!c.answers_entries());
        assert_eq!(c.digest(), crs.digest());

        let r = IssuanceRef::parse("order 42").unwrap();
        for (claims, count, issuance_ref) in [
            (with(&p, "ref", json!("order 42")), 1, Some(&r)),
            (with(&p, "count", json!(7)), 7, None),
            // A float with no fraction, as for idx.
            (with(&p, "count", json!(7.0)), 7, None),
            (
                with(&with(&p, "count", json!(100)), "ref", json!("order 42")),
                100,
                Some(&r),
            ),
            // count 1 given is a request for entries too.
            (with(&p, "count", json!(1)), 1, None),
        ] {
            let c = issue(&a, &k.token(&claims)).await.unwrap();
            assert!(c.answers_entries(), "{claims}");
            assert_eq!((c.count(), c.issuance_ref()), (count, issuance_ref));
            assert_eq!(
                c.digest(),
                issue_digest_v2(&id, c.jti(), NOW + 86_400, count, issuance_ref)
            );
            assert_ne!(c.digest(), crs.digest(), "{claims}");
        }
        // A retry re-signed with a fresh iat is the same request; another
        // ref or count is not.
        let p = with(&with(&p, "count", json!(3)), "ref", json!("r"));
        let d = issue(&a, &k.token(&p)).await.unwrap().digest();
        let retry = with(&p, "iat", json!(NOW - 5));
        assert_eq!(issue(&a, &k.token(&retry)).await.unwrap().digest(), d);
        for changed in [with(&p, "count", json!(4)), with(&p, "ref", json!("r2"))] {
            assert_ne!(issue(&a, &k.token(&changed)).await.unwrap().digest(), d);
        }
    }

    #[tokio::test]
    async fn bad_refs_and_counts_are_refused_naming_the_claim() {
        let k = TestKey::new("k1");
        let a = client_a(&k);
        let p = issue_payload("client-a");
        for bad in [
            json!(""),
            json!("x".repeat(129)),
            json!("caf\u{e9}"),
            json!("line\nbreak"),
            json!(42),
            json!(["r"]),
        ] {
            let t = k.token(&with(&p, "ref", bad.clone()));
            assert_issue_err(&a, &t, AuthError::Claim(ClaimError::InvalidRef), "ref").await;
        }
        for bad in [
            json!(0),
            json!(101),
            json!(-1),
            json!(2.5),
            json!("3"),
            json!(true),
        ] {
            let t = k.token(&with(&p, "count", bad.clone()));
            let want = AuthError::Claim(ClaimError::InvalidCount { max: 100 });
            assert_issue_err(&a, &t, want, &format!("count {bad}")).await;
        }
        // The claims of CRS come first: a bad statusExpiry wins over a bad
        // count.
        let t = k.token(&with(
            &with(&p, "count", json!(0)),
            "statusExpiry",
            json!(NOW),
        ));
        let want = AuthError::Claim(ClaimError::InvalidStatusExpiry);
        assert_issue_err(&a, &t, want, "statusExpiry first").await;
    }

    #[tokio::test]
    async fn the_count_limit_is_lists_max_batch_and_its_text_says_so() {
        let k = TestKey::new("k1");
        let mut s = settings(&inline_client("client-a", &[&k]), "");
        s.lists.max_batch = std::num::NonZeroU32::new(5).unwrap();
        let a = Authenticator::new(&s).unwrap();
        let p = issue_payload("client-a");
        assert_eq!(
            issue(&a, &k.token(&with(&p, "count", json!(5))))
                .await
                .unwrap()
                .count(),
            5
        );
        let t = k.token(&with(&p, "count", json!(6)));
        let err = issue(&a, &t).await.unwrap_err();
        assert_eq!(err, AuthError::Claim(ClaimError::InvalidCount { max: 5 }));
        assert_eq!(
            crs_row(err),
            (
                400,
                "BAD_REQUEST",
                "Invalid count in Payload: it must be a whole number from 1 to 5".to_owned()
            )
        );
    }

    async fn change(
        a: &Authenticator,
        op: ChangeOp,
        token: &str,
    ) -> Result<ChangeRequest, AuthError> {
        a.check_change(op, JWT, token.as_bytes(), NOW).await
    }

    #[tokio::test]
    async fn a_change_by_ref_yields_ref_claims() {
        let k = TestKey::new("k1");
        let a = client_a(&k);
        let id = ClientId::parse("client-a").unwrap();
        let r = IssuanceRef::parse("order 42").unwrap();
        let p = json!({"iss": "client-a", "iat": NOW, "jti": jti(), "ref": "order 42"});
        for op in [ChangeOp::Revoke, ChangeOp::Suspend, ChangeOp::Unsuspend] {
            let ChangeRequest::Ref(c) = change(&a, op, &k.token(&p)).await.unwrap() else {
                panic!("not a change by ref");
            };
            assert_eq!((c.op(), c.issuance_ref()), (op, &r));
            assert_eq!(c.client(), &id);
            assert_eq!(c.digest(), ref_change_digest(op, &id, c.jti(), &r));
        }
        // `ref: null` is no ref: the CRS request and its CRS faults.
        let crs = with(&revoke_payload("client-a"), "ref", Value::Null);
        assert!(matches!(
            change(&a, ChangeOp::Revoke, &k.token(&crs)).await,
            Ok(ChangeRequest::Entry(_))
        ));
        let neither = with(&p, "ref", Value::Null);
        assert_eq!(
            change(&a, ChangeOp::Revoke, &k.token(&neither)).await,
            Err(AuthError::Claim(ClaimError::MissingIdx))
        );
    }

    #[tokio::test]
    async fn a_ref_with_an_idx_or_a_uri_is_refused() {
        let k = TestKey::new("k1");
        let a = client_a(&k);
        let full = with(&revoke_payload("client-a"), "ref", json!("order 42"));
        for p in [full.clone(), without(&full, "uri"), without(&full, "idx")] {
            let err = change(&a, ChangeOp::Suspend, &k.token(&p))
                .await
                .unwrap_err();
            assert_eq!(err, AuthError::Claim(ClaimError::RefWithIndex), "{p}");
            assert_eq!(
                crs_row(err),
                (
                    400,
                    "BAD_REQUEST",
                    "Payload must name either a ref, or an idx and a uri, not both".to_owned()
                )
            );
        }
        let p = json!({"iss": "client-a", "iat": NOW, "jti": jti(), "ref": ""});
        assert_eq!(
            change(&a, ChangeOp::Revoke, &k.token(&p)).await,
            Err(AuthError::Claim(ClaimError::InvalidRef))
        );
        // iat and jti are checked first, as for every change.
        let p = json!({"iss": "client-a", "iat": NOW, "ref": "r", "idx": 3});
        assert_eq!(
            change(&a, ChangeOp::Revoke, &k.token(&p)).await,
            Err(AuthError::Claim(ClaimError::MissingJti))
        );
    }

    #[test]
    fn the_new_claim_faults_have_their_rows() {
        for (e, want) in [
            (
                ClaimError::InvalidRef,
                "Invalid ref in Payload: it must be a string of 1 to 128 printable ASCII characters",
            ),
            (
                ClaimError::RefWithIndex,
                "Payload must name either a ref, or an idx and a uri, not both",
            ),
            (
                ClaimError::InvalidCount { max: 100 },
                "Invalid count in Payload: it must be a whole number from 1 to 100",
            ),
        ] {
            assert_eq!(
                crs_row(AuthError::Claim(e)),
                (400, "BAD_REQUEST", want.to_owned())
            );
            assert!(want.contains(claim_name(e)), "{want}");
        }
    }

    fn claim_name(e: ClaimError) -> &'static str {
        match e {
            ClaimError::InvalidRef | ClaimError::RefWithIndex => "ref",
            _ => "count",
        }
    }
}

/// `GET /entries`: the bearer JWT of a listing.
mod listing {
    use super::*;
    use statuslist::auth::ListingClaims;
    use statuslist::domain::claims::listing_digest;

    fn payload() -> Value {
        json!({"iss": "client-a", "iat": NOW, "jti": jti(), "aud": BASE})
    }

    async fn list(a: &Authenticator, header: Option<&str>) -> Result<ListingClaims, AuthError> {
        a.check_listing(header.map(str::as_bytes), NOW).await
    }

    async fn bearer(a: &Authenticator, token: &str) -> Result<ListingClaims, AuthError> {
        list(a, Some(&format!("Bearer {token}"))).await
    }

    #[tokio::test]
    async fn a_bearer_jwt_addressed_to_the_service_yields_listing_claims() {
        let k = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let p = payload();
        let c = bearer(&a, &k.token(&p)).await.unwrap();
        let id = ClientId::parse("client-a").unwrap();
        assert_eq!(c.client(), &id);
        assert_eq!(c.format(), ListFormat::Token);
        assert_eq!(c.jti().as_str(), p["jti"].as_str().unwrap());
        assert_eq!(c.digest(), listing_digest(&id, c.jti()));
        assert!(c.keep_until() > NOW + 3600);
        // aud with a trailing slash, in an array; the scheme in any case.
        let p = with(
            &p,
            "aud",
            json!(["https://other.example", format!("{BASE}/")]),
        );
        let t = k.token(&p);
        assert!(list(&a, Some(&format!("bearer  {t}"))).await.is_ok());
    }

    #[tokio::test]
    async fn a_missing_or_malformed_authorization_header_is_401() {
        let k = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let t = k.token(&payload());
        assert_eq!(list(&a, None).await, Err(AuthError::MissingBearer));
        for bad in [
            String::new(),
            "Bearer".into(),
            format!("Basic {t}"),
            format!("Bearer {t} {t}"),
            t.clone(),
        ] {
            assert_eq!(
                list(&a, Some(&bad)).await,
                Err(AuthError::MalformedBearer),
                "{bad}"
            );
        }
        assert_eq!(
            crs_row(AuthError::MissingBearer),
            (
                401,
                "UNAUTHORIZED",
                "No Authorization header: send Authorization: Bearer <JWT>".to_owned()
            )
        );
        assert_eq!(
            crs_row(AuthError::MalformedBearer),
            (
                401,
                "UNAUTHORIZED",
                "Authorization header must be Bearer followed by a JWT".to_owned()
            )
        );
    }

    #[tokio::test]
    async fn aud_is_required_and_must_name_the_service() {
        let k = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        for (p, want) in [
            (without(&payload(), "aud"), ClaimError::MissingAud),
            (with(&payload(), "aud", Value::Null), ClaimError::MissingAud),
            (
                with(&payload(), "aud", json!("https://other.example")),
                ClaimError::InvalidAud,
            ),
            (with(&payload(), "aud", json!([])), ClaimError::InvalidAud),
        ] {
            assert_eq!(
                bearer(&a, &k.token(&p)).await,
                Err(AuthError::Claim(want)),
                "{p}"
            );
        }
        assert_eq!(
            crs_row(AuthError::Claim(ClaimError::MissingAud)),
            (
                401,
                "UNAUTHORIZED",
                "No aud in Payload: it must be the service's public base URL".to_owned()
            )
        );
        // The aud check comes after the signature: an unsigned claim never
        // decides the answer.
        let other = TestKey::new("k1");
        assert_eq!(
            bearer(&a, &other.token(&without(&payload(), "aud"))).await,
            Err(AuthError::BadSignature)
        );
    }

    /// Every check of the `/issue` header, key and signature, and the `iat`
    /// and `jti` checks of a change, with the same causes (so the same
    /// texts).
    #[tokio::test]
    async fn the_issue_checks_apply_with_their_texts() {
        let k = TestKey::new("k1");
        let other = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let p = payload();
        let h = k.header();
        use ClaimError as C;
        let cases: Vec<(String, AuthError)> = vec![
            ("not-a-jwt".into(), AuthError::Decode),
            (k.sign(&without(&h, "kid"), &p), AuthError::MissingKid),
            (
                k.sign(&with(&h, "kid", json!("nope")), &p),
                AuthError::InvalidKid,
            ),
            (k.sign(&without(&h, "typ"), &p), AuthError::MissingTyp),
            (
                k.sign(&with(&h, "typ", json!("JOSE")), &p),
                AuthError::InvalidTyp,
            ),
            (k.sign(&without(&h, "alg"), &p), AuthError::MissingAlg),
            (
                k.sign(&with(&h, "alg", json!("none")), &p),
                AuthError::InvalidAlg,
            ),
            (k.sign(&h, &without(&p, "iss")), AuthError::MissingIss),
            (
                k.sign(&h, &with(&p, "iss", json!("client-x"))),
                AuthError::UnknownClient,
            ),
            (other.sign(&h, &p), AuthError::BadSignature),
            (
                k.sign(&h, &without(&p, "iat")),
                AuthError::Claim(C::MissingIat),
            ),
            (
                k.sign(&h, &with(&p, "iat", json!(NOW - 3601))),
                AuthError::Claim(C::InvalidIat),
            ),
            (
                k.sign(&h, &without(&p, "jti")),
                AuthError::Claim(C::MissingJti),
            ),
            (
                k.sign(&h, &with(&p, "jti", json!("not-a-uuid"))),
                AuthError::Claim(C::InvalidJti),
            ),
        ];
        for (token, want) in cases {
            assert_eq!(bearer(&a, &token).await, Err(want), "{want:?}");
        }
    }
}

/// Every 400, 401 and 503 example of `/issue` and `/revoke` in the vendored
/// CRS spec, with a request that must produce exactly it.
mod crs_examples {
    use super::*;

    use crate::crs_spec::examples;

    /// Examples that are not authentication failures: they come from the
    /// idempotency store and the revoke ownership check (service layer).
    const SERVICE_LAYER: [&str; 2] = ["invalid_idempotent_request", "client_mismatch"];

    /// The request that must produce the example `name` on `path`:
    /// (Content-Type, body).
    fn request(
        path: &str,
        name: &str,
        k: &TestKey,
        other: &TestKey,
    ) -> (Option<&'static str>, Vec<u8>) {
        let p = if path == "/issue" {
            issue_payload("client-a")
        } else {
            revoke_payload("client-a")
        };
        let h = k.header();
        let tok = |h: &Value, p: &Value| (JWT, k.sign(h, p).into_bytes());
        match name {
            "missing_content_type" => (None, k.sign(&h, &p).into_bytes()),
            "jwt_decode_error" => (JWT, b"not-a-jwt".to_vec()),
            "missing_iat" => tok(&h, &without(&p, "iat")),
            "invalid_iat" => tok(&h, &with(&p, "iat", json!("yesterday"))),
            "missing_jti" => tok(&h, &without(&p, "jti")),
            "invalid_jti" => tok(
                &h,
                &with(&p, "jti", json!("BCEA4E51-6ECA-4547-8D18-4B971B72C146")),
            ),
            "missing_status_expiry" => tok(&h, &without(&p, "statusExpiry")),
            "invalid_status_expiry" => {
                tok(&h, &with(&p, "statusExpiry", json!(NOW + 2 * 365 * 86_400)))
            }
            "missing_idx" => tok(&h, &without(&p, "idx")),
            "invalid_idx" => tok(&h, &with(&p, "idx", json!(-1))),
            "missing_uri" => tok(&h, &without(&p, "uri")),
            "invalid_uri_format" => tok(
                &h,
                &with(&p, "uri", json!("https://elsewhere.example/t/A671FED3E9AD")),
            ),
            "missing_kid" => tok(&without(&h, "kid"), &p),
            "invalid_kid" => tok(&with(&h, "kid", json!("no-such-kid")), &p),
            "missing_typ" => tok(&without(&h, "typ"), &p),
            "invalid_typ" => tok(&with(&h, "typ", json!("JOSE")), &p),
            "missing_alg" => tok(&without(&h, "alg"), &p),
            "invalid_alg" => tok(&with(&h, "alg", json!("RS256")), &p),
            "missing_iss" => tok(&h, &without(&p, "iss")),
            "non_matching_client_id" => tok(&h, &with(&p, "iss", json!("client-unknown"))),
            // Right kid, signed by another key.
            "non_verified_signature" => (JWT, other.sign(&h, &p).into_bytes()),
            _ => panic!("no test request for the CRS example {path} {name}"),
        }
    }

    #[tokio::test]
    async fn every_error_example_of_the_spec_is_produced_verbatim() {
        let k = TestKey::new("k1");
        let other = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let all = examples();
        let mut checked = 0;
        for (path, status, name, error, desc) in &all {
            if !["/issue", "/revoke"].contains(&path.as_str()) || !matches!(status, 400 | 401) {
                continue;
            }
            let in_table = AuthError::ALL.iter().any(|e| crs_row(*e).2 == *desc);
            if SERVICE_LAYER.contains(&name.as_str()) {
                assert!(
                    !in_table,
                    "{name} is listed as service-layer but is an AuthError"
                );
                continue;
            }
            let (ct, body) = request(path, name, &k, &other);
            let got = if path == "/issue" {
                a.check_issue(ct, &body, NOW).await.map(|_| ())
            } else {
                a.check_revoke(ct, &body, NOW).await.map(|_| ())
            };
            let err = got.expect_err(name);
            assert_eq!(
                crs_row(err),
                (*status, error.as_str(), desc.clone()),
                "{path} {name}"
            );
            checked += 1;
        }
        // 7 + 9 for /issue minus 1 service-layer, 10 + 10 for /revoke minus 1.
        assert_eq!(checked, 15 + 19, "examples found: {all:?}");
        for name in SERVICE_LAYER {
            assert!(
                all.iter().any(|e| e.2 == name),
                "{name} vanished from the spec"
            );
        }
    }

    #[test]
    fn unavailable_matches_the_503_example() {
        let ex = examples();
        for path in ["/issue", "/revoke"] {
            let (_, status, _, error, desc) =
                ex.iter().find(|e| e.0 == path && e.1 == 503).unwrap();
            assert_eq!(
                crs_row(AuthError::KeysUnavailable),
                (*status, error.as_str(), desc.clone())
            );
        }
    }
}

mod hostile {
    use super::*;

    #[tokio::test]
    async fn alg_none_and_hmac_confusion_are_refused() {
        let k = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let p = issue_payload("client-a");
        let input = |h: &Value| {
            format!(
                "{}.{}",
                b64(h.to_string().as_bytes()),
                b64(p.to_string().as_bytes())
            )
        };

        let none = with(&k.header(), "alg", json!("none"));
        assert_issue_err(
            &a,
            &format!("{}.", input(&none)),
            AuthError::InvalidAlg,
            "alg none",
        )
        .await;

        // HS256 keyed with the public key's bytes (SEC1 point and JWK JSON).
        let hs = with(&k.header(), "alg", json!("HS256"));
        for secret in [k.public_point(), k.jwk().to_string().into_bytes()] {
            let key = jsonwebtoken::EncodingKey::from_secret(&secret);
            let m = input(&hs);
            let sig =
                jsonwebtoken::crypto::sign(m.as_bytes(), &key, jsonwebtoken::Algorithm::HS256)
                    .unwrap();
            assert_issue_err(&a, &format!("{m}.{sig}"), AuthError::InvalidAlg, "HS256").await;
        }
    }

    #[tokio::test]
    async fn an_algorithm_not_allowed_for_the_client_is_refused() {
        let k = TestKey::new("k1");
        let clients = format!(
            "{}algorithms = [\"EdDSA\"]\n",
            inline_client("client-a", &[&k])
        );
        let a = auth(&clients);
        let t = k.token(&issue_payload("client-a"));
        assert_issue_err(&a, &t, AuthError::InvalidAlg, "ES256 not allowed").await;
    }

    #[tokio::test]
    async fn keys_of_other_clients_do_not_verify() {
        let ka = TestKey::new("ka");
        let kb = TestKey::new("kb");
        // client-c registers a key whose kid collides with client-a's.
        let kc = TestKey::new("ka");
        let clients = format!(
            "{}{}{}",
            inline_client("client-a", &[&ka]),
            inline_client("client-b", &[&kb]),
            inline_client("client-c", &[&kc])
        );
        let a = auth(&clients);
        let p = issue_payload("client-a");
        assert_issue_err(&a, &kb.token(&p), AuthError::InvalidKid, "client-b's key").await;
        assert_issue_err(&a, &kc.token(&p), AuthError::BadSignature, "client-c's key").await;
        // Each key does verify for its own client.
        assert!(
            issue(&a, &kb.token(&issue_payload("client-b")))
                .await
                .is_ok()
        );
        assert!(
            issue(&a, &kc.token(&issue_payload("client-c")))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn keys_offered_in_the_header_are_never_trusted() {
        let k = TestKey::new("k1");
        let attacker = TestKey::new("evil");
        let a = auth(&inline_client("client-a", &[&k]));
        let p = issue_payload("client-a");
        let h = with(&attacker.header(), "jwk", attacker.jwk());
        let h = with(&h, "jku", json!("https://attacker.example/jwks"));
        let h = with(&h, "x5u", json!("https://attacker.example/cert"));
        let t = attacker.sign(&h, &p);
        assert_issue_err(&a, &t, AuthError::InvalidKid, "attacker's kid").await;
        let h = with(&h, "kid", json!("k1"));
        let t = attacker.sign(&h, &p);
        assert_issue_err(&a, &t, AuthError::BadSignature, "client's kid").await;
    }

    #[tokio::test]
    async fn bad_iat_values_are_refused() {
        let k = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let p = issue_payload("client-a");
        for (iat, why) in [
            (json!(NOW - 3601), "older than the idempotency window"),
            (json!(NOW + 61), "in the future"),
            (json!(NOW.to_string()), "a string"),
            (json!(-1), "negative"),
        ] {
            let t = k.token(&with(&p, "iat", iat));
            assert_issue_err(&a, &t, AuthError::Claim(ClaimError::InvalidIat), why).await;
        }
    }

    #[tokio::test]
    async fn garbage_bodies_are_decode_errors() {
        let k = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let valid = k.token(&issue_payload("client-a"));
        let (h, rest) = valid.split_once('.').unwrap();
        let huge_claims = with(
            &issue_payload("client-a"),
            "pad",
            json!("x".repeat(1 << 20)),
        );
        let bodies: Vec<(Vec<u8>, &str)> = vec![
            (k.token(&huge_claims).into_bytes(), "1 MiB JWT"),
            (Vec::new(), "empty"),
            (b"   \n".to_vec(), "blank"),
            (vec![0xff, 0xfe, 0x00, 0x80, b'.', b'.'], "non-UTF-8"),
            (
                format!("{h}\u{e9}.{rest}").into_bytes(),
                "non-ASCII in a part",
            ),
            (b"{\"alg\":\"ES256\"}".to_vec(), "JSON, not a JWT"),
            (format!("{h}.{rest}.x").into_bytes(), "four parts"),
            (
                format!("{}.{rest}", b64(b"not json")).into_bytes(),
                "header not JSON",
            ),
            (
                format!("{}.{rest}", b64(b"[1,2]")).into_bytes(),
                "header not an object",
            ),
            ((0..=255u8).cycle().take(4096).collect(), "binary"),
        ];
        for (body, what) in bodies {
            assert_eq!(
                a.check_issue(JWT, &body, NOW).await.unwrap_err(),
                AuthError::Decode,
                "{what}"
            );
            assert_eq!(
                a.check_revoke(JWT, &body, NOW).await.unwrap_err(),
                AuthError::Decode,
                "{what}"
            );
        }
        for ct in [None, Some("application/json"), Some("text/plain"), Some("")] {
            let err = a.check_issue(ct, valid.as_bytes(), NOW).await.unwrap_err();
            assert_eq!(err, AuthError::ContentType, "{ct:?}");
        }
    }

    #[tokio::test]
    async fn the_first_fault_in_crs_order_is_reported() {
        let k = TestKey::new("k1");
        let a = auth(&inline_client("client-a", &[&k]));
        let p = issue_payload("client-a");
        let h = k.header();
        let cases = [
            // (header, payload, expected)
            (
                without(&without(&h, "kid"), "typ"),
                without(&p, "iss"),
                AuthError::MissingKid,
            ),
            (
                with(&without(&h, "typ"), "alg", json!("none")),
                p.clone(),
                AuthError::MissingTyp,
            ),
            (
                with(&with(&h, "typ", json!("jwt+x")), "alg", json!("none")),
                p.clone(),
                AuthError::InvalidTyp,
            ),
            (
                with(&h, "alg", json!("HS256")),
                without(&p, "iss"),
                AuthError::InvalidAlg,
            ),
            (
                h.clone(),
                without(&without(&p, "iss"), "iat"),
                AuthError::MissingIss,
            ),
            (
                with(&h, "kid", json!("nope")),
                with(&p, "iss", json!("x")),
                AuthError::UnknownClient,
            ),
            (
                with(&h, "kid", json!(42)),
                without(&p, "jti"),
                AuthError::InvalidKid,
            ),
            (
                h.clone(),
                without(&without(&p, "jti"), "iat"),
                AuthError::Claim(ClaimError::MissingIat),
            ),
            (
                h.clone(),
                with(&without(&p, "statusExpiry"), "jti", json!(1)),
                AuthError::Claim(ClaimError::InvalidJti),
            ),
        ];
        for (h, p, want) in cases {
            assert_issue_err(&a, &k.sign(&h, &p), want, &format!("{h} {p}")).await;
        }
        // A bad signature comes before any claim fault.
        let other = TestKey::new("k1");
        let t = other.sign(&h, &without(&p, "iat"));
        assert_issue_err(&a, &t, AuthError::BadSignature, "other key, no iat").await;
    }
}

mod remote_jwks {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn fetched_once_cached_and_rotation_is_picked_up() {
        let k1 = TestKey::new("k1");
        let server = JwksServer::start(&TestKey::jwks(&[&k1])).await;
        let a = auth(&remote_client("client-a", &server.url));
        let p = issue_payload("client-a");
        for _ in 0..3 {
            issue(&a, &k1.token(&p)).await.unwrap();
        }
        assert_eq!(server.hits(), 1, "fresh cache serves without fetching");

        // The issuer rotates to k2.
        let k2 = TestKey::new("k2");
        server.set_body(&TestKey::jwks(&[&k1, &k2]));
        // Within the cooldown after the last fetch, an unknown kid does not
        // refetch.
        let err = a
            .check_issue(JWT, k2.token(&p).as_bytes(), NOW + 10)
            .await
            .unwrap_err();
        assert_eq!((err, server.hits()), (AuthError::InvalidKid, 1));
        // After it, one refresh finds the new key.
        let later = NOW + 31;
        let p2 = with(&p, "iat", json!(later));
        a.check_issue(JWT, k2.token(&p2).as_bytes(), later)
            .await
            .unwrap();
        assert_eq!(server.hits(), 2);
        // A kid that still is unknown right after does not refetch again.
        let k3 = TestKey::new("k3");
        let err = a
            .check_issue(JWT, k3.token(&p2).as_bytes(), later + 1)
            .await
            .unwrap_err();
        assert_eq!((err, server.hits()), (AuthError::InvalidKid, 2));
    }

    #[tokio::test]
    async fn max_age_is_honoured_and_expiry_refetches() {
        let k = TestKey::new("k1");
        let server = JwksServer::start(&TestKey::jwks(&[&k])).await;
        server.reply.lock().unwrap().cache_control = Some("public, max-age=600".into());
        let a = auth(&remote_client("client-a", &server.url));
        let at = |t: u64| (with(&issue_payload("client-a"), "iat", json!(t)), t);
        for t in [NOW, NOW + 400, NOW + 599] {
            let (p, t) = at(t);
            a.check_issue(JWT, k.token(&p).as_bytes(), t).await.unwrap();
        }
        assert_eq!(server.hits(), 1, "max-age=600 beats the 300 s default");
        let (p, t) = at(NOW + 600);
        a.check_issue(JWT, k.token(&p).as_bytes(), t).await.unwrap();
        assert_eq!(server.hits(), 2, "expired set is refetched");
    }

    #[tokio::test]
    async fn server_down_with_a_warm_cache_still_verifies() {
        let k = TestKey::new("k1");
        let server = JwksServer::start(&TestKey::jwks(&[&k])).await;
        let a = auth(&remote_client("client-a", &server.url));
        issue(&a, &k.token(&issue_payload("client-a")))
            .await
            .unwrap();
        server.stop().await;
        // Fresh: no fetch needed.
        issue(&a, &k.token(&issue_payload("client-a")))
            .await
            .unwrap();
        // Expired (300 s TTL): the refresh fails, the last good set serves.
        for t in [NOW + 301, NOW + 3600, NOW + 86_000] {
            let p = with(&issue_payload("client-a"), "iat", json!(t));
            a.check_issue(JWT, k.token(&p).as_bytes(), t).await.unwrap();
        }
        // Past 24 h of staleness it no longer does.
        let t = NOW + 300 + 86_400 + 1;
        let p = with(&issue_payload("client-a"), "iat", json!(t));
        let err = a
            .check_issue(JWT, k.token(&p).as_bytes(), t)
            .await
            .unwrap_err();
        assert_eq!(err, AuthError::KeysUnavailable);
    }

    #[tokio::test]
    async fn nothing_cached_and_unreachable_is_unavailable_then_recovers() {
        let k = TestKey::new("k1");
        let server = JwksServer::start(&TestKey::jwks(&[&k])).await;
        server.reply.lock().unwrap().status = 500;
        let a = auth(&remote_client("client-a", &server.url));
        let t = k.token(&issue_payload("client-a"));
        assert_issue_err(&a, &t, AuthError::KeysUnavailable, "JWKS server 500").await;
        assert_eq!(crs_row(AuthError::KeysUnavailable).0, 503);
        server.reply.lock().unwrap().status = 200;
        let t = NOW + 2;
        let p = with(&issue_payload("client-a"), "iat", json!(t));
        a.check_issue(JWT, k.token(&p).as_bytes(), t).await.unwrap();
    }

    #[tokio::test]
    async fn oversized_or_invalid_documents_are_refused() {
        let k = TestKey::new("k1");
        let mut big = TestKey::jwks(&[&k]);
        big["padding"] = json!("x".repeat(70 * 1024));
        for body in [
            big,
            json!({"keys": "nope"}),
            json!({"keys": [{"kty": "oct", "kid": "k1", "k": "AAAA"}]}),
        ] {
            let server = JwksServer::start(&body).await;
            let a = auth(&remote_client("client-a", &server.url));
            let t = k.token(&issue_payload("client-a"));
            assert_issue_err(&a, &t, AuthError::KeysUnavailable, &body.to_string()).await;
        }
    }

    #[tokio::test]
    async fn a_slow_server_fails_within_the_timeout() {
        let k = TestKey::new("k1");
        let server = JwksServer::start(&TestKey::jwks(&[&k])).await;
        server.reply.lock().unwrap().delay = Some(Duration::from_secs(5));
        let clients = remote_client("client-a", &server.url);
        let a = Authenticator::new(&settings(&clients, "timeout_ms = 300")).unwrap();
        let t = k.token(&issue_payload("client-a"));
        // Generous bound: the point is that the 300 ms timeout, not the
        // server's 5 s, ends the request.
        let got = tokio::time::timeout(Duration::from_secs(4), issue(&a, &t)).await;
        assert_eq!(
            got.expect("the JWKS timeout did not fire"),
            Err(AuthError::KeysUnavailable)
        );
    }

    #[tokio::test]
    async fn one_fetch_per_client_and_other_clients_do_not_wait() {
        let ka = TestKey::new("ka");
        let kb = TestKey::new("kb");
        let server = JwksServer::start(&TestKey::jwks(&[&ka])).await;
        server.reply.lock().unwrap().hang = true;
        let clients = format!(
            "{}{}",
            remote_client("client-a", &server.url),
            inline_client("client-b", &[&kb])
        );
        let a = std::sync::Arc::new(
            Authenticator::new(&settings(&clients, "timeout_ms = 30000")).unwrap(),
        );

        let received = server.received.notified();
        let spawn_a = || {
            let a = a.clone();
            let t = ka.token(&issue_payload("client-a"));
            tokio::spawn(async move { a.check_issue(JWT, t.as_bytes(), NOW).await })
        };
        let first = spawn_a();
        received.await; // client-a's fetch is now in flight and hanging
        let second = spawn_a();
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        // client-b is served while client-a's fetch hangs.
        issue(&a, &kb.token(&issue_payload("client-b")))
            .await
            .unwrap();
        assert!(!first.is_finished() && !second.is_finished());
        assert_eq!(server.hits(), 1);

        // Cancel the request that owns the hanging fetch (as a client
        // disconnect would): the queued request then fetches by itself.
        server.reply.lock().unwrap().hang = false;
        first.abort();
        let got = tokio::time::timeout(Duration::from_secs(20), second)
            .await
            .unwrap()
            .unwrap();
        assert!(got.is_ok(), "{got:?}");
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_failed_fetch() {
        let k = TestKey::new("k1");
        let server = JwksServer::start(&TestKey::jwks(&[&k])).await;
        {
            let mut r = server.reply.lock().unwrap();
            r.status = 503;
            r.delay = Some(Duration::from_millis(200));
        }
        let a = std::sync::Arc::new(auth(&remote_client("client-a", &server.url)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let a = a.clone();
                let t = k.token(&issue_payload("client-a"));
                tokio::spawn(async move { a.check_issue(JWT, t.as_bytes(), NOW).await })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Err(AuthError::KeysUnavailable));
        }
        assert_eq!(server.hits(), 1, "waiters reuse the failed outcome");
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_fetch() {
        let k = TestKey::new("k1");
        let server = JwksServer::start(&TestKey::jwks(&[&k])).await;
        server.reply.lock().unwrap().delay = Some(Duration::from_millis(200));
        let a = std::sync::Arc::new(auth(&remote_client("client-a", &server.url)));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let a = a.clone();
                let t = k.token(&issue_payload("client-a"));
                tokio::spawn(async move { a.check_issue(JWT, t.as_bytes(), NOW).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(server.hits(), 1);
    }
}

mod reload {
    use super::*;
    use statuslist::config::Settings;

    fn write(dir: &tempfile::TempDir, toml: &str) -> std::path::PathBuf {
        let path = dir.path().join("statuslist.toml");
        std::fs::write(&path, toml).unwrap();
        path
    }

    #[tokio::test]
    async fn valid_file_swaps_clients_invalid_file_keeps_the_old_ones() {
        let ka = TestKey::new("ka");
        let kb = TestKey::new("kb");
        let server = JwksServer::start(&TestKey::jwks(&[&ka])).await;
        let dir = tempfile::tempdir().unwrap();
        let v1 = format!(
            "public_base_url = \"{BASE}\"\n{}",
            remote_client("client-a", &server.url)
        );
        let path = write(&dir, &v1);
        let a = Authenticator::new(&Settings::load(&path).unwrap()).unwrap();
        issue(&a, &ka.token(&issue_payload("client-a")))
            .await
            .unwrap();
        let in_flight = a.registry();

        // Add client-b, its keys in a JWKS file.
        let jwks_b = dir.path().join("b.jwks.json");
        std::fs::write(&jwks_b, TestKey::jwks(&[&kb]).to_string()).unwrap();
        let toml2 = format!(
            "{v1}[[clients]]\nid = \"client-b\"\nformat = \"token\"\njwks_file = \"{}\"\n",
            jwks_b.display()
        );
        write(&dir, &toml2);
        a.reload_from(&path).unwrap();
        assert_eq!(a.generation(), 1);
        issue(&a, &kb.token(&issue_payload("client-b")))
            .await
            .unwrap();
        // client-a's JWKS cache was carried over: no new fetch.
        issue(&a, &ka.token(&issue_payload("client-a")))
            .await
            .unwrap();
        assert_eq!(server.hits(), 1);
        // A request that started before the reload keeps its generation.
        assert!(in_flight.client("client-b").is_none());
        assert!(a.registry().client("client-b").is_some());

        // An invalid file is refused with a reason; the old clients stay.
        write(
            &dir,
            &format!(
                "{toml2}\n[[clients]]\nid = \"client-b\"\nformat = \"token\"\njwks_uri = \"https://x.example/j\"\n"
            ),
        );
        let err = a.reload_from(&path).unwrap_err();
        assert!(
            err.to_string()
                .contains("clients[2].id: duplicate client id 'client-b'"),
            "{err}"
        );
        assert_eq!(a.generation(), 1);
        issue(&a, &kb.token(&issue_payload("client-b")))
            .await
            .unwrap();

        std::fs::remove_file(&path).unwrap();
        assert!(a.reload_from(&path).is_err());
        issue(&a, &kb.token(&issue_payload("client-b")))
            .await
            .unwrap();
    }
}

/// ES384, EdDSA and PS256 end to end, with fixed test-only keys generated for
/// these tests (never used anywhere else).
mod other_algorithms {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    pub const P384_PEM: &str = r#"-----BEGIN PRIVATE KEY-----
MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDB6brCeoAyOwT1zfz9S
DeBaGZV+bYGS3oQYus2IxCif29+evB+EsmCrgWpQxzyNQtehZANiAAQ5ovOsunk+
mG3kBkyYg8JKSlF+X2GnHqPQ7+HdVBdyJePwxMsF9fRzNlr60epQfYSoU96hSpyh
+JFiS0zPaoFGzfRfQPsA2n1Hg++ctJxAt7lMlWXrDsOpH6bbB4v+wfA=
-----END PRIVATE KEY-----
"#;
    pub const P384_JWK: &str = r#"{"kty": "EC", "crv": "P-384", "kid": "p384", "x": "OaLzrLp5Ppht5AZMmIPCSkpRfl9hpx6j0O_h3VQXciXj8MTLBfX0czZa-tHqUH2E", "y": "qFPeoUqcofiRYktMz2qBRs30X0D7ANp9R4PvnLScQLe5TJVl6w7DqR-m2weL_sHw"}"#;
    pub const ED25519_PEM: &str = r#"-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIO5K/sNRTBGCJ6VJ7szI7/qV4pJHbFrL0HTsZTz/e8kV
-----END PRIVATE KEY-----
"#;
    pub const ED25519_JWK: &str = r#"{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "4qQ3zc2ecRHTrPkmHRlXiSpC0nnxEZ0Xthca2ytPsF0"}"#;
    pub const RSA2048_PEM: &str = r#"-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCQ8OG1y8vWZf7T
2iqKpiPsfVahCPpsMxSiq4yfhKgP6UcGUuvMrkW402Iy+eKHhmzqsrHGeGKTRDaT
i0wFV3QJ/rHSJluL82Ndl+MFNW7NsM1lOLrT3McByuAL8HBuPzabvRxvf3gd07fm
HaDlTKC/S8nFxHGPG5Coi9uAW6+DfUp12nrYVuENdb7IlTlk3IsVdhbJ5Q36NWfZ
zSTaZQqgkOPVxujmRrCBbsNYgt5va1oO/uwPpDebQo3FFoQ4NeXKSM/TKUHj+lb+
jlYvynOSzkocrcCzPtOUhBZKxZe8/6snMyptIg8zXyqJGKeynr/rcgZB55J3PXyP
Y+2ZuR0bAgMBAAECggEADDq24K73CPpcJlCUdv8OWD2PGfv28pAwyopCTZH/gtrX
qk9EJBCu7f8FRxsnI5uSWbnayXiONgdzD2nub85G390Em0sEkxS7Kpd5M+ROmr5d
5jouJq13K83hWkCJoVO7bifmW/tbuDCNULY+ms+nXzIBg//6O5fuJw/TOnZXTcxx
AdrwMCXprBZUEvNmvlkp5gT7bxRLY0EhgVEudAyuMq0inrHnNNRbZOCMXde7PHKj
014l9v4m740sd7IjwbUjeHKpClrMaXL8MIHHA2yzGNFKBYIAp0F/XtDelAzToTgM
ndldaNbHlUN2FX+pzyGELmuG8jAKEmyRMn2GQ+wlEQKBgQDDY+gw6jBhkXEH+EQn
TAbATgi9d6kK36hyie/5mEfy0vQfKOOcL1gCL056q/ISY5ZrXES/VRQfAUzts7U2
QofUGzgsUim102Nw9NbMtyUbflc3WKHlOd8mFeHNG2FZSIBm0ilmOEYa/q/4rjb6
nhCFKhdnb04c1rKGnegx0TKxuQKBgQC95sFKW74/kMJFs0hdpdc/KHP+mBt1xK3L
BfG0PJU0Gq3qMrxK2CGUmbO1hzNOj6BEHQn1Lspms1r3O75SlLXuXSlqSBu0q43D
ogQZ+1YrbUntTngukCD6zzlE1kjOL4/s8iqvqDwfGsG2XuXYCW32XS76OUDSbboP
noy4Tkz/cwKBgELVXKnGoU/uYNxaBm3uqmyDBKhSUuceQ88R8ZzNgubDU6+I2/oj
k5YDunNpdz7lA6GriPRtVJmaZ0bzbmul7DIYMWmvnQbNzLjpdsPFbZLu70RGM/Jl
jjfHylnPIMhabVk+T9zgKNK5BVYpuTKWeI4kLKc7wltI8P3s62yG4zE5AoGBAJoW
N/aW9IrtccVOkMR0AXCc6WnGkFmByib3XsUJd2N81ms22bO9JZpHERuVZZs0TS2X
hnHskoy8sW30ixzEz85mx2kWs2xo2zHHL57JYoUAO8ETL89QYYJBTM2/Nfofe6Ae
a2Z2kroGYvIQlF00YYZK3AhrFl7oa9Wqp7IQzsdjAoGAEJBZKmCPL6fkMVJ4T/rH
MqpCag7GVXMsWaF3yowUmTCaBvXNmAOL6CZyzHIpksyldp3XRxk1jcVfW+ydsPXL
b3J5xyfmsTN+B6lcr6FXYi3vhM2kSBgRDtGxvwFpbvNmcjPIoWd5XCU3LJnDyIzx
FrWZds3Qw4vpt2302reVgDo=
-----END PRIVATE KEY-----
"#;
    pub const RSA2048_JWK: &str = r#"{"kty": "RSA", "kid": "rsa", "n": "kPDhtcvL1mX-09oqiqYj7H1WoQj6bDMUoquMn4SoD-lHBlLrzK5FuNNiMvnih4Zs6rKxxnhik0Q2k4tMBVd0Cf6x0iZbi_NjXZfjBTVuzbDNZTi609zHAcrgC_Bwbj82m70cb394HdO35h2g5Uygv0vJxcRxjxuQqIvbgFuvg31Kddp62FbhDXW-yJU5ZNyLFXYWyeUN-jVn2c0k2mUKoJDj1cbo5kawgW7DWILeb2taDv7sD6Q3m0KNxRaEODXlykjP0ylB4_pW_o5WL8pzks5KHK3Asz7TlIQWSsWXvP-rJzMqbSIPM18qiRinsp6_63IGQeeSdz18j2PtmbkdGw", "e": "AQAB"}"#;

    fn client(alg: &str, jwk: &str) -> String {
        let jwk: Value = serde_json::from_str(jwk).unwrap();
        let jwks = json!({"keys": [jwk]}).to_string();
        format!(
            "[[clients]]\nid = \"client-a\"\nformat = \"bitstring\"\njwks = \'\'\'{jwks}\'\'\'\nalgorithms = [\"ES256\", \"{alg}\"]\n"
        )
    }

    fn sign(alg: Algorithm, kid: &str, key: &EncodingKey, payload: &Value) -> String {
        let mut h = Header::new(alg);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, payload, key).unwrap()
    }

    #[tokio::test]
    async fn each_key_verifies_only_with_its_own_algorithm() {
        let cases = [
            (
                "ES384",
                Algorithm::ES384,
                "p384",
                EncodingKey::from_ec_pem(P384_PEM.as_bytes()).unwrap(),
                P384_JWK,
            ),
            (
                "EdDSA",
                Algorithm::EdDSA,
                "ed",
                EncodingKey::from_ed_pem(ED25519_PEM.as_bytes()).unwrap(),
                ED25519_JWK,
            ),
            (
                "PS256",
                Algorithm::PS256,
                "rsa",
                EncodingKey::from_rsa_pem(RSA2048_PEM.as_bytes()).unwrap(),
                RSA2048_JWK,
            ),
        ];
        for (name, alg, kid, key, jwk) in cases {
            let a = auth(&client(name, jwk));
            let c = issue(&a, &sign(alg, kid, &key, &issue_payload("client-a"))).await;
            assert_eq!(c.map(|c| c.format()), Ok(ListFormat::Bitstring), "{name}");
            // The same key under another allowed algorithm name is refused.
            let mut t = sign(alg, kid, &key, &issue_payload("client-a"));
            let (h, rest) = t.split_once('.').unwrap();
            let mut hv: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
            hv["alg"] = json!("ES256");
            t = format!("{}.{rest}", b64(hv.to_string().as_bytes()));
            assert_issue_err(&a, &t, AuthError::BadSignature, name).await;
            // A client not allowing the algorithm refuses it before any key
            // lookup.
            let only_es256 = client(name, jwk).replace(&format!(", \"{name}\""), "");
            let a = auth(&only_es256);
            let t = sign(alg, kid, &key, &issue_payload("client-a"));
            assert_issue_err(&a, &t, AuthError::InvalidAlg, name).await;
        }
    }
}

mod demo_key {
    use super::*;
    use p256::pkcs8::DecodePrivateKey;
    use statuslist::auth::Fetcher;
    use statuslist::config::JwksSettings;

    /// The demo key shipped in examples/, published under `kid`.
    fn demo(kid: &str) -> TestKey {
        TestKey {
            kid: kid.to_owned(),
            sk: p256::ecdsa::SigningKey::from_pkcs8_pem(statuslist::config::DEMO_CLIENT_KEY_PEM)
                .unwrap(),
        }
    }

    #[tokio::test]
    async fn a_fetched_demo_key_is_dropped_outside_development() {
        let d = demo("renamed-demo");
        let k = TestKey::new("k1");
        let server = JwksServer::start(&TestKey::jwks(&[&d, &k])).await;
        let a = auth(&remote_client("client-a", &server.url));
        let t = d.token(&issue_payload("client-a"));
        assert_issue_err(&a, &t, AuthError::InvalidKid, "demo key").await;
        issue(&a, &k.token(&issue_payload("client-a")))
            .await
            .unwrap();

        // A set holding only the demo key is no usable set at all.
        let only_demo = JwksServer::start(&TestKey::jwks(&[&d])).await;
        let a = auth(&remote_client("client-b", &only_demo.url));
        let t = d.token(&issue_payload("client-b"));
        assert_issue_err(&a, &t, AuthError::KeysUnavailable, "only the demo key").await;

        // Development settings keep it.
        let url = server.url.parse().unwrap();
        let fetcher = Fetcher::new(&JwksSettings::default()).unwrap();
        let (set, _) = fetcher.fetch(&url).await.unwrap();
        assert!(set.get("renamed-demo").is_none() && set.get("k1").is_some());
        let dev = fetcher.allow_demo_key(true);
        let (set, _) = dev.fetch(&url).await.unwrap();
        assert!(set.get("renamed-demo").is_some() && set.get("k1").is_some());
    }
}
