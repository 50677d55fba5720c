//! The representations and the metadata around the published lists: the CWT
//! form of a Token Status List and its content negotiation (406 when
//! neither is acceptable), entity tags per representation, the draft's
//! `time` parameter (501), the Status List Aggregation with the
//! `aggregation_uri` it is announced by, and the configuration document.

use reqwest::StatusCode;
use serde_json::{Value, json};
use statuslist::domain::codec::DEFAULT_DECODE_LIMIT;
use statuslist::publish::{PublicJwk, cwt, decode_cwt_list, decode_token_list};

use crate::both_stores;
use crate::helpers::*;

const CWT: &str = "application/statuslist+cwt";
const JWT: &str = "application/statuslist+jwt";

async fn get_with(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.http.get(app.url(path));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.unwrap()
}

/// Verifies a CWT with the key of the app's JWKS named by its `kid` and
/// decodes it.
async fn verify_cwt(app: &TestApp, body: &[u8]) -> statuslist::publish::DecodedCwtList {
    let jwks: Value = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let parts = cwt::decode_unverified(body).unwrap();
    let kid = String::from_utf8(parts.kid.clone().expect("a kid")).unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the CWT's kid is in the JWKS")
        .clone();
    let key: PublicJwk = serde_json::from_value(jwk).unwrap();
    let parts = cwt::verify(body, &key.to_verifying_key().unwrap())
        .expect("the CWT verifies with the published key");
    assert_eq!(parts.alg, Some(-7), "ES256");
    assert_eq!(parts.typ.as_deref(), Some(CWT));
    decode_cwt_list(&parts.payload, DEFAULT_DECODE_LIMIT).unwrap()
}

/// `Accept: application/statuslist+cwt` gets the CWT: the same list, the
/// same claims as the JWT, verified with the JWKS key, with the caching
/// and CORS fields of the JWT and no content coding even when gzip is
/// accepted.
async fn the_cwt_is_served_when_asked_for(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let (other, _) = app.issue(&TOKEN).await;
    app.change("/revoke", &TOKEN, idx, &uri).await;
    let jwt = app.fetch_list(&uri).await;
    let path = list_path(&uri);

    let res = get_with(&app, &path, &[("accept", CWT), ("accept-encoding", "gzip")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], CWT);
    assert!(
        h.get("content-encoding").is_none(),
        "the CWT is not gzipped"
    );
    assert_eq!(h["vary"], "Accept, Accept-Encoding");
    assert_eq!(h["cache-control"], "public, max-age=300");
    assert_eq!(h["access-control-allow-origin"], "*");
    let etag = h["etag"].to_str().unwrap().to_owned();
    assert_ne!(etag, jwt.etag);
    assert!(etag.ends_with("-cwt\""), "{etag}");
    let body = res.bytes().await.unwrap();
    assert_eq!(body[0], 0xd2, "COSE_Sign1_Tagged (18)");
    let decoded = verify_cwt(&app, &body).await;
    assert_eq!(decoded.list.get(idx).unwrap(), INVALID);
    assert_eq!(decoded.list.get(other).unwrap(), VALID);
    assert_eq!(decoded.list, jwt.list);
    let payload = app.verify(&jwt.body, "statuslist+jwt", &uri).await;
    let claims = decode_token_list(&payload, DEFAULT_DECODE_LIMIT)
        .unwrap()
        .claims;
    assert_eq!(decoded.claims.sub, uri);
    assert_eq!(decoded.claims.iss.as_deref(), Some(BASE));
    assert_eq!(
        (decoded.claims.iat, decoded.claims.exp, decoded.claims.ttl),
        (claims.iat, claims.exp, claims.ttl),
        "signed together: the same times"
    );

    // The CWT shows a change at once too.
    app.change("/revoke", &TOKEN, other, &uri).await;
    let res = get_with(&app, &path, &[("accept", CWT)]).await;
    assert_ne!(res.headers()["etag"].to_str().unwrap(), etag);
    let decoded = verify_cwt(&app, &res.bytes().await.unwrap()).await;
    assert_eq!(decoded.list.get(other).unwrap(), INVALID);
}

