//! The `statuslist` command line: a thin shell over the library.
//!
//! Each subcommand parses its arguments, calls the library and reports. Errors
//! are printed as one line, the `anyhow` chain joined by colons, with exit
//! status 1: no backtrace, even with `RUST_BACKTRACE` set, since the reader is
//! an operator and not a developer.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use statuslist::client::{self, Issuer};
use statuslist::http::handlers::unix_now;
use statuslist::publish::keys::{ServiceKey, generate_into_dir};

/// Credential status service: GOV.UK CRS API, IETF Token Status List and W3C
/// Bitstring Status List.
#[derive(Debug, Parser)]
#[command(name = "statuslist", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default when no command is given).
    ///
    /// With no configuration file (neither --config nor STATUSLIST_CONFIG) it
    /// starts in development mode: embedded store and a signing key kept
    /// under ./data, and demo clients whose key ships in examples/.
    Serve {
        /// The TOML configuration file; `STATUSLIST_*` variables override it.
        #[arg(long, value_name = "FILE", env = "STATUSLIST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Generate a new ES256 (P-256) service signing key.
    ///
    /// Writes the key as PKCS#8 PEM to DIR/<kid>.pem (mode 0600 on unix),
    /// creating DIR if needed, and prints the key's kid (its RFC 7638 JWK
    /// thumbprint) on stdout. Naming files by kid lets one directory hold the
    /// current and the previous keys during a rotation. An existing file is
    /// never overwritten.
    ///
    /// With --client NAME it makes a client key pair instead: DIR/NAME.key.pem
    /// (PKCS#8, the private key the client signs requests with) and
    /// DIR/NAME.jwks.json (its public JWKS), and prints the [[clients]] entry
    /// that registers it.
    Keygen {
        /// Directory to write the key file(s) into.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Make a client key pair for the client with this id.
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
    },
    /// Ask the service for a status index for a new credential (POST /issue).
    ///
    /// Signs a request JWT (fresh jti and iat) with the client's key and
    /// prints the index and the list URI. With --ref and/or --count it asks
    /// for a batch: COUNT distinct indexes, bound to the issuer's reference
    /// REF, each printed with its list URI.
    Issue {
        #[command(flatten)]
        who: Who,
        /// How long the credential is valid (statusExpiry = now + this),
        /// e.g. 30d, 12h, 1y.
        #[arg(long, default_value = "30d", value_parser = humantime::parse_duration)]
        expiry: std::time::Duration,
        /// Bind the entries to this reference of yours (1 to 128 printable
        /// ASCII characters); later requests may add to it, and
        /// revoke/suspend/unsuspend --ref change them all.
        #[arg(long = "ref", value_name = "REF")]
        issuance_ref: Option<String>,
        /// How many indexes (1 to the service's lists.max_batch).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        count: Option<u32>,
        /// Reuse this jti (a lowercase UUID) to retry a request idempotently.
        #[arg(long)]
        jti: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a credential's status entry (POST /revoke), or every entry
    /// bound to a reference (--ref). Revocation is final.
    Revoke(Change),
    /// Suspend a credential's status entry (POST /suspend), or every entry
    /// bound to a reference (--ref).
    Suspend(Change),
    /// Lift a suspension (POST /unsuspend), of one entry or of every entry
    /// bound to a reference (--ref).
    Unsuspend(Change),
    /// List your entries (GET /entries), newest change first: a table, or
    /// JSON with --json.
    Entries {
        #[command(flatten)]
        who: Who,
        /// The page (from 1).
        #[arg(long, default_value_t = 1)]
        page: u64,
        /// Entries per page (1 to 100).
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Only these statuses, comma-separated: VALID, INVALID, SUSPENDED.
        #[arg(long)]
        status: Option<String>,
        /// Only the entries bound to this reference.
        #[arg(long = "ref", value_name = "REF")]
        issuance_ref: Option<String>,
        /// Only the entries of this list.
        #[arg(long)]
        uri: Option<String>,
        /// Only entries updated at or after this time (unix seconds).
        #[arg(long)]
        since: Option<u64>,
        /// Only entries updated at or before this time (unix seconds).
        #[arg(long)]
        until: Option<u64>,
        /// `desc` (newest first, the default) or `asc`.
        #[arg(long)]
        sort: Option<String>,
        /// The service's public base URL, which the request is addressed to
        /// (its `aud`); default: --url.
        #[arg(long)]
        aud: Option<String>,
        /// Print the answer as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Your webhook's dead-lettered events: list them, send them again.
    Webhooks {
        #[command(subcommand)]
        command: Webhooks,
    },
    /// Check a credential's status: fetch the list, verify it, read IDX.
    ///
    /// Works against any CRS-compatible service. The list's signature is
    /// checked against the service's JWKS, its typ, exp and sub (or id) too.
    /// Exit status: 0 valid, 1 not valid (revoked, suspended, other), 2 error.
    Check {
        /// The list URI (from `issue`, or a credential's status claim).
        uri: String,
        /// The index in the list.
        idx: u64,
        /// The JWKS to verify with (default: the URI's origin +
        /// /.well-known/jwks.json).
        #[arg(long)]
        jwks: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Ask for a token list as its CWT (application/statuslist+cwt)
        /// instead of its JWT.
        #[arg(long)]
        cwt: bool,
    },
}

/// `statuslist webhooks …`.
#[derive(Debug, Subcommand)]
enum Webhooks {
    /// List the events your webhook was not sent successfully before their
    /// maximum age (GET /webhooks/failed): a table, or JSON with --json.
    List {
        #[command(flatten)]
        who: Who,
        /// The dead-lettered events (the only listing there is; required so
        /// that the command says what it shows).
        #[arg(long, required = true)]
        failed: bool,
        /// The service's public base URL, which the requests are addressed
        /// to (their `aud`); default: --url.
        #[arg(long)]
        aud: Option<String>,
        /// Print the answer as JSON (`{"events": [...]}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send dead-lettered events again (POST /webhooks/redeliver): each ID
    /// that is one of your dead events is queued for delivery as if just
    /// recorded; the others are reported unknown.
    Redeliver {
        #[command(flatten)]
        who: Who,
        /// The event ids (from `webhooks list --failed`).
        #[arg(required = true, value_name = "ID")]
        ids: Vec<String>,
        /// The service's public base URL, which the requests are addressed
        /// to (their `aud`); default: --url.
        #[arg(long)]
        aud: Option<String>,
        /// Print the answer as JSON (`{"redelivered": [...], "unknown":
        /// [...]}`) instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The arguments of a status change: who, which entries, and how.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["uri", "issuance_ref"])))]
struct Change {
    #[command(flatten)]
    who: Who,
    /// The list URI the index belongs to (from `issue`).
    #[arg(long, requires = "idx", conflicts_with = "issuance_ref")]
    uri: Option<String>,
    /// The index in that list.
    #[arg(long, requires = "uri", conflicts_with = "issuance_ref")]
    idx: Option<u64>,
    /// Every entry bound to this reference (from `issue --ref`).
    #[arg(long = "ref", value_name = "REF")]
    issuance_ref: Option<String>,
    /// Reuse this jti (a lowercase UUID) to retry a request idempotently.
    #[arg(long)]
    jti: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Who signs a request, and where it goes.
#[derive(Debug, clap::Args)]
struct Who {
    /// The client id (the JWT iss).
    #[arg(long, required_unless_present = "demo")]
    client: Option<String>,
    /// The client's private key, PKCS#8 PEM (from `keygen --client`).
    #[arg(long, value_name = "FILE", required_unless_present = "demo")]
    key: Option<PathBuf>,
    /// Use the development-mode demo client and its shipped key.
    #[arg(long, conflicts_with_all = ["client", "key"])]
    demo: bool,
    /// The service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "STATUSLIST_URL")]
    url: String,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<NotValid>() => ExitCode::from(1),
        Err(err) => {
            eprintln!("error: {err:#}");
            // `check` promises 0 valid, 1 not valid, 2 error.
            if err.is::<CheckFailed>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // No subcommand: run the service, as `cargo run --release` promises.
        None => serve(std::env::var_os("STATUSLIST_CONFIG").map(PathBuf::from)),
        Some(Command::Serve { config }) => serve(config),
        Some(Command::Keygen { out, client: None }) => keygen(&out),
        Some(Command::Keygen {
            out,
            client: Some(name),
        }) => keygen_client(&out, &name),
        Some(Command::Issue {
            who,
            expiry,
            issuance_ref,
            count,
            jti,
            json,
        }) => {
            let batch = client::Batch {
                issuance_ref: issuance_ref.as_deref(),
                count,
            };
            client_runtime()?.block_on(issue(who, expiry, batch, jti, json))
        }
        Some(Command::Revoke(args)) => client_runtime()?.block_on(change(Op::Revoke, args)),
        Some(Command::Suspend(args)) => client_runtime()?.block_on(change(Op::Suspend, args)),
        Some(Command::Unsuspend(args)) => client_runtime()?.block_on(change(Op::Unsuspend, args)),
        Some(Command::Entries {
            who,
            page,
            limit,
            status,
            issuance_ref,
            uri,
            since,
            until,
            sort,
            aud,
            json,
        }) => {
            let mut params = vec![("page", page.to_string()), ("limit", limit.to_string())];
            let optional = [
                ("status", status),
                ("ref", issuance_ref),
                ("uri", uri),
                ("updatedSince", since.map(|t| t.to_string())),
                ("updatedUntil", until.map(|t| t.to_string())),
                ("sort", sort),
            ];
            params.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
            client_runtime()?.block_on(entries(who, aud, params, json))
        }
        Some(Command::Webhooks {
            command:
                Webhooks::List {
                    who,
                    failed: _,
                    aud,
                    json,
                },
        }) => client_runtime()?.block_on(webhooks_failed(who, aud, json)),
        Some(Command::Webhooks {
            command:
                Webhooks::Redeliver {
                    who,
                    ids,
                    aud,
                    json,
                },
        }) => client_runtime()?.block_on(webhooks_redeliver(who, ids, aud, json)),
        Some(Command::Check {
            uri,
            idx,
            jwks,
            json,
            cwt,
        }) => {
            let valid = client_runtime()?.block_on(check(uri, idx, jwks, json, cwt))?;
            if valid { Ok(()) } else { Err(NotValid.into()) }
        }
    }
}

/// `check` found the credential not valid: exit status 1, no error text.
#[derive(Debug, thiserror::Error)]
#[error("not valid")]
struct NotValid;

fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn issuer(who: &Who) -> anyhow::Result<Issuer> {
    if who.demo {
        let key = ServiceKey::from_pkcs8_pem(statuslist::config::DEMO_CLIENT_KEY_PEM)
            .context("the shipped demo key does not load")?;
        return Ok(Issuer::new(statuslist::config::DEMO_CLIENT, key));
    }
    let (Some(client), Some(path)) = (&who.client, &who.key) else {
        anyhow::bail!("give --client and --key, or --demo");
    };
    let key = ServiceKey::load_pem(path)
        .with_context(|| format!("cannot use the key file {}", path.display()))?;
    Ok(Issuer::new(client.clone(), key))
}

fn jti_or_new(jti: Option<String>) -> anyhow::Result<String> {
    match jti {
        Some(j) if statuslist::domain::claims::is_lowercase_uuid(&j) => Ok(j),
        Some(j) => anyhow::bail!("--jti '{j}' is not a lowercase UUID"),
        None => Ok(uuid::Uuid::new_v4().to_string()),
    }
}

fn endpoint(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

async fn issue(
    who: Who,
    expiry: std::time::Duration,
    batch: client::Batch<'_>,
    jti: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let issuer = issuer(&who)?;
    let jti = jti_or_new(jti)?;
    let now = unix_now();
    let jwt = issuer.batch_request(&jti, now, now.saturating_add(expiry.as_secs()), batch)?;
    let http = client::http_client()?;
    let answer = client::post_jwt(&http, &endpoint(&who.url, "/issue"), jwt).await?;
    if json {
        let mut answer = answer;
        if let Some(map) = answer.as_object_mut() {
            map.insert("jti".into(), jti.into());
        }
        println!("{answer}");
        return Ok(());
    }
    match answer["entries"].as_array() {
        // A batch: one line per entry.
        Some(entries) => {
            if let Some(r) = answer["ref"].as_str() {
                println!("ref {r}");
            }
            for e in entries {
                println!(
                    "idx {} uri {}",
                    e["idx"],
                    e["uri"].as_str().unwrap_or_default()
                );
            }
        }
        None => {
            println!("idx {}", answer["idx"]);
            println!("uri {}", answer["uri"].as_str().unwrap_or_default());
        }
    }
    eprintln!("jti {jti} (pass --jti {jti} to retry this request idempotently)");
    Ok(())
}

/// The three status changes: their endpoint and the field their time is in.
#[derive(Debug, Clone, Copy)]
enum Op {
    Revoke,
    Suspend,
    Unsuspend,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Revoke => "/revoke",
            Op::Suspend => "/suspend",
            Op::Unsuspend => "/unsuspend",
        }
    }

    fn time_field(self) -> &'static str {
        match self {
            Op::Revoke => "revokedAt",
            Op::Suspend => "suspendedAt",
            Op::Unsuspend => "unsuspendedAt",
        }
    }
}

async fn change(op: Op, args: Change) -> anyhow::Result<()> {
    let issuer = issuer(&args.who)?;
    let jti = jti_or_new(args.jti)?;
    let target = match (&args.issuance_ref, &args.uri, args.idx) {
        (Some(r), _, _) => client::ChangeTarget::Ref(r),
        (None, Some(uri), Some(idx)) => client::ChangeTarget::Entry { uri, idx },
        // clap requires --uri with --idx, or --ref.
        _ => anyhow::bail!("give --uri and --idx, or --ref"),
    };
    let jwt = issuer.change_request(&jti, unix_now(), &target)?;
    let http = client::http_client()?;
    let answer = client::post_jwt(&http, &endpoint(&args.who.url, op.path()), jwt).await?;
    if args.json {
        println!("{answer}");
        return Ok(());
    }
    let mut line = answer["message"].as_str().unwrap_or_default().to_owned();
    if let Some(n) = answer["entries"].as_u64() {
        line.push_str(&format!(": {n} entries changed"));
        if let Some(skipped) = answer["skipped"].as_u64().filter(|n| *n > 0) {
            line.push_str(&format!(
                ", {skipped} skipped (their status cannot change that way)"
            ));
        }
    }
    match answer.get(op.time_field()) {
        Some(at) => println!("{line} ({} {at})", op.time_field()),
        None => println!("{line}"),
    }
    Ok(())
}

/// A fresh single-use bearer token of `issuer` for the service whose
/// public base URL is `aud`.
fn bearer(issuer: &Issuer, aud: &str) -> anyhow::Result<String> {
    let jti = uuid::Uuid::new_v4().to_string();
    Ok(issuer.listing_token(&jti, unix_now(), aud.trim_end_matches('/'))?)
}

async fn entries(
    who: Who,
    aud: Option<String>,
    params: Vec<(&str, String)>,
    json: bool,
) -> anyhow::Result<()> {
    let issuer = issuer(&who)?;
    let aud = aud.unwrap_or_else(|| who.url.clone());
    let token = bearer(&issuer, &aud)?;
    let http = client::http_client()?;
    let answer = client::get_entries(&http, &who.url, &token, &params).await?;
    if json {
        println!("{answer}");
    } else {
        print!("{}", entries_table(&answer));
    }
    Ok(())
}

/// The events one `GET /webhooks/failed` page may hold.
const FAILED_PAGE: usize = 1000;

/// `webhooks list --failed`: every page of the client's dead letters, each
/// page with its own single-use token.
async fn webhooks_failed(who: Who, aud: Option<String>, json: bool) -> anyhow::Result<()> {
    let issuer = issuer(&who)?;
    let aud = aud.unwrap_or_else(|| who.url.clone());
    let http = client::http_client()?;
    let mut events: Vec<serde_json::Value> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut params = vec![("limit", FAILED_PAGE.to_string())];
        params.extend(after.take().map(|a| ("after", a)));
        let token = bearer(&issuer, &aud)?;
        let page = client::get_failed_webhooks(&http, &who.url, &token, &params).await?;
        let got = page["events"].as_array().cloned().unwrap_or_default();
        after = got.last().and_then(|e| e["id"].as_str()).map(str::to_owned);
        events.extend(got);
        if page["hasMore"] != serde_json::Value::Bool(true) || after.is_none() {
            break;
        }
    }
    if json {
        println!("{}", serde_json::json!({ "events": events }));
    } else {
        print!("{}", failed_table(&events));
    }
    Ok(())
}

/// `webhooks redeliver ID…`: in requests of at most 1,000 ids, each with its
/// own single-use token. Ids that are not event ids are refused before
/// anything is sent.
async fn webhooks_redeliver(
    who: Who,
    ids: Vec<String>,
    aud: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    if let Some(bad) = ids
        .iter()
        .find(|id| statuslist::domain::events::EventId::parse(id).is_err())
    {
        anyhow::bail!("'{bad}' is not an event id (32 lowercase hexadecimal characters)");
    }
    let issuer = issuer(&who)?;
    let aud = aud.unwrap_or_else(|| who.url.clone());
    let http = client::http_client()?;
    let (mut redelivered, mut unknown) = (Vec::new(), Vec::new());
    for chunk in ids.chunks(statuslist::service::MAX_IDS) {
        let token = bearer(&issuer, &aud)?;
        let answer = client::redeliver_webhooks(&http, &who.url, &token, chunk).await?;
        for (list, member) in [(&mut redelivered, "redelivered"), (&mut unknown, "unknown")] {
            list.extend(
                answer[member]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned)),
            );
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({ "redelivered": redelivered, "unknown": unknown })
        );
        return Ok(());
    }
    for id in &redelivered {
        println!("redelivered {id}");
    }
    for id in &unknown {
        println!("unknown {id} (not a dead-lettered event of this client)");
    }
    println!(
        "{} redelivered, {} unknown",
        redelivered.len(),
        unknown.len()
    );
    Ok(())
}

/// A unix time in seconds as RFC 3339 UTC, `-` when it is not one.
fn utc(v: &serde_json::Value) -> String {
    v.as_i64()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned())
}

