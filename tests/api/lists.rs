//! The published lists: issue → VALID at `idx`, revoke → INVALID at once,
//! both formats, headers, ETag/304, verification with the service's JWKS,
//! and the list 404s.

use reqwest::StatusCode;

use crate::both_stores;
use crate::helpers::*;

async fn issue_then_revoke_token_list(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    assert!(uri.starts_with(&format!("{BASE}/t/")), "{uri}");
    let (idx2, uri2) = app.issue(&TOKEN).await;
    assert_eq!(uri2, uri, "a second issue lands in the same list");
    assert_ne!(idx2, idx);
    assert_eq!(app.status_at(&uri, idx).await, VALID);
    assert_eq!(app.status_at(&uri, idx2).await, VALID);

    let res = app.change("/revoke", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    // Visible at once to the same process (the change invalidates the cache
    // entry through the list version, no waiting for `freshness`).
    let list = app.fetch_list(&uri).await.list;
    assert_eq!(list.get(idx).unwrap(), INVALID);
    assert_eq!(list.get(idx2).unwrap(), VALID, "only idx changed");
}

async fn issue_then_revoke_bitstring_list(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&BITS).await;
    assert!(uri.starts_with(&format!("{BASE}/b/")), "{uri}");
    assert_eq!(app.status_at(&uri, idx).await, VALID);
    let res = app.change("/revoke", &BITS, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(app.status_at(&uri, idx).await, INVALID);
}

async fn suspend_and_unsuspend_show_in_the_list(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let res = app.change("/suspend", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["message"], "Request processed for suspension");
    assert!(body["suspendedAt"].as_u64().is_some(), "{body}");
    assert_eq!(app.status_at(&uri, idx).await, SUSPENDED);

    let res = app.change("/unsuspend", &TOKEN, idx, &uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["message"], "Request processed for unsuspension");
    assert_eq!(app.status_at(&uri, idx).await, VALID);
    let res = app.change("/unsuspend", &TOKEN, idx, &uri).await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["message"], "Credential already valid");

    // INVALID is final: suspending a revoked entry is forbidden.
    app.change("/revoke", &TOKEN, idx, &uri).await;
    let res = app.change("/suspend", &TOKEN, idx, &uri).await;
    assert_error(
        res,
        403,
        "FORBIDDEN",
        "Unable to revoke the specified status list entry",
    )
    .await;
    assert_eq!(app.status_at(&uri, idx).await, INVALID);
}

async fn matching_etag_gets_304_and_a_change_a_new_etag(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let first = app.fetch_list(&uri).await;
    let path = list_path(&uri);
    let get_if = |tag: String| {
        app.http
            .get(app.url(&path))
            .header("if-none-match", tag)
            .send()
    };
    for tag in [
        first.etag.clone(),
        format!("W/{}", first.etag),
        format!("\"other\", {}", first.etag),
        "*".to_owned(),
    ] {
        let res = get_if(tag.clone()).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(res.headers()["etag"], first.etag.as_str());
        assert_eq!(res.headers()["cache-control"], "public, max-age=300");
        assert!(res.text().await.unwrap().is_empty());
    }
    let res = get_if("\"nope\"".to_owned()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), first.body);

    app.change("/revoke", &TOKEN, idx, &uri).await;
    let res = get_if(first.etag.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "the list changed");
    assert_ne!(res.headers()["etag"], first.etag.as_str());
}

async fn unknown_lists_and_the_other_format_are_404(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (_, t_uri) = app.issue(&TOKEN).await;
    let (_, b_uri) = app.issue(&BITS).await;
    let t_id = list_path(&t_uri)[3..].to_owned();
    let b_id = list_path(&b_uri)[3..].to_owned();
    // Fetch first so that the cached entry is also asked for the other format.
    app.fetch_list(&t_uri).await;
    app.fetch_list(&b_uri).await;
    for path in [
        format!("/b/{t_id}"),
        format!("/t/{b_id}"),
        "/t/A671FED3E9AD".to_owned(),
        "/b/A671FED3E9AD".to_owned(),
        "/t/not-an-id".to_owned(),
        "/t/%00".to_owned(),
        format!("/t/{}", "A".repeat(300)),
    ] {
        let res = app.get(&path).await;
        assert_error(
            res,
            404,
            "NOT_FOUND",
            "Status List not found for endpoint uri",
        )
        .await;
    }
}