/// RFC 9110 negotiation end to end: the JWT without a preference, the CWT
/// when preferred, 406 (and nothing else) when neither is acceptable; a W3C
/// list has one representation and disregards `Accept`.
async fn accept_picks_the_representation_or_406(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (_, uri) = app.issue(&TOKEN).await;
    let (_, b_uri) = app.issue(&BITS).await;
    let path = list_path(&uri);
    for (accept, want) in [
        (None, Some(JWT)),
        (Some("*/*"), Some(JWT)),
        (Some("application/*"), Some(JWT)),
        (Some(JWT), Some(JWT)),
        (Some("application/jwt"), Some(JWT)),
        (Some(CWT), Some(CWT)),
        (Some("application/cwt"), Some(CWT)),
        (
            Some("application/statuslist+jwt;q=0.5, application/statuslist+cwt"),
            Some(CWT),
        ),
        (
            Some("application/statuslist+jwt, application/statuslist+cwt"),
            Some(JWT),
        ),
        (Some("application/statuslist+jwt;q=0, */*"), Some(CWT)),
        (Some("application/json"), None),
        (Some("text/html"), None),
        (
            Some("application/statuslist+jwt;q=0, application/statuslist+cwt;q=0"),
            None,
        ),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let res = get_with(&app, &path, &headers).await;
        match want {
            Some(media) => {
                assert_eq!(res.status(), StatusCode::OK, "{accept:?}");
                assert_eq!(res.headers()["content-type"], media, "{accept:?}");
            }
            None => {
                assert_error(
                    res,
                    406,
                    "NOT_ACCEPTABLE",
                    "This status list is available as application/statuslist+jwt or \
                     application/statuslist+cwt; the Accept header allows neither",
                )
                .await
            }
        }
    }
    for accept in [CWT, "application/json", "application/vc+ld+json"] {
        let res = get_with(&app, &list_path(&b_uri), &[("accept", accept)]).await;
        assert_eq!(res.status(), StatusCode::OK, "{accept}");
        assert_eq!(res.headers()["content-type"], "application/vc+jwt");
    }
}

/// Each representation has its own entity tag: a validator of one never
/// gets a 304 for another, and a client holding the CWT gets its 304.
async fn etags_are_per_representation(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let path = list_path(&uri);
    let tag = |res: &reqwest::Response| res.headers()["etag"].to_str().unwrap().to_owned();
    let jwt = get_with(&app, &path, &[]).await;
    let gzip = get_with(&app, &path, &[("accept-encoding", "gzip")]).await;
    let cwt = get_with(&app, &path, &[("accept", CWT)]).await;
    let (jwt, gzip, cwt) = (tag(&jwt), tag(&gzip), tag(&cwt));
    assert_eq!(
        [&jwt, &gzip, &cwt]
            .into_iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3,
        "{jwt} {gzip} {cwt}"
    );
    let res = get_with(&app, &path, &[("accept", CWT), ("if-none-match", &cwt)]).await;
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(tag(&res), cwt);
    assert_eq!(res.headers()["vary"], "Accept, Accept-Encoding");
    assert!(res.bytes().await.unwrap().is_empty());
    let held = format!("{jwt}, {gzip}");
    let res = get_with(&app, &path, &[("accept", CWT), ("if-none-match", &held)]).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the JWT's tags do not name the CWT"
    );
    assert_eq!(res.headers()["content-type"], CWT);
    let res = get_with(&app, &path, &[("if-none-match", &cwt)]).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the CWT's tag does not name the JWT"
    );
    assert_eq!(res.headers()["content-type"], JWT);

    app.change("/revoke", &TOKEN, idx, &uri).await;
    let res = get_with(&app, &path, &[("accept", CWT), ("if-none-match", &cwt)]).await;
    assert_eq!(res.status(), StatusCode::OK, "the list changed");
}

