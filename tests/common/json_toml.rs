//! A JSON value as a TOML inline value, so test and bench configurations can
//! carry a JWKS inline (`jwks = { keys = [...] }`). Shared with `#[path]` by
//! the auth tests, the HTTP tests and the HTTP load bench.

use serde_json::Value;

/// `v` written as TOML: objects become inline tables with quoted keys,
/// strings, numbers and booleans keep their JSON spelling (which TOML reads
/// the same way for the values a JWKS holds).
pub fn json_to_toml(v: &Value) -> String {
    match v {
        Value::Object(m) => format!(
            "{{ {} }}",
            m.iter()
                .map(|(k, v)| format!("\"{k}\" = {}", json_to_toml(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(json_to_toml).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}
