//! The error examples of the vendored CRS private spec, shared by the auth
//! tests and the HTTP tests (`#[path]`-included by both).
//!
//! The spec is vendored and fixed, so a line scanner keyed on its indentation
//! is enough and saves a YAML dependency; the tests that use it fail if it
//! finds nothing.

/// (path, status, example name, error, error_description)
pub type Example = (String, u16, String, String, String);

/// Reads the examples of the spec's error responses.
pub fn examples() -> Vec<Example> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/crs/crs-private-spec.yaml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let unquote = |s: &str| s.trim().trim_matches('"').to_owned();
    let (mut p, mut status, mut name, mut error) = (String::new(), 0u16, String::new(), None);
    let mut out = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let t = line.trim();
        if indent == 2 && t.starts_with('/') && t.ends_with(':') {
            p = t.trim_end_matches(':').to_owned();
        } else if indent == 8 && t.starts_with('"') && t.ends_with("\":") {
            status = t
                .trim_matches(|c| c == '"' || c == ':')
                .parse()
                .unwrap_or(0);
        } else if indent == 16 && t.ends_with(':') {
            name = t.trim_end_matches(':').to_owned();
        } else if let Some(e) = t.strip_prefix("error: ") {
            error = Some(unquote(e));
        } else if let Some(d) = t.strip_prefix("error_description: ")
            && let Some(e) = error.take()
        {
            out.push((p.clone(), status, name.clone(), e, unquote(d)));
        }
    }
    out
}
