//! The issuer's webhook use cases: the client's dead-lettered events
//! (`GET /webhooks/failed`) and their redelivery (`POST /webhooks/redeliver`).
//!
//! Both authenticate as `GET /entries` does: a single-use listing JWT whose
//! `jti` is recorded through [`Store::claim_jti`]. The request is read first
//! (a bad query or body is refused as such, and does not use up the JWT);
//! then a client with no webhook configured, which has no events to list or
//! send, gets [`ServiceError::NoWebhook`] (its JWT is not used up either);
//! then the jti is claimed, then the outbox is asked.

use std::collections::HashSet;

use super::{Service, ServiceError};
use crate::auth::ListingClaims;
use crate::domain::QueryError;
use crate::domain::events::EventId;
use crate::ports::{DeadLetter, Outbox, Store};

/// The most ids one redelivery may name, and the most events one page of
/// the failed listing may hold.
pub const MAX_IDS: usize = 1000;

/// The page size of the failed listing when the query gives no `limit`.
pub const DEFAULT_FAILED_LIMIT: usize = 100;

/// One dead-lettered event, as `GET /webhooks/failed` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedEvent {
    /// The event's id (32 lowercase hex digits).
    pub id: String,
    /// The event's `type` (`entry.revoked`, …).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// How many delivery attempts were made.
    pub attempts: u32,
    /// When it was given up on (unix seconds).
    pub dead_at: u64,
    /// Why the last attempt failed (a status code or a transport error's
    /// kind; never a secret).
    pub error: String,
    /// The body the webhook was (and will again be) sent.
    pub event: serde_json::Value,
}

/// The answer to `GET /webhooks/failed`: one page of the client's dead
/// events, by id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedEvents {
    /// The page.
    pub events: Vec<FailedEvent>,
    /// True when more dead events follow the last one of the page (ask
    /// again with `after` = its id).
    pub has_more: bool,
}

/// The answer to `POST /webhooks/redeliver`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Redelivered {
    /// The ids that were dead letters of the client and are queued for
    /// delivery again, in the order given.
    pub redelivered: Vec<String>,
    /// The other ids (never recorded, delivered, still pending, or another
    /// client's), in the order given, each once.
    pub unknown: Vec<String>,
}

/// Why a redelivery request's body is refused. The texts name the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedeliveryError {
    /// Not a JSON object.
    #[error("Request body must be a JSON object: {{\"ids\": [\"<event id>\", …]}}")]
    NotAnObject,
    /// A member other than `ids`.
    #[error("Unknown member '{0}' in the request body")]
    Unknown(String),
    /// No `ids`.
    #[error("No ids in the request body: send {{\"ids\": [\"<event id>\", …]}}")]
    MissingIds,
    /// `ids` is not an array of 1 to [`MAX_IDS`] elements.
    #[error("'ids' must be an array of 1 to 1000 event ids")]
    BadIds,
    /// An element of `ids` is not an event id.
    #[error("'ids[{0}]' must be an event id: 32 lowercase hexadecimal characters")]
    BadId(usize),
}

/// How much of an unknown member's name an error text repeats.
const ECHO_MAX: usize = 64;

/// Reads the body of `POST /webhooks/redeliver`: `{"ids": [...]}` with 1 to
/// [`MAX_IDS`] event ids. Repeated ids are kept once, in the order of their
/// first occurrence.
///
/// # Errors
/// [`RedeliveryError`] naming the first fault.
pub fn parse_redelivery(body: &[u8]) -> Result<Vec<EventId>, RedeliveryError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| RedeliveryError::NotAnObject)?;
    let serde_json::Value::Object(members) = value else {
        return Err(RedeliveryError::NotAnObject);
    };
    if let Some(other) = members.keys().find(|k| *k != "ids") {
        let shown = other
            .chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(ECHO_MAX)
            .collect();
        return Err(RedeliveryError::Unknown(shown));
    }
    let ids = match members.get("ids") {
        None => return Err(RedeliveryError::MissingIds),
        Some(serde_json::Value::Array(ids)) if (1..=MAX_IDS).contains(&ids.len()) => ids,
        Some(_) => return Err(RedeliveryError::BadIds),
    };
    let mut seen = HashSet::with_capacity(ids.len());
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let id = id
            .as_str()
            .and_then(|s| EventId::parse(s).ok())
            .ok_or(RedeliveryError::BadId(i))?;
        if seen.insert(id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// The query of `GET /webhooks/failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedQuery {
    /// Only events with a greater id (the last id of the previous page).
    pub after: Option<EventId>,
    /// The most events listed, 1 to [`MAX_IDS`].
    pub limit: usize,
}

