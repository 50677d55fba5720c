//! Change requests are single-use and bound to what they do; request JWTs
//! addressed to another service are refused; lists whose data is lost fail
//! closed; a list too narrow for a status says so with a 400.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_stores;
use crate::helpers::*;

/// A signed change request, to be sent (and re-sent) as is.
fn change_jwt(who: &Issuer, idx: u64, uri: &str) -> String {
    who.token(&who.change_payload(idx, uri))
}

async fn body(res: reqwest::Response) -> Value {
    res.json().await.unwrap()
}

/// The bytes of a `/suspend` request sent to `/revoke` (and `/unsuspend`):
/// refused, and the entry stays suspended, not revoked for good.
async fn a_change_request_cannot_be_rerouted(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let jwt = change_jwt(&TOKEN, idx, &uri);
    let res = app.post_jwt("/suspend", &jwt).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    for path in ["/revoke", "/unsuspend"] {
        let res = app.post_jwt(path, &jwt).await;
        assert_error(res, 400, "BAD_REQUEST", CHANGED).await;
    }
    assert_eq!(app.status_at(&uri, idx).await, SUSPENDED);
    // The same bytes to the same endpoint: the same answer.
    let res = app.post_jwt("/suspend", &jwt).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(
        body(res).await["message"],
        "Request processed for suspension"
    );
}

/// An old `/unsuspend` replayed after a later suspension gets its original
/// answer and changes nothing: the entry stays suspended.
async fn an_old_unsuspend_replayed_later_changes_nothing(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let res = app.change("/suspend", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let unsuspend = change_jwt(&TOKEN, idx, &uri);
    let res = app.post_jwt("/unsuspend", &unsuspend).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let first = body(res).await;
    assert_eq!(first["message"], "Request processed for unsuspension");
    let res = app.change("/suspend", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(app.status_at(&uri, idx).await, SUSPENDED);

    let res = app.post_jwt("/unsuspend", &unsuspend).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(body(res).await, first, "the recorded answer");
    assert_eq!(app.status_at(&uri, idx).await, SUSPENDED, "nothing applied");
}

/// A revocation sent twice answers the same both times (same message, same
/// `revokedAt`), not "already revoked" for its own repeat.
async fn a_replayed_revoke_gets_the_same_answer(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let jwt = change_jwt(&TOKEN, idx, &uri);
    let first = body(app.post_jwt("/revoke", &jwt).await).await;
    assert_eq!(first["message"], "Request processed for revocation");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = app.post_jwt("/revoke", &jwt).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(body(res).await, first);
}

/// A jti used for `/issue` cannot be reused for a change, nor the reverse.
async fn a_jti_serves_one_kind_of_request(store: StoreChoice) {
    let app = spawn_app(store).await;
    let issue = TOKEN.issue_payload();
    let res = app.post_jwt("/issue", &TOKEN.token(&issue)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let issued = body(res).await;
    let (idx, uri) = (
        issued["idx"].as_u64().unwrap(),
        issued["uri"].as_str().unwrap(),
    );
    let reuse = with(&TOKEN.change_payload(idx, uri), "jti", issue["jti"].clone());
    let res = app.post_jwt("/revoke", &TOKEN.token(&reuse)).await;
    assert_error(res, 400, "BAD_REQUEST", CHANGED).await;
    assert_eq!(app.status_at(uri, idx).await, VALID);

    let change = TOKEN.change_payload(idx, uri);
    let res = app.post_jwt("/suspend", &TOKEN.token(&change)).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let reuse = with(&TOKEN.issue_payload(), "jti", change["jti"].clone());
    let res = app.post_jwt("/issue", &TOKEN.token(&reuse)).await;
    assert_error(res, 400, "BAD_REQUEST", CHANGED).await;
}

/// RFC 8725 §3.9: a request JWT with an `aud` must name this service;
/// without one (CRS clients) nothing changes.
async fn a_request_for_another_audience_is_refused(store: StoreChoice) {
    let app = spawn_app(store).await;
    for aud in [json!(BASE), json!(format!("{BASE}/")), json!(["x", BASE])] {
        let p = with(&TOKEN.issue_payload(), "aud", aud.clone());
        let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
        assert_eq!(res.status(), StatusCode::OK, "aud {aud}");
    }
    let (idx, uri) = app.issue(&TOKEN).await;
    for aud in [json!("https://other.example"), json!([]), json!(7)] {
        let p = with(&TOKEN.issue_payload(), "aud", aud.clone());
        let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
        assert_error(res, 401, "UNAUTHORIZED", "Invalid Audience in Payload").await;
        let p = with(&TOKEN.change_payload(idx, &uri), "aud", aud);
        let res = app.post_jwt("/revoke", &TOKEN.token(&p)).await;
        assert_error(res, 401, "UNAUTHORIZED", "Invalid Audience in Payload").await;
    }
    assert_eq!(app.status_at(&uri, idx).await, VALID);
}

/// SUSPENDED does not fit a 1-bit list: a 400 that says why, not a 500.
async fn suspending_in_a_one_bit_list_is_400(store: StoreChoice) {
    let app = spawn_app_with(
        store,
        Knobs {
            bits: 1,
            ..Knobs::default()
        },
    )
    .await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let res = app.change("/suspend", &TOKEN, idx, &uri).await;
    assert_error(
        res,
        400,
        "BAD_REQUEST",
        "This status list has 1-bit entries, which cannot hold the status SUSPENDED",
    )
    .await;
    assert_eq!(app.status_at(&uri, idx).await, VALID);
    let res = app.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(app.status_at(&uri, idx).await, INVALID);
}

/// A record lives until `iat` + window + skew, not arrival + window: a
/// request signed with an `iat` a little ahead (allowed skew) and replayed
/// after arrival + window, while its `iat` still passes, gets the same
/// answer instead of a second index.
async fn a_record_outlives_every_replay_its_iat_allows(store: StoreChoice) {
    let app = spawn_app_with(
        store,
        Knobs {
            window_secs: 2,
            ..Knobs::default()
        },
    )
    .await;
    let p = with(&TOKEN.issue_payload(), "iat", json!(now() + 50));
    let jwt = TOKEN.token(&p);
    let first = body(app.post_jwt("/issue", &jwt).await).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let res = app.post_jwt("/issue", &jwt).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, first, "the same index, not a second one");
}

both_stores!(
    a_record_outlives_every_replay_its_iat_allows,
    a_change_request_cannot_be_rerouted,
    an_old_unsuspend_replayed_later_changes_nothing,
    a_replayed_revoke_gets_the_same_answer,
    a_jti_serves_one_kind_of_request,
    a_request_for_another_audience_is_refused,
    suspending_in_a_one_bit_list_is_400,
);

/// A list whose bytes key was lost in Redis (eviction, operator error, a
/// partial restore) is never served as all-VALID: once `freshness_ms` has
/// passed, GET answers 503 with the CRS body, changes are refused, and
/// readiness reports the store as degraded, naming the list.
#[tokio::test]
async fn redis_lost_list_bytes_fail_closed() {
    let app = spawn_app_with(
        StoreChoice::Redis,
        Knobs {
            freshness_ms: 1,
            ..Knobs::default()
        },
    )
    .await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let res = app.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(app.status_at(&uri, idx).await, INVALID);
    let id = uri.rsplit('/').next().unwrap();
    let redis = app.redis.as_ref().unwrap();
    let keys = redis.command("KEYS *");
    let bytes_key = keys
        .lines()
        .find(|l| l.contains(&format!(":l:{id}:b")))
        .unwrap_or_else(|| panic!("no bytes key for {id} in {keys}"))
        .to_owned();
    assert_eq!(redis.command(&format!("DEL {bytes_key}")).trim(), ":1");
    tokio::time::sleep(Duration::from_millis(20)).await;

    let res = app.get(&list_path(&uri)).await;
    assert_error(
        res,
        503,
        "TEMPORARILY_UNAVAILABLE",
        "Service is temporarily unavailable",
    )
    .await;
    let (idx2, uri2) = app.issue(&TOKEN2).await;
    assert_eq!(
        app.status_at(&uri2, idx2).await,
        VALID,
        "other lists are served"
    );
    let res = app.change("/suspend", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let res = app
        .post_jwt("/issue", &TOKEN.token(&TOKEN.issue_payload()))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "no index in a damaged list"
    );

    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), StatusCode::OK);
    let ready = body(res).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert_eq!(ready["store"], "degraded", "{ready}");
    assert_eq!(ready["damaged_lists"], json!([id]), "{ready}");
}

