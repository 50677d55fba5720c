//! The module map of `lib.rs`, kept true: reads `src/**/*.rs` as text and
//! checks that dependencies point the way the map says (see the layering in
//! `lib.rs`). Each rule is its own test, and a failure names the file, the
//! line and the path that breaks the rule.
//!
//! How it reads code: comments and the contents of string and char literals
//! are dropped (a doc comment may name `crate::store`; a text may say
//! "StatusCode"), then every path is collected, from `use` trees (groups,
//! `self`, globs and `as` flattened: `use crate::{a::b, c}` is two paths) and
//! from code (`crate::store::X::new()`, `#[tokio::test]`). `self::`, `super::`
//! and names of the file's own `mod` items are resolved against the file's
//! module path (inline `mod tests { … }` included), so `super::super::store`
//! inside `src/http/x.rs` counts as `crate::store`. No new dependency:
//! directories are walked with `std::fs`.
//!
//! The checker checks itself too (`checker::*` tests): each rule fires on a
//! small synthetic source that breaks it, and stays quiet on comments and
//! strings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A lexical token of code (comments and literal contents already dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    /// `>`: what ends generics, so `Foo::<T>::bar` is no path `bar::…`.
    Gt,
    Other,
}

/// Splits Rust source into tokens with their 1-based line numbers. Not a full
/// lexer: enough to see identifiers and paths outside comments and literals.
fn lex(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    // Skips a quoted literal starting at the opening quote `c[i]`; returns
    // the index after the closing quote and counts newlines.
    let skip_quoted = |mut k: usize, quote: char, line: &mut usize| -> usize {
        k += 1;
        while k < c.len() && c[k] != quote {
            if c[k] == '\\' {
                k += 1;
            }
            if c.get(k) == Some(&'\n') {
                *line += 1;
            }
            k += 1;
        }
        k + 1
    };
    while i < c.len() {
        let ch = c[i];
        match ch {
            '\n' => {
                line += 1;
                i += 1;
            }
            _ if ch.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                }
            }
            '"' => {
                out.push((Tok::Other, line));
                i = skip_quoted(i, '"', &mut line);
            }
            '\'' => {
                if at(i + 1) == '\\' || (at(i + 2) == '\'' && at(i + 1) != '\'') {
                    out.push((Tok::Other, line));
                    i = skip_quoted(i, '\'', &mut line);
                } else {
                    // A lifetime or label: the name is lexed as an ident,
                    // which no rule matches.
                    i += 1;
                }
            }
            _ if ch.is_ascii_alphabetic() || ch == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                // Raw strings: r"…", r#"…"#, br"…", cr#"…"#.
                if matches!(word.as_str(), "r" | "br" | "cr")
                    && (at(i) == '"' || (at(i) == '#' && matches!(at(i + 1), '"' | '#')))
                {
                    let mut hashes = 0;
                    while at(i) == '#' {
                        hashes += 1;
                        i += 1;
                    }
                    i += 1; // the opening quote
                    loop {
                        if i >= c.len() {
                            break;
                        }
                        if c[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#') {
                            i += 1 + hashes;
                            break;
                        }
                        if c[i] == '\n' {
                            line += 1;
                        }
                        i += 1;
                    }
                    out.push((Tok::Other, line));
                } else if matches!(word.as_str(), "b" | "c") && matches!(at(i), '"' | '\'') {
                    out.push((Tok::Other, line));
                    i = skip_quoted(i, at(i), &mut line);
                } else {
                    out.push((Tok::Ident(word), line));
                }
            }
            _ if ch.is_ascii_digit() => {
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push((Tok::Other, line));
            }
            ':' if at(i + 1) == ':' => {
                out.push((Tok::PathSep, line));
                i += 2;
            }
            _ => {
                let t = match ch {
                    '{' => Tok::Open,
                    '}' => Tok::Close,
                    ',' => Tok::Comma,
                    ';' => Tok::Semi,
                    '*' => Tok::Star,
                    '>' => Tok::Gt,
                    _ => Tok::Other,
                };
                out.push((t, line));
                i += 1;
            }
        }
    }
    out
}

