//! The one place where failures become HTTP responses: the table from every
//! failure (each [`AuthError`] cause, each [`ServiceError`], the HTTP layer's
//! own) to its HTTP status, CRS `error` code and `error_description`.
//!
//! Every error body is `{"error": CODE, "error_description": TEXT}`, with the
//! CRS texts verbatim where CRS has one ([`auth_row`] for authentication,
//! [`ApiError::row`] for the rest). No other module knows HTTP statuses: `auth`
//! and `service` return typed causes. Errors are never cached
//! (`Cache-Control: no-store`), and the retryable ones (409, 503) say when to
//! retry.

use std::borrow::Cow;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::auth::AuthError;
use crate::domain::ClaimError;
use crate::service::ServiceError;

/// CRS text: same jti, different claims.
pub const CHANGED: &str = "Detected invalid changes between idempotent requests, unable to proceed. Please generate a new request.";
/// CRS text: the list belongs to another client.
pub const NOT_YOUR_LIST: &str = "The original clientId is different to the clientId in the request";
/// CRS text: the one 404 of the revoke contract.
pub const ENTRY_NOT_FOUND: &str = "Entry not found in status list table";
/// CRS text: the 404 of the public list endpoints.
pub const LIST_NOT_FOUND: &str = "Status List not found for endpoint uri";
/// CRS text: the 503 of every endpoint.
pub const UNAVAILABLE: &str = "Service is temporarily unavailable";
/// CRS text: `/issue` failed for an internal reason.
pub const ISSUE_FAILED: &str = "Unable to successfully issue a status";
/// CRS text: `/revoke` failed for an internal reason.
pub const CHANGE_FAILED: &str = "Error updating revokedAt field";
/// CRS text (403 of `/revoke`), used for every forbidden status change.
pub const FORBIDDEN_CHANGE: &str = "Unable to revoke the specified status list entry";
/// A listing JWT sent again (its jti was recorded before).
pub const JTI_USED: &str = "JWT has already been used: sign a new one with a fresh jti";
/// `GET /entries` failed for an internal reason.
pub const LISTING_FAILED: &str = "Unable to list entries";
/// The webhook endpoints of a client that has none.
pub const NO_WEBHOOK: &str = "No webhook is configured for this client";
/// `GET /webhooks/failed` failed for an internal reason.
pub const DEAD_LETTERS_FAILED: &str = "Unable to list failed webhook events";
/// `POST /webhooks/redeliver` failed for an internal reason.
pub const REDELIVERY_FAILED: &str = "Unable to redeliver webhook events";
/// `GET /t/{id}` with an `Accept` that allows neither representation.
pub const NOT_ACCEPTABLE: &str = "This status list is available as application/statuslist+jwt or application/statuslist+cwt; the Accept header allows neither";
/// A list GET with the draft's `time` parameter.
pub const TIME_NOT_SUPPORTED: &str = "Historical status lists are not kept: the time parameter is not supported; request the list without it for its current state";
/// A list GET whose `time` is not a Unix time.
pub const BAD_TIME: &str = "The time parameter must be a Unix time: whole seconds, digits only";
/// A JSON request body sent as another media type.
pub const JSON_CONTENT_TYPE: &str = "Content-Type header must be application/json";

