//! Issuer-platform requests end to end: `/issue` with `ref` and `count`
//! (the answer's shapes and embeds, distinct indexes, spanning lists,
//! idempotency, refusals) and status changes by `ref` (answers, skips,
//! ownership, idempotency, and the lists re-published).

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_stores;
use crate::helpers::*;

const ENTRY_NOT_FOUND: &str = "Entry not found in status list table";

/// The `statuslist_allocations_total` of `format` in a metrics text.
fn allocations(metrics: &str, format: &str) -> u64 {
    let prefix = format!("statuslist_allocations_total{{format=\"{format}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

async fn a_batch_answers_every_entry_with_its_embed(store: StoreChoice) {
    let app = spawn_app(store).await;
    // Token lists: the IETF `status` claim, and the ref given back.
    let body = app
        .issue_with(&TOKEN, json!({"ref": "order-1", "count": 5}))
        .await;
    let obj = body.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{body}");
    assert_eq!(body["ref"], "order-1");
    let entries = entries_of(&body);
    assert_eq!(entries.len(), 5);
    let distinct: BTreeSet<_> = entries.iter().collect();
    assert_eq!(distinct.len(), 5, "indexes are distinct: {body}");
    for (e, (idx, uri)) in body["entries"].as_array().unwrap().iter().zip(&entries) {
        assert!(uri.starts_with(&format!("{BASE}/t/")), "{body}");
        assert_eq!(e.as_object().unwrap().len(), 3, "{e}");
        assert_eq!(
            e["status"],
            json!({"status_list": {"idx": idx, "uri": uri}})
        );
        assert_eq!(app.status_at(uri, *idx).await, VALID);
    }
    // Bitstring lists: a BitstringStatusListEntry; no ref, no "ref".
    let body = app.issue_with(&BITS, json!({"count": 3})).await;
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    let entries = entries_of(&body);
    assert_eq!(entries.len(), 3);
    for (e, (idx, uri)) in body["entries"].as_array().unwrap().iter().zip(&entries) {
        assert!(uri.starts_with(&format!("{BASE}/b/")), "{body}");
        assert_eq!(
            e["status"],
            json!({
                "id": format!("{uri}#{idx}"),
                "type": "BitstringStatusListEntry",
                "statusPurpose": "message",
                "statusListIndex": idx.to_string(),
                "statusListCredential": uri,
                "statusSize": 2,
                "statusMessage": [
                    {"status": "0x0", "message": "VALID"},
                    {"status": "0x1", "message": "INVALID"},
                    {"status": "0x2", "message": "SUSPENDED"},
                ],
            })
        );
    }
    // The embed's statusMessage is the published credential's.
    let (_, uri) = &entries[0];
    let res = app.get(&list_path(uri)).await;
    let token = res.text().await.unwrap();
    let payload = app.verify(&token, "vc+jwt", uri).await;
    let credential: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        credential["credentialSubject"]["statusMessage"],
        body["entries"][0]["status"]["statusMessage"]
    );
    // count 1 alone asks for the entries shape too.
    let body = app.issue_with(&TOKEN, json!({"count": 1})).await;
    assert_eq!(entries_of(&body).len(), 1);
    assert!(body.get("ref").is_none());
    // The allocation counter counts entries, not requests.
    let (idx, uri) = app.issue(&TOKEN).await;
    assert!(uri.starts_with(&format!("{BASE}/t/")) && idx < 64);
    let metrics = app.metrics().await;
    assert_eq!(allocations(&metrics, "token"), 5 + 1 + 1, "{metrics}");
    assert_eq!(allocations(&metrics, "bitstring"), 3, "{metrics}");
}

async fn without_ref_or_count_the_answer_is_the_crs_one(store: StoreChoice) {
    let app = spawn_app(store).await;
    // `null` is "not given".
    let body = app
        .issue_with(&TOKEN, json!({"ref": null, "count": null}))
        .await;
    let obj = body.as_object().unwrap();
    assert_eq!(
        obj.keys().collect::<Vec<_>>(),
        ["idx", "uri"],
        "the CRS answer: {body}"
    );
    // A CRS request and a count-1 request with the same jti differ.
    let p = TOKEN.issue_payload();
    let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = app
        .post_jwt("/issue", &TOKEN.token(&with(&p, "count", json!(1))))
        .await;
    assert_error(res, 400, "BAD_REQUEST", CHANGED).await;
}

/// A small capacity: the second batch fills the first list and spills into
/// a new one; the indexes of a list are all distinct and none is lost.
async fn a_batch_spans_into_a_new_list_when_one_fills(store: StoreChoice) {
    let knobs = Knobs {
        capacity: 8,
        max_batch: Some(8),
        ..Knobs::default()
    };
    let app = spawn_app_with(store, knobs).await;
    let first = app.issue_entries(&TOKEN, json!({"count": 5})).await;
    let second = app.issue_entries(&TOKEN, json!({"count": 5})).await;
    let a = &first[0].1;
    assert!(first.iter().all(|(_, u)| u == a), "{first:?}");
    // Allocation order: the rest of the first list, then the new one.
    assert!(second[..3].iter().all(|(_, u)| u == a), "{second:?}");
    let b = &second[3].1;
    assert_ne!(a, b);
    assert!(second[3..].iter().all(|(_, u)| u == b), "{second:?}");
    let in_a: BTreeSet<u64> = first.iter().chain(&second[..3]).map(|(i, _)| *i).collect();
    assert_eq!(in_a, (0..8).collect(), "the first list is used up exactly");
    assert_eq!(
        second[3..]
            .iter()
            .map(|(i, _)| *i)
            .collect::<BTreeSet<_>>()
            .len(),
        2
    );
    // A whole list's worth: the 6 left in the second list, 2 in a third.
    let third = app.issue_entries(&TOKEN, json!({"count": 8})).await;
    assert!(third[..6].iter().all(|(_, u)| u == b), "{third:?}");
    let c = &third[6].1;
    assert!(c != a && c != b && third[7].1 == *c, "{third:?}");
    let in_b: BTreeSet<u64> = second[3..]
        .iter()
        .chain(&third[..6])
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(in_b, (0..8).collect());
    for (idx, uri) in second.iter().chain(&third) {
        assert_eq!(app.status_at(uri, *idx).await, VALID);
    }
}

async fn a_replay_returns_the_same_entries(store: StoreChoice) {
    let app = spawn_app(store).await;
    let p = with(
        &with(&TOKEN.issue_payload(), "count", json!(4)),
        "ref",
        json!("r"),
    );
    let first = app.post_jwt("/issue", &TOKEN.token(&p)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.unwrap();
    // The same request, and the same re-signed with a fresh iat.
    for payload in [p.clone(), with(&p, "iat", json!(now() - 5))] {
        let res = app.post_jwt("/issue", &TOKEN.token(&payload)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.json::<Value>().await.unwrap(), first);
    }
    // Nothing more was allocated: the next request gets other indexes.
    let next = app.issue_entries(&TOKEN, json!({"count": 4})).await;
    let before: BTreeSet<_> = entries_of(&first).into_iter().collect();
    assert!(next.iter().all(|e| !before.contains(e)), "{next:?}");
}

async fn the_same_jti_with_other_claims_is_400(store: StoreChoice) {
    let app = spawn_app(store).await;
    let p = with(
        &with(&TOKEN.issue_payload(), "count", json!(2)),
        "ref",
        json!("r"),
    );
    let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
    assert_eq!(res.status(), StatusCode::OK);
    for changed in [
        with(&p, "count", json!(3)),
        with(&p, "ref", json!("r2")),
        without(&p, "ref"),
        without(&without(&p, "ref"), "count"),
        with(&p, "statusExpiry", json!(now() + 1000)),
    ] {
        let res = app.post_jwt("/issue", &TOKEN.token(&changed)).await;
        assert_error(res, 400, "BAD_REQUEST", CHANGED).await;
    }
}

async fn counts_and_refs_out_of_range_are_400(store: StoreChoice) {
    // The default max_batch is the capacity when it is under 100.
    let app = spawn_app(store).await;
    for count in [json!(0), json!(65), json!(-1), json!(1.5), json!("2")] {
        let p = with(&TOKEN.issue_payload(), "count", count.clone());
        let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
        assert_error(
            res,
            400,
            "BAD_REQUEST",
            "Invalid count in Payload: it must be a whole number from 1 to 64",
        )
        .await;
    }
    // A float with no fraction is a whole number.
    let body = app.issue_with(&TOKEN, json!({"count": 2.0})).await;
    assert_eq!(entries_of(&body).len(), 2);
    for r in [
        json!(""),
        json!("x".repeat(129)),
        json!("tab\there"),
        json!(7),
    ] {
        let p = with(&TOKEN.issue_payload(), "ref", r.clone());
        let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
        assert_error(
            res,
            400,
            "BAD_REQUEST",
            "Invalid ref in Payload: it must be a string of 1 to 128 printable ASCII characters",
        )
        .await;
    }
    // A configured max_batch is the limit, and the text says it.
    let app = spawn_app_with(
        store,
        Knobs {
            max_batch: Some(5),
            ..Knobs::default()
        },
    )
    .await;
    assert_eq!(
        app.issue_entries(&TOKEN, json!({"count": 5})).await.len(),
        5
    );
    let p = with(&TOKEN.issue_payload(), "count", json!(6));
    let res = app.post_jwt("/issue", &TOKEN.token(&p)).await;
    assert_error(
        res,
        400,
        "BAD_REQUEST",
        "Invalid count in Payload: it must be a whole number from 1 to 5",
    )
    .await;
}

/// The status of every entry, as published, by list.
async fn published(app: &TestApp, entries: &[(u64, String)]) -> Vec<u8> {
    let mut lists = BTreeMap::new();
    for (_, uri) in entries {
        if !lists.contains_key(uri) {
            lists.insert(uri.clone(), app.fetch_list(uri).await.list);
        }
    }
    entries
        .iter()
        .map(|(idx, uri)| lists[uri].get(*idx).unwrap())
        .collect()
}

/// Revocation by ref across two lists: every entry of the ref, and only
/// those, is revoked in the published lists, whose cached tokens were
/// dropped; the replay and a repeat answer as they must.
async fn revoke_by_ref_changes_every_entry_and_republishes(store: StoreChoice) {
    let knobs = Knobs {
        capacity: 4,
        ..Knobs::default()
    };
    let app = spawn_app_with(store, knobs).await;
    let other = app.issue_entries(&TOKEN, json!({"count": 2})).await;
    // 2 issues with the same ref accumulate (2 + 2 entries over 2 lists).
    let mut bound = app
        .issue_entries(&TOKEN, json!({"ref": "R", "count": 2}))
        .await;
    bound.extend(
        app.issue_entries(&TOKEN, json!({"ref": "R", "count": 2}))
            .await,
    );
    let lists: BTreeSet<&String> = bound.iter().map(|(_, u)| u).collect();
    assert_eq!(lists.len(), 2, "{bound:?}");
    // Published and cached before the change.
    assert_eq!(published(&app, &bound).await, [VALID; 4]);

    let p = TOKEN.ref_change_payload("R");
    let before = now();
    let res = app.post_jwt("/revoke", &TOKEN.token(&p)).await;
    let after = now();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let at = body["revokedAt"].as_u64().unwrap();
    assert!((before..=after).contains(&at), "{body}");
    assert_eq!(
        body,
        json!({"message": "Request processed for revocation", "revokedAt": at, "entries": 4, "skipped": 0})
    );
    assert_eq!(published(&app, &bound).await, [INVALID; 4]);
    assert_eq!(published(&app, &other).await, [VALID; 2]);

    // The same request again: the same answer, nothing applied.
    let res = app.post_jwt("/revoke", &TOKEN.token(&p)).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.json::<Value>().await.unwrap(), body);
    // Its jti for another operation is a changed request.
    let suspend = app.post_jwt("/suspend", &TOKEN.token(&p)).await;
    assert_error(suspend, 400, "BAD_REQUEST", CHANGED).await;
    // A new request: every entry already revoked.
    let res = app.change_ref("/revoke", &TOKEN, "R").await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["message"], "Credential already revoked");
    assert_eq!(
        (again["entries"].clone(), again["skipped"].clone()),
        (json!(0), json!(0))
    );
}