/// Rows as aligned columns (two spaces apart), one row a line.
fn aligned<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The dead letters as a table, one event a line: what it was about (its
/// ref, or its entry), times in UTC, then a count.
fn failed_table(events: &[serde_json::Value]) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "TYPE".to_owned(),
        "ATTEMPTS".to_owned(),
        "DEAD AT".to_owned(),
        "ERROR".to_owned(),
        "ABOUT".to_owned(),
    ]];
    for e in events {
        let data = &e["event"]["data"];
        let issuance_ref = data["ref"].as_str().map(|r| format!("ref {r}"));
        let about = match (data["uri"].as_str(), data["entries"].as_array()) {
            (Some(uri), _) => [Some(format!("{uri} idx {}", data["idx"])), issuance_ref]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" "),
            (None, Some(entries)) => {
                let r = issuance_ref.unwrap_or_default();
                format!("{r} ({} entries)", entries.len()).trim().to_owned()
            }
            (None, None) => issuance_ref.unwrap_or_else(|| "-".to_owned()),
        };
        rows.push([
            e["id"].as_str().unwrap_or("-").to_owned(),
            e["type"].as_str().unwrap_or("-").to_owned(),
            e["attempts"].to_string(),
            utc(&e["deadAt"]),
            e["error"].as_str().unwrap_or("-").to_owned(),
            about,
        ]);
    }
    let mut out = aligned(&rows);
    out.push_str(&match events.len() {
        0 => "no failed events\n".to_owned(),
        1 => "1 failed event\n".to_owned(),
        n => format!("{n} failed events\n"),
    });
    out
}