/// The rows of the table for authentication failures: (HTTP status, CRS
/// `error`, CRS `error_description`). The texts are the `Display` of each
/// cause (a test holds them equal) and those of `crs-private-spec.yaml`
/// (`tests/auth.rs` checks every example of the spec against this). Only
/// the `count` fault's text is built: it says the configured maximum.
pub fn auth_row(e: AuthError) -> (StatusCode, &'static str, Cow<'static, str>) {
    use AuthError as E;
    use ClaimError as C;
    const BAD_REQUEST: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "BAD_REQUEST");
    const UNAUTHORIZED: (StatusCode, &str) = (StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let ((status, code), text) = match e {
        E::ContentType => (BAD_REQUEST, "Content-Type header must be application/jwt"),
        E::MissingBearer => (
            UNAUTHORIZED,
            "No Authorization header: send Authorization: Bearer <JWT>",
        ),
        E::MalformedBearer => (
            UNAUTHORIZED,
            "Authorization header must be Bearer followed by a JWT",
        ),
        E::Decode => (BAD_REQUEST, "Error decoding JWT or converting to JSON"),
        E::MissingKid => (UNAUTHORIZED, "No Key ID in Header"),
        E::MissingTyp => (UNAUTHORIZED, "No Type in Header"),
        E::InvalidTyp => (UNAUTHORIZED, "Invalid Type in Header"),
        E::MissingAlg => (UNAUTHORIZED, "No Algorithm in Header"),
        E::InvalidAlg => (UNAUTHORIZED, "Invalid Algorithm in Header"),
        E::MissingIss => (UNAUTHORIZED, "No Issuer in Payload"),
        E::UnknownClient => (UNAUTHORIZED, "JWT has non-matching Client ID"),
        E::InvalidKid => (UNAUTHORIZED, "Invalid Key ID in Header"),
        E::BadSignature => (UNAUTHORIZED, "JWT has non-verified signature"),
        E::Claim(C::MissingIat) => (BAD_REQUEST, "No iat in Payload"),
        E::Claim(C::InvalidIat) => (BAD_REQUEST, "Invalid iat in Payload"),
        E::Claim(C::MissingJti) => (BAD_REQUEST, "No jti in Payload"),
        E::Claim(C::InvalidJti) => (BAD_REQUEST, "Invalid jti in Payload"),
        E::Claim(C::MissingStatusExpiry) => (BAD_REQUEST, "No Status Expiry in Payload"),
        E::Claim(C::InvalidStatusExpiry) => (
            BAD_REQUEST,
            "Status Expiry in Payload must be a non negative number and represent a future expiry date no more than 1 year from now",
        ),
        E::Claim(C::MissingIdx) => (BAD_REQUEST, "No Index in Payload"),
        E::Claim(C::InvalidIdx) => (BAD_REQUEST, "Index must be a valid non-negative integer"),
        E::Claim(C::MissingUri) => (BAD_REQUEST, "No valid URI in Payload"),
        E::Claim(C::InvalidUri) => (BAD_REQUEST, "Invalid URI format in payload"),
        E::Claim(C::InvalidRef) => (
            BAD_REQUEST,
            "Invalid ref in Payload: it must be a string of 1 to 128 printable ASCII characters",
        ),
        E::Claim(C::InvalidCount { max }) => {
            return (
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                Cow::Owned(format!(
                    "Invalid count in Payload: it must be a whole number from 1 to {max}"
                )),
            );
        }
        E::Claim(C::RefWithIndex) => (
            BAD_REQUEST,
            "Payload must name either a ref, or an idx and a uri, not both",
        ),
        // Not in CRS (its clients send no `aud`): a token addressed to
        // another service is an authentication failure, and so is a listing
        // token addressed to none.
        E::Claim(C::InvalidAud) => (UNAUTHORIZED, "Invalid Audience in Payload"),
        E::Claim(C::MissingAud) => (
            UNAUTHORIZED,
            "No aud in Payload: it must be the service's public base URL",
        ),
        E::KeysUnavailable => (
            (StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE"),
            UNAVAILABLE,
        ),
    };
    (status, code, Cow::Borrowed(text))
}

/// Every error the HTTP layer answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A request that failed authentication or claim checks.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A use case refused the request or failed.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// `GET /t/{id}` or `/b/{id}` of a list that does not exist (in that
    /// format).
    #[error("status list not found")]
    ListNotFound,
    /// A path that no route serves.
    #[error("no such endpoint")]
    NoRoute,
    /// A known path with the wrong method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A body over the limit.
    #[error("request body too large")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A JSON endpoint (`POST /webhooks/redeliver`) sent another media type.
    #[error("request body is not JSON")]
    JsonContentType,
    /// `GET /t/{id}` whose `Accept` allows neither the JWT nor the CWT.
    #[error("no acceptable media type")]
    NotAcceptable,
    /// A list GET with the draft's `time` parameter: history is not kept.
    #[error("the time parameter is not supported")]
    TimeNotSupported,
    /// A list GET whose `time` parameter is not Unix seconds.
    #[error("malformed time parameter")]
    BadTime,
    /// A body that did not arrive in full within `http.body_timeout_ms`.
    #[error("request body timed out")]
    BodyTimeout {
        /// The timeout in milliseconds.
        timeout_ms: u64,
    },
}