async fn jwks_health_and_metrics(store: StoreChoice) {
    let app = spawn_app(store).await;
    let res = app.get("/.well-known/jwks.json").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let jwks: serde_json::Value = res.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert!(keys[0].get("d").is_none(), "no private part: {jwks}");

    let res = app.get("/health/live").await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app.get("/health/ready").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["store"], "ok");

    let (_, uri) = app.issue(&TOKEN).await;
    app.fetch_list(&uri).await;
    app.fetch_list(&uri).await;
    let text = app.metrics().await;
    for name in [
        "http_requests_total",
        "http_request_duration_seconds",
        "statuslist_allocations_total",
        "statuslist_store_duration_seconds",
        "statuslist_token_cache_total",
        "statuslist_list_fill_ratio",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from:\n{text}"
        );
    }
    // Route patterns, never raw paths, label the request metrics.
    assert!(text.contains("route=\"/t/{id}\""), "{text}");
    assert!(!text.contains(&list_path(&uri)), "{text}");
    assert!(text.contains("outcome=\"rebuilt\""), "{text}");
}

async fn a_full_list_rolls_over_to_a_new_one(store: StoreChoice) {
    let app = spawn_app_with(
        store,
        Knobs {
            capacity: 3,
            ..Knobs::default()
        },
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(app.issue(&TOKEN).await);
    }
    let first = &seen[0].1;
    assert!(seen[..3].iter().all(|(_, u)| u == first), "{seen:?}");
    assert_ne!(&seen[3].1, first, "the fourth issue opens a new list");
    let mut idxs: Vec<u64> = seen[..3].iter().map(|(i, _)| *i).collect();
    idxs.sort();
    assert_eq!(idxs, [0, 1, 2]);
    for (idx, uri) in &seen {
        assert_eq!(app.status_at(uri, *idx).await, VALID);
    }
}

both_stores!(
    issue_then_revoke_token_list,
    issue_then_revoke_bitstring_list,
    suspend_and_unsuspend_show_in_the_list,
    matching_etag_gets_304_and_a_change_a_new_etag,
    unknown_lists_and_the_other_format_are_404,
    jwks_health_and_metrics,
    a_full_list_rolls_over_to_a_new_one,
);

/// `Cache-Control: max-age` never outlives the token: with a token lifetime
/// shorter than `ttl` (300 s), max-age is at most `exp - now`.
#[tokio::test]
async fn max_age_never_exceeds_the_tokens_remaining_lifetime() {
    let (dir, spec, _redis) = fresh_store(StoreChoice::Embedded);
    let mut s = settings(&spec, &Knobs::default(), dir.path());
    s.signing.token_lifetime = std::time::Duration::from_secs(4);
    let app = start(s).await;
    let (_, uri) = app.issue(&TOKEN).await;
    let before = now();
    let res = app.get(&list_path(&uri)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cache_control = res.headers()["cache-control"].to_str().unwrap().to_owned();
    let max_age: u64 = cache_control
        .strip_prefix("public, max-age=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unexpected Cache-Control {cache_control:?}"));
    let body = res.text().await.unwrap();
    let payload = app.verify(&body, "statuslist+jwt", &uri).await;
    let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
    let exp = claims["exp"].as_u64().unwrap();
    assert!(
        (1..=exp.saturating_sub(before)).contains(&max_age),
        "max-age {max_age} with exp {exp} at {before}"
    );
}