/// Suspension by ref skips what the rules forbid (a revoked entry), and
/// unsuspension by ref brings the others back.
async fn suspend_by_ref_skips_revoked_entries(store: StoreChoice) {
    let app = spawn_app(store).await;
    for who in [&*TOKEN, &*BITS] {
        let bound = app
            .issue_entries(who, json!({"ref": "S", "count": 3}))
            .await;
        let (idx, uri) = &bound[1];
        let res = app.change("/revoke", who, *idx, uri).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);

        let res = app.change_ref("/suspend", who, "S").await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["message"], "Request processed for suspension");
        assert!(body["suspendedAt"].is_u64(), "{body}");
        assert_eq!(
            (body["entries"].as_u64(), body["skipped"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(
            published(&app, &bound).await,
            [SUSPENDED, INVALID, SUSPENDED]
        );

        let res = app.change_ref("/unsuspend", who, "S").await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["message"], "Request processed for unsuspension");
        assert!(body["unsuspendedAt"].is_u64(), "{body}");
        assert_eq!(
            (body["entries"].as_u64(), body["skipped"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(published(&app, &bound).await, [VALID, INVALID, VALID]);
    }
}

async fn unknown_and_other_clients_refs_are_404(store: StoreChoice) {
    let app = spawn_app(store).await;
    let bound = app
        .issue_entries(&TOKEN, json!({"ref": "mine", "count": 2}))
        .await;
    for (path, who, r) in [
        ("/revoke", &*TOKEN, "never-issued"),
        ("/revoke", &*TOKEN2, "mine"),
        ("/suspend", &*TOKEN2, "mine"),
        // Refs are per client and format: the bitstring client has none.
        ("/unsuspend", &*BITS, "mine"),
    ] {
        let res = app.change_ref(path, who, r).await;
        assert_error(res, 404, "NOT_FOUND", ENTRY_NOT_FOUND).await;
    }
    // The same text in another client's hands is another ref.
    let theirs = app.issue_entries(&TOKEN2, json!({"ref": "mine"})).await;
    let res = app.change_ref("/revoke", &TOKEN2, "mine").await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.json::<Value>().await.unwrap()["entries"], 1);
    assert_eq!(published(&app, &theirs).await, [INVALID]);
    assert_eq!(published(&app, &bound).await, [VALID, VALID]);
}

async fn a_ref_with_an_idx_or_uri_is_400(store: StoreChoice) {
    let app = spawn_app(store).await;
    let (idx, uri) = app.issue(&TOKEN).await;
    let both = with(&TOKEN.change_payload(idx, &uri), "ref", json!("R"));
    for p in [both.clone(), without(&both, "idx"), without(&both, "uri")] {
        let res = app.post_jwt("/revoke", &TOKEN.token(&p)).await;
        assert_error(
            res,
            400,
            "BAD_REQUEST",
            "Payload must name either a ref, or an idx and a uri, not both",
        )
        .await;
    }
    let p = with(&TOKEN.ref_change_payload("x"), "ref", json!(""));
    let res = app.post_jwt("/suspend", &TOKEN.token(&p)).await;
    assert_error(
        res,
        400,
        "BAD_REQUEST",
        "Invalid ref in Payload: it must be a string of 1 to 128 printable ASCII characters",
    )
    .await;
    // Neither: the CRS faults, as before.
    let p = without(&TOKEN.ref_change_payload("x"), "ref");
    let res = app.post_jwt("/revoke", &TOKEN.token(&p)).await;
    assert_error(res, 400, "BAD_REQUEST", "No Index in Payload").await;
    assert_eq!(app.status_at(&uri, idx).await, VALID);
}

both_stores!(
    a_batch_answers_every_entry_with_its_embed,
    without_ref_or_count_the_answer_is_the_crs_one,
    a_batch_spans_into_a_new_list_when_one_fills,
    a_replay_returns_the_same_entries,
    the_same_jti_with_other_claims_is_400,
    counts_and_refs_out_of_range_are_400,
    revoke_by_ref_changes_every_entry_and_republishes,
    suspend_by_ref_skips_revoked_entries,
    unknown_and_other_clients_refs_are_404,
    a_ref_with_an_idx_or_uri_is_400,
);