/// A Redis that may evict keys is reported by readiness.
#[tokio::test]
async fn redis_evicting_policy_is_reported_by_readiness() {
    let app = spawn_app(StoreChoice::Redis).await;
    let ready = body(app.get("/health/ready").await).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    let redis = app.redis.as_ref().unwrap();
    assert!(
        redis
            .command("CONFIG SET maxmemory-policy volatile-lru")
            .starts_with("+OK")
    );
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), StatusCode::OK);
    let ready = body(res).await;
    assert_eq!(ready["store"], "degraded", "{ready}");
    let warning = ready["warnings"][0].as_str().unwrap();
    assert!(
        warning.contains("volatile-lru") && warning.contains("noeviction"),
        "{warning}"
    );
}

/// An "already" answer counts as an acknowledged change for this process's
/// cache: B revoked the entry; A, which cached the list before (and would
/// trust its copy for a minute), is asked to revoke it too, answers "already
/// revoked", and from then on never serves its copy without the revocation.
/// The change feed is off on both (`notify_changes = false`): with it, A
/// would drop its copy as soon as B's change is announced
/// (`propagation.rs`), and this rule would not be what shows the change.
#[tokio::test]
async fn an_already_answer_invalidates_this_process_cache() {
    let redis = crate::support::RedisServer::start();
    let spec = StoreSpec::Redis {
        url: redis.url(),
        prefix: "shared:".into(),
    };
    let knobs = Knobs {
        freshness_ms: 60_000,
        ..Knobs::default()
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let deaf = |dir: &std::path::Path| {
        let mut s = settings(&spec, &knobs, dir);
        s.store.notify_changes = false;
        s
    };
    let a = start(deaf(dir_a.path())).await;
    let b = start(deaf(dir_b.path())).await;
    let (idx, uri) = a.issue(&TOKEN).await;
    assert_eq!(a.status_at(&uri, idx).await, VALID, "A caches the list");
    let res = b.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(
        body(res).await["message"],
        "Request processed for revocation"
    );
    assert_eq!(
        a.status_at(&uri, idx).await,
        VALID,
        "A's copy is still fresh"
    );
    let res = a.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(body(res).await["message"], "Credential already revoked");
    assert_eq!(a.status_at(&uri, idx).await, INVALID);
}
