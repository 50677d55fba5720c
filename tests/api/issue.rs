//! `/issue` end to end: the answer's shape and every idempotency case.

use reqwest::StatusCode;
use serde_json::{Value, json};
use statuslist::domain::claims::issue_digest;
use statuslist::domain::{ClientId, Jti, ListFormat};
use statuslist::ports::{AllocateOutcome, AllocateRequest, Store};

use crate::both_stores;
use crate::helpers::*;

async fn issue_answers_idx_and_uri_with_no_store(store: StoreChoice) {
    let app = spawn_app(store).await;
    let res = app
        .post_jwt("/issue", &TOKEN.token(&TOKEN.issue_payload()))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let obj = body.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{body}");
    assert!(body["idx"].as_u64().unwrap() < 64);
    assert!(
        body["uri"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1/t/"),
        "{body}"
    );
}

async fn a_retry_with_the_same_jti_gets_the_same_answer(store: StoreChoice) {
    let app = spawn_app(store).await;
    let p = TOKEN.issue_payload();
    let first = app.post_jwt("/issue", &TOKEN.token(&p)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    // A retry re-signed with another iat is the same request.
    let retry = with(&p, "iat", json!(now() - 5));
    for token in [TOKEN.token(&p), TOKEN.token(&retry)] {
        let res = app.post_jwt("/issue", &token).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.json::<Value>().await.unwrap(), first);
    }
    // Only one index was used: the next new request gets another one.
    let (idx, uri) = app.issue(&TOKEN).await;
    assert_eq!(uri, first["uri"].as_str().unwrap());
    assert_ne!(idx, first["idx"].as_u64().unwrap());
}

async fn the_same_jti_with_another_status_expiry_is_400(store: StoreChoice) {
    let app = spawn_app(store).await;
    let p = TOKEN.issue_payload();
    let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let changed = with(&p, "statusExpiry", json!(now() + 90_000));
    let res = app.post_jwt("/issue", &TOKEN.token(&changed)).await;
    assert_error(
        res,
        400,
        "BAD_REQUEST",
        "Detected invalid changes between idempotent requests, unable to proceed. Please generate a new request.",
    )
    .await;
}

async fn jtis_are_per_client(store: StoreChoice) {
    let app = spawn_app(store).await;
    let p = TOKEN.issue_payload();
    let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
    let a: Value = res.json().await.unwrap();
    // Another client using the same jti (and even another statusExpiry) is
    // a different request.
    let p2 = with(
        &with(&p, "iss", json!(TOKEN2.id)),
        "statusExpiry",
        json!(now() + 1000),
    );
    let res = app.post_jwt("/issue", &TOKEN2.token(&p2)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let b: Value = res.json().await.unwrap();
    assert_ne!(a["uri"], b["uri"], "each client has its own lists");
}

/// A request that died after its allocation was applied (allocated through
/// the store before the app starts, as a process killed mid-request would
/// leave it): the retry gets that allocation at once, not a 409 and not a
/// second index.
async fn a_retry_after_the_first_request_died_gets_its_allocation(store: StoreChoice) {
    let p = TOKEN.issue_payload();
    let jti = Jti::parse(p["jti"].as_str().unwrap()).unwrap();
    let expiry = p["statusExpiry"].as_u64().unwrap();
    let mut first = None;
    let app = spawn_prepared(store, async |s| {
        let client = ClientId::parse(TOKEN.id).unwrap();
        let req = AllocateRequest {
            digest: issue_digest(&client, &jti, expiry),
            client,
            format: ListFormat::Token,
            jti: jti.clone(),
            status_expiry: expiry,
            count: 1,
            issuance_ref: None,
            now: now(),
            keep_until: now() + 3660,
            events: None,
        };
        let AllocateOutcome::Allocated(a) = s.allocate(&req).await.unwrap() else {
            panic!("not allocated");
        };
        first = Some(a);
    })
    .await;
    let first = first.unwrap();
    for _ in 0..2 {
        let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["idx"], first.indexes[0]);
        assert!(
            body["uri"].as_str().unwrap().ends_with(first.list.as_str()),
            "{body}"
        );
    }
}

both_stores!(
    issue_answers_idx_and_uri_with_no_store,
    a_retry_with_the_same_jti_gets_the_same_answer,
    the_same_jti_with_another_status_expiry_is_400,
    jtis_are_per_client,
    a_retry_after_the_first_request_died_gets_its_allocation,
);