/// The draft's `time` parameter: history is not kept, so 501, on both
/// kinds of list; a malformed value is 400; other parameters change
/// nothing.
async fn the_time_parameter_is_not_implemented(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (_, uri) = app.issue(&TOKEN).await;
    let (_, b_uri) = app.issue(&BITS).await;
    let (t, b) = (list_path(&uri), list_path(&b_uri));
    let not_kept = "Historical status lists are not kept: the time parameter is not supported; \
                    request the list without it for its current state";
    let malformed = "The time parameter must be a Unix time: whole seconds, digits only";
    for (query, status) in [
        ("?time=1686925000", 501),
        ("?x=1&time=0", 501),
        ("?time=99999999999999999999", 400),
        ("?time=abc", 400),
        ("?time=", 400),
        ("?time", 400),
        ("?time=-5", 400),
        ("?time=1.5", 400),
    ] {
        for path in [&t, &b] {
            let res = get_with(&app, &format!("{path}{query}"), &[("accept", "*/*")]).await;
            if status == 501 {
                assert_error(res, 501, "NOT_IMPLEMENTED", not_kept).await;
            } else {
                assert_error(res, 400, "BAD_REQUEST", malformed).await;
            }
        }
    }
    let res = get_with(&app, &format!("{t}?times=1&x=y"), &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// `GET /t/aggregation` lists every Token Status List of every client,
/// none of the W3C ones, and every token list (JWT and CWT) points at it.
async fn the_aggregation_lists_every_token_list(store: StoreChoice) {
    let app = spawn_app(store).await;
    // Two lists for TOKEN (capacity 64), one for TOKEN2, one W3C list.
    let mut token_uris = std::collections::BTreeSet::new();
    for _ in 0..2 {
        for (_, uri) in app.issue_entries(&TOKEN, json!({"count": 40})).await {
            token_uris.insert(uri);
        }
    }
    token_uris.insert(app.issue(&TOKEN2).await.1);
    let (_, b_uri) = app.issue(&BITS).await;
    assert_eq!(token_uris.len(), 3, "{token_uris:?}");

    let res = app.get("/t/aggregation").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "public, max-age=60");
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let body: Value = res.json().await.unwrap();
    let listed: Vec<String> = body["status_lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, token_uris.iter().cloned().collect::<Vec<_>>());
    assert!(!listed.contains(&b_uri));
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");

    let aggregation = format!("{BASE}/t/aggregation");
    for uri in &token_uris {
        let jwt = app.fetch_list(uri).await;
        let payload = app.verify(&jwt.body, "statuslist+jwt", uri).await;
        let claims = decode_token_list(&payload, DEFAULT_DECODE_LIMIT)
            .unwrap()
            .claims;
        assert_eq!(
            claims.status_list.aggregation_uri.as_deref(),
            Some(aggregation.as_str())
        );
        let res = get_with(&app, &list_path(uri), &[("accept", CWT)]).await;
        let cwt = verify_cwt(&app, &res.bytes().await.unwrap()).await;
        assert_eq!(
            cwt.claims.aggregation_uri.as_deref(),
            Some(aggregation.as_str())
        );
    }
    // The W3C credential has no such member.
    let credential = app.fetch_list(&b_uri).await;
    assert!(!credential.body.is_empty());
    let payload = app.verify(&credential.body, "vc+jwt", &b_uri).await;
    let text = String::from_utf8(payload).unwrap();
    assert!(!text.contains("aggregation"), "{text}");
}

/// The discovery document names the aggregation, the JWKS and the media
/// types, each of which answers.
async fn the_configuration_document_points_at_what_is_served(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (_, uri) = app.issue(&TOKEN).await;
    let res = app.get("/.well-known/statuslist-configuration").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(res.headers()["cache-control"], "public, max-age=3600");
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["issuer"], BASE);
    assert_eq!(doc["time_parameter_supported"], false);
    assert_eq!(
        doc["status_lists"]["token"]["media_types"],
        json!([JWT, CWT])
    );
    assert_eq!(
        doc["status_lists"]["bitstring"]["media_types"],
        json!(["application/vc+jwt"])
    );
    assert_eq!(
        doc["status_lists"]["token"]["uri_template"],
        format!("{BASE}/t/{{id}}")
    );
    // Every URL in it answers on this app.
    for (name, url) in [
        ("jwks_uri", &doc["jwks_uri"]),
        ("aggregation", &doc["status_list_aggregation_endpoint"]),
        (
            "token aggregation",
            &doc["status_lists"]["token"]["aggregation_uri"],
        ),
    ] {
        let path = url.as_str().unwrap().strip_prefix(BASE).unwrap().to_owned();
        let res = app.get(&path).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}: {path}");
    }
    let template = doc["status_lists"]["token"]["uri_template"]
        .as_str()
        .unwrap();
    let id = uri.rsplit('/').next().unwrap();
    assert_eq!(template.replace("{id}", id), uri);
}

both_stores!(
    the_cwt_is_served_when_asked_for,
    accept_picks_the_representation_or_406,
    etags_are_per_representation,
    the_time_parameter_is_not_implemented,
    the_aggregation_lists_every_token_list,
    the_configuration_document_points_at_what_is_served,
);
