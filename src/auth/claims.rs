//! The proof that a request was authenticated: the checked claims of an
//! `/issue` request, of a status change (of one entry, or of every entry
//! bound to a ref) and of an entry listing (`GET /entries`).
//!
//! Each is a [`Claims`] of its kind: what every authenticated request
//! carries (client, format, `iat`, `jti`, digest, how long its record
//! counts) once, and what the kind adds ([`Issue`], [`Change`],
//! [`RefChange`], [`Listing`]) beside it.
//!
//! Invariant: a value of [`IssueClaims`], [`ChangeClaims`],
//! [`RefChangeClaims`] or [`ListingClaims`] exists only because
//! [`Authenticator::check_issue`](super::Authenticator::check_issue),
//! [`Authenticator::check_change`](super::Authenticator::check_change) or
//! [`Authenticator::check_listing`](super::Authenticator::check_listing)
//! accepted a signed request. Their fields are visible only inside
//! [`crate::auth`], so no other module (the service, the HTTP layer, a test)
//! can build one and hand it to a use case as if a client had signed it; they
//! read it through the getters. `Deserialize` is not derived for the same
//! reason.
//!
//! ```compile_fail
//! use statuslist::auth::IssueClaims;
//! use statuslist::domain::{ClientId, Jti, ListFormat};
//!
//! // Private fields: outside `auth` this does not compile.
//! let forged = IssueClaims {
//!     client: ClientId::parse("client-a").unwrap(),
//!     format: ListFormat::Token,
//!     iat: 0,
//!     jti: Jti::from_name("forged"),
//!     digest: [0; 32],
//!     keep_until: 0,
//!     kind: statuslist::auth::claims::Issue { status_expiry: 0, count: 1, issuance_ref: None, entries: false },
//! };
//! ```
//!
//! ```compile_fail
//! use statuslist::auth::ChangeClaims;
//! use statuslist::domain::{ChangeOp, ClientId, Jti, ListFormat, ListId, ListRef};
//!
//! let forged = ChangeClaims {
//!     client: ClientId::parse("client-a").unwrap(),
//!     format: ListFormat::Token,
//!     iat: 0,
//!     jti: Jti::from_name("forged"),
//!     digest: [0; 32],
//!     keep_until: 0,
//!     kind: statuslist::auth::claims::Change {
//!         op: ChangeOp::Revoke,
//!         idx: 0,
//!         list: ListRef { format: ListFormat::Token, id: ListId::random() },
//!     },
//! };
//! ```
//!
//! ```compile_fail
//! use statuslist::auth::RefChangeClaims;
//! use statuslist::domain::{ChangeOp, ClientId, IssuanceRef, Jti, ListFormat};
//!
//! let forged = RefChangeClaims {
//!     client: ClientId::parse("client-a").unwrap(),
//!     format: ListFormat::Token,
//!     iat: 0,
//!     jti: Jti::from_name("forged"),
//!     digest: [0; 32],
//!     keep_until: 0,
//!     kind: statuslist::auth::claims::RefChange {
//!         op: ChangeOp::Revoke,
//!         issuance_ref: IssuanceRef::parse("r").unwrap(),
//!     },
//! };
//! ```
//!
//! ```compile_fail
//! use statuslist::auth::ListingClaims;
//! use statuslist::domain::{ClientId, Jti, ListFormat};
//!
//! let forged = ListingClaims {
//!     client: ClientId::parse("client-a").unwrap(),
//!     format: ListFormat::Token,
//!     iat: 0,
//!     jti: Jti::from_name("forged"),
//!     digest: [0; 32],
//!     keep_until: 0,
//!     kind: statuslist::auth::claims::Listing { sealed: () },
//! };
//! ```
//!
//! ```compile_fail
//! // Nor can a kind be built outside `auth` and put into claims some other
//! // way: the kinds' fields are private too.
//! let kind = statuslist::auth::claims::Listing { sealed: () };
//! ```

use crate::domain::claims::ChangeOp;
use crate::domain::{ClientId, IssuanceRef, Jti, ListFormat, ListRef};

/// The checked claims of an authenticated request of kind `K`. Only `auth`
/// builds one (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims<K> {
    pub(in crate::auth) client: ClientId,
    pub(in crate::auth) format: ListFormat,
    pub(in crate::auth) iat: u64,
    pub(in crate::auth) jti: Jti,
    pub(in crate::auth) digest: [u8; 32],
    pub(in crate::auth) keep_until: u64,
    pub(in crate::auth) kind: K,
}