/// Reads one use tree at `toks[i..]` under `prefix`; pushes every full path
/// it names to `out` and returns the index after it.
fn use_tree(
    toks: &[(Tok, usize)],
    mut i: usize,
    prefix: Vec<String>,
    line: usize,
    out: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let mut path = prefix;
    loop {
        match toks.get(i).map(|t| &t.0) {
            Some(Tok::PathSep) => i += 1,
            Some(Tok::Ident(s)) if s != "as" => {
                path.push(s.clone());
                i += 1;
                if toks.get(i).map(|t| &t.0) != Some(&Tok::PathSep) {
                    break;
                }
            }
            Some(Tok::Star) => {
                path.push("*".into());
                i += 1;
                break;
            }
            Some(Tok::Open) => {
                i += 1;
                loop {
                    match toks.get(i).map(|t| &t.0) {
                        Some(Tok::Close) => return i + 1,
                        Some(Tok::Comma) => i += 1,
                        None => return i,
                        Some(_) => i = use_tree(toks, i, path.clone(), line, out),
                    }
                }
            }
            _ => break,
        }
    }
    if let Some((Tok::Ident(s), _)) = toks.get(i)
        && s == "as"
    {
        i += 2;
    }
    if path.last().is_some_and(|s| s == "self") {
        path.pop();
    }
    if !path.is_empty() {
        out.push((path, line));
    }
    i
}

/// True when the identifier at `i` is the first segment of a path: not
/// after `::`, unless that `::` itself starts a global path (`::std::…`).
fn starts_path(toks: &[(Tok, usize)], i: usize) -> bool {
    let before = |k: usize| i.checked_sub(k).map(|j| &toks[j].0);
    match before(1) {
        Some(Tok::PathSep) => !matches!(before(2), Some(Tok::Ident(_) | Tok::Gt)),
        _ => true,
    }
}