impl ApiError {
    /// The (status, `error`, `error_description`) row of this error.
    pub fn row(&self) -> (StatusCode, &'static str, String) {
        use ServiceError as S;
        let fixed =
            |status: StatusCode, code: &'static str, text: &str| (status, code, text.to_owned());
        match self {
            ApiError::Auth(e) => {
                let (status, code, text) = auth_row(*e);
                (status, code, text.into_owned())
            }
            ApiError::Service(S::Changed) => fixed(StatusCode::BAD_REQUEST, "BAD_REQUEST", CHANGED),
            ApiError::Service(S::StatusNotSupported { status, bits }) => (
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!(
                    "This status list has {bits}-bit entries, which cannot hold the status {status}"
                ),
            ),
            ApiError::Service(S::NotYourList) => {
                fixed(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", NOT_YOUR_LIST)
            }
            ApiError::Service(S::EntryNotFound) => {
                fixed(StatusCode::NOT_FOUND, "NOT_FOUND", ENTRY_NOT_FOUND)
            }
            ApiError::Service(S::NotAllowed { .. }) => {
                fixed(StatusCode::FORBIDDEN, "FORBIDDEN", FORBIDDEN_CHANGE)
            }
            ApiError::Service(S::Unavailable(_)) => fixed(
                StatusCode::SERVICE_UNAVAILABLE,
                "TEMPORARILY_UNAVAILABLE",
                UNAVAILABLE,
            ),
            ApiError::Service(S::IssueFailed(_)) => fixed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                ISSUE_FAILED,
            ),
            ApiError::Service(S::ChangeFailed(_)) => fixed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                CHANGE_FAILED,
            ),
            ApiError::Service(S::BadQuery(e)) => {
                (StatusCode::BAD_REQUEST, "BAD_REQUEST", e.to_string())
            }
            ApiError::Service(S::JtiUsed) => {
                fixed(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", JTI_USED)
            }
            ApiError::Service(S::ListingFailed(_)) => fixed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                LISTING_FAILED,
            ),
            ApiError::Service(S::NoWebhook) => {
                fixed(StatusCode::NOT_FOUND, "NOT_FOUND", NO_WEBHOOK)
            }
            ApiError::Service(S::BadRedelivery(e)) => {
                (StatusCode::BAD_REQUEST, "BAD_REQUEST", e.to_string())
            }
            ApiError::JsonContentType => {
                fixed(StatusCode::BAD_REQUEST, "BAD_REQUEST", JSON_CONTENT_TYPE)
            }
            ApiError::Service(S::DeadLettersFailed(_)) => fixed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                DEAD_LETTERS_FAILED,
            ),
            ApiError::Service(S::RedeliveryFailed(_)) => fixed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                REDELIVERY_FAILED,
            ),
            ApiError::Service(S::ListNotFound) | ApiError::ListNotFound => {
                fixed(StatusCode::NOT_FOUND, "NOT_FOUND", LIST_NOT_FOUND)
            }
            ApiError::NoRoute => fixed(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "No endpoint at this path; see openapi.yaml",
            ),
            ApiError::MethodNotAllowed => fixed(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "This endpoint does not accept that method",
            ),
            ApiError::TooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("Request body must be at most {limit} bytes"),
            ),
            ApiError::BodyTimeout { timeout_ms } => (
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                format!("Request body was not received within {timeout_ms} ms"),
            ),
            ApiError::NotAcceptable => {
                fixed(StatusCode::NOT_ACCEPTABLE, "NOT_ACCEPTABLE", NOT_ACCEPTABLE)
            }
            ApiError::TimeNotSupported => fixed(
                StatusCode::NOT_IMPLEMENTED,
                "NOT_IMPLEMENTED",
                TIME_NOT_SUPPORTED,
            ),
            ApiError::BadTime => fixed(StatusCode::BAD_REQUEST, "BAD_REQUEST", BAD_TIME),
            ApiError::Service(S::PublishFailed(_)) => fixed(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL_SERVER_ERROR",
                "Internal server error",
            ),
        }
    }
}

