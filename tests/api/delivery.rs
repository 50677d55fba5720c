//! Webhooks end to end: an app on the embedded store with one client whose
//! webhook is a local receiver (http, with `allow_insecure_webhook`); the
//! changes it acknowledges arrive there as signed events.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use statuslist::config::Settings;

use crate::helpers::*;
use crate::receiver::{Delivery, Receiver};
use crate::signature_v1::expected_v1;

const SECRET: &str = "whsec-api-test-5f1d2c";

/// Settings of an app on a redb file in `dir` whose token client (`TOKEN`)
/// has its webhook at `url`, and whose second token client (`TOKEN2`) has
/// none.
fn webhook_settings(dir: &std::path::Path, url: &str) -> Settings {
    let secret = dir.join("hook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let client = |who: &Issuer, extra: &str| {
        format!(
            "[[clients]]\nid = \"{}\"\nformat = \"{}\"\njwks = {}\n{extra}",
            who.id,
            who.format,
            json_to_toml(&who.jwks())
        )
    };
    let toml = format!(
        "public_base_url = \"{BASE}\"\nlisten = \"127.0.0.1:0\"\n\
         [store]\nurl = \"embedded:{}\"\ncommand_timeout_ms = 10000\n\
         [lists]\ncapacity = 64\n\
         [signing]\nkey_file = \"{}\"\ngenerate_if_missing = true\n\
         [webhooks]\ntimeout_ms = 2000\nlease_secs = 5\npoll_interval_ms = 100\n\
         retry_initial_ms = 100\n{}{}",
        dir.join("store.redb").display(),
        dir.join("service-key.pem").display(),
        client(
            &TOKEN,
            &format!(
                "allow_insecure_webhook = true\nwebhook = {{ url = \"{url}\", secret_file = \"{}\" }}\n",
                secret.display()
            )
        ),
        client(&TOKEN2, ""),
    );
    Settings::from_toml_str(&toml).unwrap()
}

/// Checks a delivery's headers and signature as a receiver would (with the
/// `hmac` crate, not the service's code) and returns its body.
fn verified(d: &Delivery) -> Value {
    assert_eq!(d.content_type, "application/json");
    assert!(d.user_agent.starts_with("statuslist/"), "{}", d.user_agent);
    let (t, v1) = d
        .signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .unwrap_or_else(|| panic!("signature header {:?}", d.signature));
    let t: u64 = t.parse().unwrap();
    assert!(t.abs_diff(now()) <= 60, "signed now: {t}");
    let want = expected_v1(SECRET.as_bytes(), t, &d.body);
    assert_eq!(v1, want, "the signature verifies with the client's secret");
    let body: Value = serde_json::from_slice(&d.body).unwrap();
    assert_eq!(
        body["id"],
        d.event_id.as_str(),
        "Statuslist-Event-Id is the body's id"
    );
    assert_eq!(d.event_id.len(), 32);
    assert_eq!(body["client"], TOKEN.id);
    assert!(body["at"].as_u64().unwrap().abs_diff(now()) <= 60);
    body
}

#[tokio::test]
async fn an_issue_with_a_ref_and_a_revocation_deliver_two_signed_events() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let app = start(webhook_settings(dir.path(), &receiver.url)).await;

    let entries = app.issue_entries(&TOKEN, json!({"ref": "order-1"})).await;
    let [(idx, uri)] = entries.as_slice() else {
        panic!("{entries:?}")
    };
    let res = app.change("/revoke", &TOKEN, *idx, uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);

    let got = receiver.wait_for(2).await;
    let issued = verified(&got[0]);
    assert_eq!(issued["type"], "entries.issued");
    assert_eq!(
        issued["data"],
        json!({"ref": "order-1", "entries": [{"idx": idx, "uri": uri}], "status": "VALID"})
    );
    let revoked = verified(&got[1]);
    assert_eq!(revoked["type"], "entry.revoked");
    assert_eq!(
        revoked["data"],
        json!({"uri": uri, "idx": idx, "ref": "order-1", "status": "INVALID"})
    );
    assert!(
        got[0].event_id < got[1].event_id,
        "ids sort by the changes' order"
    );

    // Nothing else is an event: a CRS issue (no ref), and any change of a
    // client without a webhook. A revocation of the CRS entry is one.
    let (crs_idx, crs_uri) = app.issue(&TOKEN).await;
    let (other_idx, other_uri) = app.issue(&TOKEN2).await;
    let res = app.change("/revoke", &TOKEN2, other_idx, &other_uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let res = app.change("/revoke", &TOKEN, crs_idx, &crs_uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let got = receiver.wait_for(3).await;
    let third = verified(&got[2]);
    assert_eq!(
        third["data"],
        json!({"uri": crs_uri, "idx": crs_idx, "status": "INVALID"})
    );
    // A repeat changes nothing and records nothing.
    let res = app.change("/revoke", &TOKEN, crs_idx, &crs_uri).await;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<String> = receiver.got().iter().map(|d| d.event_id.clone()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");

    // The deliveries are counted.
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("statuslist_webhook_deliveries_total{outcome=\"delivered\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("statuslist_webhook_delivery_seconds_count 3"),
        "{metrics}"
    );
}