/// What an `/issue` request adds to [`Claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub(in crate::auth) status_expiry: u64,
    /// 1 to `lists.max_batch`; 1 when the request has no `count`.
    pub(in crate::auth) count: u32,
    pub(in crate::auth) issuance_ref: Option<IssuanceRef>,
    /// True when the request carries `ref` or `count`: it is answered with
    /// entries, not with the CRS `{idx, uri}`.
    pub(in crate::auth) entries: bool,
}

/// What a status change (`/revoke`, `/suspend`, `/unsuspend`) adds to
/// [`Claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub(in crate::auth) op: ChangeOp,
    pub(in crate::auth) idx: u64,
    pub(in crate::auth) list: ListRef,
}

/// What a status change of every entry bound to a ref adds to [`Claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefChange {
    pub(in crate::auth) op: ChangeOp,
    pub(in crate::auth) issuance_ref: IssuanceRef,
}

/// What a listing (`GET /entries`) adds to [`Claims`]: nothing but the
/// proof that it is one (its `aud` was checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub(in crate::auth) sealed: (),
}

/// The checked claims of an `/issue` request.
pub type IssueClaims = Claims<Issue>;

/// The checked claims of a status change of one entry (`idx` and `uri`).
pub type ChangeClaims = Claims<Change>;

/// The checked claims of a status change by `ref`.
pub type RefChangeClaims = Claims<RefChange>;

/// The checked claims of a listing JWT.
pub type ListingClaims = Claims<Listing>;

/// A checked status-change request: by entry (the CRS request) or by ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeRequest {
    /// `idx` and `uri`.
    Entry(ChangeClaims),
    /// `ref`.
    Ref(RefChangeClaims),
}

/// The claims of a `/revoke` request.
pub type RevokeClaims = ChangeClaims;

impl<K> Claims<K> {
    /// The authenticated client (`iss`).
    pub fn client(&self) -> &ClientId {
        &self.client
    }

    /// The format of that client's lists.
    pub fn format(&self) -> ListFormat {
        self.format
    }

    /// `iat`, whole seconds.
    pub fn iat(&self) -> u64 {
        self.iat
    }

    /// `jti`, a lowercase UUID.
    pub fn jti(&self) -> &Jti {
        &self.jti
    }

    /// The idempotency digest of what the request asks
    /// ([`crate::domain::claims::issue_digest`] or `issue_digest_v2`,
    /// [`crate::domain::claims::change_digest`], `ref_change_digest`,
    /// `listing_digest`; never `iat`).
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// Until when the request's idempotency record must count
    /// ([`crate::domain::claims::record_until`]).
    pub fn keep_until(&self) -> u64 {
        self.keep_until
    }
}

impl Claims<Issue> {
    /// `statusExpiry`, whole seconds, in the future and within a year.
    pub fn status_expiry(&self) -> u64 {
        self.kind.status_expiry
    }

    /// How many entries to allocate: `count`, 1 to `lists.max_batch` (1
    /// when absent).
    pub fn count(&self) -> u32 {
        self.kind.count
    }

    /// `ref`, when given.
    pub fn issuance_ref(&self) -> Option<&IssuanceRef> {
        self.kind.issuance_ref.as_ref()
    }

    /// True when the request carries `ref` or `count`: its answer is the
    /// list of entries; otherwise it is the CRS `{idx, uri}`.
    pub fn answers_entries(&self) -> bool {
        self.kind.entries
    }
}

impl Claims<Change> {
    /// The operation requested (fixed by the route, not by the token).
    pub fn op(&self) -> ChangeOp {
        self.kind.op
    }

    /// `idx`.
    pub fn idx(&self) -> u64 {
        self.kind.idx
    }

    /// The list named by `uri`: a list of this service; whether it exists and
    /// belongs to the client is the store's question.
    pub fn list(&self) -> ListRef {
        self.kind.list
    }
}

impl Claims<RefChange> {
    /// The operation requested (fixed by the route, not by the token).
    pub fn op(&self) -> ChangeOp {
        self.kind.op
    }

    /// `ref`: whether any entry of the client is bound to it is the store's
    /// question.
    pub fn issuance_ref(&self) -> &IssuanceRef {
        &self.kind.issuance_ref
    }
}
