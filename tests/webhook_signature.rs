//! A webhook receiver written with Python's `hmac` (not our code) verifies
//! the `Statuslist-Signature` the service sends: the receiver is the Python
//! snippet of README.md's "Webhooks" section, read from the README, so the
//! documentation cannot drift from what the service signs.
//!
//! Needs `python3` on the `PATH` (the standard library only).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::json;
use statuslist::domain::events::{Event, EventKind, EventSeed, signature};
use statuslist::domain::{ClientId, IssuanceRef, ListFormat, ListId};

/// The first ```python block of README.md's "## Webhooks" section.
fn readme_snippet() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let section = readme
        .split("\n## Webhooks\n")
        .nth(1)
        .expect("README.md has a '## Webhooks' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let code = section
        .split("```python\n")
        .nth(1)
        .expect("the Webhooks section has a ```python block");
    code.split("\n```").next().unwrap().to_owned()
}

/// What the Python receiver is asked: (secret, Statuslist-Signature, body).
struct Case {
    name: &'static str,
    secret: Vec<u8>,
    header: String,
    body: Vec<u8>,
    verifies: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs the snippet's `verify` on every case (one `python3` process) and
/// returns its answers in order.
fn python_verify(snippet: &str, cases: &[Case]) -> Vec<bool> {
    let driver = r#"
import json, sys
for secret, header, body in json.load(sys.stdin):
    print(verify(bytes.fromhex(secret), header, bytes.fromhex(body)))
"#;
    let input = json!(
        cases
            .iter()
            .map(|c| json!([hex(&c.secret), c.header, hex(&c.body)]))
            .collect::<Vec<_>>()
    );
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(format!("{snippet}\n{driver}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("this test needs python3 on the PATH: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| match l {
            "True" => true,
            "False" => false,
            other => panic!("verify printed {other:?}"),
        })
        .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn the_readme_receiver_verifies_our_signatures_with_pythons_hmac() {
    let snippet = readme_snippet();
    assert!(
        snippet.contains("hmac.compare_digest"),
        "the README's receiver compares in constant time:\n{snippet}"
    );
    let secret = b"6f1c2b9e0d4a7f3e8c5b1a2d9e0f7c6b5a4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f".to_vec();
    let event = Event {
        id: EventSeed::random(now() * 1000).id(0),
        kind: EventKind::EntryRevoked,
        client: ClientId::parse("issuer-1").unwrap(),
        format: ListFormat::Token,
        at: now(),
        entries: vec![(ListId::parse("9D1E07C2B8A4").unwrap(), 1377)],
        issuance_ref: Some(IssuanceRef::parse("order-4711").unwrap()),
    };
    let body = event.body("https://status.example.com");
    let t = now();
    let header = signature(&secret, t, &body);
    let other_body = {
        let mut b = body.clone();
        let last = b.len() - 2;
        b[last] ^= 1;
        b
    };
    let v1 = header.split_once(",v1=").unwrap().1.to_owned();
    let cases = [
        Case {
            name: "as sent",
            secret: secret.clone(),
            header: header.clone(),
            body: body.clone(),
            verifies: true,
        },
        Case {
            name: "an entries.issued body",
            secret: secret.clone(),
            header: signature(&secret, t, &issued(&event)),
            body: issued(&event),
            verifies: true,
        },
        Case {
            name: "spaces after the comma",
            secret: secret.clone(),
            header: format!("t={t}, v1={v1}"),
            body: body.clone(),
            verifies: true,
        },
        Case {
            name: "a body changed by one bit",
            secret: secret.clone(),
            header: header.clone(),
            body: other_body,
            verifies: false,
        },
        Case {
            name: "another secret",
            secret: b"another secret".to_vec(),
            header: header.clone(),
            body: body.clone(),
            verifies: false,
        },
        Case {
            name: "the signature of another time",
            secret: secret.clone(),
            header: format!("t={},v1={v1}", t + 1),
            body: body.clone(),
            verifies: false,
        },
        Case {
            name: "signed ten minutes ago (outside the tolerance)",
            secret: secret.clone(),
            header: signature(&secret, t - 600, &body),
            body: body.clone(),
            verifies: false,
        },
        Case {
            name: "no t",
            secret: secret.clone(),
            header: format!("v1={v1}"),
            body: body.clone(),
            verifies: false,
        },
        Case {
            name: "no v1",
            secret: secret.clone(),
            header: format!("t={t}"),
            body: body.clone(),
            verifies: false,
        },
        Case {
            name: "garbage",
            secret: secret.clone(),
            header: "t=½,v1=ü,,=,x".to_owned(),
            body: body.clone(),
            verifies: false,
        },
    ];
    let answers = python_verify(&snippet, &cases);
    assert_eq!(answers.len(), cases.len());
    for (case, got) in cases.iter().zip(answers) {
        assert_eq!(got, case.verifies, "{}", case.name);
    }
}

/// The `entries.issued` body of `event`'s ref, two entries.
fn issued(event: &Event) -> Vec<u8> {
    let list = event.entries[0].0;
    Event {
        kind: EventKind::EntriesIssued,
        entries: vec![(list, 7), (list, 1377)],
        ..event.clone()
    }
    .body("https://status.example.com")
}