/// The `entries` answer as a table, one entry a line, times in UTC.
fn entries_table(answer: &serde_json::Value) -> String {
    let time = utc;
    let mut rows = vec![[
        "IDX".to_owned(),
        "STATUS".to_owned(),
        "UPDATED".to_owned(),
        "CREATED".to_owned(),
        "EXPIRES".to_owned(),
        "REF".to_owned(),
        "URI".to_owned(),
    ]];
    let items = answer["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for item in items {
        rows.push([
            item["idx"].to_string(),
            item["status"].as_str().unwrap_or("-").to_owned(),
            time(&item["updatedAt"]),
            time(&item["createdAt"]),
            time(&item["statusExpiry"]),
            item["ref"].as_str().unwrap_or("-").to_owned(),
            item["uri"].as_str().unwrap_or("-").to_owned(),
        ]);
    }
    let mut out = aligned(&rows);
    let p = &answer["pagination"];
    out.push_str(&format!(
        "page {} of {}, {} entries\n",
        p["currentPage"], p["totalPages"], p["totalItems"]
    ));
    out
}

async fn check(
    uri: String,
    idx: u64,
    jwks: Option<String>,
    json: bool,
    cwt: bool,
) -> anyhow::Result<bool> {
    let http = client::http_client()?;
    let report = client::check(&http, &uri, idx, jwks.as_deref(), cwt, unix_now())
        .await
        .map_err(CheckFailed)?;
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!("{}", report.status);
        println!(
            "list {} ({}), index {}, signed by {}, iat {}, exp {}",
            report.uri,
            report.format,
            report.idx,
            report.kid,
            report.iat.map_or("-".into(), |t| t.to_string()),
            report.exp.map_or("-".into(), |t| t.to_string()),
        );
    }
    Ok(report.is_valid())
}