/// Every path of a token stream, with its line and the inline modules
/// (`mod tests { … }`) it sits in: `use` trees flattened, and `a::b::c`
/// sequences in code.
fn paths(toks: &[(Tok, usize)]) -> Vec<(Vec<String>, usize, Vec<String>)> {
    let mut out = Vec::new();
    // The inline modules open at this point, with the brace depth inside each.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    let here = |inline: &[(String, usize)]| inline.iter().map(|m| m.0.clone()).collect();
    while i < toks.len() {
        let (tok, line) = &toks[i];
        match tok {
            Tok::Open => {
                depth += 1;
                if let (Some((Tok::Ident(m), _)), Some((Tok::Ident(name), _))) =
                    (i.checked_sub(2).map(|j| &toks[j]), toks.get(i - 1))
                    && m == "mod"
                {
                    inline.push((name.clone(), depth));
                }
                i += 1;
            }
            Tok::Close => {
                if inline.last().is_some_and(|m| m.1 == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
                i += 1;
            }
            Tok::Ident(s) if s == "use" => {
                let mut found = Vec::new();
                i = use_tree(toks, i + 1, Vec::new(), *line, &mut found);
                let mods: Vec<String> = here(&inline);
                out.extend(found.into_iter().map(|(p, l)| (p, l, mods.clone())));
            }
            Tok::Ident(first)
                if toks.get(i + 1).map(|t| &t.0) == Some(&Tok::PathSep) && starts_path(toks, i) =>
            {
                let mut path = vec![first.clone()];
                i += 1;
                while let (Some((Tok::PathSep, _)), Some((Tok::Ident(s), _))) =
                    (toks.get(i), toks.get(i + 1))
                {
                    path.push(s.clone());
                    i += 2;
                }
                out.push((path, *line, here(&inline)));
            }
            _ => i += 1,
        }
    }
    out
}

/// One source file of the crate, as the rules see it.
struct Source {
    /// Relative to the crate root, with `/`: `src/http/error.rs`.
    rel: String,
    /// Its lines, for the messages.
    lines: Vec<String>,
    /// Its tokens.
    toks: Vec<(Tok, usize)>,
    /// Its paths, resolved: `crate::…` for the crate's own modules (whatever
    /// the spelling: `super::`, `self::`, a child `mod`), else as written
    /// (`tokio::…`, `std::fs::…`, `Foo::bar`).
    paths: Vec<(Vec<String>, usize)>,
}

impl Source {
    fn parse(rel: &str, text: &str) -> Source {
        let toks = lex(text);
        let module = module_path(rel);
        let children: BTreeSet<String> = toks
            .windows(2)
            .filter_map(|w| match (&w[0].0, &w[1].0) {
                (Tok::Ident(m), Tok::Ident(name)) if m == "mod" => Some(name.clone()),
                _ => None,
            })
            .collect();
        let paths = paths(&toks)
            .into_iter()
            .map(|(p, line, inline)| {
                let mut module = module.clone();
                module.extend(inline);
                (resolve(&module, &children, p), line)
            })
            .collect();
        Source {
            rel: rel.to_owned(),
            lines: text.lines().map(str::to_owned).collect(),
            toks,
            paths,
        }
    }

    fn line(&self, n: usize) -> &str {
        self.lines.get(n - 1).map_or("", |l| l.trim())
    }
}

/// The module path of a file: `src/http/error.rs` → `[http, error]`,
/// `src/store/mod.rs` → `[store]`, `src/lib.rs` → `[]`.
fn module_path(rel: &str) -> Vec<String> {
    let inner = rel.trim_start_matches("src/").trim_end_matches(".rs");
    let mut parts: Vec<String> = inner.split('/').map(str::to_owned).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Resolves a path written in the module `module` (whose child modules are
/// `children`) to `crate::…` when it names the crate's own modules.
fn resolve(module: &[String], children: &BTreeSet<String>, path: Vec<String>) -> Vec<String> {
    let crate_path = |base: &[String], rest: &[String]| {
        let mut p = vec!["crate".to_owned()];
        p.extend_from_slice(base);
        p.extend_from_slice(rest);
        p
    };
    match path.first().map(String::as_str) {
        Some("crate") => path,
        // Only the binary and the tests name the library this way.
        Some("statuslist") => crate_path(&[], &path[1..]),
        Some("self") => crate_path(module, &path[1..]),
        Some("super") => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let base = &module[..module.len().saturating_sub(ups)];
            crate_path(base, &path[ups..])
        }
        Some(first) if children.contains(first) => crate_path(module, &path),
        _ => path,
    }
}

/// A rule of the module map.
struct Rule {
    /// What the rule keeps true (the first words of a failure message).
    name: &'static str,
    /// The files it applies to.
    applies: fn(&str) -> bool,
    /// Why a resolved path breaks it, if it does.
    path: fn(&Source, &[String]) -> Option<String>,
    /// Why an identifier breaks it, if it does.
    ident: fn(&Source, &str) -> Option<String>,
}

fn no_ident(_: &Source, _: &str) -> Option<String> {
    None
}

/// The top-level module a resolved path reaches in the crate, if it does.
fn crate_module(p: &[String]) -> Option<&str> {
    match p {
        [c, m, ..] if c == "crate" => Some(m.as_str()),
        _ => None,
    }
}

fn under(rel: &str, module: &str) -> bool {
    rel == format!("src/{module}.rs") || rel.starts_with(&format!("src/{module}/"))
}

/// I/O crates the pure core must not see.
const IO_CRATES: [&str; 5] = ["tokio", "actix_web", "redis", "reqwest", "redb"];

fn io_path(p: &[String]) -> Option<String> {
    match p {
        [c, ..] if IO_CRATES.contains(&c.as_str()) => Some(format!("the I/O crate {c}")),
        [s, m, ..] if s == "std" && (m == "fs" || m == "net") => Some(format!("std::{m}")),
        _ => None,
    }
}

/// Identifiers that name an HTTP status: actix's types and method, and the
/// status names (also the CRS `error` codes), which a table of statuses
/// spelled as bare numbers still needs (`(401, UNAUTHORIZED, …)`).
const HTTP_NAMES: [&str; 14] = [
    "StatusCode",
    "HttpResponse",
    "status_code",
    "BAD_REQUEST",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "METHOD_NOT_ALLOWED",
    "REQUEST_TIMEOUT",
    "CONFLICT",
    "PAYLOAD_TOO_LARGE",
    "INTERNAL_SERVER_ERROR",
    "SERVICE_UNAVAILABLE",
    "TEMPORARILY_UNAVAILABLE",
];

fn rules() -> Vec<Rule> {
    vec![
        Rule {
            name: "domain is pure: it imports no other crate module and no I/O",
            applies: |rel| under(rel, "domain"),
            path: |_, p| match crate_module(p) {
                Some("domain") => None,
                Some(m) => Some(format!("crate::{m}")),
                None => io_path(p),
            },
            ident: no_ident,
        },
        Rule {
            name: "ports name only domain and ports",
            applies: |rel| under(rel, "ports"),
            path: |_, p| match crate_module(p) {
                Some("domain" | "ports") | None => None,
                Some(m) => Some(format!("crate::{m}")),
            },
            ident: no_ident,
        },
        Rule {
            name: "config does not import auth",
            applies: |rel| under(rel, "config"),
            path: |_, p| (crate_module(p) == Some("auth")).then(|| "crate::auth".to_owned()),
            ident: no_ident,
        },
        Rule {
            name: "only http (and the CLI client, and main) names an HTTP status",
            applies: |rel| !(under(rel, "http") || rel == "src/client.rs" || rel == "src/main.rs"),
            // startup configures the server (`actix_web::http::KeepAlive`,
            // default headers): that is wiring, not a status. A status name
            // there is still caught by `ident`.
            path: |src, p| match p {
                [a, h, ..] if a == "actix_web" && h == "http" && src.rel != "src/startup.rs" => {
                    Some("actix_web::http".to_owned())
                }
                _ => None,
            },
            ident: |_, id| HTTP_NAMES.contains(&id).then(|| id.to_owned()),
        },
        Rule {
            name: "adapters are wired only in startup: service, http and ports import none of crate::store, crate::publish, crate::webhook",
            applies: |rel| under(rel, "service") || under(rel, "http") || under(rel, "ports"),
            path: |_, p| match crate_module(p) {
                Some(m @ ("store" | "publish" | "webhook")) => Some(format!("crate::{m}")),
                _ => None,
            },
            ident: no_ident,
        },
        Rule {
            name: "metrics are fed by callers: metrics imports nothing from publish, auth, store, service, webhook",
            applies: |rel| under(rel, "metrics"),
            path: |_, p| match crate_module(p) {
                Some(m @ ("publish" | "auth" | "store" | "service" | "webhook")) => {
                    Some(format!("crate::{m}"))
                }
                _ => None,
            },
            ident: no_ident,
        },
        Rule {
            name: "service does not import actix_web, reqwest, redis or redb",
            applies: |rel| under(rel, "service"),
            // tokio it may use: the dispatcher is a loop of tasks and timers.
            path: |_, p| match p {
                [c, ..] if ["actix_web", "reqwest", "redis", "redb"].contains(&c.as_str()) => {
                    Some(format!("the crate {c}"))
                }
                _ => None,
            },
            ident: no_ident,
        },
    ]
}

/// Every breach of `rule` in `sources`, one line of message each.
fn breaches(rule: &Rule, sources: &[Source]) -> Vec<String> {
    let mut out = Vec::new();
    for src in sources.iter().filter(|s| (rule.applies)(&s.rel)) {
        // Reasons by line, so a line breaking the rule twice is one message.
        let mut found: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for (p, line) in &src.paths {
            if let Some(why) = (rule.path)(src, p) {
                let why = format!("{why} (`{}`)", p.join("::"));
                found.entry(*line).or_default().insert(why);
            }
        }
        for (tok, line) in &src.toks {
            if let Tok::Ident(id) = tok
                && let Some(why) = (rule.ident)(src, id)
            {
                found.entry(*line).or_default().insert(why);
            }
        }
        for (line, whys) in found {
            let whys: Vec<String> = whys.into_iter().collect();
            out.push(format!(
                "{}:{line}: {}: {}",
                src.rel,
                whys.join(", "),
                src.line(line)
            ));
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file without its unit tests (the `#[cfg(test)] mod …` that closes it):
/// the map is about what the service runs. A unit test may wire an adapter
/// to the code under test, as `startup` does (the token cache's tests run
/// over the embedded store).
fn production_code(text: &str) -> &str {
    text.find("\n#[cfg(test)]\nmod ")
        .map_or(text, |end| &text[..end])
}

/// The crate's sources, read once. `ARCHITECTURE_SRC_ROOT` points the test at
/// another checkout's crate root (to see which rules an older tree breaks).
fn sources() -> &'static [Source] {
    static SOURCES: OnceLock<Vec<Source>> = OnceLock::new();
    SOURCES.get_or_init(|| {
        let root = std::env::var_os("ARCHITECTURE_SRC_ROOT")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let mut files = Vec::new();
        rs_files(&root.join("src"), &mut files);
        files.sort();
        assert!(files.len() > 10, "no sources under {}", root.display());
        files
            .iter()
            .map(|f| {
                let rel = f
                    .strip_prefix(&root)
                    .expect("under the root")
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{rel}: {e}"));
                Source::parse(&rel, production_code(&text))
            })
            .collect()
    })
}

fn check(name_starts: &str) {
    let rule = rules()
        .into_iter()
        .find(|r| r.name.starts_with(name_starts))
        .expect("a rule of that name");
    let found = breaches(&rule, sources());
    assert!(found.is_empty(), "{}:\n  {}", rule.name, found.join("\n  "));
}

#[test]
fn domain_is_pure() {
    check("domain is pure");
}

#[test]
fn ports_name_only_domain_and_ports() {
    check("ports name only");
}

#[test]
fn config_does_not_import_auth() {
    check("config does not import auth");
}

#[test]
fn only_http_names_http_statuses() {
    check("only http");
}

#[test]
fn adapters_are_wired_only_in_startup() {
    check("adapters are wired");
}

#[test]
fn metrics_import_no_feature_module() {
    check("metrics are fed");
}

#[test]
fn service_knows_no_framework_or_database() {
    check("service does not import");
}

/// The checker against small sources: each rule fires where it should, and
/// comments, strings and look-alikes stay quiet.
mod checker {
    use super::*;

    /// The breaches of the rule named `rule` in one synthetic file.
    fn breaches_in(rule: &str, rel: &str, text: &str) -> Vec<String> {
        let rule = rules()
            .into_iter()
            .find(|r| r.name.starts_with(rule))
            .expect("a rule of that name");
        breaches(&rule, &[Source::parse(rel, text)])
    }

    #[test]
    fn unit_tests_are_not_production_code() {
        let text =
            "use crate::domain::X;\n#[cfg(test)]\nmod tests {\n    use crate::store::Y;\n}\n";
        assert_eq!(production_code(text), "use crate::domain::X;");
        assert!(breaches_in("adapters", "src/service/a.rs", production_code(text)).is_empty());
        assert!(!breaches_in("adapters", "src/service/a.rs", text).is_empty());
    }

    #[test]
    fn use_trees_are_flattened_and_resolved() {
        let src = Source::parse(
            "src/http/x/y.rs",
            "mod z;\nuse crate::{a::{b, c as d}, e::{self, *}};\nuse super::super::f::G;\nuse self::h;\nfn k() { z::w(); ::std::mem::drop(1); }",
        );
        let got: Vec<String> = src.paths.iter().map(|(p, _)| p.join("::")).collect();
        assert_eq!(
            got,
            [
                "crate::a::b",
                "crate::a::c",
                "crate::e",
                "crate::e::*",
                "crate::http::f::G",
                "crate::http::x::y::h",
                "crate::http::x::y::z::w",
                "std::mem::drop",
            ]
        );
    }

    #[test]
    fn inline_modules_shift_super() {
        let src = Source::parse(
            "src/domain/mod.rs",
            "mod tests {\n    use super::*;\n    mod deeper { use super::super::Bits; }\n    use super::super::store::X;\n}\nuse self::ids::Jti;",
        );
        let got: Vec<String> = src
            .paths
            .iter()
            .map(|(p, line)| format!("{line}:{}", p.join("::")))
            .collect();
        assert_eq!(
            got,
            [
                "2:crate::domain::*",
                "3:crate::domain::Bits",
                "4:crate::store::X",
                "6:crate::domain::ids::Jti",
            ]
        );
    }

    #[test]
    fn comments_and_literals_are_not_code() {
        let text = r##"//! Uses crate::store and tokio.
/* crate::store::X /* nested */ StatusCode */
/// [`crate::publish`]
fn f() -> &'static str {
    let _c = '"';
    let _q = '\'';
    let _s = "crate::store::X \" StatusCode";
    let _r = r#"crate::publish "quoted" "#;
    let _b = b"tokio::spawn";
    "std::fs::read"
}
"##;
        for rule in [
            "domain is pure",
            "adapters are wired",
            "only http",
            "service does not import",
        ] {
            assert_eq!(
                breaches_in(rule, "src/service/x.rs", text),
                Vec::<String>::new(),
                "{rule}"
            );
            assert_eq!(
                breaches_in(rule, "src/domain/x.rs", text),
                Vec::<String>::new(),
                "{rule}"
            );
        }
        // Code after all those literals is still seen, on its own line.
        let after = format!("{text}use crate::store::Y;\n");
        let got = breaches_in("adapters are wired", "src/service/x.rs", &after);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            got[0].starts_with("src/service/x.rs:12: crate::store"),
            "{got:?}"
        );
    }

    #[test]
    fn domain_rule_fires_on_other_modules_and_io() {
        for (text, why) in [
            ("use crate::config::Settings;", "crate::config"),
            ("use super::super::super::store::X;", "crate::store"),
            ("fn f() { crate::auth::check(); }", "crate::auth"),
            ("use tokio::sync::Mutex;", "the I/O crate tokio"),
            ("#[tokio::test]\nasync fn t() {}", "the I/O crate tokio"),
            ("use std::{fs, io};", "std::fs"),
            (
                "fn f() { std::net::TcpStream::connect(\"x\"); }",
                "std::net",
            ),
            ("use redb::Database;", "the I/O crate redb"),
        ] {
            let got = breaches_in("domain is pure", "src/domain/sub/x.rs", text);
            assert_eq!(got.len(), 1, "{text}: {got:?}");
            assert!(got[0].contains(why), "{text}: {got:?}");
        }
        for ok in [
            "use super::ids::Jti;",
            "use crate::domain::Bits;",
            "use std::io;",
        ] {
            assert_eq!(
                breaches_in("domain is pure", "src/domain/sub/x.rs", ok),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn each_rule_fires_where_it_should_and_not_elsewhere() {
        let cases = [
            (
                "ports name only",
                "src/ports/x.rs",
                "use crate::store::any::AnyStore;",
            ),
            (
                "ports name only",
                "src/ports/x.rs",
                "use super::super::auth::IssueClaims;",
            ),
            (
                "config does not import auth",
                "src/config.rs",
                "use crate::auth::keys::KeySet;",
            ),
            (
                "config does not import auth",
                "src/config/x.rs",
                "fn f() { crate::auth::keys::KeySet::parse(); }",
            ),
            (
                "only http",
                "src/auth/error.rs",
                "use actix_web::http::StatusCode;",
            ),
            (
                "only http",
                "src/service.rs",
                "fn f() -> HttpResponse { todo!() }",
            ),
            (
                "only http",
                "src/publish/x.rs",
                "use actix_web::http::header;",
            ),
            (
                "adapters are wired",
                "src/http/handlers.rs",
                "use crate::publish::cache::CacheError;",
            ),
            (
                "adapters are wired",
                "src/http/state.rs",
                "fn f() { crate::store::any::AnyStore::x(); }",
            ),
            (
                "adapters are wired",
                "src/service/issue.rs",
                "use crate::store::EmbeddedStore;",
            ),
            (
                "adapters are wired",
                "src/service/dispatch.rs",
                "use crate::webhook::HttpSender;",
            ),
            (
                "adapters are wired",
                "src/ports/webhook.rs",
                "fn f() { super::super::webhook::HttpSender::new(); }",
            ),
            (
                "metrics are fed",
                "src/metrics.rs",
                "use crate::publish::cache::CacheOutcome;",
            ),
            (
                "metrics are fed",
                "src/metrics.rs",
                "fn f() { crate::auth::jwks::fetch_counts(); }",
            ),
            (
                "service does not import",
                "src/service.rs",
                "use actix_web::web::Bytes;",
            ),
            (
                "service does not import",
                "src/service/x.rs",
                "use redis::aio::ConnectionManager;",
            ),
            (
                "service does not import",
                "src/service/dispatch.rs",
                "fn f() { reqwest::Client::new(); }",
            ),
        ];
        for (rule, rel, text) in cases {
            let got = breaches_in(rule, rel, text);
            assert_eq!(got.len(), 1, "{rule} on {rel}: {text}: {got:?}");
            assert!(got[0].starts_with(&format!("{rel}:1: ")), "{got:?}");
            assert!(
                got[0].ends_with(text),
                "the message quotes the line: {got:?}"
            );
        }
        let allowed = [
            (
                "ports name only",
                "src/ports/x.rs",
                "use crate::domain::Jti; use super::store::Store;",
            ),
            (
                "config does not import auth",
                "src/config.rs",
                "use crate::jwk::KeySet;",
            ),
            (
                "only http",
                "src/http/error.rs",
                "use actix_web::http::StatusCode;",
            ),
            ("only http", "src/client.rs", "let s: StatusCode;"),
            (
                "only http",
                "src/startup.rs",
                "use actix_web::http::KeepAlive;",
            ),
            (
                "adapters are wired",
                "src/startup.rs",
                "use crate::store::any::AnyStore;",
            ),
            (
                "adapters are wired",
                "src/startup.rs",
                "use crate::webhook::HttpSender;",
            ),
            (
                "adapters are wired",
                "src/http/x.rs",
                "use crate::service::Service;",
            ),
            (
                "metrics are fed",
                "src/metrics.rs",
                "use crate::domain::ListFormat;",
            ),
            (
                "service does not import",
                "src/service.rs",
                "use crate::ports::Store;",
            ),
            (
                "service does not import",
                "src/service/dispatch.rs",
                "use tokio::task::JoinSet;",
            ),
        ];
        for (rule, rel, text) in allowed {
            assert_eq!(
                breaches_in(rule, rel, text),
                Vec::<String>::new(),
                "{rule} on {rel}"
            );
        }
        // A status name in startup is still one.
        assert_eq!(
            breaches_in(
                "only http",
                "src/startup.rs",
                "use actix_web::http::StatusCode;"
            )
            .len(),
            1
        );
    }
}