impl FailedQuery {
    /// Reads the query string (without the `?`): `after` (an event id) and
    /// `limit` (1 to 1000, default 100), both optional.
    ///
    /// # Errors
    /// [`QueryError`] naming the first parameter that is unknown, repeated
    /// or malformed.
    pub fn parse(query: &str) -> Result<Self, QueryError> {
        let mut after = None;
        let mut limit = None;
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*name {
                "after" => {
                    let id = EventId::parse(&value).map_err(|_| QueryError::Invalid {
                        param: "after",
                        expected: "must be an event id: 32 lowercase hexadecimal characters",
                    })?;
                    if after.replace(id).is_some() {
                        return Err(QueryError::Repeated("after"));
                    }
                }
                "limit" => {
                    let n = Some(&*value)
                        .filter(|v| !v.is_empty() && v.len() <= 4)
                        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse::<usize>().ok())
                        .filter(|n| (1..=MAX_IDS).contains(n))
                        .ok_or(QueryError::Invalid {
                            param: "limit",
                            expected: "must be a whole number from 1 to 1000",
                        })?;
                    if limit.replace(n).is_some() {
                        return Err(QueryError::Repeated("limit"));
                    }
                }
                other => {
                    let shown = other
                        .chars()
                        .filter(|c| c.is_ascii_graphic() || *c == ' ')
                        .take(ECHO_MAX)
                        .collect();
                    return Err(QueryError::Unknown(shown));
                }
            }
        }
        Ok(FailedQuery {
            after,
            limit: limit.unwrap_or(DEFAULT_FAILED_LIMIT),
        })
    }
}

impl<S: Store + Outbox> Service<S> {
    /// One page of the client's dead-lettered webhook events, by id, for a
    /// checked listing JWT and the request's raw query string.
    ///
    /// # Errors
    /// [`ServiceError::BadQuery`], [`ServiceError::NoWebhook`],
    /// [`ServiceError::JtiUsed`], or a store failure
    /// ([`ServiceError::Unavailable`], [`ServiceError::DeadLettersFailed`]).
    #[tracing::instrument(level = "debug", skip_all, fields(client = %claims.client()))]
    pub async fn dead_letters(
        &self,
        claims: &ListingClaims,
        query: &str,
        now: u64,
    ) -> Result<FailedEvents, ServiceError> {
        let query = FailedQuery::parse(query).map_err(ServiceError::BadQuery)?;
        if !self.has_webhook(claims.client()) {
            return Err(ServiceError::NoWebhook);
        }
        let failed = |e| ServiceError::from_store(e, ServiceError::DeadLettersFailed);
        self.claim_single_use(claims, now, failed).await?;
        let mut dead = self
            .store
            .dead_letters(claims.client())
            .await
            .map_err(failed)?;
        // The port lists them by id already; paging by `after` relies on it,
        // so it is not left to every adapter to get right.
        dead.sort_by_key(|d| d.event.id);
        let mut page = dead
            .into_iter()
            .filter(|d| query.after.is_none_or(|after| d.event.id > after));
        let events: Vec<FailedEvent> = page
            .by_ref()
            .take(query.limit)
            .map(|d| self.failed_event(d))
            .collect();
        Ok(FailedEvents {
            events,
            has_more: page.next().is_some(),
        })
    }

    /// Queues the client's dead events named by a redelivery request's body
    /// for delivery again, as if just recorded, for a checked listing JWT;
    /// wakes the dispatcher when any was.
    ///
    /// # Errors
    /// [`ServiceError::BadRedelivery`], [`ServiceError::NoWebhook`],
    /// [`ServiceError::JtiUsed`], or a store failure
    /// ([`ServiceError::Unavailable`], [`ServiceError::RedeliveryFailed`];
    /// nothing is redelivered then).
    #[tracing::instrument(level = "debug", skip_all, fields(client = %claims.client()))]
    pub async fn redeliver(
        &self,
        claims: &ListingClaims,
        body: &[u8],
        now: u64,
    ) -> Result<Redelivered, ServiceError> {
        let ids = parse_redelivery(body).map_err(ServiceError::BadRedelivery)?;
        if !self.has_webhook(claims.client()) {
            return Err(ServiceError::NoWebhook);
        }
        let failed = |e| ServiceError::from_store(e, ServiceError::RedeliveryFailed);
        self.claim_single_use(claims, now, failed).await?;
        let done = self
            .store
            .redeliver(claims.client(), &ids)
            .await
            .map_err(failed)?;
        let done_set: HashSet<EventId> = done.iter().copied().collect();
        let unknown = ids
            .iter()
            .filter(|id| !done_set.contains(id))
            .map(EventId::to_string)
            .collect();
        if !done.is_empty() {
            tracing::info!(
                client = %claims.client(),
                events = done.len(),
                "dead webhook events queued for redelivery"
            );
            self.events_recorded();
        }
        Ok(Redelivered {
            redelivered: done.iter().map(EventId::to_string).collect(),
            unknown,
        })
    }