/// `check` could not decide: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct CheckFailed(client::ClientError);

fn serve(config: Option<PathBuf>) -> anyhow::Result<()> {
    statuslist::telemetry::init();
    let development = config.is_none();
    let settings = match &config {
        Some(path) => statuslist::config::Settings::load(path)
            .with_context(|| format!("invalid configuration in {}", path.display()))?,
        None => statuslist::config::Settings::development()
            .context("invalid development configuration")?,
    };
    actix_web::rt::System::new().block_on(async move {
        let app = statuslist::startup::Application::build(settings.clone(), config)
            .await
            .context("cannot start")?;
        if development {
            print_banner(&settings, app.port());
        }
        tracing::info!(port = app.port(), "listening");
        app.run_until_stopped().await.context("server failed")
    })
}

/// Says loudly that this is development mode, where it listens and how to
/// try it.
fn print_banner(settings: &statuslist::config::Settings, port: u16) {
    eprintln!("{}", banner(settings, port));
}

/// The development banner. The store is shown through its redacting
/// `Display`: a Redis URL given by `STATUSLIST_STORE__URL` may carry a
/// password.
fn banner(settings: &statuslist::config::Settings, port: u16) -> String {
    let base = &settings.public_base_url;
    format!(
        "\n  statuslist is running in DEVELOPMENT MODE (no --config given)\n\
         \n  listening on   http://{ip}:{port}\
         \n  store          {store}\
         \n  signing key    {key}\
         \n  demo clients   '{demo}' (token lists, /t/) and '{demo_b}' (bitstring lists, /b/),\
         \n                 key examples/demo-client.key.pem: NEVER use it in production\
         \n\n  try it:\
         \n    curl {base}/health/ready\
         \n    curl {base}/.well-known/jwks.json\
         \n    statuslist issue --demo --url {base}\
         \n    statuslist check <uri> <idx>\
         \n\n  for production, pass --config FILE (see README.md)\n",
        ip = settings.listen.ip(),
        store = settings.store.kind,
        key = settings.signing.key_file.display(),
        demo = statuslist::config::DEMO_CLIENT,
        demo_b = statuslist::config::DEMO_BITSTRING_CLIENT,
    )
}

