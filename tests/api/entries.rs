//! `GET /entries` end to end: the bearer JWT (every refusal with its text,
//! single use), the query (every bad parameter named), pages and their
//! pagination block, filters and sort, one client's entries only, and
//! statuses that agree with the published lists as the test decoders read
//! them.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_stores;
use crate::helpers::*;

const JTI_USED: &str = "JWT has already been used: sign a new one with a fresh jti";

/// The items of a listing.
fn items(body: &Value) -> &Vec<Value> {
    body["items"].as_array().unwrap()
}

/// The (idx, uri) of every item of a listing, in order.
fn keys(body: &Value) -> Vec<(u64, String)> {
    idx_uris(body, "items")
}

/// A query value, percent-encoded.
fn enc(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

async fn listing_auth_failures_are_401_with_their_texts(store: StoreChoice) {
    let app = spawn_app(store).await;
    let res = app.get_entries("", None).await;
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert_error(
        res,
        401,
        "UNAUTHORIZED",
        "No Authorization header: send Authorization: Bearer <JWT>",
    )
    .await;
    let t = TOKEN.token(&TOKEN.listing_payload());
    for bad in [
        format!("Basic {t}"),
        t.clone(),
        "Bearer".into(),
        format!("Bearer {t} {t}"),
    ] {
        let res = app.get_entries("", Some(&bad)).await;
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert_error(
            res,
            401,
            "UNAUTHORIZED",
            "Authorization header must be Bearer followed by a JWT",
        )
        .await;
    }
    let p = TOKEN.listing_payload();
    let h = TOKEN.header();
    let cases: Vec<(String, u16, &str, &str)> = vec![
        (
            TOKEN.sign(&h, &without(&p, "aud")),
            401,
            "UNAUTHORIZED",
            "No aud in Payload: it must be the service's public base URL",
        ),
        (
            TOKEN.sign(&h, &with(&p, "aud", json!("https://other.example"))),
            401,
            "UNAUTHORIZED",
            "Invalid Audience in Payload",
        ),
        (
            TOKEN2.sign(&h, &p),
            401,
            "UNAUTHORIZED",
            "JWT has non-verified signature",
        ),
        (
            TOKEN.sign(&h, &with(&p, "iss", json!("client-unknown"))),
            401,
            "UNAUTHORIZED",
            "JWT has non-matching Client ID",
        ),
        (
            TOKEN.sign(&without(&h, "kid"), &p),
            401,
            "UNAUTHORIZED",
            "No Key ID in Header",
        ),
        (
            TOKEN.sign(&with(&h, "alg", json!("none")), &p),
            401,
            "UNAUTHORIZED",
            "Invalid Algorithm in Header",
        ),
        (
            "not-a-jwt".into(),
            400,
            "BAD_REQUEST",
            "Error decoding JWT or converting to JSON",
        ),
        (
            TOKEN.sign(&h, &without(&p, "jti")),
            400,
            "BAD_REQUEST",
            "No jti in Payload",
        ),
        (
            TOKEN.sign(&h, &with(&p, "iat", json!(now() - 7200))),
            400,
            "BAD_REQUEST",
            "Invalid iat in Payload",
        ),
    ];
    for (token, status, code, text) in cases {
        let res = app.get_entries("", Some(&format!("Bearer {token}"))).await;
        assert_error(res, status, code, text).await;
    }
}

async fn bad_query_parameters_are_400_naming_them(store: StoreChoice) {
    let app = spawn_app(store).await;
    for (query, text) in [
        ("pageSize=10", "Unknown query parameter 'pageSize'"),
        (
            "page=1&page=2",
            "Query parameter 'page' is given more than once",
        ),
        (
            "page=0",
            "Query parameter 'page' must be a whole number of at least 1",
        ),
        (
            "limit=101",
            "Query parameter 'limit' must be a whole number from 1 to 100",
        ),
        (
            "status=REVOKED",
            "Query parameter 'status' must be a comma-separated list of VALID, INVALID and SUSPENDED",
        ),
        (
            "ref=",
            "Query parameter 'ref' must be 1 to 128 printable ASCII characters",
        ),
        (
            "uri=https%3A%2F%2Fother.example%2Ft%2FA671FED3E9AD",
            "Query parameter 'uri' must be a status list URI of this service",
        ),
        (
            "updatedSince=yesterday",
            "Query parameter 'updatedSince' must be a time in whole unix seconds",
        ),
        (
            "updatedUntil=-1",
            "Query parameter 'updatedUntil' must be a time in whole unix seconds",
        ),
        ("sort=up", "Query parameter 'sort' must be desc or asc"),
    ] {
        let res = app.entries(&TOKEN, query).await;
        assert_error(res, 400, "BAD_REQUEST", text).await;
    }
}

async fn a_listing_jwt_is_single_use(store: StoreChoice) {
    let app = spawn_app(store).await;
    app.issue(&TOKEN).await;
    let bearer = |p: &Value| format!("Bearer {}", TOKEN.token(p));
    let p = TOKEN.listing_payload();
    let res = app.get_entries("", Some(&bearer(&p))).await;
    assert_eq!(res.status(), StatusCode::OK);
    // Replayed, as sent or re-signed with another iat: refused.
    for again in [p.clone(), with(&p, "iat", json!(now() - 5))] {
        let res = app.get_entries("", Some(&bearer(&again))).await;
        assert_error(res, 401, "UNAUTHORIZED", JTI_USED).await;
    }
    // A refused query does not use the JWT up.
    let p = TOKEN.listing_payload();
    let res = app.get_entries("limit=0", Some(&bearer(&p))).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app.get_entries("limit=5", Some(&bearer(&p))).await;
    assert_eq!(res.status(), StatusCode::OK);
    // One key space with the write requests: an /issue's jti cannot list,
    // a listing's jti cannot issue.
    let issue = TOKEN.issue_payload();
    let res = app.post_jwt("/issue", &TOKEN.token(&issue)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let reused = with(&TOKEN.listing_payload(), "jti", issue["jti"].clone());
    let res = app.get_entries("", Some(&bearer(&reused))).await;
    assert_error(res, 401, "UNAUTHORIZED", JTI_USED).await;
    let listed = TOKEN.listing_payload();
    let res = app.get_entries("", Some(&bearer(&listed))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let issue = with(&TOKEN.issue_payload(), "jti", listed["jti"].clone());
    let res = app.post_jwt("/issue", &TOKEN.token(&issue)).await;
    assert_error(res, 400, "BAD_REQUEST", CHANGED).await;
    // Another client's identical jti is another jti.
    let theirs = with(&TOKEN2.listing_payload(), "jti", listed["jti"].clone());
    let res = app
        .get_entries("", Some(&format!("Bearer {}", TOKEN2.token(&theirs))))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
}

async fn pages_and_their_pagination_block(store: StoreChoice) {
    let app = spawn_app(store).await;
    let expiry = now() + 50_000;
    let all = app
        .issue_entries(&TOKEN, json!({"count": 25, "statusExpiry": expiry}))
        .await;
    let block = |page: u64, has_previous: bool, has_next: bool| {
        json!({"currentPage": page, "totalItems": 25, "totalPages": 3, "limit": 10,
               "hasPrevious": has_previous, "hasNext": has_next})
    };
    let mut asc = Vec::new();
    for (page, len, prev, next) in [
        (1, 10, false, true),
        (2, 10, true, true),
        (3, 5, true, false),
        (4, 0, true, false),
    ] {
        let body = app
            .entries_ok(&TOKEN, &format!("limit=10&page={page}&sort=asc"))
            .await;
        assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
        assert_eq!(body["pagination"], block(page, prev, next));
        assert_eq!(items(&body).len(), len);
        asc.extend(keys(&body));
        for item in items(&body) {
            let fields: BTreeSet<&str> = item
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                fields,
                BTreeSet::from([
                    "idx",
                    "uri",
                    "status",
                    "createdAt",
                    "updatedAt",
                    "statusExpiry"
                ]),
                "no ref: {item}"
            );
            assert_eq!(item["status"], "VALID");
            assert_eq!(item["updatedAt"], item["createdAt"]);
            assert_eq!(item["statusExpiry"], expiry);
        }
    }
    // One request's entries share createdAt: asc is allocation order, and
    // the default (desc, limit 10) starts from the last one.
    assert_eq!(asc, all);
    let body = app.entries_ok(&TOKEN, "").await;
    assert_eq!(
        body["pagination"],
        block(1, false, true),
        "page 1 of 10 by default"
    );
    let desc: Vec<_> = all.iter().rev().take(10).cloned().collect();
    assert_eq!(keys(&body), desc);
    // Nothing matches: no pages at all.
    let body = app.entries_ok(&TOKEN, "ref=none").await;
    assert_eq!(
        body,
        json!({"items": [], "pagination": {"currentPage": 1, "totalItems": 0, "totalPages": 0,
               "limit": 10, "hasPrevious": false, "hasNext": false}})
    );
}

async fn filters_and_sort(store: StoreChoice) {
    let app = spawn_app(store).await;
    let a = app
        .issue_entries(&TOKEN, json!({"ref": "A", "count": 3}))
        .await;
    let b = app
        .issue_entries(&TOKEN, json!({"ref": "B", "count": 2}))
        .await;
    let singles = [app.issue(&TOKEN).await, app.issue(&TOKEN).await];
    let res = app.change("/revoke", &TOKEN, a[0].0, &a[0].1).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let revoked_at = res.json::<Value>().await.unwrap()["revokedAt"]
        .as_u64()
        .unwrap();
    let res = app.change("/suspend", &TOKEN, b[1].0, &b[1].1).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let set = |v: Vec<(u64, String)>| v.into_iter().collect::<BTreeSet<_>>();
    let listed = async |q: &str| set(keys(&app.entries_ok(&TOKEN, q).await));

    assert_eq!(listed("status=INVALID").await, set(vec![a[0].clone()]));
    assert_eq!(
        listed("status=SUSPENDED,INVALID").await,
        set(vec![a[0].clone(), b[1].clone()])
    );
    let valid = set(vec![
        a[1].clone(),
        a[2].clone(),
        b[0].clone(),
        singles[0].clone(),
        singles[1].clone(),
    ]);
    assert_eq!(listed("status=VALID").await, valid);
    assert_eq!(listed("ref=A").await, set(a.clone()));
    assert_eq!(listed("ref=A&status=VALID").await, set(a[1..].to_vec()));
    assert_eq!(
        listed("ref=B&status=SUSPENDED").await,
        set(vec![b[1].clone()])
    );
    assert_eq!(listed("ref=C").await, set(vec![]));
    // One list holds them all (capacity 64); the same id under the other
    // format's path, and another client's list, hold none of them.
    let uri = &a[0].1;
    let everything = listed(&format!("uri={}", enc(uri))).await;
    assert_eq!(everything.len(), 7);
    let body = app
        .entries_ok(&TOKEN, &format!("uri={}", enc(&uri.replace("/t/", "/b/"))))
        .await;
    assert_eq!(body["pagination"]["totalItems"], 0, "{body}");
    let (_, theirs) = app.issue(&TOKEN2).await;
    assert_eq!(listed(&format!("uri={}", enc(&theirs))).await, set(vec![]));
    // The time window, inclusive at both ends.
    assert_eq!(listed("updatedSince=0").await, everything);
    assert_eq!(listed("updatedUntil=0").await, set(vec![]));
    let future = now() + 100_000;
    assert_eq!(listed(&format!("updatedSince={future}")).await, set(vec![]));
    let since = app
        .entries_ok(&TOKEN, &format!("updatedSince={revoked_at}&limit=100"))
        .await;
    assert!(keys(&since).contains(&a[0]), "{since}");
    assert!(
        items(&since)
            .iter()
            .all(|i| i["updatedAt"].as_u64().unwrap() >= revoked_at)
    );
    let until = app
        .entries_ok(&TOKEN, &format!("updatedUntil={revoked_at}&limit=100"))
        .await;
    assert!(keys(&until).contains(&a[0]), "{until}");
    assert!(
        items(&until)
            .iter()
            .all(|i| i["updatedAt"].as_u64().unwrap() <= revoked_at)
    );

    // Sort: desc (the default) by updatedAt, asc its exact reverse.
    let desc = app.entries_ok(&TOKEN, "limit=100").await;
    let asc = app.entries_ok(&TOKEN, "limit=100&sort=asc").await;
    let updated = |b: &Value| -> Vec<u64> {
        items(b)
            .iter()
            .map(|i| i["updatedAt"].as_u64().unwrap())
            .collect()
    };
    assert!(updated(&desc).windows(2).all(|w| w[0] >= w[1]), "{desc}");
    let mut reversed = keys(&desc);
    reversed.reverse();
    assert_eq!(keys(&asc), reversed);
    assert_eq!(
        keys(&app.entries_ok(&TOKEN, "limit=100&sort=desc").await),
        keys(&desc)
    );
    // Refs are shown where bound; the CRS entries have none.
    for item in items(&desc) {
        let key = (
            item["idx"].as_u64().unwrap(),
            item["uri"].as_str().unwrap().to_owned(),
        );
        let want = if a.contains(&key) {
            json!("A")
        } else if b.contains(&key) {
            json!("B")
        } else {
            Value::Null
        };
        assert_eq!(
            item.get("ref").cloned().unwrap_or(Value::Null),
            want,
            "{item}"
        );
        let status = if key == a[0] {
            "INVALID"
        } else if key == b[1] {
            "SUSPENDED"
        } else {
            "VALID"
        };
        assert_eq!(item["status"], status);
        assert!(item["updatedAt"].as_u64() >= item["createdAt"].as_u64());
    }
}

async fn a_client_sees_only_its_own_entries(store: StoreChoice) {
    let app = spawn_app(store).await;
    let mine = app
        .issue_entries(&TOKEN, json!({"ref": "shared", "count": 3}))
        .await;
    let theirs = app
        .issue_entries(&TOKEN2, json!({"ref": "shared", "count": 2}))
        .await;
    let bits = app
        .issue_entries(&BITS, json!({"ref": "shared", "count": 1}))
        .await;
    let set = |v: &[(u64, String)]| v.iter().cloned().collect::<BTreeSet<_>>();
    for (who, own) in [(&*TOKEN, &mine), (&*TOKEN2, &theirs), (&*BITS, &bits)] {
        for query in ["limit=100", "limit=100&ref=shared"] {
            let body = app.entries_ok(who, query).await;
            assert_eq!(set(&keys(&body)), set(own), "{} {query}", who.id);
            assert_eq!(body["pagination"]["totalItems"], own.len());
        }
    }
    // Naming another client's list lists nothing.
    let body = app
        .entries_ok(&TOKEN, &format!("uri={}", enc(&theirs[0].1)))
        .await;
    assert_eq!(body["pagination"]["totalItems"], 0);
}

/// Every listed status is the one the published list holds, as the test
/// decoders read it, after changes by index and by ref over several lists.
async fn statuses_agree_with_the_published_lists(store: StoreChoice) {
    let knobs = Knobs {
        capacity: 8,
        ..Knobs::default()
    };
    let app = spawn_app_with(store, knobs).await;
    for who in [&*TOKEN, &*BITS] {
        let batch = app
            .issue_entries(who, json!({"ref": "R", "count": 6}))
            .await;
        let mut singles = Vec::new();
        for _ in 0..4 {
            singles.push(app.issue(who).await);
        }
        for (path, (idx, uri)) in [
            ("/revoke", &batch[0]),
            ("/revoke", &singles[0]),
            ("/suspend", &singles[1]),
        ] {
            let res = app.change(path, who, *idx, uri).await;
            assert_eq!(res.status(), StatusCode::ACCEPTED);
        }
        let res = app.change_ref("/suspend", who, "R").await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let (idx, uri) = &batch[1];
        let res = app.change("/unsuspend", who, *idx, uri).await;
        assert_eq!(res.status(), StatusCode::ACCEPTED);

        let body = app.entries_ok(who, "limit=100").await;
        assert_eq!(body["pagination"]["totalItems"], 10);
        let listed: BTreeSet<_> = keys(&body).into_iter().collect();
        let issued: BTreeSet<_> = batch.iter().chain(&singles).cloned().collect();
        assert_eq!(listed, issued);
        let lists: BTreeSet<&String> = issued.iter().map(|(_, u)| u).collect();
        assert!(lists.len() >= 2, "spans lists: {lists:?}");
        let mut published = BTreeMap::new();
        for uri in lists {
            published.insert(uri.clone(), app.fetch_list(uri).await.list);
        }
        let mut seen = BTreeMap::new();
        for item in items(&body) {
            let uri = item["uri"].as_str().unwrap();
            let value = published[uri].get(item["idx"].as_u64().unwrap()).unwrap();
            let want = match value {
                VALID => "VALID",
                INVALID => "INVALID",
                SUSPENDED => "SUSPENDED",
                other => panic!("value {other} published"),
            };
            assert_eq!(item["status"], want, "{item}");
            *seen.entry(want).or_insert(0) += 1;
        }
        // Revoked: one of the ref (skipped by its suspension) and a single;
        // suspended: 4 of the ref (one unsuspended since) and a single.
        assert_eq!(
            seen,
            BTreeMap::from([("INVALID", 2), ("SUSPENDED", 5), ("VALID", 3)]),
            "{}",
            who.id
        );
    }
}

both_stores!(
    listing_auth_failures_are_401_with_their_texts,
    bad_query_parameters_are_400_naming_them,
    a_listing_jwt_is_single_use,
    pages_and_their_pagination_block,
    filters_and_sort,
    a_client_sees_only_its_own_entries,
    statuses_agree_with_the_published_lists,
);
