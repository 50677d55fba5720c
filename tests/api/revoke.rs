//! `/revoke` (and its siblings) end to end: answers, repeats with the
//! original time, ownership, unknown entries, and a revocation through one
//! process seen by another on the same Redis.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use statuslist::domain::claims::issue_digest;
use statuslist::domain::{ClientId, Jti, ListFormat, ListRef, Status};
use statuslist::ports::{AllocateOutcome, AllocateRequest, SetStatusOutcome, StatusChange, Store};

use crate::both_stores;
use crate::helpers::*;
use crate::support::RedisServer;

async fn revoke_answers_202_with_revoked_at(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let before = now();
    let res = app.change("/revoke", &TOKEN, idx, &uri).await;
    let after = now();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["message"], "Request processed for revocation");
    let at = body["revokedAt"].as_u64().unwrap();
    assert!((before..=after).contains(&at), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2);
}

/// A repeat answers "already revoked" with the ORIGINAL time: the entry is
/// revoked through the store at a time in the past before the app starts.
async fn a_repeat_answers_the_original_revoked_at(store: StoreChoice) {
    let t0 = now() - 1000;
    let mut target = None;
    let app = spawn_prepared(store, async |s| {
        let client = ClientId::parse(TOKEN.id).unwrap();
        let jti = Jti::parse(&jti()).unwrap();
        let req = AllocateRequest {
            digest: issue_digest(&client, &jti, t0 + 86_400),
            client: client.clone(),
            format: ListFormat::Token,
            jti: jti.clone(),
            status_expiry: t0 + 86_400,
            count: 1,
            issuance_ref: None,
            now: t0,
            keep_until: t0 + 3660,
            events: None,
        };
        let AllocateOutcome::Allocated(a) = s.allocate(&req).await.unwrap() else {
            panic!("not allocated")
        };
        let idx = a.indexes[0];
        let out = s
            .set_status(&StatusChange {
                client: client.clone(),
                list: a.list,
                idx,
                status: Status::Invalid,
                jti: Jti::parse(&crate::helpers::jti()).unwrap(),
                digest: [9; 32],
                now: t0,
                keep_until: t0 + 3660,
                events: None,
            })
            .await
            .unwrap();
        assert_eq!(out, SetStatusOutcome::Done { at: t0 });
        target = Some((
            idx,
            ListRef {
                format: a.format,
                id: a.list,
            }
            .uri(BASE),
        ));
    })
    .await;
    let (idx, uri) = target.unwrap();
    assert_eq!(app.status_at(&uri, idx).await, INVALID);
    // A new jti, and the same jti twice: both are repeats of the change.
    let p = TOKEN.change_payload(idx, &uri);
    for payload in [TOKEN.change_payload(idx, &uri), p.clone(), p] {
        let res = app.post_jwt("/revoke", &TOKEN.token(&payload)).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            json!({"message": "Credential already revoked", "revokedAt": t0})
        );
    }
}

async fn repeated_revoke_through_http_keeps_the_first_time(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let res = app.change("/revoke", &TOKEN, idx, &uri).await;
    let first: Value = res.json().await.unwrap();
    let res = app.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["message"], "Credential already revoked");
    assert_eq!(again["revokedAt"], first["revokedAt"]);
}

async fn another_clients_list_is_401_client_mismatch(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    for path in ["/revoke", "/suspend", "/unsuspend"] {
        let res = app.change(path, &TOKEN2, idx, &uri).await;
        assert_error(
            res,
            401,
            "UNAUTHORIZED",
            "The original clientId is different to the clientId in the request",
        )
        .await;
    }
    assert_eq!(app.status_at(&uri, idx).await, VALID);
}

async fn unknown_lists_and_unissued_indexes_are_404(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let other = if idx == 0 { 1 } else { 0 };
    let cases = [
        (format!("{BASE}/t/A671FED3E9AD"), 0, "unknown list"),
        (uri.clone(), other, "index never issued"),
        (uri.clone(), 64, "index past the capacity"),
        (uri.clone(), 1 << 40, "huge index"),
    ];
    for (u, i, why) in cases {
        let res = app.change("/revoke", &TOKEN, i, &u).await;
        assert_eq!(res.status().as_u16(), 404, "{why}");
        assert_error(
            res,
            404,
            "NOT_FOUND",
            "Entry not found in status list table",
        )
        .await;
    }
    // A token client naming its list under /b/ names no list of its own.
    let b_uri = uri.replace("/t/", "/b/");
    let res = app.change("/revoke", &TOKEN, idx, &b_uri).await;
    assert_error(
        res,
        404,
        "NOT_FOUND",
        "Entry not found in status list table",
    )
    .await;
    // And the reverse for a bitstring client.
    let (b_idx, b_uri) = app.issue(&BITS).await;
    let t_uri = b_uri.replace("/b/", "/t/");
    let res = app.change("/revoke", &BITS, b_idx, &t_uri).await;
    assert_error(
        res,
        404,
        "NOT_FOUND",
        "Entry not found in status list table",
    )
    .await;
    // Neither request changed anything.
    assert_eq!(app.status_at(&uri, idx).await, VALID);
    assert_eq!(app.status_at(&b_uri, b_idx).await, VALID);
}

both_stores!(
    revoke_answers_202_with_revoked_at,
    a_repeat_answers_the_original_revoked_at,
    repeated_revoke_through_http_keeps_the_first_time,
    another_clients_list_is_401_client_mismatch,
    unknown_lists_and_unissued_indexes_are_404,
);

/// Two service processes on one Redis: a revocation through A shows in B's
/// GETs once B's cached version is older than `freshness` (250 ms). The
/// deadline is generous: this checks that it happens, not how fast.
#[tokio::test]
async fn a_revocation_through_one_process_is_seen_by_another() {
    let redis = RedisServer::start();
    let spec = StoreSpec::Redis {
        url: redis.url(),
        prefix: "shared:".into(),
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(settings(&spec, &Knobs::default(), dir_a.path())).await;
    let b = start(settings(&spec, &Knobs::default(), dir_b.path())).await;
    let (idx, uri) = a.issue(&TOKEN).await;
    // B publishes (and caches) the list first.
    assert_eq!(b.status_at(&uri, idx).await, VALID);
    let res = a.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if b.status_at(&uri, idx).await == INVALID {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never showed the revocation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Both processes sign with their own keys; each token verifies against
    // its own JWKS (checked by status_at) and B's index is shared with A.
    let (idx_b, uri_b) = b.issue(&TOKEN).await;
    assert_eq!(uri_b, uri, "B allocates in the same list");
    assert_ne!(idx_b, idx);
}