    /// A dead letter as listed, with the body its webhook is sent.
    fn failed_event(&self, dead: DeadLetter) -> FailedEvent {
        FailedEvent {
            id: dead.event.id.to_string(),
            kind: dead.event.kind.name(),
            attempts: dead.attempts,
            dead_at: dead.dead_at / 1000,
            event: dead.event.json(self.base_url()),
            error: dead.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> String {
        EventId::new(1_700_000_000_000, 7, n).to_string()
    }

    #[test]
    fn a_redelivery_names_1_to_1000_event_ids() {
        let ok = serde_json::json!({"ids": [id(1), id(2), id(1)]}).to_string();
        assert_eq!(
            parse_redelivery(ok.as_bytes()),
            Ok(vec![
                EventId::new(1_700_000_000_000, 7, 1),
                EventId::new(1_700_000_000_000, 7, 2)
            ])
        );
        let max: Vec<String> = (0..1000).map(id).collect();
        let max = serde_json::json!({ "ids": max }).to_string();
        assert_eq!(parse_redelivery(max.as_bytes()).map(|v| v.len()), Ok(1000));
        let too_many: Vec<String> = (0..1001).map(id).collect();
        let too_many = serde_json::json!({ "ids": too_many }).to_string();
        for (body, want) in [
            ("", RedeliveryError::NotAnObject),
            ("[]", RedeliveryError::NotAnObject),
            ("{\"ids\": [", RedeliveryError::NotAnObject),
            ("{}", RedeliveryError::MissingIds),
            ("{\"ids\": []}", RedeliveryError::BadIds),
            ("{\"ids\": \"x\"}", RedeliveryError::BadIds),
            (too_many.as_str(), RedeliveryError::BadIds),
            ("{\"ids\": [1]}", RedeliveryError::BadId(0)),
            (
                &format!("{{\"ids\": [\"{}\", \"{}\"]}}", id(1), id(2).to_uppercase()),
                RedeliveryError::BadId(1),
            ),
            (
                &format!("{{\"ids\": [\"{}\"], \"all\": true}}", id(1)),
                RedeliveryError::Unknown("all".into()),
            ),
        ] {
            assert_eq!(parse_redelivery(body.as_bytes()), Err(want), "{body}");
        }
        assert_eq!(
            RedeliveryError::BadId(3).to_string(),
            "'ids[3]' must be an event id: 32 lowercase hexadecimal characters"
        );
    }

    #[test]
    fn the_failed_query_takes_after_and_limit() {
        assert_eq!(
            FailedQuery::parse(""),
            Ok(FailedQuery {
                after: None,
                limit: 100
            })
        );
        assert_eq!(
            FailedQuery::parse(&format!("limit=1000&after={}", id(3))),
            Ok(FailedQuery {
                after: Some(EventId::new(1_700_000_000_000, 7, 3)),
                limit: 1000
            })
        );
        for (query, text) in [
            (
                "limit=0",
                "Query parameter 'limit' must be a whole number from 1 to 1000",
            ),
            (
                "limit=1001",
                "Query parameter 'limit' must be a whole number from 1 to 1000",
            ),
            (
                "limit=+5",
                "Query parameter 'limit' must be a whole number from 1 to 1000",
            ),
            (
                "after=xyz",
                "Query parameter 'after' must be an event id: 32 lowercase hexadecimal characters",
            ),
            (
                "limit=1&limit=2",
                "Query parameter 'limit' is given more than once",
            ),
            ("page=2", "Unknown query parameter 'page'"),
        ] {
            assert_eq!(
                FailedQuery::parse(query).map_err(|e| e.to_string()),
                Err(text.to_owned()),
                "{query}"
            );
        }
    }
}
