//! What the benches that run the real application (`http_load`,
//! `propagation`) share: its settings and the load line they print.
//! Include with `#[path]` next to `tests/common/json_toml.rs` as `json_toml`.

use std::path::Path;
use std::process::Command;

use statuslist::config::Settings;

use crate::json_toml::json_to_toml;

/// Settings of one bench instance: port 0, the store at `store_url` with
/// `prefix`, a signing key generated in `dir`, and one token-list client
/// `bench` whose keys are `jwks`.
pub fn settings(dir: &Path, store_url: &str, prefix: &str, jwks: &serde_json::Value) -> Settings {
    let toml = format!(
        r#"
public_base_url = "http://127.0.0.1"
listen = "127.0.0.1:0"
[store]
url = "{store_url}"
redis_prefix = "{prefix}"
command_timeout_ms = 2000
[signing]
key_file = "{key}"
generate_if_missing = true
[[clients]]
id = "bench"
format = "token"
jwks = {jwks}
"#,
        key = dir.join("service.pem").display(),
        jwks = json_to_toml(jwks),
    );
    Settings::from_toml_str(&toml).expect("bench settings")
}

/// `uptime` labelled `when`, so every figure comes with the machine's load.
pub fn uptime(when: &str) -> String {
    Command::new("uptime")
        .output()
        .map(|o| {
            format!(
                "uptime {when}: {}",
                String::from_utf8_lossy(&o.stdout).trim()
            )
        })
        .unwrap_or_default()
}