fn keygen_client(dir: &Path, name: &str) -> anyhow::Result<()> {
    let id =
        statuslist::domain::ClientId::parse(name).with_context(|| format!("--client '{name}'"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key_path = dir.join(format!("{id}.key.pem"));
    let jwks_path = dir.join(format!("{id}.jwks.json"));
    for path in [&key_path, &jwks_path] {
        if path.exists() {
            anyhow::bail!("{} exists already; not overwriting it", path.display());
        }
    }
    let key = ServiceKey::generate();
    key.save_pem(&key_path)
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    let jwks = serde_json::json!({ "keys": [key.public_jwk()] });
    let jwks_text = serde_json::to_string_pretty(&jwks).context("cannot encode the JWKS")?;
    std::fs::write(&jwks_path, format!("{jwks_text}\n"))
        .with_context(|| format!("cannot write {}", jwks_path.display()))?;
    eprintln!(
        "wrote {} (private: keep it with the client)",
        key_path.display()
    );
    eprintln!(
        "wrote {} (public: serve it at the client's jwks_uri)",
        jwks_path.display()
    );
    println!("# add to the service's configuration:");
    println!("[[clients]]");
    println!("id = \"{id}\"");
    println!("format = \"token\"  # or \"bitstring\"");
    println!(
        "jwks_file = \"{}\"  # or jwks_uri = \"https://…\"",
        jwks_path.display()
    );
    Ok(())
}

fn keygen(dir: &Path) -> anyhow::Result<()> {
    let (key, path) = generate_into_dir(dir).context("cannot generate a service key")?;
    eprintln!("wrote {}", path.display());
    println!("{}", key.kid());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_print_as_an_aligned_table() {
        let answer = serde_json::json!({
            "items": [
                {"idx": 81913, "uri": "http://h/t/C643DA8A9FA3", "ref": "order-7",
                 "status": "SUSPENDED", "createdAt": 1_765_000_000, "updatedAt": 1_765_000_060,
                 "statusExpiry": 1_767_592_000},
                {"idx": 5, "uri": "http://h/t/C643DA8A9FA3", "status": "VALID",
                 "createdAt": 1_765_000_000, "updatedAt": 1_765_000_000,
                 "statusExpiry": 1_767_592_000}
            ],
            "pagination": {"currentPage": 1, "totalItems": 12, "totalPages": 6, "limit": 2,
                           "hasPrevious": false, "hasNext": true}
        });
        let table = entries_table(&answer);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("IDX    STATUS     UPDATED"), "{table}");
        assert!(
            lines[1].starts_with("81913  SUSPENDED  2025-12-06T05:47:40Z  2025-12-06T05:46:40Z"),
            "{table}"
        );
        assert!(
            lines[2].contains("VALID") && lines[2].contains("  -  "),
            "{table}"
        );
        assert_eq!(lines[3], "page 1 of 6, 12 entries");
        // The URI column lines up.
        let at = |l: &str| l.find("http://").unwrap();
        assert_eq!(at(lines[1]), at(lines[2]));
    }

    #[test]
    fn a_change_names_one_entry_or_a_ref() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(
            parse(&[
                "statuslist",
                "suspend",
                "--demo",
                "--uri",
                "u",
                "--idx",
                "3"
            ])
            .is_ok()
        );
        assert!(parse(&["statuslist", "unsuspend", "--demo", "--ref", "r"]).is_ok());
        for bad in [
            &["statuslist", "revoke", "--demo"][..],
            &["statuslist", "revoke", "--demo", "--uri", "u"],
            &["statuslist", "revoke", "--demo", "--idx", "3"],
            &[
                "statuslist",
                "revoke",
                "--demo",
                "--ref",
                "r",
                "--uri",
                "u",
                "--idx",
                "3",
            ],
            &["statuslist", "issue", "--demo", "--count", "0"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn failed_events_print_as_an_aligned_table() {
        let events = [
            serde_json::json!({"id": "0000019ae1b2c3d4a1b2c3d4e5f60000", "type": "entry.revoked",
                "attempts": 17, "deadAt": 1_765_000_000, "error": "HTTP 503",
                "event": {"data": {"uri": "http://h/t/C643DA8A9FA3", "idx": 7,
                                   "ref": "order-7", "status": "INVALID"}}}),
            serde_json::json!({"id": "0000019ae1b2c3d4a1b2c3d4e5f60001", "type": "entries.issued",
                "attempts": 3, "deadAt": 1_765_000_060, "error": "connection refused",
                "event": {"data": {"ref": "order-8", "status": "VALID",
                                   "entries": [{"idx": 1, "uri": "u"}, {"idx": 2, "uri": "u"}]}}}),
        ];
        let table = failed_table(&events);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(
            lines[0]
                .starts_with("ID                                TYPE            ATTEMPTS  DEAD AT"),
            "{table}"
        );
        assert!(
            lines[1].ends_with("2025-12-06T05:46:40Z  HTTP 503            http://h/t/C643DA8A9FA3 idx 7 ref order-7"),
            "{table}"
        );
        assert!(lines[2].ends_with("ref order-8 (2 entries)"), "{table}");
        assert_eq!(lines[3], "2 failed events");
        assert_eq!(
            failed_table(&[]),
            "ID  TYPE  ATTEMPTS  DEAD AT  ERROR  ABOUT\nno failed events\n"
        );
    }

    #[test]
    fn webhook_commands_take_their_arguments() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        let id = "0000019ae1b2c3d4a1b2c3d4e5f60000";
        let ok: [&[&str]; 4] = [
            &["statuslist", "webhooks", "list", "--failed", "--demo"],
            &[
                "statuslist",
                "webhooks",
                "list",
                "--failed",
                "--demo",
                "--json",
                "--aud",
                "https://s",
            ],
            &["statuslist", "webhooks", "redeliver", "--demo", id],
            &[
                "statuslist",
                "webhooks",
                "redeliver",
                "--client",
                "c",
                "--key",
                "k.pem",
                id,
                id,
                "--json",
            ],
        ];
        for args in ok {
            assert!(parse(args).is_ok(), "{args:?}");
        }
        let bad: [&[&str]; 5] = [
            &["statuslist", "webhooks", "list", "--demo"],
            &["statuslist", "webhooks", "list", "--failed"],
            &["statuslist", "webhooks", "redeliver", "--demo"],
            &["statuslist", "webhooks", "redeliver", "--client", "c", id],
            &["statuslist", "webhooks", "send", "--demo", id],
        ];
        for args in bad {
            assert!(parse(args).is_err(), "{args:?}");
        }
        match parse(&["statuslist", "webhooks", "redeliver", "--demo", id, "x"]) {
            Ok(Cli {
                command:
                    Some(Command::Webhooks {
                        command: Webhooks::Redeliver { ids, .. },
                    }),
            }) => assert_eq!(ids, [id, "x"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redeliver_refuses_a_malformed_id_before_sending() {
        let who = Who {
            client: None,
            key: None,
            demo: true,
            // Nothing listens there: the error must come before any call.
            url: "http://127.0.0.1:9".into(),
        };
        let err = client_runtime()
            .unwrap()
            .block_on(webhooks_redeliver(who, vec!["ABC".into()], None, false))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "'ABC' is not an event id (32 lowercase hexadecimal characters)"
        );
    }

    #[test]
    fn the_banner_hides_a_redis_password() {
        let settings = statuslist::config::Settings::from_toml_str(
            "[store]\nurl = \"redis://:s3cret@cache.internal:6379/0\"\n",
        )
        .unwrap();
        let text = banner(&settings, 8080);
        assert!(!text.contains("s3cret"), "{text}");
        assert!(
            text.contains("store          redis://:***@cache.internal:6379/0"),
            "{text}"
        );
        assert!(text.contains("DEVELOPMENT MODE"), "{text}");
    }
}