#[derive(serde::Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.row().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, code, text) = self.row();
        if status.is_server_error() {
            // The Display of these errors never holds a JWT or key.
            tracing::error!(error = %self, status = status.as_u16(), "request failed");
        }
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if matches!(
            status,
            StatusCode::CONFLICT | StatusCode::SERVICE_UNAVAILABLE
        ) {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        // RFC 6750 §3: a request without usable bearer credentials is told
        // which scheme to use.
        if matches!(
            self,
            ApiError::Auth(AuthError::MissingBearer | AuthError::MalformedBearer)
        ) {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.json(ErrorBody {
            error: code,
            error_description: &text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_crs_description() {
        for e in AuthError::ALL {
            assert_eq!(e.to_string(), auth_row(e).2, "{e:?}");
        }
    }

    #[test]
    fn descriptions_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for e in AuthError::ALL {
            assert!(seen.insert(auth_row(e).2), "{e:?}");
        }
    }

    #[test]
    fn the_count_text_says_the_configured_maximum() {
        let (status, code, text) = auth_row(AuthError::Claim(ClaimError::InvalidCount { max: 7 }));
        assert_eq!((status, code), (StatusCode::BAD_REQUEST, "BAD_REQUEST"));
        assert_eq!(
            text,
            "Invalid count in Payload: it must be a whole number from 1 to 7"
        );
    }

    #[test]
    fn bearer_faults_name_the_scheme() {
        for e in AuthError::ALL {
            let res = ApiError::from(e).error_response();
            let bearer = matches!(e, AuthError::MissingBearer | AuthError::MalformedBearer);
            assert_eq!(
                res.headers().get(header::WWW_AUTHENTICATE).is_some(),
                bearer,
                "{e:?}"
            );
        }
    }

    #[test]
    fn the_service_rows_of_the_listing() {
        use crate::domain::EntryFilter;
        let bad = EntryFilter::parse("limit=0", "https://s.example").unwrap_err();
        let (status, code, text) = ApiError::from(ServiceError::BadQuery(bad)).row();
        assert_eq!((status, code), (StatusCode::BAD_REQUEST, "BAD_REQUEST"));
        assert!(text.contains("'limit'"), "{text}");
        let (status, code, text) = ApiError::from(ServiceError::JtiUsed).row();
        assert_eq!(
            (status, code, text.as_str()),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", JTI_USED)
        );
        let failed = ServiceError::ListingFailed(crate::ports::StoreError::Backend("x".into()));
        let (status, _, text) = ApiError::from(failed).row();
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, LISTING_FAILED)
        );
    }

    #[test]
    fn the_service_rows_of_the_webhooks() {
        use crate::ports::StoreError;
        use crate::service::RedeliveryError;
        let row = |e: ServiceError| {
            let (status, code, text) = ApiError::from(e).row();
            (status.as_u16(), code, text)
        };
        assert_eq!(
            row(ServiceError::NoWebhook),
            (404, "NOT_FOUND", NO_WEBHOOK.to_owned())
        );
        assert_eq!(
            row(ServiceError::BadRedelivery(RedeliveryError::BadId(2))),
            (
                400,
                "BAD_REQUEST",
                "'ids[2]' must be an event id: 32 lowercase hexadecimal characters".to_owned()
            )
        );
        let backend = || StoreError::Backend("x".into());
        assert_eq!(
            row(ServiceError::DeadLettersFailed(backend())),
            (500, "INTERNAL_SERVER_ERROR", DEAD_LETTERS_FAILED.to_owned())
        );
        assert_eq!(
            row(ServiceError::RedeliveryFailed(backend())),
            (500, "INTERNAL_SERVER_ERROR", REDELIVERY_FAILED.to_owned())
        );
        let (status, _, text) = ApiError::JsonContentType.row();
        assert_eq!((status.as_u16(), text.as_str()), (400, JSON_CONTENT_TYPE));
    }

    #[test]
    fn the_rows_of_the_list_gets() {
        let row = |e: ApiError| {
            let (status, code, text) = e.row();
            (status.as_u16(), code, text)
        };
        assert_eq!(
            row(ApiError::NotAcceptable),
            (406, "NOT_ACCEPTABLE", NOT_ACCEPTABLE.to_owned())
        );
        assert_eq!(
            row(ApiError::TimeNotSupported),
            (501, "NOT_IMPLEMENTED", TIME_NOT_SUPPORTED.to_owned())
        );
        assert_eq!(
            row(ApiError::BadTime),
            (400, "BAD_REQUEST", BAD_TIME.to_owned())
        );
    }

    #[test]
    fn retryable_causes_are_the_ones_answered_with_retry_after() {
        for e in AuthError::ALL {
            let retry_after = ApiError::from(e)
                .error_response()
                .headers()
                .contains_key(header::RETRY_AFTER);
            assert_eq!(e.is_retryable(), retry_after, "{e:?}");
        }
    }
}
