//! The proof that a request was authenticated: the checked claims of an
//! `/issue` request and of a status change.
//!
//! Both are a [`Claims`] of their kind: what every authenticated request
//! carries (client, format, `iat`, `jti`, digest, how long its record
//! counts) once, and what the kind adds ([`Issue`], [`Change`]) beside it.
//!
//! Invariant: a value of [`IssueClaims`] or [`ChangeClaims`] exists only
//! because [`Authenticator::check_issue`](super::Authenticator::check_issue)
//! or [`Authenticator::check_change`](super::Authenticator::check_change)
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
//!     kind: statuslist::auth::claims::Issue { status_expiry: 0 },
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

use crate::domain::claims::ChangeOp;
use crate::domain::{ClientId, Jti, ListFormat, ListRef};

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
}

/// What a status change (`/revoke`, `/suspend`, `/unsuspend`) adds to
/// [`Claims`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub(in crate::auth) op: ChangeOp,
    pub(in crate::auth) idx: u64,
    pub(in crate::auth) list: ListRef,
}

/// The checked claims of an `/issue` request.
pub type IssueClaims = Claims<Issue>;

/// The checked claims of a status change.
pub type ChangeClaims = Claims<Change>;

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
    /// ([`crate::domain::claims::issue_digest`],
    /// [`crate::domain::claims::change_digest`]; never `iat`).
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
